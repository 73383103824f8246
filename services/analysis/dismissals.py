"""Dismissed label issues: frames (and detection objects) a person judged to be labeled right.

A dismissal belongs to the frame's dataset, not to the job that flagged it, so a rerun of the job,
or another label-issues job of the dataset, leaves it out too. It records the frame's latest label
version when it was made and is in force only while that version is still the latest: a relabel
opens the issue again. One row per (project, dataset, frame, object) holds the latest decision
(``object_id`` is ``""`` for a whole frame); restoring writes ``dismissed = 0`` over it.

Queries leave dismissed issues out with :func:`in_force_sql`, a subquery over the dismissals of one
dataset joined to the latest label versions of their frames only, so its cost grows with the
dismissals, not with the dataset.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.timeutil import now_ms

MIGRATIONS = (
    Migration(
        component="analysis",
        version=10,
        name="label issue dismissals",
        statements=(
            "CREATE TABLE IF NOT EXISTS label_issue_dismissals ("
            " project LowCardinality(String), dataset LowCardinality(String), frame_id String, object_id String,"
            " label_version String, dismissed UInt8, job_id String, reason String, dismissed_by String,"
            " update_time DateTime64(3, 'UTC'), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, dataset, frame_id, object_id)",
        ),
    ),
)


def latest_label_versions(
    metrics: MetricsStore, project: str, dataset: str, frame_ids: Sequence[str]
) -> dict[str, str]:
    """The latest label version of each of these frames (frames without labels are left out)."""
    rows = metrics.query_ids(
        "SELECT frame_id, argMax(label_version, (version_time, label_version)) FROM label_versions"
        " WHERE project = {project:String} AND dataset = {dataset:String} AND frame_id IN {ids:Array(String)}"
        " GROUP BY frame_id",
        {"project": project, "dataset": dataset},
        "ids",
        sorted(set(frame_ids)),
    )
    return {str(f): str(v) for f, v in rows}


def record(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    items: Sequence[tuple[str, str]],
    *,
    dismissed: bool,
    job_id: str,
    reason: str,
    dismissed_by: str,
) -> None:
    """Dismisses (or restores) ``items``, (frame id, object id or ``""``) pairs of the dataset, on
    their frames' current label versions."""
    versions = latest_label_versions(metrics, project, dataset, [f for f, _ in items])
    now, stamp = now_ms(), time.time_ns()
    decision = [int(dismissed), job_id, reason, dismissed_by, now, stamp]
    rows = [[project, dataset, frame, obj, versions.get(frame, ""), *decision] for frame, obj in dict.fromkeys(items)]
    columns = ("project", "dataset", "frame_id", "object_id", "label_version", "dismissed", "job_id", "reason",
               "dismissed_by", "update_time", "version")  # fmt: skip
    metrics.insert("label_issue_dismissals", rows, columns)


#: the tables :func:`in_force_sql` reads
IN_FORCE_TABLES = ("label_issue_dismissals", "label_versions")


def in_force_sql() -> str:
    """SQL of the (frame_id, object_id) pairs dismissed in the dataset and still in force (their
    frame's latest label version is the one they were dismissed on); ``{project:String}`` and
    ``{dataset:String}`` bound."""
    mine = "project = {project:String} AND dataset = {dataset:String}"
    dismissed = (
        f"SELECT frame_id, object_id, label_version FROM label_issue_dismissals FINAL WHERE {mine} AND dismissed = 1"
    )
    return (
        f"SELECT d.frame_id AS frame_id, d.object_id AS object_id FROM ({dismissed}) AS d"
        " INNER JOIN (SELECT frame_id, argMax(label_version, (version_time, label_version)) AS latest"
        f" FROM label_versions WHERE {mine} AND frame_id IN (SELECT frame_id FROM ({dismissed})) GROUP BY frame_id)"
        " AS l ON l.frame_id = d.frame_id AND l.latest = d.label_version"
    )


def frame_dismissed_sql() -> str:
    """A condition on a row's ``frame_id``: its frame is dismissed as a whole."""
    return f"frame_id IN (SELECT frame_id FROM ({in_force_sql()}) WHERE object_id = '')"


def object_dismissed_sql() -> str:
    """A condition on a row's ``frame_id`` and ``object_id``: the object, or its whole frame, is dismissed."""
    return (
        f"({frame_dismissed_sql()} OR (frame_id, object_id) IN"
        f" (SELECT frame_id, object_id FROM ({in_force_sql()}) WHERE object_id != ''))"
    )


def page(
    metrics: MetricsStore,
    source: str,
    columns: str,
    where: str,
    order: str,
    params: dict[str, Any],
    *,
    dismissed: str,
    include_dismissed: bool,
    offset: int,
    size: int,
) -> tuple[list[tuple[Any, ...]], int, int]:
    """A page of ``SELECT columns FROM source WHERE where`` as :meth:`MetricsStore.page` reads it,
    each row ending with whether ``dismissed`` (a condition) holds for it, dismissed rows left out
    unless ``include_dismissed``; with the rows' count and how many of the matching rows are
    dismissed. ``params`` must bind ``project`` and ``dataset``."""
    total, n_dismissed = metrics.query(
        f"SELECT count(), countIf(_dismissed) FROM (SELECT {dismissed} AS _dismissed FROM {source} WHERE {where})",
        params,
    ).rows[0]
    kept = where if include_dismissed else f"{where} AND NOT ({dismissed})"
    rows = metrics.query(
        f"SELECT {columns}, {dismissed} FROM {source} WHERE {kept} ORDER BY {order}"
        " LIMIT {_size:UInt32} OFFSET {_offset:UInt64}",
        {**params, "_size": size, "_offset": offset},
    ).rows
    total, n_dismissed = int(total), int(n_dismissed)
    return rows, total if include_dismissed else total - n_dismissed, n_dismissed


def frame_issues_page(
    metrics: MetricsStore,
    table: str,
    columns: str,
    order: str,
    project: str,
    job_id: str,
    dataset: str,
    *,
    all_frames: bool,
    include_dismissed: bool,
    offset: int,
    size: int,
) -> tuple[list[tuple[Any, ...]], int, int]:
    """A page of a job's rows in a table of one row per examined frame (``project``, ``job_id``,
    ``frame_id``, ``is_issue``): the flagged frames (every one with ``all_frames``) in ``order``, as
    :func:`page` reads them, whole frames dismissed left out unless ``include_dismissed``."""
    where = "project = {project:String} AND job_id = {job:String}" + ("" if all_frames else " AND is_issue")
    params = {"project": project, "job": job_id, "dataset": dataset}
    return page(
        metrics,
        f"{table} FINAL",
        columns,
        where,
        order,
        params,
        dismissed=frame_dismissed_sql(),
        include_dismissed=include_dismissed,
        offset=offset,
        size=size,
    )


def examined(metrics: MetricsStore, table: str, project: str, job_id: str, frame_ids: Sequence[str]) -> set[str]:
    """Which of these frames a job examined, in its table of one row per examined frame."""
    rows = metrics.query_ids(
        f"SELECT DISTINCT frame_id FROM {table} WHERE project = {{project:String}} AND job_id = {{job:String}}"
        " AND frame_id IN {ids:Array(String)}",
        {"project": project, "job": job_id},
        "ids",
        sorted(set(frame_ids)),
    )
    return {str(r[0]) for r in rows}
