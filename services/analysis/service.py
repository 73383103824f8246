"""The analysis service: metrics, drill-down and data-quality analyses, long ones run as jobs."""

from __future__ import annotations

import dataclasses
import logging
import math
from datetime import UTC, datetime
from typing import Any

from shoal.analysis import (
    detection,
    detection_issues,
    dismissals,
    drift,
    embedding_map,
    failure_clusters,
    label_issues,
    neighbors,
)
from shoal.analysis.classification import DEFAULT_BINS, PerClass, classification_report
from shoal.analysis.compare import compare
from shoal.analysis.datapoints import FrameObject, Row, query_datapoints
from shoal.analysis.detection import (
    MATCH_TIE_BREAK,
    ORDERS,
    MatchQuery,
    compare_detection,
    detection_confusion,
    detection_report,
    match_details,
    outcome_frames,
    query_matches,
    summarize_confusion,
)
from shoal.analysis.gates import evaluate_gates
from shoal.analysis.slices import DEFAULT_LEVEL, DEFAULT_MIN_SUPPORT, SliceStats, slices
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.analysis.v1 import analysis_pb2_grpc
from shoal.common.convert import job_to_proto, page_of, page_response, timestamp
from shoal.common.data import segments as seg_store
from shoal.common.data.datasets import MIGRATIONS as DATASET_MIGRATIONS
from shoal.common.data.datasets import DatasetCatalog, frame_media
from shoal.common.data.evaluations import MIGRATIONS as EVALUATION_MIGRATIONS
from shoal.common.data.evaluations import frame_rows_set
from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
from shoal.common.data.outcomes import MIGRATIONS as OUTCOME_MIGRATIONS
from shoal.common.data.outcomes import iou_key
from shoal.common.data.projects import MIGRATIONS as PROJECT_MIGRATIONS
from shoal.common.data.projects import Project, ProjectCatalog
from shoal.common.data.query import (
    Params,
    Sort,
    View,
    compile_filter,
    decode_cursor,
    encode_cursor,
    metadata_key,
    view_sql,
)
from shoal.common.data.results import MIGRATIONS as RESULT_MIGRATIONS
from shoal.common.errors import AlreadyExists, Datapoint, FailedPrecondition, InvalidArgument, NotFound
from shoal.common.jobs import SUCCEEDED, Job, JobContext, JobKind, JobRunner, JobStore
from shoal.common.jobs_rpc import JobRpcs
from shoal.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from shoal.common.server import ServiceSpec
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores
from shoal.common.stores.metrics import MetricsStore
from shoal.common.stores.vectors import VectorStore
from shoal.common.timeutil import as_utc, time_in_range
from shoal.common.v1 import common_pb2

log = logging.getLogger(__name__)

NAME = "analysis"
FULL_NAME = pb.DESCRIPTOR.services_by_name["AnalysisService"].full_name
MAX_BINS = 1000
MAX_NEIGHBORS = 100
#: fields of a detection drill-down's frame filter (besides metadata.<key>)
FRAME_FIELDS = ("frame_id", "split", "media_type", "capture_time", "segment")


def _threshold(value: float, field: str) -> float:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidArgument(f"must lie in [0, 1], got {value}", field=field)
    return value


class AnalysisServicer(JobRpcs, analysis_pb2_grpc.AnalysisServiceServicer):
    GetJobResponse: Any = pb.GetJobResponse
    ListJobsResponse: Any = pb.ListJobsResponse
    CancelJobResponse: Any = pb.CancelJobResponse

    runner: JobRunner

    def __init__(self, jobs: JobStore, metrics: MetricsStore, vectors: VectorStore) -> None:
        self.jobs = jobs
        self.metrics = metrics
        self.vectors = vectors
        self.projects = ProjectCatalog(metrics)
        self.datasets = DatasetCatalog(metrics, self.projects)
        self.segments = seg_store.SegmentStore(metrics)

    def _project(self, name: str, task_type: str) -> Project:
        """The project, which must be of ``task_type`` for the metrics asked."""
        project = self.projects.get(name)
        if project.task_type != task_type:
            what = {"CLASSIFICATION": "a classification", "OBJECT_DETECTION_2D": "a 2-D detection"}[task_type]
            raise FailedPrecondition(f"project {project.name!r} is {project.task_type}, not {what} project",
                                     field="project")  # fmt: skip
        return project

    def _classification_project(self, name: str) -> Project:
        return self._project(name, "CLASSIFICATION")

    def _detection_project(self, name: str) -> Project:
        return self._project(name, "OBJECT_DETECTION_2D")

    def _view(self, p: Project, dataset: str, inference_set: str, threshold: float, baseline: str = "") -> View:
        """What a request reads, for project ``p`` (loaded once by the caller)."""
        project = p.name
        frames_from = ""
        if inference_set:
            s = self.datasets.get_inference_set(project, inference_set)
            if dataset and dataset != s.dataset:
                raise InvalidArgument(
                    f"inference set {inference_set!r} belongs to dataset {s.dataset!r}, not {dataset!r}",
                    field="dataset",
                )
            dataset = s.dataset
            if baseline:
                self.datasets.get_inference_set(project, baseline, dataset=dataset, field="baseline_inference_set")
        elif not dataset:
            raise InvalidArgument("give a dataset or an inference set", field="dataset")
        else:
            self.datasets.get(project, dataset)
            frames_from = frame_rows_set(self.metrics, project, dataset)
        return View(
            project=project,
            dataset=dataset,
            inference_set=inference_set,
            ontology=tuple(c.id for c in p.classes),
            class_names={c.name: c.id for c in p.classes},
            confidence_threshold=threshold,
            baseline_inference_set=baseline,
            frames_from=frames_from,
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
        project = self._classification_project(request.project)
        view = self._view(project, "", request.inference_set, threshold)
        report = classification_report(
            self.metrics,
            view,
            request.filter,
            top_k=request.top_k,
            bins=request.calibration_bins or DEFAULT_BINS,
        )
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
        out.per_class.extend(_class_metrics(c, names) for c in report.per_class)
        out.confusion.class_ids.extend(report.class_ids)
        out.confusion.counts.extend(report.confusion.ravel().tolist())
        out.confusion.omitted_classes = report.omitted_classes
        for b in report.bins:
            out.reliability.add(
                lower=b.lower, upper=b.upper, count=b.count, mean_confidence=b.mean_confidence, accuracy=b.accuracy
            )
        return pb.GetClassificationMetricsResponse(metrics=out)

    def QueryDatapoints(self, request: pb.QueryDatapointsRequest, context: Any) -> pb.QueryDatapointsResponse:
        threshold = _threshold(request.confidence_threshold, "confidence_threshold")
        if request.baseline_inference_set and not request.inference_set:
            raise InvalidArgument("a baseline needs an inference set to compare with", field="inference_set")
        view = self._view(
            self.projects.get(request.project),
            request.dataset,
            request.inference_set,
            threshold,
            request.baseline_inference_set,
        )
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
            include_objects=request.include_objects,
        )
        return pb.QueryDatapointsResponse(
            datapoints=[_datapoint(view.dataset, r) for r in page.rows],
            page=common_pb2.PageResponse(next_page_token=page.next_token, total_count=page.total),
        )

    def GetDetectionMetrics(
        self, request: pb.GetDetectionMetricsRequest, context: Any
    ) -> pb.GetDetectionMetricsResponse:
        if not request.inference_set:
            raise InvalidArgument("is empty", field="inference_set")
        project = self._detection_project(request.project)
        s = self.datasets.get_inference_set(request.project, request.inference_set)
        report = detection_report(self.metrics, request.project, s.dataset, s.name, [c.id for c in project.classes])
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
            ap_small=st["AP_small"],
            ap_medium=st["AP_medium"],
            ap_large=st["AP_large"],
            ar1=st["AR1"],
            ar10=st["AR10"],
            ar100=st["AR100"],
            ar_small=st["AR_small"],
            ar_medium=st["AR_medium"],
            ar_large=st["AR_large"],
        )
        for c in project.classes:
            pc = report.result.per_class[c.id]
            out.per_class.add(
                class_id=c.id,
                class_name=c.name,
                ap=pc["AP"],
                ap50=pc["AP50"],
                ap75=pc["AP75"],
                ar100=pc["AR100"],
                ground_truth=report.gt_per_class.get(c.id, 0),
                predicted=report.dt_per_class.get(c.id, 0),
            )
        return pb.GetDetectionMetricsResponse(metrics=out)

    def _iou(self, value: float, field: str) -> float:
        iou = value or 0.5
        if not (math.isfinite(iou) and 0.0 < iou <= 1.0):
            raise InvalidArgument(f"must lie in (0, 1], got {iou}", field=field)
        if abs(iou * 100 - round(iou * 100)) > 1e-9:
            raise InvalidArgument(f"must be given in hundredths (0.5, 0.75, ...), got {iou}", field=field)
        return iou_key(iou)

    def GetDetectionConfusion(
        self, request: pb.GetDetectionConfusionRequest, context: Any
    ) -> pb.GetDetectionConfusionResponse:
        if not request.inference_set:
            raise InvalidArgument("is empty", field="inference_set")
        iou = self._iou(request.iou_threshold, "iou_threshold")
        threshold = _threshold(request.confidence_threshold, "confidence_threshold")
        project = self._detection_project(request.project)
        s = self.datasets.get_inference_set(request.project, request.inference_set)
        run = detection_confusion(
            self.metrics, request.project, s.dataset, s.name, [c.id for c in project.classes],
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

    def QueryDetectionMatches(
        self, request: pb.QueryDetectionMatchesRequest, context: Any
    ) -> pb.QueryDetectionMatchesResponse:
        if not request.inference_set:
            raise InvalidArgument("is empty", field="inference_set")
        iou = self._iou(request.iou_threshold, "iou_threshold")
        threshold = _threshold(request.confidence_threshold, "confidence_threshold")
        label = None if request.any_label_class else (request.label_class if request.HasField("label_class") else -1)
        predicted = (
            None
            if request.any_predicted_class
            else (request.predicted_class if request.HasField("predicted_class") else -1)
        )
        if label == -1 and predicted == -1:
            raise InvalidArgument("the false-positive row and the missed column do not meet", field="label_class")
        ranges = {}
        for name in ("min_score", "max_score", "min_iou", "max_iou"):
            if request.HasField(name):
                ranges[name] = _threshold(getattr(request, name), name)
        if request.order not in ORDERS:
            raise InvalidArgument(f"unknown order {request.order}", field="order")
        if request.change not in ("", "improved", "regressed"):
            raise InvalidArgument(f"'improved' or 'regressed', not {request.change!r}", field="change")
        if bool(request.change) != bool(request.baseline_inference_set):
            field = "baseline_inference_set" if request.change else "change"
            raise InvalidArgument("change and baseline_inference_set go together", field=field)
        project = self._detection_project(request.project)
        view = self._view(project, "", request.inference_set, 0.0, request.baseline_inference_set)
        frames_sql, frames_params = _frames(view, request.frame_filter, "frame_filter")
        if request.object_segment:
            seg = self.segments.get(project.name, request.object_segment)
            if seg.dataset != view.dataset:
                raise InvalidArgument(f"segment {seg.name!r} is of dataset {seg.dataset!r}, not {view.dataset!r}",
                                      field="object_segment")  # fmt: skip
        q = MatchQuery(view.inference_set, iou, threshold, label, predicted, order=request.order,
                       baseline_inference_set=request.baseline_inference_set, change=request.change,
                       object_segment=request.object_segment, **ranges)  # fmt: skip
        if request.page.page_size < 0:
            raise InvalidArgument(f"must be >= 0, got {request.page.page_size}", field="page.page_size")
        size = min(request.page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        scope = f"matches|{request.project}|{q}|{request.frame_filter.SerializeToString().hex()}"
        sorts = [*ORDERS[request.order], *MATCH_TIE_BREAK]
        last = decode_cursor(request.page.page_token, sorts, scope)
        rows, total, next_last = query_matches(self.metrics, request.project, view.dataset, q, size, last,
                                               frames_sql, frames_params)  # fmt: skip
        token = encode_cursor(next_last, scope) if next_last is not None else ""
        out = pb.QueryDetectionMatchesResponse(page=common_pb2.PageResponse(next_page_token=token, total_count=total))
        details = match_details(self.metrics, project.name, view.dataset, view.inference_set, [r[0] for r in rows])
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
        return out

    # -- label issues ---------------------------------------------------------------------------
    def StartLabelIssues(self, request: pb.StartLabelIssuesRequest, context: Any) -> pb.StartLabelIssuesResponse:
        if not request.inference_set:
            raise InvalidArgument("is empty", field="inference_set")
        project = self.projects.get(request.project)
        kind = label_issues.KIND
        if project.task_type == "OBJECT_DETECTION_2D":
            view = self._view(project, "", request.inference_set, 0.0)
            _frames(view, request.filter, "filter")  # a bad filter fails now, not in the job
            kind = detection_issues.KIND
        else:
            view = self._view(self._classification_project(request.project), "", request.inference_set, 0.0)
            compile_filter(request.filter, view, Params())  # a bad filter fails now, not in the job
            if len(view.ontology) > label_issues.MAX_CLASSES:
                raise FailedPrecondition(
                    f"project {project.name!r} has {len(view.ontology):,} classes; label issues keep class-by-class "
                    f"matrices and take at most {label_issues.MAX_CLASSES:,}",
                    field="project",
                )
        params = {"inference_set": view.inference_set, "filter": request.filter.SerializeToString().hex()}
        job = self.runner.submit(request.project, kind, params, rerun=request.rerun)
        return pb.StartLabelIssuesResponse(job=job_to_proto(job))

    def run_label_issues(self, ctx: JobContext) -> None:
        job = ctx.job
        view = self._view(self._classification_project(job.project), "", job.params["inference_set"], 0.0)
        flt = common_pb2.Filter.FromString(bytes.fromhex(job.params.get("filter", "")))
        label_issues.find_label_issues(ctx, self.metrics, view, flt, job)

    def QueryLabelIssues(self, request: pb.QueryLabelIssuesRequest, context: Any) -> pb.QueryLabelIssuesResponse:
        job = self.finished_job(request.project, request.job_id, label_issues.KIND)
        if request.order not in label_issues.ORDERS:
            raise InvalidArgument(f"unknown order {request.order}", field="order")
        summary = self.stored_summary(label_issues, job)
        scope = (f"label-issues|{request.project}|{job.job_id}|{request.all_frames}|{request.order}"
                 f"|{request.include_dismissed}")  # fmt: skip
        page = page_of(request.page, scope=scope)
        dataset = self.datasets.get_inference_set(request.project, job.params["inference_set"]).dataset
        rows, total, dismissed = label_issues.query_issues(self.metrics, request.project, job.job_id, dataset=dataset,
                                                           all_frames=request.all_frames,
                                                           include_dismissed=request.include_dismissed,
                                                           order=request.order, offset=page.offset,
                                                           size=page.size)  # fmt: skip
        media = frame_media(self.metrics, request.project, dataset, [r[0] for r in rows])
        near: dict[str, tuple[Any, Any]] = {}
        if request.neighbor_job_id:
            nj = self.finished_job(request.project, request.neighbor_job_id, neighbors.KIND)
            if nj.params["dataset"] != dataset:
                raise InvalidArgument(f"neighbour job {nj.job_id} is of dataset {nj.params['dataset']!r},"
                                      f" not {dataset!r}", field="neighbor_job_id")  # fmt: skip
            near = neighbors.neighbor_labels(self.metrics, request.project, nj.job_id, [r[0] for r in rows])
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

    def run_detection_label_issues(self, ctx: JobContext) -> None:
        job = ctx.job
        view = self._view(self._detection_project(job.project), "", job.params["inference_set"], 0.0)
        flt = common_pb2.Filter.FromString(bytes.fromhex(job.params.get("filter", "")))
        frames_sql, frames_params = _frames(view, flt, "filter")
        detection_issues.find_detection_issues(ctx, self.metrics, job, dataset=view.dataset,
                                               inference_set=view.inference_set, frames_sql=frames_sql,
                                               frames_params=frames_params)  # fmt: skip

    def QueryDetectionLabelIssues(
        self, request: pb.QueryDetectionLabelIssuesRequest, context: Any
    ) -> pb.QueryDetectionLabelIssuesResponse:
        job = self.finished_job(request.project, request.job_id, detection_issues.KIND)
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
        s = self.stored_summary(detection_issues, job)
        summary = pb.DetectionIssuesSummary(
            frames=s.frames, labeled_objects=s.labeled_objects, predicted_objects=s.predicted_objects,
            flagged_frames=s.flagged_frames, missing_labels=s.issues["missing_label"],
            spurious_labels=s.issues["spurious_label"], mislocalized=s.issues["mislocalized"],
            class_swaps=s.issues["class_swap"], missing_label_threshold=s.thresholds["missing_label"],
            spurious_label_threshold=s.thresholds["spurious_label"],
            mislocalized_threshold=s.thresholds["mislocalized"], class_swap_threshold=s.thresholds["class_swap"],
            match_iou=s.match_iou,
        )  # fmt: skip
        scope = (f"detection-label-issues|{request.project}|{job.job_id}|{request.level}|{sorted(types)}"
                 f"|{request.include_unflagged}|{request.order}|{request.include_dismissed}")  # fmt: skip
        page = page_of(request.page, scope=scope)
        inference_set = job.params["inference_set"]
        dataset = self.datasets.get_inference_set(request.project, inference_set).dataset
        query = detection_issues.query_frames if frames else detection_issues.query_objects
        rows, total, dismissed = query(self.metrics, request.project, job.job_id, dataset=dataset, types=types,
                                       include_unflagged=request.include_unflagged,
                                       include_dismissed=request.include_dismissed, order=request.order,
                                       offset=page.offset, size=page.size)  # fmt: skip
        out = pb.QueryDetectionLabelIssuesResponse(summary=summary,
                                                   page=page_response(page, len(rows), total, scope=scope),
                                                   dismissed_count=dismissed)  # fmt: skip
        if frames:
            media = frame_media(self.metrics, request.project, dataset, [r[0] for r in rows])
            for frame, score, is_issue, worst, objects, missing, spurious, misplaced, swapped, is_dismissed in rows:
                out.frames.add(ref=common_pb2.DatapointRef(dataset=dataset, frame_id=frame),
                               media_uri=media.get(frame, ("", ""))[0], score=float(score), is_issue=bool(is_issue),
                               worst_type=int(worst), objects=int(objects), missing_labels=int(missing),
                               spurious_labels=int(spurious), mislocalized=int(misplaced),
                               class_swaps=int(swapped), dismissed=bool(is_dismissed))  # fmt: skip
            return out
        details = match_details(self.metrics, request.project, dataset, inference_set, [r[0] for r in rows])
        for frame, obj, predicted, kind, score, is_issue, given, suggested, partner, iou, conf, is_dismissed in rows:
            item = out.objects.add(ref=common_pb2.DatapointRef(dataset=dataset, frame_id=frame, object_id=obj),
                                   media_uri=details.frames.get(frame, ("", ""))[0], issue_type=int(kind),
                                   score=float(score), is_issue=bool(is_issue), predicted=bool(predicted),
                                   partner_object_id=partner, iou=float(iou), confidence=float(conf),
                                   dismissed=bool(is_dismissed))  # fmt: skip
            if given >= 0:
                item.given_class = int(given)
            if suggested >= 0:
                item.suggested_class = int(suggested)
            label_id, predicted_id = (partner, obj) if predicted else (obj, partner)
            for box, boxes, key in ((item.label_box, details.label_boxes, label_id),
                                    (item.predicted_box, details.predicted_boxes, predicted_id)):  # fmt: skip
                if key and (frame, key) in boxes:
                    box.x, box.y, box.width, box.height = boxes[(frame, key)]
        return out

    def _label_issues_job(self, project: str, job_id: str) -> Job:
        """A finished label-issues job, classification or detection."""
        self.projects.get(project)
        if not job_id:
            raise InvalidArgument("is empty", field="job_id")
        job = self.jobs.find(project, job_id)
        if job is None:
            raise NotFound(f"project {project!r} has no analysis job {job_id!r}", field="job_id")
        if job.kind not in (label_issues.KIND, detection_issues.KIND):
            raise InvalidArgument(f"job {job.job_id} is a {job.kind} job, not a label-issues job (StartLabelIssues)",
                                  field="job_id")  # fmt: skip
        return self.finished_job(project, job_id, job.kind)

    def DismissLabelIssues(self, request: pb.DismissLabelIssuesRequest, context: Any) -> pb.DismissLabelIssuesResponse:
        job = self._label_issues_job(request.project, request.job_id)
        frames = list(dict.fromkeys(request.frame_ids))
        objects = list(dict.fromkeys((o.frame_id, o.object_id) for o in request.objects))
        is_detection = job.kind == detection_issues.KIND
        if not frames and not objects:
            raise InvalidArgument("name the frames (or, in a detection job, the objects) whose issues to "
                                  + ("restore" if request.restore else "dismiss"), field="frame_ids")  # fmt: skip
        if objects and not is_detection:
            raise InvalidArgument(f"job {job.job_id} judges classification labels, whole frames: name frame_ids",
                                  field="objects")  # fmt: skip
        for i, f in enumerate(request.frame_ids):
            if not f:
                raise InvalidArgument("is empty", field=f"frame_ids[{i}]")
        for i, o in enumerate(request.objects):
            for name in ("frame_id", "object_id"):
                if not getattr(o, name):
                    raise InvalidArgument("is empty", field=f"objects[{i}].{name}")
        dataset = self.datasets.get_inference_set(request.project, job.params["inference_set"]).dataset
        if is_detection:
            seen, seen_objects = detection_issues.scored(self.metrics, request.project, job.job_id, frames, objects)
        else:
            seen, seen_objects = label_issues.examined(self.metrics, request.project, job.job_id, frames), set()
        for i, f in enumerate(request.frame_ids):
            if f not in seen:
                raise InvalidArgument(f"is not a frame that job {job.job_id} examined (a labeled frame of its dataset)",
                                      field=f"frame_ids[{i}]", datapoint=Datapoint(dataset, f))  # fmt: skip
        for i, o in enumerate(request.objects):
            if (o.frame_id, o.object_id) not in seen_objects:
                where = Datapoint(dataset, o.frame_id, o.object_id)
                raise InvalidArgument(f"is not an object that job {job.job_id} scored", field=f"objects[{i}]",
                                      datapoint=where)  # fmt: skip
        dismissals.record(self.metrics, request.project, dataset, [(f, "") for f in frames] + objects,
                          dismissed=not request.restore, job_id=job.job_id, reason=request.reason,
                          dismissed_by=request.dismissed_by)  # fmt: skip
        log.info("%s %d frames and %d objects of dataset %r (project %r, job %s)",
                 "restored" if request.restore else "dismissed", len(frames), len(objects), dataset, request.project,
                 job.job_id)  # fmt: skip
        return pb.DismissLabelIssuesResponse(dataset=dataset, frames=len(frames), objects=len(objects))

    # -- neighbours: outliers, duplicates, leakage ----------------------------------------------
    def StartNeighborAnalysis(
        self, request: pb.StartNeighborAnalysisRequest, context: Any
    ) -> pb.StartNeighborAnalysisResponse:
        self._space(request.project, request.dataset, request.embedding_space)
        if not 0 <= request.k <= MAX_NEIGHBORS:
            raise InvalidArgument(f"must lie in [0, {MAX_NEIGHBORS}], got {request.k}", field="k")
        if not (math.isfinite(request.duplicate_distance) and request.duplicate_distance >= 0):
            raise InvalidArgument(f"must be >= 0, got {request.duplicate_distance}", field="duplicate_distance")
        params = {
            "dataset": request.dataset,
            "embedding_space": request.embedding_space,
            "k": str(request.k or neighbors.DEFAULT_K),
            "duplicate_distance": repr(request.duplicate_distance),
        }
        job = self.runner.submit(request.project, neighbors.KIND, params, rerun=request.rerun)
        return pb.StartNeighborAnalysisResponse(job=job_to_proto(job))

    def _space(self, project_name: str, dataset: str, space_name: str) -> Any:
        """The embedding space of a job on ``dataset`` (both must exist)."""
        project = self.projects.get(project_name)
        if not dataset:
            raise InvalidArgument("is empty", field="dataset")
        self.datasets.get(project_name, dataset)
        spaces = {s.name: s for s in project.embedding_spaces}
        if space_name not in spaces:
            known = ", ".join(sorted(spaces)) or "none"
            raise InvalidArgument(f"project {project.name!r} has no embedding space {space_name!r}"
                                  f" (it has: {known})", field="embedding_space")  # fmt: skip
        return spaces[space_name]

    def run_neighbors(self, ctx: JobContext) -> None:
        job = ctx.job
        space = self._space(job.project, job.params["dataset"], job.params["embedding_space"])
        neighbors.build(ctx, self.metrics, self.vectors, job, dataset=job.params["dataset"], space=space.name,
                        space_metric=space.metric, k=int(job.params["k"]),
                        duplicate_distance=float(job.params["duplicate_distance"]))  # fmt: skip

    # -- embedding map ----------------------------------------------------------------------------
    def StartEmbeddingMap(self, request: pb.StartEmbeddingMapRequest, context: Any) -> pb.StartEmbeddingMapResponse:
        self._space(request.project, request.dataset, request.embedding_space)
        if not 0 <= request.sample_size <= embedding_map.MAX_SAMPLE:
            raise InvalidArgument(f"must lie in [0, {embedding_map.MAX_SAMPLE}], got {request.sample_size}",
                                  field="sample_size")  # fmt: skip
        params = {
            "dataset": request.dataset,
            "embedding_space": request.embedding_space,
            "sample_size": str(request.sample_size or embedding_map.DEFAULT_SAMPLE),
        }
        job = self.runner.submit(request.project, embedding_map.KIND, params, rerun=request.rerun)
        return pb.StartEmbeddingMapResponse(job=job_to_proto(job))

    def run_embedding_map(self, ctx: JobContext) -> None:
        job = ctx.job
        space = self._space(job.project, job.params["dataset"], job.params["embedding_space"])
        embedding_map.build(ctx, self.metrics, self.vectors, job, dataset=job.params["dataset"], space=space.name,
                            space_metric=space.metric, sample=int(job.params["sample_size"]))  # fmt: skip

    def GetMapViewport(self, request: pb.GetMapViewportRequest, context: Any) -> pb.GetMapViewportResponse:
        job = self.finished_job(request.project, request.job_id, embedding_map.KIND)
        summary = self.stored_summary(embedding_map, job)
        corners = (request.min_x, request.min_y, request.max_x, request.max_y)
        if not all(math.isfinite(v) for v in corners):
            raise InvalidArgument("viewport corners must be finite", field="min_x")
        if request.min_x > request.max_x or request.min_y > request.max_y:
            raise InvalidArgument(f"min_x <= max_x and min_y <= max_y, got {corners}", field="min_x")
        if not 0 <= request.max_points <= embedding_map.MAX_POINTS:
            raise InvalidArgument(f"must lie in [0, {embedding_map.MAX_POINTS}], got {request.max_points}",
                                  field="max_points")  # fmt: skip
        box = None if not any(corners) else corners
        colours = self._map_colours(request, job.params["dataset"])
        points, total = embedding_map.viewport(self.metrics, request.project, job.job_id, box=box,
                                               max_points=request.max_points or embedding_map.DEFAULT_POINTS,
                                               colours=colours)  # fmt: skip
        out = pb.GetMapViewportResponse(summary=pb.MapSummary(**summary.__dict__), total_in_viewport=total)
        for point in points:
            p = out.points.add(frame_id=point.frame_id, x=point.x, y=point.y, split=point.split,
                               label_issue=point.label_issue)  # fmt: skip
            for name in ("label_class", "predicted_class", "correct", "self_confidence"):
                if (value := getattr(point, name)) is not None:
                    setattr(p, name, value)
            if point.metadata is not None:
                _set_value(p.metadata_value, *point.metadata)
        return out

    def _map_colours(self, request: pb.GetMapViewportRequest, dataset: str) -> embedding_map.Colours | None:
        """What a viewport's points are to carry besides label and split (None: nothing), checked
        against the map's dataset."""
        if not (request.inference_set or request.label_issue_job_id or request.metadata_key):
            return None
        predictions = None
        if request.inference_set:
            self.datasets.get_inference_set(request.project, request.inference_set, dataset=dataset)
            predictions = self._view(self.projects.get(request.project), dataset, request.inference_set, 0.0)
        issues = None
        if request.label_issue_job_id:
            issues = self._label_issues_job_of(request.project, request.label_issue_job_id, dataset,
                                               "label_issue_job_id")  # fmt: skip
        key = metadata_key(request.metadata_key, "metadata_key") if request.metadata_key else ""
        return embedding_map.Colours(dataset=dataset, predictions=predictions,
                                     issues_job_id=issues.job_id if issues else "",
                                     detection=issues is not None and issues.kind == detection_issues.KIND,
                                     metadata_key=key)  # fmt: skip

    def _label_issues_job_of(self, project: str, job_id: str, dataset: str, field: str) -> Job:
        """A finished label-issues job (classification or detection) of ``dataset``; errors name ``field``."""
        job = self.jobs.find(project, job_id)
        if job is None:
            raise NotFound(f"project {project!r} has no analysis job {job_id!r}", field=field)
        if job.kind not in (label_issues.KIND, detection_issues.KIND):
            raise InvalidArgument(f"job {job.job_id} is a {job.kind} job, not a label-issues job (StartLabelIssues)",
                                  field=field)  # fmt: skip
        if job.state != SUCCEEDED:
            raise FailedPrecondition(f"job {job.job_id} is {job.state} ({job.stage}, {job.progress:.0%}); the map is"
                                     " coloured by a label-issues job that has succeeded", field=field)  # fmt: skip
        of = self.datasets.get_inference_set(project, job.params["inference_set"]).dataset
        if of != dataset:
            raise InvalidArgument(f"label-issues job {job.job_id} is of dataset {of!r}, not the map's dataset"
                                  f" {dataset!r}", field=field)  # fmt: skip
        return job

    def QueryMapRegion(self, request: pb.QueryMapRegionRequest, context: Any) -> pb.QueryMapRegionResponse:
        job = self.finished_job(request.project, request.job_id, embedding_map.KIND)
        polygon = embedding_map.check_polygon([(v.x, v.y) for v in request.polygon])
        if request.page.page_size < 0:
            raise InvalidArgument(f"must be >= 0, got {request.page.page_size}", field="page.page_size")
        size = min(request.page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        scope = f"map-region|{request.project}|{job.job_id}|{polygon!r}"
        last = decode_cursor(request.page.page_token, [Sort("frame_id", "string", False, False)], scope)
        ids, total = embedding_map.region(self.metrics, request.project, job.job_id, polygon,
                                          after=None if last is None else str(last[0]), size=size + 1)  # fmt: skip
        more, ids = len(ids) > size, ids[:size]
        token = encode_cursor([ids[-1]], scope) if more else ""
        page = common_pb2.PageResponse(next_page_token=token, total_count=total)
        return pb.QueryMapRegionResponse(dataset=job.params["dataset"], frame_ids=ids, page=page)

    # -- drift --------------------------------------------------------------------------------------
    def StartDrift(self, request: pb.StartDriftRequest, context: Any) -> pb.StartDriftResponse:
        params = {"embedding_space": request.embedding_space}
        for name in ("a", "b"):
            side = getattr(request, name)
            if not side.dataset:
                raise InvalidArgument("is empty", field=f"{name}.dataset")
            self._space(request.project, side.dataset, request.embedding_space)
            params[f"{name}.dataset"] = side.dataset
            for bound in ("since", "until"):
                if side.HasField(bound):
                    time_in_range(getattr(side, bound), f"{name}.{bound}")
                    params[f"{name}.{bound}"] = str(getattr(side, bound).ToMilliseconds())
            bounded = side.HasField("since") and side.HasField("until")
            if bounded and side.since.ToMilliseconds() >= side.until.ToMilliseconds():
                raise InvalidArgument("since must come before until", field=f"{name}.since")
        if not 0 <= request.k <= MAX_NEIGHBORS:
            raise InvalidArgument(f"must lie in [0, {MAX_NEIGHBORS}], got {request.k}", field="k")
        if not 0 <= request.sample_size <= embedding_map.MAX_SAMPLE:
            raise InvalidArgument(f"must lie in [0, {embedding_map.MAX_SAMPLE}], got {request.sample_size}",
                                  field="sample_size")  # fmt: skip
        params["k"] = str(request.k or drift.DEFAULT_K)
        params["sample_size"] = str(request.sample_size or drift.DEFAULT_SAMPLE)
        job = self.runner.submit(request.project, drift.KIND, params, rerun=request.rerun)
        return pb.StartDriftResponse(job=job_to_proto(job))

    def run_drift(self, ctx: JobContext) -> None:
        job = ctx.job
        p = job.params
        space = self._space(job.project, p["a.dataset"], p["embedding_space"])

        def side(name: str) -> drift.Side:
            def at(bound: str) -> Any:
                ms = p.get(f"{name}.{bound}")
                return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, tz=UTC)

            return drift.Side(p[f"{name}.dataset"], at("since"), at("until"))

        drift.build(ctx, self.metrics, self.vectors, job, a=side("a"), b=side("b"), space=space.name,
                    space_metric=space.metric, k=int(p["k"]), sample=int(p["sample_size"]))  # fmt: skip

    def GetDrift(self, request: pb.GetDriftRequest, context: Any) -> pb.GetDriftResponse:
        job = self.finished_job(request.project, request.job_id, drift.KIND)
        s = self.stored_summary(drift, job)
        return pb.GetDriftResponse(
            frames_a=s.frames_a, frames_b=s.frames_b, k=s.k, metric=s.metric, statistic=s.statistic,
            expected=s.expected, p_value=s.p_value, z_score=s.z_score,
            regions=[pb.DriftRegion(**r.__dict__) for r in s.regions],
        )  # fmt: skip

    # -- failure clusters ---------------------------------------------------------------------------
    def StartFailureClusters(
        self, request: pb.StartFailureClustersRequest, context: Any
    ) -> pb.StartFailureClustersResponse:
        if not request.inference_set:
            raise InvalidArgument("is empty", field="inference_set")
        threshold = _threshold(request.confidence_threshold, "confidence_threshold")
        project = self.projects.get(request.project)
        view = self._view(project, "", request.inference_set, threshold)
        self._space(request.project, view.dataset, request.embedding_space)
        if project.task_type == "OBJECT_DETECTION_2D":
            _frames(view, request.filter, "filter")
            iou = self._iou(request.iou_threshold, "iou_threshold")
        else:
            compile_filter(request.filter, view, Params())  # a bad filter fails now, not in the job
            iou = 0.0
        if not 0 <= request.max_clusters <= failure_clusters.MAX_CLUSTERS:
            raise InvalidArgument(f"must lie in [0, {failure_clusters.MAX_CLUSTERS}], got {request.max_clusters}",
                                  field="max_clusters")  # fmt: skip
        if request.min_cluster_size < 0:
            raise InvalidArgument(f"must be >= 0, got {request.min_cluster_size}", field="min_cluster_size")
        params = {
            "inference_set": view.inference_set,
            "embedding_space": request.embedding_space,
            "filter": request.filter.SerializeToString().hex(),
            "confidence_threshold": repr(threshold),
            "iou_threshold": repr(iou),
            "max_clusters": str(request.max_clusters or failure_clusters.DEFAULT_MAX_CLUSTERS),
            "min_cluster_size": str(request.min_cluster_size or failure_clusters.DEFAULT_MIN_SIZE),
        }
        job = self.runner.submit(request.project, failure_clusters.KIND, params, rerun=request.rerun)
        return pb.StartFailureClustersResponse(job=job_to_proto(job))

    def run_failure_clusters(self, ctx: JobContext) -> None:
        job = ctx.job
        p = job.params
        project = self.projects.get(job.project)
        view = self._view(project, "", p["inference_set"], float(p["confidence_threshold"]))
        space = self._space(job.project, view.dataset, p["embedding_space"])
        flt = common_pb2.Filter.FromString(bytes.fromhex(p.get("filter", "")))
        if project.task_type == "OBJECT_DETECTION_2D":
            frames_sql, frames_params = _frames(view, flt, "filter")
            sql, params = detection.frame_errors_sql(
                self.metrics, project.name, view.dataset, view.inference_set,
                iou_threshold=float(p["iou_threshold"]), confidence_threshold=view.confidence_threshold,
                frames_sql=frames_sql, frames_params=frames_params,
            )  # fmt: skip
            sql = failure_clusters.detection_errors_sql(sql)
        else:
            sql, params = failure_clusters.classification_errors_sql(view, flt)
        failure_clusters.build(
            ctx, self.metrics, self.vectors, job, dataset=view.dataset, space=space.name, space_metric=space.metric,
            errors_sql=sql, errors_params=params, max_clusters=int(p["max_clusters"]),
            min_size=int(p["min_cluster_size"]), class_names={c.id: c.name for c in project.classes},
        )  # fmt: skip

    def GetFailureClusters(self, request: pb.GetFailureClustersRequest, context: Any) -> pb.GetFailureClustersResponse:
        job = self.finished_job(request.project, request.job_id, failure_clusters.KIND)
        s = self.stored_summary(failure_clusters, job)
        out = pb.GetFailureClustersResponse(
            summary=pb.FailureClusterSummary(
                frames=s.frames, errors=s.errors, error_rate=s.error_rate, clusters=len(s.clusters),
                clustered_errors=s.clustered_errors, metric=s.metric, frames_without_vectors=s.frames_without_vectors,
            )
        )  # fmt: skip
        for c in s.clusters:
            out.clusters.add(
                cluster=c.cluster, errors=c.errors, frames=c.frames, error_rate=c.error_rate, lift=c.lift,
                score=c.score, p_value=c.p_value, example_frame_ids=c.example_frame_ids, description=c.description,
                class_pairs=[pb.ClassPair(label_class=a, predicted_class=b, errors=n, share=share)
                             for a, b, n, share in c.class_pairs],
                values=[pb.OverRepresentedValue(field=f, value=v, errors=n, share=share, overall_share=q, lift=lift)
                        for f, v, n, share, q, lift in c.values],
            )  # fmt: skip
        return out

    def SaveFailureClusters(
        self, request: pb.SaveFailureClustersRequest, context: Any
    ) -> pb.SaveFailureClustersResponse:
        job = self.finished_job(request.project, request.job_id, failure_clusters.KIND)
        s = self.stored_summary(failure_clusters, job)
        known = {c.cluster: c for c in s.clusters}
        for i, number in enumerate(request.clusters):
            if number not in known:
                raise InvalidArgument(f"job {job.job_id} has no cluster {number} (it has {len(known)})",
                                      field=f"clusters[{i}]")  # fmt: skip
        if not request.name_prefix:
            raise InvalidArgument("is empty", field="name_prefix")
        chosen = [known[n] for n in dict.fromkeys(request.clusters)] if request.clusters else list(s.clusters)
        project = self.projects.get(request.project)
        dataset = self.datasets.get_inference_set(request.project, job.params["inference_set"]).dataset
        for c in chosen:  # every name is checked (and must be free) before any segment is written
            name = f"{request.name_prefix}{c.cluster}"
            if not seg_store.valid_name(name):
                raise InvalidArgument(f"{name!r} is not a valid segment name ([a-z0-9][a-z0-9_.-]{{0,62}})",
                                      field="name_prefix")  # fmt: skip
            if self.segments.find(request.project, name) is not None:
                raise AlreadyExists(f"segment {name!r} already exists", field="name_prefix")
        out = pb.SaveFailureClustersResponse()
        for c in chosen:
            frames = failure_clusters.cluster_frames(self.metrics, request.project, job.job_id, c.cluster,
                                                     include_correct=request.include_correct)  # fmt: skip
            step = seg_store.MAX_MEMBERS_PER_CALL
            created = self.segments.create(
                seg_store.Segment(
                    project=request.project, name=f"{request.name_prefix}{c.cluster}", dataset=dataset, kind="ISSUE",
                    reason=f"failure cluster {c.cluster} of job {job.job_id}: {c.description}",
                    author=request.author,
                ),
                project, frames[:step], [],
            )  # fmt: skip
            for start in range(step, len(frames), step):  # a large region in calls of the store's size
                created = self.segments.update(project, created.name, reason=None, gates=None,
                                               add=frames[start : start + step], remove=[])  # fmt: skip
            out.segments.append(_segment(created))
        return out

    def QueryOutliers(self, request: pb.QueryOutliersRequest, context: Any) -> pb.QueryOutliersResponse:
        job = self.finished_job(request.project, request.job_id, neighbors.KIND)
        if request.order not in neighbors.OUTLIER_ORDERS:
            raise InvalidArgument(f"unknown order {request.order}", field="order")
        summary = pb.NeighborSummary(**self.stored_summary(neighbors, job).__dict__)
        scope = f"outliers|{request.project}|{job.job_id}|{request.order}"
        page = page_of(request.page, scope=scope)
        rows, total = neighbors.query_outliers(self.metrics, request.project, job.job_id, order=request.order,
                                               offset=page.offset, size=page.size)  # fmt: skip
        dataset = job.params["dataset"]
        media = frame_media(self.metrics, request.project, dataset, [r[0] for r in rows])
        out = pb.QueryOutliersResponse(summary=summary, page=page_response(page, len(rows), total, scope=scope))
        for frame, split, label, score, nearest, major, disagree, dups, near_ids, near_d, class_score in rows:
            f = out.frames.add(ref=common_pb2.DatapointRef(dataset=dataset, frame_id=frame),
                               media_uri=media.get(frame, ("", ""))[0], split=split, outlier_score=float(score),
                               nearest_distance=float(nearest), duplicates=int(dups))  # fmt: skip
            if label is not None:
                f.label_class = int(label)
            if major is not None:
                f.neighbor_label = int(major)
            if disagree is not None:
                f.label_disagreement = float(disagree)
            if class_score is not None:
                f.class_outlier_score = float(class_score)
            for nid, d in zip(near_ids or [], near_d or [], strict=True):
                f.neighbors.add(frame_id=nid, distance=float(d))
        return out

    def QueryDuplicates(self, request: pb.QueryDuplicatesRequest, context: Any) -> pb.QueryDuplicatesResponse:
        job = self.finished_job(request.project, request.job_id, neighbors.KIND)
        summary = pb.NeighborSummary(**self.stored_summary(neighbors, job).__dict__)
        scope = f"duplicates|{request.project}|{job.job_id}|{request.cross_split_only}"
        page = page_of(request.page, scope=scope)
        rows, total = neighbors.query_duplicates(self.metrics, request.project, job.job_id,
                                                 cross_split_only=request.cross_split_only, offset=page.offset,
                                                 size=page.size)  # fmt: skip
        dataset = job.params["dataset"]
        out = pb.QueryDuplicatesResponse(summary=summary, page=page_response(page, len(rows), total, scope=scope))
        for a, b, d, split_a, split_b, exact in rows:
            out.pairs.add(a=common_pb2.DatapointRef(dataset=dataset, frame_id=a),
                          b=common_pb2.DatapointRef(dataset=dataset, frame_id=b), distance=float(d),
                          exact=bool(exact), split_a=split_a, split_b=split_b)  # fmt: skip
        return out

    def GetSlices(self, request: pb.GetSlicesRequest, context: Any) -> pb.GetSlicesResponse:
        if not request.inference_set:
            raise InvalidArgument("is empty", field="inference_set")
        if request.min_support < 0:
            raise InvalidArgument(f"must be >= 0, got {request.min_support}", field="min_support")
        threshold = _threshold(request.confidence_threshold, "confidence_threshold")
        project = self.projects.get(request.project)
        is_detection = project.task_type == "OBJECT_DETECTION_2D"
        if is_detection:
            _check_frame_fields(request.filter, "filter")
        else:
            project = self._classification_project(request.project)
        view = self._view(project, "", request.inference_set, threshold)
        overall, total, every, worst = slices(
            self.metrics,
            view,
            request.filter,
            group_by=request.group_by,
            time_bucket=request.time_bucket,
            min_support=request.min_support or DEFAULT_MIN_SUPPORT,
            level=request.confidence_level or DEFAULT_LEVEL,
            detection_iou=self._iou(request.iou_threshold, "iou_threshold") if is_detection else None,
        )
        return pb.GetSlicesResponse(
            overall_accuracy=overall,
            frames=sum(x.frames for x in every) if is_detection else total,
            objects=total if is_detection else 0,
            slices=[_slice(x) for x in every],
            worst=[_slice(x) for x in worst],
        )

    def CompareInferenceSets(
        self, request: pb.CompareInferenceSetsRequest, context: Any
    ) -> pb.CompareInferenceSetsResponse:
        for name in ("baseline_inference_set", "candidate_inference_set"):
            if not getattr(request, name):
                raise InvalidArgument("is empty", field=name)
        threshold = _threshold(request.confidence_threshold, "confidence_threshold")
        project = self.projects.get(request.project)
        if project.task_type == "OBJECT_DETECTION_2D":
            iou = self._iou(request.iou_threshold, "iou_threshold")
            view = self._view(project, "", request.candidate_inference_set, threshold, request.baseline_inference_set)
            frames_sql, frames_params = _frames(view, request.filter, "filter")
            det = compare_detection(
                self.metrics, project.name, view.dataset, request.baseline_inference_set,
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
            project = self._classification_project(request.project)
            view = self._view(project, "", request.candidate_inference_set, threshold, request.baseline_inference_set)
            result = compare(self.metrics, view, request.filter)
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
                baseline=_class_metrics(b, names),
                candidate=_class_metrics(c, names),
                precision_delta=c.precision - b.precision,
                recall_delta=c.recall - b.recall,
                f1_delta=c.f1 - b.f1,
            )
        return out

    # -- segments and gates ---------------------------------------------------------------------
    def CreateSegment(self, request: pb.CreateSegmentRequest, context: Any) -> pb.CreateSegmentResponse:
        project = self.projects.get(request.project)
        spec = request.segment
        if not spec.dataset:
            raise InvalidArgument("is empty", field="segment.dataset")
        self.datasets.get(request.project, spec.dataset)
        created = self.segments.create(
            seg_store.Segment(
                project=request.project,
                name=spec.name,
                dataset=spec.dataset,
                kind=_kind(spec.kind),
                reason=spec.reason,
                author=spec.author,
                gates=[_gate(g) for g in spec.gates],
            ),
            project,
            list(request.frame_ids),
            [(o.frame_id, o.object_id) for o in request.objects],
        )
        return pb.CreateSegmentResponse(segment=_segment(created))

    def GetSegment(self, request: pb.GetSegmentRequest, context: Any) -> pb.GetSegmentResponse:
        return pb.GetSegmentResponse(segment=_segment(self.segments.get(request.project, request.name)))

    def ListSegments(self, request: pb.ListSegmentsRequest, context: Any) -> pb.ListSegmentsResponse:
        kinds = [_kind(k, field=f"kinds[{i}]") for i, k in enumerate(request.kinds)]
        scope = f"segments|{request.project}|{','.join(sorted(kinds))}"
        page = page_of(request.page, scope=scope)
        found, total = self.segments.list(request.project, kinds=kinds, page=page)
        return pb.ListSegmentsResponse(
            segments=[_segment(s) for s in found], page=page_response(page, len(found), total, scope=scope)
        )

    def UpdateSegment(self, request: pb.UpdateSegmentRequest, context: Any) -> pb.UpdateSegmentResponse:
        project = self.projects.get(request.project)
        if request.gates and not request.replace_gates:
            raise InvalidArgument("set replace_gates to replace the gates", field="replace_gates")
        updated = self.segments.update(
            project,
            request.name,
            reason=request.reason if request.HasField("reason") else None,
            gates=[_gate(g) for g in request.gates] if request.replace_gates else None,
            add=list(request.add_frame_ids),
            remove=list(request.remove_frame_ids),
            add_objects=[(o.frame_id, o.object_id) for o in request.add_objects],
            remove_objects=[(o.frame_id, o.object_id) for o in request.remove_objects],
        )
        return pb.UpdateSegmentResponse(segment=_segment(updated))

    def ListSegmentMembers(self, request: pb.ListSegmentMembersRequest, context: Any) -> pb.ListSegmentMembersResponse:
        scope = f"members|{request.project}|{request.name}"
        page = page_of(request.page, scope=scope)
        members, total = self.segments.members(request.project, request.name, page=page)
        return pb.ListSegmentMembersResponse(
            members=[common_pb2.DatapointRef(dataset=d, frame_id=f, object_id=o) for d, f, o in members],
            page=page_response(page, len(members), total, scope=scope),
        )

    def EvaluateGates(self, request: pb.EvaluateGatesRequest, context: Any) -> pb.EvaluateGatesResponse:
        if not request.inference_set:
            raise InvalidArgument("is empty", field="inference_set")
        threshold = _threshold(request.confidence_threshold, "confidence_threshold")
        project = self.projects.get(request.project)
        measure = None
        if project.task_type == "OBJECT_DETECTION_2D":
            iou = self._iou(request.iou_threshold, "iou_threshold")
            view = self._view(project, "", request.inference_set, threshold)

            def measure(members: common_pb2.Filter) -> Any:
                frames_sql, frames_params = _frames(view, members, "segment")
                c = detection_confusion(
                    self.metrics, project.name, view.dataset, view.inference_set, list(view.ontology),
                    iou_threshold=iou, confidence_threshold=threshold, frames_sql=frames_sql,
                    frames_params=frames_params,
                )  # fmt: skip
                frames = outcome_frames(self.metrics, project.name, view.inference_set, iou, frames_sql, frames_params)
                return summarize_confusion(c, frames)
        else:
            view = self._view(self._classification_project(request.project), "", request.inference_set, threshold)
        out = pb.EvaluateGatesResponse()
        for o in evaluate_gates(self.metrics, self.segments, view, measure):
            result = pb.GateResult(segment=o.segment, gate=_gate_proto(o.gate), value=o.value, frames=o.frames,
                                   passed=o.passed)  # fmt: skip
            out.results.append(result)
            if not o.passed:
                out.failed.append(result)
        return out


def _check_frame_fields(flt: common_pb2.Filter, where: str) -> None:
    """Detection filters take frame fields only (a detection frame has no single class)."""
    for i, c in enumerate(flt.all):
        if c.field not in FRAME_FIELDS and not c.field.startswith("metadata."):
            raise InvalidArgument(f"{c.field!r} is not a frame field (one of {', '.join(FRAME_FIELDS)}"
                                  " or metadata.<key>)", field=f"{where}.all[{i}].field")  # fmt: skip


def _frames(view: View, flt: common_pb2.Filter, where: str) -> tuple[str, dict[str, Any]]:
    """A detection request's filter of frame fields, as a SELECT of frame ids ("" for none)."""
    if not flt.all:
        return "", {}
    _check_frame_fields(flt, where)
    frames = dataclasses.replace(view, baseline_inference_set="")
    params = Params()
    condition = compile_filter(flt, frames, params, where)
    return f"SELECT frame_id FROM ({view_sql(frames, params)}) WHERE {condition}", params.values


def _class_metrics(c: PerClass, names: dict[int, str]) -> pb.ClassMetrics:
    return pb.ClassMetrics(
        class_id=c.class_id,
        class_name=names.get(c.class_id, ""),
        precision=c.precision,
        recall=c.recall,
        f1=c.f1,
        support=c.support,
        predicted=c.predicted,
    )


def _slice(x: SliceStats) -> pb.Slice:
    return pb.Slice(value=x.value, frames=x.frames, correct=x.correct, accuracy=x.accuracy,
                    interval_lower=x.lower, interval_upper=x.upper, drop=x.drop, objects=x.objects)  # fmt: skip


def _kind(value: int, field: str = "segment.kind") -> str:
    if value == pb.SEGMENT_KIND_UNSPECIFIED or value not in pb.SegmentKind.values():
        raise InvalidArgument("set a kind (issue, regression test, collection seed or other)", field=field)
    return pb.SegmentKind.Name(value).removeprefix("SEGMENT_KIND_")


def _gate(g: pb.Gate) -> seg_store.Gate:
    return seg_store.Gate(g.metric, g.class_id if g.HasField("class_id") else None, g.minimum)


def _gate_proto(g: seg_store.Gate) -> pb.Gate:
    out = pb.Gate(metric=g.metric, minimum=g.minimum)
    if g.class_id is not None:
        out.class_id = g.class_id
    return out


def _segment(s: seg_store.Segment) -> pb.Segment:
    out = pb.Segment(
        name=s.name,
        dataset=s.dataset,
        kind=pb.SegmentKind.Value(f"SEGMENT_KIND_{s.kind}"),
        reason=s.reason,
        author=s.author,
        gates=[_gate_proto(g) for g in s.gates],
        size=s.size,
    )
    if s.create_time is not None:
        out.create_time.CopyFrom(timestamp(s.create_time))
    if s.update_time is not None:
        out.update_time.CopyFrom(timestamp(s.update_time))
    return out


def _object(o: FrameObject) -> pb.DatapointObject:
    out = pb.DatapointObject(object_id=o.object_id, class_id=o.class_id, is_crowd=o.is_crowd)
    out.box.x, out.box.y, out.box.width, out.box.height = o.box
    if o.score is not None:
        out.score = o.score
    return out


def _set_value(v: common_pb2.Value, kind: str, value: Any) -> None:
    """Sets ``v`` to a metadata value of ``kind`` (string, number, bool, timestamp)."""
    if kind == "string":
        v.string_value = value
    elif kind == "number":
        v.number_value = value
    elif kind == "bool":
        v.bool_value = bool(value)
    else:
        v.timestamp_value.CopyFrom(timestamp(as_utc(value)))


def _datapoint(dataset: str, r: Row) -> pb.Datapoint:
    d = pb.Datapoint(split=r.split, media_uri=r.media_uri, width=r.width, height=r.height,
                     label_objects=[_object(o) for o in r.label_objects],
                     predicted_objects=[_object(o) for o in r.predicted_objects])  # fmt: skip
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
    if r.baseline_predicted_class is not None:
        d.baseline_predicted_class = r.baseline_predicted_class
    d.class_probabilities.extend(r.probabilities)
    for key, (kind, value) in r.metadata.items():
        _set_value(d.metadata[key], kind, value)
    return d


def create_service(settings: ShoalSettings, stores: Stores) -> ServiceSpec:
    jobs = JobStore(stores.metrics, service=NAME)
    servicer = AnalysisServicer(jobs, stores.metrics, stores.vectors)
    servicer.runner = JobRunner(
        jobs,
        {
            label_issues.KIND: JobKind(
                run=servicer.run_label_issues, discard=lambda job: label_issues.discard(stores.metrics, job)
            ),
            detection_issues.KIND: JobKind(
                run=servicer.run_detection_label_issues,
                discard=lambda job: detection_issues.discard(stores.metrics, job),
            ),
            neighbors.KIND: JobKind(
                run=servicer.run_neighbors, discard=lambda job: neighbors.discard(stores.metrics, job)
            ),
            embedding_map.KIND: JobKind(
                run=servicer.run_embedding_map, discard=lambda job: embedding_map.discard(stores.metrics, job)
            ),
            drift.KIND: JobKind(run=servicer.run_drift, discard=lambda job: drift.discard(stores.metrics, job)),
            failure_clusters.KIND: JobKind(
                run=servicer.run_failure_clusters, discard=lambda job: failure_clusters.discard(stores.metrics, job)
            ),
        },
        heartbeat_seconds=settings.job_heartbeat_seconds,
        stale_seconds=settings.job_stale_seconds,
    )
    return ServiceSpec(
        name=NAME,
        full_name=FULL_NAME,
        register=lambda server: analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(servicer, server),
        stores=("metrics", "vectors"),
        migrations=(
            *PROJECT_MIGRATIONS,
            *DATASET_MIGRATIONS,
            *FRAME_MIGRATIONS,
            *EVALUATION_MIGRATIONS,
            *OUTCOME_MIGRATIONS,
            *seg_store.MIGRATIONS,
            *RESULT_MIGRATIONS,
            *detection.MIGRATIONS,
            *label_issues.MIGRATIONS,
            *dismissals.MIGRATIONS,
            *detection_issues.MIGRATIONS,
            *neighbors.MIGRATIONS,
            *embedding_map.MIGRATIONS,
            *failure_clusters.MIGRATIONS,
        ),
        workers=[servicer.runner],
    )
