"""Slices: accuracy by the values of a field, with confidence intervals and the worst slices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from shoal.analysis import grid_orders, grid_values
from shoal.analysis.datapoints import keep_value_counts
from shoal.analysis.rpc.context import Analysis, Context, check_frame_fields, check_iou, check_threshold
from shoal.analysis.slices import DEFAULT_LEVEL, DEFAULT_MIN_SUPPORT, GridCounts, SliceStats, at_threshold, slices
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data.projects import OBJECT_TASKS
from shoal.common.data.query import VIEW_TABLES, View, metadata_key
from shoal.common.errors import InvalidArgument
from shoal.common.v1 import common_pb2


def get_slices(ctx: Context, request: pb.GetSlicesRequest) -> pb.GetSlicesResponse:
    if not request.inference_set:
        raise InvalidArgument("is empty", field="inference_set")
    if request.min_support < 0:
        raise InvalidArgument(f"must be >= 0, got {request.min_support}", field="min_support")
    threshold = check_threshold(request.confidence_threshold, "confidence_threshold")
    project = ctx.projects.get(request.project)
    is_detection = project.task_type in OBJECT_TASKS
    maps = project.task_type == "SEGMENTATION"
    class_sets = project.task_type == "MULTI_LABEL"
    events = project.task_type == "SOUND_EVENTS"
    if is_detection or maps or class_sets or events:
        check_frame_fields(request.filter, "filter")
    else:
        project = ctx.classification_project(request.project)
    view = ctx.view(project, "", request.inference_set, threshold)
    min_support = request.min_support or DEFAULT_MIN_SUPPORT
    level = request.confidence_level or DEFAULT_LEVEL
    iou = check_iou(request.iou_threshold, "iou_threshold") if is_detection else None

    def compute(grid_counts: GridCounts | None = None, versions: tuple[Any, ...] | None = None,
                ) -> tuple[float, int, list[SliceStats], list[SliceStats]]:  # fmt: skip
        def kept(key: str) -> tuple[str, list[Any]] | None:  # a large set's frames counted by value, when written
            return grid_values.slice_rows(ctx.metrics, view, versions, request.filter, key)

        def kept_times(bucket: str) -> list[Any] | None:  # and by hour of capture
            return grid_values.time_slice_rows(ctx.metrics, view, versions, request.filter, bucket)

        return slices(ctx.metrics, view, request.filter, group_by=request.group_by, time_bucket=request.time_bucket,
                      min_support=min_support, level=level, detection_iou=iou,
                      segmentation_classes=[c.id for c in project.classes] if maps else None,
                      multilabel_classes=[c.id for c in project.classes] if class_sets else None,
                      sound_event_classes=[c.id for c in project.classes] if events else None,
                      grid_counts=grid_counts, kept=kept if versions is not None else None,
                      kept_times=kept_times if versions is not None else None)  # fmt: skip

    if is_detection or maps or class_sets or events:  # counted from tables the kept answers do not watch
        overall, total, every, worst = compute()
    else:  # a classification set's slices read its evaluations rows (and segments): kept while they are unchanged
        flt = request.filter.SerializeToString(deterministic=True)

        def key(at: View) -> tuple[Any, ...]:
            return "slices", repr(at), flt, request.group_by, request.time_bucket, min_support, level

        def compute_and_count() -> tuple[float, int, list[SliceStats], list[SliceStats]]:
            """By a metadata key, the same read counts each value's frames as the example grid a slice links to
            counts them, kept for its first call; by split or a metadata key at a threshold, from the slices at 0
            when it can."""
            versions = ctx.answers.versions(VIEW_TABLES)
            by_key = request.group_by.startswith("metadata.")
            if versions is not None and threshold and (request.group_by == "split" or by_key):
                at_zero = replace(view, confidence_threshold=0.0)

                def zero() -> tuple[float, int, list[SliceStats], list[SliceStats]]:
                    def kept(name: str) -> tuple[str, list[Any]] | None:
                        return grid_values.slice_rows(ctx.metrics, at_zero, versions, request.filter, name)

                    return ctx.answers.get(VIEW_TABLES, key(at_zero), lambda: slices(
                        ctx.metrics, at_zero, request.filter, group_by=request.group_by, min_support=min_support,
                        level=level, kept=kept if by_key else None))  # fmt: skip

                found = _by_split_at(ctx, at_zero, versions, request.filter, threshold, zero) if not by_key else \
                    _by_key_at(ctx, at_zero, versions, request.filter, threshold, request.group_by, zero)  # fmt: skip
                if found is not None:
                    return at_threshold(found[0], found[1], min_support, level)
            if versions is None or not by_key:
                return compute(None, versions)
            counts = GridCounts()
            found = compute(counts, versions)
            keep_value_counts(ctx.answers, versions, view, request.filter, metadata_key(request.group_by, "group_by"),
                              counts.kind, counts.by_value)  # fmt: skip
            return found

        overall, total, every, worst = ctx.answers.get(VIEW_TABLES, key(view), compute_and_count)
    return pb.GetSlicesResponse(
        overall_accuracy=overall,
        frames=sum(x.frames for x in every) if is_detection else total,
        pixels=sum(x.pixels for x in every),
        objects=total if is_detection else sum(x.objects for x in every) if events else 0,
        slices=[_slice(x) for x in every],
        worst=[_slice(x) for x in worst],
    )


def _by_split_at(
    ctx: Context, at_zero: View, versions: tuple[Any, ...], flt: common_pb2.Filter, threshold: float,
    zero: Callable[[], tuple[float, int, list[SliceStats], list[SliceStats]]],
) -> tuple[list[SliceStats], dict[str, int]] | None:  # fmt: skip
    """The slices by split at threshold 0 (``zero()``) and the right predictions of each split whose confidence is
    below ``threshold`` (a large set's, from its confidence sort's counts: :func:`grid_orders.below_threshold`), or
    None when those are not written or their frames are not the slices'."""
    found = grid_orders.below_threshold(ctx.metrics, at_zero, versions, flt, threshold, ("split", "correct"))
    if found is None:
        return None
    every, below = found
    frames: dict[str, int] = {}
    for (split, correct), n in every.items():
        if correct is not None:  # labeled
            frames[str(split)] = frames.get(str(split), 0) + n
    _, _, by_split, _ = zero()
    if {x.value: x.frames for x in by_split} != {split: n for split, n in frames.items() if n}:
        return None
    grid_orders.THRESHOLDS.labels("slices").inc()
    return by_split, {str(split): n for (split, correct), n in below.items() if correct}


def _by_key_at(
    ctx: Context, at_zero: View, versions: tuple[Any, ...], flt: common_pb2.Filter, threshold: float, group_by: str,
    zero: Callable[[], tuple[float, int, list[SliceStats], list[SliceStats]]],
) -> tuple[list[SliceStats], dict[str, int]] | None:  # fmt: skip
    """The slices by a metadata key at threshold 0 (``zero()``) and the right predictions of each value whose
    confidence is below ``threshold`` (a large set's, from its confidence sort's counts by value and bucket:
    :func:`grid_values.below_by_value`), or None when those are not written or their frames are not the slices'."""
    found = grid_values.below_by_value(ctx.metrics, at_zero, versions, flt, threshold,
                                       metadata_key(group_by, "group_by"))  # fmt: skip
    if found is None:
        return None
    frames, below = found
    _, _, by_value, _ = zero()
    if {x.value: x.frames for x in by_value} != frames:
        return None
    grid_orders.THRESHOLDS.labels("slices").inc()
    return by_value, below


def _slice(x: SliceStats) -> pb.Slice:
    return pb.Slice(value=x.value, frames=x.frames, correct=x.correct, accuracy=x.accuracy,
                    interval_lower=x.lower, interval_upper=x.upper, drop=x.drop, objects=x.objects,
                    pixels=x.pixels, mean_iou=x.mean_iou)  # fmt: skip


ANALYSIS = Analysis("slices", rpcs={"GetSlices": get_slices})
