"""Behaviour suite of the event bus: what a user of :mod:`shoal.common.stores.events` relies on.

Every parametrized test runs on the three kinds of bus from the ``bus_factory`` fixture: the
in-process bus in memory, the in-process bus on files, and a real Apache Kafka broker. The few
tests that only make sense for one implementation build it directly.

The Kafka broker is shared by the whole session, so every test uses its own topic and group
names. Nothing sleeps to synchronize: consumers are polled in loops bounded by a deadline
(a Kafka group takes a few seconds to form or rebalance).
"""

from __future__ import annotations

import os
import socket
import subprocess
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

PARTITIONS = 3
DEADLINE_SECONDS = 60.0  # a Kafka group forms or rebalances within a few seconds
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
        assert revokes == [], "nothing to revoke while alone"

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
            if revokes and _stable_split([c1_assigned, c2.assignment()], topic):
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


def _log_files(directory: Path, topic: str) -> list[Path]:
    files = sorted((directory / "topics" / topic).glob("*/*.log"))
    assert len(files) == PARTITIONS, f"one segment file per partition expected, found {files}"
    return files


@pytest.mark.parametrize("tear", ["partial-record", "partial-header", "bogus-length"])
def test_embedded_file_bus_cuts_a_torn_last_record_on_reopen(tmp_path: Path, tear: str) -> None:
    bus = EmbeddedEventBus(tmp_path)
    topic = _new_topic(bus)
    keys = _keys_by_partition(1, prefix="torn")
    values = [f"value-{i}".encode() * 3 for i in range(3)]
    for v in values:
        bus.publish(topic, key=keys[0][0], value=v, headers=[("n", v[:7])]).result(5)
    bus.publish(topic, key=keys[1][0], value=b"other").result(5)
    bus.close()

    log_file = _log_files(tmp_path, topic)[0]
    intact = log_file.read_bytes()
    record_size = len(intact) // 3  # three records of the same size
    last_record = intact[2 * record_size :]
    if tear == "partial-record":  # the write of a 4th record stopped halfway
        torn = last_record[: record_size // 2]
    elif tear == "partial-header":
        torn = last_record[:7]
    else:  # a header whose length runs past the end of the file
        torn = last_record[:-1]
        torn = (len(torn) + 1000).to_bytes(4, "little") + torn[4:]
    with open(log_file, "ab") as fh:
        fh.write(torn)

    bus = EmbeddedEventBus(tmp_path)
    try:
        assert log_file.stat().st_size == len(intact), "the torn bytes are cut off"
        assert bus.end_offsets(topic) == {
            TopicPartition(topic, 0): 3,
            TopicPartition(topic, 1): 1,
            TopicPartition(topic, 2): 0,
        }
        events = _read_all(bus, topic, 4)
        assert [e.value for e in events if e.partition == 0] == values
        assert [e.headers for e in events if e.partition == 0] == [(("n", v[:7]),) for v in values]
        # appending after the cut works, and survives another restart
        pub = bus.publish(topic, key=keys[0][0], value=b"after the tear").result(5)
        assert (pub.partition, pub.offset) == (0, 3)
    finally:
        bus.close()
    bus = EmbeddedEventBus(tmp_path)
    try:
        events = _read_all(bus, topic, 5)
        assert [e.value for e in events if e.partition == 0] == [*values, b"after the tear"]
    finally:
        bus.close()


def test_embedded_file_bus_acknowledges_a_publish_only_once_it_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The promise of ``publish``: the future resolves when the message is durable (after fsync)."""
    bus = EmbeddedEventBus(tmp_path)
    try:
        topic = _new_topic(bus)
        synced: list[tuple[int, int]] = []  # (inode, size at fsync)
        real_fsync = os.fsync

        def spy(fd: int) -> None:
            st = os.fstat(fd)  # what this fsync covers at least
            real_fsync(fd)
            synced.append((st.st_ino, st.st_size))

        monkeypatch.setattr(os, "fsync", spy)
        key = _keys_by_partition(1, prefix="sync")[1][0]
        for i in range(3):
            pub = bus.publish(topic, key=key, value=f"durable-{i}".encode()).result(5)
            log_file = _log_files(tmp_path, topic)[pub.partition]
            st = log_file.stat()
            assert any(ino == st.st_ino and size >= st.st_size for ino, size in synced), (
                f"publish #{i} was acknowledged before its partition log was fsynced"
            )
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


def test_embedded_ping_raises_unavailable_after_close(tmp_path: Path) -> None:
    bus = EmbeddedEventBus(tmp_path)
    bus.ping()
    bus.close()
    with pytest.raises(Unavailable):
        bus.ping()


# --- 9. retention of the embedded bus ---------------------------------------------------------
def _segments(directory: Path, topic: str, partition: int = 0) -> list[str]:
    return sorted(f.name for f in (directory / "topics" / topic / f"{partition:05d}").glob("*.log"))


def test_embedded_bus_rolls_segments_and_deletes_expired_ones_like_kafka(tmp_path: Path) -> None:
    bus = EmbeddedEventBus(tmp_path)
    topic = _name("t")
    bus.ensure_topics([TopicSpec(topic, partitions=1, config={"retention.ms": "3600000", "segment.bytes": "1000"})])
    values = [f"{i:04d}".encode() * 50 for i in range(12)]  # 200 bytes each: 5 records per segment
    for v in values:
        bus.publish(topic, key=b"k", value=v).result(5)
    assert _segments(tmp_path, topic) == [f"{b:020d}.log" for b in (0, 5, 10)]
    group = _name("g")
    with bus.consumer(group, [topic]) as c:
        (got,) = _poll_until([c], lambda got: len(got[0]) >= 3, what="the first records")
        assert [e.value for e in got[:3]] == values[:3]
        c.commit({TopicPartition(topic, 0): 3})
    plog = bus._topics[topic][0]
    # an hour later the two closed segments have expired; the one being written stays
    assert plog.apply_retention(now_ms=int(time.time() * 1000) + 3_600_001) == 10
    assert _segments(tmp_path, topic) == [f"{10:020d}.log"]
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
        assert _segments(tmp_path, topic) == [f"{b:020d}.log" for b in (10, 15)]
        assert bus._topics[topic][0].start == 10
    finally:
        bus.close()


def test_embedded_bus_opens_a_bus_written_with_one_file_per_partition(tmp_path: Path) -> None:
    bus = EmbeddedEventBus(tmp_path)
    topic = _new_topic(bus)
    messages = _spread(2, "legacy")
    _publish(bus, topic, messages)
    bus.close()
    # the layout before segments: topics/<topic>/<partition>.log and {"topic": partitions}
    base = tmp_path / "topics" / topic
    for part in range(PARTITIONS):
        (seg,) = (base / f"{part:05d}").glob("*.log")
        seg.rename(base / f"{part:05d}.log")
        (base / f"{part:05d}").rmdir()
    (tmp_path / "topics.json").write_text(f'{{"{topic}": {PARTITIONS}}}')
    bus = EmbeddedEventBus(tmp_path)
    try:
        events = _read_all(bus, topic, len(messages))
        assert sorted(e.value for e in events) == sorted(v for _, v in messages)
        assert len(_log_files(tmp_path, topic)) == PARTITIONS
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
