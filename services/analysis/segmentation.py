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

import math
from dataclasses import dataclass
from statistics import NormalDist
from types import SimpleNamespace
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


def gate_summary(r: Report, ontology: list[int]) -> SimpleNamespace:
    """What regression gates read of a report (undefined figures are 0: a class absent from a
    segment cannot pass a gate on it)."""
    pixel_accuracy, _, mean_iou, _ = r.summary()
    iou, recall, precision = (np.nan_to_num(x, nan=0.0) for x in r.per_class())
    per_class = [
        SimpleNamespace(class_id=c, iou=float(iou[i]), precision=float(precision[i]), recall=float(recall[i]))
        for i, c in enumerate(ontology)
    ]
    return SimpleNamespace(frames=r.frames, mean_iou=mean_iou, pixel_accuracy=pixel_accuracy, per_class=per_class)


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


@dataclass(frozen=True)
class Comparison:
    baseline: Report
    candidate: Report
    #: frames whose pixel accuracy is higher (lower) in the candidate than in the baseline
    improved: int
    regressed: int


def compare(
    metrics: MetricsStore,
    project: str,
    baseline: str,
    candidate: str,
    ontology: list[int],
    frames_sql: str = "",
    frames_params: dict[str, Any] | None = None,
) -> Comparison:
    """Both sets measured on the labeled frames both predict (those ``frames_sql`` selects)."""
    both = (
        "SELECT frame_id FROM segmentation_confusion FINAL WHERE project = {project:String}"
        " AND inference_set = {baseline:String} AND notEmpty(true_classes)" + _scope(frames_sql) + " INTERSECT"
        " SELECT frame_id FROM segmentation_confusion FINAL WHERE project = {project:String}"
        " AND inference_set = {candidate:String} AND notEmpty(true_classes)"
    )
    params = {"project": project, "baseline": baseline, "candidate": candidate, **(frames_params or {})}
    accuracy = (
        "SELECT frame_id, arraySum(arrayMap((t, p, n) -> if(t = p, n, 0), true_classes, pred_classes, pixels))"
        " / arraySum(pixels) AS a FROM segmentation_confusion FINAL WHERE project = {project:String}"
        " AND inference_set = {%s:String} AND frame_id IN (%s)"
    )
    improved, regressed = metrics.query(
        f"SELECT countIf(c.a > b.a), countIf(c.a < b.a) FROM ({accuracy % ('baseline', both)}) AS b"
        f" INNER JOIN ({accuracy % ('candidate', both)}) AS c ON b.frame_id = c.frame_id",
        params,
    ).rows[0]
    return Comparison(
        report(metrics, project, baseline, ontology, both, params),
        report(metrics, project, candidate, ontology, both, params),
        int(improved),
        int(regressed),
    )


@dataclass(frozen=True)
class SliceRow:
    value: str
    frames: int
    #: labeled pixels, and those predicted right
    pixels: int
    right: int
    #: the pixel accuracy's confidence interval, frames as clusters
    lower: float
    upper: float
    mean_iou: float


def slice_rows(
    metrics: MetricsStore,
    project: str,
    inference_set: str,
    ontology: list[int],
    groups_sql: str,
    groups_params: dict[str, Any],
    level: float,
) -> list[SliceRow]:
    """Per group of frames (``groups_sql`` selects ``frame_id, g``): its pixel accuracy with an
    interval and its mean IoU. A frame's pixels are not independent trials (a mislabeled region
    fails thousands together), so the interval treats frames as clusters: the ratio estimator's
    standard error, ``sqrt(n / (n - 1) * sum((right_f - a * pixels_f) ** 2)) / sum(pixels_f)``."""
    params = {"project": project, "set": inference_set, **groups_params}
    per_frame = (
        "SELECT s.g AS g, arraySum(c.pixels) AS x,"
        " arraySum(arrayMap((t, p, n) -> if(t = p, n, 0), c.true_classes, c.pred_classes, c.pixels)) AS y,"
        " c.true_classes AS true_classes, c.pred_classes AS pred_classes, c.pixels AS pixels"
        " FROM (SELECT frame_id, true_classes, pred_classes, pixels FROM segmentation_confusion FINAL"
        " WHERE project = {project:String} AND inference_set = {set:String} AND notEmpty(true_classes)) AS c"
        f" INNER JOIN ({groups_sql}) AS s ON s.frame_id = c.frame_id"
    )
    sums = metrics.query(
        "SELECT g, count(), sum(toFloat64(x)), sum(toFloat64(y)), sum(toFloat64(x) * x), sum(toFloat64(y) * y),"
        f" sum(toFloat64(x) * y) FROM ({per_frame}) GROUP BY g ORDER BY g",
        params,
    ).rows
    cells = metrics.query_columns(
        f"SELECT g, t, p, sum(n) AS n FROM ({per_frame}) ARRAY JOIN true_classes AS t, pred_classes AS p,"
        " pixels AS n GROUP BY g, t, p",
        params,
    )
    k = len(ontology)
    position = np.full(65536, -1, dtype=np.int64)
    position[np.asarray(ontology, dtype=np.int64)] = np.arange(k)
    confusion: dict[str, np.ndarray] = {}
    for g, t, p, n in zip(cells["g"], cells["t"], cells["p"], cells["n"], strict=True):
        i, j = position[int(t)], position[int(p)]
        if i >= 0 and j >= 0:
            confusion.setdefault(str(g), np.zeros((k, k), np.int64))[i, j] += int(n)
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    out = []
    for g, n, sx, sy, sxx, syy, sxy in sums:
        a = sy / sx if sx else 0.0
        if n > 1 and sx:
            residual = max(syy - 2 * a * sxy + a * a * sxx, 0.0)
            half = z * math.sqrt(n / (n - 1) * residual) / sx
            lower, upper = max(0.0, a - half), min(1.0, a + half)
        else:
            lower, upper = 0.0, 1.0
        m = confusion.get(str(g), np.zeros((k, k), np.int64))
        out.append(SliceRow(str(g), int(n), int(sx), int(sy), lower, upper,
                            Report(int(n), m, np.zeros(k, np.int64)).summary()[2]))  # fmt: skip
    return out
