"""Behaviour suite of the metrics store, run on every implementation the machine has (chDB
always; a ClickHouse server when SHOAL_TEST_CLICKHOUSE_URL names one)."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime

import numpy as np
import pytest

from shoal.common.errors import ConfigurationError, Unavailable
from shoal.common.stores.metrics import (
    IN_CHUNK,
    EmbeddedMetricsStore,
    MetricsStore,
    Migration,
    ServerMetricsStore,
    in_chunks,
    open_metrics_store,
)

EVENTS_V1 = Migration(
    component="test",
    version=1,
    name="events",
    statements=(
        "CREATE TABLE IF NOT EXISTS events (id String, n Int64, at DateTime64(3, 'UTC'), tags Array(String),"
        " version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY id",
    ),
)
EVENTS_V2 = Migration(
    component="test",
    version=2,
    name="events.note",
    statements=("ALTER TABLE events ADD COLUMN IF NOT EXISTS note String DEFAULT ''",),
)


def test_migrations_apply_once_in_order(metrics_store: MetricsStore) -> None:
    applied = metrics_store.migrate([EVENTS_V2, EVENTS_V1])
    assert [(m.version, m.name) for m in applied] == [(1, "events"), (2, "events.note")]
    assert metrics_store.migrate([EVENTS_V1, EVENTS_V2]) == []
    assert metrics_store.applied_migrations() == [("test", 1, "events"), ("test", 2, "events.note")]
    columns = [
        r[0]
        for r in metrics_store.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'events' ORDER BY position"
        ).rows
    ]
    assert columns == ["id", "n", "at", "tags", "version", "note"]


def test_a_migration_whose_statements_ran_but_was_not_recorded_is_harmless(metrics_store: MetricsStore) -> None:
    # A crash between running the statements and recording the migration: the rerun must work.
    metrics_store.migrate([EVENTS_V1])
    metrics_store.command(EVENTS_V2.statements[0])
    assert metrics_store.migrate([EVENTS_V1, EVENTS_V2]) == [EVENTS_V2]


def test_insert_and_query_round_trip_typed_values(metrics_store: MetricsStore) -> None:
    metrics_store.migrate([EVENTS_V1])
    at = datetime(2026, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)
    n = metrics_store.insert(
        "events", [["a", -5, at, ["x", "y"], 1], ["b", 7, at, [], 1]], ["id", "n", "at", "tags", "version"]
    )
    assert n == 2
    rows = metrics_store.query("SELECT id, n, at, tags FROM events ORDER BY id").dicts()
    assert rows[0]["id"] == "a" and rows[0]["n"] == -5 and rows[0]["tags"] == ["x", "y"]
    assert rows[0]["at"].replace(tzinfo=UTC) == at
    cols = metrics_store.query_columns("SELECT n FROM events ORDER BY id")
    np.testing.assert_array_equal(cols["n"], np.array([-5, 7]))


def test_column_oriented_insert(metrics_store: MetricsStore) -> None:
    metrics_store.migrate([EVENTS_V1])
    ids = [f"id{i}" for i in range(1000)]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    metrics_store.insert_columns(
        "events",
        [ids, np.arange(1000, dtype=np.int64), [at] * 1000, [[]] * 1000, [1] * 1000],
        ["id", "n", "at", "tags", "version"],
    )
    assert metrics_store.query("SELECT count(), sum(n) FROM events").rows == [(1000, 499500)]


def test_replacing_merge_tree_keeps_the_latest_version(metrics_store: MetricsStore) -> None:
    metrics_store.migrate([EVENTS_V1])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    cols = ["id", "n", "at", "tags", "version"]
    metrics_store.insert("events", [["a", 1, at, [], 1]], cols)
    metrics_store.insert("events", [["a", 2, at, [], 2]], cols)
    metrics_store.insert("events", [["a", 2, at, [], 2]], cols)  # a redelivery of the same write
    assert metrics_store.query("SELECT n FROM events FINAL WHERE id = 'a'").rows == [(2,)]


@pytest.mark.parametrize(
    "hostile",
    ["'; DROP TABLE events; --", "a' OR '1'='1", "\\' OR 1=1 --", "{id:String}", "x\x00y", "ünï\ncode"],
)
def test_parameters_are_values_never_sql(metrics_store: MetricsStore, hostile: str) -> None:
    metrics_store.migrate([EVENTS_V1])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    metrics_store.insert(
        "events", [[hostile, 1, at, [], 1], ["other", 2, at, [], 1]], ["id", "n", "at", "tags", "version"]
    )
    rows = metrics_store.query("SELECT id, n FROM events WHERE id = {id:String}", {"id": hostile}).rows
    assert rows == [(hostile, 1)]
    assert metrics_store.query("SELECT count() FROM events").scalar() == 2


def test_one_client_per_thread_allows_concurrent_queries(metrics_store: MetricsStore) -> None:
    metrics_store.migrate([EVENTS_V1])
    metrics_store.command(
        "INSERT INTO events (id, n, at, tags, version) SELECT toString(number), number, now64(3), [], 1 FROM numbers(200000)"
    )
    results: dict[int, int] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(5):
                results[i] = int(
                    metrics_store.query("SELECT sum(n) FROM events WHERE n % 4 = {i:UInt8}", {"i": i}).scalar()
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    expected = {i: int(sum(n for n in range(200000) if n % 4 == i)) for i in range(4)}
    assert results == expected


def test_unreachable_server_is_unavailable_not_a_crash(database: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = ServerMetricsStore(url=f"http://127.0.0.1:{port}", database=database, timeout_seconds=2)
    with pytest.raises(Unavailable, match="ClickHouse"):
        store.ping()
    with pytest.raises(Unavailable):
        store.query("SELECT 1")


def test_urls_pick_the_implementation(tmp_path, chdb_path) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(open_metrics_store(f"chdb://{chdb_path}", database="x"), EmbeddedMetricsStore)
    server = open_metrics_store("https://ch.example:8443", database="x", password="s3cret")
    assert isinstance(server, ServerMetricsStore)
    assert "s3cret" not in repr(server)
    with pytest.raises(ConfigurationError, match="SHOAL_METRICS_URL"):
        open_metrics_store("postgres://x", database="x")
    with pytest.raises(ConfigurationError, match="needs a path"):
        open_metrics_store("chdb://", database="x")


def test_id_lists_longer_than_one_query_takes_are_answered_whole(metrics_store: MetricsStore) -> None:
    """A labeling request or a segment of 100k frames: every id is looked up, across several queries."""
    import pyarrow as pa

    from shoal.common.data import datasets, frames
    from shoal.ingest import writer
    from shoal.ingest.columns import constant
    from shoal.labeling_bridge.bridge import latest_labels

    assert [len(c) for c in in_chunks(["b", "a", "b", "c"], size=2)] == [2, 1]  # repeats dropped, sorted
    metrics_store.migrate((*frames.MIGRATIONS, *writer.MIGRATIONS, *datasets.MIGRATIONS))
    n = 2 * IN_CHUNK + 5
    present = [f"f{i:06d}" for i in range(0, n, 2)]  # every other frame exists
    metrics_store.insert_arrow("frames", pa.table({"project": constant("p", len(present)),
                                                   "dataset": constant("d", len(present)),
                                                   "frame_id": pa.array(present),
                                                   "version": pa.array(np.ones(len(present), np.uint64))}))  # fmt: skip
    metrics_store.insert_arrow("label_versions", pa.table({
        "project": constant("p", len(present)), "dataset": constant("d", len(present)), "frame_id": pa.array(present),
        "label_version": constant("v1", len(present)), "source": constant("upload", len(present)),
    }))  # fmt: skip
    asked = [f"f{i:06d}" for i in range(n)]
    assert datasets.existing_frames(metrics_store, "p", "d", asked) == set(present)
    assert sorted(latest_labels(metrics_store, "p", "d", asked)) == present
    assert set(datasets.frame_media(metrics_store, "p", "d", asked)) == set(present)
