"""Detection label-issue scores: properties on random scenes (fixed seeds) and each issue type on
a hand-made frame."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.analysis import detection_issues as di


def _random_scene(seed: int, n: int = 50) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    per_g, per_d = rng.integers(0, 6, n), rng.integers(0, 8, n)
    g, d = int(per_g.sum()), int(per_d.sum())
    return {
        "n_frames": n,
        "g_frame": np.repeat(np.arange(n), per_g),
        "g_box": np.c_[rng.uniform(0, 500, (g, 2)), rng.uniform(5, 150, (g, 2))],
        "g_cls": rng.integers(0, 3, g),
        "g_crowd": rng.random(g) < 0.1,
        "d_frame": np.repeat(np.arange(n), per_d),
        "d_box": np.c_[rng.uniform(0, 500, (d, 2)), rng.uniform(5, 150, (d, 2))],
        "d_cls": rng.integers(0, 3, d),
        "d_conf": rng.random(d),
    }


@pytest.mark.parametrize("seed", range(5))
def test_scores_are_bounded_complete_and_unchanged_by_moving_the_whole_frame(seed: int) -> None:
    scene = _random_scene(seed)
    s = di.score_objects(**scene)
    assert np.all((s.score >= 0) & (s.score <= 1)) and np.all((s.raw >= 0) & (s.raw <= 1))
    regular = int((~scene["g_crowd"]).sum())
    assert len(s.score) == 3 * regular + len(scene["d_frame"])
    # calibration keeps the order within a type and maps each threshold to the flag line
    for t, limit in di.THRESHOLDS.items():
        m = s.issue_type == t
        assert np.array_equal(s.score[m] < di.FLAG_BELOW, s.raw[m] < limit)
        assert np.all(np.diff(s.score[m][np.argsort(s.raw[m], kind="stable")]) >= -1e-12)
    shifted = dict(scene, g_box=scene["g_box"] + [37, -11, 0, 0], d_box=scene["d_box"] + [37, -11, 0, 0])
    assert np.allclose(di.score_objects(**shifted).score, s.score)


def test_each_issue_type_on_one_frame() -> None:
    # labeled: 0 fine, 1 shifted, 2 swapped (labeled class 1, predicted 2), 3 nothing there; predicted 4: unlabeled
    g_box = np.array([[0, 0, 100, 100], [200, 0, 100, 100], [400, 0, 100, 100], [0, 300, 50, 50]], float)
    d_box = np.array([[1, 1, 100, 100], [235, 35, 100, 100], [401, 0, 100, 100], [300, 300, 80, 80]], float)
    s = di.score_objects(
        n_frames=1, g_frame=np.zeros(4, int), g_box=g_box, g_cls=np.array([0, 0, 1, 0]), g_crowd=np.zeros(4, bool),
        d_frame=np.zeros(4, int), d_box=d_box, d_cls=np.array([0, 0, 2, 1]), d_conf=np.full(4, 0.97),
    )  # fmt: skip
    flagged = {(bool(p), int(o), int(t)) for p, o, t, sc in zip(s.predicted, s.obj, s.issue_type, s.score, strict=True)
               if sc < di.FLAG_BELOW}  # fmt: skip
    assert flagged == {(False, 1, di.MISLOCALIZED), (False, 2, di.SWAP), (False, 3, di.SPURIOUS), (True, 3, di.MISSING)}
    pooled = di.pool_frames(1, s, s.score < di.FLAG_BELOW)
    assert pooled["score"][0] == s.score.min() and pooled["objects"][0] == 8
    assert [pooled[k][0] for k in ("missing", "spurious", "mislocalized", "swapped")] == [1, 1, 1, 1]


def test_frames_without_boxes_score_one() -> None:
    empty = np.zeros((0, 4))
    s = di.score_objects(n_frames=3, g_frame=np.zeros(0, int), g_box=empty, g_cls=np.zeros(0, int),
                         g_crowd=np.zeros(0, bool), d_frame=np.zeros(0, int), d_box=empty, d_cls=np.zeros(0, int),
                         d_conf=np.zeros(0))  # fmt: skip
    pooled = di.pool_frames(3, s, s.score < di.FLAG_BELOW)
    assert pooled["score"].tolist() == [1.0, 1.0, 1.0] and pooled["worst_type"].tolist() == [0, 0, 0]
