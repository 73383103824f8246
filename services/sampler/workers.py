"""The sampler's background work: the consumer of the ingested topic that fills standing campaigns,
and the retention sweep that runs between its batches."""

from __future__ import annotations

import logging
from typing import Any

from shoal.common import telemetry
from shoal.common.errors import Unavailable
from shoal.common.stores.events import EventBus, TopicPartition
from shoal.common.topics import Topics
from shoal.common.workers import Backoff, ThreadWorker
from shoal.sampler.standing import Standing

log = logging.getLogger(__name__)

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
            except Exception as exc:  # the loop must outlive any failure
                self.standing.forget()
                if isinstance(exc, Unavailable):
                    self._failing = str(exc)
                    log.warning("%s: %s; uncommitted events will come again (retry in %.1fs)",
                                self.name, exc, backoff.current)  # fmt: skip
                else:
                    self._failing = "unexpected failure; see the log"
                    log.exception("%s: unexpected failure; uncommitted events will come again", self.name)
                if consumer is not None:
                    _close_quietly(consumer)
                consumer = None
                backoff.wait(self._stop)
        if consumer is not None:
            _close_quietly(consumer)


def _close_quietly(consumer: Any) -> None:
    try:
        consumer.close()
    except Exception:
        log.debug("closing a consumer failed", exc_info=True)
