"""The demo's 3-D cuboid set: lidar-like point clouds drawn with a fixed seed, a detector that never
sees the labels, and cuboid labels with errors planted of six kinds.

Each frame is a point cloud around the vehicle (the ego frame: x forward, y left, z up): a ground
plane, thinning with distance as a lidar's rings do, and three to six objects (cars, pedestrians,
traffic cones) standing on it, their points sampled on the faces of their boxes (the faces turned
towards the sensor densest), with a bush or two that is no object. Each cloud is written as the
raw float32 ``.bin`` lidar datasets ship (x, y, z, intensity per point). The labels are the
generating cuboids, with the points inside each, except where an error is planted: an object left
unlabeled, a label on empty ground, a car's cuboid moved off its centre, resized, or turned, and an
object labeled as another class.

The detector never sees the labels: it removes the ground (a height threshold), clusters the rest
in bird's-eye view (scikit-learn's DBSCAN), fits each cluster the smallest rectangle around its
points (rotating calipers over the convex hull), takes the height from the highest point, names
the class by the size, and scores how many points back the box and how well they lie on its faces.
Shoal's cuboid metrics and cuboid label issues are then scored against what was planted.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoal.client import Client
from shoal.demo.names import log

PROJECT = "scenes3d"
DATASET = "drive"
INFERENCE_SET = "dbscan-boxes"
#: nuScenes' names, so that its class rules apply (a cone has no heading)
CLASSES = ("car", "pedestrian", "traffic_cone")
CAR, PEDESTRIAN, CONE = range(3)
#: the label errors planted, and how many of each
KINDS = ("missing_label", "spurious_label", "mislocalized_centre", "mislocalized_size", "mislocalized_heading",
         "class_swap")  # fmt: skip
PER_KIND = 3
#: the issue type each kind is reported as by the label-issue job, and what is off for a mislocalized one
ISSUE_OF = {"missing_label": ("missing_label", ""), "spurious_label": ("spurious_label", ""),
            "mislocalized_centre": ("mislocalized", "centre"), "mislocalized_size": ("mislocalized", "size"),
            "mislocalized_heading": ("mislocalized", "heading"), "class_swap": ("class_swap", "")}  # fmt: skip
#: the lidar's height above the ground, metres; points below this height are taken as ground
SENSOR_Z = 1.8
GROUND_Z = 0.25
#: the scene's reach, metres
RANGE = 40.0


@dataclass
class CuboidScenes:
    frame_ids: list[str] = field(default_factory=list)
    media_uris: list[str] = field(default_factory=list)
    #: per frame, its labels: (object id, class, cuboid row x, y, z, w, l, h, yaw, points inside)
    labels: list[list[tuple[str, int, list[float], int]]] = field(default_factory=list)
    #: per frame, the detector's boxes: (object id, class, score, cuboid row)
    predictions: list[list[tuple[str, int, float, list[float]]]] = field(default_factory=list)
    #: per frame, the objects truly there: (class, cuboid row)
    truth: list[list[tuple[int, list[float]]]] = field(default_factory=list)
    #: per planted kind, its (frame id, object id); a missing label's object id is "" and its
    #: cuboid is in ``unlabeled``
    planted: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    unlabeled: dict[str, list[float]] = field(default_factory=dict)


def corners(row: list[float] | np.ndarray) -> np.ndarray:
    """The four ground-plane corners of a cuboid row (x, y, z, w, l, h, yaw), counter-clockwise."""
    x, y, _, w, length, _, yaw = row[:7]
    c, s = math.cos(yaw), math.sin(yaw)
    half = np.array([[length, w], [-length, w], [-length, -w], [length, -w]]) / 2
    return half @ np.array([[c, s], [-s, c]]) + np.array([x, y])


def inside(row: list[float] | np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which points (N, >= 3) lie inside the cuboid."""
    x, y, z, w, length, h, yaw = row[:7]
    dx, dy = points[:, 0] - x, points[:, 1] - y
    c, s = math.cos(yaw), math.sin(yaw)
    u, v = c * dx + s * dy, -s * dx + c * dy
    return (np.abs(u) <= length / 2) & (np.abs(v) <= w / 2) & (np.abs(points[:, 2] - z) <= h / 2)


def _box_points(rng: np.random.Generator, row: list[float], density: float, intensity: float) -> np.ndarray:
    """Points on the four sides and the top of a cuboid, the sides facing the sensor at ``density``
    per square metre and the others at a third of it (partly hidden)."""
    x, y, z, w, length, h, yaw = row
    c, s = math.cos(yaw), math.sin(yaw)
    out = []
    # each side: its centre (u, v) in the box's frame, its outward normal, its width along the ground
    faces = (((length / 2, 0), (1, 0), w), ((-length / 2, 0), (-1, 0), w), ((0, w / 2), (0, 1), length),
             ((0, -w / 2), (0, -1), length))  # fmt: skip
    for (u0, v0), (nu, nv), extent in faces:
        fx, fy = x + c * u0 - s * v0, y + s * u0 + c * v0
        nx, ny = c * nu - s * nv, s * nu + c * nv
        facing = nx * -fx + ny * -fy > 0
        n = rng.poisson(density * extent * h * (1.0 if facing else 0.33))
        t = rng.uniform(-extent / 2, extent / 2, n)
        zz = rng.uniform(z - h / 2, z + h / 2, n)
        px, py = fx - ny * t, fy + nx * t  # along the face: perpendicular to its normal
        out.append(np.stack([px, py, zz], axis=1))
    if z + h / 2 < SENSOR_Z:
        n = rng.poisson(density * w * length * 0.5)
        u, v = rng.uniform(-length / 2, length / 2, n), rng.uniform(-w / 2, w / 2, n)
        out.append(np.stack([x + c * u - s * v, y + s * u + c * v, np.full(n, z + h / 2)], axis=1))
    pts = np.concatenate(out) + rng.normal(0, 0.03, (sum(len(o) for o in out), 3))
    # noise that would take a point out of its box turns back in, as a labeled box holds its object's points
    u, v = c * (pts[:, 0] - x) + s * (pts[:, 1] - y), -s * (pts[:, 0] - x) + c * (pts[:, 1] - y)
    u, v, dz = (np.sign(a) * (half - np.abs(half - np.abs(a))) * 0.999
                for a, half in ((u, length / 2), (v, w / 2), (pts[:, 2] - z, h / 2)))  # fmt: skip
    pts = np.column_stack([x + c * u - s * v, y + s * u + c * v, z + dz])
    return np.column_stack([pts, np.clip(rng.normal(intensity, 0.05, len(pts)), 0, 1)])


def _object(rng: np.random.Generator, cls: int, x: float, y: float) -> list[float]:
    if cls == CAR:
        w, length, h = rng.uniform(1.7, 2.0), rng.uniform(4.0, 4.8), rng.uniform(1.4, 1.7)
    elif cls == PEDESTRIAN:
        w, length, h = rng.uniform(0.5, 0.65), rng.uniform(0.7, 0.9), rng.uniform(1.6, 1.9)
    else:
        w = length = rng.uniform(0.35, 0.45)
        h = rng.uniform(0.7, 0.9)
    # cars and people face forward or across, never backward (a heading the detector cannot tell from
    # its reverse); cones have no heading
    yaw = 0.0 if cls == CONE else rng.uniform(-math.pi / 2 + 0.05, math.pi / 2 - 0.05)
    return [float(x), float(y), float(h / 2), float(w), float(length), float(h), float(yaw)]


def _place(rng: np.random.Generator, taken: list[tuple[float, float, float]], radius: float) -> tuple[float, float]:
    """A free spot between 6 and 35 m from the sensor, ``radius`` metres clear of what is there."""
    for _ in range(200):
        d, a = rng.uniform(6, 35), rng.uniform(-math.pi, math.pi)
        x, y = d * math.cos(a), d * math.sin(a)
        if all(math.hypot(x - tx, y - ty) > radius + tr + 1.0 for tx, ty, tr in taken):
            taken.append((x, y, radius))
            return x, y
    raise RuntimeError("no free spot left in the scene")


def _density(row: list[float]) -> float:
    return 60.0 * 10.0 / max(10.0, math.hypot(row[0], row[1]))


def build_cuboid_scenes(media: Path, n: int = 40, seed: int = 21) -> CuboidScenes:
    """Draws the point clouds into ``media`` (one ``.bin`` each); returns their labels (with the
    planted errors), the truth and the detector's boxes."""
    rng = np.random.default_rng(seed)
    media.mkdir(parents=True, exist_ok=True)
    out = CuboidScenes(planted={k: [] for k in KINDS})
    kinds = [k for k in KINDS for _ in range(PER_KIND)]
    plant = dict(zip(rng.permutation(n)[: len(kinds)].tolist(), kinds, strict=True))
    for f in range(n):
        fid = f"lidar-{f:04d}"
        r = np.sqrt(rng.uniform(2.0**2, RANGE**2, 1800))
        r = np.concatenate([r, rng.uniform(2.0, RANGE, 1200)])  # denser near the sensor
        a = rng.uniform(-math.pi, math.pi, len(r))
        ground = np.column_stack([r * np.cos(a), r * np.sin(a), rng.normal(0, 0.02, len(r)),
                                  rng.uniform(0.05, 0.25, len(r))])  # fmt: skip
        taken: list[tuple[float, float, float]] = []
        classes = [CAR] * int(rng.integers(2, 4)) + [PEDESTRIAN] * int(rng.integers(1, 3))
        classes += [CONE] * int(rng.integers(0, 3))
        objects = []
        clouds = [ground]
        for cls in classes:
            radius = {CAR: 2.6, PEDESTRIAN: 0.6, CONE: 0.4}[cls]
            row = _object(rng, cls, *_place(rng, taken, radius))
            objects.append((cls, row))
            clouds.append(_box_points(rng, row, _density(row), {CAR: 0.6, PEDESTRIAN: 0.3, CONE: 0.9}[cls]))
        for _ in range(int(rng.integers(0, 3))):  # bushes: a blob of points, no object
            bx, by = _place(rng, taken, 1.2)
            m = int(rng.integers(60, 160))
            d = rng.normal(size=(m, 3))
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            size = rng.uniform([0.6, 0.6, 0.4], [1.2, 1.2, 0.7])
            blob = d * size * rng.uniform(0.7, 1.0, (m, 1)) + np.array([bx, by, size[2]])
            clouds.append(np.column_stack([blob, rng.uniform(0.1, 0.3, m)]))
        cloud = np.concatenate(clouds).astype(np.float32)
        path = media / f"{fid}.bin"
        cloud.tofile(path)
        labels = []
        for cls, row in objects:
            labels.append([f"obj-{len(labels):02d}", cls, list(row)])
        what = plant.get(f, "")
        planted_id = _plant(rng, what, labels, taken, out, fid)
        if what:
            out.planted[what].append((fid, planted_id))
        out.frame_ids.append(fid)
        out.media_uris.append(path.resolve().as_uri())
        out.labels.append([(oid, cls, row, int(inside(row, cloud).sum())) for oid, cls, row in labels])
        out.truth.append(objects)
        out.predictions.append([(f"det-{j:02d}", cls, score, row) for j, (cls, score, row) in enumerate(detect(cloud))])
    return out


def _plant(rng: np.random.Generator, what: str, labels: list[list[Any]], taken: list[tuple[float, float, float]],
           out: CuboidScenes, fid: str) -> str:  # fmt: skip
    """Plants the error ``what`` in a frame's ``labels`` (in place); returns the object id it concerns."""
    cars = [lab for lab in labels if lab[1] == CAR]
    if what == "missing_label":
        gone = labels.pop(int(rng.integers(len(labels))) if rng.random() < 0.5 else labels.index(cars[0]))
        out.unlabeled[fid] = gone[2]
        return ""
    if what == "spurious_label":
        x, y = _place(rng, taken, 2.6)
        row = _object(rng, CAR, x, y)
        labels.append([f"obj-{len(labels):02d}", CAR, row])
        return labels[-1][0]
    if what == "class_swap":
        lab = labels[int(rng.integers(len(labels)))]
        lab[1] = int(rng.choice([c for c in range(len(CLASSES)) if c != lab[1]]))
        return str(lab[0])
    if not what:
        return ""
    lab = cars[int(rng.integers(len(cars)))]
    row = lab[2]
    if what == "mislocalized_centre":
        # forward or back along its heading, and a little across: half the box still overlaps
        along, across = float(rng.choice([-1, 1])) * rng.uniform(1.3, 1.6), rng.uniform(-0.2, 0.2)
        c, s = math.cos(row[6]), math.sin(row[6])
        row[0] += c * along - s * across
        row[1] += s * along + c * across
    elif what == "mislocalized_size":
        row[3] *= 1.5
        row[4] *= 1.5
        row[5] *= 1.2
        row[2] = row[5] / 2
    elif what == "mislocalized_heading":
        row[6] += float(rng.choice([-1, 1])) * rng.uniform(math.radians(50), math.radians(65))
    return str(lab[0])


def _min_area_rectangle(xy: np.ndarray) -> tuple[float, float, float, float, float]:
    """The smallest rectangle around ground-plane points (rotating calipers over their convex hull):
    centre x, y, the side along the heading (the longer), the other, and the heading in (-pi/2, pi/2]."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        hull = xy[ConvexHull(xy).vertices]
    except (QhullError, ValueError):
        hull = xy
    edges = np.diff(np.vstack([hull, hull[:1]]), axis=0)
    angles = np.unique(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), math.pi / 2))
    best = None
    for a in angles:
        c, s = math.cos(a), math.sin(a)
        u, v = hull @ np.array([c, s]), hull @ np.array([-s, c])
        area = (u.max() - u.min()) * (v.max() - v.min())
        if best is None or area < best[0]:
            best = (area, a, u.min(), u.max(), v.min(), v.max())
    _, a, u0, u1, v0, v1 = best  # type: ignore[misc]
    c, s = math.cos(a), math.sin(a)
    uc, vc = (u0 + u1) / 2, (v0 + v1) / 2
    cx, cy = c * uc - s * vc, s * uc + c * vc
    du, dv = u1 - u0, v1 - v0
    length, width, heading = (du, dv, a) if du >= dv else (dv, du, a + math.pi / 2)
    heading = (heading + math.pi / 2) % math.pi - math.pi / 2  # into [-pi/2, pi/2)
    return float(cx), float(cy), float(length), float(width), float(heading)


def _classify(length: float, width: float, height: float) -> int | None:
    if height < 1.1 and length < 0.7:
        return CONE
    if height >= 1.3 and length < 1.2:
        return PEDESTRIAN
    if length >= 3.0 and width >= 1.3 and height >= 1.1:
        return CAR
    return None


def detect(cloud: np.ndarray) -> list[tuple[int, float, list[float]]]:
    """The detector: (class, score, cuboid row) of every object found in a point cloud (N, 4)."""
    from sklearn.cluster import DBSCAN

    above = cloud[cloud[:, 2] > GROUND_Z]
    if len(above) == 0:
        return []
    groups = DBSCAN(eps=0.6, min_samples=4).fit_predict(above[:, :2])
    found = []
    for g in range(int(groups.max()) + 1):
        pts = above[groups == g]
        if len(pts) < 4:
            continue
        cx, cy, length, width, yaw = _min_area_rectangle(pts[:, :2].astype(np.float64))
        height = float(pts[:, 2].max())
        cls = _classify(length, width, height)
        if cls is None:
            continue
        if cls == CONE:
            yaw = 0.0
        row = [cx, cy, height / 2, max(width, 0.1), max(length, 0.1), height, yaw]
        # how well the points lie on the box's faces: the share within 10 cm of a side or of the top
        c, s = math.cos(yaw), math.sin(yaw)
        u = c * (pts[:, 0] - cx) + s * (pts[:, 1] - cy)
        v = -s * (pts[:, 0] - cx) + c * (pts[:, 1] - cy)
        gap = np.minimum.reduce([np.abs(np.abs(u) - length / 2), np.abs(np.abs(v) - width / 2),
                                 np.abs(pts[:, 2] - height)])  # fmt: skip
        fit = float((gap < 0.1).mean())
        score = fit * (1.0 - math.exp(-len(pts) / 15.0))
        found.append((cls, round(min(0.99, max(0.01, score)), 4), [round(float(v), 4) for v in row]))
    return found


def ingest_cuboids(client: Client, out: Path, data_dir: Path) -> tuple[dict[str, Any], CuboidScenes]:
    """Builds the point clouds and uploads their cuboid labels and the detector's boxes."""
    from shoal.demo.dataset import _create_all
    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sdk import Cuboid, LabeledObject, PredictedObject, UploadColumns

    t0 = time.monotonic()
    scenes = build_cuboid_scenes(data_dir / "media" / "scenes3d")
    (out / "scenes3d_planted.json").write_text(json.dumps(scenes.planted) + "\n")
    _create_all((
        (client.ingest.CreateProject, pb.CreateProjectRequest(project=pb.Project(
            name=PROJECT, display_name="scenes3d (3-D cuboids in point clouds)", task_type=pb.TASK_TYPE_CUBOIDS_3D,
            classes=[pb.ClassDef(id=i, name=n) for i, n in enumerate(CLASSES)]))),
        (client.ingest.CreateDataset, pb.CreateDatasetRequest(project=PROJECT, dataset=pb.Dataset(
            name=DATASET, kind=pb.DATASET_KIND_LABELED))),
        (client.ingest.CreateInferenceSet, pb.CreateInferenceSetRequest(project=PROJECT, inference_set=pb.InferenceSet(
            name=INFERENCE_SET, dataset=DATASET, model_name="dbscan-boxes", model_version="1"))),
    ))  # fmt: skip

    def cuboid(row: list[float], points: int | None = None) -> Cuboid:
        return Cuboid(*row, num_points=points)

    n = len(scenes.frame_ids)
    cols = UploadColumns(
        frame_ids=scenes.frame_ids,
        media_uris=scenes.media_uris,
        media_type=pb.MEDIA_TYPE_POINT_CLOUD,
        coordinate_frames=["ego"] * n,
        objects=[[LabeledObject(oid, k, cuboid=cuboid(row, pts)) for oid, k, row, pts in labels]
                 for labels in scenes.labels],
        inference_set=INFERENCE_SET,
        predictions=[[PredictedObject(oid, k, s, cuboid=cuboid(row)) for oid, k, s, row in p]
                     for p in scenes.predictions],
    )  # fmt: skip
    result = client.upload(PROJECT, DATASET, cols, progress=False)
    status = client.wait_for_upload(PROJECT, result.upload_id, timeout=300)
    counts = {
        "frames": n,
        "labeled_objects": sum(len(x) for x in scenes.labels),
        "predicted_objects": sum(len(x) for x in scenes.predictions),
        "points": sum(Path(u.removeprefix("file://")).stat().st_size // 16 for u in scenes.media_uris),
        "state": pb.UploadState.Name(status.state),
        "planted": {k: len(v) for k, v in scenes.planted.items()},
    }
    log.info("scenes3d: %s (%.1fs)", counts, time.monotonic() - t0)
    return counts, scenes


def _is_planted(scenes: CuboidScenes, kinds: tuple[str, ...], frame_id: str, object_id: str, predicted: bool) -> bool:
    """Whether a flagged object is one of the errors of ``kinds`` planted: the labeled object itself,
    or for a missing label the prediction on the unlabeled object (its centre within a metre)."""
    for kind in kinds:
        if kind == "missing_label":
            row = scenes.unlabeled.get(frame_id)
            if not predicted or row is None or (frame_id, "") not in scenes.planted[kind]:
                continue
            i = scenes.frame_ids.index(frame_id)
            box = next((r for oid, _, _, r in scenes.predictions[i] if oid == object_id), None)
            if box is not None and math.hypot(box[0] - row[0], box[1] - row[1]) < 1.0:
                return True
        elif not predicted and (frame_id, object_id) in scenes.planted[kind]:
            return True
    return False


def bev_figure(
    scenes: CuboidScenes, frame_id: str, flagged: list[dict[str, Any]], points: int = 1500
) -> dict[str, Any]:
    """What the report draws of a frame seen from above: its points (a subsample, seeded by the frame),
    its labeled and predicted cuboids' footprints, the flagged objects and where the first of them is."""
    i = scenes.frame_ids.index(frame_id)
    cloud = np.fromfile(Path(scenes.media_uris[i].removeprefix("file://")), dtype=np.float32).reshape(-1, 4)

    def footprint(row: list[float]) -> list[list[float]]:
        return np.round(corners(row), 2).tolist()

    # the first flagged object's centre, to zoom in on
    rows = {(False, oid): row for oid, _, row, _ in scenes.labels[i]}
    rows |= {(True, oid): row for oid, _, _, row in scenes.predictions[i]}
    first = next((rows[f["predicted"], f["object_id"]] for f in flagged if (f["predicted"], f["object_id"]) in rows),
                 [0.0, 0.0])  # fmt: skip
    # a sample of the whole cloud, and every point near the first flag (for the close-up)
    rng = np.random.default_rng(i)
    near = np.flatnonzero(np.hypot(cloud[:, 0] - first[0], cloud[:, 1] - first[1]) < 9.0)[:points]
    keep = np.union1d(rng.choice(len(cloud), size=min(points, len(cloud)), replace=False), near)
    sample = cloud[keep]
    return {
        "frame_id": frame_id,
        "range": RANGE,
        "focus": [round(float(first[0]), 2), round(float(first[1]), 2)],
        "points": [(round(float(x), 2), round(float(y), 2), bool(z > GROUND_Z)) for x, y, z, _ in sample],
        "labels": [{"object_id": oid, "class": CLASSES[k], "corners": footprint(row)} for oid, k, row, _ in
                   scenes.labels[i]],
        "predictions": [{"object_id": oid, "class": CLASSES[k], "score": s, "corners": footprint(row)} for
                        oid, k, s, row in scenes.predictions[i]],
        "flagged": flagged,
    }  # fmt: skip


def score_cuboids(client: Client, scenes: CuboidScenes, out: Path) -> dict[str, Any]:
    """The detector's cuboid metrics (nuScenes' and BEV-IoU AP), then the label-issue job, scored
    against what was planted: per kind, how many were flagged (as what they are) and how many are
    among the first flagged of their issue type; the flags' precision over every type."""
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.common.v1 import common_pb2 as cpb
    from shoal.demo.score import _finish

    m = client.analysis.GetCuboidMetrics(
        apb.GetCuboidMetricsRequest(project=PROJECT, inference_set=INFERENCE_SET)
    ).metrics
    job = client.analysis.StartLabelIssues(
        apb.StartLabelIssuesRequest(project=PROJECT, inference_set=INFERENCE_SET, rerun=True)
    ).job
    job = _finish(client, job, "cuboid label-issues", project=PROJECT)
    flagged: dict[str, list[Any]] = {}
    for issue in sorted({t for t, _ in ISSUE_OF.values()}):
        t = apb.DetectionIssueType.Value(f"DETECTION_ISSUE_TYPE_{issue.upper()}")
        resp = client.analysis.QueryDetectionLabelIssues(apb.QueryDetectionLabelIssuesRequest(
            project=PROJECT, job_id=job.job_id, issue_types=[t], page=cpb.PageRequest(page_size=1000)))  # fmt: skip
        flagged[issue] = list(resp.objects)
    kinds = {}
    for kind in KINDS:
        issue, what = ISSUE_OF[kind]
        same = tuple(k for k in KINDS if ISSUE_OF[k][0] == issue)
        first = flagged[issue][: sum(len(scenes.planted[k]) for k in same)]
        hits = [o for o in flagged[issue] if _is_planted(scenes, (kind,), o.ref.frame_id, o.ref.object_id, o.predicted)]
        kinds[kind] = {
            "planted": len(scenes.planted[kind]),
            "found": len(hits),
            "found_as_planted": sum(1 for o in hits if not what or o.mislocalization == what),
            "planted_in_first": sum(
                1 for o in first if _is_planted(scenes, (kind,), o.ref.frame_id, o.ref.object_id, o.predicted)
            ),
        }
    every = [o for objects in flagged.values() for o in objects]
    right = sum(1 for o in every if _is_planted(scenes, KINDS, o.ref.frame_id, o.ref.object_id, o.predicted))
    # the figures: for three issue types, the frame of the type's first-ranked flag
    worst = sorted(every, key=lambda o: o.score)
    frames: list[str] = []
    shown: set[int] = set()
    for o in worst:
        if len(frames) < 3 and o.issue_type not in shown and o.ref.frame_id not in frames:
            shown.add(o.issue_type)
            frames.append(o.ref.frame_id)
    gallery = [
        bev_figure(scenes, f, [
            {"object_id": o.ref.object_id, "predicted": o.predicted,
             "kind": apb.DetectionIssueType.Name(o.issue_type).removeprefix("DETECTION_ISSUE_TYPE_").lower(),
             "mislocalization": o.mislocalization, "score": round(o.score, 3),
             "planted": _is_planted(scenes, KINDS, f, o.ref.object_id, o.predicted)}
            for o in worst if o.ref.frame_id == f])
        for f in frames
    ]  # fmt: skip
    nu = m.nuscenes
    summary = {
        "job_id": job.job_id,
        "nuscenes": {
            "map": round(nu.map, 4),
            "nds": round(nu.nds, 4),
            "mate": round(nu.mate, 4),
            "mase": round(nu.mase, 4),
            "maoe": round(nu.maoe, 4),
            "per_class_ap": {c.class_name: round(c.ap, 4) for c in nu.per_class},
        },
        "bev_ap": {
            "iou_thresholds": list(m.bev.iou_thresholds),
            "map": round(m.bev.map, 4),
            "map_at": [round(v, 4) for v in m.bev.map_at],
            "per_class_ap": {c.class_name: round(c.ap, 4) for c in m.bev.per_class},
        },
        "iou_3d_map": round(m.iou_3d.map, 4),
        "label_issues": {
            "planted": sum(len(v) for v in scenes.planted.values()),
            "flagged": len(every),
            "planted_flagged": right,
            "precision": round(right / len(every), 4) if every else 0.0,
            "by_kind": kinds,
        },
        "gallery": gallery,
    }
    log.info("scenes3d: nuScenes mAP %.3f, NDS %.3f, BEV mAP %.3f; label issues %s", nu.map, nu.nds, m.bev.map,
             summary["label_issues"])  # fmt: skip
    return summary
