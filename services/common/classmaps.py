"""Semantic segmentation maps (one class per pixel) as class runs: the compact form Shoal stores and
compares them in, compiled with numba where a loop runs over runs.

The form. A map of height h and width w is read in column-major order, as COCO's run-length masks
are (:mod:`shoal.common.masks`), and kept as two arrays of equal length: ``values`` (``np.uint16``,
a class id per run, :data:`UNLABELED` for pixels no class was given) and ``runs`` (``np.uint32``, each
run's length, every run non-empty, summing to h*w; two neighbouring runs never hold the same
value). So the pixels of one class are exactly a COCO mask, and one walk along two maps' runs gives
their pixel confusion without drawing either (:func:`confusion`).

Maps arrive as a class-id array, as one COCO mask per class, or as a PNG: 8- or 16-bit grey or
palette images hold class ids as pixel values (the palette's colours are not read, as PASCAL VOC's
and Cityscapes' label images are written), with 255 (8-bit) or 65535 (16-bit) meaning unlabeled;
RGB images hold each class's colour (``ClassDef.color``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numba
import numpy as np

from shoal.common import masks

__all__ = [
    "MAX_CLASS_ID",
    "UNLABELED",
    "MapError",
    "confusion",
    "decode",
    "encode",
    "from_png",
    "from_regions",
    "parse_color",
    "regions",
]

#: the value of a pixel no class was given (labels only; it is left out of every metric)
UNLABELED = 65535
#: class ids of segmentation projects fit in 16 bits, below UNLABELED
MAX_CLASS_ID = UNLABELED - 1


class MapError(ValueError):
    """A map that cannot be read as one: the message says what is wrong."""


def encode(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The class runs of an (h, w) array of class ids (values above 65535 are refused)."""
    a = np.asarray(classes)
    if a.ndim != 2:
        raise MapError(f"a class map has 2 dimensions, not {a.ndim}")
    flat = a.ravel(order="F")
    if flat.size == 0:
        return np.zeros(0, np.uint16), np.zeros(0, np.uint32)
    if flat.dtype.kind not in "iu":
        raise MapError(f"class ids are integers, not {flat.dtype}")
    if flat.min() < 0 or flat.max() > UNLABELED:
        raise MapError(f"class ids lie in [0, {UNLABELED}], not [{flat.min()}, {flat.max()}]")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [flat.size]))
    return flat[starts].astype(np.uint16), (ends - starts).astype(np.uint32)


def decode(values: np.ndarray, runs: np.ndarray, height: int, width: int) -> np.ndarray:
    """The (h, w) ``np.uint16`` array of class ids of a map's runs."""
    runs = np.asarray(runs, dtype=np.int64)
    if int(runs.sum()) != height * width:
        raise MapError(f"the runs cover {int(runs.sum())} pixels, not {height}x{width}")
    flat = np.repeat(np.asarray(values, dtype=np.uint16), runs)
    return flat.reshape((height, width), order="F")


def from_regions(regions: Sequence[tuple[int, np.ndarray]], height: int, width: int) -> np.ndarray:
    """The (h, w) class-id array of one COCO mask (counts) per class; pixels in none are
    :data:`UNLABELED`. Two regions sharing a pixel are refused, naming their positions."""
    out = np.full(height * width, UNLABELED, dtype=np.uint16)
    owner = np.full(height * width, -1, dtype=np.int32)
    for i, (class_id, counts) in enumerate(regions):
        on = masks.decode(counts, height, width).ravel(order="F").astype(bool)
        clash = on & (owner >= 0)
        if clash.any():
            j = int(owner[np.flatnonzero(clash)[0]])
            raise MapError(f"regions {j} and {i} share {int(clash.sum())} pixels")
        owner[on] = i
        out[on] = class_id
    return out.reshape((height, width), order="F")


def regions(values: np.ndarray, runs: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """One COCO mask (counts) per class of a map, in class order, unlabeled pixels left out."""
    values = np.asarray(values, dtype=np.uint16)
    ends = np.cumsum(np.asarray(runs, dtype=np.int64))
    starts = ends - np.asarray(runs, dtype=np.int64)
    total = int(ends[-1]) if len(ends) else 0
    out = []
    for c in np.unique(values):
        if c == UNLABELED:
            continue
        mine = values == c
        out.append((int(c), _runs_of(starts[mine], ends[mine], total)))
    return out


def _runs_of(starts: np.ndarray, ends: np.ndarray, total: int) -> np.ndarray:
    """COCO counts of the set intervals [starts, ends) (sorted, disjoint, never adjacent)."""
    edges = np.empty(2 * len(starts) + 2, dtype=np.int64)
    edges[0] = 0
    edges[1:-1:2] = starts
    edges[2:-1:2] = ends
    edges[-1] = total
    counts = np.diff(edges)
    if len(counts) > 1 and counts[-1] == 0:
        counts = counts[:-1]
    return counts.astype(np.uint32)


def parse_color(text: str) -> tuple[int, int, int]:
    """``#rrggbb`` as (r, g, b); MapError otherwise."""
    if len(text) != 7 or text[0] != "#":
        raise MapError(f"a colour is written #rrggbb, not {text!r}")
    try:
        return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
    except ValueError:
        raise MapError(f"a colour is written #rrggbb, not {text!r}") from None


def from_png(data: bytes, colors: Mapping[tuple[int, int, int], int] | None = None) -> np.ndarray:
    """The (h, w) class-id array of a PNG label image (see the module's docstring); ``colors``
    maps the RGB colour of each class for colour images."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        if img.format != "PNG":
            raise MapError(f"a class map is a PNG, not {img.format or 'an unknown format'}")
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise MapError(f"is not a readable PNG ({err})") from None
    mode = img.mode
    if mode in ("L", "P"):
        a = np.asarray(img, dtype=np.uint16)
        a = np.where(a == 255, UNLABELED, a).astype(np.uint16)
        return a
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img)
        if a.min() < 0 or a.max() > UNLABELED:
            raise MapError(f"a 16-bit class map holds values in [0, {UNLABELED}], not [{a.min()}, {a.max()}]")
        return a.astype(np.uint16)
    if mode in ("RGB", "RGBA"):
        if not colors:
            raise MapError("a colour class map needs a colour on every class (ClassDef.color)")
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint32)
        key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        table = {(r << 16) | (g << 8) | b: c for (r, g, b), c in colors.items()}
        found, inverse = np.unique(key, return_inverse=True)
        unknown = [int(k) for k in found if int(k) not in table]
        if unknown:
            shown = ", ".join(f"#{k:06x}" for k in unknown[:5])
            raise MapError(f"colours that are no class's colour: {shown}" + (" ..." if len(unknown) > 5 else ""))
        ids = np.array([table[int(k)] for k in found], dtype=np.uint16)
        return ids[inverse.reshape(key.shape)]
    raise MapError(f"a class map is a grey, palette or RGB PNG, not mode {mode}")


@numba.njit(cache=True, nogil=True)
def _confusion(
    l_off: np.ndarray,
    l_values: np.ndarray,
    l_runs: np.ndarray,
    p_off: np.ndarray,
    p_values: np.ndarray,
    p_runs: np.ndarray,
    out_frame: np.ndarray,
    out_true: np.ndarray,
    out_pred: np.ndarray,
    out_pixels: np.ndarray,
) -> int:
    n = 0
    for f in range(l_off.shape[0] - 1):
        first = n  # the frame's cells are out[first:n]; a frame has few, so they are searched in turn
        i, i_end = l_off[f], l_off[f + 1]
        j, j_end = p_off[f], p_off[f + 1]
        left_l = np.int64(l_runs[i]) if i < i_end else np.int64(0)
        left_p = np.int64(p_runs[j]) if j < j_end else np.int64(0)
        while i < i_end and j < j_end:
            step = min(left_l, left_p)
            t = np.int64(l_values[i])
            if t != 65535 and step > 0:
                p = p_values[j]
                c = first
                while c < n and (out_true[c] != t or out_pred[c] != p):
                    c += 1
                if c == n:
                    out_frame[n] = f
                    out_true[n] = t
                    out_pred[n] = p
                    out_pixels[n] = 0
                    n += 1
                out_pixels[c] += step
            left_l -= step
            left_p -= step
            if left_l == 0:
                i += 1
                if i < i_end:
                    left_l = np.int64(l_runs[i])
            if left_p == 0:
                j += 1
                if j < j_end:
                    left_p = np.int64(p_runs[j])
    return n


def confusion(
    labels: Sequence[tuple[np.ndarray, np.ndarray]], predictions: Sequence[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pixel confusion of each (label map, predicted map) pair of the same frame, given as
    (values, runs), as sparse cells: (frame position, true class, predicted class, pixels), the
    cells of each frame in the order the walk meets them. Unlabeled pixels are left out; the maps
    of a pair must cover the same pixels."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} label maps for {len(predictions)} predicted maps")
    for f, ((_, lr), (_, pr)) in enumerate(zip(labels, predictions, strict=True)):
        if int(np.sum(lr, dtype=np.int64)) != int(np.sum(pr, dtype=np.int64)):
            raise MapError(f"pair {f}: the label map covers {int(np.sum(lr))} pixels, the prediction {int(np.sum(pr))}")
    l_off, l_values, l_runs = _pack(labels)
    p_off, p_values, p_runs = _pack(predictions)
    size = len(l_runs) + len(p_runs)
    frame = np.empty(size, np.int64)
    true = np.empty(size, np.uint16)
    pred = np.empty(size, np.uint16)
    pixels = np.empty(size, np.int64)
    n = _confusion(l_off, l_values, l_runs, p_off, p_values, p_runs, frame, true, pred, pixels)
    return frame[:n], true[:n], pred[:n], pixels[:n]


def _pack(maps: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    off = np.zeros(len(maps) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(r) for _, r in maps])
    if not maps:
        return off, np.zeros(0, np.uint16), np.zeros(0, np.uint32)
    values = np.concatenate([np.asarray(v, dtype=np.uint16) for v, _ in maps])
    runs = np.concatenate([np.asarray(r, dtype=np.uint32) for _, r in maps])
    return off, values, runs
