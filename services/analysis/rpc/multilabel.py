"""Multi-label classification: metrics per class and averaged at a score threshold, and the label-issues
job StartLabelIssues runs on a multi-label project, with its query."""

from __future__ import annotations

from shoal.analysis import multilabel, multilabel_issues
from shoal.analysis.rpc.context import Analysis, Context, Runner, check_threshold, frame_filter
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import page_of, page_response
from shoal.common.data.datasets import frame_media
from shoal.common.errors import InvalidArgument
from shoal.common.jobs import JobContext
from shoal.common.v1 import common_pb2


def get_multi_label_metrics(ctx: Context, request: pb.GetMultiLabelMetricsRequest) -> pb.GetMultiLabelMetricsResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    threshold = check_threshold(request.threshold, "threshold") or multilabel.DEFAULT_THRESHOLD
    project = ctx.project(request.project, ("MULTI_LABEL",))
    view = ctx.view(project, "", request.inference_set, 0.0)
    frames_sql, frames_params = frame_filter(view, request.filter, "filter")
    ontology = [c.id for c in project.classes]
    _, labels, scores = multilabel.load(ctx.metrics, project.name, view.dataset, view.inference_set, ontology,
                                        frames_sql, frames_params)  # fmt: skip
    r = multilabel.report(labels, scores, threshold)
    out = pb.MultiLabelMetrics(
        inference_set=view.inference_set,
        dataset=view.dataset,
        frames=r.frames,
        threshold=threshold,
        micro_precision=r.micro[0],
        micro_recall=r.micro[1],
        micro_f1=r.micro[2],
        macro_precision=r.macro[0],
        macro_recall=r.macro[1],
        macro_f1=r.macro[2],
        mean_average_precision=r.mean_average_precision,
        subset_accuracy=r.subset_accuracy,
        hamming_loss=r.hamming_loss,
    )
    for c, (p, rc, f, ap, support, predicted) in zip(project.classes, r.per_class, strict=True):
        out.per_class.add(class_id=c.id, class_name=c.name, precision=p, recall=rc, f1=f, average_precision=ap,
                          support=support, predicted=predicted)  # fmt: skip
    return pb.GetMultiLabelMetricsResponse(metrics=out)


def query_multi_label_frames(
    ctx: Context, request: pb.QueryMultiLabelFramesRequest
) -> pb.QueryMultiLabelFramesResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    if request.outcome not in multilabel.OUTCOMES:
        raise InvalidArgument("name the outcome: false positives, false negatives or true positives", field="outcome")
    threshold = check_threshold(request.threshold, "threshold") or multilabel.DEFAULT_THRESHOLD
    project = ctx.project(request.project, ("MULTI_LABEL",))
    ontology = [c.id for c in project.classes]
    if request.class_id not in ontology:
        raise InvalidArgument(f"unknown class id {request.class_id}", field="class_id")
    view = ctx.view(project, "", request.inference_set, 0.0)
    frames_sql, frames_params = frame_filter(view, request.filter, "filter")
    scope = (f"multilabel-frames|{project.name}|{view.inference_set}|{request.class_id}|{request.outcome}|{threshold}|"
             f"{request.filter.SerializeToString(deterministic=True).hex()}")  # fmt: skip
    page = page_of(request.page, scope=scope)
    rows, total = multilabel.frames(ctx.metrics, project.name, view.dataset, view.inference_set, ontology,
                                    request.class_id, request.outcome, threshold, frames_sql, frames_params,
                                    offset=page.offset, size=page.size)  # fmt: skip
    media = frame_media(ctx.metrics, project.name, view.dataset, [str(r[0]) for r in rows])
    out = pb.QueryMultiLabelFramesResponse(page=page_response(page, len(rows), total, scope=scope))
    for frame, score, labeled, predicted in rows:
        uri, split = media.get(str(frame), ("", ""))
        out.frames.add(ref=common_pb2.DatapointRef(dataset=view.dataset, frame_id=str(frame)), media_uri=uri,
                       split=split, score=float(score), label_class_ids=[int(c) for c in labeled],
                       predicted_class_ids=[int(c) for c in predicted])  # fmt: skip
    return out


def run_multi_label_issues(ctx: Context, run: JobContext) -> None:
    job = run.job
    project = ctx.project(job.project, ("MULTI_LABEL",))
    view = ctx.view(project, "", job.params["inference_set"], 0.0)
    flt = common_pb2.Filter.FromString(bytes.fromhex(job.params.get("filter", "")))
    frames_sql, frames_params = frame_filter(view, flt, "filter")
    multilabel_issues.run(run, ctx.metrics, job, dataset=view.dataset, inference_set=view.inference_set,
                          ontology=[c.id for c in project.classes], frames_sql=frames_sql,
                          frames_params=frames_params)  # fmt: skip


def query_multi_label_issues(
    ctx: Context, request: pb.QueryMultiLabelIssuesRequest
) -> pb.QueryMultiLabelIssuesResponse:
    job = ctx.finished_job(request.project, request.job_id, multilabel_issues.KIND)
    if request.order not in multilabel_issues.ORDERS:
        raise InvalidArgument(f"unknown order {request.order}", field="order")
    s = ctx.stored_summary(multilabel_issues, job)
    scope = (f"multilabel-issues|{request.project}|{job.job_id}|{request.all_frames}|{request.order}"
             f"|{request.include_dismissed}")  # fmt: skip
    page = page_of(request.page, scope=scope)
    dataset = ctx.datasets.get_inference_set(request.project, job.params["inference_set"]).dataset
    rows, total, dismissed = multilabel_issues.query(ctx.metrics, request.project, job.job_id, dataset=dataset,
                                                     all_frames=request.all_frames,
                                                     include_dismissed=request.include_dismissed, order=request.order,
                                                     offset=page.offset, size=page.size)  # fmt: skip
    media = frame_media(ctx.metrics, request.project, dataset, [r[0] for r in rows])
    out = pb.QueryMultiLabelIssuesResponse(
        summary=pb.MultiLabelIssuesSummary(
            frames=s.frames, flagged_frames=s.flagged_frames, missing=s.missing, extra=s.extra
        ),
        page=page_response(page, len(rows), total, scope=scope),
        dismissed_count=dismissed,
    )
    for frame, score, is_issue, worst, missing, extra, gone in rows:
        out.issues.add(ref=common_pb2.DatapointRef(dataset=dataset, frame_id=frame),
                       media_uri=media.get(frame, ("", ""))[0], score=float(score), is_issue=bool(is_issue),
                       worst_class=int(worst), missing_class_ids=[int(c) for c in missing],
                       extra_class_ids=[int(c) for c in extra], dismissed=bool(gone))  # fmt: skip
    return out


ANALYSIS = Analysis(
    "multilabel",
    rpcs={
        "GetMultiLabelMetrics": get_multi_label_metrics,
        "QueryMultiLabelFrames": query_multi_label_frames,
        "QueryMultiLabelIssues": query_multi_label_issues,
    },
    jobs={multilabel_issues.KIND: Runner(run=run_multi_label_issues, discard=multilabel_issues.discard)},
    migrations=multilabel_issues.MIGRATIONS,
)
