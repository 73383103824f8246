"""The ``segmentation_confusion`` table: for each inference set of a segmentation project and each
frame with a label and a prediction, the frame's pixel confusion (true class, predicted class,
pixels), as parallel arrays, unlabeled pixels left out. Every metric of a segmentation set (per-class
IoU, mIoU, pixel accuracy, the confusion matrix, over any filter of frames) is a sum over these rows,
so no analysis holds a dataset's maps, nor even one map: the rows are computed from the stored class
runs by one walk along both maps (:func:`shoal.common.classmaps.confusion`).

Rows are derived like ``evaluations`` and ``detection_outcomes``: after the consumer writes a batch,
the frames it touched are compared again, from their latest label and each set's current
prediction. The ``version`` is taken before the maps are read, so the newest state wins whatever
order the writes land in.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from shoal.common import classmaps
from shoal.common.data.evaluations import write_refresh_keys
from shoal.common.data.projects import ProjectCatalog
from shoal.common.stores.metrics import MetricsStore, Migration

MIGRATIONS = (
    Migration(
        component="ingest",
        version=15,
        name="pixel confusion of segmentation frames",
        statements=(
            "CREATE TABLE IF NOT EXISTS segmentation_confusion ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " frame_id String, true_classes Array(UInt16), pred_classes Array(UInt16), pixels Array(UInt64),"
            " version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, inference_set, frame_id)",
        ),
    ),
)

#: frames compared per step (their maps are in memory together)
STEP = 2_000
#: how long a project's task type is trusted without asking the catalog again, in seconds
_TASK_TTL = 60.0


def latest_maps_sql(scope: str) -> str:
    """SQL of the class map of each frame's latest label version, for frames in ``scope`` (a
    condition on ``frame_id``; ``{project:String}`` and ``{dataset:String}`` bound)."""
    where = f" AND {scope}" if scope else ""
    return (
        "SELECT frame_id, argMax(seg_classes, (version_time, label_version)) AS classes,"
        " argMax(seg_runs, (version_time, label_version)) AS runs FROM label_versions"
        f" WHERE project = {{project:String}} AND dataset = {{dataset:String}}{where} GROUP BY frame_id"
    )


def predicted_maps_sql(scope: str) -> str:
    """SQL of every set's predicted class map of each frame in ``scope`` (``{project:String}``
    and ``{dataset:String}`` bound)."""
    where = f" AND {scope}" if scope else ""
    return (
        "SELECT inference_set, frame_id, seg_classes AS classes, seg_runs AS runs FROM inferences FINAL"
        f" WHERE project = {{project:String}} AND dataset = {{dataset:String}}{where} AND notEmpty(seg_runs)"
    )


class ConfusionRefresher:
    def __init__(self, metrics: MetricsStore) -> None:
        self.metrics = metrics
        self.projects = ProjectCatalog(metrics)
        self._tasks: dict[str, tuple[float, str]] = {}

    def _task(self, project: str) -> str:
        now = time.monotonic()
        hit = self._tasks.get(project)
        if hit is None or now - hit[0] > _TASK_TTL:
            found = self.projects.find(project)
            hit = (now, found.task_type if found is not None else "")
            self._tasks[project] = hit
        return hit[1]

    def refresh(self, project: str, dataset: str, frame_ids: Iterable[str]) -> None:
        """Compares these frames' maps again, for every set that predicted them."""
        if self._task(project) != "SEGMENTATION":
            return
        ids = sorted(set(frame_ids))
        for start in range(0, len(ids), STEP):
            batch = write_refresh_keys(self.metrics, ids[start : start + STEP])
            scope = "frame_id IN (SELECT frame_id FROM refresh_keys WHERE batch = {batch:UInt64})"
            self._compare(project, dataset, scope, {"batch": batch})

    def _compare(self, project: str, dataset: str, scope: str, scope_params: dict[str, object]) -> None:
        version = time.time_ns()  # before reading: a later refresh of the same frames wins
        params = {"project": project, "dataset": dataset, **scope_params}
        labels = self.metrics.query_columns(latest_maps_sql(scope), params)
        label_of = {
            str(f): (np.asarray(c, np.uint16), np.asarray(r, np.uint32))
            for f, c, r in zip(labels["frame_id"], labels["classes"], labels["runs"], strict=True)
            if len(r)
        }
        predicted = self.metrics.query_columns(predicted_maps_sql(scope), params)
        by_set: dict[str, list[int]] = {}
        for i, name in enumerate(predicted["inference_set"]):
            if str(predicted["frame_id"][i]) in label_of:
                by_set.setdefault(str(name), []).append(i)
        for name, rows in by_set.items():
            frames = [str(predicted["frame_id"][i]) for i in rows]
            pairs = [label_of[f] for f in frames]
            preds = [(np.asarray(predicted["classes"][i], np.uint16), np.asarray(predicted["runs"][i], np.uint32))
                     for i in rows]  # fmt: skip
            self.metrics.insert_arrow(
                "segmentation_confusion", confusion_table(project, name, dataset, frames, pairs, preds, version)
            )


def confusion_table(
    project: str,
    inference_set: str,
    dataset: str,
    frames: list[str],
    labels: list[tuple[np.ndarray, np.ndarray]],
    predictions: list[tuple[np.ndarray, np.ndarray]],
    version: int,
) -> pa.Table:
    """The ``segmentation_confusion`` rows of these frames (a label and a prediction each). A pair
    whose maps differ in size (a frame resized after its label was written) gets no cell: every
    pixel of it is left out, rather than compared against the wrong pixels."""
    keep = np.flatnonzero(
        [
            int(lr.sum(dtype=np.int64)) == int(pr.sum(dtype=np.int64))
            for (_, lr), (_, pr) in zip(labels, predictions, strict=True)
        ]
    )
    frame, true, pred, pixels = classmaps.confusion([labels[i] for i in keep], [predictions[i] for i in keep])
    # the kernel emits each frame's cells together, in frame order: a frame's cells are one slice
    offsets = np.zeros(len(frames) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum(np.bincount(keep[frame], minlength=len(frames)))
    n = len(frames)
    return pa.table(
        {
            "project": pa.array([project] * n, pa.string()),
            "inference_set": pa.array([inference_set] * n, pa.string()),
            "dataset": pa.array([dataset] * n, pa.string()),
            "frame_id": pa.array(frames, pa.string()),
            "true_classes": pa.ListArray.from_arrays(pa.array(offsets), pa.array(true, pa.uint16())),
            "pred_classes": pa.ListArray.from_arrays(pa.array(offsets), pa.array(pred, pa.uint16())),
            "pixels": pa.ListArray.from_arrays(pa.array(offsets), pa.array(pixels.astype(np.uint64))),
            "version": pa.array(np.full(n, version, dtype=np.uint64)),
        }
    )
