"""Failure clusters: a job grouping a model's errors by embedding, its result, and saving clusters as segments."""

from __future__ import annotations

from shoal.analysis import detection, failure_clusters
from shoal.analysis.rpc.context import Analysis, Context, Runner, check_iou, check_threshold, frame_filter
from shoal.analysis.rpc.segments import segment_proto
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import job_to_proto
from shoal.common.data import segments as seg_store
from shoal.common.data.projects import OBJECT_TASKS
from shoal.common.data.query import Params, compile_filter
from shoal.common.errors import AlreadyExists, InvalidArgument
from shoal.common.jobs import JobContext
from shoal.common.v1 import common_pb2


def start_failure_clusters(ctx: Context, request: pb.StartFailureClustersRequest) -> pb.StartFailureClustersResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    threshold = check_threshold(request.confidence_threshold, "confidence_threshold")
    project = ctx.projects.get(request.project)
    view = ctx.view(project, "", request.inference_set, threshold)
    ctx.space(request.project, view.dataset, request.embedding_space)
    if project.task_type in OBJECT_TASKS:
        frame_filter(view, request.filter, "filter")
        iou = check_iou(request.iou_threshold, "iou_threshold")
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
    job = ctx.runner.submit(request.project, failure_clusters.KIND, params, rerun=request.rerun)
    return pb.StartFailureClustersResponse(job=job_to_proto(job))


def run_failure_clusters(ctx: Context, run: JobContext) -> None:
    job = run.job
    p = job.params
    project = ctx.projects.get(job.project)
    view = ctx.view(project, "", p["inference_set"], float(p["confidence_threshold"]))
    space = ctx.space(job.project, view.dataset, p["embedding_space"])
    flt = common_pb2.Filter.FromString(bytes.fromhex(p.get("filter", "")))
    if project.task_type in OBJECT_TASKS:
        frames_sql, frames_params = frame_filter(view, flt, "filter")
        sql, params = detection.frame_errors_sql(
            ctx.metrics, project.name, view.dataset, view.inference_set,
            iou_threshold=float(p["iou_threshold"]), confidence_threshold=view.confidence_threshold,
            frames_sql=frames_sql, frames_params=frames_params,
        )  # fmt: skip
        sql = failure_clusters.detection_errors_sql(sql)
    else:
        sql, params = failure_clusters.classification_errors_sql(view, flt)
    failure_clusters.build(
        run, ctx.metrics, ctx.vectors, job, dataset=view.dataset, space=space.name, space_metric=space.metric,
        errors_sql=sql, errors_params=params, max_clusters=int(p["max_clusters"]),
        min_size=int(p["min_cluster_size"]), class_names={c.id: c.name for c in project.classes},
    )  # fmt: skip


def get_failure_clusters(ctx: Context, request: pb.GetFailureClustersRequest) -> pb.GetFailureClustersResponse:
    job = ctx.finished_job(request.project, request.job_id, failure_clusters.KIND)
    s = ctx.stored_summary(failure_clusters, job)
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


def save_failure_clusters(ctx: Context, request: pb.SaveFailureClustersRequest) -> pb.SaveFailureClustersResponse:
    job = ctx.finished_job(request.project, request.job_id, failure_clusters.KIND)
    s = ctx.stored_summary(failure_clusters, job)
    known = {c.cluster: c for c in s.clusters}
    for i, number in enumerate(request.clusters):
        if number not in known:
            raise InvalidArgument(f"job {job.job_id} has no cluster {number} (it has {len(known)})",
                                  field=f"clusters[{i}]")  # fmt: skip
    if not request.name_prefix:
        raise InvalidArgument("is empty", field="name_prefix")
    chosen = [known[n] for n in dict.fromkeys(request.clusters)] if request.clusters else list(s.clusters)
    project = ctx.projects.get(request.project)
    dataset = ctx.datasets.get_inference_set(request.project, job.params["inference_set"]).dataset
    for c in chosen:  # every name is checked (and must be free) before any segment is written
        name = f"{request.name_prefix}{c.cluster}"
        if not seg_store.valid_name(name):
            raise InvalidArgument(f"{name!r} is not a valid segment name ([a-z0-9][a-z0-9_.-]{{0,62}})",
                                  field="name_prefix")  # fmt: skip
        if ctx.segments.find(request.project, name) is not None:
            raise AlreadyExists(f"segment {name!r} already exists", field="name_prefix")
    out = pb.SaveFailureClustersResponse()
    for c in chosen:
        frames = failure_clusters.cluster_frames(ctx.metrics, request.project, job.job_id, c.cluster,
                                                 include_correct=request.include_correct)  # fmt: skip
        step = seg_store.MAX_MEMBERS_PER_CALL
        created = ctx.segments.create(
            seg_store.Segment(
                project=request.project, name=f"{request.name_prefix}{c.cluster}", dataset=dataset, kind="ISSUE",
                reason=f"failure cluster {c.cluster} of job {job.job_id}: {c.description}",
                author=request.author,
            ),
            project, frames[:step], [],
        )  # fmt: skip
        for start in range(step, len(frames), step):  # a large region in calls of the store's size
            created = ctx.segments.update(project, created.name, reason=None, gates=None,
                                          add=frames[start : start + step], remove=[])  # fmt: skip
        out.segments.append(segment_proto(created))
    return out


ANALYSIS = Analysis(
    "failure_clusters",
    rpcs={
        "StartFailureClusters": start_failure_clusters,
        "GetFailureClusters": get_failure_clusters,
        "SaveFailureClusters": save_failure_clusters,
    },
    jobs={failure_clusters.KIND: Runner(run=run_failure_clusters, discard=failure_clusters.discard)},
    migrations=failure_clusters.MIGRATIONS,
)
