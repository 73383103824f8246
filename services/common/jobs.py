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
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shoal.common import telemetry
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
    Migration(
        component="common",
        version=3,
        name="job signals",
        statements=(
            # append-only: a runner's heartbeats and users' cancellation requests, which no state
            # write of the job can overwrite
            "CREATE TABLE IF NOT EXISTS job_signals ("
            " project String, service LowCardinality(String), job_id String, signal LowCardinality(String),"
            " at DateTime64(3, 'UTC'), note String)"
            " ENGINE = MergeTree ORDER BY (project, service, job_id, signal) TTL toDateTime(at) + INTERVAL 7 DAY",
        ),
    ),
)
HEARTBEAT, CANCEL = "heartbeat", "cancel"

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

    def submit(self, project: str, kind: str, params: Mapping[str, str], *, rerun: bool = False) -> tuple[Job, bool]:
        """The job for (kind, params): the existing one unless it failed or was cancelled (or it
        succeeded and ``rerun`` asks for a fresh result), in which case it is queued again.
        Returns (job, created)."""
        job_id = job_id_for(kind, params)
        existing = self.find(project, job_id)
        again = (FAILED, CANCELLED, SUCCEEDED) if rerun else (FAILED, CANCELLED)
        if existing is not None and existing.state not in again:
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

    def unfinished(self) -> list[Job]:
        """Every job of this service, in any project, that is not finished."""
        rows = self.metrics.query(
            "SELECT " + ", ".join(_COLUMNS[:-1]) + " FROM jobs FINAL"
            " WHERE service = {service:String} AND state IN ('PENDING', 'RUNNING', 'CANCELLING')",
            {"service": self.service},
        ).rows
        return [_job(r) for r in rows]

    def cancel(self, project: str, job_id: str, *, reason: str = "cancelled by the user") -> Job:
        """Asks a job to stop: a pending job is cancelled at once, a running one is marked
        CANCELLING and its runner stops at its next check. The request is also recorded as a
        signal, so a runner's concurrent write of the job cannot lose it."""
        job = self.get(project, job_id)
        if job.done:
            raise FailedPrecondition(f"job {job_id} already finished as {job.state}")
        self.signal(job, CANCEL, reason)
        if job.state == PENDING:
            return self.update(job, state=CANCELLED, message=reason)
        return self.update(job, state=CANCELLING, message=reason)

    def signal(self, job: Job, signal: str, note: str = "") -> None:
        self.metrics.insert(
            "job_signals",
            [[job.project, self.service, job.job_id, signal, now_ms(), note]],
            ["project", "service", "job_id", "signal", "at", "note"],
        )

    def cancel_request(self, job: Job) -> str | None:
        """The reason of a cancellation asked since this submission of the job, if any."""
        rows = self.metrics.query(
            "SELECT note FROM job_signals WHERE project = {project:String} AND service = {service:String}"
            " AND job_id = {job_id:String} AND signal = 'cancel' AND at >= {since:DateTime64(3, 'UTC')}"
            " ORDER BY at LIMIT 1",
            {"project": job.project, "service": self.service, "job_id": job.job_id, "since": job.create_time},
        ).rows
        return str(rows[0][0]) if rows else None

    def last_heartbeats(self) -> dict[tuple[str, str], datetime]:
        """The latest heartbeat of every job of this service that has one."""
        rows = self.metrics.query(
            "SELECT project, job_id, max(at) FROM job_signals WHERE service = {service:String}"
            " AND signal = 'heartbeat' GROUP BY project, job_id",
            {"service": self.service},
        ).rows
        return {(str(p), str(j)): as_utc(at) for p, j, at in rows}


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


class Cancelled(Exception):
    """Raised inside a job's run when it was cancelled (or its runner stops): the run stops and
    its partial result is discarded."""


@dataclass(frozen=True)
class JobKind:
    #: computes the job, reporting through the context; raises to fail
    run: Callable[[JobContext], None]
    #: removes whatever a run wrote, so a cancelled, failed or interrupted run keeps nothing
    discard: Callable[[Job], None]


class JobContext:
    """What a running job sees: its parameters, progress reporting and cancellation."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self._runner = runner
        self.job = job
        # the runner has just written the job RUNNING and asked whether it was cancelled
        self._last_write = self._last_check = time.monotonic()

    @property
    def params(self) -> Mapping[str, str]:
        return self.job.params

    def progress(self, stage: str, fraction: float) -> None:
        """Reports the stage and the fraction done (written at most once a second, or four times a
        second when the stage changes), and stops the run if the job was cancelled (asked at most
        twice a second), so a loop may report as often as it likes and a job of a fraction of a
        second spends no time telling of its stages."""
        now = time.monotonic()
        if now - self._last_check >= CHECK_SECONDS:
            self.check()
            self._last_check = now
        if now - self._last_write >= (STAGE_SECONDS if stage != self.job.stage else PROGRESS_SECONDS):
            self.job = self._runner.store.update(self.job, stage=stage, progress=max(0.0, min(1.0, fraction)))
            self._last_write = now

    def check(self) -> None:
        """Raises :class:`Cancelled` if the job was cancelled or the runner is stopping."""
        if self._runner.stopping.is_set():
            raise Cancelled("the service is stopping")
        reason = self._runner.store.cancel_request(self.job)
        if reason is not None:
            raise Cancelled(reason or "cancelled")


#: a running job asks whether it was cancelled at most this often
CHECK_SECONDS = 0.5
#: a running job writes its progress at most this often, or this often when its stage changes
PROGRESS_SECONDS, STAGE_SECONDS = 1.0, 0.25


def progress_of(ctx: JobContext | None) -> Callable[[str, float], None]:
    """``ctx.progress``, or nothing for a run without a job (a benchmark or a direct call)."""
    if ctx is None:
        return lambda stage, fraction: None
    return ctx.progress


class JobRunner:
    """Runs a service's jobs one at a time on a background thread.

    Jobs are rows in the jobs table, so any replica can report them. A runner marks the jobs it
    holds alive every ``heartbeat_seconds``; a job left unmarked for ``stale_seconds`` lost its
    runner (a crash): a queued one is taken over and run, a running one is failed with the reason
    and its partial result discarded. On a graceful stop the running job is interrupted, its
    partial result discarded, and it goes back to the queue to resume when a runner is back."""

    def __init__(
        self,
        store: JobStore,
        kinds: Mapping[str, JobKind],
        *,
        heartbeat_seconds: float = 5.0,
        stale_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.kinds = dict(kinds)
        self.name = f"{store.service}-jobs"
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.stopping = threading.Event()
        self._queue: queue.Queue[Job] = queue.Queue()
        self._held: dict[tuple[str, str], Job] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- submitting --------------------------------------------------------------------------

    def submit(self, project: str, kind: str, params: Mapping[str, str], *, rerun: bool = False) -> Job:
        """The job for (kind, params), queued unless it already exists and did not fail (see
        :meth:`JobStore.submit`)."""
        if kind not in self.kinds:
            raise InvalidArgument(f"unknown job kind {kind!r}", field="kind")
        job, created = self.store.submit(project, kind, params, rerun=rerun)
        if created:
            self._enqueue(job)
        return job

    def _enqueue(self, job: Job) -> None:
        with self._lock:
            self._held[(job.project, job.job_id)] = job
        self._queue.put(job)

    # -- BackgroundWorker ----------------------------------------------------------------------

    def start(self) -> None:
        self.stopping.clear()
        for target, name in ((self._work, self.name), (self._watch, f"{self.name}-heartbeat")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout_seconds: float) -> None:
        self.stopping.set()
        self._queue.put(None)  # type: ignore[arg-type]  # wakes the worker
        deadline = time.monotonic() + timeout_seconds
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def healthy(self) -> bool:
        return all(t.is_alive() for t in self._threads)

    # -- threads -------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self.stopping.is_set():
            job = self._queue.get()
            if job is None or self.stopping.is_set():
                break
            try:
                self._run(job)
            except Exception:  # the job store itself failed: keep the thread for the next job
                log.exception("job %s of project %r could not be recorded", job.job_id, job.project)
            finally:
                with self._lock:
                    self._held.pop((job.project, job.job_id), None)

    def _run(self, job: Job) -> None:
        current = self.store.find(job.project, job.job_id)
        if current is None or current.state != PENDING:  # cancelled while queued, or taken over
            return
        if self.store.cancel_request(current) is not None:
            self.store.update(current, state=CANCELLED)
            return
        kind = self.kinds[job.kind]
        job = self.store.update(current, state=RUNNING, stage="starting", progress=0.0, message="")
        with self._lock:
            self._held[(job.project, job.job_id)] = job
        ctx = JobContext(self, job)
        started = time.monotonic()
        service = self.store.service
        outcome = "failed"
        telemetry.JOBS_RUNNING.labels(service).inc()
        try:
            outcome = self._execute(kind, job, ctx, started)
        finally:
            telemetry.JOBS_RUNNING.labels(service).dec()
            telemetry.JOB_SECONDS.labels(service, job.kind, outcome).observe(time.monotonic() - started)

    def _execute(self, kind: JobKind, job: Job, ctx: JobContext, started: float) -> str:
        """Runs a job that is RUNNING and records how it ended; returns the outcome for the
        duration metric: succeeded, failed, cancelled or interrupted."""
        try:
            kind.run(ctx)
            ctx.check()
        except Cancelled as exc:
            kind.discard(job)
            latest = self.store.find(job.project, job.job_id) or job
            if self.stopping.is_set() and latest.state == RUNNING:
                note = "interrupted by a service stop; runs again when the service is back"
                self.store.update(latest, state=PENDING, stage="queued", progress=0.0, message=note)
                log.info("job %s interrupted by the stop; queued again", job.job_id)
                return "interrupted"
            self.store.update(latest, state=CANCELLED, message=str(exc))
            log.info("job %s cancelled after %.1fs", job.job_id, time.monotonic() - started)
            return "cancelled"
        except Exception as exc:
            log.exception("job %s (%s) of project %r failed", job.job_id, job.kind, job.project)
            kind.discard(job)
            self.store.update(self.store.find(job.project, job.job_id) or job, state=FAILED,
                              message=f"{type(exc).__name__}: {exc}")  # fmt: skip
            return "failed"
        self.store.update(self.store.find(job.project, job.job_id) or job, state=SUCCEEDED, stage="done", progress=1.0)
        log.info("job %s (%s) of project %r succeeded in %.1fs", job.job_id, job.kind, job.project,
                 time.monotonic() - started)  # fmt: skip
        return "succeeded"

    def _watch(self) -> None:
        """Marks the held jobs alive and recovers the jobs whose runner is gone."""
        while not self.stopping.is_set():
            try:
                self._heartbeat()
                self.recover()
            except Exception:
                log.exception("job heartbeat failed; retrying")
            self.stopping.wait(self.heartbeat_seconds)

    def _heartbeat(self) -> None:
        """A signal per held job: never a write of the job itself, which could overwrite a
        concurrent change of its state."""
        with self._lock:
            held = list(self._held.values())
        for job in held:
            self.store.signal(job, HEARTBEAT)

    def recover(self) -> None:
        """Queued jobs nobody marked for ``stale_seconds`` are taken over; running ones are
        failed (their runner stopped without a word) and their partial results discarded."""
        cutoff = now_ms() - timedelta(seconds=self.stale_seconds)
        with self._lock:
            held = set(self._held)
        beats = self.store.last_heartbeats()
        for job in self.store.unfinished():
            key = (job.project, job.job_id)
            alive = max(job.update_time, beats.get(key, job.update_time))
            if key in held or alive > cutoff or job.kind not in self.kinds:
                continue
            if job.state == PENDING:
                log.info("taking over queued job %s of project %r", job.job_id, job.project)
                self._enqueue(self.store.update(job))
                continue
            self.kinds[job.kind].discard(job)
            self.store.update(job, state=FAILED if job.state == RUNNING else CANCELLED,
                              message=f"the {self.store.service} service stopped while the job was {job.state}"
                                      f" (no sign of life for {self.stale_seconds:.0f}s); start it again")  # fmt: skip
