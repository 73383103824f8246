"""The embedded event bus: Kafka's semantics inside one process, kept in one SQLite database.

With a directory, everything is in ``<directory>/events.sqlite3`` (WAL journal,
``synchronous=FULL``): the records, the topics with their configs, and the groups' committed
offsets, each change a transaction. A publish is acknowledged once the transaction holding its
record is committed and the journal synced; publishes close together share one transaction, so
acknowledged messages survive a crash, a power loss or a restart, and a write cut short by a crash
is rolled back whole by SQLite. A thread of its own copies the journal into the database file
(SQLite's checkpoint) while publishes go on, and starts the journal over each 128 MiB. Without a
directory the database is in memory.

Consumers read a partition up to its *high watermark*, the offset after its last committed
record (Kafka's term for the same thing), so a record is delivered only once it is durable.

A data directory written before SQLite (segment files under ``topics/`` with ``topics.json`` and
``offsets.json``) is copied into the database once, on first open, and its files are moved to
``segment-log.imported/`` (see :func:`_import_segment_log`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from shoal.common.errors import ConfigurationError, InvalidArgument, ShoalError, Unavailable
from shoal.common.stores.disk import full_disk, read_only, storage_error
from shoal.common.stores.events.base import (
    Consumer,
    Event,
    EventBus,
    Headers,
    Published,
    RebalanceCallback,
    TopicPartition,
    TopicSpec,
    partition_for,
)

log = logging.getLogger(__name__)

DB_NAME = "events.sqlite3"
#: where the files of a bus written before SQLite go once their records are copied
IMPORTED_DIR = "segment-log.imported"
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS partitions (
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, partition INTEGER NOT NULL, UNIQUE (topic, partition));
-- the records of a partition in runs of about segment.bytes, the unit retention removes
CREATE TABLE IF NOT EXISTS segments (
    pid INTEGER NOT NULL, base INTEGER NOT NULL, count INTEGER NOT NULL, bytes INTEGER NOT NULL,
    last_ts INTEGER NOT NULL, PRIMARY KEY (pid, base)) WITHOUT ROWID;
-- id: the partition's id << 40 | the record's offset, so a partition's records are one range
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, key BLOB, value BLOB NOT NULL, headers BLOB);
CREATE TABLE IF NOT EXISTS offsets (
    group_id TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)) WITHOUT ROWID;
"""
_SHIFT = 40  # offsets below 2**40 (a trillion records) per partition
#: the most record bytes one write transaction takes (publishes beyond it wait for the next)
_BATCH_BYTES = 32 * 1024 * 1024
#: publishers wait while this many bytes of published records are not written yet
_BACKLOG_BYTES = 128 * 1024 * 1024
#: a thread of its own copies the journal into the database (a checkpoint) each time this many
#: bytes were committed, so a publish never waits for that copy
_CHECKPOINT_BYTES = 16 * 1024 * 1024
#: each time this much was written, the writer itself, between two transactions, finishes the copy
#: and starts the journal over (SQLite starts it over only at a pause, which steady writes never
#: leave); the checkpointer has copied most of it by then, so the pause is short
_JOURNAL_LIMIT_BYTES = 128 * 1024 * 1024


def _write_error(exc: BaseException, what: str, path: Path | None) -> ShoalError:
    """A failed write of the embedded bus: RESOURCE_EXHAUSTED when its disk is full, UNAVAILABLE
    naming read-only storage when it is read-only, UNAVAILABLE otherwise."""
    if isinstance(exc, ShoalError):
        return exc
    where = f"embedded bus {path}"
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL"):
        return full_disk("events", where)
    if name.startswith("SQLITE_READONLY"):
        return read_only("events", where)
    return storage_error(exc, "events", where) or Unavailable(f"{what}: {exc}")


@dataclass(frozen=True)
class Retention:
    """How long a partition keeps its records, as Kafka's topic configs ``retention.ms``,
    ``retention.bytes`` (per partition) and ``segment.bytes``: records go a segment (a run of
    about ``segment.bytes``) at a time, never the segment being written, whether or not a group
    has read them."""

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


def _pack_headers(headers: Headers) -> bytes | None:
    if not headers:
        return None
    parts = []
    for name, value in headers:
        nb = name.encode()
        parts.append(struct.pack("<II", len(nb), len(value)) + nb + bytes(value))
    return b"".join(parts)


def _unpack_headers(blob: bytes | None) -> tuple[tuple[str, bytes], ...]:
    if not blob:
        return ()
    out = []
    pos = 0
    while pos < len(blob):
        nlen, vlen = struct.unpack_from("<II", blob, pos)
        pos += 8
        name = blob[pos : pos + nlen].decode()
        pos += nlen
        out.append((name, bytes(blob[pos : pos + vlen])))
        pos += vlen
    return tuple(out)


@dataclass
class _Segment:
    base: int
    count: int = 0
    bytes: int = 0
    last_ts: int = 0  # timestamp (ms) of the newest record

    def row(self, pid: int) -> tuple[int, int, int, int, int]:
        return (pid, self.base, self.count, self.bytes, self.last_ts)


class _Partition:
    """One partition: its id in the database, its segments (changed only by the writer, under
    the store's write lock), the offset the next publish gets and its high watermark."""

    def __init__(self, pid: int, topic: str, partition: int, retention: Retention, segments: list[_Segment]):
        self.pid = pid
        self.topic = topic
        self.partition = partition
        self.retention = retention
        self.segments = segments or [_Segment(0, last_ts=int(time.time() * 1000))]
        last = self.segments[-1]
        self.end = last.base + last.count  # the offset of the next publish (under the bus lock)
        self.durable_end = self.end  # records below it are committed: consumers read up to here
        self.checked = time.monotonic()

    @property
    def start(self) -> int:
        """The oldest offset still held."""
        return self.segments[0].base

    @property
    def bytes_held(self) -> int:
        return sum(s.bytes for s in self.segments)

    def due_for_retention(self, every_seconds: float = 60.0) -> bool:
        return time.monotonic() - self.checked >= every_seconds


@dataclass
class _Pending:
    """A published record waiting for the writer."""

    future: Future[Published]
    result: Published
    part: _Partition
    ts: int
    key: bytes | None
    value: bytes
    headers: bytes | None
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.value) + len(self.key or b"") + len(self.headers or b"")


class _Store:
    """The SQLite database: one connection that writes (a transaction at a time, under
    ``wlock``) and one that reads (under ``rlock``); in memory, one connection for both. On disk
    a third connection, on a thread of its own, checkpoints the journal (see :meth:`wrote`)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._checkpoints = threading.Condition()
        self._unchecked = 0  # bytes committed since the checkpointer was last woken
        self._journal = 0  # bytes committed since the journal last started over
        #: one checkpoint at a time (SQLite answers a second one BUSY instead of waiting)
        self._checkpoint_lock = threading.Lock()
        self._closing = False
        self._checkpointer: threading.Thread | None = None
        #: checkpoints run (passive ones, and those that started the journal over): for tests and logs
        self.checkpoints = {"passive": 0, "restart": 0}
        if path is None:
            self.writer = self._connect(":memory:")
            self.reader = self.writer
            self.wlock = self.rlock = threading.Lock()
        else:
            self.writer = self._connect(str(path))
            self.writer.execute("PRAGMA journal_mode=WAL")
            self.reader = self._connect(str(path))
            self.wlock, self.rlock = threading.Lock(), threading.Lock()
        self.writer.executescript(_SCHEMA)
        self.writer.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(_SCHEMA_VERSION),))

    @staticmethod
    def _connect(target: str) -> sqlite3.Connection:
        conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=30.0)
        # 64 KiB pages (for a new database): an upload chunk of a few MiB is a chain of 16 times fewer
        # pages than with the default 4 KiB, which doubled publish throughput (bench/event_bus)
        conn.execute("PRAGMA page_size=65536")
        # every commit syncs the journal before a publish is acknowledged
        conn.execute("PRAGMA synchronous=FULL")
        # no commit copies the journal into the database: the checkpointer does, off the write path;
        # the journal is cut back to 64 MiB when it starts over
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA journal_size_limit=67108864")
        return conn

    def wrote(self, nbytes: int) -> None:
        """Counts bytes the writer committed (called by the writer after its transaction): wakes the
        checkpointer each ``_CHECKPOINT_BYTES``, and starts the journal over each
        ``_JOURNAL_LIMIT_BYTES``, so the journal stays bounded however fast the writes come."""
        if self.path is None:
            return
        with self._checkpoints:
            self._unchecked += nbytes
            self._journal += nbytes
            restart = self._journal >= _JOURNAL_LIMIT_BYTES
            if restart:
                self._journal = 0
            if self._unchecked >= _CHECKPOINT_BYTES:
                if self._checkpointer is None and not self._closing:
                    self._checkpointer = threading.Thread(
                        target=self._checkpoint_loop, name="embedded-bus-checkpointer", daemon=True
                    )
                    self._checkpointer.start()
                self._checkpoints.notify_all()
        if restart:
            try:
                with self.wlock, self._checkpoint_lock:
                    busy, _, _ = self.writer.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                if busy:  # a reader held on past the busy timeout: the next restart tries again
                    log.warning("embedded bus: the journal of %s could not start over (readers busy)", self.path)
                else:
                    self.checkpoints["restart"] += 1
            except sqlite3.Error as exc:  # what is written stays written; the next restart tries again
                log.warning("embedded bus: starting the journal of %s over failed: %s", self.path, exc)

    def _checkpoint_loop(self) -> None:
        """Copies the journal into the database while the writer goes on (a passive checkpoint)."""
        assert self.path is not None
        conn = self._connect(str(self.path))
        try:
            while True:
                with self._checkpoints:
                    while not self._closing and self._unchecked < _CHECKPOINT_BYTES:
                        self._checkpoints.wait()
                    if self._closing:
                        return
                    self._unchecked = 0
                try:
                    with self._checkpoint_lock:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints["passive"] += 1
                except sqlite3.Error as exc:  # the next one copies what this one could not
                    log.warning("embedded bus: checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; the caller holds ``wlock``."""
        conn = self.writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def meta(self, name: str) -> str | None:
        with self.rlock:
            row = self.reader.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def segments(self, pid: int) -> list[_Segment]:
        """The segments of a partition as committed; the caller holds ``wlock``."""
        rows = self.writer.execute(
            "SELECT base, count, bytes, last_ts FROM segments WHERE pid = ? ORDER BY base", (pid,)
        ).fetchall()
        return [_Segment(*r) for r in rows]

    def read(self, pid: int, start: int, end: int, limit: int) -> list[tuple[int, int, bytes | None, bytes, bytes]]:
        """Records ``start`` <= offset < ``end`` of a partition: (offset, ts, key, value, headers)."""
        base = pid << _SHIFT
        with self.rlock:
            rows = self.reader.execute(
                "SELECT id, ts, key, value, headers FROM records WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                (base | start, base | end, limit),
            ).fetchall()
        return [(i - base, ts, k, v, h) for i, ts, k, v, h in rows]

    def close(self) -> None:
        with self._checkpoints:
            self._closing = True
            self._checkpoints.notify_all()
            checkpointer = self._checkpointer
        if checkpointer is not None:
            checkpointer.join()
        with self.wlock:
            if self.reader is not self.writer:
                with self.rlock:
                    self.reader.close()
            self.writer.close()


def _drop_expired(conn: sqlite3.Connection, part: _Partition, now_ms: int) -> int:
    """Removes the closed segments retention lets go, in the caller's transaction; returns how
    many records went."""
    part.checked = time.monotonic()
    keep = part.retention
    dropped = 0
    while len(part.segments) > 1:
        oldest = part.segments[0]
        expired = keep.ms >= 0 and oldest.last_ts < now_ms - keep.ms
        too_big = keep.bytes >= 0 and part.bytes_held - oldest.bytes >= keep.bytes
        if not (expired or too_big):
            break
        part.segments.pop(0)
        dropped += oldest.count
    if dropped:
        base = part.pid << _SHIFT
        conn.execute("DELETE FROM records WHERE id >= ? AND id < ?", (base, base | part.start))
        conn.execute("DELETE FROM segments WHERE pid = ? AND base < ?", (part.pid, part.start))
    return dropped


class _Group:
    def __init__(self) -> None:
        self.members: dict[str, _EmbeddedConsumer] = {}
        self.generation = 0
        self.assignments: dict[str, set[TopicPartition]] = {}
        # who holds a partition right now: a member gives a partition up (after its on_revoke)
        # before the member it is assigned to next may read it, as in Kafka
        self.owners: dict[TopicPartition, str] = {}


class EmbeddedEventBus(EventBus):
    """Kafka's semantics inside one process, on SQLite (see the module's docstring). With
    ``directory`` the records and the committed offsets survive a crash or a restart.

    A member that holds partitions another member should get gives them up in its next
    ``poll`` (running ``on_revoke`` first); a member that does not poll for
    ``max_poll_interval_seconds`` is removed from its group, like Kafka's
    ``max.poll.interval.ms``.

    Records older than the topic's ``retention.ms`` (or beyond its ``retention.bytes``) are
    deleted a segment at a time, as Kafka does (see :class:`Retention`). A group whose committed
    offset was deleted resumes at the oldest record still held, like Kafka's
    ``auto.offset.reset=earliest``."""

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
        self.max_poll_interval_seconds = max_poll_interval_seconds
        self._configs: dict[str, dict[str, str]] = {}
        self._lock = threading.RLock()
        self._data = threading.Condition(self._lock)
        self._topics: dict[str, list[_Partition]] = {}
        self._groups: dict[str, _Group] = {}
        self._offsets: dict[str, dict[TopicPartition, int]] = {}
        self._offsets_lock = threading.Lock()
        self._closed = False
        # publishes waiting for the writer thread, which commits them a transaction at a time
        self._queue_cond = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        self._queued_bytes = 0
        self._writing: list[_Pending] = []
        self._writer: threading.Thread | None = None
        self._stop_writer = False
        path = None
        if self.directory is not None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _write_error(exc, f"could not create {self.directory}", self.directory) from exc
            path = self.directory / DB_NAME
        try:
            self._store = _Store(path)
            if self.directory is not None:
                _import_segment_log(self.directory, self._store)
            self._load()
        except sqlite3.Error as exc:
            raise _write_error(exc, f"could not open {path}", self.directory) from exc

    @property
    def path(self) -> Path | None:
        """The database file, or None for a bus in memory."""
        return None if self.directory is None else self.directory / DB_NAME

    # persistence
    def _load(self) -> None:
        store = self._store
        with store.rlock:
            topics = store.reader.execute("SELECT name, config FROM topics").fetchall()
            parts = store.reader.execute("SELECT id, topic, partition FROM partitions ORDER BY topic, partition")
            parts = parts.fetchall()
            offsets = store.reader.execute("SELECT group_id, topic, partition, offset FROM offsets").fetchall()
        for name, config in topics:
            self._configs[name] = dict(json.loads(config))
            self._topics[name] = []
        for pid, topic, partition in parts:
            retention = Retention.from_config(self._configs.get(topic, {}), self.retention)
            with store.wlock:
                segments = store.segments(pid)
            self._topics[topic].append(_Partition(pid, topic, partition, retention, segments))
        for group, topic, partition, offset in offsets:
            self._offsets.setdefault(group, {})[TopicPartition(topic, partition)] = offset
        self._apply_retention([p for logs in self._topics.values() for p in logs])

    def _apply_retention(self, parts: Sequence[_Partition], now_ms: int | None = None) -> int:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        store = self._store
        with store.wlock:
            try:
                with store.transaction() as conn:
                    return sum(_drop_expired(conn, part, now_ms) for part in parts)
            except BaseException:
                for part in parts:
                    part.segments = store.segments(part.pid) or part.segments
                raise

    def apply_retention(self, topic: str, now_ms: int | None = None) -> int:
        """Removes the records of ``topic`` that retention lets go (as of ``now_ms``); returns how
        many went. The bus does this by itself about once a minute per partition it writes."""
        with self._lock:
            parts = list(self._logs(topic))
        try:
            return self._apply_retention(parts, now_ms)
        except sqlite3.Error as exc:
            raise _write_error(exc, f"could not apply retention in {self.path}", self.directory) from exc

    # EventBus
    def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        with self._lock:
            if self._closed:
                raise Unavailable("the event bus is closed")
            changed = False
            try:
                for spec in specs:
                    config = {k: str(v) for k, v in spec.config.items()}
                    if spec.name not in self._topics:
                        self._topics[spec.name] = self._create_topic(spec.name, spec.partitions, config)
                        self._configs[spec.name] = config
                        changed = True
                    elif config != self._configs.get(spec.name, {}):
                        # like kafka-configs --alter: a new retention applies from now on
                        retention = Retention.from_config(config, self.retention)
                        with self._store.wlock, self._store.transaction() as conn:
                            conn.execute("UPDATE topics SET config = ? WHERE name = ?", (json.dumps(config), spec.name))
                        self._configs[spec.name] = config
                        for part in self._topics[spec.name]:
                            part.retention = retention
                        self._apply_retention(self._topics[spec.name])
                        changed = True
            except sqlite3.Error as exc:
                raise _write_error(exc, f"could not create topics in {self.path}", self.directory) from exc
            if changed:
                for group in self._groups.values():
                    self._rebalance(group)

    def _create_topic(self, name: str, partitions: int, config: dict[str, str]) -> list[_Partition]:
        retention = Retention.from_config(config, self.retention)
        now = int(time.time() * 1000)
        out = []
        with self._store.wlock, self._store.transaction() as conn:
            conn.execute("INSERT INTO topics VALUES (?, ?, ?)", (name, partitions, json.dumps(config)))
            for p in range(partitions):
                pid = conn.execute("INSERT INTO partitions (topic, partition) VALUES (?, ?)", (name, p)).lastrowid
                assert pid is not None
                segment = _Segment(0, last_ts=now)
                conn.execute("INSERT INTO segments VALUES (?, ?, ?, ?, ?)", segment.row(pid))
                out.append(_Partition(pid, name, p, retention, [segment]))
        return out

    def _logs(self, topic: str) -> list[_Partition]:
        logs = self._topics.get(topic)
        if logs is None:
            raise InvalidArgument(f"topic {topic!r} does not exist", field="topic")
        return logs

    def publish(self, topic: str, *, key: bytes, value: bytes, headers: Headers = ()) -> Future[Published]:
        fut: Future[Published] = Future()
        packed = _pack_headers(headers)
        with self._queue_cond:  # backpressure: publishers wait for the writer to catch up
            while self._queued_bytes > _BACKLOG_BYTES and not self._stop_writer:
                self._queue_cond.wait(1.0)
        with self._data:
            if self._closed:
                raise Unavailable("the event bus is closed")
            logs = self._logs(topic)
            partition = partition_for(key, len(logs))
            part = logs[partition]
            result = Published(topic, partition, part.end)
            part.end += 1
            pending = _Pending(fut, result, part, int(time.time() * 1000), key, bytes(value), packed)
            with self._queue_cond:
                self._queue.append(pending)
                self._queued_bytes += pending.size
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_loop, name="embedded-bus-writer", daemon=True)
                    self._writer.start()
                self._queue_cond.notify_all()
        return fut

    def _write_loop(self) -> None:
        while True:
            with self._queue_cond:
                while not self._queue and not self._stop_writer:
                    self._queue_cond.wait()
                if not self._queue:
                    return
                size = 0
                n = 0
                for n, p in enumerate(self._queue, 1):  # noqa: B007 - n is how many are taken
                    size += p.size
                    if size >= _BATCH_BYTES:
                        break
                batch, self._queue = self._queue[:n], self._queue[n:]
                self._queued_bytes -= size
                self._writing = batch
                self._queue_cond.notify_all()
            try:
                self._write(batch)
            except Exception as exc:  # noqa: BLE001 - reported through the futures
                self._fail(batch, _write_error(exc, f"could not write to {self.path}", self.directory))
            else:
                with self._data:
                    for p in batch:
                        p.part.durable_end = max(p.part.durable_end, p.result.offset + 1)
                    self._data.notify_all()
                for p in batch:
                    p.future.set_result(p.result)
            with self._queue_cond:
                self._writing = []
                self._queue_cond.notify_all()

    def _write(self, batch: list[_Pending]) -> None:
        """Commits a batch of records in one transaction (with retention when it is due)."""
        store = self._store
        rows = []
        touched: dict[int, tuple[_Partition, int]] = {}  # pid: (partition, index of its first touched segment)
        with store.wlock:
            try:
                for p in batch:
                    part = p.part
                    seg = part.segments[-1]
                    if seg.count and seg.bytes >= part.retention.segment_bytes:
                        seg = _Segment(seg.base + seg.count, last_ts=p.ts)
                        part.segments.append(seg)
                    if p.result.offset != seg.base + seg.count:
                        raise Unavailable(f"embedded bus: offset {p.result.offset} out of order in {part.topic}")
                    touched.setdefault(part.pid, (part, len(part.segments) - 1))
                    seg.count += 1
                    seg.bytes += p.size
                    seg.last_ts = max(seg.last_ts, p.ts)
                    rows.append(((part.pid << _SHIFT) | p.result.offset, p.ts, p.key, p.value, p.headers))
                with store.transaction() as conn:
                    conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", rows)
                    for part, first in touched.values():
                        segments = [s.row(part.pid) for s in part.segments[first:]]
                        conn.executemany("INSERT OR REPLACE INTO segments VALUES (?, ?, ?, ?, ?)", segments)
                        if part.due_for_retention():
                            _drop_expired(conn, part, int(time.time() * 1000))
            except BaseException:
                for part, _ in touched.values():  # back to what the database holds
                    part.segments = store.segments(part.pid) or part.segments
                raise
        store.wrote(sum(p.size for p in batch))

    def _fail(self, batch: list[_Pending], error: ShoalError) -> None:
        """Fails a batch that could not be written and every publish queued behind it (their
        offsets followed the batch's): the partitions continue at their high watermark."""
        with self._data:
            with self._queue_cond:
                rest, self._queue = self._queue, []
                self._queued_bytes = 0
                self._queue_cond.notify_all()
            for logs in self._topics.values():
                for part in logs:
                    part.end = part.durable_end
        log.warning("embedded bus: %d publishes failed: %s", len(batch) + len(rest), error)
        for p in [*batch, *rest]:
            p.future.set_exception(error)

    def flush(self, timeout_seconds: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_seconds
        with self._queue_cond:
            while self._queue or self._writing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Unavailable(f"published messages not durable after {timeout_seconds}s")
                self._queue_cond.wait(remaining)

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
        if self._closed:
            raise Unavailable("the event bus is closed")
        rows = [(group_id, tp.topic, tp.partition, o) for tp, o in sorted(offsets.items())]
        store = self._store
        with store.wlock:
            try:
                with store.transaction() as conn:
                    conn.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, ?)", rows)
            except sqlite3.Error as exc:
                raise _write_error(exc, f"could not commit offsets to {self.path}", self.directory) from exc
            with self._offsets_lock:
                self._offsets.setdefault(group_id, {}).update(offsets)

    def committed_offset(self, group_id: str, tp: TopicPartition) -> int | None:
        with self._offsets_lock:
            return self._offsets.get(group_id, {}).get(tp)

    def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        with self._lock:
            return {TopicPartition(topic, p): part.durable_end for p, part in enumerate(self._logs(topic))}

    def ping(self) -> None:
        if self._closed:
            raise Unavailable("the event bus is closed")

    def close(self) -> None:
        with self._data:
            if self._closed:
                return
            self._closed = True  # no new publishes from here on
            self._data.notify_all()
        with self._queue_cond:
            self._stop_writer = True
            self._queue_cond.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join()  # acknowledges (or fails) everything published before close
        with self._data:
            self._store.close()
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

    def _ranges(self) -> list[tuple[TopicPartition, _Partition, int, int]]:
        """(partition, its log, position, high watermark) of each assigned partition with records
        to read; the caller holds the bus lock."""
        bus = self.bus
        out = []
        for tp in sorted(self._assigned):
            part = bus._topics[tp.topic][tp.partition]
            pos = self._positions[tp]
            if pos < part.start:
                log.warning(
                    "embedded bus: group %s: offsets %d..%d of %s/%d were removed by retention before "
                    "they were consumed; resuming at %d",
                    self.group_id, pos, part.start - 1, tp.topic, tp.partition, part.start,
                )  # fmt: skip
                pos = self._positions[tp] = part.start
            if pos < part.durable_end:
                out.append((tp, part, pos, part.durable_end))
        return out

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
            with bus._data:
                if bus._closed:
                    raise Unavailable("the event bus is closed")
                ranges = self._ranges()
            out: list[Event] = []
            for tp, part, pos, end in ranges:
                if len(out) >= max_records:
                    break
                try:
                    rows = bus._store.read(part.pid, pos, end, max_records - len(out))
                except sqlite3.Error as exc:
                    raise Unavailable(f"embedded bus: could not read {bus.path}: {exc}") from exc
                for offset, ts, key, value, headers in rows:
                    out.append(Event(tp.topic, tp.partition, offset, key, value, _unpack_headers(headers), ts))
                if rows:
                    self._positions[tp] = rows[-1][0] + 1
            if out:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            with bus._data:
                group = bus._groups.get(self.group_id)
                if ranges:
                    bus._data.wait(min(remaining, 0.05))  # removed by retention meanwhile: look again
                elif group is not None and group.generation == self._generation and not self._ranges():
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


# --- the layout before SQLite ------------------------------------------------------------------
_OLD_HEADER = struct.Struct("<IqiiI")  # total length, timestamp, key length (-1: none), value length, header count


def _old_records(path: Path) -> Iterator[tuple[int, bytes | None, bytes, bytes | None]]:
    """The records of a segment file of the old log, (timestamp, key, value, headers as packed by
    :func:`_pack_headers`, which is the old encoding), up to a torn write at its end if any."""
    data = path.read_bytes()
    pos = 0
    while pos + _OLD_HEADER.size <= len(data):
        total, ts, klen, vlen, _nh = _OLD_HEADER.unpack_from(data, pos)
        if total < _OLD_HEADER.size or pos + total > len(data):
            break  # a torn write: never acknowledged
        body = pos + _OLD_HEADER.size
        key = None if klen < 0 else data[body : body + klen]
        body += max(klen, 0)
        value = data[body : body + vlen]
        headers = data[body + vlen : pos + total] or None
        yield ts, key, value, headers
        pos += total


def _old_segment_files(directory: Path, topic: str, partition: int) -> list[tuple[int, Path]]:
    folder = directory / "topics" / topic / f"{partition:05d}"
    if folder.is_dir():
        return sorted((int(f.stem), f) for f in folder.glob("*.log") if f.stem.isdigit())
    single = folder.with_suffix(".log")  # one file per partition, before segments
    return [(0, single)] if single.exists() else []


def _import_segment_log(directory: Path, store: _Store) -> None:
    """Copies a bus written before SQLite (``topics.json``, ``offsets.json`` and segment files
    under ``topics/``) into the database in one transaction, then moves those files aside to
    ``segment-log.imported/``. A crash before the move is harmless: the copy is done once."""
    meta = directory / "topics.json"
    old = [p for p in (meta, directory / "offsets.json", directory / "topics") if p.exists()]
    if not meta.exists():
        return
    counts = [0, 0, 0]  # records, topics, groups
    if store.meta("segment_log_imported") is None:
        now = int(time.time() * 1000)
        with store.wlock, store.transaction() as conn:
            for topic, entry in json.loads(meta.read_text()).items():
                # {"partitions": n, "config": {...}}, or just n (a bus written before topic configs)
                partitions = entry if isinstance(entry, int) else int(entry["partitions"])
                config = {} if isinstance(entry, int) else dict(entry.get("config", {}))
                conn.execute("INSERT INTO topics VALUES (?, ?, ?)", (topic, partitions, json.dumps(config)))
                counts[1] += 1
                for p in range(partitions):
                    pid = conn.execute("INSERT INTO partitions (topic, partition) VALUES (?, ?)", (topic, p)).lastrowid
                    assert pid is not None
                    files = _old_segment_files(directory, topic, p) or [(0, None)]
                    for base, path in files:
                        segment = _Segment(base, last_ts=now)
                        rows = []
                        for ts, key, value, headers in _old_records(path) if path is not None else ():
                            rows.append(((pid << _SHIFT) | (base + segment.count), ts, key, value, headers))
                            segment.count += 1
                            segment.bytes += len(value) + len(key or b"") + len(headers or b"")
                            segment.last_ts = ts if segment.count == 1 else max(segment.last_ts, ts)
                        conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", rows)
                        conn.execute("INSERT INTO segments VALUES (?, ?, ?, ?, ?)", segment.row(pid))
                        counts[0] += segment.count
            offsets = directory / "offsets.json"
            if offsets.exists():
                for group, entries in json.loads(offsets.read_text()).items():
                    conn.executemany(
                        "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, ?)",
                        [(group, t, int(p), int(o)) for t, p, o in entries],
                    )
                    counts[2] += 1
            conn.execute("INSERT INTO meta VALUES ('segment_log_imported', ?)", (str(now),))
    aside = directory / IMPORTED_DIR
    aside.mkdir(exist_ok=True)
    for path in old:
        os.replace(path, aside / path.name)
    log.info(
        "embedded bus: copied %d records of %d topics and the committed offsets of %d groups from the segment log "
        "into %s; the old files are in %s",
        *counts, directory / DB_NAME, aside,
    )  # fmt: skip
