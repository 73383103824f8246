"""Label issues in multi-label classification: a class missing from a frame's labels, or one given
that the frame does not have, found by confident learning on each class as a yes/no question.

For class ``k``, with ``p`` a frame's score for it: the frames labeled with ``k`` give the class's
*yes* threshold ``t1`` (their mean ``p``), and the others its *no* threshold ``t0`` (their mean
``1 - p``). A frame is confidently *yes* for ``k`` when ``p >= t1``, confidently *no* when
``1 - p >= t0`` (both: the side it is further past). Among the frames labeled without ``k``, the
share confidently *yes* (of those confident either way), times their number, estimates how many
of them truly have ``k`` (confident learning's calibrated joint); that many, those with the highest
``p``, have ``k`` **missing** (if the model says so too: ``p > 0.5``). Likewise the frames labeled
with ``k`` with the lowest ``p`` have it as an **extra** class (``p < 0.5``), as many as the share
confidently *no* estimates (pruning by noise rate). The
per-class thresholds absorb a class's calibration: a model that scores a rare class low everywhere
still flags the frames it scores far above the class's norm.

A frame's label quality is its worst self-confidence over the classes (``p`` for a class it is
labeled with, ``1 - p`` for one it is not): low means likely wrong, and its class is named. The
job keeps one row per frame (its score, whether it is flagged, and its missing and extra classes);
``bench/analysis_quality/bench_multilabel_issues.py`` measures the flags beside cleanlab's
``multilabel_classification.find_label_issues`` on planted errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from shoal.analysis import dismissals, multilabel
from shoal.common.data import results
from shoal.common.jobs import Job, JobContext, progress_of
from shoal.common.stores.metrics import MetricsStore, Migration

KIND = "multilabel_label_issues"

MIGRATIONS = (
    Migration(
        component="analysis",
        version=21,
        name="multi-label label issues",
        statements=(
            # one row per examined frame: its worst self-confidence and that class, the flagged classes
            "CREATE TABLE IF NOT EXISTS multilabel_issue_frames ("
            " project LowCardinality(String), job_id String, frame_id String, score Float32, is_issue UInt8,"
            " worst_class Int32, missing Array(Int32), extra Array(Int32))"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id)",
        ),
    ),
)
TABLES = ("multilabel_issue_frames",)
#: a page's columns, as :func:`query` returns them (and whether the frame is dismissed)
COLUMNS = "frame_id, score, is_issue, worst_class, missing, extra"
#: page orders: most likely issue first, or by frame id
ORDERS = {0: "score ASC, frame_id", 1: "frame_id"}


@dataclass
class Flags:
    """What :func:`find` judges of a frames x classes label matrix against its scores."""

    #: (frames, classes) bool: the class is missing from the frame's labels / given but not there
    missing: np.ndarray
    extra: np.ndarray
    #: per frame: its worst self-confidence, and that class's position
    score: np.ndarray
    worst: np.ndarray
    #: per class: the yes and no thresholds (NaN for a class no frame is labeled with / without)
    yes: np.ndarray
    no: np.ndarray

    @property
    def flagged(self) -> np.ndarray:
        return self.missing.any(axis=1) | self.extra.any(axis=1)


def find(labels: np.ndarray, scores: np.ndarray) -> Flags:
    """Confident learning per class on ``labels`` (frames x classes, bool) and ``scores`` (the
    probability of each class, in [0, 1])."""
    y = np.asarray(labels, dtype=bool)
    p = np.asarray(scores, dtype=np.float64)
    n, k = y.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        yes = np.where(y.any(axis=0), (p * y).sum(axis=0) / y.sum(axis=0), np.nan)
        no = np.where((~y).any(axis=0), ((1 - p) * ~y).sum(axis=0) / (~y).sum(axis=0), np.nan)
    # a class never labeled (or always) has no threshold on that side: nothing is confidently so
    over_yes = p - np.where(np.isnan(yes), np.inf, yes)
    over_no = (1 - p) - np.where(np.isnan(no), np.inf, no)
    # confidently one side: past its threshold, and further past it than the other's (confident learning's argmax)
    confident_yes = (over_yes >= 0) & (over_yes >= over_no)
    confident_no = (over_no >= 0) & ~confident_yes
    missing = np.zeros_like(y)
    extra = np.zeros_like(y)
    for c in range(k):
        for given, off, wrong, out in ((~y[:, c], confident_yes[:, c], p[:, c], missing),
                                       (y[:, c], confident_no[:, c], 1 - p[:, c], extra)):  # fmt: skip
            rows = np.flatnonzero(given)
            confident = int((confident_yes[rows, c] | confident_no[rows, c]).sum())
            if not confident:
                continue
            # the confident joint's off-diagonal count, calibrated to the frames labeled so, is the
            # estimated number of errors: the frames most confidently of the other side are they
            errors = round(int(off[rows].sum()) * len(rows) / confident)
            if errors:
                order = rows[np.argsort(-wrong[rows], kind="stable")][:errors]
                # and only where the model itself says the other side: a frame it scores as labeled is kept
                out[order[wrong[order] > 0.5], c] = True
    self_confidence = np.where(y, p, 1 - p)
    worst = np.argmin(self_confidence, axis=1) if k else np.zeros(n, dtype=np.int64)
    score = self_confidence[np.arange(n), worst] if k else np.ones(n)
    return Flags(missing, extra, score, worst, yes, no)


@dataclass
class Summary(results.JsonSummary):
    frames: int
    flagged_frames: int
    missing: int
    extra: int
    #: per class id: its yes and no thresholds (None where it has none)
    yes_thresholds: dict[str, float | None]
    no_thresholds: dict[str, float | None]


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
) -> Summary:
    """Scores the labeled frames of ``dataset`` with a prediction in ``inference_set`` (those
    ``frames_sql`` selects) and stores a row per frame under the job; returns the summary."""
    progress = progress_of(ctx)
    discard(metrics, job)
    progress("reading labels and scores", 0.05)
    ids, labels, scores = multilabel.load(metrics, job.project, dataset, inference_set, ontology, frames_sql,
                                          dict(frames_params or {}))  # fmt: skip
    progress("confident learning per class", 0.5)
    f = find(labels, scores)
    n = len(ids)
    classes = np.asarray(ontology, dtype=np.int32)

    def class_lists(mask: np.ndarray) -> pa.ListArray:
        rows, cols = np.nonzero(mask)
        offsets = np.searchsorted(rows, np.arange(n + 1)).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(classes[cols]))

    if n:
        progress("writing", 0.8)
        metrics.insert_arrow(
            "multilabel_issue_frames",
            pa.table({
                "project": pa.array([job.project] * n, pa.string()),
                "job_id": pa.array([job.job_id] * n, pa.string()),
                "frame_id": pa.array(ids, pa.string()),
                "score": pa.array(f.score.astype(np.float32)),
                "is_issue": pa.array(f.flagged.astype(np.uint8)),
                "worst_class": pa.array(classes[f.worst] if len(classes) else np.zeros(n, np.int32)),
                "missing": class_lists(f.missing),
                "extra": class_lists(f.extra),
            }),
        )  # fmt: skip

    def thresholds(values: np.ndarray) -> dict[str, float | None]:
        return {str(c): (None if np.isnan(v) else round(float(v), 6)) for c, v in zip(ontology, values, strict=True)}

    summary = Summary(
        frames=n,
        flagged_frames=int(f.flagged.sum()),
        missing=int(f.missing.sum()),
        extra=int(f.extra.sum()),
        yes_thresholds=thresholds(f.yes),
        no_thresholds=thresholds(f.no),
    )
    results.save_summary(metrics, job, summary.to_json())
    return summary


def discard(metrics: MetricsStore, job: Job) -> None:
    results.discard(metrics, job, TABLES)


def summary_of(metrics: MetricsStore, project: str, job_id: str) -> Summary | None:
    return results.summary_of(metrics, project, job_id, Summary)  # type: ignore[no-any-return]


def query(
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
) -> tuple[list[tuple[Any, ...]], int, int]:
    """A page of the job's flagged frames (every examined frame with ``all_frames``) in ``order``,
    each row :data:`COLUMNS` then whether it is dismissed; their count, and how many of the matching
    frames are dismissed (left out unless ``include_dismissed``)."""
    return dismissals.frame_issues_page(metrics, TABLES[0], COLUMNS, ORDERS[order], project, job_id, dataset,
                                        all_frames=all_frames, include_dismissed=include_dismissed,
                                        offset=offset, size=size)  # fmt: skip
