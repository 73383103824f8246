"""Instance masks and keypoints in the console, in a real Chromium: the frame view draws each mask
over the image where its pixels are, keypoints joined by their class's skeleton (hidden points
hollow, unlabeled ones left out), and the labels and predictions can be hidden each on their own."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shoal.common import masks
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Box, LabeledObject, PredictedObject, UploadColumns
from tests.console.conftest import Console, sign_in

pytestmark = pytest.mark.browser

W, H = 120, 90


def _project(console: Console, name: str, task: int, classes: list[pb.ClassDef], cols: UploadColumns) -> None:
    media = console.media / name
    media.mkdir(parents=True, exist_ok=True)
    for fid in cols.frame_ids:
        Image.new("RGB", (W, H), (235, 235, 225)).save(media / f"{fid}.png")
    cols.media_uris = [str(media / f"{fid}.png") for fid in cols.frame_ids]
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(name=name, task_type=task, classes=classes)))
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=name, dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=name, inference_set=pb.InferenceSet(
            name="m", dataset="val", model_name="m", model_version="1")))  # fmt: skip
        r = c.upload(name, "val", cols, progress=False)
        assert c.wait_for_upload(name, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


def _mask_of(page: Any, selector: str) -> np.ndarray:
    """The pixels a drawn mask image covers, at the frame's size (the console draws it at most
    320 pixels across; these frames are smaller, so one pixel each)."""
    href = page.locator(selector).get_attribute("href")
    png = base64.b64decode(href.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))[:, :, 3] > 0


def test_masks_are_drawn_where_their_pixels_are_and_each_source_can_be_hidden(console: Console, page: Any) -> None:
    label = np.zeros((H, W), dtype=bool)
    label[10:50, 20:60] = True
    label[30:40, 70:100] = True  # two parts, as a polygon pair or a mask may have
    predicted = np.zeros((H, W), dtype=bool)
    predicted[12:52, 22:58] = True
    cols = UploadColumns(
        frame_ids=["m-1"], sizes=[(W, H)],
        objects=[[LabeledObject("g1", 1, mask=label), LabeledObject("g2", 1, polygons=[[5, 60, 40, 60, 20, 85]])]],
        inference_set="m", predictions=[[PredictedObject("p1", 1, 0.9, mask=predicted)]],
    )  # fmt: skip
    _project(console, "masks", pb.TASK_TYPE_INSTANCE_SEGMENTATION, [pb.ClassDef(id=1, name="cone")], cols)
    sign_in(page, console)
    page.goto(console.url + "/#/p/masks/frame/val/m-1?inference_set=m")
    page.wait_for_selector(".frame-view g.box.prediction image.mask")
    assert page.locator(".frame-view g.box.label image.mask").count() == 2
    assert np.array_equal(_mask_of(page, ".frame-view g.box.label image.mask >> nth=0"), label)
    assert np.array_equal(_mask_of(page, ".frame-view g.box.prediction image.mask"), predicted)
    # the polygon's mask is the one drawn from it at upload, as COCO draws it
    triangle = masks.decode(masks.from_polygons([np.array([5, 60, 40, 60, 20, 85.0])], H, W), H, W)
    assert np.array_equal(_mask_of(page, ".frame-view g.box.label image.mask >> nth=1"), triangle)
    # the box of an object given only its mask is the mask's bounding box
    rect = page.locator(".frame-view g.box.label rect").first
    assert [rect.get_attribute(a) for a in ("x", "y", "width", "height")] == ["20", "10", "80", "40"]
    page.uncheck("#show-labels")
    assert not page.locator(".frame-view g.box.label").first.is_visible()
    assert page.locator(".frame-view g.box.prediction").first.is_visible()
    page.check("#show-labels")
    page.uncheck("#show-predictions")
    assert page.locator(".frame-view g.box.label").first.is_visible()
    assert not page.locator(".frame-view g.box.prediction").first.is_visible()


def test_keypoints_are_joined_by_their_skeleton(console: Console, page: Any) -> None:
    points = [[30, 20, 2], [50, 20, 1], [40, 60, 0]]  # visible, hidden, not labeled
    cols = UploadColumns(
        frame_ids=["k-1"], sizes=[(W, H)],
        objects=[[LabeledObject("g1", 1, Box(25, 15, 30, 50), keypoints=points)]],
        inference_set="m", predictions=[[PredictedObject("p1", 1, 0.8, keypoints=[[31, 21], [49, 22], [41, 58]])]],
    )  # fmt: skip
    cls = pb.ClassDef(id=1, name="face", keypoints=["left_eye", "right_eye", "chin"],
                      skeleton=[pb.KeypointEdge(a=0, b=1), pb.KeypointEdge(a=1, b=2), pb.KeypointEdge(a=0, b=2)])  # fmt: skip
    _project(console, "faces", pb.TASK_TYPE_KEYPOINTS, [cls], cols)
    sign_in(page, console)
    page.goto(console.url + "/#/p/faces/frame/val/k-1?inference_set=m")
    page.wait_for_selector(".frame-view g.box.prediction g.keypoints")
    label = ".frame-view g.box.label g.keypoints"
    # the unlabeled chin is left out, and the two edges that reach it
    assert page.locator(f"{label} circle").count() == 2 and page.locator(f"{label} line").count() == 1
    centres = page.eval_on_selector_all(f"{label} circle", "els => els.map(e => [e.getAttribute('cx'),"
                                        " e.getAttribute('cy'), e.getAttribute('fill')])")  # fmt: skip
    assert [c[:2] for c in centres] == [["30", "20"], ["50", "20"]]
    assert centres[1][2] == "#fff"  # hidden: hollow
    prediction = ".frame-view g.box.prediction g.keypoints"
    assert page.locator(f"{prediction} circle").count() == 3 and page.locator(f"{prediction} line").count() == 3
