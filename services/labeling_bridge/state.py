"""What the labeling bridge remembers, in ClickHouse: requests, the state of each of their frames,
the annotations already applied, and the polling cursor of each platform project.

Every table is a ``ReplacingMergeTree(version)`` read with ``FINAL``: a state change is a new row
with a larger version, so writing the same change twice (a redelivered event, a repeated webhook)
leaves one row.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shoal.common.stores.metrics import MetricsStore, Migration

MIGRATIONS = (
    Migration(
        component="labeling_bridge",
        version=1,
        name="labeling requests, items, applied annotations and cursors",
        statements=(
            "CREATE TABLE IF NOT EXISTS lb_requests ("
            " project LowCardinality(String), request_id String, dataset LowCardinality(String),"
            " platform LowCardinality(String), source String, reason String, preannotation_inference_set String,"
            " requested_by String, requested_time DateTime64(3, 'UTC'), frames UInt32,"
            " state LowCardinality(String), attempts UInt32, last_error String,"
            " next_attempt_time DateTime64(3, 'UTC'), platform_project_id String, platform_project_url String,"
            " version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY (project, request_id)",
            "CREATE TABLE IF NOT EXISTS lb_items ("
            " project LowCardinality(String), request_id String, dataset LowCardinality(String), frame_id String,"
            " position UInt32, reason String, state LowCardinality(String), task_id String,"
            " base_label_version String, annotation_id String, annotator String,"
            " annotated_time Nullable(DateTime64(6, 'UTC')), error String, label_version String,"
            " updated_time DateTime64(3, 'UTC'), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, request_id, dataset, frame_id)",
            # one row per (annotation, revision) the bridge has dealt with, and how
            "CREATE TABLE IF NOT EXISTS lb_applied ("
            " project LowCardinality(String), platform LowCardinality(String), annotation_id String,"
            " updated DateTime64(6, 'UTC'), outcome LowCardinality(String), applied_time DateTime64(3, 'UTC'))"
            " ENGINE = ReplacingMergeTree ORDER BY (project, platform, annotation_id, updated)",
            "CREATE TABLE IF NOT EXISTS lb_cursors ("
            " project LowCardinality(String), platform LowCardinality(String), platform_project_id String,"
            " since DateTime64(6, 'UTC'), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, platform, platform_project_id)",
        ),
    ),
)

#: request states
PENDING, SENT, FAILED = "PENDING", "SENT", "FAILED"
#: item states (PENDING and SENT and FAILED as above)
ANNOTATED, SYNCED, CONFLICT = "ANNOTATED", "SYNCED", "CONFLICT"
ITEM_STATES = (PENDING, SENT, ANNOTATED, SYNCED, CONFLICT, FAILED)

_REQUEST_COLUMNS = (
    "project",
    "request_id",
    "dataset",
    "platform",
    "source",
    "reason",
    "preannotation_inference_set",
    "requested_by",
    "requested_time",
    "frames",
    "state",
    "attempts",
    "last_error",
    "next_attempt_time",
    "platform_project_id",
    "platform_project_url",
    "version",
)
_ITEM_COLUMNS = (
    "project",
    "request_id",
    "dataset",
    "frame_id",
    "position",
    "reason",
    "state",
    "task_id",
    "base_label_version",
    "annotation_id",
    "annotator",
    "annotated_time",
    "error",
    "label_version",
    "updated_time",
    "version",
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _version() -> int:
    return time.time_ns()


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


@dataclass(frozen=True)
class Request:
    project: str
    request_id: str
    dataset: str
    platform: str
    source: str
    reason: str
    preannotation_inference_set: str
    requested_by: str
    requested_time: dt.datetime
    frames: int
    state: str = PENDING
    attempts: int = 0
    last_error: str = ""
    next_attempt_time: dt.datetime = field(default_factory=_now)
    platform_project_id: str = ""
    platform_project_url: str = ""

    def row(self) -> list[Any]:
        return [getattr(self, c) for c in _REQUEST_COLUMNS[:-1]] + [_version()]


@dataclass(frozen=True)
class Item:
    project: str
    request_id: str
    dataset: str
    frame_id: str
    position: int
    reason: str
    state: str = PENDING
    task_id: str = ""
    base_label_version: str = ""
    annotation_id: str = ""
    annotator: str = ""
    annotated_time: dt.datetime | None = None
    error: str = ""
    label_version: str = ""
    updated_time: dt.datetime = field(default_factory=_now)

    @property
    def external_id(self) -> str:
        return f"{self.dataset}/{self.frame_id}"

    def row(self) -> list[Any]:
        return [getattr(self, c) for c in _ITEM_COLUMNS[:-1]] + [_version()]


class BridgeState:
    def __init__(self, metrics: MetricsStore) -> None:
        self.metrics = metrics

    # -- requests ---------------------------------------------------------------------------
    def put_request(self, r: Request) -> None:
        self.metrics.insert("lb_requests", [r.row()], _REQUEST_COLUMNS)

    def request(self, project: str, request_id: str) -> Request | None:
        rows = self._requests("project = {p:String} AND request_id = {r:String}", {"p": project, "r": request_id})
        return rows[0] if rows else None

    def requests(self, project: str, *, offset: int = 0, size: int = 100) -> tuple[list[Request], int]:
        columns = ", ".join(_REQUEST_COLUMNS[:-1])
        order = "requested_time DESC, request_id"
        rows, total = self.metrics.page("lb_requests FINAL", columns, "project = {p:String}", order, {"p": project},
                                        offset=offset, size=size)  # fmt: skip
        return [Request(*[_utc(v) for v in row]) for row in rows], total

    def due_requests(self, now: dt.datetime) -> list[Request]:
        """Pending requests whose next attempt is due, oldest first."""
        return self._requests(
            "state = {s:String} AND next_attempt_time <= {t:DateTime64(3, 'UTC')}",
            {"s": PENDING, "t": now},
            tail=" ORDER BY requested_time",
        )

    def platform_projects(self) -> list[tuple[str, str, str, str]]:
        """(project, dataset, platform, platform project id) of every request that reached a platform."""
        rows = self.metrics.query(
            "SELECT DISTINCT project, dataset, platform, platform_project_id FROM lb_requests FINAL"
            " WHERE platform_project_id != '' ORDER BY project, dataset"
        ).rows
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    def _requests(self, where: str, params: dict[str, Any], tail: str = "") -> list[Request]:
        cols = ", ".join(_REQUEST_COLUMNS[:-1])
        rows = self.metrics.query(f"SELECT {cols} FROM lb_requests FINAL WHERE {where}{tail}", params).rows
        return [Request(*[_utc(v) for v in row]) for row in rows]

    # -- items ------------------------------------------------------------------------------
    def put_items(self, items: Sequence[Item]) -> None:
        if items:
            self.metrics.insert("lb_items", [i.row() for i in items], _ITEM_COLUMNS)

    def items(
        self,
        project: str,
        *,
        request_id: str = "",
        states: Iterable[str] = (),
        frames: tuple[str, Sequence[str]] | None = None,
        offset: int = 0,
        size: int | None = None,
    ) -> tuple[list[Item], int]:
        """Items of the project (of one request, in some states, of some frames of a dataset), by
        request and position."""
        where = ["project = {p:String}"]
        params: dict[str, Any] = {"p": project}
        if request_id:
            where.append("request_id = {r:String}")
            params["r"] = request_id
        states = list(states)
        if states:
            where.append("state IN {s:Array(String)}")
            params["s"] = states
        columns = ", ".join(_ITEM_COLUMNS[:-1])
        if frames is None:
            rows, total = self.metrics.page("lb_items FINAL", columns, " AND ".join(where), "request_id, position",
                                            params, offset=offset, size=size)  # fmt: skip
        else:  # a request's frames may be many: asked for a chunk at a time, then ordered here
            where.append("dataset = {d:String} AND frame_id IN {f:Array(String)}")
            params["d"] = frames[0]
            found = self.metrics.query_ids(f"SELECT {columns} FROM lb_items FINAL WHERE {' AND '.join(where)}",
                                           params, "f", frames[1])  # fmt: skip
            found.sort(key=lambda row: (row[_ITEM_COLUMNS.index("request_id")], row[_ITEM_COLUMNS.index("position")]))
            rows, total = found[offset : None if size is None else offset + size], len(found)
        return [Item(*[_utc(v) for v in row]) for row in rows], total

    def counts(self, project: str, request_id: str) -> dict[str, int]:
        rows = self.metrics.query(
            "SELECT state, count() FROM lb_items FINAL WHERE project = {p:String} AND request_id = {r:String}"
            " GROUP BY state",
            {"p": project, "r": request_id},
        ).rows
        return {str(s): int(n) for s, n in rows}

    # -- annotations ------------------------------------------------------------------------
    def applied(self, project: str, platform: str, keys: Sequence[tuple[str, dt.datetime]]) -> set[tuple[str, str]]:
        """Which (annotation id, updated time) pairs were dealt with before; times as ISO strings."""
        if not keys:
            return set()
        rows = self.metrics.query(
            "SELECT annotation_id, updated FROM lb_applied WHERE project = {p:String} AND platform = {pl:String}"
            " AND annotation_id IN {ids:Array(String)}",
            {"p": project, "pl": platform, "ids": sorted({k for k, _ in keys})},
        ).rows
        return {(str(a), _utc(u).isoformat()) for a, u in rows}

    def mark_applied(self, project: str, platform: str, done: Sequence[tuple[str, dt.datetime, str]]) -> None:
        now = _now()
        rows = [[project, platform, a, u, outcome, now] for a, u, outcome in done]
        if rows:
            self.metrics.insert(
                "lb_applied", rows, ("project", "platform", "annotation_id", "updated", "outcome", "applied_time")
            )

    # -- cursors ----------------------------------------------------------------------------
    def cursor(self, project: str, platform: str, platform_project_id: str) -> dt.datetime | None:
        rows = self.metrics.query(
            "SELECT since FROM lb_cursors FINAL WHERE project = {p:String} AND platform = {pl:String}"
            " AND platform_project_id = {pp:String}",
            {"p": project, "pl": platform, "pp": platform_project_id},
        ).rows
        return _utc(rows[0][0]) if rows else None

    def set_cursor(self, project: str, platform: str, platform_project_id: str, since: dt.datetime) -> None:
        self.metrics.insert(
            "lb_cursors",
            [[project, platform, platform_project_id, since, _version()]],
            ("project", "platform", "platform_project_id", "since", "version"),
        )


def with_state(item: Item, state: str, **changes: Any) -> Item:
    return replace(item, state=state, updated_time=_now(), **changes)
