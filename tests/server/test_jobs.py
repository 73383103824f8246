"""Job handles: idempotent submission, progress, cancellation and the Get/List/Cancel RPCs."""

from __future__ import annotations

import grpc
import pytest

from shoal.analysis.v1 import analysis_pb2
from shoal.common import jobs
from shoal.common.errors import FailedPrecondition, NotFound
from shoal.common.jobs import JobStore
from shoal.common.pagination import Page
from shoal.common.stores.metrics import MetricsStore
from shoal.common.v1 import common_pb2
from shoal.sampler.v1 import sampler_pb2
from tests.server.conftest import Running


@pytest.fixture
def store(embedded_metrics: MetricsStore) -> JobStore:
    embedded_metrics.migrate(jobs.MIGRATIONS)
    return JobStore(embedded_metrics, service="analysis")


def test_submitting_the_same_job_twice_returns_the_same_job(store: JobStore) -> None:
    a, created = store.submit("p", "outliers", {"dataset": "train", "k": "10"})
    b, again = store.submit("p", "outliers", {"k": "10", "dataset": "train"})
    assert created and not again and a.job_id == b.job_id
    c, _ = store.submit("p", "outliers", {"dataset": "train", "k": "20"})
    assert c.job_id != a.job_id


def test_progress_finish_and_rerun_after_failure(store: JobStore) -> None:
    job, _ = store.submit("p", "umap", {"dataset": "d"})
    job = store.update(job, state=jobs.RUNNING, stage="fitting", progress=0.5)
    assert store.get("p", job.job_id).progress == 0.5
    job = store.update(job, state=jobs.FAILED, message="out of memory")
    got = store.get("p", job.job_id)
    assert got.state == jobs.FAILED and got.finish_time is not None and got.message == "out of memory"
    rerun, created = store.submit("p", "umap", {"dataset": "d"})
    assert created and rerun.state == jobs.PENDING and rerun.job_id == job.job_id


def test_cancel(store: JobStore) -> None:
    pending, _ = store.submit("p", "a", {})
    assert store.cancel("p", pending.job_id).state == jobs.CANCELLED
    running, _ = store.submit("p", "b", {})
    store.update(running, state=jobs.RUNNING)
    assert store.cancel("p", running.job_id).state == jobs.CANCELLING
    done, _ = store.submit("p", "c", {})
    store.update(done, state=jobs.SUCCEEDED)
    with pytest.raises(FailedPrecondition, match="already finished"):
        store.cancel("p", done.job_id)
    with pytest.raises(NotFound):
        store.get("p", "nope")
    # jobs are per project and per service
    with pytest.raises(NotFound):
        store.get("other", pending.job_id)
    with pytest.raises(NotFound):
        JobStore(store.metrics, service="sampler").get("p", pending.job_id)


def test_list_filters_by_state_and_pages(store: JobStore) -> None:
    for i in range(5):
        job, _ = store.submit("p", "k", {"i": str(i)})
        if i % 2:
            store.update(job, state=jobs.SUCCEEDED)
    found, total = store.list("p", states=[jobs.SUCCEEDED], page=Page(0, 10))
    assert total == 2 and all(j.state == jobs.SUCCEEDED for j in found)
    first, total = store.list("p", page=Page(0, 3))
    rest, _ = store.list("p", page=Page(3, 3))
    assert total == 5 and len({j.job_id for j in first + rest}) == 5


def test_job_rpcs(shared: Running, project: str) -> None:
    running = shared
    analysis_jobs = JobStore(running.server.stores.metrics, service="analysis")
    job, _ = analysis_jobs.submit(project, "label_issues", {"dataset": "train"})
    analysis_jobs.update(job, state=jobs.RUNNING, stage="scoring", progress=0.25)
    with running.client(running.admin_key) as c:
        got = c.analysis.GetJob(analysis_pb2.GetJobRequest(project=project, job_id=job.job_id)).job
        assert (got.state, got.stage, got.progress, got.kind) == (
            common_pb2.JOB_STATE_RUNNING,
            "scoring",
            0.25,
            "label_issues",
        )
        assert got.params["dataset"] == "train"
        listed = c.analysis.ListJobs(
            analysis_pb2.ListJobsRequest(project=project, states=[common_pb2.JOB_STATE_RUNNING])
        )
        assert [j.job_id for j in listed.jobs] == [job.job_id]
        cancelled = c.analysis.CancelJob(analysis_pb2.CancelJobRequest(project=project, job_id=job.job_id)).job
        assert cancelled.state == common_pb2.JOB_STATE_CANCELLING
        # the sampler does not see analysis jobs
        with pytest.raises(grpc.RpcError) as info:
            c.sampler.GetJob(sampler_pb2.GetJobRequest(project=project, job_id=job.job_id))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.ListJobs(analysis_pb2.ListJobsRequest(project=project, states=[99]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "states[0]" in info.value.details()
