"""Gates: checking an inference set against the minimum metrics that segments demand."""

from __future__ import annotations

from typing import Any

from shoal.analysis import gates, multilabel, segmentation, sound_event_analysis
from shoal.analysis.detection import detection_confusion, outcome_frames, summarize_confusion
from shoal.analysis.rpc.context import Analysis, Context, check_iou, check_threshold, frame_filter
from shoal.analysis.rpc.segments import gate_proto
from shoal.analysis.rpc.sound_events import reader_of
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data.projects import OBJECT_TASKS
from shoal.common.errors import InvalidArgument
from shoal.common.v1 import common_pb2


def evaluate_gates(ctx: Context, request: pb.EvaluateGatesRequest) -> pb.EvaluateGatesResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    threshold = check_threshold(request.confidence_threshold, "confidence_threshold")
    project = ctx.projects.get(request.project)
    measure = None
    if project.task_type == "SEGMENTATION":
        view = ctx.view(project, "", request.inference_set, 0.0)
        ontology = [c.id for c in project.classes]

        def measure(members: common_pb2.Filter) -> Any:
            frames_sql, frames_params = frame_filter(view, members, "segment")
            return segmentation.gate_summary(
                segmentation.report(ctx.metrics, project.name, view.inference_set, ontology, frames_sql, frames_params),
                ontology,
            )
    elif project.task_type == "MULTI_LABEL":
        view = ctx.view(project, "", request.inference_set, 0.0)
        ontology = [c.id for c in project.classes]
        score_threshold = threshold or multilabel.DEFAULT_THRESHOLD

        def measure(members: common_pb2.Filter) -> Any:
            frames_sql, frames_params = frame_filter(view, members, "segment")
            _, labels, scores = multilabel.load(ctx.metrics, project.name, view.dataset, view.inference_set, ontology,
                                                frames_sql, frames_params)  # fmt: skip
            return multilabel.gate_summary(multilabel.report(labels, scores, score_threshold), ontology)
    elif project.task_type == "SOUND_EVENTS":
        view = ctx.view(project, "", request.inference_set, 0.0)
        ontology = [c.id for c in project.classes]

        def measure(members: common_pb2.Filter) -> Any:
            reader = reader_of(ctx, project, view, members, "segment", threshold)
            return sound_event_analysis.gate_summary(sound_event_analysis.measure(reader), ontology)
    elif project.task_type in OBJECT_TASKS:
        iou = check_iou(request.iou_threshold, "iou_threshold")
        view = ctx.view(project, "", request.inference_set, threshold)

        def measure(members: common_pb2.Filter) -> Any:
            frames_sql, frames_params = frame_filter(view, members, "segment")
            c = detection_confusion(
                ctx.metrics, project.name, view.dataset, view.inference_set, list(view.ontology),
                iou_threshold=iou, confidence_threshold=threshold, frames_sql=frames_sql,
                frames_params=frames_params,
            )  # fmt: skip
            frames = outcome_frames(ctx.metrics, project.name, view.inference_set, iou, frames_sql, frames_params)
            return summarize_confusion(c, frames)
    else:
        view = ctx.view(ctx.classification_project(request.project), "", request.inference_set, threshold)
    out = pb.EvaluateGatesResponse()
    for o in gates.evaluate_gates(ctx.metrics, ctx.segments, view, measure):
        result = pb.GateResult(segment=o.segment, gate=gate_proto(o.gate), value=o.value, frames=o.frames,
                               passed=o.passed)  # fmt: skip
        out.results.append(result)
        if not o.passed:
            out.failed.append(result)
    return out


ANALYSIS = Analysis("gates", rpcs={"EvaluateGates": evaluate_gates})
