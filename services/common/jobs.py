"""Jobs: the handle on every long computation (start, progress, cancel, result).

A job row lives in the metrics store, keyed by (project, service, job id); every change writes
a new revision of the row (ReplacingMergeTree), so the latest state wins and writes are
idempotent. The runner of a job reports stage and progress and checks for cancellation between
steps; a cancelled job keeps no partial result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

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
    Migration(
        component="common",
        version=5,
        name="job claims",
        statements=(
            # who runs each submission of a job: the first claim of a (job, claim) wins, the others are
            # dropped by the insert's deduplication token (atomic on one server and across replicas)
            "CREATE TABLE IF NOT EXISTS job_claims ("
            " project String, service LowCardinality(String), job_id String, claim String, runner String,"
            " at DateTime64(3, 'UTC'))"
            " ENGINE = MergeTree ORDER BY (project, service, job_id, claim) TTL toDateTime(at) + INTERVAL 7 DAY"
            " SETTINGS non_replicated_deduplication_window = 100000",
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

    def latest_succeeded(self, kind: str, by: Sequence[str], limit: int) -> list[Job]:
        """Of this service's succeeded jobs of ``kind``, in any project, the newest one per project and
        value of the params ``by``; at most ``limit``, the newest first."""
        per = ", ".join(["project", *(f"params[{{by{i}:String}}]" for i in range(len(by)))])
        params: dict[str, object] = {"service": self.service, "kind": kind, "state": SUCCEEDED, "limit": limit}
        params.update((f"by{i}", b) for i, b in enumerate(by))
        rows = self.metrics.query(
            "SELECT " + ", ".join(_COLUMNS[:-1]) + " FROM jobs FINAL WHERE service = {service:String}"
            " AND kind = {kind:String} AND state = {state:String}"
            f" ORDER BY finish_time DESC, job_id LIMIT 1 BY {per} LIMIT {{limit:UInt32}}",
            params,
        ).rows
        return [_job(r) for r in rows]

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

    def claim(self, job: Job, runner: str, part: str = "") -> bool:
        """Whether ``runner`` won ``job`` as it was read (its state and last update), or the ``part``
        of it (a shard): of every runner that claims the same row, exactly one wins, however many
        replicas race for it. The claim is one insert whose deduplication token names the row, so only
        the first lands; the winner is read back."""
        claim = revision(job) + (f"#{part}" if part else "")
        key = {"project": job.project, "service": self.service, "job_id": job.job_id, "claim": claim}
        self.metrics.insert(
            "job_claims",
            [[job.project, self.service, job.job_id, claim, runner, now_ms()]],
            ["project", "service", "job_id", "claim", "runner", "at"],
            once="/".join(key.values()),
        )
        rows = self.metrics.query(
            "SELECT runner FROM job_claims WHERE project = {project:String} AND service = {service:String}"
            " AND job_id = {job_id:String} AND claim = {claim:String} ORDER BY at, runner LIMIT 1",
            key,
        ).rows
        return bool(rows) and str(rows[0][0]) == runner

    def last_heartbeats(self) -> dict[tuple[str, str], datetime]:
        """The latest heartbeat of every job of this service that has one."""
        rows = self.metrics.query(
            "SELECT project, job_id, max(at) FROM job_signals WHERE service = {service:String}"
            " AND signal = 'heartbeat' GROUP BY project, job_id",
            {"service": self.service},
        ).rows
        return {(str(p), str(j)): as_utc(at) for p, j, at in rows}


def revision(job: Job) -> str:
    """Names the row of ``job`` as it was read (its state and last update): what a runner claims."""
    return f"{job.state}@{job.update_time.isoformat()}"


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
    #: for a job that can be split over the Pods of an Indexed Job: computes shard i of n and writes its
    #: part (run again, the same part); ``run`` then finishes the job from the parts (``JobContext.shards``)
    shard: Callable[[JobContext, int, int], None] | None = None
    #: how many shards a job is split into, at most the number given (1: not split)
    shards: Callable[[Job, int], int] | None = None


class JobContext:
    """What a running job sees: its parameters, progress reporting and cancellation."""

    def __init__(self, runner: JobRunner, job: Job, shards: int = 0) -> None:
        self._runner = runner
        self.job = job
        #: more than 1: the job's shards wrote its parts (JobKind.shard), which this run finishes from
        self.shards = shards
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
        write = now - self._last_write >= (STAGE_SECONDS if stage != self.job.stage else PROGRESS_SECONDS)
        # a write of the row is preceded by a check: the row it writes (RUNNING) must not land after a
        # cancellation's, which it would undo until the run noticed (the signal is recorded first)
        if write or now - self._last_check >= CHECK_SECONDS:
            self.check()
            self._last_check = now
        if write:
            self.job = self._runner.store.update(self.job, stage=stage, progress=max(0.0, min(1.0, fraction)))
            self._last_write = now

    def check(self) -> None:
        """Raises :class:`Cancelled` if the job was cancelled or the runner is stopping."""
        if self._runner.stopping.is_set():
            raise Cancelled("the service is stopping")
        reason = self._runner.store.cancel_request(self.job)
        if reason is not None:
            raise Cancelled(reason or "cancelled")


class ShardContext(JobContext):
    """What a shard of a job sees: the job as it was queued, which it never writes (its row names the
    submission every shard of it checks); progress only asks whether the job was cancelled."""

    def __init__(self, runner: JobRunner, job: Job, shard: int, shards: int) -> None:
        super().__init__(runner, job)
        self.shard = shard
        self.shards_of = shards

    def progress(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self._last_check >= CHECK_SECONDS:
            self.check()
            self._last_check = now


#: a running job asks whether it was cancelled at most this often
CHECK_SECONDS = 0.5
#: a running job writes its progress at most this often, or this often when its stage changes
PROGRESS_SECONDS, STAGE_SECONDS = 1.0, 0.25


def progress_of(ctx: JobContext | None) -> Callable[[str, float], None]:
    """``ctx.progress``, or nothing for a run without a job (a benchmark or a direct call)."""
    if ctx is None:
        return lambda stage, fraction: None
    return ctx.progress


class StoreClaims:
    """Job claims in the metrics store (:meth:`JobStore.claim`): the embedded mode's, and a job Pod's.
    A claim is kept (a week), so nothing is renewed or let go."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def claim(self, job: Job, runner: str) -> bool:
        return self.store.claim(job, runner)

    def renew(self, jobs: Sequence[Job], runner: str) -> None:
        """Nothing to renew: a claim in the store does not expire while its job runs."""

    def release(self, job: Job, runner: str) -> None:
        """Nothing to let go: the claim names one submission, which is never queued again."""

    def hand_over(self, job: Job, runner: str) -> None:
        """Nothing to hand over: a runner that starts follows the Kubernetes Jobs it finds."""


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
        kubernetes: Any = None,
        claims: Any = None,
    ) -> None:
        """With ``kubernetes`` (a :class:`shoal.common.kubernetes_jobs.KubernetesJobs`), each job runs as a
        Kubernetes Job whose Pod runs ``shoal job run``, and this runner follows it; without, on its thread.
        ``claims`` decide which runner runs a job: by default Leases on Kubernetes
        (:class:`shoal.common.kubernetes_leases.LeaseClaims`), else the metrics store's (:class:`StoreClaims`)."""
        self.store = store
        self.kubernetes = kubernetes
        if claims is None:
            claims = kubernetes.leases(stale_seconds) if kubernetes is not None else StoreClaims(store)
        self.claims = claims
        #: jobs running as Kubernetes Jobs that this runner follows, by (project, job id): the Job's name
        self._following: dict[tuple[str, str], str] = {}
        self.kinds = dict(kinds)
        self.name = f"{store.service}-jobs"
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.stopping = threading.Event()
        self._queue: queue.Queue[Job] = queue.Queue()
        self._held: dict[tuple[str, str], Job] = {}
        #: when this runner was last seen holding a job, or was made (see :meth:`idle_seconds`)
        self._last_busy = time.monotonic()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        #: names this runner in job claims: the host, the process and the runner
        self.runner_id = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"

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

    def run_one(self, project: str, job_id: str, expect: str | None = None, *, shards: int = 0) -> Job:
        """Runs one job on the calling thread, as a process started for it does (``shoal job run``): it
        runs only if it is queued (as the :func:`revision` ``expect`` when given: the one a Kubernetes
        Job was started for) and this runner wins its claim, and it is marked alive meanwhile.
        :attr:`stopping` (set by a SIGTERM) interrupts it: it goes back to the queue. With ``shards``, the
        job's shards have written their parts (:meth:`run_shard`) and the run finishes from them. Returns
        the job as it ended, or as it was found when it was not this runner's to run."""
        job = self._known(project, job_id)
        with self._marked(job):
            self._run(job, expect, shards)
        return self.store.get(project, job_id)

    def run_shard(self, project: str, job_id: str, expect: str | None, shard: int, shards: int) -> bool:
        """Runs shard ``shard`` of ``shards`` of a queued job on the calling thread, as the Pod of an
        Indexed Job does (``shoal job run --shards``): only while the job is queued as ``expect`` and
        this runner wins the shard's claim. The shard writes its part and never the job's row, which
        every shard checks; a failure raises (the Pod fails, and with it the job). Whether it ran."""
        job = self._known(project, job_id)
        kind = self.kinds[job.kind]
        if kind.shard is None:
            raise InvalidArgument(f"{job.kind} jobs are not split into shards", field="shards")
        if not 0 <= shard < shards:
            raise InvalidArgument(f"shard {shard} is not one of 0..{shards - 1}", field="shard")
        if job.state != PENDING or (expect is not None and revision(job) != expect):
            return False
        if not self.store.claim(job, self.runner_id, part=f"shard-{shard}-of-{shards}"):
            return False
        if self.store.cancel_request(job) is not None:
            return False
        with self._marked(job):
            kind.shard(ShardContext(self, job, shard, shards), shard, shards)
        return True

    def idle_seconds(self) -> float:
        """Seconds since this runner was last seen holding a job (queued or running), or since it was made
        (the first jobs of a service come as it starts), 0 while it holds one: what background work that
        competes with jobs for the CPU (the kernels' warm-up) waits on. Seen when asked, so a job shorter
        than the asker's polling may go unseen."""
        now = time.monotonic()
        with self._lock:
            if self._held:
                self._last_busy = now
            return now - self._last_busy

    def _known(self, project: str, job_id: str) -> Job:
        job = self.store.get(project, job_id)
        if job.kind not in self.kinds:
            raise InvalidArgument(f"job {job_id} is a {job.kind} job, which the {self.store.service} service "
                                  f"does not run; it runs {', '.join(sorted(self.kinds))}", field="job_id")  # fmt: skip
        return job

    @contextlib.contextmanager
    def _marked(self, job: Job) -> Iterator[None]:
        """Holds ``job`` (marked alive every heartbeat, by a thread of its own) while the block runs."""
        key = (job.project, job.job_id)
        with self._lock:
            self._held[key] = job
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat_seconds):
                try:
                    self._heartbeat()
                except Exception:
                    log.exception("job heartbeat failed; retrying")

        marker = threading.Thread(target=beat, name=f"{self.name}-heartbeat", daemon=True)
        marker.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(key, None)
            done.set()
            marker.join(self.heartbeat_seconds + 5)

    def _enqueue(self, job: Job) -> None:
        with self._lock:
            self._held[(job.project, job.job_id)] = job
        self._queue.put(job)

    # -- BackgroundWorker ----------------------------------------------------------------------

    def start(self) -> None:
        self.stopping.clear()
        loops = [(self._work, self.name), (self._watch, f"{self.name}-heartbeat")]
        if self.kubernetes is not None:
            loops.append((self._follow, f"{self.name}-kubernetes"))
        for target, name in loops:
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
        # the Kubernetes Jobs followed go on without this runner: the next one to start takes them up at once
        with self._lock:
            followed = [self._held[key] for key in self._following if key in self._held]
        for job in followed:
            try:
                self.claims.hand_over(job, self.runner_id)
            except Exception:  # the claim expires by itself
                log.warning("could not hand job %s of project %r over", job.job_id, job.project, exc_info=True)

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
                    followed = (job.project, job.job_id) in self._following
                    if not followed:
                        self._held.pop((job.project, job.job_id), None)
                if not followed:
                    self._release(job)

    def _run(self, job: Job, expect: str | None = None, shards: int = 0) -> None:
        current = self.store.find(job.project, job.job_id)
        if current is None or current.state != PENDING:  # cancelled while queued, or taken over
            return
        if expect is not None and revision(current) != expect:  # queued again since: another Job's to run
            return
        if not self.claims.claim(current, self.runner_id):  # another runner took this submission
            log.info("job %s of project %r is run by another runner", job.job_id, job.project)
            return
        reason = self.store.cancel_request(current)
        if reason is not None:  # cancelled before it started here: the row says why, as every cancelled job's does
            self.store.update(current, state=CANCELLED, message=reason or "cancelled")
            return
        if self.kubernetes is not None:
            self._dispatch(current)
            return
        kind = self.kinds[job.kind]
        job = self.store.update(current, state=RUNNING, stage="starting", progress=0.0, message="")
        with self._lock:
            self._held[(job.project, job.job_id)] = job
        ctx = JobContext(self, job, shards)
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

    # -- jobs as Kubernetes Jobs ------------------------------------------------------------------

    def _dispatch(self, current: Job) -> None:
        """Hands a queued job this runner claimed to a Kubernetes Job: the row is written again (still
        queued) and the Pod claims that revision, so it runs once even if this runner dies meanwhile."""
        kind = self.kinds[current.kind]
        shards = 1
        if kind.shard is not None and kind.shards is not None and self.kubernetes.max_shards > 1:
            try:
                shards = max(1, kind.shards(current, self.kubernetes.max_shards))
            except Exception:  # its input is gone or unreadable: one Pod runs it, and fails saying why
                log.warning("job %s of project %r: could not tell how to split it; it runs whole", current.job_id,
                            current.project, exc_info=True)  # fmt: skip
        where = f"its log: {self.kubernetes.job_logs_hint(current)}"
        if shards > 1:
            # the row is not written again until the shards are done: each checks it names their submission
            stage, where = f"{shards} shards running as a Kubernetes Indexed Job", f"runs in {shards} shards; {where}"
        else:
            stage, where = "starting a Kubernetes Job", f"runs as a Kubernetes Job; {where}"
        job = self.store.update(current, stage=stage, progress=0.0, message=where)
        name = self.kubernetes.create(job, revision(job), shards=shards)
        with self._lock:
            self._following[(job.project, job.job_id)] = name
            self._held[(job.project, job.job_id)] = job
        log.info("job %s of project %r runs as Kubernetes Job %s%s", job.job_id, job.project, name,
                 f" in {shards} shards" if shards > 1 else "")  # fmt: skip

    def _reattach(self) -> bool:
        """Follows again the Kubernetes Jobs a previous runner of this service started and did not see end,
        once this runner wins the job's claim (its Lease: the previous runner let it go, or stopped renewing
        it). Whether every such Job is followed now; a job another live runner follows is tried again."""
        every = True
        for project, job_id, name in self.kubernetes.listed():
            with self._lock:
                if (project, job_id) in self._following:
                    continue
            job = self.store.find(project, job_id)
            if job is None or job.done:
                continue
            if not self.claims.claim(job, self.runner_id):
                every = False
                continue
            with self._lock:
                self._following.setdefault((project, job_id), name)
                self._held.setdefault((project, job_id), job)
        return every

    def _follow(self) -> None:
        """Every heartbeat, settles the followed jobs whose Kubernetes Job or row has changed."""
        attached = False
        while not self.stopping.is_set():
            try:
                if not attached:
                    attached = self._reattach()
                with self._lock:
                    following = dict(self._following)
                for key, name in following.items():
                    if self._settle(key, name):
                        with self._lock:
                            self._following.pop(key, None)
                            job = self._held.pop(key, None)
                        if job is not None:
                            self._release(job)
            except Exception:
                log.exception("following the Kubernetes Jobs failed; retrying")
            self.stopping.wait(self.heartbeat_seconds)

    def _settle(self, key: tuple[str, str], name: str) -> bool:
        """Whether the job is settled: finished by its Pod, or ended here because its Kubernetes Job
        failed or went away, or cancelled (the Kubernetes Job deleted, and its Pod with it)."""
        job = self.store.find(*key)
        if job is None:
            self.kubernetes.delete(name)
            return True
        if job.state in (CANCELLING, CANCELLED) or (not job.done and self.store.cancel_request(job) is not None):
            self.kubernetes.delete(name)  # the Pod gets SIGTERM: it stops at its next check
            if job.done or self.kubernetes.outcome(name).state != "gone":
                return job.done
            self._end_here(key, job, CANCELLED, self.store.cancel_request(job) or "cancelled")
            return True
        if job.done:
            return True
        outcome = self.kubernetes.outcome(name)
        if outcome.state == "active":
            return False
        if outcome.state == "succeeded" and outcome.shards > 1 and job.state == PENDING:
            # every shard wrote its part: one Pod finishes the job from the parts
            finish = self.kubernetes.create(job, revision(job), after_shards=outcome.shards)
            with self._lock:
                self._following[key] = finish
            log.info("job %s of project %r: its %d shards are done; Kubernetes Job %s finishes it", job.job_id,
                     job.project, outcome.shards, finish)  # fmt: skip
            return False
        why = outcome.reason or f"the Kubernetes Job {name} ended without recording the job's end"
        if self._end_here(key, job, FAILED, why):
            log.info("job %s of project %r failed in Kubernetes: %s", job.job_id, job.project, why)
        return True

    def _release(self, job: Job) -> None:
        """Lets go of the claim of a job this runner no longer holds (done, or not its to run)."""
        try:
            self.claims.release(job, self.runner_id)
        except Exception:  # the claim expires by itself; nothing waits on it
            log.warning("could not let go of the claim of job %s of project %r", job.job_id, job.project,
                        exc_info=True)  # fmt: skip

    def _end_here(self, key: tuple[str, str], job: Job, state: str, message: str) -> bool:
        """Records the end a job's Pod did not record: unless the job (read again: the Pod may have just
        written it) is finished, its partial result is discarded and it ends as ``state``. Whether it did."""
        latest = self.store.find(*key) or job
        if latest.done:
            return False
        self.kinds[job.kind].discard(latest)
        self.store.update(latest, state=state, message=message)
        return True

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
        self.claims.renew(held, self.runner_id)

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
            if not self.claims.claim(job, self.runner_id):  # another replica is taking it over
                continue
            if job.state == PENDING:
                log.info("taking over queued job %s of project %r", job.job_id, job.project)
                self._enqueue(self.store.update(job))
                continue
            self.kinds[job.kind].discard(job)
            self.store.update(job, state=FAILED if job.state == RUNNING else CANCELLED,
                              message=f"the {self.store.service} service stopped while the job was {job.state}"
                                      f" (no sign of life for {self.stale_seconds:.0f}s); start it again")  # fmt: skip
            self._release(job)
