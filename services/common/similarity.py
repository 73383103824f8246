"""How alike a predicted object and a labeled one are, for every kind of object Shoal matches: the
IoU of their boxes (2-D detection), the IoU of their masks (instance segmentation, on COCO run
lengths, without drawing them), COCO's object keypoint similarity (keypoints) or the IoU of two
cuboids' footprints seen from above (3-D cuboids: bird's-eye-view IoU of the rotated rectangles).

The COCO evaluation (``shoal.analysis.coco``, pairs within a class and image) and the per-frame
outcomes behind confusion matrices and drill-down (``shoal.common.data.outcomes``, pairs within a
frame across classes) both ask for the similarity of every pair in groups of objects; one set of
kernels answers both, so a match means the same thing everywhere.

Objects come as parallel arrays (:class:`Objects`); a group is a run of labeled objects and a run
of predicted ones (``gt_start[g]:gt_end[g]`` and ``dt_start[g]:dt_end[g]`` in the rows given), and
its pairs are written row-major (prediction, then label) from ``pair_start[g]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numba
import numpy as np

from shoal.common import masks
from shoal.common.boxes import box_iou
from shoal.common.cuboids import KINDS as CUBOID_KINDS
from shoal.common.cuboids import cuboid_pairs
from shoal.common.data.projects import Project
from shoal.common.masks import rle_iou

#: what objects are compared by, as COCO's ``iouType``
KINDS = ("bbox", "segm", "keypoints", "cuboid")
#: a keypoint's sigma when its class declares none (COCO's person keypoints range from 0.025 to 0.107)
DEFAULT_SIGMA = 0.05


class Objects(Protocol):
    """Objects as parallel arrays. ``masks`` holds the COCO run lengths of every object
    concatenated (object ``i``'s at ``mask_offsets[i]:mask_offsets[i + 1]``); ``keypoints`` rows
    of x, y, visibility (object ``i``'s at ``keypoint_offsets[i]:keypoint_offsets[i + 1]``)."""

    category: np.ndarray
    #: (N, 4) x, y, width, height
    box: np.ndarray
    crowd: np.ndarray | None
    area: np.ndarray | None
    masks: np.ndarray | None
    mask_offsets: np.ndarray | None
    keypoints: np.ndarray | None
    keypoint_offsets: np.ndarray | None
    #: (N, 7) cuboids (x, y, z, w, l, h, yaw; :mod:`shoal.common.cuboids`); None for other kinds
    cuboids: np.ndarray | None


Groups = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def pairs(
    kind: str,
    groups: Groups,
    gt: Objects,
    gt_rows: np.ndarray,
    dt: Objects,
    dt_rows: np.ndarray,
    sigmas: Mapping[int, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The similarity of every (prediction, label) pair of every group, flat, and where each
    group's pairs start. ``gt_rows`` and ``dt_rows`` pick and order the objects the groups index;
    keypoints are judged with the label's class's ``sigmas`` (one per keypoint)."""
    gt_start, gt_end, dt_start, dt_end = groups
    sizes = (gt_end - gt_start) * (dt_end - dt_start)
    pair_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    out = np.zeros(int(pair_start[-1]))
    crowd = crowd_of(gt)[gt_rows]
    if kind == "bbox":
        box_pairs(*groups, pair_start, _rows(gt.box, gt_rows), crowd, _rows(dt.box, dt_rows), out)
    elif kind == "segm":
        g_runs, g_from, g_to = parts(gt.masks, gt.mask_offsets, gt_rows, "masks")
        d_runs, d_from, d_to = parts(dt.masks, dt.mask_offsets, dt_rows, "masks")
        mask_pairs(*groups, pair_start, g_runs, g_from, g_to, crowd, d_runs, d_from, d_to, out)
    elif kind == "keypoints":
        g_kp, g_from, g_to = parts(gt.keypoints, gt.keypoint_offsets, gt_rows, "keypoints")
        d_kp, d_from, d_to = parts(dt.keypoints, dt.keypoint_offsets, dt_rows, "keypoints")
        assert gt.area is not None
        var_from, var_to, variances = variances_of(sigmas or {}, np.asarray(gt.category)[gt_rows])
        keypoint_pairs(
            *groups, pair_start, _points(g_kp), g_from, g_to, _rows(gt.box, gt_rows),
            np.ascontiguousarray(np.asarray(gt.area, dtype=np.float64)[gt_rows]), _points(d_kp), d_from, d_to,
            var_from, var_to, variances, out,
        )  # fmt: skip
    elif kind == "cuboid":
        if gt.cuboids is None or dt.cuboids is None:
            raise ValueError("comparing cuboids needs the objects' cuboids")
        g_box = np.ascontiguousarray(np.asarray(gt.cuboids, dtype=np.float64)[gt_rows])
        d_box = np.ascontiguousarray(np.asarray(dt.cuboids, dtype=np.float64)[dt_rows])
        cuboid_pairs(*groups, pair_start, g_box, d_box, CUBOID_KINDS["bev_iou"], out)
    else:
        raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    return out, pair_start


def crowd_of(objects: Objects) -> np.ndarray:
    n = len(objects.category)
    return np.zeros(n, dtype=np.bool_) if objects.crowd is None else np.asarray(objects.crowd, dtype=np.bool_)


def labeled_points(objects: Objects, rows: np.ndarray) -> np.ndarray:
    """How many keypoints of each of ``rows`` are labeled (visibility above 0)."""
    kp, start, end = parts(objects.keypoints, objects.keypoint_offsets, rows, "keypoints")
    seen = np.concatenate([[0], np.cumsum(_points(kp)[:, 2] > 0)])
    return seen[end] - seen[start]


def parts(
    values: np.ndarray | None, offsets: np.ndarray | None, rows: np.ndarray, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flat ``values`` with the start and end of each of ``rows``' parts."""
    if values is None or offsets is None:
        raise ValueError(f"comparing {what} needs the objects' {what}")
    offsets = np.asarray(offsets, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    return values, np.ascontiguousarray(offsets[rows]), np.ascontiguousarray(offsets[rows + 1])


def _rows(box: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(box, dtype=np.float64).reshape(-1, 4)[rows])


def _points(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(-1, 3))


def variances_of(sigmas: Mapping[int, np.ndarray], classes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCO's (2 sigma)^2 per keypoint of each class, flat, with each label's start and end."""
    flat: list[float] = []
    where: dict[int, tuple[int, int]] = {}
    for cat in np.unique(classes).tolist():
        sig = np.asarray(sigmas.get(cat, ()), dtype=np.float64)
        where[cat] = (len(flat), len(flat) + len(sig))
        flat.extend(((sig * 2) ** 2).tolist())
    bounds = np.asarray([where[c] for c in classes.tolist()], dtype=np.int64).reshape(-1, 2)
    return np.ascontiguousarray(bounds[:, 0]), np.ascontiguousarray(bounds[:, 1]), np.asarray(flat, dtype=np.float64)


@numba.njit(cache=True, nogil=True)
def box_pairs(gt_start, gt_end, dt_start, dt_end, pair_start, g_box, g_crowd, d_box, out):  # type: ignore[no-untyped-def]
    """Box IoU of every pair of every group (a crowd region: the intersection over the
    prediction's area)."""
    for grp in range(gt_start.shape[0]):
        g0, ng, d0, nd = gt_start[grp], gt_end[grp] - gt_start[grp], dt_start[grp], dt_end[grp] - dt_start[grp]
        for i in range(nd):
            for j in range(ng):
                out[pair_start[grp] + i * ng + j] = box_iou(d_box[d0 + i], g_box[g0 + j], g_crowd[g0 + j])


@numba.njit(cache=True, nogil=True)
def mask_pairs(  # type: ignore[no-untyped-def]
    gt_start, gt_end, dt_start, dt_end, pair_start, g_runs, g_from, g_to, g_crowd, d_runs, d_from, d_to, out
):
    """Mask IoU of every pair of every group, on the run lengths (a crowd region: the
    intersection over the prediction's area)."""
    for grp in range(gt_start.shape[0]):
        g0, ng, d0, nd = gt_start[grp], gt_end[grp] - gt_start[grp], dt_start[grp], dt_end[grp] - dt_start[grp]
        for i in range(nd):
            d = d_runs[d_from[d0 + i] : d_to[d0 + i]]
            for j in range(ng):
                g = g_runs[g_from[g0 + j] : g_to[g0 + j]]
                out[pair_start[grp] + i * ng + j] = rle_iou(d, g, g_crowd[g0 + j])


@numba.njit(cache=True, nogil=True)
def keypoint_pairs(  # type: ignore[no-untyped-def]
    gt_start,
    gt_end,
    dt_start,
    dt_end,
    pair_start,
    g_kp,
    g_from,
    g_to,
    g_box,
    g_area,
    d_kp,
    d_from,
    d_to,
    var_from,
    var_to,
    variances,
    out,
):
    """COCO's object keypoint similarity of every pair of every group: over the label's labeled
    points (visibility above 0), the mean of exp(-d^2 / (2 s^2 (2 sigma)^2)), s^2 the label's
    area; a label without a labeled point measures each predicted point's distance outside its
    box grown by its size on every side, over every point. A prediction with another number of
    points than the label's class has is not like it at all (0)."""
    eps = np.spacing(1.0)
    for grp in range(gt_start.shape[0]):
        g0, ng, d0, nd = gt_start[grp], gt_end[grp] - gt_start[grp], dt_start[grp], dt_end[grp] - dt_start[grp]
        for j in range(ng):
            gj = g0 + j
            g = g_kp[g_from[gj] : g_to[gj]]
            var = variances[var_from[gj] : var_to[gj]]
            k = g.shape[0]
            labeled = 0
            for q in range(k):
                if g[q, 2] > 0:
                    labeled += 1
            bx, by, bw, bh = g_box[gj, 0], g_box[gj, 1], g_box[gj, 2], g_box[gj, 3]
            x0, x1, y0, y1 = bx - bw, bx + bw * 2, by - bh, by + bh * 2
            scale = g_area[gj] + eps
            for i in range(nd):
                d = d_kp[d_from[d0 + i] : d_to[d0 + i]]
                if d.shape[0] != k or var.shape[0] != k or k == 0:
                    continue
                total = 0.0
                n = 0
                for q in range(k):
                    if labeled > 0:
                        if g[q, 2] <= 0:
                            continue
                        dx, dy = d[q, 0] - g[q, 0], d[q, 1] - g[q, 1]
                    else:
                        dx = max(0.0, x0 - d[q, 0]) + max(0.0, d[q, 0] - x1)
                        dy = max(0.0, y0 - d[q, 1]) + max(0.0, d[q, 1] - y1)
                    total += np.exp(-((dx * dx + dy * dy) / var[q] / scale / 2))
                    n += 1
                out[pair_start[grp] + i * ng + j] = total / n


@dataclass
class ObjectArrays:
    """:class:`Objects` read from the stores' columns (see :func:`from_columns`)."""

    category: np.ndarray
    box: np.ndarray
    crowd: np.ndarray | None = None
    area: np.ndarray | None = None
    masks: np.ndarray | None = None
    mask_offsets: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    keypoint_offsets: np.ndarray | None = None
    cuboids: np.ndarray | None = None


#: how the objects of each task type are compared
KIND_OF_TASK = {
    "OBJECT_DETECTION_2D": "bbox",
    "INSTANCE_SEGMENTATION": "segm",
    "KEYPOINTS": "keypoints",
    "CUBOIDS_3D": "cuboid",
}


#: the columns of objects each kind compares besides the box
_COLUMNS = {
    "bbox": (),
    "segm": ("mask", "mask_area"),
    "keypoints": ("mask_area", "kp_x", "kp_y", "kp_v"),
    "cuboid": ("cuboid",),
}


@dataclass(frozen=True)
class Shapes:
    """What a project's objects are compared by: the kind, and each class's keypoint sigmas."""

    kind: str = "bbox"
    sigmas: Mapping[int, np.ndarray] = field(default_factory=dict)
    #: keypoint classes: their left/right pairs of keypoints (positions), by their names
    mirrored: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of ``label_objects`` / ``predicted_objects`` this kind compares besides the box."""
        return _COLUMNS[self.kind]


BOXES = Shapes()


def shapes_of(project: Project) -> Shapes:
    """How ``project``'s objects are compared."""
    kind = KIND_OF_TASK.get(project.task_type, "bbox")
    if kind != "keypoints":
        return Shapes(kind)
    return Shapes(
        kind,
        {c.id: np.asarray(c.sigmas, dtype=np.float64) for c in project.classes},
        {c.id: mirror_pairs(c.keypoints) for c in project.classes},
    )


#: how the two sides of a keypoint's name are written: a prefix or a suffix, left then right
_SIDES = (
    re.compile(r"^(left)([ _.-]?)(.*)$"),
    re.compile(r"^(l)([ _.-])(.*)$"),
    re.compile(r"^(.*?)([ _.-]?)(left)$"),
    re.compile(r"^(.*?)([ _.-])(l)$"),
)
_OTHER = {"left": "right", "l": "r"}


def mirror_pairs(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """The (left, right) positions of keypoints named as two sides of one thing: ``left_eye`` and
    ``right_eye``, ``eye_l`` and ``eye_r``, ``LeftHand`` and ``RightHand`` (case is ignored)."""
    where = {n.lower(): i for i, n in enumerate(names)}
    out = []
    for i, name in enumerate(names):
        low = name.lower()
        for k, side in enumerate(_SIDES):
            m = side.match(low)
            if m is None:
                continue
            if k < 2:
                other = _OTHER[m.group(1)] + m.group(2) + m.group(3)
            else:
                other = m.group(1) + m.group(2) + _OTHER[m.group(3)]
            j = where.get(other)
            if j is not None and j != i:
                out.append((i, j))
                break
    return tuple(out)


def from_columns(cols: Mapping[str, np.ndarray], kind: str, *, predicted: bool) -> ObjectArrays:
    """The objects of a query's columns (``class_id``, ``x``, ``y``, ``w``, ``h``, ``crowd`` for
    labels, and :attr:`Shapes.columns`), with the area COCO judges them by: a box's width times
    height; a mask's pixels (instance segmentation, and a keypoint label that has a mask); for
    predicted keypoints the box around the points (as COCO's ``loadRes`` takes it); and a cuboid's
    footprint (width times length, in square metres)."""
    n = len(cols["class_id"])
    box = (
        np.stack([np.asarray(cols[c], dtype=np.float64) for c in ("x", "y", "w", "h")], axis=1)
        if n
        else np.zeros((0, 4))
    )
    out = ObjectArrays(np.asarray(cols["class_id"], dtype=np.int64), np.ascontiguousarray(box))
    if "crowd" in cols:
        out.crowd = np.asarray(cols["crowd"], dtype=np.bool_)
    area = box[:, 2] * box[:, 3]
    if kind == "segm":
        runs = [masks.from_string(s) for s in cols["mask"]]
        out.masks, out.mask_offsets = masks.pack(runs)
        area = np.asarray(cols["mask_area"], dtype=np.float64)
    elif kind == "keypoints":
        counts = np.fromiter((len(v) for v in cols["kp_x"]), dtype=np.int64, count=n)
        out.keypoint_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        flat = [np.concatenate([np.asarray(v, dtype=np.float64) for v in cols[c]]) if n else np.zeros(0)
                for c in ("kp_x", "kp_y", "kp_v")]  # fmt: skip
        out.keypoints = np.ascontiguousarray(np.stack(flat, axis=1)) if n else np.zeros((0, 3))
        if predicted:
            area = _extent_areas(out.keypoints, out.keypoint_offsets)
        else:
            mask_area = np.asarray(cols["mask_area"], dtype=np.float64)
            area = np.where(mask_area > 0, mask_area, area)
    elif kind == "cuboid":
        rows = [np.asarray(c, dtype=np.float64) for c in cols["cuboid"]]
        out.cuboids = np.ascontiguousarray(np.stack(rows)) if n else np.zeros((0, 7))
        area = out.cuboids[:, 3] * out.cuboids[:, 4]
    out.area = area
    return out


def _extent_areas(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The area of the box around each object's points (0 without points)."""
    n = len(offsets) - 1
    out = np.zeros(n)
    has = offsets[1:] > offsets[:-1]
    if len(points) and has.any():
        starts = offsets[:-1][has]
        x, y = points[:, 0], points[:, 1]
        width = np.maximum.reduceat(x, starts) - np.minimum.reduceat(x, starts)
        height = np.maximum.reduceat(y, starts) - np.minimum.reduceat(y, starts)
        out[has] = width * height
    return out
