"""The ``detection_outcomes`` table: for each inference set of objects and IoU threshold, the
outcome of every labeled and predicted object of every frame under global matching across classes,
with every prediction taken (confidence 0). One row per frame holds its outcomes as parallel arrays.
Objects are compared as their project's task says (``shoal.common.similarity``): boxes by box IoU,
instance masks by mask IoU, keypoints by COCO's keypoint similarity (the "IoU" columns and thresholds
then hold that similarity).

Greedy matching takes a frame's predictions by descending score, and the outcome of a prediction
depends only on the predictions scored above it. The matching at a confidence threshold ``t`` is
therefore the stored one restricted to predictions scored ``t`` or more: a stored match whose
prediction scores below ``t`` leaves its labeled box missed, and false positives and crowd-ignored
predictions below ``t`` drop out. One stored matching per IoU threshold answers every confidence
threshold with an aggregation (see ``shoal.analysis.detection``).

Rows are derived like ``evaluations``: after the consumer writes a batch, the frames it touched are
matched again, from the latest labels and the current predictions, for every (set, IoU) that
``detection_outcome_sets`` registers. A new set registers :data:`DEFAULT_IOU_THRESHOLDS`; another IoU
threshold is registered, and matched over the whole set, when an analysis first asks for it. The
``version`` is taken before the boxes are read, so the newest state wins whatever order the writes
land in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numba
import numpy as np
import pyarrow as pa

from shoal.common.data.evaluations import STEP, write_refresh_keys
from shoal.common.data.frames import latest_labels_sql
from shoal.common.data.projects import ProjectCatalog
from shoal.common.similarity import BOXES, Shapes, crowd_of, from_columns, labeled_points, pairs, shapes_of
from shoal.common.stores.metrics import MetricsStore, Migration

log = logging.getLogger(__name__)

MIGRATIONS = (
    Migration(
        component="ingest",
        version=5,
        name="detection outcomes",
        statements=(
            "CREATE TABLE IF NOT EXISTS detection_outcomes ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " iou_threshold Float64, frame_id String, kinds Array(UInt8), label_object_ids Array(String),"
            " predicted_object_ids Array(String), label_classes Array(Int32), predicted_classes Array(Int32),"
            " ious Array(Float32), scores Array(Float32), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, inference_set, iou_threshold, frame_id)",
            # the (set, IoU) pairs kept current; complete = 1 once every frame has been matched
            "CREATE TABLE IF NOT EXISTS detection_outcome_sets ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " iou_threshold Float64, complete UInt8, version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, inference_set, iou_threshold)",
        ),
    ),
)

#: kinds of outcome
MATCHED, IGNORED, FALSE_POSITIVE, MISSED = 0, 1, 2, 3
#: the IoU thresholds every new detection inference set keeps matched from its first upload on
DEFAULT_IOU_THRESHOLDS = (0.5,)
#: frames matched per step when a whole set is matched
MATERIALIZE_STEP = 200_000

COLUMNS = (
    "project",
    "inference_set",
    "dataset",
    "iou_threshold",
    "frame_id",
    "kinds",
    "label_object_ids",
    "predicted_object_ids",
    "label_classes",
    "predicted_classes",
    "ious",
    "scores",
    "version",
)


def iou_key(value: float) -> float:
    """The stored form of an IoU threshold (hundredths, so equal requests find equal rows)."""
    return round(float(value), 2)


@numba.njit(cache=True, nogil=True)
def global_match(
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    dt_start: np.ndarray,
    dt_end: np.ndarray,
    pair_start: np.ndarray,
    similarity: np.ndarray,
    gt_crowd: np.ndarray,
    threshold: float,
    dt_match: np.ndarray,
    dt_state: np.ndarray,
    dt_iou: np.ndarray,
    gt_taken: np.ndarray,
) -> None:
    """Greedy matching across classes, frame by frame; the detections of a frame come in score
    order, and ``similarity`` holds each frame's (detection, label) IoU (or keypoint similarity)
    row-major from ``pair_start``. Each detection takes the unmatched regular labeled object with
    the highest similarity at or above the threshold (ties: the first, i.e. the lower object id);
    one that takes none but overlaps a crowd region (or a label COCO ignores) that much is ignored.
    dt_state: 0 matched, 1 ignored, 2 false positive; dt_iou: the similarity of the match, or a
    false positive's highest similarity with any labeled object."""
    for f in range(gt_start.shape[0]):
        ng = gt_end[f] - gt_start[f]
        for di in range(dt_start[f], dt_end[f]):
            best, best_j, top, crowd_hit = -1.0, -1, 0.0, False
            row = pair_start[f] + (di - dt_start[f]) * ng - gt_start[f]
            for gj in range(gt_start[f], gt_end[f]):
                iou = similarity[row + gj]
                if iou > top:
                    top = iou
                if gt_crowd[gj]:
                    if iou >= threshold:
                        crowd_hit = True
                    continue
                if not gt_taken[gj] and iou > best:
                    best, best_j = iou, gj
            if best_j >= 0 and best >= threshold:
                gt_taken[best_j] = True
                dt_match[di], dt_state[di], dt_iou[di] = best_j, MATCHED, best
            elif crowd_hit:
                dt_state[di] = IGNORED
            else:
                dt_state[di], dt_iou[di] = FALSE_POSITIVE, top


def _list(offsets: np.ndarray, values: Any, kind: pa.DataType) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, kind))


def match_frames(
    frames: np.ndarray,
    gt: Mapping[str, np.ndarray],
    dt: Mapping[str, np.ndarray],
    iou_threshold: float,
    shapes: Shapes = BOXES,
) -> dict[str, pa.Array]:
    """Matches the objects of ``frames`` (sorted ids; every object's frame among them), compared
    as ``shapes`` says, and returns one list per frame for each outcome column. ``gt`` and ``dt``
    come sorted by frame, then object id, with the columns ``shapes`` reads."""
    g_frame = np.searchsorted(frames, np.asarray(gt["frame_id"], dtype=object)).astype(np.int64)
    d_frame_all = np.searchsorted(frames, np.asarray(dt["frame_id"], dtype=object)).astype(np.int64)
    d_score_all = np.asarray(dt["score"], dtype=np.float64)
    # per frame by descending score; equal scores keep object-id order
    d_idx = np.lexsort((np.arange(len(d_score_all)), -d_score_all, d_frame_all))
    d_frame = d_frame_all[d_idx]
    codes = np.arange(len(frames))
    labels = from_columns(gt, shapes.kind, predicted=False)
    g_crowd = crowd_of(labels)
    g_rows = np.arange(len(g_frame))
    if shapes.kind == "keypoints":  # as COCO: a label without a labeled point is ignored
        g_crowd = g_crowd | (labeled_points(labels, g_rows) == 0)
    groups = (
        np.searchsorted(g_frame, codes, "left"), np.searchsorted(g_frame, codes, "right"),
        np.searchsorted(d_frame, codes, "left"), np.searchsorted(d_frame, codes, "right"),
    )  # fmt: skip
    predicted = from_columns(dt, shapes.kind, predicted=True)
    similarity, pair_start = pairs(shapes.kind, groups, labels, g_rows, predicted, d_idx, shapes.sigmas)
    dt_match = np.full(len(d_idx), -1, dtype=np.int64)
    dt_state = np.zeros(len(d_idx), dtype=np.int8)
    dt_iou = np.zeros(len(d_idx))
    gt_taken = np.zeros(len(g_frame), dtype=np.bool_)
    global_match(*groups, pair_start, similarity, g_crowd, float(iou_threshold), dt_match, dt_state, dt_iou, gt_taken)
    missed = np.flatnonzero(~g_crowd & ~gt_taken)
    n_missed = len(missed)
    # every prediction in score order (its state says which kind), then the missed labeled boxes
    kinds = np.concatenate([dt_state.astype(np.uint8), np.full(n_missed, MISSED, np.uint8)])
    g_of = np.concatenate([np.where(dt_state == MATCHED, dt_match, -1), missed])
    d_of = np.concatenate([np.arange(len(d_idx)), np.full(n_missed, -1)])
    frame_of = np.concatenate([d_frame, g_frame[missed]])
    order = np.argsort(frame_of, kind="stable")
    g_of, d_of, kinds = g_of[order], d_of[order], kinds[order]
    offsets = np.searchsorted(frame_of[order], np.arange(len(frames) + 1)).astype(np.int32)
    g_ids = np.append(np.asarray(gt["object_id"], dtype=object), "")  # index -1: no object
    g_cls = np.append(np.asarray(gt["class_id"], dtype=np.int32), np.int32(-1))
    d_ids = np.append(np.asarray(dt["object_id"], dtype=object)[d_idx], "")
    d_cls = np.append(np.asarray(dt["class_id"], dtype=np.int32)[d_idx], np.int32(-1))
    d_scores = np.append(d_score_all[d_idx], 0.0).astype(np.float32)
    d_ious = np.append(dt_iou, 0.0).astype(np.float32)
    return {
        "frame_id": pa.array(frames, pa.string()),
        "kinds": _list(offsets, kinds, pa.uint8()),
        "label_object_ids": _list(offsets, g_ids[g_of], pa.string()),
        "predicted_object_ids": _list(offsets, d_ids[d_of], pa.string()),
        "label_classes": _list(offsets, g_cls[g_of], pa.int32()),
        "predicted_classes": _list(offsets, d_cls[d_of], pa.int32()),
        "ious": _list(offsets, d_ious[d_of], pa.float32()),
        "scores": _list(offsets, d_scores[d_of], pa.float32()),
    }


class OutcomeRefresher:
    def __init__(self, metrics: MetricsStore, default_ious: Iterable[float] = DEFAULT_IOU_THRESHOLDS) -> None:
        self.metrics = metrics
        self.default_ious = tuple(iou_key(v) for v in default_ious)
        self.projects = ProjectCatalog(metrics)

    # -- registry -------------------------------------------------------------------------------

    def registered(self, project: str, dataset: str) -> dict[str, dict[float, bool]]:
        """Per inference set of the dataset: its kept IoU thresholds, and whether each is complete."""
        rows = self.metrics.query(
            "SELECT inference_set, iou_threshold, complete FROM detection_outcome_sets FINAL"
            " WHERE project = {project:String} AND dataset = {dataset:String}",
            {"project": project, "dataset": dataset},
        ).rows
        out: dict[str, dict[float, bool]] = {}
        for name, iou, complete in rows:
            out.setdefault(str(name), {})[float(iou)] = bool(complete)
        return out

    def _register(self, project: str, dataset: str, inference_set: str, iou: float, complete: bool) -> None:
        self.metrics.insert(
            "detection_outcome_sets",
            [[project, inference_set, dataset, iou, int(complete), time.time_ns()]],
            ("project", "inference_set", "dataset", "iou_threshold", "complete", "version"),
        )

    def is_complete(self, project: str, dataset: str, inference_set: str, iou: float) -> bool:
        return self.registered(project, dataset).get(inference_set, {}).get(iou_key(iou), False)

    # -- writes ---------------------------------------------------------------------------------

    def create_set(self, project: str, dataset: str, inference_set: str) -> None:
        """Starts keeping a new (prediction-less) detection set at the default IoU thresholds:
        every regular labeled box of the dataset is missed until predictions arrive."""
        for iou in self.default_ious:
            self._register(project, dataset, inference_set, iou, complete=False)
        latest = latest_labels_sql("", ("kp_v",))
        self.metrics.command(
            f"INSERT INTO detection_outcomes ({', '.join(COLUMNS)})"
            " SELECT {project:String}, {set:String}, {dataset:String}, iou, frame_id,"
            " arrayMap(x -> toUInt8(3), ids), ids, arrayMap(x -> '', ids), classes, arrayMap(x -> toInt32(-1), ids),"
            " arrayMap(x -> toFloat32(0), ids), arrayMap(x -> toFloat32(0), ids), {version:UInt64}"
            " FROM (SELECT frame_id, groupArray(object_id) AS ids, groupArray(class_id) AS classes"
            # a keypoint label without a labeled point is ignored, as a crowd region is
            f" FROM ({latest}) WHERE crowd = 0 AND (empty(kp_v) OR arrayExists(v -> v > 0, kp_v)) GROUP BY frame_id)"
            " ARRAY JOIN {ious:Array(Float64)} AS iou",
            {
                "project": project,
                "dataset": dataset,
                "set": inference_set,
                "ious": list(self.default_ious),
                "version": time.time_ns(),
            },
        )
        for iou in self.default_ious:
            self._register(project, dataset, inference_set, iou, complete=True)

    def refresh(self, project: str, dataset: str, frame_ids: Iterable[str]) -> None:
        """Matches these frames again for every registered (set, IoU) of the dataset."""
        sets = self.registered(project, dataset)
        ids = sorted(set(frame_ids))
        if not sets or not ids:
            return
        for start in range(0, len(ids), STEP):
            part = ids[start : start + STEP]
            batch = write_refresh_keys(self.metrics, part)
            scope = "frame_id IN (SELECT frame_id FROM refresh_keys WHERE batch = {batch:UInt64})"
            self._match(project, dataset, sets, np.asarray(part, dtype=object), scope, {"batch": batch})

    def materialize(
        self,
        project: str,
        dataset: str,
        inference_set: str,
        iou: float,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Matches every frame of the set at ``iou`` and keeps that threshold current from now on."""
        iou = iou_key(iou)
        self._register(project, dataset, inference_set, iou, complete=False)
        starts = self.metrics.query_columns(
            "SELECT frame_id FROM (SELECT frame_id, row_number() OVER (ORDER BY frame_id) AS n"
            " FROM (SELECT DISTINCT frame_id FROM frames WHERE project = {project:String}"
            " AND dataset = {dataset:String})) WHERE n % {step:UInt64} = 1 ORDER BY frame_id",
            {"project": project, "dataset": dataset, "step": MATERIALIZE_STEP},
        )["frame_id"]
        starts = list(starts)
        for i, lo in enumerate(starts):
            hi = starts[i + 1] if i + 1 < len(starts) else None
            scope = "frame_id >= {lo:String}" + (" AND frame_id < {hi:String}" if hi is not None else "")
            self._match(project, dataset, {inference_set: {iou: False}}, None, scope, {"lo": lo, "hi": hi or ""})
            if progress is not None:
                progress(i + 1, len(starts))
        self._register(project, dataset, inference_set, iou, complete=True)
        log.info("matched inference set %r of project %r at IoU %.2f", inference_set, project, iou)

    def _match(
        self,
        project: str,
        dataset: str,
        sets: Mapping[str, Mapping[float, bool]],
        frames: np.ndarray | None,
        scope: str,
        scope_params: Mapping[str, Any],
    ) -> None:
        """Matches the frames in ``scope`` (``frames``: every frame to write, even without boxes;
        None: the frames holding boxes) for each set and IoU, and writes their rows."""
        version = time.time_ns()  # before reading: a later refresh of the same frames wins
        params = {"project": project, "dataset": dataset, **scope_params}
        shapes = shapes_of(self.projects.get(project))
        extra = "".join(f", {c}" for c in shapes.columns)
        gt = self.metrics.query_columns(
            f"{latest_labels_sql(scope, shapes.columns)} ORDER BY o.frame_id, o.object_id", params
        )
        for name, ious in sets.items():
            dt = self.metrics.query_columns(
                f"SELECT frame_id, object_id, class_id, score, x, y, w, h{extra} FROM predicted_objects FINAL"
                f" WHERE project = {{project:String}} AND inference_set = {{set:String}} AND {scope}"
                " ORDER BY frame_id, object_id",
                {**params, "set": name},
            )
            ids = frames
            if ids is None:
                held = [np.asarray(gt["frame_id"], object), np.asarray(dt["frame_id"], object)]
                ids = np.unique(np.concatenate(held))
            if not len(ids):
                continue
            for iou in ious:
                cols = match_frames(ids, gt, dt, iou, shapes)
                n = len(ids)
                table = pa.table(
                    {
                        "project": pa.array([project] * n, pa.string()),
                        "inference_set": pa.array([name] * n, pa.string()),
                        "dataset": pa.array([dataset] * n, pa.string()),
                        "iou_threshold": pa.array(np.full(n, iou)),
                        **cols,
                        "version": pa.array(np.full(n, version, dtype=np.uint64)),
                    }
                )
                self.metrics.insert_arrow("detection_outcomes", table)
