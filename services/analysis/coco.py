"""COCO-style evaluation of 2-D detections: AP over IoU .50:.95, AP50, AP75, AR at 1/10/100
detections, per area range, per class and overall, with crowd regions.

The definitions are COCO's own (the reference implementation's ``evaluateImg``, ``accumulate``
and ``summarize``): per image and class, detections are taken by descending score (ties in input
order), each is matched greedily to the unmatched ground truth with the highest IoU at or above the
threshold, preferring regular ground truth to ignored ones (crowd, or outside the area range); a
crowd region may take any number of detections, with IoU measured against the detection's area;
unmatched detections outside the area range are ignored. Precision is made monotone and sampled at
101 recall points. Input order breaks score ties, as in the reference: callers give objects in a
stable order (Shoal: frame id, then object id).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, 101)
MAX_DETECTIONS = (1, 10, 100)
AREA_RANGES = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}


@dataclass
class Boxes:
    """Objects as parallel arrays; ``image`` and ``category`` are integer codes."""

    image: np.ndarray
    category: np.ndarray
    #: (N, 4) x, y, width, height
    box: np.ndarray
    score: np.ndarray | None = None
    crowd: np.ndarray | None = None
    area: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float64).reshape(-1, 4)
        if self.area is None:
            self.area = self.box[:, 2] * self.box[:, 3]

    def __len__(self) -> int:
        return len(self.image)


@dataclass
class CocoResult:
    categories: list[int]
    #: (T, R, K, A, M), -1 where a class has no ground truth
    precision: np.ndarray
    #: (T, K, A, M)
    recall: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)
    per_class: dict[int, dict[str, float]] = field(default_factory=dict)


def iou_matrix(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of every detection with every ground truth box (xywh); against a crowd region the
    union is the detection's own area."""
    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)))
    dx1, dy1 = dt[:, 0:1], dt[:, 1:2]
    dx2, dy2 = dx1 + dt[:, 2:3], dy1 + dt[:, 3:4]
    gx1, gy1 = gt[:, 0], gt[:, 1]
    gx2, gy2 = gx1 + gt[:, 2], gy1 + gt[:, 3]
    iw = np.clip(np.minimum(dx2, gx2) - np.maximum(dx1, gx1), 0, None)
    ih = np.clip(np.minimum(dy2, gy2) - np.maximum(dy1, gy1), 0, None)
    inter = iw * ih
    da = dt[:, 2:3] * dt[:, 3:4]
    ga = gt[:, 2] * gt[:, 3]
    union = np.where(crowd[None, :], da, da + ga - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return out


@dataclass
class _ImageEval:
    scores: np.ndarray  # (D,)
    matched: np.ndarray  # (T, D) bool
    dt_ignore: np.ndarray  # (T, D) bool
    gt_ignore: np.ndarray  # (G,) bool


def _evaluate_image(
    ious: np.ndarray,
    dt_scores: np.ndarray,
    dt_area: np.ndarray,
    gt_area: np.ndarray,
    gt_crowd: np.ndarray,
    area_range: tuple[float, float],
    max_det: int,
) -> _ImageEval:
    """One image and class at one area range; ``ious`` rows are detections already in score order
    (and cut at the largest max detections), columns ground truth in input order."""
    lo, hi = area_range
    g_ignore = gt_crowd | (gt_area < lo) | (gt_area > hi)
    gorder = np.argsort(g_ignore, kind="mergesort")
    g_ignore = g_ignore[gorder]
    crowd = gt_crowd[gorder]
    d = min(max_det, len(dt_scores))
    ious = ious[:d][:, gorder]
    t_count = len(IOU_THRESHOLDS)
    g = len(gorder)
    gt_matched = np.zeros((t_count, g), dtype=bool)
    matched = np.zeros((t_count, d), dtype=bool)
    dt_ignore = np.zeros((t_count, d), dtype=bool)
    if g and d:
        for ti, t in enumerate(IOU_THRESHOLDS):
            taken = gt_matched[ti]
            for di in range(d):
                best = min(t, 1 - 1e-10)
                m = -1
                row = ious[di]
                for gi in range(g):
                    if taken[gi] and not crowd[gi]:
                        continue
                    if m > -1 and not g_ignore[m] and g_ignore[gi]:
                        break
                    if row[gi] < best:
                        continue
                    best = row[gi]
                    m = gi
                if m == -1:
                    continue
                dt_ignore[ti, di] = g_ignore[m]
                matched[ti, di] = True
                taken[m] = True
    outside = (dt_area[:d] < lo) | (dt_area[:d] > hi)
    dt_ignore |= ~matched & outside[None, :]
    return _ImageEval(dt_scores[:d], matched, dt_ignore, g_ignore)


def evaluate(gt: Boxes, dt: Boxes, images: np.ndarray, categories: list[int]) -> CocoResult:
    """COCO evaluation of ``dt`` against ``gt`` over ``images`` (codes, in evaluation order) and
    ``categories`` (in order)."""
    assert dt.score is not None and gt.crowd is not None
    t_count, r_count = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
    areas = list(AREA_RANGES.values())
    k_count, a_count, m_count = len(categories), len(areas), len(MAX_DETECTIONS)
    precision = -np.ones((t_count, r_count, k_count, a_count, m_count))
    recall = -np.ones((t_count, k_count, a_count, m_count))
    max_det = MAX_DETECTIONS[-1]
    image_pos = {int(im): i for i, im in enumerate(images)}

    # group object indices by (category, image), keeping input order
    def groups(b: Boxes) -> dict[tuple[int, int], np.ndarray]:
        if len(b) == 0:
            return {}
        key = np.stack([np.asarray(b.category, dtype=np.int64), np.asarray(b.image, dtype=np.int64)], axis=1)
        order = np.lexsort((np.arange(len(b)), key[:, 1], key[:, 0]))
        key = key[order]
        cuts = np.flatnonzero(np.any(np.diff(key, axis=0) != 0, axis=1)) + 1
        out = {}
        for part in np.split(order, cuts):
            out[(int(b.category[part[0]]), int(b.image[part[0]]))] = part
        return out

    gt_groups, dt_groups = groups(gt), groups(dt)
    for ki, cat in enumerate(categories):
        imgs = sorted(
            {im for (c, im) in gt_groups if c == cat} | {im for (c, im) in dt_groups if c == cat},
            key=lambda im: image_pos.get(im, len(image_pos)),
        )
        per_image = []
        for im in imgs:
            gi = gt_groups.get((cat, im), np.zeros(0, dtype=np.int64))
            di = dt_groups.get((cat, im), np.zeros(0, dtype=np.int64))
            di = di[np.argsort(-dt.score[di], kind="mergesort")][:max_det]
            ious = iou_matrix(dt.box[di], gt.box[gi], gt.crowd[gi].astype(bool))
            per_image.append((ious, dt.score[di], dt.area[di], gt.area[gi], gt.crowd[gi].astype(bool)))  # type: ignore[index]
        for ai, area_range in enumerate(areas):
            evals = [_evaluate_image(*args, area_range, max_det) for args in per_image]
            for mi, m in enumerate(MAX_DETECTIONS):
                if not evals:
                    continue
                scores = np.concatenate([e.scores[:m] for e in evals])
                order = np.argsort(-scores, kind="mergesort")
                matched = np.concatenate([e.matched[:, :m] for e in evals], axis=1)[:, order]
                ignored = np.concatenate([e.dt_ignore[:, :m] for e in evals], axis=1)[:, order]
                npig = int(sum(np.count_nonzero(~e.gt_ignore) for e in evals))
                if npig == 0:
                    continue
                tps = np.cumsum(matched & ~ignored, axis=1, dtype=np.float64)
                fps = np.cumsum(~matched & ~ignored, axis=1, dtype=np.float64)
                for ti in range(t_count):
                    tp, fp = tps[ti], fps[ti]
                    nd = len(tp)
                    rc = tp / npig
                    pr = tp / (fp + tp + np.spacing(1))
                    recall[ti, ki, ai, mi] = rc[-1] if nd else 0
                    # monotone from the right
                    pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
                    inds = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
                    q = np.zeros(r_count)
                    valid = inds < nd
                    # the reference stops at the first recall point it cannot reach
                    stop = int(np.argmin(valid)) if not valid.all() else r_count
                    q[:stop] = pr[inds[:stop]]
                    precision[ti, :, ki, ai, mi] = q
    result = CocoResult(categories, precision, recall)
    result.stats = summarize(precision, recall)
    for ki, cat in enumerate(categories):
        result.per_class[cat] = summarize(precision[:, :, ki : ki + 1], recall[:, ki : ki + 1])
    return result


def _mean(values: np.ndarray) -> float:
    v = values[values > -1]
    return float(np.mean(v)) if v.size else -1.0


def summarize(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """The twelve COCO numbers (-1 where nothing can be measured)."""
    a = {name: i for i, name in enumerate(AREA_RANGES)}
    m = {n: i for i, n in enumerate(MAX_DETECTIONS)}
    t50 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5)))
    t75 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.75)))
    return {
        "AP": _mean(precision[:, :, :, a["all"], m[100]]),
        "AP50": _mean(precision[t50, :, :, a["all"], m[100]]),
        "AP75": _mean(precision[t75, :, :, a["all"], m[100]]),
        "AP_small": _mean(precision[:, :, :, a["small"], m[100]]),
        "AP_medium": _mean(precision[:, :, :, a["medium"], m[100]]),
        "AP_large": _mean(precision[:, :, :, a["large"], m[100]]),
        "AR1": _mean(recall[:, :, a["all"], m[1]]),
        "AR10": _mean(recall[:, :, a["all"], m[10]]),
        "AR100": _mean(recall[:, :, a["all"], m[100]]),
        "AR_small": _mean(recall[:, :, a["small"], m[100]]),
        "AR_medium": _mean(recall[:, :, a["medium"], m[100]]),
        "AR_large": _mean(recall[:, :, a["large"], m[100]]),
    }
