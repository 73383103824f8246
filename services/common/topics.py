"""Names of the Kafka topics Shoal uses; every name starts with ``SHOAL_TOPIC_PREFIX``."""

from __future__ import annotations

from dataclasses import dataclass

from shoal.common.stores.events import Event, TopicSpec

#: the Kafka header naming what an event on the ingested topic is; an event without it is an IngestedEvent
EVENT_TYPE_HEADER = "shoal-event-type"
#: an IngestedEvent (the ingest consumer wrote a chunk): no header
INGESTED_EVENT = ""
#: a StandingCampaignFullEvent (a standing campaign's sample is full), published by the sampler
STANDING_CAMPAIGN_FULL_EVENT = "standing-campaign-full"


def event_type(event: Event) -> str:
    """What an event of the ingested topic is: the value of its ``shoal-event-type`` header, or
    :data:`INGESTED_EVENT` without one. Each consumer of the topic reads the types it knows and
    passes over the others."""
    for name, value in event.headers:
        if name == EVENT_TYPE_HEADER:
            return value.decode("utf-8", "replace")
    return INGESTED_EVENT


def event_type_headers(kind: str) -> tuple[tuple[str, bytes], ...]:
    """The headers of an event of type ``kind`` on the ingested topic."""
    return ((EVENT_TYPE_HEADER, kind.encode()),) if kind else ()


@dataclass(frozen=True)
class Topics:
    prefix: str = "shoal"

    @property
    def uploads(self) -> str:
        """Upload events (frames, labels, inferences, embeddings), keyed by dataset."""
        return f"{self.prefix}.uploads.v1"

    @property
    def dead_letter(self) -> str:
        """Events that failed validation, with the reason in the headers."""
        return f"{self.prefix}.uploads.dlq.v1"

    @property
    def ingested(self) -> str:
        """Notifications that data was written (IngestedEvent), and that a standing campaign is full
        (StandingCampaignFullEvent, with the header shoal-event-type), for the other services."""
        return f"{self.prefix}.ingested.v1"

    @property
    def labeling_requests(self) -> str:
        """Requests to send frames to a labeling platform."""
        return f"{self.prefix}.labeling.requests.v1"

    @property
    def labeling_dead_letter(self) -> str:
        """Labeling-request events the bridge could not understand, with the reason in the headers."""
        return f"{self.prefix}.labeling.requests.dlq.v1"

    def all(self) -> list[str]:
        return [self.uploads, self.dead_letter, self.ingested, self.labeling_requests, self.labeling_dead_letter]

    def specs(
        self,
        partitions: int,
        replication_factor: int,
        *,
        retention_hours: float = 168.0,
        dead_letter_retention_hours: float = 720.0,
        max_message_bytes: int = 16 * 1024 * 1024,
    ) -> list[TopicSpec]:
        out = []
        for name in self.all():
            dead = name in (self.dead_letter, self.labeling_dead_letter)
            hours = dead_letter_retention_hours if dead else retention_hours
            config = {"retention.ms": str(int(hours * 3600 * 1000))}
            if name in (self.uploads, self.dead_letter):
                # upload events carry whole chunks: allow messages larger than Kafka's 1 MB default
                config["max.message.bytes"] = str(max_message_bytes)
            out.append(TopicSpec(name, partitions, replication_factor, config))
        return out
