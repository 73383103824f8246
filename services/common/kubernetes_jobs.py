"""Shoal's jobs as Kubernetes Jobs: one ``batch/v1`` Job per submission of a job, whose Pod runs
``shoal job run`` from the service's own image, created, read and deleted with the official client.

The Pod records the job's progress and end in the metrics store as an in-process runner would; what
the Kubernetes side adds is the reason when the Pod itself ends badly (an exit code, an OOM kill, the
deadline) and the deletion of the Pod when a job is cancelled.

A Job's name is derived from the Shoal job and its submission (its claim), so creating it again for
the same submission (a runner that restarted, or a retry) finds the one already there."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.common.errors import ConfigurationError
from shoal.common.jobs import Job
from shoal.common.settings import ShoalSettings

#: labels every Job and Pod carries (selectors of the executor and of `kubectl get jobs -l ...`)
MANAGED_BY = {"app.kubernetes.io/name": "shoal", "app.kubernetes.io/managed-by": "shoal-job-executor"}
SERVICE_LABEL = "shoal.dev/service"
JOB_LABEL = "shoal.dev/job-id"
PROJECT_ANNOTATION = "shoal.dev/project"
#: how much of a failed Pod's log goes into its job's failure reason
LOG_TAIL_LINES = 5
LOG_TAIL_CHARS = 1000


@dataclass(frozen=True)
class JobTemplate:
    """What every Job of a service is made of: the service's image, account and security, the
    settings its Pod needs (as environment variables), and the bounds of a run."""

    namespace: str
    image: str
    service_account: str = ""
    env: Sequence[Mapping[str, Any]] = ()
    env_from: Sequence[Mapping[str, Any]] = ()
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    #: the longest a run may take, after which Kubernetes stops it
    active_deadline_seconds: int = 24 * 3600
    #: a finished Job (and its Pod, with its log) is kept this long, then deleted by Kubernetes
    ttl_seconds_after_finished: int = 3600
    #: Pods retried by Kubernetes after a failure (0: the job fails with the Pod's reason)
    backoff_limit: int = 0
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    image_pull_policy: str = "IfNotPresent"
    #: what the Pods share with the service's own Pod (SHOAL_KUBERNETES_JOB_POD_TEMPLATE)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    volumes: Sequence[Mapping[str, Any]] = ()
    volume_mounts: Sequence[Mapping[str, Any]] = ()
    image_pull_secrets: Sequence[Mapping[str, Any]] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    affinity: Mapping[str, Any] = field(default_factory=dict)
    priority_class_name: str = ""
    #: at most this many Pods share a job that can be split, as the completions of an Indexed Job
    max_shards: int = 1


SHARDS_ANNOTATION = "shoal.dev/shards"
PHASE_ANNOTATION = "shoal.dev/phase"


#: the keys of a pod template file, with the JSON type each holds
POD_TEMPLATE_KEYS: dict[str, type] = {
    "labels": dict, "env": list, "envFrom": list, "volumes": list, "volumeMounts": list, "imagePullSecrets": list,
    "nodeSelector": dict, "tolerations": list, "affinity": dict, "priorityClassName": str,
}  # fmt: skip


def read_pod_template(path: Path) -> dict[str, Any]:
    """The pod template file at ``path``, checked: a JSON object of :data:`POD_TEMPLATE_KEYS`."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigurationError(f"SHOAL_KUBERNETES_JOB_POD_TEMPLATE: cannot read {path}: {exc}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"SHOAL_KUBERNETES_JOB_POD_TEMPLATE: {path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"SHOAL_KUBERNETES_JOB_POD_TEMPLATE: {path} holds a {type(data).__name__}, not an object"
        )
    for key, value in data.items():
        expected = POD_TEMPLATE_KEYS.get(key)
        if expected is None:
            raise ConfigurationError(
                f"SHOAL_KUBERNETES_JOB_POD_TEMPLATE: {path} has the unknown key {key!r} "
                f"(known: {', '.join(sorted(POD_TEMPLATE_KEYS))})"
            )
        if not isinstance(value, expected):
            raise ConfigurationError(
                f"SHOAL_KUBERNETES_JOB_POD_TEMPLATE: {path}: {key!r} must be a JSON "
                f"{ {dict: 'object', list: 'array', str: 'string'}[expected] }, not {type(value).__name__}"
            )
    return data


@dataclass(frozen=True)
class Outcome:
    """Where a Kubernetes Job stands: ``active``, ``succeeded``, ``failed`` (with why) or ``gone``."""

    state: str
    reason: str = ""
    #: for the Indexed Job of a job's shards: their number
    shards: int = 0


def job_name(service: str, job: Job, claim: str) -> str:
    """A DNS-1123 name, at most 63 characters, the same for the same submission of a job."""
    digest = hashlib.sha256(f"{job.project}\0{job.job_id}\0{claim}".encode()).hexdigest()[:16]
    kind = re.sub(r"[^a-z0-9]+", "-", job.kind.lower()).strip("-")[:24]
    return f"shoal-{re.sub(r'[^a-z0-9]+', '-', service)}-{kind}-{digest}"[:63].rstrip("-")


def _job_label(job: Job) -> str:
    """The label value of a job's Kubernetes Jobs and Pods (a label value holds at most 63 characters)."""
    return hashlib.sha256(f"{job.project}\0{job.job_id}".encode()).hexdigest()[:32]


class KubernetesJobs:
    """Creates, reads and deletes the Kubernetes Jobs of one service's Shoal jobs."""

    def __init__(self, api: Any, service: str, template: JobTemplate) -> None:
        from kubernetes import client

        self.api = api
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.service = service
        self.template = template

    def leases(self, duration_seconds: float) -> Any:
        """The job claims of this service's runners, as Leases beside its Jobs."""
        from shoal.common.kubernetes_leases import LeaseClaims

        return LeaseClaims(self.api, self.template.namespace, self.service, duration_seconds)

    @property
    def max_shards(self) -> int:
        return self.template.max_shards

    def manifest(self, job: Job, claim: str, *, shards: int = 1, after_shards: int = 0) -> dict[str, Any]:
        """The ``batch/v1`` Job that runs ``job`` once, as a plain dict; with ``shards`` > 1 the Indexed Job
        whose Pods compute its shards, with ``after_shards`` the Job that finishes it from their parts."""
        t = self.template
        labels = {**MANAGED_BY, SERVICE_LABEL: self.service, JOB_LABEL: _job_label(job)}
        container: dict[str, Any] = {
            "name": "job",
            "image": t.image,
            "imagePullPolicy": t.image_pull_policy,
            # the Pod runs the job only while it is queued as this revision (see JobRunner.run_one)
            "args": self._args(job, claim)
            + (["--shards", str(shards)] if shards > 1 else [])
            + (["--after-shards", str(after_shards)] if after_shards > 1 else []),
            "env": [dict(e) for e in t.env],
            "envFrom": [dict(e) for e in t.env_from],
            "resources": {"requests": dict(t.requests), "limits": dict(t.limits)},
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            # scratch space on the read-only root filesystem: an emptyDir of the Pod, unless the template has one
            "volumeMounts": [dict(m) for m in t.volume_mounts],
        }
        volumes = [dict(v) for v in t.volumes]
        if not any(m.get("mountPath") == "/tmp" for m in container["volumeMounts"]):  # noqa: S108
            container["volumeMounts"].append({"name": "tmp", "mountPath": "/tmp"})  # noqa: S108
            volumes.append({"name": "tmp", "emptyDir": {}})
        pod: dict[str, Any] = {
            "restartPolicy": "Never",
            "containers": [container],
            "securityContext": {
                "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumes": volumes,
            # a job's Pod never calls the Kubernetes API
            "automountServiceAccountToken": False,
        }  # fmt: skip
        if t.service_account:
            pod["serviceAccountName"] = t.service_account
        for key, value in (("imagePullSecrets", [dict(x) for x in t.image_pull_secrets]),
                           ("nodeSelector", dict(t.node_selector)), ("tolerations", [dict(x) for x in t.tolerations]),
                           ("affinity", dict(t.affinity)), ("priorityClassName", t.priority_class_name)):  # fmt: skip
            if value:
                pod[key] = value
        annotations = {PROJECT_ANNOTATION: job.project, "shoal.dev/job": job.job_id, "shoal.dev/claim": claim}
        phase = "shards" if shards > 1 else "finish" if after_shards > 1 else ""
        if phase:
            annotations |= {PHASE_ANNOTATION: phase, SHARDS_ANNOTATION: str(max(shards, after_shards))}
        spec: dict[str, Any] = {}
        if shards > 1:  # each Pod finds its shard in JOB_COMPLETION_INDEX
            spec = {"completionMode": "Indexed", "completions": shards, "parallelism": shards}
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": job_name(self.service, job, f"{claim}/{phase}" if phase else claim),
                "namespace": t.namespace,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": {
                **spec,
                "backoffLimit": t.backoff_limit,
                "activeDeadlineSeconds": t.active_deadline_seconds,
                "ttlSecondsAfterFinished": t.ttl_seconds_after_finished,
                "template": {
                    "metadata": {
                        # the template's labels (the release's, for its NetworkPolicy) never replace the executor's
                        "labels": {**t.pod_labels, **labels},
                        "annotations": {**annotations, **t.pod_annotations},
                    },
                    "spec": pod,
                },
            },
        }

    def _args(self, job: Job, claim: str) -> list[str]:
        return ["job", "run", "--service", self.service, "--project", job.project, "--job-id", job.job_id,
                "--revision", claim]  # fmt: skip

    def create(self, job: Job, claim: str, *, shards: int = 1, after_shards: int = 0) -> str:
        """Creates the Job of this submission (or finds the one created before); returns its name. See
        :meth:`manifest` for ``shards`` and ``after_shards``."""
        from kubernetes.client.exceptions import ApiException

        body = self.manifest(job, claim, shards=shards, after_shards=after_shards)
        try:
            self.batch.create_namespaced_job(self.template.namespace, body)
        except ApiException as exc:
            if exc.status != 409:  # 409: it exists already, from an earlier attempt
                raise
        return str(body["metadata"]["name"])

    def outcome(self, name: str) -> Outcome:
        """How the Job ``name`` stands now; for a failed one, the Job's reason and its Pods' ends."""
        from kubernetes.client.exceptions import ApiException

        try:
            found = self.batch.read_namespaced_job_status(name, self.template.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return Outcome("gone", f"the Kubernetes Job {name} no longer exists")
            raise
        notes = found.metadata.annotations or {}
        shards = int(notes.get(SHARDS_ANNOTATION, "0")) if notes.get(PHASE_ANNOTATION) == "shards" else 0
        for c in found.status.conditions or ():
            if c.status != "True":
                continue
            if c.type == "Complete":
                return Outcome("succeeded", shards=shards)
            if c.type == "Failed":
                why = f"the Kubernetes Job {name} failed: {c.reason or 'Failed'}"
                if c.message:
                    why += f" ({c.message})"
                ends = self._pod_ends(name)
                return Outcome("failed", f"{why}; {ends}" if ends else why)
        return Outcome("active")

    def _pod_ends(self, name: str) -> str:
        """How the Job's Pods ended: exit codes and reasons of their containers, the last lines of
        their logs when the API server can read them, and where to read the rest."""
        ends = []
        for pod in self._pods(name):
            for status in pod.status.container_statuses or ():
                term = status.state.terminated if status.state is not None else None
                if term is not None:
                    end = f"Pod {pod.metadata.name} exited with code {term.exit_code} ({term.reason or 'no reason'})"
                    ends.append(f"{end}: {term.message}" if term.message else end)
                    tail = self._log_tail(pod.metadata.name)
                    if tail:
                        ends.append(f"its log ends: {tail}")
        if ends:
            ends.append(f"the whole log: {self.logs_hint(name)}")
        return "; ".join(ends)

    def job_logs_hint(self, job: Job) -> str:
        """The command that prints the logs of every Kubernetes Job of ``job`` Kubernetes still keeps."""
        return (
            f"kubectl -n {self.template.namespace} logs -l {JOB_LABEL}={_job_label(job)},{SERVICE_LABEL}={self.service}"
        )

    def logs_hint(self, name: str) -> str:
        """The command that prints the log of the Job ``name`` (while Kubernetes keeps it, its TTL)."""
        return f"kubectl -n {self.template.namespace} logs job/{name}"

    def _log_tail(self, pod: str, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of a Pod's log, joined by " | " and cut to LOG_TAIL_CHARS; empty when unreadable."""
        from kubernetes.client.exceptions import ApiException

        try:
            text = self.core.read_namespaced_pod_log(pod, self.template.namespace, tail_lines=lines,
                                                     _request_timeout=10)  # fmt: skip
        except (ApiException, OSError, ValueError):  # no log kept, or the node does not serve it
            return ""
        except Exception:  # noqa: BLE001 - urllib3's errors: the reason is complete without the log
            return ""
        text = " | ".join(line.strip() for line in str(text).splitlines() if line.strip())
        return text if len(text) <= LOG_TAIL_CHARS else "..." + text[-LOG_TAIL_CHARS:]

    def delete(self, name: str) -> None:
        """Deletes the Job and, with it, its Pods (which get SIGTERM); a Job already gone is fine."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch.delete_namespaced_job(
                name, self.template.namespace, body=client.V1DeleteOptions(propagation_policy="Background")
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def pods(self, name: str) -> list[str]:
        """The names of the Job's Pods that still exist."""
        return [p.metadata.name for p in self._pods(name)]

    def _pods(self, name: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(self.template.namespace, label_selector=f"job-name={name}").items)

    def listed(self) -> list[tuple[str, str, str]]:
        """(project, job id, Job name) of every Job of this service that Kubernetes still keeps."""
        found = self.batch.list_namespaced_job(
            self.template.namespace, label_selector=f"{SERVICE_LABEL}={self.service}"
        )
        out = []
        for item in found.items:
            notes = item.metadata.annotations or {}
            if PROJECT_ANNOTATION in notes and "shoal.dev/job" in notes:
                out.append((notes[PROJECT_ANNOTATION], notes["shoal.dev/job"], item.metadata.name))
        return out


#: where a Pod finds its own namespace
NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def from_settings(settings: ShoalSettings, service: str) -> KubernetesJobs | None:
    """The Kubernetes Jobs of ``service`` when ``job_executor`` is ``kubernetes``, else None."""
    if settings.job_executor != "kubernetes":
        return None
    from kubernetes import client, config

    if settings.kubernetes_kubeconfig is not None:
        api = config.new_client_from_config(config_file=str(settings.kubernetes_kubeconfig))
    else:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        api = client.ApiClient(configuration)
    namespace = settings.kubernetes_namespace
    if not namespace:
        try:
            with open(NAMESPACE_FILE) as f:
                namespace = f.read().strip()
        except OSError:
            namespace = "default"
    env_from = [
        {"configMapRef": {"name": ref.split("/", 1)[1]}} if ref.startswith("configmap/")
        else {"secretRef": {"name": ref.split("/", 1)[1]}}
        for ref in settings.kubernetes_job_env_from
    ]  # fmt: skip
    shared: dict[str, Any] = {}
    if settings.kubernetes_job_pod_template is not None:
        shared = read_pod_template(settings.kubernetes_job_pod_template)
    template = JobTemplate(
        namespace=namespace,
        image=settings.kubernetes_job_image,
        service_account=settings.kubernetes_job_service_account,
        env=shared.get("env", ()),
        env_from=[*shared.get("envFrom", ()), *env_from],
        pod_labels=shared.get("labels", {}),
        volumes=shared.get("volumes", ()),
        volume_mounts=shared.get("volumeMounts", ()),
        image_pull_secrets=shared.get("imagePullSecrets", ()),
        node_selector=shared.get("nodeSelector", {}),
        tolerations=shared.get("tolerations", ()),
        affinity=shared.get("affinity", {}),
        priority_class_name=shared.get("priorityClassName", ""),
        requests=dict(settings.kubernetes_job_requests),
        limits=dict(settings.kubernetes_job_limits),
        active_deadline_seconds=settings.kubernetes_job_deadline_seconds,
        ttl_seconds_after_finished=settings.kubernetes_job_ttl_seconds,
        max_shards=settings.kubernetes_job_shards,
    )
    return KubernetesJobs(api, service, template)
