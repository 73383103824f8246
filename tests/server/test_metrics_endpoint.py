"""Observability of a running server: the Prometheus endpoint counts RPCs by method and status,
the rows ingest writes per table and the jobs it runs; every RPC has a request id that comes back
in its trailing metadata and that its logs carry; a plaintext health-only port answers probes
while the main port speaks TLS."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.client import Client
from shoal.common.logs import JsonFormatter
from shoal.common.server import LIVENESS
from shoal.common.settings import ShoalSettings
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.conftest import server_settings
from tests.server.conftest import Running, finish_job, start_server, wait_for
from tests.server.test_tls import _cert

INGEST = "shoal.ingest.v1.IngestService"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics``, keyed by name and sorted labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path) -> Iterator[Running]:
    """The module's server with a metrics port. Its tests count what moved between two scrapes, so none
    of them leaves work running behind it."""
    r = start_server(server_settings(tmp_path_factory.mktemp("observed") / "data", chdb_path, metrics_port=0))
    yield r
    r.server.stop(grace=1)


def _upload(c: Client, p: str, n: int) -> None:
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=p, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=i, name=f"c{i}") for i in range(3)],
        embedding_spaces=[pb.EmbeddingSpace(name="feat", dimension=8, metric=pb.DISTANCE_METRIC_COSINE,
                                            level=pb.EMBEDDING_LEVEL_FRAME, model_name="m", model_version="1")])))  # fmt: skip
    c.ingest.CreateDataset(pb.CreateDatasetRequest(
        project=p, dataset=pb.Dataset(name="train", kind=pb.DATASET_KIND_LABELED, splits=["train"])))  # fmt: skip
    c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(
        project=p, inference_set=pb.InferenceSet(name="m1", dataset="train", model_name="m", model_version="1")))  # fmt: skip
    rng = np.random.default_rng(7)
    ids = [f"f{i:04d}" for i in range(n)]
    columns = UploadColumns(
        frame_ids=ids,
        splits=["train"] * n,
        class_ids=np.arange(n) % 3,
        inference_set="m1",
        probabilities=rng.dirichlet(np.ones(3), size=n),
        embeddings={"feat": rng.normal(size=(n, 8)).astype("f4")},
    )
    result = c.upload(p, "train", columns, progress=False)
    assert c.wait_for_upload(p, result.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


def test_uploads_move_the_rpc_and_rows_written_counters(
    tmp_path_factory: pytest.TempPathFactory, chdb_path: Path, project: str
) -> None:
    """On a server of its own: it counts exactly what its work moved, and the work of the module's other
    tests (events still being consumed, a job ending) must not land between its two scrapes."""
    own = start_server(server_settings(tmp_path_factory.mktemp("counted") / "data", chdb_path, metrics_port=0))
    try:
        port = own.server.metrics_port
        assert port
        before = scrape(port)
        n = 120
        with own.client(own.admin_key) as c:
            _upload(c, project, n)
            with pytest.raises(grpc.RpcError) as info:
                c.ingest.GetProject(pb.GetProjectRequest(project=f"{project}-missing"))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=project, inference_set="m1")).job
            finish_job(c, project, job)
        # the runner records the job's duration just after the job reads as ended
        ran = {"service": "analysis", "kind": "label_issues", "outcome": "succeeded"}
        was = value(before, "shoal_job_duration_seconds_count", **ran)
        wait_for(lambda: value(scrape(port), "shoal_job_duration_seconds_count", **ran) > was,
                 what="the job's duration to be recorded")  # fmt: skip
        after = scrape(port)
    finally:
        own.server.stop(grace=1)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    handled = "shoal_grpc_server_handled_total"
    assert moved(handled, grpc_service=INGEST, grpc_method="CreateProject", grpc_type="unary", grpc_code="OK") == 1
    assert moved(handled, grpc_service=INGEST, grpc_method="Upload", grpc_type="client_stream", grpc_code="OK") >= 1
    assert moved(handled, grpc_service=INGEST, grpc_method="GetProject", grpc_type="unary", grpc_code="NOT_FOUND") == 1
    latency = {"grpc_service": INGEST, "grpc_method": "CreateProject", "grpc_type": "unary", "grpc_code": "OK"}
    assert moved("shoal_grpc_server_handling_seconds_count", **latency) == 1
    assert moved("shoal_grpc_server_handling_seconds_bucket", le="+Inf", **latency) == 1
    # the consumer wrote one row per frame, label and prediction, and one vector per frame
    for table in ("frames", "label_versions", "inferences"):
        assert moved("shoal_ingest_rows_written_total", table=table) == n, table
    assert moved("shoal_ingest_rows_written_total", table="upload_chunks") >= 1
    assert moved("shoal_ingest_vectors_written_total") == n
    assert moved("shoal_consumer_events_total", group="shoal-ingest", topic="shoal.uploads.v1") >= 1
    labels = {"service": "analysis", "kind": "label_issues", "outcome": "succeeded"}
    assert moved("shoal_job_duration_seconds_count", **labels) == 1
    assert value(after, "shoal_jobs_running", service="analysis") == 0
    # a consumer reports the lag of the partitions it holds: everything is committed by now
    lags = [v for (name, _), v in after.items() if name == "shoal_consumer_lag"]
    assert lags and all(v >= 0 for v in lags)


def test_every_rpc_has_a_request_id_in_its_trailers_and_logs(
    observed: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="shoal.common.interceptors")
    with observed.client(observed.admin_key) as c:
        _, call = c.ingest.ListProjects.with_call(pb.ListProjectsRequest(), metadata=(("x-request-id", "trace-42"),))
        assert dict(call.trailing_metadata())["x-request-id"] == "trace-42"
        _, call = c.ingest.ListProjects.with_call(pb.ListProjectsRequest())
        generated = dict(call.trailing_metadata())["x-request-id"]
        assert len(generated) == 32 and generated != "trace-42"
        # an error keeps its detail and gains the request id
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.GetProject(pb.GetProjectRequest(project="missing"), metadata=(("x-request-id", "trace-43"),))
        trailers = dict(info.value.trailing_metadata())
        assert trailers["x-request-id"] == "trace-43" and "shoal-error-bin" in trailers
    records = [r for r in caplog.records if getattr(r, "request_id", "") == "trace-42"]
    assert records, "the RPC's log record carries its request id"
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["request_id"] == "trace-42" and line["rpc"] == f"/{INGEST}/ListProjects"


def test_metrics_are_off_unless_a_port_is_set(shared: Running) -> None:
    assert shared.server.metrics_port is None


def test_health_port_answers_probes_in_plaintext_while_the_main_port_speaks_tls(
    embedded_settings: ShoalSettings, tmp_path: Path
) -> None:
    ca = _cert(tmp_path, "ca", ca=True)
    _cert(tmp_path, "server", issuer=ca)
    settings = embedded_settings.model_copy(
        update={
            "tls_cert_file": tmp_path / "server.crt",
            "tls_key_file": tmp_path / "server.key",
            "health_port": 0,
        }
    )
    from shoal.app import build_server
    from tests.server.conftest import wait_for

    server = build_server(settings)
    server.start()
    try:
        assert server.health_port
        with Client(f"127.0.0.1:{server.health_port}") as probe:
            # what the kubelet asks: liveness at once, the service once the stores answer
            assert probe.health_status(LIVENESS) == "SERVING"
            wait_for(lambda: probe.health_status(INGEST) == "SERVING", what="ingest SERVING on the health port")
            # the health port serves nothing else
            with pytest.raises(grpc.RpcError) as info:
                probe.ingest.ListProjects(pb.ListProjectsRequest())
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with Client(f"localhost:{server.port}", tls=True, ca_file=tmp_path / "ca.crt") as secure:
            assert secure.health_status(INGEST) == "SERVING"
    finally:
        server.stop(grace=1)
