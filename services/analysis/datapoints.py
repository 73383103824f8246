"""Drill-down: the datapoints of a dataset that match a typed filter, sorted, with keyset paging.

A page token holds the sort values of the last row returned (and a fingerprint of the query), and
the next page starts strictly after them: pages neither skip nor repeat rows, even when rows are
added between two pages, and the cost of a page does not grow with its depth.

Each page's frame sizes, and on request its frames' boxes (the latest label version's objects and
an inference set's predictions), are read for the whole page at once, keyed by its frame ids.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from clickhouse_connect.driver.exceptions import ClickHouseError
from prometheus_client import Counter

from shoal.analysis import grid_compare, grid_orders, grid_values
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common import classmaps, masks
from shoal.common.data.answers import AnswerCache
from shoal.common.data.frames import latest_labels_sql
from shoal.common.data.query import (
    BASELINE_FIELDS,
    METADATA_KINDS,
    PAGE_COLUMNS,
    SETTINGS,
    VIEW_TABLES,
    Params,
    Sort,
    View,
    after,
    cell_of,
    compile_filter,
    compile_sort,
    decode_cursor,
    encode_cursor,
    metadata_key,
    order_by,
    presence,
    view_sql,
)
from shoal.common.data.segmentation import latest_maps_sql
from shoal.common.errors import InvalidArgument
from shoal.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from shoal.common.stores.metrics import MetricsStore
from shoal.common.v1 import common_pb2

#: the grid's sorts whose counts are kept (a sort leaves out the frames without its field: see
#: ``shoal.common.data.query.presence``): its default (``examples.js``), then the prediction's fields
GRID_SORTS = ("frame_id", "loss", "confidence", "margin")

SORTED_PAGES = Counter(
    "shoal_grid_sorted_pages_total",
    "Pages of the example grid sorted by loss, confidence, margin or capture time, by how they were read: kept (a "
    "large set's sort kept whole, or patched since with the frames written, shoal.analysis.grid_orders) or sorted "
    "(the set, "
    "or a small cell of it, sorted on the call). "
    "Pages kept in memory by the preparer are not counted.",
    ["source"],
)

#: a kept sort's listing (build, name) and a range of the filter as bounds of its key (``_key``)
Narrow = tuple[tuple[str, str], list[tuple[str, float]]]
NARROW_PAGES = Counter(
    "shoal_grid_narrow_pages_total",
    "Pages of the example grid of a filter few of a large set's frames pass read from a kept sort's rows in one of "
    "the filter's ranges, sorted on the call, instead of the set (or a kept sort) read until a page passed.",
)
#: the rows of the set a page's read is expected to pass over (its rows times the set's frames over the filter's)
#: from which the page is read from a kept sort's rows in the filter's range, when fewer: below, the set's read
#: (in frame id order, or a kept sort's) finds the page within tens of milliseconds
NARROW_READ_FROM = 50_000
#: the rows of a granule of the store's tables (``index_granularity``), the fewest a read of a key's range reads
GRANULE_ROWS = 8_192
#: the sorts whose pages are read cell by cell from ``evaluations_by_cell`` (:func:`_cell_rows`): the grid by labeled
#: or predicted class, with which of a confusion cell's two classes (label, prediction) the sort's is
CELL_SORTS = {"label_class": 0, "predicted_class": 1}
#: a project's classes up to which a page by predicted class of any labeled class is read class by class: a predicted
#: class's cells lie one under each labeled class, and its read passes over a granule of each (a labeled class's
#: cells, or a predicted class's of one labeled class or on the diagonal, lie together: read with any classes)
CELL_CLASSES_AT_MOST = 64
#: the classes a page reads one after another (one statement each) before it sorts the set instead: a filter few
#: frames pass would read every class's cells, one statement each (at 10M frames, 20 to 40 ms a class of 1M)
CELL_READS_AT_MOST = 4
#: the most frames below a confidence threshold read from the sort by confidence for a page by predicted class at
#: that threshold (:func:`_cell_rows`); more are read from the set in frame id order, which then passes over few
BELOW_FROM_LISTING = 50_000
CELL_PAGES = Counter(
    "shoal_grid_class_pages_total",
    "Pages of the example grid sorted by labeled or predicted class read class by class from the confusion cells "
    "(the frame ids of the cursor's class after its frame that pass the filter, then their rows), not sorted from "
    "the set.",
)


@dataclass
class Row:
    frame_id: str
    split: str
    media_uri: str
    label_class: int | None
    predicted_class: int | None
    confidence: float | None
    loss: float | None
    margin: float | None
    probabilities: list[float]
    #: key -> (kind, value), kind one of string, number, bool, timestamp
    metadata: dict[str, tuple[str, Any]]
    baseline_predicted_class: int | None = None
    width: int = 0
    height: int = 0
    #: with include_objects: the latest label version's objects and the inference set's, by object id
    label_objects: list[FrameObject] = field(default_factory=list)
    predicted_objects: list[FrameObject] = field(default_factory=list)
    #: point-cloud and audio projects: the frame's scene fields (:func:`add_scene_details`)
    scene: Scene | None = None
    #: with include_objects, sound-event projects: the latest labels' events and the inference set's
    label_events: list[SoundEvent] = field(default_factory=list)
    predicted_events: list[SoundEvent] = field(default_factory=list)


@dataclass(frozen=True)
class FrameObject:
    object_id: str
    class_id: int
    #: x, y, width, height in pixels
    box: tuple[float, float, float, float]
    #: predicted objects: the model's score
    score: float | None = None
    is_crowd: bool = False
    #: instance segmentation: COCO's compact run-length string ('' without a mask)
    mask: str = ""
    #: keypoint projects: (x, y, visibility) per keypoint
    keypoints: tuple[tuple[float, float, int], ...] = ()
    #: cuboid projects: x, y, z, width, length, height, yaw (:data:`shoal.common.cuboids.COLUMNS`); () without
    cuboid: tuple[float, ...] = ()
    #: cuboid projects: the velocity (vx, vy; None unknown), the attribute, the points inside a labeled one (-1 unknown)
    velocity: tuple[float, float] | None = None
    attribute: str = ""
    num_points: int = -1


@dataclass(frozen=True)
class Scene:
    """A frame's fields of point clouds and audio clips, as uploaded."""

    #: e.g. "POINT_CLOUD", "AUDIO" ('' unset)
    media_type: str
    #: "EGO", "WORLD" ('' unset)
    coordinate_frame: str
    #: x, y, z, qw, qx, qy, qz; () without
    ego_pose: tuple[float, ...]
    #: (name, uri) per camera image
    cameras: tuple[tuple[str, str], ...]
    duration_seconds: float
    sample_rate: int


@dataclass(frozen=True)
class SoundEvent:
    onset: float
    offset: float
    class_id: int
    #: predicted events: the model's score
    score: float | None = None


@dataclass
class Page:
    rows: list[Row]
    next_token: str
    total: int


def statement_key(what: str, sql: str, params: Mapping[str, Any]) -> tuple[str, str]:
    """The key under which an answer of ``sql`` with ``params`` is kept: a digest of both (a statement is
    a few kilobytes, and thousands of counts are kept)."""
    return what, hashlib.sha256(f"{sql}\x00{sorted(params.items())!r}".encode()).hexdigest()


def _query(
    view: View, flt: common_pb2.Filter, sort: Sequence[Any], kinds: Mapping[str, str], narrow: Narrow | None = None
) -> tuple[Params, str, list[Sort], str, dict[str, Any]]:
    """A query's parameters, its FROM and WHERE clauses, its sort keys, and the statement that
    counts its frames (the filter's, which its sort keys can order: see :func:`presence`) with the
    parameters it takes; ``kinds`` are the types of the metadata keys it sorts by. With ``narrow``, read from a
    kept sort's rows in a range of the filter (:func:`shoal.analysis.grid_orders.narrow_listings`)."""
    params = Params()
    # a class's or a confusion cell's frames are read from their cell's rows alone
    source = view_sql(view, params, cell_of(flt, view)) if narrow is None else view_sql(view, params, listing=narrow[0])
    where = compile_filter(flt, view, params)
    where += "".join(f" AND _key {op} {params.add(key, 'Float64')}" for op, key in (narrow[1] if narrow else ()))
    sorts = compile_sort(sort, view, kinds, params)
    base = f"FROM ({source}) WHERE {where} AND {presence(sorts)}"
    return params, base, sorts, f"SELECT count() {base}{SETTINGS}", dict(params.values)


def _by_each(fields: Sequence[str]) -> list[pb.SortKey]:
    """The sort whose count is how many frames have all the fields: one key of each, in one order whatever the
    order asked (one count kept for every order)."""
    return [pb.SortKey(field=f) for f in sorted(set(fields))]


def present_key(view: View, fields: Sequence[str]) -> tuple[str, str]:
    """The key under which how many of the view's frames have all the fields is kept."""
    return count_key(view, common_pb2.Filter(), _by_each(fields))


def count_key(view: View, flt: common_pb2.Filter, sort: Sequence[Any]) -> tuple[str, str]:
    """The key under which the count of a query that sorts by no metadata key is kept."""
    _, _, _, sql, params = _query(view, flt, sort, {})
    return statement_key("datapoints.count", sql, params)


#: the values of a metadata key whose grid counts a slice read keeps (the most frequent first)
MAX_VALUE_COUNTS = 250


def keep_value_counts(
    answers: AnswerCache, versions: tuple[Any, ...], view: View, flt: common_pb2.Filter, key: str, kind: str,
    by_value: Mapping[str, Sequence[int]],
) -> int:  # fmt: skip
    """Keeps, under the ``versions`` of the view's tables read before they were counted, the grid's count of
    ``flt`` and one value of metadata ``key`` under each of :data:`GRID_SORTS`, for the values a slice of the
    key links to (``by_value``: each value as the slice names it, with its counts in that order). Each value's
    condition is written as the console's grid writes it from the slice's link (``filterFromQuery``), so that
    the grid's first count is one already kept; a value the grid would write otherwise is left out. Returns
    how many counts were new."""
    kept: dict[Hashable, int] = {}
    largest = sorted(by_value.items(), key=lambda kv: -kv[1][0])[:MAX_VALUE_COUNTS]
    for raw, counts in largest:
        value = _linked_value(raw, kind, by_value)
        if value is None:
            continue
        f = common_pb2.Filter()
        f.CopyFrom(flt)
        f.all.append(common_pb2.Condition(field=f"metadata.{key}", equals=value))
        for name, n in zip(GRID_SORTS, counts, strict=True):
            kept[count_key(view, f, [pb.SortKey(field=name)])] = n
    return answers.keep(VIEW_TABLES, versions, kept)


def _linked_value(raw: str, kind: str, by_value: Mapping[str, Any]) -> common_pb2.Value | None:
    """The value a slice named ``raw`` (``toString`` of a ``kind`` metadata value) filters the grid by, as the
    console writes it (``filterFromQuery``: "true" and "false" as booleans, a number key's values as numbers); None
    when that condition would not count exactly the slice's frames (an empty value, which the grid does not
    filter by; a string that reads as a boolean; a timestamp; a number that is not finite, or a zero whose slice
    has a twin, 0 and -0 being equal)."""
    if raw in ("true", "false"):
        return common_pb2.Value(bool_value=raw == "true") if kind == "bool" else None
    if kind == "string" and raw:
        return common_pb2.Value(string_value=raw)
    if kind != "number":
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    if not math.isfinite(number) or (number == 0 and {"0", "-0"} <= by_value.keys()):
        return None
    return common_pb2.Value(number_value=number)


def metadata_kinds(metrics: MetricsStore, view: View, keys: Sequence[str]) -> dict[str, str]:
    """For each metadata key to sort by: the type its values have in the dataset."""
    out: dict[str, str] = {}
    for key in keys:
        row = metrics.query(
            "SELECT countIf(mapContains(meta_num, {k:String})), countIf(mapContains(meta_str, {k:String})),"
            " countIf(mapContains(meta_time, {k:String})), countIf(mapContains(meta_bool, {k:String}))"
            " FROM frames WHERE project = {project:String} AND dataset = {dataset:String}",
            {"k": key, "project": view.project, "dataset": view.dataset},
        ).rows[0]
        for kind, n in zip(METADATA_KINDS, row, strict=True):
            if n:
                out[key] = kind
                break
    return out


def page_statement(
    view: View, flt: common_pb2.Filter, sort: Sequence[Any], kinds: Mapping[str, str], size: int, last: Any,
    narrow: Narrow | None = None,
) -> tuple[str, dict[str, Any], list[Sort], str, dict[str, Any]]:  # fmt: skip
    """The statement of a page of ``size`` rows (one more, to know whether another follows) after the
    cursor values ``last`` (None: the first page) with its parameters, the sort keys, and the
    statement that counts every row with its parameters (read from a kept sort's rows in a range: see
    :func:`_query`; each row then with its frame's width and height after the sort keys, which the
    listing holds)."""
    params, base, sorts, count_sql, count_params = _query(view, flt, sort, kinds, narrow)
    page_where = f" AND {after(sorts, last, params)}" if last is not None else ""
    keys = ", ".join(f"{s.sql} AS _k{i}" for i, s in enumerate(sorts))
    baseline = "baseline_predicted_class" if view.baseline_inference_set else "CAST(NULL AS Nullable(Int32))"
    sizes = ", width, height" if narrow is not None else ""  # a listing's rows hold their frames' sizes
    limit = params.add(size + 1, "UInt32")
    page_sql = (
        f"SELECT {PAGE_COLUMNS}, {baseline}, {keys}{sizes} {base}{page_where} ORDER BY {order_by(sorts)}"
        f" LIMIT {limit}{SETTINGS}"
    )
    return page_sql, params.values, sorts, count_sql, count_params


def query_datapoints(
    metrics: MetricsStore,
    view: View,
    flt: common_pb2.Filter,
    sort: Sequence[Any],
    page_size: int,
    page_token: str,
    *,
    scope: str,
    include_objects: bool = False,
    maps: bool = False,
    answers: AnswerCache | None = None,
    asked: grid_compare.Asked | None = None,
) -> Page:
    """A page of the view's frames that pass ``flt``, in ``sort`` order after ``page_token``.
    ``scope`` names the query (every part of the request but the page); with ``answers``, the
    count and the page's rows are kept until the tables they read change (looked up under one
    version of the tables: :meth:`AnswerCache.snapshot`). A comparison read from the join of the two sets is noted in
    ``asked``, for the preparer to keep."""
    with answers.snapshot() if answers is not None else nullcontext(), grid_orders.looked_up():
        return _query_datapoints(metrics, view, flt, sort, page_size, page_token, scope, include_objects, maps,
                                 answers, asked)  # fmt: skip


def _query_datapoints(
    metrics: MetricsStore, view: View, flt: common_pb2.Filter, sort: Sequence[Any], page_size: int, page_token: str,
    scope: str, include_objects: bool, maps: bool, answers: AnswerCache | None, asked: grid_compare.Asked | None,
) -> Page:  # fmt: skip
    if page_size < 0:
        raise InvalidArgument(f"must be >= 0, got {page_size}", field="page.page_size")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    meta_keys = [
        metadata_key(k.field, f"sort[{i}].field") for i, k in enumerate(sort) if k.field.startswith("metadata.")
    ]
    kinds = metadata_kinds(metrics, view, meta_keys)
    last = decode_cursor(page_token, compile_sort(sort, view, kinds, Params()), scope)
    # a view with a baseline reads the large set's rows kept beside the baseline's, when written, not the join
    comparison = compared(metrics, view, answers, asked)
    listing = None if comparison is None else grid_compare.listing(view, flt, comparison[0])
    page_sql, page_params, sorts, count_sql, count_params = page_statement(view, flt, sort, kinds, size, last, listing)
    # a filter that names no baseline field passes as many frames with the baseline as without: the set's own count
    counting = view
    if view.baseline_inference_set and not any(c.field in BASELINE_FIELDS for c in flt.all):
        counting = replace(view, baseline_inference_set="")
        count_sql, count_params = page_statement(counting, flt, sort, kinds, size, last)[3:]

    def count() -> int:
        kept = _kept_count(metrics, counting, flt, sort, answers)
        if kept is None and comparison is not None:  # the comparison's counts
            kept = grid_compare.count(metrics, view, flt, sort, *comparison)
        return int(metrics.query(count_sql, count_params).scalar()) if kept is None else kept

    def counted() -> int:  # a statement and its parameters name everything its answer depends on
        return answers.get(VIEW_TABLES, statement_key("datapoints.count", count_sql, count_params), count)

    total = count() if answers is None else counted()

    def rows() -> list[tuple[Any, ...]]:
        # the count under the versions the page is read at (a kept page is read again by the refresher after a change)
        passing = total if answers is None or answers.max_answers <= 0 else counted()
        if passing == 0:  # no frame passes: nothing to read (the set's read would pass over every frame)
            return []
        kept = _narrow_rows(metrics, view, flt, sort, kinds, size, last, passing, answers)
        if kept is None:
            kept = _kept_rows(metrics, view, flt, sort, size, last, passing, answers)
        if kept is None:
            kept = _cell_rows(metrics, view, flt, sort, size, last, answers)
        if kept is not None:
            return kept
        return [tuple(r) for r in metrics.query(page_sql, page_params).rows]

    if answers is None:
        result = rows()
    else:
        result = answers.get(VIEW_TABLES, statement_key("datapoints.page", page_sql, page_params), rows, page_weight)
    more = len(result) > size
    result = result[:size]
    shown = [_row(r) for r in result]
    # rows read from a large set's kept sort carry their frames' sizes after the sort keys
    sized = bool(result) and all(len(r) == 16 + len(sorts) for r in result)
    for row, r in zip(shown, result, strict=True) if sized else ():
        row.width, row.height = int(r[-2]), int(r[-1])
    if include_objects or maps or not sized:
        add_frame_details(metrics, view, shown, include_objects=include_objects, maps=maps, answers=answers)
    token = ""
    if more and result:
        token = encode_cursor(_cursor(result[-1], sorts), scope)
    return Page(shown, token, total)


def compared(
    metrics: MetricsStore, view: View, answers: AnswerCache | None, asked: grid_compare.Asked | None = None
) -> tuple[grid_compare.Kept, int] | None:
    """A large set's comparison with ``view``'s baseline written by the preparer
    (:func:`shoal.analysis.grid_compare.kept`), and the set's frames it must hold, which its listings and counts are
    read with; None for a view without a baseline, without kept answers, or a comparison not written (the two sets
    are joined: noted in ``asked``, which the preparer keeps)."""
    if answers is None or not view.inference_set or not view.baseline_inference_set:
        return None
    versions = answers.versions(VIEW_TABLES)
    if versions is None:
        return None
    frames = _present(metrics, replace(view, baseline_inference_set="", confidence_threshold=0.0), answers)([])
    found = grid_compare.kept(metrics, view, versions, frames)
    if found is None and asked is not None:
        asked.ask(view)
    return None if found is None else (found, frames)


def _kept_count(
    metrics: MetricsStore, view: View, flt: common_pb2.Filter, sort: Sequence[Any], answers: AnswerCache | None
) -> int | None:
    """The count of a filter that is one range on a field of a large set's kept sorts, with or without conditions on the
    split, the classes and the right or wrong predictions (or those conditions alone), read from the sort's key range or
    its counts by bucket (:func:`shoal.analysis.grid_orders.range_count`); or one condition on a metadata key (a value,
    its presence, negated or not) with or without those, read from the set's frames counted by value
    (:func:`shoal.analysis.grid_values.value_count`), with a range of confidence or loss too from that sort's counts by
    value and bucket (:func:`shoal.analysis.grid_values.value_range_count`); or a range of capture time of whole hours,
    from the set's frames counted by hour (:func:`shoal.analysis.grid_values.time_count`); or any other filter with a
    narrow range of such a field, read from the sort's rows in the range
    (:func:`shoal.analysis.grid_orders.rows_count`); None to count the set."""
    if answers is None or not view.inference_set or view.baseline_inference_set:
        return None
    versions = answers.versions(VIEW_TABLES)
    if versions is None:
        return None

    present = _present(metrics, view, answers)
    if len(sort) == 1 and sort[0].field in CELL_SORTS:  # the frames with the class sorted by (the sort's presence)
        if sort[0].field == "label_class":
            flt = common_pb2.Filter(all=[*flt.all, common_pb2.Condition(field="labeled", equals=common_pb2.Value(
                bool_value=True))])  # fmt: skip
        elif present(["confidence"]) != present([]):  # a frame without a prediction: the set's count
            return None
        sort = []
    found = grid_orders.range_count(metrics, view, versions, flt, sort, present)
    if found is None:
        found = grid_values.value_count(metrics, view, versions, flt, sort)
    if found is None:
        found = grid_values.value_range_count(metrics, view, versions, flt, sort, present)
    if found is None:
        found = grid_values.time_count(metrics, view, versions, flt, sort)
    if found is None and cell_of(flt, view) is None:  # a class's count reads that class's rows
        found = grid_orders.rows_count(metrics, view, versions, flt, sort, present)
    return found


def _present(metrics: MetricsStore, view: View, answers: AnswerCache) -> Callable[[Sequence[str]], int]:
    """How many of the set's frames have all the fields (the preparer keeps every frame's, and each set of the sorted
    fields': :func:`present_key`)."""

    def present(fields: Sequence[str]) -> int:
        _, _, _, sql, params = _query(view, common_pb2.Filter(), _by_each(fields), {})
        return answers.get(VIEW_TABLES, statement_key("datapoints.count", sql, params),
                           lambda: int(metrics.query(sql, params).scalar()))  # fmt: skip

    return present


def _narrow_rows(
    metrics: MetricsStore, view: View, flt: common_pb2.Filter, sort: Sequence[Any], kinds: Mapping[str, str],
    size: int, last: Sequence[Any] | None, total: int, answers: AnswerCache | None,
) -> list[tuple[Any, ...]] | None:  # fmt: skip
    """The page's rows of a filter few of a large set's frames pass, read from a kept sort's rows in one of its
    ranges, sorted (:func:`shoal.analysis.grid_orders.narrow_listings`), when those rows are fewer than a read of the
    set (or of a kept sort, in its order) passes over to fill the page: about the page's rows times the set's frames
    over the filter's (and at most :data:`shoal.analysis.grid_orders.RANGE_ROWS_AT_MOST`; the store refuses a wider
    read before it reads a row). None to read the set, or a kept sort, as before."""
    if answers is None or not view.inference_set or view.baseline_inference_set or cell_of(flt, view) is not None:
        return None
    if not any(grid_orders.sort_range(c) for c in flt.all):
        return None
    versions = answers.versions(VIEW_TABLES)
    if versions is None:
        return None
    present = _present(metrics, view, answers)
    narrow = grid_orders.narrow_listings(metrics, view, versions, flt, present)
    passed_over = (size + 1) * present([]) // max(total, 1) if narrow else 0
    if passed_over < NARROW_READ_FROM:  # the page is found within as few rows of the set
        return None
    # the range's rows must be fewer than those (a granule at least: the store reads no fewer)
    at_most = min(grid_orders.RANGE_ROWS_AT_MOST, max(passed_over, GRANULE_ROWS))
    for listing in narrow:
        sql, params = page_statement(view, flt, sort, kinds, size, last, listing)[:2]
        try:
            rows = metrics.query(f"{sql}, max_rows_to_read = {int(at_most)}, read_overflow_mode = 'throw'", params).rows
        except ClickHouseError as e:
            if not grid_orders.too_wide(e):
                raise
            continue
        NARROW_PAGES.inc()
        return [tuple(r) for r in rows]
    return None


def _kept_rows(
    metrics: MetricsStore, view: View, flt: common_pb2.Filter, sort: Sequence[Any], size: int,
    last: Sequence[Any] | None, total: int, answers: AnswerCache | None,
) -> list[tuple[Any, ...]] | None:  # fmt: skip
    """The page's rows from the whole sorts a large set keeps (:mod:`shoal.analysis.grid_orders`), when the
    tables' current versions have them; None to read the set (or the cell the filter keeps to, when few of the
    set's frames, ``total``, pass the filter)."""
    use = grid_orders.usable(view, sort)
    if use is None or answers is None:
        return None
    versions = answers.versions(VIEW_TABLES)
    rows = None if versions is None else grid_orders.page(metrics, view, versions, *use, flt, size, last, total)
    SORTED_PAGES.labels("sorted" if rows is None else "kept").inc()
    return rows


def _cell_rows(
    metrics: MetricsStore, view: View, flt: common_pb2.Filter, sort: Sequence[Any], size: int,
    last: Sequence[Any] | None, answers: AnswerCache | None = None,
) -> list[tuple[Any, ...]] | None:  # fmt: skip
    """The page's rows of the grid sorted by labeled or predicted class (then frame id), read class by class from the
    confusion cells (``evaluations_by_cell``, ordered by label, prediction and frame id): the frame ids of the
    cursor's class after the cursor's frame that pass the filter, the first of them in frame id order (the next
    class's when the page is not full), then those frames' rows. Each read is of a class's cells (a tenth of the
    set, of ten classes), where sorting the set read every frame (0.3 to 1 s at 10M frames, at any depth). By
    predicted class at a confidence threshold, a frame below it is of the class -1 whatever its cell: those are read
    from the first rows of the kept sort by confidence (``answers`` give the tables' versions) when at most
    :data:`BELOW_FROM_LISTING` frames are below it, else from the set in frame id order (which finds the page's
    frames among the first it reads: a read of few frames below would pass over most of the set), and each class's
    cells keep to the frames at or above it. Not by predicted class of any labeled class in a project of more than
    :data:`CELL_CLASSES_AT_MOST` classes, nor for a page that would read more than :data:`CELL_READS_AT_MOST`
    classes; None then, to sort the set."""
    if len(sort) != 1 or sort[0].field not in CELL_SORTS or not view.inference_set or view.baseline_inference_set:
        return None
    side = CELL_SORTS[sort[0].field]
    below = side == 1 and view.confidence_threshold > 0  # the predicted class -1: the frames below the threshold
    classes = sorted(set(view.ontology) | ({-1} if below else set()), reverse=bool(sort[0].descending))
    # the cell's other class the filter names (the right predictions: the diagonal's), if any
    fixed = cell_of(flt, view) or (None, None)
    other, right = fixed[1 - side], _right_only(flt)
    if not classes or (side == 1 and other is None and not right and len(view.ontology) > CELL_CLASSES_AT_MOST):
        return None
    if fixed[side] is not None:
        classes = [c for c in classes if c == fixed[side]]
    if right and other is not None:  # the right predictions of a class named: its diagonal cell alone
        classes = [c for c in classes if c == other]
    if right:  # no label is -1
        classes = [c for c in classes if c >= 0]
    if last is not None:  # the cursor's class and those after it
        classes = [c for c in classes if (c <= last[0] if sort[0].descending else c >= last[0])]
    versions = answers.versions(VIEW_TABLES) if below and answers is not None and -1 in classes else None
    by_confidence = None if versions is None else grid_orders.confidence_listing(metrics, view, versions)
    ids: list[str] = []
    for i, group in enumerate(classes):
        if i == CELL_READS_AT_MOST:  # few frames pass in each class: the set sorted at once costs less
            return None
        params = Params()
        cell = [group, group if right else other]
        where = compile_filter(flt, view, params)
        if below:  # the class's frames at or above the threshold, or every cell's below it
            where += f" AND predicted_class = {params.add(group, 'Int32')}"
            cell[0] = None if group < 0 else cell[0]
        if last is not None and group == last[0]:
            where += f" AND frame_id > {params.add(str(last[1]), 'String')}"
        limit = f" ORDER BY frame_id LIMIT {size + 1 - len(ids)}{SETTINGS}"
        found = None
        if group < 0 and by_confidence is not None:  # the sort's rows below the threshold, if few
            source = view_sql(view, params, listing=by_confidence)
            key = f"_key < {params.add(float(view.confidence_threshold), 'Float64')}"
            bound = f", max_rows_to_read = {BELOW_FROM_LISTING}, read_overflow_mode = 'throw'"
            try:
                found = metrics.query(f"SELECT frame_id FROM ({source}) WHERE {where} AND {key}{limit}{bound}",
                                      params.values).rows  # fmt: skip
            except ClickHouseError as e:
                if not grid_orders.too_wide(e):
                    raise
        if found is None:
            by_cell = None if cell == [None, None] else (cell[side], cell[1 - side])
            source = view_sql(view, params, by_cell)
            found = metrics.query(f"SELECT frame_id FROM ({source}) WHERE {where}{limit}", params.values).rows
        ids += [str(r[0]) for r in found]
        if len(ids) > size:
            break
    CELL_PAGES.inc()
    if not ids:
        return []
    # those frames' rows: the page's statement of those frames alone (read by the set's key, frame id)
    these = common_pb2.Condition(field="frame_id", **{"in": common_pb2.ValueList(
        values=[common_pb2.Value(string_value=f) for f in ids])})  # fmt: skip
    sql, params = page_statement(view, common_pb2.Filter(all=[these]), sort, {}, size, None)[:2]
    return [tuple(r) for r in metrics.query(sql, params).rows]


def _right_only(flt: common_pb2.Filter) -> bool:
    """Whether the filter keeps to the right predictions (the diagonal's cells)."""
    return any(c.field == "correct" and c.WhichOneof("op") == "equals" and c.equals.WhichOneof("kind") == "bool_value"
               and c.equals.bool_value != c.negate for c in flt.all)  # fmt: skip


def page_weight(rows: Sequence[tuple[Any, ...]]) -> int:
    """What a kept page weighs (:class:`AnswerCache`'s rows): each row one, and one more per ten of
    its class probabilities, so that a page of a thousand classes weighs what it holds."""
    return sum(1 + len(r[8]) // 10 for r in rows)


def _cursor(row: tuple[Any, ...], sorts: Sequence[Sort]) -> list[Any]:
    """The cursor values of a page's last row (its sort keys, after the columns)."""
    return [_plain(v) for v in row[14 : 14 + len(sorts)]]


def _row(r: tuple[Any, ...]) -> Row:
    meta: dict[str, tuple[str, Any]] = {}
    for kind, m in zip(("string", "number", "bool", "timestamp"), r[9:13], strict=True):
        meta.update((k, (kind, v)) for k, v in m.items())
    return Row(
        frame_id=r[0],
        split=r[1],
        media_uri=r[2],
        label_class=None if r[3] is None else int(r[3]),
        predicted_class=None if r[4] is None else int(r[4]),
        confidence=None if r[5] is None else float(r[5]),
        loss=None if r[6] is None else float(r[6]),
        margin=None if r[7] is None else float(r[7]),
        probabilities=[float(x) for x in r[8]],
        metadata=meta,
        baseline_predicted_class=None if r[13] is None else int(r[13]),
    )


def keep_pages(
    metrics: MetricsStore, answers: AnswerCache, view: View, flt: common_pb2.Filter, sort: Sequence[Any], size: int,
    pages: int,
) -> int:  # fmt: skip
    """Keeps the first ``pages`` pages of ``size`` of a query sorted by no metadata key (their rows
    and their frames' sizes) as :func:`query_datapoints` asks for them page after page, read in one
    statement: a page sorted by another field than frame id reads the whole set, once for ten pages
    here instead of once each. Returns how many answers it kept anew."""
    versions, detail_versions = answers.versions(VIEW_TABLES), answers.versions(DETAIL_TABLES)
    if versions is None or detail_versions is None:
        return 0
    every_sql, every_params, sorts, _, _ = page_statement(view, flt, sort, {}, size * pages, None)
    rows = [tuple(r) for r in metrics.query(every_sql, every_params).rows]
    kept: dict[Hashable, list[tuple[Any, ...]]] = {}
    shown: list[list[str]] = []
    last = None
    for k in range(pages):
        chunk = rows[k * size : (k + 1) * size + 1]
        sql, params, *_ = page_statement(view, flt, sort, {}, size, last)
        kept[statement_key("datapoints.page", sql, params)] = chunk
        shown.append(sorted({r[0] for r in chunk[:size]}))
        if len(chunk) <= size:  # the last page
            break
        # the cursor as a token carries it from one page to the next
        last = decode_cursor(encode_cursor(_cursor(chunk[size - 1], sorts), "pages"), sorts, "pages")
    new = answers.keep(VIEW_TABLES, versions, kept, page_weight)
    sizes, _, _ = _frame_details(metrics, view, sorted({f for ids in shown for f in ids}), include_objects=False)
    details = {_details_key(view, False, ids): ({f: sizes[f] for f in ids if f in sizes}, {}, {})
               for ids in shown if ids}  # fmt: skip
    return new + answers.keep(DETAIL_TABLES, detail_versions, details, lambda d: len(d[0]))


#: the tables a page's frame details read: the frames' sizes, and their boxes
DETAIL_TABLES = ("frames",)
OBJECT_TABLES = ("frames", "label_versions", "label_objects", "predicted_objects", "inferences")

Details = tuple[dict[str, tuple[int, int]], dict[str, list[FrameObject]], dict[str, list[FrameObject]]]


def add_frame_details(metrics: MetricsStore, view: View, rows: Sequence[Row], *, include_objects: bool,
                      maps: bool = False, answers: AnswerCache | None = None) -> None:  # fmt: skip
    """Sets each row's frame size and, with ``include_objects``, its boxes: one query for the sizes
    and one for the objects of the whole page; with ``answers``, kept until those tables change (a
    page's frames lie anywhere in the dataset: reading their sizes touches a block of rows each).
    With ``maps`` (a segmentation project), the objects are each class's region of the frame's
    label map and predicted map."""
    ids = sorted({r.frame_id for r in rows})
    if not ids:
        return

    def compute() -> Details:
        if maps:
            return _map_details(metrics, view, ids)
        return _frame_details(metrics, view, ids, include_objects=include_objects)

    if answers is None:
        sizes, labels, predicted = compute()
    else:
        tables = OBJECT_TABLES if include_objects else DETAIL_TABLES
        key = _details_key(view, include_objects, ids, maps)
        sizes, labels, predicted = answers.get(tables, key, compute, lambda _: len(ids))
    for r in rows:
        r.width, r.height = sizes.get(r.frame_id, (0, 0))
        r.label_objects = sorted(labels.get(r.frame_id, []), key=lambda o: o.object_id)
        r.predicted_objects = sorted(predicted.get(r.frame_id, []), key=lambda o: o.object_id)


def _details_key(view: View, include_objects: bool, ids: Sequence[str], maps: bool = False) -> Hashable:
    """The key of the details of these frames (sorted) as :func:`add_frame_details` keeps them."""
    digest = hashlib.sha256("\x00".join(ids).encode()).hexdigest()
    return ("datapoints.details", view.project, view.dataset, view.inference_set, include_objects, maps, digest)


def _map_details(metrics: MetricsStore, view: View, ids: list[str]) -> Details:
    """The sizes of these frames, and each class's region of their latest label map and of the
    inference set's predicted map, as objects ``class-<id>`` with the region's mask and box."""
    sizes, _, _ = _frame_details(metrics, view, ids, include_objects=False)
    params = {"project": view.project, "dataset": view.dataset, "set": view.inference_set}
    scope = "frame_id IN {ids:Array(String)}"
    sql = f"SELECT 0, frame_id, classes, runs FROM ({latest_maps_sql(scope)})"
    if view.inference_set:
        sql += (
            " UNION ALL SELECT 1, frame_id, seg_classes, seg_runs FROM inferences FINAL"
            " WHERE project = {project:String} AND inference_set = {set:String} AND dataset = {dataset:String}"
            " AND " + scope
        )
    labels: dict[str, list[FrameObject]] = {}
    predicted: dict[str, list[FrameObject]] = {}
    for kind, frame, classes, runs in metrics.query_ids(sql, params, "ids", ids):
        w, h = sizes.get(str(frame), (0, 0))
        if not len(runs) or int(np.sum(runs, dtype=np.int64)) != w * h:
            continue
        out = predicted if kind else labels
        for class_id, counts in classmaps.regions(np.asarray(classes), np.asarray(runs)):
            box = masks.bbox(counts, h, w)
            out.setdefault(str(frame), []).append(
                FrameObject(f"class-{class_id}", class_id, box, None, False, masks.to_string(counts).decode(), ())
            )
    return sizes, labels, predicted


def _frame_details(metrics: MetricsStore, view: View, ids: list[str], *, include_objects: bool) -> Details:
    """The sizes of these frames and, with ``include_objects``, their labeled and predicted boxes."""
    params = {"project": view.project, "dataset": view.dataset, "set": view.inference_set}
    found = metrics.query_ids(
        "SELECT frame_id, width, height FROM frames FINAL WHERE project = {project:String}"
        " AND dataset = {dataset:String} AND frame_id IN {ids:Array(String)}",
        params,
        "ids",
        ids,
    )
    sizes = {str(f): (int(w), int(h)) for f, w, h in found}
    labels: dict[str, list[FrameObject]] = {}
    predicted: dict[str, list[FrameObject]] = {}
    if include_objects:
        scope = "frame_id IN {ids:Array(String)}"
        drawn = ("mask", "kp_x", "kp_y", "kp_v")
        shapes = "".join(f", {c}" for c in drawn)
        sql = (
            f"SELECT 0 AS predicted, frame_id, object_id, class_id, x, y, w, h, crowd{shapes},"
            f" CAST(NULL AS Nullable(Float32)) AS score FROM ({latest_labels_sql(scope, drawn)})"
        )
        if view.inference_set:
            sql += (
                " UNION ALL SELECT 1 AS predicted, frame_id, object_id, class_id, x, y, w, h,"
                f" toUInt8(0) AS crowd{shapes}, toNullable(score) AS score FROM predicted_objects FINAL"
                " WHERE project = {project:String}"
                " AND inference_set = {set:String} AND dataset = {dataset:String} AND " + scope
            )
        for kind, frame, obj, cls, x, y, w, h, crowd, mask, kx, ky, kv, score in metrics.query_ids(
            sql, params, "ids", ids
        ):
            o = FrameObject(
                str(obj), int(cls), (float(x), float(y), float(w), float(h)), None if score is None else float(score),
                bool(crowd), str(mask), tuple((float(a), float(b), int(v)) for a, b, v in zip(kx, ky, kv, strict=True)),
            )  # fmt: skip
            (predicted if kind else labels).setdefault(str(frame), []).append(o)
    return sizes, labels, predicted


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        return v
    if isinstance(v, bool):
        return int(v)
    return v


def add_scene_details(metrics: MetricsStore, view: View, rows: Sequence[Row], *, cuboids: bool = False,
                      events: bool = False, answers: AnswerCache | None = None) -> None:  # fmt: skip
    """Point-cloud and audio projects: sets each row's :class:`Scene` (one query for the page) and, with
    ``cuboids``, its labeled and predicted objects as cuboids (replacing the objects read without them), or
    with ``events`` its latest label version's sound events and the inference set's, by onset. With
    ``answers``, kept until the tables read change."""
    ids = sorted({r.frame_id for r in rows})
    if not ids:
        return

    def compute() -> SceneDetails:
        return _scene_details(metrics, view, ids, cuboids=cuboids, events=events)

    if answers is None:
        scenes, labels, predicted = compute()
    else:
        digest = hashlib.sha256("\x00".join(ids).encode()).hexdigest()
        key = ("datapoints.scene", view.project, view.dataset, view.inference_set, cuboids, events, digest)
        scenes, labels, predicted = answers.get(OBJECT_TABLES, key, compute, lambda _: len(ids))
    for r in rows:
        r.scene = scenes.get(r.frame_id)
        if cuboids:
            r.label_objects = sorted(labels.get(r.frame_id, []), key=lambda o: o.object_id)
            r.predicted_objects = sorted(predicted.get(r.frame_id, []), key=lambda o: o.object_id)
        elif events:
            r.label_events = list(labels.get(r.frame_id, []))
            r.predicted_events = list(predicted.get(r.frame_id, []))


SceneDetails = tuple[dict[str, Scene], dict[str, list[Any]], dict[str, list[Any]]]


def _scene_details(metrics: MetricsStore, view: View, ids: list[str], *, cuboids: bool, events: bool) -> SceneDetails:
    params = {"project": view.project, "dataset": view.dataset, "set": view.inference_set}
    found = metrics.query_ids(
        "SELECT frame_id, media_type, coordinate_frame, ego_pose, cameras, duration_seconds, sample_rate"
        " FROM frames FINAL WHERE project = {project:String} AND dataset = {dataset:String}"
        " AND frame_id IN {ids:Array(String)}",
        params,
        "ids",
        ids,
    )
    scenes = {}
    for f, media, frame, pose, cameras, duration, rate in found:
        # a named tuple comes back as a dict, or as a tuple, by the client's settings
        named = tuple(
            (str(c["name"]), str(c["uri"])) if isinstance(c, dict) else (str(c[0]), str(c[1])) for c in cameras
        )
        scenes[str(f)] = Scene(str(media), str(frame), tuple(map(float, pose)), named, float(duration), int(rate))
    labels: dict[str, list[Any]] = {}
    predicted: dict[str, list[Any]] = {}
    scope = "frame_id IN {ids:Array(String)}"
    if cuboids:
        latest = latest_labels_sql(scope, ("cuboid", "velocity", "attribute", "num_points"))
        sql = (
            "SELECT 0, frame_id, object_id, class_id, cuboid, velocity, attribute, num_points,"
            f" CAST(NULL AS Nullable(Float32)) FROM ({latest}) WHERE crowd = 0"
        )
        if view.inference_set:
            sql += (
                " UNION ALL SELECT 1, frame_id, object_id, class_id, cuboid, velocity, attribute, toInt32(-1),"
                " toNullable(score) FROM predicted_objects FINAL WHERE project = {project:String}"
                f" AND inference_set = {{set:String}} AND dataset = {{dataset:String}} AND {scope}"
            )
        for kind, frame, obj, cls, box, velocity, attribute, points, score in metrics.query_ids(
            sql, params, "ids", ids
        ):
            if len(box) != 7:
                continue
            moving = (float(velocity[0]), float(velocity[1])) if len(velocity) == 2 else None
            o = FrameObject(
                str(obj), int(cls), (0.0, 0.0, 0.0, 0.0), score=None if score is None else float(score),
                cuboid=tuple(map(float, box)), velocity=moving, attribute=str(attribute), num_points=int(points),
            )  # fmt: skip
            (predicted if kind else labels).setdefault(str(frame), []).append(o)
    elif events:
        sql = (
            "SELECT 0, frame_id, e.1, e.2, e.3, CAST([] AS Array(Float32)) FROM (SELECT frame_id,"
            " argMax(tuple(ev_onsets, ev_offsets, ev_classes), (version_time, label_version)) AS e"
            " FROM label_versions WHERE project = {project:String} AND dataset = {dataset:String}"
            f" AND {scope} GROUP BY frame_id)"
        )
        if view.inference_set:
            sql += (
                " UNION ALL SELECT 1, frame_id, ev_onsets, ev_offsets, ev_classes, ev_scores FROM inferences FINAL"
                " WHERE project = {project:String} AND inference_set = {set:String} AND dataset = {dataset:String}"
                f" AND {scope}"
            )
        for kind, frame, onsets, offsets, classes, scores in metrics.query_ids(sql, params, "ids", ids):
            evs = [
                SoundEvent(float(a), float(b), int(c), float(scores[i]) if kind and i < len(scores) else None)
                for i, (a, b, c) in enumerate(zip(onsets, offsets, classes, strict=True))
            ]
            (predicted if kind else labels)[str(frame)] = sorted(evs, key=lambda e: (e.onset, e.offset, e.class_id))
    return scenes, labels, predicted
