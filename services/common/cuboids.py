"""3-D cuboids (the boxes of lidar and multi-camera detection) as arrays, and how alike two of them are: the
distance of their centres in the ground plane (nuScenes' ``center_distance``), the IoU of their footprints seen
from above (bird's-eye view, rotated rectangles clipped exactly) and their 3-D IoU. The kernels are compiled
with numba and take one cuboid a row, so that matching loops (``shoal.analysis.nuscenes``) call them as
machine code, as the 2-D ones of :mod:`shoal.common.boxes` are called.

A cuboid is a row of :data:`COLUMNS`: its centre (x, y, z, in metres, z up), its size (w across, l along its
heading, h up: nuScenes' ``wlh``) and its yaw (radians, counter-clockwise from the x axis, about z). Its
velocity, when known, is a separate (N, 2) array of vx, vy in metres a second (NaN where unknown). Cuboids
rotate about z only: the footprint is the rectangle l x w turned by yaw, the box spans z - h/2 to z + h/2.

Rotations given as quaternions (nuScenes' ``rotation``, w, x, y, z) become yaws with
:func:`yaw_from_quaternion`, which takes the heading the devkit takes (the box's x axis projected on the ground
plane) and refuses a quaternion that is not of unit norm instead of quietly normalising a wrong one.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "COLUMNS",
    "KINDS",
    "angle_difference",
    "bev_intersection",
    "bev_iou",
    "center_distance",
    "check_cuboids",
    "cuboid_pairs",
    "cuboids",
    "iou_3d",
    "quaternion_from_yaw",
    "scale_iou",
    "similarity",
    "similarity_matrix",
    "yaw_from_quaternion",
]

#: the columns of a cuboid row
COLUMNS = ("x", "y", "z", "w", "l", "h", "yaw")
X, Y, Z, W, L, H, YAW = range(7)
#: what two cuboids can be compared by, with the code the kernels take
KINDS = {"center_distance": 0, "bev_iou": 1, "iou_3d": 2}
#: how far a quaternion's norm may be from 1 and still count as a rotation (float32 storage rounds to ~1e-7)
QUATERNION_TOLERANCE = 1e-5


def cuboids(*, centre: np.ndarray, size: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Cuboid rows from their parts, checked (:func:`check_cuboids`).

    Parameters
    ----------
    centre : (N, 3) x, y, z of the centres, metres
    size : (N, 3) w, l, h (across, along the heading, up), metres, positive
    yaw : (N,) heading, radians counter-clockwise from the x axis

    Returns
    -------
    (N, 7) float64 rows of :data:`COLUMNS`
    """
    centre = np.asarray(centre, dtype=np.float64).reshape(-1, 3)
    size = np.asarray(size, dtype=np.float64).reshape(-1, 3)
    yaw = np.asarray(yaw, dtype=np.float64).reshape(-1, 1)
    if not len(centre) == len(size) == len(yaw):
        raise ValueError(f"centre, size and yaw must have one row a cuboid: {len(centre)}, {len(size)}, {len(yaw)}")
    return check_cuboids(np.concatenate([centre, size, yaw], axis=1))


def check_cuboids(box: np.ndarray, what: str = "cuboid") -> np.ndarray:
    """``box`` as a contiguous (N, 7) float64 array of :data:`COLUMNS`, refusing what no cuboid is: a value
    that is not finite, or a size that is not positive (the error names the first such row)."""
    box = np.ascontiguousarray(np.asarray(box, dtype=np.float64))
    if box.ndim == 1 and box.size == 0:
        box = box.reshape(0, 7)
    if box.ndim != 2 or box.shape[1] != 7:
        raise ValueError(f"{what}s must be an (N, 7) array of {', '.join(COLUMNS)}; got shape {box.shape}")
    bad = ~np.isfinite(box).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what} {i} has a value that is not finite: {box[i].tolist()}")
    bad = (box[:, W:YAW] <= 0).any(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what} {i} has size (w, l, h) = {box[i, W:YAW].tolist()}: every side must be positive")
    return box


def yaw_from_quaternion(rotation: np.ndarray, *, tolerance: float = QUATERNION_TOLERANCE) -> np.ndarray:
    """The yaw of rotations given as unit quaternions (w, x, y, z: nuScenes' and pyquaternion's order): the
    angle of the rotated x axis projected on the ground plane, as the nuScenes devkit's ``quaternion_yaw``
    takes it (so a small roll or pitch leaves the heading).

    Parameters
    ----------
    rotation : (N, 4) or (4,) quaternions w, x, y, z, of norm 1 within ``tolerance``
    tolerance : how far a norm may be from 1 (rounding); the quaternion is then normalised

    Returns
    -------
    (N,) or scalar yaw in (-pi, pi]

    Raises
    ------
    ValueError
        naming the first quaternion that is not finite or whose norm is not 1: a rotation is a unit
        quaternion, and one that is not is most often in another order (x, y, z, w) or not a rotation at all.
    """
    q = np.asarray(rotation, dtype=np.float64)
    single = q.ndim == 1
    q = q.reshape(-1, 4)
    if not np.isfinite(q).all():
        i = int(np.argmax(~np.isfinite(q).all(axis=1)))
        raise ValueError(f"quaternion {i} (w, x, y, z) = {q[i].tolist()} is not finite")
    norm = np.sqrt((q * q).sum(axis=1))
    off = np.abs(norm - 1.0) > tolerance
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(
            f"quaternion {i} (w, x, y, z) = {q[i].tolist()} has norm {norm[i]:.6g}, not 1: a rotation is a unit"
            f" quaternion; divide it by its norm if it is one, and check the order is w, x, y, z"
        )
    w, x, y, z = (q / norm[:, None]).T
    yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return yaw[0] if single else yaw


def quaternion_from_yaw(yaw: np.ndarray) -> np.ndarray:
    """The unit quaternions (w, x, y, z) of turns by ``yaw`` about z: (N,) -> (N, 4)."""
    half = np.asarray(yaw, dtype=np.float64) / 2.0
    zero = np.zeros_like(half)
    return np.stack([np.cos(half), zero, zero, np.sin(half)], axis=-1)


@numba.njit(cache=True, nogil=True)
def center_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance of two cuboids' centres in the ground plane (x and y only), metres: nuScenes' matching
    distance."""
    dx = a[X] - b[X]
    dy = a[Y] - b[Y]
    return math.sqrt(dx * dx + dy * dy)


@numba.njit(cache=True, nogil=True)
def scale_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two cuboids moved onto one centre and turned to one yaw: their sizes alone (nuScenes' ``scale_iou``,
    behind ASE = 1 - this)."""
    inter = min(a[W], b[W]) * min(a[L], b[L]) * min(a[H], b[H])
    union = a[W] * a[L] * a[H] + b[W] * b[L] * b[H] - inter
    return inter / union


@numba.njit(cache=True, nogil=True)
def angle_difference(to: float, frm: float, period: float) -> float:
    """The smallest angle between two headings, in [0, pi], when a heading is known up to ``period`` (2 pi, or
    pi for objects whose front and back look alike): nuScenes' ``yaw_diff`` / ``angle_diff``."""
    diff = (to - frm + period / 2.0) % period - period / 2.0
    if diff > math.pi:
        diff = diff - 2.0 * math.pi
    return abs(diff)


@numba.njit(cache=True, nogil=True)
def _corners(box: np.ndarray, ox: float, oy: float, xs: np.ndarray, ys: np.ndarray) -> None:
    """The footprint's corners counter-clockwise, relative to (ox, oy), into xs[:4], ys[:4]."""
    c, s = math.cos(box[YAW]), math.sin(box[YAW])
    hl, hw = box[L] / 2.0, box[W] / 2.0
    cx, cy = box[X] - ox, box[Y] - oy
    # (l, -w), (l, w), (-l, w), (-l, -w) halves in the box's frame: counter-clockwise
    for k in range(4):
        u = hl if k < 2 else -hl
        v = -hw if k == 0 or k == 3 else hw
        xs[k] = cx + u * c - v * s
        ys[k] = cy + u * s + v * c


@numba.njit(cache=True, nogil=True)
def _clipped_area(a: np.ndarray, b: np.ndarray, buf: np.ndarray) -> float:
    """Area of the intersection of two footprints: a's rectangle clipped by each edge of b's (Sutherland and
    Hodgman), in coordinates centred on b (no cancellation far from the origin). ``buf`` is (6, 16) scratch."""
    ox, oy = b[X], b[Y]
    ra = 0.5 * math.sqrt(a[W] * a[W] + a[L] * a[L])
    rb = 0.5 * math.sqrt(b[W] * b[W] + b[L] * b[L])
    dx, dy = a[X] - ox, a[Y] - oy
    if dx * dx + dy * dy >= (ra + rb) * (ra + rb):
        return 0.0  # the circles around them do not meet
    px, py, qx, qy, cx, cy = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5]
    _corners(a, ox, oy, px, py)
    _corners(b, ox, oy, cx, cy)
    n = 4
    for k in range(4):
        ex, ey = cx[(k + 1) % 4] - cx[k], cy[(k + 1) % 4] - cy[k]
        m = 0
        prev = n - 1
        dp = ex * (py[prev] - cy[k]) - ey * (px[prev] - cx[k])
        for i in range(n):
            dc = ex * (py[i] - cy[k]) - ey * (px[i] - cx[k])  # >= 0: on the inner (left) side of the edge
            if (dc >= 0) != (dp >= 0):
                t = dp / (dp - dc)
                qx[m] = px[prev] + t * (px[i] - px[prev])
                qy[m] = py[prev] + t * (py[i] - py[prev])
                m += 1
            if dc >= 0:
                qx[m] = px[i]
                qy[m] = py[i]
                m += 1
            prev, dp = i, dc
        if m == 0:
            return 0.0
        for i in range(m):
            px[i] = qx[i]
            py[i] = qy[i]
        n = m
    twice = 0.0
    for i in range(n):
        j = (i + 1) % n
        twice += px[i] * py[j] - px[j] * py[i]
    area = abs(twice) / 2.0
    # clipping rounds: the intersection is never larger than either footprint
    return min(area, a[W] * a[L], b[W] * b[L])


@numba.njit(cache=True, nogil=True)
def _bev_iou(a: np.ndarray, b: np.ndarray, buf: np.ndarray) -> float:
    inter = _clipped_area(a, b, buf)
    if inter <= 0.0:
        return 0.0
    return inter / (a[W] * a[L] + b[W] * b[L] - inter)


@numba.njit(cache=True, nogil=True)
def _iou_3d(a: np.ndarray, b: np.ndarray, buf: np.ndarray) -> float:
    top = min(a[Z] + a[H] / 2.0, b[Z] + b[H] / 2.0)
    bottom = max(a[Z] - a[H] / 2.0, b[Z] - b[H] / 2.0)
    if top <= bottom:
        return 0.0
    inter = _clipped_area(a, b, buf) * (top - bottom)
    if inter <= 0.0:
        return 0.0
    return inter / (a[W] * a[L] * a[H] + b[W] * b[L] * b[H] - inter)


@numba.njit(cache=True, nogil=True)
def _scratch() -> np.ndarray:
    return np.empty((6, 16))


@numba.njit(cache=True, nogil=True)
def bev_intersection(a: np.ndarray, b: np.ndarray) -> float:
    """Area of the intersection of two cuboids' footprints (rotated rectangles), square metres."""
    return _clipped_area(a, b, _scratch())


@numba.njit(cache=True, nogil=True)
def bev_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two cuboids seen from above: their rotated footprints' intersection over their union."""
    return _bev_iou(a, b, _scratch())


@numba.njit(cache=True, nogil=True)
def iou_3d(a: np.ndarray, b: np.ndarray) -> float:
    """3-D IoU of two cuboids: the footprints' intersection times the overlap of their heights, over the union
    of their volumes."""
    return _iou_3d(a, b, _scratch())


@numba.njit(cache=True, nogil=True)
def _similarity(a: np.ndarray, b: np.ndarray, kind: int, buf: np.ndarray) -> float:
    if kind == 0:
        return center_distance(a, b)
    if kind == 1:
        return _bev_iou(a, b, buf)
    return _iou_3d(a, b, buf)


@numba.njit(cache=True, nogil=True)
def similarity(a: np.ndarray, b: np.ndarray, kind: int) -> float:
    """:func:`center_distance` (``kind`` 0), :func:`bev_iou` (1) or :func:`iou_3d` (2) of two cuboids; the codes
    are :data:`KINDS`'."""
    return _similarity(a, b, kind, _scratch())


@numba.njit(cache=True, nogil=True)
def cuboid_pairs(gt_start, gt_end, dt_start, dt_end, pair_start, g_box, d_box, kind, out):  # type: ignore[no-untyped-def]
    """:func:`similarity` of every (prediction, label) pair of every group, row-major from ``pair_start``, as
    :func:`shoal.common.similarity.box_pairs` lays 2-D boxes out: group ``g`` is ``d_box[dt_start[g]:dt_end[g]]``
    against ``g_box[gt_start[g]:gt_end[g]]``."""
    buf = _scratch()
    for grp in range(gt_start.shape[0]):
        g0, ng, d0, nd = gt_start[grp], gt_end[grp] - gt_start[grp], dt_start[grp], dt_end[grp] - dt_start[grp]
        for i in range(nd):
            for j in range(ng):
                out[pair_start[grp] + i * ng + j] = _similarity(d_box[d0 + i], g_box[g0 + j], kind, buf)


@numba.njit(cache=True, nogil=True)
def _matrix(dt: np.ndarray, gt: np.ndarray, kind: int) -> np.ndarray:
    out = np.zeros((dt.shape[0], gt.shape[0]))
    buf = _scratch()
    for i in range(dt.shape[0]):
        for j in range(gt.shape[0]):
            out[i, j] = _similarity(dt[i], gt[j], kind, buf)
    return out


def similarity_matrix(*, dt: np.ndarray, gt: np.ndarray, kind: str) -> np.ndarray:
    """The similarity of every cuboid of ``dt`` (D, 7) with every one of ``gt`` (G, 7): a (D, G) array of
    ``kind`` (one of :data:`KINDS`: metres for ``center_distance``, lower is more alike; IoU in [0, 1] for
    ``bev_iou`` and ``iou_3d``, higher is more alike)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    return _matrix(check_cuboids(dt), check_cuboids(gt), KINDS[kind])
