"""Cuboid objects as SQL: the cuboids of the latest labels or of an inference set with their centre's distance
from the ego vehicle and (labels) the points inside them, and the distance and point-count ranges a request
keeps. The cuboid metrics (:mod:`shoal.analysis.cuboid_metrics`) and the drill-down of matches
(:mod:`shoal.analysis.detection`) read cuboids through them, so a range means the same thing in both."""

from __future__ import annotations

from dataclasses import dataclass

from shoal.common.data.frames import latest_labels_sql
from shoal.common.data.query import Params

#: the columns a cuboid's row is read into by :func:`cuboids_sql` (x, y, z, w, l, h, yaw)
CUBOID_COLUMNS = ("cx", "cy", "cz", "cw", "cl", "ch", "yaw")


def ego_distance_sql(cuboid: str, coordinate_frame: str, ego_pose: str) -> str:
    """SQL of the distance (metres, in the ground plane) of the centre of ``cuboid`` (an x, y, z, w, l, h, yaw
    array) from the ego vehicle: sqrt(x² + y²) in an EGO frame; in a WORLD frame from the ego pose's x, y
    (NaN without a pose, which then falls outside every distance range)."""
    return (
        f"if({coordinate_frame} = 'WORLD', if(length({ego_pose}) >= 2,"
        f" hypot({cuboid}[1] - {ego_pose}[1], {cuboid}[2] - {ego_pose}[2]), nan),"
        f" hypot({cuboid}[1], {cuboid}[2]))"
    )


def cuboids_sql(scope: str, *, predicted: bool) -> str:
    """SQL of the cuboids of the frames in ``scope`` (a condition on ``frame_id``; "" for every frame): the
    regular objects of each frame's latest label version, or (``predicted``) the inference set
    ``{set:String}``'s, ``{project:String}`` and ``{dataset:String}`` bound. Columns: frame_id, object_id,
    class_id, the row :data:`CUBOID_COLUMNS`, vx and vy (NaN when unknown), attribute, distance from the ego
    vehicle (:func:`ego_distance_sql`), and num_points (labels; -1: not known) or score (predictions)."""
    where = f" AND {scope}" if scope else ""
    if predicted:
        objects = (
            "SELECT frame_id, object_id, class_id, score, cuboid, velocity, attribute FROM predicted_objects FINAL"
            f" WHERE project = {{project:String}} AND inference_set = {{set:String}}{where}"
        )
        last = "o.score AS score"
    else:
        labels = latest_labels_sql(scope, ("cuboid", "velocity", "attribute", "num_points"))
        objects = f"SELECT * FROM ({labels}) WHERE crowd = 0"
        last = "o.num_points AS num_points"
    row = ", ".join(f"o.cuboid[{i + 1}] AS {name}" for i, name in enumerate(CUBOID_COLUMNS))
    velocity = ", ".join(f"if(length(o.velocity) = 2, o.velocity[{i + 1}], nan) AS v{v}" for i, v in enumerate("xy"))
    return (
        f"SELECT o.frame_id AS frame_id, o.object_id AS object_id, o.class_id AS class_id, {row}, {velocity},"
        f" o.attribute AS attribute, {ego_distance_sql('o.cuboid', 'f.coordinate_frame', 'f.ego_pose')} AS distance,"
        f" {last} FROM ({objects}) AS o"
        " LEFT JOIN (SELECT frame_id, coordinate_frame, ego_pose FROM frames FINAL"
        f" WHERE project = {{project:String}} AND dataset = {{dataset:String}}{where}) AS f ON f.frame_id = o.frame_id"
        " WHERE length(o.cuboid) = 7"
    )


@dataclass(frozen=True)
class CuboidFilter:
    """Which cuboids count: distance ranges in metres and point-count ranges, inclusive; None leaves a side
    open."""

    min_distance: float | None = None
    max_distance: float | None = None
    min_points: int | None = None
    max_points: int | None = None
    #: predictions scored below it are left out
    confidence_threshold: float = 0.0

    @property
    def by_distance(self) -> bool:
        return self.min_distance is not None or self.max_distance is not None

    @property
    def by_points(self) -> bool:
        return self.min_points is not None or self.max_points is not None

    def distance_sql(self, params: Params, column: str = "distance") -> str:
        """SQL: ``column`` (a distance; NaN when unknown, which compares false with every bound) lies in the
        range; "" when the range is open on both sides."""
        parts = []
        if self.min_distance is not None:
            parts.append(f"{column} >= {params.add(float(self.min_distance), 'Float64')}")
        if self.max_distance is not None:
            parts.append(f"{column} <= {params.add(float(self.max_distance), 'Float64')}")
        return " AND ".join(parts)

    def points_sql(self, params: Params, column: str = "num_points") -> str:
        """SQL: ``column`` (a point count, -1 when unknown) is known and lies in the range; "" without a
        bound."""
        if not self.by_points:
            return ""
        parts = [f"{column} >= 0"]
        if self.min_points is not None:
            parts.append(f"{column} >= {params.add(int(self.min_points), 'Int32')}")
        if self.max_points is not None:
            parts.append(f"{column} <= {params.add(int(self.max_points), 'Int32')}")
        return " AND ".join(parts)
