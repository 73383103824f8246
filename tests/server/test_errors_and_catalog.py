"""Typed errors become the right status with the field named; the project catalog validates
its input and keeps classes and embedding spaces append-only."""

from __future__ import annotations

import grpc
import pytest

from shoal.client import error_detail
from shoal.common.errors import InvalidArgument
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.server.conftest import Running, start_server


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


def test_project_round_trip(shared: Running, project: str) -> None:
    running, p = shared, project
    with running.client(running.admin_key) as c:
        created = c.ingest.CreateProject(
            pb.CreateProjectRequest(project=_project(name=p, display_name="Cones"))
        ).project
        assert created.revision == 1 and created.create_time.seconds > 0
        got = c.ingest.GetProject(pb.GetProjectRequest(project=p)).project
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
def test_invalid_projects_name_the_field(shared: Running, project: pb.Project, field: str, words: str) -> None:
    with shared.client(shared.admin_key) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.CreateProject(pb.CreateProjectRequest(project=project))
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field}: ") and words in err.details()
    detail = error_detail(err)
    assert detail is not None and detail.field == field and detail.reason == "INVALID_ARGUMENT"


def test_not_found_and_already_exists(shared: Running, project: str) -> None:
    running, p = shared, project
    with running.client(running.admin_key) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.GetProject(pb.GetProjectRequest(project=p))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND and f"'{p}' does not exist" in info.value.details()
        c.ingest.CreateProject(pb.CreateProjectRequest(project=_project(name=p)))
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.CreateProject(pb.CreateProjectRequest(project=_project(name=p)))
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_classes_and_spaces_are_append_only(shared: Running, project: str) -> None:
    running, p = shared, project
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=_project(name=p)))

        def update(paths: list[str], **fields) -> pb.Project:  # type: ignore[no-untyped-def]
            req = pb.UpdateProjectRequest(project=p, update=pb.Project(**fields))
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
        assert c.ingest.GetProject(pb.GetProjectRequest(project=p)).project.revision == 3


def test_listing_pages_are_stable_and_tokens_are_checked(embedded_settings) -> None:  # type: ignore[no-untyped-def]
    """On a server of its own: the listing must hold exactly this test's projects."""
    running = start_server(embedded_settings)
    try:
        _check_listing_pages(running)
    finally:
        running.server.stop(grace=1)


def _check_listing_pages(running: Running) -> None:
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
    shared: Running, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from shoal.common.data.projects import ProjectCatalog

    def boom(self, name):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(ProjectCatalog, "get", boom)
    with shared.client(shared.admin_key) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.GetProject(pb.GetProjectRequest(project="x"), metadata=[("x-request-id", "req-42")])
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in info.value.details() and "req-42" in info.value.details()
    assert any("req-42" in r.getMessage() and r.exc_info for r in caplog.records)


def test_oversize_messages_are_refused(embedded_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
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


def test_embedding_space_rpcs_are_append_only(shared: Running, project: str) -> None:
    running, p = shared, project
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=_project(name=p)))
        created = c.ingest.CreateEmbeddingSpace(
            pb.CreateEmbeddingSpaceRequest(project=p, embedding_space=_space("dino", 384))
        ).embedding_space
        assert (created.name, created.dimension, created.model_name) == ("dino", 384, "clip-vit-b32")
        got = c.ingest.GetEmbeddingSpace(pb.GetEmbeddingSpaceRequest(project=p, embedding_space="dino"))
        assert got.embedding_space == created
        listed = c.ingest.ListEmbeddingSpaces(pb.ListEmbeddingSpacesRequest(project=p)).embedding_spaces
        assert [s.name for s in listed] == ["clip", "dino"]
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.CreateEmbeddingSpace(
                pb.CreateEmbeddingSpaceRequest(project=p, embedding_space=_space("dino", 128))
            )
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.CreateEmbeddingSpace(pb.CreateEmbeddingSpaceRequest(project=p, embedding_space=_space("x", 0)))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (
            info.value.details().startswith("embedding_space.embedding_spaces[0].dimension")
            or "dimension" in info.value.details()
        )
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.GetEmbeddingSpace(pb.GetEmbeddingSpaceRequest(project=p, embedding_space="nope"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_datasets_and_inference_sets(shared: Running, project: str) -> None:
    running, p = shared, project
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=_project(name=p)))
        ds = c.ingest.CreateDataset(pb.CreateDatasetRequest(
            project=p, dataset=pb.Dataset(name="night", kind=pb.DATASET_KIND_UNLABELED_POOL, splits=["a"]))).dataset  # fmt: skip
        assert ds.kind == pb.DATASET_KIND_UNLABELED_POOL and list(ds.splits) == ["a"]
        req = pb.UpdateDatasetRequest(project=p, dataset="night", update=pb.Dataset(splits=["a", "b"]))
        req.update_mask.paths.append("splits")
        assert list(c.ingest.UpdateDataset(req).dataset.splits) == ["a", "b"]
        req = pb.UpdateDatasetRequest(project=p, dataset="night", update=pb.Dataset(splits=["b"]))
        req.update_mask.paths.append("splits")
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.UpdateDataset(req)
        assert (
            info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "'a' cannot be removed" in info.value.details()
        )
        s = pb.InferenceSet(name="v1", dataset="night", model_name="detr", model_version="1")
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=s))
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(
                project=p, inference_set=pb.InferenceSet(name="v2", dataset="nope", model_name="m", model_version="1")))  # fmt: skip
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        upd = pb.UpdateInferenceSetRequest(
            project=p, inference_set="v1", update=pb.InferenceSet(description="night run")
        )
        upd.update_mask.paths.append("description")
        assert c.ingest.UpdateInferenceSet(upd).inference_set.description == "night run"
        upd.update_mask.paths.append("model_version")
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.UpdateInferenceSet(upd)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "lineage" in info.value.details()
        listed = c.ingest.ListInferenceSets(pb.ListInferenceSetsRequest(project=p, dataset="night"))
        assert [s.name for s in listed.inference_sets] == ["v1"] and listed.inference_sets[0].model_name == "detr"
        assert [d.name for d in c.ingest.ListDatasets(pb.ListDatasetsRequest(project=p)).datasets] == ["night"]
