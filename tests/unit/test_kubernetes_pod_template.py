"""SHOAL_KUBERNETES_JOB_POD_TEMPLATE: what a job's Pod shares with its service's Pod, read with errors that
name the file and the key, and merged into the Job without taking the executor's own parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal.common.errors import ConfigurationError
from shoal.common.jobs import Job
from shoal.common.kubernetes_jobs import JobTemplate, KubernetesJobs, read_pod_template


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not JSON"),
        ("[]", "holds a list, not an object"),
        ('{"env": [], "hostNetwork": true}', "unknown key 'hostNetwork'"),
        ('{"env": {"SHOAL_X": "1"}}', "'env' must be a JSON array, not dict"),
        ('{"labels": ["a"]}', "'labels' must be a JSON object, not list"),
    ],
)
def test_a_bad_pod_template_is_refused_naming_the_file_and_what_is_wrong(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "pod.json"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        read_pod_template(path)
    assert message in str(info.value) and str(path) in str(info.value), info.value
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_pod_template(tmp_path / "missing.json")


def test_the_template_joins_the_job_without_replacing_the_executors_labels_or_scratch(tmp_path: Path) -> None:
    path = tmp_path / "pod.json"
    path.write_text(json.dumps({
        "labels": {"app.kubernetes.io/instance": "prod", "app.kubernetes.io/managed-by": "Helm"},
        "env": [{"name": "SHOAL_CLICKHOUSE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "ch", "key": "pw"}}}],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}, {"name": "ca", "secret": {"secretName": "ca"}}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "ca", "mountPath": "/etc/shoal/ca"}],
        "nodeSelector": {"pool": "batch"}, "priorityClassName": "",
    }))  # fmt: skip
    shared = read_pod_template(path)
    template = JobTemplate(namespace="ml", image="shoal:1", env=shared["env"], pod_labels=shared["labels"],
                           volumes=shared["volumes"], volume_mounts=shared["volumeMounts"],
                           node_selector=shared["nodeSelector"])  # fmt: skip
    job = KubernetesJobs(None, "analysis", template).manifest(Job("p", "analysis", "j", "neighbors"), "PENDING@1")
    pod = job["spec"]["template"]["spec"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "prod"
    assert labels["app.kubernetes.io/managed-by"] == "shoal-job-executor"  # the executor's selector holds
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "ca"]  # the template's /tmp, not a second one
    assert pod["volumes"][0]["emptyDir"] == {"sizeLimit": "4Gi"}
    assert pod["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "ch", "key": "pw"}
    assert pod["nodeSelector"] == {"pool": "batch"} and "priorityClassName" not in pod
    assert pod["automountServiceAccountToken"] is False
