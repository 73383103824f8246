"""Hand-off for labeling: frames chosen in Shoal become ``LabelingRequestEvent`` messages on the
labeling-requests topic, which the labeling bridge consumes, and are recorded as sent so that
searches and campaigns can leave them out.

A request is split into events of at most :data:`EVENT_ITEMS` frames, keyed by
``<project>/<request_id>`` so its parts stay in order on one partition. The frames are recorded
only once every part is durable on the bus; a failure before that records nothing, and sending
the same request again (same request id) publishes the same events, which a consumer treats as
one. Delivery is therefore at least once and idempotent end to end.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from shoal.analysis.segments import SegmentStore
from shoal.common.errors import FailedPrecondition, InvalidArgument, NotFound
from shoal.common.jobs import Job
from shoal.common.stores.events import EventBus
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2
from shoal.ingest.datasets import DatasetCatalog, existing_frames
from shoal.sampler.v1 import sampler_pb2

SCHEMA_VERSION = 1
EVENT_ITEMS = 5_000
PUBLISH_TIMEOUT_SECONDS = 60.0
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


def campaign_source(metrics: MetricsStore, job: Job, *, field: str = "campaign_job_id") -> Source:
    """A finished campaign's sample, by rank."""
    from shoal.sampler import campaign  # campaign reads what was sent from here

    s = campaign.summary_of(metrics, job.project, job.job_id)
    if s is None:
        raise FailedPrecondition(f"job {job.job_id} kept no result; start it again with rerun", field=field)
    items = campaign.query_items(metrics, job.project, job.job_id, offset=0, size=campaign.MAX_BUDGET)
    return Source(job.params["pool_dataset"], [str(row[1]) for row in items],
                  f"collection campaign {job.job_id}: {s.strategy}", f"campaign:{job.job_id}")  # fmt: skip


def frames_source(
    metrics: MetricsStore, datasets: DatasetCatalog, project: str, dataset: str, frame_ids: Sequence[str],
    *, field: str = "frames",
) -> Source:  # fmt: skip
    """Listed frames of one dataset, each of which must exist."""
    from shoal.sampler.campaign import MAX_BUDGET

    if not dataset:
        raise InvalidArgument("is empty", field=f"{field}.dataset")
    if datasets.find(project, dataset) is None:
        raise NotFound(f"dataset {dataset!r} does not exist in project {project!r}", field=f"{field}.dataset")
    frames = list(frame_ids)
    for i, f in enumerate(frames):
        if not f:
            raise InvalidArgument("is empty", field=f"{field}.frame_ids[{i}]")
    if len(frames) > MAX_BUDGET:
        raise InvalidArgument(f"at most {MAX_BUDGET} frames per request, got {len(frames)}",
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


def events(r: Request) -> list[sampler_pb2.LabelingRequestEvent]:
    frames = list(dict.fromkeys(r.frame_ids))  # each frame once, in the order given
    parts = [frames[i : i + EVENT_ITEMS] for i in range(0, len(frames), EVENT_ITEMS)] or [[]]
    out = []
    for n, part in enumerate(parts):
        e = sampler_pb2.LabelingRequestEvent(
            schema_version=SCHEMA_VERSION, request_id=r.request_id, part=n, parts=len(parts), project=r.project,
            dataset=r.dataset, items=[common_pb2.DatapointRef(dataset=r.dataset, frame_id=f) for f in part],
            reason=r.reason, source=r.source, platform=r.platform,
            preannotation_inference_set=r.preannotation_inference_set, requested_by=r.requested_by,
        )  # fmt: skip
        e.requested_time.GetCurrentTime()
        out.append(e)
    return out


def send(bus: EventBus, topics: Topics, metrics: MetricsStore, r: Request) -> int:
    """Publishes the request's events, waits until every one is durable, then records the frames
    as sent; returns the number of events."""
    out = events(r)
    key = f"{r.project}/{r.request_id}".encode()
    headers = (("shoal-schema-version", str(SCHEMA_VERSION).encode()),)
    topic = topics.labeling_requests
    futures = [bus.publish(topic, key=key, value=e.SerializeToString(), headers=headers) for e in out]
    for f in futures:
        f.result(timeout=PUBLISH_TIMEOUT_SECONDS)
    record_sent(metrics, r)
    return len(out)


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
