"""Detection metrics of 3-D cuboids: nuScenes' (AP at centre distances, the true-positive errors ATE, ASE, AOE,
AVE, AAE, and NDS), and an AP over BEV or 3-D IoU that follows COCO's rules as :mod:`shoal.analysis.coco` does.

nuScenes' metrics are the devkit's (``nuscenes.eval.detection``: ``algo.accumulate``, ``calc_ap``, ``calc_tp``
and ``DetectionMetrics``), on the boxes given. Per class and distance threshold (0.5, 1, 2, 4 m), predictions
are taken by descending score over the whole set, each matched to the nearest unmatched label of its class
and frame in the ground plane when nearer than the threshold. Ties are broken as the devkit breaks them: of
two predictions with one score the later one (in frame order, then input order) goes first; of two labels at
one distance the earlier one is taken. Precision is interpolated at 101 recall points (0 past the highest
recall); AP is its mean above min_recall (0.1), less min_precision (0.1), scaled to [0, 1]. At the 2 m
threshold, each match's errors (centre distance; 1 - IoU of the two boxes aligned; yaw difference; velocity
difference; 1 - attribute accuracy) are averaged cumulatively in score order and interpolated to the recall
points, and the class's error is their mean between min_recall and the highest recall reached (1 where that
is below min_recall). A class whose front and back look alike (nuScenes: barrier) has its yaw measured up to
half a turn; some errors are not measured for some classes (nuScenes: traffic_cone has no AOE, AVE, AAE;
barrier no AVE, AAE) and are left out of the means. A label without an attribute leaves the match out of AAE;
a label or prediction without a velocity (NaN) leaves it out of AVE; a class where every match is left out
gets 1. mAP is the mean over classes of the mean over thresholds; each mTP error the mean over classes that
measure it; NDS = (5 mAP + sum of max(0, 1 - mTP)) / 10. A class of the ontology without labels gets AP 0 and
errors 1, as in the devkit. The devkit's loading filters (labels beyond each class's range from the ego
vehicle or without lidar and radar points, bicycles in racks, at most 500 predictions a frame) are the
caller's: boxes are evaluated as given.

Both evaluations go frame by frame and class by class: objects are matched a chunk of frames at a time
(:func:`evaluate_chunks`, :func:`iou_ap_chunks`) and only each prediction's score, match flags and (for
nuScenes) its five errors are kept for the accumulation, about 60 bytes a prediction.

Vocabulary: N objects, K classes, T thresholds, R = 101 recall points. Frames and classes are integer codes;
``frames`` and ``classes`` give their order (the order ties are broken by).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numba
import numpy as np

from shoal.analysis.coco import group_bounds, match_groups, positions
from shoal.common.cuboids import KINDS, angle_difference, center_distance, check_cuboids, cuboid_pairs, scale_iou

__all__ = [
    "BEV",
    "DETECTION_NAMES",
    "NUSCENES",
    "RECALL_POINTS",
    "SHORT_NAMES",
    "TP_METRICS",
    "Cuboids",
    "IouParams",
    "IouResult",
    "NuScenesResult",
    "Params",
    "evaluate",
    "evaluate_chunks",
    "iou_ap",
    "iou_ap_chunks",
    "nuscenes_params",
]

#: nuScenes' ten detection classes, in the devkit's order
DETECTION_NAMES = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle",
                   "traffic_cone", "barrier")  # fmt: skip
#: the true-positive errors, in the devkit's order, and their short names
TP_METRICS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
SHORT_NAMES = {"trans_err": "ATE", "scale_err": "ASE", "orient_err": "AOE", "vel_err": "AVE", "attr_err": "AAE"}
#: the recall points precision is read at (nuScenes and COCO alike)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(kw_only=True)
class Cuboids:
    """Labeled or predicted cuboids as parallel arrays.

    Attributes
    ----------
    frame : (N,) int codes of the frames (nuScenes' samples)
    category : (N,) int codes of the classes
    box : (N, 7) rows of :data:`shoal.common.cuboids.COLUMNS` (x, y, z, w, l, h, yaw)
    score : (N,) predictions' confidence, higher is surer; None for labels
    velocity : (N, 2) vx, vy in m/s, NaN where unknown; None: unknown for every object
    attribute : (N,) int codes of each object's attribute (nuScenes: vehicle.moving, ...), -1 for none;
        None: none for every object
    """

    frame: np.ndarray
    category: np.ndarray
    box: np.ndarray
    score: np.ndarray | None = None
    velocity: np.ndarray | None = None
    attribute: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.frame = np.asarray(self.frame, dtype=np.int64).ravel()
        self.category = np.asarray(self.category, dtype=np.int64).ravel()
        self.box = check_cuboids(self.box)
        n = len(self.frame)
        if len(self.category) != n or len(self.box) != n:
            raise ValueError(f"frame, category and box must have one row an object: {n}, {len(self.category)}, "
                             f"{len(self.box)}")  # fmt: skip
        if self.score is not None:
            self.score = np.asarray(self.score, dtype=np.float64).ravel()
            if len(self.score) != n or not np.isfinite(self.score).all():
                raise ValueError(f"score must hold one finite number an object ({n})")
        if self.velocity is None:
            self.velocity = np.full((n, 2), np.nan)
        self.velocity = np.ascontiguousarray(np.asarray(self.velocity, dtype=np.float64).reshape(-1, 2))
        if len(self.velocity) != n:
            raise ValueError(f"velocity must be (N, 2) with N = {n} (NaN where unknown)")
        if self.attribute is None:
            self.attribute = np.full(n, -1, dtype=np.int64)
        self.attribute = np.asarray(self.attribute, dtype=np.int64).ravel()
        if len(self.attribute) != n:
            raise ValueError(f"attribute must hold one code an object ({n}; -1 for none)")

    def __len__(self) -> int:
        return len(self.frame)


@dataclass(frozen=True, kw_only=True)
class Params:
    """How nuScenes' metrics are computed (the devkit's ``DetectionConfig``, less its loading filters), with
    its class-specific rules keyed by class code. :func:`nuscenes_params` sets them from class names."""

    #: matching thresholds on the centre distance, metres
    dist_ths: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    #: the threshold the true-positive errors are measured at
    dist_th_tp: float = 2.0
    min_recall: float = 0.1
    min_precision: float = 0.1
    #: mAP's weight in NDS (each of the five true-positive scores weighs 1)
    mean_ap_weight: float = 5.0
    #: classes whose heading is known up to half a turn (nuScenes: barrier)
    half_turn: frozenset[int] = frozenset()
    #: per class, the true-positive errors (of :data:`TP_METRICS`) not measured
    unmeasured: Mapping[int, frozenset[str]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.dist_th_tp not in self.dist_ths:
            raise ValueError(f"dist_th_tp {self.dist_th_tp} must be one of dist_ths {self.dist_ths}")
        if not 0 <= self.min_precision < 1 or not 0 <= self.min_recall <= 1:
            raise ValueError("min_precision must be in [0, 1) and min_recall in [0, 1]")
        for cls, names in self.unmeasured.items():
            unknown = set(names) - set(TP_METRICS)
            if unknown:
                raise ValueError(f"class {cls}: unknown errors {sorted(unknown)}; use names of {TP_METRICS}")


#: the devkit's rules when the class codes are positions in :data:`DETECTION_NAMES`
NUSCENES = Params(
    half_turn=frozenset({DETECTION_NAMES.index("barrier")}),
    unmeasured={
        DETECTION_NAMES.index("traffic_cone"): frozenset({"attr_err", "vel_err", "orient_err"}),
        DETECTION_NAMES.index("barrier"): frozenset({"attr_err", "vel_err"}),
    },
)


def nuscenes_params(names: Mapping[int, str], **settings: float | tuple[float, ...]) -> Params:
    """:class:`Params` with the devkit's class rules for classes named as nuScenes names them: ``barrier``'s
    heading up to half a turn and no AVE or AAE, ``traffic_cone`` without AOE, AVE or AAE. ``names`` maps class
    codes to names; ``settings`` overrides the thresholds (``dist_ths``, ``min_recall``, ...)."""
    barrier = {c for c, n in names.items() if n == "barrier"}
    cone = {c for c, n in names.items() if n == "traffic_cone"}
    unmeasured = {c: frozenset({"attr_err", "vel_err"}) for c in barrier}
    unmeasured |= {c: frozenset({"attr_err", "vel_err", "orient_err"}) for c in cone}
    return Params(half_turn=frozenset(barrier), unmeasured=unmeasured, **settings)  # type: ignore[arg-type]


@dataclass
class NuScenesResult:
    """nuScenes' metrics of a set.

    Attributes
    ----------
    classes : the K class codes, in order
    precision : (K, T, R) precision at the recall points, per class and distance threshold
    confidence : (K, T, R) the score at which each recall point is reached (0 beyond the highest recall)
    tp_curves : (K, 5, R) the true-positive errors (:data:`TP_METRICS`) along the recall points, at dist_th_tp
    ap : (K, T) AP per class and distance threshold
    tp_errors : (K, 5) true-positive errors per class; NaN where the class does not measure it
    stats : mAP, mATE, mASE, mAOE, mAVE, mAAE and NDS
    per_class : per class code, its AP (mean over thresholds), AP@<threshold> and ATE ... AAE
    """

    classes: list[int]
    params: Params
    precision: np.ndarray
    confidence: np.ndarray
    tp_curves: np.ndarray
    ap: np.ndarray
    tp_errors: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)
    per_class: dict[int, dict[str, float]] = field(default_factory=dict)


def evaluate(*, gt: Cuboids, dt: Cuboids, frames: np.ndarray, classes: Sequence[int],
             params: Params = NUSCENES) -> NuScenesResult:  # fmt: skip
    """nuScenes' detection metrics of the predictions ``dt`` against the labels ``gt`` over ``frames`` (codes,
    in order) and ``classes`` (codes, in order; every class counts in the means, with or without labels).
    Objects of other frames or classes are left out."""
    return evaluate_chunks([(gt, dt, frames)], classes, params)


@dataclass
class _Matched:
    """What the accumulation needs of a chunk's predictions, in frame order then input order: class (position
    in the ontology), score, per threshold whether it matched (T, D), and at dist_th_tp its errors (5, D); and
    the class of each label counted."""

    d_class: np.ndarray
    d_score: np.ndarray
    matched: np.ndarray
    errors: np.ndarray
    g_class: np.ndarray


def evaluate_chunks(
    chunks: Iterable[tuple[Cuboids, Cuboids, np.ndarray]], classes: Sequence[int], params: Params = NUSCENES
) -> NuScenesResult:
    """:func:`evaluate` over chunks of frames (at least one), each ``(gt, dt, frames)`` with the objects of its
    ``frames``; the chunks' frames follow each other in order. Matching never crosses a frame, so each chunk
    is matched alone and only its predictions' flags and errors are kept."""
    ontology = [int(c) for c in classes]
    parts = [_match_distance_chunk(gt, dt, f, ontology, params) for gt, dt, f in chunks]
    if not parts:
        raise ValueError("give at least one chunk (its frames may be none)")
    k_count, t_count, r_count = len(ontology), len(params.dist_ths), len(RECALL_POINTS)
    d_class = np.concatenate([p.d_class for p in parts])
    order = np.argsort(d_class, kind="stable")  # each class's predictions in frame order, then input order
    d_class = d_class[order]
    d_score = np.concatenate([p.d_score for p in parts])[order]
    matched = np.concatenate([p.matched for p in parts], axis=1)[:, order]
    errors = np.concatenate([p.errors for p in parts], axis=1)[:, order]
    npos = np.bincount(np.concatenate([p.g_class for p in parts]), minlength=k_count)
    tp_index = params.dist_ths.index(params.dist_th_tp)
    first = round(100 * params.min_recall) + 1

    precision = np.zeros((k_count, t_count, r_count))
    confidence = np.zeros((k_count, t_count, r_count))
    tp_curves = np.ones((k_count, len(TP_METRICS), r_count))
    ap = np.zeros((k_count, t_count))
    tp_errors = np.ones((k_count, len(TP_METRICS)))
    for k in range(k_count):
        ds, de = np.searchsorted(d_class, [k, k + 1])
        score = d_score[ds:de]
        # the devkit's order: descending score, the later prediction first among equal scores
        by_score = np.lexsort((-np.arange(de - ds), -score))
        conf = score[by_score]
        for t in range(t_count):
            hit = matched[t, ds:de][by_score]
            if npos[k] == 0 or not hit.any():
                continue  # the devkit's "no predictions": precision and confidence 0, errors 1
            tp = np.cumsum(hit).astype(float)
            fp = np.cumsum(~hit).astype(float)
            rec = tp / float(npos[k])
            precision[k, t] = np.interp(RECALL_POINTS, rec, tp / (fp + tp), right=0)
            confidence[k, t] = np.interp(RECALL_POINTS, rec, conf, right=0)
            if t != tp_index:
                continue
            hit_conf = conf[hit][::-1]
            for m in range(len(TP_METRICS)):
                run = _cummean(errors[m, ds:de][by_score][hit])
                tp_curves[k, m] = np.interp(confidence[k, t][::-1], hit_conf, run[::-1])[::-1]
        # calc_ap: precision above min_recall (the bin at min_recall excluded), less min_precision, scaled
        clipped = np.maximum(precision[k][:, first:] - params.min_precision, 0.0)
        ap[k] = clipped.mean(axis=1) / (1.0 - params.min_precision)
        # calc_tp: mean error from min_recall to the highest recall reached (the last non-zero confidence)
        reached = np.flatnonzero(confidence[k, tp_index])
        last = int(reached[-1]) if len(reached) else 0
        skip = params.unmeasured.get(ontology[k], frozenset())
        for m, name in enumerate(TP_METRICS):
            if name in skip:
                tp_errors[k, m] = np.nan
            elif last >= first:
                tp_errors[k, m] = float(np.mean(tp_curves[k, m, first : last + 1]))
    result = NuScenesResult(ontology, params, precision, confidence, tp_curves, ap, tp_errors)
    result.stats = _summary(ap, tp_errors, params)
    for k, cls in enumerate(ontology):
        row = {"AP": float(np.mean(ap[k]))} | {f"AP@{th:g}": float(ap[k, t]) for t, th in enumerate(params.dist_ths)}
        result.per_class[cls] = row | {SHORT_NAMES[n]: float(tp_errors[k, m]) for m, n in enumerate(TP_METRICS)}
    return result


def _cummean(x: np.ndarray) -> np.ndarray:
    """The devkit's ``cummean``: the running mean skipping NaN (0 before the first number); all ones when every
    value is NaN."""
    if np.isnan(x).all():
        return np.ones(len(x))
    total = np.nancumsum(x.astype(float))
    count = np.cumsum(~np.isnan(x))
    return np.divide(total, count, out=np.zeros_like(total), where=count != 0)


def _summary(ap: np.ndarray, tp_errors: np.ndarray, params: Params) -> dict[str, float]:
    """The devkit's ``DetectionMetrics``: mAP (mean over classes of the mean over thresholds), each mTP error
    (mean over the classes that measure it), NDS."""
    mean_ap = float(np.mean([np.mean(row) for row in ap])) if len(ap) else float("nan")
    out = {"mAP": mean_ap}
    scores = []
    for m, name in enumerate(TP_METRICS):
        column = tp_errors[:, m]
        err = float(np.mean(column[~np.isnan(column)])) if (~np.isnan(column)).any() else float("nan")
        out["m" + SHORT_NAMES[name]] = err
        scores.append(max(0.0, 1.0 - err))  # NaN gives 0, as in the devkit
    total = float(params.mean_ap_weight * mean_ap + np.sum(scores))
    out["NDS"] = total / float(params.mean_ap_weight + len(scores))
    return out


def _groups(
    gt: Cuboids, dt: Cuboids, frames: np.ndarray, classes: list[int], later_first: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Objects of ``frames`` and ``classes`` sorted by group (class, frame): labels in input order, predictions
    by descending score, ties in input order or (``later_first``) the reverse. Returns the rows of the labels
    and predictions in group order and their group keys (:func:`shoal.analysis.coco.group_bounds` bounds
    the groups)."""
    if dt.score is None:
        raise ValueError("predictions need scores")
    frames = np.asarray(frames, dtype=np.int64)
    if len(np.unique(frames)) != len(frames) or len(set(classes)) != len(classes):
        raise ValueError("frames and classes must each name a frame or class once")
    n_frames = max(len(frames), 1)
    ontology = np.asarray(classes, dtype=np.int64)
    g_cat, g_frm = positions(gt.category, ontology), positions(gt.frame, frames)
    g_keep = np.flatnonzero((g_cat >= 0) & (g_frm >= 0))
    g_key = g_cat[g_keep] * n_frames + g_frm[g_keep]
    g_order = np.argsort(g_key, kind="stable")
    g_rows, g_key = g_keep[g_order], g_key[g_order]
    d_cat, d_frm = positions(dt.category, ontology), positions(dt.frame, frames)
    d_keep = np.flatnonzero((d_cat >= 0) & (d_frm >= 0))
    d_key = d_cat[d_keep] * n_frames + d_frm[d_keep]
    index = np.arange(len(d_keep))
    d_order = np.lexsort((-index if later_first else index, -dt.score[d_keep], d_key))
    d_rows, d_key = d_keep[d_order], d_key[d_order]
    return g_rows, d_rows, g_key, d_key


def _match_distance_chunk(gt: Cuboids, dt: Cuboids, frames: np.ndarray, classes: list[int], params: Params) -> _Matched:
    g_rows, d_rows, g_key, d_key = _groups(gt, dt, frames, classes, later_first=True)
    keys, groups = group_bounds(g_key, d_key)
    n_frames = max(len(frames), 1)
    d_class = d_key // n_frames
    half = np.array([c in params.half_turn for c in classes], dtype=np.bool_)
    period = np.where(half[keys // n_frames], np.pi, 2 * np.pi) if len(classes) else np.zeros(0)
    thresholds = np.asarray(params.dist_ths, dtype=np.float64)
    matched = np.zeros((len(thresholds), len(d_rows)), dtype=np.bool_)
    errors = np.ones((len(TP_METRICS), len(d_rows)))
    assert gt.velocity is not None and gt.attribute is not None and dt.velocity is not None
    assert dt.attribute is not None and dt.score is not None
    _match_by_distance(
        *groups, np.ascontiguousarray(gt.box[g_rows]), np.ascontiguousarray(gt.velocity[g_rows]),
        np.ascontiguousarray(gt.attribute[g_rows]), np.ascontiguousarray(dt.box[d_rows]),
        np.ascontiguousarray(dt.velocity[d_rows]), np.ascontiguousarray(dt.attribute[d_rows]), period, thresholds,
        params.dist_ths.index(params.dist_th_tp), matched, errors,
    )  # fmt: skip
    # back to frame order, then input order: the order the devkit breaks score ties by, across chunks
    back = np.lexsort((d_rows, positions(dt.frame[d_rows], np.asarray(frames, dtype=np.int64))))
    return _Matched(d_class[back], dt.score[d_rows][back], matched[:, back], errors[:, back], g_key // n_frames)


@numba.njit(cache=True, nogil=True)
def _match_by_distance(  # type: ignore[no-untyped-def]
    gt_start, gt_end, dt_start, dt_end, g_box, g_vel, g_attr, d_box, d_vel, d_attr, period, thresholds, tp_index,
    matched, errors,
):  # fmt: skip
    """The devkit's matching for every (class, frame) group and threshold: each prediction (in score order) takes
    the nearest label not yet taken (the first of equals), a match when nearer than the threshold. Writes
    matched (T, D) and, at ``tp_index``, each match's errors (5, D): centre distance, 1 - aligned IoU, yaw
    difference (up to the group's ``period``), velocity difference (NaN when unknown), 1 - attribute accuracy
    (NaN when the label has none)."""
    for grp in range(gt_start.shape[0]):
        g0, ng, d0, nd = gt_start[grp], gt_end[grp] - gt_start[grp], dt_start[grp], dt_end[grp] - dt_start[grp]
        if ng == 0 or nd == 0:
            continue
        dist = np.empty((nd, ng))
        for i in range(nd):
            for j in range(ng):
                dist[i, j] = center_distance(g_box[g0 + j], d_box[d0 + i])
        taken = np.empty(ng, dtype=np.bool_)
        for t in range(thresholds.shape[0]):
            taken[:] = False
            for i in range(nd):
                best = np.inf
                m = -1
                for j in range(ng):
                    if not taken[j] and dist[i, j] < best:
                        best = dist[i, j]
                        m = j
                if m < 0 or not best < thresholds[t]:
                    continue
                taken[m] = True
                di, gj = d0 + i, g0 + m
                matched[t, di] = True
                if t != tp_index:
                    continue
                errors[0, di] = best
                errors[1, di] = 1.0 - scale_iou(g_box[gj], d_box[di])
                errors[2, di] = angle_difference(g_box[gj, 6], d_box[di, 6], period[grp])
                vx, vy = d_vel[di, 0] - g_vel[gj, 0], d_vel[di, 1] - g_vel[gj, 1]
                errors[3, di] = math.sqrt(vx * vx + vy * vy)
                if g_attr[gj] < 0:
                    errors[4, di] = np.nan
                else:
                    errors[4, di] = 0.0 if g_attr[gj] == d_attr[di] else 1.0


# --- AP over BEV or 3-D IoU, COCO's rules --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IouParams:
    """An AP over IoU of cuboids: ``kind`` ``bev_iou`` (footprints seen from above) or ``iou_3d``, at
    ``thresholds``, counting the ``max_detections`` surest predictions of a class in a frame."""

    kind: str = "bev_iou"
    thresholds: tuple[float, ...] = tuple(np.round(np.linspace(0.5, 0.95, 10), 2).tolist())
    max_detections: int = 500

    def __post_init__(self) -> None:
        if self.kind not in ("bev_iou", "iou_3d"):
            raise ValueError(f"kind {self.kind!r}: use 'bev_iou' or 'iou_3d'")
        if not self.thresholds or not all(0 < t <= 1 for t in self.thresholds):
            raise ValueError(f"thresholds {self.thresholds} must be in (0, 1]")
        if self.max_detections < 1:
            raise ValueError("max_detections must be at least 1")


#: COCO's thresholds (.50:.05:.95) on BEV IoU, up to 500 predictions of a class in a frame (nuScenes' limit)
BEV = IouParams()


@dataclass
class IouResult:
    """AP over IoU of cuboids.

    Attributes
    ----------
    classes : the K class codes, in order
    precision : (T, R, K) precision at the recall points, -1 for a class without labels
    recall : (T, K) the highest recall, -1 for a class without labels
    stats : AP (mean over thresholds and classes with labels), AR, and AP@<threshold>
    per_class : per class code, its AP, AR and AP@<threshold> (-1 without labels)
    """

    classes: list[int]
    params: IouParams
    precision: np.ndarray
    recall: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)
    per_class: dict[int, dict[str, float]] = field(default_factory=dict)


def iou_ap(*, gt: Cuboids, dt: Cuboids, frames: np.ndarray, classes: Sequence[int],
           params: IouParams = BEV) -> IouResult:  # fmt: skip
    """AP of the predictions ``dt`` against the labels ``gt`` over cuboid IoU, with the rules of Shoal's 2-D COCO
    evaluation (:mod:`shoal.analysis.coco`): per class and frame, predictions by descending score (ties in input
    order, the object id order), each matched to the unmatched label of highest IoU at or above the threshold;
    across frames a stable sort by score; precision made monotone and read at 101 recall points, stopping at
    the first it cannot reach."""
    return iou_ap_chunks([(gt, dt, frames)], classes, params)


def iou_ap_chunks(
    chunks: Iterable[tuple[Cuboids, Cuboids, np.ndarray]], classes: Sequence[int], params: IouParams = BEV
) -> IouResult:
    """:func:`iou_ap` over chunks of frames, as :func:`evaluate_chunks` takes them."""
    ontology = [int(c) for c in classes]
    parts = [_match_iou_chunk(gt, dt, f, ontology, params) for gt, dt, f in chunks]
    if not parts:
        raise ValueError("give at least one chunk (its frames may be none)")
    k_count, t_count, r_count = len(ontology), len(params.thresholds), len(RECALL_POINTS)
    d_class = np.concatenate([p[0] for p in parts])
    order = np.argsort(d_class, kind="stable")  # each class's predictions in frame order, each frame's by score
    d_class = d_class[order]
    d_score = np.concatenate([p[1] for p in parts])[order]
    matched = np.concatenate([p[2] for p in parts], axis=1)[:, order]
    npos = np.bincount(np.concatenate([p[3] for p in parts]), minlength=k_count)
    precision = -np.ones((t_count, r_count, k_count))
    recall = -np.ones((t_count, k_count))
    for k in range(k_count):
        if npos[k] == 0:
            continue
        ds, de = np.searchsorted(d_class, [k, k + 1])
        nd = de - ds
        by_score = np.argsort(-d_score[ds:de], kind="mergesort")
        hit = matched[:, ds:de][:, by_score]
        tps = np.cumsum(hit, axis=1, dtype=np.float64)
        fps = np.cumsum(~hit, axis=1, dtype=np.float64)
        for t in range(t_count):
            if not nd:
                precision[t, :, k] = 0.0
                recall[t, k] = 0.0
                continue
            rc = tps[t] / npos[k]
            pr = tps[t] / (fps[t] + tps[t] + np.spacing(1))
            recall[t, k] = rc[-1]
            pr = np.maximum.accumulate(pr[::-1])[::-1]
            inds = np.searchsorted(rc, RECALL_POINTS, side="left")
            valid = inds < nd
            stop = int(np.argmin(valid)) if not valid.all() else r_count
            q = np.zeros(r_count)
            q[:stop] = pr[inds[:stop]]
            precision[t, :, k] = q
    result = IouResult(ontology, params, precision, recall)
    result.stats = _iou_summary(precision, recall, params)
    for k, cls in enumerate(ontology):
        result.per_class[cls] = _iou_summary(precision[:, :, k : k + 1], recall[:, k : k + 1], params)
    return result


def _mean(values: np.ndarray) -> float:
    v = values[values > -1]
    return float(np.mean(v)) if v.size else -1.0


def _iou_summary(precision: np.ndarray, recall: np.ndarray, params: IouParams) -> dict[str, float]:
    out = {"AP": _mean(precision), "AR": _mean(recall)}
    for t, th in enumerate(params.thresholds):
        out[f"AP@{th:g}"] = _mean(precision[t])
    return out


def _match_iou_chunk(
    gt: Cuboids, dt: Cuboids, frames: np.ndarray, classes: list[int], params: IouParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """COCO's per-frame greedy matching of a chunk (Shoal's COCO kernel on cuboid IoU, one area range, no crowd
    regions): each prediction's class, score and match flags (T, D), in (class, frame, score) order, and each
    label's class."""
    g_rows, d_rows, g_key, d_key = _groups(gt, dt, frames, classes, later_first=False)
    n_frames = max(len(frames), 1)
    starts = np.searchsorted(d_key, d_key, side="left")
    top = (np.arange(len(d_key)) - starts) < params.max_detections
    d_rows, d_key = d_rows[top], d_key[top]
    _, groups = group_bounds(g_key, d_key)
    gt_start, gt_end, dt_start, dt_end = groups
    sizes = (gt_end - gt_start) * (dt_end - dt_start)
    pair_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    similarity = np.zeros(int(pair_start[-1]))
    g_box, d_box = np.ascontiguousarray(gt.box[g_rows]), np.ascontiguousarray(dt.box[d_rows])
    cuboid_pairs(*groups, pair_start, g_box, d_box, KINDS[params.kind], similarity)
    g_count, d_count, t_count = len(g_rows), len(d_rows), len(params.thresholds)
    matched = np.zeros((1, t_count, d_count), dtype=np.bool_)
    dt_ignored = np.zeros((1, t_count, d_count), dtype=np.bool_)
    gt_ignored = np.zeros((1, g_count), dtype=np.bool_)
    nothing = np.zeros(g_count, dtype=np.bool_)
    match_groups(
        *groups, pair_start, similarity, np.zeros(g_count), nothing, nothing, np.zeros(d_count),
        np.array([[0.0, np.inf]]), np.asarray(params.thresholds, dtype=np.float64), matched, dt_ignored, gt_ignored,
    )  # fmt: skip
    assert dt.score is not None
    return d_key // n_frames, dt.score[d_rows], matched[0], g_key // n_frames
