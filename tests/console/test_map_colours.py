"""The map coloured by correctness, label issue and a metadata key: the legend counts what the
services say of the points shown."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from tests.console.conftest import Console, sign_in
from tests.console.data import Shapes, make_shapes
from tests.server.conftest import finish_job

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def mapped(console: Console) -> tuple[Shapes, str, str]:
    shapes = make_shapes(console)
    with console.client() as c:
        m = finish_job(c, "shapes", c.analysis.StartEmbeddingMap(apb.StartEmbeddingMapRequest(
            project="shapes", dataset="shapes", embedding_space="pixels")).job)  # fmt: skip
        li = finish_job(c, "shapes", c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(
            project="shapes", inference_set="cnn")).job)  # fmt: skip
    return shapes, m.job_id, li.job_id


def _legend(page: Any) -> dict[str, int]:
    rows = page.eval_on_selector_all(
        "#map-legend li", "els => els.map(e => [e.querySelector('.name').innerText, e.querySelector('.num').innerText])"
    )
    return {name: int(n.replace(",", "")) for name, n in rows if n}


def _open(page: Any, console: Console, job: str, params: str) -> dict[str, int]:
    page.goto(console.url + f"/#/p/shapes/map?dataset=shapes&space=pixels&job={job}&{params}")
    page.wait_for_selector("#map-canvas[data-drawn]:not([data-drawn='0'])")
    page.wait_for_function("() => document.querySelectorAll('#map-legend li').length > 0")
    return _legend(page)


def test_the_map_is_coloured_by_correctness_label_issues_and_metadata(
    console: Console, mapped: tuple[Shapes, str, str], page: Any
) -> None:
    shapes, job, issues_job = mapped
    sign_in(page, console)
    with console.client() as c:
        wrong = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project="shapes", dataset="shapes", inference_set="cnn",
            filter=cpb.Filter(all=[cpb.Condition(field="correct", equals=cpb.Value(bool_value=False))]),
            page=cpb.PageRequest(page_size=1))).page.total_count  # fmt: skip
        flagged = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(
            project="shapes", job_id=issues_job, page=cpb.PageRequest(page_size=1))).page.total_count  # fmt: skip
    n = len(shapes.frame_ids)
    legend = _open(page, console, job, "colour=correct&inference_set=cnn")
    assert legend["wrong"] == wrong and legend["correct"] == n - wrong
    legend = _open(page, console, job, "colour=issue&inference_set=cnn")
    assert legend["label issue"] == flagged > 0 and legend["no issue"] == n - flagged
    legend = _open(page, console, job, "colour=metadata&meta_key=camera")
    assert legend["rear"] == shapes.cameras.count("rear") and legend["front"] == shapes.cameras.count("front")
    # the same points whatever the colour
    assert page.get_attribute("#map-canvas", "data-drawn") == str(n)


def test_colouring_by_label_issues_says_when_no_job_has_run(
    console: Console, mapped: tuple[Shapes, str, str], page: Any
) -> None:
    _, job, _ = mapped
    sign_in(page, console)
    page.goto(console.url + f"/#/p/shapes/map?dataset=shapes&space=pixels&job={job}&colour=issue&inference_set=nosuch")
    page.wait_for_selector("#map-colour-note")
    assert "find label issues" in page.inner_text("#map-colour-note")
    page.wait_for_selector("#map-canvas[data-drawn]:not([data-drawn='0'])")  # the map still shows, by class
