"""A semantic segmentation project in the console, in a real Chromium: the performance page shows the
metrics and the per-class IoU as numpy counts them, a class opens its frames lowest IoU first and a
confusion cell the frames with the most such pixels; the frame view draws the label map and the
predicted map side by side, each class in its colour; the Issues page runs the label-issues job and
shows the frames with planted errors first, their flagged pixels drawn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.console.conftest import Console, sign_in

pytestmark = pytest.mark.browser

CLASSES = [(1, "road", "#804080"), (2, "sky", "#4682b4"), (3, "car", "#00008e")]
#: frames with a stretch of sky labeled road
PLANTED = (2, 7)


@pytest.fixture(scope="module")
def streets(console: Console) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(3)
    h, w = 48, 64
    labels, preds, uris, probs = [], [], [], []
    folder = console.media / "streets"
    folder.mkdir(exist_ok=True)
    for i in range(12):
        y = np.where(np.arange(h)[:, None] > h // 2, 1, 2).repeat(w, axis=1).astype(np.uint16)
        top = int(rng.integers(20, 34))
        y[top : top + 10, 10 + 3 * i : 26 + 3 * i] = 3  # a car on the road
        p = y.copy()
        p[top : top + 10, 10 + 3 * i : 14 + 3 * i + i] = 1  # part of the car seen as road, more in later frames
        path = folder / f"st-{i:02d}.png"
        Image.fromarray((np.stack([y * 60] * 3, axis=-1)).astype(np.uint8)).save(path)
        uris.append(path.as_uri())
        if i in PLANTED:
            y[2:14, 5:60] = 1  # a stretch of sky labeled road
        logits = 4.0 * (p[None] == np.array([1, 2, 3])[:, None, None]) + rng.normal(0, 0.5, (3, h, w))
        e = np.exp(logits - logits.max(axis=0))
        prob_path = folder / f"st-{i:02d}.npy"
        np.save(prob_path, (e / e.sum(axis=0)).astype(np.float16))
        probs.append(prob_path.as_uri())
        labels.append(y)
        preds.append(p)
    ids = [f"st-{i:02d}" for i in range(12)]
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="streets", task_type=pb.TASK_TYPE_SEGMENTATION,
            classes=[pb.ClassDef(id=i, name=n, color=col) for i, n, col in CLASSES])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="streets", dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="streets", inference_set=pb.InferenceSet(
            name="segformer", dataset="val", model_name="segformer", model_version="1")))  # fmt: skip
        for cols in (
            UploadColumns(frame_ids=ids, media_uris=uris, sizes=[(w, h)] * 12, label_maps=labels),
            UploadColumns(
                frame_ids=ids, inference_set="segformer", predicted_maps=preds, probability_uris=probs, skip_frames=True
            ),
        ):
            r = c.upload("streets", "val", cols, progress=False)
            assert c.wait_for_upload("streets", r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return labels, preds


def _iou(labels: list[np.ndarray], preds: list[np.ndarray], c: int) -> float:
    y, p = np.concatenate([a.ravel() for a in labels]), np.concatenate([a.ravel() for a in preds])
    tp = int(((y == c) & (p == c)).sum())
    return tp / int(((y == c) | (p == c)).sum())


def test_the_performance_page_shows_iou_and_opens_frames(console: Console, streets: Any, page: Any) -> None:
    labels, preds = streets
    sign_in(page, console)
    page.goto(console.url + "/#/p/streets/performance?inference_set=segformer")
    page.wait_for_selector("#per-class-table")
    rows = page.eval_on_selector_all(
        "#per-class-table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [(r[0], r[1]) for r in rows] == [(n, f"{_iou(labels, preds, c):.3f}") for c, n, _ in CLASSES]
    miou = np.mean([_iou(labels, preds, c) for c, _, _ in CLASSES])
    assert page.inner_text("#stat-miou").splitlines()[-1] == f"{miou:.3f}"
    # the car's frames, lowest IoU first: the later frames lose more of it
    page.click("#class-3 a")
    page.wait_for_selector("#segmentation-frame-grid figure")
    shown = page.eval_on_selector_all("#segmentation-frame-grid figure", "fs => fs.map(f => f.dataset.frameId)")
    assert shown == [f"st-{i:02d}" for i in reversed(range(12))]
    assert "class=3" in page.url
    # a confusion cell: labeled car, predicted road
    page.click("#cell-3-1")
    page.wait_for_selector("#segmentation-frame-grid figcaption")
    first = page.inner_text("#segmentation-frame-grid figcaption")
    assert first.startswith("st-11 · 150 px"), first


def test_the_frame_view_draws_both_maps_in_class_colours(console: Console, streets: Any, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/streets/frame/val/st-05?inference_set=segformer")
    page.wait_for_selector("#map-prediction svg image.mask")
    for side in ("labels", "prediction"):
        drawn = page.eval_on_selector_all(f"#map-{side} svg g", "gs => gs.map(g => g.dataset.classId)")
        assert sorted(drawn) == ["1", "2", "3"]
    assert page.inner_text("#class-key").split() == ["road", "sky", "car"]
    swatches = page.eval_on_selector_all("#class-key .swatch", "ss => ss.map(s => getComputedStyle(s).backgroundColor)")
    assert swatches == ["rgb(128, 64, 128)", "rgb(70, 130, 180)", "rgb(0, 0, 142)"]  # the classes' own colours
    assert "road, sky, car" in page.inner_text("#frame-facts")


def test_the_issues_page_finds_the_mislabeled_regions(console: Console, streets: Any, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/streets/issues?inference_set=segformer")
    page.click("#start-job")
    page.wait_for_selector("#issue-one")
    first = page.get_attribute("#issue-one", "data-frame-id")
    assert first in {f"st-{i:02d}" for i in PLANTED}
    assert page.inner_text("#issue-given") == "road" and page.inner_text("#issue-suggested") == "sky"
    assert int(page.inner_text("#issue-flagged").split()[0].replace(",", "")) >= 450  # of the 660 pixels painted
    page.wait_for_selector("#issue-one svg image.mask")  # the flagged pixels drawn over the image
    assert not page.is_disabled("#issue-accept") and not page.is_disabled("#issue-dismiss")
    page.keyboard.press("j")
    page.wait_for_selector(f"#issue-one:not([data-frame-id='{first}'])")
    assert page.get_attribute("#issue-one", "data-frame-id") in {f"st-{i:02d}" for i in PLANTED}
    assert "frames with mislabeled regions" in page.inner_text("#issue-summary")
