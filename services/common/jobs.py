"""Jobs: the handle on every long computation (start, progress, cancel, result).

A job row lives in the metrics store, keyed by (project, service, job id); every change writes
a new revision of the row (ReplacingMergeTree), so the latest state wins and writes are
idempotent. The runner of a job reports stage and progress and checks for cancellation between
steps; a cancelled job keeps no partial result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from shoal.common.errors import FailedPrecondition, InvalidArgument, NotFound
from shoal.common.pagination import Page
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.timeutil import as_utc, now_ms

log = logging.getLogger(__name__)

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLING, CANCELLED = (
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLING",
    "CANCELLED",
)
STATES = (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLING, CANCELLED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

MIGRATIONS = (
    Migration(
        component="common",
        version=2,
        name="jobs",
        statements=(
            "CREATE TABLE IF NOT EXISTS jobs ("
            " project String, service LowCardinality(String), job_id String, kind LowCardinality(String),"
            " state LowCardinality(String), stage String, progress Float64, message String,"
            " params Map(String, String), create_time DateTime64(3, 'UTC'), update_time DateTime64(3, 'UTC'),"
            " finish_time Nullable(DateTime64(3, 'UTC')), revision UInt64)"
            " ENGINE = ReplacingMergeTree(revision) ORDER BY (project, service, job_id)",
        ),
    ),
)

_COLUMNS = (
    "project",
    "service",
    "job_id",
    "kind",
    "state",
    "stage",
    "progress",
    "message",
    "params",
    "create_time",
    "update_time",
    "finish_time",
    "revision",
)


@dataclass(frozen=True)
class Job:
    project: str
    service: str
    job_id: str
    kind: str
    state: str = PENDING
    stage: str = ""
    progress: float = 0.0
    message: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    create_time: datetime = field(default_factory=now_ms)
    update_time: datetime = field(default_factory=now_ms)
    finish_time: datetime | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


def job_id_for(kind: str, params: Mapping[str, str]) -> str:
    """The same kind and parameters give the same id: re-running a job is idempotent."""
    digest = hashlib.sha256(json.dumps([kind, sorted(params.items())]).encode()).hexdigest()[:20]
    return f"{kind}-{digest}"


class JobStore:
    def __init__(self, metrics: MetricsStore, *, service: str) -> None:
        self.metrics = metrics
        self.service = service

    def _write(self, job: Job) -> Job:
        self.metrics.insert(
            "jobs",
            [
                [
                    job.project,
                    job.service,
                    job.job_id,
                    job.kind,
                    job.state,
                    job.stage,
                    float(job.progress),
                    job.message,
                    dict(job.params),
                    job.create_time,
                    job.update_time,
                    job.finish_time,
                    time.time_ns(),
                ]
            ],
            _COLUMNS,
        )
        return job

    def submit(self, project: str, kind: str, params: Mapping[str, str]) -> tuple[Job, bool]:
        """The job for (kind, params): the existing one unless it failed or was cancelled, in
        which case it is queued again. Returns (job, created)."""
        job_id = job_id_for(kind, params)
        existing = self.find(project, job_id)
        if existing is not None and existing.state not in (FAILED, CANCELLED):
            return existing, False
        now = now_ms()
        job = Job(project, self.service, job_id, kind, PENDING, "queued", 0.0, "", dict(params), now, now, None)
        return self._write(job), True

    def find(self, project: str, job_id: str) -> Job | None:
        rows = self.metrics.query(
            "SELECT " + ", ".join(_COLUMNS[:-1]) + " FROM jobs FINAL"
            " WHERE project = {project:String} AND service = {service:String} AND job_id = {job_id:String}",
            {"project": project, "service": self.service, "job_id": job_id},
        ).rows
        return _job(rows[0]) if rows else None

    def get(self, project: str, job_id: str) -> Job:
        if not job_id:
            raise InvalidArgument("is empty", field="job_id")
        job = self.find(project, job_id)
        if job is None:
            raise NotFound(f"project {project!r} has no {self.service} job {job_id!r}")
        return job

    def list(self, project: str, *, states: Sequence[str] = (), page: Page) -> tuple[list[Job], int]:
        for s in states:
            if s not in STATES:
                raise InvalidArgument(f"unknown job state {s!r}", field="states")
        where = "project = {project:String} AND service = {service:String}"
        params: dict[str, object] = {"project": project, "service": self.service}
        if states:
            where += " AND state IN {states:Array(String)}"
            params["states"] = list(states)
        total = int(self.metrics.query(f"SELECT count() FROM jobs FINAL WHERE {where}", params).scalar() or 0)
        rows = self.metrics.query(
            "SELECT " + ", ".join(_COLUMNS[:-1]) + f" FROM jobs FINAL WHERE {where}"
            " ORDER BY create_time DESC, job_id LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
            {**params, "limit": page.size, "offset": page.offset},
        ).rows
        return [_job(r) for r in rows], total

    def update(self, job: Job, **changes: object) -> Job:
        now = now_ms()
        new = replace(job, update_time=now, **changes)  # type: ignore[arg-type]
        if new.state in TERMINAL and new.finish_time is None:
            new = replace(new, finish_time=now)
        return self._write(new)

    def cancel(self, project: str, job_id: str, *, reason: str = "cancelled by the user") -> Job:
        """Asks a job to stop: a pending job is cancelled at once, a running one is marked
        CANCELLING and its runner stops at its next check."""
        job = self.get(project, job_id)
        if job.done:
            raise FailedPrecondition(f"job {job_id} already finished as {job.state}")
        if job.state == PENDING:
            return self.update(job, state=CANCELLED, message=reason)
        return self.update(job, state=CANCELLING, message=reason)


def _job(row: Sequence[object]) -> Job:
    (project, service, job_id, kind, state, stage, progress, message, params, ct, ut, ft) = row
    return Job(
        str(project),
        str(service),
        str(job_id),
        str(kind),
        str(state),
        str(stage),
        float(progress),  # type: ignore[arg-type]
        str(message),
        dict(params),  # type: ignore[call-overload]
        as_utc(ct),
        as_utc(ut),
        as_utc(ft) if ft is not None else None,
    )
