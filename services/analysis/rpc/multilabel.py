"""Multi-label classification metrics: per class and averaged, at a score threshold."""

from __future__ import annotations

from shoal.analysis import multilabel
from shoal.analysis.rpc.context import Analysis, Context, check_threshold, frame_filter
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.errors import InvalidArgument


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


ANALYSIS = Analysis("multilabel", rpcs={"GetMultiLabelMetrics": get_multi_label_metrics})
