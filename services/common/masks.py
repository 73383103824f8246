"""Instance masks as COCO run-length encodings (RLE): encoding and decoding, COCO's compact strings,
polygons rasterised, unions, areas, boxes and IoU, compiled with numba.

Why our own rather than pycocotools: mask metrics must agree with COCO's evaluation to the last bit,
and the IoU must be callable from the numba loops that match detections to ground truth (as
:func:`shoal.common.boxes.box_iou` is), which cannot call a C extension made for Python objects. So
this module implements COCO's definitions itself (pycocotools is a development dependency only, the
reference the tests compare against) and works on the runs: the IoU of two masks is one walk along
both run lists, O(runs), and never decodes an image.

The format. A mask of height h and width w is read in column-major order (down the first column,
then down the next); its ``counts`` are the lengths of its alternating runs, starting with a run of
unset pixels (of length 0 when the first pixel is set), and sum to h*w. Counts are 1-D
``np.uint32`` arrays. Every function that makes counts (``encode``, ``merge``, ``from_polygons``)
makes them canonical: no empty run but possibly the first, no empty run at the end. COCO's compact
string writes each count, minus the count two places before it from the fourth count on (COCO's
``i > 2``), as a signed number in 5-bit groups, least significant first, one character (48 + group)
a group: bit 0x20 says another group follows, bit 0x10 of the last group is the sign.

Polygons are rasterised as COCO does it, which is no textbook scan conversion: the vertices are
scaled by 5 and rounded (``(int)(5 * x + 0.5)``, a C cast, so toward zero), every edge is walked
one step at a time along its longer axis, rounding the other coordinate the same way, and where a
step crosses the vertical line through the centres of a pixel column, it makes a boundary in that
column at the first pixel centre at or below the step (clamped to the column). The sorted
boundaries of a polygon switch the mask on and off in column-major order, and an object's polygons
are united. The result is pycocotools' bit for bit, for points inside the image or outside it.

Differences from pycocotools, all where it is undefined or fails:

- ``encode`` takes any nonzero value as set (pycocotools starts a new run at every change of value,
  so a uint8 mask holding both 1 and 2 breaks its alternation).
- Counts with empty runs inside (not canonical, but valid): ``merge`` returns canonical counts of
  their union and the IoU counts every pixel. pycocotools returns a single input to ``merge`` as it
  is; its ``merge`` and ``iou`` walks stop early where both masks are at an empty run at once (its
  IoU of ``[1, 0, 0, 3]`` with itself is 0), a ``merge`` of three such masks may never end, and one
  of more than h*w + 1 runs overruns its buffer.
  On canonical counts (those of ``encode``, of pycocotools' own, of COCO's files) all agree.
- ``to_string`` and ``from_string`` handle every uint32 count. pycocotools keeps 6 characters a count
  and writes past them when its counts need 6 each (differences of 2**24 and more), and misreads
  differences of 2**30 and more (in 32-bit shifts). ``from_string`` refuses a malformed string
  (pycocotools reads past its end).
- Masks of different sizes: ``iou_matrix`` and ``merge`` refuse them (pycocotools answers -1, or an
  empty mask); ``rle_iou``, which is not told the size, takes pixels past the shorter as unset.
- ``decode`` refuses counts that do not sum to h*w; ``from_polygons`` refuses polygons of fewer
  than 3 points, of an odd number of coordinates, or of coordinates not finite or beyond 4e8
  (pycocotools reads a 2-point polygon as a box, and casts those to undefined integers), and gives
  an empty mask for an image of width 0 (pycocotools' counts then exceed h*w).
- Masks of more than 2**32 pixels: pycocotools' areas, boxes and IoU wrap around in 32 bits, these
  do not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np

__all__ = [
    "area",
    "bbox",
    "check",
    "check_polygon",
    "decode",
    "encode",
    "from_polygons",
    "from_string",
    "iou_matrix",
    "merge",
    "pack",
    "rle_iou",
    "to_string",
]

_UINT32_MAX = 0xFFFFFFFF
#: COCO scales polygons by this before walking their edges
_SCALE = 5.0
#: coordinates whose scaled value fits a C int, with room to spare
_MAX_COORDINATE = 4.0e8


# ---------------------------------------------------------------------------------------------------
# counts, strings


def _counts(counts: np.ndarray | Sequence[int]) -> np.ndarray:
    """``counts`` as a contiguous 1-D uint32 array; ValueError when they cannot be (see :func:`check`)."""
    arr = np.asarray(counts)
    if arr.dtype == np.uint32 and arr.ndim == 1:
        return np.ascontiguousarray(arr)
    problem = _check_values(arr)
    if problem is not None:
        raise ValueError(problem)
    return np.ascontiguousarray(arr, dtype=np.uint32)


def encode(mask: np.ndarray) -> np.ndarray:
    """Counts of a 2-D (h, w) mask; any nonzero pixel is set."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"a mask must be 2-D (height, width), got shape {m.shape}")
    flat = m.ravel(order="F")
    if flat.dtype != np.bool_:
        flat = flat != 0
    n = flat.size
    if n == 0:
        return np.zeros(1, np.uint32)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    first = [0, 0] if flat[0] else [0]  # a set first pixel opens with an empty run of unset ones
    bounds = np.concatenate((np.array(first, np.int64), changes, np.array([n], np.int64)))
    return np.diff(bounds).astype(np.uint32)


def decode(counts: np.ndarray, height: int, width: int) -> np.ndarray:
    """The (height, width) bool mask of ``counts`` (a Fortran-ordered array)."""
    c = _counts(counts)
    total = int(c.sum(dtype=np.int64))
    if total != height * width:
        raise ValueError(f"runs sum to {total}, not {height * width} ({height}x{width} pixels)")
    values = np.zeros(c.size, np.bool_)
    values[1::2] = True
    return np.repeat(values, c).reshape(width, height).T


@numba.njit(cache=True, nogil=True)
def _to_string(counts: np.ndarray) -> np.ndarray:
    out = np.empty(counts.size * 7 + 1, np.uint8)  # a 33-bit signed difference takes 7 groups
    p = 0
    for i in range(counts.size):
        x = np.int64(counts[i])
        if i > 2:  # COCO's: the first three counts are written as they are
            x -= np.int64(counts[i - 2])
        while True:
            group = x & 0x1F
            x >>= 5  # arithmetic: a negative number ends in a run of 1 bits
            last = x == -1 if group & 0x10 else x == 0
            if not last:
                group |= 0x20
            out[p] = 48 + group
            p += 1
            if last:
                break
    return out[:p]


def to_string(counts: np.ndarray) -> bytes:
    """COCO's compact string of ``counts`` (pycocotools' ``rle["counts"]``)."""
    return _to_string(_counts(counts)).tobytes()


@numba.njit(cache=True, nogil=True)
def _from_string(s: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Counts and (-1, 0), or an empty array and the position and kind of the first error:
    1 a character out of range, 2 the string ends inside a number, 3 a number of more than 7
    characters, 4 a count that is negative or overflows 32 bits."""
    out = np.empty(s.size, np.uint32)
    m = 0
    p = 0
    while p < s.size:
        begin = p
        x = np.int64(0)
        shift = 0
        while True:
            if p >= s.size:
                return out[:0], begin, 2
            c = np.int64(s[p]) - 48
            if c < 0 or c > 63:
                return out[:0], p, 1
            x |= (c & 0x1F) << shift
            p += 1
            shift += 5
            if not c & 0x20:
                if c & 0x10:  # negative: extend the sign
                    x |= np.int64(-1) << shift
                break
            if shift >= 35:
                return out[:0], begin, 3
        if m > 2:
            x += np.int64(out[m - 2])
        if x < 0 or x > _UINT32_MAX:
            return out[:0], begin, 4
        out[m] = x
        m += 1
    return out[:m].copy(), -1, 0


_STRING_ERRORS = {
    1: "a character outside COCO's alphabet ('0' to 'o')",
    2: "the string ends inside a count",
    3: "a count longer than 7 characters",
    4: "a count that is negative or does not fit in 32 bits",
}


def from_string(s: bytes | str) -> np.ndarray:
    """Counts of COCO's compact string."""
    raw = s.encode("ascii") if isinstance(s, str) else bytes(s)
    counts, where, kind = _from_string(np.frombuffer(raw, np.uint8))
    if where >= 0:
        raise ValueError(f"malformed RLE string: {_STRING_ERRORS[kind]} at character {where}")
    return counts


def pack(masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The counts of ``masks`` end to end (uint32) and where each starts (int64, one more than
    masks: mask i is ``runs[offsets[i]:offsets[i + 1]]``), for numba loops over many masks."""
    arrays = [_counts(m) for m in masks]
    offsets = np.zeros(len(arrays) + 1, np.int64)
    if not arrays:
        return np.zeros(0, np.uint32), offsets
    np.cumsum([a.size for a in arrays], out=offsets[1:])
    return np.concatenate(arrays), offsets


# ---------------------------------------------------------------------------------------------------
# area, box, IoU


@numba.njit(cache=True, nogil=True)
def _area(counts: np.ndarray) -> int:
    total = 0
    for i in range(1, counts.size, 2):
        total += counts[i]
    return total


def area(counts: np.ndarray) -> int:
    """Pixels set."""
    return int(_area(_counts(counts)))


@numba.njit(cache=True, nogil=True)
def _bbox(counts: np.ndarray, h: int, w: int) -> tuple[float, float, float, float]:
    m = counts.size // 2 * 2  # a last run of unset pixels does not count
    if m == 0:
        return 0.0, 0.0, 0.0, 0.0
    xs, ys, xe, ye = w, h, 0, 0
    end = 0
    for j in range(m):
        start = end
        end += counts[j]
        if j % 2 == 0 or counts[j] == 0:
            continue
        x0, x1 = start // h, (end - 1) // h
        xs = min(xs, x0)
        xe = max(xe, x1)
        if x0 < x1:  # the run goes from one column into the next: every row
            ys, ye = 0, h - 1
        else:
            ys = min(ys, start % h)
            ye = max(ye, (end - 1) % h)
    # COCO computes these in uint32: counts without a set pixel wrap around
    return float(xs), float(ys), float((xe - xs + 1) & _UINT32_MAX), float((ye - ys + 1) & _UINT32_MAX)


def bbox(counts: np.ndarray, height: int, width: int) -> tuple[float, float, float, float]:
    """x, y, width and height of the box around the set pixels, as pycocotools' ``toBbox`` (0s when
    none is set)."""
    c = _counts(counts)
    if height < 0 or width < 0:
        raise ValueError(f"mask size {height}x{width} must not be negative")
    if height == 0:
        if _area(c) > 0:
            raise ValueError("set pixels in a mask of height 0")
        return _bbox(c, 1, width)
    return _bbox(c, height, width)


@numba.njit(cache=True, nogil=True)
def _intersection(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels set in both: a walk along the set runs of both, each a half-open span of pixels."""
    if a.size < 2 or b.size < 2:
        return 0
    i, j = 1, 1
    sa = np.int64(a[0])
    ea = sa + a[1]
    sb = np.int64(b[0])
    eb = sb + b[1]
    inter = 0
    while True:
        lo = max(sa, sb)
        hi = min(ea, eb)
        if hi > lo:
            inter += hi - lo
        if ea <= eb:
            i += 2
            if i >= a.size:
                break
            sa = ea + a[i - 1]
            ea = sa + a[i]
        else:
            j += 2
            if j >= b.size:
                break
            sb = eb + b[j - 1]
            eb = sb + b[j]
    return inter


@numba.njit(cache=True, nogil=True)
def _ratio(inter: int, area_a: int, area_b: int, crowd: bool) -> float:
    if inter == 0:
        return 0.0
    union = area_a if crowd else area_a + area_b - inter
    return np.float64(inter) / np.float64(union) if union > 0 else 0.0


@numba.njit(cache=True, nogil=True)
def rle_iou(a: np.ndarray, b: np.ndarray, crowd: bool) -> float:
    """IoU of two masks' counts (of the same size); against a crowd region ``b``, the intersection
    over the area of ``a``. 0.0 when they do not meet."""
    return _ratio(_intersection(a, b), _area(a), _area(b), crowd)


@numba.njit(cache=True, nogil=True)
def _extents(runs: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per mask: pixels set, first set pixel, one past the last (column-major indices), and total."""
    n = offsets.size - 1
    areas = np.zeros(n, np.int64)
    first = np.zeros(n, np.int64)
    last = np.zeros(n, np.int64)
    totals = np.zeros(n, np.int64)
    for k in range(n):
        pos = 0
        lo, hi = -1, 0
        for i in range(offsets[k], offsets[k + 1]):
            run = np.int64(runs[i])
            if (i - offsets[k]) % 2 == 1 and run > 0:
                areas[k] += run
                if lo < 0:
                    lo = pos
                hi = pos + run
            pos += run
        first[k], last[k], totals[k] = lo, hi, pos
    return areas, first, last, totals


@numba.njit(cache=True, nogil=True)
def _iou_matrix(
    druns: np.ndarray, doffsets: np.ndarray, gruns: np.ndarray, goffsets: np.ndarray, crowd: np.ndarray
) -> tuple[np.ndarray, bool]:
    """The IoU matrix, and whether all masks are of one size (else the matrix is empty)."""
    da, dlo, dhi, dtotal = _extents(druns, doffsets)
    ga, glo, ghi, gtotal = _extents(gruns, goffsets)
    out = np.zeros((da.size, ga.size))
    totals = np.concatenate((dtotal, gtotal))
    if totals.size and (totals.min() != totals.max()):
        return out[:0, :0], False
    for i in range(da.size):
        if da[i] == 0:
            continue
        a = druns[doffsets[i] : doffsets[i + 1]]
        for j in range(ga.size):
            # masks whose spans of pixels (first to last set, column-major) are apart cannot meet
            if ga[j] == 0 or dhi[i] <= glo[j] or ghi[j] <= dlo[i]:
                continue
            inter = _intersection(a, gruns[goffsets[j] : goffsets[j + 1]])
            out[i, j] = _ratio(inter, da[i], ga[j], crowd[j])
    return out, True


def iou_matrix(dt: Sequence[np.ndarray], gt: Sequence[np.ndarray], crowd: np.ndarray) -> np.ndarray:
    """:func:`rle_iou` of every detection's mask with every ground truth mask ((len(dt), len(gt))
    float64); ``crowd[j]`` says whether ground truth ``j`` is a crowd region. The masks must be of
    one size."""
    druns, doffsets = pack(dt)
    gruns, goffsets = pack(gt)
    flags = np.asarray(crowd, np.bool_).reshape(-1)
    if flags.size != len(gt):
        raise ValueError(f"{flags.size} crowd flags for {len(gt)} ground truth masks")
    out, same_size = _iou_matrix(druns, doffsets, gruns, goffsets, flags)
    if not same_size:
        totals = np.unique(np.concatenate((_extents(druns, doffsets)[3], _extents(gruns, goffsets)[3])))
        raise ValueError(f"masks of different sizes: their runs sum to {', '.join(str(t) for t in totals)}")
    return out


# ---------------------------------------------------------------------------------------------------
# unions, polygons


@numba.njit(cache=True, nogil=True)
def _grow(a: np.ndarray, need: int) -> np.ndarray:
    if need <= a.size:
        return a
    b = np.empty(max(need, 2 * a.size), a.dtype)
    b[: a.size] = a
    return b


@numba.njit(cache=True, nogil=True)
def _union_runs(starts: np.ndarray, ends: np.ndarray, k: int, total: int, ordered: bool) -> np.ndarray:
    """Canonical counts of the union of the half-open spans ``[starts[i], ends[i])``, i < k, which are
    in order of their starts when ``ordered``. Spans that cover little ground for their number are
    united on a coverage count over that ground, others sorted."""
    out = np.empty(2 * k + 1, np.uint32)
    m = 0
    written = 0  # pixels before this, all written
    if k > 0 and not ordered:
        lo, hi = starts[0], ends[0]
        for i in range(k):
            lo, hi = min(lo, starts[i]), max(hi, ends[i])
        if hi - lo <= 32 * k:
            change = np.zeros(hi - lo + 1, np.int32)
            for i in range(k):
                if ends[i] > starts[i]:
                    change[starts[i] - lo] += 1
                    change[ends[i] - lo] -= 1
            cover = 0
            opened = 0
            for x in range(hi - lo + 1):
                if change[x] == 0:
                    continue
                if cover == 0:
                    opened = lo + x
                cover += change[x]
                if cover == 0:
                    out[m], out[m + 1] = opened - written, lo + x - opened
                    m += 2
                    written = lo + x
            k = 0  # all written
    order = np.arange(k) if ordered else np.argsort(starts[:k])
    is_open = False
    s0 = e0 = 0
    for idx in order:
        s, e = starts[idx], ends[idx]
        if e <= s:
            continue
        if is_open and s <= e0:  # overlaps or touches the open span
            e0 = max(e0, e)
            continue
        if is_open:
            out[m], out[m + 1] = s0 - written, e0 - s0
            m += 2
            written = e0
        is_open, s0, e0 = True, s, e
    if is_open:
        out[m], out[m + 1] = s0 - written, e0 - s0
        m += 2
        written = e0
    if written < total or m == 0:
        out[m] = total - written
        m += 1
    return out[:m].copy()


@numba.njit(cache=True, nogil=True)
def _merge(runs: np.ndarray, offsets: np.ndarray, total: int) -> tuple[np.ndarray, int]:
    """Counts of the union, and -1, or an empty array and the first mask whose runs do not sum to ``total``."""
    starts = np.empty(runs.size // 2 + 1, np.int64)
    ends = np.empty(runs.size // 2 + 1, np.int64)
    k = 0
    for mask in range(offsets.size - 1):
        pos = 0
        for i in range(offsets[mask], offsets[mask + 1]):
            run = np.int64(runs[i])
            if (i - offsets[mask]) % 2 == 1 and run > 0:
                starts[k], ends[k] = pos, pos + run
                k += 1
            pos += run
        if pos != total:
            return runs[:0].copy(), mask
    return _union_runs(starts, ends, k, total, offsets.size <= 2), -1


def merge(masks: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Counts of the union of ``masks`` (counts of (height, width) masks); an empty mask for none."""
    runs, offsets = pack(masks)
    counts, bad = _merge(runs, offsets, height * width)
    if bad >= 0:
        raise ValueError(
            f"mask {bad}: runs sum to {int(runs[offsets[bad] : offsets[bad + 1]].sum(dtype=np.int64))}, not"
            f" {height * width} ({height}x{width} pixels)"
        )
    return counts


@numba.njit(cache=True, nogil=True)
def _row(v: int, h: int) -> int:
    """The row of the first pixel centre at or below the walk's height ``v`` (at 5x scale), clamped to
    the column: COCO's ``ceil(clamp((v + .5) / 5 - .5, 0, h))``."""
    y = (v + 0.5) / _SCALE - 0.5
    if y < 0:
        return 0
    if y > h:
        return h
    return math.ceil(y)


@numba.njit(cache=True, nogil=True)
def _polygon_crossings(xy: np.ndarray, h: int, w: int, buf: np.ndarray) -> tuple[np.ndarray, int]:
    """The boundaries (column-major pixel indices) of one polygon (flat x, y pairs) in ``buf``, grown
    as needed, and how many.

    COCO walks every edge at 5x scale one step at a time along its longer axis, from its lower end,
    and rounds the other coordinate (a C cast of ``+ .5``). A step between two positions u and u + 1
    crosses the centre line of column c when u = 5c + 2 (COCO's ``(u + .5) / 5 - .5`` is then a whole
    number, and only then), and makes a boundary there at the row :func:`_row` of the step's upper
    end. Only those steps are visited: every fifth along x, every change of u along y. Steps from one
    edge to the next stay at a vertex's u (or, left of the image, at most one off it) and cross nothing.
    An edge of one point (a repeated vertex) crosses nothing either."""
    k = xy.size // 2
    px = np.empty(k + 1, np.int64)
    py = np.empty(k + 1, np.int64)
    for j in range(k):
        px[j] = int(_SCALE * xy[2 * j] + 0.5)  # truncates toward zero, as C's cast
        py[j] = int(_SCALE * xy[2 * j + 1] + 0.5)
    px[k], py[k] = px[0], py[0]
    bound = 0
    for j in range(k):
        bound += abs(px[j + 1] - px[j]) // 5 + 2
    buf = _grow(buf, bound)
    last = 5 * (w - 1) + 2  # the walk's u on the last column's centre line
    n = 0
    for j in range(k):
        x0, x1, y0, y1 = px[j], px[j + 1], py[j], py[j + 1]
        dx, dy = abs(x1 - x0), abs(y1 - y0)
        if dx >= dy:
            if dx == 0:
                continue
            if x0 > x1:
                x0, x1, y0, y1 = x1, x0, y1, y0
            s = (y1 - y0) / dx
            # point t is at u = x0 + t; the step from t - 1 to t crosses when x0 + t - 1 = 5c + 2, 0 <= c < w
            lo = max(1, 3 - x0)
            hi = min(dx, last + 1 - x0)
            if lo > hi:
                continue
            t = lo + (2 - (x0 + lo - 1)) % 5
            while t <= hi:
                va = int(y0 + s * (t - 1) + 0.5)
                vb = int(y0 + s * t + 0.5)
                buf[n] = (x0 + t - 3) // 5 * h + _row(min(va, vb), h)
                n += 1
                t += 5
        else:
            if y0 > y1:
                x0, x1, y0, y1 = x1, x0, y1, y0
            s = (x1 - x0) / dy
            # point t is at u = int(x0 + s * t + .5), which moves by at most 1 a step, monotonically
            prev = int(x0 + s * 0 + 0.5)
            end = int(x0 + s * dy + 0.5)
            if max(prev, end) < 3 or min(prev, end) > last:
                continue  # never on a centre line in the image
            for t in range(1, dy + 1):
                u = int(x0 + s * t + 0.5)
                if u != prev:
                    m = min(u, prev)
                    if 2 <= m <= last and (m - 2) % 5 == 0:
                        buf[n] = (m - 2) // 5 * h + _row(y0 + t - 1, h)
                        n += 1
                    prev = u
    return buf, n


@numba.njit(cache=True, nogil=True)
def _sort_boundaries(a: np.ndarray, n: int, h: int) -> None:
    """Sorts ``a[:n]`` in place: by column first (a counting sort), then within columns, which hold
    few boundaries each (an insertion sort, or numpy's sort where one holds many)."""
    if n > 16:
        lo, hi = a[0] // h, a[0] // h
        for i in range(n):
            lo, hi = min(lo, a[i] // h), max(hi, a[i] // h)
        if hi - lo > 4 * n:
            a[:n] = np.sort(a[:n])
            return
        starts = np.zeros(hi - lo + 2, np.int64)
        for i in range(n):
            starts[a[i] // h - lo + 1] += 1
        widest = 0
        for c in range(1, starts.size):
            widest = max(widest, starts[c])
            starts[c] += starts[c - 1]
        if widest > 32:
            a[:n] = np.sort(a[:n])
            return
        by_column = np.empty(n, np.int64)
        for i in range(n):
            c = a[i] // h - lo
            by_column[starts[c]] = a[i]
            starts[c] += 1
        a[:n] = by_column
    for i in range(1, n):  # out of order only within a column
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@numba.njit(cache=True, nogil=True)
def _from_polygons(xy: np.ndarray, offsets: np.ndarray, h: int, w: int) -> tuple[np.ndarray, int, int]:
    """Counts, and (-1, 0); or an empty array, the first polygon that cannot be rasterised and why: 1
    for its number of coordinates, 2 for a coordinate not finite or too large."""
    for p in range(offsets.size - 1):
        size = offsets[p + 1] - offsets[p]
        if size % 2 or size < 6:
            return np.zeros(0, np.uint32), p, 1
        for i in range(offsets[p], offsets[p + 1]):
            if not abs(xy[i]) < _MAX_COORDINATE:  # true for NaN too
                return np.zeros(0, np.uint32), p, 2
    total = h * w
    if total == 0:
        return np.zeros(1, np.uint32), -1, 0
    buf = np.empty(64, np.int64)
    starts = np.empty(64, np.int64)
    ends = np.empty(64, np.int64)
    k = 0
    for p in range(offsets.size - 1):
        buf, n = _polygon_crossings(xy[offsets[p] : offsets[p + 1]], h, w, buf)
        _sort_boundaries(buf, n, h)
        # the sorted boundaries toggle the mask: set from the 1st to the 2nd, the 3rd to the 4th, ...
        starts = _grow(starts, k + n // 2 + 1)
        ends = _grow(ends, k + n // 2 + 1)
        for q in range(0, n, 2):
            starts[k] = buf[q]
            ends[k] = buf[q + 1] if q + 1 < n else total
            k += 1
    return _union_runs(starts, ends, k, total, offsets.size <= 2), -1, 0


def from_polygons(polygons: Sequence[Sequence[float] | np.ndarray], height: int, width: int) -> np.ndarray:
    """Counts of the union of ``polygons`` (each flat: x0, y0, x1, y1, ...) rasterised in a
    (height, width) image as COCO does (pycocotools' ``frPyObjects`` then ``merge``). Points may lie
    outside the image, which clips them; :func:`check_polygon` says whether a labeled one is sound."""
    if height < 0 or width < 0:
        raise ValueError(f"image size {height}x{width} must not be negative")
    arrays = [np.asarray(p, dtype=np.float64).reshape(-1) for p in polygons]
    if len(arrays) == 1:  # the common case, without a copy
        xy, offsets = arrays[0], np.array([0, arrays[0].size], np.int64)
    else:
        xy = np.concatenate(arrays) if arrays else np.zeros(0)
        offsets = np.zeros(len(arrays) + 1, np.int64)
        np.cumsum([a.size for a in arrays], out=offsets[1:])
    counts, bad, kind = _from_polygons(xy, offsets, int(height), int(width))
    if bad >= 0:
        if kind == 1:
            raise ValueError(
                f"polygon {bad} has {arrays[bad].size} coordinates; it needs x, y pairs of at least 3 points"
            )
        raise ValueError(f"polygon {bad} has a coordinate that is not finite or beyond {_MAX_COORDINATE:g}")
    return counts


# ---------------------------------------------------------------------------------------------------
# checks


def _check_values(arr: np.ndarray) -> str | None:
    if arr.ndim != 1:
        return f"counts must be a 1-D array, got shape {arr.shape}"
    if arr.size == 0:
        return None
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            return f"counts must be integers, got {arr.dtype} values"
    negative = np.flatnonzero(arr < 0)
    if negative.size:
        i = int(negative[0])
        return f"run {i} is negative ({arr[i]})"
    big = np.flatnonzero(arr > _UINT32_MAX)
    if big.size:
        i = int(big[0])
        return f"run {i} ({arr[i]}) does not fit in 32 bits"
    return None


def check(counts: np.ndarray | Sequence[int], height: int, width: int) -> str | None:
    """None when ``counts`` are a (height, width) mask's, else why not."""
    if height < 0 or width < 0:
        return f"mask size {height}x{width} must not be negative"
    try:
        arr = np.asarray(counts)
    except (TypeError, ValueError) as e:
        return f"counts are not an array of integers ({e})"
    problem = _check_values(arr)
    if problem is not None:
        return problem
    pixels = height * width
    if arr.size == 0:
        return f"no runs for a {height}x{width} mask ({pixels} pixels)" if pixels > 0 else None
    total = int(arr.astype(np.int64).sum())
    if total != pixels:
        return f"runs sum to {total}, not {pixels} ({height}x{width} pixels)"
    return None


def check_polygon(points: Sequence[float] | np.ndarray, height: int, width: int) -> str | None:
    """None when ``points`` (flat x, y pairs) are a polygon of at least 3 finite points within the
    (height, width) image grown by half a pixel on every side, else why not."""
    try:
        xy = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as e:
        return f"polygon coordinates must be numbers ({e})"
    if xy.ndim != 1:
        return f"polygon coordinates must be a flat list x0, y0, x1, y1, ..., got shape {xy.shape}"
    if xy.size % 2:
        return f"polygon has an odd number of coordinates ({xy.size}); it needs x, y pairs"
    if xy.size < 6:
        return f"polygon has {xy.size // 2} points; it needs at least 3"
    x, y = xy[0::2], xy[1::2]
    bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if bad.size:
        i = int(bad[0])
        return f"point {i} ({x[i]}, {y[i]}) is not finite"
    outside = np.flatnonzero((x < -0.5) | (x > width + 0.5) | (y < -0.5) | (y > height + 0.5))
    if outside.size:
        i = int(outside[0])
        return (
            f"point {i} ({x[i]}, {y[i]}) lies outside the {width}x{height} image (x from -0.5 to {width + 0.5},"
            f" y from -0.5 to {height + 0.5})"
        )
    return None
