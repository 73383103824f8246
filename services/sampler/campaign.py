"""Collection campaigns: choose up to a budget of pool frames for labeling, ranked, each with its
scores and a reason, and saved as a segment. Without seeds it is active learning.

1. **Scores.** Every pool frame with a vector that passes the filter and exclusions is a
   candidate (frames of the seed segment never are). Its score is
   ``similarity * s + uncertainty * u`` where ``s`` is its best cosine similarity to a seed and
   ``u`` the inference set's uncertainty about it, in [0, 1] (normalised entropy, one minus the
   top-two margin, or least confidence scaled by K / (K - 1)).
2. **Pre-selection.** The :data:`PRESELECT` x budget best-scoring candidates (at most
   :data:`MAX_PRESELECT`) go on; the rest of the pool cannot enter the sample. With every score
   equal (pure diversity) they are a uniform random subset of the candidates.
3. **Greedy selection** (:func:`select`) adds one frame at a time, the one of largest gain:

   - MMR: ``score - diversity * max(0, similarity to the nearest pick)``;
   - k-center greedy: ``diversity * (cosine distance to the nearest pick)``, the score breaking
     ties (the first pick is the best-scoring candidate);
   - minus ``balance * picks of its predicted class / (budget / classes predicted)`` in both,
     so over-represented classes give way.

   A candidate within ``duplicate_distance`` of a pick, or of a frame of the labeled set, is
   skipped. Gains never grow as frames are picked, so the selection is lazy and exact: the best
   :data:`SHORTLIST` candidates are compared among themselves (one small similarity matrix) and
   picked while their updated gain stays above the best gain outside the shortlist; then every
   candidate's distance to the new picks is updated with one matrix product. Near-duplicates of
   the labeled set are checked only for the shortlisted candidates, so the labeled set is
   compared with about as many candidates as are picked, not with the whole pool.

The ranked sample goes to ``campaign_items`` and the summary to ``job_results``; the segment is
written last. A cancelled or failed run removes all three (the segment only when this job made it).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from shoal.common.data import results
from shoal.common.data.embeddings import read_vectors, vector_pk
from shoal.common.data.evaluations import frame_fields
from shoal.common.data.projects import Project
from shoal.common.data.query import View
from shoal.common.data.segments import Segment, SegmentStore
from shoal.common.jobs import Job, JobContext, progress_of
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.stores.vectors import VectorStore, collection_name
from shoal.common.v1 import common_pb2
from shoal.sampler import search

KIND = "campaign"
MAX_BUDGET = 100_000
MAX_SEEDS = 1_000
#: candidates kept for the greedy selection, per frame of the budget
PRESELECT = 10
MAX_PRESELECT = 1_000_000
#: candidates compared among themselves per step of the lazy greedy selection
SHORTLIST = 256
DEFAULT_DUPLICATE_DISTANCE = 0.02
#: in k-center greedy, the weight of the score against the distance (ties only)
TIE_BREAK = 1e-3
#: rows per matrix product over the pool or the labeled set
BLOCK = 65_536
METHODS = ("mmr", "k_center")
MEASURES = ("entropy", "margin", "least_confidence")
TABLES = ("campaign_items",)

MIGRATIONS = (
    Migration(
        component="sampler",
        version=1,
        name="campaigns and job results",
        statements=(
            "CREATE TABLE IF NOT EXISTS campaign_items ("
            " project LowCardinality(String), job_id String, rank UInt32, frame_id String, score Float64,"
            " similarity Nullable(Float32), seed_dataset String, seed_frame String, uncertainty Nullable(Float32),"
            " predicted_class Nullable(Int32), diversity_gain Float32, reason String)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, rank)",
        ),
    ),
)

_PROBS = "arrayMap(p -> p / arraySum(probs), probs)"
#: each measure over a frame's probabilities, in [0, 1] (1: the most uncertain)
_MEASURE_SQL = {
    "entropy": f"-arraySum(p -> if(p > 0, p * log(p), 0), {_PROBS}) / log(length(probs))",
    "margin": f"1 - (arrayReverseSort({_PROBS})[1] - arrayReverseSort({_PROBS})[2])",
    "least_confidence": f"(1 - arrayMax({_PROBS})) * length(probs) / (length(probs) - 1)",
}


@dataclass(frozen=True)
class Strategy:
    similarity: float
    uncertainty: float
    diversity: float
    balance: float
    method: str
    measure: str

    def describe(self) -> str:
        return (
            f"similarity {self.similarity:g}, uncertainty {self.uncertainty:g} ({self.measure}),"
            f" diversity {self.diversity:g} ({self.method}), balance {self.balance:g}"
        )


@dataclass
class Summary(results.JsonSummary):
    segment: str
    budget: int
    selected: int
    candidates: int
    preselected: int
    skipped_duplicates_of_picked: int
    skipped_duplicates_of_labeled: int
    strategy: str
    seeds: int
    duplicate_distance: float
    #: (class id, class name, frames) of the picked frames' predicted classes
    classes: list[tuple[int, str, int]] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str) -> Summary:
        d = json.loads(text)
        d["classes"] = [tuple(c) for c in d["classes"]]
        return cls(**d)


@dataclass
class Selection:
    """The picks, in order: indices into the candidates, their gain when picked and their cosine
    distance to the nearest earlier pick (2 for the first)."""

    order: np.ndarray
    gain: np.ndarray
    distance: np.ndarray
    skipped_picked: int = 0
    skipped_labeled: int = 0


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Scales the rows of ``x`` (N, D) to unit length in place, block by block; returns ``x``."""
    for start in range(0, len(x), BLOCK):
        part = x[start : start + BLOCK]
        part /= np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)
    return x


def nearest(x: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For unit rows ``x`` (N, D) and unit ``refs`` (M, D): the best cosine similarity of each row
    to a ref and that ref's index, computed block by block."""
    best = np.full(len(x), -np.inf, dtype=np.float32)
    which = np.zeros(len(x), dtype=np.int64)
    for start in range(0, len(x), BLOCK):
        sims = x[start : start + BLOCK] @ refs.T
        which[start : start + BLOCK] = sims.argmax(axis=1)
        best[start : start + BLOCK] = sims.max(axis=1)
    return best, which


def max_similarity_to(refs: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving the best cosine similarity of unit rows to the unit rows ``refs``,
    reading ``refs`` block by block (for a labeled set too large for one product)."""

    def best(x: np.ndarray) -> np.ndarray:
        out = np.full(len(x), -np.inf, dtype=np.float32)
        for start in range(0, len(refs), BLOCK):
            out = np.maximum(out, (x @ refs[start : start + BLOCK].T).max(axis=1))
        return out

    return best


def select(
    *,
    x: np.ndarray,
    score: np.ndarray,
    budget: int,
    diversity: float = 0.0,
    method: str = "mmr",
    classes: np.ndarray | None = None,
    balance: float = 0.0,
    duplicate_similarity: float | None = None,
    labeled_similarity: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: Callable[[float], None] | None = None,
) -> Selection:
    """Greedy budgeted selection over N candidates (see the module docstring).

    Parameters
    ----------
    x : (N, D) float32, unit rows
        The candidates' vectors.
    score : (N,) float
        Their weighted similarity and uncertainty; larger is better.
    budget : int
        Picks wanted; fewer come back when the candidates run out.
    diversity, method : float, "mmr" or "k_center"
        The diversity weight and how it applies; 0 picks by score (and balance) alone.
    classes : (N,) int, optional
        Predicted class of each candidate (-1: none), for ``balance``.
    duplicate_similarity : float, optional
        A candidate whose cosine similarity to a pick, or to the labeled set, is at least this is
        skipped.
    labeled_similarity : callable, optional
        The best cosine similarity of some unit rows (B, D) to the labeled set, (B,).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n = len(x)
    score = np.asarray(score, dtype=np.float64)
    if classes is None or balance <= 0:
        codes, n_classes = np.zeros(n, dtype=np.int64), 0
    else:
        known = np.unique(classes[classes >= 0])
        n_classes = len(known)
        codes = np.where(classes >= 0, np.searchsorted(known, classes), n_classes).astype(np.int64)
    quota = budget / max(n_classes, 1)
    counts = np.zeros(n_classes + 1, dtype=np.float64)  # the last slot (no class) stays 0

    def gains(s: np.ndarray, maxsim: np.ndarray, code: np.ndarray, count: np.ndarray) -> np.ndarray:
        if diversity <= 0:
            g = s.copy()
        elif method == "mmr":
            g = s - diversity * np.maximum(maxsim, 0.0)
        else:
            g = diversity * (1.0 - maxsim) + TIE_BREAK * s
        if n_classes:
            g -= balance * count[code] / quota
        return g

    maxsim = np.full(n, -1.0, dtype=np.float32)  # cosine similarity to the nearest pick (-1: none yet)
    alive = np.ones(n, dtype=bool)
    verified = np.zeros(n, dtype=bool)
    order: list[int] = []
    gain_at: list[float] = []
    dist_at: list[float] = []
    out = Selection(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    while len(order) < budget:
        g = np.where(alive, gains(score, maxsim, codes, counts), -np.inf)
        left = int(alive.sum())
        if left == 0:
            break
        b = min(SHORTLIST, left)
        short = np.argpartition(-g, b - 1)[:b] if b < n else np.arange(n)
        short = short[np.argsort(-g[short], kind="stable")]
        short = short[alive[short]]
        bound = float(np.partition(g, n - b - 1)[n - b - 1]) if left > b else -np.inf
        if labeled_similarity is not None and duplicate_similarity is not None:
            check = short[~verified[short]]
            if len(check):
                dup = check[labeled_similarity(x[check]) >= duplicate_similarity]
                verified[check] = True
                alive[dup] = False
                out.skipped_labeled += len(dup)
                short = short[alive[short]]
                if len(dup):
                    continue  # the bound may have come from a candidate just removed
        xs = x[short]
        pair = xs @ xs.T
        local = maxsim[short].copy()
        count = counts.copy()
        open_ = np.ones(len(short), dtype=bool)
        picked: list[int] = []
        while len(order) < budget:
            lg = np.where(open_, gains(score[short], local, codes[short], count), -np.inf)
            j = int(np.argmax(lg))
            if not np.isfinite(lg[j]) or lg[j] < bound:
                break
            open_[j] = False
            if duplicate_similarity is not None and local[j] >= duplicate_similarity:
                alive[short[j]] = False
                out.skipped_picked += 1
                continue
            order.append(int(short[j]))
            gain_at.append(float(lg[j]))
            dist_at.append(float(1.0 - local[j]))
            picked.append(int(short[j]))
            alive[short[j]] = False
            local = np.maximum(local, pair[j])
            if n_classes and codes[short[j]] < n_classes:
                count[codes[short[j]]] += 1
        if picked:
            counts = count
            for start in range(0, n, BLOCK):
                part = x[start : start + BLOCK] @ x[picked].T
                maxsim[start : start + BLOCK] = np.maximum(maxsim[start : start + BLOCK], part.max(axis=1))
            if duplicate_similarity is not None:
                dup = alive & (maxsim >= duplicate_similarity)
                out.skipped_picked += int(dup.sum())
                alive &= ~dup
        if progress is not None:
            progress(len(order) / budget)
    out.order = np.asarray(order, dtype=np.int64)
    out.gain = np.asarray(gain_at)
    out.distance = np.asarray(dist_at)
    return out


# -- inputs from the stores ------------------------------------------------------------------------


def uncertainty(
    metrics: MetricsStore, project: str, inference_set: str, dataset: str, measure: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame ids, uncertainty in [0, 1], predicted class or -1) of the frames the set has class
    probabilities for."""
    rows = metrics.query_columns(
        f"SELECT frame_id, toFloat64({_MEASURE_SQL[measure]}) AS u, ifNull(pred_raw, -1) AS pred"
        " FROM evaluations FINAL WHERE project = {p:String} AND inference_set = {s:String} AND dataset = {d:String}"
        " AND length(probs) >= 2 AND arraySum(probs) > 0",
        {"p": project, "s": inference_set, "d": dataset},
    )
    u = np.clip(np.nan_to_num(rows["u"].astype(np.float64)), 0.0, 1.0)
    return rows["frame_id"].astype(str), u, rows["pred"].astype(np.int64)


def seed_frames(metrics: MetricsStore, project: str, segment: str) -> list[tuple[str, str]]:
    """The (dataset, frame id) of a segment's members, objects counted by their frame."""
    rows = metrics.query(
        "SELECT DISTINCT dataset, frame_id FROM segment_members FINAL WHERE project = {p:String}"
        " AND segment = {s:String} AND removed = 0 ORDER BY dataset, frame_id",
        {"p": project, "s": segment},
    ).rows
    return [(str(d), str(f)) for d, f in rows]


def seed_vectors(
    vectors: VectorStore, project: str, space: str, frames: Sequence[tuple[str, str]]
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The seed frames that have a vector in ``space``, and their vectors."""
    collection = collection_name(project, space)
    if not frames or not vectors.has_collection(collection):
        return [], np.zeros((0, 0), dtype=np.float32)
    keys = {vector_pk(d, f, ""): (d, f) for d, f in frames}
    got = vectors.get(collection, list(keys))
    return [keys[k] for k in got.ids], np.asarray(got.vectors, dtype=np.float32).reshape(len(got.ids), -1)


def _positions(ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``wanted`` is in the sorted ``ids``: (positions, found mask)."""
    if len(ids) == 0 or len(wanted) == 0:
        return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    pos = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
    return pos, ids[pos] == wanted


# -- the job ---------------------------------------------------------------------------------------


def segment_reason(job_id: str, strategy: Strategy, budget: int, seed_segment: str) -> str:
    """The reason of the campaign's segment; it names the job, which is how a discarded run
    recognises a segment as its own."""
    seeds = f"seeds {seed_segment!r}" if seed_segment else "no seeds (active learning)"
    return f"collection campaign {job_id}: budget {budget}, {seeds}, {strategy.describe()}"


def owns_segment(segments: SegmentStore, project: str, name: str, job_id: str) -> bool:
    seg = segments.find(project, name)
    return seg is not None and seg.reason.startswith(f"collection campaign {job_id}:")


def build(
    ctx: JobContext | None,
    metrics: MetricsStore,
    vectors: VectorStore,
    job: Job,
    *,
    project: Project,
    view: View,
    name: str,
    space: str,
    seed_space: str,
    seed_segment: str,
    budget: int,
    strategy: Strategy,
    inference_set: str,
    duplicate_distance: float | None,
    labeled_dataset: str,
    flt: common_pb2.Filter,
    exclude_labeled: bool,
    exclude_segments: list[str],
    exclude_sent: bool = False,
) -> Summary:
    """Runs the campaign and stores its sample, summary and segment under the job."""

    progress = progress_of(ctx)
    segments = SegmentStore(metrics)
    discard(metrics, job)
    pool = view.dataset
    ids_list, x = read_vectors(ctx, metrics, vectors, project.name, pool, space)  # sorted by frame id
    ids = np.asarray(ids_list, dtype=str)
    x = unit_rows(np.ascontiguousarray(x, dtype=np.float32))
    progress("scoping", 0.3)
    keep = np.ones(len(ids), dtype=bool)
    pool_scope = search.scope(metrics, view, flt, exclude_labeled=exclude_labeled, exclude_segments=exclude_segments,
                              exclude_sent=exclude_sent)  # fmt: skip
    if pool_scope is not None:
        keep = np.isin(ids, np.asarray(sorted(pool_scope.ids), dtype=str)) == pool_scope.inside

    seeds: list[tuple[str, str]] = []
    seed_x = np.zeros((0, x.shape[1] if x.ndim == 2 else 0), dtype=np.float32)
    if seed_segment:
        seeds, seed_x = seed_vectors(
            vectors, project.name, seed_space, seed_frames(metrics, project.name, seed_segment)
        )
        if not seeds:
            raise ValueError(f"no frame of segment {seed_segment!r} has a vector in space {seed_space!r}")
        seed_x = unit_rows(seed_x)
        own = np.asarray([f for d, f in seeds if d == pool], dtype=str)
        pos, found = _positions(ids, own)
        keep[pos[found]] = False

    labels, _ = frame_fields(metrics, project.name, pool, ids_list)
    labeled_parts = [x[labels >= 0]]
    if labeled_dataset and labeled_dataset != pool:
        lids, lx = read_vectors(None, metrics, vectors, project.name, labeled_dataset, space)
        if len(lids):
            llabels, _ = frame_fields(metrics, project.name, labeled_dataset, lids)
            labeled_parts.append(unit_rows(np.ascontiguousarray(lx[llabels >= 0], dtype=np.float32)))
    labeled = np.concatenate(labeled_parts) if sum(len(p) for p in labeled_parts) else None

    progress("scoring", 0.4)
    cand = np.flatnonzero(keep)
    score = np.zeros(len(cand), dtype=np.float64)
    sim = nearest_seed = None
    if len(seeds) and len(cand):
        sim, nearest_seed = nearest(x, seed_x)
        sim, nearest_seed = sim[cand], nearest_seed[cand]
        score += strategy.similarity * sim
    unc = pred = None
    if inference_set:
        fid, u, p = uncertainty(metrics, project.name, inference_set, pool, strategy.measure)
        pos, found = _positions(ids, fid)
        full_u, full_p = np.zeros(len(ids)), np.full(len(ids), -1, dtype=np.int64)
        full_u[pos[found]], full_p[pos[found]] = u[found], p[found]
        unc, pred = full_u[cand], full_p[cand]
        score += strategy.uncertainty * unc
    # equal scores are broken at random (reproducibly): pure diversity starts from a uniform sample
    jitter = np.random.default_rng(0).random(len(cand)) * 1e-9
    n_pre = min(len(cand), min(MAX_PRESELECT, max(budget, PRESELECT * budget)))
    pre = np.argpartition(-(score + jitter), n_pre - 1)[:n_pre] if 0 < n_pre < len(cand) else np.arange(len(cand))
    pre = pre[np.argsort(-(score[pre] + jitter[pre]), kind="stable")]

    progress("selecting", 0.5)
    chosen = select(
        x=x[cand[pre]], score=score[pre], budget=budget, diversity=strategy.diversity, method=strategy.method,
        classes=None if pred is None else pred[pre], balance=strategy.balance,
        duplicate_similarity=None if duplicate_distance is None else 1.0 - duplicate_distance,
        labeled_similarity=None if labeled is None or duplicate_distance is None else max_similarity_to(labeled),
        progress=lambda f: progress("selecting", 0.5 + 0.4 * f),
    )  # fmt: skip
    progress("saving", 0.9)
    rows = pre[chosen.order]
    frames = [str(f) for f in ids[cand[rows]]]
    names = {c.id: c.name for c in project.classes}
    item_cols: list[list[object]] = [[] for _ in range(12)]
    for r, (i, g, d) in enumerate(zip(rows, chosen.gain, chosen.distance, strict=True)):
        reason = []
        s_val = u_val = c_val = None
        seed = ("", "")
        if sim is not None and nearest_seed is not None:
            s_val, seed = float(sim[i]), seeds[int(nearest_seed[i])]
            reason.append(f"similar to seed {seed[0]}/{seed[1]} ({s_val:.2f})")
        if unc is not None and pred is not None:
            u_val = float(unc[i])
            c_val = int(pred[i]) if pred[i] >= 0 else None
            if strategy.uncertainty > 0:
                reason.append(f"uncertain ({strategy.measure.replace('_', ' ')} {u_val:.2f})")
            if c_val is not None:
                reason.append(f"predicted {names.get(c_val, str(c_val))}")
        if strategy.diversity > 0:
            reason.append("first pick" if r == 0 else f"{d:.2f} from the nearest earlier pick")
        row = (project.name, job.job_id, r + 1, frames[r], float(g), s_val, seed[0], seed[1], u_val, c_val, float(d),
               "; ".join(reason) or "in scope")  # fmt: skip
        for col, v in zip(item_cols, row, strict=True):
            col.append(v)
    metrics.insert_columns("campaign_items", item_cols,
                           ["project", "job_id", "rank", "frame_id", "score", "similarity", "seed_dataset",
                            "seed_frame", "uncertainty", "predicted_class", "diversity_gain", "reason"])  # fmt: skip
    classes = []
    if pred is not None:
        counted = Counter(int(c) for c in pred[rows] if c >= 0)
        classes = [(c, names.get(c, str(c)), n) for c, n in sorted(counted.items())]
    if ctx is not None:
        ctx.check()  # a cancelled run writes no segment
    segments.create(
        Segment(project=project.name, name=name, dataset=pool, kind="OTHER",
                reason=segment_reason(job.job_id, strategy, budget, seed_segment), author=f"sampler job {job.job_id}"),
        project, frames,
    )  # fmt: skip
    summary = Summary(
        segment=name, budget=budget, selected=len(frames), candidates=len(cand), preselected=len(pre),
        skipped_duplicates_of_picked=chosen.skipped_picked, skipped_duplicates_of_labeled=chosen.skipped_labeled,
        strategy=strategy.describe(), seeds=len(seeds),
        duplicate_distance=-1.0 if duplicate_distance is None else duplicate_distance, classes=classes,
    )  # fmt: skip
    results.save_summary(metrics, job, summary.to_json())
    return summary


def summary_of(metrics: MetricsStore, project: str, job_id: str) -> Summary | None:
    return results.summary_of(metrics, project, job_id, Summary, service="sampler")  # type: ignore[no-any-return]


def query_items(metrics: MetricsStore, project: str, job_id: str, *, offset: int, size: int) -> list[tuple]:  # type: ignore[type-arg]
    """The sample's items by rank: (rank, frame, score, similarity, seed dataset, seed frame,
    uncertainty, predicted class, diversity gain, reason)."""
    return metrics.query(
        "SELECT rank, frame_id, score, similarity, seed_dataset, seed_frame, uncertainty, predicted_class,"
        " diversity_gain, reason FROM campaign_items FINAL WHERE project = {p:String} AND job_id = {j:String}"
        " ORDER BY rank LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
        {"p": project, "j": job_id, "limit": size, "offset": offset},
    ).rows


def discard(metrics: MetricsStore, job: Job) -> None:
    """Removes a run's sample, summary and the segment it created (never another's segment)."""
    results.discard(metrics, job, TABLES)
    segments = SegmentStore(metrics)
    name = job.params.get("name", "")
    if name and owns_segment(segments, job.project, name, job.job_id):
        segments.delete(job.project, name)


def finite_weight(value: float) -> bool:
    return math.isfinite(value) and value >= 0
