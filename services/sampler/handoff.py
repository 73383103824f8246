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

from shoal.common.stores.events import EventBus
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2
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
