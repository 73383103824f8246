"""Upload events: how a chunk of frames, labels, inferences and embeddings travels on the uploads
topic to the ingest consumer, which validates it, writes it idempotently (its rows are keyed by the
event's ``idempotency_key``) and records its status.

The ingest RPCs publish these events, and so may any other producer: the labeling bridge writes
corrected labels this way, and a client may write to Kafka directly. The event is the ingest API's
``UploadEvent``; a producer makes one with :func:`new_event` and publishes it with :func:`publish`.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from shoal.common.errors import InvalidArgument
from shoal.common.stores.events import EventBus, Published
from shoal.common.topics import Topics

SCHEMA_VERSION = 1
#: Largest upload event; the uploads topic is created to take messages this large.
MAX_EVENT_BYTES = 15 * 1024 * 1024
HEADERS = (("shoal-schema-version", str(SCHEMA_VERSION).encode()),)


class UploadEvent(Protocol):
    project: str
    dataset: str
    chunk_index: int

    def SerializeToString(self) -> bytes: ...


E = TypeVar("E", bound=UploadEvent)


def event_key(project: str, dataset: str) -> bytes:
    """The key of a dataset's upload events: they stay in order on one partition."""
    return f"{project}/{dataset}".encode()


def idempotency_key(upload_id: str, index: int) -> str:
    """The idempotency key of chunk ``index`` of an upload; a label version written from the chunk
    takes it as its id."""
    return f"{upload_id}/{index}"


def new_event(kind: type[E], project: str, dataset: str, upload_id: str, index: int, chunk: Any, total: int = 0) -> E:
    """Chunk ``index`` of an upload as an event of type ``kind`` (``ingest_pb2.UploadEvent``),
    produced now; ``total``: the chunks of the upload, when declared."""
    event = kind(
        schema_version=SCHEMA_VERSION,
        upload_id=upload_id,
        chunk_index=index,
        idempotency_key=idempotency_key(upload_id, index),
        project=project,
        dataset=dataset,
        chunk=chunk,
        total_chunks=total,
    )
    event.produced_time.GetCurrentTime()  # type: ignore[attr-defined]
    return event


def publish(bus: EventBus, topics: Topics, event: UploadEvent) -> Future[Published]:
    """Publishes an upload event; an event larger than :data:`MAX_EVENT_BYTES` is refused."""
    value = event.SerializeToString()
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidArgument(
            f"chunk {event.chunk_index} is {len(value) / 2**20:.1f} MiB as an event, more than "
            f"{MAX_EVENT_BYTES / 2**20:.0f} MiB; send fewer frames per chunk",
            field="chunk",
        )
    return bus.publish(topics.uploads, key=event_key(event.project, event.dataset), value=value, headers=HEADERS)
