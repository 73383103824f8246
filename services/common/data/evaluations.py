"""The ``evaluations`` table: one row per (inference set, frame) with the frame's current fields,
its latest label and the set's prediction, ready for analyses to filter, sort and aggregate
without joins or de-duplication at read time.

Rows are derived, never written by clients: after the consumer writes a batch, the frames it
touched are recomputed from ``frames``, ``label_versions`` and ``inferences`` for every inference
set of their dataset. Every set holds a row for every frame of its dataset (a new set is
backfilled), so the rows of any set also answer questions about the frames alone; a dataset
without inference sets keeps its rows under the pseudo set ``""``. Recomputing from the current
state, with a newer ``version``, makes the refresh idempotent and order-proof: a redelivered or
late batch rewrites the same current state.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

from shoal.common.stores.metrics import MetricsStore, Migration

#: a probability this small or smaller counts as this for the loss (no infinite losses)
MIN_PROBABILITY = 1e-12
COLUMNS = (
    "project, inference_set, dataset, frame_id, split, media_uri, media_type, capture_time, meta_str, meta_num,"
    " meta_bool, meta_time, label_class, pred_raw, confidence, probs, loss, margin, true_rank, version"
)
#: the columns of a row's frame, label and prediction, in both tables
_ROW_DEFINITIONS = (
    " frame_id String, split LowCardinality(String), media_uri String, media_type LowCardinality(String),"
    " capture_time Nullable(DateTime64(3, 'UTC')),"
    " meta_str Map(LowCardinality(String), String), meta_num Map(LowCardinality(String), Float64),"
    " meta_bool Map(LowCardinality(String), UInt8), meta_time Map(LowCardinality(String), DateTime64(3, 'UTC')),"
    " label_class Nullable(Int32), pred_raw Nullable(Int32), confidence Nullable(Float32)"
)
#: ``evaluations_by_cell``'s key of a frame without a label or a prediction
NO_KEY = -(2**31)
#: the cell keys of an ``evaluations`` row
LABEL_KEY = f"ifNull(label_class, {NO_KEY})"
PRED_KEY = f"ifNull(pred_raw, {NO_KEY})"
COLUMNS_BY_CELL = f"{COLUMNS}, {LABEL_KEY} AS label_key, {PRED_KEY} AS pred_key"

MIGRATIONS = (
    Migration(
        component="ingest",
        version=4,
        name="evaluations",
        statements=(
            "CREATE TABLE IF NOT EXISTS evaluations ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            f"{_ROW_DEFINITIONS},"
            " probs Array(Float32), loss Nullable(Float64), margin Nullable(Float64), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, inference_set, dataset, frame_id)",
            # the frame ids of one refresh, joined by the refresh statements (a table reads far faster
            # than a large array parameter); expired by TTL
            "CREATE TABLE IF NOT EXISTS refresh_keys (batch UInt64, frame_id String,"
            " inserted DateTime DEFAULT now()) ENGINE = MergeTree PARTITION BY toStartOfHour(inserted)"
            " ORDER BY (batch, frame_id) TTL inserted + INTERVAL 1 HOUR",
        ),
    ),
    Migration(
        component="ingest",
        version=8,
        name="evaluations.true_rank",
        # how many classes the model ranked above the labeled one (NULL: no label or no probabilities),
        # kept beside the loss so that top-k accuracy need not read every probability vector; rows
        # written before it are NULL there, and read as before (see has_true_rank)
        statements=("ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS true_rank Nullable(UInt16)",),
    ),
    Migration(
        component="ingest",
        version=9,
        name="evaluations by confusion cell",
        # the same rows ordered by label and predicted class (a missing one as NO_KEY), so that a grid of one
        # class or one confusion cell reads that cell's rows alone, whatever it is sorted by. Written by a
        # materialized view on every insert into evaluations; a row whose label or prediction changed is
        # removed from its old cell by a deleted row the refresh writes first (EvaluationRefresher._refresh)
        statements=(
            "CREATE TABLE IF NOT EXISTS evaluations_by_cell ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " label_key Int32, pred_key Int32,"
            f"{_ROW_DEFINITIONS},"
            " probs Array(Float32), loss Nullable(Float64), margin Nullable(Float64), true_rank Nullable(UInt16),"
            " version UInt64, is_deleted UInt8)"
            " ENGINE = ReplacingMergeTree(version, is_deleted)"
            " ORDER BY (project, inference_set, dataset, label_key, pred_key, frame_id)",
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS evaluations_by_cell_writer TO evaluations_by_cell AS SELECT"
            f" {COLUMNS_BY_CELL}, 0 AS is_deleted FROM evaluations",
            # the rows written before: the latest of each frame
            f"INSERT INTO evaluations_by_cell ({COLUMNS}, label_key, pred_key, is_deleted)"
            f" SELECT {COLUMNS_BY_CELL}, 0 FROM evaluations FINAL",
        ),
    ),
)

#: frame ids per statement (an IN set this large still uses the primary key)
STEP = 50_000


class EvaluationRefresher:
    def __init__(self, metrics: MetricsStore) -> None:
        self.metrics = metrics

    def inference_sets(self, project: str, dataset: str) -> list[str]:
        """The sets whose rows are kept: the dataset's inference sets, or ``""`` when it has none."""
        return rows_sets(self.metrics, project, dataset) or [""]

    def refresh(self, project: str, dataset: str, frame_ids: Iterable[str], ontology: Sequence[int]) -> None:
        """Recomputes the rows of these frames for every inference set of the dataset."""
        ids = sorted(set(frame_ids))
        if not ids:
            return
        sets = self.inference_sets(project, dataset)
        for start in range(0, len(ids), STEP):
            part = ids[start : start + STEP]
            batch = write_refresh_keys(self.metrics, part)
            for name in sets:
                self._refresh(project, dataset, name, batch, ontology)

    def _refresh(self, project: str, dataset: str, inference_set: str, batch: int, ontology: Sequence[int]) -> None:
        keys = "SELECT frame_id FROM refresh_keys WHERE batch = {batch:UInt64}"
        scope = f"project = {{project:String}} AND dataset = {{dataset:String}} AND frame_id IN ({keys})"
        # FINAL keeps the newest version of each key: a merge of sorted parts, far cheaper than
        # aggregating the metadata maps
        frames = (
            "SELECT frame_id, split, media_uri, media_type, capture_time, meta_str, meta_num, meta_bool, meta_time"
            f" FROM frames FINAL WHERE {scope}"
        )
        # a tuple is never skipped as NULL: a latest version without a class means "unlabeled"
        labels = (
            "SELECT frame_id, argMax(tuple(class_id), (version_time, label_version)).1 AS label_class"
            f" FROM label_versions WHERE {scope} GROUP BY frame_id"
        )
        params = {
            "project": project,
            "dataset": dataset,
            "batch": batch,
            "set": inference_set,
            "ontology": list(ontology),
            "version": time.time_ns(),
        }
        if inference_set:
            preds = (
                "SELECT frame_id, pred_class AS pred_raw, confidence, probs FROM inferences FINAL"
                f" WHERE project = {{project:String}} AND inference_set = {{set:String}} AND frame_id IN ({keys})"
            )
            pred_join = f" LEFT JOIN ({preds}) AS p ON p.frame_id = f.frame_id"
            pred_cols = "p.pred_raw AS pred_raw, p.confidence AS confidence, p.probs AS probs"
        else:
            pred_join = ""
            pred_cols = (
                "CAST(NULL AS Nullable(Int32)) AS pred_raw, CAST(NULL AS Nullable(Float32)) AS confidence,"
                " CAST([] AS Array(Float32)) AS probs"
            )
        # the frames' rows leave the cells they were in (a row still in the same cell is written over by the new
        # one, whose version is higher)
        self.metrics.command(
            "INSERT INTO evaluations_by_cell (project, inference_set, dataset, frame_id, label_key, pred_key, version,"
            f" is_deleted) SELECT project, inference_set, dataset, frame_id, {LABEL_KEY}, {PRED_KEY},"
            " {version:UInt64} - 1, 1 FROM evaluations FINAL WHERE project = {project:String}"
            f" AND inference_set = {{set:String}} AND dataset = {{dataset:String}} AND frame_id IN ({keys})",
            params,
        )
        self.metrics.command(
            f"INSERT INTO evaluations ({COLUMNS})"
            " SELECT project, inference_set, dataset, frame_id, split, media_uri, media_type, capture_time, meta_str,"
            " meta_num, meta_bool, meta_time, label_class, pred_raw, confidence, probs,"
            " if(pos > 0 AND length(probs) >= pos,"
            f" -log(greatest(toFloat64(probs[pos]), {MIN_PROBABILITY!r})), NULL) AS loss,"
            " if(length(probs) >= 2, toFloat64(arrayReverseSort(probs)[1] - arrayReverseSort(probs)[2]), NULL)"
            " AS margin,"
            " if(pos > 0 AND length(probs) >= pos, toUInt16(arrayCount(x -> x > probs[pos], probs)), NULL)"
            " AS true_rank, version"
            " FROM (SELECT {project:String} AS project, {set:String} AS inference_set, {dataset:String} AS dataset,"
            " f.frame_id AS frame_id, f.split AS split, f.media_uri AS media_uri, f.media_type AS media_type,"
            " f.capture_time AS capture_time, f.meta_str AS meta_str, f.meta_num AS meta_num,"
            " f.meta_bool AS meta_bool, f.meta_time AS meta_time, l.label_class AS label_class,"
            f" {pred_cols}, indexOf({{ontology:Array(Int32)}}, l.label_class) AS pos, {{version:UInt64}} AS version"
            f" FROM ({frames}) AS f LEFT JOIN ({labels}) AS l ON l.frame_id = f.frame_id{pred_join})"
            " SETTINGS join_use_nulls = 1",
            params,
        )

    def backfill(self, project: str, dataset: str, inference_set: str) -> None:
        """Rows of a new inference set for the frames the dataset already holds (no predictions
        yet), copied from another set's rows, so that its queries cover every frame. Predictions
        written later are newer."""
        others = [s for s in rows_sets(self.metrics, project, dataset) if s != inference_set]
        self.metrics.command(
            f"INSERT INTO evaluations ({COLUMNS})"
            " SELECT project, {set:String}, dataset, frame_id, split, media_uri, media_type, capture_time, meta_str,"
            " meta_num, meta_bool, meta_time, label_class, NULL, NULL, CAST([] AS Array(Float32)), NULL, NULL, NULL,"
            " {version:UInt64} FROM evaluations FINAL"
            " WHERE project = {project:String} AND inference_set = {source:String} AND dataset = {dataset:String}",
            {
                "project": project,
                "dataset": dataset,
                "set": inference_set,
                "source": others[0] if others else "",
                "version": time.time_ns(),
            },
        )


def write_refresh_keys(metrics: MetricsStore, frame_ids: Sequence[str]) -> int:
    """Writes the frame ids of one refresh under a new batch number, which it returns."""
    batch = secrets.randbits(63)
    keys = {"batch": pa.array([batch] * len(frame_ids), pa.uint64()), "frame_id": pa.array(frame_ids, pa.string())}
    metrics.insert_arrow("refresh_keys", pa.table(keys))
    return batch


def rows_sets(metrics: MetricsStore, project: str, dataset: str) -> list[str]:
    """The dataset's inference sets, by name."""
    rows = metrics.query(
        "SELECT DISTINCT name FROM inference_sets FINAL WHERE project = {project:String} AND dataset = {dataset:String}"
        " ORDER BY name",
        {"project": project, "dataset": dataset},
    ).rows
    return [str(r[0]) for r in rows]


def frame_rows_set(metrics: MetricsStore, project: str, dataset: str) -> str:
    """The set whose rows describe the dataset's frames (any set holds them all; the first by
    name, or ``""`` for a dataset without inference sets)."""
    sets = rows_sets(metrics, project, dataset)
    return sets[0] if sets else ""


def frame_fields(metrics: MetricsStore, project: str, dataset: str, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Latest label class (-1: unlabeled) and split of each frame, in the order of ``ids``."""
    labels = np.full(len(ids), -1, dtype=np.int64)
    splits = np.full(len(ids), "", dtype=object)
    if not ids:
        return labels, splits
    rows = metrics.query_columns(
        "SELECT frame_id, split, ifNull(label_class, -1) AS label FROM evaluations FINAL WHERE project = {p:String}"
        " AND inference_set = {s:String} AND dataset = {d:String}",
        {"p": project, "s": frame_rows_set(metrics, project, dataset), "d": dataset},
    )
    where = {f: i for i, f in enumerate(ids)}
    for f, split, label in zip(rows["frame_id"], rows["split"], rows["label"], strict=True):
        i = where.get(str(f))
        if i is not None:
            labels[i], splits[i] = int(label), str(split)
    return labels, splits


def has_true_rank(
    metrics: MetricsStore, project: str, inference_set: str, dataset: str, ontology: Sequence[int]
) -> bool:
    """Whether every row of the set whose labeled class has a probability also has its ``true_rank``
    (rows written before that column have none until their frames are written again). Reads the null
    map of ``true_rank``, the labels and the sizes of ``probs``; superseded rows count until merged."""
    missing = metrics.query(
        "SELECT count() FROM evaluations WHERE project = {p:String} AND inference_set = {s:String}"
        " AND dataset = {d:String} AND true_rank IS NULL AND indexOf({o:Array(Int32)}, label_class) > 0"
        " AND length(probs) >= indexOf({o:Array(Int32)}, label_class)",
        {"p": project, "s": inference_set, "d": dataset, "o": list(ontology)},
    ).scalar()
    return int(missing) == 0
