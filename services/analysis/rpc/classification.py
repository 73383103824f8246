"""Classification metrics: accuracy, per-class precision and recall, confusion and calibration."""

from __future__ import annotations

from shoal.analysis.classification import DEFAULT_BINS, PerClass, classification_report
from shoal.analysis.rpc.context import Analysis, Context, check_threshold
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data.query import VIEW_TABLES
from shoal.common.errors import InvalidArgument

MAX_BINS = 1000


def get_classification_metrics(
    ctx: Context, request: pb.GetClassificationMetricsRequest
) -> pb.GetClassificationMetricsResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    threshold = check_threshold(request.confidence_threshold, "confidence_threshold")
    if request.top_k < 0:
        raise InvalidArgument(f"must be >= 0, got {request.top_k}", field="top_k")
    if not 0 <= request.calibration_bins <= MAX_BINS:
        raise InvalidArgument(f"must lie in [0, {MAX_BINS}], got {request.calibration_bins}",
                              field="calibration_bins")  # fmt: skip
    project = ctx.classification_project(request.project)
    view = ctx.view(project, "", request.inference_set, threshold)
    bins = request.calibration_bins or DEFAULT_BINS
    flt = request.filter.SerializeToString(deterministic=True)
    key = ("classification_report", repr(view), flt, request.top_k, bins)
    report = ctx.answers.get(VIEW_TABLES, key, lambda: classification_report(
        ctx.metrics, view, request.filter, top_k=request.top_k, bins=bins))  # fmt: skip
    names = {c.id: c.name for c in project.classes}
    out = pb.ClassificationMetrics(
        inference_set=view.inference_set,
        dataset=view.dataset,
        frames=report.frames,
        abstained=report.abstained,
        confidence_threshold=threshold,
        accuracy=report.accuracy,
        top_k=report.top_k,
        top_k_accuracy=report.top_k_accuracy,
        macro_precision=report.macro[0],
        macro_recall=report.macro[1],
        macro_f1=report.macro[2],
        weighted_precision=report.weighted[0],
        weighted_recall=report.weighted[1],
        weighted_f1=report.weighted[2],
        expected_calibration_error=report.ece,
    )
    out.per_class.extend(class_metrics(c, names) for c in report.per_class)
    out.confusion.class_ids.extend(report.class_ids)
    out.confusion.counts.extend(report.confusion.ravel().tolist())
    out.confusion.omitted_classes = report.omitted_classes
    for b in report.bins:
        out.reliability.add(
            lower=b.lower, upper=b.upper, count=b.count, mean_confidence=b.mean_confidence, accuracy=b.accuracy
        )
    return pb.GetClassificationMetricsResponse(metrics=out)


def class_metrics(c: PerClass, names: dict[int, str]) -> pb.ClassMetrics:
    return pb.ClassMetrics(
        class_id=c.class_id,
        class_name=names.get(c.class_id, ""),
        precision=c.precision,
        recall=c.recall,
        f1=c.f1,
        support=c.support,
        predicted=c.predicted,
    )


ANALYSIS = Analysis("classification", rpcs={"GetClassificationMetrics": get_classification_metrics})
