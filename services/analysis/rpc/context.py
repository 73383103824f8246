"""What every analysis module's RPC handlers share: the :class:`Context` (stores, job store and
runner, project, dataset and segment catalogues, built once per server) and the checks and
conversions that several analyses make.

A handler is ``def handler(ctx: Context, request) -> response``; a job runner is
``def run(ctx: Context, run: JobContext) -> None``. An analysis module lists them in an
:class:`Analysis`, which the registry (:mod:`shoal.analysis.registry`) collects."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shoal.analysis import grid_compare, grid_orders, ranked
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data import segments as seg_store
from shoal.common.data.answers import AnswerCache
from shoal.common.data.datasets import DatasetCatalog
from shoal.common.data.evaluations import frame_rows_set
from shoal.common.data.outcomes import iou_key
from shoal.common.data.projects import OBJECT_TASKS, Project, ProjectCatalog
from shoal.common.data.query import Params, View, compile_filter, view_sql
from shoal.common.errors import FailedPrecondition, InvalidArgument
from shoal.common.jobs import Job, JobContext, JobRunner, JobStore
from shoal.common.jobs_rpc import JobRpcs
from shoal.common.media import MediaReader
from shoal.common.secretbox import SecretBox
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.stores.vectors import VectorStore, collection_name
from shoal.common.v1 import common_pb2

#: fields of a detection drill-down's frame filter (besides metadata.<key>)
FRAME_FIELDS = ("frame_id", "split", "media_type", "capture_time", "segment")

#: an RPC handler: the shared context and the request in, the response out
Handler = Callable[["Context", Any], Any]


@dataclass(frozen=True)
class Runner:
    """How a job kind runs and how a cancelled, failed or interrupted run is undone."""

    #: computes the job, reporting through ``run``; raises to fail
    run: Callable[[Context, JobContext], None]
    #: removes whatever a run of the kind wrote
    discard: Callable[[MetricsStore, Job], None]
    #: computes shard i of n of a job (a kind that can be split over an Indexed Job's Pods; see JobKind)
    shard: Callable[[Context, JobContext, int, int], None] | None = None
    #: how many shards a job is split into, at most the number given
    shards: Callable[[Context, Job, int], int] | None = None


@dataclass(frozen=True)
class Analysis:
    """One analysis as the service sees it: the RPCs it answers, the job kinds it runs and the
    tables it owns."""

    name: str
    #: RPC name (as in ``AnalysisService``) -> handler
    rpcs: Mapping[str, Handler]
    #: job kind -> runner
    jobs: Mapping[str, Runner] = field(default_factory=dict)
    #: schema of the tables the analysis owns, applied in registry order
    migrations: tuple[Migration, ...] = ()


class Context(JobRpcs):
    """The stores, jobs and catalogues every handler reads, built once per server. The job RPCs
    and the finished-job checks come from :class:`~shoal.common.jobs_rpc.JobRpcs`."""

    GetJobResponse: Any = pb.GetJobResponse
    ListJobsResponse: Any = pb.ListJobsResponse
    CancelJobResponse: Any = pb.CancelJobResponse

    #: set once the job kinds are known (see ``service.create_service``)
    runner: JobRunner

    def __init__(self, jobs: JobStore, metrics: MetricsStore, vectors: VectorStore) -> None:
        self.jobs = jobs
        self.metrics = metrics
        self.vectors = vectors
        self.projects = ProjectCatalog(metrics)
        self.datasets = DatasetCatalog(metrics, self.projects)
        self.segments = seg_store.SegmentStore(metrics)
        #: answers of read RPCs, kept while the tables they read are unchanged
        self.answers = AnswerCache(metrics)
        #: the comparisons asked for whose rows the preparer keeps too (a baseline other than the set before)
        self.comparisons = grid_compare.Asked()
        #: a job's listings longer than this are kept in page order (``ranked_pages_above``)
        self.ranked_above = ranked.RANKED_ABOVE
        #: sets of more frames than this keep the grid's sorted pages (``sorted_pages_above``)
        self.sorted_above = grid_orders.KEPT_ABOVE
        #: reads media the jobs need (segmentation probabilities), within what the operator allowed
        self.media: MediaReader | None = None
        #: seals the automations' webhook secrets at rest (``automations_secret_key``; see shoal.common.secretbox)
        self.secret_box = SecretBox.ephemeral()

    def project(self, name: str, task_types: tuple[str, ...]) -> Project:
        """The project, which must be of one of ``task_types`` for the metrics asked."""
        project = self.projects.get(name)
        if project.task_type not in task_types:
            what = (
                f"a {task_types[0]} project"
                if len(task_types) == 1
                else "a project of objects (" + ", ".join(task_types) + ")"
            )
            raise FailedPrecondition(f"project {project.name!r} is {project.task_type}, not {what}", field="project")
        return project

    def classification_project(self, name: str) -> Project:
        return self.project(name, ("CLASSIFICATION",))

    def detection_project(self, name: str) -> Project:
        """A project whose labels are objects: 2-D boxes, instance masks or keypoints."""
        return self.project(name, OBJECT_TASKS)

    def view(self, p: Project, dataset: str, inference_set: str, threshold: float, baseline: str = "") -> View:
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

    def space(self, project_name: str, dataset: str, space_name: str) -> Any:
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

    def vector_count(self, job: Job) -> int:
        """How many frames of a job's dataset have a vector in its embedding space."""
        space = self.space(job.project, job.params["dataset"], job.params["embedding_space"])
        name = collection_name(job.project, space.name)
        return self.vectors.count(name, partition=job.params["dataset"]) if self.vectors.has_collection(name) else 0


def check_threshold(value: float, field: str) -> float:
    """A confidence (or other) threshold, which must lie in [0, 1]."""
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidArgument(f"must lie in [0, 1], got {value}", field=field)
    return value


def check_iou(value: float, field: str) -> float:
    """A detection IoU threshold (0.5 when unset), as stored: in hundredths."""
    iou = value or 0.5
    if not (math.isfinite(iou) and 0.0 < iou <= 1.0):
        raise InvalidArgument(f"must lie in (0, 1], got {iou}", field=field)
    if abs(iou * 100 - round(iou * 100)) > 1e-9:
        raise InvalidArgument(f"must be given in hundredths (0.5, 0.75, ...), got {iou}", field=field)
    return iou_key(iou)


def confusion_cell(request: Any) -> tuple[int | None, int | None]:
    """The labeled and predicted class of the confusion cell, row or column a drill-down request
    names (its ``label_class`` / ``predicted_class``, with ``any_label_class`` / ``any_predicted_class``):
    a class id, -1 for the "false positive" row or the "missed" column, None for every row or column."""
    label = None if request.any_label_class else (request.label_class if request.HasField("label_class") else -1)
    predicted = (
        None
        if request.any_predicted_class
        else (request.predicted_class if request.HasField("predicted_class") else -1)
    )
    if label == -1 and predicted == -1:
        raise InvalidArgument("the false-positive row and the missed column do not meet: name a class or set "
                              "any_label_class / any_predicted_class", field="label_class")  # fmt: skip
    return label, predicted


def check_frame_fields(flt: common_pb2.Filter, where: str) -> None:
    """Detection filters take frame fields only (a detection frame has no single class)."""
    for i, c in enumerate(flt.all):
        if c.field not in FRAME_FIELDS and not c.field.startswith("metadata."):
            raise InvalidArgument(f"{c.field!r} is not a frame field (one of {', '.join(FRAME_FIELDS)}"
                                  " or metadata.<key>)", field=f"{where}.all[{i}].field")  # fmt: skip


def frame_filter(view: View, flt: common_pb2.Filter, where: str) -> tuple[str, dict[str, Any]]:
    """A detection request's filter of frame fields, as a SELECT of frame ids ("" for none)."""
    if not flt.all:
        return "", {}
    check_frame_fields(flt, where)
    frames = dataclasses.replace(view, baseline_inference_set="")
    params = Params()
    condition = compile_filter(flt, frames, params, where)
    return f"SELECT frame_id FROM ({view_sql(frames, params)}) WHERE {condition}", params.values
