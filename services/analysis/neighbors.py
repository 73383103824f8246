"""The k-nearest-neighbour graph of a dataset in one embedding space, and what it answers:
outliers, near and exact duplicates, duplicates across splits (leakage), and what each frame's
neighbours are labeled.

The frame vectors are read from the vector store in chunks, the graph is built in process (exact
search with faiss up to :data:`EXACT_LIMIT` frames, NN-descent from ``pynndescent`` above, its
kernels loaded as the service starts), and stored with the scores derived from it. A job allowed
shards (the Pods of an Indexed Job, :func:`shards_for`) splits the graph and the graphs within classes
over them (:func:`build_shard`): exact search over slices of the frames up to
:data:`SHARDED_EXACT_LIMIT`, overlapping cells of the frames above (:mod:`graph_cells`); one more run
merges their parts and scores the whole (:func:`build`). The scores:

- outlier score: the mean distance to the k nearest frames (higher: further from everything);
- nearest distance, and the duplicate pairs: neighbours closer than ``duplicate_distance``
  (default: a tenth of the median nearest distance of the dataset), exact when the distance is
  within float error of 0;
- the majority label of the labeled neighbours, and the share of them that disagree with the
  frame's own label;
- the within-class outlier score: the mean distance to the k nearest frames of the same label,
  from one graph per class (a frame unlike the rest of its class, even where it sits among
  frames of another class).

Distances are cosine distances in COSINE and INNER_PRODUCT spaces, Euclidean in L2 spaces.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba.core.errors import NumbaWarning

from shoal.analysis import graph_cells, ranked
from shoal.analysis.export import FrameTable
from shoal.common.data import results
from shoal.common.data.embeddings import read_vectors, read_vectors_exactly, read_vectors_of
from shoal.common.data.evaluations import frame_fields
from shoal.common.jit import import_cached
from shoal.common.jobs import Job, JobContext, progress_of
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.stores.vectors import VectorStore

KIND = "neighbors"
DEFAULT_K = 10
#: up to this many frames the graph is exact (brute force, faiss); above, NN-descent (pynndescent).
#: faiss's HNSW graph was measured in its place at 1M frames (bench/RESULTS.md): recall 0.95 to 0.99
#: against 0.79, but 1.8 to 2.3 times the job's time and 5 to 38 of the 2,000 planted duplicates missed
EXACT_LIMIT = 20_000
#: up to this many frames a job allowed shards (SHOAL_KUBERNETES_JOB_SHARDS) builds the exact graph across them;
#: exact search costs frames squared: 19 s of 2 cores in one process at 100k against NN-descent's 1.5 s (recall
#: 0.99), so shards buy exact neighbours, not time (bench/RESULTS.md, "The neighbour graph in shards")
SHARDED_EXACT_LIMIT = 100_000
#: above SHARDED_EXACT_LIMIT, a job allowed shards splits its frames into overlapping cells (graph_cells), each cell's
#: graph by NN-descent, a shard per this many frames: NN-descent's one graph cannot be split, its cells can
PARTITIONED_SHARD_FRAMES = 250_000
#: frames per cell of the partitioned graph: cells of about 100k frames keep NN-descent's recall within each
#: and meet at their borders through the overlap (bench/RESULTS.md, "The neighbour graph in shards")
PARTITIONED_CELL_FRAMES = 100_000
#: queries searched at a time (progress is reported between blocks)
SEARCH_BLOCK = 50_000
#: distances this small are exact duplicates (float error of identical vectors)
EXACT = 1e-6

#: what ExportJobResult streams of a finished job: one row per frame
FRAMES = FrameTable(
    "neighbor_scores",
    "frame_id, split, label_class, outlier_score, nearest_distance, neighbor_label, label_disagreement, duplicates",
)

MIGRATIONS = (
    Migration(
        component="analysis",
        version=5,
        name="neighbour graphs, outlier scores and duplicates",
        statements=(
            "CREATE TABLE IF NOT EXISTS knn_graph ("
            " project LowCardinality(String), job_id String, frame_id String, neighbors Array(String),"
            " distances Array(Float32)) ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id)",
            "CREATE TABLE IF NOT EXISTS neighbor_scores ("
            " project LowCardinality(String), job_id String, frame_id String, split LowCardinality(String),"
            " label_class Nullable(Int32), outlier_score Float32, nearest_distance Float32,"
            " neighbor_label Nullable(Int32), label_disagreement Nullable(Float32), duplicates UInt32)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id)",
            "CREATE TABLE IF NOT EXISTS duplicate_pairs ("
            " project LowCardinality(String), job_id String, frame_a String, frame_b String, distance Float32,"
            " split_a LowCardinality(String), split_b LowCardinality(String), exact UInt8)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_a, frame_b)",
        ),
    ),
    Migration(
        component="analysis",
        version=7,
        name="within-class outlier scores",
        statements=("ALTER TABLE neighbor_scores ADD COLUMN IF NOT EXISTS class_outlier_score Nullable(Float32)",),
    ),
    Migration(
        component="analysis",
        version=11,
        name="the parts of a neighbour graph built in shards",
        statements=(
            "CREATE TABLE IF NOT EXISTS knn_graph_parts ("
            " project LowCardinality(String), job_id String, frame_id String, part UInt32, neighbors Array(String),"
            " distances Array(Float32)) ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id, part)",
            "CREATE TABLE IF NOT EXISTS knn_class_parts ("
            " project LowCardinality(String), job_id String, frame_id String, label_class Int32,"
            " class_outlier_score Nullable(Float32)) ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id)",
        ),
    ),
    Migration(
        component="analysis",
        version=16,
        name="outliers and duplicate pairs in page order",
        statements=(
            "CREATE TABLE IF NOT EXISTS outlier_ranks ("
            " project LowCardinality(String), job_id String, listing LowCardinality(String), rank UInt32,"
            " frame_id String, split LowCardinality(String), label_class Nullable(Int32), outlier_score Float32,"
            " nearest_distance Float32, neighbor_label Nullable(Int32), label_disagreement Nullable(Float32),"
            " duplicates UInt32, neighbors Array(String), distances Array(Float32),"
            " class_outlier_score Nullable(Float32))"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, listing, rank)",
            "CREATE TABLE IF NOT EXISTS duplicate_ranks ("
            " project LowCardinality(String), job_id String, listing LowCardinality(String), rank UInt32,"
            " frame_a String, frame_b String, distance Float32, split_a LowCardinality(String),"
            " split_b LowCardinality(String), exact UInt8)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, listing, rank)",
        ),
    ),
)
TABLES = ("knn_graph", "neighbor_scores", "duplicate_pairs", "knn_graph_parts", "knn_class_parts")
RANK_TABLES = ("outlier_ranks", "duplicate_ranks")


@dataclass
class Summary(results.JsonSummary):
    frames: int
    k: int
    metric: str
    duplicate_distance: float
    median_nearest_distance: float
    exact_duplicate_pairs: int
    near_duplicate_pairs: int
    cross_split_pairs: int
    exact_search: bool


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero: cosine distance 1 to everything)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0).astype(np.float32)


def search(
    base: np.ndarray, queries: np.ndarray, k: int, metric: str, *, progress: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``base`` to each row of ``queries``: (indices, distances), nearest
    first; cosine or Euclidean distances, exact (brute force).

    faiss finds the neighbours in float32 through inner products, whose rounding puts an exact copy
    up to about 1e-3 away; the distances to the neighbours found are computed again in float64
    from the vectors themselves (a copy is then 0 away) and each row sorted by them."""
    import faiss

    cosine = metric == "cosine"
    same = queries is base
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = base if same else np.ascontiguousarray(queries, dtype=np.float32)
    indexed = _unit(base) if cosine else base
    asked = indexed if same else (_unit(queries) if cosine else queries)
    d = base.shape[1]
    kind = faiss.METRIC_INNER_PRODUCT if cosine else faiss.METRIC_L2
    index = faiss.IndexFlat(d, kind)
    index.add(indexed)
    idx = np.empty((len(queries), k), dtype=np.int64)
    dist = np.empty((len(queries), k), dtype=np.float32)
    for s in range(0, len(queries), SEARCH_BLOCK):
        _, found = index.search(asked[s : s + SEARCH_BLOCK], k)
        rows = slice(s, s + len(found))
        idx[rows], dist[rows] = _exact_distances(base, queries[rows], found, cosine)
        if progress is not None:
            progress((s + len(found)) / len(queries))
    return idx, dist


#: query rows whose neighbours' distances are computed again at a time (bounds the float64 copies)
_EXACT_BLOCK = 4_096


def _exact_distances(
    base: np.ndarray, queries: np.ndarray, found: np.ndarray, cosine: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``found`` (neighbours of ``queries`` in ``base``, -1: none) sorted by their distances, computed
    in float64; a missing neighbour is infinitely far."""
    idx = np.empty_like(found)
    dist = np.empty(found.shape, dtype=np.float32)
    for s in range(0, len(found), _EXACT_BLOCK):
        f = found[s : s + _EXACT_BLOCK]
        q = queries[s : s + _EXACT_BLOCK].astype(np.float64)
        b = base[np.maximum(f, 0)].astype(np.float64)  # (rows, k, d)
        if cosine:
            qn, bn = np.linalg.norm(q, axis=1), np.linalg.norm(b, axis=2)
            dots = np.einsum("rd,rkd->rk", q, b)
            denom = qn[:, None] * bn
            d = np.where(denom > 0, 1.0 - dots / np.where(denom > 0, denom, 1.0), 1.0)
        else:
            d = np.sqrt(np.einsum("rkd,rkd->rk", b - q[:, None, :], b - q[:, None, :]))
        d = np.where(f < 0, np.inf, np.maximum(d, 0.0))
        order = np.argsort(d, axis=1, kind="stable")
        idx[s : s + len(f)] = np.take_along_axis(f, order, axis=1)
        dist[s : s + len(f)] = np.take_along_axis(d, order, axis=1)
    return idx, dist


def knn(x: np.ndarray, k: int, metric: str, progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other rows of each row: (indices, distances), nearest first."""
    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.float32)
    if n <= EXACT_LIMIT:
        idx, dist = search(x, x, k + 1, metric, progress=progress)
    else:
        idx, dist = nn_descent(x, k + 1, metric)
    return _drop_self(idx.astype(np.int64), dist.astype(np.float32), k, 0)


def shard_rows(n: int, shard: int, shards: int) -> range:
    """The rows of shard ``shard`` of ``shards``: contiguous, as even as can be, together every row once."""
    return range(n * shard // shards, n * (shard + 1) // shards)


def knn_shard(x: np.ndarray, rows: range, k: int, metric: str, progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The exact k nearest other rows of ``x`` to each row of ``rows`` (one shard of :func:`knn`'s
    graph): (indices into ``x``, distances), nearest first. The shards of a graph together give the
    exact graph, whatever their number."""
    k = min(k, len(x) - 1)
    if k < 1 or not len(rows):
        return np.zeros((len(rows), max(k, 0)), dtype=np.int64), np.zeros((len(rows), max(k, 0)), dtype=np.float32)
    idx, dist = search(x, x[rows.start : rows.stop], k + 1, metric, progress=progress)
    return _drop_self(idx.astype(np.int64), dist.astype(np.float32), k, rows.start)


def shards_for(frames: int, most: int) -> int:
    """How many shards a neighbour graph of ``frames`` frames is split into, with ``most`` allowed: one up
    to :data:`EXACT_LIMIT` (exact in one process is quick); up to :data:`SHARDED_EXACT_LIMIT`, a shard per
    :data:`EXACT_LIMIT` frames (the exact graph, its search spread over the shards); above, a shard per
    :data:`PARTITIONED_SHARD_FRAMES` (the graph in overlapping cells, NN-descent in each)."""
    if most <= 1 or frames <= EXACT_LIMIT:
        return 1
    per = EXACT_LIMIT if frames <= SHARDED_EXACT_LIMIT else PARTITIONED_SHARD_FRAMES
    return max(1, min(most, -(-frames // per)))


def _pynndescent() -> Any:
    """pynndescent, with numba's disk cache turned on for the kernels it compiles without one (about 140 of
    the 200 its NN-descent compiles; a restart then loads them). Two cannot be cached, ``nn_descent`` and
    ``nn_descent_internal``: they take the distance as a function value, a dynamic global to numba, so
    they and what they inline compile in every process, on the warm-up thread as the service starts."""
    pynndescent = import_cached(
        "pynndescent", ("pynndescent_", "utils", "kernels", "distances", "rp_trees", "threaded_rp_trees", "graph_utils")
    )
    # said once here instead of by numba at every start: these two compile in each process
    warnings.filterwarnings("ignore", message='Cannot cache compiled function "nn_descent', category=NumbaWarning)
    return pynndescent


def nn_descent(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The approximate k nearest rows of each row (itself among them), by NN-descent."""
    index = _pynndescent().NNDescent(x, n_neighbors=k, metric=metric, random_state=0, low_memory=True)
    idx, dist = index.neighbor_graph
    return idx, dist


@numba.njit(cache=True)
def _drop_self(idx: np.ndarray, dist: np.ndarray, k: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row (row r is row ``first`` + r of the vectors) without itself (wherever a duplicate put
    it), k entries."""
    n = idx.shape[0]
    out_i = np.empty((n, k), dtype=np.int64)
    out_d = np.empty((n, k), dtype=np.float32)
    for r in range(n):
        c = 0
        for j in range(idx.shape[1]):
            if idx[r, j] == r + first or idx[r, j] < 0 or c == k:
                continue
            out_i[r, c] = idx[r, j]
            out_d[r, c] = max(dist[r, j], 0.0)
            c += 1
        while c < k:  # the row held neither itself nor enough others: repeat the furthest
            out_i[r, c] = out_i[r, c - 1]
            out_d[r, c] = out_d[r, c - 1]
            c += 1
    return out_i, out_d


@numba.njit(cache=True)
def _neighbor_labels(idx: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the most common label among its labeled neighbours (-1: none; ties: the lower
    label) and the share of them that differ from the row's own label (-1: not defined)."""
    n, k = idx.shape
    major = np.full(n, -1, dtype=np.int64)
    disagree = np.full(n, -1.0, dtype=np.float32)
    vals = np.empty(k, dtype=np.int64)
    for r in range(n):
        m = 0
        for j in range(k):
            v = labels[idx[r, j]]
            if v >= 0:
                vals[m] = v
                m += 1
        if m == 0:
            continue
        s = np.sort(vals[:m])
        best, best_n, run = s[0], 1, 1
        for j in range(1, m):
            run = run + 1 if s[j] == s[j - 1] else 1
            if run > best_n:
                best, best_n = s[j], run
        major[r] = best
        if labels[r] >= 0:
            differ = 0
            for j in range(m):
                if vals[j] != labels[r]:
                    differ += 1
            disagree[r] = differ / m
    return major, disagree


def class_outlier_scores(
    x: np.ndarray, labels: np.ndarray, k: int, metric: str, progress: Any = None, classes: Any = None
) -> np.ndarray:
    """Per frame, the mean distance to its k nearest frames of the same label (NaN: unlabeled, alone in
    its class, or of a class not among ``classes`` when given); each class's graph is built as the global
    one is."""
    out = np.full(len(labels), np.nan, dtype=np.float32)
    classes = np.unique(labels[labels >= 0]) if classes is None else np.asarray(classes)
    total = max(int(np.isin(labels, classes).sum()), 1)
    done = 0
    for cls in classes:
        rows = np.flatnonzero(labels == cls)
        if len(rows) >= 2:
            _, dist = knn(x[rows], k, metric)
            out[rows] = dist.mean(axis=1)
        done += len(rows)
        if progress is not None:
            progress(done / total)
    return out


def shard_classes(labels: np.ndarray, shard: int, shards: int) -> np.ndarray:
    """The classes whose within-class graphs shard ``shard`` of ``shards`` builds: dealt by their cost, the
    largest first (:func:`graph_cells.deal`), the same in every process."""
    classes, sizes = np.unique(labels[labels >= 0], return_counts=True)
    return classes[graph_cells.deal(sizes.tolist(), shards, EXACT_LIMIT) == shard]


def build(
    ctx: JobContext | None,
    metrics: MetricsStore,
    vectors: VectorStore,
    job: Job,
    *,
    dataset: str,
    space: str,
    space_metric: str,
    k: int = DEFAULT_K,
    duplicate_distance: float = 0.0,
) -> Summary:
    """Builds and stores the graph and its scores under the job; returns the summary."""

    progress = progress_of(ctx)
    sharded = ctx is not None and ctx.shards > 1

    if not sharded:
        discard(metrics, job)
    # finishing from the shards' parts, only which frames have a vector is read here (not every vector)
    ids, x = read_vectors(ctx, metrics, vectors, job.project, dataset, space, with_vectors=not sharded)
    metric = "euclidean" if space_metric == "L2" else "cosine"
    labels, splits = frame_fields(metrics, job.project, dataset, ids)
    class_score = np.full(len(ids), np.nan, dtype=np.float32)
    within = np.arange(len(ids))  # the frames whose graphs within their class are built here
    if sharded:  # the shards wrote the graph in parts: merge them, then nothing of an earlier run is kept
        progress("merging the shards' graph", 0.35)
        known = pc.SetLookupOptions(pa.array(ids, pa.string()))
        idx, dist = _merged_parts(metrics, job, known, len(ids), min(k, max(len(ids) - 1, 0)))
        class_score, left = _class_parts(metrics, job, known, labels)
        discard(metrics, job)
        # the classes no shard built (labeled since): the vectors of their frames only
        asked = [ids[i] for i in np.flatnonzero(np.isin(labels, left))]
        have, x = read_vectors_of(None, vectors, job.project, dataset, space, asked)
        within = _positions(pa.array(have, pa.string()), known)  # rows of those with a vector, in x's order
    else:
        progress("building the neighbour graph", 0.35)
        idx, dist = knn(x, k, metric, lambda f: progress("building the neighbour graph", 0.35 + 0.2 * f))
    progress("scoring", 0.55)
    kk = idx.shape[1]
    nearest = dist[:, 0] if kk else np.zeros(len(ids), np.float32)
    score = dist.mean(axis=1) if kk else np.zeros(len(ids), np.float32)
    major, disagree = _neighbor_labels(idx, labels) if kk else (np.full(len(ids), -1), np.full(len(ids), -1.0))
    if len(within):
        class_score[within] = class_outlier_scores(
            x, labels[within], k, metric, lambda f: progress("graphs within classes", 0.55 + 0.2 * f)
        )
    median_nearest = float(np.median(nearest)) if len(ids) else 0.0
    threshold = duplicate_distance if duplicate_distance > 0 else 0.1 * median_nearest
    close = np.argwhere(dist <= max(threshold, EXACT)) if kk else np.zeros((0, 2), dtype=np.int64)
    a, b = close[:, 0], idx[close[:, 0], close[:, 1]] if len(close) else np.zeros(0, dtype=np.int64)
    pair_d = dist[close[:, 0], close[:, 1]] if len(close) else np.zeros(0, np.float32)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    _, first = np.unique(lo * max(len(ids), 1) + hi, return_index=True)
    lo, hi, pair_d = lo[first], hi[first], pair_d[first]
    dup_count = np.bincount(np.concatenate([lo, hi]), minlength=len(ids)).astype(np.uint32)
    exact = pair_d <= EXACT
    cross = (splits[lo] != splits[hi]) & (splits[lo] != "") & (splits[hi] != "") if len(lo) else np.zeros(0, bool)

    progress("writing", 0.8)
    n = len(ids)
    frame_ids = np.asarray(ids, dtype=object)
    if n:
        const = {"project": pa.array([job.project] * n), "job_id": pa.array([job.job_id] * n)}
        _write_graph(metrics, job, frame_ids, frame_ids, idx, dist)
        metrics.insert_arrow("neighbor_scores", pa.table({
            **const, "frame_id": pa.array(frame_ids, pa.string()), "split": pa.array(splits, pa.string()),
            "label_class": pa.array(labels.astype(np.int32), mask=labels < 0),
            "outlier_score": pa.array(score.astype(np.float32)),
            "nearest_distance": pa.array(nearest.astype(np.float32)),
            "neighbor_label": pa.array(np.asarray(major).astype(np.int32), mask=np.asarray(major) < 0),
            "label_disagreement": pa.array(np.asarray(disagree, np.float32), mask=np.asarray(disagree) < 0),
            "duplicates": pa.array(dup_count),
            "class_outlier_score": pa.array(class_score, mask=np.isnan(class_score)),
        }))  # fmt: skip
    if len(lo):
        m = len(lo)
        metrics.insert_arrow("duplicate_pairs", pa.table({
            "project": pa.array([job.project] * m), "job_id": pa.array([job.job_id] * m),
            "frame_a": pa.array(frame_ids[lo], pa.string()), "frame_b": pa.array(frame_ids[hi], pa.string()),
            "distance": pa.array(pair_d.astype(np.float32)), "split_a": pa.array(splits[lo], pa.string()),
            "split_b": pa.array(splits[hi], pa.string()), "exact": pa.array(exact.astype(np.uint8)),
        }))  # fmt: skip
    summary = Summary(
        frames=n,
        k=kk,
        metric=metric,
        duplicate_distance=float(threshold),
        median_nearest_distance=median_nearest,
        exact_duplicate_pairs=int(exact.sum()),
        near_duplicate_pairs=int((~exact).sum()),
        cross_split_pairs=int(cross.sum()),
        exact_search=n <= (SHARDED_EXACT_LIMIT if sharded else EXACT_LIMIT),
    )
    results.save_summary(metrics, job, summary.to_json())
    return summary


def shard_graph(
    vectors_of: Callable[[np.ndarray], np.ndarray],
    n: int,
    shard: int,
    shards: int,
    k: int,
    metric: str,
    progress: Any = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Shard ``shard`` of ``shards`` of the graph of ``n`` rows whose vectors ``vectors_of(rows)`` gives, as
    parts: (part, rows, their neighbours as rows, distances). Up to :data:`SHARDED_EXACT_LIMIT` rows, one
    part: the exact neighbours of the shard's slice of the rows among all rows; above, a part per cell the
    shard was dealt of the rows' overlapping cells (:mod:`graph_cells`), each cell's graph as :func:`knn`
    builds it. Every frame's k nearest of what the parts of all shards give it is the graph
    (:func:`graph_cells.merge`). Above the limit the shard holds a block of vectors while it finds the cells,
    then its own cells' vectors only."""
    if n <= SHARDED_EXACT_LIMIT:
        rows = shard_rows(n, shard, shards)
        if len(rows):
            idx, dist = knn_shard(vectors_of(np.arange(n)), rows, k, metric, progress)
            yield 0, np.arange(rows.start, rows.stop), idx, dist
        return
    cells = graph_cells.cell_count(n, PARTITIONED_CELL_FRAMES)
    rows_of = graph_cells.members(graph_cells.partition_of(vectors_of, n, metric, cells), cells)
    mine = [int(c) for c in np.flatnonzero(graph_cells.deal([len(r) for r in rows_of], shards, EXACT_LIMIT) == shard)]
    needed = np.unique(np.concatenate([rows_of[c] for c in mine])) if mine else np.zeros(0, dtype=np.int64)
    x = vectors_of(needed)
    # the shard's cells as rows of x (needed is sorted); the others are not searched
    dealt = set(mine)
    local = [np.searchsorted(needed, r) if c in dealt else r[:0] for c, r in enumerate(rows_of)]
    for part, rows, idx, dist in graph_cells.cell_graphs(x, local, mine, k, lambda v, kk: knn(v, kk, metric),
                                                         progress):  # fmt: skip
        yield part, needed[rows], needed[idx], dist


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
    k: int = DEFAULT_K,
) -> int:
    """Shard ``shard`` of ``shards`` of the job's graph (:func:`shard_graph`), written to ``knn_graph_parts``;
    run again, it writes the same rows (the table keeps one per frame and part). :func:`build` with
    ``ctx.shards`` then merges the parts and scores the whole graph. Returns the number of frames the shard
    gave neighbours to."""
    progress = progress_of(ctx)
    # which frames have a vector; their vectors are read as the shard needs them (its cells', its classes')
    ids, _ = read_vectors(ctx, metrics, vectors, job.project, dataset, space, with_vectors=False)
    metric = "euclidean" if space_metric == "L2" else "cosine"
    frame_ids = np.asarray(ids, dtype=object)

    every: list[np.ndarray] = []  # every vector, once an exact shard has read them all (up to 100k frames)

    def vectors_of(rows: np.ndarray) -> np.ndarray:
        if every:  # the classes' vectors from what the exact slice read, instead of reading them again
            return every[0][rows]
        x = read_vectors_exactly(vectors, job.project, dataset, space, [ids[i] for i in rows])
        if len(rows) == len(ids) and np.array_equal(rows, np.arange(len(ids))):
            every.append(x)
        return x

    stage = f"building shard {shard + 1} of {shards} of the neighbour graph"
    progress(stage, 0.35)
    given = np.zeros(len(ids), dtype=bool)
    for part, rows, idx, dist in shard_graph(vectors_of, len(ids), shard, shards, k, metric,
                                             lambda f: progress(stage, 0.35 + 0.45 * f)):  # fmt: skip
        _write_graph(metrics, job, frame_ids[rows], frame_ids, idx, dist, table=PARTS, part=part)
        given[rows] = True
    labels, _ = frame_fields(metrics, job.project, dataset, ids)
    classes = shard_classes(labels, shard, shards)
    mine = np.isin(labels, classes)
    rows = np.flatnonzero(mine)
    scores = np.full(len(ids), np.nan, dtype=np.float32)
    scores[rows] = class_outlier_scores(vectors_of(rows), labels[rows], k, metric,
                                        lambda f: progress("graphs within classes", 0.8 + 0.15 * f),
                                        classes=classes)  # fmt: skip
    if len(ids):
        metrics.insert_arrow(CLASS_PARTS, pa.table({
            "project": pa.array([job.project] * int(mine.sum())), "job_id": pa.array([job.job_id] * int(mine.sum())),
            "frame_id": pa.array(frame_ids[mine], pa.string()), "label_class": pa.array(labels[mine].astype(np.int32)),
            "class_outlier_score": pa.array(scores[mine], mask=np.isnan(scores[mine])),
        }))  # fmt: skip
    return int(given.sum())


#: where the shards write their parts of the graph, and the within-class scores of the classes dealt to them
PARTS, CLASS_PARTS = "knn_graph_parts", "knn_class_parts"


def _positions(values: Any, known: Any) -> np.ndarray:
    """The position of each frame id of ``values`` among the job's frame ids (``known``: their lookup), -1 for
    an id that is no frame of them."""
    return pc.index_in(values, options=known).fill_null(-1).to_numpy().astype(np.int64)


def _class_parts(metrics: MetricsStore, job: Job, known: Any, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The within-class scores the job's shards wrote, in the order of the frame ids (NaN where none), and the
    classes no shard scored as labeled now (their graphs are built by the caller)."""
    table = metrics.query_arrow(
        f"SELECT frame_id, label_class, class_outlier_score FROM {CLASS_PARTS} FINAL"
        " WHERE project = {p:String} AND job_id = {j:String}",
        {"p": job.project, "j": job.job_id},
    )
    frame = _positions(table.column("frame_id"), known)
    given = table.column("label_class").fill_null(-1).to_numpy()
    score = table.column("class_outlier_score").to_numpy(zero_copy_only=False).astype(np.float32)
    out = np.full(len(labels), np.nan, dtype=np.float32)
    now = frame >= 0
    now[now] = given[now] == labels[frame[now]]  # a frame relabeled since is scored again with its class
    out[frame[now]] = score[now]
    covered = np.zeros(len(labels), dtype=bool)
    covered[frame[now]] = True
    return out, np.unique(labels[(labels >= 0) & ~covered])


def _write_graph(
    metrics: MetricsStore,
    job: Job,
    own: np.ndarray,
    frame_ids: np.ndarray,
    idx: np.ndarray,
    dist: np.ndarray,
    *,
    table: str = "knn_graph",
    part: int = 0,
) -> None:
    """Writes the neighbours of the frames ``own`` (rows of ``idx`` and ``dist``: rows of ``frame_ids``), to
    the graph or, as part ``part``, to a shard's parts."""
    n, kk = idx.shape
    offsets = pa.array((np.arange(n + 1) * kk).astype(np.int32))
    columns = {
        "project": pa.array([job.project] * n), "job_id": pa.array([job.job_id] * n),
        "frame_id": pa.array(own, pa.string()),
        "neighbors": pa.ListArray.from_arrays(offsets, pa.array(frame_ids[idx.reshape(-1)], pa.string())),
        "distances": pa.ListArray.from_arrays(offsets, pa.array(dist.reshape(-1), pa.float32())),
    }  # fmt: skip
    if table == PARTS:
        columns["part"] = pa.array(np.full(n, part, dtype=np.uint32))
    metrics.insert_arrow(table, pa.table(columns))


def _merged_parts(metrics: MetricsStore, job: Job, known: Any, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The graph the job's shards wrote, as (indices, distances) rows in the order of the ``n`` frame ids
    (``known``: their lookup): each frame's k nearest of the neighbours its parts gave it. Fails naming
    what is missing unless every frame has neighbours, all of them frames of those ids."""
    table = metrics.query_arrow(
        f"SELECT frame_id, neighbors, distances FROM {PARTS} FINAL"
        " WHERE project = {p:String} AND job_id = {j:String}",
        {"p": job.project, "j": job.job_id},
    )
    frame = _positions(table.column("frame_id"), known)
    lengths = pc.list_value_length(table.column("neighbors")).fill_null(0).to_numpy().astype(np.int64)
    near = _positions(pc.list_flatten(table.column("neighbors")), known)
    frames = np.repeat(frame, lengths)
    dist = pc.list_flatten(table.column("distances")).to_numpy(zero_copy_only=False).astype(np.float32)
    given = frames >= 0
    idx, d, have = graph_cells.merge(n, k, frames[given], near[given], dist[given])
    stale = np.zeros(n, dtype=bool)  # a neighbour that is no frame now: the frames changed since the shard ran
    stale[frames[given & (near < 0)]] = True
    missing = int(((have == 0) | stale).sum())
    if missing:
        raise RuntimeError(
            f"the shards of job {job.job_id} wrote the neighbours of {n - missing} of {n} frames; "
            "run the job again (a shard failed, or frames changed since)"
        )
    return idx, d


def discard(metrics: MetricsStore, job: Job) -> None:
    """Removes what a run of the job wrote (a cancelled or failed run keeps nothing)."""
    results.discard(metrics, job, TABLES)
    ranked.discard(metrics, job, RANK_TABLES)


def summary_of(metrics: MetricsStore, project: str, job_id: str) -> Summary | None:
    return results.summary_of(metrics, project, job_id, Summary)  # type: ignore[no-any-return]


#: sort of QueryOutliers ({t}: the table alias)
#: the tables a page of outliers reads (:func:`query_outliers`), and a page of duplicates
OUTLIER_ORDERS = {
    0: "{t}outlier_score DESC",
    1: "{t}label_disagreement DESC NULLS LAST",
    2: "{t}class_outlier_score DESC NULLS LAST",
}
#: what a page shows of each outlier
OUTLIER_COLUMNS = ("frame_id, split, label_class, outlier_score, nearest_distance, neighbor_label, label_disagreement,"
                   " duplicates, neighbors, distances, class_outlier_score")  # fmt: skip
DUPLICATE_COLUMNS = "frame_a, frame_b, distance, split_a, split_b, exact"
_JOB = "project = {project:String} AND job_id = {job:String}"
_CROSS = " AND split_a != split_b AND split_a != '' AND split_b != ''"

OUTLIER_TABLES = ("neighbor_scores", "knn_graph", "outlier_ranks", "result_listings")
DUPLICATE_TABLES = ("duplicate_pairs", "duplicate_ranks", "result_listings")


def outlier_listing(order: int) -> ranked.Listing:
    """The job's frames in outlier ``order`` then frame id, each with its neighbours."""
    return ranked.Listing(
        "outlier_ranks", str(order), OUTLIER_COLUMNS, "neighbor_scores FINAL", _JOB,
        f"{OUTLIER_ORDERS[order].format(t='')}, frame_id",
        around="SELECT s.*, g.neighbors AS neighbors, g.distances AS distances FROM ({rows}) AS s"
               f" LEFT JOIN (SELECT frame_id, neighbors, distances FROM knn_graph FINAL WHERE {_JOB}"
               " AND {within}) AS g ON g.frame_id = s.frame_id",
        within="frame_id IN (SELECT frame_id FROM ({rows}))",
    )  # fmt: skip


def duplicate_listing(cross_split_only: bool) -> ranked.Listing:
    """The job's duplicate pairs (those across splits only) nearest first."""
    return ranked.Listing("duplicate_ranks", "cross" if cross_split_only else "all", DUPLICATE_COLUMNS,
                          "duplicate_pairs FINAL", _JOB + (_CROSS if cross_split_only else ""),
                          "distance, frame_a, frame_b")  # fmt: skip


#: every listing a job keeps in page order
LISTINGS = (*(outlier_listing(o) for o in OUTLIER_ORDERS), duplicate_listing(False), duplicate_listing(True))


def rank(metrics: MetricsStore, job: Job, summary: Summary, *, above: int) -> int:
    """Keeps the job's outliers and pairs in page order when longer than ``above`` (see :mod:`ranked`)."""
    pairs = summary.exact_duplicate_pairs + summary.near_duplicate_pairs
    return ranked.keep(metrics, job, [*((outlier_listing(o), summary.frames) for o in OUTLIER_ORDERS),
                                      (duplicate_listing(False), pairs),
                                      (duplicate_listing(True), summary.cross_split_pairs)], above=above)  # fmt: skip


def query_outliers(
    metrics: MetricsStore, project: str, job_id: str, *, order: int, offset: int, size: int
) -> tuple[list[tuple[Any, ...]], int]:
    """A page of the job's frames in outlier ``order``, each with its neighbours, and their count:
    from the ranked rows when the job kept them (:mod:`ranked`), else from every frame of the job."""
    found = ranked.page(metrics, project, job_id, outlier_listing(order), offset=offset, size=size)
    if found is not None:
        return found
    params = {"project": project, "job": job_id, "size": size, "offset": offset}
    total = int(metrics.query(f"SELECT count() FROM neighbor_scores FINAL WHERE {_JOB}", params).scalar())
    rows = metrics.query(
        "SELECT s.frame_id, s.split, s.label_class, s.outlier_score, s.nearest_distance, s.neighbor_label,"
        " s.label_disagreement, s.duplicates, g.neighbors, g.distances, s.class_outlier_score"
        f" FROM (SELECT * FROM neighbor_scores FINAL WHERE {_JOB}"
        f" ORDER BY {OUTLIER_ORDERS[order].format(t='')}, frame_id LIMIT {{size:UInt32}} OFFSET {{offset:UInt64}}) AS s"
        f" LEFT JOIN (SELECT frame_id, neighbors, distances FROM knn_graph FINAL WHERE {_JOB}) AS g"
        f" ON g.frame_id = s.frame_id ORDER BY {OUTLIER_ORDERS[order].format(t='s.')}, s.frame_id",
        params,
    ).rows
    return rows, total


def query_duplicates(
    metrics: MetricsStore, project: str, job_id: str, *, cross_split_only: bool, offset: int, size: int
) -> tuple[list[tuple[Any, ...]], int]:
    """A page of the job's duplicate pairs, nearest first, and their count (ranked rows first, as
    :func:`query_outliers`)."""
    lst = duplicate_listing(cross_split_only)
    found = ranked.page(metrics, project, job_id, lst, offset=offset, size=size)
    if found is not None:
        return found
    return metrics.page(lst.source, lst.columns, lst.where, lst.order, {"project": project, "job": job_id},
                        offset=offset, size=size)  # fmt: skip


def neighbor_labels(
    metrics: MetricsStore, project: str, job_id: str, frame_ids: list[str]
) -> dict[str, tuple[int | None, float | None]]:
    """Majority neighbour label and disagreement of these frames in a neighbour job."""
    if not frame_ids:
        return {}
    rows = metrics.query(
        "SELECT frame_id, neighbor_label, label_disagreement FROM neighbor_scores FINAL"
        " WHERE project = {project:String} AND job_id = {job:String} AND frame_id IN {ids:Array(String)}",
        {"project": project, "job": job_id, "ids": sorted(set(frame_ids))},
    ).rows
    return {str(f): (m, d) for f, m, d in rows}
