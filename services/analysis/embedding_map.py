"""The 2-D map of a dataset's embeddings: UMAP fitted on a sample of the frames, every other
frame placed at the distance-weighted mean of its nearest fitted frames' positions (found in the
original space), stored with the frame's label and split, and served by viewport with
level-of-detail sampling.

Placing by neighbours is far cheaper than UMAP's own ``transform`` and keeps a frame inside the
cluster of the frames it resembles (measured in ``bench/analysis_quality/bench_map.py``).

Each point gets a random priority; a viewport returns its points of lowest priority up to the
budget, which is a uniform sample of what it contains, and a point shown at a coarse zoom stays
shown when zooming in (its priority is still among the lowest of the smaller viewport).

A viewport's points can also carry what to colour them by (:class:`Colours`): an inference set's
predicted class and correctness, a label-issues job's flags and a metadata key's values. They are
read in the viewport's own statement, joined to its sampled points and looked up by their frame ids,
so asking for them costs one lookup per point shown, not per frame of the map, and never changes
which points are shown.

A region (a lasso) is a simple polygon; its frames are found by ClickHouse's ``pointInPolygon``
over the stored points, in frame id order with keyset paging.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pyarrow as pa

from shoal.analysis import dismissals, neighbors
from shoal.analysis.export import FrameTable
from shoal.common import limits
from shoal.common.data import results
from shoal.common.data.embeddings import read_vectors, read_vectors_exactly
from shoal.common.data.evaluations import frame_fields
from shoal.common.data.query import SETTINGS, VIEW_TABLES, Params, View, view_sql
from shoal.common.errors import InvalidArgument
from shoal.common.jit import import_cached
from shoal.common.jobs import Job, JobContext, progress_of
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.stores.vectors import VectorStore

KIND = "embedding_map"
#: neighbours of a fitted frame in UMAP's graph (itself included, as UMAP counts)
UMAP_NEIGHBORS = 15
#: from this many fitted frames on, UMAP would build its graph by NN-descent; it is given ours (see :func:`fit`)
UMAP_OWN_GRAPH = 4_096
DEFAULT_SAMPLE = 20_000
TRANSFORM_STEP = 20_000
#: frames read, placed and stored at a time (each step one read of their vectors, one insert)
WRITE_STEP = 10 * TRANSFORM_STEP
#: fitted frames whose positions place each other frame
PLACE_NEIGHBORS = 10
MAX_SAMPLE = 200_000
MAX_POINTS = 100_000
DEFAULT_POINTS = 10_000
#: vertices of a region's polygon
MIN_VERTICES = 3
MAX_VERTICES = limits.MAX_VERTICES
#: edges of a polygon compared with all the others at a time (bounds the memory of the check)
EDGE_BLOCK = 128

#: what ExportJobResult streams of a finished job: one row per frame
FRAMES = FrameTable("map_points", "frame_id, x, y, toBool(fitted) AS fitted, label_class, split")

MIGRATIONS = (
    Migration(
        component="analysis",
        version=6,
        name="embedding map points",
        statements=(
            "CREATE TABLE IF NOT EXISTS map_points ("
            " project LowCardinality(String), job_id String, frame_id String, x Float32, y Float32,"
            " priority Float32, label_class Nullable(Int32), split LowCardinality(String), fitted UInt8)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id)",
        ),
    ),
    Migration(
        component="analysis",
        version=12,
        name="embedding map shards",
        statements=(
            "CREATE TABLE IF NOT EXISTS map_parts ("
            " project LowCardinality(String), job_id String, shard UInt32, shards UInt32, fit_digest String,"
            " placed UInt64) ENGINE = ReplacingMergeTree ORDER BY (project, job_id, shard)",
        ),
    ),
    Migration(
        component="analysis",
        version=13,
        name="embedding map points in priority order",
        statements=(
            # the viewport's points are the lowest priorities of a job (in a box): read in this order, the
            # store stops at the limit instead of sorting every point (at 10M points, 10 ms against 300 ms)
            "CREATE TABLE IF NOT EXISTS map_points_by_priority ("
            " project LowCardinality(String), job_id String, priority Float32, frame_id String, x Float32,"
            " y Float32, label_class Nullable(Int32), split LowCardinality(String))"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, priority, frame_id)",
            # the maps stored before: a copy written again holds the same rows, which FINAL reads once
            "INSERT INTO map_points_by_priority (project, job_id, priority, frame_id, x, y, label_class, split)"
            " SELECT project, job_id, priority, frame_id, x, y, label_class, split FROM map_points FINAL",
        ),
    ),
    Migration(
        component="analysis",
        version=14,
        name="embedding map points by cell",
        statements=(
            # the points of a finished map by cell of a GRID x GRID grid over its bounds, so that counting
            # the points of a box reads the cells the box covers, not every point (written once as a job
            # ends, from map_points; maps stored before have none and are counted from map_points)
            "CREATE TABLE IF NOT EXISTS map_points_by_cell ("
            " project LowCardinality(String), job_id LowCardinality(String), cx UInt16, cy UInt16, x Float32,"
            " y Float32, frame_id String, priority Float32, label_class Nullable(Int32), split LowCardinality(String))"
            " ENGINE = MergeTree ORDER BY (project, job_id, cx, cy)"
            " SETTINGS index_granularity = 1024, min_compress_block_size = 4096, max_compress_block_size = 8192",
            # and how many points each cell holds: a box's count adds up the cells inside it, and reads the
            # points of the cells on its edges only
            "CREATE TABLE IF NOT EXISTS map_cells ("
            " project LowCardinality(String), job_id LowCardinality(String), cx UInt16, cy UInt16, points UInt64)"
            " ENGINE = MergeTree ORDER BY (project, job_id, cx, cy)",
        ),
    ),
)


@dataclass
class Summary(results.JsonSummary):
    frames: int
    fitted_on: int
    metric: str
    min_x: float
    max_x: float
    min_y: float
    max_y: float
    #: the side of the grid the points are kept by in ``map_points_by_cell`` (0: not kept so, a map
    #: stored before that table)
    grid: int = 0

    def public(self) -> dict[str, Any]:
        """The fields a client sees (``MapSummary``)."""
        return {k: v for k, v in self.__dict__.items() if k != "grid"}


#: cells per side of the grid ``map_points_by_cell`` keeps a map's points by: at 10M points about 150
#: points a cell, and a box's count reads about the share of the map the box covers
GRID = 256


def _umap() -> Any:
    """umap-learn, its kernels kept in numba's disk cache (it compiles them without)."""
    return import_cached("umap", ("umap_", "layouts", "utils", "sparse", "distances"))


def fit(x: np.ndarray, metric: str, *, hand_graph: bool | None = None) -> np.ndarray:
    """UMAP's 2-D layout of the rows of ``x`` (at least 3). Below :data:`UMAP_OWN_GRAPH` rows UMAP
    computes its exact graph itself; from there on the graph is handed to UMAP: up to
    :data:`neighbors.EXACT_LIMIT` rows the exact one, by faiss (compiled ahead of time: a fresh process
    compiles nothing for it, and it is the same on any number of threads); above, NN-descent's, as UMAP
    would build it. At 20k rows the exact graph takes about a second, NN-descent's 0.3 s once compiled, but
    two of NN-descent's kernels compile in every process (bench/RESULTS.md). ``hand_graph`` true hands UMAP
    the graph below :data:`UMAP_OWN_GRAPH` rows too: the warm-up loads that path's kernels on a small input."""
    umap = _umap()
    k = min(UMAP_NEIGHBORS, len(x) - 1)
    graph: tuple[Any, ...] = (None, None, None)
    if len(x) >= UMAP_OWN_GRAPH if hand_graph is None else hand_graph:
        # each row's k nearest, itself among them
        if len(x) <= neighbors.EXACT_LIMIT:
            idx, dist = neighbors.search(x, x, k, metric)
        else:
            idx, dist = neighbors.nn_descent(x, k, metric)
        graph = (idx.astype(np.int64), dist.astype(np.float32))
    with warnings.catch_warnings():
        # no search index: the layout is all it is asked for; one thread: the seed makes it reproducible
        warnings.filterwarnings("ignore", message="precomputed_knn.2.", category=UserWarning)
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        reducer = umap.UMAP(n_components=2, metric=metric, n_neighbors=k, random_state=0, low_memory=True,
                            precomputed_knn=graph)  # fmt: skip
        return np.asarray(reducer.fit_transform(x), dtype=np.float32)


@dataclass
class _Plan:
    """Which frames a map fits and which it places, the same in every process that plans the same job."""

    ids: list[str]  # every frame with a vector, in frame id order
    fit_rows: np.ndarray  # the fitted frames' positions in ids
    rest: np.ndarray  # the other frames' positions, in order
    priority: np.ndarray  # each frame's level-of-detail priority
    metric: str


def _plan(ctx: JobContext | None, metrics: MetricsStore, vectors: VectorStore, job: Job, dataset: str, space: str,
          space_metric: str, sample: int) -> _Plan:  # fmt: skip
    """Reads which frames have a vector (not the vectors) and draws the fitted sample and the priorities
    from a fixed seed."""
    ids, _ = read_vectors(ctx, metrics, vectors, job.project, dataset, space, with_vectors=False)
    return plan_of(ids, space_metric, sample)


def plan_of(ids: list[str], space_metric: str, sample: int) -> _Plan:
    """The plan of a map of the frames ``ids`` (every frame with a vector, in frame id order): the fitted
    sample and the priorities, drawn from a fixed seed."""
    n = len(ids)
    rng = np.random.default_rng(0)
    fit_rows = np.sort(rng.choice(n, size=min(n, sample), replace=False)) if n else np.zeros(0, dtype=np.int64)
    priority = rng.random(n).astype(np.float32)
    metric = "euclidean" if space_metric == "L2" else "cosine"
    return _Plan(ids, fit_rows, np.setdiff1d(np.arange(n), fit_rows), priority, metric)


def _fitted(vectors: VectorStore, job: Job, dataset: str, space: str, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """The fitted frames' vectors and their positions on the map (all 0 below 3 frames)."""
    if len(plan.ids) < 3:
        return np.zeros((len(plan.fit_rows), 0), dtype=np.float32), np.zeros((len(plan.fit_rows), 2), np.float32)
    x = read_vectors_exactly(vectors, job.project, dataset, space, [plan.ids[i] for i in plan.fit_rows])
    return x, fit(x, plan.metric)


def _placed(plan: _Plan, x: np.ndarray, fitted_x: np.ndarray, fitted_xy: np.ndarray) -> np.ndarray:
    """The positions of frames of vectors ``x`` (not fitted): the distance-weighted mean of their nearest
    fitted frames' positions."""
    idx, dist = neighbors.search(fitted_x, x, min(PLACE_NEIGHBORS, len(fitted_x)), plan.metric)
    w = 1.0 / (dist + 1e-6)
    return (np.einsum("nk,nkd->nd", w, fitted_xy[idx]) / w.sum(axis=1, keepdims=True)).astype(np.float32)


def _write(metrics: MetricsStore, job: Job, dataset: str, plan: _Plan, rows: np.ndarray, coords: np.ndarray,
           fitted: bool) -> None:  # fmt: skip
    """Stores frames ``rows`` at ``coords`` (the table keeps one row per frame: written again, the same)."""
    if not len(rows):
        return
    ids = [plan.ids[i] for i in rows]
    labels, splits = frame_fields(metrics, job.project, dataset, ids)
    m = len(rows)
    store_points(metrics, pa.table({
        "project": pa.array([job.project] * m), "job_id": pa.array([job.job_id] * m),
        "frame_id": pa.array(ids, pa.string()), "x": pa.array(coords[:, 0]), "y": pa.array(coords[:, 1]),
        "priority": pa.array(plan.priority[rows]), "label_class": pa.array(labels.astype(np.int32), mask=labels < 0),
        "split": pa.array(splits, pa.string()), "fitted": pa.array(np.full(m, int(fitted), np.uint8)),
    }))  # fmt: skip


#: the points of each job, by frame (every reader but the viewport), by priority (the viewport's points), and by
#: cell with each cell's count (how many points a box holds)
POINT_TABLES = ("map_points", "map_points_by_priority", "map_points_by_cell", "map_cells")


def store_points(metrics: MetricsStore, points: pa.Table) -> None:
    """Stores a map's points (the columns of ``map_points``) by frame and by priority; :func:`index_cells`
    keeps them by cell once the map's bounds are known."""
    metrics.insert_arrow("map_points", points)
    metrics.insert_arrow("map_points_by_priority", points.drop_columns(["fitted"]))


def _cell_sql(axis: str, lo: str, hi: str) -> str:
    """The grid column of a coordinate, as stored and as looked up (the same arithmetic on both sides)."""
    cell = f"floor((toFloat64({axis}) - {lo}) / ({hi} - {lo}) * {GRID})"
    return f"if({hi} > {lo}, toUInt16(least(greatest({cell}, 0), {GRID - 1})), 0)"


def index_cells(metrics: MetricsStore, job: Job, summary: Summary) -> Summary:
    """Keeps the job's points by cell of the grid over the summary's bounds (any earlier copy of a run
    replaced), and returns the summary that says so."""
    params = {"p": job.project, "j": job.job_id, "x0": summary.min_x, "x1": summary.max_x, "y0": summary.min_y,
              "y1": summary.max_y}  # fmt: skip
    for table in ("map_points_by_cell", "map_cells"):
        metrics.command(f"DELETE FROM {table} WHERE project = {{p:String}} AND job_id = {{j:String}}", params)
    metrics.command(
        "INSERT INTO map_points_by_cell (project, job_id, cx, cy, x, y, frame_id, priority, label_class, split)"
        f" SELECT project, job_id, {_cell_sql('x', '{x0:Float64}', '{x1:Float64}')},"
        f" {_cell_sql('y', '{y0:Float64}', '{y1:Float64}')}, x, y, frame_id, priority, label_class, split"
        " FROM map_points FINAL"
        " WHERE project = {p:String} AND job_id = {j:String}",
        params,
    )
    metrics.command(
        "INSERT INTO map_cells (project, job_id, cx, cy, points) SELECT project, job_id, cx, cy, count()"
        " FROM map_points_by_cell WHERE project = {p:String} AND job_id = {j:String} GROUP BY project, job_id, cx, cy",
        params,
    )
    return dataclasses.replace(summary, grid=GRID)


def _cell(v: float, lo: float, hi: float) -> int:
    """:func:`_cell_sql` in Python: the same IEEE operations in the same order, so the same cell."""
    return int(min(max(math.floor((v - lo) / (hi - lo) * GRID), 0), GRID - 1)) if hi > lo else 0


def box_cells(box: tuple[float, float, float, float], summary: Summary | None) -> tuple[int, int, int, int] | None:
    """The cells of the box's corners (min x, min y, max x, max y cells), or None when the map keeps no
    cells (a map stored before ``map_points_by_cell``). A point's cell never decreases with its
    coordinates (the same arithmetic stores and looks up), so the points of the box lie in these cells
    and those between; the cells strictly between lie in the box whole."""
    if summary is None or summary.grid != GRID:
        return None
    lx, hx, ly, hy = summary.min_x, summary.max_x, summary.min_y, summary.max_y
    return _cell(box[0], lx, hx), _cell(box[1], ly, hy), _cell(box[2], lx, hx), _cell(box[3], ly, hy)


def box_count(
    metrics: MetricsStore,
    project: str,
    job_id: str,
    box: tuple[float, float, float, float],
    cells: tuple[int, int, int, int] | None,
) -> int:
    """How many of the job's points lie in ``box`` (min x, min y, max x, max y): with the box's
    :func:`box_cells`, the counts of the cells inside it and the points of the cells on its edges,
    else every point of the map."""
    job = "project = {project:String} AND job_id = {job:String}"
    params: dict[str, Any] = {"project": project, "job": job_id, "x0": box[0], "y0": box[1], "x1": box[2],
                              "y1": box[3]}  # fmt: skip
    if cells is None:
        return int(metrics.query(f"SELECT count() FROM map_points FINAL WHERE {job}{_BOX}", params).scalar())
    params.update(zip(("cx0", "cy0", "cx1", "cy1"), cells, strict=True))
    inner = (
        f"SELECT sum(points) FROM map_cells WHERE {job} AND cx > {{cx0:UInt16}} AND cx < {{cx1:UInt16}}"
        " AND cy > {cy0:UInt16} AND cy < {cy1:UInt16}"
    )
    # the x and y of the edges' cells are read granule by granule: small compressed blocks keep that to the
    # granules read (see the table's settings)
    edge = (
        f"SELECT countIf(x >= {{x0:Float64}} AND x <= {{x1:Float64}} AND y >= {{y0:Float64}} AND y <= {{y1:Float64}})"
        f" FROM map_points_by_cell WHERE {job}"
        " AND ((cx IN ({cx0:UInt16}, {cx1:UInt16}) AND cy BETWEEN {cy0:UInt16} AND {cy1:UInt16})"
        " OR (cy IN ({cy0:UInt16}, {cy1:UInt16}) AND cx BETWEEN {cx0:UInt16} AND {cx1:UInt16}))"
    )
    inner_n, edge_n = metrics.query(f"SELECT ({inner}), ({edge})", params).rows[0]
    return int(inner_n or 0) + int(edge_n)


_BOX = " AND x >= {x0:Float64} AND x <= {x1:Float64} AND y >= {y0:Float64} AND y <= {y1:Float64}"


def placements(plan: _Plan, rows: np.ndarray, vectors_of: Callable[[np.ndarray], np.ndarray], fitted_x: np.ndarray,
               fitted_xy: np.ndarray, progress: Callable[[float], None] | None = None,
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Places frames ``rows`` (positions in ``plan.ids``), :data:`WRITE_STEP` at a time, each step's vectors
    read by ``vectors_of(its rows)`` (the fitted frames' vectors and one step's are held, never every vector),
    :data:`TRANSFORM_STEP` per search: yields (a step's rows, their positions), and tells ``progress`` the
    share placed after each search."""
    for b in range(0, len(rows), WRITE_STEP):
        block = rows[b : b + WRITE_STEP]
        x = vectors_of(block)
        coords = np.empty((len(block), 2), np.float32)
        for s in range(0, len(block), TRANSFORM_STEP):
            coords[s : s + TRANSFORM_STEP] = _placed(plan, x[s : s + TRANSFORM_STEP], fitted_x, fitted_xy)
            if progress is not None:
                progress((b + min(s + TRANSFORM_STEP, len(block))) / len(rows))
        yield block, coords


def _place_and_write(progress: Any, stage: str, metrics: MetricsStore, vectors: VectorStore, job: Job, dataset: str,
                     space: str, plan: _Plan, rows: np.ndarray, fitted_x: np.ndarray,
                     fitted_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Places (:func:`placements`) and stores frames ``rows``, a step at a time; returns the corners of what it
    placed."""

    def vectors_of(block: np.ndarray) -> np.ndarray:
        return read_vectors_exactly(vectors, job.project, dataset, space, [plan.ids[i] for i in block])

    lo, hi = np.full(2, np.inf, np.float32), np.full(2, -np.inf, np.float32)
    for block, coords in placements(plan, rows, vectors_of, fitted_x, fitted_xy,
                                    lambda share: progress(stage, 0.5 + 0.4 * share)):  # fmt: skip
        _write(metrics, job, dataset, plan, block, coords, fitted=False)
        lo, hi = np.minimum(lo, coords.min(axis=0)), np.maximum(hi, coords.max(axis=0))
    return lo, hi


def build(
    ctx: JobContext | None,
    metrics: MetricsStore,
    vectors: VectorStore,
    job: Job,
    *,
    dataset: str,
    space: str,
    space_metric: str,
    sample: int = DEFAULT_SAMPLE,
) -> Summary:
    """Fits UMAP on up to ``sample`` frames, places every frame, stores the points. With ``ctx.shards``, the
    job's shards (:func:`build_shard`) placed and stored them: this checks they agree and sums them up."""
    progress = progress_of(ctx)
    if ctx is not None and ctx.shards > 1:
        return _finish(progress, metrics, job, ctx.shards, space_metric)

    discard(metrics, job)
    plan = _plan(ctx, metrics, vectors, job, dataset, space, space_metric, sample)
    progress("fitting the map", 0.35)
    fitted_x, fitted_xy = _fitted(vectors, job, dataset, space, plan)
    _write(metrics, job, dataset, plan, plan.fit_rows, fitted_xy, fitted=True)
    lo, hi = fitted_xy.min(axis=0, initial=np.inf), fitted_xy.max(axis=0, initial=-np.inf)
    if len(plan.ids) < 3:  # no map to place them on: at the origin, as the fitted ones
        _write(metrics, job, dataset, plan, plan.rest, np.zeros((len(plan.rest), 2), np.float32), fitted=False)
    elif len(plan.rest):
        placed_lo, placed_hi = _place_and_write(progress, "placing the other frames", metrics, vectors, job, dataset,
                                                space, plan, plan.rest, fitted_x, fitted_xy)  # fmt: skip
        lo, hi = np.minimum(lo, placed_lo), np.maximum(hi, placed_hi)
    progress("writing", 0.92)
    if not len(plan.ids):
        lo, hi = np.zeros(2), np.zeros(2)
    summary = Summary(len(plan.ids), len(plan.fit_rows), plan.metric, float(lo[0]), float(hi[0]), float(lo[1]),
                      float(hi[1]))  # fmt: skip
    summary = index_cells(metrics, job, summary)
    results.save_summary(metrics, job, summary.to_json())
    return summary


#: frames placed per shard when a map is split over an Indexed Job's Pods (each shard also fits the sample)
SHARD_FRAMES = 1_000_000
#: where each shard of a split map records the fit it placed its frames with
PARTS = "map_parts"


def shards_for(frames: int, sample: int, most: int) -> int:
    """How many shards a map of ``frames`` frames fitted on ``sample`` is split into, with ``most`` allowed: a
    shard per :data:`SHARD_FRAMES` frames to place (every shard fits the same sample, so only the placing
    divides)."""
    placed = max(frames - sample, 0)
    if most <= 1 or placed <= SHARD_FRAMES:
        return 1
    return min(most, -(-placed // SHARD_FRAMES))


@contextlib.contextmanager
def _one_thread() -> Any:
    """NN-descent's graph depends on how many threads build it, and the Pods of one job may run on nodes with
    different numbers of cores: a shard fits the map on one thread, so that every shard fits the same map."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def build_shard(
    ctx: JobContext | None,
    metrics: MetricsStore,
    vectors: VectorStore,
    job: Job,
    *,
    shard: int,
    shards: int,
    dataset: str,
    space: str,
    space_metric: str,
    sample: int = DEFAULT_SAMPLE,
) -> int:
    """Shard ``shard`` of ``shards`` of the job's map: fits the same sample as every shard (the same frames,
    seed and thread count give the same map), places its slice of the other frames and stores them (shard 0
    stores the fitted frames too), and records a digest of its fit in ``map_parts``. It reads the fitted
    frames' vectors and its own slice's, never every vector. Run again, it writes the same rows. Returns how
    many frames it placed."""
    progress = progress_of(ctx)
    plan = _plan(ctx, metrics, vectors, job, dataset, space, space_metric, sample)
    progress(f"fitting the map (shard {shard + 1} of {shards})", 0.35)
    with _one_thread():
        fitted_x, fitted_xy = _fitted(vectors, job, dataset, space, plan)
    if shard == 0:
        _write(metrics, job, dataset, plan, plan.fit_rows, fitted_xy, fitted=True)
    span = neighbors.shard_rows(len(plan.rest), shard, shards)
    mine = plan.rest[span.start : span.stop]
    if len(plan.ids) < 3:
        _write(metrics, job, dataset, plan, mine, np.zeros((len(mine), 2), np.float32), fitted=False)
    elif len(mine):
        _place_and_write(progress, f"placing shard {shard + 1} of {shards}", metrics, vectors, job, dataset, space,
                         plan, mine, fitted_x, fitted_xy)  # fmt: skip
    metrics.insert_arrow(PARTS, pa.table({
        "project": [job.project], "job_id": [job.job_id], "shard": pa.array([shard], pa.uint32()),
        "shards": pa.array([shards], pa.uint32()), "fit_digest": [_digest(plan, fitted_xy)],
        "placed": pa.array([len(mine)], pa.uint64()),
    }))  # fmt: skip
    return len(mine)


def _digest(plan: _Plan, fitted_xy: np.ndarray) -> str:
    """What identifies a fit: its frames and their positions, to the bit."""
    h = hashlib.sha256()
    for frame in (plan.ids[i] for i in plan.fit_rows):
        h.update(frame.encode() + b"\0")
    h.update(np.ascontiguousarray(fitted_xy, dtype=np.float32).tobytes())
    return h.hexdigest()


def _finish(progress: Any, metrics: MetricsStore, job: Job, shards: int, space_metric: str) -> Summary:
    """The summary of a map whose ``shards`` stored its points, once every shard recorded the same fit."""
    progress("checking the shards' fits", 0.5)
    params = {"p": job.project, "j": job.job_id}
    parts = metrics.query(
        f"SELECT shard, fit_digest FROM {PARTS} FINAL WHERE project = {{p:String}} AND job_id = {{j:String}}"
        f" AND shards = {{n:UInt32}} ORDER BY shard",
        {**params, "n": shards},
    ).rows
    missing = sorted(set(range(shards)) - {int(r[0]) for r in parts})
    if missing:
        raise ValueError(f"shards {missing} of {shards} of the map recorded no part: run the map again")
    if len({r[1] for r in parts}) > 1:
        odd = [int(r[0]) for r in parts if r[1] != parts[0][1]]
        raise ValueError(f"shards {odd} fitted a different map from shard 0: the dataset's frames changed while"
                         " the shards ran, or nodes of different CPU types gave different floating-point results;"
                         " run the map again, its Pods on one node type, or unsplit"
                         " (SHOAL_KUBERNETES_JOB_SHARDS=1)")  # fmt: skip
    frames, fitted, min_x, max_x, min_y, max_y = metrics.query(
        "SELECT count(), countIf(fitted = 1), min(x), max(x), min(y), max(y) FROM map_points FINAL"
        " WHERE project = {p:String} AND job_id = {j:String}",
        params,
    ).rows[0]
    metrics.command(f"DELETE FROM {PARTS} WHERE project = {{p:String}} AND job_id = {{j:String}}", params)
    metric = "euclidean" if space_metric == "L2" else "cosine"
    summary = Summary(int(frames), int(fitted), metric, float(min_x), float(max_x), float(min_y), float(max_y))
    summary = index_cells(metrics, job, summary)
    results.save_summary(metrics, job, summary.to_json())
    return summary


def discard(metrics: MetricsStore, job: Job) -> None:
    """Removes what a run of the job wrote (a cancelled or failed run keeps nothing)."""
    results.discard(metrics, job, (*POINT_TABLES, PARTS))


def summary_of(metrics: MetricsStore, project: str, job_id: str) -> Summary | None:
    return results.summary_of(metrics, project, job_id, Summary)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Colours:
    """What a viewport's points carry besides their label and split; each part is optional."""

    #: the map's dataset
    dataset: str
    #: an inference set of the dataset (at its confidence threshold): predicted class, correctness
    predictions: View | None = None
    #: a finished label-issues job of the dataset: its flags (without the dismissed ones)
    issues_job_id: str = ""
    #: whether that job judged boxes (detection_issues) rather than classification labels
    detection: bool = False
    #: a checked metadata key (see :func:`shoal.common.data.query.metadata_key`)
    metadata_key: str = ""


@dataclass(frozen=True)
class Point:
    frame_id: str
    x: float
    y: float
    label_class: int | None
    split: str
    predicted_class: int | None = None
    #: None without a prediction or a label
    correct: bool | None = None
    label_issue: bool = False
    #: classification label issues: the probability of the frame's label (None if not examined)
    self_confidence: float | None = None
    #: the metadata key's value: (kind, value), kind one of string, number, bool, timestamp
    metadata: tuple[str, Any] | None = None


#: a frame's value of a metadata key, from the typed map that holds it (a key has one type in a
#: dataset; should a frame hold it in two maps, the later of these wins, as in QueryDatapoints)
_META_KINDS = (("timestamp", "meta_time"), ("bool", "meta_bool"), ("number", "meta_num"), ("string", "meta_str"))


def viewport_tables(colours: Colours | None) -> tuple[str, ...]:
    """The tables a :func:`viewport` with these colours reads."""
    tables = list(POINT_TABLES)
    if colours is not None and colours.predictions is not None:
        tables += VIEW_TABLES
    if colours is not None and colours.issues_job_id:
        tables += ["detection_issue_frames" if colours.detection else "label_issue_frames",
                   *dismissals.IN_FORCE_TABLES]  # fmt: skip
    if colours is not None and colours.metadata_key:
        tables.append("frames")
    return tuple(tables)


def viewport(
    metrics: MetricsStore,
    project: str,
    job_id: str,
    *,
    box: tuple[float, float, float, float] | None,
    max_points: int,
    colours: Colours | None = None,
    summary: Summary | None = None,
) -> tuple[list[Point], int]:
    """Up to ``max_points`` points inside ``box`` (min x, min y, max x, max y; None: all), the
    lowest priorities first, and how many points the box holds (without a box, from the job's
    ``summary`` when given; in a box, by the cells it covers, see :func:`box_count`). With ``colours``,
    each point also carries what they ask for, joined in the same statement to the sampled points
    (which stay the same whatever is asked) and looked up by their frame ids."""
    table, total = viewport_table(metrics, project, job_id, box=box, max_points=max_points, colours=colours,
                                  summary=summary)  # fmt: skip
    return [Point(*c[:5], predicted_class=c[5], correct=c[6], label_issue=c[7], self_confidence=c[8], metadata=c[9])
            for c in zip(*viewport_columns(table), strict=True)], total  # fmt: skip


#: the columns of :func:`viewport_columns`, in order
VIEWPORT_COLUMNS = ("frame_id", "x", "y", "label_class", "split", "predicted_class", "correct", "label_issue",
                    "self_confidence", "metadata")  # fmt: skip


def viewport_columns(table: pa.Table) -> list[list[Any]]:
    """A :func:`viewport_table` as one list per field of :class:`Point` (:data:`VIEWPORT_COLUMNS`, None
    where a point has no value), which a caller turns into its answer without a Python object per point."""
    fields = [table.column(name).to_pylist() for name in VIEWPORT_COLUMNS[:9]]
    metadata: list[Any] = [None] * table.num_rows
    if "meta_kind" in table.column_names:
        values = {k: table.column(f"meta_{k}").to_pylist() for k, _ in _META_KINDS}
        metadata = [(k, values[k][i]) if k else None for i, k in enumerate(table.column("meta_kind").to_pylist())]
    return [*fields, metadata]


def viewport_table(
    metrics: MetricsStore,
    project: str,
    job_id: str,
    *,
    box: tuple[float, float, float, float] | None,
    max_points: int,
    colours: Colours | None = None,
    summary: Summary | None = None,
) -> tuple[pa.Table, int]:
    """:func:`viewport` as an Arrow table, as the store answers it: the first nine fields of
    :data:`VIEWPORT_COLUMNS` (null where a point has no value; ``correct`` and ``label_issue`` as
    booleans), and with a metadata key ``meta_kind`` (the type of the point's value, ``""`` without
    one) and the value in ``meta_<kind>``; with the points in the viewport."""
    where = "project = {project:String} AND job_id = {job:String}"
    params: dict[str, Any] = {"project": project, "job": job_id, "limit": max_points}
    cells = None
    if box is not None:
        where += _BOX
        params.update(x0=box[0], y0=box[1], x1=box[2], y1=box[3])
        cells = box_cells(box, summary)
        total = box_count(metrics, project, job_id, box, cells)
    elif summary is not None:
        total = summary.frames
    else:
        total = int(metrics.query(f"SELECT count() FROM map_points FINAL WHERE {where}", params).scalar())
    # Read in priority order, the store stops once the limit is met: about limit x frames / total rows read;
    # read by cell, it sorts the box's points: about total rows. The fewer.
    frames = summary.frames if summary is not None else total
    if cells is not None and total * total < max_points * frames:
        params.update(zip(("cx0", "cy0", "cx1", "cy1"), cells, strict=True))
        source = (
            f"map_points_by_cell WHERE {where} AND cx BETWEEN {{cx0:UInt16}} AND {{cx1:UInt16}}"
            " AND cy BETWEEN {cy0:UInt16} AND {cy1:UInt16}"
        )
    else:
        source = f"map_points_by_priority FINAL WHERE {where}"
    shown = (
        f"SELECT frame_id, x, y, label_class, split, priority FROM {source}"
        " ORDER BY priority, frame_id LIMIT {limit:UInt32}"
    )
    colours = colours or Colours(dataset="")
    ids = f"frame_id IN (SELECT frame_id FROM ({shown}))"  # the shown points' frames
    columns = ["p.frame_id", "p.x", "p.y", "p.label_class", "p.split"]
    joins: list[tuple[str, str]] = []  # (subquery, alias), each with one row per frame
    if colours.predictions is not None:
        shared = Params()
        source = view_sql(colours.predictions, shared)
        params.update(shared.values)
        joins.append((f"SELECT frame_id, predicted_class, correct FROM ({source}) WHERE {ids}", "e"))
        columns += ["e.predicted_class", "e.correct"]
    else:
        columns += ["CAST(NULL AS Nullable(Int32))", "CAST(NULL AS Nullable(UInt8))"]
    if colours.issues_job_id:
        if colours.detection:  # a frame is flagged when one of its boxes is; no self-confidence
            table, confidence = "detection_issue_frames", "CAST(NULL AS Nullable(Float64))"
        else:
            table, confidence = "label_issue_frames", "toFloat64(self_confidence)"
        params.update(dataset=colours.dataset, issues_job=colours.issues_job_id)
        joins.append((
            f"SELECT frame_id, is_issue AND NOT ({dismissals.frame_dismissed_sql()}) AS flagged,"
            f" {confidence} AS self_confidence FROM {table} FINAL"
            f" WHERE project = {{project:String}} AND job_id = {{issues_job:String}} AND {ids}", "i",
        ))  # fmt: skip
        columns += ["i.flagged", "i.self_confidence"]
    else:
        columns += ["CAST(NULL AS Nullable(UInt8))", "CAST(NULL AS Nullable(Float64))"]
    if colours.metadata_key:
        params.update(dataset=colours.dataset, key=colours.metadata_key)
        kind = ", ".join(f"mapContains({m}, {{key:String}}), '{k}'" for k, m in _META_KINDS)
        values = ", ".join(f"{m}[{{key:String}}] AS {k}_value" for k, m in _META_KINDS)
        joins.append((
            f"SELECT frame_id, multiIf({kind}, '') AS meta_kind, {values} FROM frames FINAL"
            f" WHERE project = {{project:String}} AND dataset = {{dataset:String}} AND {ids}", "m",
        ))  # fmt: skip
        columns += ["m.meta_kind", *(f"m.{k}_value" for k, _ in _META_KINDS)]
    sql = f"SELECT {', '.join(columns)} FROM ({shown}) AS p"
    sql += "".join(f" LEFT JOIN ({sub}) AS {a} ON {a}.frame_id = p.frame_id" for sub, a in joins)
    statement = f"{sql} ORDER BY p.priority, p.frame_id{SETTINGS}"
    names = [*VIEWPORT_COLUMNS[:9], *(["meta_kind", *(f"meta_{k}" for k, _ in _META_KINDS)] if colours.metadata_key
                                      else [])]  # fmt: skip
    # read as columns (about 3 times faster than rows at 20,000 points)
    aliased = "SELECT " + ", ".join(f"{c} AS c{i}" for i, c in enumerate(columns))
    table = metrics.query_arrow(statement.replace(f"SELECT {', '.join(columns)}", aliased, 1), params)
    table = table.rename_columns(names)
    correct = table.column("correct").cast(pa.bool_())
    # a frame the issues job did not examine is not an issue
    flagged = table.column("label_issue").cast(pa.bool_()).fill_null(False)
    table = table.set_column(names.index("correct"), "correct", correct)
    return table.set_column(names.index("label_issue"), "label_issue", flagged), total


def check_polygon(vertices: Sequence[tuple[float, float]], field: str = "polygon") -> list[tuple[float, float]]:
    """The vertices of a simple polygon, without repeats (a vertex equal to the one before, a last
    vertex equal to the first). Raises :class:`InvalidArgument` naming ``field`` for too few or too
    many vertices, a coordinate that is not finite, or edges that cross or touch."""
    if len(vertices) > MAX_VERTICES:
        raise InvalidArgument(f"has {len(vertices):,} vertices, more than the {MAX_VERTICES:,} allowed", field=field)
    for i, (x, y) in enumerate(vertices):
        for name, value in (("x", x), ("y", y)):
            if not math.isfinite(value):
                raise InvalidArgument(f"must be finite, got {value}", field=f"{field}[{i}].{name}")
    kept = [i for i in range(len(vertices)) if i == 0 or vertices[i] != vertices[i - 1]]
    if len(kept) > 1 and vertices[kept[-1]] == vertices[kept[0]]:
        kept.pop()
    if len(kept) < MIN_VERTICES:
        raise InvalidArgument(f"needs at least {MIN_VERTICES} distinct vertices, got {len(kept)}", field=field)
    points = np.array([vertices[i] for i in kept], dtype=np.float64)
    crossing = first_crossing(points)
    if crossing is not None:
        a, b = (kept[e] for e in crossing)
        raise InvalidArgument(
            f"crosses itself: the edge from vertex {a} crosses or touches the edge from vertex {b}; draw a polygon"
            " whose edges meet only at the vertex two neighbouring edges share",
            field=field,
        )
    return [(float(x), float(y)) for x, y in points]


def first_crossing(points: np.ndarray) -> tuple[int, int] | None:
    """A pair of edges (i, j), i < j, of the closed polygon ``points`` (N x 2, no two consecutive
    vertices equal) that cross or touch anywhere but at the vertex two neighbouring edges share (a
    neighbour folding back along an edge counts); None for a simple polygon. Edge i runs from
    vertex i to vertex i + 1 (the last one to vertex 0). O(N^2) comparisons, EDGE_BLOCK edges
    against all the others at a time."""
    n = len(points)
    a = points
    d = np.roll(points, -1, axis=0) - a

    def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    # neighbours (i, i + 1) overlap only when collinear and pointing back at each other
    nd = np.roll(d, -1, axis=0)
    folds = np.flatnonzero((cross(d, nd) == 0) & ((d * nd).sum(axis=1) < 0))
    if len(folds):
        i = int(folds[0])
        return (i, i + 1) if i + 1 < n else (0, i)
    j = np.arange(n)[None, :]
    for start in range(0, n, EDGE_BLOCK):
        i = np.arange(start, min(n, start + EDGE_BLOCK))[:, None]
        apart = (j > i + 1) & ~((i == 0) & (j == n - 1))  # edges that share no vertex
        ai, di, aj, dj = a[i], d[i], a[j], d[j]
        d1, d2 = cross(dj, ai - aj), cross(dj, ai + di - aj)
        d3, d4 = cross(di, aj - ai), cross(di, aj + dj - ai)
        meet = (d1 * d2 <= 0) & (d3 * d4 <= 0)
        collinear = (d1 == 0) & (d2 == 0) & (d3 == 0) & (d4 == 0)
        if collinear.any():  # on one line: they meet when their extents overlap on both axes
            lo_i, hi_i = np.minimum(ai, ai + di), np.maximum(ai, ai + di)
            lo_j, hi_j = np.minimum(aj, aj + dj), np.maximum(aj, aj + dj)
            meet = np.where(collinear, ((lo_i <= hi_j) & (lo_j <= hi_i)).all(axis=-1), meet)
        hits = np.argwhere(meet & apart)
        if len(hits):
            return int(start + hits[0][0]), int(hits[0][1])
    return None


def region(
    metrics: MetricsStore,
    project: str,
    job_id: str,
    polygon: Sequence[tuple[float, float]],
    *,
    after: str | None,
    size: int,
    summary: Summary | None = None,
) -> tuple[list[str], int]:
    """Up to ``size`` frame ids of the job's points inside ``polygon`` (a simple polygon, see
    :func:`check_polygon`), in frame id order after ``after``; and how many points it holds. With the
    job's ``summary`` of a map kept by cell, only the cells of the polygon's bounding box are read."""
    xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
    box = (min(xs), min(ys), max(xs), max(ys))
    params: dict[str, Any] = {"project": project, "job": job_id, "polygon": list(polygon), "x0": box[0],
                              "x1": box[2], "y0": box[1], "y1": box[3], "limit": size}  # fmt: skip
    # the bounding box first (cheap), then the polygon; it was checked simple by check_polygon, whose
    # message names the edges, so ClickHouse's own check of it is off
    where = (
        "project = {project:String} AND job_id = {job:String}" + _BOX
        + " AND pointInPolygon((toFloat64(x), toFloat64(y)), {polygon:Array(Tuple(Float64, Float64))})"
    )  # fmt: skip
    source = "map_points FINAL"
    cells = box_cells(box, summary)
    if cells is not None:
        params.update(zip(("cx0", "cy0", "cx1", "cy1"), cells, strict=True))
        source = "map_points_by_cell"
        where += " AND cx BETWEEN {cx0:UInt16} AND {cx1:UInt16} AND cy BETWEEN {cy0:UInt16} AND {cy1:UInt16}"
    settings = " SETTINGS validate_polygons = 0"
    total = int(metrics.query(f"SELECT count() FROM {source} WHERE {where}{settings}", params).scalar())
    page_where = where
    if after is not None:
        page_where += " AND frame_id > {after:String}"
        params["after"] = after
    rows = metrics.query(
        f"SELECT frame_id FROM {source} WHERE {page_where} ORDER BY frame_id LIMIT {{limit:UInt32}}{settings}",
        params,
    ).rows
    return [str(r[0]) for r in rows], total
