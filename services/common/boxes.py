"""Box geometry shared by the services: the IoU of two xywh boxes (COCO's, with crowd regions),
compiled with numba so that the matching loops that call it run as machine code."""

from __future__ import annotations

import numba
import numpy as np


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
