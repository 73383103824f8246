"""API keys, project scopes and the development mode, through real gRPC calls."""

from __future__ import annotations

import grpc
import pytest

from shoal.analysis.v1 import analysis_pb2
from shoal.client import Client, error_detail, list_services
from shoal.common.settings import ShoalSettings
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.ingest.v1 import ingest_pb2_grpc
from tests.server.conftest import Running, start_server

CLASSIFICATION = pb.TASK_TYPE_CLASSIFICATION


def _create(client: Client, name: str) -> None:
    client.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(name=name, task_type=CLASSIFICATION)))


def _code(fn) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value.code()


def test_calls_without_a_valid_key_are_unauthenticated(shared: Running, project: str) -> None:
    running = shared
    get = pb.GetProjectRequest(project=project)
    with running.client() as anonymous:
        assert _code(lambda: anonymous.ingest.GetProject(get)) == grpc.StatusCode.UNAUTHENTICATED
    with running.client("not-a-key") as malformed:
        assert _code(lambda: malformed.ingest.GetProject(get)) == grpc.StatusCode.UNAUTHENTICATED
    with running.client("shoal_0123456789abcdef_" + "x" * 43) as unknown:
        with pytest.raises(grpc.RpcError) as info:
            unknown.ingest.GetProject(get)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "unknown API key 0123456789abcdef" in info.value.details()
    # A known key id with the wrong secret is refused as well.
    key_id = running.admin_key.split("_")[1]
    with running.client(f"shoal_{key_id}_" + "y" * 43) as forged:
        assert _code(lambda: forged.ingest.GetProject(get)) == grpc.StatusCode.UNAUTHENTICATED


def test_wrong_authorization_scheme_is_explained(shared: Running, project: str) -> None:
    running = shared
    channel = grpc.insecure_channel(running.target)
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetProject(
            pb.GetProjectRequest(project=project), metadata=[("authorization", f"Basic {running.admin_key}")]
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in info.value.details()
    # x-api-key works as well as a bearer token.
    with pytest.raises(grpc.RpcError) as info:
        stub.GetProject(pb.GetProjectRequest(project=project), metadata=[("x-api-key", running.admin_key)])
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    channel.close()


def test_a_key_scoped_to_project_a_cannot_touch_project_b(shared: Running, project: str) -> None:
    running = shared
    proj_a, proj_b, proj_c = f"{project}-a", f"{project}-b", f"{project}-c"
    with running.client(running.admin_key) as admin:
        _create(admin, proj_a)
        _create(admin, proj_b)
    _, key_a = running.server.keys.create([proj_a])
    with running.client(key_a) as a:
        assert a.ingest.GetProject(pb.GetProjectRequest(project=proj_a)).project.name == proj_a
        with pytest.raises(grpc.RpcError) as info:
            a.ingest.GetProject(pb.GetProjectRequest(project=proj_b))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"not scoped to project '{proj_b}'" in info.value.details()
        assert error_detail(info.value).reason == "PERMISSION_DENIED"
        update = pb.UpdateProjectRequest(project=proj_b, update=pb.Project(description="mine now"))
        update.update_mask.paths.append("description")
        assert _code(lambda: a.ingest.UpdateProject(update)) == grpc.StatusCode.PERMISSION_DENIED
        # Other services enforce the same scopes.
        jobs_b = analysis_pb2.ListJobsRequest(project=proj_b)
        assert _code(lambda: a.analysis.ListJobs(jobs_b)) == grpc.StatusCode.PERMISSION_DENIED
        assert len(a.analysis.ListJobs(analysis_pb2.ListJobsRequest(project=proj_a)).jobs) == 0
        # Listing shows only what the key may see.
        listed = a.ingest.ListProjects(pb.ListProjectsRequest())
        assert [p.name for p in listed.projects] == [proj_a] and listed.page.total_count == 1
        # Creating projects needs an administrator key.
        with pytest.raises(grpc.RpcError) as info:
            _create(a, proj_c)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "administrator" in info.value.details()
    with running.client(running.admin_key) as admin:
        names = [p.name for p in admin.ingest.ListProjects(pb.ListProjectsRequest()).projects]
        assert [n for n in names if n.startswith(project)] == [proj_a, proj_b]  # and not proj_c
        # the project B is untouched
        assert admin.ingest.GetProject(pb.GetProjectRequest(project=proj_b)).project.description == ""


def test_a_revoked_key_stops_working(shared: Running, project: str) -> None:
    running = shared
    with running.client(running.admin_key) as admin:
        _create(admin, project)
    key_id, key = running.server.keys.create([project])
    with running.client(key) as c:
        c.ingest.GetProject(pb.GetProjectRequest(project=project))
        running.server.keys.revoke(key_id)
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.GetProject(pb.GetProjectRequest(project=project))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in info.value.details()


def test_keys_are_stored_hashed(shared: Running, project: str) -> None:
    running = shared
    key_id, key = running.server.keys.create([project])
    stored = running.server.stores.metrics.query(
        "SELECT * FROM api_keys FINAL WHERE key_id = {k:String}", {"k": key_id}
    ).rows
    secret = key.split("_", 2)[2]  # the secret itself may hold "_" (URL-safe base64)
    assert stored and key not in repr(stored) and secret not in repr(stored)


def test_health_and_reflection_need_no_key(shared: Running) -> None:
    running = shared
    with running.client() as anonymous:
        assert anonymous.health_status() == "SERVING"
        assert anonymous.health_status("shoal.ingest.v1.IngestService") == "SERVING"
        services = list_services(anonymous.channel)
    assert {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "shoal.ingest.v1.IngestService",
        "shoal.analysis.v1.AnalysisService",
        "shoal.sampler.v1.SamplerService",
        "shoal.labeling_bridge.v1.LabelingBridgeService",
    } <= set(services)


def test_dev_mode_is_explicit_and_logged(embedded_settings: ShoalSettings, caplog: pytest.LogCaptureFixture) -> None:
    dev = embedded_settings.model_copy(update={"insecure_dev_mode": True})
    r = start_server(dev)
    try:
        with Client(r.target) as anonymous:
            _create(anonymous, "laptop")
            assert anonymous.ingest.GetProject(pb.GetProjectRequest(project="laptop")).project.name == "laptop"
    finally:
        r.server.stop(grace=1)
    assert any("INSECURE DEVELOPMENT MODE" in rec.getMessage() and rec.levelname == "WARNING" for rec in caplog.records)


def test_admin_key_from_settings_is_registered(embedded_settings: ShoalSettings) -> None:
    from pydantic import SecretStr

    from shoal.common.auth import generate_key

    _, key = generate_key()
    r = start_server(embedded_settings.model_copy(update={"admin_api_key": SecretStr(key)}))
    try:
        with Client(r.target, api_key=key) as c:
            _create(c, "from-secret")
    finally:
        r.server.stop(grace=1)
