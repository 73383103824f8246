"""Relevance feedback on a campaign: the user accepts or rejects frames, a classifier learns from
those judgments over the embeddings, and the pool frames not judged yet come back re-ranked by it.

The classifier is a nearest-neighbour one, over the neighbourhood of what was accepted: the pool
frames nearest to the accepted frames' mean direction (one vector search, :data:`NEIGHBOURHOOD`
times the batch; the seeds count as accepted). A candidate's score is the similarity-weighted
share of accepted frames among its :data:`VOTES` most similar judged frames, times its mean
similarity to its closest accepted frames, so that a frame far from everything judged does not
win on a vote of distant neighbours. Two classifiers were tried first on the test's planted
look-alike cluster. A logistic regression on the few judgments ranked high the frames that lie
further along its direction but far from anything judged. A plain similarity margin (accepted
minus rejected) favoured frames far from both. Either lowered the precision after a round of
feedback (0.70 to 0.18 or to 0.0), where this score raises it to 1.0.

Each submission is a round; a frame judged again keeps its latest judgment. The yield of a round
(accepted / judged) is what tells whether the loop is finding more of what the user wants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from shoal.common.data.embeddings import vector_pk
from shoal.common.data.projects import EmbeddingSpace
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.stores.vectors import VectorStore, collection_name
from shoal.sampler import search

DEFAULT_BATCH = 50
MAX_BATCH = 1_000
MAX_JUDGED_PER_ROUND = 10_000
#: the classifier ranks this many times the batch of frames nearest to the accepted ones
NEIGHBOURHOOD = 20
#: the judged frames most similar to a candidate that vote on it
VOTES = 5

MIGRATIONS = (
    Migration(
        component="sampler",
        version=3,
        name="campaign feedback",
        statements=(
            "CREATE TABLE IF NOT EXISTS campaign_feedback ("
            " project LowCardinality(String), job_id String, frame_id String, round UInt32, accepted UInt8,"
            " judged_time DateTime64(3, 'UTC'), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, job_id, frame_id)",
        ),
    ),
)


@dataclass(frozen=True)
class Round:
    round: int
    judged: int
    accepted: int


@dataclass(frozen=True)
class Candidate:
    frame_id: str
    score: float


def next_round(metrics: MetricsStore, project: str, job_id: str) -> int:
    rows = metrics.query(
        "SELECT max(round) FROM campaign_feedback WHERE project = {p:String} AND job_id = {j:String}",
        {"p": project, "j": job_id},
    ).rows
    return int(rows[0][0] or 0) + 1 if rows else 1


def record(metrics: MetricsStore, project: str, job_id: str, round_: int, judged: dict[str, bool]) -> None:
    n = len(judged)
    if not n:
        return
    now = time.time_ns()
    metrics.insert_arrow("campaign_feedback", pa.table({
        "project": pa.array([project] * n), "job_id": pa.array([job_id] * n), "frame_id": pa.array(list(judged)),
        "round": pa.array([round_] * n, pa.uint32()),
        "accepted": pa.array([int(v) for v in judged.values()], pa.uint8()),
        "judged_time": pa.array([now // 1_000_000] * n, pa.timestamp("ms", tz="UTC")),
        "version": pa.array([now] * n, pa.uint64()),
    }))  # fmt: skip


def judgments(metrics: MetricsStore, project: str, job_id: str) -> dict[str, bool]:
    """Every judged frame of the campaign with its latest judgment."""
    rows = metrics.query(
        "SELECT frame_id, accepted FROM campaign_feedback FINAL WHERE project = {p:String} AND job_id = {j:String}",
        {"p": project, "j": job_id},
    ).rows
    return {str(f): bool(a) for f, a in rows}


def rounds(metrics: MetricsStore, project: str, job_id: str) -> list[Round]:
    """The judgments made in each round (a frame judged again counts in both rounds)."""
    rows = metrics.query(
        "SELECT round, count(), sum(accepted) FROM campaign_feedback WHERE project = {p:String}"
        " AND job_id = {j:String} GROUP BY round ORDER BY round",
        {"p": project, "j": job_id},
    ).rows
    return [Round(int(r), int(n), int(a)) for r, n, a in rows]


def _vectors(vectors: VectorStore, project: str, space: str, keys: list[str]) -> np.ndarray:
    if not keys:
        return np.zeros((0, 0), dtype=np.float64)
    got = vectors.get(collection_name(project, space), keys)
    x = np.asarray(got.vectors, dtype=np.float64).reshape(len(got.ids), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def rerank(
    vectors: VectorStore,
    project: str,
    *,
    pool: str,
    space: EmbeddingSpace,
    seed_space: str,
    seeds: list[tuple[str, str]],
    judged: dict[str, bool],
    pool_scope: search.Scope | None,
    k: int,
) -> list[Candidate]:
    """The ``k`` pool frames the classifier finds most likely wanted, none judged and none a seed."""
    pos = _vectors(vectors, project, space.name, [vector_pk(pool, f, "") for f, ok in judged.items() if ok])
    neg = _vectors(vectors, project, space.name, [vector_pk(pool, f, "") for f, ok in judged.items() if not ok])
    seed_x = _vectors(vectors, project, seed_space, [vector_pk(d, f, "") for d, f in seeds])
    pos = np.concatenate([p for p in (pos, seed_x) if len(p)]) if len(pos) or len(seed_x) else pos
    if not len(pos):
        raise ValueError("nothing accepted yet and no seeds: accept at least one frame")
    # the neighbourhood of what was accepted: a linear score alone would also rank high frames far
    # away that merely lie further along its direction
    centre = pos.mean(axis=0)
    centre = centre / (np.linalg.norm(centre) or 1.0)
    scope = _without(pool_scope, set(judged) | {f for d, f in seeds if d == pool})
    near = search.search(vectors, project, pool=pool, space=space, seeds=centre[None, :].astype(np.float32),
                         k=min(search.SEARCH_LIMIT, max(NEIGHBOURHOOD * k, 1000)), pool_scope=scope)  # fmt: skip
    if not near.items:
        return []
    cand = _vectors(vectors, project, space.name, [vector_pk(pool, it.frame_id, "") for it in near.items])
    score = _vote(cand, pos, neg) * np.maximum(_closeness(cand, pos), 0.0)
    order = sorted(range(len(score)), key=lambda i: (-score[i], near.items[i].frame_id))
    return [Candidate(near.items[i].frame_id, float(score[i])) for i in order[:k]]


def _closeness(x: np.ndarray, judged: np.ndarray) -> np.ndarray:
    """Per row of ``x``, the mean cosine similarity to its :data:`VOTES` most similar judged frames."""
    sims = x @ judged.T
    top = min(VOTES, judged.shape[0])
    return np.sort(sims, axis=1)[:, -top:].mean(axis=1)


def _vote(x: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Per row of ``x``, the similarity-weighted share of accepted frames among its :data:`VOTES`
    most similar judged frames (1 with nothing rejected)."""
    if not len(neg):
        return np.ones(len(x))
    judged = np.concatenate([pos, neg])
    accepted = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    sims = x @ judged.T
    top = np.argsort(-sims, axis=1)[:, :VOTES]
    weight = np.maximum(np.take_along_axis(sims, top, axis=1), 0.0)
    return (weight * accepted[top]).sum(axis=1) / np.maximum(weight.sum(axis=1), 1e-12)


def _without(scope: search.Scope | None, frames: set[str]) -> search.Scope | None:
    """``scope`` with ``frames`` left out as well."""
    if not frames:
        return scope
    if scope is None:
        return search.Scope(inside=False, ids=frozenset(frames))
    if scope.inside:
        return search.Scope(inside=True, ids=scope.ids - frames)
    return search.Scope(inside=False, ids=scope.ids | frames)
