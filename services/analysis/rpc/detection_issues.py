"""Label issues of objects (2-D boxes, instance masks, keypoints, 3-D cuboids): the job StartLabelIssues runs on
such a project, and its query."""

from __future__ import annotations

from shoal.analysis import detection_issues
from shoal.analysis.detection import match_details
from shoal.analysis.rpc.context import Analysis, Context, Runner, frame_filter
from shoal.analysis.rpc.cuboids import cuboid_message
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import page_of, page_response
from shoal.common.data.datasets import frame_media
from shoal.common.errors import InvalidArgument
from shoal.common.jobs import JobContext
from shoal.common.v1 import common_pb2


def run_detection_label_issues(ctx: Context, run: JobContext) -> None:
    job = run.job
    view = ctx.view(ctx.detection_project(job.project), "", job.params["inference_set"], 0.0)
    flt = common_pb2.Filter.FromString(bytes.fromhex(job.params.get("filter", "")))
    frames_sql, frames_params = frame_filter(view, flt, "filter")
    summary = detection_issues.find_detection_issues(run, ctx.metrics, job, dataset=view.dataset,
                                                     inference_set=view.inference_set, frames_sql=frames_sql,
                                                     frames_params=frames_params)  # fmt: skip
    detection_issues.rank(ctx.metrics, job, summary, above=ctx.ranked_above)


def query_detection_label_issues(
    ctx: Context, request: pb.QueryDetectionLabelIssuesRequest
) -> pb.QueryDetectionLabelIssuesResponse:
    job = ctx.finished_job(request.project, request.job_id, detection_issues.KIND)
    if request.level not in pb.DetectionIssueLevel.values():
        raise InvalidArgument(f"unknown level {request.level}", field="level")
    types = list(request.issue_types)
    for i, t in enumerate(types):
        if t not in detection_issues.TYPE_NAMES:
            raise InvalidArgument(f"unknown issue type {t}", field=f"issue_types[{i}]")
    if request.order not in detection_issues.FRAME_ORDERS:
        raise InvalidArgument(f"unknown order {request.order}", field="order")
    frames = request.level == pb.DETECTION_ISSUE_LEVEL_FRAME
    if frames and types and request.include_unflagged:
        raise InvalidArgument("frames are chosen by their flagged objects' types; drop issue_types to list every"
                              " frame", field="include_unflagged")  # fmt: skip
    s = ctx.stored_summary(detection_issues, job)
    summary = pb.DetectionIssuesSummary(
        frames=s.frames, labeled_objects=s.labeled_objects, predicted_objects=s.predicted_objects,
        flagged_frames=s.flagged_frames, missing_labels=s.issues["missing_label"],
        spurious_labels=s.issues["spurious_label"], mislocalized=s.issues["mislocalized"],
        class_swaps=s.issues["class_swap"], missing_label_threshold=s.thresholds["missing_label"],
        spurious_label_threshold=s.thresholds["spurious_label"],
        mislocalized_threshold=s.thresholds["mislocalized"], class_swap_threshold=s.thresholds["class_swap"],
        match_iou=s.match_iou, misplaced_keypoints=s.issues.get("misplaced_keypoint", 0),
        swapped_keypoints=s.issues.get("swapped_keypoints", 0),
        misplaced_keypoint_threshold=s.thresholds.get("misplaced_keypoint", 0.0),
        swapped_keypoints_threshold=s.thresholds.get("swapped_keypoints", 0.0),
    )  # fmt: skip
    scope = (f"detection-label-issues|{request.project}|{job.job_id}|{request.level}|{sorted(types)}"
             f"|{request.include_unflagged}|{request.order}|{request.include_dismissed}")  # fmt: skip
    page = page_of(request.page, scope=scope)
    inference_set = job.params["inference_set"]
    dataset = ctx.datasets.get_inference_set(request.project, inference_set).dataset
    query = detection_issues.query_frames if frames else detection_issues.query_objects
    rows, total, dismissed = query(ctx.metrics, request.project, job.job_id, dataset=dataset, types=types,
                                   include_unflagged=request.include_unflagged,
                                   include_dismissed=request.include_dismissed, order=request.order,
                                   offset=page.offset, size=page.size, answers=ctx.answers)  # fmt: skip
    out = pb.QueryDetectionLabelIssuesResponse(summary=summary,
                                               page=page_response(page, len(rows), total, scope=scope),
                                               dismissed_count=dismissed)  # fmt: skip
    if frames:
        media = frame_media(ctx.metrics, request.project, dataset, [r[0] for r in rows])
        for (frame, score, is_issue, worst, objects, missing, spurious, mislocalized, swapped, misplaced_kp,
             swapped_kp, is_dismissed) in rows:  # fmt: skip
            out.frames.add(ref=common_pb2.DatapointRef(dataset=dataset, frame_id=frame),
                           media_uri=media.get(frame, ("", ""))[0], score=float(score), is_issue=bool(is_issue),
                           worst_type=int(worst), objects=int(objects), missing_labels=int(missing),
                           spurious_labels=int(spurious), mislocalized=int(mislocalized),
                           class_swaps=int(swapped), dismissed=bool(is_dismissed),
                           misplaced_keypoints=int(misplaced_kp), swapped_keypoints=int(swapped_kp))  # fmt: skip
        return out
    cuboids = ctx.projects.get(request.project).task_type == "CUBOIDS_3D"
    details = match_details(ctx.metrics, request.project, dataset, inference_set, [r[0] for r in rows],
                            cuboids=cuboids)  # fmt: skip
    for (frame, obj, predicted, kind, score, is_issue, given, suggested, partner, iou, conf, kps, off,
         is_dismissed) in rows:  # fmt: skip
        item = out.objects.add(ref=common_pb2.DatapointRef(dataset=dataset, frame_id=frame, object_id=obj),
                               media_uri=details.frames.get(frame, ("", ""))[0], issue_type=int(kind),
                               score=float(score), is_issue=bool(is_issue), predicted=bool(predicted),
                               partner_object_id=partner, iou=float(iou), confidence=float(conf),
                               dismissed=bool(is_dismissed), keypoints=[int(k) for k in kps],
                               mislocalization=off)  # fmt: skip
        if given >= 0:
            item.given_class = int(given)
        if suggested >= 0:
            item.suggested_class = int(suggested)
        label_id, predicted_id = (partner, obj) if predicted else (obj, partner)
        if cuboids:
            for cuboid, found, key in ((item.label_cuboid, details.label_cuboids, label_id),
                                       (item.predicted_cuboid, details.predicted_cuboids, predicted_id)):  # fmt: skip
                if key and (frame, key) in found:
                    cuboid.CopyFrom(cuboid_message(found[(frame, key)]))
            continue
        for box, boxes, key in ((item.label_box, details.label_boxes, label_id),
                                (item.predicted_box, details.predicted_boxes, predicted_id)):  # fmt: skip
            if key and (frame, key) in boxes:
                box.x, box.y, box.width, box.height = boxes[(frame, key)]
    return out


ANALYSIS = Analysis(
    "detection_issues",
    rpcs={"QueryDetectionLabelIssues": query_detection_label_issues},
    jobs={detection_issues.KIND: Runner(run=run_detection_label_issues, discard=detection_issues.discard)},
    migrations=(*detection_issues.MIGRATIONS, *detection_issues.RANK_MIGRATIONS),
)
