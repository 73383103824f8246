"""The job runner against a real metrics store (chDB): progress, cancellation midway with
nothing kept, a failing job, a stop that requeues, and recovery of jobs whose runner died."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from shoal.common import jobs
from shoal.common.errors import InvalidArgument
from shoal.common.jobs import Job, JobContext, JobKind, JobRunner, JobStore
from shoal.common.stores.metrics import EmbeddedMetricsStore
from shoal.common.timeutil import now_ms
from tests.server.conftest import wait_for


class Counting:
    """A job that writes one row per step into a results table and waits between steps."""

    def __init__(self, metrics: EmbeddedMetricsStore, steps: int = 50) -> None:
        self.metrics = metrics
        self.steps = steps
        self.release = threading.Event()
        self.started = threading.Event()
        metrics.command(
            "CREATE TABLE IF NOT EXISTS job_rows (job_id String, step UInt32) ENGINE = MergeTree ORDER BY job_id"
        )

    def run(self, ctx: JobContext) -> None:
        if ctx.params.get("fail"):
            raise ValueError("the input is broken")
        self.started.set()
        for i in range(self.steps):
            self.metrics.insert("job_rows", [[ctx.job.job_id, i]], ["job_id", "step"])
            ctx.progress("counting", (i + 1) / self.steps)
            if i == 2:
                self.release.wait(30)

    def discard(self, job: Job) -> None:
        self.metrics.command("DELETE FROM job_rows WHERE job_id = {job:String}", {"job": job.job_id})

    def rows(self, job_id: str) -> int:
        return int(self.metrics.query("SELECT count() FROM job_rows WHERE job_id = {job:String}",
                                      {"job": job_id}).scalar())  # fmt: skip


@pytest.fixture
def store(embedded_metrics: EmbeddedMetricsStore) -> JobStore:
    embedded_metrics.migrate(jobs.MIGRATIONS)
    return JobStore(embedded_metrics, service="analysis")


@pytest.fixture
def work(embedded_metrics: EmbeddedMetricsStore) -> Counting:
    return Counting(embedded_metrics)


@pytest.fixture
def runner(store: JobStore, work: Counting) -> Iterator[JobRunner]:
    r = JobRunner(store, {"count": JobKind(work.run, work.discard)}, heartbeat_seconds=0.2, stale_seconds=1.5)
    r.start()
    yield r
    work.release.set()
    r.stop(10)


def _state(store: JobStore, job: Job) -> str:
    return store.get(job.project, job.job_id).state


def test_a_job_runs_to_success_with_progress_and_is_idempotent(
    runner: JobRunner, store: JobStore, work: Counting
) -> None:
    job = runner.submit("p", "count", {"n": "1"})
    wait_for(lambda: work.started.is_set(), what="the job to start")
    wait_for(lambda: store.get("p", job.job_id).progress > 0, what="progress")
    running = store.get("p", job.job_id)
    assert running.state == jobs.RUNNING and running.stage == "counting" and 0 < running.progress < 1
    work.release.set()
    wait_for(lambda: _state(store, job) == jobs.SUCCEEDED, what="success")
    assert work.rows(job.job_id) == work.steps and store.get("p", job.job_id).progress == 1.0
    again = runner.submit("p", "count", {"n": "1"})  # same parameters: the same finished job
    assert again.job_id == job.job_id and again.state == jobs.SUCCEEDED


def test_a_job_cancelled_midway_stops_and_keeps_nothing(runner: JobRunner, store: JobStore, work: Counting) -> None:
    job = runner.submit("p", "count", {"n": "2"})
    wait_for(lambda: work.rows(job.job_id) >= 3, what="the job to write")
    assert store.cancel("p", job.job_id).state == jobs.CANCELLING
    work.release.set()
    wait_for(lambda: _state(store, job) == jobs.CANCELLED, what="the cancellation")
    assert work.rows(job.job_id) == 0
    assert store.get("p", job.job_id).message == "cancelled by the user"


def test_a_failing_job_reports_why_and_keeps_nothing(runner: JobRunner, store: JobStore, work: Counting) -> None:
    job = runner.submit("p", "count", {"fail": "yes"})
    wait_for(lambda: _state(store, job) == jobs.FAILED, what="the failure")
    assert "ValueError: the input is broken" in store.get("p", job.job_id).message
    assert work.rows(job.job_id) == 0


def test_a_stop_requeues_the_running_job_and_the_next_runner_finishes_it(store: JobStore, work: Counting) -> None:
    first = JobRunner(store, {"count": JobKind(work.run, work.discard)}, heartbeat_seconds=0.2, stale_seconds=1.0)
    first.start()
    job = first.submit("p", "count", {"n": "3"})
    wait_for(lambda: work.rows(job.job_id) >= 3, what="the job to write")
    stopper = threading.Thread(target=first.stop, args=(10,))
    stopper.start()
    time.sleep(0.3)
    work.release.set()
    stopper.join()
    interrupted = store.get("p", job.job_id)
    assert interrupted.state == jobs.PENDING and "interrupted by a service stop" in interrupted.message
    assert work.rows(job.job_id) == 0
    second = JobRunner(store, {"count": JobKind(work.run, work.discard)}, heartbeat_seconds=0.2, stale_seconds=1.0)
    second.start()
    try:
        wait_for(lambda: _state(store, job) == jobs.SUCCEEDED, timeout=30, what="the job to resume")
        assert work.rows(job.job_id) == work.steps
    finally:
        second.stop(10)


def test_a_job_whose_runner_died_is_reported_failed(store: JobStore, work: Counting) -> None:
    # what a killed process leaves behind: a RUNNING job nobody marks any more, with partial rows
    job, _ = store.submit("p", "count", {"n": "4"})
    job = store.update(job, state=jobs.RUNNING, stage="counting", progress=0.4)
    work.metrics.insert("job_rows", [[job.job_id, 0], [job.job_id, 1]], ["job_id", "step"])
    runner = JobRunner(store, {"count": JobKind(work.run, work.discard)}, heartbeat_seconds=0.2, stale_seconds=1.0)
    assert store.get("p", job.job_id).update_time > now_ms() - timedelta(seconds=1)
    runner.start()
    try:
        wait_for(lambda: _state(store, job) == jobs.FAILED, timeout=30, what="the dead job to be failed")
        failed = store.get("p", job.job_id)
        assert "stopped while the job was RUNNING" in failed.message and work.rows(job.job_id) == 0
        # started again, it runs from scratch
        work.release.set()
        rerun = runner.submit("p", "count", {"n": "4"})
        assert rerun.job_id == job.job_id
        wait_for(lambda: _state(store, job) == jobs.SUCCEEDED, what="the re-run")
    finally:
        runner.stop(10)


def race_for_stale_jobs(
    store: JobStore, prefix: str, runner: Callable[[dict[str, JobKind]], JobRunner], count: int = 12
) -> tuple[list[Job], list[str]]:
    """Two runners (made by ``runner`` from their job kinds) come back after an outage and find the same
    ``count`` queued jobs that nobody marks, and recover them at once; then both run. Returns the jobs and
    the id of each run, once every job succeeded."""
    runs: list[str] = []
    lock = threading.Lock()

    def run(ctx: JobContext) -> None:
        with lock:
            runs.append(ctx.job.job_id)

    queued = [store.submit("p", "count", {"n": f"{prefix}-{i}"})[0] for i in range(count)]
    # queued long ago by a runner that is gone: every runner that looks now sees them stale
    stale = now_ms() - timedelta(hours=1)
    for job in queued:
        store._write(replace(job, update_time=stale))
    racers = [runner({"count": JobKind(run, lambda job: None)}) for _ in range(2)]
    start = threading.Barrier(len(racers))

    def race(r: JobRunner) -> None:
        start.wait(30)
        r.recover()

    threads = [threading.Thread(target=race, args=(r,)) for r in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for r in racers:
        r.start()
    try:
        wait_for(lambda: all(_state(store, j) == jobs.SUCCEEDED for j in queued), timeout=120,
                 what="every raced job to succeed", progress=lambda: len(runs))  # fmt: skip
    finally:
        for r in racers:
            r.stop(10)
    return queued, runs


def test_runners_racing_for_the_same_stale_jobs_run_each_once(store: JobStore) -> None:
    # two replicas claim through the metrics store (job_claims): each job must run on exactly one of them
    queued, runs = race_for_stale_jobs(
        store, "race", lambda kinds: JobRunner(store, kinds, heartbeat_seconds=0.2, stale_seconds=60)
    )
    assert sorted(runs) == sorted(j.job_id for j in queued), f"a job ran twice or never: {runs}"


def test_one_job_runs_on_the_calling_thread_once_and_only_if_queued(store: JobStore, work: Counting) -> None:
    # what `shoal job run` does in a Pod: run the one job it was started for, then return
    runner = JobRunner(store, {"count": JobKind(work.run, work.discard)}, heartbeat_seconds=0.2, stale_seconds=60)
    work.release.set()
    job, _ = store.submit("p", "count", {"n": "one"})
    ended = runner.run_one("p", job.job_id)
    assert ended.state == jobs.SUCCEEDED and work.rows(job.job_id) == work.steps
    assert runner.run_one("p", job.job_id).update_time == ended.update_time  # finished: nothing runs again

    # a queued job another runner has claimed is not run here
    other, _ = store.submit("p", "count", {"n": "claimed"})
    assert store.claim(store.get("p", other.job_id), "another-runner")
    assert runner.run_one("p", other.job_id).state == jobs.PENDING and work.rows(other.job_id) == 0

    with pytest.raises(InvalidArgument, match="does not run"):
        JobRunner(store, {}).run_one("p", job.job_id)

    # a queued job whose cancellation was signalled while its row still said PENDING (the signal lands first: a
    # write of the row raced it) ends cancelled when a runner takes it, and says why, as every cancelled job does
    late, _ = store.submit("p", "count", {"n": "signalled"})
    store.signal(late, jobs.CANCEL, "cancelled by the user")
    ended = runner.run_one("p", late.job_id)
    assert (ended.state, ended.message) == (jobs.CANCELLED, "cancelled by the user") and work.rows(late.job_id) == 0


def test_the_kernels_warm_up_compiles_once_the_runner_has_held_no_job_for_a_moment(
    runner: JobRunner, store: JobStore, work: Counting
) -> None:
    """As the analysis service gates it: a kernel of the warm-up that compiles in every process runs only once the
    runner has held no job (queued or running) for the quiet period, so that a compilation does not halve the speed
    of a service's first jobs; a kernel loaded from the disk cache runs at once."""
    from shoal.common.jit import Warmup

    job = runner.submit("p", "count", {"n": "warm"})
    wait_for(lambda: work.started.is_set(), what="the job to start")
    assert runner.idle_seconds() == 0.0
    seen: list[tuple[str, str, float]] = []

    def kernel(name: str) -> Callable[[], None]:
        return lambda: seen.append((name, _state(store, job), runner.idle_seconds()))

    loaded, compiled = kernel("loaded"), kernel("compiled")
    warm = Warmup([loaded, compiled], quiet=lambda: runner.idle_seconds() >= 0.5, patient=[compiled])
    warm.start()
    try:
        work.release.set()
        wait_for(warm.done.is_set, what="the warm-up to end")
    finally:
        warm.stop(1)
    (first, state_first, _), (second, state, idle) = seen
    assert (first, state_first) == ("loaded", jobs.RUNNING)  # a kernel from the disk cache: at once
    assert second == "compiled" and state == jobs.SUCCEEDED and idle >= 0.5


def test_no_progress_is_written_over_a_cancellation(store: JobStore) -> None:
    """A run that reports a new stage every few milliseconds is cancelled: once a reader has seen
    the job CANCELLING, it never sees it RUNNING again (a progress write checks for a cancellation
    first), so a cancelled job never looks as if it ran on."""
    cancelled = threading.Event()

    def run(ctx: JobContext) -> None:
        i = 0
        while True:
            ctx.progress(f"stage {i}", 0.5)
            i += 1
            threading.Event().wait(0.01)

    r = JobRunner(store, {"busy": JobKind(run, lambda job: cancelled.set())}, heartbeat_seconds=0.2, stale_seconds=5)
    r.start()
    seen: list[str] = []
    try:
        job = r.submit("p", "busy", {})
        wait_for(lambda: store.get("p", job.job_id).stage.startswith("stage"), what="the job to report")
        threading.Event().wait(0.3)  # between two of the run's checks: its next write may come first
        store.cancel("p", job.job_id)
        wait_for(lambda: seen.append(_state(store, job)) or seen[-1] == jobs.CANCELLED, what="the cancellation")
    finally:
        r.stop(10)
    first = seen.index(jobs.CANCELLING) if jobs.CANCELLING in seen else seen.index(jobs.CANCELLED)
    assert jobs.RUNNING not in seen[first:], seen
    assert store.get("p", job.job_id).message == "cancelled by the user" and cancelled.is_set()
