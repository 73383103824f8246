"""A point-cloud project in the console, in a real Chromium: the frame view draws the cloud seen from above
(points where the cloud has them, background where it has none), the labeled cuboid solid and the predicted
one dashed, each in its class's colour and where it is, with its heading; the predictions hide with their
toggle; a cuboid given in a world frame is drawn where the ego pose puts it; the camera image is shown
beside; grids get the cloud seen from above as the frame's thumbnail."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.console import scenes
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.console.conftest import Console, sign_in

pytestmark = pytest.mark.browser

BACKGROUND = np.array([16, 20, 24])
#: what the console writes for a value that is not there
DASH = "\u2013"

#: the classes and the colours the console gives them (its palette, in the ontology's order)
CLASSES = [(0, "car", "#0072b2"), (1, "pedestrian", "#e69f00")]
CAR_COLOUR, WALKER_COLOUR = CLASSES[0][2], CLASSES[1][2]
#: the labeled car in the ego frame: x, y, z, width, length, height, yaw
CAR = (10.0, 5.0, 0.8, 2.0, 4.0, 1.6, 0.0)
#: the predicted car: its centre 0.8 m ahead of the labeled one's
PREDICTED_CAR = (10.8, 5.0, 0.8, 2.0, 4.0, 1.6, 0.0)
#: a predicted pedestrian where nothing is labeled, turned a quarter
WALKER = (15.0, -4.0, 0.9, 1.0, 2.0, 1.8, math.pi / 2)
#: the ego vehicle of the world-frame frame: at (100, 50), heading along the world's y axis
EGO = (100.0, 50.0, 0.0, math.pi / 2)


def _cloud(rng: np.random.Generator) -> np.ndarray:
    """Ground behind the vehicle (x < 0) and a dense car: nothing in front but the car."""
    ground = np.column_stack([rng.uniform(-30, 0, 20000), rng.uniform(-30, 30, 20000), np.full(20000, -1.5),
                              rng.uniform(0, 1, 20000)])  # fmt: skip
    x, y, z, w, length, h, _ = CAR
    car = np.column_stack([rng.uniform(x - length / 2, x + length / 2, 3000), rng.uniform(y - w / 2, y + w / 2, 3000),
                           rng.uniform(z - h / 2, z + h / 2, 3000), rng.uniform(0, 1, 3000)])  # fmt: skip
    return np.vstack([ground, car]).astype("<f4")


def _to_world(c: tuple[float, ...]) -> tuple[float, ...]:
    ex, ey, ez, turn = EGO
    x, y, z, w, length, h, yaw = c
    return (ex + x * math.cos(turn) - y * math.sin(turn), ey + x * math.sin(turn) + y * math.cos(turn), ez + z, w,
            length, h, yaw + turn)  # fmt: skip


def _cuboid(c: tuple[float, ...]) -> pb.Cuboid:
    return pb.Cuboid(**dict(zip(("x", "y", "z", "width", "length", "height", "yaw"), c, strict=True)))


@pytest.fixture(scope="module")
def lidar(console: Console) -> np.ndarray:
    folder = console.media / "lidar"
    folder.mkdir(exist_ok=True)
    points = _cloud(np.random.default_rng(7))
    (folder / "sweep.bin").write_bytes(points.tobytes())
    Image.new("RGB", (160, 90), (200, 120, 40)).save(folder / "front.png")
    p = "lidar"
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_CUBOIDS_3D,
            classes=[pb.ClassDef(id=i, name=n) for i, n, _ in CLASSES])))  # fmt: skip
        c.ingest.CreateDataset(
            pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(name="val", kind=pb.DATASET_KIND_LABELED))
        )
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="pp", dataset="val", model_name="pointpillars", model_version="1")))  # fmt: skip
        chunk = pb.UploadChunk(inference_set="pp")
        turn = EGO[3]
        for fid, frame, car, walker, predicted in (
            ("ego", pb.COORDINATE_FRAME_EGO, CAR, WALKER, PREDICTED_CAR),
            ("world", pb.COORDINATE_FRAME_WORLD, _to_world(CAR), _to_world(WALKER), _to_world(PREDICTED_CAR)),
        ):
            chunk.frames.add(frame_id=fid, media_uri=(folder / "sweep.bin").as_uri(), media_type=pb.MEDIA_TYPE_POINT_CLOUD,
                             coordinate_frame=frame, ego_pose=pb.Pose(x=EGO[0], y=EGO[1], z=EGO[2], rotation=pb.Quaternion(
                                 w=math.cos(turn / 2), z=math.sin(turn / 2))),
                             cameras=[pb.CameraImage(name="CAM_FRONT", uri=(folder / "front.png").as_uri())])  # fmt: skip
            chunk.labels.add(frame_id=fid).objects.add(object_id="car", class_id=0, cuboid=_cuboid(car))
            inf = chunk.inferences.add(frame_id=fid)
            inf.objects.add(object_id="walker", class_id=1, score=0.7, cuboid=_cuboid(walker))
            inf.objects.add(object_id="car", class_id=0, score=0.9, cuboid=_cuboid(predicted))
        c.ingest.Upload(iter([pb.UploadRequest(project=p, dataset="val", upload_id="lidar-1", chunk=chunk)]))
        assert c.wait_for_upload(p, "lidar-1", timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return points


_PIXELS = """([x0, y0, x1, y1]) => {
  const c = document.querySelector('#bev');
  const d = c.getContext('2d').getImageData(x0, y0, x1 - x0, y1 - y0);
  return Array.from(d.data);
}"""


class Bev:
    """The drawn view (centre, scale, size) and the canvas's pixels, read a region at a time."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.view = json.loads(page.get_attribute("#bev", "data-view"))

    def at(self, x: float, y: float) -> tuple[int, int]:
        """The canvas pixel (column, row) of ego-frame point (x, y): x up, y to the left."""
        v = self.view
        return int((v["width"] / 2 - (y - v["cy"]) * v["scale"]) * v["dpr"]), int(
            (v["height"] / 2 - (x - v["cx"]) * v["scale"]) * v["dpr"]
        )

    def pixels(self, col0: int, row0: int, col1: int, row1: int) -> np.ndarray:
        """RGB of columns col0..col1 and rows row0..row1 (inclusive), as (rows, columns, 3)."""
        got = self.page.evaluate(_PIXELS, [col0, row0, col1 + 1, row1 + 1])
        return np.array(got, dtype=np.int32).reshape(row1 - row0 + 1, col1 - col0 + 1, 4)[..., :3]

    def around(self, x: float, y: float, r: int = 3) -> np.ndarray:
        col, row = self.at(x, y)
        return self.pixels(col - r, row - r, col + r, row + r)

    def hits(self, a: tuple[float, float], b: tuple[float, float], colour: str) -> int:
        """Of 20 points along the segment a-b, how many have a pixel of ``colour`` within one pixel."""
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        ends = [self.at(*a), self.at(*b)]
        c0, r0 = min(e[0] for e in ends) - 2, min(e[1] for e in ends) - 2
        c1, r1 = max(e[0] for e in ends) + 2, max(e[1] for e in ends) + 2
        data = self.pixels(c0, r0, c1, r1)
        n = 0
        for t in np.linspace(0.1, 0.9, 20):
            col, row = self.at(a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
            near = data[row - r0 - 1 : row - r0 + 2, col - c0 - 1 : col - c0 + 2]
            n += bool((np.abs(near - rgb).sum(axis=-1) < 60).any())
        return n


def _edges(c: tuple[float, ...]) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    """A cuboid's left side and heading tick, in the ego frame."""
    x, y, _, w, length, _, yaw = c
    f, left = (math.cos(yaw), math.sin(yaw)), (-math.sin(yaw), math.cos(yaw))
    side = tuple(
        (x + s * f[0] * length / 2 + left[0] * w / 2, y + s * f[1] * length / 2 + left[1] * w / 2) for s in (-1, 1)
    )
    return {"side": side, "heading": ((x, y), (x + f[0] * length / 2, y + f[1] * length / 2))}  # type: ignore[dict-item]


@pytest.mark.parametrize("frame", ["ego", "world"])
def test_the_frame_view_draws_the_cloud_and_its_cuboids_from_above(
    console: Console, lidar: Any, page: Any, frame: str
) -> None:
    sign_in(page, console)
    page.goto(console.url + f"/#/p/lidar/frame/val/{frame}?inference_set=pp")
    page.wait_for_selector("#bev[data-ready='1']")
    assert page.inner_text("#scene-status") == f"{len(lidar):,} points"
    bev = Bev(page)
    # points where the car is, none in front of the vehicle elsewhere
    assert (bev.around(CAR[0], CAR[1]) != BACKGROUND).any(axis=-1).all()
    assert (bev.around(10.0, -12.0) == BACKGROUND).all()
    # the labeled car solid, the predicted pedestrian dashed, each in its class's colour, with their headings
    # (the pedestrian's turned a quarter: along the ego y axis, to the left on the screen)
    car, walker = _edges(CAR), _edges(WALKER)
    assert bev.hits(*car["side"], CAR_COLOUR) >= 18
    assert bev.hits(*car["heading"], CAR_COLOUR) >= 18
    assert 6 <= bev.hits(*walker["side"], WALKER_COLOUR) < 20  # dashed
    assert bev.hits(*walker["heading"], WALKER_COLOUR) >= 18
    page.uncheck("#show-predictions")
    page.wait_for_selector("#bev[data-shown='labels']")
    assert bev.hits(*walker["heading"], WALKER_COLOUR) == 0
    assert bev.hits(*car["side"], CAR_COLOUR) >= 18
    # the camera image beside it, and the cuboids listed
    page.wait_for_function(
        "() => { const i = document.querySelector('#scene-cameras img'); return i && i.complete && i.naturalWidth === 160; }"
    )
    assert page.inner_text("#scene-cameras figcaption") == "CAM_FRONT"
    kinds = page.eval_on_selector_all(
        "#cuboids tbody tr", "rs => rs.map(r => r.dataset.kind + ':' + r.cells[1].textContent.trim())"
    )
    assert kinds == ["label:car", "prediction:car", "prediction:pedestrian"]


def test_zooming_keeps_the_point_under_the_pointer(console: Console, lidar: Any, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/lidar/frame/val/ego?inference_set=pp")
    page.wait_for_selector("#bev[data-ready='1']")
    before = Bev(page)
    box = page.locator("#bev").bounding_box()
    col, row = before.at(CAR[0], CAR[1])
    dpr = before.view["dpr"]
    page.mouse.move(box["x"] + col / dpr, box["y"] + row / dpr)
    page.mouse.wheel(0, -400)
    scale = before.view["scale"]
    page.wait_for_function(f"() => JSON.parse(document.querySelector('#bev').dataset.view).scale > {scale * 1.5}")
    assert Bev(page).at(CAR[0], CAR[1]) == pytest.approx((col, row), abs=2)


def test_a_point_cloud_frame_has_its_cloud_from_above_as_thumbnail(console: Console, lidar: Any, page: Any) -> None:
    sign_in(page, console)
    resp = page.request.get(console.url + "/media/lidar/val/ego?size=thumb")
    assert resp.status == 200 and resp.headers["content-type"] == "image/png"
    camera = page.request.get(console.url + "/media/lidar/val/ego?size=full&camera=CAM_FRONT")
    assert camera.status == 200 and camera.headers["content-type"] == "image/png"
    assert page.request.get(console.url + "/media/lidar/val/ego?camera=CAM_BACK").status == 404
    points = page.request.get(console.url + "/api/points/lidar/val/ego")
    assert points.headers["x-shoal-points-total"] == str(len(lidar))
    assert np.array_equal(np.frombuffer(points.body(), dtype="<f4").reshape(-1, 4), lidar)


def test_a_large_cloud_is_sampled() -> None:
    cloud = np.random.default_rng(1).normal(0, 10, (250_000, 4)).astype("<f4")
    got = scenes.point_cloud(cloud.tobytes(), "big.bin", max_points=200_000)
    sent = np.frombuffer(got.body, dtype="<f4").reshape(-1, 4)
    assert (got.total, got.sent, len(sent)) == (250_000, 200_000, 200_000)
    # each point sent is one of the cloud's, none twice
    assert len(np.unique(sent, axis=0)) == 200_000 and np.isin(sent[:, 0], cloud[:, 0]).all()


def _m(x: float) -> str:
    """A metric as the page writes it: a dash for NaN or -1 (not defined), else three decimals."""
    return DASH if math.isnan(x) or x < 0 else f"{x:.3f}"


def _rows(page: Any, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"{selector} tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")


def test_the_performance_page_shows_the_cuboid_metrics(console: Console, lidar: Any, page: Any) -> None:
    with console.client() as c:
        m = c.analysis.GetCuboidMetrics(apb.GetCuboidMetricsRequest(project="lidar", inference_set="pp")).metrics
    sign_in(page, console)
    page.goto(console.url + "/#/p/lidar/performance?inference_set=pp")
    page.wait_for_selector("#iou-ap-table")
    n = m.nuscenes
    assert page.inner_text("#stat-nus-map").splitlines()[-1] == _m(n.map)
    assert page.inner_text("#stat-nds").splitlines()[-1] == _m(n.nds)
    assert page.inner_text("#stat-tp-errors").splitlines()[-1] == f"{_m(n.mate)} / {_m(n.mase)} / {_m(n.maoe)}"
    rows = _rows(page, "#per-class-table")
    assert [r[:6] for r in rows] == [[c.class_name, _m(c.ap), *map(_m, c.ap_at)] for c in n.per_class]
    assert [r[6] for r in rows] == [_m(c.ate) for c in n.per_class]  # the car's centre error: 0.8 m
    mean = _rows(page, "#iou-ap-table")[-1]
    assert mean == ["mean", _m(m.bev.map), *map(_m, m.bev.map_at), _m(m.iou_3d.map), *map(_m, m.iou_3d.map_at)]
    # the confusion of cuboids matched from above opens the matches: the car, matched in both frames
    page.click("#cell-0-0")
    page.wait_for_selector("#matches-grid figure")
    captions = page.eval_on_selector_all("#matches-grid figcaption", "fs => fs.map(f => f.textContent)")
    assert sorted(cap.split(" · ")[0] for cap in captions) == ["ego", "world"]
    assert all(f"{math.hypot(CAR[0], CAR[1]):.1f} m" in cap for cap in captions), captions  # from the ego vehicle


def test_the_issues_page_lists_cuboid_issues_with_what_is_off(console: Console, lidar: Any, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/lidar/issues?inference_set=pp")
    page.click("#start-job")
    page.wait_for_selector("#issue-one")
    with console.client() as c:
        job = next(
            j
            for j in c.analysis.ListJobs(apb.ListJobsRequest(project="lidar")).jobs
            if j.kind == "detection_label_issues"
        )
        got = c.analysis.QueryDetectionLabelIssues(apb.QueryDetectionLabelIssuesRequest(
            project="lidar", job_id=job.job_id, level=apb.DETECTION_ISSUE_LEVEL_OBJECT)).objects  # fmt: skip
    first = got[0].ref.frame_id
    assert page.get_attribute("#issue-one", "data-frame-id") == first
    mine = [o for o in got if o.ref.frame_id == first]
    rows = _rows(page, "#issue-objects")
    assert [r[0] for r in rows] == [
        apb.DetectionIssueType.Name(o.issue_type)[21:].lower().replace("_", " ") for o in mine
    ]
    assert [r[-1] for r in rows] == [o.mislocalization or DASH for o in mine]
    page.wait_for_selector("#issue-one #bev[data-ready='1']")  # the cloud and its cuboids from above
    page.click("#issue-dismiss")
    page.wait_for_selector("#issue-status.ok")
    assert page.inner_text("#issue-status").startswith(f"Dismissed {first}")
