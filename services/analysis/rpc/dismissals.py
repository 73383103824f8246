"""Dismissing (and restoring) a label-issues job's flagged frames or objects."""

from __future__ import annotations

import logging

from shoal.analysis import (
    detection_issues,
    dismissals,
    label_issues,
    multilabel_issues,
    segmentation_label_issues,
    sound_event_label_issues,
)
from shoal.analysis.rpc.context import Analysis, Context
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.errors import Datapoint, InvalidArgument, NotFound
from shoal.common.jobs import Job

log = logging.getLogger(__name__)

#: the label-issues jobs that judge whole frames, and their tables of one row per examined frame
_FRAME_JOBS = {
    label_issues.KIND: label_issues.FRAMES.table,
    multilabel_issues.KIND: multilabel_issues.TABLES[0],
    segmentation_label_issues.KIND: segmentation_label_issues.TABLES[0],
    sound_event_label_issues.KIND: sound_event_label_issues.TABLES[0],
}


def _label_issues_job(ctx: Context, project: str, job_id: str) -> Job:
    """A finished label-issues job of any task type."""
    ctx.projects.get(project)
    if not job_id:
        raise InvalidArgument("is empty", field="job_id")
    job = ctx.jobs.find(project, job_id)
    if job is None:
        raise NotFound(f"project {project!r} has no analysis job {job_id!r}", field="job_id")
    if job.kind not in _FRAME_JOBS and job.kind != detection_issues.KIND:
        raise InvalidArgument(f"job {job.job_id} is a {job.kind} job, not a label-issues job (StartLabelIssues)",
                              field="job_id")  # fmt: skip
    return ctx.finished_job(project, job_id, job.kind)


def dismiss_label_issues(ctx: Context, request: pb.DismissLabelIssuesRequest) -> pb.DismissLabelIssuesResponse:
    job = _label_issues_job(ctx, request.project, request.job_id)
    frames = list(dict.fromkeys(request.frame_ids))
    objects = list(dict.fromkeys((o.frame_id, o.object_id) for o in request.objects))
    is_detection = job.kind == detection_issues.KIND
    if not frames and not objects:
        raise InvalidArgument("name the frames (or, in a detection job, the objects) whose issues to "
                              + ("restore" if request.restore else "dismiss"), field="frame_ids")  # fmt: skip
    if objects and not is_detection:
        raise InvalidArgument(f"job {job.job_id} judges whole frames' labels: name frame_ids", field="objects")
    for i, f in enumerate(request.frame_ids):
        if not f:
            raise InvalidArgument("is empty", field=f"frame_ids[{i}]")
    for i, o in enumerate(request.objects):
        for name in ("frame_id", "object_id"):
            if not getattr(o, name):
                raise InvalidArgument("is empty", field=f"objects[{i}].{name}")
    dataset = ctx.datasets.get_inference_set(request.project, job.params["inference_set"]).dataset
    if is_detection:
        seen, seen_objects = detection_issues.scored(ctx.metrics, request.project, job.job_id, frames, objects)
    else:
        seen, seen_objects = dismissals.examined(ctx.metrics, _FRAME_JOBS[job.kind], request.project, job.job_id,
                                                 frames), set()  # fmt: skip
    for i, f in enumerate(request.frame_ids):
        if f not in seen:
            raise InvalidArgument(f"is not a frame that job {job.job_id} examined (a labeled frame of its dataset)",
                                  field=f"frame_ids[{i}]", datapoint=Datapoint(dataset, f))  # fmt: skip
    for i, o in enumerate(request.objects):
        if (o.frame_id, o.object_id) not in seen_objects:
            where = Datapoint(dataset, o.frame_id, o.object_id)
            raise InvalidArgument(f"is not an object that job {job.job_id} scored", field=f"objects[{i}]",
                                  datapoint=where)  # fmt: skip
    dismissals.record(ctx.metrics, request.project, dataset, [(f, "") for f in frames] + objects,
                      dismissed=not request.restore, job_id=job.job_id, reason=request.reason,
                      dismissed_by=request.dismissed_by)  # fmt: skip
    log.info("%s %d frames and %d objects of dataset %r (project %r, job %s)",
             "restored" if request.restore else "dismissed", len(frames), len(objects), dataset, request.project,
             job.job_id)  # fmt: skip
    return pb.DismissLabelIssuesResponse(dataset=dataset, frames=len(frames), objects=len(objects))


ANALYSIS = Analysis("dismissals", rpcs={"DismissLabelIssues": dismiss_label_issues}, migrations=dismissals.MIGRATIONS)
