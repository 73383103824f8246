"""The GetJob / ListJobs / CancelJob RPCs that every job-running service exposes under its own
package, implemented once over a :class:`~shoal.common.jobs.JobStore`."""

from __future__ import annotations

from typing import Any

from shoal.common.convert import job_states, job_to_proto, page_of, page_response
from shoal.common.errors import FailedPrecondition, InvalidArgument
from shoal.common.jobs import SUCCEEDED, Job, JobStore
from shoal.common.stores.metrics import MetricsStore


class JobRpcs:
    """Mix into a generated servicer; set ``self.jobs`` and the three response classes."""

    jobs: JobStore
    metrics: MetricsStore
    GetJobResponse: Any
    ListJobsResponse: Any
    CancelJobResponse: Any

    def GetJob(self, request: Any, context: Any) -> Any:
        return self.GetJobResponse(job=job_to_proto(self.jobs.get(request.project, request.job_id)))

    def ListJobs(self, request: Any, context: Any) -> Any:
        states = job_states(list(request.states))
        scope = f"jobs|{request.project}|{','.join(sorted(states))}"
        page = page_of(request.page, scope=scope)
        found, total = self.jobs.list(request.project, states=states, page=page)
        return self.ListJobsResponse(
            jobs=[job_to_proto(j) for j in found], page=page_response(page, len(found), total, scope=scope)
        )

    def CancelJob(self, request: Any, context: Any) -> Any:
        return self.CancelJobResponse(job=job_to_proto(self.jobs.cancel(request.project, request.job_id)))

    def finished_job(self, project: str, job_id: str, kind: str, field: str = "job_id") -> Job:
        """The finished job of this kind, or the error (naming ``field``) that says why there is no
        result yet."""
        job = self.jobs.get(project, job_id)
        if job.kind != kind:
            raise InvalidArgument(f"job {job.job_id} is a {job.kind} job, not a {kind} job", field=field)
        if job.state != SUCCEEDED:
            raise FailedPrecondition(f"job {job.job_id} is {job.state} ({job.stage}, {job.progress:.0%})"
                                     + (f": {job.message}" if job.message else ""), field=field)  # fmt: skip
        return job

    def stored_summary(self, module: Any, job: Job, field: str = "job_id") -> Any:
        """The stored summary of a finished job of ``module``'s kind (its ``summary_of``)."""
        summary = module.summary_of(self.metrics, job.project, job.job_id)
        if summary is None:
            raise FailedPrecondition(f"job {job.job_id} kept no result; start it again with rerun", field=field)
        return summary
