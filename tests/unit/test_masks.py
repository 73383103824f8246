"""COCO run-length encoded masks (shoal.common.masks) against the reference implementation
(pycocotools.mask) on generated data: masks of odd sizes, COCO's strings, hundreds of polygons
(fractional, concave, self-touching, on and just past the image's edge, smaller than a pixel, several
per object), unions, areas, boxes and IoU with and without crowd regions, and the checks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import numba
import numpy as np
import pycocotools.mask as coco
import pytest

from shoal.common import masks
from shoal.common.masks import (
    area,
    bbox,
    check,
    check_polygon,
    decode,
    encode,
    from_polygons,
    from_string,
    iou_matrix,
    merge,
    pack,
    rle_iou,
    to_string,
)

# pycocotools' decode, under numpy 2
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


# ---------------------------------------------------------------------------------------------------
# generated data


def naive_counts(mask: np.ndarray) -> list[int]:
    """The runs of a mask, one pixel at a time: the oracle for counts (pycocotools shows only strings)."""
    counts, current, run = [], False, 0
    for value in mask.ravel(order="F").astype(bool).tolist():
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


def coco_rle(mask: np.ndarray) -> dict:  # type: ignore[type-arg]
    return coco.encode(np.asfortranarray(mask.astype(np.uint8)))


def coco_of(counts: np.ndarray | list[int], h: int, w: int) -> dict:  # type: ignore[type-arg]
    """pycocotools' RLE of the given counts, canonical or not."""
    return coco.frPyObjects([{"size": [h, w], "counts": [int(c) for c in counts]}], h, w)[0]


def blob_mask(rng: np.random.Generator, h: int, w: int, blobs: int | None = None) -> np.ndarray:
    """A union of random ellipses and rectangles, sometimes with speckle."""
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(1, 4)) if blobs is None else blobs):
        cy, cx = rng.uniform(-0.1 * h, 1.1 * h), rng.uniform(-0.1 * w, 1.1 * w)
        ry, rx = rng.uniform(0.5, max(h, 2) / 2), rng.uniform(0.5, max(w, 2) / 2)
        if rng.random() < 0.7:
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        else:
            mask |= (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
    if rng.random() < 0.2:
        mask ^= rng.random((h, w)) < 0.05
    return mask


def special_masks(h: int, w: int) -> list[np.ndarray]:
    empty = np.zeros((h, w), bool)
    full = np.ones((h, w), bool)
    first, last, middle = empty.copy(), empty.copy(), empty.copy()
    first[0, 0] = True
    last[-1, -1] = True
    middle[h // 2, w // 2] = True
    checker = (np.add.outer(np.arange(h), np.arange(w)) % 2).astype(bool)
    top_row = empty.copy()
    top_row[0, :] = True  # one pixel in every column: a run per column
    bottom_row = empty.copy()
    bottom_row[-1, :] = True
    return [empty, full, first, last, middle, checker, ~checker, top_row, bottom_row]


SIZES = [(1, 1), (1, 17), (17, 1), (2, 3), (37, 53), (53, 37), (64, 48)]


def all_masks(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for h, w in SIZES:
        out += special_masks(h, w)
        out += [blob_mask(rng, h, w) for _ in range(12)]
        out.append(rng.random((h, w)) < 0.5)  # noise: as many runs as there can be
    return out


def star(rng: np.random.Generator, cx: float, cy: float, r: float, k: int) -> np.ndarray:
    """A star-shaped polygon of k points, concave when its radii differ."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radii = rng.uniform(0.3 * r, r, k)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1).ravel()


def quantise(rng: np.random.Generator, xy: np.ndarray) -> np.ndarray:
    """Coordinates as annotation tools write them: integers, halves (pixel centres), tenths (ties of
    COCO's rounding at 5x) or as they come."""
    step = [1.0, 0.5, 0.1, 0.0][int(rng.integers(0, 4))]
    return np.round(xy / step) * step if step else xy


def polys_random(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    r = rng.uniform(1, max(h, w) / 1.5)
    xy = star(rng, rng.uniform(0, w), rng.uniform(0, h), r, int(rng.integers(3, 14)))
    return [quantise(rng, xy)]


def polys_integer(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    k = int(rng.integers(3, 9))  # arbitrary vertex orders: self-intersecting as often as not
    return [np.stack([rng.integers(0, w + 1, k), rng.integers(0, h + 1, k)], axis=1).ravel().astype(float)]


def polys_self_touching(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    """Two loops through one shared vertex (a figure of eight), or a bow tie."""
    p = np.array([rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)])
    if rng.random() < 0.5:
        a, b = rng.uniform(-8, 8, (2, 2)), rng.uniform(-8, 8, (2, 2))
        pts = [p, p + a[0], p + a[1], p, p + b[0], p + b[1]]
    else:
        d = rng.uniform(1, 10, 2)
        pts = [p - d, p + d, p + np.array([d[0], -d[1]]), p + np.array([-d[0], d[1]])]
    return [quantise(rng, np.array(pts).ravel())]


def polys_on_border(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    """Polygons with points on the image's edges and corners, at 0, at w or h, and up to half a pixel past."""
    slack = lambda: float(rng.choice([0.0, 0.0, 0.5, rng.uniform(0, 0.5), 0.49]))  # noqa: E731
    x0, y0 = -slack(), -slack()
    x1, y1 = w + slack(), h + slack()
    xm, ym = rng.uniform(0, w), rng.uniform(0, h)
    shapes = [
        [x0, y0, x1, y0, x1, y1, x0, y1],
        [x0, y0, xm, y1, x1, ym],
        [x0, ym, xm, y0, x1, ym, xm, y1],
        [x0, y0, x1, y0, xm, ym],
        [xm, y0, x1, y1, x0, y1],
    ]
    return [np.array(shapes[int(rng.integers(0, len(shapes)))])]


def polys_partly_outside(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    """A star whose points past an edge are pulled back to less than half a pixel past it."""
    xy = star(rng, rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, max(h, w)), int(rng.integers(3, 10)))
    x, y = xy[0::2], xy[1::2]
    x = np.where(x < 0, -rng.uniform(0, 0.5, x.size), np.where(x > w, w + rng.uniform(0, 0.5, x.size), x))
    y = np.where(y < 0, -rng.uniform(0, 0.5, y.size), np.where(y > h, h + rng.uniform(0, 0.5, y.size), y))
    return [np.stack([x, y], axis=1).ravel()]


def polys_far_outside(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    """Polygons reaching well past the image, or wholly outside it (the image clips them)."""
    c = [rng.uniform(-w, 2 * w), rng.uniform(-h, 2 * h)]
    return [quantise(rng, star(rng, c[0], c[1], rng.uniform(1, 2 * max(h, w)), int(rng.integers(3, 9))))]


def polys_tiny(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    """Polygons smaller than a pixel, some around a pixel centre, some between."""
    c = np.array([rng.integers(0, w), rng.integers(0, h)]) + rng.choice([0.5, 0.0, rng.uniform(0, 1)])
    k = int(rng.integers(3, 6))
    return [(c + rng.uniform(-0.45, 0.45, (k, 2)) * rng.uniform(0.05, 1)).ravel()]


def polys_degenerate(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    """Repeated vertices, all points on a line, all points the same, zero-width slivers."""
    p = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    q = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    kind = int(rng.integers(0, 5))
    if kind == 0:
        pts = [p, p, q, q, (p + q) / 2 + [0.0, 3.0]]  # consecutive duplicates
    elif kind == 1:
        pts = [p, (p + q) / 2, q]  # collinear
    elif kind == 2:
        pts = [p, p, p]
    elif kind == 3:
        pts = [p, q, q + np.array([0.3, 0.0])]  # a sliver thinner than a pixel
    else:
        pts = [p, q, p]  # there and back
    return [quantise(rng, np.array(pts).ravel())]


def polys_several(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    """An object in several parts, overlapping, touching or apart."""
    parts = []
    for _ in range(int(rng.integers(2, 5))):
        parts += polys_random(rng, h, w) if rng.random() < 0.7 else polys_tiny(rng, h, w)
    return parts


GENERATORS: dict[str, Callable[[np.random.Generator, int, int], list[np.ndarray]]] = {
    "random": polys_random,
    "integer": polys_integer,
    "self_touching": polys_self_touching,
    "on_border": polys_on_border,
    "partly_outside": polys_partly_outside,
    "far_outside": polys_far_outside,
    "tiny": polys_tiny,
    "degenerate": polys_degenerate,
    "several": polys_several,
}
POLYGON_SIZES = [(37, 53), (1, 20), (20, 1), (3, 3), (64, 64), (120, 90)]


# ---------------------------------------------------------------------------------------------------
# encoding, strings


def test_encode_matches_pycocotools() -> None:
    for mask in all_masks(seed=1):
        h, w = mask.shape
        counts = encode(mask)
        ref = coco_rle(mask)
        assert counts.dtype == np.uint32 and counts.ndim == 1
        assert counts.tolist() == naive_counts(mask)
        assert to_string(counts) == ref["counts"]
        assert np.array_equal(from_string(ref["counts"]), counts)
        out = decode(counts, h, w)
        assert out.dtype == np.bool_ and out.shape == (h, w)
        assert np.array_equal(out, mask)
        assert np.array_equal(coco.decode({"size": [h, w], "counts": to_string(counts)}), mask)


def test_encode_takes_nonzero_as_set_whatever_the_type() -> None:
    mask = blob_mask(np.random.default_rng(2), 37, 53, blobs=3)
    expected = coco_rle(mask)["counts"]
    for variant in (mask, mask.astype(np.uint8), mask.astype(np.uint8) * 255, mask.astype(np.float32), mask.T.T):
        assert to_string(encode(variant)) == expected
    assert to_string(encode(np.asfortranarray(mask))) == expected


def test_zero_sized_masks() -> None:
    for shape in [(0, 5), (5, 0), (0, 0)]:
        mask = np.zeros(shape, bool)
        counts = encode(mask)
        assert counts.tolist() == [0]
        assert to_string(counts) == coco_rle(mask)["counts"]
        assert decode(counts, *shape).shape == shape
        assert area(counts) == 0 and bbox(counts, *shape) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="2-D"):
        encode(np.zeros((2, 2, 2), bool))


def python_string(counts: list[int]) -> bytes:
    """COCO's string one count at a time in Python: the oracle where pycocotools cannot be asked."""
    out = bytearray()
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        while True:
            group, x = x & 0x1F, x >> 5
            more = x != (-1 if group & 0x10 else 0)
            out.append(48 + (group | (0x20 if more else 0)))
            if not more:
                break
    return bytes(out)


def test_strings_of_large_and_falling_counts() -> None:
    """Differences of counts two apart that are negative, and values up to 32 bits."""
    rng = np.random.default_rng(3)
    # pycocotools writes at most 6 characters a count, and a 7th byte past its buffer when every count takes 6:
    # it is asked about differences of less than 2**24 (5 characters)
    small = [[7, 2**23, 1, 2**23 + 5, 3, 17, 2**24 - 1, 1], [2**24 - 1, 0, 0, 2**24 - 1, 0, 1]]
    small += [rng.integers(0, 2 ** int(rng.integers(1, 25)), int(rng.integers(1, 40))).tolist() for _ in range(200)]
    for case in small:
        counts = np.array(case, np.uint32)
        s = to_string(counts)
        assert s == coco_of(case, 1, 1)["counts"] == python_string(case)  # pycocotools writes what it is given
        assert np.array_equal(from_string(s), counts)
        h = int(counts.sum())
        ref = coco_of(counts, h, 1)  # and reads it back: its area and box are of the same counts
        assert area(counts) == coco.area(ref)
        assert bbox(counts, h, 1) == tuple(coco.toBbox(ref))
    # up to 7 characters a count (a difference of 2**29 or more)
    large = [[0, 1, 2**31, 3, 5, 2**32 - 1, 1, 0], [2**32 - 1, 0, 0, 2**32 - 1, 0, 2**32 - 1]]
    large += [[7, 2**28, 1, 2**28 + 5, 3, 17, 2**29 - 1, 1], [2**29, 0, 0, 2**29, 0, 1]]
    large += [rng.integers(0, 2**32, int(rng.integers(1, 40))).tolist() for _ in range(200)]
    for case in large:
        counts = np.array(case, np.uint32)
        assert to_string(counts) == python_string(case)
        assert np.array_equal(from_string(to_string(counts)), counts)
    assert to_string(np.array([2**32 - 1], np.uint32)) == b"oooooo3"  # 6 groups of 31 and the top 3, worked by hand


def test_from_string_takes_str_and_bytes() -> None:
    mask = blob_mask(np.random.default_rng(4), 64, 48)
    s = coco_rle(mask)["counts"]
    assert np.array_equal(from_string(s.decode("ascii")), from_string(s))
    assert np.array_equal(from_string(bytearray(s)), encode(mask))
    assert from_string(b"").size == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"0 ", "outside COCO's alphabet"),
        (b"0p", "outside COCO's alphabet"),
        (b"0a", "ends inside a count"),  # 'a' says another character follows
        (b"PPPPPPP0", "longer than 7 characters"),
        (b"@", "negative"),  # a lone sign group: -32
        (b"00O", "negative"),  # a third count of -17 (no difference is taken before the fourth)
    ],
)
def test_from_string_rejects_malformed_strings(text: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        from_string(text)


# ---------------------------------------------------------------------------------------------------
# polygons


def coco_polygons(polys: list[np.ndarray], h: int, w: int) -> dict:  # type: ignore[type-arg]
    return coco.merge(coco.frPyObjects([[float(v) for v in p] for p in polys], h, w))


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_polygons_rasterise_as_pycocotools(kind: str) -> None:
    rng = np.random.default_rng(sorted(GENERATORS).index(kind) + 100)
    generate = GENERATORS[kind]
    nonempty = 0
    for i in range(120):
        h, w = POLYGON_SIZES[i % len(POLYGON_SIZES)]
        polys = generate(rng, h, w)
        ref = coco_polygons(polys, h, w)
        counts = from_polygons(polys, h, w)
        assert counts.dtype == np.uint32
        assert np.array_equal(counts, from_string(ref["counts"])), (kind, h, w, [p.tolist() for p in polys])
        assert to_string(counts) == ref["counts"]
        assert np.array_equal(decode(counts, h, w), coco.decode(ref).astype(bool))
        nonempty += area(counts) > 0
    assert nonempty > 5  # the cases draw pixels, not only empty masks


def test_polygons_in_a_large_image_and_in_many_forms() -> None:
    """Big polygons in a 480x640 image; lists, flat arrays and (k, 2) arrays of points alike."""
    rng = np.random.default_rng(5)
    h, w = 480, 640
    for _ in range(40):
        polys = [star(rng, rng.uniform(0, w), rng.uniform(0, h), rng.uniform(5, 300), int(rng.integers(3, 40)))]
        ref = coco_polygons(polys, h, w)["counts"]
        assert to_string(from_polygons(polys, h, w)) == ref
        assert to_string(from_polygons([p.tolist() for p in polys], h, w)) == ref
        assert to_string(from_polygons([p.reshape(-1, 2) for p in polys], h, w)) == ref
        assert to_string(from_polygons(tuple(polys), h, w)) == ref


def test_polygon_edge_cases() -> None:
    """A pixel's own square, squares on the pixel grid's lines, a unit square at every offset."""
    h, w = 6, 7
    cases = [
        [2, 2, 3, 2, 3, 3, 2, 3],
        [1.5, 1.5, 2.5, 1.5, 2.5, 2.5, 1.5, 2.5],
        [0, 0, w, 0, w, h, 0, h],
        [-0.5, -0.5, w + 0.5, -0.5, w + 0.5, h + 0.5, -0.5, h + 0.5],
        [-1, -1, w + 1, -1, w + 1, h + 1, -1, h + 1],
        [w, h, w, 0, 0, 0],  # clockwise
        [-0.5, 0, 0.5, 0, 0, 1],
    ]
    cases += [[x, y, x + 1, y, x + 1, y + 1, x, y + 1] for x in np.arange(-0.5, 1.01, 0.1) for y in (0.0, 0.3, 0.5)]
    for case in cases:
        ref = coco_polygons([np.array(case, float)], h, w)["counts"]
        assert to_string(from_polygons([case], h, w)) == ref, case
    assert from_polygons([], h, w).tolist() == [h * w]
    assert from_polygons([[0, 0, 3, 0, 0, 3]], 0, 4).tolist() == [0]


@pytest.mark.parametrize(
    ("polys", "reason"),
    [
        ([[0, 0, 1, 1]], "polygon 0 has 4 coordinates"),
        ([[0, 0, 1, 1, 2, 0], [0, 0, 1, 1, 2]], "polygon 1 has 5 coordinates"),
        ([[0, 0, 1, 1, 2, 0], [0, 0, 1, float("nan"), 2, 0]], "polygon 1 has a coordinate that is not finite"),
        ([[0, 0, float("inf"), 1, 2, 0]], "polygon 0 has a coordinate that is not finite"),
        ([[0, 0, 1e12, 1, 2, 0]], "beyond"),
    ],
)
def test_from_polygons_rejects_what_it_cannot_rasterise(polys: list[list[float]], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        from_polygons(polys, 10, 10)


# ---------------------------------------------------------------------------------------------------
# unions, areas, boxes


def test_merge_matches_pycocotools() -> None:
    rng = np.random.default_rng(6)
    for h, w in SIZES:
        pool = special_masks(h, w) + [blob_mask(rng, h, w) for _ in range(10)]
        for _ in range(30):
            chosen = [pool[int(i)] for i in rng.integers(0, len(pool), int(rng.integers(1, 6)))]
            counts = [encode(m) for m in chosen]
            ref = coco.merge([coco_rle(m) for m in chosen])
            union = merge(counts, h, w)
            assert to_string(union) == ref["counts"]
            assert np.array_equal(union, encode(np.logical_or.reduce(chosen)))
    assert merge([], 3, 4).tolist() == [12]
    assert merge([np.array([0], np.uint32)] * 2, 0, 4).tolist() == [0]


def test_merge_of_non_canonical_counts_is_canonical() -> None:
    """Empty runs inside the counts: the same pixels as pycocotools, and canonical counts."""
    a, b = [2, 0, 3, 1, 14], [0, 0, 5, 2, 0, 13]
    union = merge([np.array(a), np.array(b)], 4, 5)
    ref = coco.merge([coco_of(a, 4, 5), coco_of(b, 4, 5)])
    assert np.array_equal(decode(union, 4, 5), coco.decode(ref).astype(bool))
    assert union.tolist() == naive_counts(decode(union, 4, 5))
    assert merge([np.array(a)], 4, 5).tolist() == [5, 1, 14]


def test_merge_rejects_masks_of_another_size() -> None:
    with pytest.raises(ValueError, match=r"mask 1: runs sum to 12, not 20"):
        merge([np.array([20], np.uint32), np.array([12], np.uint32)], 4, 5)


def test_area_and_bbox_match_pycocotools() -> None:
    for mask in all_masks(seed=7):
        h, w = mask.shape
        counts = encode(mask)
        ref = coco_rle(mask)
        assert area(counts) == int(coco.area(ref)) == int(mask.sum())
        assert bbox(counts, h, w) == tuple(float(v) for v in coco.toBbox(ref))


@pytest.mark.parametrize(
    "counts",
    [
        [0, 0, 20],  # no set pixel but a run: pycocotools' box wraps around in 32 bits
        [3, 0, 2, 1, 14],
        [20, 0],
        [0, 20],
        [5, 0, 0, 3, 12],
        [0, 4, 0, 4, 12],
        [3, 2, 0, 0, 15],
    ],
)
def test_area_and_bbox_of_non_canonical_counts(counts: list[int]) -> None:
    ref = coco_of(counts, 4, 5)
    assert area(np.array(counts)) == int(coco.area(ref))
    assert bbox(np.array(counts), 4, 5) == tuple(float(v) for v in coco.toBbox(ref))


# ---------------------------------------------------------------------------------------------------
# IoU


def iou_case(seed: int, h: int, w: int, n_dt: int, n_gt: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Ground truth blobs; detections that copy, shift, shrink or miss them, empties, and the whole image."""
    rng = np.random.default_rng(seed)
    gt = [blob_mask(rng, h, w) for _ in range(n_gt - 2)] + [np.zeros((h, w), bool), np.ones((h, w), bool)]
    dt = []
    for _ in range(n_dt):
        kind = rng.random()
        if kind < 0.3:
            dt.append(np.roll(gt[int(rng.integers(0, n_gt))], tuple(rng.integers(-3, 4, 2)), axis=(0, 1)))
        elif kind < 0.4:
            dt.append(gt[int(rng.integers(0, n_gt))].copy())
        elif kind < 0.5:
            g = gt[int(rng.integers(0, n_gt))]
            dt.append(g & (rng.random((h, w)) < 0.7))  # inside a crowd region: IoA of 1 against it
        elif kind < 0.55:
            dt.append(np.zeros((h, w), bool))
        else:
            dt.append(blob_mask(rng, h, w, blobs=1))
    crowd = rng.random(n_gt) < 0.4
    return dt, gt, crowd


@pytest.mark.parametrize(("h", "w"), [(96, 128), (37, 53), (1, 40), (40, 1)])
def test_iou_matrix_matches_pycocotools(h: int, w: int) -> None:
    dt, gt, crowd = iou_case(8, h, w, 40, 30)
    dt_rles, gt_rles = [coco_rle(m) for m in dt], [coco_rle(m) for m in gt]
    refs = []
    for flags in (crowd, np.zeros_like(crowd), np.ones_like(crowd)):
        ref = np.asarray(coco.iou(dt_rles, gt_rles, flags.astype(np.uint8)))
        ours = iou_matrix([encode(m) for m in dt], [encode(m) for m in gt], flags)
        assert ours.shape == (40, 30) and ours.dtype == np.float64
        assert np.array_equal(ours, ref), np.abs(ours - ref).max()
        refs.append(ref)
    # the case is not trivial: disjoint pairs, partial overlaps, exact matches, and crowd regions that count
    ref = refs[0]
    assert (ref == 0).sum() > 50 and ((ref > 0) & (ref < 1)).sum() > 50 and (ref == 1).sum() > 0
    assert (refs[2] > refs[1]).sum() > 20


def test_iou_of_non_canonical_counts_counts_every_pixel() -> None:
    """Empty runs inside the counts (where pycocotools' walk can stop early): the IoU of the pixels."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        runs = []
        for _ in range(4):
            cuts = np.sort(rng.integers(0, h * w + 1, int(rng.integers(0, 12))))
            runs.append(np.diff(np.concatenate(([0], cuts, [h * w]))).astype(np.uint32))
        pixels = [decode(r, h, w) for r in runs]
        crowd = rng.random(4) < 0.5
        ours = iou_matrix(runs, runs, crowd)
        for i in range(4):
            for j in range(4):
                inter = int((pixels[i] & pixels[j]).sum())
                union = int(pixels[i].sum()) if crowd[j] else int((pixels[i] | pixels[j]).sum())
                expected = inter / union if inter else 0.0
                assert ours[i, j] == expected == rle_iou(runs[i], runs[j], bool(crowd[j]))
    assert rle_iou(np.array([1, 0, 0, 3], np.uint32), np.array([1, 0, 0, 3], np.uint32), False) == 1.0


def test_iou_of_nothing() -> None:
    gt = [encode(np.ones((3, 4), bool))]
    assert iou_matrix([], gt, np.array([False])).shape == (0, 1)
    assert iou_matrix(gt, [], np.array([], bool)).shape == (1, 0)
    empty = encode(np.zeros((3, 4), bool))
    assert iou_matrix([empty], [empty], np.array([True])).tolist() == [[0.0]]
    assert rle_iou(empty, empty, False) == 0.0 and rle_iou(empty, gt[0], True) == 0.0


def test_iou_matrix_rejects_masks_of_other_sizes_and_bad_flags() -> None:
    a, b = encode(np.ones((3, 4), bool)), encode(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="different sizes"):
        iou_matrix([a], [b], np.array([False]))
    with pytest.raises(ValueError, match="2 crowd flags for 1"):
        iou_matrix([a], [a], np.array([False, True]))


@numba.njit
def _all_pairs(runs: np.ndarray, offsets: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    n = offsets.size - 1
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = rle_iou(runs[offsets[i] : offsets[i + 1]], runs[offsets[j] : offsets[j + 1]], crowd[j])
    return out


def test_rle_iou_is_callable_from_numba_code() -> None:
    assert isinstance(rle_iou, numba.core.registry.CPUDispatcher)
    _, gt, crowd = iou_case(9, 37, 53, 10, 24)
    rles = [encode(m) for m in gt]
    runs, offsets = pack(rles)
    ref = np.asarray(coco.iou([coco_rle(m) for m in gt], [coco_rle(m) for m in gt], crowd.astype(np.uint8)))
    assert np.array_equal(_all_pairs(runs, offsets, crowd), ref)
    for i in range(len(gt)):
        for j in range(len(gt)):
            assert rle_iou(rles[i], rles[j], bool(crowd[j])) == ref[i, j]


# ---------------------------------------------------------------------------------------------------
# checks, packing


def test_check_accepts_valid_counts() -> None:
    for mask in all_masks(seed=10)[:40]:
        assert check(encode(mask), *mask.shape) is None
    assert check([3, 0, 2, 1, 14], 4, 5) is None  # empty runs are COCO's too
    assert check([0], 0, 5) is None and check([], 0, 5) is None
    assert check(np.array([4.0, 16.0]), 4, 5) is None


@pytest.mark.parametrize(
    ("counts", "size", "words"),
    [
        ([3, 16], (4, 5), ["19", "20"]),
        ([3, 18], (4, 5), ["21", "20"]),
        ([25, -5], (4, 5), ["run 1", "negative", "-5"]),
        ([2**32, 0], (4, 5), ["run 0", "32 bits"]),
        ([], (4, 5), ["no runs", "20"]),
        ([[10, 10]], (4, 5), ["1-D"]),
        ([10.5, 9.5], (4, 5), ["integers"]),
        (["a", "b"], (4, 5), ["integers"]),
        ([20], (-4, -5), ["negative"]),
    ],
)
def test_check_says_what_is_wrong(counts: list[object], size: tuple[int, int], words: list[str]) -> None:
    problem = check(counts, *size)
    assert problem is not None
    for word in words:
        assert word in problem, problem


def test_functions_refuse_counts_check_refuses() -> None:
    with pytest.raises(ValueError, match="negative"):
        to_string([3, -1])
    with pytest.raises(ValueError, match="32 bits"):
        area(np.array([0, 2**33]))
    with pytest.raises(ValueError, match="runs sum to 19, not 20"):
        decode(np.array([3, 16], np.uint32), 4, 5)


def test_check_polygon_accepts_polygons_within_half_a_pixel() -> None:
    h, w = 30, 40
    assert check_polygon([0, 0, 40, 0, 40, 30], h, w) is None
    assert check_polygon(np.array([-0.5, -0.5, w + 0.5, -0.5, w + 0.5, h + 0.5, -0.5, h + 0.5]), h, w) is None
    assert check_polygon((1.5, 2.25, 3, 4, 5.75, 1), h, w) is None


@pytest.mark.parametrize(
    ("points", "words"),
    [
        ([0, 0, 1, 1, 2], ["odd", "5"]),
        ([0, 0, 1, 1], ["2 points", "at least 3"]),
        ([], ["0 points"]),
        ([0, 0, 1, float("nan"), 2, 2], ["point 1", "nan"]),
        ([0, 0, 1, 1, float("inf"), 2], ["point 2", "inf"]),
        ([0, 0, 1, 1, -0.6, 3], ["point 2", "-0.6", "40x30", "-0.5"]),
        ([0, 0, 40.6, 1, 1, 3], ["point 1", "40.6", "40.5"]),
        ([0, 30.75, 1, 1, 1, 3], ["point 0", "30.75", "30.5"]),
        ([0, -1, 1, 1, 1, 3], ["point 0", "-1"]),
        ([[0, 0], [1, 1], [2, 2]], ["flat"]),
        (["x", "y", "z", 1, 2, 3], ["numbers"]),
    ],
)
def test_check_polygon_says_what_is_wrong(points: list[object], words: list[str]) -> None:
    problem = check_polygon(points, 30, 40)
    assert problem is not None
    for word in words:
        assert word in problem, problem


def test_pack() -> None:
    a, b, c = np.array([5], np.uint32), np.array([1, 2, 2], np.uint32), [0, 5]
    runs, offsets = pack([a, b, c])
    assert runs.dtype == np.uint32 and offsets.dtype == np.int64
    assert runs.tolist() == [5, 1, 2, 2, 0, 5] and offsets.tolist() == [0, 1, 4, 6]
    runs, offsets = pack([])
    assert runs.size == 0 and runs.dtype == np.uint32 and offsets.tolist() == [0]


def test_kernels_are_compiled_to_cache_without_the_gil() -> None:
    for kernel in (rle_iou, masks._iou_matrix, masks._from_polygons, masks._to_string, masks._from_string):
        assert kernel.targetoptions.get("nogil") is True
        assert kernel._cache.__class__.__name__ != "NullCache"


def test_shoal_does_not_need_pycocotools() -> None:
    code = (
        "import sys; sys.modules['pycocotools'] = None\n"  # an import of it fails
        "import numpy as np\n"
        "from shoal.common import masks\n"
        "c = masks.from_polygons([[0, 0, 5, 0, 0, 5]], 8, 8)\n"
        "assert masks.area(c) > 0 and masks.rle_iou(c, c, False) == 1.0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
