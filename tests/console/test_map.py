"""The embedding map page in a real Chromium: the map job started and followed from the page, the
points of GetMapViewport drawn on a canvas where the page says they are, pan and zoom asking for
the viewport's points, hover and click, and a lasso whose frames (over the whole map, not only
the drawn sample) are saved as a segment."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from tests.console.conftest import ARTIFACTS, Console, sign_in
from tests.console.data import Shapes, make_shapes

pytestmark = pytest.mark.browser

# ui.js PALETTE: the colour of class k
PALETTE = ["#0072B2", "#E69F00", "#009E73"]
DRAWN = "() => Number(document.querySelector('#map-canvas')?.dataset.drawn || 0) > 0"


@pytest.fixture(scope="module")
def shapes(console: Console) -> Shapes:
    return make_shapes(console)


def _open(page: Any, console: Console, extra: str = "") -> str:
    """Opens the map of shapes/pixels and waits until it is drawn; returns the map's job id."""
    sign_in(page, console)
    page.goto(console.url + "/#/p/shapes/map?dataset=shapes&space=pixels" + extra)
    page.wait_for_function(DRAWN)
    return str(page.evaluate("() => window.shoalMap.jobId"))


def _points(console: Console, job_id: str) -> list[apb.MapPoint]:
    with console.client() as c:
        resp = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project="shapes", job_id=job_id, max_points=100_000))
    return list(resp.points)


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
    _wait_answers(page, answers)
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
    screen = page.evaluate("ps => ps.map(([x, y]) => window.shoalMap.toScreen(x, y))", [[p.x, p.y] for p in circles])
    mx = sorted(s["x"] for s in screen)[len(screen) // 2]
    my = sorted(s["y"] for s in screen)[len(screen) // 2]
    radius = sorted(math.dist((s["x"], s["y"]), (mx, my)) for s in screen)[int(0.8 * len(screen))] + 12
    outline = [(mx + radius * math.cos(a * math.pi / 5), my + radius * math.sin(a * math.pi / 5)) for a in range(10)]
    page.focus("#map-canvas")
    page.keyboard.press("l")
    assert page.get_attribute("#map-lasso", "aria-pressed") == "true"
    page.mouse.move(*outline[0])
    page.mouse.down()
    for x, y in outline[1:] + outline[:1]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()
    page.wait_for_selector("#region-count[data-count]")
    polygon = page.evaluate("() => window.shoalMap.region().polygon")
    # the polygon the page sent is the outline drawn, in map coordinates
    corner = page.evaluate("([x, y]) => window.shoalMap.toMap(x, y)", list(outline[0]))
    assert min(math.dist((v["x"], v["y"]), (corner["x"], corner["y"])) for v in polygon) < 1e-6 * radius
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
