"""Detection metrics: the latest labeled boxes and an inference set's predicted boxes, read from
ClickHouse column by column (Arrow to numpy, no Python object per box), evaluated COCO-style.

Frames are the dataset's frames in frame-id order (COCO's image order); objects of a frame are
taken in object-id order, which is what breaks score ties."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from shoal.analysis.coco import Boxes, CocoResult, evaluate, iou_matrix
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
    pos = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((k + 1, k + 1), dtype=np.int64)
    gt_box, dt_box = _box_array(gt), _box_array(dt)
    gt_frame = np.asarray(gt["frame_id"], dtype=object)
    dt_frame = np.asarray(dt["frame_id"], dtype=object)
    keep = np.asarray(dt["score"], dtype=np.float64) >= confidence_threshold if len(dt_frame) else np.zeros(0, bool)
    dt_idx = np.flatnonzero(keep)
    gt_starts = np.searchsorted(gt_frame, data.frames, side="left") if len(gt_frame) else None
    gt_ends = np.searchsorted(gt_frame, data.frames, side="right") if len(gt_frame) else None
    kept_frames = dt_frame[dt_idx]
    dt_starts = np.searchsorted(kept_frames, data.frames, side="left") if len(dt_idx) else None
    dt_ends = np.searchsorted(kept_frames, data.frames, side="right") if len(dt_idx) else None
    rec: dict[str, list] = {k_: [] for k_ in ("frame_id", "label_object_id", "predicted_object_id", "label_class",
                                             "predicted_class", "iou", "score")}  # type: ignore[type-arg]  # fmt: skip
    ignored = 0
    g_cls = np.asarray(gt["class_id"], dtype=np.int64)
    g_crowd = np.asarray(gt["crowd"], dtype=bool)
    d_cls = np.asarray(dt["class_id"], dtype=np.int64)
    d_score = np.asarray(dt["score"], dtype=np.float64)

    def record(frame: str, gi: int | None, di: int | None, iou: float) -> None:
        lc = int(g_cls[gi]) if gi is not None else -1
        pc = int(d_cls[di]) if di is not None else -1
        counts[pos.get(lc, k) if gi is not None else k, pos.get(pc, k) if di is not None else k] += 1
        rec["frame_id"].append(frame)
        rec["label_object_id"].append(str(gt["object_id"][gi]) if gi is not None else "")
        rec["predicted_object_id"].append(str(dt["object_id"][di]) if di is not None else "")
        rec["label_class"].append(lc)
        rec["predicted_class"].append(pc)
        rec["iou"].append(iou)
        rec["score"].append(float(d_score[di]) if di is not None else None)

    for f, frame in enumerate(data.frames):
        g = np.arange(gt_starts[f], gt_ends[f]) if gt_starts is not None else np.zeros(0, np.int64)
        d = dt_idx[dt_starts[f] : dt_ends[f]] if dt_starts is not None else np.zeros(0, np.int64)
        if not len(g) and not len(d):
            continue
        d = d[np.argsort(-d_score[d], kind="mergesort")]
        crowd = g_crowd[g]
        ious = iou_matrix(dt_box[d], gt_box[g], crowd)
        taken = np.zeros(len(g), dtype=bool)
        for row, di in enumerate(d):
            free = ~crowd & ~taken
            cand = np.where(free, ious[row], -1.0)
            j = int(np.argmax(cand)) if len(g) else -1
            if j >= 0 and cand[j] >= iou_threshold:
                taken[j] = True
                record(str(frame), int(g[j]), int(di), float(cand[j]))
            elif len(g) and np.any(crowd & (ious[row] >= iou_threshold)):
                ignored += 1
            else:
                record(str(frame), None, int(di), float(ious[row].max()) if len(g) else 0.0)
        for j in np.flatnonzero(~crowd & ~taken):
            record(str(frame), int(g[j]), None, 0.0)
    run_id = f"run-{uuid.uuid4().hex[:16]}"
    n = len(rec["frame_id"])
    if n:
        table = pa.table(
            {
                "project": pa.array([project] * n),
                "run_id": pa.array([run_id] * n),
                "inference_set": pa.array([inference_set] * n),
                "dataset": pa.array([dataset] * n),
                "iou_threshold": pa.array([iou_threshold] * n, pa.float64()),
                "confidence_threshold": pa.array([confidence_threshold] * n, pa.float64()),
                "frame_id": pa.array(rec["frame_id"], pa.string()),
                "label_object_id": pa.array(rec["label_object_id"], pa.string()),
                "predicted_object_id": pa.array(rec["predicted_object_id"], pa.string()),
                "label_class": pa.array(rec["label_class"], pa.int32()),
                "predicted_class": pa.array(rec["predicted_class"], pa.int32()),
                "iou": pa.array(rec["iou"], pa.float32()),
                "score": pa.array(rec["score"], pa.float32()),
            }
        )
        metrics.insert_arrow("detection_matches", table)
    return ConfusionRun(run_id, list(classes), counts, ignored)


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
