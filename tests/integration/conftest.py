"""Servers shared by the integration tests of one process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shoal.common import jobs
from shoal.common.stores.metrics import EmbeddedMetricsStore
from tests.harness.kubernetes_cluster import KubernetesCluster


@pytest.fixture(scope="session")
def kubernetes_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubernetesCluster]:
    """A control plane with a simulated node (tests/harness/kubernetes_cluster.py); its tests keep to the
    ``kubernetes`` xdist group, so one worker starts it."""
    with KubernetesCluster(tmp_path_factory.mktemp("kubernetes")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def kubernetes_api(kubernetes_cluster: KubernetesCluster) -> Iterator[Any]:
    """An API client of the test cluster, as its administrator."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(kubernetes_cluster.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def job_store(embedded_metrics: EmbeddedMetricsStore) -> jobs.JobStore:
    """The analysis service's jobs table, in chDB."""
    embedded_metrics.migrate(jobs.MIGRATIONS)
    return jobs.JobStore(embedded_metrics, service="analysis")
