"""Instance-mask and keypoint COCO evaluation against the reference implementation (pycocotools,
``iouType="segm"`` and ``"keypoints"``) on generated datasets: labels as polygons and as run
lengths, crowd regions, objects of every area range, frames without labels or predictions, score
ties, a class without labels, labels without a labeled keypoint, and per-class keypoint sigmas."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from shoal.analysis.coco import KEYPOINTS, SEGM, Boxes, evaluate, evaluate_chunks
from shoal.common import masks

SEGM_STATS = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]  # fmt: skip
KEYPOINT_STATS = ["AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75", "AR_medium", "AR_large"]
#: COCO's person keypoint sigmas
PERSON = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0  # fmt: skip


def reference(
    dataset: dict,  # type: ignore[type-arg]
    results: list[dict],  # type: ignore[type-arg]
    iou_type: str,
    sigmas: np.ndarray | None = None,
    category: int | None = None,
) -> COCOeval:
    """The reference's evaluation (of one ``category`` alone, when given)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes([dict(r) for r in results]) if results else COCO()
        ev = COCOeval(gt, dt, iou_type)
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        if category is not None:
            ev.params.catIds = [category]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _shape(rng: np.random.Generator, h: int, w: int, side: tuple[float, float]) -> np.ndarray:
    """A random convex-ish polygon of about ``side`` pixels across, inside the image."""
    size = rng.uniform(*side)
    cx, cy = rng.uniform(size / 2, w - size / 2), rng.uniform(size / 2, h - size / 2)
    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 9))))
    radius = size / 2 * rng.uniform(0.6, 1.0, len(angles))
    xs = np.clip(cx + radius * np.cos(angles), 0, w)
    ys = np.clip(cy + radius * np.sin(angles), 0, h)
    return np.round(np.stack([xs, ys], axis=1).ravel(), 2)


def _mask_of(polygon: np.ndarray, h: int, w: int) -> np.ndarray:
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([polygon.tolist()], h, w))).astype(bool)


def _rle(mask: np.ndarray) -> dict:  # type: ignore[type-arg]
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode()}


def generate_segm(seed: int, images: int = 60) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    cats = [1, 2, 3, 7]  # 7 never has labels
    sides = [(4, 30), (34, 90), (100, 180)]  # small, medium, large areas
    image_rows, gts, dts = [], [], []
    for img in range(1, images + 1):
        h, w = int(rng.integers(190, 240)), int(rng.integers(190, 260))
        image_rows.append({"id": img, "height": h, "width": w})
        no_gt, no_dt = rng.random() < 0.15, rng.random() < 0.15
        for _ in range(0 if no_gt else int(rng.integers(1, 7))):
            size = int(rng.integers(0, 3))
            poly = _shape(rng, h, w, sides[size])
            mask = _mask_of(poly, h, w)
            if not mask.any():
                continue
            crowd = int(rng.random() < 0.1)
            cat = int(rng.choice(cats[:3]))
            # labels as polygons and as run lengths (crowd regions always as run lengths, as COCO has them)
            segmentation = _rle(mask) if crowd or rng.random() < 0.4 else [poly.tolist()]
            area = float(mask_utils.area(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))))
            gts.append({"id": len(gts) + 1, "image_id": img, "category_id": cat, "segmentation": segmentation,
                        "area": area, "iscrowd": crowd, "bbox": [0, 0, 1, 1]})  # fmt: skip
            if no_dt:
                continue
            for _ in range(int(rng.integers(0, 3))):  # hits, duplicates, wrong classes
                step = 1 + 2 * int(size > 0)  # small objects move less, or no prediction would hit them
                shifted = np.roll(mask, tuple(rng.integers(-step, step + 1, 2)), axis=(0, 1))
                if size and rng.random() < 0.5:  # a coarser or finer outline
                    grow = np.zeros_like(shifted)
                    grow[1:, :] |= shifted[:-1, :]
                    grow[:, 1:] |= shifted[:, :-1]
                    shifted = shifted | grow if rng.random() < 0.5 else shifted & grow
                dcat = cat if rng.random() < 0.85 else int(rng.choice(cats))
                dts.append({"image_id": img, "category_id": dcat, "segmentation": _rle(shifted),
                            "score": float(rng.integers(1, 10)) / 10})  # ties on purpose  # fmt: skip
        if not no_dt:
            for _ in range(int(rng.integers(0, 3))):  # false positives, some on frames without labels
                poly = _shape(rng, h, w, sides[int(rng.integers(0, 3))])
                dts.append({"image_id": img, "category_id": int(rng.choice(cats)),
                            "segmentation": _rle(_mask_of(poly, h, w)), "score": float(rng.integers(1, 10)) / 10})  # fmt: skip
    dataset = {"images": image_rows, "annotations": gts, "categories": [{"id": c, "name": str(c)} for c in cats]}
    return dataset, dts


def _runs(segmentation: list | dict, h: int, w: int) -> np.ndarray:  # type: ignore[type-arg]
    if isinstance(segmentation, list):
        return masks.from_polygons([np.asarray(p) for p in segmentation], h, w)
    return masks.from_string(segmentation["counts"])


def ours_segm(dataset: dict, dts: list[dict]):  # type: ignore[no-untyped-def,type-arg]
    size = {i["id"]: (i["height"], i["width"]) for i in dataset["images"]}
    anns = dataset["annotations"]
    g_runs = [_runs(a["segmentation"], *size[a["image_id"]]) for a in anns]
    d_runs = [_runs(d["segmentation"], *size[d["image_id"]]) for d in dts]
    g_flat, g_off = masks.pack(g_runs)
    d_flat, d_off = masks.pack(d_runs)
    gt = Boxes(
        image=np.array([a["image_id"] for a in anns]),
        category=np.array([a["category_id"] for a in anns]),
        box=np.zeros((len(anns), 4)),
        crowd=np.array([a["iscrowd"] for a in anns], dtype=bool),
        area=np.array([masks.area(r) for r in g_runs], dtype=np.float64),
        masks=g_flat,
        mask_offsets=g_off,
    )
    dt = Boxes(
        image=np.array([d["image_id"] for d in dts], dtype=np.int64),
        category=np.array([d["category_id"] for d in dts], dtype=np.int64),
        box=np.zeros((len(dts), 4)),
        score=np.array([d["score"] for d in dts], dtype=np.float64),
        area=np.array([masks.area(r) for r in d_runs], dtype=np.float64),
        masks=d_flat,
        mask_offsets=d_off,
    )
    images = np.array(sorted(i["id"] for i in dataset["images"]))
    return evaluate(gt, dt, images, sorted(c["id"] for c in dataset["categories"]), SEGM)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_ap_equals_pycocotools(seed: int) -> None:
    dataset, dts = generate_segm(seed)
    anns = dataset["annotations"]
    assert any(a["iscrowd"] for a in anns) and any(isinstance(a["segmentation"], list) for a in anns)
    assert len({d["score"] for d in dts}) < len(dts)  # score ties on purpose
    ref = reference(dataset, dts, "segm")
    got = ours_segm(dataset, dts)
    for name, value in zip(SEGM_STATS, ref.stats, strict=True):
        assert got.stats[name] == pytest.approx(value, abs=1e-6), name
    np.testing.assert_allclose(got.precision, ref.eval["precision"], atol=1e-9)
    np.testing.assert_allclose(got.recall, ref.eval["recall"], atol=1e-9)
    assert got.per_class[7]["AP"] == -1  # no labels: nothing to measure, as in the reference
    # every area range is measured
    assert min(got.stats[k] for k in ("AP_small", "AP_medium", "AP_large")) > 0


def test_mask_ap_of_one_class_equals_the_reference_restricted_to_it() -> None:
    dataset, dts = generate_segm(4, images=30)
    got = ours_segm(dataset, dts)
    for cat in (1, 2, 3):
        ev = reference(dataset, dts, "segm", category=cat)
        assert got.per_class[cat]["AP"] == pytest.approx(ev.stats[0], abs=1e-6)
        assert got.per_class[cat]["AR100"] == pytest.approx(ev.stats[8], abs=1e-6)


def test_masks_are_compared_by_their_pixels_not_their_boxes() -> None:
    """Two L-shapes with the same bounding box and few pixels in common: box IoU 1, mask IoU small."""
    h = w = 64
    a = np.zeros((h, w), dtype=bool)
    a[:, :8] = True
    a[-8:, :] = True
    b = np.zeros((h, w), dtype=bool)
    b[:8, :] = True
    b[:, -8:] = True
    flat, off = masks.pack([masks.encode(a)])
    dflat, doff = masks.pack([masks.encode(b)])
    box = np.array([[0.0, 0.0, 64.0, 64.0]])
    gt = Boxes(np.array([1]), np.array([1]), box, crowd=np.array([False]), masks=flat, mask_offsets=off)
    dt = Boxes(np.array([1]), np.array([1]), box, score=np.array([0.9]), masks=dflat, mask_offsets=doff)
    assert evaluate(gt, dt, np.array([1]), [1]).stats["AP50"] == pytest.approx(1.0)
    assert evaluate(gt, dt, np.array([1]), [1], SEGM).stats["AP50"] == 0.0


def generate_keypoints(seed: int, k: int, classes: list[int], images: int = 70) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for img in range(1, images + 1):
        no_gt, no_dt = rng.random() < 0.15, rng.random() < 0.15
        for _ in range(0 if no_gt else int(rng.integers(1, 6))):
            side = float(rng.choice([20.0, 60.0, 150.0])) * rng.uniform(0.8, 1.2)
            x, y = rng.uniform(0, 400, 2).round(1)
            w, h = side, side * rng.uniform(0.8, 1.6)
            xs, ys = x + rng.uniform(0, w, k), y + rng.uniform(0, h, k)
            v = rng.choice([0, 1, 2], k, p=[0.2, 0.2, 0.6])
            if rng.random() < 0.1:
                v[:] = 0  # no labeled point: ignored
            kp = np.stack([xs.round(1), ys.round(1), v], axis=1)
            crowd = int(rng.random() < 0.08)
            cat = int(rng.choice(classes))
            gts.append({"id": len(gts) + 1, "image_id": img, "category_id": cat, "iscrowd": crowd,
                        "keypoints": kp.ravel().tolist(), "num_keypoints": int((v > 0).sum()),
                        "bbox": [float(x), float(y), float(w), float(h)],
                        "area": float(w * h * rng.uniform(0.5, 0.9))})  # fmt: skip
            if no_dt:
                continue
            for _ in range(int(rng.integers(0, 3))):
                noise = rng.normal(0, side * rng.choice([0.02, 0.08, 0.3]), (k, 2))
                dkp = np.concatenate([np.round(kp[:, :2] + noise, 1), np.ones((k, 1))], axis=1)
                dcat = cat if rng.random() < 0.85 else int(rng.choice(classes))
                dts.append({"image_id": img, "category_id": dcat, "keypoints": dkp.ravel().tolist(),
                            "score": float(rng.integers(1, 10)) / 10})  # fmt: skip
        if not no_dt:
            for _ in range(int(rng.integers(0, 3))):
                dkp = np.stack([rng.uniform(0, 450, k).round(1), rng.uniform(0, 450, k).round(1), np.ones(k)], axis=1)
                dts.append({"image_id": img, "category_id": int(rng.choice(classes)), "keypoints": dkp.ravel().tolist(),
                            "score": float(rng.integers(1, 10)) / 10})  # fmt: skip
    dataset = {
        # every labeled point lies in the image (x and y below 400 + 180 x 1.6)
        "images": [{"id": i, "width": 700, "height": 700} for i in range(1, images + 1)],
        "annotations": gts,
        "categories": [{"id": c, "name": str(c), "keypoints": [str(j) for j in range(k)]} for c in classes],
    }
    return dataset, dts


def ours_keypoints(dataset: dict, dts: list[dict], sigmas: dict[int, np.ndarray]):  # type: ignore[no-untyped-def,type-arg]
    anns = dataset["annotations"]

    def flat(objects: list[dict]) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
        rows = [np.asarray(o["keypoints"], dtype=np.float64).reshape(-1, 3) for o in objects]
        counts = [len(r) for r in rows]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return (np.concatenate(rows) if rows else np.zeros((0, 3))), offsets

    g_kp, g_off = flat(anns)
    d_kp, d_off = flat(dts)
    # a prediction's area is the extent of its points, as the reference's loadRes takes it
    d_area = np.array([np.ptp(r[:, 0]) * np.ptp(r[:, 1]) for r in (np.reshape(d["keypoints"], (-1, 3)) for d in dts)])
    gt = Boxes(
        image=np.array([a["image_id"] for a in anns]),
        category=np.array([a["category_id"] for a in anns]),
        box=np.array([a["bbox"] for a in anns]),
        crowd=np.array([a["iscrowd"] for a in anns], dtype=bool),
        area=np.array([a["area"] for a in anns]),
        keypoints=g_kp,
        keypoint_offsets=g_off,
    )
    dt = Boxes(
        image=np.array([d["image_id"] for d in dts], dtype=np.int64),
        category=np.array([d["category_id"] for d in dts], dtype=np.int64),
        box=np.zeros((len(dts), 4)),
        score=np.array([d["score"] for d in dts], dtype=np.float64),
        area=d_area.astype(np.float64),
        keypoints=d_kp,
        keypoint_offsets=d_off,
    )
    images = np.array(sorted(i["id"] for i in dataset["images"]))
    return evaluate(gt, dt, images, sorted(c["id"] for c in dataset["categories"]), KEYPOINTS, sigmas)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_keypoint_ap_equals_pycocotools(seed: int) -> None:
    dataset, dts = generate_keypoints(seed, 17, [1, 2])
    anns = dataset["annotations"]
    assert any(a["num_keypoints"] == 0 for a in anns) and any(a["iscrowd"] for a in anns)
    ref = reference(dataset, dts, "keypoints")
    got = ours_keypoints(dataset, dts, {1: PERSON, 2: PERSON})
    for name, value in zip(KEYPOINT_STATS, ref.stats, strict=True):
        assert got.stats[name] == pytest.approx(value, abs=1e-6), name
    np.testing.assert_allclose(got.precision, ref.eval["precision"], atol=1e-9)
    np.testing.assert_allclose(got.recall, ref.eval["recall"], atol=1e-9)
    assert 0 < got.stats["AP"] < 1


def test_each_class_uses_its_own_keypoint_sigmas() -> None:
    """Two classes with five keypoints each and different sigmas: each class's AP equals the
    reference run with that class's sigmas alone."""
    dataset, dts = generate_keypoints(9, 5, [1, 2])
    sigmas = {1: np.array([0.03, 0.05, 0.08, 0.05, 0.03]), 2: np.array([0.1, 0.12, 0.09, 0.15, 0.2])}
    got = ours_keypoints(dataset, dts, sigmas)
    answers = []
    for cat in (1, 2):
        ev = reference(dataset, dts, "keypoints", sigmas[cat], category=cat)
        assert got.per_class[cat]["AP"] == pytest.approx(ev.stats[0], abs=1e-6)
        assert got.per_class[cat]["AR"] == pytest.approx(ev.stats[5], abs=1e-6)
        answers.append(ev.stats[0])
    # the sigmas matter: the same points judged with the other class's sigmas score differently
    swapped = ours_keypoints(dataset, dts, {1: sigmas[2], 2: sigmas[1]})
    assert swapped.per_class[1]["AP"] != pytest.approx(answers[0], abs=1e-3)


def test_no_predictions_at_all() -> None:
    dataset, _ = generate_keypoints(3, 17, [1], images=10)
    got = ours_keypoints(dataset, [], {1: PERSON})
    assert got.stats["AP"] == 0.0 and got.stats["AR"] == 0.0


def test_chunks_of_images_give_the_same_result() -> None:
    """Matched chunk by chunk (the objects of a few images at a time), the evaluation is the one of
    every object at once, bit for bit."""
    dataset, dts = generate_segm(6, images=30)
    whole = ours_segm(dataset, dts)
    size = {i["id"]: (i["height"], i["width"]) for i in dataset["images"]}
    images = np.array(sorted(size))
    chunks = []
    for part in np.array_split(images, 4):
        keep = set(part.tolist())
        anns = [a for a in dataset["annotations"] if a["image_id"] in keep]
        found = [d for d in dts if d["image_id"] in keep]
        g_runs = [_runs(a["segmentation"], *size[a["image_id"]]) for a in anns]
        d_runs = [_runs(d["segmentation"], *size[d["image_id"]]) for d in found]
        g_flat, g_off = masks.pack(g_runs)
        d_flat, d_off = masks.pack(d_runs)
        gt = Boxes(np.array([a["image_id"] for a in anns], dtype=np.int64), np.array([a["category_id"] for a in anns], dtype=np.int64),
                   np.zeros((len(anns), 4)), crowd=np.array([a["iscrowd"] for a in anns], dtype=bool),
                   area=np.array([masks.area(r) for r in g_runs], dtype=np.float64), masks=g_flat, mask_offsets=g_off)  # fmt: skip
        dt = Boxes(np.array([d["image_id"] for d in found], dtype=np.int64), np.array([d["category_id"] for d in found], dtype=np.int64),
                   np.zeros((len(found), 4)), score=np.array([d["score"] for d in found], dtype=np.float64),
                   area=np.array([masks.area(r) for r in d_runs], dtype=np.float64), masks=d_flat, mask_offsets=d_off)  # fmt: skip
        chunks.append((gt, dt, part))
    chunked = evaluate_chunks(chunks, sorted(c["id"] for c in dataset["categories"]), SEGM)
    assert np.array_equal(chunked.precision, whole.precision) and np.array_equal(chunked.recall, whole.recall)
    assert chunked.stats == whole.stats
