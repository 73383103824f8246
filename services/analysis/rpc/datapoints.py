"""The datapoints explorer: one page of frames of a dataset or inference set, filtered and sorted."""

from __future__ import annotations

from shoal.analysis import datapoints
from shoal.analysis.datapoints import FrameObject, Row, Scene, SoundEvent
from shoal.analysis.rpc.context import Analysis, Context, check_threshold
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import set_value
from shoal.common.errors import InvalidArgument
from shoal.common.v1 import common_pb2
from shoal.ingest.v1 import ingest_pb2


def query_datapoints(ctx: Context, request: pb.QueryDatapointsRequest) -> pb.QueryDatapointsResponse:
    threshold = check_threshold(request.confidence_threshold, "confidence_threshold")
    if request.baseline_inference_set and not request.inference_set:
        raise InvalidArgument("a baseline needs an inference set to compare with", field="inference_set")
    project = ctx.projects.get(request.project)
    view = ctx.view(
        project,
        request.dataset,
        request.inference_set,
        threshold,
        request.baseline_inference_set,
    )
    scoped = pb.QueryDatapointsRequest()
    scoped.CopyFrom(request)
    scoped.ClearField("page")
    scope = scoped.SerializeToString(deterministic=True).hex()
    page = datapoints.query_datapoints(
        ctx.metrics,
        view,
        request.filter,
        list(request.sort),
        request.page.page_size,
        request.page.page_token,
        scope=scope,
        include_objects=request.include_objects,
        maps=request.include_objects and project.task_type == "SEGMENTATION",
        answers=ctx.answers,
        asked=ctx.comparisons,
    )
    if project.task_type in ("CUBOIDS_3D", "SOUND_EVENTS"):
        datapoints.add_scene_details(
            ctx.metrics,
            view,
            page.rows,
            cuboids=request.include_objects and project.task_type == "CUBOIDS_3D",
            events=request.include_objects and project.task_type == "SOUND_EVENTS",
            answers=ctx.answers,
        )
    return pb.QueryDatapointsResponse(
        datapoints=[_datapoint(view.dataset, r) for r in page.rows],
        page=common_pb2.PageResponse(next_page_token=page.next_token, total_count=page.total),
    )


def _object(o: FrameObject) -> pb.DatapointObject:
    out = pb.DatapointObject(object_id=o.object_id, class_id=o.class_id, is_crowd=o.is_crowd, mask=o.mask)
    out.box.x, out.box.y, out.box.width, out.box.height = o.box
    for x, y, v in o.keypoints:
        out.keypoints.add(x=x, y=y, visibility=v)
    if o.score is not None:
        out.score = o.score
    if o.cuboid:
        c = out.cuboid
        c.x, c.y, c.z, c.width, c.length, c.height, c.yaw = o.cuboid
        if o.velocity is not None:
            c.vx, c.vy = o.velocity
        c.attribute = o.attribute
        if o.num_points >= 0:
            c.num_points = o.num_points
    return out


def _event(e: SoundEvent) -> ingest_pb2.SoundEvent:
    return ingest_pb2.SoundEvent(onset=e.onset, offset=e.offset, class_id=e.class_id, score=e.score or 0.0)


def _scene(d: pb.Datapoint, s: Scene) -> None:
    if s.media_type:
        d.media_type = ingest_pb2.MediaType.Value(f"MEDIA_TYPE_{s.media_type}")
    if s.coordinate_frame:
        d.coordinate_frame = ingest_pb2.CoordinateFrame.Value(f"COORDINATE_FRAME_{s.coordinate_frame}")
    if len(s.ego_pose) == 7:
        x, y, z, qw, qx, qy, qz = s.ego_pose
        d.ego_pose.CopyFrom(ingest_pb2.Pose(x=x, y=y, z=z, rotation=ingest_pb2.Quaternion(w=qw, x=qx, y=qy, z=qz)))
    for name, uri in s.cameras:
        d.cameras.add(name=name, uri=uri)
    d.duration_seconds = s.duration_seconds
    d.sample_rate = s.sample_rate


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
        set_value(d.metadata[key], kind, value)
    if r.scene is not None:
        _scene(d, r.scene)
    d.label_events.extend(_event(e) for e in r.label_events)
    d.predicted_events.extend(_event(e) for e in r.predicted_events)
    return d


ANALYSIS = Analysis("datapoints", rpcs={"QueryDatapoints": query_datapoints})
