"""The analysis service: metrics, drill-down and data-quality analyses, long ones run as jobs."""

from __future__ import annotations

import math
from datetime import UTC
from typing import Any

from shoal.analysis.classification import DEFAULT_BINS, classification_report
from shoal.analysis.datapoints import Row, query_datapoints
from shoal.analysis.query import View
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.analysis.v1 import analysis_pb2_grpc
from shoal.common.convert import timestamp
from shoal.common.errors import FailedPrecondition, InvalidArgument
from shoal.common.jobs import JobStore
from shoal.common.jobs_rpc import JobRpcs
from shoal.common.server import ServiceSpec
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores
from shoal.common.stores.metrics import MetricsStore
from shoal.common.v1 import common_pb2
from shoal.ingest.catalog import ProjectCatalog
from shoal.ingest.datasets import DatasetCatalog

NAME = "analysis"
FULL_NAME = pb.DESCRIPTOR.services_by_name["AnalysisService"].full_name
MAX_BINS = 1000


def _threshold(value: float, field: str) -> float:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidArgument(f"must lie in [0, 1], got {value}", field=field)
    return value


class AnalysisServicer(JobRpcs, analysis_pb2_grpc.AnalysisServiceServicer):
    GetJobResponse: Any = pb.GetJobResponse
    ListJobsResponse: Any = pb.ListJobsResponse
    CancelJobResponse: Any = pb.CancelJobResponse

    def __init__(self, jobs: JobStore, metrics: MetricsStore) -> None:
        self.jobs = jobs
        self.metrics = metrics
        self.projects = ProjectCatalog(metrics)
        self.datasets = DatasetCatalog(metrics, self.projects)

    def _view(self, project: str, dataset: str, inference_set: str, threshold: float) -> View:
        p = self.projects.get(project)
        if inference_set:
            s = self.datasets.get_inference_set(project, inference_set)
            if dataset and dataset != s.dataset:
                raise InvalidArgument(
                    f"inference set {inference_set!r} belongs to dataset {s.dataset!r}, not {dataset!r}",
                    field="dataset",
                )
            dataset = s.dataset
        elif not dataset:
            raise InvalidArgument("give a dataset or an inference set", field="dataset")
        else:
            self.datasets.get(project, dataset)
        return View(
            project=project,
            dataset=dataset,
            inference_set=inference_set,
            ontology=tuple(c.id for c in p.classes),
            class_names={c.name: c.id for c in p.classes},
            confidence_threshold=threshold,
        )

    def GetClassificationMetrics(
        self, request: pb.GetClassificationMetricsRequest, context: Any
    ) -> pb.GetClassificationMetricsResponse:
        if not request.inference_set:
            raise InvalidArgument("is empty", field="inference_set")
        threshold = _threshold(request.confidence_threshold, "confidence_threshold")
        if request.top_k < 0:
            raise InvalidArgument(f"must be >= 0, got {request.top_k}", field="top_k")
        if not 0 <= request.calibration_bins <= MAX_BINS:
            raise InvalidArgument(f"must lie in [0, {MAX_BINS}], got {request.calibration_bins}",
                                  field="calibration_bins")  # fmt: skip
        project = self.projects.get(request.project)
        if project.task_type != "CLASSIFICATION":
            raise FailedPrecondition(
                f"project {project.name!r} is {project.task_type}, not a classification project",
                field="project",
            )
        view = self._view(request.project, "", request.inference_set, threshold)
        report = classification_report(
            self.metrics,
            view,
            request.filter,
            top_k=request.top_k,
            bins=request.calibration_bins or DEFAULT_BINS,
        )
        names = {c.id: c.name for c in project.classes}
        k = len(report.class_ids)
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
        for c in report.per_class:
            out.per_class.add(
                class_id=c.class_id,
                class_name=names.get(c.class_id, ""),
                precision=c.precision,
                recall=c.recall,
                f1=c.f1,
                support=c.support,
                predicted=c.predicted,
            )
        out.confusion.class_ids.extend(report.class_ids)
        out.confusion.counts.extend(int(x) for x in report.confusion.reshape(k * (k + 1)))
        for b in report.bins:
            out.reliability.add(
                lower=b.lower, upper=b.upper, count=b.count, mean_confidence=b.mean_confidence, accuracy=b.accuracy
            )
        return pb.GetClassificationMetricsResponse(metrics=out)

    def QueryDatapoints(self, request: pb.QueryDatapointsRequest, context: Any) -> pb.QueryDatapointsResponse:
        threshold = _threshold(request.confidence_threshold, "confidence_threshold")
        view = self._view(request.project, request.dataset, request.inference_set, threshold)
        scoped = pb.QueryDatapointsRequest()
        scoped.CopyFrom(request)
        scoped.ClearField("page")
        scope = scoped.SerializeToString(deterministic=True).hex()
        page = query_datapoints(
            self.metrics,
            view,
            request.filter,
            list(request.sort),
            request.page.page_size,
            request.page.page_token,
            scope=scope,
        )
        return pb.QueryDatapointsResponse(
            datapoints=[_datapoint(view.dataset, r) for r in page.rows],
            page=common_pb2.PageResponse(next_page_token=page.next_token, total_count=page.total),
        )


def _datapoint(dataset: str, r: Row) -> pb.Datapoint:
    d = pb.Datapoint(split=r.split, media_uri=r.media_uri)
    d.ref.dataset = dataset
    d.ref.frame_id = r.frame_id
    if r.label_class is not None:
        d.label_class = r.label_class
    if r.predicted_class is not None:
        d.predicted_class = r.predicted_class
    if r.confidence is not None:
        d.confidence = r.confidence
    if r.loss is not None:
        d.loss = r.loss
    if r.margin is not None:
        d.margin = r.margin
    d.class_probabilities.extend(r.probabilities)
    for key, (kind, value) in r.metadata.items():
        v = d.metadata[key]
        if kind == "string":
            v.string_value = value
        elif kind == "number":
            v.number_value = value
        elif kind == "bool":
            v.bool_value = bool(value)
        else:
            v.timestamp_value.CopyFrom(timestamp(value if value.tzinfo else value.replace(tzinfo=UTC)))
    return d


def create_service(settings: ShoalSettings, stores: Stores) -> ServiceSpec:
    servicer = AnalysisServicer(JobStore(stores.metrics, service=NAME), stores.metrics)
    return ServiceSpec(
        name=NAME,
        full_name=FULL_NAME,
        register=lambda server: analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(servicer, server),
        stores=("metrics", "vectors"),
    )
