"""Box geometry shared by the services: whether a box fits its image, and the IoU of two xywh
boxes (COCO's, with crowd regions), compiled with numba so that the matching loops that call it run
as machine code."""

from __future__ import annotations

import math
from typing import Protocol

import numba
import numpy as np

from shoal.common.errors import InvalidArgument


class XYWH(Protocol):
    """A box in pixels: the top-left corner, the width and the height (``Box`` of the APIs)."""

    x: float
    y: float
    width: float
    height: float


def check_box(box: XYWH, size: tuple[int, int] | None, where: str, *, predicted: bool = False) -> None:
    """A labeled box lies in its image (half a pixel of slack). A predicted box may overhang it,
    as detectors' boxes do, and is kept as given (COCO's evaluation takes it so); it only has to
    lie within the image grown by the image's width and height on every side, which catches boxes
    in the wrong units or of another image."""
    values = (box.x, box.y, box.width, box.height)
    if not all(math.isfinite(v) for v in values):
        raise InvalidArgument(f"box {values} must be finite", field=where)
    if box.width <= 0 or box.height <= 0:
        raise InvalidArgument(f"box size {box.width}x{box.height} must be positive", field=where)
    if predicted:
        if size is not None and size[0] > 0 and size[1] > 0:
            w, h = size
            if box.x < -w or box.y < -h or box.x + box.width > 2 * w or box.y + box.height > 2 * h:
                raise InvalidArgument(
                    f"box ({box.x}, {box.y}, {box.width}, {box.height}) lies far outside the {w}x{h} image (a"
                    f" predicted box may overhang it by at most the image's size: x from {-w} to {2 * w}, y from"
                    f" {-h} to {2 * h}); check the box's units and frame",
                    field=where,
                )
        return
    if box.x < 0 or box.y < 0:
        raise InvalidArgument(f"box corner ({box.x}, {box.y}) is outside the image", field=where)
    if size is not None and size[0] > 0 and size[1] > 0:
        w, h = size
        # half a pixel of slack for rounding in exporters
        if box.x + box.width > w + 0.5 or box.y + box.height > h + 0.5:
            raise InvalidArgument(
                f"box ({box.x}, {box.y}, {box.width}, {box.height}) extends outside the {w}x{h} image", field=where
            )


@numba.njit(cache=True, nogil=True)
def box_iou(d: np.ndarray, g: np.ndarray, crowd: bool) -> float:
    """IoU of two xywh boxes; against a crowd region the union is the detection's own area."""
    iw = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
    ih = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    da = d[2] * d[3]
    union = da if crowd else da + g[2] * g[3] - inter
    return inter / union if union > 0 else 0.0


@numba.njit(cache=True)
def iou_matrix(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """:func:`box_iou` of every detection with every ground truth box."""
    out = np.zeros((dt.shape[0], gt.shape[0]))
    for i in range(dt.shape[0]):
        for j in range(gt.shape[0]):
            out[i, j] = box_iou(dt[i], gt[j], crowd[j])
    return out
