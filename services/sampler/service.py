"""The sampler service: similarity search, collection campaigns (run as jobs), and standing campaigns
(judged as frames arrive by :class:`~shoal.sampler.workers.StandingConsumer`)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from shoal.common import kubernetes_jobs
from shoal.common.convert import job_to_proto, page_of, page_response, timestamp
from shoal.common.data import labeling_requests
from shoal.common.data.datasets import MIGRATIONS as DATASET_MIGRATIONS
from shoal.common.data.datasets import DatasetCatalog, existing_frames, frame_media
from shoal.common.data.evaluations import MIGRATIONS as EVALUATION_MIGRATIONS
from shoal.common.data.evaluations import frame_rows_set
from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
from shoal.common.data.projects import MIGRATIONS as PROJECT_MIGRATIONS
from shoal.common.data.projects import EmbeddingSpace, Project, ProjectCatalog
from shoal.common.data.query import Params, View, compile_filter
from shoal.common.data.results import MIGRATIONS as RESULT_MIGRATIONS
from shoal.common.data.segments import MIGRATIONS as SEGMENT_MIGRATIONS
from shoal.common.data.segments import Segment, SegmentStore, valid_name
from shoal.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from shoal.common.jobs import JobContext, JobKind, JobRunner, JobStore, job_id_for
from shoal.common.jobs_rpc import JobRpcs
from shoal.common.labeling import platform_of
from shoal.common.server import ServiceSpec
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores
from shoal.common.stores.events import EventBus
from shoal.common.stores.metrics import MetricsStore
from shoal.common.stores.vectors import VectorStore, collection_name
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2
from shoal.sampler import campaign, feedback, handoff, search, standing
from shoal.sampler.v1 import sampler_pb2, sampler_pb2_grpc
from shoal.sampler.workers import StandingConsumer

NAME = "sampler"
FULL_NAME = sampler_pb2.DESCRIPTOR.services_by_name["SamplerService"].full_name
MAX_SEEDS = 1000
AGGREGATIONS = {sampler_pb2.AGGREGATION_UNSPECIFIED: "max", sampler_pb2.AGGREGATION_MAX: "max",
                sampler_pb2.AGGREGATION_MEAN: "mean"}  # fmt: skip
METHODS = {sampler_pb2.DIVERSITY_METHOD_UNSPECIFIED: "mmr", sampler_pb2.DIVERSITY_METHOD_MMR: "mmr",
           sampler_pb2.DIVERSITY_METHOD_K_CENTER: "k_center"}  # fmt: skip
MEASURES = {sampler_pb2.UNCERTAINTY_MEASURE_UNSPECIFIED: "entropy", sampler_pb2.UNCERTAINTY_MEASURE_ENTROPY: "entropy",
            sampler_pb2.UNCERTAINTY_MEASURE_MARGIN: "margin",
            sampler_pb2.UNCERTAINTY_MEASURE_LEAST_CONFIDENCE: "least_confidence"}  # fmt: skip
DEFAULT_DIVERSITY = 0.5
STANDING_STATES = {standing.FILLING: sampler_pb2.STANDING_CAMPAIGN_STATE_FILLING,
                   standing.FULL: sampler_pb2.STANDING_CAMPAIGN_STATE_FULL,
                   standing.STOPPED: sampler_pb2.STANDING_CAMPAIGN_STATE_STOPPED}  # fmt: skip


def _lineage(s: EmbeddingSpace) -> str:
    return f"model {s.model_name}@{s.model_version} ({s.dimension}-d, {s.metric})"


class SamplerServicer(JobRpcs, sampler_pb2_grpc.SamplerServiceServicer):
    GetJobResponse: Any = sampler_pb2.GetJobResponse
    ListJobsResponse: Any = sampler_pb2.ListJobsResponse
    CancelJobResponse: Any = sampler_pb2.CancelJobResponse

    runner: JobRunner

    def __init__(
        self, jobs: JobStore, metrics: MetricsStore, vectors: VectorStore, bus: EventBus, topics: Topics
    ) -> None:
        self.jobs = jobs
        self.metrics = metrics
        self.vectors = vectors
        self.bus = bus
        self.topics = topics
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

    def _pool(self, project: Project, name: str) -> None:
        if not name:
            raise InvalidArgument("is empty", field="pool_dataset")
        if self.datasets.find(project.name, name) is None:
            raise NotFound(f"dataset {name!r} does not exist in project {project.name!r}", field="pool_dataset")

    def _seed_space(self, project: Project, space: EmbeddingSpace, name: str) -> EmbeddingSpace:
        """The space seeds are read from: ``space`` unless ``name`` names another one of the
        same embedding model and version (anything else is refused)."""
        if not name or name == space.name:
            return space
        seed_space = self._space(project, name, "seed_embedding_space")
        if _lineage(seed_space) != _lineage(space) or seed_space.level != space.level:
            raise FailedPrecondition(
                f"the seeds are in space {seed_space.name!r} ({_lineage(seed_space)}) but the pool is searched in"
                f" {space.name!r} ({_lineage(space)}): vectors of different embedding models or versions are"
                " not comparable",
                field="seed_embedding_space",
            )
        return seed_space

    def _check_exclusions(self, project: Project, names: Sequence[str], pool: str) -> None:
        for i, name in enumerate(names):
            seg = self.segments.find(project.name, name)
            if seg is None:
                raise NotFound(f"project {project.name!r} has no segment {name!r}", field=f"exclude_segments[{i}]")
            if seg.dataset != pool:
                raise InvalidArgument(f"segment {name!r} is of dataset {seg.dataset!r}, not the pool {pool!r}",
                                      field=f"exclude_segments[{i}]")  # fmt: skip

    def _view(self, project: Project, pool: str) -> View:
        """The pool's frames, for filters and exclusions."""
        return View(
            project=project.name,
            dataset=pool,
            ontology=tuple(c.id for c in project.classes),
            class_names={c.name: c.id for c in project.classes},
            frames_from=frame_rows_set(self.metrics, project.name, pool),
        )

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
        self._pool(project, request.pool_dataset)
        space = self._space(project, request.embedding_space, "embedding_space")
        seed_space = self._seed_space(project, space, request.seed_embedding_space)
        if not 0 <= request.k <= search.MAX_K:
            raise InvalidArgument(f"must lie in [0, {search.MAX_K}], got {request.k}", field="k")
        if request.aggregation not in AGGREGATIONS:
            raise InvalidArgument(f"unknown aggregation {request.aggregation}", field="aggregation")
        seeds = self._seed_vectors(request, project, space, seed_space)
        self._check_exclusions(project, request.exclude_segments, request.pool_dataset)
        view = self._view(project, request.pool_dataset)
        pool_scope = search.scope(self.metrics, view, request.filter, exclude_labeled=request.exclude_labeled,
                                  exclude_segments=list(request.exclude_segments),
                                  exclude_sent=request.exclude_sent_for_labeling)  # fmt: skip
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

    # -- collection campaigns ------------------------------------------------------------------------
    def StartCampaign(
        self, request: sampler_pb2.StartCampaignRequest, context: Any
    ) -> sampler_pb2.StartCampaignResponse:
        project = self.projects.get(request.project)
        _segment_name(request.name, "name the segment the sample is saved as")
        self._pool(project, request.pool_dataset)
        space, seed_space = self._campaign_spaces(project, request.embedding_space, request.seed_embedding_space)
        if not 1 <= request.budget <= campaign.MAX_BUDGET:
            raise InvalidArgument(f"must lie in [1, {campaign.MAX_BUDGET}], got {request.budget}", field="budget")
        if request.diversity_method not in METHODS:
            raise InvalidArgument(f"unknown diversity method {request.diversity_method}", field="diversity_method")
        if request.uncertainty_measure not in MEASURES:
            raise InvalidArgument(f"unknown uncertainty measure {request.uncertainty_measure}",
                                  field="uncertainty_measure")  # fmt: skip
        if request.seed_segment:
            seg, _, _ = self._segment_seeds(project, request.seed_segment, seed_space, campaign.MAX_SEEDS)
        if request.uncertainty_inference_set:
            self.datasets.get_inference_set(
                project.name, request.uncertainty_inference_set, dataset=request.pool_dataset,
                field="uncertainty_inference_set",
            )  # fmt: skip
        strategy = self._strategy(request)
        distance = request.duplicate_distance or campaign.DEFAULT_DUPLICATE_DISTANCE
        if not math.isfinite(distance) or distance >= 2:
            raise InvalidArgument(f"must be below 2 (a cosine distance), got {distance}", field="duplicate_distance")
        labeled = request.labeled_dataset or (seg.dataset if request.seed_segment else "")
        if request.labeled_dataset and self.datasets.find(project.name, request.labeled_dataset) is None:
            raise NotFound(f"dataset {request.labeled_dataset!r} does not exist in project {project.name!r}",
                           field="labeled_dataset")  # fmt: skip
        compile_filter(request.filter, self._view(project, request.pool_dataset), Params())  # a bad filter fails now
        self._check_exclusions(project, request.exclude_segments, request.pool_dataset)
        params = {
            "name": request.name,
            "seed_segment": request.seed_segment,
            "pool_dataset": request.pool_dataset,
            "embedding_space": space.name,
            "seed_embedding_space": seed_space.name,
            "budget": str(request.budget),
            "similarity": repr(strategy.similarity),
            "uncertainty": repr(strategy.uncertainty),
            "diversity": repr(strategy.diversity),
            "balance": repr(strategy.balance),
            "method": strategy.method,
            "measure": strategy.measure,
            "inference_set": request.uncertainty_inference_set,
            "duplicate_distance": repr(distance),
            "labeled_dataset": labeled,
            "filter": request.filter.SerializeToString(deterministic=True).hex(),
            "exclude_labeled": str(request.exclude_labeled),
            "exclude_segments": json.dumps(list(request.exclude_segments)),
        }
        if request.exclude_sent_for_labeling:
            params["exclude_sent"] = "True"
        taken = self.segments.find(project.name, request.name)
        if taken is not None and not campaign.owns_segment(
            self.segments, project.name, request.name, job_id_for(campaign.KIND, params)
        ):
            raise AlreadyExists(f"project {project.name!r} already has a segment {request.name!r}", field="name")
        job = self.runner.submit(project.name, campaign.KIND, params, rerun=request.rerun)
        return sampler_pb2.StartCampaignResponse(job=job_to_proto(job))

    def _strategy(self, request: sampler_pb2.StartCampaignRequest) -> campaign.Strategy:
        """The weights, with their defaults, each checked against the inputs it needs."""
        w = request.weights
        has_seeds, has_set = bool(request.seed_segment), bool(request.uncertainty_inference_set)
        values = {
            "similarity": w.similarity if w.HasField("similarity") else float(has_seeds),
            "uncertainty": w.uncertainty if w.HasField("uncertainty") else float(has_set),
            "diversity": w.diversity if w.HasField("diversity") else DEFAULT_DIVERSITY,
            "balance": w.balance if w.HasField("balance") else 0.0,
        }
        for name, value in values.items():
            if not campaign.finite_weight(value):
                raise InvalidArgument(f"must be a finite number >= 0, got {value}", field=f"weights.{name}")
        if values["similarity"] > 0 and not has_seeds:
            raise InvalidArgument(
                "is above 0 but there is no seed_segment to be similar to", field="weights.similarity"
            )
        for name in ("uncertainty", "balance"):
            if values[name] > 0 and not has_set:
                raise InvalidArgument(f"is above 0 but no uncertainty_inference_set gives the model's {name}"
                                      " (probabilities and predicted classes)", field=f"weights.{name}")  # fmt: skip
        if not any(values.values()):
            raise InvalidArgument("every weight is 0: nothing to choose by", field="weights")
        return campaign.Strategy(**values, method=METHODS[request.diversity_method],
                                 measure=MEASURES[request.uncertainty_measure])  # fmt: skip

    def run_campaign(self, ctx: JobContext) -> None:
        job = ctx.job
        p = job.params
        project = self.projects.get(job.project)
        duplicate_distance = float(p["duplicate_distance"])
        campaign.build(
            ctx, self.metrics, self.vectors, job, project=project, view=self._view(project, p["pool_dataset"]),
            name=p["name"], space=p["embedding_space"], seed_space=p["seed_embedding_space"],
            seed_segment=p["seed_segment"], budget=int(p["budget"]),
            strategy=campaign.Strategy(
                similarity=float(p["similarity"]), uncertainty=float(p["uncertainty"]),
                diversity=float(p["diversity"]), balance=float(p["balance"]), method=p["method"],
                measure=p["measure"],
            ),
            inference_set=p["inference_set"], duplicate_distance=None if duplicate_distance < 0 else duplicate_distance,
            labeled_dataset=p["labeled_dataset"], flt=common_pb2.Filter.FromString(bytes.fromhex(p["filter"])),
            exclude_labeled=p["exclude_labeled"] == "True", exclude_segments=json.loads(p["exclude_segments"]),
            exclude_sent=p.get("exclude_sent") == "True",
        )  # fmt: skip

    def GetCampaign(self, request: sampler_pb2.GetCampaignRequest, context: Any) -> sampler_pb2.GetCampaignResponse:
        job = self.finished_job(request.project, request.job_id, campaign.KIND)
        s = self.stored_summary(campaign, job)
        scope = f"campaign|{request.project}|{job.job_id}"
        page = page_of(request.page, scope=scope)
        rows = campaign.query_items(self.metrics, job.project, job.job_id, offset=page.offset, size=page.size)
        pool = job.params["pool_dataset"]
        media = frame_media(self.metrics, job.project, pool, [str(r[1]) for r in rows])
        out = sampler_pb2.GetCampaignResponse(
            summary=sampler_pb2.CampaignSummary(
                segment=s.segment, budget=s.budget, selected=s.selected, candidates=s.candidates,
                preselected=s.preselected, skipped_duplicates_of_picked=s.skipped_duplicates_of_picked,
                skipped_duplicates_of_labeled=s.skipped_duplicates_of_labeled, strategy=s.strategy, seeds=s.seeds,
                duplicate_distance=s.duplicate_distance,
                classes=[sampler_pb2.ClassCount(class_id=c, class_name=n, frames=k) for c, n, k in s.classes],
            ),
            page=page_response(page, len(rows), s.selected, scope=scope),
        )  # fmt: skip
        for rank, frame, score, sim, seed_dataset, seed_frame, unc, pred, gain, reason in rows:
            item = out.items.add(ref=common_pb2.DatapointRef(dataset=pool, frame_id=str(frame)),
                                 media_uri=media.get(str(frame), ("", ""))[0], rank=int(rank), score=float(score),
                                 diversity_gain=float(gain), reason=str(reason))  # fmt: skip
            if sim is not None:
                item.similarity = float(sim)
                item.nearest_seed.CopyFrom(common_pb2.DatapointRef(dataset=str(seed_dataset), frame_id=str(seed_frame)))
            if unc is not None:
                item.uncertainty = float(unc)
            if pred is not None:
                item.predicted_class = int(pred)
        return out

    # -- hand-off for labeling -----------------------------------------------------------------------
    def RequestLabeling(
        self, request: sampler_pb2.RequestLabelingRequest, context: Any
    ) -> sampler_pb2.RequestLabelingResponse:
        project = self.projects.get(request.project)
        kind = request.WhichOneof("source")
        if kind is None:
            raise InvalidArgument("set segment, campaign_job_id or frames", field="source")
        if kind == "segment":
            src = labeling_requests.segment_source(self.segments, project.name, request.segment)
        elif kind == "campaign_job_id":
            src = handoff.campaign_source(self.metrics, self.finished_job(project.name, request.campaign_job_id,
                                                                          campaign.KIND))  # fmt: skip
        else:
            src = labeling_requests.frames_source(self.metrics, self.datasets, project.name, request.frames.dataset,
                                        request.frames.frame_ids)  # fmt: skip
        dataset, frames, reason, source = src.dataset, src.frame_ids, src.reason, src.source
        if not frames:
            raise FailedPrecondition(f"the {kind.replace('_', ' ')} holds no frames", field=kind)
        if request.preannotation_inference_set:
            self.datasets.get_inference_set(project.name, request.preannotation_inference_set, dataset=dataset,
                                            field="preannotation_inference_set")  # fmt: skip
        platform = platform_of(request.platform)
        if request.request_id and not labeling_requests.REQUEST_ID.match(request.request_id):
            raise InvalidArgument(f"must match {labeling_requests.REQUEST_ID.pattern}", field="request_id")
        request_id = request.request_id or labeling_requests.derive_request_id(project.name, source, dataset, frames)
        repeated = labeling_requests.recorded(self.metrics, project.name, request_id)
        r = labeling_requests.Request(
            project=project.name, dataset=dataset, frame_ids=frames, reason=request.reason or reason, source=source,
            platform=platform, preannotation_inference_set=request.preannotation_inference_set,
            requested_by=request.requested_by, request_id=request_id,
        )  # fmt: skip
        n_events = handoff.send(self.bus, self.topics, self.metrics, r)
        return sampler_pb2.RequestLabelingResponse(
            request_id=request_id, dataset=dataset, frames=len(set(frames)), events=n_events,
            topic=self.topics.labeling_requests, repeated_request=repeated,
        )  # fmt: skip

    # -- relevance feedback ----------------------------------------------------------------------
    def SubmitFeedback(
        self, request: sampler_pb2.SubmitFeedbackRequest, context: Any
    ) -> sampler_pb2.SubmitFeedbackResponse:
        job = self.finished_job(request.project, request.job_id, campaign.KIND)
        project = self.projects.get(job.project)
        p = job.params
        pool = p["pool_dataset"]
        accepted, rejected = list(request.accepted), list(request.rejected)
        if not accepted and not rejected:
            raise InvalidArgument("judge at least one frame (accepted or rejected)", field="accepted")
        if len(accepted) + len(rejected) > feedback.MAX_JUDGED_PER_ROUND:
            raise InvalidArgument(f"at most {feedback.MAX_JUDGED_PER_ROUND} judgments per round", field="accepted")
        for name, frames in (("accepted", accepted), ("rejected", rejected)):
            for i, f in enumerate(frames):
                if not f:
                    raise InvalidArgument("is empty", field=f"{name}[{i}]")
        both = sorted(set(accepted) & set(rejected))
        if both:
            raise InvalidArgument(f"frame {both[0]!r} is both accepted and rejected", field="rejected")
        missing = sorted(
            set(accepted + rejected) - existing_frames(self.metrics, project.name, pool, accepted + rejected)
        )
        if missing:
            raise NotFound(f"{len(missing)} judged frames are not in the pool {pool!r}, e.g. {missing[0]!r}",
                           field="accepted" if missing[0] in set(accepted) else "rejected")  # fmt: skip
        batch = request.next_batch_size or feedback.DEFAULT_BATCH
        if not 0 <= request.next_batch_size <= feedback.MAX_BATCH:
            raise InvalidArgument(f"must lie in [0, {feedback.MAX_BATCH}], got {request.next_batch_size}",
                                  field="next_batch_size")  # fmt: skip
        round_ = feedback.next_round(self.metrics, project.name, job.job_id)
        feedback.record(self.metrics, project.name, job.job_id, round_,
                        {**{f: True for f in accepted}, **{f: False for f in rejected}})  # fmt: skip
        judged = feedback.judgments(self.metrics, project.name, job.job_id)
        seeds = campaign.seed_frames(self.metrics, project.name, p["seed_segment"]) if p["seed_segment"] else []
        pool_scope = search.scope(
            self.metrics, self._view(project, pool), common_pb2.Filter.FromString(bytes.fromhex(p["filter"])),
            exclude_labeled=p["exclude_labeled"] == "True", exclude_segments=json.loads(p["exclude_segments"]),
            exclude_sent=p.get("exclude_sent") == "True",
        )  # fmt: skip
        try:
            found = feedback.rerank(
                self.vectors, project.name, pool=pool, space=self._space(project, p["embedding_space"], "job_id"),
                seed_space=p["seed_embedding_space"], seeds=seeds, judged=judged, pool_scope=pool_scope, k=batch,
            )  # fmt: skip
        except ValueError as err:
            raise FailedPrecondition(str(err), field="accepted") from err
        media = frame_media(self.metrics, project.name, pool, [c.frame_id for c in found])
        out = sampler_pb2.SubmitFeedbackResponse(
            round=round_,
            accepted_total=sum(judged.values()) + len(seeds),
            rejected_total=sum(not v for v in judged.values()),
        )
        for r in feedback.rounds(self.metrics, project.name, job.job_id):
            out.rounds.add(round=r.round, judged=r.judged, accepted=r.accepted, yield_rate=r.accepted / r.judged)
        for c in found:
            out.next.add(ref=common_pb2.DatapointRef(dataset=pool, frame_id=c.frame_id),
                         media_uri=media.get(c.frame_id, ("", ""))[0], score=c.score)  # fmt: skip
        return out

    # -- standing campaigns ----------------------------------------------------------------------
    def StartStandingCampaign(
        self, request: sampler_pb2.StartStandingCampaignRequest, context: Any
    ) -> sampler_pb2.StartStandingCampaignResponse:
        project = self.projects.get(request.project)
        _segment_name(request.name, "name the campaign (its kept frames become a segment of that name)")
        self._pool(project, request.pool_dataset)
        pool = self.datasets.get(project.name, request.pool_dataset)
        if pool.kind != "UNLABELED_POOL":
            raise FailedPrecondition(
                f"dataset {pool.name!r} is a {pool.kind.lower()} dataset; a standing campaign watches an unlabeled"
                " pool (its retention may delete the vectors of frames it drops)",
                field="pool_dataset",
            )
        space, seed_space = self._campaign_spaces(project, request.embedding_space, request.seed_embedding_space)
        threshold = request.similarity_threshold
        if not (math.isfinite(threshold) and 0 < threshold <= 1):
            raise InvalidArgument(f"must lie in (0, 1] (a cosine similarity), got {threshold}",
                                  field="similarity_threshold")  # fmt: skip
        distance = request.min_distance or standing.DEFAULT_MIN_DISTANCE
        if not math.isfinite(distance) or distance >= 2:
            raise InvalidArgument(f"must be below 2 (a cosine distance), got {distance}", field="min_distance")
        if not 1 <= request.budget <= standing.MAX_BUDGET:
            raise InvalidArgument(f"must lie in [1, {standing.MAX_BUDGET}], got {request.budget}", field="budget")
        retention = None
        if request.HasField("retention_seconds"):
            retention = request.retention_seconds
            if not (math.isfinite(retention) and retention >= 0):
                raise InvalidArgument(f"must be a finite number of seconds >= 0, got {retention}",
                                      field="retention_seconds")  # fmt: skip
        compile_filter(request.filter, self._view(project, request.pool_dataset), Params())  # a bad filter fails now
        seeds, x = self._standing_seeds(request, project, seed_space)
        asked = standing.Campaign(
            project=project.name, name=request.name, pool=pool.name, space=space.name, seed_space=seed_space.name,
            seed_segment=request.seed_segment, threshold=threshold, min_distance=-1.0 if distance < 0 else distance,
            filter=request.filter, budget=request.budget, retention=retention, state=standing.FILLING, start_ns=0,
        )  # fmt: skip
        existing = standing.find(self.metrics, project.name, request.name)
        if existing is not None:
            same_seeds = [(s.dataset, s.frame_id) for s in standing.seed_refs(self.metrics, project.name, request.name)]
            if existing.same_request(asked) and same_seeds == [(s.dataset, s.frame_id) for s in seeds]:
                return sampler_pb2.StartStandingCampaignResponse(
                    campaign=self._standing_proto(existing, len(same_seeds))
                )
            raise AlreadyExists(f"project {project.name!r} already has a standing campaign {request.name!r}",
                                field="name")  # fmt: skip
        if self.segments.find(project.name, request.name) is not None:
            raise AlreadyExists(f"project {project.name!r} already has a segment {request.name!r}", field="name")
        # the seeds and the segment first: the consumer judges for a campaign once its row exists
        standing.save_seeds(self.metrics, project.name, request.name, seeds, x)
        rule = f"similarity >= {threshold:g}" + (f", min distance {distance:g}" if distance > 0 else "")
        self.segments.create(
            Segment(project=project.name, name=request.name, dataset=pool.name, kind="OTHER",
                    reason=f"standing campaign {request.name}: budget {request.budget}, {rule}",
                    author="sampler standing campaign"),
            project, [],
        )  # fmt: skip
        made = standing.save(self.metrics, replace(asked, start_ns=time.time_ns()))
        return sampler_pb2.StartStandingCampaignResponse(campaign=self._standing_proto(made, len(seeds)))

    def _campaign_spaces(
        self, project: Project, embedding_space: str, seed_embedding_space: str
    ) -> tuple[EmbeddingSpace, EmbeddingSpace]:
        """A campaign's space (frame-level vectors compared by cosine) and its seeds' space."""
        space = self._space(project, embedding_space, "embedding_space")
        if space.level != "FRAME" or space.metric != "COSINE":
            raise FailedPrecondition(
                f"space {space.name!r} is a {space.level.lower()}-level {space.metric} space;"
                " campaigns compare frame-level vectors by cosine",
                field="embedding_space",
            )
        return space, self._seed_space(project, space, seed_embedding_space)

    def _segment_seeds(
        self, project: Project, name: str, seed_space: EmbeddingSpace, most: int
    ) -> tuple[Segment, list[tuple[str, str]], np.ndarray]:
        """Seed segment ``name``, its frames that have a vector in ``seed_space`` ((dataset, frame id)
        pairs) and their vectors; refused naming ``seed_segment`` when it does not exist, holds no frame or
        more than ``most``, or none has a vector."""
        seg = self.segments.find(project.name, name)
        if seg is None:
            raise NotFound(f"project {project.name!r} has no segment {name!r}", field="seed_segment")
        frames = campaign.seed_frames(self.metrics, project.name, seg.name)
        if not 1 <= len(frames) <= most:
            raise InvalidArgument(f"segment {seg.name!r} has {len(frames)} frames; a campaign takes 1 to {most} seed"
                                  " frames", field="seed_segment")  # fmt: skip
        found, x = campaign.seed_vectors(self.vectors, project.name, seed_space.name, frames)
        if not found:
            raise FailedPrecondition(f"no frame of segment {seg.name!r} has a vector in space {seed_space.name!r}",
                                     field="seed_segment")  # fmt: skip
        return seg, found, x

    def _standing_seeds(
        self, request: sampler_pb2.StartStandingCampaignRequest, project: Project, seed_space: EmbeddingSpace
    ) -> tuple[list[standing.Seed], np.ndarray]:
        """The seed frames with a vector, and their vectors, from the segment or the frames given."""
        if request.seed_segment and request.seed_frames:
            raise InvalidArgument("give seed_segment or seed_frames, not both", field="seed_frames")
        if request.seed_segment:
            _, found, x = self._segment_seeds(project, request.seed_segment, seed_space, standing.MAX_SEEDS)
            return [standing.Seed(d, f) for d, f in found], x
        if not request.seed_frames:
            raise InvalidArgument("give the seeds: a seed_segment or seed_frames", field="seed_segment")
        if len(request.seed_frames) > standing.MAX_SEEDS:
            raise InvalidArgument(f"at most {standing.MAX_SEEDS} seed frames, got {len(request.seed_frames)}",
                                  field="seed_frames")  # fmt: skip
        frames: list[tuple[str, str]] = []
        for i, ref in enumerate(request.seed_frames):
            if not ref.frame_id:
                raise InvalidArgument("is empty", field=f"seed_frames[{i}].frame_id")
            if ref.object_id:
                raise InvalidArgument("a seed is a frame: leave object_id empty", field=f"seed_frames[{i}].object_id")
            if self.datasets.find(project.name, ref.dataset) is None:
                raise NotFound(f"dataset {ref.dataset!r} does not exist in project {project.name!r}",
                               field=f"seed_frames[{i}].dataset")  # fmt: skip
            if (ref.dataset, ref.frame_id) not in frames:
                frames.append((ref.dataset, ref.frame_id))
        found, x = campaign.seed_vectors(self.vectors, project.name, seed_space.name, frames)
        have = set(found)
        for i, ref in enumerate(request.seed_frames):
            if (ref.dataset, ref.frame_id) not in have:
                raise NotFound(f"frame {ref.frame_id!r} of dataset {ref.dataset!r} has no vector in space"
                               f" {seed_space.name!r}", field=f"seed_frames[{i}]")  # fmt: skip
        return [standing.Seed(d, f) for d, f in found], x

    def _standing_proto(self, c: standing.Campaign, seeds: int | None = None) -> sampler_pb2.StandingCampaign:
        """The campaign as a message, with its counts; ``seeds``: how many seeds it has, when the caller read
        them already."""
        n = standing.counts(self.metrics, c)
        if seeds is None:
            seeds = len(standing.seed_refs(self.metrics, c.project, c.name))
        start = Timestamp()
        start.FromNanoseconds(c.start_ns)
        msg = sampler_pb2.StandingCampaign(
            project=c.project, name=c.name, segment=c.name, pool_dataset=c.pool, embedding_space=c.space,
            seed_embedding_space=c.seed_space, seed_segment=c.seed_segment,
            seeds=seeds, similarity_threshold=c.threshold,
            min_distance=c.min_distance, filter=c.filter, budget=c.budget, state=STANDING_STATES[c.state],
            start_time=start, update_time=timestamp(c.update_time), judged=n.judged, kept=n.kept,
            filtered=n.filtered, below_threshold=n.below_threshold, near_kept=n.near_kept,
            vectors_deleted=n.vectors_deleted,
        )  # fmt: skip
        if c.retention is not None:
            msg.retention_seconds = c.retention
        return msg

    def _standing(self, project: str, name: str) -> standing.Campaign:
        self.projects.get(project)
        if not name:
            raise InvalidArgument("is empty", field="name")
        c = standing.find(self.metrics, project, name)
        if c is None:
            raise NotFound(f"project {project!r} has no standing campaign {name!r}", field="name")
        return c

    def GetStandingCampaign(
        self, request: sampler_pb2.GetStandingCampaignRequest, context: Any
    ) -> sampler_pb2.GetStandingCampaignResponse:
        c = self._standing(request.project, request.name)
        scope = f"standing|{c.project}|{c.name}|{int(request.include_vectors)}"
        page = page_of(request.page, scope=scope)
        seeds, seed_x = (standing.seeds_of(self.metrics, c.project, c.name) if request.include_vectors
                         else (standing.seed_refs(self.metrics, c.project, c.name), None))  # fmt: skip
        msg = self._standing_proto(c, len(seeds))
        items = standing.kept_items(self.metrics, c, offset=page.offset, size=page.size,
                                    with_vectors=request.include_vectors)  # fmt: skip
        media = frame_media(self.metrics, c.project, c.pool, [i.frame_id for i in items])
        out = sampler_pb2.GetStandingCampaignResponse(
            campaign=msg, page=page_response(page, len(items), msg.kept, scope=scope)
        )
        for i, s in enumerate(seeds):
            seed = out.seeds.add(ref=common_pb2.DatapointRef(dataset=s.dataset, frame_id=s.frame_id))
            if seed_x is not None:
                seed.vector.values.extend(seed_x[i].tolist())
        for it in items:
            s = seeds[it.seed_index] if it.seed_index < len(seeds) else standing.Seed("", "")
            item = out.items.add(
                ref=common_pb2.DatapointRef(dataset=c.pool, frame_id=it.frame_id),
                media_uri=media.get(it.frame_id, ("", ""))[0], rank=it.rank, position=it.position,
                similarity=it.similarity, nearest_seed=common_pb2.DatapointRef(dataset=s.dataset, frame_id=s.frame_id),
                kept_distance=it.kept_distance, decide_time=timestamp(it.decide_time), upload_id=it.upload_id,
                chunk_index=it.chunk_index,
            )  # fmt: skip
            if it.vector is not None:
                item.vector.values.extend(it.vector.tolist())
        return out

    def ListStandingCampaigns(
        self, request: sampler_pb2.ListStandingCampaignsRequest, context: Any
    ) -> sampler_pb2.ListStandingCampaignsResponse:
        project = self.projects.get(request.project)
        scope = f"standing-list|{project.name}"
        page = page_of(request.page, scope=scope)
        found, total = standing.list_campaigns(self.metrics, project.name, offset=page.offset, size=page.size)
        return sampler_pb2.ListStandingCampaignsResponse(
            campaigns=[self._standing_proto(c) for c in found], page=page_response(page, len(found), total, scope=scope)
        )

    def StopStandingCampaign(
        self, request: sampler_pb2.StopStandingCampaignRequest, context: Any
    ) -> sampler_pb2.StopStandingCampaignResponse:
        c = self._standing(request.project, request.name)
        if c.state == standing.FILLING:
            c = standing.save(self.metrics, replace(c, state=standing.STOPPED))
        return sampler_pb2.StopStandingCampaignResponse(campaign=self._standing_proto(c))


def _segment_name(name: str, hint: str) -> None:
    """A campaign's name, which names the segment of its sample: refused naming ``name`` when empty
    (``hint`` says what to give) or not a segment name."""
    if not name:
        raise InvalidArgument(f"is empty: {hint}", field="name")
    if not valid_name(name):
        raise InvalidArgument(f"{name!r} is not a segment name ([a-z0-9][a-z0-9_.-]{{0,62}})", field="name")


def create_service(settings: ShoalSettings, stores: Stores) -> ServiceSpec:
    jobs = JobStore(stores.metrics, service=NAME)
    servicer = SamplerServicer(jobs, stores.metrics, stores.vectors, stores.events, Topics(settings.topic_prefix))
    servicer.runner = JobRunner(
        jobs,
        {campaign.KIND: JobKind(run=servicer.run_campaign, discard=lambda job: campaign.discard(stores.metrics, job))},
        heartbeat_seconds=settings.job_heartbeat_seconds,
        stale_seconds=settings.job_stale_seconds,
        kubernetes=kubernetes_jobs.from_settings(settings, NAME),
    )
    return ServiceSpec(
        name=NAME,
        full_name=FULL_NAME,
        register=lambda server: sampler_pb2_grpc.add_SamplerServiceServicer_to_server(servicer, server),
        stores=("metrics", "vectors", "events"),
        # seeds and exclusions read segments, whichever service created them; campaigns write them
        migrations=(
            *PROJECT_MIGRATIONS,
            *DATASET_MIGRATIONS,
            *FRAME_MIGRATIONS,
            *EVALUATION_MIGRATIONS,
            *SEGMENT_MIGRATIONS,
            *RESULT_MIGRATIONS,
            *labeling_requests.MIGRATIONS,
            *campaign.MIGRATIONS,
            *feedback.MIGRATIONS,
            *standing.MIGRATIONS,
        ),
        workers=[
            servicer.runner,
            StandingConsumer(
                stores.events,
                servicer.topics,
                standing.Standing(stores.metrics, stores.vectors, standing.publisher(stores.events, servicer.topics)),
                group_id=settings.sampler_consumer_group,
            ),
        ],
    )
