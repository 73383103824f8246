"""Segments: named sets of frames or objects with their gates."""

from __future__ import annotations

from shoal.analysis.rpc.context import Analysis, Context
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import page_of, page_response, timestamp
from shoal.common.data import segments as seg_store
from shoal.common.errors import InvalidArgument
from shoal.common.v1 import common_pb2


def create_segment(ctx: Context, request: pb.CreateSegmentRequest) -> pb.CreateSegmentResponse:
    project = ctx.projects.get(request.project)
    spec = request.segment
    if not spec.dataset:
        raise InvalidArgument("is empty", field="segment.dataset")
    ctx.datasets.get(request.project, spec.dataset)
    created = ctx.segments.create(
        seg_store.Segment(
            project=request.project,
            name=spec.name,
            dataset=spec.dataset,
            kind=kind_of(spec.kind),
            reason=spec.reason,
            author=spec.author,
            gates=[gate_of(g) for g in spec.gates],
        ),
        project,
        list(request.frame_ids),
        [(o.frame_id, o.object_id) for o in request.objects],
    )
    return pb.CreateSegmentResponse(segment=segment_proto(created))


def get_segment(ctx: Context, request: pb.GetSegmentRequest) -> pb.GetSegmentResponse:
    return pb.GetSegmentResponse(segment=segment_proto(ctx.segments.get(request.project, request.name)))


def list_segments(ctx: Context, request: pb.ListSegmentsRequest) -> pb.ListSegmentsResponse:
    kinds = [kind_of(k, field=f"kinds[{i}]") for i, k in enumerate(request.kinds)]
    scope = f"segments|{request.project}|{','.join(sorted(kinds))}"
    page = page_of(request.page, scope=scope)
    found, total = ctx.segments.list(request.project, kinds=kinds, page=page)
    return pb.ListSegmentsResponse(
        segments=[segment_proto(s) for s in found], page=page_response(page, len(found), total, scope=scope)
    )


def update_segment(ctx: Context, request: pb.UpdateSegmentRequest) -> pb.UpdateSegmentResponse:
    project = ctx.projects.get(request.project)
    if request.gates and not request.replace_gates:
        raise InvalidArgument("set replace_gates to replace the gates", field="replace_gates")
    updated = ctx.segments.update(
        project,
        request.name,
        reason=request.reason if request.HasField("reason") else None,
        gates=[gate_of(g) for g in request.gates] if request.replace_gates else None,
        add=list(request.add_frame_ids),
        remove=list(request.remove_frame_ids),
        add_objects=[(o.frame_id, o.object_id) for o in request.add_objects],
        remove_objects=[(o.frame_id, o.object_id) for o in request.remove_objects],
    )
    return pb.UpdateSegmentResponse(segment=segment_proto(updated))


def list_segment_members(ctx: Context, request: pb.ListSegmentMembersRequest) -> pb.ListSegmentMembersResponse:
    scope = f"members|{request.project}|{request.name}"
    page = page_of(request.page, scope=scope)
    members, total = ctx.segments.members(request.project, request.name, page=page)
    return pb.ListSegmentMembersResponse(
        members=[common_pb2.DatapointRef(dataset=d, frame_id=f, object_id=o) for d, f, o in members],
        page=page_response(page, len(members), total, scope=scope),
    )


def kind_of(value: int, field: str = "segment.kind") -> str:
    if value == pb.SEGMENT_KIND_UNSPECIFIED or value not in pb.SegmentKind.values():
        raise InvalidArgument("set a kind (issue, regression test, collection seed or other)", field=field)
    return pb.SegmentKind.Name(value).removeprefix("SEGMENT_KIND_")


def gate_of(g: pb.Gate) -> seg_store.Gate:
    return seg_store.Gate(g.metric, g.class_id if g.HasField("class_id") else None, g.minimum)


def gate_proto(g: seg_store.Gate) -> pb.Gate:
    out = pb.Gate(metric=g.metric, minimum=g.minimum)
    if g.class_id is not None:
        out.class_id = g.class_id
    return out


def segment_proto(s: seg_store.Segment) -> pb.Segment:
    out = pb.Segment(
        name=s.name,
        dataset=s.dataset,
        kind=pb.SegmentKind.Value(f"SEGMENT_KIND_{s.kind}"),
        reason=s.reason,
        author=s.author,
        gates=[gate_proto(g) for g in s.gates],
        size=s.size,
    )
    if s.create_time is not None:
        out.create_time.CopyFrom(timestamp(s.create_time))
    if s.update_time is not None:
        out.update_time.CopyFrom(timestamp(s.update_time))
    return out


ANALYSIS = Analysis(
    "segments",
    rpcs={
        "CreateSegment": create_segment,
        "GetSegment": get_segment,
        "ListSegments": list_segments,
        "UpdateSegment": update_segment,
        "ListSegmentMembers": list_segment_members,
    },
)
