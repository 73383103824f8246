"""The embedding map: a job projecting a dataset's embeddings to 2-D, its viewport and region queries."""

from __future__ import annotations

import math

from shoal.analysis import detection_issues, embedding_map, label_issues
from shoal.analysis.export import arrow_stream
from shoal.analysis.rpc.context import Analysis, Context, Runner
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import job_to_proto, set_value
from shoal.common.data.query import Sort, decode_cursor, encode_cursor, metadata_key
from shoal.common.errors import FailedPrecondition, InvalidArgument, NotFound
from shoal.common.jobs import SUCCEEDED, Job, JobContext
from shoal.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from shoal.common.v1 import common_pb2


def start_embedding_map(ctx: Context, request: pb.StartEmbeddingMapRequest) -> pb.StartEmbeddingMapResponse:
    ctx.space(request.project, request.dataset, request.embedding_space)
    if not 0 <= request.sample_size <= embedding_map.MAX_SAMPLE:
        raise InvalidArgument(f"must lie in [0, {embedding_map.MAX_SAMPLE}], got {request.sample_size}",
                              field="sample_size")  # fmt: skip
    params = {
        "dataset": request.dataset,
        "embedding_space": request.embedding_space,
        "sample_size": str(request.sample_size or embedding_map.DEFAULT_SAMPLE),
    }
    job = ctx.runner.submit(request.project, embedding_map.KIND, params, rerun=request.rerun)
    return pb.StartEmbeddingMapResponse(job=job_to_proto(job))


def run_embedding_map(ctx: Context, run: JobContext) -> None:
    job = run.job
    space = ctx.space(job.project, job.params["dataset"], job.params["embedding_space"])
    embedding_map.build(run, ctx.metrics, ctx.vectors, job, dataset=job.params["dataset"], space=space.name,
                        space_metric=space.metric, sample=int(job.params["sample_size"]))  # fmt: skip


def shard_embedding_map(ctx: Context, run: JobContext, shard: int, shards: int) -> None:
    job = run.job
    space = ctx.space(job.project, job.params["dataset"], job.params["embedding_space"])
    embedding_map.build_shard(run, ctx.metrics, ctx.vectors, job, shard=shard, shards=shards,
                              dataset=job.params["dataset"], space=space.name, space_metric=space.metric,
                              sample=int(job.params["sample_size"]))  # fmt: skip


def map_shards(ctx: Context, job: Job, most: int) -> int:
    return embedding_map.shards_for(ctx.vector_count(job), int(job.params["sample_size"]), most)


def get_map_viewport(ctx: Context, request: pb.GetMapViewportRequest) -> pb.GetMapViewportResponse:
    job = ctx.finished_job(request.project, request.job_id, embedding_map.KIND)
    summary = ctx.stored_summary(embedding_map, job)
    corners = (request.min_x, request.min_y, request.max_x, request.max_y)
    if not all(math.isfinite(v) for v in corners):
        raise InvalidArgument("viewport corners must be finite", field="min_x")
    if request.min_x > request.max_x or request.min_y > request.max_y:
        raise InvalidArgument(f"min_x <= max_x and min_y <= max_y, got {corners}", field="min_x")
    if not 0 <= request.max_points <= embedding_map.MAX_POINTS:
        raise InvalidArgument(f"must lie in [0, {embedding_map.MAX_POINTS}], got {request.max_points}",
                              field="max_points")  # fmt: skip
    box = None if not any(corners) else corners
    colours = _map_colours(ctx, request, job.params["dataset"])
    limit = request.max_points or embedding_map.DEFAULT_POINTS

    def answer() -> pb.GetMapViewportResponse:
        table, total = embedding_map.viewport_table(ctx.metrics, request.project, job.job_id, box=box,
                                                    max_points=limit, colours=colours, summary=summary)  # fmt: skip
        if request.arrow:
            return pb.GetMapViewportResponse(total_in_viewport=total, points_arrow=arrow_stream(table))
        columns = embedding_map.viewport_columns(table)
        out = pb.GetMapViewportResponse(total_in_viewport=total)
        add = out.points.add
        frames, xs, ys, labels, splits, predicted, correct, issues, confidence, metadata = columns
        for i, frame in enumerate(frames):
            p = add(frame_id=frame, x=xs[i], y=ys[i], split=splits[i], label_issue=issues[i])
            if labels[i] is not None:
                p.label_class = labels[i]
            if predicted[i] is not None:
                p.predicted_class = predicted[i]
            if correct[i] is not None:
                p.correct = correct[i]
            if confidence[i] is not None:
                p.self_confidence = confidence[i]
            if metadata[i] is not None:
                set_value(p.metadata_value, *metadata[i])
        return out

    # kept as the answer's message: a call that finds it kept copies it whole, without building 20,000 points again
    key = ("map_viewport", request.project, job.job_id, box, limit, repr(colours), request.arrow)
    kept = ctx.answers.get(embedding_map.viewport_tables(colours), key, answer,
                           lambda a: len(a.points) or min(a.total_in_viewport, limit))  # fmt: skip
    out = pb.GetMapViewportResponse()
    out.CopyFrom(kept)
    out.summary.CopyFrom(pb.MapSummary(**summary.public()))
    return out


def _map_colours(ctx: Context, request: pb.GetMapViewportRequest, dataset: str) -> embedding_map.Colours | None:
    """What a viewport's points are to carry besides label and split (None: nothing), checked
    against the map's dataset."""
    if not (request.inference_set or request.label_issue_job_id or request.metadata_key):
        return None
    predictions = None
    if request.inference_set:
        ctx.datasets.get_inference_set(request.project, request.inference_set, dataset=dataset)
        predictions = ctx.view(ctx.projects.get(request.project), dataset, request.inference_set, 0.0)
    issues = None
    if request.label_issue_job_id:
        issues = label_issues_job_of(ctx, request.project, request.label_issue_job_id, dataset,
                                     "label_issue_job_id")  # fmt: skip
    key = metadata_key(request.metadata_key, "metadata_key") if request.metadata_key else ""
    return embedding_map.Colours(dataset=dataset, predictions=predictions,
                                 issues_job_id=issues.job_id if issues else "",
                                 detection=issues is not None and issues.kind == detection_issues.KIND,
                                 metadata_key=key)  # fmt: skip


def label_issues_job_of(ctx: Context, project: str, job_id: str, dataset: str, field: str) -> Job:
    """A finished label-issues job (classification or detection) of ``dataset``; errors name ``field``."""
    job = ctx.jobs.find(project, job_id)
    if job is None:
        raise NotFound(f"project {project!r} has no analysis job {job_id!r}", field=field)
    if job.kind not in (label_issues.KIND, detection_issues.KIND):
        raise InvalidArgument(f"job {job.job_id} is a {job.kind} job, not a label-issues job (StartLabelIssues)",
                              field=field)  # fmt: skip
    if job.state != SUCCEEDED:
        raise FailedPrecondition(f"job {job.job_id} is {job.state} ({job.stage}, {job.progress:.0%}); the map is"
                                 " coloured by a label-issues job that has succeeded", field=field)  # fmt: skip
    of = ctx.datasets.get_inference_set(project, job.params["inference_set"]).dataset
    if of != dataset:
        raise InvalidArgument(f"label-issues job {job.job_id} is of dataset {of!r}, not the map's dataset"
                              f" {dataset!r}", field=field)  # fmt: skip
    return job


def query_map_region(ctx: Context, request: pb.QueryMapRegionRequest) -> pb.QueryMapRegionResponse:
    job = ctx.finished_job(request.project, request.job_id, embedding_map.KIND)
    polygon = embedding_map.check_polygon([(v.x, v.y) for v in request.polygon])
    if request.page.page_size < 0:
        raise InvalidArgument(f"must be >= 0, got {request.page.page_size}", field="page.page_size")
    size = min(request.page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    scope = f"map-region|{request.project}|{job.job_id}|{polygon!r}"
    last = decode_cursor(request.page.page_token, [Sort("frame_id", "string", False, False)], scope)
    ids, total = embedding_map.region(ctx.metrics, request.project, job.job_id, polygon,
                                      after=None if last is None else str(last[0]), size=size + 1,
                                      summary=ctx.stored_summary(embedding_map, job))  # fmt: skip
    more, ids = len(ids) > size, ids[:size]
    token = encode_cursor([ids[-1]], scope) if more else ""
    page = common_pb2.PageResponse(next_page_token=token, total_count=total)
    return pb.QueryMapRegionResponse(dataset=job.params["dataset"], frame_ids=ids, page=page)


ANALYSIS = Analysis(
    "embedding_map",
    rpcs={
        "StartEmbeddingMap": start_embedding_map,
        "GetMapViewport": get_map_viewport,
        "QueryMapRegion": query_map_region,
    },
    jobs={
        embedding_map.KIND: Runner(
            run=run_embedding_map, discard=embedding_map.discard, shard=shard_embedding_map, shards=map_shards
        )
    },
    migrations=embedding_map.MIGRATIONS,
)
