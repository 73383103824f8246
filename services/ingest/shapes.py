"""The shapes of objects beyond their box: instance masks (COCO run lengths or polygons) and
keypoints, checked against their frame and class, and completed with what the stores keep.

An object comes out of :func:`check_shape` in one form whatever way it came in: its mask as COCO's
compact string (drawn from its polygons when it came as polygons, which are kept too, and re-encoded
when it came as bare run lengths), and a box (the mask's bounding box, or the box around its
keypoints, when none was given). The analyses then read one column per shape.
"""

from __future__ import annotations

import math

import numpy as np

from shoal.common import masks
from shoal.common.boxes import check_box
from shoal.common.data.projects import ClassDef
from shoal.common.errors import InvalidArgument
from shoal.ingest.v1 import ingest_pb2 as pb

#: the polygons one object may have
MAX_POLYGONS = 1_000
#: the coordinates (two per point) one polygon may have
MAX_POLYGON_VALUES = 200_000
#: the run lengths one mask may have (a checkerboard over a 1,414 x 1,414 frame has about that many)
MAX_RUNS = 2_000_000
#: the projects whose objects have masks, and keypoints
MASK_TASKS = ("INSTANCE_SEGMENTATION", "KEYPOINTS")
KEYPOINT_TASKS = ("KEYPOINTS",)
#: the projects whose objects check_shape completes (it writes their compact mask and box)
SHAPED_TASKS = MASK_TASKS

Shaped = pb.LabelObject | pb.PredictedObject


def check_shape(
    obj: Shaped, task: str, size: tuple[int, int], cls: ClassDef | None, where: str, *, predicted: bool
) -> None:
    """Checks ``obj``'s box, mask, polygons and keypoints for a ``task`` project in a frame of
    ``size`` (width, height; 0 when unknown) and fills in its compact mask and its box."""
    has_mask = obj.HasField("mask")
    if task not in MASK_TASKS and (has_mask or obj.polygons):
        what = "mask" if has_mask else "polygons"
        raise InvalidArgument(
            f"a {task} project's objects have no {what}: masks belong to INSTANCE_SEGMENTATION projects",
            field=f"{where}.{what}",
        )
    if task not in KEYPOINT_TASKS and obj.keypoints:
        raise InvalidArgument(
            f"a {task} project's objects have no keypoints: keypoints belong to KEYPOINTS projects",
            field=f"{where}.keypoints",
        )
    runs = None
    if has_mask or obj.polygons:
        runs = _mask(obj, size, where)
    elif task == "INSTANCE_SEGMENTATION":
        raise InvalidArgument("an instance segmentation object needs a mask or polygons", field=f"{where}.mask")
    points = _keypoints(obj, size, cls, where, predicted=predicted) if task in KEYPOINT_TASKS else None
    if obj.HasField("box"):
        check_box(obj.box, size, f"{where}.box", predicted=predicted)
        return
    if task == "OBJECT_DETECTION_2D":
        raise InvalidArgument("a detection object needs a box", field=f"{where}.box")
    if runs is not None:
        x, y, w, h = masks.bbox(runs, size[1], size[0])
        obj.box.CopyFrom(pb.Box(x=x, y=y, width=w, height=h))
        return
    assert points is not None
    shown = points[points[:, 2] > 0] if not predicted else points
    if not len(shown):
        raise InvalidArgument(
            "a labeled object without a labeled keypoint needs a box (COCO measures predictions against it)",
            field=f"{where}.box",
        )
    x0, y0 = shown[:, 0].min(), shown[:, 1].min()
    obj.box.CopyFrom(pb.Box(x=x0, y=y0, width=shown[:, 0].max() - x0, height=shown[:, 1].max() - y0))


def _mask(obj: Shaped, size: tuple[int, int], where: str) -> np.ndarray:
    """The object's run lengths, from its mask or its polygons; sets ``obj.mask`` to the compact
    string and clears bare run lengths."""
    width, height = size
    if obj.HasField("mask") and obj.polygons:
        raise InvalidArgument("give the object's mask or its polygons, not both", field=f"{where}.polygons")
    if width <= 0 or height <= 0:
        field = f"{where}.mask" if obj.HasField("mask") else f"{where}.polygons"
        raise InvalidArgument(
            "a mask is drawn over its frame: upload the frame with its width and height first", field=field
        )
    if obj.polygons:
        if len(obj.polygons) > MAX_POLYGONS:
            raise InvalidArgument(
                f"{len(obj.polygons)} polygons is more than the {MAX_POLYGONS} an object may have",
                field=f"{where}.polygons",
            )
        shapes = []
        for p, polygon in enumerate(obj.polygons):
            pw = f"{where}.polygons[{p}].points"
            if len(polygon.points) > MAX_POLYGON_VALUES:
                raise InvalidArgument(
                    f"{len(polygon.points)} coordinates is more than the {MAX_POLYGON_VALUES} a polygon may have",
                    field=pw,
                )
            points = np.asarray(polygon.points, dtype=np.float64)
            problem = masks.check_polygon(points, height, width)
            if problem is not None:
                raise InvalidArgument(problem, field=pw)
            shapes.append(points)
        runs = masks.from_polygons(shapes, height, width)
        obj.mask.counts = masks.to_string(runs)
        return runs
    mask = obj.mask
    if mask.counts and mask.runs:
        raise InvalidArgument("give the mask's counts or its runs, not both", field=f"{where}.mask.runs")
    if mask.runs:
        if len(mask.runs) > MAX_RUNS:
            raise InvalidArgument(
                f"{len(mask.runs)} runs is more than the {MAX_RUNS} a mask may have", field=f"{where}.mask.runs"
            )
        runs = np.asarray(mask.runs, dtype=np.uint32)
        problem = masks.check(runs, height, width)
        if problem is not None:
            raise InvalidArgument(problem, field=f"{where}.mask.runs")
        mask.ClearField("runs")
        mask.counts = masks.to_string(runs)
        return runs
    if not mask.counts:
        raise InvalidArgument(
            "the mask is empty: give its counts (COCO's compact string) or its runs", field=f"{where}.mask"
        )
    try:
        runs = masks.from_string(mask.counts)
    except (ValueError, IndexError, OverflowError) as exc:
        raise InvalidArgument(f"is not COCO's compact run-length string: {exc}", field=f"{where}.mask.counts") from None
    problem = masks.check(runs, height, width)
    if problem is not None:
        raise InvalidArgument(problem, field=f"{where}.mask.counts")
    return runs


def _keypoints(obj: Shaped, size: tuple[int, int], cls: ClassDef | None, where: str, *, predicted: bool) -> np.ndarray:
    """The object's keypoints as rows of x, y, visibility, one per keypoint of its class."""
    names = cls.keypoints if cls is not None else ()
    if len(obj.keypoints) != len(names):
        what = f"class {cls.id} ({cls.name!r})" if cls is not None else "its class"
        raise InvalidArgument(
            f"{what} has {len(names)} keypoints ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}),"
            f" the object gives {len(obj.keypoints)}: give one per keypoint, in the class's order",
            field=f"{where}.keypoints",
        )
    width, height = size
    out = np.zeros((len(names), 3))
    for q, kp in enumerate(obj.keypoints):
        kw = f"{where}.keypoints[{q}]"
        if predicted:
            if not (math.isfinite(kp.score) and 0.0 <= kp.score <= 1.0):
                raise InvalidArgument(f"score {kp.score} must lie in [0, 1]", field=f"{kw}.score")
        elif kp.visibility not in (0, 1, 2):
            raise InvalidArgument(
                f"visibility {kp.visibility} must be 0 (not labeled), 1 (labeled, hidden) or 2 (visible)",
                field=f"{kw}.visibility",
            )
        labeled = predicted or kp.visibility > 0
        if labeled:
            if not (math.isfinite(kp.x) and math.isfinite(kp.y)):
                raise InvalidArgument(f"point ({kp.x}, {kp.y}) must be finite", field=kw)
            if width > 0 and height > 0:
                # as for boxes: a label lies in its image (half a pixel of slack), a prediction
                # may lie outside it by at most the image's size
                lo_x, lo_y = (-width, -height) if predicted else (-0.5, -0.5)
                hi_x, hi_y = (2 * width, 2 * height) if predicted else (width + 0.5, height + 0.5)
                if not (lo_x <= kp.x <= hi_x and lo_y <= kp.y <= hi_y):
                    raise InvalidArgument(
                        f"point ({kp.x}, {kp.y}) ({names[q]!r}) lies outside the {width}x{height} image"
                        + (" by more than its size" if predicted else ""),
                        field=kw,
                    )
        out[q] = (kp.x, kp.y, kp.visibility if not predicted else 1)
    return out


def mask_area(obj: Shaped) -> int:
    """Pixels of the object's (checked) mask; 0 without one."""
    return masks.area(masks.from_string(obj.mask.counts)) if obj.mask.counts else 0
