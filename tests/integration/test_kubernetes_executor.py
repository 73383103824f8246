"""The job runner with the Kubernetes executor, on a real API server with kwok's simulated node and the
jobs table in chDB.

Simulated Pods run no code, so each test does what the Pod would: it runs the job with ``run_one``, the
code behind ``shoal job run`` (tests/unit/test_job_run_cli.py runs that command as a process). Pods
annotated ``kwok.x-k8s.io/hold`` stay Running until the test removes the annotation; ``kwok.x-k8s.io/fail``
makes them fail with exit code 1."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from shoal.common import jobs
from shoal.common.jobs import Job, JobContext, JobKind, JobRunner, JobStore, revision
from shoal.common.kubernetes_jobs import JobTemplate, KubernetesJobs
from tests.conftest import server_settings
from tests.harness.kubernetes_cluster import KubernetesCluster
from tests.server.conftest import start_server, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("kubernetes")]
HOLD = {"kwok.x-k8s.io/hold": "true"}


class Work:
    """A job that records each run and the state its row had meanwhile; with ``until_cancelled`` it
    reports progress until it is cancelled."""

    def __init__(self, store: JobStore, until_cancelled: bool = False) -> None:
        self.store = store
        self.until_cancelled = until_cancelled
        self.runs: list[str] = []
        self.states: list[str] = []
        self.discarded: list[str] = []
        self.running = threading.Event()

    def run(self, ctx: JobContext) -> None:
        self.runs.append(ctx.job.job_id)
        self.states.append(self.store.get(ctx.job.project, ctx.job.job_id).state)
        self.running.set()
        while self.until_cancelled:
            ctx.progress("waiting to be cancelled", 0.5)
            threading.Event().wait(0.05)

    def discard(self, job: Job) -> None:
        self.discarded.append(job.job_id)

    def kinds(self) -> dict[str, JobKind]:
        return {"count": JobKind(self.run, self.discard)}


def _template(**annotations: str) -> JobTemplate:
    return JobTemplate(namespace="default", image="registry.internal/ml/shoal:0.1.0", pod_annotations=annotations)


def _dispatched(k8s: KubernetesJobs, job_id: str) -> str:
    """The name of the Kubernetes Job of ``job_id``, once it exists."""
    names: list[str] = []

    def found() -> bool:
        names[:] = [name for _, j, name in k8s.listed() if j == job_id]
        return bool(names)

    wait_for(found, timeout=120, what=f"a Kubernetes Job for {job_id}")
    return names[0]


def _pod(k8s: KubernetesJobs, name: str) -> str:
    pods: list[str] = []
    wait_for(lambda: bool(pods.extend(k8s.pods(name)) or pods), timeout=120, what=f"the Pod of {name}")
    return pods[0]


def _annotate(k8s: KubernetesJobs, pod: str, annotations: dict[str, str | None]) -> None:
    k8s.core.patch_namespaced_pod(pod, "default", {"metadata": {"annotations": annotations}})


def _runner(store: JobStore, work: Work, k8s: KubernetesJobs | None) -> JobRunner:
    return JobRunner(store, work.kinds(), heartbeat_seconds=0.2, stale_seconds=60, kubernetes=k8s)


def test_a_job_runs_through_a_kubernetes_job_to_success(kubernetes_api: Any, job_store: JobStore) -> None:
    work = Work(job_store)
    k8s = KubernetesJobs(kubernetes_api, "analysis", _template(**HOLD))
    runner = _runner(job_store, work, k8s)
    runner.start()
    try:
        job = runner.submit("p", "count", {"n": "through"})
        name = _dispatched(k8s, job.job_id)
        queued = job_store.get("p", job.job_id)
        assert queued.state == jobs.PENDING and queued.stage == "starting a Kubernetes Job" and not work.runs
        # where its log is, by a selector that finds the Job's Pods
        hint = queued.message.split("its log: ", 1)[1]
        assert hint.startswith("kubectl -n default logs -l "), queued.message
        selector = hint.removeprefix("kubectl -n default logs -l ")
        pod = _pod(k8s, name)  # once the Job controller has created it (later than the Job on a busy machine)
        found = k8s.core.list_namespaced_pod("default", label_selector=selector).items
        assert [(p.metadata.name, p.metadata.labels["job-name"]) for p in found] == [(pod, name)]
        # the Pod's work: `shoal job run` claims the revision the runner wrote, runs it, records its end; a Pod
        # made for another revision (the job was queued again since) leaves it
        assert _runner(job_store, work, None).run_one("p", job.job_id, expect="PENDING@0").state == jobs.PENDING
        ended = _runner(job_store, work, None).run_one("p", job.job_id, expect=revision(queued))
        assert ended.state == jobs.SUCCEEDED and work.runs == [job.job_id] and work.states == [jobs.RUNNING]
        _annotate(k8s, pod, {"kwok.x-k8s.io/hold": None})  # the Pod exits
        wait_for(lambda: k8s.outcome(name).state == "succeeded", timeout=120, what="the Kubernetes Job to complete")
        wait_for(lambda: not runner._following, timeout=60, what="the runner to let the job go")
        assert job_store.get("p", job.job_id).state == jobs.SUCCEEDED and work.runs == [job.job_id]
    finally:
        runner.stop(10)


def test_a_pod_that_fails_fails_the_job_with_its_reason(kubernetes_api: Any, job_store: JobStore) -> None:
    work = Work(job_store)
    runner = _runner(
        job_store, work, KubernetesJobs(kubernetes_api, "analysis", _template(**{"kwok.x-k8s.io/fail": "true"}))
    )
    runner.start()
    try:
        job = runner.submit("p", "count", {"n": "fails"})
        wait_for(lambda: job_store.get("p", job.job_id).state == jobs.FAILED, timeout=120, what="the job to fail",
                 progress=lambda: job_store.get("p", job.job_id).state)  # fmt: skip
        message = job_store.get("p", job.job_id).message
        assert "BackoffLimitExceeded" in message and "exited with code 1 (Error)" in message, message
        assert "the whole log: kubectl -n default logs job/shoal-analysis-" in message, message
        assert work.discarded == [job.job_id] and not work.runs
    finally:
        runner.stop(10)


def test_cancelling_deletes_the_kubernetes_job_and_its_pod(kubernetes_api: Any, job_store: JobStore) -> None:
    work = Work(job_store, until_cancelled=True)
    k8s = KubernetesJobs(kubernetes_api, "analysis", _template(**HOLD))
    runner = _runner(job_store, work, k8s)
    runner.start()
    pod_side: threading.Thread | None = None
    try:
        job = runner.submit("p", "count", {"n": "cancelled"})
        name = _dispatched(k8s, job.job_id)
        pod_side = threading.Thread(target=_runner(job_store, work, None).run_one, args=("p", job.job_id))
        pod_side.start()
        assert work.running.wait(120)
        assert job_store.cancel("p", job.job_id).state == jobs.CANCELLING
        wait_for(lambda: k8s.outcome(name).state == "gone" and not k8s.pods(name), timeout=120,
                 what="the Kubernetes Job and its Pod to be deleted")  # fmt: skip
        wait_for(lambda: job_store.get("p", job.job_id).state == jobs.CANCELLED, timeout=120, what="the cancellation")
        assert job_store.get("p", job.job_id).message == "cancelled by the user"
    finally:
        if pod_side is not None:
            pod_side.join(60)
        runner.stop(10)


def test_a_restarted_runner_follows_the_kubernetes_jobs_in_flight(kubernetes_api: Any, job_store: JobStore) -> None:
    work = Work(job_store)
    k8s = KubernetesJobs(kubernetes_api, "analysis", _template(**HOLD))
    first = _runner(job_store, work, k8s)
    first.start()
    job = first.submit("p", "count", {"n": "restarted"})
    name = _dispatched(k8s, job.job_id)
    first.stop(10)  # a rolling update: the Kubernetes Job goes on without it
    second = _runner(job_store, work, k8s)
    second.start()
    try:
        wait_for(lambda: ("p", job.job_id) in second._following, timeout=60, what="the new runner to re-attach")
        # the Pod dies: the new runner reports it
        _annotate(k8s, _pod(k8s, name), {"kwok.x-k8s.io/hold": None, "kwok.x-k8s.io/fail": "true"})
        wait_for(lambda: job_store.get("p", job.job_id).state == jobs.FAILED, timeout=120, what="the job to fail",
                 progress=lambda: job_store.get("p", job.job_id).state)  # fmt: skip
        assert "exited with code 1" in job_store.get("p", job.job_id).message
    finally:
        second.stop(10)


def test_a_server_with_the_kubernetes_executor_runs_its_jobs_as_kubernetes_jobs(
    kubernetes_cluster: KubernetesCluster, kubernetes_api: Any, tmp_path: Path, chdb_path: Path
) -> None:
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.ingest.v1 import ingest_pb2 as pb

    settings = server_settings(tmp_path / "data", chdb_path, job_executor="kubernetes",
                               kubernetes_kubeconfig=kubernetes_cluster.kubeconfig, kubernetes_namespace="default",
                               kubernetes_job_image="registry.internal/ml/shoal:0.1.0",
                               kubernetes_job_env_from=["configmap/shoal-env", "secret/shoal-credentials"])  # fmt: skip
    running = start_server(settings)
    k8s = KubernetesJobs(kubernetes_api, "analysis", _template())
    try:
        with running.client(running.admin_key) as c:
            c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
                name="kube", task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="a"),
                                                                            pb.ClassDef(id=1, name="b")])))  # fmt: skip
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project="kube", dataset=pb.Dataset(
                name="d", kind=pb.DATASET_KIND_LABELED, splits=["train"])))  # fmt: skip
            c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="kube", inference_set=pb.InferenceSet(
                name="m", dataset="d", model_name="m", model_version="1")))  # fmt: skip
            job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project="kube", inference_set="m")).job
            name = _dispatched(k8s, job.job_id)
            stored = k8s.batch.read_namespaced_job(name, "default")
            container = stored.spec.template.spec.containers[0]
            row = JobStore(running.server.stores.metrics, service="analysis").get("kube", job.job_id)
            assert container.args == ["job", "run", "--service", "analysis", "--project", "kube",
                                      "--job-id", job.job_id, "--revision", revision(row)]  # fmt: skip
            assert container.image == "registry.internal/ml/shoal:0.1.0"
            assert [e.config_map_ref.name if e.config_map_ref else e.secret_ref.name for e in container.env_from] == [
                "shoal-env", "shoal-credentials"]  # fmt: skip
            # the Kubernetes Job's Pod is what runs it: the service itself did not
            assert c.analysis.GetJob(apb.GetJobRequest(project="kube", job_id=job.job_id)).job.stage == (
                "starting a Kubernetes Job")  # fmt: skip
    finally:
        running.server.stop(grace=1)


class ShardedWork(Work):
    """A job split into three shards, each recorded; the run that finishes it records how many shards it read."""

    def __init__(self, store: JobStore) -> None:
        super().__init__(store)
        self.shards: list[tuple[int, int]] = []
        self.finished_from: list[int] = []

    def shard(self, ctx: JobContext, shard: int, shards: int) -> None:
        self.shards.append((shard, shards))

    def run(self, ctx: JobContext) -> None:
        self.finished_from.append(ctx.shards)
        super().run(ctx)

    def kinds(self) -> dict[str, JobKind]:
        return {"count": JobKind(self.run, self.discard, shard=self.shard, shards=lambda job, most: min(3, most))}


def test_a_split_job_runs_as_an_indexed_job_and_then_one_pod_finishes_it(
    kubernetes_api: Any, job_store: JobStore
) -> None:
    work = ShardedWork(job_store)
    template = JobTemplate(namespace="default", image="registry.internal/ml/shoal:0.1.0", pod_annotations=HOLD,
                           max_shards=4)  # fmt: skip
    k8s = KubernetesJobs(kubernetes_api, "analysis", template)
    runner = _runner(job_store, work, k8s)
    runner.start()
    try:
        job = runner.submit("p", "count", {"n": "sharded"})
        name = _dispatched(k8s, job.job_id)
        indexed = k8s.batch.read_namespaced_job(name, "default")
        assert (indexed.spec.completion_mode, indexed.spec.completions, indexed.spec.parallelism) == ("Indexed", 3, 3)
        assert indexed.spec.template.spec.containers[0].args[-2:] == ["--shards", "3"]
        queued = job_store.get("p", job.job_id)
        assert queued.state == jobs.PENDING and queued.stage == "3 shards running as a Kubernetes Indexed Job"
        # the three Pods: each computes its shard (JOB_COMPLETION_INDEX) and leaves the job's row as it was
        pods: list[str] = []

        def three_pods() -> bool:
            pods[:] = k8s.pods(name)
            return len(pods) == 3

        wait_for(three_pods, timeout=120, what="the Indexed Job's three Pods")
        pod_side = _runner(job_store, work, None)
        assert all(pod_side.run_shard("p", job.job_id, revision(queued), i, 3) for i in range(3))
        assert sorted(work.shards) == [(0, 3), (1, 3), (2, 3)] and not work.runs
        assert revision(job_store.get("p", job.job_id)) == revision(queued)
        for pod in pods:
            _annotate(k8s, pod, {"kwok.x-k8s.io/hold": None})  # the shards' Pods exit
        # once every shard is done, the runner starts one more Job that finishes the job from the parts
        finish: list[str] = []

        def started() -> bool:
            finish[:] = [n for _, j, n in k8s.listed() if j == job.job_id and n != name]
            return bool(finish)

        wait_for(started, timeout=120, what="the Job that finishes the sharded job")
        finishing = k8s.batch.read_namespaced_job(finish[0], "default").spec
        assert finishing.completion_mode != "Indexed" and finishing.template.spec.containers[0].args[-2:] == [
            "--after-shards", "3"]  # fmt: skip
        ended = pod_side.run_one("p", job.job_id, expect=revision(queued), shards=3)
        assert ended.state == jobs.SUCCEEDED and work.finished_from == [3] and work.runs == [job.job_id]
        _annotate(k8s, _pod(k8s, finish[0]), {"kwok.x-k8s.io/hold": None})
        wait_for(lambda: not runner._following, timeout=120, what="the runner to let the job go")
        assert job_store.get("p", job.job_id).state == jobs.SUCCEEDED
    finally:
        runner.stop(10)
