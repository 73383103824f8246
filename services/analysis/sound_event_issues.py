"""Label issues in sound-event labels: labeled intervals of audio clips checked against a detector's
predicted intervals (each with a score, its confidence in [0, 1]), clip by clip.

Two intervals *overlap* when they share at least ``min_overlap`` (10 %) of the shorter one's length,
so that a sliver where one ends as the next starts does not count; their temporal IoU (tIoU) is the
shared length over the length of their union. A prediction is *confident* at ``score >= confident`` (0.5).

- **Missing event** (a prediction): a confident prediction of class ``k`` that overlaps no labeled
  event of class ``k``, and that is not the evidence of a wrong class (below). Score ``1 - s``, ``s``
  its score.
- **Wrong class** (a labeled event of class ``k``): no confident prediction of ``k`` overlaps it, and
  a confident prediction of another class overlaps no labeled event of its own class and has a tIoU
  ``>= min_iou`` (0.5) with it: the detector hears the event, as that other class. Of several, the
  one of highest tIoU is the evidence, and its class is suggested. Score ``1 - s (1 - w)``, ``s`` its
  score and ``w`` the best score of the weak predictions of ``k`` overlapping the event (0 without).
- **Badly bounded** (a labeled event of class ``k``): confident predictions of ``k`` overlap it, but
  its tIoU with the union of the predictions of ``k`` overlapping it (weak ones too: the fragments a
  detector makes of a faint event count) is below ``min_iou``. Parts of that union covered by other
  labeled events of ``k`` do not count against it, so a detector that merges two close events does
  not flag either. Score ``1 - s (1 - tIoU)``, ``s`` the best score among them: a confident detector
  disagreeing about the bounds ranks first.
- **Spurious event** (a labeled event of class ``k``): no confident prediction of ``k`` overlaps it,
  it is not a wrong class, and the clip has confident predictions elsewhere (the detector is working
  there). Score ``1 - q (1 - m_k) (1 - w)``, with ``q`` the clip's mean confident score, ``m_k`` the
  detector's miss rate on class ``k`` (the share of labeled events of ``k``, in the batch, that no
  confident prediction of ``k`` overlaps, Laplace-smoothed: ``(misses + 1) / (events + 2)``) and ``w``
  as above: silence from a confident detector that rarely misses the class ranks first.

Every labeled event gets a score by the rule of its case, flagged or not (with confident predictions
of its class overlapping it, the badly-bounded score, however high its tIoU), so all labeled events
can be ranked; lower means more likely wrong. A clip without a confident prediction flags no
spurious event: the detector may simply not be working there. The class miss rates are estimated over
the batch a call is given: give it clips in batches as large as memory allows.
``bench/analysis_quality/bench_sound_event_issues.py`` measures the flags on planted errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from shoal.analysis.sound_events import Intervals

#: the kinds of a labeled event (0: none); a missing event is a prediction's flag
SPURIOUS, BADLY_BOUNDED, WRONG_CLASS = 1, 2, 3
KINDS = {SPURIOUS: "spurious", BADLY_BOUNDED: "badly bounded", WRONG_CLASS: "wrong class"}
DEFAULT_CONFIDENT = 0.5
DEFAULT_MIN_IOU = 0.5
DEFAULT_MIN_OVERLAP = 0.1


@numba.njit(cache=True, nogil=True)
def _overlap(a_on, a_off, b_on, b_off, share):
    """Whether two intervals share at least ``share`` of the shorter one's length (and some length)."""
    shared = min(a_off, b_off) - max(a_on, b_on)
    return shared > 0 and shared >= share * min(a_off - a_on, b_off - b_on)


@numba.njit(cache=True, nogil=True)
def _covered_iou(j, picks, n_picks, l_on, l_off, l_cls, l0, l1, p_on, p_off, share):
    """tIoU of labeled event ``j`` with the union U of predictions ``picks[:n_picks]``, not counting the
    parts of U outside ``j`` that other labeled events of ``j``'s class cover."""
    n_other = 0
    others = np.empty(l1 - l0, np.int64)
    for k in range(l0, l1):
        if k == j or l_cls[k] != l_cls[j]:
            continue
        for q in range(n_picks):
            i = picks[q]
            if _overlap(l_on[k], l_off[k], p_on[i], p_off[i], share):
                others[n_other] = k
                n_other += 1
                break
    cuts = np.empty(2 + 2 * n_picks + 2 * n_other, np.float64)
    cuts[0], cuts[1] = l_on[j], l_off[j]
    for q in range(n_picks):
        cuts[2 + 2 * q], cuts[3 + 2 * q] = p_on[picks[q]], p_off[picks[q]]
    for q in range(n_other):
        cuts[2 + 2 * n_picks + 2 * q], cuts[3 + 2 * n_picks + 2 * q] = l_on[others[q]], l_off[others[q]]
    cuts.sort()
    inter = 0.0
    outside = 0.0
    for t in range(cuts.shape[0] - 1):
        a, b = cuts[t], cuts[t + 1]
        if b <= a:
            continue
        mid = 0.5 * (a + b)
        in_u = False
        for q in range(n_picks):
            if p_on[picks[q]] < mid < p_off[picks[q]]:
                in_u = True
                break
        if not in_u:
            continue
        if l_on[j] < mid < l_off[j]:
            inter += b - a
            continue
        in_o = False
        for q in range(n_other):
            if l_on[others[q]] < mid < l_off[others[q]]:
                in_o = True
                break
        if not in_o:
            outside += b - a
    return inter / (l_off[j] - l_on[j] + outside)


@numba.njit(cache=True, nogil=True)
def _evidence(l_on, l_off, l_cls, l_bounds, p_on, p_off, p_cls, p_score, p_bounds, confident, min_iou, share,
              own_best, own_iou, own_confident, other, clip_conf, labeled_there):  # fmt: skip
    """Per labeled event: the best score of the predictions of its class overlapping it, the tIoU with
    their union, whether any is confident, and (without a confident one) the unexplained confident
    prediction of another class that matches it best (-1: none). Per prediction: whether a labeled
    event of its class overlaps it. Per clip: the mean confident score (0: none)."""
    for c in range(l_bounds.shape[0] - 1):
        l0, l1, p0, p1 = l_bounds[c], l_bounds[c + 1], p_bounds[c], p_bounds[c + 1]
        total = 0.0
        n_conf = 0
        for i in range(p0, p1):
            if p_score[i] >= confident:
                total += p_score[i]
                n_conf += 1
            for j in range(l0, l1):
                if l_cls[j] == p_cls[i] and _overlap(l_on[j], l_off[j], p_on[i], p_off[i], share):
                    labeled_there[i] = True
                    break
        clip_conf[c] = total / n_conf if n_conf else 0.0
        picks = np.empty(max(p1 - p0, 1), np.int64)
        for j in range(l0, l1):
            n_all = 0
            n_sure = 0
            best = 0.0
            for i in range(p0, p1):
                if p_cls[i] == l_cls[j] and _overlap(l_on[j], l_off[j], p_on[i], p_off[i], share):
                    n_all += 1
                    best = max(best, p_score[i])
                    if p_score[i] >= confident:
                        n_sure += 1
            if n_all:
                own_best[j] = best
                own_confident[j] = n_sure > 0
                n = 0
                for i in range(p0, p1):
                    if p_cls[i] == l_cls[j] and _overlap(l_on[j], l_off[j], p_on[i], p_off[i], share):
                        picks[n] = i
                        n += 1
                own_iou[j] = _covered_iou(j, picks, n, l_on, l_off, l_cls, l0, l1, p_on, p_off, share)
            if n_sure:
                continue
            # no confident prediction of its class: an unexplained confident prediction of another that matches it
            best_iou = 0.0
            for i in range(p0, p1):
                if p_cls[i] == l_cls[j] or p_score[i] < confident or labeled_there[i]:
                    continue
                shared = min(l_off[j], p_off[i]) - max(l_on[j], p_on[i])
                if shared <= 0:
                    continue
                iou = shared / (max(l_off[j], p_off[i]) - min(l_on[j], p_on[i]))
                # the closest in time (the most confident among equals): two relabeled events side by side
                # each take their own
                if iou >= min_iou and (iou > best_iou or (iou == best_iou and p_score[i] > p_score[other[j]])):
                    other[j] = i
                    best_iou = iou


@dataclass
class IntervalIssues:
    """What :func:`find` judges of N labeled and M predicted intervals."""

    #: (N,) int8: 0, SPURIOUS, BADLY_BOUNDED or WRONG_CLASS
    kind: np.ndarray
    #: (N,) in [0, 1]: lower = more likely wrong (the rule of the event's case, flagged or not)
    score: np.ndarray
    #: (N,) tIoU with the union of the overlapping predictions of its class (NaN: none overlaps)
    iou: np.ndarray
    #: (N,) the class a wrong-class event sounds like, -1 otherwise
    suggested: np.ndarray
    #: (N,) the prediction that is the evidence of a wrong class, -1 otherwise
    evidence: np.ndarray
    #: (M,) bool: a confident prediction no labeled event accounts for
    missing: np.ndarray
    #: (M,) 1 - score where missing, 1.0 elsewhere
    missing_score: np.ndarray
    #: (K,) the detector's smoothed miss rate per class
    miss_rate: np.ndarray

    def ranked(self, kind: int) -> np.ndarray:
        """The labeled events flagged ``kind`` most likely first (score, then position); for ``0``, the
        predictions flagged missing."""
        if kind == 0:
            rows = np.flatnonzero(self.missing)
            return rows[np.argsort(self.missing_score[rows], kind="stable")]
        rows = np.flatnonzero(self.kind == kind)
        return rows[np.argsort(self.score[rows], kind="stable")]


def find(
    *,
    labeled: Intervals,
    predicted: Intervals,
    confident: float = DEFAULT_CONFIDENT,
    min_iou: float = DEFAULT_MIN_IOU,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
) -> IntervalIssues:
    """Judges the labeled intervals of C clips against the predicted ones (same clips, same classes,
    with scores); see the module's rules.

    Parameters
    ----------
    labeled : Intervals
        N labeled events of C clips.
    predicted : Intervals
        M predictions of the same C clips, with ``score`` (higher = more confident).
    confident : float
        The score from which a prediction is trusted, in (0, 1].
    min_iou : float
        The tIoU below which bounds disagree, and from which another class matches, in (0, 1].
    min_overlap : float
        The least share of the shorter interval two intervals must share to overlap, in (0, 1].
    """
    if predicted.score is None:
        raise ValueError("predicted intervals have no score; give each prediction's confidence in [0, 1]")
    if labeled.clips != predicted.clips:
        raise ValueError(f"labeled has {labeled.clips} clips and predicted {predicted.clips}; give both per clip")
    if labeled.classes != predicted.classes:
        raise ValueError(f"labeled has {labeled.classes} classes and predicted {predicted.classes}; use one list")
    for name, value in (("confident", confident), ("min_iou", min_iou), ("min_overlap", min_overlap)):
        if not 0 < value <= 1:
            raise ValueError(f"{name} is {value!r}; give a number in (0, 1]")
    n, m, k = len(labeled), len(predicted), labeled.classes
    own_best = np.zeros(n)
    own_iou = np.full(n, np.nan)
    own_confident = np.zeros(n, np.bool_)
    other = np.full(n, -1, np.int64)
    clip_conf = np.zeros(labeled.clips)
    labeled_there = np.zeros(m, np.bool_)
    _evidence(labeled.onset, labeled.offset, labeled.cls, labeled.bounds, predicted.onset, predicted.offset,
              predicted.cls, predicted.score, predicted.bounds, float(confident), float(min_iou), float(min_overlap),
              own_best, own_iou, own_confident, other, clip_conf, labeled_there)  # fmt: skip
    events = np.bincount(labeled.cls, minlength=k)
    misses = np.bincount(labeled.cls[~own_confident], minlength=k)
    miss_rate = (misses + 1) / (events + 2)

    kind = np.zeros(n, np.int8)
    score = np.ones(n)
    suggested = np.full(n, -1, np.int64)
    s = predicted.score
    # confident predictions of its class overlap it: its bounds against theirs
    sure = own_confident
    score[sure] = 1 - own_best[sure] * (1 - own_iou[sure])
    kind[sure & (own_iou < min_iou)] = BADLY_BOUNDED
    # none: another class heard there, or nothing (a weak prediction of its class lessens either)
    wrong = ~sure & (other >= 0)
    kind[wrong] = WRONG_CLASS
    score[wrong] = 1 - s[other[wrong]] * (1 - own_best[wrong])
    suggested[wrong] = predicted.cls[other[wrong]]
    silent = ~sure & (other < 0)
    q = clip_conf[labeled.clip_of()]
    score[silent] = 1 - q[silent] * (1 - miss_rate[labeled.cls[silent]]) * (1 - own_best[silent])
    kind[silent & (q > 0)] = SPURIOUS

    missing = (s >= confident) & ~labeled_there
    missing[other[wrong]] = False  # the evidence of a wrong class, not an event the labels miss
    missing_score = np.where(missing, 1 - s, 1.0)
    return IntervalIssues(kind, score, own_iou, suggested, np.where(wrong, other, -1), missing, missing_score,
                          miss_rate)  # fmt: skip
