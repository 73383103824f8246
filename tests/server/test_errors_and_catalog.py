"""Typed errors become the right status with the field named; the project catalog validates
its input and keeps classes and embedding spaces append-only."""

from __future__ import annotations

import grpc
import pytest

from shoal.client import error_detail
from shoal.common.errors import InvalidArgument
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.server.conftest import Running


def _space(name: str = "clip", dim: int = 512) -> pb.EmbeddingSpace:
    return pb.EmbeddingSpace(
        name=name,
        dimension=dim,
        metric=pb.DISTANCE_METRIC_COSINE,
        level=pb.EMBEDDING_LEVEL_FRAME,
        model_name="clip-vit-b32",
        model_version="2024-01",
    )


def _project(**kw) -> pb.Project:  # type: ignore[no-untyped-def]
    base = dict(
        name="cones",
        task_type=pb.TASK_TYPE_OBJECT_DETECTION_2D,
        classes=[pb.ClassDef(id=0, name="cone"), pb.ClassDef(id=1, name="car")],
        embedding_spaces=[_space()],
    )
    base.update(kw)
    return pb.Project(**base)


def test_project_round_trip(running: Running) -> None:
    with running.client(running.admin_key) as c:
        created = c.ingest.CreateProject(pb.CreateProjectRequest(project=_project(display_name="Cones"))).project
        assert created.revision == 1 and created.create_time.seconds > 0
        got = c.ingest.GetProject(pb.GetProjectRequest(project="cones")).project
        assert got == created
        assert [cl.name for cl in got.classes] == ["cone", "car"]
        assert got.embedding_spaces[0].model_version == "2024-01"


@pytest.mark.parametrize(
    ("project", "field", "words"),
    [
        (_project(name="Bad Name"), "project.name", "not a project name"),
        (_project(task_type=pb.TASK_TYPE_UNSPECIFIED), "project.task_type", "must be set"),
        (
            _project(classes=[pb.ClassDef(id=0, name="a"), pb.ClassDef(id=0, name="b")]),
            "project.classes[1].id",
            "appears twice",
        ),
        (
            _project(classes=[pb.ClassDef(id=0, name="a"), pb.ClassDef(id=1, name="a")]),
            "project.classes[1].name",
            "appears twice",
        ),
        (_project(embedding_spaces=[_space(dim=0)]), "project.embedding_spaces[0].dimension", "[1, 32768]"),
        (
            _project(
                embedding_spaces=[
                    pb.EmbeddingSpace(
                        name="e", dimension=8, metric=pb.DISTANCE_METRIC_L2, level=pb.EMBEDDING_LEVEL_FRAME
                    )
                ]
            ),
            "project.embedding_spaces[0].model_name",
            "lineage",
        ),
        (
            _project(
                embedding_spaces=[
                    pb.EmbeddingSpace(
                        name="e", dimension=8, level=pb.EMBEDDING_LEVEL_FRAME, model_name="m", model_version="1"
                    )
                ]
            ),
            "project.embedding_spaces[0].metric",
            "must be set",
        ),
    ],
)
def test_invalid_projects_name_the_field(running: Running, project: pb.Project, field: str, words: str) -> None:
    with running.client(running.admin_key) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.CreateProject(pb.CreateProjectRequest(project=project))
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field}: ") and words in err.details()
    detail = error_detail(err)
    assert detail is not None and detail.field == field and detail.reason == "INVALID_ARGUMENT"


def test_not_found_and_already_exists(running: Running) -> None:
    with running.client(running.admin_key) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.GetProject(pb.GetProjectRequest(project="missing"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND and "'missing' does not exist" in info.value.details()
        c.ingest.CreateProject(pb.CreateProjectRequest(project=_project()))
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.CreateProject(pb.CreateProjectRequest(project=_project()))
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_classes_and_spaces_are_append_only(running: Running) -> None:
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=_project()))

        def update(paths: list[str], **fields) -> pb.Project:  # type: ignore[no-untyped-def]
            req = pb.UpdateProjectRequest(project="cones", update=pb.Project(**fields))
            req.update_mask.paths.extend(paths)
            return c.ingest.UpdateProject(req).project

        grown = update(
            ["classes", "description"],
            classes=[pb.ClassDef(id=0, name="cone"), pb.ClassDef(id=1, name="car"), pb.ClassDef(id=2, name="truck")],
            description="cones at night",
        )
        assert [cl.name for cl in grown.classes] == ["cone", "car", "truck"] and grown.revision == 2
        assert grown.description == "cones at night"
        grown = update(["embedding_spaces"], embedding_spaces=[_space(), _space("dino", 384)])
        assert [s.name for s in grown.embedding_spaces] == ["clip", "dino"]
        for paths, fields, words in [
            (["classes"], {"classes": [pb.ClassDef(id=0, name="cone")]}, "class id 1 cannot be removed"),
            (
                ["classes"],
                {
                    "classes": [
                        pb.ClassDef(id=0, name="pylon"),
                        pb.ClassDef(id=1, name="car"),
                        pb.ClassDef(id=2, name="truck"),
                    ]
                },
                "class id 0 cannot be redefined",
            ),
            (
                ["embedding_spaces"],
                {"embedding_spaces": [_space(dim=256), _space("dino", 384)]},
                "'clip' cannot be redefined",
            ),
        ]:
            with pytest.raises(grpc.RpcError) as info:
                update(paths, **fields)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert words in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            update(["task_type"], task_type=pb.TASK_TYPE_CLASSIFICATION)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "update_mask" in info.value.details()
        assert c.ingest.GetProject(pb.GetProjectRequest(project="cones")).project.revision == 3


def test_listing_pages_are_stable_and_tokens_are_checked(running: Running) -> None:
    with running.client(running.admin_key) as c:
        for i in range(7):
            c.ingest.CreateProject(pb.CreateProjectRequest(project=_project(name=f"p{i}")))
        seen, token = [], ""
        while True:
            resp = c.ingest.ListProjects(pb.ListProjectsRequest(page={"page_size": 3, "page_token": token}))
            assert resp.page.total_count == 7
            seen += [p.name for p in resp.projects]
            token = resp.page.next_page_token
            if not token:
                break
        assert seen == [f"p{i}" for i in range(7)]
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.ListProjects(pb.ListProjectsRequest(page={"page_token": "garbage"}))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page.page_token" in info.value.details()


def test_unexpected_errors_are_internal_with_a_request_id_and_logged(
    running: Running, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from shoal.ingest.catalog import ProjectCatalog

    def boom(self, name):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(ProjectCatalog, "get", boom)
    with running.client(running.admin_key) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.GetProject(pb.GetProjectRequest(project="x"), metadata=[("x-request-id", "req-42")])
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in info.value.details() and "req-42" in info.value.details()
    assert any("req-42" in r.getMessage() and r.exc_info for r in caplog.records)


def test_oversize_messages_are_refused(embedded_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.server.conftest import start_server

    r = start_server(embedded_settings.model_copy(update={"max_message_bytes": 4096}))
    try:
        with r.client(r.admin_key) as c:
            with pytest.raises(grpc.RpcError) as info:
                c.ingest.CreateProject(pb.CreateProjectRequest(project=_project(description="x" * 8000)))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        r.server.stop(grace=1)


def test_error_messages_name_field_and_datapoint() -> None:
    from shoal.common.errors import Datapoint

    err = InvalidArgument("must be finite", field="frames[3].embedding", datapoint=Datapoint("train", "f-17"))
    assert err.describe() == "frames[3].embedding: must be finite (dataset 'train', frame 'f-17')"
