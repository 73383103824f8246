"""What the jobs of the analysis and sampler services share about their results: a summary per
job (JSON in ``job_results``, keyed by service) and rows keyed by (project, job_id) in their own
tables, removed together when a run is discarded.

``job_results`` was first created by the analysis service's migration 4 and the sampler's
migration 1, each with the same ``CREATE TABLE IF NOT EXISTS``; it is now declared here alone, by a
migration of its own (``common`` 4). A deployment that has the table applies it as a no-op.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from shoal.common.jobs import Job
from shoal.common.stores.metrics import MetricsStore, Migration

SERVICE = "analysis"
T = TypeVar("T", bound="JsonSummary")
MIGRATIONS = (
    Migration(
        component="common",
        version=4,
        name="job results",
        statements=(
            "CREATE TABLE IF NOT EXISTS job_results ("
            " project String, service LowCardinality(String), job_id String, result String, version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, service, job_id)",
        ),
    ),
)


class JsonSummary:
    """A dataclass summary stored as JSON in ``job_results``."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls(**json.loads(text))


def summary_of(metrics: MetricsStore, project: str, job_id: str, kind: type[Any], *, service: str = SERVICE) -> Any:
    """A finished job's summary as ``kind`` (None when it kept none)."""
    text = load_summary(metrics, project, job_id, service=service)
    return kind.from_json(text) if text is not None else None


def save_summary(metrics: MetricsStore, job: Job, summary_json: str) -> None:
    metrics.insert(
        "job_results",
        [[job.project, job.service, job.job_id, summary_json, time.time_ns()]],
        ["project", "service", "job_id", "result", "version"],
    )


def load_summary(metrics: MetricsStore, project: str, job_id: str, *, service: str = SERVICE) -> str | None:
    rows = metrics.query(
        "SELECT result FROM job_results FINAL WHERE project = {project:String} AND service = {service:String}"
        " AND job_id = {job:String}",
        {"project": project, "service": service, "job": job_id},
    ).rows
    return str(rows[0][0]) if rows else None


def discard(metrics: MetricsStore, job: Job, tables: Sequence[str]) -> None:
    """Removes a run's rows from ``tables`` and its summary (a cancelled or failed run keeps nothing)."""
    params = {"project": job.project, "job": job.job_id, "service": job.service}
    for table in tables:
        metrics.command(f"DELETE FROM {table} WHERE project = {{project:String}} AND job_id = {{job:String}}", params)
    metrics.command(
        "DELETE FROM job_results WHERE project = {project:String} AND service = {service:String}"
        " AND job_id = {job:String}",
        params,
    )
