"""Label issues in classification: confident learning over an inference set's out-of-sample
probabilities, computed in ClickHouse with bounded memory.

1. Per class ``k``, the threshold ``t_k`` is the mean probability of ``k`` over the frames
   labeled ``k`` (the model's typical confidence in a correct ``k``).
2. The confident joint counts, per given label, the frames whose probability reaches the
   threshold of some class: its guess is that class (the most probable one when several reach
   theirs). It is calibrated so that its rows sum to the class counts and the whole to the number
   of frames, which estimates the joint of given and true labels.
3. For each given class ``k`` and other class ``j``, the estimated number of frames labeled ``k``
   that are truly ``j`` are the likely errors: the frames labeled ``k`` with the largest
   ``p_j - p_k`` (prune by noise rate). Frames whose most probable class is their label are
   never flagged.

With a neighbour job's graph, each frame's probabilities are first blended with its neighbours'
labels (:mod:`shoal.analysis.label_scoring` says why and how; :func:`_votes` computes the same
blend in ClickHouse), and everything below runs on the blend.

Steps 1 and 2 are two aggregations; step 3 keeps, per (k, j), only the top candidates
(``groupArraySorted``), so memory grows with the number of issues, not of frames. Every frame
also gets its scores: self-confidence (the probability of its label), the margin of its label
over the most probable other class, and the normalized entropy of its prediction weighted by the
inverse self-confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from scipy.special import xlogy

from shoal.analysis import dismissals, label_scoring, ranked
from shoal.analysis.export import FrameTable, count
from shoal.analysis.label_scoring import prune_counts, round_rows
from shoal.common.data import results
from shoal.common.data.answers import AnswerCache
from shoal.common.data.evaluations import write_refresh_keys
from shoal.common.data.query import Params, View, compile_filter, view_sql
from shoal.common.jobs import Job, JobContext, progress_of
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.v1 import common_pb2

KIND = "label_issues"
#: the most classes of a project whose label issues are computed: the summary keeps three K x K
#: matrices (the confident joint, the joint and the noise matrix)
MAX_CLASSES = 1_000
#: a class nobody is labeled with gets a threshold no probability reaches
UNREACHABLE = 2.0
#: slack of the threshold comparisons (probabilities are float32)
SLACK = 1e-6
#: frames x classes up to which the job reads the probabilities once and scores them in memory (160 MB
#: of float64); above, every step is an aggregation in the store
IN_MEMORY_CELLS = 20_000_000

#: what ExportJobResult streams of a finished job: one row per frame
FRAMES = FrameTable(
    "label_issue_frames",
    "frame_id, given_label, suggested_label, toBool(is_issue) AS is_issue, self_confidence, normalized_margin,"
    " weighted_entropy, suggested_probability",
)

MIGRATIONS = (
    Migration(
        component="analysis",
        version=4,
        name="label issues and job results",
        statements=(
            "CREATE TABLE IF NOT EXISTS label_issue_frames ("
            " project LowCardinality(String), job_id String, frame_id String, given_label Int32,"
            " suggested_label Int32, is_issue UInt8, self_confidence Float32, normalized_margin Float32,"
            " weighted_entropy Float32, suggested_probability Float32)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id)",
        ),
    ),
    Migration(
        component="analysis",
        version=15,
        name="label issues in page order",
        statements=(
            "CREATE TABLE IF NOT EXISTS label_issue_ranks ("
            " project LowCardinality(String), job_id String, listing LowCardinality(String), rank UInt32,"
            " frame_id String, given_label Int32, suggested_label Int32, is_issue UInt8, self_confidence Float32,"
            " normalized_margin Float32, weighted_entropy Float32, suggested_probability Float32)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, listing, rank)",
        ),
    ),
    Migration(
        component="analysis",
        version=28,
        name="label issues' ranks by frame",
        statements=ranked.backfill("label_issue_ranks", "frame_id, ''"),
    ),
)


def estimate_joint(confident: np.ndarray, class_counts: np.ndarray) -> np.ndarray:
    """The confident joint (rows: given label, columns: guessed true label) calibrated to the
    class counts (rows) and the number of frames (total), in whole frames."""
    c = confident.astype(np.float64)
    np.fill_diagonal(c, np.maximum(np.diag(c), 1))
    rows = c.sum(axis=1, keepdims=True)
    calibrated = c / np.maximum(rows, 1e-12) * class_counts[:, None]
    calibrated = calibrated / max(calibrated.sum(), 1e-12) * class_counts.sum()
    return round_rows(calibrated)


@dataclass
class Summary(results.JsonSummary):
    frames: int
    issues: int
    class_ids: list[int]
    thresholds: list[float]
    confident_joint: list[list[int]]
    joint: list[list[float]]
    noise_matrix: list[list[float]]
    issues_per_class: list[int]
    neighbor_job_id: str = ""
    neighbor_weight: float = 0.0


def _labeled(view: View, params: Params, where: str = "1") -> str:
    """The view's labeled frames that ``where`` keeps: frame_id, given (0-based position in the
    ontology) and probs."""
    return (
        f"SELECT frame_id, indexOf({params.add(list(view.ontology), 'Array(Int32)')}, label_class) - 1 AS given, probs"
        f" FROM ({view_sql(view, params)}) WHERE label_class IS NOT NULL AND {where} AND given >= 0"
    )


def _votes(view: View, params: Params, neighbors: Neighbors) -> str:
    """Per frame of the neighbour job's graph: ``votes``, the share of its labeled neighbours'
    weight on each class, and ``total`` (0: no labeled neighbour). A neighbour weighs the inverse of
    its distance, floored at a tenth of the frame's mean distance to its labeled
    neighbours so that an exact duplicate does not outvote the rest (as
    :func:`shoal.analysis.label_scoring.neighbor_votes`)."""
    k = len(view.ontology)
    project, job_id = params.add(neighbors.project, "String"), params.add(neighbors.job_id, "String")
    return (
        "SELECT frame_id, arraySum(x -> x.2, kn) / length(kn) AS mean_d,"
        f" greatest({label_scoring.DUPLICATE_FLOOR!r} * mean_d, 1e-12) AS floor_d,"
        " arrayMap(x -> 1 / greatest(x.2, floor_d), kn) AS w, arraySum(w) AS total,"
        f" arrayMap(c -> arraySum((x, y) -> if(x.1 = c, y, 0), kn, w) / total, range({k})) AS votes"
        " FROM (SELECT g.frame_id AS frame_id, groupArray((l.given, greatest(toFloat64(g.d), 0))) AS kn"
        " FROM (SELECT frame_id, nb, d FROM knn_graph FINAL ARRAY JOIN neighbors AS nb, distances AS d"
        f" WHERE project = {project} AND job_id = {job_id})"
        # every labeled frame votes, whatever the filter
        f" AS g INNER JOIN ({_labeled(view, params)}) AS l ON l.frame_id = g.nb GROUP BY g.frame_id)"
    )


def _source(view: View, flt: common_pb2.Filter, params: Params, neighbors: Neighbors | None = None) -> str:
    """The labeled frames with a full probability vector: frame_id, given (0-based position in
    the ontology) and probs; with ``neighbors``, probs blended with the neighbours' votes."""
    k = len(view.ontology)
    where = compile_filter(flt, view, params)
    frames = _labeled(view, params, f"length(probs) = {k} AND {where}")
    if neighbors is None:
        return frames
    a = neighbors.weight
    return (
        "SELECT s.frame_id AS frame_id, s.given AS given, if(v.total > 0,"
        f" arrayMap((p, x) -> {1 - a!r} * toFloat64(p) + {a!r} * x, s.probs, v.votes),"
        " arrayMap(p -> toFloat64(p), s.probs)) AS probs"
        f" FROM ({frames}) AS s LEFT JOIN ({_votes(view, params, neighbors)}) AS v ON v.frame_id = s.frame_id"
    )


@dataclass(frozen=True)
class Neighbors:
    """A neighbour job whose graph lends each frame its neighbours' labels, and their weight."""

    project: str
    job_id: str
    weight: float = label_scoring.ALPHA


def find_label_issues(ctx: JobContext | None, metrics: MetricsStore, view: View, flt: common_pb2.Filter,
                      job: Job, neighbors: Neighbors | None = None) -> Summary:  # fmt: skip
    """Computes the label issues of the frames ``view`` and ``flt`` select and stores them under
    the job (on the model's probabilities blended with ``neighbors``' labels when given); returns
    the summary (also stored).

    The per-class thresholds are one aggregation in the store. Up to :data:`IN_MEMORY_CELLS`
    probabilities the rest is computed on them in memory, read in one query and written in one
    insert; above, every step is an aggregation in the store, whose memory follows the number of
    issues rather than of frames. Both flag the same frames."""

    progress = progress_of(ctx)

    k = len(view.ontology)
    progress("per-class thresholds", 0.05)
    params = Params()
    src = _source(view, flt, params, neighbors)
    rows = metrics.query(f"SELECT given, count(), avgForEach(probs) FROM ({src}) GROUP BY given", params.values).rows
    counts = np.zeros(k, dtype=np.int64)
    thresholds = np.full(k, UNREACHABLE)
    for given, n, means in rows:
        counts[int(given)] = int(n)
        # a threshold of 0 would make every class confident for every frame (cleanlab's floor)
        thresholds[int(given)] = max(float(means[int(given)]), 2 * SLACK)
    frames = int(counts.sum())
    if frames * k <= IN_MEMORY_CELLS:
        scored = _in_memory(progress, metrics, view, flt, job, neighbors, counts, thresholds)
    else:
        discard(metrics, job)  # a rerun starts from nothing
        scored = _in_store(progress, metrics, view, flt, job, neighbors, counts, thresholds)
    confident, joint, per_class = scored

    total = max(int(joint.sum()), 1)
    true_totals = np.maximum(joint.sum(axis=0), 1)
    summary = Summary(
        frames=frames,
        issues=sum(per_class.values()),
        class_ids=list(view.ontology),
        thresholds=[float(t) if t < UNREACHABLE else -1.0 for t in thresholds],
        confident_joint=confident.tolist(),
        joint=(joint / total).tolist(),
        noise_matrix=(joint / true_totals[None, :]).tolist(),
        issues_per_class=[per_class.get(c, 0) for c in view.ontology],
        neighbor_job_id=neighbors.job_id if neighbors else "",
        neighbor_weight=neighbors.weight if neighbors else 0.0,
    )
    results.save_summary(metrics, job, summary.to_json())
    return summary


#: what :func:`find_label_issues` computes after the thresholds: the confident joint, its calibrated
#: joint, and the issues per class id
Scored = tuple[np.ndarray, np.ndarray, dict[int, int]]


def _calibrated(confident: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated joint and, per (given, other class), how many frames to flag."""
    k = len(counts)
    if not counts.sum():
        return np.zeros((k, k), dtype=np.int64), np.zeros((k, k), dtype=np.int64)
    joint = estimate_joint(confident, counts)
    prune = prune_counts(joint)
    np.fill_diagonal(prune, 0)
    return joint, prune


def _in_memory(progress: Any, metrics: MetricsStore, view: View, flt: common_pb2.Filter, job: Job,
               neighbors: Neighbors | None, counts: np.ndarray, thresholds: np.ndarray) -> Scored:  # fmt: skip
    """The steps after the thresholds on the probabilities read once, as the store computes them in
    :func:`_in_store` (float64 arithmetic, ties between equal margins broken by frame id)."""
    k = len(view.ontology)
    progress("reading the probabilities", 0.15)
    params = Params()
    # in frame id order, as the store compares them: ties between equal margins go to the lower frame id
    table = metrics.query_arrow(
        f"SELECT frame_id, given, probs FROM ({_source(view, flt, params, neighbors)}) ORDER BY frame_id",
        params.values,
    )
    n = table.num_rows
    ids = table.column("frame_id")
    given = table.column("given").to_numpy().astype(np.int64)
    probs = np.asarray(table.column("probs").combine_chunks().flatten(), dtype=np.float64).reshape(n, k)
    del table

    progress("confident joint", 0.4)
    reached = probs >= thresholds - SLACK
    many = reached.sum(axis=1)
    guess = np.where(many > 1, probs.argmax(axis=1), reached.argmax(axis=1))
    confident = np.zeros((k, k), dtype=np.int64)
    np.add.at(confident, (given[many > 0], guess[many > 0]), 1)
    joint, prune = _calibrated(confident, counts)

    progress("choosing the likely errors", 0.55)
    flagged = np.zeros(n, dtype=bool)
    by_given = np.argsort(given, kind="stable")  # each class's rows, in frame id order
    starts = np.searchsorted(given[by_given], np.arange(k + 1))
    for g, j in zip(*np.nonzero(prune), strict=True):
        rows = by_given[starts[g] : starts[g + 1]]
        flagged[rows[smallest(probs[rows, g] - probs[rows, j], int(prune[g, j]))]] = True

    progress("scoring every frame", 0.7)
    at = np.arange(n)
    p_given = probs[at, given]
    rest = probs.copy()
    rest[at, given] = -1.0
    other = rest.argmax(axis=1)
    p_other = rest[at, other]
    is_issue = flagged & (p_other > p_given + SLACK)  # never a frame whose most probable class is its label
    log_k = math.log(k) if k > 1 else 1.0
    entropy = -np.sum(xlogy(probs, probs), axis=1)  # p log p, 0 where p is 0
    ontology = np.asarray(view.ontology, dtype=np.int32)
    progress("writing", 0.8)
    rows = pa.table({
        "project": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([job.project])),
        "job_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([job.job_id])),
        "frame_id": ids, "given_label": pa.array(ontology[given]),
        "suggested_label": pa.array(ontology[other]), "is_issue": pa.array(is_issue.astype(np.uint8)),
        "self_confidence": pa.array(p_given.astype(np.float32)),
        "normalized_margin": pa.array((p_given - p_other).astype(np.float32)),
        "weighted_entropy": pa.array(np.minimum(entropy / log_k / np.maximum(p_given, 1e-6), 1e6).astype(np.float32)),
        "suggested_probability": pa.array(p_other.astype(np.float32)),
    })  # fmt: skip
    _write_over(metrics, job, rows)
    per_class = np.bincount(given[is_issue], minlength=k)
    return confident, joint, {int(ontology[c]): int(per_class[c]) for c in np.flatnonzero(per_class)}


def smallest(values: np.ndarray, m: int) -> np.ndarray:
    """The positions of the ``m`` smallest ``values``, ties broken by position: the first ``m`` of a
    stable argsort, found by a partition (linear time) instead of a sort."""
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    if m >= len(values):
        return np.arange(len(values))
    cut = np.partition(values, m - 1)[m - 1]
    below = np.flatnonzero(values < cut)
    at = np.flatnonzero(values == cut)[: m - len(below)]
    return np.sort(np.concatenate([below, at]))


def _write_over(metrics: MetricsStore, job: Job, rows: pa.Table) -> None:
    """Writes a run's rows over those of a previous run of the job: the table keeps the last row of each
    frame, so a rerun needs no delete first (a delete is a mutation, the slowest step of a small rerun).
    Only when the previous run scored frames this one did not (removed since, or unlabeled) are all
    of the job's rows deleted and these written again."""
    earlier = metrics.query(
        "SELECT 1 FROM label_issue_frames WHERE project = {p:String} AND job_id = {j:String} LIMIT 1",
        {"p": job.project, "j": job.job_id},
    ).rows
    metrics.insert_arrow("label_issue_frames", rows)
    if earlier and count(metrics, FRAMES, job.project, job.job_id) != rows.num_rows:
        discard(metrics, job)
        metrics.insert_arrow("label_issue_frames", rows)


def _in_store(progress: Any, metrics: MetricsStore, view: View, flt: common_pb2.Filter, job: Job,
              neighbors: Neighbors | None, counts: np.ndarray, thresholds: np.ndarray) -> Scored:  # fmt: skip
    """The steps after the thresholds as aggregations in the store: the confident joint, the top
    candidates per pair of classes, and every frame's scores written by INSERT ... SELECT."""
    k = len(view.ontology)
    progress("confident joint", 0.2)
    params = Params()
    src = _source(view, flt, params, neighbors)
    thr = params.add([float(t) for t in thresholds], "Array(Float64)")
    rows = metrics.query(
        "SELECT given, guess, count() FROM (SELECT given,"
        f" arrayMap((p, t) -> toFloat64(p) >= t - {SLACK!r}, probs, {thr}) AS confident, arraySum(confident) AS n,"
        " if(n > 1, arrayFirstIndex(x -> x = arrayMax(probs), probs), arrayFirstIndex(x -> x, confident)) - 1 AS guess"
        f" FROM ({src})) WHERE n > 0 GROUP BY given, guess",
        params.values,
    ).rows
    confident = np.zeros((k, k), dtype=np.int64)
    for given, guess, n in rows:
        confident[int(given), int(guess)] = int(n)
    joint, prune = _calibrated(confident, counts)

    progress("choosing the likely errors", 0.45)
    flagged: set[str] = set()
    most = int(prune.max()) if prune.size else 0
    if most > 0:
        params = Params()
        src = _source(view, flt, params, neighbors)
        pairs = [(g, j) for g in range(k) for j in range(k) if prune[g, j] > 0]
        rows = metrics.query(
            f"SELECT given, j, groupArraySorted({most})((toFloat64(probs[given + 1]) - toFloat64(probs[j + 1]),"
            f" frame_id)) FROM ({src}) ARRAY JOIN {params.add(sorted({j for _, j in pairs}), 'Array(UInt16)')} AS j"
            f" WHERE has({params.add(pairs, 'Array(Tuple(Int64, UInt16))')}, (given, j)) GROUP BY given, j",
            params.values,
        ).rows
        for given, j, best in rows:
            flagged.update(str(fid) for _, fid in best[: int(prune[int(given), int(j)])])

    progress("scoring every frame", 0.6)
    batch = write_refresh_keys(metrics, sorted(flagged)) if flagged else 0
    params = Params()
    src = _source(view, flt, params, neighbors)
    ontology = params.add(list(view.ontology), "Array(Int32)")
    log_k = math.log(k) if k > 1 else 1.0
    metrics.command(
        "INSERT INTO label_issue_frames (project, job_id, frame_id, given_label, suggested_label, is_issue,"
        " self_confidence, normalized_margin, weighted_entropy, suggested_probability)"
        f" SELECT {params.add(job.project, 'String')}, {params.add(job.job_id, 'String')}, frame_id,"
        f" {ontology}[given + 1], {ontology}[other], is_issue, p_given, p_given - p_other,"
        f" least(-arraySum(arrayMap(p -> if(p > 0, p * log(p), 0), probs)) / {log_k!r} / greatest(p_given, 1e-6),"
        " 1e6), p_other"
        " FROM (SELECT frame_id, given, probs, toFloat64(probs[given + 1]) AS p_given,"
        " arrayMap((p, i) -> if(i = given + 1, -1., toFloat64(p)), probs, arrayEnumerate(probs)) AS rest,"
        " arrayFirstIndex(x -> x = arrayMax(rest), rest) AS other, rest[other] AS p_other,"
        f" frame_id IN (SELECT frame_id FROM refresh_keys WHERE batch = {params.add(batch, 'UInt64')})"
        # never flag a frame whose most probable class is its label
        f" AND p_other > p_given + {SLACK!r} AS is_issue"
        f" FROM ({src}))",
        params.values,
    )
    progress("summarizing", 0.9)
    issues_per_class = metrics.query(
        "SELECT given_label, count() FROM label_issue_frames FINAL"
        " WHERE project = {project:String} AND job_id = {job:String} AND is_issue GROUP BY given_label",
        {"project": job.project, "job": job.job_id},
    ).rows
    return confident, joint, {int(c): int(n) for c, n in issues_per_class}


def discard(metrics: MetricsStore, job: Job) -> None:
    """Removes what a run of the job wrote (a cancelled or failed run keeps nothing)."""
    results.discard(metrics, job, ("label_issue_frames",))
    ranked.discard(metrics, job, ("label_issue_ranks",))


def summary_of(metrics: MetricsStore, project: str, job_id: str) -> Summary | None:
    return results.summary_of(metrics, project, job_id, Summary)  # type: ignore[no-any-return]


ORDERS = {
    0: "self_confidence ASC",
    1: "normalized_margin ASC",
    2: "weighted_entropy DESC",
}

#: what a page shows of each frame
PAGE_COLUMNS = ("frame_id, given_label, suggested_label, is_issue, self_confidence, normalized_margin,"
                " weighted_entropy, suggested_probability")  # fmt: skip


#: a ranked row's frame (the rows a page leaves out are its dismissed frames)
RANKED_FRAMES = "frame_id, ''"


def listing(all_frames: bool, order: int) -> ranked.Listing:
    """The job's issues (or every frame it examined) in ``order`` then frame id."""
    where = "project = {project:String} AND job_id = {job:String}" + ("" if all_frames else " AND is_issue")
    name = f"{'frames' if all_frames else 'issues'}.{order}"
    return ranked.Listing("label_issue_ranks", name, PAGE_COLUMNS, "label_issue_frames FINAL", where,
                          f"{ORDERS[order]}, frame_id", frames=RANKED_FRAMES)  # fmt: skip


#: every listing a job keeps in page order
LISTINGS = tuple(listing(a, o) for a in (False, True) for o in ORDERS)


def rank(metrics: MetricsStore, job: Job, summary: Summary, *, above: int) -> int:
    """Keeps the job's listings in page order when longer than ``above`` (see :mod:`ranked`)."""
    lengths = {False: summary.issues, True: summary.frames}
    return ranked.keep(metrics, job, [(listing(a, o), lengths[a]) for a in (False, True) for o in ORDERS],
                       above=above)  # fmt: skip


#: the tables a page of a job's frames reads (:func:`query_issues`)
PAGE_TABLES = ("label_issue_frames", "label_issue_ranks", *ranked.BY_FRAME_TABLES, *dismissals.IN_FORCE_TABLES)


def query_issues(
    metrics: MetricsStore,
    project: str,
    job_id: str,
    *,
    dataset: str,
    all_frames: bool,
    include_dismissed: bool,
    order: int,
    offset: int,
    size: int,
    answers: AnswerCache | None = None,
) -> tuple[list[tuple[Any, ...]], int, int]:
    """A page of the job's frames (issues only unless ``all_frames``; dismissed ones of ``dataset``
    only with ``include_dismissed``) in ``order`` then frame id, each row ending with whether it is
    dismissed; their count; and how many of the frames matched are dismissed. Read from the ranked
    rows when the job kept them (:mod:`ranked`), else from every frame of the job."""
    kw = {"dataset": dataset, "all_frames": all_frames, "include_dismissed": include_dismissed, "order": order,
          "offset": offset, "size": size, "answers": answers}  # fmt: skip
    found = _ranked_page(metrics, project, job_id, **kw)  # type: ignore[arg-type]
    if found is not None:
        return found
    where = "project = {project:String} AND job_id = {job:String}" + ("" if all_frames else " AND is_issue")
    params = {"project": project, "job": job_id, "dataset": dataset}
    return dismissals.page(metrics, "label_issue_frames FINAL", PAGE_COLUMNS, where, f"{ORDERS[order]}, frame_id",
                           params, dismissed=dismissals.frame_dismissed_sql(), include_dismissed=include_dismissed,
                           offset=offset, size=size)  # fmt: skip


def _entries(found: tuple[list[str], dict[str, list[Any]]]) -> int:
    return len(found[0]) + sum(len(v) for v in found[1].values())


def _ranked_page(metrics: MetricsStore, project: str, job_id: str, *, dataset: str, all_frames: bool,
                 include_dismissed: bool, order: int, offset: int, size: int,
                 answers: AnswerCache | None = None) -> tuple[list[tuple[Any, ...]], int, int] | None:  # fmt: skip
    """:func:`query_issues` from the ranked rows, or None when they do not hold the page."""
    lst = listing(all_frames, order)
    known = ranked.length(metrics, project, job_id, lst)
    if known is None or (known[1] < known[0] and offset + size > known[1]):
        return None
    # the dismissed frames among the ranked rows: their ranks in this order, and which of them the listing holds
    # (this order's ranks when they are the whole listing; else those of every order, and the job's rows)
    kin = [lst] if known[1] == known[0] else [listing(all_frames, o) for o in ORDERS]

    def lookup() -> tuple[list[str], dict[str, list[tuple[str, str, int]]]]:  # all it depends on read anew
        dismissed = [str(r[0]) for r in metrics.query(
            f"SELECT frame_id FROM ({dismissals.in_force_sql()}) WHERE object_id = ''",
            {"project": project, "dataset": dataset}).rows]  # fmt: skip
        return dismissed, ranked.ranks_by_frame(metrics, project, job_id, kin, dismissed, answers)

    # kept until a dismissal, a relabel or the ranks change; a frame's ranks are looked up once (about 0.1 ms a
    # frame at 10M frames) and kept until the ranks change, so one more dismissal reads that frame's alone
    key = ("label_issues.dismissed_ranks", project, job_id, dataset, tuple(k.key for k in kin))
    tables = (*ranked.BY_FRAME_TABLES, *dismissals.IN_FORCE_TABLES)
    dismissed, found_ranks = lookup() if answers is None else answers.get(tables, key, lookup, _entries)
    ranks = {name: {f: r for f, _, r in rows} for name, rows in found_ranks.items()}
    skipped = () if include_dismissed else ranks[lst.name].values()
    found = ranked.page(metrics, project, job_id, lst, offset=offset, size=size, skipped=skipped, known=known)
    if found is None:
        return None
    rows, total = found
    held = set().union(*(r.keys() for r in ranks.values()))
    rest = [f for f in dismissed if f not in held]
    n_dismissed = len(held)
    if rest and known[1] < known[0]:  # dismissed frames past the ranked rows: is the job's listing holding them?
        n_dismissed += int(metrics.query(
            "SELECT count() FROM label_issue_frames FINAL WHERE project = {project:String} AND job_id = {job:String}"
            f"{'' if all_frames else ' AND is_issue'} AND frame_id IN {{ids:Array(String)}}",
            {"project": project, "job": job_id, "ids": rest}).scalar())  # fmt: skip
    out = set(dismissed)
    rows = [(*r, r[0] in out) for r in rows]
    return rows, total if include_dismissed else total - n_dismissed, n_dismissed
