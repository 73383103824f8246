"""3-D cuboid projects through the server: a generated nuScenes-style set (the ten nuScenes classes, barrier and
traffic_cone among them, frames without boxes, score ties, unknown velocities and attributes, frames in the ego
frame and in the world with their ego poses) measured by GetCuboidMetrics equal to the nuScenes and IoU-AP cores
on the same cuboids and to nuscenes-devkit, also under distance, point-count, confidence and frame filters; the
matches of the confusion matrix opened with their cuboids, distance and points and filtered by them; comparison,
slices and gates of a cuboid project; the points inside labeled cuboids counted at ingest from the frames' point
clouds; bad requests refused naming the field."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest

from shoal.analysis.cuboid_metrics import cuboid_report
from shoal.analysis.nuscenes import DETECTION_NAMES, Cuboids, IouParams, evaluate, iou_ap, nuscenes_params
from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.client import error_detail
from shoal.common.cuboids import quaternion_from_yaw, yaw_from_quaternion
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.harness import nuscenes_devkit
from tests.server.conftest import Running, start_server
from tests.server.test_ingest_upload import _wait_done
from tests.unit.test_cuboid_metrics import ATTRIBUTES, generate


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("clouds")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, chdb_path: pathlib.Path, media: pathlib.Path) -> Iterator[Running]:
    """The module's server, allowed to read the point clouds under ``media``."""
    from tests.conftest import server_settings

    settings = server_settings(tmp_path_factory.mktemp("server") / "data", chdb_path, console_media_roots=[str(media)])
    r = start_server(settings)
    yield r
    r.server.stop(grace=1)


def _create(c, p: str, names: tuple[str, ...] = DETECTION_NAMES, sets: tuple[str, ...] = ("m",),
            task: int = pb.TASK_TYPE_CUBOIDS_3D) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=p, task_type=task, classes=[pb.ClassDef(id=i, name=n) for i, n in enumerate(names)])))  # fmt: skip
    c.ingest.CreateDataset(
        pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(name="val", kind=pb.DATASET_KIND_LABELED))
    )
    for name in sets:
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name=name, dataset="val", model_name=name, model_version="1")))  # fmt: skip


def _upload(c, p: str, chunk: pb.UploadChunk, upload_id: str) -> None:  # type: ignore[no-untyped-def]
    c.ingest.Upload(iter([pb.UploadRequest(project=p, dataset="val", upload_id=upload_id, chunk=chunk)]))
    st = _wait_done(c, p, upload_id)
    assert st.state == pb.UPLOAD_STATE_COMPLETED, list(st.errors)


def _cuboid(row, velocity=(math.nan, math.nan), attribute: str = "", points: int = -1) -> pb.Cuboid:  # type: ignore[no-untyped-def]
    x, y, z, w, length, h, yaw = (float(v) for v in row)
    out = pb.Cuboid(x=x, y=y, z=z, width=w, length=length, height=h, yaw=yaw, attribute=attribute)
    if not math.isnan(velocity[0]):
        out.vx, out.vy = (float(v) for v in velocity)
    if points >= 0:
        out.num_points = points
    return out


def _turn(xy: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Each row of (N, 2) ``xy`` turned by its ``angle`` counter-clockwise."""
    c, s = np.cos(angle), np.sin(angle)
    return np.column_stack([c * xy[:, 0] - s * xy[:, 1], s * xy[:, 0] + c * xy[:, 1]])


@dataclass
class Side:
    """Labeled or predicted cuboids as uploaded (each frame's own coordinate frame)."""

    frame: np.ndarray
    cls: np.ndarray
    box: np.ndarray
    velocity: np.ndarray
    attr: np.ndarray
    #: centre's distance from the ego vehicle
    distance: np.ndarray
    #: labels: the points given (-1: none given); predictions: float32 scores
    points: np.ndarray | None = None
    score: np.ndarray | None = None

    def cuboids(self, keep: np.ndarray) -> Cuboids:
        return Cuboids(frame=self.frame[keep], category=self.cls[keep], box=self.box[keep],
                       score=None if self.score is None else self.score[keep], velocity=self.velocity[keep],
                       attribute=self.attr[keep])  # fmt: skip


@dataclass
class Scene:
    frames: np.ndarray  # integer frame ids, sorted (the evaluation order)
    world: np.ndarray  # per frame of ``frames``: given in the world frame
    ego: np.ndarray  # per frame: the ego vehicle's x, y in the world
    heading: np.ndarray  # per frame: its yaw in the world
    rainy: np.ndarray  # per frame: metadata weather = rain
    gt: Side
    dt: Side
    devkit: dict[str, np.ndarray]  # the set in world coordinates, as the devkit takes it


def _scene(seed: int, n: int = 60) -> Scene:
    """generate()'s nuScenes-format set, each frame given an ego pose near its objects and put either in the
    world frame (with its pose) or in the ego frame (the objects moved and turned into it)."""
    a = generate(seed, frames=n)
    rng = np.random.default_rng(seed + 1000)
    frames = np.sort(a["frames"])
    ego = np.array([600.0, 1600.0]) + rng.uniform(-15, 15, (n, 2))
    heading = rng.uniform(-np.pi, np.pi, n)
    world = rng.random(n) < 0.5
    sides = []
    for p in ("g", "d"):
        code = a[f"{p}_frame"]
        f = np.searchsorted(frames, code)
        t, psi = ego[f], heading[f]
        centre, yaw = a[f"{p}_translation"].copy(), yaw_from_quaternion(a[f"{p}_rotation"])
        velocity = a[f"{p}_velocity"].copy()
        local = ~world[f]
        centre[local, :2] = _turn(centre[local, :2] - t[local], -psi[local])
        yaw = np.where(local, yaw - psi, yaw)
        velocity[local] = _turn(velocity[local], -psi[local])
        box = np.column_stack([centre, a[f"{p}_size"], yaw])
        distance = np.hypot(*(a[f"{p}_translation"][:, :2] - t).T)
        side = Side(code, a[f"{p}_cls"], box, velocity, a[f"{p}_attr"], distance)
        if p == "g":
            side.points = np.where(rng.random(len(code)) < 0.85, rng.integers(0, 60, len(code)), -1)
        else:
            side.score = a["d_score"].astype(np.float32).astype(np.float64)
        sides.append(side)
    devkit = {**a, "frames": frames, "d_score": sides[1].score}
    return Scene(frames, world, ego, heading, rng.random(n) < 0.5, sides[0], sides[1], devkit)


def _upload_scene(c, p: str, s: Scene) -> None:  # type: ignore[no-untyped-def]
    chunk = pb.UploadChunk(inference_set="m")
    for i, code in enumerate(s.frames.tolist()):
        f = chunk.frames.add(frame_id=str(code), media_uri=f"s3://lidar/{code}.bin",
                             media_type=pb.MEDIA_TYPE_POINT_CLOUD, coordinate_frame=pb.COORDINATE_FRAME_EGO,
                             metadata={"weather": cpb.Value(string_value="rain" if s.rainy[i] else "sun")})  # fmt: skip
        if s.world[i]:
            w, _, _, z = quaternion_from_yaw(s.heading[i])
            f.coordinate_frame = pb.COORDINATE_FRAME_WORLD
            f.ego_pose.CopyFrom(pb.Pose(x=s.ego[i, 0], y=s.ego[i, 1], z=0.0, rotation=pb.Quaternion(w=w, z=z)))
        lab, inf = chunk.labels.add(frame_id=str(code)), chunk.inferences.add(frame_id=str(code))
        for j in np.flatnonzero(s.gt.frame == code).tolist():
            attr = ATTRIBUTES[s.gt.attr[j]] if s.gt.attr[j] >= 0 else ""
            lab.objects.add(object_id=f"g{j:05d}", class_id=int(s.gt.cls[j]),
                            cuboid=_cuboid(s.gt.box[j], s.gt.velocity[j], attr, int(s.gt.points[j])))  # fmt: skip
        for j in np.flatnonzero(s.dt.frame == code).tolist():
            attr = ATTRIBUTES[s.dt.attr[j]] if s.dt.attr[j] >= 0 else ""
            inf.objects.add(object_id=f"d{j:05d}", class_id=int(s.dt.cls[j]), score=float(s.dt.score[j]),
                            cuboid=_cuboid(s.dt.box[j], s.dt.velocity[j], attr))  # fmt: skip
    _upload(c, p, chunk, f"{p}-scene")


def _expected(s: Scene, keep_gt: np.ndarray, keep_dt: np.ndarray, frames: np.ndarray | None = None,
              thresholds: tuple[float, ...] = (0.5, 0.7)) -> tuple:  # type: ignore[type-arg]  # fmt: skip
    gt, dt = s.gt.cuboids(keep_gt), s.dt.cuboids(keep_dt)
    frames = s.frames if frames is None else frames
    classes = list(range(len(DETECTION_NAMES)))
    nus = evaluate(
        gt=gt, dt=dt, frames=frames, classes=classes, params=nuscenes_params(dict(enumerate(DETECTION_NAMES)))
    )
    bev = iou_ap(gt=gt, dt=dt, frames=frames, classes=classes, params=IouParams(kind="bev_iou", thresholds=thresholds))
    vol = iou_ap(gt=gt, dt=dt, frames=frames, classes=classes, params=IouParams(kind="iou_3d", thresholds=thresholds))
    return nus, bev, vol, gt, dt


def _same(a: float, b: float, tol: float = 1e-9) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=tol)


def _assert_equal(got: apb.CuboidMetrics, expected: tuple) -> None:  # type: ignore[type-arg]
    nus, bev, vol, gt, dt = expected
    n = got.nuscenes
    for field, key in (("map", "mAP"), ("nds", "NDS"), ("mate", "mATE"), ("mase", "mASE"), ("maoe", "mAOE"),
                       ("mave", "mAVE"), ("maae", "mAAE")):  # fmt: skip
        assert _same(getattr(n, field), nus.stats[key]), field
    assert list(n.distance_thresholds) == [0.5, 1.0, 2.0, 4.0]
    for pc in n.per_class:
        want = nus.per_class[pc.class_id]
        assert pc.class_name == DETECTION_NAMES[pc.class_id]
        assert _same(pc.ap, want["AP"]) and all(
            _same(x, want[f"AP@{t:g}"]) for x, t in zip(pc.ap_at, n.distance_thresholds)
        )
        for field in ("ate", "ase", "aoe", "ave", "aae"):
            assert _same(getattr(pc, field), want[field.upper()]), (pc.class_name, field)
        assert pc.ground_truth == int((gt.category == pc.class_id).sum())
        assert pc.predicted == int((dt.category == pc.class_id).sum())
    assert (got.ground_truth_objects, got.predicted_objects) == (len(gt), len(dt))
    for m, ref, kind in ((got.bev, bev, "bev_iou"), (got.iou_3d, vol, "iou_3d")):
        assert m.iou_type == kind and list(m.iou_thresholds) == pytest.approx(ref.params.thresholds)
        assert _same(m.map, ref.stats["AP"]), kind
        assert all(_same(x, ref.stats[f"AP@{t:g}"]) for x, t in zip(m.map_at, ref.params.thresholds))
        for pc in m.per_class:
            assert _same(pc.ap, ref.per_class[pc.class_id]["AP"]), (kind, pc.class_id)


def _summary(m: apb.CuboidMetrics) -> dict[str, float]:
    """A response's nuScenes summary, keyed as the core keys it."""
    n = m.nuscenes
    return {"mAP": n.map, "mATE": n.mate, "mASE": n.mase, "mAOE": n.maoe, "mAVE": n.mave, "mAAE": n.maae, "NDS": n.nds}


def _metrics(c, p: str, **fields) -> apb.CuboidMetrics:  # type: ignore[no-untyped-def]
    return c.analysis.GetCuboidMetrics(apb.GetCuboidMetricsRequest(project=p, inference_set="m", **fields)).metrics


def test_cuboid_metrics_equal_the_cores_and_the_devkit(shared: Running, project: str) -> None:
    s = _scene(0)
    rain = cpb.Filter(all=[cpb.Condition(field="metadata.weather", equals=cpb.Value(string_value="rain"))])
    with shared.client(shared.admin_key) as c:
        _create(c, project)
        _upload_scene(c, project, s)
        everything = _metrics(c, project)
        near = _metrics(c, project, min_distance=5.0, max_distance=20.0)
        counted = _metrics(c, project, min_points=1, max_points=40, confidence_threshold=0.3, iou_thresholds=[0.3, 0.5])
        rainy = _metrics(c, project, frame_filter=rain)
    every_gt, every_dt = np.ones(len(s.gt.frame), bool), np.ones(len(s.dt.frame), bool)
    assert (everything.frames, everything.dataset, everything.inference_set) == (len(s.frames), "val", "m")
    _assert_equal(everything, _expected(s, every_gt, every_dt))
    # what was compared is not trivial: scores between 0 and 1, a cone without AOE, a barrier without AVE
    n = everything.nuscenes
    assert 0.05 < n.map < n.nds < 0.9 and 0.01 < everything.iou_3d.map < everything.bev.map < 0.9
    cone, barrier = (n.per_class[DETECTION_NAMES.index(x)] for x in ("traffic_cone", "barrier"))
    assert math.isnan(cone.aoe) and math.isnan(barrier.ave) and 0 < cone.ate < 1 and 0 < barrier.aoe < 1
    assert list(everything.bev.iou_thresholds) == [0.5, 0.7]
    # read 7 frames at a time (once per family of metrics): the same numbers
    chunked = cuboid_report(shared.server.stores.metrics, project, "val", "m", dict(enumerate(DETECTION_NAMES)),
                            chunk_frames=7)  # fmt: skip
    assert chunked.nuscenes.stats == pytest.approx(_summary(everything), nan_ok=True)
    assert (chunked.bev.stats["AP"], chunked.iou_3d.stats["AP"]) == (everything.bev.map, everything.iou_3d.map)
    assert (chunked.ground_truth, chunked.predicted) == (everything.ground_truth_objects, everything.predicted_objects)

    # labels and predictions 5 to 20 m from the ego vehicle, in ego and world frames alike
    _assert_equal(near, _expected(s, (s.gt.distance >= 5) & (s.gt.distance <= 20),
                                  (s.dt.distance >= 5) & (s.dt.distance <= 20)))  # fmt: skip
    assert 0 < near.ground_truth_objects < everything.ground_truth_objects and near.nuscenes.map != n.map
    # labels with 1 to 40 points given (unknown counts left out), predictions scored 0.3 or more
    keep_gt = (s.gt.points >= 1) & (s.gt.points <= 40)
    _assert_equal(counted, _expected(s, keep_gt, s.dt.score >= 0.3, thresholds=(0.3, 0.5)))
    assert counted.ground_truth_objects < int((s.gt.points >= 0).sum()) and counted.nuscenes.map != n.map
    # frames of a metadata value
    wet = s.frames[s.rainy]
    _assert_equal(rainy, _expected(s, np.isin(s.gt.frame, wet), np.isin(s.dt.frame, wet), frames=wet))
    assert rainy.frames == len(wet) < len(s.frames)

    # the devkit on the same set in world coordinates (the float32 scores the store keeps)
    python = nuscenes_devkit.ensure(install=False) or nuscenes_devkit.ensure()
    if python is None:
        pytest.fail(
            "the nuScenes devkit's venv is missing and could not be made: run scripts/ensure-nuscenes-devkit.sh"
        )
    ref = nuscenes_devkit.run(s.devkit, python=python, curves=False)
    assert n.map == pytest.approx(ref["mean_ap"], abs=1e-6) and n.nds == pytest.approx(ref["nd_score"], abs=1e-6)
    for field, metric in (("mate", "trans_err"), ("mase", "scale_err"), ("maoe", "orient_err"), ("mave", "vel_err"),
                          ("maae", "attr_err")):  # fmt: skip
        assert getattr(n, field) == pytest.approx(ref["tp_errors"][metric], abs=1e-6), field
    for pc in n.per_class:
        assert pc.ap == pytest.approx(ref["mean_dist_aps"][pc.class_name], abs=1e-6), pc.class_name


SMALL = ("car", "pedestrian", "barrier")
CAR, PED, BARRIER = range(3)
QUARTER = quaternion_from_yaw(math.pi / 2)  # the world frame's ego vehicle heads along y


def _car(x: float, y: float, yaw: float = 0.0, z: float = 0.8, **more: object) -> pb.Cuboid:
    return pb.Cuboid(x=x, y=y, z=z, width=1.9, length=4.5, height=1.6, yaw=yaw, **more)  # type: ignore[arg-type]


def _small(c, p: str) -> None:  # type: ignore[no-untyped-def]
    """Frame e1 (ego frame): a car found (10 m away, 20 points), a pedestrian taken for a car (50 m, 3 points), a
    barrier missed (7.07 m, points unknown), a car predicted where nothing is (60 m). Frame w1 (world frame, the
    ego vehicle at (100, 200)): a car found 15 m away (12 points). Set m2 finds the pedestrian, misses the first
    car."""
    _create(c, p, SMALL, sets=("m", "m2"))
    chunk = pb.UploadChunk(inference_set="m")
    chunk.frames.add(
        frame_id="e1",
        media_uri="s3://lidar/e1.bin",
        media_type=pb.MEDIA_TYPE_POINT_CLOUD,
        coordinate_frame=pb.COORDINATE_FRAME_EGO,
        metadata={"weather": cpb.Value(string_value="rain")},
    )
    chunk.frames.add(frame_id="w1", media_uri="s3://lidar/w1.bin", media_type=pb.MEDIA_TYPE_POINT_CLOUD,
                     coordinate_frame=pb.COORDINATE_FRAME_WORLD,
                     ego_pose=pb.Pose(x=100, y=200, z=0, rotation=pb.Quaternion(w=QUARTER[0], z=QUARTER[3])),
                     metadata={"weather": cpb.Value(string_value="sun")})  # fmt: skip
    e1 = chunk.labels.add(frame_id="e1")
    e1.objects.add(object_id="a", class_id=CAR, cuboid=_car(10, 0, vx=3.0, vy=0.0, attribute="vehicle.moving",
                                                            num_points=20))  # fmt: skip
    e1.objects.add(object_id="b", class_id=PED, cuboid=_car(30, 40, num_points=3))
    e1.objects.add(object_id="c", class_id=BARRIER, cuboid=pb.Cuboid(x=5, y=5, z=0.5, width=2.5, length=0.5, height=1))
    chunk.labels.add(frame_id="w1").objects.add(object_id="d", class_id=CAR, cuboid=_car(100, 215, 1.0, num_points=12))
    inf = chunk.inferences.add(frame_id="e1")
    inf.objects.add(object_id="p1", class_id=CAR, score=0.9, cuboid=_car(10.2, 0, vx=2.5, vy=0.5))
    inf.objects.add(object_id="p2", class_id=CAR, score=0.8, cuboid=_car(30, 40.1))
    inf.objects.add(object_id="p3", class_id=CAR, score=0.7, cuboid=_car(0, 60))
    chunk.inferences.add(frame_id="w1").objects.add(
        object_id="p4", class_id=CAR, score=0.6, cuboid=_car(100.1, 215, 1.0)
    )
    _upload(c, p, chunk, f"{p}-m")
    chunk = pb.UploadChunk(inference_set="m2")
    inf = chunk.inferences.add(frame_id="e1")
    inf.objects.add(object_id="q2", class_id=PED, score=0.8, cuboid=_car(30, 40.1))
    inf.objects.add(object_id="q3", class_id=CAR, score=0.7, cuboid=_car(0, 60))
    chunk.inferences.add(frame_id="w1").objects.add(
        object_id="q4", class_id=CAR, score=0.6, cuboid=_car(100.1, 215, 1.0)
    )
    _upload(c, p, chunk, f"{p}-m2")


def _matches(c, p: str, **fields) -> dict[tuple[str, str], apb.DetectionMatch]:  # type: ignore[no-untyped-def]
    fields = {"any_label_class": True, "any_predicted_class": True, **fields}
    req = apb.QueryDetectionMatchesRequest(project=p, inference_set="m", page=cpb.PageRequest(page_size=100), **fields)
    resp = c.analysis.QueryDetectionMatches(req)
    assert resp.page.total_count == len(resp.matches) and not resp.page.next_page_token
    return {(m.label_object_id, m.predicted_object_id): m for m in resp.matches}


def test_matches_show_and_filter_by_distance_and_points(shared: Running, project: str) -> None:
    with shared.client(shared.admin_key) as c:
        _small(c, project)
        confusion = c.analysis.GetDetectionConfusion(apb.GetDetectionConfusionRequest(
            project=project, inference_set="m")).confusion  # fmt: skip
        every = _matches(c, project)
        far = _matches(c, project, min_distance=12)
        near = _matches(c, project, max_distance=12)
        crowded = _matches(c, project, min_points=10)
        sparse = _matches(c, project, max_points=5)
        both = _matches(c, project, min_distance=12, min_points=10)
        rain = cpb.Filter(all=[cpb.Condition(field="metadata.weather", equals=cpb.Value(string_value="rain"))])
        far_in_rain = _matches(c, project, min_distance=12, frame_filter=rain)
        swapped = _matches(c, project, label_class=PED, predicted_class=CAR, any_label_class=False,
                           any_predicted_class=False, min_distance=40, max_distance=55)  # fmt: skip
    # rows: car, pedestrian, barrier, false positive; columns: car, pedestrian, barrier, missed
    assert list(confusion.class_ids) == [CAR, PED, BARRIER]
    assert np.array(confusion.counts).reshape(4, 4).tolist() == [[2, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]]
    shown = {k: (round(m.distance, 3), m.points) for k, m in every.items()}
    assert shown == {("a", "p1"): (10.0, 20), ("b", "p2"): (50.0, 3), ("c", ""): (7.071, -1), ("", "p3"): (60.0, -1),
                     ("d", "p4"): (15.0, 12)}  # fmt: skip
    a = every[("a", "p1")]
    assert (a.label_cuboid.x, a.label_cuboid.length, a.label_cuboid.vx, a.label_cuboid.attribute) == (10, 4.5, 3.0,
                                                                                                      "vehicle.moving")  # fmt: skip
    assert a.label_cuboid.num_points == 20 and a.predicted_cuboid.x == pytest.approx(10.2)
    assert (
        a.predicted_cuboid.vy == 0.5 and not a.predicted_cuboid.HasField("num_points") and not a.HasField("label_box")
    )
    assert every[("d", "p4")].label_cuboid.yaw == 1.0 and a.iou == pytest.approx(4.3 / 4.7, abs=1e-6)
    missed, fp = every[("c", "")], every[("", "p3")]
    assert not missed.label_cuboid.HasField("num_points") and not missed.HasField("predicted_cuboid")
    assert fp.predicted_cuboid.y == 60 and not fp.HasField("label_cuboid")
    assert set(far) == {("b", "p2"), ("", "p3"), ("d", "p4")} and set(near) == {("a", "p1"), ("c", "")}
    assert set(crowded) == {("a", "p1"), ("d", "p4")} and set(sparse) == {("b", "p2")}
    assert (
        set(both) == {("d", "p4")} and set(swapped) == {("b", "p2")} and set(far_in_rain) == {("b", "p2"), ("", "p3")}
    )


def test_comparison_slices_and_gates_of_a_cuboid_project(shared: Running, project: str) -> None:
    with shared.client(shared.admin_key) as c:
        _small(c, project)
        cmp = c.analysis.CompareInferenceSets(apb.CompareInferenceSetsRequest(
            project=project, baseline_inference_set="m", candidate_inference_set="m2"))  # fmt: skip
        sl = c.analysis.GetSlices(apb.GetSlicesRequest(project=project, inference_set="m", group_by="metadata.weather"))
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=project, frame_ids=["e1"], segment=apb.Segment(
            name="rainy", dataset="val", kind=apb.SEGMENT_KIND_REGRESSION_TEST, reason="rain", author="ana",
            gates=[apb.Gate(metric="recall", class_id=CAR, minimum=0.75)])))  # fmt: skip
        gates = {name: c.analysis.EvaluateGates(apb.EvaluateGatesRequest(project=project, inference_set=name)).results
                 for name in ("m", "m2")}  # fmt: skip
    # m2 finds the pedestrian m took for a car, and misses the car m found
    assert (cmp.improved, cmp.regressed, cmp.objects, cmp.frames) == (1, 1, 4, 2)
    per = {d.class_id: d for d in cmp.per_class}
    assert (per[CAR].baseline.precision, per[CAR].baseline.recall) == pytest.approx((0.5, 1.0))
    assert (per[CAR].candidate.precision, per[CAR].candidate.recall) == pytest.approx((0.5, 0.5))
    assert (per[PED].baseline.recall, per[PED].candidate.recall, per[PED].candidate.precision) == (0.0, 1.0, 1.0)
    # rain: a car found of four outcomes (a pedestrian swapped, a barrier missed, a false positive); sun: one of one
    slices = {x.value: (x.frames, x.objects, x.correct) for x in sl.slices}
    assert slices == {"rain": (1, 4, 1), "sun": (1, 1, 1)} and sl.overall_accuracy == pytest.approx(2 / 5)
    assert [(r.value, r.passed) for r in gates["m"]] == [(1.0, True)] and [(r.value, r.passed) for r in gates["m2"]] == [
        (0.0, False)]  # fmt: skip


def _cloud_inside(rng: np.random.Generator, box: tuple[float, ...], n: int) -> np.ndarray:
    """``n`` points strictly inside the cuboid ``box`` (x, y, z, w, l, h, yaw), with intensities."""
    x, y, z, w, length, h, yaw = box
    local = rng.uniform(-0.45, 0.45, (n, 3)) * [length, w, h]
    xy = _turn(local[:, :2], np.full(n, yaw)) + np.array([x, y])
    return np.column_stack([xy, local[:, 2] + z, rng.uniform(0, 100, n)]).astype(np.float32)


def test_points_inside_labeled_cuboids_are_counted_at_ingest(shared: Running, project: str, media: pathlib.Path,
                                                             tmp_path: pathlib.Path) -> None:  # fmt: skip
    """Frame e (ego frame, a .bin cloud): its car holds 37 points. Frame w (world frame, an ASCII .pcd in the ego
    frame): its car, given in the world, holds 23 once moved into the ego frame. A count given is kept; a cloud
    outside the allowed folders, or a world frame without its pose, leaves the count unknown and the upload
    whole."""
    rng = np.random.default_rng(3)
    car = (10.0, 0.0, 0.8, 2.0, 4.0, 1.6, 0.3)
    far = np.array([[50, 50, 0, 1], [-40, 3, 1, 1], [10, 0, 5, 1]], dtype=np.float32)  # none inside anything
    (media / project).mkdir()
    (media / project / "e.bin").write_bytes(np.vstack([_cloud_inside(rng, car, 37), far]).tobytes())
    # w: the ego vehicle at (100, 200) heading along y; the car 10 m ahead of it, turned 1.0 rad in the world
    in_ego = (10.0, 0.0, 1.0, 1.9, 4.5, 1.6, 1.0 - math.pi / 2)
    points = np.vstack([_cloud_inside(rng, in_ego, 23), far])
    header = (f"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
              f"WIDTH {len(points)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(points)}\nDATA ascii\n")  # fmt: skip
    body = "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in points.tolist())
    (media / project / "w.pcd").write_text(header + body)
    (tmp_path / "x.bin").write_bytes(points.tobytes())  # readable, but not from an allowed folder
    pose = pb.Pose(x=100, y=200, z=0, rotation=pb.Quaternion(w=QUARTER[0], z=QUARTER[3]))
    with shared.client(shared.admin_key) as c:
        _create(c, project, SMALL)
        first = pb.UploadChunk()
        for fid, uri, frame in (("e", (media / project / "e.bin").as_uri(), pb.COORDINATE_FRAME_EGO),
                                ("w", (media / project / "w.pcd").as_uri(), pb.COORDINATE_FRAME_WORLD),
                                ("x", (tmp_path / "x.bin").as_uri(), pb.COORDINATE_FRAME_EGO),
                                ("nopose", (media / project / "w.pcd").as_uri(), pb.COORDINATE_FRAME_WORLD)):  # fmt: skip
            f = first.frames.add(
                frame_id=fid, media_uri=uri, media_type=pb.MEDIA_TYPE_POINT_CLOUD, coordinate_frame=frame
            )
            if fid == "w":
                f.ego_pose.CopyFrom(pose)
        first.labels.add(frame_id="w").objects.add(object_id="b", class_id=CAR, cuboid=_car(100, 210, 1.0, z=1.0))
        first.labels.add(frame_id="x").objects.add(object_id="c", class_id=CAR, cuboid=_car(10, 0))
        first.labels.add(frame_id="nopose").objects.add(object_id="d", class_id=CAR, cuboid=_car(100, 210, 1.0))
        _upload(c, project, first, f"{project}-1")
        # e's labels come after its frame was stored: its cloud is found from the stored frame
        second = pb.UploadChunk()
        e = second.labels.add(frame_id="e")
        e.objects.add(object_id="a", class_id=CAR, cuboid=pb.Cuboid(x=10, y=0, z=0.8, width=2, length=4, height=1.6,
                                                                    yaw=0.3))  # fmt: skip
        e.objects.add(object_id="given", class_id=PED, cuboid=_car(10, 0, num_points=99))
        e.objects.add(object_id="empty", class_id=BARRIER, cuboid=pb.Cuboid(x=-5, y=-5, z=0.5, width=1, length=1,
                                                                            height=1))  # fmt: skip
        _upload(c, project, second, f"{project}-2")
        counts = {}
        for fid in ("e", "w", "x", "nopose"):
            (version,) = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(project=project, dataset="val",
                                                                                frame_id=fid)).versions  # fmt: skip
            for o in version.objects:
                counts[o.object_id] = o.cuboid.num_points if o.cuboid.HasField("num_points") else None
    assert counts == {"a": 37, "given": 99, "empty": 0, "b": 23, "c": None, "d": None}


def test_bad_requests_are_refused_naming_the_field(shared: Running, project: str) -> None:
    flat = f"{project}_2d"
    with shared.client(shared.admin_key) as c:
        _create(c, project, SMALL)
        _create(c, flat, SMALL, task=pb.TASK_TYPE_OBJECT_DETECTION_2D)
        for fields, field in (
            ({"inference_set": ""}, "inference_set"),
            ({"min_distance": 30.0, "max_distance": 10.0}, "max_distance"),
            ({"min_distance": math.nan}, "min_distance"),
            ({"max_distance": -1.0}, "max_distance"),
            ({"min_points": -1}, "min_points"),
            ({"min_points": 5, "max_points": 2}, "max_points"),
            ({"iou_thresholds": [0.5, 0.0]}, "iou_thresholds[1]"),
            ({"iou_thresholds": [math.nan]}, "iou_thresholds[0]"),
            ({"iou_thresholds": [0.5, 0.5]}, "iou_thresholds[1]"),
            ({"confidence_threshold": 1.5}, "confidence_threshold"),
        ):
            with pytest.raises(grpc.RpcError) as info:
                c.analysis.GetCuboidMetrics(apb.GetCuboidMetricsRequest(**{"project": project, "inference_set": "m",
                                                                           **fields}))  # fmt: skip
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
            assert error_detail(info.value).field == field, fields  # type: ignore[union-attr]
        # a set with nothing uploaded yet: no frames, AP 0 (nuScenes) and -1 (no labels to measure IoU AP on)
        empty = _metrics(c, project)
        assert (empty.frames, empty.ground_truth_objects, empty.nuscenes.map, empty.bev.map) == (0, 0, 0.0, -1.0)
        # cuboid metrics of a 2-D project, COCO metrics of a cuboid project
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.GetCuboidMetrics(apb.GetCuboidMetricsRequest(project=flat, inference_set="m"))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "CUBOIDS_3D" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.GetDetectionMetrics(apb.GetDetectionMetricsRequest(project=project, inference_set="m"))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "GetCuboidMetrics" in info.value.details()
        # distances and points of matches: cuboid projects only, ranges the right way round
        for p, fields, field in ((flat, {"min_distance": 1.0}, "min_distance"),
                                 (project, {"min_points": 3, "max_points": 1}, "max_points"),
                                 (project, {"min_distance": math.inf}, "min_distance")):  # fmt: skip
            with pytest.raises(grpc.RpcError) as info:
                c.analysis.QueryDetectionMatches(apb.QueryDetectionMatchesRequest(
                    project=p, inference_set="m", any_label_class=True, any_predicted_class=True, **fields))  # fmt: skip
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
            assert error_detail(info.value).field == field, fields  # type: ignore[union-attr]
        # a negative count of points is refused at upload
        chunk = pb.UploadChunk()
        chunk.frames.add(frame_id="f", media_type=pb.MEDIA_TYPE_POINT_CLOUD, coordinate_frame=pb.COORDINATE_FRAME_EGO)
        chunk.labels.add(frame_id="f").objects.add(object_id="a", class_id=CAR, cuboid=_car(1, 1, num_points=-2))
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter([pb.UploadRequest(project=project, dataset="val", upload_id=f"{project}-bad",
                                                   chunk=chunk)]))  # fmt: skip
        assert error_detail(info.value).field == "chunk.labels[0].objects[0].cuboid.num_points"  # type: ignore[union-attr]
