"""The sampler service: similarity search and collection campaigns, run as jobs."""

from __future__ import annotations

from typing import Any

import numpy as np

from shoal.analysis.detection import frame_media
from shoal.analysis.query import View
from shoal.analysis.segments import MIGRATIONS as SEGMENT_MIGRATIONS
from shoal.analysis.segments import SegmentStore
from shoal.common.errors import FailedPrecondition, InvalidArgument, NotFound
from shoal.common.jobs import JobStore
from shoal.common.jobs_rpc import JobRpcs
from shoal.common.server import ServiceSpec
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores
from shoal.common.stores.metrics import MetricsStore
from shoal.common.stores.vectors import VectorStore, collection_name
from shoal.common.v1 import common_pb2
from shoal.ingest.catalog import EmbeddingSpace, Project, ProjectCatalog
from shoal.ingest.datasets import DatasetCatalog
from shoal.ingest.evaluations import frame_rows_set
from shoal.sampler import search
from shoal.sampler.v1 import sampler_pb2, sampler_pb2_grpc

NAME = "sampler"
FULL_NAME = sampler_pb2.DESCRIPTOR.services_by_name["SamplerService"].full_name
MAX_SEEDS = 1000
AGGREGATIONS = {sampler_pb2.AGGREGATION_UNSPECIFIED: "max", sampler_pb2.AGGREGATION_MAX: "max",
                sampler_pb2.AGGREGATION_MEAN: "mean"}  # fmt: skip


def _lineage(s: EmbeddingSpace) -> str:
    return f"model {s.model_name}@{s.model_version} ({s.dimension}-d, {s.metric})"


class SamplerServicer(JobRpcs, sampler_pb2_grpc.SamplerServiceServicer):
    GetJobResponse: Any = sampler_pb2.GetJobResponse
    ListJobsResponse: Any = sampler_pb2.ListJobsResponse
    CancelJobResponse: Any = sampler_pb2.CancelJobResponse

    def __init__(self, jobs: JobStore, metrics: MetricsStore, vectors: VectorStore) -> None:
        self.jobs = jobs
        self.metrics = metrics
        self.vectors = vectors
        self.projects = ProjectCatalog(metrics)
        self.datasets = DatasetCatalog(metrics, self.projects)
        self.segments = SegmentStore(metrics)

    def _space(self, project: Project, name: str, field: str) -> EmbeddingSpace:
        spaces = {s.name: s for s in project.embedding_spaces}
        if name not in spaces:
            known = ", ".join(sorted(spaces)) or "none"
            raise InvalidArgument(f"project {project.name!r} has no embedding space {name!r} (it has: {known})",
                                  field=field)  # fmt: skip
        return spaces[name]

    def _seed_vectors(self, request: sampler_pb2.SearchSimilarRequest, project: Project, space: EmbeddingSpace,
                      seed_space: EmbeddingSpace) -> np.ndarray:  # fmt: skip
        if not request.seeds:
            raise InvalidArgument("give at least one seed (a frame, an object or a vector)", field="seeds")
        if len(request.seeds) > MAX_SEEDS:
            raise InvalidArgument(f"at most {MAX_SEEDS} seeds, got {len(request.seeds)}", field="seeds")
        out = np.zeros((len(request.seeds), space.dimension), dtype=np.float32)
        refs: dict[str, list[int]] = {}
        raw = False
        for i, seed in enumerate(request.seeds):
            kind = seed.WhichOneof("kind")
            if kind is None:
                raise InvalidArgument("set ref or vector", field=f"seeds[{i}]")
            if kind == "vector":
                values = np.asarray(seed.vector.values, dtype=np.float32)
                if len(values) != space.dimension:
                    raise InvalidArgument(f"has {len(values)} values; space {space.name!r} is {space.dimension}-d",
                                          field=f"seeds[{i}].vector.values")  # fmt: skip
                if not np.isfinite(values).all():
                    raise InvalidArgument("must be finite (no NaN or infinity)", field=f"seeds[{i}].vector.values")
                out[i] = values
                raw = True
                continue
            ref = seed.ref
            if not ref.frame_id:
                raise InvalidArgument("is empty", field=f"seeds[{i}].ref.frame_id")
            if self.datasets.find(project.name, ref.dataset) is None:
                raise NotFound(f"dataset {ref.dataset!r} does not exist in project {project.name!r}",
                               field=f"seeds[{i}].ref.dataset")  # fmt: skip
            refs.setdefault(search.seed_key(ref.dataset, ref.frame_id, ref.object_id), []).append(i)
        if raw:
            for name in ("vectors_model_name", "vectors_model_version"):
                given, wanted = getattr(request, name), getattr(space, name.removeprefix("vectors_"))
                if given and given != wanted:
                    raise FailedPrecondition(
                        f"the vector seeds come from {request.vectors_model_name}@{request.vectors_model_version}"
                        f" but space {space.name!r} holds {_lineage(space)}: distances between the two mean nothing",
                        field=name,
                    )
        if refs:
            collection = collection_name(project.name, seed_space.name)
            got = self.vectors.get(collection, list(refs)) if self.vectors.has_collection(collection) else None
            have = {} if got is None else dict(zip(got.ids, np.asarray(got.vectors), strict=True))
            for key, rows in refs.items():
                if key not in have:
                    seed = request.seeds[rows[0]].ref
                    what = f"object {seed.object_id!r} of frame" if seed.object_id else "frame"
                    raise NotFound(f"{what} {seed.frame_id!r} of dataset {seed.dataset!r} has no vector in space"
                                   f" {seed_space.name!r}", field=f"seeds[{rows[0]}].ref")  # fmt: skip
                out[rows] = have[key]
        return out

    def SearchSimilar(
        self, request: sampler_pb2.SearchSimilarRequest, context: Any
    ) -> sampler_pb2.SearchSimilarResponse:
        project = self.projects.get(request.project)
        if not request.pool_dataset:
            raise InvalidArgument("is empty", field="pool_dataset")
        if self.datasets.find(project.name, request.pool_dataset) is None:
            raise NotFound(f"dataset {request.pool_dataset!r} does not exist in project {project.name!r}",
                           field="pool_dataset")  # fmt: skip
        space = self._space(project, request.embedding_space, "embedding_space")
        seed_space = space
        if request.seed_embedding_space and request.seed_embedding_space != space.name:
            seed_space = self._space(project, request.seed_embedding_space, "seed_embedding_space")
            if _lineage(seed_space) != _lineage(space) or seed_space.level != space.level:
                raise FailedPrecondition(
                    f"the seeds are in space {seed_space.name!r} ({_lineage(seed_space)}) but the pool is searched in"
                    f" {space.name!r} ({_lineage(space)}): vectors of different embedding models or versions are"
                    " not comparable",
                    field="seed_embedding_space",
                )
        if not 0 <= request.k <= search.MAX_K:
            raise InvalidArgument(f"must lie in [0, {search.MAX_K}], got {request.k}", field="k")
        if request.aggregation not in AGGREGATIONS:
            raise InvalidArgument(f"unknown aggregation {request.aggregation}", field="aggregation")
        seeds = self._seed_vectors(request, project, space, seed_space)
        for i, name in enumerate(request.exclude_segments):
            seg = self.segments.find(project.name, name)
            if seg is None:
                raise NotFound(f"project {project.name!r} has no segment {name!r}", field=f"exclude_segments[{i}]")
            if seg.dataset != request.pool_dataset:
                raise InvalidArgument(f"segment {name!r} is of dataset {seg.dataset!r}, not the pool"
                                      f" {request.pool_dataset!r}", field=f"exclude_segments[{i}]")  # fmt: skip
        view = View(
            project=project.name,
            dataset=request.pool_dataset,
            ontology=tuple(c.id for c in project.classes),
            class_names={c.name: c.id for c in project.classes},
            frames_from=frame_rows_set(self.metrics, project.name, request.pool_dataset),
        )
        pool_scope = search.scope(self.metrics, view, request.filter, exclude_labeled=request.exclude_labeled,
                                  exclude_segments=list(request.exclude_segments))  # fmt: skip
        result = search.search(
            self.vectors, project.name, pool=request.pool_dataset, space=space, seeds=seeds,
            k=request.k or search.DEFAULT_K, pool_scope=pool_scope, aggregation=AGGREGATIONS[request.aggregation],
        )  # fmt: skip
        media = frame_media(self.metrics, project.name, request.pool_dataset, [i.frame_id for i in result.items])
        out = sampler_pb2.SearchSimilarResponse(metric=result.metric, candidates=result.candidates,
                                                truncated=result.truncated)  # fmt: skip
        for it in result.items:
            uri, split = media.get(it.frame_id, ("", ""))
            out.items.add(
                ref=common_pb2.DatapointRef(dataset=request.pool_dataset, frame_id=it.frame_id, object_id=it.object_id),
                media_uri=uri, split=split, similarity=it.similarity, distance=it.distance, seed_index=it.seed_index,
            )  # fmt: skip
        return out


def create_service(settings: ShoalSettings, stores: Stores) -> ServiceSpec:
    servicer = SamplerServicer(JobStore(stores.metrics, service=NAME), stores.metrics, stores.vectors)
    return ServiceSpec(
        name=NAME,
        full_name=FULL_NAME,
        register=lambda server: sampler_pb2_grpc.add_SamplerServiceServicer_to_server(servicer, server),
        stores=("metrics", "vectors", "events"),
        migrations=SEGMENT_MIGRATIONS,  # exclusions read segments, whichever service created them
    )
