"""Similarity search into a pool: the frames (or objects) of one dataset nearest to some seeds,
through the vector store, with frame filters and exclusions decided in ClickHouse.

The pool's frames that pass the filter and exclusions are counted first. When one side (the
frames that pass, or those that do not) is small, it goes into the vector search's own filter
(``frame_id in [...]`` or ``not in``), so the search returns exactly the nearest frames that
pass. Otherwise the search asks for more candidates than wanted, drops those that do not pass,
and asks again for four times as many until enough pass or the store's limit is reached
(``truncated`` then says so). Excluded frames never come back either way: every candidate is
checked against the scope after the search.

With several seeds, each candidate's similarity to every seed is computed from its vector, and
the candidates are ranked by the best (max) or the mean similarity. For the best, every seed is
searched. For the mean, the centre of the seeds is (see :func:`_queries`): exact in COSINE and
INNER_PRODUCT spaces, approximate in L2 ones.
Similarity is the cosine in COSINE spaces, the inner product in INNER_PRODUCT ones, and minus the
Euclidean distance in L2 ones; larger is nearer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shoal.common.data.embeddings import vector_pk
from shoal.common.data.labeling_requests import not_sent_sql
from shoal.common.data.projects import EmbeddingSpace
from shoal.common.data.query import SETTINGS, Params, View, compile_filter, view_sql
from shoal.common.stores.metrics import MetricsStore
from shoal.common.stores.vectors import VectorStore, collection_name, expr_and, expr_in, expr_not_in
from shoal.common.v1 import common_pb2

DEFAULT_K = 100
MAX_K = 10_000
#: the most candidates one vector search returns
SEARCH_LIMIT = 16_384
#: a frame list up to this size goes into the vector search's filter
PUSHDOWN_LIMIT = 10_000
#: first over-fetch when the scope cannot be pushed down
OVERFETCH = 4
METRICS = {"COSINE": "cosine", "IP": "inner_product", "L2": "euclidean"}


@dataclass(frozen=True)
class Scope:
    """Which pool frames may come back: ``ids`` are those that pass (``inside``) or those that do
    not (not ``inside``); None means every frame passes."""

    inside: bool
    ids: frozenset[str]

    def admits(self, frame_id: str) -> bool:
        return (frame_id in self.ids) is self.inside


@dataclass(frozen=True)
class Item:
    frame_id: str
    object_id: str
    similarity: float
    distance: float
    seed_index: int


@dataclass(frozen=True)
class Result:
    items: list[Item]
    metric: str
    candidates: int
    truncated: bool


def scope(
    metrics: MetricsStore,
    view: View,
    flt: common_pb2.Filter,
    *,
    exclude_labeled: bool,
    exclude_segments: list[str],
    exclude_sent: bool = False,
) -> Scope | None:
    """The pool frames that pass ``flt`` and the exclusions, as the smaller side (see :class:`Scope`)."""
    params = Params()
    conditions = [compile_filter(flt, view, params)]
    for name in exclude_segments:  # the segments were checked to exist by the caller
        cond = common_pb2.Condition(field="segment", equals=common_pb2.Value(string_value=name), negate=True)
        conditions.append(compile_filter(common_pb2.Filter(all=[cond]), view, params, "exclude_segments"))
    if exclude_labeled:
        project, dataset = params.add(view.project, "String"), params.add(view.dataset, "String")
        conditions.append(
            "frame_id NOT IN (SELECT frame_id FROM label_versions"
            f" WHERE project = {project} AND dataset = {dataset} GROUP BY frame_id"
            " HAVING argMax(class_id IS NOT NULL OR num_objects > 0, (version_time, label_version)))"
        )
    if exclude_sent:
        conditions.append(not_sent_sql(params.add(view.project, "String"), params.add(view.dataset, "String")))
    if conditions == ["1"]:
        return None
    passes = " AND ".join(f"({c})" for c in conditions)
    source = f"SELECT frame_id, ({passes}) AS passes FROM ({view_sql(view, params)})"
    n_pass, n_fail = metrics.query(f"SELECT countIf(passes), countIf(NOT passes) FROM ({source}){SETTINGS}",
                                   params.values).rows[0]  # fmt: skip
    if n_fail == 0:
        return None
    inside = n_pass <= n_fail
    rows = metrics.query_columns(
        f"SELECT frame_id FROM ({source}) WHERE passes = {1 if inside else 0}{SETTINGS}", params.values
    )
    return Scope(inside=inside, ids=frozenset(str(f) for f in rows["frame_id"]))


def _similarity(metric: str, seeds: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(candidates, seeds) similarity, larger is nearer."""
    if metric == "COSINE":
        a = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        b = seeds / np.maximum(np.linalg.norm(seeds, axis=1, keepdims=True), 1e-12)
        return a @ b.T
    if metric == "IP":
        return x @ seeds.T
    d2 = (x**2).sum(axis=1)[:, None] - 2.0 * x @ seeds.T + (seeds**2).sum(axis=1)[None, :]
    return -np.sqrt(np.maximum(d2, 0.0))


def _distance(metric: str, similarity: float) -> float:
    """The distance behind a similarity: cosine distance, negative inner product, Euclidean."""
    return 1.0 - similarity if metric == "COSINE" else -similarity


def _queries(metric: str, seeds: np.ndarray, aggregation: str) -> np.ndarray:
    """What to search with. The mean cosine similarity to several seeds ranks frames as the cosine
    to the mean of the seeds' unit vectors does, and the mean inner product as the inner product
    with their mean: one search of that centre finds the exact candidates. The mean of Euclidean
    distances has no such centre, so the centre and every seed are searched."""
    if aggregation != "mean" or len(seeds) == 1:
        return seeds
    units = seeds / np.maximum(np.linalg.norm(seeds, axis=1, keepdims=True), 1e-12)
    centre = (units if metric == "COSINE" else seeds).mean(axis=0, keepdims=True)
    if np.linalg.norm(centre) < 1e-6:  # seeds that cancel out: no direction to search
        return seeds
    return centre if metric in ("COSINE", "IP") else np.concatenate([centre, seeds])


def _from_store(metric: str, value: float) -> float:
    """The store's score as a similarity (its L2 is the squared distance)."""
    return -math.sqrt(max(value, 0.0)) if metric == "L2" else value


def search(
    vectors: VectorStore,
    project: str,
    *,
    pool: str,
    space: EmbeddingSpace,
    seeds: np.ndarray,
    k: int,
    pool_scope: Scope | None,
    aggregation: str = "max",
) -> Result:
    collection = collection_name(project, space.name)
    if pool_scope is not None and pool_scope.inside and not pool_scope.ids:
        return Result([], METRICS[space.metric], 0, False)
    level = 'object_id != ""' if space.level == "OBJECT" else 'object_id == ""'
    pushed = pool_scope is not None and len(pool_scope.ids) <= PUSHDOWN_LIMIT
    expr = level
    if pushed:
        assert pool_scope is not None
        ids = sorted(pool_scope.ids)
        expr = expr_and(level, expr_in("frame_id", ids) if pool_scope.inside else expr_not_in("frame_id", ids))
    limit = min(SEARCH_LIMIT, k if pool_scope is None or pushed else k * OVERFETCH)
    queries = _queries(space.metric, np.asarray(seeds, dtype=np.float32), aggregation)
    while True:
        # session consistency: an interactive search need not wait for the server's next time tick
        hits = vectors.search(collection, queries, k=limit, partitions=[pool], filter=expr,
                              output_fields=("frame_id", "object_id"), fresh=False)  # fmt: skip
        found: dict[str, tuple[str, str]] = {}
        for row in hits:
            for h in row:
                frame = str(h.fields.get("frame_id", ""))
                if pool_scope is None or pool_scope.admits(frame):
                    found.setdefault(h.id, (frame, str(h.fields.get("object_id", ""))))
        candidates = sum(len(row) for row in hits)
        exhausted = all(len(row) < limit for row in hits)  # the search returned everything it had
        if len(found) >= k or exhausted or limit >= SEARCH_LIMIT:
            break
        limit = min(SEARCH_LIMIT, limit * OVERFETCH)
    truncated = len(found) < k and not exhausted
    if len(queries) == 1 and len(seeds) == 1:
        scored = []
        for h in hits[0]:
            if h.id in found:
                sim = _from_store(space.metric, h.distance)
                scored.append((sim, sim, 0, h.id))
    else:
        keys = list(found)
        batch = vectors.get(collection, keys)
        x = np.asarray(batch.vectors, dtype=np.float64)
        sims = _similarity(space.metric, np.asarray(seeds, dtype=np.float64), x)
        best = sims.argmax(axis=1)
        agg = sims.mean(axis=1) if aggregation == "mean" else sims.max(axis=1)
        scored = [(float(agg[i]), float(sims[i, best[i]]), int(best[i]), key) for i, key in enumerate(batch.ids)]
    scored.sort(key=lambda t: (-t[0], t[3]))
    items = [
        Item(found[key][0], found[key][1], sim, _distance(space.metric, near), seed)
        for sim, near, seed, key in scored[:k]
    ]
    return Result(items, METRICS[space.metric], candidates, truncated)


def seed_key(dataset: str, frame_id: str, object_id: str) -> str:
    return vector_pk(dataset, frame_id, object_id)
