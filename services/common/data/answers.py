"""Answers of read queries kept while the tables they read are unchanged.

A page of the console asks the same question again and again (the heat map of an inference set, the
first page of a confusion cell, the count of a filter) while the data under it changes only when an
upload, a label or a job writes. At 10M frames such an answer costs a scan of the whole dataset; kept,
it costs one look at the tables' parts.

The version of a table is the set of its active parts: ClickHouse writes every insert, merge and
mutation (a lightweight delete too) as new parts under new names, so any change of a table's rows
changes its version, and a version seen again means the same rows. A background merge changes the
version without changing the rows: the next call computes once more.

An answer computed while a write lands may be kept under the version read before the write; it is
an answer as of a moment during the call, as it would be without the cache, and the next call, which
sees the new parts, computes afresh."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from shoal.common.errors import DeadlineExceeded, Unavailable
from shoal.common.stores.metrics import MetricsStore

T = TypeVar("T")
log = logging.getLogger(__name__)

#: answers kept per process (the least recently used go first)
MAX_ANSWERS = 512
#: and their total weight (rows or points: a 20,000-point viewport weighs 20,000, about 10 MB in memory), so
#: that no sequence of requests can make the kept answers hold more than about 100 MB
MAX_WEIGHT = 200_000


def table_versions(metrics: MetricsStore, tables: Sequence[str]) -> tuple[Any, ...]:
    """One value per table that changes whenever the table's rows may have: its active parts."""
    rows = metrics.query(
        "SELECT table, groupBitXor(cityHash64(name)), count() FROM system.parts"
        " WHERE database = currentDatabase() AND table IN {tables:Array(String)} AND active GROUP BY table",
        {"tables": list(tables)},
    ).rows
    found = {str(t): (int(h), int(n)) for t, h, n in rows}
    return tuple(found.get(t, (0, 0)) for t in tables)


class AnswerCache:
    """Computed answers by (tables, key, the tables' versions); at most ``max_answers`` kept, of at
    most ``max_weight`` in all."""

    def __init__(self, metrics: MetricsStore, max_answers: int = MAX_ANSWERS, max_weight: int = MAX_WEIGHT) -> None:
        self.metrics = metrics
        self.max_answers = max_answers
        self.max_weight = max_weight
        self._answers: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._warned = False

    def get(
        self, tables: Sequence[str], key: Hashable, compute: Callable[[], T], weight: Callable[[T], int] | None = None
    ) -> T:
        """``compute()``'s answer, computed again only when one of ``tables`` changed since it was
        kept. ``key`` must name everything else the answer depends on (project, request, settings);
        ``weight`` says what the answer holds (its rows or points; 1 without it). An answer heavier
        than ``max_weight`` is not kept."""
        if self.max_answers <= 0:
            return compute()
        try:
            full = (tuple(tables), key, table_versions(self.metrics, tables))
        except (Unavailable, DeadlineExceeded):
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a user that may not read system.parts: answer, keep nothing
            if not self._warned:
                self._warned = True
                log.warning("answers are not kept between calls: the tables' versions cannot be read (%s)", exc)
            return compute()
        with self._lock:
            if full in self._answers:
                self._answers.move_to_end(full)
                self.hits += 1
                return self._answers[full][0]  # type: ignore[no-any-return]
            self.misses += 1
        answer = compute()
        heft = max(1, weight(answer)) if weight is not None else 1
        if heft > self.max_weight:
            return answer
        with self._lock:
            if full not in self._answers:
                self._answers[full] = (answer, heft)
                self._weight += heft
            self._answers.move_to_end(full)
            while len(self._answers) > self.max_answers or self._weight > self.max_weight:
                _, (_, dropped) = self._answers.popitem(last=False)
                self._weight -= dropped
        return answer

    @property
    def weight(self) -> int:
        """The total weight of the answers kept."""
        return self._weight
