"""Drift between two sets of frames in one embedding space (two datasets, or two capture-time
windows of one): a two-sample test and the regions that changed most.

The test is the nearest-neighbour two-sample test (Schilling; Henze): pool the two samples, find
each frame's k nearest frames, and count how often a neighbour comes from the frame's own
sample. Under no drift the samples are mixed and that share stays near its value for random
labels; under drift it rises. The significance is a permutation test: the same graph with the
sample labels shuffled, many times, which costs one pass over the graph each.

The regions are k-means clusters of the pooled sample. For each, the shares of the two samples
are compared with the pooled expectation; the regions with the largest standardized difference
are reported, each with example frames of both samples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from shoal.analysis.neighbors import knn
from shoal.common.data import results
from shoal.common.data.embeddings import read_vectors, read_vectors_of
from shoal.common.jobs import Job, JobContext, progress_of
from shoal.common.stores.metrics import MetricsStore
from shoal.common.stores.vectors import VectorStore

KIND = "drift"
DEFAULT_K = 10
DEFAULT_SAMPLE = 20_000
PERMUTATIONS = 200
REGIONS = 20
EXAMPLES = 5


@dataclass
class Region:
    region: int
    frames_a: int
    frames_b: int
    #: share of sample B in the region minus its share overall
    shift: float
    #: standardized difference (a z score under the pooled proportion)
    score: float
    examples_a: list[str] = field(default_factory=list)
    examples_b: list[str] = field(default_factory=list)


@dataclass
class Summary(results.JsonSummary):
    frames_a: int
    frames_b: int
    k: int
    metric: str
    #: share of neighbours from the frame's own sample
    statistic: float
    #: its expectation with no drift (mean over the permutations)
    expected: float
    p_value: float
    #: (statistic - expected) / standard deviation under permutations
    z_score: float
    regions: list[Region] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str) -> Summary:
        d = json.loads(text)
        d["regions"] = [Region(**r) for r in d["regions"]]
        return cls(**d)


def same_sample_share(idx: np.ndarray, side: np.ndarray) -> float:
    """Share of the graph's edges that join two frames of the same sample."""
    return float(np.mean(side[idx] == side[:, None]))


def two_sample_test(
    idx: np.ndarray, side: np.ndarray, permutations: int, seed: int = 0
) -> tuple[float, float, float, float]:
    """(statistic, expected under no drift, p-value, z score) of the nearest-neighbour test."""
    stat = same_sample_share(idx, side)
    rng = np.random.default_rng(seed)
    null = np.array([same_sample_share(idx, rng.permutation(side)) for _ in range(permutations)])
    p = (1 + int(np.sum(null >= stat))) / (permutations + 1)
    sd = float(null.std()) or 1e-12
    return stat, float(null.mean()), p, (stat - float(null.mean())) / sd


def regions(x: np.ndarray, side: np.ndarray, ids: list[str], n_regions: int) -> list[Region]:
    """k-means regions of the pooled sample, largest standardized difference first."""
    from sklearn.cluster import KMeans

    n_regions = max(1, min(n_regions, len(x) // 20))
    km = KMeans(n_clusters=n_regions, n_init=3, random_state=0).fit(x)
    share_b = float(side.mean())
    out = []
    for r in range(n_regions):
        members = np.flatnonzero(km.labels_ == r)
        nb = int(side[members].sum())
        na = len(members) - nb
        observed = nb / max(len(members), 1)
        se = np.sqrt(share_b * (1 - share_b) / max(len(members), 1)) or 1e-12
        dist = np.linalg.norm(x[members] - km.cluster_centers_[r], axis=1)
        near = members[np.argsort(dist)]
        out.append(Region(
            region=r, frames_a=na, frames_b=nb, shift=observed - share_b, score=float((observed - share_b) / se),
            examples_a=[ids[i] for i in near[side[near] == 0][:EXAMPLES]],
            examples_b=[ids[i] for i in near[side[near] == 1][:EXAMPLES]],
        ))  # fmt: skip
    out.sort(key=lambda g: -abs(g.score))
    return out


def _sample(ids: list[str], size: int, rng: np.random.Generator) -> list[str]:
    """Up to ``size`` of ``ids``, in their order."""
    if len(ids) <= size:
        return ids
    return [ids[i] for i in np.sort(rng.choice(len(ids), size, replace=False))]


def _window(
    metrics: MetricsStore, project: str, dataset: str, since: datetime | None, until: datetime | None
) -> set[str] | None:
    """The dataset's frames captured in [since, until) (None: no window)."""
    if since is None and until is None:
        return None
    where = ["project = {p:String}", "dataset = {d:String}", "capture_time IS NOT NULL"]
    params: dict[str, object] = {"p": project, "d": dataset}
    if since is not None:
        where.append("capture_time >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if until is not None:
        where.append("capture_time < {until:DateTime64(3, 'UTC')}")
        params["until"] = until
    rows = metrics.query_columns(f"SELECT frame_id FROM frames FINAL WHERE {' AND '.join(where)}", params)
    return {str(f) for f in rows["frame_id"]}


@dataclass(frozen=True)
class Side:
    dataset: str
    since: datetime | None = None
    until: datetime | None = None


def build(
    ctx: JobContext | None,
    metrics: MetricsStore,
    vectors: VectorStore,
    job: Job,
    *,
    a: Side,
    b: Side,
    space: str,
    space_metric: str,
    k: int = DEFAULT_K,
    sample: int = DEFAULT_SAMPLE,
    permutations: int = PERMUTATIONS,
) -> Summary:
    progress = progress_of(ctx)

    discard(metrics, job)
    rng = np.random.default_rng(0)
    sides = []
    for side in (a, b):
        # which frames have a vector, then the vectors of the sample only: the job holds at most twice the
        # sample's vectors, whatever the size of the datasets
        ids, _ = read_vectors(ctx, metrics, vectors, job.project, side.dataset, space, with_vectors=False)
        keep = _window(metrics, job.project, side.dataset, side.since, side.until)
        if keep is not None:
            ids = [f for f in ids if f in keep]
        sides.append(read_vectors_of(ctx, vectors, job.project, side.dataset, space, _sample(ids, sample, rng)))
    (ids_a, xa), (ids_b, xb) = sides
    if len(ids_a) < 2 or len(ids_b) < 2:
        raise ValueError(f"drift needs at least 2 frames with vectors on each side, got {len(ids_a)} and {len(ids_b)}")
    x = np.concatenate([xa, xb])
    side = np.concatenate([np.zeros(len(ids_a), np.int8), np.ones(len(ids_b), np.int8)])
    metric = "euclidean" if space_metric == "L2" else "cosine"
    progress("neighbour graph of the pooled sample", 0.4)
    idx, _ = knn(x, k, metric)
    progress("permutation test", 0.6)
    stat, expected, p, z = two_sample_test(idx, side, permutations)
    progress("regions", 0.8)
    pooled = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) if metric == "cosine" else x
    found = regions(pooled, side, [*(f"a:{f}" for f in ids_a), *(f"b:{f}" for f in ids_b)], REGIONS)
    for g in found:  # the prefix only told the samples apart
        g.examples_a = [f[2:] for f in g.examples_a]
        g.examples_b = [f[2:] for f in g.examples_b]
    summary = Summary(len(ids_a), len(ids_b), idx.shape[1], metric, stat, expected, p, z, found)
    results.save_summary(metrics, job, summary.to_json())
    return summary


def discard(metrics: MetricsStore, job: Job) -> None:
    results.discard(metrics, job, ())


def summary_of(metrics: MetricsStore, project: str, job_id: str) -> Summary | None:
    return results.summary_of(metrics, project, job_id, Summary)  # type: ignore[no-any-return]
