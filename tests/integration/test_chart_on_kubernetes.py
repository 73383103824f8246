"""The Helm chart installed with ``helm install --wait`` on a real API server (etcd, kube-apiserver, the
controller manager, the scheduler, and kwok's simulated node): the least an operator sets (the stores'
addresses, ci/minimal-values.yaml; without them the chart refuses to render and says which is missing), and
the production values once the preconditions that docs/operator/kubernetes.md lists are in place. Without
them, helm's error names the missing piece."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.harness.kubernetes_cluster import KubernetesCluster

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("kubernetes")]

CHART = REPO / "deploy" / "helm" / "shoal"
PRODUCTION = CHART / "ci" / "production-values.yaml"
MINIMAL = CHART / "ci" / "minimal-values.yaml"


def _cache() -> Path:
    cache = Path(os.environ.get("SHOAL_CACHE_DIR", REPO / ".cache"))
    return cache if cache.is_absolute() else REPO / cache


@pytest.fixture(scope="module")
def tools() -> tuple[Path, Path]:
    """helm and kubectl (scripts/fetch-helm.sh)."""
    bin_dir = _cache() / "helm-bin"
    if not (bin_dir / "helm").exists():
        subprocess.run(
            ["bash", str(REPO / "scripts" / "fetch-helm.sh")], check=True, env={**os.environ, "PYTHON": sys.executable}
        )
    return bin_dir / "helm", bin_dir / "kubectl"


class Kube:
    """helm and kubectl pointed at the test cluster."""

    def __init__(self, cluster: KubernetesCluster, helm: Path, kubectl: Path) -> None:
        self.cluster = cluster
        self._helm = helm
        self._kubectl = kubectl

    def helm(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self._helm), *args, "--kubeconfig", str(self.cluster.kubeconfig)],
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self._kubectl), "--kubeconfig", str(self.cluster.kubeconfig), *args],
                              input=stdin, capture_output=True, text=True, timeout=300)  # fmt: skip

    def apply(self, *documents: dict[str, Any]) -> None:
        done = self.kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in documents))
        assert done.returncode == 0, done.stderr

    def get(self, *args: str) -> dict[str, Any]:
        done = self.kubectl("get", *args, "-o", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def kube(kubernetes_cluster: KubernetesCluster, tools: tuple[Path, Path]) -> Kube:
    return Kube(kubernetes_cluster, *tools)


def _install(kube: Kube, release: str, namespace: str, *values: Path) -> subprocess.CompletedProcess[str]:
    files = [a for v in values for a in ("-f", str(v))]
    # helm --wait gives up after --timeout; the bound is generous, what it waits for is readiness
    return kube.helm("install", release, str(CHART), "--namespace", namespace, "--create-namespace", *files,
                     "--wait", "--timeout", "10m")  # fmt: skip


def _deployments_ready(kube: Kube, namespace: str) -> dict[str, tuple[int, int]]:
    found = kube.get("deployments", "--namespace", namespace)["items"]
    return {d["metadata"]["name"]: (d["status"].get("readyReplicas", 0), d["spec"]["replicas"]) for d in found}


def test_the_minimal_values_install_and_every_service_becomes_ready(kube: Kube) -> None:
    refused = _install(kube, "shoal", "shoal-default")  # the chart's defaults name no store
    assert refused.returncode != 0 and "set clickhouse.url" in refused.stderr, refused.stderr
    done = _install(kube, "shoal", "shoal-default", MINIMAL)
    assert done.returncode == 0, done.stderr
    ready = _deployments_ready(kube, "shoal-default")
    assert {n.removeprefix("shoal-") for n in ready} >= {"ingest", "analysis", "sampler", "labeling-bridge", "console"}
    assert all(r == want for r, want in ready.values()), ready
    assert "Shoal" in done.stdout  # NOTES.txt
    assert kube.helm("uninstall", "shoal", "--namespace", "shoal-default", "--wait").returncode == 0


def test_the_production_values_install_once_their_preconditions_hold(kube: Kube) -> None:
    ns = "shoal-production"
    # without the Prometheus Operator's CRD, helm names the kind it cannot create
    missing = _install(kube, "shoal", ns, PRODUCTION)
    assert missing.returncode != 0 and "ServiceMonitor" in missing.stderr, missing.stderr
    kube.helm("uninstall", "shoal", "--namespace", ns, "--wait")

    # the preconditions docs/operator/kubernetes.md lists for these values
    kube.apply(_SERVICE_MONITOR_CRD, {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "shoal-high"},
        "value": 100000, "description": "Shoal's services",
    })  # fmt: skip
    done = kube.kubectl("label", "node", "kwok-node-0", "workload=analysis", "--overwrite")
    assert done.returncode == 0, done.stderr
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "training-images"},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"], "hostPath": {"path": "/data"},
                  "claimRef": {"namespace": ns, "name": "training-images"}, "storageClassName": ""}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "training-images", "namespace": ns},
         "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}},
                  "storageClassName": "", "volumeName": "training-images"}},
    )  # fmt: skip
    done = _install(kube, "shoal", ns, PRODUCTION)
    assert done.returncode == 0, done.stderr
    ready = _deployments_ready(kube, ns)
    assert all(r == want for r, want in ready.values()), ready
    analysis = kube.get("pods", "--namespace", ns, "-l", "app.kubernetes.io/component=analysis")["items"]
    assert analysis and all(p["spec"]["priorityClassName"] == "shoal-high" for p in analysis)
    assert kube.get("servicemonitors", "--namespace", ns)["items"], "no ServiceMonitor was created"

    # the job executors' Role, as the API server's RBAC answers it: Jobs and their Pods' logs in the release's
    # namespace for analysis and sampler, nothing more, and nothing for a service that runs no job
    def can(account: str, *what: str, namespace: str = ns) -> bool:
        done = kube.kubectl("auth", "can-i", *what, "--namespace", namespace,
                            "--as", f"system:serviceaccount:{ns}:shoal-{account}")  # fmt: skip
        assert done.stdout.strip() in ("yes", "no"), done.stderr
        return done.stdout.strip() == "yes"

    for account in ("analysis", "sampler"):
        assert can(account, "create", "jobs.batch") and can(account, "delete", "jobs.batch")
        assert can(account, "get", "pods", "--subresource", "log") and can(account, "list", "pods")
        assert can(account, "update", "leases.coordination.k8s.io") and not can(account, "delete", "leases")
        assert not can(account, "create", "jobs.batch", namespace="default")
        assert not can(account, "get", "secrets") and not can(account, "delete", "pods")
        assert not can(account, "create", "deployments.apps")
    assert not can("ingest", "create", "jobs.batch") and not can("labeling-bridge", "list", "pods")
    pods = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p["spec"]
            for p in kube.get("pods", "--namespace", ns)["items"]}  # fmt: skip
    assert pods["analysis"]["automountServiceAccountToken"] is True
    assert pods["ingest"]["automountServiceAccountToken"] is False


_SERVICE_MONITOR_CRD: dict[str, Any] = {
    # the Prometheus Operator's ServiceMonitor, reduced to what the API server needs to accept one
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList", "plural": "servicemonitors",
                  "singular": "servicemonitor"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}  # fmt: skip
