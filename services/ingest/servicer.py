"""gRPC servicer of shoal.ingest.v1.IngestService: converts messages, calls the catalog."""

from __future__ import annotations

from typing import Any

from shoal.common.auth import current_principal
from shoal.common.convert import page_of, page_response, timestamp
from shoal.common.errors import InvalidArgument
from shoal.ingest.catalog import ClassDef, EmbeddingSpace, Project, ProjectCatalog
from shoal.ingest.v1 import ingest_pb2, ingest_pb2_grpc

pb = ingest_pb2


def _enum_name(enum: Any, value: int, prefix: str, field: str) -> str:
    if value == 0 or value not in enum.values():
        raise InvalidArgument(
            f"must be set to one of {', '.join(n for n in enum.keys() if n != enum.Name(0))}", field=field
        )
    return enum.Name(value).removeprefix(prefix)


def project_from_proto(msg: ingest_pb2.Project, *, prefix: str = "project", need_task: bool = True) -> Project:
    task = (
        _enum_name(pb.TaskType, msg.task_type, "TASK_TYPE_", f"{prefix}.task_type")
        if need_task or msg.task_type
        else ""
    )
    spaces = []
    for i, s in enumerate(msg.embedding_spaces):
        f = f"{prefix}.embedding_spaces[{i}]"
        spaces.append(
            EmbeddingSpace(
                name=s.name,
                dimension=s.dimension,
                metric=_enum_name(pb.DistanceMetric, s.metric, "DISTANCE_METRIC_", f"{f}.metric"),
                level=_enum_name(pb.EmbeddingLevel, s.level, "EMBEDDING_LEVEL_", f"{f}.level"),
                model_name=s.model_name,
                model_version=s.model_version,
            )
        )
    return Project(
        name=msg.name,
        task_type=task,
        display_name=msg.display_name,
        description=msg.description,
        classes=tuple(ClassDef(c.id, c.name) for c in msg.classes),
        embedding_spaces=tuple(spaces),
    )


def project_to_proto(p: Project) -> ingest_pb2.Project:
    return pb.Project(
        name=p.name,
        display_name=p.display_name,
        description=p.description,
        task_type=pb.TaskType.Value(f"TASK_TYPE_{p.task_type}"),
        classes=[pb.ClassDef(id=c.id, name=c.name) for c in p.classes],
        embedding_spaces=[
            pb.EmbeddingSpace(
                name=s.name,
                dimension=s.dimension,
                metric=pb.DistanceMetric.Value(f"DISTANCE_METRIC_{s.metric}"),
                level=pb.EmbeddingLevel.Value(f"EMBEDDING_LEVEL_{s.level}"),
                model_name=s.model_name,
                model_version=s.model_version,
            )
            for s in p.embedding_spaces
        ],
        create_time=timestamp(p.create_time),
        update_time=timestamp(p.update_time),
        revision=p.revision,
    )


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, catalog: ProjectCatalog) -> None:
        self.catalog = catalog

    def CreateProject(self, request: pb.CreateProjectRequest, context: Any) -> pb.CreateProjectResponse:
        project = self.catalog.create(project_from_proto(request.project))
        return pb.CreateProjectResponse(project=project_to_proto(project))

    def GetProject(self, request: pb.GetProjectRequest, context: Any) -> pb.GetProjectResponse:
        return pb.GetProjectResponse(project=project_to_proto(self.catalog.get(request.project)))

    def ListProjects(self, request: pb.ListProjectsRequest, context: Any) -> pb.ListProjectsResponse:
        principal = current_principal()
        only = None if principal.is_admin else frozenset(principal.projects)
        scope = f"projects|{principal.key_id}"
        page = page_of(request.page, scope=scope)
        found, total = self.catalog.list(page=page, only=only)
        return pb.ListProjectsResponse(
            projects=[project_to_proto(p) for p in found], page=page_response(page, len(found), total, scope=scope)
        )

    def UpdateProject(self, request: pb.UpdateProjectRequest, context: Any) -> pb.UpdateProjectResponse:
        update = project_from_proto(request.update, prefix="update", need_task=False)
        project = self.catalog.update(request.project, update, list(request.update_mask.paths))
        return pb.UpdateProjectResponse(project=project_to_proto(project))
