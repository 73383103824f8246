"""Semantic segmentation maps of labels and predictions, checked against their frame and the
project's classes and completed to the form the stores keep: class runs
(:mod:`shoal.common.classmaps`), whichever of the three forms they came in. A map given as a PNG at
a URI is read here, through the same allowed sources as the console's media
(:func:`shoal.common.media.reader`); a read that fails rejects the item with the reason, as any
other bad item is.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from shoal.common import classmaps, masks
from shoal.common.data.projects import ClassDef
from shoal.common.errors import InvalidArgument
from shoal.common.limits import MAX_TEXT
from shoal.common.media import MediaMissing, MediaReader, MediaRefused
from shoal.ingest.v1 import ingest_pb2 as pb

#: the pixels one map may have (a 16,384 x 16,384 image)
MAX_PIXELS = 16_384 * 16_384

_FORMS = ("runs", "regions", "uri")


def check_map(
    item: pb.FrameLabels | pb.FrameInference,
    size: tuple[int, int],
    classes: Mapping[int, ClassDef],
    media: MediaReader | None,
    where: str,
) -> None:
    """Checks the segmentation map of ``item`` (a segmentation project's label or prediction) in a
    frame of ``size`` (width, height) and rewrites it as its class runs."""
    predicted = isinstance(item, pb.FrameInference)
    field = f"{where}.segmentation"
    if not item.HasField("segmentation"):
        what = "prediction" if predicted else "label"
        raise InvalidArgument(f"a segmentation {what} needs its class map", field=field)
    width, height = size
    if width <= 0 or height <= 0:
        raise InvalidArgument(
            "a segmentation frame needs its width and height (Frame.width, Frame.height)", field=field
        )
    if width * height > MAX_PIXELS:
        raise InvalidArgument(f"a {width}x{height} map has more than the {MAX_PIXELS:,} pixels allowed", field=field)
    seg = item.segmentation
    given = [f for f in _FORMS if (seg.HasField(f) if f == "runs" else bool(getattr(seg, f)))]
    if len(given) != 1:
        raise InvalidArgument(
            "give the map in exactly one form (runs, regions or uri), not "
            + (" and ".join(given) if given else "none"),
            field=field,
        )
    form = given[0]
    if form == "runs":
        values, runs = _runs(seg.runs, width * height, f"{field}.runs")
    elif form == "regions":
        values, runs = classmaps.encode(_regions(seg.regions, classes, height, width, f"{field}.regions"))
    else:
        values, runs = classmaps.encode(_png(seg.uri, classes, height, width, media, f"{field}.uri"))
    _check_classes(values, runs, classes, predicted, f"{field}.{form}")
    if predicted and item.probabilities_uri and len(item.probabilities_uri) > MAX_TEXT:
        raise InvalidArgument(f"is longer than {MAX_TEXT} characters", field=f"{where}.probabilities_uri")
    item.segmentation.Clear()
    item.segmentation.runs.classes.extend(values.tolist())
    item.segmentation.runs.lengths.extend(runs.tolist())


def _runs(given: pb.ClassRuns, pixels: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The canonical runs of ``given`` (neighbouring runs of one class joined)."""
    if len(given.classes) != len(given.lengths):
        raise InvalidArgument(
            f"has {len(given.classes)} classes for {len(given.lengths)} lengths: give one class per run",
            field=f"{where}.classes",
        )
    lengths = np.asarray(given.lengths, dtype=np.int64)
    values = np.asarray(given.classes, dtype=np.int64)
    empty = np.flatnonzero(lengths == 0)
    if len(empty):
        raise InvalidArgument("a run is at least 1 pixel long", field=f"{where}.lengths[{int(empty[0])}]")
    total = int(lengths.sum())
    if total != pixels:
        raise InvalidArgument(f"the runs cover {total:,} pixels, not the frame's {pixels:,}", field=f"{where}.lengths")
    big = np.flatnonzero(values > classmaps.UNLABELED)
    if len(big):
        raise InvalidArgument(f"unknown class id {int(values[big[0]])}", field=f"{where}.classes[{int(big[0])}]")
    if not len(values):
        return values.astype(np.uint16), lengths.astype(np.uint32)
    start = np.concatenate(([True], values[1:] != values[:-1]))
    summed = np.add.reduceat(lengths, np.flatnonzero(start))
    return values[start].astype(np.uint16), summed.astype(np.uint32)


def _regions(
    regions: list[pb.ClassRegion], classes: Mapping[int, ClassDef], height: int, width: int, where: str
) -> np.ndarray:
    decoded = []
    seen: set[int] = set()
    for j, region in enumerate(regions):
        rw = f"{where}[{j}]"
        if region.class_id not in classes:
            raise InvalidArgument(f"unknown class id {region.class_id}", field=f"{rw}.class_id")
        if region.class_id in seen:
            raise InvalidArgument(
                f"class id {region.class_id} has two regions: give one mask per class", field=f"{rw}.class_id"
            )
        seen.add(region.class_id)
        mask = region.mask
        if bool(mask.counts) == bool(mask.runs):
            raise InvalidArgument("give the mask as counts or as runs, exactly one", field=f"{rw}.mask")
        try:
            counts = masks.from_string(mask.counts) if mask.counts else np.asarray(mask.runs, dtype=np.uint32)
        except ValueError as err:
            raise InvalidArgument(f"is not a COCO mask string ({err})", field=f"{rw}.mask.counts") from None
        total = int(np.sum(counts, dtype=np.int64))
        if total != height * width:
            raise InvalidArgument(
                f"the mask covers {total:,} pixels, not the frame's {height * width:,} ({width}x{height})",
                field=f"{rw}.mask",
            )
        decoded.append((region.class_id, counts))
    try:
        return classmaps.from_regions(decoded, height, width)
    except classmaps.MapError as err:
        raise InvalidArgument(str(err), field=where) from None


def _png(
    uri: str, classes: Mapping[int, ClassDef], height: int, width: int, media: MediaReader | None, where: str
) -> np.ndarray:
    if len(uri) > MAX_TEXT:
        raise InvalidArgument(f"is longer than {MAX_TEXT} characters", field=where)
    if media is None:
        raise InvalidArgument("class maps at a URI cannot be read here: give runs or regions", field=where)
    try:
        data = media.read(uri)
    except (MediaRefused, MediaMissing) as err:
        raise InvalidArgument(f"cannot read {uri!r}: {err}", field=where) from None
    colors = {classmaps.parse_color(c.color): c.id for c in classes.values() if c.color}
    try:
        a = classmaps.from_png(data, colors)
    except classmaps.MapError as err:
        raise InvalidArgument(
            f"{uri!r} {err}" if str(err).startswith("is ") else f"{uri!r}: {err}", field=where
        ) from None
    if a.shape != (height, width):
        raise InvalidArgument(f"{uri!r} is {a.shape[1]}x{a.shape[0]}, not the frame's {width}x{height}", field=where)
    return a


def _check_classes(
    values: np.ndarray, runs: np.ndarray, classes: Mapping[int, ClassDef], predicted: bool, where: str
) -> None:
    known = np.fromiter(classes, dtype=np.int64, count=len(classes))
    if not predicted:
        known = np.append(known, classmaps.UNLABELED)
    bad = np.flatnonzero(~np.isin(values, known))
    if not len(bad):
        return
    value = int(values[bad[0]])
    if value == classmaps.UNLABELED:
        pixels = int(runs[values == value].sum())
        raise InvalidArgument(f"a prediction gives every pixel a class; {pixels:,} pixels have none", field=where)
    raise InvalidArgument(f"unknown class id {value} ({int(runs[values == value].sum()):,} pixels)", field=where)
