"""The event bus: Apache Kafka, or an in-process bus with the same interface for one machine.

Semantics both implementations keep (and ``tests/stores/test_event_bus.py`` checks):

- a topic has a fixed number of partitions; a message's key picks its partition (Kafka's
  murmur2, so a customer's producer with the default partitioner agrees), and messages of one
  key are delivered in order;
- ``publish`` returns a future that resolves once the message is durable (Kafka ``acks=all``;
  the embedded bus after ``fsync``); ``flush`` waits for every outstanding publish;
- consumers join a group; each partition of a subscribed topic is read by one member of the
  group; offsets are committed only by an explicit ``commit`` (never automatically), and a member
  that joins later, or after a crash, resumes at the committed offset, so everything not
  committed is delivered again (at least once);
- when a rebalance takes partitions from a member, its ``on_revoke`` callback runs on its own
  thread before the partitions move, so it can commit what it finished.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import os
import struct
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.common.errors import ConfigurationError, InvalidArgument, ShoalError, Unavailable
from shoal.common.stores.disk import storage_error

log = logging.getLogger(__name__)

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


# --- the embedded bus ----------------------------------------------------------------------
_HEADER = struct.Struct("<IqiiI")  # total length, timestamp, key length (-1: none), value length, header count


def _encode(key: bytes | None, value: bytes, headers: Headers, ts: int) -> bytes:
    parts = [b"" if key is None else key, value]
    for name, hv in headers:
        nb = name.encode()
        parts.append(struct.pack("<II", len(nb), len(hv)) + nb + hv)
    body = b"".join(parts)
    return _HEADER.pack(_HEADER.size + len(body), ts, -1 if key is None else len(key), len(value), len(headers)) + body


def _decode(buf: bytes) -> tuple[bytes | None, bytes, tuple[tuple[str, bytes], ...], int]:
    _total, ts, klen, vlen, nh = _HEADER.unpack_from(buf, 0)
    pos = _HEADER.size
    key = None
    if klen >= 0:
        key = bytes(buf[pos : pos + klen])
        pos += klen
    value = bytes(buf[pos : pos + vlen])
    pos += vlen
    headers = []
    for _ in range(nh):
        nlen, hlen = struct.unpack_from("<II", buf, pos)
        pos += 8
        name = bytes(buf[pos : pos + nlen]).decode()
        pos += nlen
        headers.append((name, bytes(buf[pos : pos + hlen])))
        pos += hlen
    return key, value, tuple(headers), ts


def _write_error(exc: BaseException, what: str, path: Path | None) -> ShoalError:
    """A failed write of the embedded bus: RESOURCE_EXHAUSTED when its disk is full, UNAVAILABLE
    naming read-only storage when it is read-only, UNAVAILABLE otherwise."""
    return storage_error(exc, "events", f"embedded bus {path}") or Unavailable(f"{what}: {exc}")


def _fsync_dir(path: Path) -> None:
    """Makes a new or renamed directory entry durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Retention:
    """How long a partition keeps its records, as Kafka's topic configs ``retention.ms``,
    ``retention.bytes`` (per partition) and ``segment.bytes``: records go a whole segment at a
    time, never the segment being written, whether or not a group has read them."""

    ms: int = 7 * 24 * 3600 * 1000
    bytes: int = -1  # no size limit
    segment_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_config(cls, config: Mapping[str, str], default: Retention) -> Retention:
        try:
            return cls(
                ms=int(config.get("retention.ms", default.ms)),
                bytes=int(config.get("retention.bytes", default.bytes)),
                segment_bytes=max(1, int(config.get("segment.bytes", default.segment_bytes))),
            )
        except ValueError as exc:
            raise ConfigurationError(f"topic config {dict(config)}: {exc}") from exc


class _Segment:
    """Records from offset ``base`` on: a file (with an in-memory index of record positions, 8
    bytes per record) or, for a bus without a directory, a list in memory."""

    def __init__(self, base: int, path: Path | None) -> None:
        self.base = base
        self.path = path
        self.records: list[bytes] = []
        self.positions = array("q")
        self.fd: int | None = None
        self.size = 0
        self.last_ts = 0  # timestamp (ms) of the newest record
        if path is not None:
            created = not path.exists()
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            if created:
                _fsync_dir(path.parent)
            self._recover()
        if self.last_ts == 0:
            self.last_ts = int(time.time() * 1000)

    def _recover(self) -> None:
        assert self.fd is not None
        size = os.fstat(self.fd).st_size
        pos = 0
        while pos + _HEADER.size <= size:
            head = os.pread(self.fd, _HEADER.size, pos)
            total, ts = struct.unpack_from("<Iq", head, 0)
            if total < _HEADER.size or pos + total > size:
                break
            self.positions.append(pos)
            self.last_ts = max(self.last_ts, ts)
            pos += total
        if pos < size:  # a torn write at the end: never acknowledged, cut it off
            log.warning("embedded bus: truncating %d torn bytes at the end of %s", size - pos, self.path)
            os.ftruncate(self.fd, pos)
            os.fsync(self.fd)
        self.size = pos

    def __len__(self) -> int:
        return len(self.positions) if self.path is not None else len(self.records)

    def append(self, record: bytes, ts: int) -> None:
        if self.path is None:
            self.records.append(record)
        else:
            if self.fd is None:
                raise Unavailable("the event bus is closed")
            try:
                written = os.write(self.fd, record)
                if written != len(record):
                    raise OSError(f"short write to {self.path}: {written} of {len(record)} bytes")
            except OSError as exc:
                # never leave a partial record in the middle of the log: later appends would follow it
                try:
                    os.ftruncate(self.fd, self.size)
                except OSError:
                    pass
                raise _write_error(exc, f"could not write to {self.path}", self.path) from exc
            self.positions.append(self.size)
        self.size += len(record)
        self.last_ts = max(self.last_ts, ts)

    def read(self, offset: int) -> bytes:
        i = offset - self.base
        if self.path is None:
            return self.records[i]
        if self.fd is None:
            raise Unavailable("the event bus is closed")
        pos = self.positions[i]
        end = self.positions[i + 1] if i + 1 < len(self.positions) else self.size
        return os.pread(self.fd, end - pos, pos)

    def fsync(self) -> None:
        if self.fd is not None:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def delete(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _PartitionLog:
    """The log of one partition: segments of records, the last one written to. Offsets count
    from the partition's creation; records before ``start`` were removed by retention."""

    def __init__(self, directory: Path | None, retention: Retention) -> None:
        self.directory = directory
        self.retention = retention
        self._segments: list[_Segment] = []
        self._appended = 0  # bytes appended by this process (the unit of sync targets)
        self._synced = 0
        self._sync_lock = threading.Lock()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            bases = sorted(int(f.stem) for f in directory.glob("*.log") if f.stem.isdigit())
            self._segments = [_Segment(b, self._segment_path(b)) for b in bases]
        if not self._segments:
            self._segments.append(_Segment(0, self._segment_path(0)))
        self._checked = time.monotonic()

    def _segment_path(self, base: int) -> Path | None:
        return None if self.directory is None else self.directory / f"{base:020d}.log"

    @property
    def persistent(self) -> bool:
        return self.directory is not None

    @property
    def start(self) -> int:
        """The oldest offset still held."""
        return self._segments[0].base

    def __len__(self) -> int:
        """The end offset: the offset the next record gets."""
        last = self._segments[-1]
        return last.base + len(last)

    @property
    def size(self) -> int:
        return self._appended

    @property
    def bytes_held(self) -> int:
        return sum(seg.size for seg in self._segments)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def append(self, record: bytes, ts: int) -> int:
        """Appends one record; returns its offset. The caller holds the bus lock."""
        active = self._segments[-1]
        if active.size >= self.retention.segment_bytes and len(active):
            try:
                active = self._roll()
            except OSError as exc:
                raise _write_error(exc, f"could not start a segment in {self.directory}", self.directory) from exc
        offset = active.base + len(active)
        active.append(record, ts)
        self._appended += len(record)
        return offset

    def _roll(self) -> _Segment:
        old = self._segments[-1]
        with self._sync_lock:
            old.fsync()  # everything before the new segment is durable
            self._synced = self._appended
        seg = _Segment(old.base + len(old), self._segment_path(old.base + len(old)))
        self._segments.append(seg)
        self.apply_retention()
        return seg

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Removes the closed segments retention lets go; returns how many records went."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self._checked = time.monotonic()
        dropped = 0
        keep = self.retention
        while len(self._segments) > 1:
            oldest = self._segments[0]
            expired = keep.ms >= 0 and oldest.last_ts < now_ms - keep.ms
            too_big = keep.bytes >= 0 and self.bytes_held - oldest.size >= keep.bytes
            if not (expired or too_big):
                break
            self._segments.pop(0)
            dropped += len(oldest)
            oldest.delete()
        return dropped

    def due_for_retention(self, every_seconds: float = 60.0) -> bool:
        return time.monotonic() - self._checked >= every_seconds

    def sync(self, upto: int | None = None) -> None:
        """Makes the log durable up to ``upto`` appended bytes (default: everything so far)."""
        if self.directory is None:
            return
        with self._sync_lock:
            target = self._appended if upto is None else upto
            if self._synced >= target:
                return
            # earlier segments were synced when the log rolled past them
            self._segments[-1].fsync()
            self._synced = max(self._synced, target)

    def read(self, offset: int) -> bytes:
        segs = self._segments
        lo, hi = 0, len(segs) - 1
        while lo < hi:  # the last segment whose base is <= offset
            mid = (lo + hi + 1) // 2
            if segs[mid].base <= offset:
                lo = mid
            else:
                hi = mid - 1
        return segs[lo].read(offset)

    def close(self) -> None:
        self.sync()
        with self._sync_lock:
            for seg in self._segments:
                seg.close()


class _Group:
    def __init__(self) -> None:
        self.members: dict[str, _EmbeddedConsumer] = {}
        self.generation = 0
        self.assignments: dict[str, set[TopicPartition]] = {}
        # who holds a partition right now: a member gives a partition up (after its on_revoke)
        # before the member it is assigned to next may read it, as in Kafka
        self.owners: dict[TopicPartition, str] = {}


class EmbeddedEventBus(EventBus):
    """Kafka's semantics inside one process. With ``directory`` the log and the committed
    offsets are files: a publish is acknowledged once its record is fsynced (records published
    close together share one fsync), so acknowledged messages survive a crash or a restart.

    A member that holds partitions another member should get gives them up in its next
    ``poll`` (running ``on_revoke`` first); a member that does not poll for
    ``max_poll_interval_seconds`` is removed from its group, like Kafka's
    ``max.poll.interval.ms``.

    Each partition is a series of segment files; records older than the topic's ``retention.ms``
    (or beyond its ``retention.bytes``) are deleted a segment at a time, as Kafka does (see
    :class:`Retention`). A group whose committed offset was deleted resumes at the oldest record
    still held, like Kafka's ``auto.offset.reset=earliest``."""

    kind = "embedded"

    def __init__(
        self,
        directory: Path | None = None,
        *,
        default_partitions: int = 4,
        max_poll_interval_seconds: float = 300.0,
        retention: Retention | None = None,
    ) -> None:
        self.directory = directory.resolve() if directory is not None else None
        self.default_partitions = default_partitions
        self.retention = retention or Retention()
        self._configs: dict[str, dict[str, str]] = {}
        self.max_poll_interval_seconds = max_poll_interval_seconds
        self._lock = threading.RLock()
        self._data = threading.Condition(self._lock)
        self._topics: dict[str, list[_PartitionLog]] = {}
        self._groups: dict[str, _Group] = {}
        self._offsets: dict[str, dict[TopicPartition, int]] = {}
        self._closed = False
        # group commit of publishes: (future, result, log, bytes to sync) waiting for an fsync
        self._sync_cond = threading.Condition(threading.Lock())
        self._unsynced: list[tuple[Future[Published], Published, _PartitionLog, int]] = []
        self._syncing: list[Future[Published]] = []
        self._syncer: threading.Thread | None = None
        self._stop_syncer = False
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._load()

    # persistence
    def _load(self) -> None:
        assert self.directory is not None
        meta = self.directory / "topics.json"
        if meta.exists():
            for name, entry in json.loads(meta.read_text()).items():
                # {"partitions": n, "config": {...}}, or just n (a bus written before topic configs)
                partitions = entry if isinstance(entry, int) else int(entry["partitions"])
                self._configs[name] = {} if isinstance(entry, int) else dict(entry.get("config", {}))
                self._topics[name] = [self._open_log(name, p) for p in range(partitions)]
                for plog in self._topics[name]:
                    plog.apply_retention()
        offsets = self.directory / "offsets.json"
        if offsets.exists():
            for group, entries in json.loads(offsets.read_text()).items():
                self._offsets[group] = {TopicPartition(t, int(p)): int(o) for t, p, o in entries}

    def _open_log(self, topic: str, partition: int) -> _PartitionLog:
        retention = Retention.from_config(self._configs.get(topic, {}), self.retention)
        if self.directory is None:
            return _PartitionLog(None, retention)
        folder = self.directory / "topics" / topic / f"{partition:05d}"
        single = folder.with_suffix(".log")  # one file per partition, before segments
        if single.exists() and not folder.exists():
            folder.mkdir(parents=True)
            os.replace(single, folder / f"{0:020d}.log")
            _fsync_dir(folder.parent)
        return _PartitionLog(folder, retention)

    def _write_json(self, name: str, data: Any) -> None:
        if self.directory is None:
            return
        tmp = self.directory / f".{name}.{uuid.uuid4().hex}"
        try:
            with open(tmp, "w") as fh:
                json.dump(data, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise _write_error(exc, f"could not write {self.directory / name}", self.directory) from exc
        _fsync_dir(self.directory)

    def _save_topics(self) -> None:
        self._write_json(
            "topics.json",
            {t: {"partitions": len(p), "config": self._configs.get(t, {})} for t, p in self._topics.items()},
        )

    def _save_offsets(self) -> None:
        self._write_json(
            "offsets.json",
            {g: [[tp.topic, tp.partition, o] for tp, o in sorted(offs.items())] for g, offs in self._offsets.items()},
        )

    # EventBus
    def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        with self._lock:
            if self._closed:
                raise Unavailable("the event bus is closed")
            changed = False
            for spec in specs:
                config = {k: str(v) for k, v in spec.config.items()}
                if spec.name not in self._topics:
                    self._configs[spec.name] = config
                    self._topics[spec.name] = [self._open_log(spec.name, p) for p in range(spec.partitions)]
                    changed = True
                elif config != self._configs.get(spec.name, {}):
                    # like kafka-configs --alter: a new retention applies from now on
                    self._configs[spec.name] = config
                    retention = Retention.from_config(config, self.retention)
                    for plog in self._topics[spec.name]:
                        plog.retention = retention
                        plog.apply_retention()
                    changed = True
            if changed:
                self._save_topics()
                for group in self._groups.values():
                    self._rebalance(group)

    def _logs(self, topic: str) -> list[_PartitionLog]:
        logs = self._topics.get(topic)
        if logs is None:
            raise InvalidArgument(f"topic {topic!r} does not exist", field="topic")
        return logs

    def publish(self, topic: str, *, key: bytes, value: bytes, headers: Headers = ()) -> Future[Published]:
        fut: Future[Published] = Future()
        with self._data:
            if self._closed:
                raise Unavailable("the event bus is closed")
            logs = self._logs(topic)
            partition = partition_for(key, len(logs))
            plog = logs[partition]
            ts = int(time.time() * 1000)
            offset = plog.append(_encode(key, value, headers, ts), ts)
            if plog.due_for_retention():
                plog.apply_retention(ts)
            result = Published(topic, partition, offset)
            if plog.persistent:
                # acknowledged by the syncer thread once the record is on disk
                with self._sync_cond:
                    self._unsynced.append((fut, result, plog, plog.size))
                    if self._syncer is None:
                        self._syncer = threading.Thread(target=self._sync_loop, name="embedded-bus-fsync", daemon=True)
                        self._syncer.start()
                    self._sync_cond.notify_all()
            self._data.notify_all()
        if not plog.persistent:
            fut.set_result(result)
        return fut

    def _sync_loop(self) -> None:
        while True:
            with self._sync_cond:
                while not self._unsynced and not self._stop_syncer:
                    self._sync_cond.wait()
                if not self._unsynced:
                    return
                batch, self._unsynced = self._unsynced, []
                self._syncing = [f for f, _, _, _ in batch]
            upto: dict[int, tuple[_PartitionLog, int]] = {}
            for _, _, plog, end in batch:
                upto[id(plog)] = (plog, max(end, upto.get(id(plog), (plog, 0))[1]))
            failed: dict[int, BaseException] = {}
            for key, (plog, end) in upto.items():
                try:
                    plog.sync(end)
                except Exception as exc:  # noqa: BLE001 - reported through the futures
                    failed[key] = exc
            for fut, result, plog, _ in batch:
                exc = failed.get(id(plog))
                if exc is None:
                    fut.set_result(result)
                else:
                    fut.set_exception(_write_error(exc, f"could not fsync {plog.directory}", plog.directory))
            with self._sync_cond:
                self._syncing = []
                self._sync_cond.notify_all()

    def flush(self, timeout_seconds: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_seconds
        with self._sync_cond:
            while self._unsynced or self._syncing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Unavailable(f"published messages not durable after {timeout_seconds}s")
                self._sync_cond.wait(remaining)
        with self._lock:
            for logs in self._topics.values():
                for plog in logs:
                    try:
                        plog.sync()
                    except OSError as exc:
                        raise _write_error(exc, f"could not fsync {plog.directory}", plog.directory) from exc

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
    ) -> Consumer:
        with self._lock:
            if self._closed:
                raise Unavailable("the event bus is closed")
            for t in topics:
                self._logs(t)
            member = _EmbeddedConsumer(self, group_id, tuple(topics), on_assign, on_revoke)
            self._join(member)
            return member

    def _join(self, member: _EmbeddedConsumer) -> None:
        with self._lock:
            group = self._groups.setdefault(member.group_id, _Group())
            group.members[member.member_id] = member
            self._rebalance(group)

    def _rebalance(self, group: _Group) -> None:
        """Range-free round robin of every subscribed partition over the members, by member id."""
        group.generation += 1
        members = sorted(group.members)
        assignments: dict[str, set[TopicPartition]] = {m: set() for m in members}
        if members:
            all_tps = sorted(
                {
                    TopicPartition(t, p)
                    for m in members
                    for t in group.members[m].topics
                    for p in range(len(self._topics.get(t, [])))
                }
            )
            i = 0
            for tp in all_tps:
                # the next member (in order) that subscribes to this topic
                for _ in range(len(members)):
                    candidate = members[i % len(members)]
                    i += 1
                    if tp.topic in group.members[candidate].topics:
                        assignments[candidate].add(tp)
                        break
        group.assignments = assignments
        self._data.notify_all()

    def _release(self, group: _Group, member_id: str, tps: Iterable[TopicPartition]) -> None:
        with self._lock:
            for tp in tps:
                if group.owners.get(tp) == member_id:
                    del group.owners[tp]
            self._data.notify_all()

    def _leave(self, member: _EmbeddedConsumer) -> None:
        with self._lock:
            group = self._groups.get(member.group_id)
            if group is None:
                return
            self._release(group, member.member_id, [tp for tp, m in group.owners.items() if m == member.member_id])
            if group.members.pop(member.member_id, None) is not None:
                self._rebalance(group)

    def _commit(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        with self._lock:
            self._offsets.setdefault(group_id, {}).update(offsets)
            self._save_offsets()

    def committed_offset(self, group_id: str, tp: TopicPartition) -> int | None:
        with self._lock:
            return self._offsets.get(group_id, {}).get(tp)

    def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        with self._lock:
            return {TopicPartition(topic, p): len(plog) for p, plog in enumerate(self._logs(topic))}

    def ping(self) -> None:
        if self._closed:
            raise Unavailable("the event bus is closed")

    def close(self) -> None:
        with self._data:
            if self._closed:
                return
            self._closed = True  # no new publishes from here on
            self._data.notify_all()
        with self._sync_cond:
            self._stop_syncer = True
            self._sync_cond.notify_all()
            syncer = self._syncer
        if syncer is not None:
            syncer.join()  # acknowledges (or fails) everything published before close
        with self._data:
            for logs in self._topics.values():
                for plog in logs:
                    plog.close()
            self._data.notify_all()


class _EmbeddedConsumer(Consumer):
    def __init__(
        self,
        bus: EmbeddedEventBus,
        group_id: str,
        topics: tuple[str, ...],
        on_assign: RebalanceCallback | None,
        on_revoke: RebalanceCallback | None,
    ) -> None:
        self.bus = bus
        self.group_id = group_id
        self.topics = topics
        self.member_id = f"{group_id}-{uuid.uuid4().hex}"
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._generation = -1
        self._assigned: set[TopicPartition] = set()
        self._waiting: set[TopicPartition] = set()  # assigned, still held by their previous member
        self._positions: dict[TopicPartition, int] = {}
        self._closed = False
        self.last_poll = time.monotonic()

    def _sync_assignment(self) -> None:
        """Runs on the consumer's thread, like Kafka's rebalance listener: gives up the
        partitions the group moved away (after ``on_revoke``), then takes the ones assigned to
        it as soon as their previous member has given them up."""
        bus = self.bus
        with bus._lock:
            group = bus._groups.get(self.group_id)
            if group is None or self.member_id not in group.members:
                if self._closed:
                    return
                # removed from the group for not polling: the partitions are lost, not revoked
                log.warning(
                    "embedded bus: member %s of group %s rejoins after a timeout", self.member_id, self.group_id
                )
                self._assigned.clear()
                self._positions.clear()
                bus._join(self)
                group = bus._groups[self.group_id]
            if self._generation == group.generation and not self._waiting:
                return
            target = set(group.assignments.get(self.member_id, set()))
            generation = group.generation
        lost = self._assigned - target
        if lost:
            if self._on_revoke:
                self._on_revoke(set(lost))  # the partitions are still ours: it may commit
            self._assigned -= lost
            for tp in lost:
                self._positions.pop(tp, None)
            bus._release(group, self.member_id, lost)
        gained: set[TopicPartition] = set()
        with bus._lock:
            now = time.monotonic()
            for tp in sorted(target - self._assigned):
                holder_id = group.owners.get(tp)
                holder = group.members.get(holder_id) if holder_id is not None else None
                if holder is not None and holder is not self:
                    if now - holder.last_poll <= bus.max_poll_interval_seconds:
                        continue  # still held: its member gives it up in its next poll
                    log.warning(
                        "embedded bus: removing member %s from group %s: no poll for %.0fs",
                        holder_id,
                        self.group_id,
                        now - holder.last_poll,
                    )
                    bus._leave(holder)
                    generation = -1  # the group changed: sync again
                    break
                group.owners[tp] = self.member_id
                committed = bus.committed_offset(self.group_id, tp)
                self._positions[tp] = committed if committed is not None else 0
                gained.add(tp)
            self._assigned |= gained
            self._waiting = target - self._assigned
            self._generation = generation
        if gained and self._on_assign:
            self._on_assign(set(gained))

    def poll(self, timeout_seconds: float, max_records: int = 500) -> list[Event]:
        if self._closed:
            raise Unavailable("consumer is closed")
        deadline = time.monotonic() + max(0.0, timeout_seconds)
        bus = self.bus
        while True:
            self.last_poll = time.monotonic()
            if bus._closed:
                raise Unavailable("the event bus is closed")
            self._sync_assignment()
            out: list[Event] = []
            with bus._data:
                if bus._closed:
                    raise Unavailable("the event bus is closed")
                for tp in sorted(self._assigned):
                    plog = bus._topics[tp.topic][tp.partition]
                    pos = self._positions[tp]
                    if pos < plog.start:
                        log.warning(
                            "embedded bus: group %s: offsets %d..%d of %s/%d were removed by retention before "
                            "they were consumed; resuming at %d",
                            self.group_id, pos, plog.start - 1, tp.topic, tp.partition, plog.start,
                        )  # fmt: skip
                        pos = plog.start
                    while pos < len(plog) and len(out) < max_records:
                        key, value, headers, ts = _decode(plog.read(pos))
                        out.append(Event(tp.topic, tp.partition, pos, key, value, headers, ts))
                        pos += 1
                    self._positions[tp] = pos
                    if len(out) >= max_records:
                        break
                if out:
                    return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                group = bus._groups.get(self.group_id)
                if group is not None and group.generation == self._generation:
                    # woken by a publish, a rebalance, or a member giving up a partition we wait for
                    bus._data.wait(min(remaining, 0.5))

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        if offsets is None:
            offsets = {tp: pos for tp, pos in self._positions.items() if tp in self._assigned}
        self.bus._commit(self.group_id, dict(offsets))

    def committed(self, tp: TopicPartition) -> int | None:
        return self.bus.committed_offset(self.group_id, tp)

    def end_offsets(self, tps: set[TopicPartition]) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = {}
        for topic in {tp.topic for tp in tps}:
            ends.update(self.bus.end_offsets(topic))
        return {tp: ends[tp] for tp in tps if tp in ends}

    def assignment(self) -> set[TopicPartition]:
        self._sync_assignment()
        return set(self._assigned)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.bus._leave(self)


# --- Kafka -----------------------------------------------------------------------------------
def _new_client(cls: Any, **config: Any) -> Any:
    """``cls(**config)`` for a kafka-python client. kafka-python 3 starts the client's IO thread
    before it bootstraps, and a constructor that fails (broker unreachable) leaves that thread
    running and reconnecting forever: stop it."""
    client = cls.__new__(cls)
    try:
        client.__init__(**config)
    except BaseException:
        for name in ("_client", "_net"):
            part = getattr(client, name, None)
            stop = getattr(part, "close" if name == "_client" else "stop", None)
            if stop is not None:
                try:
                    stop()
                except Exception:  # best effort cleanup of a client that failed to start
                    log.debug("could not clean up a failed %s", cls.__name__, exc_info=True)
        raise
    return client


#: How long a Kafka consumer may be out of a stable group membership (joining, or rebalancing)
#: while it polls before it gives up, closes and joins anew: in loaded clean-clone runs a
#: rebalance's SyncGroup once never completed, and the member held no partition until restarted.
REBALANCE_STALL_SECONDS = 120.0


class KafkaEventBus(EventBus):
    """Apache Kafka through kafka-python: idempotent producer with ``acks=all``, consumer groups
    with manual commits."""

    kind = "kafka"

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_config: Mapping[str, Any] | None = None,
        request_timeout_seconds: float = 30.0,
        rebalance_stall_seconds: float = REBALANCE_STALL_SECONDS,
    ) -> None:
        if not bootstrap_servers.strip():
            raise ConfigurationError("SHOAL_KAFKA_BOOTSTRAP_SERVERS is empty")
        self.bootstrap_servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
        self._config = dict(client_config or {})
        self._timeout = request_timeout_seconds
        self.rebalance_stall_seconds = rebalance_stall_seconds
        self._producer: Any = None
        self._admin: Any = None
        self._lock = threading.Lock()

    def _common(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": "shoal",
            # kafka-python waits 30 s by default for the first connection, whatever the request timeout
            "bootstrap_timeout_ms": int(self._timeout * 1000),
            **self._config,
        }

    def _get_producer(self) -> Any:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        with self._lock:
            if self._producer is None:
                try:
                    self._producer = _new_client(
                        KafkaProducer,
                        acks="all",
                        enable_idempotence=True,
                        linger_ms=5,
                        max_request_size=16 * 1024 * 1024,
                        request_timeout_ms=int(self._timeout * 1000),
                        max_block_ms=int(self._timeout * 1000),
                        **self._common(),
                    )
                except KafkaError as exc:
                    raise Unavailable(f"Kafka unreachable at {','.join(self.bootstrap_servers)}: {exc}") from exc
            return self._producer

    def _get_admin(self) -> Any:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        with self._lock:
            if self._admin is None:
                try:
                    self._admin = _new_client(
                        KafkaAdminClient, request_timeout_ms=int(min(self._timeout, 10) * 1000), **self._common()
                    )
                except KafkaError as exc:
                    raise Unavailable(f"Kafka unreachable at {','.join(self.bootstrap_servers)}: {exc}") from exc
            return self._admin

    def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        from kafka.admin import NewTopic
        from kafka.errors import KafkaError, TopicAlreadyExistsError

        admin = self._get_admin()
        try:
            existing = set(admin.list_topics())
        except KafkaError as exc:
            raise Unavailable(f"Kafka unreachable: {exc}") from exc
        for spec in specs:
            if spec.name in existing:
                continue
            try:
                admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=dict(spec.config))]
                )
                log.info("created Kafka topic %s (%d partitions)", spec.name, spec.partitions)
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:
                raise Unavailable(f"could not create Kafka topic {spec.name}: {exc}") from exc
        self._wait_for_metadata([s.name for s in specs])

    def _wait_for_metadata(self, topics: Sequence[str]) -> None:
        producer = self._get_producer()
        deadline = time.monotonic() + self._timeout
        for t in topics:
            while not producer.partitions_for(t):
                if time.monotonic() > deadline:
                    raise Unavailable(f"Kafka topic {t} has no partitions after {self._timeout}s")
                time.sleep(0.1)

    def publish(self, topic: str, *, key: bytes, value: bytes, headers: Headers = ()) -> Future[Published]:
        from kafka.errors import KafkaError

        producer = self._get_producer()
        out: Future[Published] = Future()
        try:
            kfut = producer.send(topic, key=key, value=value, headers=list(headers))
        except KafkaError as exc:
            raise Unavailable(f"Kafka publish to {topic} failed: {exc}") from exc

        def done(md: Any) -> None:
            out.set_result(Published(md.topic, md.partition, md.offset))

        def failed(exc: BaseException) -> None:
            out.set_exception(Unavailable(f"Kafka publish to {topic} failed: {exc}"))

        kfut.add_callback(done)
        kfut.add_errback(failed)
        return out

    def flush(self, timeout_seconds: float = 30.0) -> None:
        from kafka.errors import KafkaError

        if self._producer is None:
            return
        try:
            self._producer.flush(timeout=timeout_seconds)
        except KafkaError as exc:
            raise Unavailable(f"Kafka flush failed: {exc}") from exc

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
    ) -> Consumer:
        return _KafkaConsumer(self, group_id, topics, on_assign, on_revoke)

    def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError
        from kafka.structs import TopicPartition as KafkaTP

        try:
            consumer = _new_client(KafkaConsumer, **self._common())
        except KafkaError as exc:
            raise Unavailable(f"Kafka unreachable: {exc}") from exc
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            ends = consumer.end_offsets([KafkaTP(topic, p) for p in sorted(parts)])
            return {TopicPartition(k.topic, k.partition): v for k, v in ends.items()}
        except KafkaError as exc:
            raise Unavailable(f"Kafka end offsets of {topic} failed: {exc}") from exc
        finally:
            consumer.close()

    def ping(self) -> None:
        from kafka.errors import KafkaError

        try:
            admin = self._get_admin()
            admin.describe_cluster()
        except KafkaError as exc:
            raise Unavailable(f"Kafka unreachable at {','.join(self.bootstrap_servers)}: {exc}") from exc
        except Unavailable:
            raise
        except Exception as exc:  # socket errors surface raw from the admin client
            raise Unavailable(f"Kafka unreachable: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
            admin, self._admin = self._admin, None
        if producer is not None:
            try:
                producer.flush(timeout=self._timeout)
            finally:
                producer.close(timeout=5)
        if admin is not None:
            admin.close()


class _RevokeOnPollThread(Exception):
    """Raised by the rebalance listener to hand a revocation back to the thread in ``poll``."""


class _HideRevokeHandOff(logging.Filter):
    """kafka-python logs a listener's exception with its traceback; the hand-off is not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _RevokeOnPollThread)


_hand_off_filter = _HideRevokeHandOff()


class _KafkaConsumer(Consumer):
    """A Kafka consumer whose rebalance callbacks run on the thread that calls ``poll``.

    kafka-python 3 calls rebalance listeners on its IO thread, where a blocking call such as
    ``commit`` raises ("Cannot block on net.run() from the IO thread itself"). So the listener
    only hands over: before a rebalance it records the partitions to revoke and raises, which
    aborts that poll *before* the JoinGroup is sent (the partitions have not moved); ``poll``
    then runs ``on_revoke`` on the caller's thread (where it can commit) and polls again, and
    kafka-python retries the rebalance, this time with the listener letting it through.
    ``on_assign`` runs on the caller's thread before ``poll`` returns. ``close`` does not call
    ``on_revoke`` (it leaves without committing); partitions lost by an expired membership are
    not revoked either (a commit would fail): their uncommitted messages are delivered again."""

    def __init__(
        self,
        bus: KafkaEventBus,
        group_id: str,
        topics: Sequence[str],
        on_assign: RebalanceCallback | None,
        on_revoke: RebalanceCallback | None,
    ) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer
        from kafka.errors import KafkaError

        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._closing = False
        self._revoke_pending: set[TopicPartition] | None = None  # set on the IO thread
        self._revoke_done: set[TopicPartition] | None = None  # on_revoke ran for these
        self._assigned_pending: list[set[TopicPartition]] = []
        self._timeout = bus._timeout
        self._group_id = group_id
        self._stall_limit = bus.rebalance_stall_seconds
        #: when the membership was last seen not stable (None: stable at the last poll)
        self._unstable_since: float | None = None
        outer = self

        def ours(tps: Any) -> set[TopicPartition]:
            return {TopicPartition(t.topic, t.partition) for t in tps}

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                tps = ours(revoked)
                if not tps or outer._on_revoke is None or outer._closing:
                    return
                if outer._revoke_done == tps:  # the retry after on_revoke ran: go ahead
                    outer._revoke_done = None
                    return
                outer._revoke_pending = tps
                raise _RevokeOnPollThread()

            def on_partitions_lost(self, lost: Any) -> None:
                outer._revoke_done = None
                log.warning("Kafka consumer of group %s lost %s (membership expired)", group_id, sorted(ours(lost)))

            def on_partitions_assigned(self, assigned: Any) -> None:
                outer._revoke_done = None
                tps = ours(assigned)
                if tps and outer._on_assign is not None:
                    outer._assigned_pending.append(tps)

        logging.getLogger("kafka.coordinator.consumer").addFilter(_hand_off_filter)
        try:
            self._consumer = _new_client(
                KafkaConsumer,
                group_id=group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_partition_fetch_bytes=16 * 1024 * 1024,
                session_timeout_ms=10000,
                heartbeat_interval_ms=3000,
                **bus._common(),
            )
        except KafkaError as exc:
            raise Unavailable(f"Kafka unreachable: {exc}") from exc
        # Know the topics' partitions before joining: a group whose first assignment found no
        # partition metadata must rebalance again, and that second round can stall.
        deadline = time.monotonic() + min(self._timeout, 30.0)
        for topic in topics:
            while time.monotonic() < deadline:
                try:
                    if self._consumer.partitions_for_topic(topic):
                        break
                except KafkaError:
                    pass
                time.sleep(0.1)
        try:
            self._consumer.subscribe(list(topics), listener=Listener())
        except KafkaError as exc:
            self._consumer.close(autocommit=False)
            raise Unavailable(f"Kafka subscribe to {list(topics)} failed: {exc}") from exc

    def _run_assigned(self) -> None:
        while self._assigned_pending:
            tps = self._assigned_pending.pop(0)
            if self._on_assign is not None:
                self._on_assign(tps)

    def poll(self, timeout_seconds: float, max_records: int = 500) -> list[Event]:
        from kafka.errors import KafkaError

        deadline = time.monotonic() + max(0.0, timeout_seconds)
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            try:
                batches = self._consumer.poll(timeout_ms=remaining_ms, max_records=max_records)
            except KafkaError as exc:
                revoked, self._revoke_pending = self._revoke_pending, None
                if revoked is None or not isinstance(exc.__cause__, _RevokeOnPollThread):
                    raise Unavailable(f"Kafka poll failed: {exc}") from exc
                self._run_assigned()
                assert self._on_revoke is not None
                self._on_revoke(revoked)  # this thread, the partitions still ours: it may commit
                self._revoke_done = revoked
                continue
            break
        self._run_assigned()
        self._check_membership()
        out = []
        for ktp, records in sorted(batches.items(), key=lambda kv: (kv[0].topic, kv[0].partition)):
            for r in records:
                out.append(
                    Event(
                        ktp.topic,
                        ktp.partition,
                        r.offset,
                        r.key,
                        r.value,
                        tuple((h[0], h[1]) for h in (r.headers or [])),
                        r.timestamp,
                    )
                )
        return out

    def _check_membership(self) -> None:
        """Raises Unavailable once the group membership has not been stable for the stall limit
        (the caller's loop then closes this consumer and joins with a new one)."""
        from kafka.structs import MemberState

        state = getattr(getattr(self._consumer, "_coordinator", None), "state", MemberState.STABLE)
        now = time.monotonic()
        if state == MemberState.STABLE:
            self._unstable_since = None
        elif self._unstable_since is None:
            self._unstable_since = now
        elif now - self._unstable_since > self._stall_limit:
            raise Unavailable(
                f"Kafka group {self._group_id}: joining or rebalancing has not completed in {self._stall_limit:.0f}s "
                f"({state}); leaving and joining again"
            )

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata
        from kafka.structs import TopicPartition as KafkaTP

        try:
            if offsets is None:
                self._consumer.commit(timeout_ms=int(self._timeout * 1000))
            elif offsets:
                self._consumer.commit(
                    {KafkaTP(tp.topic, tp.partition): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()},
                    timeout_ms=int(self._timeout * 1000),
                )
        except KafkaError as exc:
            raise Unavailable(f"Kafka commit failed: {exc}") from exc

    def committed(self, tp: TopicPartition) -> int | None:
        from kafka.errors import KafkaError
        from kafka.structs import TopicPartition as KafkaTP

        try:
            offset = self._consumer.committed(KafkaTP(tp.topic, tp.partition), timeout_ms=int(self._timeout * 1000))
        except KafkaError as exc:
            raise Unavailable(f"Kafka committed offsets of {tp.topic} failed: {exc}") from exc
        return None if offset is None or offset < 0 else int(offset)

    def end_offsets(self, tps: set[TopicPartition]) -> dict[TopicPartition, int]:
        from kafka.errors import KafkaError
        from kafka.structs import TopicPartition as KafkaTP

        try:
            ends = self._consumer.end_offsets([KafkaTP(tp.topic, tp.partition) for tp in sorted(tps)])
        except KafkaError as exc:
            raise Unavailable(f"Kafka end offsets failed: {exc}") from exc
        return {TopicPartition(k.topic, k.partition): int(v) for k, v in ends.items()}

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(t.topic, t.partition) for t in self._consumer.assignment()}

    def close(self) -> None:
        from kafka.errors import KafkaError

        self._closing = True
        try:
            self._consumer.close(autocommit=False, timeout_ms=int(self._timeout * 1000))
        except KafkaError as exc:  # the group notices the member is gone after the session timeout
            log.warning("Kafka consumer did not leave its group cleanly: %s", exc)


def kafka_client_config(settings: Any) -> dict[str, Any]:
    """kafka-python security options from :class:`shoal.common.settings.ShoalSettings`."""
    cfg: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_sasl_mechanism:
        cfg["sasl_mechanism"] = settings.kafka_sasl_mechanism
        cfg["sasl_plain_username"] = settings.kafka_sasl_username
        cfg["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        cfg["ssl_cafile"] = str(settings.kafka_ssl_cafile)
    return cfg
