"""The job RPCs (GetJob, ListJobs, CancelJob) over every analysis job, as every job-running
service has them (:class:`~shoal.common.jobs_rpc.JobRpcs`)."""

from __future__ import annotations

from shoal.analysis.rpc.context import Analysis, Context
from shoal.analysis.v1 import analysis_pb2 as pb


def get_job(ctx: Context, request: pb.GetJobRequest) -> pb.GetJobResponse:
    return ctx.GetJob(request, None)


def list_jobs(ctx: Context, request: pb.ListJobsRequest) -> pb.ListJobsResponse:
    return ctx.ListJobs(request, None)


def cancel_job(ctx: Context, request: pb.CancelJobRequest) -> pb.CancelJobResponse:
    return ctx.CancelJob(request, None)


ANALYSIS = Analysis("jobs", rpcs={"GetJob": get_job, "ListJobs": list_jobs, "CancelJob": cancel_job})
