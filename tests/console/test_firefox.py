"""The console in a real headless Firefox (Debian's `firefox-esr`, driven by Selenium through geckodriver;
scripts/ensure-firefox.sh installs both): signing in, the project list, the example grid with its
thumbnails and infinite scroll, the frame view, the performance heat map opening its frames, label
issues reviewed with the keyboard, the embedding map drawn on its canvas and detection boxes drawn over
the images. One Firefox serves the whole session; each test leaves a screenshot in
test-artifacts/console/firefox-<test>.png and fails on errors the page's scripts throw."""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.firefox.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from tests.console.conftest import ARTIFACTS, Console
from tests.console.data import SHAPES, Shapes, make_cones, make_shapes

pytestmark = pytest.mark.browser

# as in scripts/ensure-firefox.sh, which installs both
FIREFOX = os.environ.get("SHOAL_FIREFOX") or "/usr/bin/firefox-esr"
TOOLS = pathlib.Path(os.environ.get("SHOAL_TOOLS_DIR") or pathlib.Path.home() / ".cache" / "shoal-tools")
GECKODRIVER = TOOLS / "bin" / "geckodriver"
TIMEOUT = 30 * float(os.environ.get("SHOAL_TEST_WAIT_SCALE", "4"))
WIDTH, HEIGHT = 1280, 900
# ui.js PALETTE: the colour of class k
PALETTE = ["#0072B2", "#E69F00", "#009E73"]
SQUARE, TRIANGLE = 1, 2


class Firefox:
    """The session's Firefox and the script errors of the current test's pages."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver
        self.errors: list[str] = []

    def on_error(self, entry: Any) -> None:
        self.errors.append(str(getattr(entry, "text", entry)))


@pytest.fixture(scope="session")
def firefox() -> Iterator[Firefox]:
    tools = (("Firefox", FIREFOX), ("geckodriver", GECKODRIVER))
    missing = [f"{what} at {path}" for what, path in tools if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(
            f"no {' and no '.join(missing)}: run `make firefox` (scripts/ensure-firefox.sh)"
            " or set SHOAL_FIREFOX / SHOAL_TOOLS_DIR"
        )
    options = webdriver.FirefoxOptions()
    options.add_argument("-headless")
    options.binary_location = FIREFOX
    options.enable_bidi = True  # script errors reach the test through WebDriver BiDi
    for pref, value in {
        "app.update.enabled": False,
        "browser.shell.checkDefaultBrowser": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.enabled": False,
        "network.captive-portal-service.enabled": False,
        "browser.safebrowsing.update.enabled": False,
    }.items():
        options.set_preference(pref, value)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    service = Service(executable_path=str(GECKODRIVER), log_output=str(ARTIFACTS / "firefox-geckodriver.log"))
    driver = webdriver.Firefox(options=options, service=service)
    try:
        # the viewport (not the window) is 1280x900, as in the Chromium tests
        inner = driver.execute_script(
            "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]"
        )
        driver.set_window_size(WIDTH + inner[0], HEIGHT + inner[1])
        ff = Firefox(driver)
        driver.script.add_javascript_error_handler(ff.on_error)
        yield ff
    finally:
        driver.quit()


@pytest.fixture
def ff(firefox: Firefox, request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    """The session's Firefox, signed out with nothing stored; the page a test ends on is kept as a screenshot,
    and errors its scripts threw fail the test."""
    driver = firefox.driver
    firefox.errors.clear()
    yield driver
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        driver.save_full_page_screenshot(str(ARTIFACTS / f"firefox-{name}.png"))
    finally:
        if driver.current_url.startswith("http"):
            driver.delete_all_cookies()
            driver.execute_script("sessionStorage.clear(); localStorage.clear();")
        driver.get("about:blank")  # the next test loads the app afresh, not a hash change of this page
    assert not firefox.errors, f"the page threw in Firefox: {firefox.errors}"


@pytest.fixture(scope="module")
def shapes(console: Console) -> Shapes:
    make_cones(console)
    return make_shapes(console)


def wait(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    return WebDriverWait(driver, TIMEOUT).until(condition, message=f"waited {TIMEOUT:.0f} s for {what}")


def css(selector: str) -> tuple[str, str]:
    return (By.CSS_SELECTOR, selector)


def element(driver: WebDriver, selector: str) -> WebElement:
    return wait(driver, ec.presence_of_element_located(css(selector)), selector)


def text_in(driver: WebDriver, selector: str, text: str) -> None:
    wait(driver, ec.text_to_be_present_in_element(css(selector), text), f"{text!r} in {selector}")


def sign_in(driver: WebDriver, console: Console, key: str | None = None) -> None:
    driver.get(console.url + "/#/signin")
    element(driver, "#api-key").send_keys(key or console.admin_key)
    driver.find_element(*css("#signin-form button[type=submit]")).click()
    element(driver, "#projects, #no-projects")


def open_page(driver: WebDriver, console: Console, route: str) -> None:
    """Signs in with the admin key and follows the app's route (as a link inside the app would)."""
    sign_in(driver, console)
    driver.execute_script("location.hash = arguments[0]", route)


def grid_ids(driver: WebDriver, grid: str = "#grid") -> list[str]:
    return driver.execute_script(
        f"return [...document.querySelectorAll('{grid} figure.thumb')].map(e => e.dataset.frameId)"
    )


def decoded_widths(driver: WebDriver, selector: str, n: int = 6) -> list[int]:
    """naturalWidth of the first n images, once each has decoded (0 when one cannot)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"Promise.all([...document.querySelectorAll('{selector}')].slice(0, {n}).map(i => i.decode()"
        ".then(() => i.naturalWidth, () => 0))).then(done);"
    )


def all_datapoints(console: Console, **request: Any) -> list[str]:
    ids, token = [], ""
    with console.client() as c:
        while True:
            resp = c.analysis.QueryDatapoints(
                apb.QueryDatapointsRequest(page=cpb.PageRequest(page_size=1000, page_token=token), **request)
            )
            ids += [d.ref.frame_id for d in resp.datapoints]
            token = resp.page.next_page_token
            if not token:
                return ids


def test_sign_in_keeps_the_key_in_an_http_only_cookie_and_lists_the_projects_of_the_key(
    console: Console, shapes: Shapes, ff: WebDriver
) -> None:
    key = console.key(["shapes"], description="shapes only")
    sign_in(ff, console, key)
    names = [td.text for td in ff.find_elements(*css("#projects tbody tr td:nth-child(2)"))]
    assert names == ["shapes"]  # "cones" exists, but this key may not see it
    cookie = ff.get_cookie("shoal_key")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "shoal_key" not in ff.execute_script("return document.cookie")  # scripts cannot read it
    assert key not in ff.current_url and key not in ff.page_source
    assert not ff.execute_script("return Object.keys(localStorage).length + Object.keys(sessionStorage).length")
    # the project opens its overview
    ff.find_element(*css("#projects tbody tr a")).click()
    element(ff, "#datasets .dataset")
    # sign out: the cookie is gone and pages ask to sign in again
    ff.find_element(*css("#sign-out")).click()
    element(ff, "#signin-form")
    assert ff.get_cookie("shoal_key") is None
    ff.execute_script("location.hash = '#/p/shapes/examples'")
    element(ff, "#signin-form")


def test_the_grid_shows_decoded_thumbnails_and_loads_more_pages_when_scrolled(
    console: Console, shapes: Shapes, ff: WebDriver
) -> None:
    open_page(ff, console, "#/p/shapes/examples?dataset=shapes&inference_set=cnn")
    element(ff, "#grid figure.thumb img")
    first = grid_ids(ff)
    assert 0 < len(first) < len(shapes.frame_ids)  # one keyset page, not the whole dataset
    widths = decoded_widths(ff, "#grid img")
    assert len(widths) == 6 and all(w > 0 for w in widths), widths
    # a thumbnail is laid out at a visible size
    size = ff.find_element(*css("#grid figure.thumb img")).size
    assert size["width"] > 32 and size["height"] > 32

    def scrolled_to_the_end(driver: WebDriver) -> bool:
        if "End of results" in driver.find_element(*css("#grid-status")).text:
            return True
        driver.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
        return False

    wait(ff, scrolled_to_the_end, "the grid to reach the end of results while scrolled")
    assert grid_ids(ff) == sorted(shapes.frame_ids)
    assert ff.find_element(*css("#result-count")).text.startswith(f"{len(shapes.frame_ids)} frames")


def test_the_frame_view_shows_the_image_facts_and_neighbours(console: Console, shapes: Shapes, ff: WebDriver) -> None:
    fid = shapes.flipped[0]
    i = shapes.frame_ids.index(fid)
    open_page(ff, console, f"#/p/shapes/frame/shapes/{fid}?inference_set=cnn")
    element(ff, "#label-versions")
    facts = ff.find_element(*css("#frame-facts")).text
    assert SHAPES[shapes.labels[i]] in facts
    assert "camera" in ff.find_element(*css("#frame-metadata")).text
    wait(ff, lambda d: len(grid_ids(d, "#neighbours")) == 12, "12 neighbours")
    neighbours = grid_ids(ff, "#neighbours")
    assert fid not in neighbours
    assert sum(shapes.truth[shapes.frame_ids.index(n)] == shapes.truth[i] for n in neighbours) >= 9
    assert all(w > 0 for w in decoded_widths(ff, "#neighbours img", 12))


def test_a_heat_map_cell_opens_the_grid_of_its_frames(console: Console, shapes: Shapes, ff: WebDriver) -> None:
    open_page(ff, console, "#/p/shapes/performance?inference_set=cnn")
    cell = element(ff, f"#cell-{SQUARE}-{TRIANGLE}")
    with console.client() as c:
        m = c.analysis.GetClassificationMetrics(
            apb.GetClassificationMetricsRequest(project="shapes", inference_set="cnn")
        ).metrics
    ids, k = list(m.confusion.class_ids), len(m.confusion.class_ids)
    want = {
        f"cell-{a}-{b}": int(m.confusion.counts[i * (k + 1) + j]) for i, a in enumerate(ids) for j, b in enumerate(ids)
    }
    got = ff.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#heatmap g.cell')].map(e => [e.id, Number(e.dataset.count)]))"
    )
    assert got == want
    count = want[f"cell-{SQUARE}-{TRIANGLE}"]
    assert count > 0 and cell.find_element(By.CSS_SELECTOR, "text").text == str(count)
    # the cells are drawn at a size one can point at, coloured from the sequential scale
    box = ff.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", cell)
    assert min(box) >= 20, box
    fill = cell.find_element(By.CSS_SELECTOR, "rect").get_attribute("fill")
    assert re.fullmatch(r"#[0-9a-fA-F]{6}|rgb\(.*\)", fill), fill
    # arrow keys move between cells
    diagonal = ff.find_element(*css(f"#cell-{SQUARE}-{SQUARE}"))
    ff.execute_script("arguments[0].focus()", diagonal)
    diagonal.send_keys("\ue014")  # ArrowRight
    assert ff.execute_script("return document.activeElement.id") == f"cell-{SQUARE}-{TRIANGLE}"
    # a click on the cell's square (geckodriver cannot scroll to an SVG <g> itself, only to what it draws)
    cell.find_element(By.CSS_SELECTOR, "rect").click()
    text_in(ff, "#grid-status", "End of results")
    assert "label_class=1" in ff.current_url and "predicted_class=2" in ff.current_url
    expected = all_datapoints(
        console, project="shapes", dataset="shapes", inference_set="cnn",
        filter=cpb.Filter(all=[
            cpb.Condition(field="label_class", equals=cpb.Value(number_value=SQUARE)),
            cpb.Condition(field="predicted_class", equals=cpb.Value(number_value=TRIANGLE)),
        ]),
    )  # fmt: skip
    assert grid_ids(ff) == expected and len(expected) == count


def test_label_issues_are_reviewed_with_the_keyboard(console: Console, shapes: Shapes, ff: WebDriver) -> None:
    open_page(ff, console, "#/p/shapes/issues?inference_set=cnn")
    element(ff, "#start-job, #rerun-job")
    for start in ff.find_elements(*css("#start-job")):
        start.click()

    def current(driver: WebDriver) -> str:
        return driver.find_element(*css("#issue-one")).get_attribute("data-frame-id")

    element(ff, "#issue-one")
    first = current(ff)
    body = ff.find_element(*css("body"))
    body.send_keys("j")  # the next issue
    wait(ff, lambda d: current(d) != first, "j to move to the next issue")
    target = current(ff)
    body.send_keys("d")  # dismissed, and remembered by the analysis service
    element(ff, "#issue-status.ok")
    job_id = ff.execute_script("return new URLSearchParams(location.hash.split('?')[1]).get('job')")
    with console.client() as c:
        r = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(
            project="shapes", job_id=job_id, include_dismissed=True, page=cpb.PageRequest(page_size=1000)))  # fmt: skip
    assert [i.ref.frame_id for i in r.issues if i.dismissed] == [target]
    body.send_keys("g")  # the grid of every issue, the dismissed one marked
    element(ff, f"#issue-grid .issue-tile.dismissed[data-frame-id='{target}']")
    assert all(w > 0 for w in decoded_widths(ff, "#issue-grid img"))


def test_the_map_starts_its_job_and_draws_every_point_in_its_class_colour(
    console: Console, shapes: Shapes, ff: WebDriver
) -> None:
    open_page(ff, console, "#/p/shapes/map?dataset=shapes&space=pixels")
    # no map yet: the page starts the job, follows it over server-sent events, then draws
    wait(
        ff,
        lambda d: d.execute_script("return Number(document.querySelector('#map-canvas')?.dataset.drawn || 0) > 0"),
        "the map to be drawn",
    )
    job_id = ff.execute_script("return window.shoalMap.jobId")
    with console.client() as c:
        job = c.analysis.GetJob(apb.GetJobRequest(project="shapes", job_id=job_id)).job
        points = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project="shapes", job_id=job_id)).points
    assert job.kind == "embedding_map" and job.state == cpb.JOB_STATE_SUCCEEDED
    assert ff.find_element(*css("#map-canvas")).get_attribute("data-drawn") == str(len(shapes.frame_ids))
    label = {p.frame_id: p.label_class for p in points}
    # each point's pixel on the canvas has its class's colour
    pixels = ff.execute_script(
        "const c = document.querySelector('#map-canvas'), g = c.getContext('2d'), r = c.getBoundingClientRect();"
        "const dpr = window.shoalMap.view().dpr;"
        "return window.shoalMap.held().map(p => { const s = window.shoalMap.toScreen(p.x, p.y);"
        " const d = g.getImageData(Math.floor((s.x - r.left) * dpr), Math.floor((s.y - r.top) * dpr), 1, 1).data;"
        " return [p.id, '#' + [d[0], d[1], d[2]].map(v => v.toString(16).padStart(2, '0')).join('').toUpperCase()]; })"
    )
    assert len(pixels) == len(shapes.frame_ids)
    right = sum(colour == PALETTE[label[fid]] for fid, colour in pixels)
    assert right >= 0.9 * len(pixels), pixels
    legend = ff.find_element(*css("#map-legend")).text
    assert all(name in legend for name in SHAPES)


def test_detection_boxes_are_drawn_over_the_images(console: Console, shapes: Shapes, ff: WebDriver) -> None:
    open_page(ff, console, "#/p/cones/examples?dataset=road&inference_set=yolo")
    text_in(ff, "#grid-status", "End of results")
    counts = ff.execute_script(
        "return [...document.querySelectorAll('#grid figure.thumb')].map(e => [e.dataset.frameId,"
        " e.querySelectorAll('g.box.label rect').length, e.querySelectorAll('g.box.prediction rect').length])"
    )
    got = {fid: (labels, preds) for fid, labels, preds in counts}
    assert len(got) == 24
    assert got["c-003"] == (2, 1)  # a missed box
    assert got["c-007"] == (2, 3)  # a false positive
    # the false positive sits where it was uploaded: over the image as the image is fitted into its square
    fp = ff.execute_script(
        "return [...document.querySelectorAll(\"#grid figure.thumb[data-frame-id='c-007'] g.box.prediction rect\")].at(-1)"
    )
    assert [fp.get_attribute(a) for a in ("x", "y", "width", "height")] == ["120", "80", "30", "30"]
    img, rect = ff.execute_script(
        "const box = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; };"
        "return [box(arguments[0].closest('figure').querySelector('img')), box(arguments[0])];",
        fp,
    )
    scale = min(img[2] / 160, img[3] / 120)
    left, top = img[0] + (img[2] - 160 * scale) / 2, img[1] + (img[3] - 120 * scale) / 2
    assert scale > 0.5
    assert rect == pytest.approx([left + 120 * scale, top + 80 * scale, 30 * scale, 30 * scale], abs=1.5)
    assert all(w > 0 for w in decoded_widths(ff, "#grid img"))
    # the frame view draws them too and lists the predictions
    ff.find_element(*css("#grid figure.thumb[data-frame-id='c-005']")).click()
    element(ff, "#predictions")
    assert ff.find_elements(*css("#main svg g.box.prediction rect"))
    assert (
        "barrel" in ff.find_element(*css("#predictions")).text or "sign" in ff.find_element(*css("#predictions")).text
    )
