"""Behaviour suite of the event bus: what a user of :mod:`shoal.common.stores.events` relies on.

Every parametrized test runs on the three kinds of bus from the ``bus_factory`` fixture: the
in-process bus in memory, the in-process bus on files, and a real Apache Kafka broker. The few
tests that only make sense for one implementation build it directly.

The Kafka broker is shared by the whole session, so every test uses its own topic and group
names. Nothing sleeps to synchronize: consumers are polled in loops bounded by a deadline
(a Kafka group takes a few seconds to form or rebalance).
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path

import pytest

from shoal.common.errors import Unavailable
from shoal.common.stores.events import (
    Consumer,
    EmbeddedEventBus,
    Event,
    EventBus,
    KafkaEventBus,
    Published,
    TopicPartition,
    TopicSpec,
    murmur2,
    partition_for,
)
from tests.harness._wait import scaled

PARTITIONS = 3
# a Kafka group forms or rebalances within a few seconds on an idle machine; scaled like every wait of the
# tests (SHOAL_TEST_WAIT_SCALE), since a loaded one (the other test processes) may take much longer
DEADLINE_SECONDS = scaled(60.0)
POLL_SECONDS = 0.2
SETTLE_SECONDS = 0.5  # one last poll of every member, to catch a late duplicate

BusFactory = Callable[[], EventBus]


# --- helpers --------------------------------------------------------------------------------
def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _new_topic(bus: EventBus, partitions: int = PARTITIONS) -> str:
    topic = _name("t")
    bus.ensure_topics([TopicSpec(topic, partitions=partitions)])
    return topic


def _keys_by_partition(per_partition: int, partitions: int = PARTITIONS, prefix: str = "k") -> dict[int, list[bytes]]:
    """``per_partition`` distinct keys for each partition (by Kafka's murmur2 placement)."""
    found: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    i = 0
    while any(len(keys) < per_partition for keys in found.values()):
        key = f"{prefix}-{i}".encode()
        keys = found[partition_for(key, partitions)]
        if len(keys) < per_partition:
            keys.append(key)
        i += 1
    return found


def _publish(bus: EventBus, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> list[Published]:
    """Publishes (key, value) pairs in order and waits for every acknowledgement."""
    futures = [bus.publish(topic, key=k, value=v) for k, v in messages]
    return [f.result(timeout=DEADLINE_SECONDS) for f in futures]


def _spread(per_partition: int, tag: str) -> list[tuple[bytes, bytes]]:
    """``per_partition`` messages for each partition (one key per partition), values unique."""
    keys = _keys_by_partition(1, prefix=f"{tag}-key")
    out = []
    for i in range(per_partition):
        for p in range(PARTITIONS):
            out.append((keys[p][0], f"{tag}-{p}-{i}".encode()))
    return out


def _poll_until(
    consumers: Sequence[Consumer],
    done: Callable[[list[list[Event]]], bool],
    *,
    what: str,
    deadline_seconds: float = DEADLINE_SECONDS,
    received: list[list[Event]] | None = None,
) -> list[list[Event]]:
    """Polls every consumer in turn (on this thread) until ``done(received)``; fails at the deadline."""
    got = received if received is not None else [[] for _ in consumers]
    deadline = time.monotonic() + deadline_seconds
    while not done(got):
        if time.monotonic() > deadline:
            counts = [len(g) for g in got]
            pytest.fail(f"timed out after {deadline_seconds}s waiting for {what}; received {counts}")
        for c, events in zip(consumers, got):
            events.extend(c.poll(POLL_SECONDS))
    return got


def _settle(consumers: Sequence[Consumer], received: list[list[Event]]) -> None:
    """One more poll of every member: anything delivered twice shows up here."""
    for c, events in zip(consumers, received):
        events.extend(c.poll(SETTLE_SECONDS))


def _ids(events: Iterable[Event]) -> list[tuple[int, int]]:
    return [(e.partition, e.offset) for e in events]


def _positions(events: Iterable[Event]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the last event."""
    out: dict[TopicPartition, int] = {}
    for e in events:
        out[e.tp] = max(out.get(e.tp, 0), e.offset + 1)
    return out


def _stable_split(assignments: Sequence[set[TopicPartition]], topic: str) -> bool:
    """Every member has partitions, no partition twice, all partitions covered."""
    every = {TopicPartition(topic, p) for p in range(PARTITIONS)}
    if not all(assignments):
        return False
    union: set[TopicPartition] = set()
    for a in assignments:
        if union & a:
            return False
        union |= a
    return union == every


def _read_all(bus: EventBus, topic: str, count: int) -> list[Event]:
    """Every message of a topic, through a consumer of a fresh group."""
    with bus.consumer(_name("g-read"), [topic]) as c:
        (events,) = _poll_until([c], lambda got: len(got[0]) >= count, what=f"{count} messages of {topic}")
        _settle([c], [events])
    return events


# --- 1. publish, placement, order, round trip ---------------------------------------------------
def test_publish_places_keys_like_kafka_keeps_order_and_round_trips(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    topic = _new_topic(bus)
    # Keys of every length 0..9 (murmur2 has a separate path for 1, 2 and 3 trailing bytes), with
    # bytes >= 0x80 (sign extension in Java), and plain text.
    keys = [bytes((0xFF - i) for i in range(n)) for n in range(10)] + [f"customer-{i}".encode() for i in range(8)]
    messages = []
    for rnd in range(4):
        for i, key in enumerate(keys):
            value = b"" if (rnd == 0 and i == 0) else f"v{rnd}-{i}".encode() + bytes(range(256))[i * 7 : i * 7 + 9]
            headers = [("seq", str(rnd).encode()), ("bin", bytes([0, 0xFF, i])), ("dup", b"a"), ("dup", b"")]
            messages.append((key, value, headers if rnd % 2 == 0 else []))

    futures = [bus.publish(topic, key=k, value=v, headers=h) for k, v, h in messages]
    assert all(isinstance(f, Future) for f in futures)
    published = [f.result(timeout=DEADLINE_SECONDS) for f in futures]

    for (key, _, _), pub in zip(messages, published):
        assert pub.topic == topic
        assert pub.partition == partition_for(key, PARTITIONS), f"key {key!r} placed on the wrong partition"
    assert len({p.partition for p in published}) == PARTITIONS, "the keys should cover every partition"
    # offsets: 0, 1, 2, ... per partition, in publish order
    by_partition: dict[int, list[int]] = defaultdict(list)
    for pub in published:
        by_partition[pub.partition].append(pub.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))

    events = _read_all(bus, topic, len(messages))
    assert len(events) == len(messages), "every message exactly once"
    delivered = {(e.partition, e.offset): e for e in events}
    for (key, value, headers), pub in zip(messages, published):
        ev = delivered[(pub.partition, pub.offset)]
        assert (ev.topic, ev.partition, ev.offset) == (pub.topic, pub.partition, pub.offset)
        assert ev.key == key
        assert ev.value == value
        assert ev.headers == tuple(headers)
        assert ev.partition == partition_for(key, PARTITIONS), "the broker's placement disagrees with partition_for"
    # messages of one key arrive in publish order
    for key in keys:
        sent = [v for k, v, _ in messages if k == key]
        got = [e.value for e in events if e.key == key]
        assert got == sent, f"messages of key {key!r} out of order"


_JAVA_PARTITIONER = """
import org.apache.kafka.common.utils.Utils;

public class JavaPartitioner {
    public static void main(String[] args) {
        for (String hex : args) {
            byte[] key = java.util.HexFormat.of().parseHex(hex.substring(1));
            int hash = Utils.murmur2(key);
            // what the Java producer's default partitioner does with a key (BuiltInPartitioner)
            System.out.println(hash + " " + Utils.toPositive(hash) % 3 + " " + Utils.toPositive(hash) % 7
                + " " + Utils.toPositive(hash) % 50);
        }
    }
}
"""


@pytest.mark.integration
def test_partition_for_agrees_with_the_java_producer(tmp_path: Path) -> None:
    """A customer's Java producer (kafka-clients, default partitioner) puts keys where we do."""
    from tests.harness.kafka_broker import default_libs_dir, find_java

    libs = default_libs_dir(Path(__file__).resolve().parents[2])
    assert sorted(libs.glob("kafka-clients-*.jar")), "kafka-clients jar missing: run scripts/fetch-kafka.sh"
    source = tmp_path / "JavaPartitioner.java"
    source.write_text(_JAVA_PARTITIONER)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256)), "clé-ü".encode(), b"\xff\xfe\x80\x00\x7f"]
    keys += [f"customer-{i}".encode() for i in range(40)]
    run = subprocess.run(
        [find_java(), "-cp", str(libs.resolve() / "*"), str(source), *("x" + k.hex() for k in keys)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.split("\n")
    for key, line in zip(keys, lines):
        java_hash, p3, p7, p50 = (int(x) for x in line.split())
        assert murmur2(key) == java_hash & 0xFFFFFFFF, f"murmur2({key!r})"
        assert [partition_for(key, n) for n in (3, 7, 50)] == [p3, p7, p50], f"partition of {key!r}"
    assert len([line for line in lines if line]) == len(keys)


# --- 2. a group splits the partitions and reads everything once -------------------------------------
def test_group_members_split_partitions_and_read_every_message_once(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    topic = _new_topic(bus)
    group = _name("g")
    with bus.consumer(group, [topic]) as c1, bus.consumer(group, [topic]) as c2:
        members = [c1, c2]
        received = _poll_until(
            members,
            lambda _: _stable_split([c.assignment() for c in members], topic),
            what="both members to get partitions",
        )
        assert received == [[], []], "nothing was published yet"
        assignments = [c.assignment() for c in members]

        messages = _spread(8, "split")
        _publish(bus, topic, messages)
        _poll_until(members, lambda got: sum(map(len, got)) >= len(messages), what="every message", received=received)
        _settle(members, received)

        assert [c.assignment() for c in members] == assignments, "no rebalance expected"
        every = [e for events in received for e in events]
        assert Counter(_ids(every)).most_common(1)[0][1] == 1, "a message was delivered twice"
        assert sorted(e.value for e in every) == sorted(v for _, v in messages), "union must be all messages"
        for member_events, assigned in zip(received, assignments):
            assert member_events, "each member reads its share"
            assert {e.tp for e in member_events} <= assigned, "a member read a partition it does not own"


# --- 3. commit, resume, at least once ---------------------------------------------------------
def test_new_member_resumes_after_committed_offset_and_gets_uncommitted_again(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    topic = _new_topic(bus)
    group = _name("g")
    messages = _spread(4, "resume")
    _publish(bus, topic, messages)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    with bus.consumer(group, [topic]) as c1:
        (first,) = _poll_until([c1], lambda got: len(got[0]) >= len(messages), what="every message")
        assert sorted(_ids(first)) == sorted((p, o) for p in range(PARTITIONS) for o in range(4))
        # processed the first two of each partition; the other two were polled but not committed
        c1.commit({tp: 2 for tp in tps})
    # c1 left the group without committing anything else

    with bus.consumer(group, [topic]) as c2:
        assert [c2.committed(tp) for tp in tps] == [2, 2, 2]
        (second,) = _poll_until([c2], lambda got: len(got[0]) >= 2 * PARTITIONS, what="the uncommitted messages")
        _settle([c2], [second])
    expected = sorted((p, o) for p in range(PARTITIONS) for o in (2, 3))
    assert sorted(_ids(second)) == expected, "resume after the committed offset, and only there"
    values = {(e.partition, e.offset): e.value for e in first}
    assert all(e.value == values[(e.partition, e.offset)] for e in second)

    # the same again for a member that crashed after polling: nothing more was committed
    with bus.consumer(group, [topic]) as c3:
        (third,) = _poll_until([c3], lambda got: len(got[0]) >= 2 * PARTITIONS, what="redelivery")
        _settle([c3], [third])
    assert sorted(_ids(third)) == expected


# --- 4. on_revoke: own thread, before the partitions move ------------------------------------------
class _Member(threading.Thread):
    """A consumer driven by its own thread: reads ``first_batch`` messages, waits for ``resume``,
    then polls until ``stop``."""

    def __init__(self, first_batch: int) -> None:
        super().__init__(daemon=True, name="member-1")
        self.consumer: Consumer | None = None
        self.first_batch = first_batch
        self.events: list[Event] = []
        self.lock = threading.Lock()
        self.in_poll = False
        self.assigned: set[TopicPartition] = set()
        self.initial_assignment: set[TopicPartition] = set()
        self.phase1 = threading.Event()
        self.resume = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def _poll(self) -> None:
        assert self.consumer is not None
        self.in_poll = True
        try:
            events = self.consumer.poll(POLL_SECONDS)
        finally:
            self.in_poll = False
        with self.lock:
            self.events.extend(events)
            self.assigned = self.consumer.assignment()

    def run(self) -> None:
        try:
            deadline = time.monotonic() + DEADLINE_SECONDS
            while len(self.events) < self.first_batch and time.monotonic() < deadline:
                self._poll()
            self.initial_assignment = set(self.assigned)
            self.phase1.set()
            if not self.resume.wait(DEADLINE_SECONDS):
                return
            while not self.stop.is_set():
                self._poll()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.phase1.set()


def test_on_revoke_runs_on_the_members_thread_and_its_commits_are_honoured(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    topic = _new_topic(bus)
    group = _name("g")
    first = _spread(5, "before")
    _publish(bus, topic, first)
    first_ids = {(p, o) for p in range(PARTITIONS) for o in range(5)}

    member = _Member(first_batch=len(first))
    revokes: list[tuple[int, bool, set[TopicPartition]]] = []

    def on_revoke(tps: set[TopicPartition]) -> None:
        revokes.append((threading.get_ident(), member.in_poll, set(tps)))
        with member.lock:
            done = _positions(member.events)
        assert member.consumer is not None
        member.consumer.commit({tp: done[tp] for tp in tps if tp in done})

    c2: Consumer | None = None
    member.consumer = bus.consumer(group, [topic], on_revoke=on_revoke)
    try:
        member.start()
        assert member.phase1.wait(DEADLINE_SECONDS + 5)
        assert member.error is None, member.error
        assert sorted(_ids(member.events)) == sorted(first_ids)
        assert member.initial_assignment == {TopicPartition(topic, p) for p in range(PARTITIONS)}
        # alone, a member is revoked only by a rebalance Kafka starts on its own (a change of the topic's
        # metadata, which a loaded machine may see while the topic is new); the second member's must follow
        alone = len(revokes)

        # the second member joins and polls while the first one is busy (not polling): the
        # partitions must not move before the first member has run on_revoke
        c2 = bus.consumer(group, [topic])
        seen2: list[Event] = []
        busy_until = time.monotonic() + 1.0
        while time.monotonic() < busy_until:
            seen2.extend(c2.poll(POLL_SECONDS))
        assert not (set(_ids(seen2)) & first_ids), (
            "the new member read messages the first one had not released (on_revoke not run yet)"
        )

        member.resume.set()
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            assert member.error is None, member.error
            with member.lock:
                c1_assigned = set(member.assigned)
            if len(revokes) > alone and _stable_split([c1_assigned, c2.assignment()], topic):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"no rebalance in {DEADLINE_SECONDS}s: {c1_assigned}, {c2.assignment()}, {revokes}")
            seen2.extend(c2.poll(POLL_SECONDS))

        # the callback ran on the first member's own thread, inside its poll
        assert {ident for ident, _, _ in revokes} == {member.ident}
        assert all(in_poll for _, in_poll, _ in revokes)
        revoked = set().union(*(tps for _, _, tps in revokes))
        lost = member.initial_assignment - c1_assigned
        assert lost, "the first member should have given partitions away"
        assert lost <= revoked, "on_revoke must name every partition the member loses"
        assert revoked <= member.initial_assignment
        for tp in lost:
            assert c2.committed(tp) == 5, "the offsets committed in on_revoke are the group's"

        # the new member continues after what the first one committed, and both keep working
        second = _spread(3, "after")
        _publish(bus, topic, second)
        c2_events = seen2
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            with member.lock:
                c1_events = list(member.events[len(first) :])
            if len(c1_events) + len(c2_events) >= len(second):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the second batch was not delivered: {len(c1_events)} + {len(c2_events)}")
            c2_events.extend(c2.poll(POLL_SECONDS))
        c2_events.extend(c2.poll(SETTLE_SECONDS))
        member.stop.set()
        member.join(DEADLINE_SECONDS)
        assert member.error is None, member.error
        c1_events = member.events[len(first) :]

        assert not (set(_ids(c2_events)) & first_ids), "the new member got messages committed in on_revoke"
        assert not (set(_ids(c1_events)) & first_ids), "the first member got its committed messages again"
        assert sorted(e.value for e in c1_events + c2_events) == sorted(v for _, v in second)
        assert {e.tp for e in c2_events} <= c2.assignment()
        assert {e.tp for e in c1_events} <= c1_assigned
    finally:
        member.stop.set()
        member.resume.set()
        if member.is_alive():
            member.join(DEADLINE_SECONDS)
        if not member.is_alive() and member.consumer is not None:
            member.consumer.close()
        if c2 is not None:
            c2.close()


# --- 5. commit(None) and committed() ---------------------------------------------------------
def test_commit_none_commits_everything_polled_so_far(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    topic = _new_topic(bus)
    group = _name("g")
    messages = _spread(3, "commit")
    _publish(bus, topic, messages)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    with bus.consumer(group, [topic]) as c1:
        assert [c1.committed(tp) for tp in tps] == [None, None, None], "nothing committed yet"
        # two messages first: commit(None) commits what poll returned, not what it may have fetched
        part: list[Event] = []
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not part:
            assert time.monotonic() < deadline, "no message polled"
            part = c1.poll(POLL_SECONDS, max_records=2)
        assert 0 < len(part) <= 2
        c1.commit(None)
        polled = _positions(part)
        for tp in tps:
            # a partition nothing was read from is committed at 0 or not at all: same resume point
            assert (c1.committed(tp) or 0) == polled.get(tp, 0)

        # then the rest
        rest = _poll_until([c1], lambda got: len(part) + len(got[0]) >= len(messages), what="the rest")[0]
        c1.commit()
        assert sorted(_ids(part + rest)) == sorted((p, o) for p in range(PARTITIONS) for o in range(3))
        assert [c1.committed(tp) for tp in tps] == [3, 3, 3]

    with bus.consumer(group, [topic]) as c2:
        assert [c2.committed(tp) for tp in tps] == [3, 3, 3], "another member sees the group's offsets"
        extra = _publish(bus, topic, [(messages[0][0], b"one more")])[0]
        (later,) = _poll_until([c2], lambda got: len(got[0]) >= 1, what="the new message")
        _settle([c2], [later])
    assert [(e.partition, e.offset, e.value) for e in later] == [(extra.partition, 3, b"one more")]


# --- 6. end offsets ------------------------------------------------------------------------
def test_end_offsets_count_the_published_messages(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    topic = _new_topic(bus)
    assert bus.end_offsets(topic) == {TopicPartition(topic, p): 0 for p in range(PARTITIONS)}
    keys = _keys_by_partition(1, prefix="end")
    counts = {0: 4, 1: 1, 2: 0}
    _publish(bus, topic, [(keys[p][0], f"{p}-{i}".encode()) for p, n in counts.items() for i in range(n)])
    bus.flush()
    assert bus.end_offsets(topic) == {TopicPartition(topic, p): n for p, n in counts.items()}
    _publish(bus, topic, [(keys[2][0], b"x"), (keys[1][0], b"y")])
    assert bus.end_offsets(topic) == {
        TopicPartition(topic, 0): 4,
        TopicPartition(topic, 1): 2,
        TopicPartition(topic, 2): 1,
    }


# --- 7. ensure_topics is idempotent ---------------------------------------------------------
def test_ensure_topics_twice_keeps_partitions_and_data(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    topic = _new_topic(bus)
    messages = _spread(2, "keep")
    _publish(bus, topic, messages)
    other = _name("t")
    # again, with a different partition count, next to a new topic
    bus.ensure_topics([TopicSpec(topic, partitions=PARTITIONS), TopicSpec(other, partitions=2)])
    bus.ensure_topics([TopicSpec(topic, partitions=5), TopicSpec(other, partitions=2)])
    assert bus.end_offsets(topic) == {TopicPartition(topic, p): 2 for p in range(PARTITIONS)}
    assert bus.end_offsets(other) == {TopicPartition(other, p): 0 for p in range(2)}
    events = _read_all(bus, topic, len(messages))
    assert sorted(e.value for e in events) == sorted(v for _, v in messages)
    # keys still land where they did
    pub = _publish(bus, topic, [messages[0]])[0]
    assert pub.partition == partition_for(messages[0][0], PARTITIONS)
    assert pub.offset == 2


# --- 9. flush ------------------------------------------------------------------------------
def test_flush_makes_published_messages_durable(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    topic = _new_topic(bus)
    messages = _spread(3, "flush")
    futures = [bus.publish(topic, key=k, value=v) for k, v in messages]
    bus.flush()
    assert all(f.done() for f in futures), "flush waits for every outstanding publish"
    assert all(f.exception() is None for f in futures)
    # another client of the same bus (for the file bus: the bus after a crash, without close)
    again = bus_factory()
    assert again.end_offsets(topic) == {TopicPartition(topic, p): 3 for p in range(PARTITIONS)}
    events = _read_all(again, topic, len(messages))
    assert sorted(e.value for e in events) == sorted(v for _, v in messages)
    bus.flush()  # nothing outstanding: returns at once


def test_ping_answers_when_the_bus_is_up(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    bus.ping()


# --- 8. the file-backed embedded bus across restarts --------------------------------------------
def test_embedded_file_bus_keeps_topics_messages_and_offsets_across_restart(tmp_path: Path) -> None:
    bus = EmbeddedEventBus(tmp_path)
    topic = _new_topic(bus)
    messages = _spread(4, "restart")
    headers = [("h", b"\x00\x01")]
    published = [bus.publish(topic, key=k, value=v, headers=headers).result(5) for k, v in messages]
    group = _name("g")
    with bus.consumer(group, [topic]) as c:
        (got,) = _poll_until([c], lambda got: len(got[0]) >= len(messages), what="every message")
        assert sorted(e.value for e in got) == sorted(v for _, v in messages)
        c.commit({TopicPartition(topic, p): 3 for p in range(PARTITIONS)})
    bus.close()

    bus = EmbeddedEventBus(tmp_path)
    try:
        assert bus.end_offsets(topic) == {TopicPartition(topic, p): 4 for p in range(PARTITIONS)}
        with bus.consumer(group, [topic]) as c:
            assert c.committed(TopicPartition(topic, 1)) == 3
            (rest,) = _poll_until([c], lambda got: len(got[0]) >= PARTITIONS, what="the uncommitted messages")
            _settle([c], [rest])
        assert sorted(_ids(rest)) == [(p, 3) for p in range(PARTITIONS)]
        events = _read_all(bus, topic, len(messages))
        by_id = {(e.partition, e.offset): e for e in events}
        for (k, v), pub in zip(messages, published):
            e = by_id[(pub.partition, pub.offset)]
            assert (e.key, e.value, e.headers) == (k, v, tuple(headers))
        # the topic keeps its partition count: a new message lands where it did
        again = bus.publish(topic, key=messages[0][0], value=b"later").result(5)
        assert (again.partition, again.offset) == (published[0].partition, 4)
    finally:
        bus.close()


def _crash_after_publishing(directory: Path, topic: str, count: int, group: str) -> list[tuple[int, int]]:
    """Runs a process that publishes ``count`` messages to ``topic`` and commits offset 1 of
    every partition for ``group``, printing each acknowledgement, then kills itself (SIGKILL: no
    close, no flush, no checkpoint). Returns the acknowledged (partition, offset) pairs."""
    code = f"""
import os, signal, sys
from pathlib import Path
from shoal.common.stores.events import EmbeddedEventBus, TopicPartition
bus = EmbeddedEventBus(Path({str(directory)!r}))
for i in range({count}):
    pub = bus.publish({topic!r}, key=f"crash-{{i}}".encode(), value=f"crash-value-{{i}}".encode()).result(30)
    print(pub.partition, pub.offset, flush=True)
with bus.consumer({group!r}, [{topic!r}]) as c:
    c.commit({{TopicPartition({topic!r}, p): 1 for p in range({PARTITIONS})}})
print("committed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    lines = done.stdout.split()
    assert lines[-1] == "committed", done.stdout
    return [(int(p), int(o)) for p, o in zip(lines[:-1:2], lines[1:-1:2])]


def test_embedded_file_bus_keeps_every_acknowledged_message_and_commit_across_a_crash(tmp_path: Path) -> None:
    bus = EmbeddedEventBus(tmp_path)
    topic = _new_topic(bus)
    bus.close()
    group = _name("g")
    acked = _crash_after_publishing(tmp_path, topic, 30, group)
    assert len(acked) == 30
    bus = EmbeddedEventBus(tmp_path)
    try:
        ends = bus.end_offsets(topic)
        assert sum(ends.values()) == 30, "every acknowledged message is there after the crash"
        events = _read_all(bus, topic, 30)
        assert sorted(_ids(events)) == sorted(acked)
        assert sorted(e.value for e in events) == sorted(f"crash-value-{i}".encode() for i in range(30))
        with bus.consumer(group, [topic]) as c:
            assert all(c.committed(TopicPartition(topic, p)) == 1 for p in range(PARTITIONS))
            (rest,) = _poll_until([c], lambda got: len(got[0]) >= 30 - PARTITIONS, what="the uncommitted messages")
            _settle([c], [rest])
        assert sorted(_ids(rest)) == sorted(i for i in acked if i[1] >= 1), "resumes at the committed offsets"
        # a publish after the crash continues the partition's offsets
        pub = bus.publish(topic, key=b"crash-0", value=b"after").result(5)
        assert pub.offset == ends[TopicPartition(topic, pub.partition)]
    finally:
        bus.close()


def test_embedded_file_bus_drops_a_torn_last_write_whole_on_reopen(tmp_path: Path) -> None:
    """A crash in the middle of writing the journal: the transaction cut short was never
    acknowledged and goes whole; everything before it stays and new publishes follow it."""
    bus = EmbeddedEventBus(tmp_path)
    topic = _new_topic(bus)
    bus.close()
    acked = _crash_after_publishing(tmp_path, topic, 6, _name("g"))
    wal = tmp_path / "events.sqlite3-wal"
    intact = wal.read_bytes()
    assert intact, "the crash left the journal to recover from"
    with open(wal, "ab") as fh:  # half of a frame of a next transaction: a write stopped halfway
        fh.write(intact[32 : 32 + 24 + 2000])
    bus = EmbeddedEventBus(tmp_path)
    try:
        events = _read_all(bus, topic, 6)
        assert sorted(_ids(events)) == sorted(acked)
        key = _keys_by_partition(1, prefix="torn")[0][0]
        end = bus.end_offsets(topic)[TopicPartition(topic, 0)]
        pub = bus.publish(topic, key=key, value=b"after the tear").result(5)
        assert (pub.partition, pub.offset) == (0, end)
    finally:
        bus.close()
    bus = EmbeddedEventBus(tmp_path)
    try:
        events = _read_all(bus, topic, 7)
        assert [e.value for e in events if e.partition == 0][-1] == b"after the tear"
    finally:
        bus.close()


def test_embedded_file_bus_acknowledges_a_publish_only_once_it_is_committed_and_synced(tmp_path: Path) -> None:
    """The promise of ``publish``: the future resolves when the message is durable. SQLite syncs
    its journal at every commit with synchronous=FULL in WAL mode; the record is committed (seen
    by another connection to the database) when its future resolves."""
    bus = EmbeddedEventBus(tmp_path)
    try:
        topic = _new_topic(bus)
        writer = bus._store.writer
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert writer.execute("PRAGMA synchronous").fetchone()[0] == 2, "FULL: the journal is synced at each commit"
        key = _keys_by_partition(1, prefix="sync")[1][0]
        for i in range(3):
            pub = bus.publish(topic, key=key, value=f"durable-{i}".encode()).result(5)
            other = sqlite3.connect(tmp_path / "events.sqlite3")
            try:
                row = other.execute(
                    "SELECT r.value FROM records r JOIN partitions p ON r.id = (p.id << 40) | ? "
                    "WHERE p.topic = ? AND p.partition = ?",
                    (pub.offset, topic, pub.partition),
                ).fetchone()
            finally:
                other.close()
            assert row == (f"durable-{i}".encode(),), f"publish #{i} was acknowledged before its commit"
    finally:
        bus.close()


def test_embedded_file_bus_journal_stays_bounded_while_publishes_never_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal is copied into the database off the write path; under publishes that leave the
    writer no pause (where the journal could start over by itself) it still starts over once it
    holds the limit, so a long upload does not keep its whole size twice on disk. Scaled down:
    a 4 MiB limit, 256 KiB transactions, 48 MiB published."""
    from shoal.common.stores.events import embedded

    monkeypatch.setattr(embedded, "_CHECKPOINT_BYTES", 512 * 1024)
    monkeypatch.setattr(embedded, "_JOURNAL_LIMIT_BYTES", 4 * 1024 * 1024)
    monkeypatch.setattr(embedded, "_BATCH_BYTES", 256 * 1024)
    values = [i.to_bytes(4, "big") * (16 * 1024) for i in range(768)]  # 64 KiB each
    bus = EmbeddedEventBus(tmp_path)
    try:
        topic = _new_topic(bus, partitions=1)
        futures = [bus.publish(topic, key=b"k", value=v) for v in values]
        journal = tmp_path / "events.sqlite3-wal"
        largest = 0
        for f in futures:
            f.result(DEADLINE_SECONDS)
            largest = max(largest, journal.stat().st_size)
        assert bus._store.checkpoints["restart"] >= 1, bus._store.checkpoints
        assert largest < 16 * 1024 * 1024, f"the journal grew to {largest} bytes for a 4 MiB limit"
    finally:
        bus.close()
    bus = EmbeddedEventBus(tmp_path)
    try:
        assert [e.value for e in _read_all(bus, topic, len(values))] == values
    finally:
        bus.close()


def test_embedded_bus_takes_partitions_from_a_member_that_stopped_polling(tmp_path: Path) -> None:
    """Partitions wait for their previous member's on_revoke, but not forever: a member that does
    not poll within max_poll_interval_seconds is removed from the group (Kafka's max.poll.interval.ms)."""
    bus = EmbeddedEventBus(tmp_path, max_poll_interval_seconds=1.0)
    try:
        topic = _new_topic(bus)
        messages = _spread(2, "stuck")
        _publish(bus, topic, messages)
        group = _name("g")
        stuck = bus.consumer(group, [topic])
        _poll_until([stuck], lambda got: len(got[0]) >= len(messages), what="every message")
        stuck.commit({TopicPartition(topic, p): 1 for p in range(PARTITIONS)})
        # `stuck` hangs from here on; a new member must get every partition after the interval
        with bus.consumer(group, [topic]) as fresh:
            started = time.monotonic()
            (got,) = _poll_until([fresh], lambda got: len(got[0]) >= PARTITIONS, what="the stuck member's partitions")
            _settle([fresh], [got])
            assert time.monotonic() - started >= 0.5, "partitions moved while their member was still in time"
            assert sorted(_ids(got)) == [(p, 1) for p in range(PARTITIONS)], "resumes at the committed offsets"
            assert fresh.assignment() == {TopicPartition(topic, p) for p in range(PARTITIONS)}
            # the stuck member comes back: it rejoins as a new member and the group splits again
            deadline = time.monotonic() + DEADLINE_SECONDS
            while not _stable_split([stuck.assignment(), fresh.assignment()], topic):
                assert time.monotonic() < deadline, "the returning member never got partitions"
                stuck.poll(POLL_SECONDS)
                fresh.poll(POLL_SECONDS)
        stuck.close()
    finally:
        bus.close()


# --- 10. ping on a dead Kafka ---------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nobody listens there


@pytest.mark.timeout(60)
def test_kafka_ping_raises_unavailable_quickly_when_nobody_listens() -> None:
    def kafka_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("kafka-")}

    before = kafka_threads()
    bus = KafkaEventBus(f"127.0.0.1:{_closed_port()}", request_timeout_seconds=3)
    try:
        for _ in range(2):  # a health check asks again and again
            started = time.monotonic()
            with pytest.raises(Unavailable):
                bus.ping()
            elapsed = time.monotonic() - started
            assert elapsed < 10, f"ping took {elapsed:.1f}s with a 3s request timeout"
    finally:
        bus.close()
    assert kafka_threads() <= before, "a failed ping left a Kafka client running (reconnecting forever)"


@pytest.mark.integration
def test_a_kafka_bus_with_a_long_store_timeout_publishes_and_reads(kafka_broker) -> None:  # type: ignore[no-untyped-def]
    """An operator who raises SHOAL_STORE_TIMEOUT_SECONDS to two minutes or more (a slow or distant
    cluster) still gets a working producer: Kafka refuses a delivery bound shorter than one request."""
    bus = KafkaEventBus(kafka_broker.bootstrap_servers, request_timeout_seconds=180)
    try:
        topic = _new_topic(bus, partitions=1)
        sent = _publish(bus, topic, [(b"k", b"slow cluster")])
        assert [(e.key, e.value) for e in _read_all(bus, topic, 1)] == [(b"k", b"slow cluster")]
        assert len(sent) == 1
    finally:
        bus.close()


@pytest.mark.integration
def test_a_kafka_consumer_whose_group_join_stalls_gives_up_to_join_anew(kafka_broker) -> None:  # type: ignore[no-untyped-def]
    """A member that cannot complete its join (here: the broker frozen with SIGSTOP) raises Unavailable
    after the stall limit, so that its loop closes it and joins with a new consumer, instead of
    holding no partition until the process restarts."""
    import signal

    bus = KafkaEventBus(kafka_broker.bootstrap_servers, request_timeout_seconds=10, rebalance_stall_seconds=3)
    topic = _new_topic(bus, partitions=1)
    consumer = bus.consumer(_name("g"), [topic])
    kafka_broker._signal_group(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="has not completed in 3s"):
            while time.monotonic() - started < 120:
                consumer.poll(0.2)
    finally:
        kafka_broker._signal_group(signal.SIGCONT)
        consumer.close()
        bus.close()


@pytest.mark.integration
def test_a_kafka_rebalance_dropped_after_on_revoke_still_leaves_the_consumer_reading(kafka_broker) -> None:  # type: ignore[no-untyped-def]
    """kafka-python starts a rebalance when the metadata of a subscribed topic changes (here: an answer
    without the topic's partitions, as during a broker's restart) and drops it when the next answer
    restores them. The consumer hands the revocation to the polling thread by stopping the first
    attempt before its JoinGroup; if kafka-python then dropped the rebalance, the partitions stayed
    marked as being revoked and the consumer fetched nothing more while its membership looked
    stable. The rebalance it announced to on_revoke must happen."""
    bus = KafkaEventBus(kafka_broker.bootstrap_servers, request_timeout_seconds=30)
    try:
        topic = _new_topic(bus, partitions=1)
        revoked: list[set[TopicPartition]] = []
        armed: dict[str, Callable[[], None]] = {}  # set once the metadata is changed below

        def on_revoke(tps: set[TopicPartition]) -> None:
            # a rebalance while the group first forms (a loaded machine may see one) is not the one
            # this test makes
            if "restore" in armed:
                revoked.append(tps)
                armed.pop("restore")()

        consumer = bus.consumer(_name("g"), [topic], on_revoke=on_revoke)
        _publish(bus, topic, [(b"k", b"one")])
        _poll_until([consumer], lambda got: len(got[0]) >= 1, what="the first message")
        consumer.commit()
        coordinator = consumer._consumer._coordinator  # type: ignore[attr-defined]
        before = dict(coordinator._metadata_snapshot)

        def restore() -> None:  # the next metadata answer has the partitions again
            coordinator._metadata_snapshot = before

        armed["restore"] = restore
        deadline = time.monotonic() + DEADLINE_SECONDS
        while "restore" in armed:  # until the consumer has seen the change (a metadata refresh may undo it first)
            assert time.monotonic() < deadline, "the changed metadata never started a rebalance"
            coordinator._metadata_snapshot = {topic: set()}
            assert consumer.poll(POLL_SECONDS) == []
        _publish(bus, topic, [(b"k", b"two")])
        (more,) = _poll_until([consumer], lambda got: len(got[0]) >= 1, what="the message after the rebalance")
        assert revoked == [{TopicPartition(topic, 0)}]
        assert [e.value for e in more] == [b"two"]
        consumer.close()
    finally:
        bus.close()


def test_a_partition_given_back_after_on_revoke_resumes_at_its_committed_offset(bus_factory: BusFactory) -> None:
    """A member whose on_revoke did not commit (its work failed) and that keeps a partition through
    the rebalance reads its uncommitted messages again, as the member a partition moves to does:
    kafka-python keeps the position of a partition a rebalance gives back, so without a seek they
    were skipped. Both members subscribe to the topic, as a service's replicas do. (The embedded
    bus revokes only partitions that move, so the kept one has nothing to redeliver there.)"""
    bus = bus_factory()
    topic = _new_topic(bus, partitions=2)
    keys = _keys_by_partition(1, partitions=2)
    group = _name("g")
    revoked: list[set[TopicPartition]] = []
    first = bus.consumer(group, [topic], on_revoke=revoked.append)  # commits nothing
    try:
        _publish(bus, topic, [(keys[p][0], f"{p}-{i}".encode()) for p in (0, 1) for i in range(2)])
        _poll_until([first], lambda got: len(got[0]) >= 4, what="the messages")
        first.commit({TopicPartition(topic, 0): 1, TopicPartition(topic, 1): 1})
        with bus.consumer(group, [topic]) as second:  # joins: a rebalance that leaves one partition to each
            got: list[list[Event]] = [[], []]
            deadline = time.monotonic() + DEADLINE_SECONDS
            while len(first.assignment()) != 1 or len(second.assignment()) != 1:
                assert time.monotonic() < deadline, "the group never settled"
                got[0].extend(first.poll(POLL_SECONDS))
                got[1].extend(second.poll(POLL_SECONDS))
            (kept,), (moved,) = first.assignment(), second.assignment()
            given_back = any(kept in r for r in revoked)

            def redelivered(received: list[list[Event]]) -> bool:
                to_first = any(e.partition == kept.partition for e in received[0])
                return any(e.partition == moved.partition for e in received[1]) and (to_first or not given_back)

            # both keep polling, as members of a group do: a rebalance completes once every member rejoined
            _poll_until([first, second], redelivered, what="the uncommitted messages again", received=got)
            _settle([first, second], got)
        # at the committed offset: the uncommitted message again, never the committed one (on a loaded
        # machine the group may rebalance more than once, each time resuming at the commit)
        every = {(e.partition, e.offset, e.value) for member in got for e in member}
        assert every <= {(p, 1, f"{p}-1".encode()) for p in (0, 1)}, "resumes at the committed offset"
        kept_again = [e for e in got[0] if e.partition == kept.partition]
        if given_back:
            assert kept_again, "the partition given back is read again from its committed offset"
        else:
            assert kept_again == [], "a partition that was never revoked keeps its position"
    finally:
        first.close()


def test_embedded_ping_raises_unavailable_after_close(tmp_path: Path) -> None:
    bus = EmbeddedEventBus(tmp_path)
    bus.ping()
    bus.close()
    with pytest.raises(Unavailable):
        bus.ping()


# --- 9. retention of the embedded bus ---------------------------------------------------------
def _on_disk(directory: Path, sql: str, topic: str, partition: int = 0) -> list[tuple[int, ...]]:
    """Rows of the bus's database for one partition, read through a connection of its own."""
    conn = sqlite3.connect(directory / "events.sqlite3")
    try:
        (pid,) = conn.execute(
            "SELECT id FROM partitions WHERE topic = ? AND partition = ?", (topic, partition)
        ).fetchone()
        return conn.execute(sql, {"lo": pid << 40, "hi": (pid + 1) << 40, "pid": pid}).fetchall()
    finally:
        conn.close()


def _segments(directory: Path, topic: str, partition: int = 0) -> list[int]:
    """The base offsets of a partition's segments, as stored."""
    rows = _on_disk(directory, "SELECT base FROM segments WHERE pid = :pid ORDER BY base", topic, partition)
    return [r[0] for r in rows]


def _stored_offsets(directory: Path, topic: str, partition: int = 0) -> list[int]:
    rows = _on_disk(
        directory, "SELECT id - :lo FROM records WHERE id >= :lo AND id < :hi ORDER BY id", topic, partition
    )
    return [r[0] for r in rows]


def test_embedded_bus_rolls_segments_and_deletes_expired_ones_like_kafka(tmp_path: Path) -> None:
    bus = EmbeddedEventBus(tmp_path)
    topic = _name("t")
    bus.ensure_topics([TopicSpec(topic, partitions=1, config={"retention.ms": "3600000", "segment.bytes": "1000"})])
    values = [f"{i:04d}".encode() * 50 for i in range(12)]  # 200 bytes each (and a 1-byte key): 5 per segment
    for v in values:
        bus.publish(topic, key=b"k", value=v).result(5)
    assert _segments(tmp_path, topic) == [0, 5, 10]
    group = _name("g")
    with bus.consumer(group, [topic]) as c:
        (got,) = _poll_until([c], lambda got: len(got[0]) >= 3, what="the first records")
        assert [e.value for e in got[:3]] == values[:3]
        c.commit({TopicPartition(topic, 0): 3})
    # an hour later the two closed segments have expired; the one being written stays
    assert bus.apply_retention(topic, now_ms=int(time.time() * 1000) + 3_600_001) == 10
    assert _segments(tmp_path, topic) == [10]
    assert _stored_offsets(tmp_path, topic) == [10, 11], "the expired records are deleted from disk"
    assert bus.end_offsets(topic) == {TopicPartition(topic, 0): 12}  # offsets keep counting
    # the group's committed offset (3) was deleted: it resumes at the oldest record still held
    with bus.consumer(group, [topic]) as c:
        (rest,) = _poll_until([c], lambda got: len(got[0]) >= 2, what="the records still held")
    assert [(e.offset, e.value) for e in rest] == [(10, values[10]), (11, values[11])]
    bus.close()

    bus = EmbeddedEventBus(tmp_path)  # a restart keeps the offsets of what is left
    try:
        pub = bus.publish(topic, key=b"k", value=b"after").result(5)
        assert pub.offset == 12 and bus._topics[topic][0].start == 10
    finally:
        bus.close()


def test_embedded_bus_retention_bytes_and_a_new_retention_for_an_existing_topic(tmp_path: Path) -> None:
    bus = EmbeddedEventBus(tmp_path)
    try:
        topic = _name("t")
        bus.ensure_topics([TopicSpec(topic, partitions=1, config={"segment.bytes": "1000"})])
        for i in range(20):
            bus.publish(topic, key=b"k", value=bytes([i]) * 200).result(5)
        assert len(_segments(tmp_path, topic)) == 4  # nothing expires within the default week
        # retention.bytes: keep at most ~2 segments' worth; applied when the config changes
        bus.ensure_topics([TopicSpec(topic, partitions=1, config={"segment.bytes": "1000", "retention.bytes": "2000"})])
        assert _segments(tmp_path, topic) == [10, 15]
        assert _stored_offsets(tmp_path, topic) == list(range(10, 20))
        assert bus._topics[topic][0].start == 10
    finally:
        bus.close()


# --- 10. a data directory written by the segment log before SQLite -------------------------------
def _write_segment_log(
    directory: Path,
    topic: str,
    records: dict[int, list[list[tuple[int, bytes, bytes]]]],
    offsets: dict[str, list[list[object]]],
    *,
    one_file: bool = False,
) -> None:
    """The on-disk layout of the embedded bus before SQLite: ``topics.json``, ``offsets.json`` and,
    per partition, segment files named by their base offset (or, older still, one file per
    partition), each a series of records: a little-endian header (total length, timestamp, key
    length, value length, header count), the key, the value, then each header as (name length,
    value length, name, value). ``records``: per partition, the segments' (timestamp, key, value)."""
    for partition, segments in records.items():
        folder = directory / "topics" / topic / f"{partition:05d}"
        folder.mkdir(parents=True)
        base = 0
        for segment in segments:
            body = b""
            for ts, key, value in segment:
                header = struct.pack("<II", 1, 2) + b"h" + b"hv"
                rest = key + value + header
                body += struct.pack("<IqiiI", 24 + len(rest), ts, len(key), len(value), 1) + rest
            (folder / f"{base:020d}.log").write_bytes(body)
            base += len(segment)
        if one_file:
            (folder / f"{0:020d}.log").rename(folder.with_suffix(".log"))
            folder.rmdir()
    entry: object = len(records) if one_file else {"partitions": len(records), "config": {"retention.ms": "-1"}}
    (directory / "topics.json").write_text(json.dumps({topic: entry}))
    (directory / "offsets.json").write_text(json.dumps(offsets))


@pytest.mark.parametrize("layout", ["segments", "one-file-per-partition"])
def test_embedded_bus_copies_a_segment_log_data_directory_once_without_losing_unconsumed_events(
    tmp_path: Path, layout: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = _name("t")
    ts = int(time.time() * 1000) - 1000
    one_file = layout == "one-file-per-partition"
    # partition 0 in two segments, partition 1 in one, partition 2 empty; the group read 0 up to 4
    p0 = [[(ts, b"a", f"p0-{i}".encode()) for i in range(3)], [(ts, b"a", f"p0-{i}".encode()) for i in range(3, 5)]]
    p1 = [[(ts, b"b", f"p1-{i}".encode()) for i in range(2)]]
    records = {0: [p0[0] + p0[1]] if one_file else p0, 1: p1, 2: [[]]}
    group = _name("g")
    _write_segment_log(tmp_path, topic, records, {group: [[topic, 0, 4]]}, one_file=one_file)
    # a write torn by a crash at the end of partition 1: never acknowledged, not copied
    torn = next((tmp_path / "topics" / topic).glob("00001*"))
    torn = torn if torn.is_file() else next(torn.glob("*.log"))
    with open(torn, "ab") as fh:
        fh.write(struct.pack("<IqiiI", 500, ts, 1, 400, 0) + b"x" * 10)

    with caplog.at_level(logging.INFO, logger="shoal.common.stores.events.embedded"):
        bus = EmbeddedEventBus(tmp_path)
    try:
        copied = [r.getMessage() for r in caplog.records if "from the segment log" in r.getMessage()]
        assert len(copied) == 1 and "copied 7 records of 1 topics and the committed offsets of 1 groups" in copied[0]
        assert not (tmp_path / "topics").exists() and not (tmp_path / "topics.json").exists()
        assert (tmp_path / "segment-log.imported" / "topics.json").exists(), "the old files are kept aside"
        assert bus.end_offsets(topic) == {TopicPartition(topic, 0): 5, TopicPartition(topic, 1): 2,
                                          TopicPartition(topic, 2): 0}  # fmt: skip
        with bus.consumer(group, [topic]) as c:
            assert c.committed(TopicPartition(topic, 0)) == 4
            (rest,) = _poll_until([c], lambda got: len(got[0]) >= 3, what="the unconsumed events")
            _settle([c], [rest])
        assert sorted((e.partition, e.offset, e.key, e.value) for e in rest) == [
            (0, 4, b"a", b"p0-4"), (1, 0, b"b", b"p1-0"), (1, 1, b"b", b"p1-1")]  # fmt: skip
        assert all(e.headers == (("h", b"hv"),) and e.timestamp_ms == ts for e in rest)
        if not one_file:
            assert _segments(tmp_path, topic) == [0, 3], "the segments are kept, for retention"
            assert bus._topics[topic][0].retention.ms == -1, "the topic keeps its config"
        # new events follow the old ones
        assert bus.publish(topic, key=_keys_by_partition(1)[0][0], value=b"new").result(5).offset == 5
    finally:
        bus.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="shoal.common.stores.events.embedded"):
        bus = EmbeddedEventBus(tmp_path)  # copied once
    try:
        assert not any("from the segment log" in r.getMessage() for r in caplog.records)
        assert bus.end_offsets(topic)[TopicPartition(topic, 0)] == 6
    finally:
        bus.close()


def test_shoal_topics_carry_their_retention(tmp_path: Path) -> None:
    from shoal.common.topics import Topics

    topics = Topics("rt")
    specs = {s.name: s for s in topics.specs(2, 1, retention_hours=24, dead_letter_retention_hours=48)}
    assert specs[topics.uploads].config["retention.ms"] == str(24 * 3600 * 1000)
    assert specs[topics.dead_letter].config["retention.ms"] == str(48 * 3600 * 1000)
    bus = EmbeddedEventBus(tmp_path)
    try:
        bus.ensure_topics(specs.values())
        assert bus._topics[topics.dead_letter][0].retention.ms == 48 * 3600 * 1000
    finally:
        bus.close()
    bus = EmbeddedEventBus(tmp_path)  # the config is kept with the topic
    try:
        assert bus._topics[topics.uploads][1].retention.ms == 24 * 3600 * 1000
    finally:
        bus.close()
