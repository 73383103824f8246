"""The GetJob / ListJobs / CancelJob RPCs that every job-running service exposes under its own
package, implemented once over a :class:`~shoal.common.jobs.JobStore`."""

from __future__ import annotations

from typing import Any

from shoal.common.convert import job_states, job_to_proto, page_of, page_response
from shoal.common.jobs import JobStore


class JobRpcs:
    """Mix into a generated servicer; set ``self.jobs`` and the three response classes."""

    jobs: JobStore
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
