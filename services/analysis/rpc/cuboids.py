"""3-D cuboid metrics: nuScenes' detection metrics and the AP over BEV and 3-D IoU of a CUBOIDS_3D project's
inference set, over the frames, distances and point counts asked for."""

from __future__ import annotations

import math
from typing import Any

from shoal.analysis.cuboid_metrics import DEFAULT_IOU_THRESHOLDS, CuboidFilter, cuboid_report
from shoal.analysis.detection import CuboidDetail
from shoal.analysis.nuscenes import IouResult
from shoal.analysis.rpc.context import Analysis, Context, check_threshold, frame_filter
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.errors import InvalidArgument
from shoal.ingest.v1 import ingest_pb2

#: the most IoU thresholds one request may ask for
MAX_IOU_THRESHOLDS = 20

_Ranged = pb.GetCuboidMetricsRequest | pb.QueryDetectionMatchesRequest


def cuboid_message(c: CuboidDetail) -> ingest_pb2.Cuboid:
    """A stored cuboid as the API gives it: yaw form, velocity and point count when known."""
    x, y, z, w, length, h, yaw = c.box
    out = ingest_pb2.Cuboid(x=x, y=y, z=z, width=w, length=length, height=h, yaw=yaw, attribute=c.attribute)
    if not math.isnan(c.velocity[0]):
        out.vx, out.vy = c.velocity
    if c.points >= 0:
        out.num_points = c.points
    return out


def cuboid_ranges(request: _Ranged) -> dict[str, Any]:
    """The distance and point-count bounds a request sets (min_distance, max_distance, min_points,
    max_points), checked: distances finite and >= 0, counts >= 0, no range inverted."""
    out: dict[str, Any] = {}
    for name in ("min_distance", "max_distance"):
        if request.HasField(name):
            value = getattr(request, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidArgument(f"must be a distance in metres, finite and >= 0, got {value}", field=name)
            out[name] = float(value)
    for name in ("min_points", "max_points"):
        if request.HasField(name):
            value = getattr(request, name)
            if value < 0:
                raise InvalidArgument(f"must be >= 0, got {value}", field=name)
            out[name] = int(value)
    for low, high in (("min_distance", "max_distance"), ("min_points", "max_points")):
        if low in out and high in out and out[low] > out[high]:
            raise InvalidArgument(f"must be >= {low} ({out[low]:g}), got {out[high]:g}", field=high)
    return out


def _iou_thresholds(values: list[float]) -> tuple[float, ...]:
    if not values:
        return DEFAULT_IOU_THRESHOLDS
    if len(values) > MAX_IOU_THRESHOLDS:
        raise InvalidArgument(f"{len(values)} thresholds is more than {MAX_IOU_THRESHOLDS}", field="iou_thresholds")
    for i, t in enumerate(values):
        if not (math.isfinite(t) and 0.0 < t <= 1.0):
            raise InvalidArgument(f"must lie in (0, 1], got {t}", field=f"iou_thresholds[{i}]")
        if t in values[:i]:
            raise InvalidArgument(f"{t:g} is given twice", field=f"iou_thresholds[{i}]")
    return tuple(float(t) for t in values)


def get_cuboid_metrics(ctx: Context, request: pb.GetCuboidMetricsRequest) -> pb.GetCuboidMetricsResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    threshold = check_threshold(request.confidence_threshold, "confidence_threshold")
    keep = CuboidFilter(confidence_threshold=threshold, **cuboid_ranges(request))
    thresholds = _iou_thresholds(list(request.iou_thresholds))
    project = ctx.project(request.project, ("CUBOIDS_3D",))
    view = ctx.view(project, "", request.inference_set, threshold)
    frames_sql, frames_params = frame_filter(view, request.frame_filter, "frame_filter")
    names = {c.id: c.name for c in project.classes}
    r = cuboid_report(ctx.metrics, project.name, view.dataset, view.inference_set, names, keep=keep,
                      iou_thresholds=thresholds, frames_sql=frames_sql, frames_params=frames_params)  # fmt: skip
    st, params = r.nuscenes.stats, r.nuscenes.params
    nuscenes = pb.NuScenesMetrics(distance_thresholds=list(params.dist_ths), map=st["mAP"], nds=st["NDS"],
                                  mate=st["mATE"], mase=st["mASE"], maoe=st["mAOE"], mave=st["mAVE"],
                                  maae=st["mAAE"])  # fmt: skip
    for c in project.classes:
        pc = r.nuscenes.per_class[c.id]
        nuscenes.per_class.add(
            class_id=c.id, class_name=c.name, ap=pc["AP"], ap_at=[pc[f"AP@{th:g}"] for th in params.dist_ths],
            ate=pc["ATE"], ase=pc["ASE"], aoe=pc["AOE"], ave=pc["AVE"], aae=pc["AAE"],
            ground_truth=r.gt_per_class.get(c.id, 0), predicted=r.dt_per_class.get(c.id, 0),
        )  # fmt: skip
    out = pb.CuboidMetrics(
        inference_set=view.inference_set,
        dataset=view.dataset,
        frames=r.frames,
        ground_truth_objects=r.ground_truth,
        predicted_objects=r.predicted,
        nuscenes=nuscenes,
        bev=_iou_metrics(r.bev, project.classes),
        iou_3d=_iou_metrics(r.iou_3d, project.classes),
    )
    return pb.GetCuboidMetricsResponse(metrics=out)


def _iou_metrics(r: IouResult, classes: Any) -> pb.IouApMetrics:
    ths = r.params.thresholds
    out = pb.IouApMetrics(iou_type=r.params.kind, iou_thresholds=list(ths), map=r.stats["AP"],
                          map_at=[r.stats[f"AP@{th:g}"] for th in ths])  # fmt: skip
    for c in classes:
        pc = r.per_class[c.id]
        out.per_class.add(class_id=c.id, class_name=c.name, ap=pc["AP"], ap_at=[pc[f"AP@{th:g}"] for th in ths])
    return out


ANALYSIS = Analysis("cuboids", rpcs={"GetCuboidMetrics": get_cuboid_metrics})
