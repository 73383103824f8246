"""Run a real Kubernetes control plane for the tests: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok's simulated node, on the loopback, from the binaries that
``scripts/ensure-kubernetes.sh build`` keeps outside the work tree (``make kubernetes``).

Simulated Pods run no code: kwok marks them Running and Ready, completes the Pods of Jobs, and fails those
annotated ``kwok.x-k8s.io/fail: "true"``. What a Pod would run is tested as a process of its own.

Typical use::

    with KubernetesCluster(tmp_path / "k8s") as cluster:
        subprocess.run([helm, "install", ..., "--kubeconfig", cluster.kubeconfig, "--wait"], check=True)

``start`` returns once the API server is ready, the node is Ready and the ``default`` ServiceAccount exists;
the script's error (with the end of the failing component's log) is raised otherwise. ``stop`` ends only the
processes this cluster started.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
from types import TracebackType

from tests.harness._proc import free_ports

__all__ = ["SCRIPT", "KubernetesCluster"]

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "ensure-kubernetes.sh"


class KubernetesCluster:
    """One control plane whose state lives under ``run_dir`` (certificates, etcd's data, logs)."""

    def __init__(self, run_dir: pathlib.Path) -> None:
        self.run_dir = pathlib.Path(run_dir)
        self.kubeconfig = self.run_dir / "kubeconfig"
        client, peer, metrics, api = free_ports(4)
        self.api_port = api
        self._env = {
            **os.environ,
            "SHOAL_K8S_ETCD_PORTS": f"{client} {peer} {metrics}",
            "SHOAL_K8S_API_PORT": str(api),
        }

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["bash", str(SCRIPT), "start", str(self.run_dir)], env=self._env, capture_output=True, text=True
        )
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(
                f"the Kubernetes control plane did not start (exit {done.returncode}):\n{done.stderr[-4000:]}"
            )

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.run_dir)], env=self._env, capture_output=True)

    def __enter__(self) -> KubernetesCluster:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
