"""The event bus: Apache Kafka (:mod:`.kafka`), or an in-process bus with the same interface for
one machine (:mod:`.embedded`, on SQLite). The interface and what both keep: :mod:`.base`."""

from shoal.common.stores.events.base import (
    Consumer,
    Event,
    EventBus,
    Headers,
    Published,
    RebalanceCallback,
    TopicPartition,
    TopicSpec,
    murmur2,
    partition_for,
)
from shoal.common.stores.events.embedded import EmbeddedEventBus, Retention
from shoal.common.stores.events.kafka import REBALANCE_STALL_SECONDS, KafkaEventBus, kafka_client_config

__all__ = [
    "REBALANCE_STALL_SECONDS",
    "Consumer",
    "EmbeddedEventBus",
    "Event",
    "EventBus",
    "Headers",
    "KafkaEventBus",
    "Published",
    "RebalanceCallback",
    "Retention",
    "TopicPartition",
    "TopicSpec",
    "kafka_client_config",
    "murmur2",
    "partition_for",
]
