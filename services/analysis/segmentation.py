"""Semantic segmentation metrics: sums over the per-frame pixel confusion kept in
``segmentation_confusion`` (:mod:`shoal.common.data.segmentation`), so a metric over 100,000 frames
of 512 x 512 pixels reads a few numbers per frame and never a map.

The definitions are the usual ones (those of mmsegmentation and torchmetrics' ``JaccardIndex``
with ``average="none"``): for class c, with TP the pixels labeled c and predicted c, IoU = TP /
(labeled c + predicted c - TP), accuracy = TP / labeled c, precision = TP / predicted c; pixel
accuracy is the diagonal over every labeled pixel; mean IoU averages over the classes labeled or
predicted somewhere, mean accuracy over the classes labeled somewhere; frequency-weighted IoU
weighs each class's IoU by its share of the labeled pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shoal.common.stores.metrics import MetricsStore

#: the frame orders QuerySegmentationFrames offers
CLASS_ORDER, CELL_ORDER = "class", "cell"


@dataclass(frozen=True)
class Report:
    frames: int
    #: K x K, rows labeled classes, columns predicted classes, in the ontology's order
    confusion: np.ndarray
    #: frames with a pixel labeled with each class
    class_frames: np.ndarray

    @property
    def pixels(self) -> int:
        return int(self.confusion.sum())

    def per_class(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """IoU, accuracy and precision of each class; NaN where undefined."""
        m = self.confusion.astype(np.float64)
        tp = np.diag(m)
        labeled, predicted = m.sum(axis=1), m.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = tp / (labeled + predicted - tp)
            accuracy = tp / labeled
            precision = tp / predicted
        return iou, accuracy, precision

    def summary(self) -> tuple[float, float, float, float]:
        """Pixel accuracy, mean accuracy, mean IoU, frequency-weighted IoU (0 without pixels)."""
        m = self.confusion.astype(np.float64)
        total = m.sum()
        if total == 0:
            return 0.0, 0.0, 0.0, 0.0
        iou, accuracy, _ = self.per_class()
        freq = m.sum(axis=1) / total
        seen = ~np.isnan(iou)
        return (
            float(np.trace(m) / total),
            float(np.nanmean(accuracy)) if (~np.isnan(accuracy)).any() else 0.0,
            float(iou[seen].mean()) if seen.any() else 0.0,
            float((freq[seen] * iou[seen]).sum()),
        )


def _scope(frames_sql: str) -> str:
    return " AND frame_id IN ({})".format(frames_sql) if frames_sql else ""  # noqa: UP032 (braces in the SQL)


def report(
    metrics: MetricsStore,
    project: str,
    inference_set: str,
    ontology: list[int],
    frames_sql: str = "",
    frames_params: dict[str, Any] | None = None,
) -> Report:
    """The confusion of the set's frames that ``frames_sql`` selects (all when empty), summed."""
    params = {"project": project, "set": inference_set, **(frames_params or {})}
    mine = "project = {project:String} AND inference_set = {set:String}" + _scope(frames_sql)
    cells = metrics.query_columns(
        "SELECT t, p, sum(n) AS n FROM (SELECT true_classes, pred_classes, pixels"
        f" FROM segmentation_confusion FINAL WHERE {mine})"
        " ARRAY JOIN true_classes AS t, pred_classes AS p, pixels AS n GROUP BY t, p",
        params,
    )
    frames = metrics.query(
        "SELECT count(), sumForEach(arrayMap(c -> toUInt64(has(true_classes, c)), {classes:Array(UInt16)}))"
        f" FROM segmentation_confusion FINAL WHERE {mine} AND notEmpty(true_classes)",
        {**params, "classes": ontology},
    ).rows[0]
    k = len(ontology)
    position = np.full(65536, -1, dtype=np.int64)
    position[np.asarray(ontology, dtype=np.int64)] = np.arange(k)
    confusion = np.zeros((k, k), dtype=np.int64)
    t = position[np.asarray(cells["t"], dtype=np.int64)]
    p = position[np.asarray(cells["p"], dtype=np.int64)]
    known = (t >= 0) & (p >= 0)  # a class removed from the ontology cannot be: classes are append-only
    np.add.at(confusion, (t[known], p[known]), np.asarray(cells["n"], dtype=np.int64)[known])
    class_frames = np.asarray(frames[1] or [0] * k, dtype=np.int64)
    return Report(int(frames[0]), confusion, class_frames)


def frames(
    metrics: MetricsStore,
    project: str,
    inference_set: str,
    class_id: int,
    predicted_class: int | None,
    frames_sql: str = "",
    frames_params: dict[str, Any] | None = None,
    *,
    offset: int = 0,
    size: int = 100,
) -> tuple[list[tuple[Any, ...]], int]:
    """A page of the frames behind a class (lowest IoU first) or a confusion cell (most pixels
    first), ties by frame id: rows (frame id, iou, cell pixels, label pixels, predicted pixels,
    pixel accuracy), and how many frames there are."""
    params = {
        "project": project,
        "set": inference_set,
        "c": class_id,
        "q": class_id if predicted_class is None else predicted_class,
        "offset": offset,
        "size": size,
        **(frames_params or {}),
    }
    mine = "project = {project:String} AND inference_set = {set:String}" + _scope(frames_sql)
    per_frame = (
        "SELECT frame_id,"
        " arraySum(arrayMap((t, n) -> if(t = {c:UInt16}, n, 0), true_classes, pixels)) AS labeled,"
        " arraySum(arrayMap((p, n) -> if(p = {c:UInt16}, n, 0), pred_classes, pixels)) AS predicted,"
        " arraySum(arrayMap((t, p, n) -> if(t = {c:UInt16} AND p = {c:UInt16}, n, 0),"
        " true_classes, pred_classes, pixels)) AS tp,"
        " arraySum(arrayMap((t, p, n) -> if(t = {c:UInt16} AND p = {q:UInt16}, n, 0),"
        " true_classes, pred_classes, pixels)) AS cell,"
        " arraySum(arrayMap((t, p, n) -> if(t = p, n, 0), true_classes, pred_classes, pixels)) AS right,"
        " arraySum(pixels) AS total,"
        " if(labeled + predicted > tp, tp / (labeled + predicted - tp), -1) AS iou"
        f" FROM segmentation_confusion FINAL WHERE {mine}"
    )
    if predicted_class is None:
        keep, order, cell = "labeled + predicted > 0", "iou ASC, frame_id", "0"
    else:
        keep, order, cell = "cell > 0", "cell DESC, frame_id", "cell"
    rows = metrics.query(
        f"SELECT frame_id, iou, {cell}, labeled, predicted, if(total > 0, right / total, 0), count() OVER () AS n"
        f" FROM ({per_frame}) WHERE {keep} ORDER BY {order}"
        " LIMIT {size:UInt32} OFFSET {offset:UInt64}",
        params,
    ).rows
    if rows:
        return [tuple(r[:6]) for r in rows], int(rows[0][6])
    total = metrics.query(f"SELECT count() FROM ({per_frame}) WHERE {keep}", params).scalar()
    return [], int(total or 0)
