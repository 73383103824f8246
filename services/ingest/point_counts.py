"""The points of a frame's point cloud inside each of its labeled cuboids (nuScenes' ``num_lidar_pts``), counted
at ingest for the labels that do not give them (``Cuboid.num_points``).

The cloud is the frame's media (a ``.pcd`` or raw float32 ``.bin``, :mod:`shoal.common.pointclouds`), read
through the same allowed sources as the console's media (:func:`shoal.common.media.reader`); its points are in
the ego frame. Cuboids given in the world frame are moved into the ego frame with the frame's ego pose before
counting. A count that cannot be made (no media reader, a source that is not allowed, a file that is missing or
not a point cloud, a world frame without a pose) stays unknown (-1): an upload is never refused for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from shoal.common import pointclouds
from shoal.common.media import MediaMissing, MediaReader, MediaRefused
from shoal.common.stores.metrics import MetricsStore
from shoal.ingest.scenes import cuboid_row
from shoal.ingest.v1 import ingest_pb2 as pb

log = logging.getLogger(__name__)

#: the count of a cuboid whose points are not known
UNKNOWN = -1
#: clouds read at once (reads wait on disks and networks; counting releases the GIL)
READERS = 8


@dataclass(frozen=True)
class Cloud:
    """Where a frame's point cloud is and which frame its cuboids are in."""

    uri: str
    #: "EGO", "WORLD" or "" (unset)
    coordinate_frame: str
    #: x, y, z, qw, qx, qy, qz of the ego vehicle in the world; () without
    ego_pose: tuple[float, ...]


def cloud_of(frame: pb.Frame) -> Cloud:
    """The cloud of a checked frame message."""
    frame_name = pb.CoordinateFrame.Name(frame.coordinate_frame).removeprefix("COORDINATE_FRAME_")
    pose: tuple[float, ...] = ()
    if frame.HasField("ego_pose"):
        p, q = frame.ego_pose, frame.ego_pose.rotation
        pose = (p.x, p.y, p.z, q.w, q.x, q.y, q.z)
    return Cloud(frame.media_uri, frame_name if frame.coordinate_frame else "", pose)


def to_ego(cuboids: np.ndarray, pose: Sequence[float]) -> np.ndarray:
    """World-frame cuboids ((K, 7) x, y, z, w, l, h, yaw) in the ego frame of ``pose`` (x, y, z, qw, qx, qy,
    qz: the ego vehicle's position and unit-quaternion rotation in the world): centres moved and turned, each
    yaw the heading turned into the ego frame and projected on its ground plane."""
    boxes = np.asarray(cuboids, dtype=np.float64).reshape(-1, 7)
    t = np.asarray(pose[:3], dtype=np.float64)
    w, x, y, z = (float(v) for v in pose[3:7])
    # rotation of the ego frame into the world: world = R @ ego + t, so ego = R.T @ (world - t)
    r = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip
    centre = (boxes[:, :3] - t) @ r
    heading = np.column_stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), np.zeros(len(boxes))]) @ r
    return np.column_stack([centre, boxes[:, 3:6], np.arctan2(heading[:, 1], heading[:, 0])])


class PointCounter:
    """Counts the points inside the labeled cuboids of a write batch that come without their count."""

    def __init__(self, metrics: MetricsStore, media: MediaReader | None) -> None:
        self.metrics = metrics
        self.media = media

    def count(self, cloud: Cloud, cuboids: np.ndarray) -> tuple[np.ndarray, str]:
        """The points of ``cloud`` inside each of ``cuboids`` ((K, 7), in the cloud's coordinate frame as
        ``cloud`` says) with "", or :data:`UNKNOWN` for each with the reason when the cloud cannot be read or
        placed."""
        unknown = np.full(len(cuboids), UNKNOWN, dtype=np.int64)
        if self.media is None or not cloud.uri:
            return unknown, "the frame has no point cloud to read"
        if cloud.coordinate_frame == "WORLD":
            if len(cloud.ego_pose) != 7:
                return unknown, "a world frame without its ego pose"
            cuboids = to_ego(cuboids, cloud.ego_pose)
        try:
            points = pointclouds.read(self.media.read(cloud.uri), urlsplit(cloud.uri).path or cloud.uri)
        except (MediaRefused, MediaMissing, ValueError, OSError) as err:
            return unknown, f"{cloud.uri} cannot be read: {err}"
        return pointclouds.points_in_cuboids(points, cuboids), ""

    def count_labels(
        self, items: Sequence[tuple[str, str, Sequence[pb.Frame], Sequence[pb.FrameLabels]]]
    ) -> dict[tuple[int, str, str], int]:
        """The counts of the labeled cuboids that come without one in ``items`` (per event: project, dataset,
        its frames and labels), by (the event's position, frame id, object id). Frames not in their event are
        read from the store."""
        if self.media is None:
            return {}
        wanted: dict[tuple[int, str], list[pb.LabelObject]] = {}
        where: dict[tuple[int, str], tuple[str, str, str]] = {}
        clouds: dict[tuple[str, str, str], Cloud] = {}
        for i, (project, dataset, frames, labels) in enumerate(items):
            for lab in labels:
                todo = [o for o in lab.objects if o.HasField("cuboid") and not o.cuboid.HasField("num_points")]
                if todo:
                    wanted[(i, lab.frame_id)] = todo
                    where[(i, lab.frame_id)] = (project, dataset, lab.frame_id)
            clouds.update({(project, dataset, f.frame_id): cloud_of(f) for f in frames})
        if not wanted:
            return {}
        clouds.update(self._stored(sorted(set(where.values()) - set(clouds))))
        keys = [k for k in wanted if where[k] in clouds]

        def one(key: tuple[int, str]) -> tuple[np.ndarray, str]:
            boxes = np.array([cuboid_row(o.cuboid) for o in wanted[key]], dtype=np.float64)
            return self.count(clouds[where[key]], boxes)

        with ThreadPoolExecutor(max_workers=max(1, min(READERS, len(keys)))) as pool:
            results = list(pool.map(one, keys))
        failed = [why for _, why in results if why]
        if failed:
            log.info("the points inside the cuboids of %d frames stay unknown (first: %s)", len(failed), failed[0])
        out: dict[tuple[int, str, str], int] = {}
        for key, (found, _) in zip(keys, results, strict=True):
            for o, n in zip(wanted[key], found.tolist(), strict=True):
                out[(*key, o.object_id)] = int(n)
        return out

    def _stored(self, keys: Sequence[tuple[str, str, str]]) -> Mapping[tuple[str, str, str], Cloud]:
        """The clouds of frames stored before, by (project, dataset, frame id)."""
        by_dataset: dict[tuple[str, str], list[str]] = {}
        for project, dataset, frame_id in keys:
            by_dataset.setdefault((project, dataset), []).append(frame_id)
        out: dict[tuple[str, str, str], Cloud] = {}
        for (project, dataset), ids in by_dataset.items():
            rows = self.metrics.query(
                "SELECT frame_id, argMax(media_uri, version), argMax(coordinate_frame, version),"
                " argMax(ego_pose, version) FROM frames WHERE project = {project:String} AND dataset = {dataset:String}"
                " AND frame_id IN {ids:Array(String)} GROUP BY frame_id",
                {"project": project, "dataset": dataset, "ids": ids},
            ).rows
            for frame_id, uri, frame, pose in rows:
                out[(project, dataset, str(frame_id))] = Cloud(str(uri), str(frame), tuple(float(v) for v in pose))
        return out
