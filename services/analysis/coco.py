"""COCO-style evaluation of 2-D detections, instance masks and keypoints: AP over IoU (or object
keypoint similarity) .50:.95, AP50, AP75, AR at 1/10/100 detections (20 for keypoints), per area
range, per class and overall, with crowd regions.

The definitions are COCO's own (the reference implementation's ``computeIoU``, ``computeOks``,
``evaluateImg``, ``accumulate`` and ``summarize``): per image and class, detections are taken by
descending score (ties in input order), each is matched greedily to the unmatched ground truth with
the highest similarity at or above the threshold, preferring regular ground truth to ignored ones
(crowd, keypoints without a labeled point, or outside the area range); a crowd region may take any
number of detections, with IoU measured against the detection's area; unmatched detections outside
the area range are ignored. Precision is made monotone and sampled at 101 recall points. Boxes are
taken as given, as the reference takes them: one overhanging its image is neither clipped nor
refused, and its area is its width times its height. Masks are compared on their COCO run lengths
(:mod:`shoal.common.masks`) without being drawn.

Score ties are broken as in the reference: across images by the order of ``images`` (the reference's
sorted integer image ids), within an image by input order (the reference's results-file order).
Callers give objects in a stable order (Shoal: frame, then object id; see ``shoal.analysis.detection``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numba
import numpy as np

from shoal.common.similarity import crowd_of, labeled_points, pairs

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, 101)
MAX_DETECTIONS = (1, 10, 100)
AREA_RANGES = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}


@dataclass(frozen=True)
class Params:
    """What is compared and how, as COCOeval's ``iouType``, ``areaRng`` and ``maxDets``."""

    #: "bbox" (box IoU), "segm" (mask IoU) or "keypoints" (object keypoint similarity)
    iou_type: str
    area_ranges: dict[str, tuple[float, float]]
    max_detections: tuple[int, ...]


BBOX = Params("bbox", AREA_RANGES, MAX_DETECTIONS)
SEGM = Params("segm", AREA_RANGES, MAX_DETECTIONS)
KEYPOINTS = Params("keypoints", {"all": (0.0, 1e10), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}, (20,))
PARAMS = {p.iou_type: p for p in (BBOX, SEGM, KEYPOINTS)}


@dataclass
class Boxes:
    """Objects as parallel arrays; ``image`` and ``category`` are integer codes.

    Besides its box, an object may carry a mask (``masks``: COCO run lengths of every object
    concatenated, object ``i``'s at ``mask_offsets[i]:mask_offsets[i + 1]``) and keypoints
    (``keypoints``: rows of x, y, visibility, object ``i``'s at ``keypoint_offsets[i]:...[i + 1]``);
    evaluating masks or keypoints needs them. ``area`` is what the area ranges judge: a box's
    width times height unless given (COCO gives a mask's pixel count for labels)."""

    image: np.ndarray
    category: np.ndarray
    #: (N, 4) x, y, width, height
    box: np.ndarray
    score: np.ndarray | None = None
    crowd: np.ndarray | None = None
    area: np.ndarray | None = None
    masks: np.ndarray | None = None
    mask_offsets: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    keypoint_offsets: np.ndarray | None = None

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
    params: Params = BBOX


def group_bounds(g_key: np.ndarray, d_key: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The groups (keys) among the sorted group keys of labels and of predictions, and where each
    group's rows start and end in each: (gt_start, gt_end, dt_start, dt_end), as :func:`match_groups`
    and the similarity kernels take them."""
    keys = np.union1d(g_key, d_key)
    return keys, (
        np.searchsorted(g_key, keys, side="left"),
        np.searchsorted(g_key, keys, side="right"),
        np.searchsorted(d_key, keys, side="left"),
        np.searchsorted(d_key, keys, side="right"),
    )


@numba.njit(cache=True, nogil=True)
def match_groups(
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    dt_start: np.ndarray,
    dt_end: np.ndarray,
    pair_start: np.ndarray,
    similarity: np.ndarray,
    gt_area: np.ndarray,
    gt_crowd: np.ndarray,
    gt_ignore: np.ndarray,
    dt_area: np.ndarray,
    areas: np.ndarray,
    thresholds: np.ndarray,
    matched: np.ndarray,
    dt_ignored: np.ndarray,
    gt_ignored: np.ndarray,
) -> None:
    """COCO's evaluateImg for every (class, image) group and area range at once. Detections of a
    group are already in score order and cut at the largest max detections; ground truth in input
    order; ``similarity`` holds each group's (detection, ground truth) matrix row-major from
    ``pair_start``. A ground truth in ``gt_ignore`` (crowd, or keypoints without a labeled point)
    or outside the area range is ignored; a crowd one may take any number of detections. Writes
    matched and dt_ignored (A, T, D) and gt_ignored (A, G)."""
    n_groups = gt_start.shape[0]
    for a in range(areas.shape[0]):
        lo, hi = areas[a, 0], areas[a, 1]
        for grp in range(n_groups):
            g0, g1, d0, d1 = gt_start[grp], gt_end[grp], dt_start[grp], dt_end[grp]
            ng, nd = g1 - g0, d1 - d0
            # ground truth order: regular first, then ignored (stable)
            order = np.empty(ng, dtype=np.int64)
            ign = np.empty(ng, dtype=np.bool_)
            k = 0
            for flag in range(2):
                for j in range(ng):
                    gi = g0 + j
                    is_ign = gt_ignore[gi] or gt_area[gi] < lo or gt_area[gi] > hi
                    if is_ign == (flag == 1):
                        order[k] = gi
                        ign[k] = is_ign
                        k += 1
            for j in range(ng):
                gt_ignored[a, order[j]] = ign[j]
            if nd == 0:
                continue
            base = pair_start[grp]
            for t in range(thresholds.shape[0]):
                taken = np.zeros(ng, dtype=np.bool_)
                for i in range(nd):
                    di = d0 + i
                    best = min(thresholds[t], 1 - 1e-10)
                    m = -1
                    for j in range(ng):
                        if taken[j] and not gt_crowd[order[j]]:
                            continue
                        if m > -1 and not ign[m] and ign[j]:
                            break
                        s = similarity[base + i * ng + (order[j] - g0)]
                        if s < best:
                            continue
                        best = s
                        m = j
                    if m == -1:
                        if dt_area[di] < lo or dt_area[di] > hi:
                            dt_ignored[a, t, di] = True
                        continue
                    matched[a, t, di] = True
                    dt_ignored[a, t, di] = ign[m]
                    taken[m] = True


def positions(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Position of each value in ``order`` (integer codes), -1 where absent."""
    values = np.asarray(values, dtype=np.int64)
    order = np.asarray(order, dtype=np.int64)
    if len(order) == 0 or len(values) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    lo = min(int(order.min()), int(values.min()))
    hi = max(int(order.max()), int(values.max()))
    lut = np.full(hi - lo + 1, -1, dtype=np.int64)
    lut[order - lo] = np.arange(len(order))
    return lut[values - lo]


def evaluate(
    gt: Boxes,
    dt: Boxes,
    images: np.ndarray,
    categories: list[int],
    params: Params = BBOX,
    sigmas: dict[int, np.ndarray] | None = None,
) -> CocoResult:
    """COCO evaluation of ``dt`` against ``gt`` over ``images`` (integer codes, in evaluation
    order) and ``categories`` (in order), comparing boxes, masks or keypoints as ``params`` says
    (keypoints with each class's ``sigmas``, one per keypoint).

    Only the categories with a labeled or predicted object get precision and recall arrays (a
    (T, R, K, A, M) array is about 100 KB per category, 1 GB for a 10,000-class ontology); the
    others have neither, as in the reference, where their -1 entries are left out of every mean,
    and their per-class results are those of a category without objects."""
    return evaluate_chunks([(gt, dt, images)], categories, params, sigmas)


@dataclass
class _Matched:
    """What accumulation needs of a chunk's objects: per detection its class (position in the
    ontology), score, rank in its (class, image) group and COCO's matched / ignored flags (A, T, D);
    per labeled object its class and ignored flags (A, G)."""

    d_class: np.ndarray
    d_score: np.ndarray
    rank: np.ndarray
    matched: np.ndarray
    dt_ignored: np.ndarray
    g_class: np.ndarray
    gt_ignored: np.ndarray


def evaluate_chunks(
    chunks: Iterable[tuple[Boxes, Boxes, np.ndarray]],
    categories: list[int],
    params: Params = BBOX,
    sigmas: dict[int, np.ndarray] | None = None,
) -> CocoResult:
    """:func:`evaluate` over chunks of images (at least one), each ``(gt, dt, images)`` with the
    objects of its ``images``; the chunks' images follow each other in evaluation order. Objects are matched
    chunk by chunk (matching never crosses an image) and only their flags are kept, so the
    objects of one chunk are held at a time."""
    everything = list(categories)
    a_count = len(params.area_ranges)
    t_count, r_count, m_count = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(params.max_detections)
    parts = [_match_chunk(gt, dt, images, everything, params, sigmas) for gt, dt, images in chunks]
    if not parts:
        raise ValueError("give at least one chunk (its images may be none)")
    # detections of a class in image order, each image's in score order: the chunks' order, by class (stable)
    d_class = np.concatenate([x.d_class for x in parts])
    d_order = np.argsort(d_class, kind="stable")
    d_class = d_class[d_order]
    d_score = np.concatenate([x.d_score for x in parts])[d_order]
    rank = np.concatenate([x.rank for x in parts])[d_order]
    matched = np.concatenate([x.matched for x in parts], axis=2)[:, :, d_order]
    dt_ignored = np.concatenate([x.dt_ignored for x in parts], axis=2)[:, :, d_order]
    g_class = np.concatenate([x.g_class for x in parts])
    g_order = np.argsort(g_class, kind="stable")
    g_class = g_class[g_order]
    gt_ignored = np.concatenate([x.gt_ignored for x in parts], axis=1)[:, g_order]
    used = np.union1d(g_class, d_class).astype(np.int64)
    categories = [everything[int(i)] for i in used]
    k_count = len(categories)
    precision = -np.ones((t_count, r_count, k_count, a_count, m_count))
    recall = -np.ones((t_count, k_count, a_count, m_count))
    for ki, cls in enumerate(used.tolist()):
        gs, ge = np.searchsorted(g_class, [cls, cls + 1])
        ds, de = np.searchsorted(d_class, [cls, cls + 1])
        for ai in range(a_count):
            npig = int(np.count_nonzero(~gt_ignored[ai, gs:ge]))
            if npig == 0:
                continue
            for mi, m in enumerate(params.max_detections):
                sel = np.flatnonzero(rank[ds:de] < m) + ds
                # the reference's order: images in order, each in score order, then a stable sort by score
                order = sel[np.argsort(-d_score[sel], kind="mergesort")]
                hit = matched[ai][:, order]
                ign = dt_ignored[ai][:, order]
                tps = np.cumsum(hit & ~ign, axis=1, dtype=np.float64)
                fps = np.cumsum(~hit & ~ign, axis=1, dtype=np.float64)
                nd = len(order)
                for ti in range(t_count):
                    tp, fp = tps[ti], fps[ti]
                    rc = tp / npig
                    pr = tp / (fp + tp + np.spacing(1))
                    recall[ti, ki, ai, mi] = rc[-1] if nd else 0
                    if not nd:
                        precision[ti, :, ki, ai, mi] = 0.0
                        continue
                    pr = np.maximum.accumulate(pr[::-1])[::-1]  # monotone from the right
                    inds = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
                    q = np.zeros(r_count)
                    valid = inds < nd
                    # the reference stops at the first recall point it cannot reach
                    stop = int(np.argmin(valid)) if not valid.all() else r_count
                    q[:stop] = pr[inds[:stop]]
                    precision[ti, :, ki, ai, mi] = q
    result = CocoResult(list(categories), precision, recall, params=params)
    result.stats = summarize(precision, recall, params)
    for ki, cat in enumerate(categories):
        result.per_class[cat] = summarize(precision[:, :, ki : ki + 1], recall[:, ki : ki + 1], params)
    if len(categories) < len(everything):
        empty = summarize(
            -np.ones((t_count, r_count, 1, a_count, m_count)), -np.ones((t_count, 1, a_count, m_count)), params
        )
        for cat in everything:
            result.per_class.setdefault(cat, dict(empty))
    return result


def _match_chunk(
    gt: Boxes,
    dt: Boxes,
    images: np.ndarray,
    categories: list[int],
    params: Params,
    sigmas: dict[int, np.ndarray] | None,
) -> _Matched:
    """COCO's evaluateImg for the objects of ``images``: groups by (class, image), detections in
    score order cut at the largest max detections, similarities, greedy matching per area range."""
    assert dt.score is not None and gt.area is not None and dt.area is not None
    max_detections = params.max_detections
    areas = np.array(list(params.area_ranges.values()), dtype=np.float64)
    n_images = max(len(images), 1)
    ontology = np.asarray(categories)
    # ground truth by (class, image), input order within; detections by (class, image), score order
    g_cat, g_img = positions(gt.category, ontology), positions(gt.image, images)
    g_keep = np.flatnonzero((g_cat >= 0) & (g_img >= 0))
    g_key = g_cat[g_keep] * n_images + g_img[g_keep]
    g_sorted = g_keep[np.argsort(g_key, kind="stable")]
    g_key = np.sort(g_key, kind="stable")
    d_cat, d_img = positions(dt.category, ontology), positions(dt.image, images)
    d_keep = np.flatnonzero((d_cat >= 0) & (d_img >= 0))
    d_key = d_cat[d_keep] * n_images + d_img[d_keep]
    d_order = np.lexsort((np.arange(len(d_keep)), -dt.score[d_keep], d_key))
    d_sorted, d_key = d_keep[d_order], d_key[d_order]
    # rank of each detection in its group; only the first max detections count
    starts = np.searchsorted(d_key, d_key, side="left")
    rank = np.arange(len(d_key)) - starts
    top = rank < max_detections[-1]
    d_sorted, d_key, rank = d_sorted[top], d_key[top], rank[top]

    _, groups = group_bounds(g_key, d_key)
    similarity, pair_start = pairs(params.iou_type, groups, gt, g_sorted, dt, d_sorted, sigmas)
    g_crowd = np.ascontiguousarray(crowd_of(gt)[g_sorted])
    g_ignore = g_crowd.copy()
    if params.iou_type == "keypoints":
        g_ignore |= labeled_points(gt, g_sorted) == 0  # COCO: a person without a labeled point is ignored
    a_count, t_count = len(areas), len(IOU_THRESHOLDS)
    matched = np.zeros((a_count, t_count, len(d_sorted)), dtype=np.bool_)
    dt_ignored = np.zeros((a_count, t_count, len(d_sorted)), dtype=np.bool_)
    gt_ignored = np.zeros((a_count, len(g_sorted)), dtype=np.bool_)
    g_area = np.ascontiguousarray(gt.area[g_sorted], dtype=np.float64)
    d_area = np.ascontiguousarray(dt.area[d_sorted], dtype=np.float64)
    match_groups(
        *groups, pair_start, similarity, g_area, g_crowd, g_ignore, d_area,
        areas, IOU_THRESHOLDS, matched, dt_ignored, gt_ignored,
    )  # fmt: skip
    return _Matched(d_key // n_images, dt.score[d_sorted], rank, matched, dt_ignored, g_key // n_images, gt_ignored)


def _mean(values: np.ndarray) -> float:
    v = values[values > -1]
    return float(np.mean(v)) if v.size else -1.0


def summarize(precision: np.ndarray, recall: np.ndarray, params: Params = BBOX) -> dict[str, float]:
    """COCO's summary numbers (-1 where nothing can be measured): its twelve for boxes and masks,
    its ten for keypoints (at 20 detections, without small objects), and AR at the most detections
    counted, at IoU .50 and .75 (``AR``, ``AR50``, ``AR75``) for every kind."""
    a = {name: i for i, name in enumerate(params.area_ranges)}
    m = {n: i for i, n in enumerate(params.max_detections)}
    top = m[params.max_detections[-1]]
    t50 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5)))
    t75 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.75)))
    out = {
        "AP": _mean(precision[:, :, :, a["all"], top]),
        "AP50": _mean(precision[t50, :, :, a["all"], top]),
        "AP75": _mean(precision[t75, :, :, a["all"], top]),
        "AR": _mean(recall[:, :, a["all"], top]),
        "AR50": _mean(recall[t50, :, a["all"], top]),
        "AR75": _mean(recall[t75, :, a["all"], top]),
    }
    if params.iou_type == "keypoints":
        return out | {
            "AP_medium": _mean(precision[:, :, :, a["medium"], top]),
            "AP_large": _mean(precision[:, :, :, a["large"], top]),
            "AR_medium": _mean(recall[:, :, a["medium"], top]),
            "AR_large": _mean(recall[:, :, a["large"], top]),
        }
    return out | {
        "AP_small": _mean(precision[:, :, :, a["small"], top]),
        "AP_medium": _mean(precision[:, :, :, a["medium"], top]),
        "AP_large": _mean(precision[:, :, :, a["large"], top]),
        "AR1": _mean(recall[:, :, a["all"], m[1]]),
        "AR10": _mean(recall[:, :, a["all"], m[10]]),
        "AR100": _mean(recall[:, :, a["all"], top]),
        "AR_small": _mean(recall[:, :, a["small"], top]),
        "AR_medium": _mean(recall[:, :, a["medium"], top]),
        "AR_large": _mean(recall[:, :, a["large"], top]),
    }
