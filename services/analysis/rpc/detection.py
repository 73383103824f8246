"""Object metrics (2-D boxes, instance masks, keypoints): COCO AP and AR, the confusion matrix and its
matches (cuboids too: their matches with their distance from the ego vehicle and points)."""

from __future__ import annotations

import math

from shoal.analysis import detection
from shoal.analysis.detection import (
    MATCH_TIE_BREAK,
    ORDERS,
    CuboidDetail,
    MatchQuery,
    detection_confusion,
    detection_report,
    match_details,
    query_matches,
)
from shoal.analysis.rpc.context import Analysis, Context, check_iou, check_threshold, confusion_cell, frame_filter
from shoal.analysis.rpc.cuboids import cuboid_message, cuboid_ranges
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data.query import decode_cursor, encode_cursor
from shoal.common.errors import FailedPrecondition, InvalidArgument
from shoal.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from shoal.common.similarity import shapes_of
from shoal.common.v1 import common_pb2

_Matching = pb.GetDetectionConfusionRequest | pb.QueryDetectionMatchesRequest


def _require_inference_set(request: pb.GetDetectionMetricsRequest | _Matching) -> None:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")


def _matching(request: _Matching) -> tuple[float, float]:
    """The IoU and confidence thresholds a request matches boxes at, checked with its inference set."""
    _require_inference_set(request)
    return (
        check_iou(request.iou_threshold, "iou_threshold"),
        check_threshold(request.confidence_threshold, "confidence_threshold"),
    )


def get_detection_metrics(ctx: Context, request: pb.GetDetectionMetricsRequest) -> pb.GetDetectionMetricsResponse:
    _require_inference_set(request)
    project = ctx.detection_project(request.project)
    if project.task_type == "CUBOIDS_3D":
        raise FailedPrecondition(
            f"project {project.name!r} is CUBOIDS_3D: COCO's AP and area ranges do not measure cuboids; ask"
            " GetCuboidMetrics (nuScenes' metrics and AP over BEV and 3-D IoU)",
            field="project",
        )
    s = ctx.datasets.get_inference_set(request.project, request.inference_set)
    shapes = shapes_of(project)
    classes = [c.id for c in project.classes]
    report = detection_report(ctx.metrics, request.project, s.dataset, s.name, classes, shapes)
    st = report.result.stats
    out = pb.DetectionMetrics(
        inference_set=s.name,
        dataset=s.dataset,
        frames=report.frames,
        ground_truth_objects=report.ground_truth,
        predicted_objects=report.predicted,
        ap=st["AP"],
        ap50=st["AP50"],
        ap75=st["AP75"],
        ap_small=st.get("AP_small", -1.0),
        ap_medium=st["AP_medium"],
        ap_large=st["AP_large"],
        ar1=st.get("AR1", -1.0),
        ar10=st.get("AR10", -1.0),
        ar100=st.get("AR100", -1.0),
        ar_small=st.get("AR_small", -1.0),
        ar_medium=st["AR_medium"],
        ar_large=st["AR_large"],
        iou_type=shapes.kind,
        ar=st["AR"],
        ar50=st["AR50"],
        ar75=st["AR75"],
    )
    for c in project.classes:
        pc = report.result.per_class[c.id]
        out.per_class.add(
            class_id=c.id,
            class_name=c.name,
            ap=pc["AP"],
            ap50=pc["AP50"],
            ap75=pc["AP75"],
            ar100=pc.get("AR100", -1.0),
            ar=pc["AR"],
            ground_truth=report.gt_per_class.get(c.id, 0),
            predicted=report.dt_per_class.get(c.id, 0),
        )
    return pb.GetDetectionMetricsResponse(metrics=out)


def get_detection_confusion(ctx: Context, request: pb.GetDetectionConfusionRequest) -> pb.GetDetectionConfusionResponse:
    iou, threshold = _matching(request)
    project = ctx.detection_project(request.project)
    s = ctx.datasets.get_inference_set(request.project, request.inference_set)
    run = detection_confusion(
        ctx.metrics, request.project, s.dataset, s.name, [c.id for c in project.classes],
        iou_threshold=iou, confidence_threshold=threshold,
    )  # fmt: skip
    class_ids, counts, omitted = run.cells.matrix(run.class_ids)
    out = pb.DetectionConfusion(
        inference_set=s.name,
        iou_threshold=iou,
        confidence_threshold=threshold,
        class_ids=class_ids,
        counts=counts.ravel().tolist(),
        ignored_predictions=run.ignored,
        omitted_classes=omitted,
    )
    return pb.GetDetectionConfusionResponse(confusion=out)


def query_detection_matches(ctx: Context, request: pb.QueryDetectionMatchesRequest) -> pb.QueryDetectionMatchesResponse:
    iou, threshold = _matching(request)
    label, predicted = confusion_cell(request)
    ranges = {}
    for name in ("min_score", "max_score", "min_iou", "max_iou"):
        if request.HasField(name):
            ranges[name] = check_threshold(getattr(request, name), name)
    cuboid_bounds = cuboid_ranges(request)
    if request.order not in ORDERS:
        raise InvalidArgument(f"unknown order {request.order}", field="order")
    if request.change not in ("", "improved", "regressed"):
        raise InvalidArgument(f"'improved' or 'regressed', not {request.change!r}", field="change")
    if bool(request.change) != bool(request.baseline_inference_set):
        field = "baseline_inference_set" if request.change else "change"
        raise InvalidArgument("change and baseline_inference_set go together", field=field)
    project = ctx.detection_project(request.project)
    cuboids = project.task_type == "CUBOIDS_3D"
    if cuboid_bounds and not cuboids:
        raise InvalidArgument(f"only cuboid projects' matches have a distance and a point count, not"
                              f" {project.task_type}'s", field=next(iter(cuboid_bounds)))  # fmt: skip
    view = ctx.view(project, "", request.inference_set, 0.0, request.baseline_inference_set)
    frames_sql, frames_params = frame_filter(view, request.frame_filter, "frame_filter")
    if request.object_segment:
        seg = ctx.segments.get(project.name, request.object_segment)
        if seg.dataset != view.dataset:
            raise InvalidArgument(f"segment {seg.name!r} is of dataset {seg.dataset!r}, not {view.dataset!r}",
                                  field="object_segment")  # fmt: skip
    q = MatchQuery(view.inference_set, iou, threshold, label, predicted, order=request.order,
                   baseline_inference_set=request.baseline_inference_set, change=request.change,
                   object_segment=request.object_segment, **ranges, **cuboid_bounds)  # fmt: skip
    if request.page.page_size < 0:
        raise InvalidArgument(f"must be >= 0, got {request.page.page_size}", field="page.page_size")
    size = min(request.page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    scope = f"matches|{request.project}|{q}|{request.frame_filter.SerializeToString().hex()}"
    sorts = [*ORDERS[request.order], *MATCH_TIE_BREAK]
    last = decode_cursor(request.page.page_token, sorts, scope)
    rows, total, next_last = query_matches(ctx.metrics, request.project, view.dataset, q, size, last,
                                           frames_sql, frames_params)  # fmt: skip
    token = encode_cursor(next_last, scope) if next_last is not None else ""
    out = pb.QueryDetectionMatchesResponse(page=common_pb2.PageResponse(next_page_token=token, total_count=total))
    details = match_details(ctx.metrics, project.name, view.dataset, view.inference_set, [r[0] for r in rows],
                            cuboids=cuboids)  # fmt: skip
    for frame, lo, po, lc, pc, m_iou, score in rows:
        uri, split = details.frames.get(frame, ("", ""))
        m = out.matches.add(frame_id=frame, label_object_id=lo, predicted_object_id=po, iou=float(m_iou),
                            media_uri=uri, split=split)  # fmt: skip
        if lc != -1:
            m.label_class = int(lc)
        if pc != -1:
            m.predicted_class = int(pc)
        if score is not None:
            m.score = float(score)
        if lo and (frame, lo) in details.label_boxes:
            m.label_box.x, m.label_box.y, m.label_box.width, m.label_box.height = details.label_boxes[(frame, lo)]
        if po and (frame, po) in details.predicted_boxes:
            b = m.predicted_box
            b.x, b.y, b.width, b.height = details.predicted_boxes[(frame, po)]
        if cuboids:
            _show_cuboids(m, details.label_cuboids.get((frame, lo)), details.predicted_cuboids.get((frame, po)))
    return out


def _show_cuboids(m: pb.DetectionMatch, label: CuboidDetail | None, predicted: CuboidDetail | None) -> None:
    """A cuboid match's cuboids, its distance (the labeled cuboid's, else the predicted one's; NaN when not
    known) and the points inside the labeled cuboid (-1: not known)."""
    if label is not None:
        m.label_cuboid.CopyFrom(cuboid_message(label))
    if predicted is not None:
        m.predicted_cuboid.CopyFrom(cuboid_message(predicted))
    shown = label or predicted
    m.distance = shown.distance if shown is not None else math.nan
    m.points = label.points if label is not None else -1


ANALYSIS = Analysis(
    "detection",
    rpcs={
        "GetDetectionMetrics": get_detection_metrics,
        "GetDetectionConfusion": get_detection_confusion,
        "QueryDetectionMatches": query_detection_matches,
    },
    migrations=detection.MIGRATIONS,
)
