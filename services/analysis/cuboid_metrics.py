"""Metrics of 3-D cuboids (a CUBOIDS_3D project's inference set against the latest labels of its dataset):
nuScenes' detection metrics and the AP over BEV and 3-D IoU of :mod:`shoal.analysis.nuscenes`, on the cuboids
read from ClickHouse column by column (Arrow to numpy, no Python object per cuboid), a chunk of frames at a time.

Labels and predictions are evaluated as stored: a frame's labels and predictions are in the same coordinate
frame (its ego frame or the world), and every measure (centre distance, IoU, heading, velocity) is the same in
either, so frames of both kinds are evaluated together. Score ties are broken as
:mod:`shoal.analysis.detection` breaks them: frames in frame-id order (by integer value when every frame id of
the dataset is an integer), the objects of a frame in object-id order.

What a request keeps (:class:`CuboidFilter`) is chosen in the query: labels and predictions whose centre lies
in the distance range from the ego vehicle (as nuScenes' class ranges leave objects out), labels whose point
count is in the range (a label of unknown count only when no bound is set; predictions are all kept), and
predictions scored at or above the confidence threshold. A chunk's objects are read once for the three
evaluations when the frames fit one chunk, else once per evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoal.analysis.cuboid_objects import CUBOID_COLUMNS, CuboidFilter, cuboids_sql
from shoal.analysis.detection import REPORT_CHUNK_FRAMES, evaluation_order, frame_order
from shoal.analysis.nuscenes import (
    Cuboids,
    IouParams,
    IouResult,
    NuScenesResult,
    evaluate_chunks,
    iou_ap_chunks,
    nuscenes_params,
)
from shoal.common.data.query import Params
from shoal.common.stores.metrics import MetricsStore

#: the IoU thresholds of the AP over IoU when a request names none
DEFAULT_IOU_THRESHOLDS = (0.5, 0.7)


@dataclass
class CuboidReport:
    frames: int
    ground_truth: int
    predicted: int
    nuscenes: NuScenesResult
    bev: IouResult
    iou_3d: IouResult
    gt_per_class: dict[int, int] = field(default_factory=dict)
    dt_per_class: dict[int, int] = field(default_factory=dict)


def cuboid_report(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    inference_set: str,
    names: Mapping[int, str],
    *,
    keep: CuboidFilter | None = None,
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    frames_sql: str = "",
    frames_params: Mapping[str, Any] | None = None,
    chunk_frames: int = REPORT_CHUNK_FRAMES,
) -> CuboidReport:
    """nuScenes' metrics (with its class rules for classes it names: ``barrier``, ``traffic_cone``) and the AP
    over BEV and 3-D IoU at ``iou_thresholds`` of the set's cuboids against the latest labels, over the classes
    of ``names`` (class id -> name, in the ontology's order), the frames of ``frames_sql`` (a SELECT of frame
    ids, with ``frames_params``; all when "") and the cuboids ``keep`` keeps."""
    frames, numbers = frame_order(metrics, project, dataset)
    order = evaluation_order(numbers, len(frames))
    if frames_sql:
        chosen = metrics.query_columns(f"SELECT DISTINCT frame_id FROM ({frames_sql})", dict(frames_params or {}))
        order = order[np.isin(frames[order], np.asarray(chosen["frame_id"], dtype=object))]
    classes = list(names)
    chunks = _Chunks(metrics, {"project": project, "dataset": dataset, "set": inference_set}, keep or CuboidFilter(),
                     frames, order, classes, chunk_frames)  # fmt: skip
    nuscenes = evaluate_chunks(chunks, classes, nuscenes_params(names))
    thresholds = tuple(float(t) for t in iou_thresholds)
    bev = iou_ap_chunks(chunks, classes, IouParams(kind="bev_iou", thresholds=thresholds))
    volume = iou_ap_chunks(chunks, classes, IouParams(kind="iou_3d", thresholds=thresholds))
    gt, dt = chunks.gt_counts, chunks.dt_counts
    return CuboidReport(len(order), sum(gt.values()), sum(dt.values()), nuscenes, bev, volume, gt, dt)


Chunk = tuple[Cuboids, Cuboids, np.ndarray]


class _Chunks:
    """The kept cuboids of ``order``'s frames, ``size`` frames at a time, as the evaluations take them
    (labels, predictions, the frames' codes in order); iterable again, the one chunk of a small set kept
    between iterations. The first iteration counts the objects of each class."""

    def __init__(self, metrics: MetricsStore, scope: dict[str, Any], keep: CuboidFilter, frames: np.ndarray,
                 order: np.ndarray, classes: list[int], size: int) -> None:  # fmt: skip
        self.metrics, self.frames, self.classes = metrics, frames, np.asarray(classes, dtype=np.int64)
        self.parts = [order[s : s + size] for s in range(0, max(len(order), 1), size)]
        params = Params(dict(scope))
        label_where = " AND ".join(c for c in (keep.distance_sql(params), keep.points_sql(params)) if c)
        predicted_where = " AND ".join(
            c for c in (f"score >= {params.add(float(keep.confidence_threshold), 'Float64')}",
                        keep.distance_sql(params)) if c
        )  # fmt: skip
        ids = "frame_id IN {ids:Array(String)}"
        self.params = params.values
        self.label_sql = (
            f"SELECT * FROM ({cuboids_sql(ids, predicted=False)})"
            + (f" WHERE {label_where}" if label_where else "")
            + " ORDER BY frame_id, object_id"
        )
        self.predicted_sql = (
            f"SELECT * FROM ({cuboids_sql(ids, predicted=True)}) WHERE {predicted_where} ORDER BY frame_id, object_id"
        )
        #: attribute name -> code, shared by labels and predictions across chunks
        self.attributes: dict[str, int] = {}
        self.gt_counts: dict[int, int] = {}
        self.dt_counts: dict[int, int] = {}
        self._counted = False
        self._kept: Chunk | None = None

    def __iter__(self) -> Iterator[Chunk]:
        if len(self.parts) == 1:
            if self._kept is None:
                self._kept = self._read(self.parts[0])
            yield self._kept
        else:
            for part in self.parts:
                yield self._read(part)
        self._counted = True

    def _read(self, part: np.ndarray) -> Chunk:
        params = {**self.params, "ids": sorted(str(f) for f in self.frames[part])}
        gt = self._cuboids(self.metrics.query_columns(self.label_sql, params), predicted=False)
        dt = self._cuboids(self.metrics.query_columns(self.predicted_sql, params), predicted=True)
        if not self._counted:
            for counts, objects in ((self.gt_counts, gt), (self.dt_counts, dt)):
                known = objects.category[np.isin(objects.category, self.classes)]
                for c, n in zip(*np.unique(known, return_counts=True), strict=True):
                    counts[int(c)] = counts.get(int(c), 0) + int(n)
        return gt, dt, part

    def _cuboids(self, cols: Mapping[str, np.ndarray], *, predicted: bool) -> Cuboids:
        n = len(cols["frame_id"])
        box = (
            np.column_stack([np.asarray(cols[c], dtype=np.float64) for c in CUBOID_COLUMNS]) if n else np.zeros((0, 7))
        )
        velocity = np.column_stack([np.asarray(cols[c], dtype=np.float64) for c in ("vx", "vy")]) if n else None
        frame = np.searchsorted(self.frames, np.asarray(cols["frame_id"], dtype=object)).astype(np.int64)
        return Cuboids(
            frame=frame,
            category=np.asarray(cols["class_id"], dtype=np.int64),
            box=box,
            score=np.asarray(cols["score"], dtype=np.float64) if predicted else None,
            velocity=velocity,
            attribute=self._attribute_codes(cols["attribute"]),
        )

    def _attribute_codes(self, values: np.ndarray) -> np.ndarray:
        """Each object's attribute as a code shared across chunks; -1 for none."""
        if not len(values):
            return np.zeros(0, dtype=np.int64)
        names, inverse = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
        codes = np.array([-1 if not a else self.attributes.setdefault(a, len(self.attributes)) for a in names],
                         dtype=np.int64)  # fmt: skip
        return codes[inverse.ravel()]
