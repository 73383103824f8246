"""The event bus on Apache Kafka, through kafka-python: an idempotent producer with ``acks=all``,
and consumer groups with manual commits whose rebalance callbacks run on the polling thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from shoal.common.errors import ConfigurationError, Unavailable
from shoal.common.stores.events.base import (
    Consumer,
    Event,
    EventBus,
    Headers,
    Published,
    RebalanceCallback,
    TopicPartition,
    TopicSpec,
)

log = logging.getLogger(__name__)


class _StrongRegistry(dict):  # type: ignore[type-arg]
    """A response-class registry that holds its classes, not weak proxies of them."""

    def __init__(self, entries: Mapping[Any, Any]) -> None:
        super().__init__()
        for key, cls in entries.items():
            self[key] = cls

    def __setitem__(self, key: Any, cls: Any) -> None:
        try:
            cls = cls.__mro__[0]  # a weak proxy of a class answers with the class itself
        except ReferenceError:  # already gone: kept as it is, and kafka-python's own error names it
            pass
        super().__setitem__(key, cls)


def _hold_response_classes() -> None:
    """kafka-python 3 finds the class of each answer through a registry of weak proxies of its
    response classes. Under load a proxy was once found dead: the connection's read task died
    (``ReferenceError: weakly-referenced object no longer exists``) and the consumer on it received
    nothing more. Holding the classes themselves costs nothing (they live for the process) and takes
    that failure away; a kafka-python without this registry is left as it is."""
    try:
        from kafka.protocol.api_header import ResponseClassRegistry
    except ImportError:
        return
    registry = getattr(ResponseClassRegistry, "_response_class_registry", None)
    if isinstance(registry, dict) and not isinstance(registry, _StrongRegistry):
        ResponseClassRegistry._response_class_registry = _StrongRegistry(registry)


#: How long the producer holds records to batch them, and Kafka's default bound on delivering one.
_LINGER_MS = 5
_DELIVERY_TIMEOUT_MS = 120_000


def _new_client(cls: Any, **config: Any) -> Any:
    """``cls(**config)`` for a kafka-python client. kafka-python 3 starts the client's IO thread
    before it bootstraps, and a constructor that fails (broker unreachable) leaves that thread
    running and reconnecting forever: stop it."""
    _hold_response_classes()
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
#: while it polls before it gives up, closes and joins anew. A join that a poll's timeout left
#: unfinished is resumed in place at the next poll (see ``_KafkaConsumer``); this is the last
#: resort for a join that cannot complete at all (e.g. a coordinator that stopped answering).
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
                        linger_ms=_LINGER_MS,
                        max_request_size=16 * 1024 * 1024,
                        request_timeout_ms=int(self._timeout * 1000),
                        # Kafka refuses a delivery bound below one request and the linger: a store timeout of two
                        # minutes or more stretches it (two requests' worth, so a send is retried once)
                        delivery_timeout_ms=max(_DELIVERY_TIMEOUT_MS, 2 * int(self._timeout * 1000) + _LINGER_MS),
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
    ``on_assign`` runs on the caller's thread before ``poll`` returns.

    Gaps of kafka-python that this closes: it may drop a rebalance it had started (one
    started by a change of the topics' metadata, when the next metadata answer changes it back)
    after the listener stopped it, which left the partitions marked as being revoked, never
    fetched again, with the membership still stable; so once ``on_revoke`` ran, the rebalance is
    requested again. It keeps the position of a partition that a rebalance gives back to the
    same member, which skipped what ``on_revoke`` could not finish and commit; so such a
    partition resumes at its committed offset, as it would on any other member. And when a
    poll's timeout interrupts a rebalance started by changed topic metadata after the leader
    computed the assignment, it stops waiting for that join and the member stays REBALANCING
    with no partition; so each poll first asks for the rejoin again while the member is in that
    state, which makes kafka-python finish the join. The consumer also waits, after subscribing
    and before its first join, until the coordinator has the subscribed topics' partitions (it
    asks for the metadata of those topics only): joining before that made the first metadata
    answer start a second rebalance right after the first one.

    ``close`` does not call
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
        self._announced: set[TopicPartition] = set()  # passed to on_revoke, not assigned again yet
        self._given_back: set[TopicPartition] = set()  # announced, then assigned to this member again
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
                outer._announced = set()  # dropped with their positions: they resume at the committed offset
                log.warning("Kafka consumer of group %s lost %s (membership expired)", group_id, sorted(ours(lost)))

            def on_partitions_assigned(self, assigned: Any) -> None:
                outer._revoke_done = None
                tps = ours(assigned)
                outer._given_back |= tps & outer._announced
                outer._announced = set()
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
        try:
            self._consumer.subscribe(list(topics), listener=Listener())
        except KafkaError as exc:
            self._consumer.close(autocommit=False)
            raise Unavailable(f"Kafka subscribe to {list(topics)} failed: {exc}") from exc
        self._await_partition_metadata(list(topics), time.monotonic() + min(self._timeout, 30.0))

    def _await_partition_metadata(self, topics: list[str], deadline: float) -> None:
        """Waits (until ``deadline`` at most) for the first metadata answer about the subscribed topics
        to reach the group coordinator, before the first join.

        kafka-python's coordinator compares the partitions it assigned from against the latest
        metadata answer and rebalances again when they differ. Its record of the partitions is only
        refreshed by an answer that arrives after ``subscribe``, so a member that joined before any
        such answer assigned from an empty record, and the first answer then started a second
        rebalance right after the first one: needless, and the round in which a join could be left
        unfinished (see ``_finish_interrupted_join``). Looking the partitions up before subscribing
        (``partitions_for_topic``) did not help: the coordinator ignores an answer that arrives before
        ``subscribe``, and for an unknown topic that call fetches every topic of the cluster. The
        request made here is for the subscribed topics only."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        cluster = getattr(self._consumer, "_cluster", None)
        if coordinator is None or cluster is None or not hasattr(coordinator, "_metadata_snapshot"):
            return  # another kafka-python: join without waiting, the in-place recovery still applies
        ask_again = 0.0
        while time.monotonic() < deadline:
            known = coordinator._metadata_snapshot
            if all(known.get(t) for t in topics):
                return
            if time.monotonic() >= ask_again:  # subscribe asked already; ask again in case it was lost
                cluster.request_update()
                ask_again = time.monotonic() + 0.5
            time.sleep(0.02)
        log.debug("Kafka group %s: no partition metadata for %s yet; joining anyway", self._group_id, topics)

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
            self._finish_interrupted_join()
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
                self._announced |= revoked
                # the rebalance must now happen even if what started it has gone away
                coordinator = getattr(self._consumer, "_coordinator", None)
                if coordinator is not None:
                    coordinator.request_rejoin()
                continue
            break
        self._run_assigned()
        self._resume_given_back(batches)
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

    def _resume_given_back(self, batches: dict[Any, Any]) -> None:
        """Puts the partitions a rebalance gave back after ``on_revoke`` at their committed offset,
        dropping what this poll fetched of them from the old position."""
        from kafka.errors import KafkaError
        from kafka.structs import TopicPartition as KafkaTP

        tps, self._given_back = self._given_back, set()
        for tp in sorted(tps):
            ktp = KafkaTP(tp.topic, tp.partition)
            batches.pop(ktp, None)
            try:
                committed = self._consumer.committed(ktp, timeout_ms=int(self._timeout * 1000))
                if committed is None or committed < 0:
                    self._consumer.seek_to_beginning(ktp)
                else:
                    self._consumer.seek(ktp, committed)
            except (KafkaError, ValueError) as exc:  # ValueError: no longer assigned
                raise Unavailable(f"Kafka group {self._group_id}: could not resume {tp} at its commit: {exc}") from exc

    def _finish_interrupted_join(self) -> None:
        """Makes kafka-python finish a join that a poll's timeout interrupted.

        kafka-python leaves a JoinGroup/SyncGroup round in flight when ``poll`` times out, and the
        next ``poll`` waits for it only while the coordinator still says the member must (re)join.
        For a rebalance started by changed topic metadata (not by the group) that stops being true
        as soon as the leader has computed the assignment, which records the metadata it used. A
        poll that timed out between that moment and the SyncGroup answer therefore left the member
        REBALANCING for good: the answer went unread, no partition was fetched and no heartbeat
        sent, until ``_check_membership`` closed the consumer. Asking for the rejoin again while the
        member is in that state makes the next poll wait for the round in flight (or, if its answer
        already arrived unread, join once more). It changes nothing in a normal join: completing the
        join clears the request along with setting the membership stable."""
        from kafka.structs import MemberState

        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is None:
            return
        if coordinator.state == MemberState.REBALANCING and not getattr(coordinator, "rejoin_needed", True):
            log.debug("Kafka group %s: resuming a join left unfinished by a poll's timeout", self._group_id)
            coordinator.request_rejoin()

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
