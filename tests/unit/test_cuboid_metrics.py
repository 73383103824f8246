"""3-D cuboid metrics against their references: the rotated BEV IoU and 3-D IoU against shapely's polygon
intersections; nuScenes' AP, true-positive errors, mAP and NDS against the nuScenes devkit's own evaluation
(run in its venv, as it requires numpy<2) on generated nuScenes-format sets (several classes with barrier and
traffic_cone, a class with predictions only, classes with nothing, frames without labels or predictions, score
ties, attributes, velocities known and unknown, headings flipped, global coordinates); the AP over cuboid IoU
against pycocotools (axis-aligned footprints are 2-D boxes) and against a plain-Python greedy matcher over
shapely's IoU (rotated cuboids, BEV and 3-D)."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import shapely
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.spatial.transform import Rotation
from shapely.geometry import Polygon

from shoal.analysis.nuscenes import (
    DETECTION_NAMES,
    NUSCENES,
    SHORT_NAMES,
    TP_METRICS,
    Cuboids,
    IouParams,
    Params,
    evaluate,
    evaluate_chunks,
    iou_ap,
    iou_ap_chunks,
    nuscenes_params,
)
from shoal.common import cuboids
from tests.harness import nuscenes_devkit

# --- geometry against shapely ----------------------------------------------------------------------------------


def footprint(b: np.ndarray) -> Polygon:
    """The rectangle l x w turned by yaw, as shapely sees it."""
    x, y, _, w, l, _, yaw = b  # noqa: E741
    c, s = math.cos(yaw), math.sin(yaw)
    return Polygon(
        [
            (x + u * c - v * s, y + u * s + v * c)
            for u, v in ((l / 2, -w / 2), (l / 2, w / 2), (-l / 2, w / 2), (-l / 2, -w / 2))
        ]
    )


def shapely_ious(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """BEV IoU and 3-D IoU by brute force: shapely's intersection area, times the overlap of the heights. The
    overlay runs on a 1e-12 m grid: in floating point GEOS 3.14 gets edges that nearly coincide wrong (two
    rectangles touching along an edge came out overlapping entirely, two equal ones turned by 90 degrees as
    not overlapping)."""
    pa, pb = footprint(a), footprint(b)
    inter = shapely.intersection(pa, pb, grid_size=1e-12).area
    bev = inter / (pa.area + pb.area - inter) if inter > 0 else 0.0
    dz = max(0.0, min(a[2] + a[5] / 2, b[2] + b[5] / 2) - max(a[2] - a[5] / 2, b[2] - b[5] / 2))
    vol = inter * dz
    va, vb = pa.area * a[5], pb.area * b[5]
    return bev, (vol / (va + vb - vol) if vol > 0 else 0.0)


def random_pairs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of every kind: random, identical, turned by 90 and 180 degrees (the same footprint), one inside the
    other, touching along an edge or at a corner, far apart, thin, and far from the origin."""
    rng = np.random.default_rng(seed)

    def boxes(k: int, spread: float = 3.0) -> np.ndarray:
        return np.column_stack(
            [rng.uniform(-spread, spread, (k, 3)), rng.uniform(0.2, 5.0, (k, 3)), rng.uniform(-4, 4, k)]
        )

    m = n // 10  # nine kinds of m pairs each, the rest at random
    a = boxes(n)
    b = boxes(n)
    b[:m] = a[:m]  # identical
    turn = a[m : 2 * m].copy()  # 90 degrees with w and l swapped, or 180 degrees: the same footprint
    turn[:, 6] += np.where(rng.random(m) < 0.5, np.pi / 2, np.pi)
    swap = turn[:, 6] - a[m : 2 * m, 6] < 2
    turn[swap, 3], turn[swap, 4] = a[m : 2 * m][swap, 4], a[m : 2 * m][swap, 3]
    b[m : 2 * m] = turn
    inside = a[2 * m : 3 * m].copy()  # a smaller box around the same centre, turned at random
    inside[:, 3:5] = a[2 * m : 3 * m, 3:5].min(axis=1, keepdims=True) * rng.uniform(0.1, 0.6, (m, 2))
    inside[:, 6] = rng.uniform(-4, 4, m)
    inside[:, :2] += rng.uniform(-0.05, 0.05, (m, 2)) * a[2 * m : 3 * m, 3:4]
    b[2 * m : 3 * m] = inside
    edge = a[3 * m : 4 * m].copy()  # the same box moved by its length along its heading: touching along an edge
    along = np.column_stack([np.cos(edge[:, 6]), np.sin(edge[:, 6])])
    edge[:, :2] += along * edge[:, 4:5]
    b[3 * m : 4 * m] = edge
    corner = a[4 * m : 5 * m].copy()  # moved by its length and its width: touching at a corner
    across = np.column_stack([-np.sin(corner[:, 6]), np.cos(corner[:, 6])])
    corner[:, :2] += (
        np.column_stack([np.cos(corner[:, 6]), np.sin(corner[:, 6])]) * corner[:, 4:5] + across * corner[:, 3:4]
    )
    b[4 * m : 5 * m] = corner
    b[5 * m : 6 * m, :2] += 40.0  # far apart
    thin = slice(6 * m, 7 * m)  # needles (nuScenes' barriers are thin)
    a[thin, 3] = rng.uniform(0.01, 0.1, m)
    b[thin, 3] = rng.uniform(0.01, 0.1, m)
    b[thin, :2] = a[thin, :2] + rng.uniform(-0.3, 0.3, (m, 2))
    far = slice(7 * m, 8 * m)  # global coordinates: hundreds to thousands of metres from the origin
    offset = rng.uniform(300, 3000, (m, 2))
    a[far, :2] += offset
    b[far, :2] = a[far, :2] + rng.uniform(-2, 2, (m, 2))
    near = slice(8 * m, 9 * m)  # a box and a noisy copy of it: overlaps of every size
    b[near] = a[near] + rng.normal(0, 1, (m, 7)) * rng.uniform(0, 0.3, (m, 1)) * [1, 1, 1, 0, 0, 0, 1]
    b[near, 3:6] = a[near, 3:6] * np.exp(rng.normal(0, 0.2, (m, 3)))
    return a, b


def test_bev_and_3d_iou_equal_shapely_on_thousands_of_pairs() -> None:
    a, b = random_pairs(0, 4000)
    bev = np.array([cuboids.bev_iou(x, y) for x, y in zip(a, b)])
    vol = np.array([cuboids.iou_3d(x, y) for x, y in zip(a, b)])
    ref = np.array([shapely_ious(x, y) for x, y in zip(a, b)])
    np.testing.assert_allclose(bev, ref[:, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(vol, ref[:, 1], rtol=0, atol=1e-9)
    # symmetric
    np.testing.assert_allclose(bev, [cuboids.bev_iou(y, x) for x, y in zip(a, b)], rtol=0, atol=1e-12)
    m = 400
    np.testing.assert_allclose(bev[:m], 1.0, atol=1e-12)  # identical
    np.testing.assert_allclose(vol[:m], 1.0, atol=1e-12)
    np.testing.assert_allclose(bev[m : 2 * m], 1.0, atol=1e-9)  # turned by 90 or 180 degrees
    assert np.all(bev[3 * m : 5 * m] < 1e-9)  # touching: no area in common
    assert np.all(bev[5 * m : 6 * m] == 0.0) and np.all(vol[5 * m : 6 * m] == 0.0)
    # each kind of pair is exercised: overlaps of every size, and 3-D below BEV where heights differ
    assert np.histogram(bev[bev > 0], bins=5, range=(0, 1))[0].min() > 20
    assert (vol < bev - 1e-3).sum() > 1000


def test_one_cuboid_inside_another() -> None:
    big = np.array([5.0, -2.0, 1.0, 2.0, 4.0, 2.0, 0.7])
    small = np.array([5.1, -2.1, 1.2, 0.5, 1.0, 1.0, -1.1])
    assert cuboids.bev_intersection(big, small) == pytest.approx(0.5, abs=1e-12)
    assert cuboids.bev_iou(big, small) == pytest.approx(0.5 / 8.0, abs=1e-12)
    assert cuboids.iou_3d(big, small) == pytest.approx(0.5 / 16.0, abs=1e-12)
    stacked = big.copy()
    stacked[2] += 2.0  # right on top: the same footprint, no volume in common
    assert cuboids.bev_iou(big, stacked) == pytest.approx(1.0) and cuboids.iou_3d(big, stacked) == 0.0


def test_pair_kernels_and_matrix_agree_with_the_scalar_kernels() -> None:
    a, b = random_pairs(1, 64)
    for kind, code in cuboids.KINDS.items():
        matrix = cuboids.similarity_matrix(dt=a[:10], gt=b[:7], kind=kind)
        expect = [[cuboids.similarity(x, y, code) for y in b[:7]] for x in a[:10]]
        np.testing.assert_array_equal(matrix, expect)
        # two groups laid out as the COCO pair kernels lay them: (prediction, label) row-major
        gs, ge, ds, de = np.array([0, 3]), np.array([3, 7]), np.array([0, 4]), np.array([4, 10])
        pair_start = np.array([0, 12, 36])
        out = np.zeros(36)
        cuboids.cuboid_pairs(gs, ge, ds, de, pair_start, b[:7], a[:10], code, out)
        np.testing.assert_array_equal(out[:12], matrix[:4, :3].ravel())
        np.testing.assert_array_equal(out[12:], matrix[4:, 3:].ravel())
    dist = cuboids.similarity_matrix(dt=a[:5], gt=b[:5], kind="center_distance")
    np.testing.assert_allclose(dist, np.hypot(a[:5, None, 0] - b[None, :5, 0], a[:5, None, 1] - b[None, :5, 1]))
    with pytest.raises(ValueError, match="unknown kind"):
        cuboids.similarity_matrix(dt=a, gt=b, kind="giou")


def test_yaw_from_quaternion_is_the_heading_of_the_x_axis() -> None:
    rng = np.random.default_rng(2)
    rot = Rotation.from_euler("zyx", np.column_stack([rng.uniform(-np.pi, np.pi, 200), rng.normal(0, 0.3, (200, 2))]))
    xyzw = rot.as_quat()
    wxyz = np.column_stack([xyzw[:, 3], xyzw[:, :3]])
    heading = rot.apply([1.0, 0.0, 0.0])
    np.testing.assert_allclose(cuboids.yaw_from_quaternion(wxyz), np.arctan2(heading[:, 1], heading[:, 0]), atol=1e-12)
    yaw = rng.uniform(-np.pi, np.pi, 50)
    np.testing.assert_allclose(cuboids.yaw_from_quaternion(cuboids.quaternion_from_yaw(yaw)), yaw, atol=1e-12)
    assert cuboids.yaw_from_quaternion(np.array([1.0, 0, 0, 1e-7])) == pytest.approx(2e-7)
    # float32 rounding is accepted, a quaternion of another norm is refused with the fix named
    assert np.isfinite(cuboids.yaw_from_quaternion(wxyz.astype(np.float32))).all()
    with pytest.raises(ValueError, match=r"quaternion 1 .* has norm 2, not 1.*divide it by its norm"):
        cuboids.yaw_from_quaternion(np.array([[1.0, 0, 0, 0], [2.0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="not finite"):
        cuboids.yaw_from_quaternion(np.array([np.nan, 0, 0, 1.0]))


def test_cuboids_that_are_none_are_refused() -> None:
    good = cuboids.cuboids(centre=[[0, 0, 0]], size=[[1, 2, 1]], yaw=[0.3])
    assert good.shape == (1, 7)
    with pytest.raises(ValueError, match=r"cuboid 1 has size .* every side must be positive"):
        cuboids.check_cuboids(np.array([[0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 0, 1, 0]]))
    with pytest.raises(ValueError, match="not finite"):
        cuboids.check_cuboids(np.array([[0, 0, np.inf, 1, 1, 1, 0]]))
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        cuboids.check_cuboids(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="dist_th_tp"):
        Params(dist_ths=(1.0, 2.0), dist_th_tp=4.0)
    one = Cuboids(frame=[1], category=[0], box=good)
    with pytest.raises(ValueError, match="name a frame or class once"):
        evaluate(
            gt=one, dt=Cuboids(frame=[1], category=[0], box=good, score=[0.5]), frames=np.array([1, 1]), classes=[0]
        )
    with pytest.raises(ValueError, match="predictions need scores"):
        evaluate(gt=one, dt=one, frames=np.array([1]), classes=[0])


# --- nuScenes' metrics against the devkit ----------------------------------------------------------------------

ATTRIBUTES = ["pedestrian.moving", "pedestrian.sitting_lying_down", "pedestrian.standing", "cycle.with_rider",
              "cycle.without_rider", "vehicle.moving", "vehicle.parked", "vehicle.stopped"]  # fmt: skip
CLASS_ATTRIBUTES = {"car": [5, 6, 7], "truck": [5, 6, 7], "bus": [5, 6, 7], "pedestrian": [0, 1, 2], "bicycle": [3, 4]}
SIZES = {"car": (1.9, 4.6, 1.7), "truck": (2.5, 7.0, 3.0), "bus": (2.9, 11.0, 3.5), "pedestrian": (0.7, 0.7, 1.8),
         "bicycle": (0.6, 1.7, 1.3), "traffic_cone": (0.4, 0.4, 1.0), "barrier": (2.5, 0.5, 1.0)}  # fmt: skip
LABELED = ["car", "truck", "pedestrian", "bicycle", "traffic_cone", "barrier"]
PREDICTED = [*LABELED, "bus"]  # bus: predictions without labels; trailer, motorcycle, ...: nothing at all


def generate(seed: int, frames: int = 80) -> dict[str, np.ndarray]:
    """A nuScenes-format set: the devkit's fields, frames in a shuffled order with codes that are not positions."""
    rng = np.random.default_rng(seed)
    origin = np.array([600.0, 1600.0])  # global coordinates, as nuScenes gives them
    codes = rng.permutation(np.arange(frames) * 3 + 11)
    g: dict[str, list[object]] = {
        k: [] for k in ("frame", "cls", "translation", "size", "rotation", "velocity", "attr")
    }
    d: dict[str, list[object]] = {k: [] for k in (*g, "score")}

    def rotation(yaw: float) -> list[float]:
        tilt = rng.normal(0, 0.05, 2) if rng.random() < 0.3 else (0.0, 0.0)  # some roll and pitch
        x, y, z, w = Rotation.from_euler("zyx", [yaw, *tilt]).as_quat()
        return [w, x, y, z]

    def velocity(cls: str, base: np.ndarray) -> list[float]:
        return (
            [np.nan, np.nan]
            if rng.random() < 0.07
            else (base if cls not in ("traffic_cone", "barrier") else base * 0).tolist()
        )

    def add(
        side: dict[str, list[object]], frame: int, cls: str, centre: np.ndarray, size: np.ndarray, yaw: float,
        vel: list[float], attr: int,
    ) -> None:  # fmt: skip
        side["frame"].append(frame)
        side["cls"].append(DETECTION_NAMES.index(cls))
        side["translation"].append(centre.tolist())
        side["size"].append(size.tolist())
        side["rotation"].append(rotation(yaw))
        side["velocity"].append(vel)
        side["attr"].append(attr)

    for frame in codes.tolist():
        no_gt, no_dt = rng.random() < 0.15, rng.random() < 0.15
        for _ in range(0 if no_gt else int(rng.integers(1, 12))):
            cls = str(rng.choice(LABELED))
            centre = np.array([*(origin + rng.uniform(-40, 40, 2)), rng.uniform(0.3, 2.0)])
            size = np.array(SIZES[cls]) * rng.uniform(0.8, 1.2, 3)
            yaw = float(rng.uniform(-np.pi, np.pi))
            base = rng.normal(0, 3, 2)
            attr = int(rng.choice(CLASS_ATTRIBUTES[cls])) if cls in CLASS_ATTRIBUTES and rng.random() > 0.1 else -1
            add(g, frame, cls, centre, size, yaw, velocity(cls, base), attr)
            if no_dt:
                continue
            for _ in range(int(rng.integers(0, 3))):  # hits at every distance, duplicates, wrong classes
                off = np.append(rng.normal(0, float(rng.choice([0.15, 0.5, 1.2, 2.5])), 2), rng.normal(0, 0.2))
                flip = np.pi if rng.random() < 0.15 else 0.0  # front and back mistaken
                dcls = cls if rng.random() < 0.9 else str(rng.choice(PREDICTED))
                dattr = attr if rng.random() < 0.7 else int(rng.integers(-1, len(ATTRIBUTES)))
                add(d, frame, dcls, centre + off, size * np.exp(rng.normal(0, 0.1, 3)),
                    yaw + rng.normal(0, 0.2) + flip, velocity(dcls, base + rng.normal(0, 1, 2)), dattr)  # fmt: skip
                d["score"].append(float(rng.integers(1, 10)) / 10)  # ties on purpose
        if not no_dt:
            for _ in range(int(rng.integers(0, 4))):  # false positives, some on frames without labels
                cls = str(rng.choice(PREDICTED))
                centre = np.array([*(origin + rng.uniform(-40, 40, 2)), 1.0])
                add(d, frame, cls, centre, np.array(SIZES[cls]), float(rng.uniform(-np.pi, np.pi)),
                    velocity(cls, rng.normal(0, 3, 2)), -1)  # fmt: skip
                d["score"].append(float(rng.integers(1, 10)) / 10)
    out = {"frames": codes, "class_names": np.array(DETECTION_NAMES), "attribute_names": np.array(ATTRIBUTES)}
    for prefix, side in (("g", g), ("d", d)):
        for key, values in side.items():
            shape = {"translation": (-1, 3), "size": (-1, 3), "rotation": (-1, 4), "velocity": (-1, 2)}.get(key, (-1,))
            out[f"{prefix}_{key}"] = np.asarray(values, dtype=np.float64 if key in (
                "translation", "size", "rotation", "velocity", "score") else np.int64).reshape(shape)  # fmt: skip
    return out


def ours(a: dict[str, np.ndarray], frames: np.ndarray | None = None) -> tuple[Cuboids, Cuboids]:
    sides = []
    for p in ("g", "d"):
        keep = np.ones(len(a[f"{p}_frame"]), dtype=bool) if frames is None else np.isin(a[f"{p}_frame"], frames)
        yaw = cuboids.yaw_from_quaternion(a[f"{p}_rotation"][keep])
        box = cuboids.cuboids(centre=a[f"{p}_translation"][keep], size=a[f"{p}_size"][keep], yaw=yaw)
        sides.append(Cuboids(frame=a[f"{p}_frame"][keep], category=a[f"{p}_cls"][keep], box=box,
                             score=a["d_score"][keep] if p == "d" else None, velocity=a[f"{p}_velocity"][keep],
                             attribute=a[f"{p}_attr"][keep]))  # fmt: skip
    return sides[0], sides[1]


@pytest.fixture(scope="module")
def devkit() -> object:
    python = nuscenes_devkit.ensure()
    if python is None:  # make test builds it (make nuscenes-devkit): its absence is a broken setup, not a pass
        pytest.fail(
            "the nuScenes devkit's venv is missing and could not be made: run scripts/ensure-nuscenes-devkit.sh"
        )
    return python


CLASSES = list(range(len(DETECTION_NAMES)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nuscenes_metrics_equal_the_devkit(seed: int, devkit: object) -> None:
    a = generate(seed)
    assert len(set(a["d_score"].tolist())) < len(a["d_score"])  # score ties on purpose
    assert np.isnan(a["g_velocity"]).any() and (a["g_attr"] < 0).any()
    ref = nuscenes_devkit.run(a, python=devkit)  # type: ignore[arg-type]
    gt, dt = ours(a)
    got = evaluate(gt=gt, dt=dt, frames=a["frames"], classes=CLASSES, params=NUSCENES)
    tp_index = NUSCENES.dist_ths.index(NUSCENES.dist_th_tp)
    for k, name in enumerate(DETECTION_NAMES):
        for t, th in enumerate(NUSCENES.dist_ths):
            curves = ref["curves"][f"{name}:{th}"]
            np.testing.assert_allclose(
                got.precision[k, t], curves["precision"], rtol=0, atol=1e-9, err_msg=f"{name} {th}"
            )
            np.testing.assert_allclose(got.confidence[k, t], curves["confidence"], rtol=0, atol=1e-9)
            assert got.ap[k, t] == pytest.approx(ref["label_aps"][name][str(th)], abs=1e-6), (name, th)
            if t == tp_index:
                for m, metric in enumerate(TP_METRICS):
                    np.testing.assert_allclose(
                        got.tp_curves[k, m], curves[metric], rtol=0, atol=1e-9, err_msg=f"{name} {metric}"
                    )
        for m, metric in enumerate(TP_METRICS):
            expect = ref["label_tp_errors"][name][metric]
            if math.isnan(expect):
                assert math.isnan(got.tp_errors[k, m]), (name, metric)
            else:
                assert got.tp_errors[k, m] == pytest.approx(expect, abs=1e-6), (name, metric)
        assert got.per_class[k]["AP"] == pytest.approx(ref["mean_dist_aps"][name], abs=1e-6)
    assert got.stats["mAP"] == pytest.approx(ref["mean_ap"], abs=1e-6)
    for metric in TP_METRICS:
        assert got.stats["m" + SHORT_NAMES[metric]] == pytest.approx(ref["tp_errors"][metric], abs=1e-6), metric
    assert got.stats["NDS"] == pytest.approx(ref["nd_score"], abs=1e-6)
    # what was compared is not trivial: classes with labels score between 0 and 1, those without 0
    labeled = [DETECTION_NAMES.index(n) for n in LABELED]
    assert all(0.05 < got.per_class[k]["AP"] < 0.95 for k in labeled)
    assert got.per_class[DETECTION_NAMES.index("bus")]["AP"] == 0.0
    assert 0.05 < got.stats["mAP"] < got.stats["NDS"] < 0.9
    # the devkit's class rules: a cone has no AOE, AVE, AAE; a barrier no AVE, AAE
    cone, barrier = DETECTION_NAMES.index("traffic_cone"), DETECTION_NAMES.index("barrier")
    assert np.isnan(got.tp_errors[cone, 2:]).all() and np.isnan(got.tp_errors[barrier, 3:]).all()


def test_a_barrier_heading_counts_up_to_half_a_turn(devkit: object) -> None:
    """The devkit judges a barrier's heading modulo pi: our AOE of barriers equals the devkit's, and is smaller
    than it would be modulo 2 pi (the set flips some headings by pi)."""
    a = generate(3)
    ref = nuscenes_devkit.run(a, python=devkit, curves=False)  # type: ignore[arg-type]
    gt, dt = ours(a)
    barrier = DETECTION_NAMES.index("barrier")
    got = evaluate(gt=gt, dt=dt, frames=a["frames"], classes=CLASSES)
    full_turn = evaluate(gt=gt, dt=dt, frames=a["frames"], classes=CLASSES,
                         params=Params(unmeasured=NUSCENES.unmeasured))  # fmt: skip
    assert got.tp_errors[barrier, 2] == pytest.approx(ref["label_tp_errors"]["barrier"]["orient_err"], abs=1e-6)
    assert full_turn.tp_errors[barrier, 2] > got.tp_errors[barrier, 2] + 0.05
    # nuscenes_params gives the same rules from class names
    named = nuscenes_params(dict(enumerate(DETECTION_NAMES)))
    assert named.half_turn == NUSCENES.half_turn and dict(named.unmeasured) == dict(NUSCENES.unmeasured)


def test_other_thresholds_equal_the_devkit_with_them(devkit: object) -> None:
    a = generate(4, frames=40)
    settings = {"dist_ths": np.array([0.25, 1.0, 3.0]), "dist_th_tp": np.array(1.0),
                "min_recall": np.array(0.2), "min_precision": np.array(0.05)}  # fmt: skip
    ref = nuscenes_devkit.run(a | settings, python=devkit, curves=False)  # type: ignore[arg-type]
    params = Params(dist_ths=(0.25, 1.0, 3.0), dist_th_tp=1.0, min_recall=0.2, min_precision=0.05,
                    half_turn=NUSCENES.half_turn, unmeasured=NUSCENES.unmeasured)  # fmt: skip
    gt, dt = ours(a)
    got = evaluate(gt=gt, dt=dt, frames=a["frames"], classes=CLASSES, params=params)
    assert got.stats["mAP"] == pytest.approx(ref["mean_ap"], abs=1e-6)
    assert got.stats["NDS"] == pytest.approx(ref["nd_score"], abs=1e-6)
    for metric in TP_METRICS:
        assert got.stats["m" + SHORT_NAMES[metric]] == pytest.approx(ref["tp_errors"][metric], abs=1e-6), metric


def test_nuscenes_metrics_in_chunks_of_frames_are_the_same() -> None:
    a = generate(5, frames=60)
    gt, dt = ours(a)
    whole = evaluate(gt=gt, dt=dt, frames=a["frames"], classes=CLASSES)
    chunks = []
    for part in np.array_split(a["frames"], 7):
        g, d = ours(a, part)
        chunks.append((g, d, part))
    chunked = evaluate_chunks(chunks, CLASSES)
    for name in ("precision", "confidence", "tp_curves", "ap"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name), err_msg=name)
    np.testing.assert_array_equal(chunked.tp_errors, whole.tp_errors)
    assert chunked.stats == whole.stats


def test_score_ties_go_to_the_later_prediction_as_in_the_devkit() -> None:
    """Two predictions with one score, one on the only label, one in a frame without labels: the devkit takes the
    later one (in frame order) first. Miss then hit: precision 0 then 1/2 at recall 0 then 1, which the devkit
    interpolates linearly (1/4 at recall 0.5); hit then miss: precision 1 up to recall 1. Swapping the frames'
    order swaps which comes first."""
    box = np.array([[0, 0, 1, 2, 4, 1.5, 0.0]])
    gt = Cuboids(frame=[1], category=[0], box=box)
    # frame 1's prediction hits, frame 2's (no label there) misses: tied scores
    dt = Cuboids(frame=[1, 2], category=[0, 0], box=np.vstack([box, box]), score=[0.5, 0.5])
    later_misses = evaluate(gt=gt, dt=dt, frames=np.array([1, 2]), classes=[0])
    later_hits = evaluate(gt=gt, dt=dt, frames=np.array([2, 1]), classes=[0])
    assert later_misses.precision[0, 0, 50] == pytest.approx(0.25)
    assert later_hits.precision[0, 0, 50] == pytest.approx(1.0)


# --- AP over cuboid IoU: pycocotools and a plain-Python reference ---------------------------------------------

IOU_CLASSES = [1, 2, 3, 5, 9]  # 5: labels, no predictions; 9: predictions, no labels


def generate_iou(seed: int, frames: int = 60, *, turned: bool) -> tuple[Cuboids, Cuboids, np.ndarray]:
    rng = np.random.default_rng(seed)
    g_rows, d_rows = [], []
    for frame in range(frames):
        no_gt, no_dt = rng.random() < 0.15, rng.random() < 0.15
        for _ in range(0 if no_gt else int(rng.integers(1, 9))):
            cls = int(rng.choice([1, 2, 3, 5]))
            box = np.array([*rng.uniform(0, 30, 2), rng.uniform(0, 2), *rng.uniform(0.5, 5.0, 3),
                            rng.uniform(-np.pi, np.pi) if turned else 0.0])  # fmt: skip
            g_rows.append((frame, cls, box, 0.0))
            if no_dt or cls == 5:
                continue
            for _ in range(int(rng.integers(0, 3))):  # hits, duplicates, wrong classes
                noisy = box.copy()
                noisy[:3] += rng.normal(0, float(rng.choice([0.05, 0.2, 0.5])), 3) * box[3:6]
                noisy[3:6] *= np.exp(rng.normal(0, 0.1, 3))
                if turned:
                    noisy[6] += rng.normal(0, 0.15)
                dcls = cls if rng.random() < 0.85 else int(rng.choice([1, 2, 3, 9]))
                d_rows.append((frame, dcls, noisy, float(rng.integers(1, 10)) / 10))
        if not no_dt:
            for _ in range(int(rng.integers(0, 3))):
                box = np.array([*rng.uniform(0, 30, 2), 1.0, *rng.uniform(0.5, 5.0, 3),
                                rng.uniform(-np.pi, np.pi) if turned else 0.0])  # fmt: skip
                d_rows.append((frame, int(rng.choice([1, 2, 3, 9])), box, float(rng.integers(1, 10)) / 10))

    def objects(rows: list[tuple[int, int, np.ndarray, float]], scores: bool) -> Cuboids:
        return Cuboids(frame=[r[0] for r in rows], category=[r[1] for r in rows],
                       box=np.array([r[2] for r in rows]).reshape(-1, 7),
                       score=[r[3] for r in rows] if scores else None)  # fmt: skip

    return objects(g_rows, False), objects(d_rows, True), np.arange(frames)


def coco_reference(gt: Cuboids, dt: Cuboids, frames: np.ndarray, params: IouParams) -> np.ndarray:
    """pycocotools on the footprints of cuboids without yaw, which are 2-D boxes: (T, R, K) precision."""

    def xywh(b: np.ndarray) -> list[float]:
        return [float(b[0] - b[4] / 2), float(b[1] - b[3] / 2), float(b[4]), float(b[3])]

    dataset = {
        "images": [{"id": int(f)} for f in frames],
        "annotations": [{"id": i + 1, "image_id": int(f), "category_id": int(c), "bbox": xywh(b),
                         "area": float(b[3] * b[4]), "iscrowd": 0}
                        for i, (f, c, b) in enumerate(zip(gt.frame, gt.category, gt.box))],
        "categories": [{"id": c} for c in IOU_CLASSES],
    }  # fmt: skip
    results = [{"image_id": int(f), "category_id": int(c), "bbox": xywh(b), "score": float(s)}
               for f, c, b, s in zip(dt.frame, dt.category, dt.box, dt.score)]  # type: ignore[arg-type]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.params.iouThrs = np.asarray(params.thresholds)
        ev.params.areaRng, ev.params.areaRngLbl = [[0.0, 1e10]], ["all"]
        ev.params.maxDets = [params.max_detections]
        ev.evaluate()
        ev.accumulate()
    return ev.eval["precision"][:, :, :, 0, 0]


def plain_reference(gt: Cuboids, dt: Cuboids, frames: np.ndarray, params: IouParams) -> np.ndarray:
    """COCO's rules written out in plain Python over shapely's IoU: per class and frame, predictions by
    descending score (ties in input order), each taking the unmatched label of highest IoU at or above the
    threshold (the last of equals); then all predictions of the class by a stable sort on score, precision made
    monotone and read at 101 recall points until the first it cannot reach. (T, R, K) precision, -1 without labels."""
    which = 0 if params.kind == "bev_iou" else 1
    out = -np.ones((len(params.thresholds), 101, len(IOU_CLASSES)))
    for k, cls in enumerate(IOU_CLASSES):
        npos = int(np.sum(gt.category == cls))
        if npos == 0:
            continue
        found: list[tuple[float, list[bool]]] = []
        for frame in frames.tolist():
            labels = [gt.box[i] for i in range(len(gt)) if gt.frame[i] == frame and gt.category[i] == cls]
            preds = [
                (float(dt.score[i]), dt.box[i])
                for i in range(len(dt))
                if dt.frame[i] == frame and dt.category[i] == cls
            ]  # type: ignore[index]
            preds = sorted(preds, key=lambda p: -p[0])[: params.max_detections]
            ious = [[shapely_ious(box, label)[which] for label in labels] for _, box in preds]
            flags = [[False] * len(params.thresholds) for _ in preds]
            for t, th in enumerate(params.thresholds):
                taken = [False] * len(labels)
                for i in range(len(preds)):
                    best, m = min(th, 1 - 1e-10), -1
                    for j in range(len(labels)):
                        if taken[j] or ious[i][j] < best:
                            continue
                        best, m = ious[i][j], j
                    if m >= 0:
                        taken[m] = True
                        flags[i][t] = True
            found.extend((score, flags[i]) for i, (score, _) in enumerate(preds))
        found = sorted(found, key=lambda p: -p[0])
        for t in range(len(params.thresholds)):
            tp = fp = 0
            recall, precision = [], []
            for _, flag in found:
                tp, fp = tp + flag[t], fp + (not flag[t])
                recall.append(tp / npos)
                precision.append(tp / (tp + fp + np.spacing(1)))
            for i in range(len(precision) - 1, 0, -1):
                precision[i - 1] = max(precision[i - 1], precision[i])
            row = [0.0] * 101
            for r in range(101):
                at = next((i for i, rc in enumerate(recall) if rc >= r / 100), None)
                if at is None:
                    break
                row[r] = precision[at]
            out[t, :, k] = row
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_bev_ap_of_cuboids_without_yaw_equals_pycocotools(seed: int) -> None:
    gt, dt, frames = generate_iou(seed, turned=False)
    params = IouParams(kind="bev_iou", thresholds=(0.3, 0.5, 0.7), max_detections=5)
    got = iou_ap(gt=gt, dt=dt, frames=frames, classes=IOU_CLASSES, params=params)
    ref = coco_reference(gt, dt, frames, params)
    np.testing.assert_allclose(got.precision, ref, rtol=0, atol=1e-9)
    assert got.per_class[9]["AP"] == -1 and got.per_class[5]["AP"] == 0.0
    assert 0.1 < got.stats["AP"] < 0.9
    # the cut at max_detections matters on this set: more predictions counted, another answer
    more = iou_ap(gt=gt, dt=dt, frames=frames, classes=IOU_CLASSES, params=IouParams(thresholds=params.thresholds))
    assert more.stats["AP"] != pytest.approx(got.stats["AP"], abs=1e-4)


@pytest.mark.parametrize("kind", ["bev_iou", "iou_3d"])
def test_ap_of_turned_cuboids_equals_a_plain_greedy_matcher(kind: str) -> None:
    gt, dt, frames = generate_iou(7, frames=40, turned=True)
    params = IouParams(kind=kind, thresholds=(0.25, 0.5, 0.7))
    got = iou_ap(gt=gt, dt=dt, frames=frames, classes=IOU_CLASSES, params=params)
    ref = plain_reference(gt, dt, frames, params)
    np.testing.assert_allclose(got.precision, ref, rtol=0, atol=1e-9)
    aps = [got.stats[f"AP@{t:g}"] for t in params.thresholds]
    assert aps[0] > aps[1] > aps[2] > 0  # each threshold measured, stricter ones lower


def test_3d_iou_ap_is_below_bev_ap_when_heights_are_off() -> None:
    gt, dt, frames = generate_iou(8, frames=40, turned=True)
    bev = iou_ap(gt=gt, dt=dt, frames=frames, classes=IOU_CLASSES, params=IouParams(kind="bev_iou"))
    vol = iou_ap(gt=gt, dt=dt, frames=frames, classes=IOU_CLASSES, params=IouParams(kind="iou_3d"))
    assert vol.stats["AP"] < bev.stats["AP"] - 0.01


def test_iou_ap_in_chunks_of_frames_is_the_same() -> None:
    gt, dt, frames = generate_iou(9, frames=50, turned=True)
    whole = iou_ap(gt=gt, dt=dt, frames=frames, classes=IOU_CLASSES)
    chunks = []
    for part in np.array_split(frames, 6):
        g, d = np.isin(gt.frame, part), np.isin(dt.frame, part)
        chunks.append((Cuboids(frame=gt.frame[g], category=gt.category[g], box=gt.box[g]),
                       Cuboids(frame=dt.frame[d], category=dt.category[d], box=dt.box[d], score=dt.score[d]), part))  # type: ignore[index]  # fmt: skip
    chunked = iou_ap_chunks(chunks, IOU_CLASSES)
    np.testing.assert_array_equal(chunked.precision, whole.precision)
    np.testing.assert_array_equal(chunked.recall, whole.recall)
    assert chunked.stats == whole.stats
