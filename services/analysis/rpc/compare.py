"""Comparing two inference sets of a dataset: what improved, what regressed, per class."""

from __future__ import annotations

from typing import Any

import numpy as np

from shoal.analysis import grid_compare, multilabel, segmentation, sound_event_analysis
from shoal.analysis.compare import compare
from shoal.analysis.datapoints import compared
from shoal.analysis.detection import compare_detection
from shoal.analysis.rpc.classification import class_metrics
from shoal.analysis.rpc.context import Analysis, Context, check_iou, check_threshold, frame_filter
from shoal.analysis.rpc.sound_events import reader_of
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data.projects import OBJECT_TASKS, Project
from shoal.common.data.query import VIEW_TABLES
from shoal.common.errors import InvalidArgument


def compare_inference_sets(ctx: Context, request: pb.CompareInferenceSetsRequest) -> pb.CompareInferenceSetsResponse:
    for name in ("baseline_inference_set", "candidate_inference_set"):
        if not getattr(request, name):
            raise InvalidArgument("is empty", field=name)
    threshold = check_threshold(request.confidence_threshold, "confidence_threshold")
    project = ctx.projects.get(request.project)
    if project.task_type == "SEGMENTATION":
        return _compare_maps(ctx, request, project)
    if project.task_type == "SOUND_EVENTS":
        return _compare_events(ctx, request, project, threshold)
    if project.task_type == "MULTI_LABEL":
        return _compare_class_sets(ctx, request, project, threshold or multilabel.DEFAULT_THRESHOLD)
    if project.task_type in OBJECT_TASKS:
        iou = check_iou(request.iou_threshold, "iou_threshold")
        view = ctx.view(project, "", request.candidate_inference_set, threshold, request.baseline_inference_set)
        frames_sql, frames_params = frame_filter(view, request.filter, "filter")
        det = compare_detection(
            ctx.metrics, project.name, view.dataset, request.baseline_inference_set,
            request.candidate_inference_set, list(view.ontology), iou_threshold=iou, confidence_threshold=threshold,
            frames_sql=frames_sql, frames_params=frames_params,
        )  # fmt: skip
        out = pb.CompareInferenceSetsResponse(
            frames=det.candidate.frames,
            baseline_accuracy=det.baseline.accuracy,
            candidate_accuracy=det.candidate.accuracy,
            improved=det.improved,
            regressed=det.regressed,
            objects=det.objects,
        )
        pairs = zip(det.baseline.per_class, det.candidate.per_class, strict=True)
    else:
        project = ctx.classification_project(request.project)
        view = ctx.view(project, "", request.candidate_inference_set, threshold, request.baseline_inference_set)

        # a large set's counts or rows kept beside the baseline's, when written; the answer kept while the data is
        # unchanged
        def compute() -> Any:
            found = compared(ctx.metrics, view, ctx.answers, ctx.comparisons)
            if found is None:
                return compare(ctx.metrics, view, request.filter)
            counted = grid_compare.counts(ctx.metrics, view, request.filter, *found)
            listing = None if counted is not None else grid_compare.listing(view, request.filter, found[0])[0]
            return compare(ctx.metrics, view, request.filter, listing, counted)

        key = ("compare", repr(view), request.filter.SerializeToString(deterministic=True))
        result = ctx.answers.get(VIEW_TABLES, key, compute)
        out = pb.CompareInferenceSetsResponse(
            frames=result.frames,
            baseline_accuracy=result.baseline_accuracy,
            candidate_accuracy=result.candidate_accuracy,
            improved=result.improved,
            regressed=result.regressed,
        )
        pairs = zip(result.baseline, result.candidate, strict=True)
    names = {c.id: c.name for c in project.classes}
    for b, c in pairs:
        out.per_class.add(
            class_id=c.class_id,
            class_name=names.get(c.class_id, ""),
            baseline=class_metrics(b, names),
            candidate=class_metrics(c, names),
            precision_delta=c.precision - b.precision,
            recall_delta=c.recall - b.recall,
            f1_delta=c.f1 - b.f1,
        )
    return out


ANALYSIS = Analysis("compare", rpcs={"CompareInferenceSets": compare_inference_sets})


def _compare_maps(
    ctx: Context, request: pb.CompareInferenceSetsRequest, project: Project
) -> pb.CompareInferenceSetsResponse:
    view = ctx.view(project, "", request.candidate_inference_set, 0.0, request.baseline_inference_set)
    frames_sql, frames_params = frame_filter(view, request.filter, "filter")
    ontology = [c.id for c in project.classes]
    r = segmentation.compare(ctx.metrics, project.name, request.baseline_inference_set,
                             request.candidate_inference_set, ontology, frames_sql, frames_params)  # fmt: skip
    b_summary, c_summary = r.baseline.summary(), r.candidate.summary()
    out = pb.CompareInferenceSetsResponse(
        frames=r.candidate.frames,
        baseline_accuracy=b_summary[0],
        candidate_accuracy=c_summary[0],
        improved=r.improved,
        regressed=r.regressed,
        baseline_mean_iou=b_summary[2],
        candidate_mean_iou=c_summary[2],
    )
    b_classes, c_classes = _pixel_metrics(r.baseline, project), _pixel_metrics(r.candidate, project)
    for c, (b, bi), (k, ki) in zip(project.classes, b_classes, c_classes, strict=True):
        out.per_class.add(class_id=c.id, class_name=c.name, baseline=b, candidate=k,
                          precision_delta=k.precision - b.precision, recall_delta=k.recall - b.recall,
                          f1_delta=k.f1 - b.f1, baseline_iou=bi, candidate_iou=ki,
                          iou_delta=ki - bi if bi >= 0 and ki >= 0 else 0.0)  # fmt: skip
    return out


def _pixel_metrics(r: segmentation.Report, project: Project) -> list[tuple[pb.ClassMetrics, float]]:
    """Each class's metrics in pixels (F1: the Dice coefficient; 0 where undefined) and its IoU (-1 there)."""
    iou, recall, precision = (np.nan_to_num(x, nan=-1.0) for x in r.per_class())
    m = r.confusion
    tp, labeled, predicted = np.diag(m), m.sum(axis=1), m.sum(axis=0)
    dice = np.where(labeled + predicted > 0, 2 * tp / np.maximum(labeled + predicted, 1), 0.0)
    return [
        (
            pb.ClassMetrics(
                class_id=c.id,
                class_name=c.name,
                precision=max(float(precision[i]), 0.0),
                recall=max(float(recall[i]), 0.0),
                f1=float(dice[i]),
                support=int(labeled[i]),
                predicted=int(predicted[i]),
            ),
            float(iou[i]),
        )
        for i, c in enumerate(project.classes)
    ]


def _compare_class_sets(
    ctx: Context, request: pb.CompareInferenceSetsRequest, project: Project, threshold: float
) -> pb.CompareInferenceSetsResponse:
    view = ctx.view(project, "", request.candidate_inference_set, 0.0, request.baseline_inference_set)
    frames_sql, frames_params = frame_filter(view, request.filter, "filter")
    ontology = [c.id for c in project.classes]
    r = multilabel.compare(ctx.metrics, project.name, view.dataset, request.baseline_inference_set,
                           request.candidate_inference_set, ontology, threshold, frames_sql, frames_params)  # fmt: skip
    out = pb.CompareInferenceSetsResponse(
        frames=r.candidate.frames,
        baseline_accuracy=r.baseline.subset_accuracy,
        candidate_accuracy=r.candidate.subset_accuracy,
        improved=r.improved,
        regressed=r.regressed,
    )
    for c, b, k in zip(project.classes, r.baseline.per_class, r.candidate.per_class, strict=True):

        def metrics(m: tuple[float, float, float, float, int, int], c: Any = c) -> pb.ClassMetrics:
            return pb.ClassMetrics(class_id=c.id, class_name=c.name, precision=m[0], recall=m[1], f1=m[2],
                                   support=m[4], predicted=m[5])  # fmt: skip

        out.per_class.add(class_id=c.id, class_name=c.name, baseline=metrics(b), candidate=metrics(k),
                          precision_delta=k[0] - b[0], recall_delta=k[1] - b[1], f1_delta=k[2] - b[2])  # fmt: skip
    return out


def _compare_events(
    ctx: Context, request: pb.CompareInferenceSetsRequest, project: Project, threshold: float
) -> pb.CompareInferenceSetsResponse:
    view = ctx.view(project, "", request.candidate_inference_set, 0.0, request.baseline_inference_set)
    sets = [request.baseline_inference_set, request.candidate_inference_set]
    r = sound_event_analysis.compare(reader_of(ctx, project, view, request.filter, "filter", threshold, sets))

    def zero(x: float) -> float:
        return 0.0 if np.isnan(x) else float(x)

    out = pb.CompareInferenceSetsResponse(
        frames=r.clips,
        baseline_accuracy=zero(r.baseline.overall.f1),
        candidate_accuracy=zero(r.candidate.overall.f1),
        improved=r.improved,
        regressed=r.regressed,
    )
    for c, b, k in zip(project.classes, r.baseline.class_wise, r.candidate.class_wise, strict=False):

        def metrics(m: Any, c: Any = c) -> pb.ClassMetrics:
            return pb.ClassMetrics(class_id=c.id, class_name=c.name, precision=zero(m.precision), recall=zero(m.recall),
                                   f1=zero(m.f1), support=m.nref, predicted=m.nsys)  # fmt: skip

        base, cand = metrics(b), metrics(k)
        out.per_class.add(class_id=c.id, class_name=c.name, baseline=base, candidate=cand,
                          precision_delta=cand.precision - base.precision, recall_delta=cand.recall - base.recall,
                          f1_delta=cand.f1 - base.f1)  # fmt: skip
    return out
