"""Semantic segmentation: the metrics of an inference set over any filter of frames, and the frames
behind a class or a confusion cell."""

from __future__ import annotations

import math

from shoal.analysis import segmentation, segmentation_label_issues
from shoal.analysis.rpc.context import Analysis, Context, Runner, frame_filter
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import page_of, page_response
from shoal.common.data.datasets import frame_media
from shoal.common.errors import FailedPrecondition, InvalidArgument
from shoal.common.jobs import JobContext
from shoal.common.v1 import common_pb2


def _defined(value: float) -> float:
    return -1.0 if math.isnan(value) else float(value)


def get_segmentation_metrics(
    ctx: Context, request: pb.GetSegmentationMetricsRequest
) -> pb.GetSegmentationMetricsResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    project = ctx.project(request.project, ("SEGMENTATION",))
    view = ctx.view(project, "", request.inference_set, 0.0)
    frames_sql, frames_params = frame_filter(view, request.filter, "filter")
    ontology = [c.id for c in project.classes]
    r = segmentation.report(ctx.metrics, project.name, view.inference_set, ontology, frames_sql, frames_params)
    pixel_accuracy, mean_accuracy, mean_iou, fw_iou = r.summary()
    out = pb.SegmentationMetrics(
        inference_set=view.inference_set,
        dataset=view.dataset,
        frames=r.frames,
        pixels=r.pixels,
        pixel_accuracy=pixel_accuracy,
        mean_accuracy=mean_accuracy,
        mean_iou=mean_iou,
        frequency_weighted_iou=fw_iou,
        class_ids=ontology,
        confusion=r.confusion.ravel().tolist(),
    )
    iou, accuracy, precision = r.per_class()
    m = r.confusion
    for i, c in enumerate(project.classes):
        out.per_class.add(class_id=c.id, class_name=c.name, iou=_defined(iou[i]), accuracy=_defined(accuracy[i]),
                          precision=_defined(precision[i]), label_pixels=int(m[i].sum()),
                          predicted_pixels=int(m[:, i].sum()), true_positive_pixels=int(m[i, i]),
                          frames=int(r.class_frames[i]))  # fmt: skip
    return pb.GetSegmentationMetricsResponse(metrics=out)


def query_segmentation_frames(
    ctx: Context, request: pb.QuerySegmentationFramesRequest
) -> pb.QuerySegmentationFramesResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    project = ctx.project(request.project, ("SEGMENTATION",))
    known = {c.id for c in project.classes}
    if request.class_id not in known:
        raise InvalidArgument(f"unknown class id {request.class_id}", field="class_id")
    cell = request.predicted_class if request.HasField("predicted_class") else None
    if cell is not None and cell not in known:
        raise InvalidArgument(f"unknown class id {cell}", field="predicted_class")
    view = ctx.view(project, "", request.inference_set, 0.0)
    frames_sql, frames_params = frame_filter(view, request.filter, "filter")
    scope = (
        f"segmentation-frames|{project.name}|{view.inference_set}|{request.class_id}|{cell}|"
        f"{request.filter.SerializeToString(deterministic=True).hex()}"
    )
    page = page_of(request.page, scope=scope)
    rows, total = segmentation.frames(ctx.metrics, project.name, view.inference_set, request.class_id, cell,
                                      frames_sql, frames_params, offset=page.offset, size=page.size)  # fmt: skip
    media = frame_media(ctx.metrics, project.name, view.dataset, [str(r[0]) for r in rows])
    out = pb.QuerySegmentationFramesResponse(page=page_response(page, len(rows), total, scope=scope))
    for frame, iou, cell_pixels, labeled, predicted, accuracy in rows:
        uri, split = media.get(str(frame), ("", ""))
        out.frames.add(ref=common_pb2.DatapointRef(dataset=view.dataset, frame_id=str(frame)), media_uri=uri,
                       split=split, iou=float(iou), cell_pixels=int(cell_pixels), label_pixels=int(labeled),
                       predicted_pixels=int(predicted), pixel_accuracy=float(accuracy))  # fmt: skip
    return out


def run_segmentation_issues(ctx: Context, run: JobContext) -> None:
    job = run.job
    project = ctx.project(job.project, ("SEGMENTATION",))
    view = ctx.view(project, "", job.params["inference_set"], 0.0)
    flt = common_pb2.Filter.FromString(bytes.fromhex(job.params.get("filter", "")))
    frames_sql, frames_params = frame_filter(view, flt, "filter")
    if ctx.media is None:
        raise FailedPrecondition("this service reads no media: probabilities cannot be read", field="inference_set")
    segmentation_label_issues.run(run, ctx.metrics, ctx.media, job, dataset=view.dataset,
                                  inference_set=view.inference_set, ontology=[c.id for c in project.classes],
                                  tolerance=int(job.params["outline_tolerance"]), frames_sql=frames_sql,
                                  frames_params=frames_params)  # fmt: skip


def query_segmentation_issues(
    ctx: Context, request: pb.QuerySegmentationIssuesRequest
) -> pb.QuerySegmentationIssuesResponse:
    job = ctx.finished_job(request.project, request.job_id, segmentation_label_issues.KIND)
    if request.order not in segmentation_label_issues.ORDERS:
        raise InvalidArgument(f"unknown order {request.order}", field="order")
    s = ctx.stored_summary(segmentation_label_issues, job)
    scope = (f"segmentation-issues|{request.project}|{job.job_id}|{request.all_frames}|{request.order}"
             f"|{request.include_dismissed}")  # fmt: skip
    page = page_of(request.page, scope=scope)
    dataset = ctx.datasets.get_inference_set(request.project, job.params["inference_set"]).dataset
    rows, total, dismissed = segmentation_label_issues.query(
        ctx.metrics, request.project, job.job_id, dataset=dataset, all_frames=request.all_frames,
        include_dismissed=request.include_dismissed, order=request.order, offset=page.offset, size=page.size,
    )  # fmt: skip
    media = frame_media(ctx.metrics, request.project, dataset, [str(r[0]) for r in rows])
    out = pb.QuerySegmentationIssuesResponse(
        summary=pb.SegmentationIssuesSummary(
            frames=s.frames, flagged_frames=s.flagged_frames, flagged_pixels=s.flagged_pixels,
            confident_pixels=s.confident_pixels, outline_tolerance=s.tolerance,
            class_ids=[int(c) for c in s.thresholds], thresholds=list(s.thresholds.values()),
            without_probabilities=s.without_probabilities, unreadable=s.unreadable,
            failures=[f"{frame}: {why}" for frame, why in s.failures],
        ),
        page=page_response(page, len(rows), total, scope=scope),
        dismissed_count=dismissed,
    )  # fmt: skip
    for frame, score, is_issue, labeled, flagged, core, worst, suggested, mask, gone in rows:
        out.issues.add(ref=common_pb2.DatapointRef(dataset=dataset, frame_id=str(frame)),
                       media_uri=media.get(str(frame), ("", ""))[0], score=float(score), is_issue=bool(is_issue),
                       labeled_pixels=int(labeled), flagged_pixels=int(flagged), core_pixels=int(core),
                       worst_class=int(worst), suggested_class=int(suggested), flagged_mask=str(mask),
                       dismissed=bool(gone))  # fmt: skip
    return out


ANALYSIS = Analysis(
    "segmentation",
    rpcs={
        "GetSegmentationMetrics": get_segmentation_metrics,
        "QuerySegmentationFrames": query_segmentation_frames,
        "QuerySegmentationIssues": query_segmentation_issues,
    },
    jobs={
        segmentation_label_issues.KIND: Runner(run=run_segmentation_issues, discard=segmentation_label_issues.discard)
    },
    migrations=segmentation_label_issues.MIGRATIONS,
)
