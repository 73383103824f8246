"""Answers kept while their tables are unchanged (shoal.common.data.answers), on the metrics store:
a kept answer is never served once a table it reads has changed, by an insert or a delete, and a merge,
which changes no row, keeps it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from shoal.common.data.answers import AnswerCache, table_versions
from shoal.common.stores.metrics import MetricsStore, Migration
from tests.harness._wait import wait_until

TABLES = Migration(
    component="test",
    version=1,
    name="answers",
    statements=(
        "CREATE TABLE IF NOT EXISTS scores (id String, v Int64, version UInt64)"
        " ENGINE = ReplacingMergeTree(version) ORDER BY id",
        "CREATE TABLE IF NOT EXISTS other (id String) ENGINE = MergeTree ORDER BY id",
        "CREATE TABLE IF NOT EXISTS dated (day Date, v Int64) ENGINE = MergeTree PARTITION BY day ORDER BY v",
    ),
)


@pytest.fixture
def store(metrics_store: MetricsStore) -> MetricsStore:
    metrics_store.migrate([TABLES])
    metrics_store.insert("scores", [["a", 1, 1], ["b", 2, 1]], ["id", "v", "version"])
    return metrics_store


def _total(store: MetricsStore, calls: list[int]) -> int:
    calls.append(1)
    return int(store.query("SELECT sum(v) FROM scores FINAL").scalar())


def test_an_answer_is_kept_until_its_table_changes(store: MetricsStore) -> None:
    cache = AnswerCache(store)
    calls: list[int] = []
    ask = lambda: cache.get(("scores",), "sum", lambda: _total(store, calls))  # noqa: E731
    assert ask() == 3 and ask() == 3
    assert len(calls) == 1 and cache.hits == 1

    store.insert("other", [["x"]], ["id"])  # a table the answer does not read
    assert ask() == 3 and len(calls) == 1

    store.insert("scores", [["a", 10, 2]], ["id", "v", "version"])  # a newer version of a row
    assert ask() == 12 and len(calls) == 2
    store.command("DELETE FROM scores WHERE id = 'b'")
    assert ask() == 10 and len(calls) == 3
    store.insert("scores", [["c", 5, 1]], ["id", "v", "version"])
    assert ask() == 15 and len(calls) == 4
    store.command("OPTIMIZE TABLE scores FINAL")  # a merge: the same rows, the answer kept
    assert ask() == 15 and len(calls) == 4
    store.command("DELETE FROM scores WHERE id = 'c'")  # a delete after the merge
    assert ask() == 10 and len(calls) == 5
    store.insert("scores", [["a", 1, 3]], ["id", "v", "version"])
    assert ask() == 1 and len(calls) == 6


def test_a_partitioned_table_changes_its_version_with_any_part(store: MetricsStore) -> None:
    """A partition can go without an insert or a mutation (a TTL, a dropped partition): such tables
    are versioned by their parts, merges included."""
    cache = AnswerCache(store)
    calls: list[int] = []

    def ask() -> int:
        return cache.get(
            ("dated",), "sum", lambda: calls.append(1) or int(store.query("SELECT sum(v) FROM dated").scalar())
        )

    store.command("INSERT INTO dated VALUES ('2026-12-01', 1), ('2026-12-02', 2)")
    store.command("INSERT INTO dated VALUES ('2026-12-01', 4)")
    assert ask() == 7 and ask() == 7 and len(calls) == 1
    # the newest block (the second insert) stays, and no mutation runs
    store.command("ALTER TABLE dated DROP PARTITION '2026-12-02'")
    assert ask() == 5 and len(calls) == 2


def test_keys_keep_answers_apart_and_the_oldest_go_first(store: MetricsStore) -> None:
    cache = AnswerCache(store, max_answers=2)
    calls: list[str] = []

    def ask(key: str) -> str:
        return cache.get(("scores",), key, lambda: calls.append(key) or key.upper())

    assert [ask("a"), ask("b"), ask("a"), ask("c")] == ["A", "B", "A", "C"]
    assert calls == ["a", "b", "c"]
    ask("a")  # kept: used after b
    ask("b")  # b was the least recently used, so it went
    assert calls == ["a", "b", "c", "b"]


def test_errors_are_not_kept_and_an_absent_table_has_a_version(store: MetricsStore) -> None:
    cache = AnswerCache(store)
    with pytest.raises(ZeroDivisionError):
        cache.get(("scores",), "bad", lambda: 1 // 0)
    assert cache.get(("scores",), "bad", lambda: 7) == 7
    assert table_versions(store, ["no_such_table"]) == ((0, 0),)
    assert table_versions(store, ["scores", "other"])[0] != (0, 0)


def test_kept_answers_weigh_no_more_than_the_limit(store: MetricsStore) -> None:
    # a viewport of 20,000 points weighs 20,000: however many are asked, the kept ones stay under the limit
    cache = AnswerCache(store, max_weight=50)
    calls: list[int] = []

    def ask(n: int) -> list[int]:
        return cache.get(("scores",), n, lambda: calls.append(n) or list(range(n)), len)

    for n in (20, 20, 30, 25, 60):  # 60 is heavier than the limit: answered, never kept
        assert len(ask(n)) == n
    assert cache.weight <= 50 and calls == [20, 30, 25, 60]
    ask(25)  # the most recent is still kept
    ask(60)  # the heavy one is computed each time
    assert calls == [20, 30, 25, 60, 60]
    ask(20)  # 20 went to make room for 25
    assert calls[-1] == 20 and cache.weight <= 50
    store.insert("scores", [["z", 1, 1]], ["id", "v", "version"])
    cache.refresh(within_seconds=60)
    assert 60 not in calls[5:]  # too heavy to keep, so not computed in the background either


def test_lookups_read_only_what_is_not_kept_and_start_again_when_the_table_changes(store: MetricsStore) -> None:
    # a page asks for the ranks of the dismissed frames: after one more dismissal, only that frame is read
    cache = AnswerCache(store, max_weight=40)
    asked: list[list[str]] = []

    def find(ids: list[str]) -> dict[str, tuple[int, ...]]:
        asked.append(sorted(ids))
        rows = store.query("SELECT id, v FROM scores FINAL WHERE id IN {ids:Array(String)}", {"ids": ids}).rows
        found = {str(i): (int(v),) for i, v in rows}
        return {i: found.get(i, ()) for i in ids}

    look = lambda ids: cache.lookups(("scores",), "v", find, ids, weight=len)  # noqa: E731
    assert look(["a", "x"]) == {"a": (1,), "x": ()}
    assert look(["a", "b", "x", "a"]) == {"a": (1,), "b": (2,), "x": ()}
    assert asked == [["a", "x"], ["b"]]
    assert look(["b"]) == {"b": (2,)} and len(asked) == 2
    assert cache.lookups(("scores",), "other", find, ["a"]) == {"a": (1,)} and len(asked) == 3  # its own key

    store.insert("scores", [["a", 10, 2]], ["id", "v", "version"])  # the table changed: every value read anew
    assert look(["a", "b"]) == {"a": (10,), "b": (2,)} and asked[-1] == ["a", "b"]
    # a question's lookups weigh at most a quarter of the kept answers' limit: past it they are read each time
    many = [f"id{i}" for i in range(20)]
    assert look(many) == dict.fromkeys(many, ()) and look(many[:1]) == {many[0]: ()}
    assert asked[-1] == many[:1] and cache.weight <= 40


def test_without_the_tables_versions_every_call_computes(store: MetricsStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # a database user that may not read system.parts: the answers are right, none is kept
    from shoal.common.data import answers

    def refused(*_: object) -> None:
        raise PermissionError("Not enough privileges to read system.parts")

    monkeypatch.setattr(answers, "table_versions", refused)
    cache = AnswerCache(store)
    calls: list[int] = []
    assert [cache.get(("scores",), "sum", lambda: _total(store, calls)) for _ in range(3)] == [3, 3, 3]
    assert len(calls) == 3 and cache.weight == 0


def test_the_questions_asked_lately_are_refreshed_when_their_tables_change(store: MetricsStore) -> None:
    # after an upload, the refresh computes the answer once in the background: the next call finds it kept
    cache = AnswerCache(store)
    calls: list[int] = []
    ask = lambda: cache.get(("scores",), "sum", lambda: _total(store, calls))  # noqa: E731
    assert ask() == 3 and len(calls) == 1
    assert cache.refresh(within_seconds=60) == 0  # nothing changed: nothing computed
    store.insert("scores", [["c", 4, 1]], ["id", "v", "version"])
    assert cache.refresh(within_seconds=60) == 1 and len(calls) == 2
    assert ask() == 7 and len(calls) == 2 and cache.hits == 1  # kept by the refresh, with the new row
    assert cache.refresh(within_seconds=60) == 0

    store.insert("scores", [["d", 1, 1]], ["id", "v", "version"])
    assert cache.refresh(within_seconds=0) == 0  # asked longer ago than the window: computed only when asked
    assert ask() == 8 and len(calls) == 3


def test_a_question_whose_refresh_fails_is_forgotten(store: MetricsStore) -> None:
    cache = AnswerCache(store)
    fail = {"now": False}

    def compute() -> int:
        if fail["now"]:
            raise RuntimeError("the project was deleted")
        return 1

    assert cache.get(("scores",), "q", compute) == 1
    fail["now"] = True
    store.insert("scores", [["e", 1, 1]], ["id", "v", "version"])
    assert cache.refresh(within_seconds=60) == 0  # failed, logged, forgotten
    store.insert("scores", [["f", 1, 1]], ["id", "v", "version"])
    fail["now"] = False
    assert cache.refresh(within_seconds=60) == 0  # no longer among the questions to refresh
    assert cache.get(("scores",), "q", compute) == 1


def test_the_same_question_asked_at_once_is_computed_once(store: MetricsStore) -> None:
    cache = AnswerCache(store)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        started.set()
        assert release.wait(30)
        return 42

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get, ("scores",), "slow", slow)
        assert started.wait(30)
        second = pool.submit(cache.get, ("scores",), "slow", slow)
        wait_until(lambda: cache.waiting == 1, what="the second call to wait for the first's answer", bound=30)
        release.set()
        assert first.result(30) == second.result(30) == 42
    assert calls == [1] and cache.misses == 1 and cache.waiting == 0


def test_a_failed_computation_is_not_shared(store: MetricsStore) -> None:
    # the waiting call computes for itself when the one it waited for failed
    cache = AnswerCache(store)
    started, release = threading.Event(), threading.Event()

    def failing() -> int:
        started.set()
        assert release.wait(30)
        raise RuntimeError("the first caller's deadline passed")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get, ("scores",), "q", failing)
        assert started.wait(30)
        second = pool.submit(cache.get, ("scores",), "q", lambda: 5)
        wait_until(lambda: cache.waiting == 1, what="the second call to wait for the first's answer", bound=30)
        release.set()
        with pytest.raises(RuntimeError):
            first.result(30)
        assert second.result(30) == 5
