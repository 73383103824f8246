"""Hand-off for labeling: frames chosen in Shoal become ``LabelingRequestEvent`` messages on the
labeling-requests topic, which the labeling bridge consumes, and are recorded as sent so that
searches and campaigns can leave them out (``shoal.common.data.labeling_requests``).

A request is split into events of at most :data:`EVENT_ITEMS` frames, keyed by
``<project>/<request_id>`` so its parts stay in order on one partition. The frames are recorded
only once every part is durable on the bus; a failure before that records nothing, and sending
the same request again (same request id) publishes the same events, which a consumer treats as
one. Delivery is therefore at least once and idempotent end to end.
"""

from __future__ import annotations

from shoal.common.data.labeling_requests import EVENT_ITEMS, SCHEMA_VERSION, Request, Source, record_sent
from shoal.common.errors import FailedPrecondition
from shoal.common.jobs import Job
from shoal.common.stores.events import EventBus
from shoal.common.stores.metrics import MetricsStore
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2

PUBLISH_TIMEOUT_SECONDS = 60.0


def campaign_source(metrics: MetricsStore, job: Job, *, field: str = "campaign_job_id") -> Source:
    """A finished campaign's sample, by rank."""
    from shoal.sampler import campaign  # campaign reads what was sent from here

    s = campaign.summary_of(metrics, job.project, job.job_id)
    if s is None:
        raise FailedPrecondition(f"job {job.job_id} kept no result; start it again with rerun", field=field)
    items = campaign.query_items(metrics, job.project, job.job_id, offset=0, size=campaign.MAX_BUDGET)
    return Source(job.params["pool_dataset"], [str(row[1]) for row in items],
                  f"collection campaign {job.job_id}: {s.strategy}", f"campaign:{job.job_id}")  # fmt: skip


def events(r: Request) -> list[common_pb2.LabelingRequestEvent]:
    frames = list(dict.fromkeys(r.frame_ids))  # each frame once, in the order given
    parts = [frames[i : i + EVENT_ITEMS] for i in range(0, len(frames), EVENT_ITEMS)] or [[]]
    out = []
    for n, part in enumerate(parts):
        e = common_pb2.LabelingRequestEvent(
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
