"""Point-cloud frames with their cuboids, and audio clips with their sound events, checked with an
error that names the field: the frame's coordinate frame, ego pose and cameras; a cuboid's centre,
size, heading (yaw, or a unit quaternion: never both) and velocity; a sound event's interval within
its clip. What the stores keep of a cuboid is its row (x, y, z, w, l, h, yaw), its heading turned
to a yaw when it came as a quaternion, the way nuScenes' devkit reads a box's heading.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from shoal.common.cuboids import QUATERNION_TOLERANCE, yaw_from_quaternion
from shoal.common.errors import InvalidArgument
from shoal.common.limits import MAX_TEXT
from shoal.ingest.v1 import ingest_pb2 as pb

#: the camera images one frame may carry
MAX_CAMERAS = 32
#: the sound events one clip may carry
MAX_EVENTS = 10_000
#: a cuboid's coordinates and sizes, in metres, are within this
MAX_METRES = 1e6


def _finite(value: float, where: str) -> None:
    if not math.isfinite(value):
        raise InvalidArgument(f"must be a finite number, got {value}", field=where)


def check_quaternion(q: pb.Quaternion, where: str) -> None:
    for name in ("w", "x", "y", "z"):
        _finite(getattr(q, name), f"{where}.{name}")
    norm = math.sqrt(q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z)
    if abs(norm - 1.0) > QUATERNION_TOLERANCE:
        raise InvalidArgument(
            f"a rotation is a unit quaternion; this one's norm is {norm:.6g} (normalise it, or check the order:"
            " w, x, y, z)",
            field=where,
        )


def check_frame_scene(frame: pb.Frame, task: str, where: str) -> None:
    """A point cloud's coordinate frame, pose and cameras; an audio clip's duration and rate."""
    if task == "CUBOIDS_3D" and frame.coordinate_frame == pb.COORDINATE_FRAME_UNSPECIFIED:
        raise InvalidArgument(
            "a cuboid project's frame says which frame its cuboids are in: COORDINATE_FRAME_EGO or _WORLD",
            field=f"{where}.coordinate_frame",
        )
    if frame.HasField("ego_pose"):
        pose = frame.ego_pose
        for name in ("x", "y", "z"):
            _finite(getattr(pose, name), f"{where}.ego_pose.{name}")
        check_quaternion(pose.rotation, f"{where}.ego_pose.rotation")
    if len(frame.cameras) > MAX_CAMERAS:
        raise InvalidArgument(f"{len(frame.cameras)} cameras is more than {MAX_CAMERAS}", field=f"{where}.cameras")
    names: set[str] = set()
    for j, cam in enumerate(frame.cameras):
        if not cam.name or len(cam.name) > 256:
            raise InvalidArgument("a camera is named, in 1 to 256 characters", field=f"{where}.cameras[{j}].name")
        if cam.name in names:
            raise InvalidArgument(f"camera {cam.name!r} appears twice", field=f"{where}.cameras[{j}].name")
        names.add(cam.name)
        if not cam.uri or len(cam.uri) > MAX_TEXT:
            raise InvalidArgument(f"is empty or longer than {MAX_TEXT} characters", field=f"{where}.cameras[{j}].uri")
    if not (math.isfinite(frame.duration_seconds) and frame.duration_seconds >= 0):
        raise InvalidArgument(
            f"must be a number of seconds >= 0, got {frame.duration_seconds}", field=f"{where}.duration_seconds"
        )
    if task == "SOUND_EVENTS" and frame.duration_seconds == 0:
        raise InvalidArgument(
            "a sound-event project's clip gives its duration (seconds)", field=f"{where}.duration_seconds"
        )
    if frame.sample_rate < 0:
        raise InvalidArgument(f"must be >= 0 Hz, got {frame.sample_rate}", field=f"{where}.sample_rate")


def check_cuboid(obj: pb.LabelObject | pb.PredictedObject, where: str) -> None:
    """A cuboid object: its 3-D box and nothing of the 2-D shapes."""
    if not obj.HasField("cuboid"):
        raise InvalidArgument("a cuboid project's object needs its cuboid", field=f"{where}.cuboid")
    for name, given in (("box", obj.HasField("box")), ("mask", obj.HasField("mask")),
                        ("polygons", bool(obj.polygons)), ("keypoints", bool(obj.keypoints))):  # fmt: skip
        if given:
            raise InvalidArgument(f"a cuboid project's objects have a cuboid, not a {name}", field=f"{where}.{name}")
    c = obj.cuboid
    cw = f"{where}.cuboid"
    for name in ("x", "y", "z", "width", "length", "height", "yaw"):
        value = getattr(c, name)
        _finite(value, f"{cw}.{name}")
        if abs(value) > MAX_METRES:
            raise InvalidArgument(f"{value} is beyond {MAX_METRES:g} m", field=f"{cw}.{name}")
    for name in ("width", "length", "height"):
        if getattr(c, name) <= 0:
            raise InvalidArgument(f"a cuboid's size is positive, got {getattr(c, name)}", field=f"{cw}.{name}")
    if c.HasField("rotation"):
        if c.yaw:
            raise InvalidArgument("give the heading as yaw or as rotation, not both", field=f"{cw}.rotation")
        check_quaternion(c.rotation, f"{cw}.rotation")
    if c.HasField("vx") != c.HasField("vy"):
        raise InvalidArgument("give both vx and vy, or neither", field=f"{cw}.{'vy' if c.HasField('vx') else 'vx'}")
    for name in ("vx", "vy"):
        if c.HasField(name):
            _finite(getattr(c, name), f"{cw}.{name}")
    if len(c.attribute) > 256:
        raise InvalidArgument("is longer than 256 characters", field=f"{cw}.attribute")
    if c.HasField("num_points") and c.num_points < 0:
        raise InvalidArgument(f"a count of points is >= 0, got {c.num_points}", field=f"{cw}.num_points")


def cuboid_row(c: pb.Cuboid) -> list[float]:
    """The stored row of a checked cuboid: x, y, z, w, l, h, yaw."""
    r = c.rotation
    yaw = float(yaw_from_quaternion(np.array([r.w, r.x, r.y, r.z]))) if c.HasField("rotation") else c.yaw
    return [c.x, c.y, c.z, c.width, c.length, c.height, yaw]


def check_events(
    events: list[pb.SoundEvent], classes: Mapping[int, int], duration: float | None, where: str, *, predicted: bool
) -> None:
    """A clip's sound events: known classes, onset before offset, within the clip (when its
    duration is known), scores in [0, 1]."""
    if len(events) > MAX_EVENTS:
        raise InvalidArgument(f"{len(events):,} events is more than {MAX_EVENTS:,}", field=f"{where}.events")
    for j, e in enumerate(events):
        ew = f"{where}.events[{j}]"
        if e.class_id not in classes:
            raise InvalidArgument(f"unknown class id {e.class_id}", field=f"{ew}.class_id")
        _finite(e.onset, f"{ew}.onset")
        _finite(e.offset, f"{ew}.offset")
        if e.onset < 0:
            raise InvalidArgument(f"an event starts at 0 s or later, got {e.onset}", field=f"{ew}.onset")
        if e.offset <= e.onset:
            raise InvalidArgument(f"an event ends after it starts: {e.onset} to {e.offset}", field=f"{ew}.offset")
        if duration and e.offset > duration + 1e-6:
            raise InvalidArgument(f"ends at {e.offset} s, after the clip's {duration} s", field=f"{ew}.offset")
        if predicted and not (math.isfinite(e.score) and 0.0 <= e.score <= 1.0):
            raise InvalidArgument(f"score {e.score} must lie in [0, 1]", field=f"{ew}.score")
