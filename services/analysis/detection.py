"""Detection metrics: the latest labeled boxes and an inference set's predicted boxes, read from
ClickHouse column by column (Arrow to numpy, no Python object per box), evaluated COCO-style.

Frames are the dataset's frames in frame-id order (COCO's image order); objects of a frame are
taken in object-id order, which is what breaks score ties."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa

from shoal.analysis.coco import Boxes, CocoResult, box_iou, evaluate, positions
from shoal.common.errors import NotFound
from shoal.common.stores.metrics import MetricsStore, Migration

MIGRATIONS = (
    Migration(
        component="analysis",
        version=2,
        name="detection matches",
        statements=(
            # class -1: the "false positive" row (label) or the "missed" column (prediction)
            "CREATE TABLE IF NOT EXISTS detection_matches ("
            " project LowCardinality(String), run_id String, inference_set LowCardinality(String),"
            " dataset LowCardinality(String), iou_threshold Float64, confidence_threshold Float64,"
            " frame_id String, label_object_id String, predicted_object_id String,"
            " label_class Int32, predicted_class Int32, iou Float32, score Nullable(Float32),"
            " created DateTime DEFAULT now())"
            " ENGINE = MergeTree PARTITION BY toDate(created)"
            " ORDER BY (project, run_id, label_class, predicted_class, frame_id, label_object_id, predicted_object_id)"
            " TTL created + INTERVAL 7 DAY",
        ),
    ),
)


@dataclass
class DetectionReport:
    frames: int
    ground_truth: int
    predicted: int
    result: CocoResult
    gt_per_class: dict[int, int]
    dt_per_class: dict[int, int]


def _codes(frame_ids: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Position of each frame id in the sorted list of the dataset's frame ids."""
    return np.searchsorted(order, frame_ids).astype(np.int64)


def detection_report(
    metrics: MetricsStore, project: str, dataset: str, inference_set: str, classes: list[int]
) -> DetectionReport:
    data = load_boxes(metrics, project, dataset, inference_set)
    gt_boxes = Boxes(
        image=_codes(np.asarray(data.gt["frame_id"], dtype=object), data.frames),
        category=np.asarray(data.gt["class_id"], dtype=np.int64),
        box=_box_array(data.gt),
        crowd=np.asarray(data.gt["crowd"], dtype=bool),
    )
    dt_boxes = Boxes(
        image=_codes(np.asarray(data.dt["frame_id"], dtype=object), data.frames),
        category=np.asarray(data.dt["class_id"], dtype=np.int64),
        box=_box_array(data.dt),
        score=np.asarray(data.dt["score"], dtype=np.float64),
    )
    result = evaluate(gt_boxes, dt_boxes, np.arange(len(data.frames)), list(classes))
    gt_counts = {c: int(n) for c, n in zip(*np.unique(gt_boxes.category, return_counts=True), strict=True)}
    dt_counts = {c: int(n) for c, n in zip(*np.unique(dt_boxes.category, return_counts=True), strict=True)}
    return DetectionReport(len(data.frames), len(gt_boxes), len(dt_boxes), result, gt_counts, dt_counts)


@dataclass
class Loaded:
    frames: np.ndarray  # sorted frame ids
    gt: dict[str, np.ndarray]
    dt: dict[str, np.ndarray]


def load_boxes(metrics: MetricsStore, project: str, dataset: str, inference_set: str) -> Loaded:
    """The dataset's frames, its latest labeled boxes and the set's predicted boxes, as columns
    sorted by frame id then object id."""
    params = {"project": project, "dataset": dataset, "set": inference_set}
    frames = metrics.query_columns(
        "SELECT DISTINCT frame_id FROM frames WHERE project = {project:String} AND dataset = {dataset:String}"
        " ORDER BY frame_id",
        params,
    )["frame_id"]
    gt = metrics.query_columns(
        "SELECT o.frame_id AS frame_id, o.object_id AS object_id, o.class_id AS class_id, o.x AS x, o.y AS y,"
        " o.w AS w, o.h AS h, o.is_crowd AS crowd FROM label_objects AS o FINAL"
        " INNER JOIN (SELECT frame_id, argMax(label_version, (version_time, label_version)) AS latest"
        " FROM label_versions WHERE project = {project:String} AND dataset = {dataset:String} GROUP BY frame_id) AS l"
        " ON l.frame_id = o.frame_id AND l.latest = o.label_version"
        " WHERE o.project = {project:String} AND o.dataset = {dataset:String} ORDER BY o.frame_id, o.object_id",
        params,
    )
    dt = metrics.query_columns(
        "SELECT frame_id, object_id, class_id, score, x, y, w, h FROM predicted_objects FINAL"
        " WHERE project = {project:String} AND inference_set = {set:String} ORDER BY frame_id, object_id",
        params,
    )
    return Loaded(np.asarray(frames, dtype=object), gt, dt)


def _box_array(cols: dict[str, np.ndarray]) -> np.ndarray:
    if not len(cols["frame_id"]):
        return np.zeros((0, 4))
    return np.stack([np.asarray(cols[c], dtype=np.float64) for c in ("x", "y", "w", "h")], axis=1)


@dataclass
class ConfusionRun:
    run_id: str
    class_ids: list[int]
    #: (K+1) x (K+1): last row "false positive", last column "missed"
    counts: np.ndarray
    ignored: int


@numba.njit(cache=True, nogil=True)
def _global_match(
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    dt_start: np.ndarray,
    dt_end: np.ndarray,
    gt_box: np.ndarray,
    gt_crowd: np.ndarray,
    dt_box: np.ndarray,
    threshold: float,
    dt_match: np.ndarray,
    dt_state: np.ndarray,
    dt_iou: np.ndarray,
    gt_taken: np.ndarray,
) -> None:
    """Greedy matching across classes, frame by frame; detections of a frame come in score
    order. dt_state: 0 matched, 1 ignored (only a crowd region), 2 false positive."""
    for f in range(gt_start.shape[0]):
        for di in range(dt_start[f], dt_end[f]):
            best, best_j, top, crowd_hit = -1.0, -1, 0.0, False
            for gj in range(gt_start[f], gt_end[f]):
                iou = box_iou(dt_box[di], gt_box[gj], gt_crowd[gj])
                if iou > top:
                    top = iou
                if gt_crowd[gj]:
                    if iou >= threshold:
                        crowd_hit = True
                    continue
                if not gt_taken[gj] and iou > best:  # the first of equal IoUs: the lower object id
                    best, best_j = iou, gj
            if best_j >= 0 and best >= threshold:
                gt_taken[best_j] = True
                dt_match[di], dt_state[di], dt_iou[di] = best_j, 0, best
            elif crowd_hit:
                dt_state[di] = 1
            else:
                dt_state[di], dt_iou[di] = 2, top


def detection_confusion(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    inference_set: str,
    classes: list[int],
    *,
    iou_threshold: float,
    confidence_threshold: float,
) -> ConfusionRun:
    """Global matching across classes, frame by frame: predictions at or above the confidence
    threshold, by descending score (ties by object id), each take the unmatched regular labeled
    box of any class with the highest IoU at or above the threshold (ties: the lower object id);
    one that takes none but overlaps a crowd region that much is ignored, else it is a false
    positive; regular labeled boxes left unmatched are missed. Records every outcome."""
    data = load_boxes(metrics, project, dataset, inference_set)
    gt, dt = data.gt, data.dt
    k = len(classes)
    g_frame = _codes(np.asarray(gt["frame_id"], dtype=object), data.frames)
    d_frame_all = _codes(np.asarray(dt["frame_id"], dtype=object), data.frames)
    d_score_all = np.asarray(dt["score"], dtype=np.float64)
    kept = np.flatnonzero(d_score_all >= confidence_threshold)
    d_idx = kept[np.lexsort((kept, -d_score_all[kept], d_frame_all[kept]))]  # frame, then score, then object id
    d_frame = d_frame_all[d_idx]
    n_frames = np.arange(len(data.frames))
    gt_start, gt_end = np.searchsorted(g_frame, n_frames, "left"), np.searchsorted(g_frame, n_frames, "right")
    dt_start, dt_end = np.searchsorted(d_frame, n_frames, "left"), np.searchsorted(d_frame, n_frames, "right")
    g_crowd = np.asarray(gt["crowd"], dtype=np.bool_)
    dt_match = np.full(len(d_idx), -1, dtype=np.int64)
    dt_state = np.zeros(len(d_idx), dtype=np.int8)
    dt_iou = np.zeros(len(d_idx))
    gt_taken = np.zeros(len(g_frame), dtype=np.bool_)
    _global_match(
        gt_start, gt_end, dt_start, dt_end, np.ascontiguousarray(_box_array(gt)), g_crowd,
        np.ascontiguousarray(_box_array(dt)[d_idx]), float(iou_threshold), dt_match, dt_state, dt_iou, gt_taken,
    )  # fmt: skip

    g_cls = np.asarray(gt["class_id"], dtype=np.int64)
    d_cls = np.asarray(dt["class_id"], dtype=np.int64)[d_idx]
    hit = dt_state == 0
    fp = dt_state == 2
    missed = np.flatnonzero(~g_crowd & ~gt_taken)
    # one record per outcome: matches, false positives, missed boxes
    g_of = np.concatenate([dt_match[hit], np.full(int(fp.sum()), -1), missed])
    d_of = np.concatenate([np.flatnonzero(hit), np.flatnonzero(fp), np.full(len(missed), -1)])
    label_class = np.where(g_of >= 0, g_cls[np.maximum(g_of, 0)] if len(g_cls) else -1, -1)
    predicted_class = np.where(d_of >= 0, d_cls[np.maximum(d_of, 0)] if len(d_cls) else -1, -1)
    lpos = np.where(label_class >= 0, positions(label_class, np.asarray(classes)), -1)
    ppos = np.where(predicted_class >= 0, positions(predicted_class, np.asarray(classes)), -1)
    counts = np.zeros((k + 1, k + 1), dtype=np.int64)
    np.add.at(counts, (np.where(lpos >= 0, lpos, k), np.where(ppos >= 0, ppos, k)), 1)
    frame_of = np.where(g_of >= 0, g_frame[np.maximum(g_of, 0)] if len(g_frame) else 0,
                        d_frame[np.maximum(d_of, 0)] if len(d_frame) else 0)  # fmt: skip
    run_id = f"run-{uuid.uuid4().hex[:16]}"
    n = len(g_of)
    if n:
        g_ids = np.append(np.asarray(gt["object_id"], dtype=object), "")  # index -1: no object
        d_ids = np.append(np.asarray(dt["object_id"], dtype=object)[d_idx], "")
        d_scores = np.append(d_score_all[d_idx], 0.0)
        d_ious = np.append(dt_iou, 0.0)
        table = pa.table(
            {
                "project": pa.array([project] * n),
                "run_id": pa.array([run_id] * n),
                "inference_set": pa.array([inference_set] * n),
                "dataset": pa.array([dataset] * n),
                "iou_threshold": pa.array(np.full(n, iou_threshold)),
                "confidence_threshold": pa.array(np.full(n, confidence_threshold)),
                "frame_id": pa.array(data.frames[frame_of], pa.string()),
                "label_object_id": pa.array(g_ids[g_of], pa.string()),
                "predicted_object_id": pa.array(d_ids[d_of], pa.string()),
                "label_class": pa.array(label_class.astype(np.int32)),
                "predicted_class": pa.array(predicted_class.astype(np.int32)),
                "iou": pa.array(d_ious[d_of].astype(np.float32)),
                "score": pa.array(d_scores[d_of].astype(np.float32), mask=d_of < 0),
            }
        )
        metrics.insert_arrow("detection_matches", table)
    return ConfusionRun(run_id, list(classes), counts, int((dt_state == 1).sum()))


def query_matches(
    metrics: MetricsStore, project: str, run_id: str, label_class: int, predicted_class: int, offset: int, size: int
) -> tuple[list[tuple], int]:  # type: ignore[type-arg]
    """One cell's records (class -1: the false-positive row or the missed column), highest
    score first, and their count."""
    params = {"project": project, "run": run_id, "lc": label_class, "pc": predicted_class}
    known = metrics.query(
        "SELECT count() FROM detection_matches WHERE project = {project:String} AND run_id = {run:String}", params
    ).scalar()
    if not known:
        raise NotFound(f"project {project!r} has no detection confusion run {run_id!r} (runs expire after 7 days)",
                       field="run_id")  # fmt: skip
    where = (
        "project = {project:String} AND run_id = {run:String} AND label_class = {lc:Int32}"
        " AND predicted_class = {pc:Int32}"
    )
    total = int(metrics.query(f"SELECT count() FROM detection_matches WHERE {where}", params).scalar())
    rows = metrics.query(
        "SELECT frame_id, label_object_id, predicted_object_id, label_class, predicted_class, iou, score"
        f" FROM detection_matches WHERE {where}"
        " ORDER BY score DESC NULLS LAST, frame_id, label_object_id, predicted_object_id"
        " LIMIT {size:UInt32} OFFSET {offset:UInt32}",
        {**params, "size": size, "offset": offset},
    ).rows
    return rows, total
