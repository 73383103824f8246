"""The metrics store: ClickHouse, embedded through chDB or a server over HTTP(S).

Both implementations speak through clickhouse-connect, so the SQL and its parameter binding are
the same: every value travels as a server-side parameter (``{name:Type}`` in the SQL text), never
formatted into it. A clickhouse-connect client must not run two queries at once, so each thread
gets its own client.
"""

from __future__ import annotations

import abc
import fcntl
import logging
import math
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from shoal.common import telemetry
from shoal.common.errors import ConfigurationError, DeadlineExceeded, Unavailable
from shoal.common.stores.disk import storage_error

log = logging.getLogger(__name__)

#: The most values one ``IN {ids:Array(String)}`` parameter should carry. On chDB, filtering a table by a
#: 60k-id array took 0.2 s and by a 70k-id one 29 s (100k: 32 s), so longer lists go in several queries.
IN_CHUNK = 20_000


def in_chunks(values: Sequence[str], size: int = IN_CHUNK) -> Iterable[list[str]]:
    """``values`` without repeats, sorted, in lists of at most ``size``: one query per list."""
    unique = sorted(set(values))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


@dataclass(frozen=True)
class QueryResult:
    column_names: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, row, strict=True)) for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


@dataclass(frozen=True)
class Migration:
    """One versioned schema change of a component. Statements must be idempotent
    (``CREATE TABLE IF NOT EXISTS``, ``ADD COLUMN IF NOT EXISTS``) so that replicas starting at
    once, or a crash between a statement and its record, do no harm."""

    component: str
    version: int
    name: str
    statements: tuple[str, ...]


class MetricsStore(abc.ABC):
    """Tables of a Shoal deployment in one ClickHouse database."""

    #: ``"embedded"`` or ``"server"``.
    kind: str
    #: where the tables are, for messages: the chDB data directory or the server's address
    where: str

    def __init__(self, *, database: str) -> None:
        self.database = database
        self._local = threading.local()
        self._clients: list[Client] = []
        self._clients_lock = threading.Lock()
        self._closed = False
        self._database_ready = False

    # -- connection ----------------------------------------------------------------------
    @abc.abstractmethod
    def _connect(self, database: str | None) -> Client:
        """A new client; ``database=None`` for one not bound to the Shoal database."""

    def _client(self) -> Client:
        if self._closed:
            raise Unavailable("the metrics store is closed")
        client = getattr(self._local, "client", None)
        if client is None:
            try:
                if not self._database_ready:
                    self.create_database()
                    self._database_ready = True
                client = self._connect(self.database)
            except ClickHouseError as exc:
                unreachable = Unavailable(f"ClickHouse unreachable: {exc}")
                raise storage_error(exc, "metrics", self.where) or unreachable from exc
            except Exception as exc:  # connection refused, DNS, TLS: all mean unreachable
                unreachable = Unavailable(f"ClickHouse unreachable: {type(exc).__name__}: {exc}")
                raise storage_error(exc, "metrics", self.where) or unreachable from exc
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _reset_thread_client(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            self._local.client = None
            with self._clients_lock:
                if client in self._clients:
                    self._clients.remove(client)
            try:
                client.close()
            except Exception:
                log.debug("closing a broken ClickHouse client failed", exc_info=True)

    def create_database(self) -> None:
        """Creates the Shoal database if it does not exist."""
        client = self._connect(None)
        try:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        finally:
            client.close()

    # -- statements ----------------------------------------------------------------------
    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Runs a statement that returns no rows (DDL, INSERT ... SELECT, ALTER)."""
        self._run(lambda c: c.command(sql, parameters=dict(parameters or {})))

    def page(
        self,
        source: str,
        columns: str,
        where: str,
        order: str,
        parameters: Mapping[str, Any],
        *,
        offset: int = 0,
        size: int | None = None,
    ) -> tuple[list[tuple[Any, ...]], int]:
        """One page of ``SELECT columns FROM source WHERE where ORDER BY order`` (all of it when
        ``size`` is None) and how many rows match in all. ``source``, ``columns``, ``where`` and
        ``order`` are constant SQL fragments; values only through ``parameters``."""
        total = int(self.query(f"SELECT count() FROM {source} WHERE {where}", parameters).rows[0][0])
        limit = "" if size is None else " LIMIT {_size:UInt32} OFFSET {_offset:UInt64}"
        rows = self.query(
            f"SELECT {columns} FROM {source} WHERE {where} ORDER BY {order}{limit}",
            {**parameters, "_size": size or 0, "_offset": offset},
        ).rows
        return rows, total

    def query_ids(
        self, sql: str, parameters: Mapping[str, Any], name: str, ids: Sequence[str]
    ) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` for every id of ``ids``, bound as ``{name:Array(String)}`` at most IN_CHUNK at a time:
        for queries whose rows each belong to one id (grouped or filtered by it)."""
        return [row for chunk in in_chunks(ids) for row in self.query(sql, {**parameters, name: chunk}).rows]

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        """Runs a SELECT; values only through ``parameters`` (``{name:Type}`` placeholders)."""
        settings = _deadline_settings()
        result = self._run(lambda c: c.query(sql, parameters=dict(parameters or {}), settings=settings))
        return QueryResult(tuple(result.column_names), list(result.result_rows))

    def query_batches(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Runs a SELECT and yields its rows as pyarrow RecordBatches, a block at a time (from a server,
        as they arrive: memory holds one block, not the whole answer)."""
        settings = _deadline_settings()
        stream = self._run(lambda c: c.query_arrow_stream(sql, parameters=dict(parameters or {}), settings=settings))
        with stream:
            blocks = iter(stream)
            while (batch := self._run(lambda _c: next(blocks, None))) is not None:
                yield batch

    def query_arrow(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Runs a SELECT and returns its answer as a pyarrow Table."""
        settings = _deadline_settings()
        return self._run(lambda c: c.query_arrow(sql, parameters=dict(parameters or {}), settings=settings))

    def query_columns(self, sql: str, parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Runs a SELECT and returns its columns as numpy arrays, by name."""
        table = self.query_arrow(sql, parameters)
        return {name: table.column(name).to_numpy() for name in table.column_names}

    def insert(
        self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str], *, once: str | None = None
    ) -> int:
        """Inserts rows (row-major) into ``table`` of the Shoal database; returns the row count. With
        ``once``, an insert under the same token into a table that keeps a deduplication window writes
        nothing: whichever of several such inserts lands first is the only one kept."""
        if not rows:
            return 0
        settings = None if once is None else {"insert_deduplicate": 1, "insert_deduplication_token": once}
        self._run(lambda c: c.insert(table, list(rows), column_names=list(column_names), database=self.database,
                                     settings=settings))  # fmt: skip
        return len(rows)

    def insert_columns(self, table: str, columns: Sequence[Sequence[Any]], column_names: Sequence[str]) -> int:
        """Inserts column-major data (one sequence or numpy array per column)."""
        if not columns or len(columns[0]) == 0:
            return 0
        self._run(
            lambda c: c.insert(
                table, list(columns), column_names=list(column_names), database=self.database, column_oriented=True
            )
        )
        return len(columns[0])

    def insert_arrow(self, table: str, data: Any) -> int:
        """Inserts a pyarrow Table whose column names are the table's (the fast path for large
        columnar batches: no per-row Python work)."""
        if data is None or data.num_rows == 0:
            return 0
        self._run(lambda c: c.insert_arrow(table, data, database=self.database))
        return int(data.num_rows)

    def _run(self, fn: Any) -> Any:
        client = self._client()
        try:
            return fn(client)
        except ClickHouseError as exc:
            if "TIMEOUT_EXCEEDED" in str(exc) and telemetry.current_request() is not None:
                raise DeadlineExceeded("the caller's deadline passed while reading the metrics store") from exc
            # a full disk or read-only storage: the store's own words, not INTERNAL
            storage = storage_error(exc, "metrics", self.where)
            if storage is not None:
                raise storage from exc
            if _is_connection_error(exc):
                self._reset_thread_client()
                raise Unavailable(f"ClickHouse unreachable: {exc}") from exc
            raise
        except OSError as exc:
            storage = storage_error(exc, "metrics", self.where)
            if storage is not None:
                raise storage from exc
            self._reset_thread_client()
            raise Unavailable(f"ClickHouse unreachable: {exc}") from exc

    def ping(self) -> None:
        """Raises :class:`Unavailable` unless a trivial query succeeds."""
        try:
            self.query("SELECT 1")
        except Unavailable:
            raise
        except Exception as exc:
            self._reset_thread_client()
            raise Unavailable(f"ClickHouse check failed: {type(exc).__name__}: {exc}") from exc

    # -- migrations ----------------------------------------------------------------------
    def migrate(self, migrations: Iterable[Migration]) -> list[Migration]:
        """Applies the migrations not yet recorded, in (component, version) order; returns them.

        Running it twice, or from two replicas at once, applies nothing twice that matters: the
        statements are idempotent and the record is a ReplacingMergeTree row. The records go in one
        insert once every statement ran (an insert per migration was half the time of a fresh
        database's migration in chDB): a run stopped before it applies those statements again.
        """
        self.create_database()
        self.command(
            "CREATE TABLE IF NOT EXISTS schema_migrations (component LowCardinality(String), version UInt32,"
            " name String, applied_at DateTime64(3) DEFAULT now64(3))"
            " ENGINE = ReplacingMergeTree ORDER BY (component, version)"
        )
        done = {(row[0], row[1]) for row in self.query("SELECT component, version FROM schema_migrations FINAL").rows}
        applied = []
        for m in sorted(migrations, key=lambda m: (m.component, m.version)):
            if (m.component, m.version) in done:
                continue
            log.info("applying schema migration %s/%04d %s", m.component, m.version, m.name)
            for statement in m.statements:
                self.command(statement)
            applied.append(m)
        if applied:
            rows = [[m.component, m.version, m.name] for m in applied]
            self.insert("schema_migrations", rows, ["component", "version", "name"])
        return applied

    def applied_migrations(self) -> list[tuple[str, int, str]]:
        return [
            (r[0], r[1], r[2])
            for r in self.query(
                "SELECT component, version, name FROM schema_migrations FINAL ORDER BY component, version"
            ).rows
        ]

    def close(self) -> None:
        self._closed = True
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:
                log.debug("closing a ClickHouse client failed", exc_info=True)


def _deadline_settings() -> dict[str, Any] | None:
    """Query settings that stop a SELECT run for an RPC when its caller's deadline passes
    (``max_execution_time``, whole seconds, at least one); raises at once when it has passed or
    the caller cancelled. None outside an RPC or without a deadline."""
    request = telemetry.current_request()
    if request is None:
        return None
    request.check("reading the metrics store")
    remaining = request.remaining()
    if remaining is None:
        return None
    return {"max_execution_time": max(1, math.ceil(remaining))}


def _is_connection_error(exc: ClickHouseError) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("connection", "timed out", "unreachable", "refused", "max retries"))


class EmbeddedMetricsStore(MetricsStore):
    """ClickHouse embedded in this process through chDB (``chdb:///PATH``).

    chDB opens one data directory per process: every EmbeddedMetricsStore of a process must use
    the same path (tests separate themselves by database instead).
    """

    kind = "embedded"

    def __init__(self, *, path: Path, database: str) -> None:
        super().__init__(database=database)
        self.path = path.resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self.where = f"chDB data directory {self.path}"

    def in_use_elsewhere(self) -> bool:
        """Whether another process (a running ``shoal serve``) has the data directory open: chDB
        locks its ``status`` file as clickhouse-server does, and this process could not open it.
        Only meaningful before this process opened it."""
        try:
            fd = os.open(self.path / "status", os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def _connect(self, database: str | None) -> Client:
        kwargs: dict[str, Any] = {"dsn": f"chdb://{self.path}"}
        if database:
            kwargs["database"] = database
        return clickhouse_connect.get_client(**kwargs)

    def __repr__(self) -> str:
        return f"EmbeddedMetricsStore(path={str(self.path)!r}, database={self.database!r})"


class ServerMetricsStore(MetricsStore):
    """A ClickHouse server or cluster over HTTP(S) (``http(s)://host:8123``)."""

    kind = "server"

    def __init__(
        self,
        *,
        url: str,
        database: str,
        username: str = "default",
        password: str | None = None,
        verify_tls: bool = True,
        ca_file: Path | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        super().__init__(database=database)
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigurationError(f"SHOAL_METRICS_URL {url!r}: expected http(s)://host:port")
        self._host = parsed.hostname
        self._port = parsed.port or (8443 if parsed.scheme == "https" else 8123)
        self._secure = parsed.scheme == "https"
        self._username = username
        self._password = password or ""
        self._verify = verify_tls
        self._ca_file = str(ca_file) if ca_file else None
        self._timeout = timeout_seconds
        self.where = f"ClickHouse server {parsed.scheme}://{self._host}:{self._port}"

    def _connect(self, database: str | None) -> Client:
        return clickhouse_connect.get_client(
            host=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            database=database or "default",
            secure=self._secure,
            verify=self._verify,
            ca_cert=self._ca_file,
            connect_timeout=min(self._timeout, 10.0),
            send_receive_timeout=self._timeout,
            # Sessions off: one client per thread, and queries of one thread never overlap.
            autogenerate_session_id=False,
        )

    def __repr__(self) -> str:  # never the password
        scheme = "https" if self._secure else "http"
        return f"ServerMetricsStore(url='{scheme}://{self._host}:{self._port}', database={self.database!r})"


def open_metrics_store(
    url: str,
    *,
    database: str,
    username: str = "default",
    password: str | None = None,
    verify_tls: bool = True,
    ca_file: Path | None = None,
    timeout_seconds: float = 30.0,
) -> MetricsStore:
    """The store for ``url``: ``chdb:///PATH`` -> embedded, ``http(s)://`` -> server."""
    if url.startswith("chdb://"):
        path = url[len("chdb://") :]
        if not path:
            raise ConfigurationError("SHOAL_METRICS_URL chdb:// needs a path, e.g. chdb:///var/lib/shoal/clickhouse")
        return EmbeddedMetricsStore(path=Path(path), database=database)
    if url.startswith(("http://", "https://")):
        return ServerMetricsStore(
            url=url,
            database=database,
            username=username,
            password=password,
            verify_tls=verify_tls,
            ca_file=ca_file,
            timeout_seconds=timeout_seconds,
        )
    raise ConfigurationError(f"SHOAL_METRICS_URL {url!r}: use chdb:///PATH or http(s)://host:8123")
