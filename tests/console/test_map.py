"""The embedding map page in a real Chromium: the map job started and followed from the page, the
points of GetMapViewport drawn on a canvas where the page says they are, pan and zoom asking for
the viewport's points, hover and click, and a lasso whose frames (over the whole map, not only
the drawn sample) are saved as a segment."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.sampler.v1 import sampler_pb2 as spb
from tests.console.conftest import ARTIFACTS, Console, sign_in
from tests.console.data import Shapes, make_shapes

pytestmark = pytest.mark.browser

# ui.js PALETTE: the colour of class k
PALETTE = ["#0072B2", "#E69F00", "#009E73"]
DRAWN = "() => Number(document.querySelector('#map-canvas')?.dataset.drawn || 0) > 0"


@pytest.fixture(scope="module")
def shapes(console: Console) -> Shapes:
    return make_shapes(console)


def _open(page: Any, console: Console, extra: str = "", where: str = "shapes/map?dataset=shapes&space=pixels") -> str:
    """Opens a map (of shapes/pixels unless told) and waits until it is drawn; returns its job id."""
    sign_in(page, console)
    page.goto(console.url + "/#/p/" + where + extra)
    page.wait_for_function(DRAWN)
    return str(page.evaluate("() => window.shoalMap.jobId"))


def _points(console: Console, job_id: str, project: str = "shapes") -> list[apb.MapPoint]:
    with console.client() as c:
        resp = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project=project, job_id=job_id, max_points=100_000))
    return list(resp.points)


def _lasso(page: Any, outline: list[tuple[float, float]]) -> list[dict[str, float]]:
    """Draws a lasso through the outline (page coordinates) and returns the polygon the page sent."""
    page.focus("#map-canvas")
    if page.get_attribute("#map-lasso", "aria-pressed") != "true":
        page.keyboard.press("l")
    page.mouse.move(*outline[0])
    page.mouse.down()
    for x, y in outline[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()
    page.wait_for_selector("#region-count[data-count], #map-region .error")
    assert not page.locator("#map-region .error").count(), page.inner_text("#map-region")
    return list(page.evaluate("() => window.shoalMap.region().polygon"))


def _around(page: Any, points: list[apb.MapPoint], share: float = 0.8) -> tuple[list[tuple[float, float]], float]:
    """A decagon (page coordinates) around most of the points' screen positions, and its radius."""
    screen = page.evaluate("ps => ps.map(([x, y]) => window.shoalMap.toScreen(x, y))", [[p.x, p.y] for p in points])
    mx = sorted(s["x"] for s in screen)[len(screen) // 2]
    my = sorted(s["y"] for s in screen)[len(screen) // 2]
    radius = sorted(math.dist((s["x"], s["y"]), (mx, my)) for s in screen)[int(share * len(screen))] + 12
    return [
        (mx + radius * math.cos(a * math.pi / 5), my + radius * math.sin(a * math.pi / 5)) for a in range(10)
    ], radius


def _inside(x: float, y: float, polygon: list[dict[str, float]]) -> bool:
    """Even-odd rule."""
    hit = False
    n = len(polygon)
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        if (a["y"] > y) != (b["y"] > y):
            cross = a["x"] + (y - a["y"]) * (b["x"] - a["x"]) / (b["y"] - a["y"])
            if x < cross:
                hit = not hit
    return hit


def _stats(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("() => window.shoalMap.stats()"))


def _viewport(page: Any) -> list[float]:
    return [float(v) for v in page.get_attribute("#map-canvas", "data-viewport").split(",")]


def _wait_answers(page: Any, more_than: int) -> None:
    page.wait_for_function(f"() => Number(document.querySelector('#map-canvas').dataset.answers) > {more_than}")


def _wait_view_answered(page: Any, more_than: int) -> None:
    """Waits for the answer of the viewport now shown: on a slow machine, a drag's pause between two moves
    can let the page ask for (and get) a viewport on the way."""
    page.wait_for_function(
        "(n) => { const c = document.querySelector('#map-canvas'), b = window.shoalMap.bounds();"
        " return Number(c.dataset.answers) > n && c.dataset.viewport === [b.min_x, b.min_y, b.max_x, b.max_y].join(','); }",
        arg=more_than,
    )


def test_the_map_job_runs_from_the_page_and_every_point_is_drawn_where_the_page_says(
    console: Console, shapes: Shapes, page: Any
) -> None:
    with console.client() as c:
        jobs = c.analysis.ListJobs(apb.ListJobsRequest(project="shapes")).jobs
    assert not [j for j in jobs if j.kind == "embedding_map"]
    sign_in(page, console)
    page.goto(console.url + "/#/p/shapes/map?dataset=shapes&space=pixels")
    # no finished map: the page starts the job and shows its progress until it is done
    page.wait_for_selector("#map-job-progress")
    page.wait_for_function(DRAWN)
    job_id = page.evaluate("() => window.shoalMap.jobId")
    assert f"job={job_id}" in page.url
    with console.client() as c:
        job = c.analysis.GetJob(apb.GetJobRequest(project="shapes", job_id=job_id)).job
    assert job.kind == "embedding_map" and job.state == cpb.JOB_STATE_SUCCEEDED
    points = {p.frame_id: p for p in _points(console, job_id)}
    assert len(points) == len(shapes.frame_ids)
    assert page.get_attribute("#map-canvas", "data-drawn") == str(len(points))  # 150 < 20,000: all of them
    assert "150 of 150 frames in view" in page.inner_text("#map-status")
    # each point's pixel has its class's colour where toScreen puts it (y up, as the server's map)
    pixels = page.evaluate(
        "() => { const c = document.querySelector('#map-canvas'), g = c.getContext('2d'), r = c.getBoundingClientRect();"
        " const dpr = window.shoalMap.view().dpr;"
        " return window.shoalMap.held().map(p => { const s = window.shoalMap.toScreen(p.x, p.y);"
        " const d = g.getImageData(Math.floor((s.x - r.left) * dpr), Math.floor((s.y - r.top) * dpr), 1, 1).data;"
        " return [p.id, '#' + [d[0], d[1], d[2]].map(v => v.toString(16).padStart(2, '0')).join('').toUpperCase()]; }) }"
    )
    right = sum(colour == PALETTE[points[fid].label_class] for fid, colour in pixels)
    assert right >= 0.9 * len(pixels), pixels
    legend = page.inner_text("#map-legend")
    for k, name in enumerate(["circle", "square", "triangle"]):
        assert name in legend and str(shapes.labels.count(k)) in legend
    # colour by split: the legend names the dataset's splits
    page.select_option("#sel-colour", "split")
    page.wait_for_selector("#map-legend:has-text('train')")
    assert str(shapes.splits.count("val")) in page.inner_text("#map-legend")
    # recompute: the map gives way to the job's progress, then comes back once
    page.click("#map-rerun")
    page.wait_for_selector("#map-job-progress")
    page.wait_for_function(DRAWN)
    assert page.locator("#map-canvas").count() == 1
    assert page.get_attribute("#map-canvas", "data-drawn") == str(len(points))


def test_hover_shows_the_frame_and_a_click_opens_it(console: Console, shapes: Shapes, page: Any) -> None:
    _open(page, console)
    held = page.evaluate("() => window.shoalMap.held()")
    # a point with no other point near it on screen
    screen = [(p["id"], page.evaluate("([x, y]) => window.shoalMap.toScreen(x, y)", [p["x"], p["y"]])) for p in held]
    fid, at = max(
        screen, key=lambda s: min(math.dist((s[1]["x"], s[1]["y"]), (o["x"], o["y"])) for f, o in screen if f != s[0])
    )
    page.mouse.move(at["x"], at["y"])
    page.wait_for_selector("#map-tooltip:not([hidden])")
    assert page.get_attribute("#map-tooltip", "data-frame-id") == fid
    assert fid in page.inner_text("#map-tooltip")
    assert f"/media/shapes/shapes/{fid}" in page.get_attribute("#map-tooltip img", "src")
    page.mouse.click(at["x"], at["y"])
    page.wait_for_selector("#frame-facts")
    assert page.url.endswith(f"#/p/shapes/frame/shapes/{fid}")


def test_pan_and_zoom_ask_for_the_viewport_and_keep_the_points_shown(
    console: Console, shapes: Shapes, page: Any
) -> None:
    # 40 points per viewport (the page's ceiling is 20,000): the map of 150 frames is a sample
    _open(page, console, "&points=40")
    whole = _viewport(page)
    assert page.get_attribute("#map-canvas", "data-drawn") == "40"
    assert page.get_attribute("#map-canvas", "data-in-view") == "150"
    # the wheel zooms in around the cursor (the map point under it stays under it); the points shown
    # in the new viewport stay and more come
    before = {p["id"]: p for p in page.evaluate("() => window.shoalMap.held()")}
    target = next(iter(before.values()))
    at = page.evaluate("([x, y]) => window.shoalMap.toScreen(x, y)", [target["x"], target["y"]])
    under = page.evaluate("([x, y]) => window.shoalMap.toMap(x, y)", [at["x"], at["y"]])
    answers = _stats(page)["answers"]
    page.focus("#map-canvas")
    page.mouse.move(at["x"], at["y"])
    page.mouse.wheel(0, -500)
    _wait_answers(page, answers)
    still = page.evaluate("([x, y]) => window.shoalMap.toScreen(x, y)", [under["x"], under["y"]])
    assert still["x"] == pytest.approx(at["x"], abs=0.5) and still["y"] == pytest.approx(at["y"], abs=0.5)
    x0, y0, x1, y1 = _viewport(page)
    after = {p["id"]: p for p in page.evaluate("() => window.shoalMap.held()")}
    assert len(after) <= 40
    seen = {f for f, p in before.items() if x0 <= p["x"] <= x1 and y0 <= p["y"] <= y1}
    now = {f for f, p in after.items() if x0 <= p["x"] <= x1 and y0 <= p["y"] <= y1}
    in_view = int(page.get_attribute("#map-canvas", "data-in-view"))
    assert seen <= now and len(now) == min(40, in_view) and len(now) > len(seen)
    # + zooms in around the centre
    shown = page.evaluate("() => window.shoalMap.bounds()")
    answers = _stats(page)["answers"]
    page.keyboard.press("+")
    _wait_answers(page, answers)
    x0, y0, x1, y1 = _viewport(page)
    assert (x0 + x1) / 2 == pytest.approx((shown["min_x"] + shown["max_x"]) / 2)
    assert (y0 + y1) / 2 == pytest.approx((shown["min_y"] + shown["max_y"]) / 2)
    assert x1 - x0 == pytest.approx((shown["max_x"] - shown["min_x"]) / 1.5)
    # drag to pan: the viewport moves against the drag, by the drag's length in map units
    k = page.evaluate("() => window.shoalMap.view().k")
    box = page.locator("#map-canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    answers = _stats(page)["answers"]
    page.evaluate(
        "() => { window.frameTimes = []; window.recording = true; const loop = t => { window.frameTimes.push(t);"
        " if (window.recording) requestAnimationFrame(loop); }; requestAnimationFrame(loop); }"
    )
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 200, cy - 100, steps=60)
    page.mouse.up()
    frames = page.evaluate("() => { window.recording = false; return window.frameTimes; }")
    _wait_view_answered(page, answers)
    px0, py0, px1, _ = _viewport(page)
    assert px0 == pytest.approx(x0 - 200 / k, rel=1e-3, abs=1e-6 * (x1 - x0))
    assert py0 == pytest.approx(y0 - 100 / k, rel=1e-3, abs=1e-6 * (y1 - y0))
    # - zooms out
    answers = _stats(page)["answers"]
    page.keyboard.press("-")
    _wait_answers(page, answers)
    assert _viewport(page)[2] - _viewport(page)[0] == pytest.approx((px1 - px0) * 1.5)
    # arrow keys pan, 0 brings back the whole map
    page.focus("#map-canvas")
    answers = _stats(page)["answers"]
    before_key = _viewport(page)
    page.keyboard.press("ArrowRight")
    _wait_answers(page, answers)
    assert _viewport(page)[0] > before_key[0]
    answers = _stats(page)["answers"]
    page.keyboard.press("0")
    _wait_answers(page, answers)
    assert _viewport(page) == pytest.approx(whole)
    assert page.get_attribute("#map-canvas", "data-drawn") == "40"
    # frame time while panning, kept as an artifact (not asserted: wall-clock)
    gaps = sorted(b - a for a, b in itertools.pairwise(frames))
    draws = sorted(_stats(page)["drawTimes"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "map-frame-time.json").write_text(json.dumps({
        "points": 40, "frames": len(gaps), "median_frame_ms": gaps[len(gaps) // 2] if gaps else None,
        "max_frame_ms": gaps[-1] if gaps else None, "median_draw_ms": draws[len(draws) // 2] if draws else None,
    }))  # fmt: skip
    assert len(gaps) > 5  # the page kept producing frames while it was dragged


def test_a_lasso_saves_every_frame_inside_it_as_a_segment(console: Console, shapes: Shapes, page: Any) -> None:
    # 40 points per viewport: most frames inside the lasso are not drawn, the server finds them all
    job_id = _open(page, console, "&points=40")
    points = _points(console, job_id)
    circles = [p for p in points if p.label_class == 0]
    outline, radius = _around(page, circles)
    mx, my = (sum(v) / len(outline) for v in zip(*outline, strict=True))
    # the hand ends past the start, across the first edge: the page keeps the large loop
    overshoot = (mx + 1.15 * radius * math.cos(math.pi / 10), my + 1.15 * radius * math.sin(math.pi / 10))
    polygon = _lasso(page, [*outline, overshoot])
    assert page.get_attribute("#map-lasso", "aria-pressed") == "true"
    # the polygon the page sent is the outline drawn (to the pointer's sub-pixel precision), in map units
    k = page.evaluate("() => window.shoalMap.view().k")
    for corner in outline[2:9]:
        at = page.evaluate("([x, y]) => window.shoalMap.toMap(x, y)", list(corner))
        assert min(math.dist((v["x"], v["y"]), (at["x"], at["y"])) for v in polygon) < 0.1 / k
    want = sorted(p.frame_id for p in points if _inside(p.x, p.y, polygon))
    drawn = page.evaluate("() => window.shoalMap.held()")
    assert len(want) > len([p for p in drawn if _inside(p["x"], p["y"], polygon)])
    assert len([f for f in want if shapes.labels[shapes.frame_ids.index(f)] == 0]) >= 0.7 * len(circles)
    assert page.get_attribute("#region-count", "data-count") == str(len(want))
    page.fill("#segment-name", "lasso-circles")
    page.click("#save-segment")
    page.wait_for_selector("#save-message.ok")
    with console.client() as c:
        members = c.analysis.ListSegmentMembers(
            apb.ListSegmentMembersRequest(project="shapes", name="lasso-circles", page=cpb.PageRequest(page_size=1000))
        )
        segment = c.analysis.GetSegment(apb.GetSegmentRequest(project="shapes", name="lasso-circles")).segment
    assert sorted(m.frame_id for m in members.members) == want
    assert segment.dataset == "shapes" and segment.size == len(want)


def test_any_hand_drawn_outline_becomes_a_polygon_the_server_takes(console: Console, shapes: Shapes, page: Any) -> None:
    """Scribbles that cross themselves many times, fold back and repeat points are untangled into
    simple polygons: QueryMapRegion refuses a polygon whose edges cross or touch."""
    job_id = _open(page, console)
    answers = page.evaluate(
        """async (jobId) => {
        const { untangle } = await import('/static/js/pages/map.js');
        const { rpc } = await import('/static/js/api.js');
        let seed = 7;
        const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
        const out = [];
        for (let s = 0; s < 12; s++) {
          const walk = [{ x: 0, y: 0 }];
          for (let i = 0; i < 150; i++) {
            const last = walk[walk.length - 1];
            if (i % 37 === 5) walk.push({ ...walk[walk.length - 2] });  // folds straight back
            else if (i % 41 === 7) walk.push({ ...last });  // a repeated point
            else walk.push({ x: last.x + Math.round((rand() - 0.5) * 8), y: last.y + Math.round((rand() - 0.5) * 8) });
          }
          const polygon = untangle(walk);
          try {
            const r = await rpc('analysis', 'QueryMapRegion', { project: 'shapes', job_id: jobId, polygon });
            out.push({ vertices: polygon.length, ok: true, total: Number(r.page?.total_count || 0) });
          } catch (err) {
            out.push({ vertices: polygon.length, ok: false, error: err.message });
          }
        }
        return out;
      }""",
        job_id,
    )
    assert all(a["ok"] for a in answers if a["vertices"] >= 3), answers
    assert sum(a["vertices"] >= 3 for a in answers) >= 10, answers


def make_blobs(console: Console, project: str = "blobs", n: int = 40) -> dict[str, list[str]]:
    """Two labeled blobs ("seen") and an unlabeled pool of the same two blobs, in a COSINE space."""
    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sdk import UploadColumns

    rng = np.random.default_rng(11)
    centres = rng.normal(0, 1, (2, 8)) * 4
    space = pb.EmbeddingSpace(name="clip", dimension=8, metric=pb.DISTANCE_METRIC_COSINE,
                              level=pb.EMBEDDING_LEVEL_FRAME, model_name="clip", model_version="1")  # fmt: skip
    frames: dict[str, list[str]] = {}
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=0, name="a"), pb.ClassDef(id=1, name="b")], embedding_spaces=[space])))  # fmt: skip
        for name, kind in (("seen", pb.DATASET_KIND_LABELED), ("pool", pb.DATASET_KIND_UNLABELED_POOL)):
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
                name=name, kind=kind, splits=["train"])))  # fmt: skip
            blob = [i % 2 for i in range(n)]
            ids = [f"{name}-{i:03d}" for i in range(n)]
            cols = UploadColumns(
                frame_ids=ids,
                splits=["train"] * n,
                media_uris=[f"file://{console.media / project / f}.png" for f in ids],
                sizes=[(64, 64)] * n,
                class_ids=blob if kind == pb.DATASET_KIND_LABELED else None,
                embeddings={"clip": (centres[blob] + rng.normal(0, 0.4, (n, 8))).astype(np.float32)},
            )
            r = c.upload(project, name, cols, progress=False)
            assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
            frames[name] = ids
    return frames


def test_a_lasso_seeds_a_campaign(console: Console, page: Any) -> None:
    make_blobs(console)
    job_id = _open(page, console, where="blobs/map?dataset=seen&space=clip")
    blob = [p for p in _points(console, job_id, "blobs") if p.label_class == 0]
    outline, _ = _around(page, blob, share=0.9)
    polygon = _lasso(page, [*outline, outline[0]])
    want = sorted(p.frame_id for p in _points(console, job_id, "blobs") if _inside(p.x, p.y, polygon))
    assert want and page.get_attribute("#region-count", "data-count") == str(len(want))
    page.fill("#segment-name", "blob-a")
    page.click("#start-campaign")
    # the pool defaults to the unlabeled dataset, the space to the map's own (a COSINE space)
    assert page.input_value("#sel-campaign-pool") == "pool"
    assert page.input_value("#sel-campaign-space") == "clip"
    page.fill("#campaign-name", "blob-a-picks")
    page.fill("#campaign-budget", "5")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_a_lasso_seeds_a_campaign-form.png"))
    page.click("#campaign-submit")
    page.wait_for_url("**/#/p/blobs/campaigns?job=*")
    campaign = page.url.split("job=")[1]
    with console.client() as c:
        job = c.sampler.GetJob(spb.GetJobRequest(project="blobs", job_id=campaign)).job
        members = c.analysis.ListSegmentMembers(
            apb.ListSegmentMembersRequest(project="blobs", name="blob-a", page=cpb.PageRequest(page_size=1000))
        )
    assert job.kind == "campaign" and job.params["seed_segment"] == "blob-a" and job.params["pool_dataset"] == "pool"
    assert job.params["embedding_space"] == "clip" and job.params["budget"] == "5"
    assert sorted(m.frame_id for m in members.members) == want
