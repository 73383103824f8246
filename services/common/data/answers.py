"""Answers of read queries kept while the tables they read are unchanged.

A page of the console asks the same question again and again (the heat map of an inference set, the
first page of a confusion cell, the count of a filter) while the data under it changes only when an
upload, a label or a job writes. At 10M frames such an answer costs a scan of the whole dataset; kept,
it costs one look at the tables' parts.

The version of a table is the newest block number of its active parts and the newest mutation
applied to them. ClickHouse numbers every insert with a new block number and every mutation (a
lightweight delete too) with a new version, both from one counter per table; a merge joins parts
whose blocks it keeps, so a merge, which changes no row a query reads, leaves the version as it was
and the answers kept. A part can also go without an insert or a mutation, by a TTL or a dropped
partition; a table that is partitioned or has a TTL is versioned by the set of its active parts
instead (any change of its parts, merges too, changes it).

An answer computed while a write lands may be kept under the version read before the write; it is
an answer as of a moment during the call, as it would be without the cache, and the next call, which
sees the new parts, computes afresh.

The questions asked lately are refreshed in the background (:class:`AnswerRefresher`): when an upload,
a relabel or a job changes a table, the last questions that read it are computed again under the new
versions, so the next time a person asks, the answer is already kept. Two calls that ask the same
question of the same versions at once compute it once: the second waits for the first's answer."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import Counter

from shoal.common import telemetry
from shoal.common.errors import DeadlineExceeded, Unavailable
from shoal.common.stores.metrics import MetricsStore
from shoal.common.workers import ThreadWorker

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
log = logging.getLogger(__name__)

#: answers kept per process (the least recently used go first); most are counts, which the preparer
#: of the analysis service keeps by the thousand (a count and its key weigh about 200 bytes)
MAX_ANSWERS = 16_384
#: and their total weight (rows or points: a 20,000-point viewport weighs 20,000, about 10 MB in memory), so
#: that no sequence of requests can make the kept answers hold more than about 100 MB
MAX_WEIGHT = 200_000
#: questions remembered for the refresher (the most recently asked)
MAX_QUESTIONS = 64
#: questions the refresher computes again per round at most, the most recently asked first: a round
#: at 10M frames costs about a second per question
MAX_REFRESH = 8

ANSWERS = Counter(
    "shoal_kept_answers_total",
    "Answers of read RPCs by how they were found: hit (kept), computed (on the call), shared (another "
    "call was computing it), refreshed (computed in the background after the data changed) or prepared "
    "(computed in the background before anyone asked).",
    ["outcome"],
)


@dataclass
class Question:
    """A question asked lately: what it reads, how to compute it, and when it was last asked."""

    tables: tuple[str, ...]
    key: Hashable
    compute: Callable[[], Any]
    weight: Callable[[Any], int] | None
    asked: float


class _Pending:
    """An answer being computed, which other calls of the same question wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: Any = None
        self.failed = False


#: tables whose parts can go without an insert or a mutation (partitioned, or with a TTL), by database and name:
#: looked up once per process (a table's engine settings do not change while it is read)
_BY_PARTS: dict[tuple[str, str], bool] = {}
_BY_PARTS_LOCK = threading.Lock()


def _versioned_by_parts(metrics: MetricsStore, tables: Sequence[str]) -> dict[str, bool]:
    db = str(getattr(metrics, "database", ""))
    missing = [t for t in tables if (db, t) not in _BY_PARTS]
    if missing:
        rows = metrics.query(
            "SELECT name, partition_key != '' OR position(create_table_query, ' TTL ') > 0 FROM system.tables"
            " WHERE database = currentDatabase() AND name IN {tables:Array(String)}",
            {"tables": missing},
        ).rows
        with _BY_PARTS_LOCK:
            _BY_PARTS.update(((db, str(t)), bool(b)) for t, b in rows)
    return {t: _BY_PARTS.get((db, t), False) for t in tables}


def table_versions(metrics: MetricsStore, tables: Sequence[str]) -> tuple[Any, ...]:
    """One value per table that changes whenever the table's rows may have (see the module's
    docstring): its newest block and mutation, or for a partitioned table or one with a TTL the
    names of its active parts. A part's mutation is its ``data_version`` when that differs from its
    first block (a part never mutated has its first block there)."""
    by_parts = _versioned_by_parts(metrics, tables)
    rows = metrics.query(
        "SELECT table, max(max_block_number), max(if(data_version != min_block_number, data_version, 0)),"
        " groupBitXor(cityHash64(name)), count() FROM system.parts"
        " WHERE database = currentDatabase() AND table IN {tables:Array(String)} AND active GROUP BY table",
        {"tables": list(tables)},
    ).rows
    found = {str(t): (int(h), int(n)) if by_parts[str(t)] else (int(b), int(m)) for t, b, m, h, n in rows}
    return tuple(found.get(t, (0, 0)) for t in tables)


class AnswerCache:
    """Computed answers by (tables, key, the tables' versions); at most ``max_answers`` kept, of at
    most ``max_weight`` in all."""

    def __init__(self, metrics: MetricsStore, max_answers: int = MAX_ANSWERS, max_weight: int = MAX_WEIGHT) -> None:
        self.metrics = metrics
        self.max_answers = max_answers
        self.max_weight = max_weight
        self._answers: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._pending: dict[Hashable, _Pending] = {}
        #: the questions asked lately, the most recent last
        self._questions: OrderedDict[Hashable, Question] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        #: calls waiting now for another call's computation of their question
        self.waiting = 0
        self._warned = False
        self._local = threading.local()

    def get(
        self, tables: Sequence[str], key: Hashable, compute: Callable[[], T], weight: Callable[[T], int] | None = None
    ) -> T:
        """``compute()``'s answer, computed again only when one of ``tables`` changed since it was
        kept. ``key`` must name everything else the answer depends on (project, request, settings);
        ``weight`` says what the answer holds (its rows or points; 1 without it). An answer heavier
        than ``max_weight`` is not kept."""
        if self.max_answers <= 0:
            return compute()
        tables = tuple(tables)
        versions = self._versions(tables)
        if versions is None:
            return compute()
        preparing = self.is_preparing()
        if not preparing:  # a question a person asked, refreshed while they may ask it again
            with self._lock:
                self._questions[(tables, key)] = Question(tables, key, compute, weight, time.monotonic())
                self._questions.move_to_end((tables, key))
                while len(self._questions) > MAX_QUESTIONS:
                    self._questions.popitem(last=False)
        answer, outcome = self._answer((tables, key, versions), compute, weight)
        ANSWERS.labels("prepared" if preparing and outcome == "computed" else outcome).inc()
        return answer  # type: ignore[no-any-return]

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Within it, this thread's calls of :meth:`get` keep their answers without counting as
        questions asked (the refresher leaves them to whoever prepares them), and what they compute
        counts as ``prepared``."""
        before = self.is_preparing()
        self._local.preparing = True
        try:
            yield
        finally:
            self._local.preparing = before

    def is_preparing(self) -> bool:
        return bool(getattr(self._local, "preparing", False))

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Within it, this thread reads the versions of the same tables once: the answers one read-only request
        looks up (a count, a page, the counts they depend on) are looked up under one version of the data, without a
        look at ``system.parts`` for each (about 4 ms apiece)."""
        outer = getattr(self._local, "snapshot", None) is not None
        if not outer:
            self._local.snapshot = {}
        try:
            yield
        finally:
            if not outer:
                self._local.snapshot = None

    def versions(self, tables: Sequence[str]) -> tuple[Any, ...] | None:
        """The tables' versions now (None when they cannot be read): read them before computing
        answers to :meth:`keep`."""
        return self._versions(tuple(tables))

    def keep(
        self,
        tables: Sequence[str],
        versions: tuple[Any, ...],
        answers: Mapping[Hashable, Any],
        weight: Callable[[Any], int] | None = None,
    ) -> int:
        """Keeps answers computed together, by their keys, each of ``weight`` (1 without it), under
        the ``versions`` of ``tables`` read before they were computed (if a table changed meanwhile,
        they are kept under versions no call will see again). Returns how many were new."""
        tables = tuple(tables)
        new = 0
        for key, answer in answers.items():
            full = (tables, key, versions)
            with self._lock:
                if full in self._answers:
                    continue
            self._keep(full, answer, weight)
            new += 1
        if new:
            ANSWERS.labels("prepared").inc(new)
        return new

    def lookups(
        self,
        tables: Sequence[str],
        key: Hashable,
        find: Callable[[list[K]], Mapping[K, V]],
        wanted: Sequence[K],
        weight: Callable[[V], int] | None = None,
    ) -> dict[K, V]:
        """The value of each of ``wanted`` (e.g. a frame's ranks in a job's lists), looked up by ``find``
        only for those not kept under ``key`` and the tables' current versions: ``find`` is given the
        missing ones and answers each. Values found are added to those kept (each of ``weight``, 1
        without it) while the question's lookups weigh at most a quarter of ``max_weight``; a question
        whose tables changed starts empty. Not a question the refresher computes again: its next call
        looks up only what changed in what it asks."""
        wanted = list(dict.fromkeys(wanted))
        versions = self._versions(tuple(tables)) if self.max_answers > 0 else None
        if versions is None:
            return dict(find(wanted))
        full = (tuple(tables), ("lookups", key), versions)
        with self._lock:
            entry = self._answers.get(full)
            if entry is None:
                kept: dict[K, V] = {}
                self._answers[full] = (kept, 1)
                self._weight += 1
            else:
                kept = entry[0]
                self._answers.move_to_end(full)
            missing = [k for k in wanted if k not in kept]
            self.hits += len(wanted) - len(missing)
        found = dict(find(missing)) if missing else {}
        if found:
            heft = sum(max(1, weight(v)) if weight is not None else 1 for v in found.values())
            with self._lock:
                entry = self._answers.get(full)
                if entry is not None and entry[1] + heft <= self.max_weight // 4:
                    entry[0].update(found)
                    self._answers[full] = (entry[0], entry[1] + heft)
                    self._weight += heft
                    self._evict()
        return {k: found[k] if k in found else kept[k] for k in wanted}

    def _versions(self, tables: tuple[str, ...]) -> tuple[Any, ...] | None:
        """The tables' versions; None (answer without keeping) when they cannot be read."""
        snapshot = getattr(self._local, "snapshot", None)
        if snapshot is not None and tables in snapshot:
            return snapshot[tables]  # type: ignore[no-any-return]
        try:
            found = table_versions(self.metrics, tables)
            if snapshot is not None:
                snapshot[tables] = found
            return found
        except (Unavailable, DeadlineExceeded):
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a user that may not read system.parts: answer, keep nothing
            if not self._warned:
                self._warned = True
                log.warning("answers are not kept between calls: the tables' versions cannot be read (%s)", exc)
            return None

    def _answer(
        self, full: tuple[Any, ...], compute: Callable[[], Any], weight: Callable[[Any], int] | None
    ) -> tuple[Any, str]:
        """The kept answer of ``full``, the one another call is computing, or ours: (answer, outcome)."""
        with self._lock:
            if full in self._answers:
                self._answers.move_to_end(full)
                self.hits += 1
                return self._answers[full][0], "hit"
            pending = self._pending.get(full)
            if pending is None:
                pending = self._pending[full] = _Pending()
                mine = True
                self.misses += 1
            else:
                mine = False
                self.waiting += 1
        if not mine:
            request = telemetry.current_request()
            remaining = request.remaining() if request is not None else None
            try:
                shared = pending.done.wait(None if remaining is None else max(0.0, remaining))
            finally:
                with self._lock:
                    self.waiting -= 1
            if shared and not pending.failed:
                return pending.answer, "shared"
            telemetry.check_request("waiting for the same question's answer")
            return compute(), "computed"  # the other call failed: its error was its own
        try:
            answer = compute()
        except BaseException:
            pending.failed = True
            with self._lock:
                self._pending.pop(full, None)
            pending.done.set()
            raise
        pending.answer = answer
        self._keep(full, answer, weight)
        with self._lock:
            self._pending.pop(full, None)
        pending.done.set()
        return answer, "computed"

    def _keep(self, full: tuple[Any, ...], answer: Any, weight: Callable[[Any], int] | None) -> None:
        heft = max(1, weight(answer)) if weight is not None else 1
        if heft > self.max_weight:  # never kept, so not refreshed either
            with self._lock:
                self._questions.pop(full[:2], None)
            return
        with self._lock:
            if full not in self._answers:
                self._answers[full] = (answer, heft)
                self._weight += heft
            self._answers.move_to_end(full)
            self._evict()

    def _evict(self) -> None:
        """Drops the least recently used answers while too many are kept (the lock held)."""
        while len(self._answers) > self.max_answers or self._weight > self.max_weight:
            _, (_, dropped) = self._answers.popitem(last=False)
            self._weight -= dropped

    def refresh(self, within_seconds: float, limit: int = MAX_REFRESH) -> int:
        """Computes again the questions asked in the last ``within_seconds`` whose tables changed
        since their answers were kept (at most ``limit``, the most recently asked first), so that
        they are kept under the tables' new versions. Returns how many were computed. A question
        whose computation fails is forgotten (its caller sees the error when asking again)."""
        if self.max_answers <= 0:
            return 0
        since = time.monotonic() - within_seconds
        with self._lock:
            recent = [q for q in reversed(self._questions.values()) if q.asked >= since][:limit]
        if not recent:
            return 0
        tables = sorted({t for q in recent for t in q.tables})
        try:
            by_table = dict(zip(tables, table_versions(self.metrics, tables), strict=True))
        except Exception:  # the store is away: the next round tries again
            log.debug("the tables' versions could not be read for the refresh", exc_info=True)
            return 0
        done = 0
        for q in recent:
            full = (q.tables, q.key, tuple(by_table[t] for t in q.tables))
            with self._lock:
                if full in self._answers or full in self._pending:
                    continue
            try:
                self._answer(full, q.compute, q.weight)
            except Exception:  # e.g. the project was deleted since it was asked
                log.debug("refreshing a kept answer failed; the question is forgotten", exc_info=True)
                with self._lock:
                    self._questions.pop((q.tables, q.key), None)
                continue
            done += 1
            ANSWERS.labels("refreshed").inc()
        return done

    @property
    def weight(self) -> int:
        """The total weight of the answers kept."""
        return self._weight


class AnswerRefresher(ThreadWorker):
    """Every ``interval_seconds``, computes again the kept answers of the questions asked in the last
    ``window_seconds`` whose tables changed (:meth:`AnswerCache.refresh`), then runs ``prepare``. After
    a round it rests at least as long as the round took, so it never takes more than half of a core."""

    name = "answer-refresher"

    def __init__(
        self,
        cache: AnswerCache,
        interval_seconds: float,
        window_seconds: float,
        prepare: Callable[[], int] | None = None,
    ) -> None:
        super().__init__()
        self.cache = cache
        self.interval_seconds = interval_seconds
        self.window_seconds = window_seconds
        #: after each refresh, computes answers before anyone asks (see ``shoal.analysis.prepared``)
        self.prepare = prepare

    def _run(self) -> None:
        rest = self.interval_seconds
        while not self._stop.wait(rest):
            start = time.monotonic()
            try:
                self.cache.refresh(self.window_seconds)
                if self.prepare is not None:
                    self.prepare()
            except Exception:  # one failed round must not end the loop
                log.exception("refreshing kept answers failed")
            rest = max(self.interval_seconds, time.monotonic() - start)
