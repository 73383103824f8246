"""The model performance page in a real Chromium: the confusion heat map's cells hold the counts the
gRPC API gives and open exactly their frames (classification: the example grid; detection: the
matching boxes drawn on their images), the worst slices and the comparison of two inference sets
show the API's numbers, and a 1,000-class matrix still renders."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.console.conftest import Console, sign_in
from tests.console.data import Cones, Shapes, make_cones, make_shapes

pytestmark = pytest.mark.browser

SQUARE, TRIANGLE = 1, 2


@pytest.fixture(scope="module")
def shapes(console: Console) -> Shapes:
    return make_shapes(console)


@pytest.fixture(scope="module")
def cones(console: Console) -> Cones:
    return make_cones(console)


def _all_datapoints(console: Console, **request: Any) -> list[str]:
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


def _cells(page: Any) -> dict[str, int]:
    return dict(page.eval_on_selector_all("#heatmap g.cell", "els => els.map(e => [e.id, Number(e.dataset.count)])"))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def test_a_confusion_cell_shows_the_api_count_and_opens_exactly_its_frames(
    console: Console, shapes: Shapes, page: Any
) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/shapes/performance?inference_set=cnn")
    cell = page.wait_for_selector(f"#cell-{SQUARE}-{TRIANGLE}")
    with console.client() as c:
        m = c.analysis.GetClassificationMetrics(
            apb.GetClassificationMetricsRequest(project="shapes", inference_set="cnn")
        ).metrics
    ids = list(m.confusion.class_ids)
    k = len(ids)
    want = {
        f"cell-{a}-{b}": int(m.confusion.counts[i * (k + 1) + j]) for i, a in enumerate(ids) for j, b in enumerate(ids)
    }
    assert _cells(page) == want  # every cell, no abstained column at threshold 0
    count = want[f"cell-{SQUARE}-{TRIANGLE}"]
    assert count > 0
    assert page.text_content(f"#cell-{SQUARE}-{TRIANGLE} text") == str(count)
    assert "labeled square, predicted triangle" in cell.get_attribute("aria-label")
    assert page.inner_text("#stat-accuracy .stat") == _pct(m.accuracy)
    per_class = page.inner_text(f"#class-{SQUARE}")
    assert f"{m.per_class[SQUARE].f1:.3f}" in per_class and str(m.per_class[SQUARE].support) in per_class

    # the cells are one tab stop; arrow keys move between them
    page.focus(f"#cell-{SQUARE}-{SQUARE}")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => document.activeElement.id") == f"cell-{SQUARE}-{TRIANGLE}"

    # row-normalised: each cell shows its share of the labeled class
    page.check("#normalise")
    page.wait_for_function(
        f"() => (document.querySelector('#cell-{SQUARE}-{TRIANGLE} text') || {{}}).textContent?.endsWith('%')"
    )
    row = sum(v for key, v in want.items() if key.startswith(f"cell-{SQUARE}-"))
    assert page.text_content(f"#cell-{SQUARE}-{TRIANGLE} text") == f"{round(100 * count / row)}%"

    page.click(f"#cell-{SQUARE}-{TRIANGLE}")
    page.wait_for_selector("#grid-status:has-text('End of results')")
    assert "label_class=1" in page.url and "predicted_class=2" in page.url
    frames = page.eval_on_selector_all("#grid figure.thumb", "els => els.map(e => e.dataset.frameId)")
    expected = _all_datapoints(
        console, project="shapes", dataset="shapes", inference_set="cnn",
        filter=cpb.Filter(all=[
            cpb.Condition(field="label_class", equals=cpb.Value(number_value=SQUARE)),
            cpb.Condition(field="predicted_class", equals=cpb.Value(number_value=TRIANGLE)),
        ]),
    )  # fmt: skip
    assert frames == expected and len(frames) == count


def _expected_confusion(cones: Cones) -> dict[str, int]:
    """The cells the data was built to fill: each labeled box with its prediction's class (or missed),
    and each prediction that overlaps no labeled box as a false positive."""
    want: dict[str, int] = {}
    for fid in cones.frame_ids:
        preds = {p.object_id.replace("-p", "-g"): p for p in cones.predictions[fid]}
        for obj in cones.labels[fid]:
            p = preds.pop(obj.object_id, None)
            key = f"cell-{obj.class_id}-{p.class_id if p else 'missed'}"
            want[key] = want.get(key, 0) + 1
        for p in preds.values():
            want[f"cell-fp-{p.class_id}"] = want.get(f"cell-fp-{p.class_id}", 0) + 1
    return want


def test_detection_confusion_shows_missed_and_false_positive_boxes_and_opens_them(
    console: Console, cones: Cones, page: Any
) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/cones/performance?inference_set=yolo")
    page.wait_for_selector("#cell-fp-2")
    cells = {k: v for k, v in _cells(page).items() if v}
    want = _expected_confusion(cones)
    assert cells == want
    missed = [k for k in want if k.endswith("-missed")]
    swapped = [k for k in want if k.split("-")[1] not in ("fp",) and k.split("-")[1] != k.split("-")[2]]
    assert len(missed) == 1 and want[missed[0]] == 1 and want["cell-fp-2"] == 1 and swapped
    with console.client() as c:
        cm = c.analysis.GetDetectionConfusion(
            apb.GetDetectionConfusionRequest(project="cones", inference_set="yolo")
        ).confusion
    k = len(cm.class_ids)
    assert int(cm.counts[k * (k + 1) + 2]) == 1  # the false-positive row, column "sign"
    page.wait_for_selector("#stat-ap .stat")

    page.click("#cell-fp-2")
    page.wait_for_selector("#matches-grid figure.thumb")
    page.wait_for_selector("#matches-status:has-text('End of results')")
    assert page.eval_on_selector_all("#matches-grid figure.thumb", "els => els.map(e => e.dataset.frameId)") == [
        "c-007"
    ]
    assert "cell=fp%2C2" in page.url or "cell=fp,2" in page.url
    svg = page.wait_for_selector("#matches-grid figure.thumb svg.boxes")
    assert svg.get_attribute("viewBox") == "0 0 160 120"
    rect = page.eval_on_selector(
        "#matches-grid g.box.prediction rect", "r => ['x', 'y', 'width', 'height'].map(a => Number(r.getAttribute(a)))"
    )
    assert rect == [120, 80, 30, 30]
    assert page.locator("#matches-grid g.box.label").count() == 0  # a false positive has no labeled box
    assert page.evaluate(
        "async () => { const i = document.querySelector('#matches-grid img'); await i.decode(); return i.naturalWidth; }"
    ) in (160, 320)

    # the missed cell opens the labeled box nothing predicted
    page.click(f"#{missed[0]}")
    page.wait_for_selector("#matches-status:has-text('End of results')")
    assert page.eval_on_selector_all("#matches-grid figure.thumb", "els => els.map(e => e.dataset.frameId)") == [
        "c-003"
    ]
    assert page.locator("#matches-grid g.box.label").count() == 1
    assert page.locator("#matches-grid g.box.prediction").count() == 0


def _upload_second_model(console: Console, shapes: Shapes) -> None:
    """ "cnn2": right on every frame but those of the rear camera, where it is wrong on most."""
    n = len(shapes.frame_ids)
    probs = np.full((n, 3), 0.05, np.float32)
    for i, (label, cam) in enumerate(zip(shapes.labels, shapes.cameras, strict=True)):
        predicted = (label + 1) % 3 if cam == "rear" and i % 5 else label
        probs[i, predicted] = 0.9
    with console.client() as c:
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="shapes", inference_set=pb.InferenceSet(
            name="cnn2", dataset="shapes", model_name="cnn", model_version="2")))  # fmt: skip
        r = c.upload("shapes", "shapes", UploadColumns(frame_ids=shapes.frame_ids, inference_set="cnn2",
                                                       probabilities=probs, skip_frames=True), progress=False)  # fmt: skip
        assert c.wait_for_upload("shapes", r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


def test_worst_slices_and_the_comparison_show_the_api_numbers(console: Console, shapes: Shapes, page: Any) -> None:
    _upload_second_model(console, shapes)
    sign_in(page, console)
    page.goto(console.url + "/#/p/shapes/performance?inference_set=cnn2&baseline=cnn&group=metadata.camera")
    page.wait_for_selector("#slices-table")
    page.wait_for_selector("#compare-table")
    with console.client() as c:
        sl = c.analysis.GetSlices(
            apb.GetSlicesRequest(project="shapes", inference_set="cnn2", group_by="metadata.camera")
        )
        cmp = c.analysis.CompareInferenceSets(apb.CompareInferenceSetsRequest(
            project="shapes", baseline_inference_set="cnn", candidate_inference_set="cnn2"))  # fmt: skip
    assert [w.value for w in sl.worst] == ["rear"]
    for s in sl.slices:
        row = page.locator(f"#slices-table tr[data-value='{s.value}']")
        assert row.locator("td.accuracy").inner_text() == _pct(s.accuracy)
        assert ("worst" in (row.get_attribute("class") or "")) == (s.value == "rear")
    # the rear slice opens its frames in the grid
    link = page.locator("#slices-table tr[data-value='rear'] a").get_attribute("href")
    assert "meta_key=camera" in link and "meta_value=rear" in link and "inference_set=cnn2" in link

    assert cmp.regressed > 0 and cmp.improved > 0
    assert page.inner_text("#compare-improved") == f"{cmp.improved} improved"
    assert page.inner_text("#compare-regressed") == f"{cmp.regressed} regressed"
    assert (
        page.inner_text("#compare-accuracy .stat") == f"{_pct(cmp.baseline_accuracy)} → {_pct(cmp.candidate_accuracy)}"
    )
    for d in cmp.per_class:
        row = page.inner_text(f"#compare-class-{d.class_id}")
        assert f"{d.baseline.f1:.3f} → {d.candidate.f1:.3f}" in row
        assert f"{d.f1_delta:+.3f}" in row.replace("▲ ", "").replace("▼ ", "")
    href = page.get_attribute("#compare-regressed", "href")
    assert "baseline_inference_set=cnn" in href and "change=regressed" in href and "inference_set=cnn2" in href
    # followed, the grid counts the rear camera's frames (the count the slices' read kept for it)
    page.locator("#slices-table tr[data-value='rear'] a").click()
    rear = cpb.Filter(all=[cpb.Condition(field="metadata.camera", equals=cpb.Value(string_value="rear"))])
    with console.client() as c:
        want = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project="shapes", inference_set="cnn2", filter=rear, page=cpb.PageRequest(page_size=1))).page.total_count  # fmt: skip
    assert want > 0
    page.wait_for_function("n => document.querySelector('#result-count')?.textContent === n", arg=f"{want:,} frames")


def test_a_thousand_class_matrix_renders_on_a_canvas_and_opens_a_cell(console: Console, page: Any) -> None:
    k, n = 1000, 40
    rng = np.random.default_rng(1)
    labels = rng.integers(0, k, n)
    probs = np.full((n, k), 0.1 / (k - 1), np.float32)
    predicted = labels.copy()
    predicted[:5] = (labels[:5] + 1) % k
    probs[np.arange(n), predicted] = 0.9
    ids = [f"m-{i:03d}" for i in range(n)]
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="many", task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=i, name=f"class-{i:04d}") for i in range(k)])))  # fmt: skip
        c.ingest.CreateDataset(
            pb.CreateDatasetRequest(project="many", dataset=pb.Dataset(name="d", kind=pb.DATASET_KIND_LABELED))
        )
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="many", inference_set=pb.InferenceSet(
            name="big", dataset="d", model_name="m", model_version="1")))  # fmt: skip
        r = c.upload("many", "d", UploadColumns(frame_ids=ids, class_ids=labels, inference_set="big",
                                                probabilities=probs), progress=False)  # fmt: skip
        assert c.wait_for_upload("many", r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    sign_in(page, console)
    page.goto(console.url + "/#/p/many/performance?inference_set=big")
    canvas = page.wait_for_selector("canvas#heatmap")
    page.wait_for_function("() => document.querySelector('canvas#heatmap').width > 0")
    assert page.locator("svg#heatmap").count() == 0
    # the keyboard walks the cells (shift: ten at a time) and the live region names each
    canvas.focus()
    a, b = int(labels[0]), int(predicted[0])
    for axis, target in (("ArrowDown", a), ("ArrowRight", b)):
        for _ in range(target // 10):
            page.keyboard.press(f"Shift+{axis}")
        for _ in range(target % 10):
            page.keyboard.press(axis)
    said = page.inner_text("#heatmap-cell")
    assert said.startswith(f"labeled class-{a:04d}, predicted class-{b:04d}: ")
    assert said.split(": ")[1].startswith(f"{int(np.sum((labels == a) & (predicted == b)))} frame")
    page.keyboard.press("Enter")
    page.wait_for_selector("#grid-status:has-text('End of results')")
    assert f"label_class={a}" in page.url and f"predicted_class={b}" in page.url
    frames = page.eval_on_selector_all("#grid figure.thumb", "els => els.map(e => e.dataset.frameId)")
    assert frames == sorted(i for i, x, y in zip(ids, labels, predicted, strict=True) if x == a and y == b)
