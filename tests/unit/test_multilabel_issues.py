"""Multi-label confident learning on small hand-made cases, and the keypoint names read as left/right
pairs: what each flag means, where a class gives no evidence, and which names pair."""

from __future__ import annotations

import numpy as np

from shoal.analysis.multilabel_issues import find
from shoal.common.similarity import mirror_pairs


def test_a_confident_score_against_the_label_is_flagged_as_missing_or_extra() -> None:
    # class 0: 20 frames labeled with it scored high, 20 without it scored low; frame 40 labeled without
    # it but scored like the labeled ones (missing), frame 41 labeled with it but scored like the others (extra)
    y = np.zeros((42, 1), dtype=bool)
    y[:20, 0] = True
    y[41, 0] = True
    p = np.where(y, 0.9, 0.1)
    p[40, 0], p[41, 0] = 0.95, 0.05
    f = find(y, p)
    assert np.flatnonzero(f.missing[:, 0]).tolist() == [40] and np.flatnonzero(f.extra[:, 0]).tolist() == [41]
    assert f.flagged.tolist() == [False] * 40 + [True, True]
    # the label quality of a flagged frame is its worst self-confidence, and names that class
    assert f.score[40] == np.float64(1 - 0.95) and f.worst[40] == 0


def test_a_class_never_labeled_gives_no_evidence_of_a_missing_class() -> None:
    """A class nobody labeled has no yes threshold: however high a frame scores it, it is not
    flagged missing on that evidence alone (nor is anything extra)."""
    y = np.zeros((30, 2), dtype=bool)
    y[:15, 0] = True
    p = np.zeros((30, 2))
    p[:, 0] = np.where(y[:, 0], 0.8, 0.2)
    p[:, 1] = np.linspace(0, 1, 30)  # class 1: never labeled, scored all over
    f = find(y, p)
    assert not f.missing[:, 1].any() and not f.extra.any() and np.isnan(f.yes[1])


def test_a_frame_the_model_scores_as_labeled_is_not_flagged() -> None:
    """Pruning by the estimated number of errors never flags a frame whose score agrees with its
    label (above 0.5 for a class it has, below for one it lacks)."""
    rng = np.random.default_rng(0)
    y = rng.random((500, 3)) < 0.4
    p = np.clip(np.where(y, 0.7, 0.3) + rng.normal(0, 0.15, y.shape), 0, 1)
    f = find(y, p)
    assert (p[f.missing] > 0.5).all() and (p[f.extra] < 0.5).all()


def test_keypoint_names_pair_as_left_and_right() -> None:
    names = ["nose", "left_eye", "right_eye", "LeftHand", "RightHand", "eye_l", "eye_r", "l_foot", "r_foot",
             "left", "right", "leftover", "lefty", "tail"]  # fmt: skip
    assert mirror_pairs(names) == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10))
    assert mirror_pairs(["left_eye", "nose"]) == ()  # a side without its other: no pair
