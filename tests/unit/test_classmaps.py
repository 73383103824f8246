"""Class maps as class runs: encoding round trips, the pixel confusion of the run walk equal to numpy
counting every pixel, per-class regions equal to pycocotools' masks, PNG label images of each mode."""

from __future__ import annotations

import io

import numpy as np
import pycocotools.mask as cocomask
import pytest
from PIL import Image

from shoal.common import classmaps, masks

NONE = classmaps.UNLABELED


def _scene(rng: np.random.Generator, h: int, w: int, classes: list[int], blobs: int = 6) -> np.ndarray:
    a = np.full((h, w), classes[0], np.uint16)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(blobs):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(1, max(2, max(h, w) // 3))
        a[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.choice(classes)
    return a


@pytest.mark.parametrize("seed", range(4))
def test_encode_decode_round_trip_and_canonical_runs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(50):
        h, w = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        a = _scene(rng, h, w, [0, 2, 7, 300])
        a[rng.random((h, w)) < 0.1] = NONE
        values, runs = classmaps.encode(a)
        assert values.dtype == np.uint16 and runs.dtype == np.uint32
        assert (runs > 0).all() and runs.sum() == h * w
        assert (values[1:] != values[:-1]).all()  # neighbours differ: canonical
        assert np.array_equal(classmaps.decode(values, runs, h, w), a)


def test_confusion_of_a_batch_equals_numpy_on_every_pixel() -> None:
    rng = np.random.default_rng(5)
    classes = [1, 4, 9, 12, 40]
    labels, preds = [], []
    for _ in range(200):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        y = _scene(rng, h, w, classes)
        y[rng.random((h, w)) < 0.05] = NONE
        labels.append(y)
        preds.append(_scene(rng, h, w, classes))
    frame, true, pred, pixels = classmaps.confusion(
        [classmaps.encode(y) for y in labels], [classmaps.encode(p) for p in preds]
    )
    got = {(int(f), int(t), int(p)): int(n) for f, t, p, n in zip(frame, true, pred, pixels, strict=True)}
    assert len(got) == len(frame)  # each cell of a frame once
    want = {}
    for f, (y, p) in enumerate(zip(labels, preds, strict=True)):
        keep = y != NONE
        for t, q in zip(y[keep].tolist(), p[keep].tolist(), strict=True):
            want[(f, t, q)] = want.get((f, t, q), 0) + 1
    assert got == want
    assert np.all(np.diff(frame) >= 0)  # frames in order


def test_confusion_refuses_maps_of_different_sizes() -> None:
    a = classmaps.encode(np.zeros((3, 3), np.uint16))
    b = classmaps.encode(np.zeros((3, 4), np.uint16))
    with pytest.raises(classmaps.MapError, match="pair 0"):
        classmaps.confusion([a], [b])


def test_regions_are_cocos_masks_and_come_back() -> None:
    rng = np.random.default_rng(9)
    for _ in range(40):
        h, w = int(rng.integers(2, 30)), int(rng.integers(2, 30))
        a = _scene(rng, h, w, [3, 5, 8])
        a[rng.random((h, w)) < 0.1] = NONE
        regions = classmaps.regions(*classmaps.encode(a))
        assert [c for c, _ in regions] == sorted(set(np.unique(a).tolist()) - {NONE})
        for c, counts in regions:
            coco = cocomask.encode(np.asfortranarray((a == c).astype(np.uint8)))
            assert masks.to_string(counts) == coco["counts"]
        assert np.array_equal(classmaps.from_regions(regions, h, w), a)


def test_overlapping_regions_are_refused() -> None:
    one = masks.encode(np.ones((2, 2), bool))
    with pytest.raises(classmaps.MapError, match="regions 0 and 1 share 4 pixels"):
        classmaps.from_regions([(1, one), (2, one)], 2, 2)


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_png_label_images_of_every_mode() -> None:
    a = np.array([[0, 1, 2], [255, 2, 1]], np.uint8)
    want = np.where(a == 255, NONE, a.astype(np.uint16))
    assert np.array_equal(classmaps.from_png(_png(Image.fromarray(a, "L"))), want)
    pal = Image.fromarray(a, "L").convert("P")
    pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    assert np.array_equal(classmaps.from_png(_png(pal)), want)  # the index is the class, not the colour
    wide = np.array([[0, 300], [65535, 1000]], np.uint16)
    got = classmaps.from_png(_png(Image.fromarray(wide)))
    assert np.array_equal(got, wide)
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0] = (255, 0, 0)
    rgb[1] = (0, 0, 255)
    got = classmaps.from_png(_png(Image.fromarray(rgb, "RGB")), {(255, 0, 0): 4, (0, 0, 255): 6})
    assert np.array_equal(got, np.array([[4, 4, 4], [6, 6, 6]]))
    with pytest.raises(classmaps.MapError, match="#0000ff"):
        classmaps.from_png(_png(Image.fromarray(rgb, "RGB")), {(255, 0, 0): 4})
    jpeg = io.BytesIO()
    Image.fromarray(a, "L").save(jpeg, "JPEG")
    with pytest.raises(classmaps.MapError, match="PNG, not JPEG"):
        classmaps.from_png(jpeg.getvalue())
    with pytest.raises(classmaps.MapError, match="not a readable PNG"):
        classmaps.from_png(b"\x89PNG\r\n\x1a\n broken")


def test_parse_color() -> None:
    assert classmaps.parse_color("#0a0B0c") == (10, 11, 12)
    for bad in ("0a0b0c", "#0a0b0", "#0a0b0g"):
        with pytest.raises(classmaps.MapError):
            classmaps.parse_color(bad)
