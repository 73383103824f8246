"""Health follows real readiness: a store that is down makes the server NOT_SERVING, never
crashes it, and calls answer UNAVAILABLE until it is back."""

from __future__ import annotations

import dataclasses
import logging
import socket
import time

import grpc
import pytest

from shoal.app import build_server
from shoal.client import Client
from shoal.common.settings import ShoalSettings
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.server.conftest import Running, start_server, wait_for


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_metrics_store_means_not_serving_and_unavailable(embedded_settings: ShoalSettings) -> None:
    settings = embedded_settings.model_copy(
        update={"metrics_url": f"http://127.0.0.1:{_closed_port()}", "store_timeout_seconds": 2.0}
    )
    server = build_server(settings)
    port = server.start()
    try:
        with Client(f"127.0.0.1:{port}", api_key="shoal_0123456789abcdef_" + "k" * 43) as c:
            wait_for(lambda: "metrics" in server._store_errors, what="the metrics check to fail")
            assert c.health_status() == "NOT_SERVING"
            for name in (
                "shoal.ingest.v1.IngestService",
                "shoal.analysis.v1.AnalysisService",
                "shoal.sampler.v1.SamplerService",
                "shoal.labeling_bridge.v1.LabelingBridgeService",
            ):
                assert c.health_status(name) == "NOT_SERVING"
            with pytest.raises(grpc.RpcError) as info:
                c.ingest.GetProject(pb.GetProjectRequest(project="p"))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "ClickHouse unreachable" in info.value.details()
            # still alive and answering after several readiness rounds
            wait_for(lambda: server._monitor is not None and server._monitor.is_alive(), what="monitor")
            assert c.health_status() == "NOT_SERVING"
    finally:
        server.stop(grace=1)


def test_unknown_service_name_is_not_found(shared: Running) -> None:
    with shared.client() as c:
        assert c.health_status("shoal.nope.v1.NopeService") == "SERVICE_UNKNOWN"


@pytest.mark.integration
def test_kafka_going_down_and_up_flips_health(embedded_settings: ShoalSettings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import REPO
    from tests.harness.kafka_broker import KafkaBroker, default_libs_dir

    broker = KafkaBroker(libs_dir=default_libs_dir(REPO), work_dir=tmp_path / "kafka")
    broker.start()
    try:
        settings = embedded_settings.model_copy(
            update={
                "kafka_bootstrap_servers": broker.bootstrap_servers,
                "store_timeout_seconds": 3.0,
                "readiness_interval_seconds": 0.5,
                "topic_partitions": 2,
            }
        )
        r = start_server(settings)
        # the readiness check of a service after ingest that does not use Kafka takes a second: the services'
        # statuses are all known before any is set, and a client never sees a service down while the server is up
        i, slow = next((i, s) for i, s in enumerate(r.server.specs) if "events" not in s.stores)
        assert i > 0 and r.server.specs[0].name == "ingest"
        r.server.specs[i] = dataclasses.replace(slow, check=lambda: (time.sleep(1.0), slow.check and slow.check()))
        try:
            with Client(r.target) as c:
                assert c.health_status("shoal.ingest.v1.IngestService") == "SERVING"
                broker.stop()

                def ingest_down() -> bool:
                    down = c.health_status("shoal.ingest.v1.IngestService") == "NOT_SERVING"
                    assert not down or c.health_status() == "NOT_SERVING", "a service down while the server is up"
                    return down

                wait_for(ingest_down, timeout=60, what="ingest NOT_SERVING with Kafka down")
                # analysis does not use Kafka and keeps serving
                assert c.health_status("shoal.analysis.v1.AnalysisService") == "SERVING"
                assert c.health_status() == "NOT_SERVING"
                broker.restart()
                wait_for(lambda: c.health_status() == "SERVING", timeout=90, what="SERVING again with Kafka back")
        finally:
            r.server.stop(grace=1)
    finally:
        broker.stop()


def test_garbage_request_bytes_log_one_short_line_not_a_traceback_each(shared: Running, caplog) -> None:  # type: ignore[no-untyped-def]
    """grpc logs a traceback for every request that is not a protobuf, before any key is checked:
    200 of them must not flood the log."""
    channel = grpc.insecure_channel(shared.target)
    call = channel.unary_unary("/shoal.ingest.v1.IngestService/GetProject")
    codes = set()
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(200):
                with pytest.raises(grpc.RpcError) as info:
                    call(b"\xff\xff\xff\xff\xff", timeout=10)
                codes.add(info.value.code())
    finally:
        channel.close()
    assert codes == {grpc.StatusCode.INTERNAL}  # grpc's own answer to bytes that do not parse
    lines = [r for r in caplog.records if r.name.startswith("grpc")]
    assert len(lines) <= 3, [r.getMessage() for r in lines]  # at most one per 10 s
    assert all(r.exc_info is None for r in lines)
    assert "Traceback" not in caplog.text
    with shared.client() as c:
        assert c.health_status() == "SERVING"
