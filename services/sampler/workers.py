"""The sampler's background work: the consumer of the ingested topic that fills standing campaigns,
and the retention sweep that runs between its batches."""

from __future__ import annotations

from typing import Any

from shoal.common import telemetry
from shoal.common.stores.events import EventBus, TopicPartition
from shoal.common.topics import Topics
from shoal.common.workers import Backoff, ThreadWorker, close_quietly
from shoal.sampler.standing import Standing

#: ingested events judged per batch (each names the frames of one written chunk, up to 10,000)
MAX_RECORDS = 16


class StandingConsumer(ThreadWorker):
    """A consumer-group member on the ingested topic: each batch's frames are judged for every
    filling standing campaign and the verdicts written before its offsets are committed (see
    :mod:`shoal.sampler.standing`); between batches, the retention sweep runs when due. A failure
    leaves the batch uncommitted, so it comes again, judged from what the stores hold."""

    name = "standing-campaign-consumer"

    def __init__(self, bus: EventBus, topics: Topics, standing: Standing, *, group_id: str) -> None:
        super().__init__()
        self.bus = bus
        self.topics = topics
        self.standing = standing
        self.group_id = group_id
        self.handled_events = 0

    def _moved(self, _partitions: set[TopicPartition]) -> None:
        # another member may have judged these partitions' frames meanwhile: read the state again
        self.standing.forget()

    def _run(self) -> None:
        consumer: Any = None
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self.bus.consumer(self.group_id, [self.topics.ingested], on_assign=self._moved,
                                                 on_revoke=self._moved)  # fmt: skip
                events = consumer.poll(0.5, max_records=MAX_RECORDS)
                if events:
                    self.standing.handle(events)
                    consumer.commit()
                    self.handled_events += len(events)
                    telemetry.EVENTS_CONSUMED.labels(self.group_id, self.topics.ingested).inc(len(events))
                if self.standing.sweep_due():
                    self.standing.sweep()
                self._failing = None
                backoff.reset()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any failure; _attempt_failed logs it
                self.standing.forget()
                self._failing = self._attempt_failed(exc, backoff, consumer)
                consumer = None
        if consumer is not None:
            close_quietly(consumer)
