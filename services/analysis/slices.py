"""Slices: accuracy per value of a field, and the slices that fall furthest below the overall
accuracy. A slice is ranked only with enough support and when its Wilson score interval lies
wholly below the overall accuracy, so small slices that are bad by chance do not crowd the list."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from shoal.analysis import multilabel, segmentation, sound_event_analysis
from shoal.analysis.datapoints import GRID_SORTS, metadata_kinds
from shoal.common.data.query import METADATA_MAPS, SETTINGS, Params, View, compile_filter, metadata_key, view_sql
from shoal.common.errors import InvalidArgument
from shoal.common.stores.metrics import MetricsStore
from shoal.common.v1 import common_pb2

NONE = "(none)"
BUCKETS = {"hour": "toStartOfHour", "day": "toStartOfDay", "week": "toMonday", "month": "toStartOfMonth"}
DEFAULT_MIN_SUPPORT = 30
DEFAULT_LEVEL = 0.95


@dataclass
class SliceStats:
    value: str
    frames: int
    correct: int
    accuracy: float
    lower: float
    upper: float
    drop: float
    #: detection: the outcomes counted (matches, false positives, missed boxes)
    objects: int = 0
    #: segmentation: the labeled pixels (``accuracy`` is pixel accuracy) and the mean IoU
    pixels: int = 0
    mean_iou: float = -1.0


def wilson(correct: int, n: int, level: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _group_expression(
    metrics: MetricsStore, view: View, group_by: str, bucket: str, params: Params, kinds: dict[str, str] | None = None
) -> str:
    """The SQL of each frame's slice value (``kinds`` gets a metadata key's type)."""
    if group_by == "split":
        return "split"
    if group_by == "capture_time":
        fn = BUCKETS.get(bucket or "day")
        if fn is None:
            raise InvalidArgument(f"one of {', '.join(BUCKETS)}", field="time_bucket")
        return f"if(capture_time IS NULL, '{NONE}', toString({fn}(capture_time)))"
    if group_by.startswith("metadata."):
        key = metadata_key(group_by, "group_by")
        kind = metadata_kinds(metrics, view, [key]).get(key)
        if kind is None:
            raise InvalidArgument(f"no frame of the dataset has metadata key {key!r}", field="group_by")
        if kinds is not None:
            kinds[key] = kind
        column = METADATA_MAPS[kind]
        k = params.add(key, "String")
        value = f"toBool({column}[{k}])" if kind == "bool" else f"{column}[{k}]"  # a flag: true or false, not 1 or 0
        return f"if(mapContains({column}, {k}), toString({value}), '{NONE}')"
    raise InvalidArgument(f"group by split, capture_time or metadata.<key>, not {group_by!r}", field="group_by")


def _rank(
    rows: list[tuple[str, int, int, int]], min_support: int, level: float, *, objects: bool
) -> tuple[float, int, list[SliceStats], list[SliceStats]]:
    """Slices from (value, frames, trials, successes), and the worst: enough trials and an
    interval wholly below the overall proportion, largest drop first. ``objects``: the trials are
    detection outcomes."""
    total = sum(r[2] for r in rows)
    right = sum(r[3] for r in rows)
    overall = right / total if total else 0.0
    out = []
    for value, frames, n, correct in rows:
        lo, hi = wilson(correct, n, level)
        acc = correct / n if n else 0.0
        out.append(SliceStats(value, frames, correct, acc, lo, hi, overall - acc, objects=n if objects else 0))
    worst = [x for x in out if (x.objects if objects else x.frames) >= min_support and x.upper < overall]
    worst.sort(key=lambda x: -x.drop)
    return overall, total, out, worst


def _rank_pixels(rows: list[Any], min_support: int) -> tuple[float, int, list[SliceStats], list[SliceStats]]:
    """Segmentation slices (:class:`shoal.analysis.segmentation.SliceRow`), and the worst: enough
    frames and a pixel-accuracy interval wholly below the overall pixel accuracy, largest drop first."""
    total = sum(r.pixels for r in rows)
    overall = sum(r.right for r in rows) / total if total else 0.0
    out = []
    for r in rows:
        acc = r.right / r.pixels if r.pixels else 0.0
        out.append(SliceStats(r.value, r.frames, r.right, acc, r.lower, r.upper, overall - acc, pixels=r.pixels,
                              mean_iou=r.mean_iou))  # fmt: skip
    worst = sorted((x for x in out if x.frames >= min_support and x.upper < overall), key=lambda x: -x.drop)
    return overall, sum(r.frames for r in rows), out, worst


def _rank_events(rows: list[Any], min_support: int) -> tuple[float, int, list[SliceStats], list[SliceStats]]:
    """Sound-event slices (:class:`shoal.analysis.sound_event_analysis.SliceRow`): each one's event-based F1
    as its accuracy, its matched events as ``correct`` and its labeled plus predicted events as ``objects``;
    the worst: enough clips and an interval wholly below the overall F1, largest drop first."""
    events = sum(r.events for r in rows)
    overall = 2 * sum(r.matched for r in rows) / events if events else 0.0
    out = [SliceStats(r.value, r.clips, r.matched, r.f1, r.lower, r.upper, overall - r.f1, objects=r.events)
           for r in rows]  # fmt: skip
    worst = sorted((x for x in out if x.frames >= min_support and x.upper < overall), key=lambda x: -x.drop)
    return overall, sum(r.clips for r in rows), out, worst


def slices(
    metrics: MetricsStore,
    view: View,
    flt: common_pb2.Filter,
    *,
    group_by: str,
    time_bucket: str = "",
    min_support: int = DEFAULT_MIN_SUPPORT,
    level: float = DEFAULT_LEVEL,
    detection_iou: float | None = None,
    segmentation_classes: list[int] | None = None,
    multilabel_classes: list[int] | None = None,
    sound_event_classes: list[int] | None = None,
    grid_counts: GridCounts | None = None,
    kept: Callable[[str], tuple[str, list[Any]] | None] | None = None,
    kept_times: Callable[[str], list[Any] | None] | None = None,
) -> tuple[float, int, list[SliceStats], list[SliceStats]]:
    """(overall accuracy, frames, every slice by value, the worst slices).

    With ``grid_counts`` (a classification set grouped by a metadata key), the same read also fills it with
    the frames of each value as the example grid counts them under each of its sorts (:class:`GridCounts`).
    ``kept(key)``, grouped by a metadata key: the key's type and the rows of that read kept for it beforehand
    (:func:`shoal.analysis.grid_values.slice_rows`), read instead of the set; None to read the set.
    ``kept_times(bucket)``, grouped by capture time: the rows of that read by the time bucket's function
    (:data:`BUCKETS`), counted beforehand (:func:`shoal.analysis.grid_values.time_slice_rows`), or None.

    With ``detection_iou``: per slice of frames, the matches of the right class over every outcome
    of the detection confusion matrix at that IoU (matches, false positives, missed boxes); the
    second value and the support then count outcomes."""
    if not 0 < level < 1:
        raise InvalidArgument(f"must lie in (0, 1), got {level}", field="confidence_level")
    params = Params()
    source = view_sql(view, params)
    kinds: dict[str, str] = {}
    kept_rows = None  # the read below, kept for a metadata key beforehand
    if kept is not None and group_by.startswith("metadata."):
        key = metadata_key(group_by, "group_by")
        hit = kept(key)
        if hit is not None:
            kinds[key], kept_rows = hit
    if kept_times is not None and group_by == "capture_time" and (time_bucket or "day") in BUCKETS:
        kept_rows = kept_times(BUCKETS[time_bucket or "day"])
    group = _group_expression(metrics, view, group_by, time_bucket, params, kinds) if kept_rows is None else ""
    where = compile_filter(flt, view, params)
    if detection_iou is not None:
        from shoal.analysis.detection import slice_counts

        rows = slice_counts(
            metrics, view.project, view.dataset, view.inference_set,
            iou_threshold=detection_iou, confidence_threshold=view.confidence_threshold,
            groups_sql=f"SELECT frame_id, {group} AS g FROM ({source}) WHERE {where}", groups_params=params.values,
        )  # fmt: skip
        return _rank(rows, min_support, level, objects=True)
    if segmentation_classes is not None:
        found = segmentation.slice_rows(
            metrics, view.project, view.inference_set, segmentation_classes,
            f"SELECT frame_id, {group} AS g FROM ({source}) WHERE {where}", params.values, level,
        )  # fmt: skip
        return _rank_pixels(found, min_support)
    if multilabel_classes is not None:
        counts = multilabel.slice_counts(
            metrics, view.project, view.dataset, view.inference_set, multilabel_classes,
            view.confidence_threshold or multilabel.DEFAULT_THRESHOLD,
            f"SELECT frame_id, {group} AS g FROM ({source}) WHERE {where}", params.values,
        )  # fmt: skip
        return _rank(counts, min_support, level, objects=False)
    if sound_event_classes is not None:
        reader = sound_event_analysis.ClipReader(
            metrics, view.project, view.dataset, [view.inference_set], sound_event_classes,
            confidence_threshold=view.confidence_threshold,
            groups_sql=f"SELECT frame_id, {group} AS g FROM ({source}) WHERE {where}", groups_params=params.values,
        )  # fmt: skip
        return _rank_events(sound_event_analysis.slice_rows(reader, level), min_support)
    if grid_counts is None and kept_rows is not None:
        counts = [(str(value), int(n), int(n), int(correct)) for value, n, correct, *_ in kept_rows if n]
        return _rank(counts, min_support, level, objects=False)
    if grid_counts is None or not kinds:
        rows = metrics.query(
            f"SELECT {group} AS g, count(), countIf(label_class = predicted_class) FROM ({source})"
            f" WHERE label_class IS NOT NULL AND pred_raw IS NOT NULL AND {where} GROUP BY g ORDER BY g{SETTINGS}",
            params.values,
        ).rows
        counts = [(str(value), int(n), int(n), int(correct)) for value, n, correct in rows]
        return _rank(counts, min_support, level, objects=False)
    # every frame of the slice as well, and those with each sort's field (the grid leaves out the frames without)
    evaluated = "label_class IS NOT NULL AND pred_raw IS NOT NULL"
    present = "".join(f", countIf({name} IS NOT NULL)" for name in GRID_SORTS[1:])
    rows = (
        kept_rows
        if kept_rows is not None
        else metrics.query(
            f"SELECT {group} AS g, countIf({evaluated}), countIf({evaluated} AND label_class = predicted_class),"
            f" count(){present} FROM ({source}) WHERE {where} GROUP BY g ORDER BY g{SETTINGS}",
            params.values,
        ).rows
    )
    grid_counts.kind = kinds[next(iter(kinds))]
    grid_counts.by_value = {str(r[0]): [int(n) for n in r[3:]] for r in rows if str(r[0]) != NONE}
    counts = [(str(value), int(n), int(n), int(correct)) for value, n, correct, *_ in rows if n]
    return _rank(counts, min_support, level, objects=False)


def at_threshold(
    by_split: list[SliceStats], below: Mapping[str, int], min_support: int, level: float
) -> tuple[float, int, list[SliceStats], list[SliceStats]]:
    """:func:`slices` of a classification set at a confidence threshold, from its slices at 0 (``by_split``, every
    slice) and how many of each slice's right predictions have a confidence below the threshold (they abstain, so
    are wrong at it); the frames of each slice do not change."""
    return _rank([(x.value, x.frames, x.frames, x.correct - below.get(x.value, 0)) for x in by_split], min_support,
                 level, objects=False)  # fmt: skip


@dataclass
class GridCounts:
    """The frames of each slice of a metadata key as the example grid counts them when filtered to its value:
    every frame with the value, then those with each of the grid's sorts' fields (``datapoints.GRID_SORTS``)."""

    kind: str = ""
    by_value: dict[str, list[int]] = field(default_factory=dict)
