"""Failure clusters: where in embedding space a model's errors concentrate, and what those
frames have in common.

1. The errors are the frames the model gets wrong: misclassified frames in classification; in
   detection, frames with a missed, spurious or misclassified box (at an IoU threshold).
2. Half of the errors (at most :data:`FIT_LIMIT`) are clustered by density with HDBSCAN (cosine
   spaces on the unit sphere), so errors spread thinly over the space stay unclustered and a
   dense group is one cluster however many errors it holds.
3. Each cluster's region is the frames, correct or not, whose nearest centre is the cluster's and
   that lie within the distance of 90 % of its members. The region's error rate is measured on
   the frames without the errors that placed it (a region drawn around errors holds more of them
   than chance would); against the overall rate it gives the lift and a binomial z score.
   Clusters whose errors could be chance (binomial tail over the clusters tried above
   :data:`MAX_P_VALUE`) or that hold fewer than ``min_cluster_size`` errors are dropped, so
   spread-out errors do not make clusters.
4. A cluster is described by its (label, prediction) pairs and by the frame field values (split,
   metadata; numbers by quartile) over-represented among its errors against all frames
   considered.

Every frame considered is stored with its cluster (0: none), so a cluster can be opened or
saved as a segment; the clusters and their descriptions are the job's summary.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from shoal.common.data import results
from shoal.common.data.embeddings import read_vectors
from shoal.common.data.query import SETTINGS, Params, View, compile_filter, view_sql
from shoal.common.jobs import Job, JobContext, progress_of
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.stores.vectors import VectorStore
from shoal.common.v1 import common_pb2

KIND = "failure_clusters"
DEFAULT_MAX_CLUSTERS = 20
MAX_CLUSTERS = 200
DEFAULT_MIN_SIZE = 5
#: a cluster's region holds the frames within the distance of this share of its errors
REGION_QUANTILE = 0.9
#: a cluster is kept when its held-out errors are this unlikely at the overall rate (Bonferroni over the
#: clusters tried)
MAX_P_VALUE = 0.01
#: HDBSCAN is fitted on at most this many errors (a sample above); every frame is then assigned
FIT_LIMIT = 5_000
ASSIGN_BATCH = 100_000
EXAMPLES = 10
TOP_PAIRS = 5
TOP_VALUES = 5
#: an over-represented value is this much more common among the cluster's errors than overall
MIN_LIFT = 1.5
#: ... and holds at least this share of the cluster's errors
MIN_VALUE_SHARE = 0.2

MIGRATIONS = (
    Migration(
        component="analysis",
        version=8,
        name="failure clusters",
        statements=(
            "CREATE TABLE IF NOT EXISTS failure_cluster_members ("
            " project LowCardinality(String), job_id String, frame_id String, cluster Int32, is_error UInt8,"
            " distance Float32) ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id)",
        ),
    ),
)
TABLES = ("failure_cluster_members",)


@dataclass
class Cluster:
    cluster: int
    errors: int
    frames: int
    error_rate: float
    lift: float
    score: float
    p_value: float
    #: (label class, predicted class, errors, share)
    class_pairs: list[tuple[int, int, int, float]] = field(default_factory=list)
    #: (field, value, errors, share, overall share, lift)
    values: list[tuple[str, str, int, float, float, float]] = field(default_factory=list)
    example_frame_ids: list[str] = field(default_factory=list)
    description: str = ""


@dataclass
class Summary(results.JsonSummary):
    frames: int
    errors: int
    error_rate: float
    clustered_errors: int
    metric: str
    frames_without_vectors: int
    clusters: list[Cluster] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str) -> Summary:
        d = json.loads(text)
        d["clusters"] = [
            Cluster(**{**c, "class_pairs": [tuple(p) for p in c["class_pairs"]],
                       "values": [tuple(v) for v in c["values"]]})
            for c in d["clusters"]
        ]  # fmt: skip
        return cls(**d)


def classification_errors_sql(view: View, flt: common_pb2.Filter) -> tuple[str, dict[str, Any]]:
    """A SELECT of (frame_id, is_error, pair_labels, pair_predicted) over the labeled frames with
    predictions that pass ``flt``; a prediction below the view's threshold is class -1."""
    params = Params()
    where = compile_filter(flt, view, params)
    sql = (
        "SELECT frame_id, toUInt8(label_class != predicted_class) AS is_error,"
        " if(is_error = 1, [toInt32(label_class)], CAST([], 'Array(Int32)')) AS pair_labels,"
        " if(is_error = 1, [toInt32(predicted_class)], CAST([], 'Array(Int32)')) AS pair_predicted"
        f" FROM ({view_sql(view, params)}) WHERE label_class IS NOT NULL AND pred_raw IS NOT NULL AND {where}"
        f"{SETTINGS}"
    )
    return sql, params.values


def detection_errors_sql(frames_sql: str) -> str:
    """The same columns from :func:`shoal.analysis.detection.frame_errors_sql`'s SELECT."""
    return (
        "SELECT frame_id, is_error, arrayMap(t -> t.1, pairs) AS pair_labels,"
        f" arrayMap(t -> t.2, pairs) AS pair_predicted FROM ({frames_sql})"
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _assign(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each row and the Euclidean distance to it, in batches."""
    nearest = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x), dtype=np.float32)
    c2 = (centres**2).sum(axis=1)
    for start in range(0, len(x), ASSIGN_BATCH):
        part = x[start : start + ASSIGN_BATCH]
        d2 = (part**2).sum(axis=1)[:, None] - 2.0 * part @ centres.T + c2[None, :]
        nearest[start : start + len(part)] = d2.argmin(axis=1)
        dist[start : start + len(part)] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return nearest, dist


def _fit(sample: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """HDBSCAN over a sample of the errors: the centre of each dense group, and the distance from
    it within which :data:`REGION_QUANTILE` of its members lie."""
    from sklearn.cluster import HDBSCAN

    labels = HDBSCAN(min_cluster_size=size, copy=True).fit(sample).labels_
    centres, radii = [], []
    for c in range(int(labels.max()) + 1 if len(labels) else 0):
        members = sample[labels == c]
        centre = members.mean(axis=0)
        centres.append(centre)
        radii.append(float(np.quantile(np.linalg.norm(members - centre, axis=1), REGION_QUANTILE)))
    return np.asarray(centres, np.float32).reshape(-1, sample.shape[1]), np.asarray(radii, np.float64)


def z_score(hits: int, n: int, p: float) -> float:
    """How far ``hits`` of ``n`` exceeds the rate ``p``, in binomial standard errors."""
    if n == 0 or p <= 0.0 or p >= 1.0:
        return 0.0
    return (hits - n * p) / math.sqrt(n * p * (1.0 - p))


def regions(
    x: np.ndarray, is_error: np.ndarray, max_clusters: int, min_size: int
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int, float, float, float, float]]]:
    """Clusters the errors of ``x`` and grows each into its region.

    The clusters are placed with half of the errors (at most :data:`FIT_LIMIT`) and judged on
    the frames without them: a region drawn around some errors holds more of them than chance
    would, so its error rate, lift and score are measured on the errors that did not place it.

    Returns the region of each row (-1: none), each row's distance to its nearest centre, and
    per kept cluster (index, errors, frames, error rate, lift, score, p-value), most significant
    first; errors and frames count every frame of the region."""
    n, n_err = len(x), int(is_error.sum())
    none: tuple[np.ndarray, np.ndarray, list[tuple[int, int, int, float, float, float, float]]] = (
        np.full(n, -1), np.zeros(n, np.float32), [])  # fmt: skip
    if n_err < max(min_size, 4) or n == 0:
        return none
    rng = np.random.default_rng(0)
    fit_rows = np.sort(rng.choice(np.flatnonzero(is_error), min(n_err // 2, FIT_LIMIT), replace=False))
    centres, radius = _fit(x[fit_rows], max(3, round(min_size * len(fit_rows) / n_err)))
    k = len(centres)
    if k == 0:
        return none
    nearest, dist = _assign(x, centres)
    inside = dist <= radius[nearest]
    held = np.ones(n, dtype=bool)
    held[fit_rows] = False
    p = (n_err - len(fit_rows)) / (n - len(fit_rows))
    errors = np.bincount(nearest[inside & is_error], minlength=k)
    frames = np.bincount(nearest[inside], minlength=k)
    held_errors = np.bincount(nearest[inside & is_error & held], minlength=k)
    held_frames = np.bincount(nearest[inside & held], minlength=k)
    # the chance of that many held-out errors in the region at the overall rate, times the number
    # of clusters tried (Bonferroni): small regions that are bad by chance do not pass. scipy.stats is
    # imported here, not with the module: it takes half a second, which every service process paid at start.
    from scipy.stats import binom

    p_values = np.minimum(1.0, binom.sf(held_errors - 1, held_frames, p) * k)
    kept = []
    for c in range(k):
        e, f, he, hf = int(errors[c]), int(frames[c]), int(held_errors[c]), int(held_frames[c])
        if e >= min_size and hf and p_values[c] <= MAX_P_VALUE:
            kept.append((c, e, f, he / hf, (he / hf) / p, z_score(he, hf, p), float(p_values[c])))
    kept.sort(key=lambda t: (t[6], -t[5]))
    kept = kept[:max_clusters]
    chosen = np.full(k, -1)  # clusters not kept have no region
    chosen[[c for c, *_ in kept]] = [c for c, *_ in kept]
    return np.where(inside, chosen[nearest], -1), dist, kept


def _pair_name(c: int, names: dict[int, str]) -> str:
    return "(none)" if c < 0 else names.get(c, str(c))


def describe(c: Cluster, names: dict[int, str]) -> str:
    parts = [f"{c.errors} errors in {c.frames} frames (error rate {c.error_rate:.0%}, {c.lift:.1f}x overall)"]
    if c.class_pairs:
        label, predicted, _, share = c.class_pairs[0]
        parts.append(f"mostly {_pair_name(label, names)} -> {_pair_name(predicted, names)} ({share:.0%})")
    for fld, value, _, share, overall, _ in c.values[:2]:
        condition = (
            f"{fld} {value}" if value[:1] in "<>" else f"{fld} in {value}" if value[:1] == "[" else f"{fld} = {value}"
        )
        parts.append(f"{condition} ({share:.0%} of its errors vs {overall:.0%} overall)")
    return "; ".join(parts)


def _numeric_edges(metrics: MetricsStore, job: Job, dataset: str) -> tuple[list[str], list[list[float]]]:
    """Quartiles of each numeric metadata key over the frames considered."""
    rows = metrics.query(
        "SELECT k, quantilesExact(0.25, 0.5, 0.75)(v) FROM (SELECT meta_num FROM frames FINAL"
        " WHERE project = {project:String} AND dataset = {dataset:String} AND frame_id IN"
        " (SELECT frame_id FROM failure_cluster_members WHERE project = {project:String} AND job_id = {job:String}))"
        " ARRAY JOIN mapKeys(meta_num) AS k, mapValues(meta_num) AS v WHERE isFinite(v) GROUP BY k ORDER BY k",
        {"project": job.project, "dataset": dataset, "job": job.job_id},
    ).rows
    keys, edges = [], []
    for key, q in rows:
        keys.append(str(key))
        edges.append(sorted({float(e) for e in q}))
    return keys, edges


def _bin_label(edges: list[float], b: int) -> str:
    if not edges:
        return "(any)"
    if b == 0:
        return f"< {edges[0]:.4g}"
    if b >= len(edges):
        return f">= {edges[-1]:.4g}"
    return f"[{edges[b - 1]:.4g}, {edges[b]:.4g})"


def value_counts(metrics: MetricsStore, job: Job, dataset: str) -> dict[tuple[int, int, str, str], int]:
    """Frames considered per (cluster, is_error, field, value): split, string and bool metadata,
    and numeric metadata by quartile."""
    keys, edges = _numeric_edges(metrics, job, dataset)
    rows = metrics.query(
        "SELECT m.cluster, m.is_error, kv.1, kv.2, count() FROM"
        " (SELECT frame_id, cluster, is_error FROM failure_cluster_members"
        "  WHERE project = {project:String} AND job_id = {job:String}) AS m"
        " INNER JOIN (SELECT frame_id, arrayConcat([('split', toString(split))],"
        "  arrayMap(k -> ('metadata.' || k, meta_str[k]), mapKeys(meta_str)),"
        "  arrayMap(k -> ('metadata.' || k, if(meta_bool[k] = 1, 'true', 'false')), mapKeys(meta_bool)),"
        "  arrayMap(k -> ('#' || k, toString(arrayCount(e -> e <= meta_num[k], {edges:Array(Array(Float64))}"
        "  [indexOf({keys:Array(String)}, k)]))), arrayFilter(k -> has({keys:Array(String)}, k)"
        "  AND isFinite(meta_num[k]), mapKeys(meta_num)))) AS kvs"
        "  FROM frames FINAL WHERE project = {project:String} AND dataset = {dataset:String}) AS f"
        " ON f.frame_id = m.frame_id ARRAY JOIN f.kvs AS kv GROUP BY m.cluster, m.is_error, kv.1, kv.2",
        {"project": job.project, "dataset": dataset, "job": job.job_id, "keys": keys, "edges": edges},
    ).rows
    at = {k: e for k, e in zip(keys, edges, strict=True)}
    out: dict[tuple[int, int, str, str], int] = {}
    for cluster, is_error, fld, value, n in rows:
        fld, value = str(fld), str(value)
        if fld.startswith("#"):  # numeric: the bin index becomes its range
            key = fld[1:]
            fld, value = f"metadata.{key}", _bin_label(at.get(key, []), int(value))
        out[(int(cluster), int(is_error), fld, value)] = out.get((int(cluster), int(is_error), fld, value), 0) + int(n)
    return out


def over_represented(
    counts: dict[tuple[int, int, str, str], int], cluster: int, errors: int, frames: int
) -> list[tuple[str, str, int, float, float, float]]:
    """The field values over-represented among a cluster's errors, most significant first."""
    overall: Counter[tuple[str, str]] = Counter()
    mine: Counter[tuple[str, str]] = Counter()
    for (c, is_error, fld, value), n in counts.items():
        overall[(fld, value)] += n
        if c == cluster and is_error:
            mine[(fld, value)] += n
    found = []
    for (fld, value), n in mine.items():
        q = overall[(fld, value)] / frames
        share = n / errors
        if share < MIN_VALUE_SHARE or q >= 0.95 or share / q < MIN_LIFT or n < 3:
            continue
        found.append((z_score(n, errors, q), (fld, value, n, share, q, share / q)))
    found.sort(key=lambda t: (-t[0], t[1][0], t[1][1]))
    return [v for _, v in found[:TOP_VALUES]]


def build(
    ctx: JobContext | None,
    metrics: MetricsStore,
    vectors: VectorStore,
    job: Job,
    *,
    dataset: str,
    space: str,
    space_metric: str,
    errors_sql: str,
    errors_params: dict[str, Any],
    max_clusters: int = DEFAULT_MAX_CLUSTERS,
    min_size: int = DEFAULT_MIN_SIZE,
    class_names: dict[int, str] | None = None,
) -> Summary:
    """Clusters the errors that ``errors_sql`` selects and stores the result under the job."""

    progress = progress_of(ctx)

    discard(metrics, job)
    progress("reading errors", 0.0)
    cols = metrics.query_columns(errors_sql, errors_params)
    frame_ids = np.asarray([str(f) for f in cols["frame_id"]], dtype=object)
    ids, x = read_vectors(ctx, metrics, vectors, job.project, dataset, space)
    position = {f: i for i, f in enumerate(ids)}
    rows = np.fromiter((position.get(f, -1) for f in frame_ids), dtype=np.int64, count=len(frame_ids))
    have = rows >= 0
    frame_ids, rows = frame_ids[have], rows[have]
    is_error = np.asarray(cols["is_error"], dtype=bool)[have]
    pair_labels = [p for p, h in zip(cols["pair_labels"], have, strict=True) if h]
    pair_predicted = [p for p, h in zip(cols["pair_predicted"], have, strict=True) if h]
    metric = "euclidean" if space_metric == "L2" else "cosine"
    x = x[rows] if len(rows) else np.zeros((0, x.shape[1] if x.ndim == 2 else 0), np.float32)
    if metric == "cosine" and len(x):
        x = _unit(x)
    progress("clustering the errors", 0.4)
    region, dist, kept = regions(x, is_error, max_clusters, min_size)
    number = {c: i + 1 for i, (c, *_) in enumerate(kept)}  # region index -> cluster number (0: none)
    cluster_of = np.fromiter((number.get(int(r), 0) for r in region), dtype=np.int32, count=len(region))

    progress("writing", 0.7)
    n = len(frame_ids)
    if n:
        metrics.insert_arrow("failure_cluster_members", pa.table({
            "project": pa.array([job.project] * n), "job_id": pa.array([job.job_id] * n),
            "frame_id": pa.array(frame_ids, pa.string()), "cluster": pa.array(cluster_of),
            "is_error": pa.array(is_error.astype(np.uint8)), "distance": pa.array(dist.astype(np.float32)),
        }))  # fmt: skip
    progress("describing the clusters", 0.8)
    counts = value_counts(metrics, job, dataset) if kept else {}
    names = class_names or {}
    clusters = []
    for i, (_, e, f, rate, lift, score, p_value) in enumerate(kept):
        members = np.flatnonzero((cluster_of == i + 1) & is_error)
        pairs: Counter[tuple[int, int]] = Counter()
        for r in members:
            pairs.update(zip((int(v) for v in pair_labels[r]), (int(v) for v in pair_predicted[r]), strict=True))
        c = Cluster(
            cluster=i + 1, errors=e, frames=f, error_rate=rate, lift=lift, score=score, p_value=p_value,
            class_pairs=[(a, b, m, m / e) for (a, b), m in sorted(pairs.items(), key=lambda t: (-t[1], t[0]))][
                :TOP_PAIRS],
            values=over_represented(counts, i + 1, e, n),
            example_frame_ids=[str(frame_ids[r]) for r in members[np.argsort(dist[members], kind="stable")][:EXAMPLES]],
        )  # fmt: skip
        c.description = describe(c, names)
        clusters.append(c)
    n_err = int(is_error.sum())
    summary = Summary(
        frames=n,
        errors=n_err,
        error_rate=n_err / n if n else 0.0,
        clustered_errors=sum(c.errors for c in clusters),
        metric=metric,
        frames_without_vectors=int((~have).sum()),
        clusters=clusters,
    )
    results.save_summary(metrics, job, summary.to_json())
    return summary


def cluster_frames(
    metrics: MetricsStore, project: str, job_id: str, cluster: int, *, include_correct: bool
) -> list[str]:
    """The frames of one cluster's region (its errors only, unless ``include_correct``)."""
    where = "" if include_correct else " AND is_error = 1"
    rows = metrics.query(
        "SELECT frame_id FROM failure_cluster_members FINAL WHERE project = {project:String} AND job_id = {job:String}"
        f" AND cluster = {{cluster:Int32}}{where} ORDER BY distance, frame_id",
        {"project": project, "job": job_id, "cluster": cluster},
    ).rows
    return [str(r[0]) for r in rows]


def discard(metrics: MetricsStore, job: Job) -> None:
    """Removes what a run of the job wrote (a cancelled or failed run keeps nothing)."""
    results.discard(metrics, job, TABLES)


def summary_of(metrics: MetricsStore, project: str, job_id: str) -> Summary | None:
    return results.summary_of(metrics, project, job_id, Summary)  # type: ignore[no-any-return]
