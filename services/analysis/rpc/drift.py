"""Drift between two sides of embeddings (datasets or time ranges): a job and its result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shoal.analysis import drift, embedding_map
from shoal.analysis.rpc.context import Analysis, Context, Runner
from shoal.analysis.rpc.neighbors import MAX_NEIGHBORS
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import job_to_proto
from shoal.common.errors import InvalidArgument
from shoal.common.jobs import JobContext
from shoal.common.timeutil import time_in_range


def start_drift(ctx: Context, request: pb.StartDriftRequest) -> pb.StartDriftResponse:
    params = {"embedding_space": request.embedding_space}
    for name in ("a", "b"):
        side = getattr(request, name)
        if not side.dataset:
            raise InvalidArgument("is empty", field=f"{name}.dataset")
        ctx.space(request.project, side.dataset, request.embedding_space)
        params[f"{name}.dataset"] = side.dataset
        for bound in ("since", "until"):
            if side.HasField(bound):
                time_in_range(getattr(side, bound), f"{name}.{bound}")
                params[f"{name}.{bound}"] = str(getattr(side, bound).ToMilliseconds())
        bounded = side.HasField("since") and side.HasField("until")
        if bounded and side.since.ToMilliseconds() >= side.until.ToMilliseconds():
            raise InvalidArgument("since must come before until", field=f"{name}.since")
    if not 0 <= request.k <= MAX_NEIGHBORS:
        raise InvalidArgument(f"must lie in [0, {MAX_NEIGHBORS}], got {request.k}", field="k")
    if not 0 <= request.sample_size <= embedding_map.MAX_SAMPLE:
        raise InvalidArgument(f"must lie in [0, {embedding_map.MAX_SAMPLE}], got {request.sample_size}",
                              field="sample_size")  # fmt: skip
    params["k"] = str(request.k or drift.DEFAULT_K)
    params["sample_size"] = str(request.sample_size or drift.DEFAULT_SAMPLE)
    job = ctx.runner.submit(request.project, drift.KIND, params, rerun=request.rerun)
    return pb.StartDriftResponse(job=job_to_proto(job))


def run_drift(ctx: Context, run: JobContext) -> None:
    job = run.job
    p = job.params
    space = ctx.space(job.project, p["a.dataset"], p["embedding_space"])

    def side(name: str) -> drift.Side:
        def at(bound: str) -> Any:
            ms = p.get(f"{name}.{bound}")
            return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, tz=UTC)

        return drift.Side(p[f"{name}.dataset"], at("since"), at("until"))

    drift.build(run, ctx.metrics, ctx.vectors, job, a=side("a"), b=side("b"), space=space.name,
                space_metric=space.metric, k=int(p["k"]), sample=int(p["sample_size"]))  # fmt: skip


def get_drift(ctx: Context, request: pb.GetDriftRequest) -> pb.GetDriftResponse:
    job = ctx.finished_job(request.project, request.job_id, drift.KIND)
    s = ctx.stored_summary(drift, job)
    return pb.GetDriftResponse(
        frames_a=s.frames_a, frames_b=s.frames_b, k=s.k, metric=s.metric, statistic=s.statistic,
        expected=s.expected, p_value=s.p_value, z_score=s.z_score,
        regions=[pb.DriftRegion(**r.__dict__) for r in s.regions],
    )  # fmt: skip


ANALYSIS = Analysis(
    "drift",
    rpcs={"StartDrift": start_drift, "GetDrift": get_drift},
    jobs={drift.KIND: Runner(run=run_drift, discard=drift.discard)},
)
