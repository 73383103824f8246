"""Shoal jobs as Kubernetes Jobs (shoal.common.kubernetes_jobs) on a real API server with kwok's simulated
node: the Job the API server accepts, its success, a failed Pod's reason, a second creation of the same
submission, and a deletion that takes the Pods with it."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.common.jobs import Job
from shoal.common.kubernetes_jobs import JobTemplate, KubernetesJobs, job_name
from tests.server.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("kubernetes")]


def _template(**more: Any) -> JobTemplate:
    return JobTemplate(namespace="default", image="registry.internal/ml/shoal:0.1.0",
                       env=[{"name": "SHOAL_METRICS_URL", "value": "http://clickhouse:8123"}],
                       requests={"cpu": "1", "memory": "2Gi"}, limits={"memory": "4Gi"},
                       active_deadline_seconds=600, **more)  # fmt: skip


def _job(job_id: str) -> Job:
    return Job("cones", "analysis", job_id, "neighbors")


def test_a_job_runs_as_a_kubernetes_job_and_its_success_is_read(kubernetes_api: Any) -> None:
    jobs = KubernetesJobs(kubernetes_api, "analysis", _template())
    job = _job("neighbors-0001")
    name = jobs.create(job, "PENDING@1")
    assert name == job_name("analysis", job, "PENDING@1") and len(name) <= 63
    assert jobs.create(job, "PENDING@1") == name  # the same submission again: the Job already there
    wait_for(lambda: jobs.outcome(name).state == "succeeded", timeout=120, what="the Job to complete",
             progress=lambda: jobs.outcome(name))  # fmt: skip
    stored = jobs.batch.read_namespaced_job(name, "default")
    pod = stored.spec.template.spec
    assert pod.containers[0].args == ["job", "run", "--service", "analysis", "--project", "cones",
                                      "--job-id", "neighbors-0001", "--revision", "PENDING@1"]  # fmt: skip
    assert pod.containers[0].resources.requests == {"cpu": "1", "memory": "2Gi"}
    assert pod.security_context.run_as_non_root and pod.restart_policy == "Never"
    assert stored.spec.backoff_limit == 0 and stored.spec.active_deadline_seconds == 600
    assert stored.metadata.labels["shoal.dev/service"] == "analysis"
    assert len(jobs.batch.list_namespaced_job("default", label_selector="shoal.dev/service=analysis").items) >= 1
    # another submission of the same job is another Job
    assert jobs.create(job, "PENDING@2") != name


def test_a_failed_pod_fails_the_job_with_its_exit_code(kubernetes_api: Any) -> None:
    jobs = KubernetesJobs(kubernetes_api, "analysis", _template(pod_annotations={"kwok.x-k8s.io/fail": "true"}))
    name = jobs.create(_job("neighbors-0002"), "PENDING@1")
    wait_for(lambda: jobs.outcome(name).state == "failed", timeout=120, what="the Job to fail",
             progress=lambda: jobs.outcome(name))  # fmt: skip
    reason = jobs.outcome(name).reason
    assert "BackoffLimitExceeded" in reason and "exited with code 1 (Error)" in reason, reason


def test_deleting_a_job_takes_its_pods(kubernetes_api: Any) -> None:
    # a Pod kwok keeps running (no Job completes it): what a cancellation stops
    jobs = KubernetesJobs(kubernetes_api, "analysis", _template())
    name = jobs.create(_job("neighbors-0003"), "PENDING@1")
    wait_for(lambda: bool(jobs.pods(name)), timeout=120, what="the Job's Pod")
    jobs.delete(name)
    jobs.delete(name)  # already being deleted: fine
    wait_for(lambda: jobs.outcome(name).state == "gone" and not jobs.pods(name), timeout=120,
             what="the Job and its Pods to be deleted", progress=lambda: (jobs.outcome(name), jobs.pods(name)))  # fmt: skip
