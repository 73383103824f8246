"""Label issues: a job that scores every labeled frame (classification: confident learning;
detection: see :mod:`shoal.analysis.rpc.detection_issues`) and the query of its classification result."""

from __future__ import annotations

from typing import Any

from shoal.analysis import (
    detection_issues,
    label_issues,
    multilabel_issues,
    neighbors,
    segmentation_label_issues,
    sound_event_label_issues,
)
from shoal.analysis.rpc.context import Analysis, Context, Runner, frame_filter
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import job_to_proto, page_of, page_response
from shoal.common.data.datasets import frame_media
from shoal.common.data.projects import OBJECT_TASKS
from shoal.common.data.query import Params, compile_filter
from shoal.common.errors import FailedPrecondition, InvalidArgument
from shoal.common.jobs import JobContext
from shoal.common.v1 import common_pb2


def start_label_issues(ctx: Context, request: pb.StartLabelIssuesRequest) -> pb.StartLabelIssuesResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    project = ctx.projects.get(request.project)
    kind = label_issues.KIND
    if request.HasField("outline_tolerance") and project.task_type != "SEGMENTATION":
        raise InvalidArgument("an outline tolerance is for segmentation projects", field="outline_tolerance")
    if project.task_type == "SEGMENTATION":
        view = ctx.view(project, "", request.inference_set, 0.0)
        frame_filter(view, request.filter, "filter")  # a bad filter fails now, not in the job
        kind = segmentation_label_issues.KIND
        if request.HasField("outline_tolerance") and not 0 <= request.outline_tolerance <= 100:
            raise InvalidArgument(
                f"must be 0 to 100 pixels, got {request.outline_tolerance}", field="outline_tolerance"
            )
    elif project.task_type == "MULTI_LABEL":
        view = ctx.view(project, "", request.inference_set, 0.0)
        frame_filter(view, request.filter, "filter")  # a bad filter fails now, not in the job
        kind = multilabel_issues.KIND
    elif project.task_type == "SOUND_EVENTS":
        view = ctx.view(project, "", request.inference_set, 0.0)
        frame_filter(view, request.filter, "filter")  # a bad filter fails now, not in the job
        kind = sound_event_label_issues.KIND
    elif project.task_type in OBJECT_TASKS:
        view = ctx.view(project, "", request.inference_set, 0.0)
        frame_filter(view, request.filter, "filter")  # a bad filter fails now, not in the job
        kind = detection_issues.KIND
    else:
        view = ctx.view(ctx.classification_project(request.project), "", request.inference_set, 0.0)
        compile_filter(request.filter, view, Params())  # a bad filter fails now, not in the job
        if len(view.ontology) > label_issues.MAX_CLASSES:
            raise FailedPrecondition(
                f"project {project.name!r} has {len(view.ontology):,} classes; label issues keep class-by-class "
                f"matrices and take at most {label_issues.MAX_CLASSES:,}",
                field="project",
            )
    params = {"inference_set": view.inference_set, "filter": request.filter.SerializeToString().hex()}
    if kind == segmentation_label_issues.KIND:
        tolerance = request.outline_tolerance if request.HasField("outline_tolerance") else None
        params["outline_tolerance"] = str(
            segmentation_label_issues.DEFAULT_TOLERANCE if tolerance is None else tolerance
        )
    if request.neighbor_job_id:
        if kind != label_issues.KIND:
            raise InvalidArgument("neighbour labels lend to classification label issues only", field="neighbor_job_id")
        dataset = ctx.datasets.get_inference_set(request.project, view.inference_set).dataset
        params["neighbor_job_id"] = _neighbour_job(ctx, request.project, request.neighbor_job_id, dataset).job_id
    job = ctx.runner.submit(request.project, kind, params, rerun=request.rerun)
    return pb.StartLabelIssuesResponse(job=job_to_proto(job))


def _neighbour_job(ctx: Context, project: str, job_id: str, dataset: str) -> Any:
    """The finished neighbour job ``job_id`` of ``dataset``, or the error naming neighbor_job_id."""
    job = ctx.finished_job(project, job_id, neighbors.KIND, field="neighbor_job_id")
    if job.params["dataset"] != dataset:
        raise InvalidArgument(f"neighbour job {job.job_id} is of dataset {job.params['dataset']!r}, not {dataset!r}",
                              field="neighbor_job_id")  # fmt: skip
    return job


def run_label_issues(ctx: Context, run: JobContext) -> None:
    job = run.job
    view = ctx.view(ctx.classification_project(job.project), "", job.params["inference_set"], 0.0)
    flt = common_pb2.Filter.FromString(bytes.fromhex(job.params.get("filter", "")))
    near = None
    if job.params.get("neighbor_job_id"):
        near = label_issues.Neighbors(job.project, job.params["neighbor_job_id"])
    summary = label_issues.find_label_issues(run, ctx.metrics, view, flt, job, near)
    label_issues.rank(ctx.metrics, job, summary, above=ctx.ranked_above)


def query_label_issues(ctx: Context, request: pb.QueryLabelIssuesRequest) -> pb.QueryLabelIssuesResponse:
    job = ctx.finished_job(request.project, request.job_id, label_issues.KIND)
    if request.order not in label_issues.ORDERS:
        raise InvalidArgument(f"unknown order {request.order}", field="order")
    summary = ctx.stored_summary(label_issues, job)
    scope = (f"label-issues|{request.project}|{job.job_id}|{request.all_frames}|{request.order}"
             f"|{request.include_dismissed}")  # fmt: skip
    page = page_of(request.page, scope=scope)
    dataset = ctx.datasets.get_inference_set(request.project, job.params["inference_set"]).dataset

    def compute() -> tuple[list[tuple[Any, ...]], int, int]:
        return label_issues.query_issues(ctx.metrics, request.project, job.job_id, dataset=dataset,
                                         all_frames=request.all_frames, include_dismissed=request.include_dismissed,
                                         order=request.order, offset=page.offset, size=page.size,
                                         answers=ctx.answers)  # fmt: skip

    # a page reads the job's ranked rows, or every frame it examined (a job too short to rank, a page past the
    # ranked rows): kept while the job's rows and the dismissals are unchanged
    key = ("label_issues.page", request.project, job.job_id, dataset, request.all_frames, request.include_dismissed,
           request.order, page.offset, page.size)  # fmt: skip
    rows, total, dismissed = ctx.answers.get(label_issues.PAGE_TABLES, key, compute, lambda a: len(a[0]))
    media = frame_media(ctx.metrics, request.project, dataset, [r[0] for r in rows])
    near: dict[str, tuple[Any, Any]] = {}
    if request.neighbor_job_id:
        nj = _neighbour_job(ctx, request.project, request.neighbor_job_id, dataset)
        near = neighbors.neighbor_labels(ctx.metrics, request.project, nj.job_id, [r[0] for r in rows])
    out = pb.QueryLabelIssuesResponse(
        summary=pb.LabelIssuesSummary(
            frames=summary.frames,
            issues=summary.issues,
            class_ids=summary.class_ids,
            thresholds=summary.thresholds,
            confident_joint=[int(x) for row in summary.confident_joint for x in row],
            joint=[float(x) for row in summary.joint for x in row],
            noise_matrix=[float(x) for row in summary.noise_matrix for x in row],
            issues_per_class=summary.issues_per_class,
            neighbor_job_id=summary.neighbor_job_id,
            neighbor_weight=summary.neighbor_weight,
        ),
        page=page_response(page, len(rows), total, scope=scope),
        dismissed_count=dismissed,
    )
    for frame, given, suggested, is_issue, conf, margin, entropy, p_suggested, is_dismissed in rows:
        item = out.issues.add(
            ref=common_pb2.DatapointRef(dataset=dataset, frame_id=frame),
            media_uri=media.get(frame, ("", ""))[0],
            given_label=int(given),
            suggested_label=int(suggested),
            is_issue=bool(is_issue),
            self_confidence=float(conf),
            normalized_margin=float(margin),
            weighted_entropy=float(entropy),
            suggested_probability=float(p_suggested),
            dismissed=bool(is_dismissed),
        )
        major, disagree = near.get(frame, (None, None))
        if major is not None:
            item.neighbor_label = int(major)
        if disagree is not None:
            item.neighbor_disagreement = float(disagree)
    return out


ANALYSIS = Analysis(
    "label_issues",
    rpcs={"StartLabelIssues": start_label_issues, "QueryLabelIssues": query_label_issues},
    jobs={label_issues.KIND: Runner(run=run_label_issues, discard=label_issues.discard)},
    migrations=label_issues.MIGRATIONS,
)
