"""What every event bus offers: the :class:`EventBus` and :class:`Consumer` interface, the values
they pass (:class:`Event`, :class:`TopicPartition`, :class:`TopicSpec`, :class:`Published`), and
Kafka's key partitioning (murmur2), which both implementations place keys by.

Semantics both implementations keep (and ``tests/stores/test_event_bus.py`` checks):

- a topic has a fixed number of partitions; a message's key picks its partition (Kafka's
  murmur2, so a customer's producer with the default partitioner agrees), and messages of one
  key are delivered in order;
- ``publish`` returns a future that resolves once the message is durable (Kafka ``acks=all``;
  the embedded bus once its transaction is committed and synced); ``flush`` waits for every
  outstanding publish;
- consumers join a group; each partition of a subscribed topic is read by one member of the
  group; offsets are committed only by an explicit ``commit`` (never automatically), and a member
  that joins later, or after a crash, resumes at the committed offset, so everything not
  committed is delivered again (at least once);
- when a rebalance takes partitions from a member, its ``on_revoke`` callback runs on its own
  thread before the partitions move, so it can commit what it finished.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, order=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True)
class Event:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int


RebalanceCallback = Callable[[set[TopicPartition]], None]


class Consumer(abc.ABC):
    """A member of a consumer group. Not thread-safe: use it from one thread."""

    @abc.abstractmethod
    def poll(self, timeout_seconds: float, max_records: int = 500) -> list[Event]:
        """Up to ``max_records`` events, waiting at most ``timeout_seconds`` for the first."""

    @abc.abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commits, per partition, the offset of the next event to read. ``None`` commits the
        position after everything returned by ``poll`` so far."""

    @abc.abstractmethod
    def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset of a partition, or None."""

    @abc.abstractmethod
    def end_offsets(self, tps: set[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset after the last event of each partition, read through this consumer's own
        connection (so reading them opens and closes no client)."""

    @abc.abstractmethod
    def assignment(self) -> set[TopicPartition]: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Leaves the group without committing."""

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus(abc.ABC):
    kind: str

    @abc.abstractmethod
    def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        """Creates the topics that do not exist; existing ones are left as they are."""

    @abc.abstractmethod
    def publish(self, topic: str, *, key: bytes, value: bytes, headers: Headers = ()) -> Future[Published]:
        """Sends one message; the future resolves when it is durable."""

    @abc.abstractmethod
    def flush(self, timeout_seconds: float = 30.0) -> None:
        """Waits until every message published so far is durable; raises Unavailable if not."""

    @abc.abstractmethod
    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
    ) -> Consumer: ...

    @abc.abstractmethod
    def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        """The offset after the last message of each partition of a topic."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raises :class:`Unavailable` unless the bus answers."""

    @abc.abstractmethod
    def close(self) -> None: ...


# --- partitioning: Kafka's murmur2, so keys land where a Java or Python producer puts them ---
def murmur2(data: bytes) -> int:
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = (
            (data[i4] & 0xFF)
            + ((data[i4 + 1] & 0xFF) << 8)
            + ((data[i4 + 2] & 0xFF) << 16)
            + ((data[i4 + 3] & 0xFF) << 24)
        )
        k = (k * m) & 0xFFFFFFFF
        k ^= (k % 0x100000000) >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h = (h ^ k) & 0xFFFFFFFF
    extra = length % 4
    if extra >= 3:
        h = (h ^ ((data[(length & ~3) + 2] & 0xFF) << 16)) & 0xFFFFFFFF
    if extra >= 2:
        h = (h ^ ((data[(length & ~3) + 1] & 0xFF) << 8)) & 0xFFFFFFFF
    if extra >= 1:
        h = (h ^ (data[length & ~3] & 0xFF)) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
    h ^= (h % 0x100000000) >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= (h % 0x100000000) >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
