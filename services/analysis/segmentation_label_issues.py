"""The label-issues job of a semantic segmentation project: every labeled frame whose prediction
has per-pixel probabilities (``FrameInference.probabilities_uri``) judged by confident learning for
segmentation (:mod:`shoal.analysis.segmentation_issues`), pixel by pixel and frame by frame.

The job reads the frames a chunk at a time, twice (the per-class thresholds first, then each
frame's scores), decoding each frame's stored class runs and reading its probabilities from their
URI (through the same allowed sources as the console's media), so no more than one chunk's maps and
one frame's probabilities are in memory at once. It keeps one row per examined frame: its label
quality (the soft minimum of its pixels' self-confidence), whether it is an issue, its flagged and
"core" pixels (flagged pixels more than ``tolerance`` pixels inside a flagged area), the given class
with the most flagged pixels and the class most suggested for them, and the flagged pixels
themselves as a COCO mask for the console to draw. A frame whose probabilities are missing or
cannot be read (not a .npy, the wrong shape) is left out, counted and named in the summary: the
others are still judged.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from shoal.analysis import dismissals
from shoal.analysis import segmentation_issues as kernel
from shoal.common import classmaps, masks
from shoal.common.data import results
from shoal.common.data.segmentation import latest_maps_sql
from shoal.common.errors import FailedPrecondition
from shoal.common.jobs import Job, JobContext, progress_of
from shoal.common.media import MediaMissing, MediaReader, MediaRefused
from shoal.common.stores.metrics import MetricsStore, Migration

KIND = "segmentation_label_issues"

MIGRATIONS = (
    Migration(
        component="analysis",
        version=23,
        name="semantic segmentation label issues",
        statements=(
            "CREATE TABLE IF NOT EXISTS segmentation_issue_frames ("
            " project LowCardinality(String), job_id String, frame_id String, score Float32, is_issue UInt8,"
            " labeled UInt32, flagged UInt32, core UInt32, worst_class Int32, suggested_class Int32,"
            " flagged_mask String CODEC(ZSTD(1)))"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id)",
        ),
    ),
)
TABLES = ("segmentation_issue_frames",)
#: a page's columns, as :func:`query` returns them (and whether the frame is dismissed)
COLUMNS = "frame_id, score, is_issue, labeled, flagged, core, worst_class, suggested_class, flagged_mask"
#: page orders: most likely issue first (most core pixels, then lowest score), by score, by frame id
ORDERS = {0: "is_issue DESC, core DESC, score ASC, frame_id", 1: "score ASC, frame_id", 2: "frame_id"}
#: frames read per chunk (their label maps are in memory together)
CHUNK = 200
#: how far an annotator's outline may stray, in pixels, before the flags along it make an issue
DEFAULT_TOLERANCE = 2
#: frames named in the summary among those left out
SHOWN_FAILURES = 10


@dataclass
class Summary(results.JsonSummary):
    frames: int
    flagged_frames: int
    #: pixels judged mislabeled, and confident learning's estimate of how many there are
    flagged_pixels: int
    confident_pixels: int
    tolerance: int
    #: per class id: its threshold (mean self-confidence of the pixels labeled with it)
    thresholds: dict[str, float]
    #: labeled frames without probabilities, and those whose probabilities could not be read
    without_probabilities: int = 0
    unreadable: int = 0
    #: the first few frames left out, with why
    failures: list[list[str]] = field(default_factory=list)


def _read_probs(media: MediaReader, uri: str, k: int, size: tuple[int, int]) -> np.ndarray:
    """The (K, H, W) probabilities at ``uri``; ValueError saying what is wrong."""
    try:
        data = media.read(uri)
    except (MediaRefused, MediaMissing) as err:
        raise ValueError(f"cannot read {uri!r}: {err}") from None
    try:
        probs = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"{uri!r} is not a NumPy .npy file ({err})") from None
    h, w = size
    if probs.shape != (k, h, w):
        raise ValueError(
            f"{uri!r} holds an array of shape {probs.shape}, not ({k}, {h}, {w}): classes x height x width"
        )
    if probs.dtype not in (np.float16, np.float32, np.float64):
        raise ValueError(f"{uri!r} holds {probs.dtype} values, not float16 or float32 probabilities")
    return probs


class _Frames:
    """The job's frames in chunks: their class maps (as class positions) and their probabilities."""

    def __init__(self, metrics: MetricsStore, media: MediaReader, job: Job, dataset: str, inference_set: str,
                 ontology: list[int], frames_sql: str, frames_params: Mapping[str, Any]) -> None:  # fmt: skip
        self.metrics, self.media, self.k = metrics, media, len(ontology)
        self.params = {"project": job.project, "dataset": dataset, "set": inference_set, **frames_params}
        within = f" AND frame_id IN ({frames_sql})" if frames_sql else ""
        self.sql = (
            "SELECT l.frame_id, l.classes, l.runs, i.probs_uri, f.width, f.height"
            f" FROM ({latest_maps_sql(within.removeprefix(' AND '))}) AS l"
            " INNER JOIN (SELECT frame_id, probs_uri FROM inferences FINAL WHERE project = {project:String}"
            f" AND inference_set = {{set:String}} AND notEmpty(seg_runs){within}) AS i ON i.frame_id = l.frame_id"
            " INNER JOIN (SELECT frame_id, width, height FROM frames FINAL WHERE project = {project:String}"
            f" AND dataset = {{dataset:String}}{within}) AS f ON f.frame_id = l.frame_id"
            " WHERE notEmpty(l.runs) AND l.frame_id > {after:String} ORDER BY l.frame_id LIMIT {chunk:UInt32}"
        )
        self.position = np.full(65536, kernel.IGNORE, dtype=np.uint16)
        self.position[np.asarray(ontology, dtype=np.int64)] = np.arange(self.k)
        self.missing: list[str] = []
        self.unreadable: list[tuple[str, str]] = []
        #: the frames judged, in the order the kernel sees them
        self.examined: list[str] = []
        self.total = 0
        #: passes begun over the frames: the first records what cannot be judged, the second skips it
        self.passes = 0

    def chunks(self) -> Iterator[list[tuple[str, str, np.ndarray, tuple[int, int]]]]:
        after = ""
        while True:
            rows = self.metrics.query(self.sql, {**self.params, "after": after, "chunk": CHUNK}).rows
            if not rows:
                return
            after = str(rows[-1][0])
            out = []
            for frame, classes, runs, uri, w, h in rows:
                if int(np.sum(runs, dtype=np.int64)) != int(w) * int(h):
                    continue  # the frame was resized after its label: nothing to compare
                labels = self.position[classmaps.decode(np.asarray(classes), np.asarray(runs), int(h), int(w))]
                out.append((str(frame), str(uri), labels, (int(h), int(w))))
            yield out

    def images(self, progress: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(labels, probs) of every readable frame; on the first pass, records the others."""
        first = not self.passes
        self.passes += 1
        done = 0
        bad = {f for f, _ in self.unreadable}
        for chunk in self.chunks():
            for frame, uri, labels, size in chunk:
                done += 1
                if not uri:
                    if first:
                        self.missing.append(frame)
                    continue
                if not first and frame in bad:
                    continue
                try:
                    probs = _read_probs(self.media, uri, self.k, size)
                except ValueError as err:
                    if first:
                        self.unreadable.append((frame, str(err)))
                        continue
                    raise  # a file that changed between the passes
                if first:
                    self.examined.append(frame)
                yield labels, probs
            progress(done)
        if first:
            self.total = done


def run(
    ctx: JobContext | None,
    metrics: MetricsStore,
    media: MediaReader,
    job: Job,
    *,
    dataset: str,
    inference_set: str,
    ontology: list[int],
    tolerance: int = DEFAULT_TOLERANCE,
    frames_sql: str = "",
    frames_params: Mapping[str, Any] | None = None,
) -> Summary:
    """Judges the labeled frames of ``dataset`` with probabilities in ``inference_set`` (those
    ``frames_sql`` selects) and stores a row per frame under the job; returns the summary."""
    progress = progress_of(ctx)
    discard(metrics, job)
    frames = _Frames(metrics, media, job, dataset, inference_set, ontology, frames_sql, dict(frames_params or {}))

    def images() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        stage, base = ("class thresholds", 0.0) if not frames.passes else ("scoring each frame", 0.45)
        total = max(frames.total, 1)
        yield from frames.images(lambda done: progress(stage, base + 0.45 * min(done / total, 1.0)))

    progress("class thresholds", 0.0)
    found = kernel.find(images, classes=len(ontology), rule="cleanlab", tolerance=tolerance)
    if not frames.examined:
        why = "; ".join(f"{f}: {e}" for f, e in frames.unreadable[:3])
        raise FailedPrecondition(
            f"no labeled frame of inference set {inference_set!r} has readable per-pixel probabilities"
            + (f" ({why})" if why else " (upload them as FrameInference.probabilities_uri)"),
            field="inference_set",
        )
    progress("writing", 0.92)
    classes = np.asarray(ontology, dtype=np.int32)
    records = [
        _record(frame, float(score), scores, issues, classes)
        for frame, score, scores, issues in zip(frames.examined, found.scores, found.images, found.issues, strict=True)
    ]
    n = len(records)
    rows = zip(*records, strict=True)  # column by column
    columns = {name: pa.array(list(values)) for name, values in zip(COLUMNS.split(", "), rows, strict=True)}
    metrics.insert_arrow(
        TABLES[0],
        pa.table({"project": pa.array([job.project] * n, pa.string()),
                  "job_id": pa.array([job.job_id] * n, pa.string()), **columns}),
    )  # fmt: skip
    failures = [[f, "no probabilities_uri"] for f in frames.missing[:SHOWN_FAILURES]]
    failures += [[f, e] for f, e in frames.unreadable[: SHOWN_FAILURES - len(failures)]]
    summary = Summary(
        frames=n,
        flagged_frames=sum(r[2] for r in records),
        flagged_pixels=sum(r[4] for r in records),
        confident_pixels=int(found.confident_pixels),
        tolerance=tolerance,
        thresholds={str(c): round(float(t), 6) for c, t in zip(ontology, found.thresholds, strict=True)},
        without_probabilities=len(frames.missing),
        unreadable=len(frames.unreadable),
        failures=failures,
    )
    results.save_summary(metrics, job, summary.to_json())
    return summary


def _record(
    frame: str, score: float, scores: kernel.ImageScores, issues: kernel.ImageIssues, classes: np.ndarray
) -> tuple[Any, ...]:
    """A frame's row of :data:`COLUMNS`: the given class with the most flagged pixels, the class most
    suggested for them (-1 without any) and the flagged pixels as a COCO mask."""
    if not issues.flagged:
        return frame, score, int(issues.is_issue), scores.labeled, 0, issues.core, -1, -1, ""
    worst = int(classes[int(np.argmax(issues.per_class))])
    suggested = int(classes[int(np.bincount(issues.suggested, minlength=len(classes)).argmax())])
    mask = masks.to_string(masks.encode(issues.mask())).decode()
    return frame, score, int(issues.is_issue), scores.labeled, issues.flagged, issues.core, worst, suggested, mask


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
