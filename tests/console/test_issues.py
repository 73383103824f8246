"""Label-issue review in a real Chromium: the shapes project's flipped frames are the issues; one is
accepted with the keyboard and lands in a labeling request with its reason, one is dismissed and
does not come back when the job is rerun from the page."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb
from tests.console.conftest import Console, sign_in, start_console
from tests.console.data import SHAPES, Shapes, make_shapes
from tests.server.conftest import wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, chdb_path: pathlib.Path) -> Iterator[Console]:
    """The console with a labeling platform configured, so the bridge takes direct sends; nothing
    listens there, so every request stays pending, which is all these tests look at."""
    c = start_console(
        tmp_path_factory.mktemp("console"),
        chdb_path,
        label_studio_url="http://127.0.0.1:9",
        label_studio_token=SecretStr("no-label-studio-here"),
    )
    yield c
    c.server.stop(grace=1)


@pytest.fixture(scope="module")
def shapes(console: Console) -> Shapes:
    return make_shapes(console)


def _open_issues(page: Any, console: Console) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/shapes/issues?inference_set=cnn")
    page.wait_for_selector("#start-job, #rerun-job")
    if page.locator("#start-job").count():
        page.click("#start-job")
    page.wait_for_selector("#issue-one")


def _current(page: Any) -> str:
    return page.get_attribute("#issue-one", "data-frame-id")


def test_accept_an_issue_with_the_keyboard_sends_it_to_labeling(console: Console, shapes: Shapes, page: Any) -> None:
    with console.client() as c:  # a neighbour job of the dataset explains each issue by its neighbours' labels
        job = c.analysis.StartNeighborAnalysis(
            apb.StartNeighborAnalysisRequest(project="shapes", dataset="shapes", embedding_space="pixels")
        ).job
        c.wait_for_job("shapes", job.job_id, timeout=120, progress=False)
    _open_issues(page, console)
    # j walks the ranked issues to a frame whose label was flipped
    for _ in range(20):
        if _current(page) in shapes.flipped:
            break
        page.keyboard.press("j")
    fid = _current(page)
    assert fid in shapes.flipped
    i = shapes.frame_ids.index(fid)
    given, suggested = SHAPES[shapes.labels[i]], SHAPES[shapes.truth[i]]
    assert page.inner_text("#issue-given").strip() == given
    assert page.inner_text("#issue-suggested").strip() == suggested
    assert f"mostly labeled {suggested}" in page.inner_text("#issue-why")  # its neighbours side with the model
    page.wait_for_selector("#issue-probs")
    page.keyboard.press("a")
    page.wait_for_selector("#issue-status.ok")
    assert _current(page) != fid  # on to the next issue
    with console.client() as c:
        items = c.labeling_bridge.ListLabelingItems(lpb.ListLabelingItemsRequest(project="shapes")).items
    mine = [it for it in items if it.ref.frame_id == fid]
    assert len(mine) == 1 and mine[0].state == lpb.ITEM_STATE_PENDING
    assert mine[0].reason.startswith(f"label issue: labeled {given}, the model suggests {suggested} (p 0.")
    # the page lists the frame as sent, and shows it in labeling when it comes back to it
    page.wait_for_selector(f"#accepted-list tr[data-frame-id='{fid}']")
    page.keyboard.press("k")
    assert _current(page) == fid
    assert "in labeling: pending" in page.inner_text("#issue-one h2")


def _listed(page: Any) -> list[str]:
    page.click("#view-grid")
    page.wait_for_selector("#issue-grid .issue-tile")
    page.wait_for_selector("#issue-end")  # every page read
    return page.eval_on_selector_all("#issue-grid .issue-tile", "els => els.map(e => e.dataset.frameId)")


def test_a_dismissed_issue_stays_away_after_a_rerun(console: Console, shapes: Shapes, page: Any) -> None:
    _open_issues(page, console)
    before = _listed(page)
    assert set(shapes.flipped) <= set(before)
    # dismiss the second issue with the keyboard from the grid: j moves, d dismisses
    page.keyboard.press("j")
    target = page.get_attribute("#issue-grid .issue-tile.current", "data-frame-id")
    page.keyboard.press("d")
    page.wait_for_selector("#issue-status.ok")
    assert "dismissed" in page.get_attribute(f"#issue-grid .issue-tile[data-frame-id='{target}']", "class")
    # u brings it back, d dismisses it again
    page.keyboard.press("u")
    page.wait_for_selector(f"#issue-grid .issue-tile.open[data-frame-id='{target}']")
    page.keyboard.press("d")
    page.wait_for_selector(f"#issue-grid .issue-tile.dismissed[data-frame-id='{target}']")
    # the job is run again from the page (the old grid is marked, to wait for the new one)
    job_id = page.evaluate("() => new URLSearchParams(location.hash.split('?')[1]).get('job')")
    with console.client() as c:
        ran = c.analysis.GetJob(apb.GetJobRequest(project="shapes", job_id=job_id)).job.finish_time.ToNanoseconds()
        page.eval_on_selector("#issue-grid", "g => { g.dataset.old = 'yes'; }")
        page.click("#rerun-job")
        wait_for(
            lambda: (
                c.analysis.GetJob(apb.GetJobRequest(project="shapes", job_id=job_id)).job.finish_time.ToNanoseconds()
                > ran
            ),
            what="the rerun to finish",
        )
    page.wait_for_selector("#issue-grid:not([data-old]) .issue-tile")
    after = _listed(page)
    assert target not in after and sorted(after) == sorted(set(before) - {target})
    assert "1 dismissed" in page.inner_text("#issue-summary")
    # the analysis still flags it, and says it is dismissed
    with console.client() as c:
        r = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(
            project="shapes", job_id=job_id, include_dismissed=True, page=cpb.PageRequest(page_size=1000)))  # fmt: skip
    flagged = {i.ref.frame_id: i for i in r.issues}
    assert target in flagged and flagged[target].is_issue and flagged[target].dismissed


def test_a_job_can_weigh_the_neighbours_labels(console: Console, shapes: Shapes, page: Any) -> None:
    """With a neighbour job of the dataset the toolbar offers the neighbours' labels; checked, the job started
    is another one, given that neighbour job, and the page says so."""
    with console.client() as c:
        graph = c.analysis.StartNeighborAnalysis(
            apb.StartNeighborAnalysisRequest(project="shapes", dataset="shapes", embedding_space="pixels")
        ).job
        c.wait_for_job("shapes", graph.job_id, timeout=120, progress=False)
    _open_issues(page, console)
    plain = page.evaluate("() => new URLSearchParams(location.hash.split('?')[1]).get('job')")
    assert not page.is_checked("#use-neighbours")  # a plain job's rerun stays plain unless asked
    page.check("#use-neighbours")
    page.click("#rerun-job")
    page.wait_for_selector("#issue-blended")
    blended = page.evaluate("() => new URLSearchParams(location.hash.split('?')[1]).get('job')")
    assert blended and blended != plain
    with console.client() as c:
        job = c.wait_for_job("shapes", blended, timeout=120, progress=False)
    assert job.params["neighbor_job_id"] == graph.job_id
    assert page.is_checked("#use-neighbours")  # and its rerun keeps the neighbours
