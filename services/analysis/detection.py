"""Detection metrics: the latest labeled boxes and an inference set's predicted boxes, read from
ClickHouse column by column (Arrow to numpy, no Python object per box), evaluated COCO-style.

Frames are the dataset's frames in frame-id order (COCO's image order); objects of a frame are
taken in object-id order, which is what breaks score ties."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoal.analysis.coco import Boxes, CocoResult, evaluate
from shoal.common.stores.metrics import MetricsStore


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
    params = {"project": project, "dataset": dataset, "set": inference_set}
    frames = metrics.query_columns(
        "SELECT DISTINCT frame_id FROM frames WHERE project = {project:String} AND dataset = {dataset:String}"
        " ORDER BY frame_id",
        params,
    )["frame_id"]
    frames = np.asarray(frames, dtype=object)
    gt = metrics.query_columns(
        "SELECT o.frame_id AS frame_id, o.class_id AS class_id, o.x AS x, o.y AS y, o.w AS w, o.h AS h,"
        " o.is_crowd AS crowd FROM label_objects AS o FINAL"
        " INNER JOIN (SELECT frame_id, argMax(label_version, (version_time, label_version)) AS latest"
        " FROM label_versions WHERE project = {project:String} AND dataset = {dataset:String} GROUP BY frame_id) AS l"
        " ON l.frame_id = o.frame_id AND l.latest = o.label_version"
        " WHERE o.project = {project:String} AND o.dataset = {dataset:String} ORDER BY o.frame_id, o.object_id",
        params,
    )
    dt = metrics.query_columns(
        "SELECT frame_id, class_id, score, x, y, w, h FROM predicted_objects FINAL"
        " WHERE project = {project:String} AND inference_set = {set:String} ORDER BY frame_id, object_id",
        params,
    )
    gt_boxes = Boxes(
        image=_codes(np.asarray(gt["frame_id"], dtype=object), frames),
        category=np.asarray(gt["class_id"], dtype=np.int64),
        box=np.stack([np.asarray(gt[c], dtype=np.float64) for c in ("x", "y", "w", "h")], axis=1)
        if len(gt["frame_id"])
        else np.zeros((0, 4)),
        crowd=np.asarray(gt["crowd"], dtype=bool),
    )
    dt_boxes = Boxes(
        image=_codes(np.asarray(dt["frame_id"], dtype=object), frames),
        category=np.asarray(dt["class_id"], dtype=np.int64),
        box=np.stack([np.asarray(dt[c], dtype=np.float64) for c in ("x", "y", "w", "h")], axis=1)
        if len(dt["frame_id"])
        else np.zeros((0, 4)),
        score=np.asarray(dt["score"], dtype=np.float64),
    )
    result = evaluate(gt_boxes, dt_boxes, np.arange(len(frames)), list(classes))
    gt_counts = {c: int(n) for c, n in zip(*np.unique(gt_boxes.category, return_counts=True), strict=True)}
    dt_counts = {c: int(n) for c, n in zip(*np.unique(dt_boxes.category, return_counts=True), strict=True)}
    return DetectionReport(len(frames), len(gt_boxes), len(dt_boxes), result, gt_counts, dt_counts)
