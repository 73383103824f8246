"""Neighbours of a dataset's embeddings: a job finding outliers, duplicates and leakage, and their queries."""

from __future__ import annotations

import math
from typing import Any

from shoal.analysis import neighbors
from shoal.analysis.rpc.context import Analysis, Context, Runner
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import job_to_proto, page_of, page_response
from shoal.common.data.datasets import frame_media
from shoal.common.errors import InvalidArgument
from shoal.common.jobs import Job, JobContext
from shoal.common.v1 import common_pb2

#: the most neighbours a job may ask for (k)
MAX_NEIGHBORS = 100


def start_neighbor_analysis(ctx: Context, request: pb.StartNeighborAnalysisRequest) -> pb.StartNeighborAnalysisResponse:
    ctx.space(request.project, request.dataset, request.embedding_space)
    if not 0 <= request.k <= MAX_NEIGHBORS:
        raise InvalidArgument(f"must lie in [0, {MAX_NEIGHBORS}], got {request.k}", field="k")
    if not (math.isfinite(request.duplicate_distance) and request.duplicate_distance >= 0):
        raise InvalidArgument(f"must be >= 0, got {request.duplicate_distance}", field="duplicate_distance")
    params = {
        "dataset": request.dataset,
        "embedding_space": request.embedding_space,
        "k": str(request.k or neighbors.DEFAULT_K),
        "duplicate_distance": repr(request.duplicate_distance),
    }
    job = ctx.runner.submit(request.project, neighbors.KIND, params, rerun=request.rerun)
    return pb.StartNeighborAnalysisResponse(job=job_to_proto(job))


def run_neighbors(ctx: Context, run: JobContext) -> None:
    job = run.job
    space = ctx.space(job.project, job.params["dataset"], job.params["embedding_space"])
    summary = neighbors.build(run, ctx.metrics, ctx.vectors, job, dataset=job.params["dataset"], space=space.name,
                              space_metric=space.metric, k=int(job.params["k"]),
                              duplicate_distance=float(job.params["duplicate_distance"]))  # fmt: skip
    neighbors.rank(ctx.metrics, job, summary, above=ctx.ranked_above)


def shard_neighbors(ctx: Context, run: JobContext, shard: int, shards: int) -> None:
    job = run.job
    space = ctx.space(job.project, job.params["dataset"], job.params["embedding_space"])
    neighbors.build_shard(run, ctx.metrics, ctx.vectors, job, shard=shard, shards=shards,
                          dataset=job.params["dataset"], space=space.name, space_metric=space.metric,
                          k=int(job.params["k"]))  # fmt: skip


def neighbor_shards(ctx: Context, job: Job, most: int) -> int:
    return neighbors.shards_for(ctx.vector_count(job), most)


def query_outliers(ctx: Context, request: pb.QueryOutliersRequest) -> pb.QueryOutliersResponse:
    job = ctx.finished_job(request.project, request.job_id, neighbors.KIND)
    if request.order not in neighbors.OUTLIER_ORDERS:
        raise InvalidArgument(f"unknown order {request.order}", field="order")
    summary = pb.NeighborSummary(**ctx.stored_summary(neighbors, job).__dict__)
    scope = f"outliers|{request.project}|{job.job_id}|{request.order}"
    page = page_of(request.page, scope=scope)

    def outliers() -> tuple[list[tuple[Any, ...]], int]:
        return neighbors.query_outliers(ctx.metrics, request.project, job.job_id, order=request.order,
                                        offset=page.offset, size=page.size)  # fmt: skip

    # a page reads the job's ranked rows, or every frame's score of it: kept while the job's results are unchanged
    key = ("outliers.page", request.project, job.job_id, request.order, page.offset, page.size)
    rows, total = ctx.answers.get(neighbors.OUTLIER_TABLES, key, outliers, lambda a: len(a[0]))
    dataset = job.params["dataset"]
    media = frame_media(ctx.metrics, request.project, dataset, [r[0] for r in rows])
    out = pb.QueryOutliersResponse(summary=summary, page=page_response(page, len(rows), total, scope=scope))
    for frame, split, label, score, nearest, major, disagree, dups, near_ids, near_d, class_score in rows:
        f = out.frames.add(ref=common_pb2.DatapointRef(dataset=dataset, frame_id=frame),
                           media_uri=media.get(frame, ("", ""))[0], split=split, outlier_score=float(score),
                           nearest_distance=float(nearest), duplicates=int(dups))  # fmt: skip
        if label is not None:
            f.label_class = int(label)
        if major is not None:
            f.neighbor_label = int(major)
        if disagree is not None:
            f.label_disagreement = float(disagree)
        if class_score is not None:
            f.class_outlier_score = float(class_score)
        for nid, d in zip(near_ids or [], near_d or [], strict=True):
            f.neighbors.add(frame_id=nid, distance=float(d))
    return out


def query_duplicates(ctx: Context, request: pb.QueryDuplicatesRequest) -> pb.QueryDuplicatesResponse:
    job = ctx.finished_job(request.project, request.job_id, neighbors.KIND)
    summary = pb.NeighborSummary(**ctx.stored_summary(neighbors, job).__dict__)
    scope = f"duplicates|{request.project}|{job.job_id}|{request.cross_split_only}"
    page = page_of(request.page, scope=scope)

    def duplicates() -> tuple[list[tuple[Any, ...]], int]:
        return neighbors.query_duplicates(ctx.metrics, request.project, job.job_id,
                                          cross_split_only=request.cross_split_only, offset=page.offset,
                                          size=page.size)  # fmt: skip

    # kept while the job's pairs are unchanged
    key = ("duplicates.page", request.project, job.job_id, request.cross_split_only, page.offset, page.size)
    rows, total = ctx.answers.get(neighbors.DUPLICATE_TABLES, key, duplicates, lambda a: len(a[0]))
    dataset = job.params["dataset"]
    out = pb.QueryDuplicatesResponse(summary=summary, page=page_response(page, len(rows), total, scope=scope))
    for a, b, d, split_a, split_b, exact in rows:
        out.pairs.add(a=common_pb2.DatapointRef(dataset=dataset, frame_id=a),
                      b=common_pb2.DatapointRef(dataset=dataset, frame_id=b), distance=float(d),
                      exact=bool(exact), split_a=split_a, split_b=split_b)  # fmt: skip
    return out


ANALYSIS = Analysis(
    "neighbors",
    rpcs={
        "StartNeighborAnalysis": start_neighbor_analysis,
        "QueryOutliers": query_outliers,
        "QueryDuplicates": query_duplicates,
    },
    jobs={
        neighbors.KIND: Runner(
            run=run_neighbors, discard=neighbors.discard, shard=shard_neighbors, shards=neighbor_shards
        )
    },
    migrations=neighbors.MIGRATIONS,
)
