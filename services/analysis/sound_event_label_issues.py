"""The label-issues job of a sound-event project: every labeled event of the clips an inference set
predicts judged against the predicted events (:mod:`shoal.analysis.sound_event_issues`): spurious, badly
bounded or of the wrong class, and confident predicted events no labeled event accounts for (missing).

The clips are read a chunk at a time (:class:`~shoal.analysis.sound_event_analysis.ClipReader`) and judged
in batches of up to :data:`BATCH_EVENTS` labeled and predicted events: the detector's miss rate per class,
which ranks the spurious events, is estimated over a batch, so batches are as large as memory sensibly
allows (about 200 MB for a batch's events and verdicts). The job keeps one row per scored interval: every
labeled event (``item`` its position in its clip's latest labels) and every predicted event flagged
missing (``item`` :data:`MISSING_ITEM` plus its position among the clip's predictions), each with the
events it concerns, so that a page shows what was judged even after a relabel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from shoal.analysis import dismissals
from shoal.analysis import sound_event_issues as kernel
from shoal.analysis.sound_event_analysis import ClipReader, Clips
from shoal.analysis.sound_events import Intervals
from shoal.common.data import results
from shoal.common.jobs import Job, JobContext, progress_of
from shoal.common.stores.metrics import MetricsStore, Migration

KIND = "sound_event_label_issues"

MIGRATIONS = (
    Migration(
        component="analysis",
        version=25,
        name="sound-event label issues",
        statements=(
            # issue_type: SoundEventIssueType's number (0: not flagged); a missing event's row has no labeled
            # event (l_class -1), a row without a predicted event p_class -1; iou NaN where none overlaps
            "CREATE TABLE IF NOT EXISTS sound_event_issue_intervals ("
            " project LowCardinality(String), job_id String, frame_id String, item UInt32, issue_type UInt8,"
            " score Float64, is_issue UInt8, l_onset Float64, l_offset Float64, l_class Int32,"
            " p_onset Float64, p_offset Float64, p_class Int32, p_score Float32, suggested_class Int32, iou Float64)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id, item)",
        ),
    ),
)
TABLES = ("sound_event_issue_intervals",)
#: SoundEventIssueType's numbers
MISSING, SPURIOUS, BADLY_BOUNDED, WRONG_CLASS = 1, 2, 3, 4
TYPES = (MISSING, SPURIOUS, BADLY_BOUNDED, WRONG_CLASS)
_TYPE_OF_KIND = np.array([0, SPURIOUS, BADLY_BOUNDED, WRONG_CLASS], dtype=np.uint8)
#: a missing event's item: this plus its position among its clip's predictions (a clip holds at most 10,000)
MISSING_ITEM = 1 << 20
#: labeled and predicted events judged together (their miss rates are estimated together)
BATCH_EVENTS = 1_000_000
#: an interval page's columns, as :func:`query_intervals` returns them (and whether the clip is dismissed)
COLUMNS = ("frame_id, item, issue_type, score, is_issue, l_onset, l_offset, l_class, p_onset, p_offset, p_class,"
           " p_score, suggested_class, iou")  # fmt: skip
_ORDER = "is_issue DESC, score ASC, frame_id, item"
#: a clip page's columns
CLIP_COLUMNS = "frame_id, clip_score, clip_issue, worst_type, missing, spurious, badly_bounded, wrong_class"


@dataclass
class Summary(results.JsonSummary):
    clips: int
    labeled_events: int
    predicted_events: int
    flagged_clips: int
    missing: int
    spurious: int
    badly_bounded: int
    wrong_class: int
    confident: float
    min_iou: float
    min_overlap: float
    #: the batches the clips were judged in (each estimated its own miss rates)
    batches: int = 0


def _concat(chunks: Sequence[Clips]) -> tuple[list[str], Intervals, Intervals, np.ndarray]:
    """The chunks' clips as one batch: frame ids, labeled and predicted events, labeled events' positions."""

    def side(parts: list[Intervals], what: str) -> Intervals:
        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        sizes = np.concatenate([np.diff(p.bounds) for p in parts])
        return Intervals(onset=joined("onset"), offset=joined("offset"), cls=joined("cls"), classes=parts[0].classes,
                         score=None if parts[0].score is None else joined("score"),
                         bounds=np.r_[0, np.cumsum(sizes)].astype(np.int64), what=what)  # fmt: skip

    frames = [f for c in chunks for f in c.frame_ids]
    labeled = side([c.labeled for c in chunks], "labeled event")
    predicted = side([c.predicted[0] for c in chunks], "predicted event")
    return frames, labeled, predicted, np.concatenate([c.label_index for c in chunks])


def _rows(job: Job, frames: list[str], labeled: Intervals, predicted: Intervals, index: np.ndarray,
          found: kernel.IntervalIssues, ontology: np.ndarray) -> pa.Table:  # fmt: skip
    """The batch's rows: every labeled event, then every prediction flagged missing."""
    missing = np.flatnonzero(found.missing)
    m_clip = predicted.clip_of()[missing]
    none = np.full(len(missing), -1)
    score = predicted.score if predicted.score is not None else np.zeros(len(predicted))
    # the predicted event each row shows: a wrong class's evidence, the missing event itself; -1 none
    shown = np.r_[found.evidence, missing].astype(np.int64)

    def pick(values: np.ndarray, empty: float) -> np.ndarray:
        if not len(predicted):
            return np.full(len(shown), empty)
        return np.where(shown >= 0, values[np.maximum(shown, 0)], empty)

    columns = {
        "frame_id": [frames[c] for c in labeled.clip_of()] + [frames[c] for c in m_clip],
        "item": np.r_[index, MISSING_ITEM + missing - predicted.bounds[m_clip]].astype(np.uint32),
        "issue_type": np.r_[_TYPE_OF_KIND[found.kind], np.full(len(missing), MISSING)].astype(np.uint8),
        "score": np.r_[found.score, found.missing_score[missing]],
        "is_issue": np.r_[found.kind != 0, np.ones(len(missing), bool)].astype(np.uint8),
        "l_onset": np.r_[labeled.onset, np.full(len(missing), np.nan)],
        "l_offset": np.r_[labeled.offset, np.full(len(missing), np.nan)],
        "l_class": np.r_[ontology[labeled.cls], none].astype(np.int32),
        "p_onset": pick(predicted.onset, np.nan),
        "p_offset": pick(predicted.offset, np.nan),
        "p_class": pick(ontology[predicted.cls], -1).astype(np.int32),
        "p_score": pick(score, 0.0).astype(np.float32),
        "suggested_class": np.r_[
            np.where(found.suggested >= 0, ontology[np.maximum(found.suggested, 0)], -1), none
        ].astype(np.int32),
        "iou": np.r_[found.iou, np.full(len(missing), np.nan)],
    }
    rows = len(columns["frame_id"])
    return pa.table({"project": pa.array([job.project] * rows, pa.string()),
                     "job_id": pa.array([job.job_id] * rows, pa.string()),
                     **{name: pa.array(values) for name, values in columns.items()}})  # fmt: skip


def run(
    ctx: JobContext | None,
    metrics: MetricsStore,
    job: Job,
    *,
    dataset: str,
    inference_set: str,
    ontology: list[int],
    frames_sql: str = "",
    frames_params: Mapping[str, Any] | None = None,
    batch_events: int = BATCH_EVENTS,
) -> Summary:
    """Judges the labeled clips of ``dataset`` that ``inference_set`` predicts (those ``frames_sql``
    selects) and stores a row per scored interval under the job; returns the summary."""
    progress = progress_of(ctx)
    discard(metrics, job)
    reader = ClipReader(metrics, job.project, dataset, [inference_set], ontology, frames_sql=frames_sql,
                        frames_params=dict(frames_params or {}))  # fmt: skip
    progress("counting clips", 0.0)
    total = max(reader.count(), 1)
    ids = np.asarray(ontology, dtype=np.int32)
    counts = dict.fromkeys(("clips", "labeled", "predicted", "batches"), 0)
    per_type = dict.fromkeys(TYPES, 0)
    flagged: set[str] = set()
    pending: list[Clips] = []
    size = 0

    def judge() -> None:
        frames, labeled, predicted, index = _concat(pending)
        found = kernel.find(labeled=labeled, predicted=predicted)
        table = _rows(job, frames, labeled, predicted, index, found, ids)
        metrics.insert_arrow(TABLES[0], table)
        types = table.column("issue_type").to_numpy()
        issue = table.column("is_issue").to_numpy().astype(bool)
        for t in TYPES:
            per_type[t] += int((issue & (types == t)).sum())
        flagged.update(np.asarray(table.column("frame_id").to_pylist(), dtype=object)[issue].tolist())
        counts["clips"] += len(frames)
        counts["labeled"] += len(labeled)
        counts["predicted"] += len(predicted)
        counts["batches"] += 1
        progress("judging the events", 0.05 + 0.9 * min(counts["clips"] / total, 1.0))

    for chunk in reader.chunks():
        pending.append(chunk)
        size += len(chunk.labeled) + len(chunk.predicted[0])
        if size >= batch_events:
            judge()
            pending, size = [], 0
    if pending:
        judge()
    summary = Summary(
        clips=counts["clips"], labeled_events=counts["labeled"], predicted_events=counts["predicted"],
        flagged_clips=len(flagged), missing=per_type[MISSING], spurious=per_type[SPURIOUS],
        badly_bounded=per_type[BADLY_BOUNDED], wrong_class=per_type[WRONG_CLASS], confident=kernel.DEFAULT_CONFIDENT,
        min_iou=kernel.DEFAULT_MIN_IOU, min_overlap=kernel.DEFAULT_MIN_OVERLAP, batches=counts["batches"],
    )  # fmt: skip
    results.save_summary(metrics, job, summary.to_json())
    return summary


def discard(metrics: MetricsStore, job: Job) -> None:
    results.discard(metrics, job, TABLES)


def summary_of(metrics: MetricsStore, project: str, job_id: str) -> Summary | None:
    return results.summary_of(metrics, project, job_id, Summary)  # type: ignore[no-any-return]


def query_intervals(
    metrics: MetricsStore,
    project: str,
    job_id: str,
    *,
    dataset: str,
    types: Sequence[int],
    include_unflagged: bool,
    include_dismissed: bool,
    offset: int,
    size: int,
) -> tuple[list[tuple[Any, ...]], int, int]:
    """A page of the job's flagged intervals of ``types`` (all when empty; every scored one with
    ``include_unflagged``, unflagged ones having no type), most likely issue first, each row
    :data:`COLUMNS` then whether its clip is dismissed; their count, and how many of the matching rows
    are of dismissed clips (left out unless ``include_dismissed``)."""
    where = "project = {project:String} AND job_id = {job:String}"
    if not include_unflagged:
        where += " AND is_issue"
    if types:
        where += " AND issue_type IN {types:Array(UInt8)}"
    params = {"project": project, "job": job_id, "dataset": dataset, "types": list(types)}
    return dismissals.page(metrics, f"{TABLES[0]} FINAL", COLUMNS, where, _ORDER, params,
                           dismissed=dismissals.frame_dismissed_sql(), include_dismissed=include_dismissed,
                           offset=offset, size=size)  # fmt: skip


def query_clips(
    metrics: MetricsStore,
    project: str,
    job_id: str,
    *,
    dataset: str,
    types: Sequence[int],
    include_unflagged: bool,
    include_dismissed: bool,
    offset: int,
    size: int,
) -> tuple[list[tuple[Any, ...]], int, int]:
    """A page of the job's clips, most likely issue first: each clip's worst interval's score and type
    (of ``types`` when given: then only clips with a flagged interval of one of them), whether it holds a
    flagged interval, and its flagged intervals of each type; every clip with a scored interval with
    ``include_unflagged``. Rows :data:`CLIP_COLUMNS` then whether the clip is dismissed, as
    :func:`query_intervals`."""
    chosen = "is_issue AND issue_type IN {types:Array(UInt8)}" if types else "is_issue"
    score = "minIf(score, is_issue AND issue_type IN {types:Array(UInt8)})" if types else "min(score)"
    grouped = (
        f"SELECT frame_id, {score} AS clip_score, max(is_issue) AS clip_issue,"
        f" argMinIf(issue_type, (score, item), {chosen}) AS worst_type,"
        + ", ".join(f"countIf(is_issue AND issue_type = {t}) AS {name}"
                    for t, name in zip(TYPES, ("missing", "spurious", "badly_bounded", "wrong_class"), strict=True))
        + f", countIf({chosen}) AS chosen FROM {TABLES[0]} FINAL"
        " WHERE project = {project:String} AND job_id = {job:String} GROUP BY frame_id"
    )  # fmt: skip
    where = "chosen > 0" if types or not include_unflagged else "1"
    params = {"project": project, "job": job_id, "dataset": dataset, "types": list(types)}
    return dismissals.page(metrics, f"({grouped})", CLIP_COLUMNS, where, "clip_issue DESC, clip_score ASC, frame_id",
                           params, dismissed=dismissals.frame_dismissed_sql(), include_dismissed=include_dismissed,
                           offset=offset, size=size)  # fmt: skip
