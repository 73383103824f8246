"""The COCO evaluation against the reference implementation (pycocotools) on generated datasets
with frames without ground truth, frames without detections, crowd regions, score ties, a class
without ground truth and boxes of every area range."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from shoal.analysis.coco import Boxes, evaluate
from shoal.analysis.detection import evaluation_order
from shoal.common.boxes import iou_matrix

STAT_NAMES = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]  # fmt: skip
SCALES = [(4, 30), (33, 95), (97, 300)]  # small, medium, large sides


def generate(seed: int, images: int = 80) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    cats = [1, 2, 3, 7]  # 7 never has ground truth
    gts: list[dict] = []  # type: ignore[type-arg]
    dts: list[dict] = []  # type: ignore[type-arg]
    for img in range(1, images + 1):
        no_gt = rng.random() < 0.15
        no_dt = rng.random() < 0.15
        for _ in range(0 if no_gt else int(rng.integers(1, 8))):
            lo, hi = SCALES[int(rng.integers(0, 3))]
            w, h = rng.uniform(lo, hi, 2).round(1)
            x, y = rng.uniform(0, 400, 2).round(1)
            crowd = int(rng.random() < 0.1)
            cat = int(rng.choice(cats[:3]))
            gts.append({"id": len(gts) + 1, "image_id": img, "category_id": cat, "bbox": [x, y, w, h],
                        "area": float(w * h), "iscrowd": crowd})  # fmt: skip
            if no_dt:
                continue
            for _ in range(int(rng.integers(0, 3))):  # hits, duplicates, wrong classes
                jitter = rng.normal(0, 0.06, 4) * [w, h, w, h]
                box = [float(v) for v in np.round(np.array([x, y, w, h]) + jitter, 1)]
                box[2], box[3] = max(box[2], 1.0), max(box[3], 1.0)
                dcat = cat if rng.random() < 0.85 else int(rng.choice(cats))
                dts.append({"image_id": img, "category_id": dcat, "bbox": box,
                            "score": float(rng.integers(1, 10)) / 10})  # ties on purpose  # fmt: skip
        if not no_dt:
            for _ in range(int(rng.integers(0, 3))):  # false positives, some on frames without ground truth
                lo, hi = SCALES[int(rng.integers(0, 3))]
                w, h = rng.uniform(lo, hi, 2).round(1)
                x, y = rng.uniform(0, 400, 2).round(1)
                dts.append({"image_id": img, "category_id": int(rng.choice(cats)), "bbox": [x, y, w, h],
                            "score": float(rng.integers(1, 10)) / 10})  # fmt: skip
    dataset = {
        "images": [{"id": i, "width": 800, "height": 800} for i in range(1, images + 1)],
        "annotations": gts,
        "categories": [{"id": c, "name": str(c)} for c in cats],
    }
    return dataset, dts


def reference(dataset: dict, dts: list[dict]) -> COCOeval:  # type: ignore[type-arg]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes([dict(d) for d in dts]) if dts else COCO()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def ours(dataset: dict, dts: list[dict]):  # type: ignore[no-untyped-def]
    anns = dataset["annotations"]
    gt = Boxes(
        image=np.array([a["image_id"] for a in anns]),
        category=np.array([a["category_id"] for a in anns]),
        box=np.array([a["bbox"] for a in anns]),
        crowd=np.array([a["iscrowd"] for a in anns], dtype=bool),
        area=np.array([a["area"] for a in anns]),
    )
    dt = Boxes(
        image=np.array([d["image_id"] for d in dts]),
        category=np.array([d["category_id"] for d in dts]),
        box=np.array([d["bbox"] for d in dts]),
        score=np.array([d["score"] for d in dts]),
    )
    images = np.array(sorted(i["id"] for i in dataset["images"]))
    return evaluate(gt, dt, images, sorted(c["id"] for c in dataset["categories"]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_equal_to_pycocotools(seed: int) -> None:
    dataset, dts = generate(seed)
    assert any(a["iscrowd"] for a in dataset["annotations"])
    ref = reference(dataset, dts)
    got = ours(dataset, dts)
    for name, value in zip(STAT_NAMES, ref.stats, strict=True):
        assert got.stats[name] == pytest.approx(value, abs=1e-6), name
    np.testing.assert_allclose(got.precision, ref.eval["precision"], atol=1e-9)
    np.testing.assert_allclose(got.recall, ref.eval["recall"], atol=1e-9)
    # class 7 has no ground truth: nothing to measure, as in the reference
    assert got.per_class[7]["AP"] == -1


def test_per_class_ap_equals_the_reference_restricted_to_that_class() -> None:
    dataset, dts = generate(5)
    got = ours(dataset, dts)
    for cat in (1, 2, 3):
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = dataset
            gt.createIndex()
            ev = COCOeval(gt, gt.loadRes([dict(d) for d in dts]), "bbox")
            ev.params.catIds = [cat]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        assert got.per_class[cat]["AP"] == pytest.approx(ev.stats[0], abs=1e-6)
        assert got.per_class[cat]["AR100"] == pytest.approx(ev.stats[8], abs=1e-6)


def test_no_detections_at_all() -> None:
    dataset, _ = generate(7, images=10)
    got = ours(dataset, [])
    assert got.stats["AP"] == 0.0 and got.stats["AR100"] == 0.0


def test_iou_against_a_crowd_region_uses_the_detection_area() -> None:
    dt = np.array([[0.0, 0.0, 10.0, 10.0]])
    gt = np.array([[0.0, 0.0, 100.0, 100.0], [0.0, 0.0, 100.0, 100.0]])
    iou = iou_matrix(dt, gt, np.array([True, False]))
    assert iou[0, 0] == pytest.approx(1.0) and iou[0, 1] == pytest.approx(100 / 10000)


def test_frames_with_integer_ids_are_evaluated_in_integer_order() -> None:
    text_sorted = np.array(["1", "10", "2", "200", "9"], dtype=object)
    numbers = np.array([int(v) for v in text_sorted])
    assert list(text_sorted[evaluation_order(numbers, 5)]) == ["1", "2", "9", "10", "200"]
    # one id that is not an integer: every frame in text order
    assert list(evaluation_order(None, 5)) == [0, 1, 2, 3, 4]
    # equal values ("07" and "7") keep their text order
    assert list(evaluation_order(np.array([7, 7, 8]), 3)) == [0, 1, 2]


def test_detections_overhanging_the_image_are_evaluated_as_given() -> None:
    """pycocotools neither clips nor refuses boxes outside the image: IoU and area use them as they are."""
    dataset = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 40.0, 40.0], "area": 1600.0,
                         "iscrowd": 0}],
        "categories": [{"id": 1, "name": "1"}],
    }  # fmt: skip
    dts = [{"image_id": 1, "category_id": 1, "bbox": [-10.0, -10.0, 50.0, 50.0], "score": 0.9}]
    ref = reference(dataset, dts)
    got = ours(dataset, dts)
    # IoU 1600 / 2500 = 0.64: a hit at .50, .55 and .60, a miss from .65 on (clipped it would match perfectly)
    assert ref.stats[0] == pytest.approx(0.3)
    assert got.stats["AP"] == pytest.approx(ref.stats[0], abs=1e-12)
    assert got.stats["AP50"] == pytest.approx(ref.stats[1], abs=1e-12)
