"""gRPC servicer of shoal.ingest.v1.IngestService: converts messages, calls the catalog."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import grpc

from shoal.common.auth import current_principal
from shoal.common.convert import page_of, page_response, timestamp
from shoal.common.data.datasets import Dataset, DatasetCatalog, InferenceSet
from shoal.common.data.evaluations import EvaluationRefresher
from shoal.common.data.outcomes import OutcomeRefresher
from shoal.common.data.projects import OBJECT_TASKS, ClassDef, EmbeddingSpace, Project, ProjectCatalog
from shoal.common.errors import Aborted, InternalError, InvalidArgument, NotFound, ShoalError, shown
from shoal.common.stores.vectors import VectorStore
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.pipeline import UploadPublisher, check_position, new_upload_id
from shoal.ingest.status import KINDS, UploadStatus, dataset_stats, list_uploads, upload_status
from shoal.ingest.v1 import ingest_pb2, ingest_pb2_grpc

pb = ingest_pb2
log = logging.getLogger(__name__)
_CANCELLED = "the client cancelled the stream or its connection was lost"


def _enum_name(enum: Any, value: int, prefix: str, field: str) -> str:
    if value == 0 or value not in enum.values():
        raise InvalidArgument(
            f"must be set to one of {', '.join(n for n in enum.keys() if n != enum.Name(0))}", field=field
        )
    return enum.Name(value).removeprefix(prefix)


def space_from_proto(s: ingest_pb2.EmbeddingSpace, field: str) -> EmbeddingSpace:
    return EmbeddingSpace(
        name=s.name,
        dimension=s.dimension,
        metric=_enum_name(pb.DistanceMetric, s.metric, "DISTANCE_METRIC_", f"{field}.metric"),
        level=_enum_name(pb.EmbeddingLevel, s.level, "EMBEDDING_LEVEL_", f"{field}.level"),
        model_name=s.model_name,
        model_version=s.model_version,
    )


def space_to_proto(s: EmbeddingSpace) -> ingest_pb2.EmbeddingSpace:
    return pb.EmbeddingSpace(
        name=s.name,
        dimension=s.dimension,
        metric=pb.DistanceMetric.Value(f"DISTANCE_METRIC_{s.metric}"),
        level=pb.EmbeddingLevel.Value(f"EMBEDDING_LEVEL_{s.level}"),
        model_name=s.model_name,
        model_version=s.model_version,
    )


def _label_object(oid: str, cid: int, x: float, y: float, w: float, h: float, crowd: int, mask: str,
                  polygons: list[list[float]], kx: list[float], ky: list[float], kv: list[int], cuboid: list[float],
                  velocity: list[float], attribute: str, num_points: int) -> pb.LabelObject:  # fmt: skip
    """A stored labeled object as the API gives it back: its box or cuboid (with the points inside it, when
    known), mask, polygons, keypoints."""
    obj = pb.LabelObject(
        object_id=oid, class_id=cid, is_crowd=bool(crowd), polygons=[pb.Polygon(points=p) for p in polygons],
        keypoints=[pb.Keypoint(x=a, y=b, visibility=v) for a, b, v in zip(kx, ky, kv, strict=True)],
    )  # fmt: skip
    if mask:
        obj.mask.counts = mask.encode("ascii")
    if len(cuboid):
        cx, cy, cz, cw, cl, ch, yaw = cuboid
        obj.cuboid.CopyFrom(pb.Cuboid(x=cx, y=cy, z=cz, width=cw, length=cl, height=ch, yaw=yaw, attribute=attribute))
        if len(velocity):
            obj.cuboid.vx, obj.cuboid.vy = velocity
        if num_points >= 0:
            obj.cuboid.num_points = num_points
    else:
        obj.box.CopyFrom(pb.Box(x=x, y=y, width=w, height=h))
    return obj


def class_from_proto(c: ingest_pb2.ClassDef) -> ClassDef:
    return ClassDef(
        c.id,
        c.name,
        tuple(c.keypoints),
        tuple((e.a, e.b) for e in c.skeleton),
        tuple(c.keypoint_sigmas),
        c.color.lower(),
    )


def class_to_proto(c: ClassDef) -> ingest_pb2.ClassDef:
    return pb.ClassDef(
        id=c.id,
        name=c.name,
        keypoints=list(c.keypoints),
        skeleton=[pb.KeypointEdge(a=a, b=b) for a, b in c.skeleton],
        keypoint_sigmas=list(c.keypoint_sigmas),
        color=c.color,
    )


def project_from_proto(msg: ingest_pb2.Project, *, prefix: str = "project", need_task: bool = True) -> Project:
    task = (
        _enum_name(pb.TaskType, msg.task_type, "TASK_TYPE_", f"{prefix}.task_type")
        if need_task or msg.task_type
        else ""
    )
    spaces = [space_from_proto(s, f"{prefix}.embedding_spaces[{i}]") for i, s in enumerate(msg.embedding_spaces)]
    return Project(
        name=msg.name,
        task_type=task,
        display_name=msg.display_name,
        description=msg.description,
        classes=tuple(class_from_proto(c) for c in msg.classes),
        embedding_spaces=tuple(spaces),
    )


def project_to_proto(p: Project) -> ingest_pb2.Project:
    return pb.Project(
        name=p.name,
        display_name=p.display_name,
        description=p.description,
        task_type=pb.TaskType.Value(f"TASK_TYPE_{p.task_type}"),
        classes=[class_to_proto(c) for c in p.classes],
        embedding_spaces=[space_to_proto(s) for s in p.embedding_spaces],
        create_time=timestamp(p.create_time),
        update_time=timestamp(p.update_time),
        revision=p.revision,
    )


def dataset_to_proto(d: Dataset) -> ingest_pb2.Dataset:
    return pb.Dataset(
        project=d.project,
        name=d.name,
        kind=pb.DatasetKind.Value(f"DATASET_KIND_{d.kind}"),
        splits=list(d.splits),
        description=d.description,
        create_time=timestamp(d.create_time),
        update_time=timestamp(d.update_time),
        revision=d.revision,
    )


def inference_set_to_proto(s: InferenceSet) -> ingest_pb2.InferenceSet:
    return pb.InferenceSet(
        project=s.project,
        name=s.name,
        dataset=s.dataset,
        model_name=s.model_name,
        model_version=s.model_version,
        description=s.description,
        create_time=timestamp(s.create_time),
    )


@dataclass
class _Stream:
    """What an Upload stream sent before it failed."""

    project: str
    dataset: str
    upload_id: str
    indices: list[int]
    checked: list[Any]
    futures: list[Any]
    declared_total: int
    #: the index of the last chunk read
    attempted: int


def _counts(values: dict[str, int]) -> ingest_pb2.UploadCounts:
    return pb.UploadCounts(**{k: values[k] for k in KINDS})


def upload_status_to_proto(st: UploadStatus) -> ingest_pb2.UploadStatus:
    msg = pb.UploadStatus(
        upload_id=st.upload_id,
        dataset=st.dataset,
        state=pb.UploadState.Value(f"UPLOAD_STATE_{st.state}"),
        chunks_total=st.chunks_total,
        chunks_processed=st.chunks_processed,
        accepted=_counts(st.accepted),
        written=_counts(st.written),
        rejected=_counts(st.rejected),
        create_time=timestamp(st.create_time),
        update_time=timestamp(st.update_time),
    )
    for index, (reason, field, frame_id, object_id, message) in st.errors:
        err = msg.errors.add(chunk_index=index)
        err.detail.reason = reason
        err.detail.field = field
        err.detail.message = message
        err.detail.datapoint.dataset = st.dataset
        err.detail.datapoint.frame_id = frame_id
        err.detail.datapoint.object_id = object_id
    return msg


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(
        self,
        catalog: ProjectCatalog,
        datasets: DatasetCatalog,
        publisher: UploadPublisher,
        vectors: VectorStore,
        evaluations: EvaluationRefresher,
        outcomes: OutcomeRefresher,
    ) -> None:
        self.evaluations = evaluations
        self.outcomes = outcomes
        self.catalog = catalog
        self.vectors = vectors
        self.datasets = datasets
        self.publisher = publisher
        self.publish_timeout = 60.0

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

    # -- datasets -----------------------------------------------------------------------------
    def CreateDataset(self, request: pb.CreateDatasetRequest, context: Any) -> pb.CreateDatasetResponse:
        d = request.dataset
        kind = _enum_name(pb.DatasetKind, d.kind, "DATASET_KIND_", "dataset.kind")
        created = self.datasets.create(
            Dataset(project=request.project, name=d.name, kind=kind, splits=tuple(d.splits), description=d.description)
        )
        return pb.CreateDatasetResponse(dataset=dataset_to_proto(created))

    def GetDataset(self, request: pb.GetDatasetRequest, context: Any) -> pb.GetDatasetResponse:
        d = self.datasets.get(request.project, request.dataset)
        resp = pb.GetDatasetResponse(dataset=dataset_to_proto(d))
        if request.include_stats:
            st = dataset_stats(self.publisher.metrics, self.vectors, self.catalog.get(request.project), d)
            resp.stats.CopyFrom(
                pb.DatasetStats(
                    frames=st.frames,
                    labeled_frames=st.labeled_frames,
                    label_versions=st.label_versions,
                    inferences=st.inferences,
                    embeddings=st.embeddings,
                    frames_per_split=st.frames_per_split,
                    labeled_frames_per_class=st.labeled_frames_per_class,
                    labeled_objects_per_class=st.labeled_objects_per_class,
                )
            )
        return resp

    def ListDatasets(self, request: pb.ListDatasetsRequest, context: Any) -> pb.ListDatasetsResponse:
        scope = f"datasets|{request.project}"
        page = page_of(request.page, scope=scope)
        found, total = self.datasets.list(request.project, page=page)
        return pb.ListDatasetsResponse(
            datasets=[dataset_to_proto(d) for d in found], page=page_response(page, len(found), total, scope=scope)
        )

    def UpdateDataset(self, request: pb.UpdateDatasetRequest, context: Any) -> pb.UpdateDatasetResponse:
        u = request.update
        update = Dataset(
            project=request.project, name=request.dataset, kind="", splits=tuple(u.splits), description=u.description
        )
        d = self.datasets.update(request.project, request.dataset, update, list(request.update_mask.paths))
        return pb.UpdateDatasetResponse(dataset=dataset_to_proto(d))

    # -- inference sets -----------------------------------------------------------------------
    def CreateInferenceSet(self, request: pb.CreateInferenceSetRequest, context: Any) -> pb.CreateInferenceSetResponse:
        s = request.inference_set
        created = self.datasets.create_inference_set(
            InferenceSet(request.project, s.name, s.dataset, s.model_name, s.model_version, s.description)
        )
        self.evaluations.backfill(created.project, created.dataset, created.name)
        if self.catalog.get(created.project).task_type in OBJECT_TASKS:
            self.outcomes.create_set(created.project, created.dataset, created.name)
        return pb.CreateInferenceSetResponse(inference_set=inference_set_to_proto(created))

    def GetInferenceSet(self, request: pb.GetInferenceSetRequest, context: Any) -> pb.GetInferenceSetResponse:
        s = self.datasets.get_inference_set(request.project, request.inference_set)
        return pb.GetInferenceSetResponse(inference_set=inference_set_to_proto(s))

    def ListInferenceSets(self, request: pb.ListInferenceSetsRequest, context: Any) -> pb.ListInferenceSetsResponse:
        scope = f"inference_sets|{request.project}|{request.dataset}"
        page = page_of(request.page, scope=scope)
        found, total = self.datasets.list_inference_sets(request.project, dataset=request.dataset, page=page)
        return pb.ListInferenceSetsResponse(
            inference_sets=[inference_set_to_proto(s) for s in found],
            page=page_response(page, len(found), total, scope=scope),
        )

    def UpdateInferenceSet(self, request: pb.UpdateInferenceSetRequest, context: Any) -> pb.UpdateInferenceSetResponse:
        s = self.datasets.update_inference_set(
            request.project, request.inference_set, request.update.description, list(request.update_mask.paths)
        )
        return pb.UpdateInferenceSetResponse(inference_set=inference_set_to_proto(s))

    # -- embedding spaces ---------------------------------------------------------------------
    def CreateEmbeddingSpace(
        self, request: pb.CreateEmbeddingSpaceRequest, context: Any
    ) -> pb.CreateEmbeddingSpaceResponse:
        space = self.catalog.add_embedding_space(
            request.project, space_from_proto(request.embedding_space, "embedding_space")
        )
        return pb.CreateEmbeddingSpaceResponse(embedding_space=space_to_proto(space))

    def GetEmbeddingSpace(self, request: pb.GetEmbeddingSpaceRequest, context: Any) -> pb.GetEmbeddingSpaceResponse:
        space = self.catalog.get_embedding_space(request.project, request.embedding_space)
        return pb.GetEmbeddingSpaceResponse(embedding_space=space_to_proto(space))

    def ListEmbeddingSpaces(
        self, request: pb.ListEmbeddingSpacesRequest, context: Any
    ) -> pb.ListEmbeddingSpacesResponse:
        spaces = self.catalog.get(request.project).embedding_spaces
        return pb.ListEmbeddingSpacesResponse(embedding_spaces=[space_to_proto(s) for s in spaces])

    # -- uploads ------------------------------------------------------------------------------
    def Upload(self, request_iterator: Any, context: Any) -> pb.UploadResponse:
        project = dataset = upload_id = ""
        futures = []
        checked = []
        indices: list[int] = []
        declared_total = 0
        attempted = 0  # the index of the last chunk read
        #: metadata key types the stream's chunks give keys first
        key_types: dict[str, str] = {}
        try:
            for position, request in enumerate(request_iterator):
                if position == 0:
                    project, dataset = request.project, request.dataset
                    upload_id = request.upload_id or new_upload_id()
                    if not dataset:
                        raise InvalidArgument("is empty", field="dataset")
                elif (request.project, request.dataset) != (project, dataset):
                    raise InvalidArgument(
                        f"an upload goes to one dataset: message {position} names "
                        f"{shown(request.project)}/{shown(request.dataset)}, the first named {project}/{dataset}",
                        field="dataset",
                    )
                elif request.upload_id and request.upload_id != upload_id:
                    raise InvalidArgument(f"message {position} changes the upload id", field="upload_id")
                index = request.chunk_index if request.HasField("chunk_index") else position
                check_position(index, request.total_chunks)
                attempted = index
                declared_total = max(declared_total, request.total_chunks)
                one = self.publisher.check(project, dataset, request.chunk, index, key_types)
                futures.append(
                    self.publisher.publish(project, dataset, upload_id, index, request.chunk, declared_total)
                )
                checked.append(one)
                indices.append(index)
                for key, kind in one.key_types.items():
                    key_types.setdefault(key, kind)
            self._check_active(context)
            if not futures:
                raise InvalidArgument("an upload needs at least one chunk", field="chunk")
            for fut in futures:
                fut.result(timeout=self.publish_timeout)  # Unavailable if Kafka did not take it
            total = max(declared_total, max(indices) + 1)
            self.publisher.record_accepted(project, dataset, upload_id, list(zip(indices, checked, strict=True)), total)
            # checked again: the cancellation that ended the stream may be seen only now
            self._check_active(context)
        except Exception as exc:
            reason = None
            if upload_id:
                stream = _Stream(project, dataset, upload_id, indices, checked, futures, declared_total, attempted)
                reason = self._interrupted(stream, exc)
            if isinstance(exc, grpc.RpcError) and reason is not None:
                raise reason from exc  # the client went away: no traceback in the log
            raise
        totals = [sum(column) for column in zip(*(c.counts() for c in checked), strict=True)]
        accepted = dict(zip(KINDS, totals, strict=True))
        return pb.UploadResponse(upload_id=upload_id, chunks=len(futures), accepted=_counts(accepted))

    @staticmethod
    def _check_active(context: Any) -> None:
        """Raises when the client cancelled: a cancelled stream's requests can end as if the
        client had finished sending them."""
        if context is not None and not context.is_active():
            raise Aborted(_CANCELLED)

    def _interrupted(self, stream: _Stream, exc: BaseException) -> ShoalError | None:
        """A stream failed: records the chunks Kafka took as accepted and the stream as
        interrupted, so the status says which chunks are missing (also when this stream published
        nothing but continues an upload that exists). Returns the reason recorded, if any."""
        published = []
        for index, one, fut in zip(stream.indices, stream.checked, stream.futures, strict=True):
            try:
                fut.result(timeout=self.publish_timeout)
            except Exception as err:  # noqa: BLE001 - not published: it is one of the missing chunks
                log.info("upload %s chunk %d was not published: %s", stream.upload_id, index, err)
                continue
            published.append((index, one))
        if not published and not (stream.declared_total and self._exists(stream.project, stream.upload_id)):
            return None
        # without a declared total, at least the chunk after the last one published was coming
        last = max((i for i, _ in published), default=stream.attempted)
        total = stream.declared_total or max(stream.attempted + 1, last + 2)
        if isinstance(exc, ShoalError):
            reason: ShoalError = exc
        elif isinstance(exc, grpc.RpcError):
            reason = Aborted(_CANCELLED)
        else:
            reason = InternalError(f"the stream failed: {type(exc).__name__}")
        try:
            self.publisher.record_interrupted(
                stream.project, stream.dataset, stream.upload_id, published, total, reason, last=last
            )
        except Exception:
            log.exception("could not record the interrupted upload %s", stream.upload_id)
        return reason

    def _exists(self, project: str, upload_id: str) -> bool:
        try:
            upload_status(self.publisher.metrics, project, upload_id, max_errors=0)
        except (NotFound, InvalidArgument):
            return False
        return True

    def GetUploadStatus(self, request: pb.GetUploadStatusRequest, context: Any) -> pb.GetUploadStatusResponse:
        st = upload_status(self.publisher.metrics, request.project, request.upload_id)
        return pb.GetUploadStatusResponse(status=upload_status_to_proto(st))

    def ListUploads(self, request: pb.ListUploadsRequest, context: Any) -> pb.ListUploadsResponse:
        self.catalog.get(request.project)
        if request.dataset:
            self.datasets.get(request.project, request.dataset)
        states = []
        for i, value in enumerate(request.states):
            if value == pb.UPLOAD_STATE_UNSPECIFIED or value not in pb.UploadState.values():
                raise InvalidArgument(f"unknown upload state {value}", field=f"states[{i}]")
            states.append(pb.UploadState.Name(value).removeprefix("UPLOAD_STATE_"))
        found, token, total = list_uploads(
            self.publisher.metrics,
            request.project,
            dataset=request.dataset,
            states=states,
            page_size=request.page.page_size,
            page_token=request.page.page_token,
        )
        return pb.ListUploadsResponse(
            uploads=[upload_status_to_proto(st) for st in found],
            page=cpb.PageResponse(next_page_token=token, total_count=total),
        )

    def ListLabelVersions(self, request: pb.ListLabelVersionsRequest, context: Any) -> pb.ListLabelVersionsResponse:
        self.datasets.get(request.project, request.dataset)
        if not request.frame_id:
            raise InvalidArgument("is empty", field="frame_id")
        scope = f"label-versions/{request.project}/{request.dataset}/{request.frame_id}"
        page = page_of(request.page, scope=scope)
        metrics = self.publisher.metrics
        params = {"p": request.project, "d": request.dataset, "f": request.frame_id}
        where = "project = {p:String} AND dataset = {d:String} AND frame_id = {f:String}"
        rows, total = metrics.page(
            "label_versions FINAL",
            "label_version, class_id, source, author, reason, version_time, upload_id, class_ids,"
            " seg_classes, seg_runs, ev_onsets, ev_offsets, ev_classes",
            where, "version_time DESC, label_version DESC", params, offset=page.offset, size=page.size,
        )  # fmt: skip
        objects: dict[str, list[pb.LabelObject]] = {}
        if rows:
            found = metrics.query(
                "SELECT label_version, object_id, class_id, x, y, w, h, is_crowd, mask, polygons, kp_x, kp_y, kp_v,"
                " cuboid, velocity, attribute, num_points"
                f" FROM label_objects FINAL WHERE {where} AND label_version IN {{v:Array(String)}} ORDER BY object_id",
                {**params, "v": [r[0] for r in rows]},
            ).rows
            for row in found:
                objects.setdefault(str(row[0]), []).append(_label_object(*row[1:]))
        versions = []
        for version, cid, source, author, reason, when, upload, class_ids, seg_classes, seg_runs, *events in rows:
            out = pb.LabelVersion(
                label_version=version,
                class_id=cid,
                objects=objects.get(str(version), []),
                upload_id=upload,
                provenance=pb.Provenance(source=source, author=author, reason=reason, time=timestamp(when)),
                class_ids=list(class_ids),
                events=[pb.SoundEvent(onset=a, offset=b, class_id=c) for a, b, c in zip(*events, strict=True)],
            )
            if len(seg_runs):
                out.segmentation.runs.classes.extend(seg_classes)
                out.segmentation.runs.lengths.extend(seg_runs)
            versions.append(out)
        return pb.ListLabelVersionsResponse(versions=versions, page=page_response(page, len(rows), total, scope=scope))
