"""ExportJobResult: every frame's result of a finished job in one call, as an Arrow IPC stream
(:mod:`shoal.analysis.export`)."""

from __future__ import annotations

from collections.abc import Iterator

from shoal.analysis import detection_issues, embedding_map, export, label_issues, neighbors
from shoal.analysis.rpc.context import Analysis, Context
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data import results
from shoal.common.errors import FailedPrecondition, InvalidArgument

#: job kind -> its per-frame table
EXPORTS = {m.KIND: m.FRAMES for m in (label_issues, detection_issues, neighbors, embedding_map)}


def export_job_result(ctx: Context, request: pb.ExportJobResultRequest) -> Iterator[pb.ExportJobResultResponse]:
    if not request.job_id:
        raise InvalidArgument("is empty", field="job_id")
    if not 0 <= request.batch_rows <= export.MAX_BATCH_ROWS:
        raise InvalidArgument(f"must be between 0 and {export.MAX_BATCH_ROWS:,}, got {request.batch_rows}",
                              field="batch_rows")  # fmt: skip
    job = ctx.jobs.get(request.project, request.job_id)
    spec = EXPORTS.get(job.kind)
    if spec is None:
        raise InvalidArgument(f"job {job.job_id} is a {job.kind} job, which keeps no per-frame result; "
                              f"exported are {', '.join(sorted(EXPORTS))} jobs", field="job_id")  # fmt: skip
    ctx.finished_job(request.project, job.job_id, job.kind)
    if results.load_summary(ctx.metrics, job.project, job.job_id) is None:
        raise FailedPrecondition(f"job {job.job_id} kept no result; start it again with rerun", field="job_id")
    total = export.count(ctx.metrics, spec, job.project, job.job_id)
    batches = export.record_batches(ctx.metrics, spec, job.project, job.job_id,
                                    request.batch_rows or export.DEFAULT_BATCH_ROWS)  # fmt: skip
    first = True
    for piece in export.ipc_chunks(batches):
        if first:
            yield pb.ExportJobResultResponse(arrow=piece, total_rows=total, kind=job.kind)
            first = False
        else:
            yield pb.ExportJobResultResponse(arrow=piece)


ANALYSIS = Analysis("export", rpcs={"ExportJobResult": export_job_result})
