"""Frames sent for labeling: the ``labeling_requests`` table, written when a request is durable on
the labeling-requests topic (the sampler's ``RequestLabeling``) or recorded by the labeling bridge
(``SendForLabeling``), and read by searches and campaigns to leave those frames out.

Also what both ends of a request share: its id, how a request is split into events, and the
sources of frames (a segment, listed frames) that any service can resolve.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from shoal.common.data.datasets import DatasetCatalog, existing_frames
from shoal.common.data.segments import SegmentStore
from shoal.common.errors import InvalidArgument, NotFound
from shoal.common.stores.metrics import MetricsStore, Migration

#: version of the ``LabelingRequestEvent`` encoding
SCHEMA_VERSION = 1
#: frames per ``LabelingRequestEvent``: a request of more frames is split into parts
EVENT_ITEMS = 5_000
#: most frames one request may name
MAX_FRAMES = 100_000
REQUEST_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

MIGRATIONS = (
    Migration(
        component="sampler",
        version=2,
        name="labeling requests",
        statements=(
            "CREATE TABLE IF NOT EXISTS labeling_requests ("
            " project LowCardinality(String), dataset LowCardinality(String), frame_id String, request_id String,"
            " source String, platform LowCardinality(String), reason String, requested_by String,"
            " requested_time DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree"
            " ORDER BY (project, dataset, frame_id, request_id)",
        ),
    ),
)


@dataclass(frozen=True)
class Request:
    project: str
    dataset: str
    frame_ids: Sequence[str]
    reason: str
    source: str
    platform: str
    preannotation_inference_set: str
    requested_by: str
    request_id: str = ""


@dataclass(frozen=True)
class Source:
    """What a labeling request sends: frames of one dataset, why, and where they came from."""

    dataset: str
    frame_ids: list[str]
    #: shown to annotators unless the request gives its own
    reason: str
    #: "segment:<name>", "campaign:<job_id>", "label_issues:<job_id>" or "frames"
    source: str
    #: a reason per frame, when the source has them
    reasons: list[str] | None = None


def segment_source(segments: SegmentStore, project: str, name: str, *, field: str = "segment") -> Source:
    seg = segments.find(project, name)
    if seg is None:
        raise NotFound(f"project {project!r} has no segment {name!r}", field=field)
    return Source(seg.dataset, segments.frame_ids(project, seg.name), seg.reason, f"segment:{seg.name}")


def frames_source(
    metrics: MetricsStore, datasets: DatasetCatalog, project: str, dataset: str, frame_ids: Sequence[str],
    *, field: str = "frames",
) -> Source:  # fmt: skip
    """Listed frames of one dataset, each of which must exist."""
    if not dataset:
        raise InvalidArgument("is empty", field=f"{field}.dataset")
    if datasets.find(project, dataset) is None:
        raise NotFound(f"dataset {dataset!r} does not exist in project {project!r}", field=f"{field}.dataset")
    frames = list(frame_ids)
    for i, f in enumerate(frames):
        if not f:
            raise InvalidArgument("is empty", field=f"{field}.frame_ids[{i}]")
    if len(frames) > MAX_FRAMES:
        raise InvalidArgument(f"at most {MAX_FRAMES} frames per request, got {len(frames)}",
                              field=f"{field}.frame_ids")  # fmt: skip
    missing = sorted(set(frames) - existing_frames(metrics, project, dataset, frames))
    if missing:
        raise NotFound(f"{len(missing)} frames are not in dataset {dataset!r}, e.g. {missing[0]!r}",
                       field=f"{field}.frame_ids")  # fmt: skip
    return Source(dataset, frames, "", "frames")


def derive_request_id(project: str, source: str, dataset: str, frame_ids: Sequence[str]) -> str:
    """The same source and frames give the same id, so sending them twice is one request."""
    h = hashlib.sha256("\x1f".join([project, source, dataset, *sorted(frame_ids)]).encode())
    return f"req-{h.hexdigest()[:24]}"


def recorded(metrics: MetricsStore, project: str, request_id: str) -> bool:
    rows = metrics.query(
        "SELECT count() FROM labeling_requests WHERE project = {p:String} AND request_id = {r:String}",
        {"p": project, "r": request_id},
    ).rows
    return bool(rows and rows[0][0])


def record_sent(metrics: MetricsStore, r: Request) -> None:
    """Records the request's frames as sent for labeling (what ``exclude_sent_for_labeling`` reads)."""
    frames = list(dict.fromkeys(r.frame_ids))
    n = len(frames)
    if n:
        now = pa.array([int(time.time() * 1000)] * n, pa.timestamp("ms", tz="UTC"))
        metrics.insert_arrow("labeling_requests", pa.table({
            "project": pa.array([r.project] * n), "dataset": pa.array([r.dataset] * n), "frame_id": pa.array(frames),
            "request_id": pa.array([r.request_id] * n), "source": pa.array([r.source] * n),
            "platform": pa.array([r.platform] * n), "reason": pa.array([r.reason] * n),
            "requested_by": pa.array([r.requested_by] * n), "requested_time": now,
        }))  # fmt: skip


def not_sent_sql(project: str, dataset: str) -> str:
    """A condition on ``frame_id``: not sent for labeling (``project``/``dataset`` are placeholders)."""
    return f"frame_id NOT IN (SELECT frame_id FROM labeling_requests WHERE project = {project} AND dataset = {dataset})"
