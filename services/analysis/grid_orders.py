"""The grid's pages of a large set sorted by a prediction field or the capture time, at any depth and with any filter:
each sort of the set kept whole, in page order.

A page of the example grid sorted by loss, confidence, margin or capture time sorts the whole set on the call: at 10M
frames 0.3 to 1 s a page, however few rows it shows. For an inference set of more than ``sorted_pages_above`` frames,
once its data has settled, the preparer (:mod:`shoal.analysis.prepared`) writes every frame with the sort's field into
``grid_listings``, once per sort (each of :data:`SORTED_FIELDS`, up and down), keyed by the field's value (a capture
time's in milliseconds; negated for a descending sort) and the frame id, with every column the grid's filters and page
read (:data:`shoal.common.data.query.ROW_COLUMNS`). A page is then the listing's rows after the cursor, read in the
key's order until it holds the page: the filter (a split, the wrong predictions, a class, a confidence range, a metadata
value, a segment, or any of them together) is applied to the rows as they are read, and the first page costs what the
millionth does. The count of a filter that is one range of a sort's field (the grid's slider of confidence, loss or
margin) is read from the key's range of that sort (:func:`range_count`), a read of the key alone. Each field's first
sort is also counted by bucket of its key and by split, class, predicted class and correctness
(``grid_listing_counts``): a range with conditions on those, or those conditions alone, is counted from the counts, and
from the rows of the buckets the range's bounds fall in; so are the frames below a confidence threshold, by class or
split (:func:`below_threshold`), from which the Performance page at that threshold is derived. A range beside conditions
those counts do not hold (a second range, a metadata value, a negation) is counted from the sort's rows in the range
when they are few (:func:`rows_count`), and a page of a filter few frames pass is read from them, sorted
(:func:`narrow_listings`).

What was written is a *build*, named by the view it was read through and the versions of the tables under it
(:data:`shoal.common.data.query.VIEW_TABLES`); a page uses the build of the tables' current versions only, so an
upload, a relabel or a segment's change leaves the build unused until the preparer has written the next (and removed
the ones before), minutes at 10M frames. Until then a *patch* stands in for it (:func:`patch`): the frames whose
rows were written since a complete build, found by the block numbers ``evaluations`` keeps for each row
(``enable_block_number_column``), with their rows as they are now, sorted as the build's. A page reads the build's
rows after the cursor leaving those frames out, and the patch's rows after the cursor, and merges the two in the
key's order; a range's count is the build's, less the changed frames' rows there in the build, plus the patch's.
A patch is written by the preparer once the set's rows settle, when at most :data:`PATCHED_AT_MOST` frames changed
(and at most a :data:`PATCHED_SHARE` of the build's) and no mutation rewrote the table since the build.
:func:`page` returns None when there is neither.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import operator
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError
from prometheus_client import Counter

from shoal.common.data.query import (
    PAGE_COLUMNS,
    ROW_COLUMNS,
    SETTINGS,
    Params,
    View,
    cell_of,
    compile_filter,
    view_sql,
)
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.v1 import common_pb2

log = logging.getLogger(__name__)

WRITTEN = Counter(
    "shoal_grid_orders_written_total",
    "Sorts of the example grid the preparer wrote whole for large sets (shoal.analysis.grid_orders): every frame of "
    "an inference set in the order of a prediction field, up or down, written after the set's data changed.",
)
COUNTED_BY_BUCKET = Counter(
    "shoal_grid_orders_counted_by_bucket_total",
    "Counts of the example grid (a split, a class or the right or wrong predictions, with or without a range of a "
    "prediction field) read from a large set's sort counted by bucket of its key (shoal.analysis.grid_orders), not "
    "from every frame of the set.",
)
#: sets of more frames than this keep their listings (the ``sorted_pages_above`` setting's default): a
#: page of a smaller set sorts it in tens of milliseconds
KEPT_ABOVE = 500_000
#: a page of a filter that keeps to a confusion cell and passes fewer than one frame in this many of the listing's
#: sorts the cell's rows (``evaluations_by_cell``): a listing passes over this many rows per row it shows
SPARSE = 1_000
#: the grid's sorts kept by a field of the prediction, whose ranges are counted from them (a page by frame id reads
#: the table in order)
FIELDS = ("loss", "confidence", "margin")
#: every field the grid's sorts are kept by: those and the capture time (its key the time in milliseconds; its ranges
#: are counted from the frames counted by hour, ``shoal.analysis.grid_values``)
SORTED_FIELDS = (*FIELDS, "capture_time")
#: the order the sorts are written in after a change of the data: the worst predictions first (the grid's most
#: asked sorts after frame id), so that those pages read their sort soonest; the capture time last, newest first
WRITTEN_FIRST = (("loss", True), ("confidence", False), ("margin", False), ("loss", False), ("confidence", True),
                 ("margin", True), ("capture_time", True), ("capture_time", False))  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = (*ROW_COLUMNS, "confidence")
#: a comparison's listing's columns beside those (:mod:`shoal.analysis.grid_compare`)
_BASE_COLUMNS = ("base_pred_raw", "base_confidence")
#: a build's name (:func:`build_id`), written into the statement that drops its rows
_BUILD = re.compile(r"[0-9a-f]{32}")
PATCHED = Counter(
    "shoal_grid_orders_patched_total",
    "Pages and counts of the example grid read from a large set's sorts patched with the frames written since they "
    "were (shoal.analysis.grid_orders), while the sorts of the set as it is now are written.",
)
#: a set's sorts are patched while at most this many of its frames were written since the build, and at most this
#: share of the build's frames (past it the patch costs as much as the sorts written again): each page leaves them
#: out of the build's rows (their ids, read once per patch and kept in the process)
PATCHED_AT_MOST = 1_000_000
PATCHED_SHARE = 0.25
#: a patch's listings of every frame written since its build, and of their rows now (with the listings of each sort
#: and, named :func:`_was`, those frames' rows in the build's)
_CHANGED, _ROWS = "changed", "rows"
#: the columns of a patch's listings of the changed frames' rows in its build's (:func:`_was`): the sorts' fields, and
#: those the counts by bucket are kept by (a count through the patch takes those rows' from the build's counts)
_BEFORE = (*FIELDS, "split", "label_class", "pred_raw")
_BUILD_COLUMNS = ["project", "inference_set", "dataset", "build", "listing", "rows", "view", "block", "mutation",
                  "base", "stands_for"]  # fmt: skip
#: the servers whose ``evaluations`` could not be made to keep block numbers (warned once)
_NO_BLOCK_NUMBERS: set[tuple[str, str]] = set()
_MERGE = "full_sorting_merge"
#: the frames of the patches read last, by server, set and patch: at most :data:`PATCHED_AT_MOST` frames in all
#: (about 100 MB), the newest patch kept whatever its size
_CHANGED_READ: OrderedDict[tuple[str, ...], frozenset[str]] = OrderedDict()
_CHANGED_LOCK = threading.Lock()
#: the most rows of a listing's key and frame id a page reads at first to find its frames past the patch's (a patch
#: of more frames leaves them out in the statement instead)
NARROW_ROWS = 25_000

MIGRATIONS = (
    Migration(
        component="analysis",
        version=18,
        name="the grid's sorted pages of large sets",
        statements=(
            # replacing: two replicas that write the same build write the same rows
            "CREATE TABLE IF NOT EXISTS grid_orders ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " build String, listing LowCardinality(String), key Float64, frame_id String,"
            " split LowCardinality(String), media_uri String, label_class Nullable(Int32),"
            " predicted_class Nullable(Int32), confidence Nullable(Float64), loss Nullable(Float64),"
            " margin Nullable(Float64), probs Array(Float32), meta_str Map(LowCardinality(String), String),"
            " meta_num Map(LowCardinality(String), Float64), meta_bool Map(LowCardinality(String), UInt8),"
            " meta_time Map(LowCardinality(String), DateTime64(3, 'UTC')))"
            " ENGINE = ReplacingMergeTree ORDER BY (project, inference_set, dataset, build, listing, key, frame_id)",
            # a listing is used once its row here is written, after its rows
            "CREATE TABLE IF NOT EXISTS grid_order_listings ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " build String, listing LowCardinality(String), total UInt64, kept UInt64)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, inference_set, dataset, build, listing)",
        ),
    ),
    Migration(
        component="analysis",
        version=26,
        name="the grid's sorts of large sets kept whole",
        statements=(
            # the first rows of each sort, kept before: the preparer writes the whole sorts anew
            "DROP TABLE IF EXISTS grid_orders",
            "DROP TABLE IF EXISTS grid_order_listings",
            "CREATE TABLE IF NOT EXISTS grid_listings ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " build String, listing LowCardinality(String), key Float64,"
            " frame_id String, split LowCardinality(String), media_uri String, media_type LowCardinality(String),"
            " capture_time Nullable(DateTime64(3, 'UTC')), meta_str Map(LowCardinality(String), String),"
            " meta_num Map(LowCardinality(String), Float64), meta_bool Map(LowCardinality(String), UInt8),"
            " meta_time Map(LowCardinality(String), DateTime64(3, 'UTC')), label_class Nullable(Int32),"
            " pred_raw Nullable(Int32), probs Array(Float32), loss Nullable(Float64), margin Nullable(Float64),"
            " true_rank Nullable(UInt16), confidence Nullable(Float64), width UInt32, height UInt32)"
            # a page reads the key's order without FINAL, leaving out a second replica's rows until merged; a
            # build's rows are a partition of their own, dropped whole when the build is no longer read
            " ENGINE = ReplacingMergeTree PARTITION BY build"
            " ORDER BY (project, inference_set, dataset, build, listing, key, frame_id)",
            # a listing is used once its row here is written, after its rows; a build's row of listing '' is
            # written before its first listing's rows (so that a build cut short is found and removed)
            "CREATE TABLE IF NOT EXISTS grid_listing_builds ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " build String, listing LowCardinality(String), rows UInt64)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, inference_set, dataset, build, listing)",
        ),
    ),
    Migration(
        component="analysis",
        version=30,
        name="the grid's sorts of large sets patched by the frames written since",
        statements=(
            # a build's view (its name without the tables' versions), and the newest block and mutation of
            # evaluations it was read at (block -1: the table kept no block numbers then, so no patch builds on it)
            "ALTER TABLE grid_listing_builds ADD COLUMN IF NOT EXISTS view String DEFAULT ''",
            "ALTER TABLE grid_listing_builds ADD COLUMN IF NOT EXISTS block Int64 DEFAULT -1",
            "ALTER TABLE grid_listing_builds ADD COLUMN IF NOT EXISTS mutation Int64 DEFAULT -1",
            # a patch's build it patches, and the build (of the tables' versions then) it stands in for
            "ALTER TABLE grid_listing_builds ADD COLUMN IF NOT EXISTS base String DEFAULT ''",
            "ALTER TABLE grid_listing_builds ADD COLUMN IF NOT EXISTS stands_for String DEFAULT ''",
        ),
    ),
    Migration(
        component="analysis",
        version=31,
        name="the counts of a large set's sorts by bucket of the key",
        statements=(
            # a build's sort of a field in buckets of its key: in each, the frames of each split, class, predicted
            # class and correctness, and the lowest and highest key of those; written once after the sort (a
            # second write doubles the rows, which a count finds against the sort's and leaves unread)
            "CREATE TABLE IF NOT EXISTS grid_listing_counts ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " build String, listing LowCardinality(String), bucket Float64, min_key Float64, max_key Float64,"
            " split LowCardinality(String), label_class Nullable(Int32), predicted_class Nullable(Int32),"
            " correct Nullable(UInt8), rows UInt64)"
            " ENGINE = MergeTree PARTITION BY build ORDER BY (project, inference_set, dataset, build, listing, bucket)",
        ),
    ),
    Migration(
        component="analysis",
        version=32,
        name="a large set's frames counted by metadata value",
        statements=(
            # a build's frames by metadata value (kind '': every frame) and by what the grid's filters and sorts
            # read (shoal.analysis.grid_values); written once per build (a second write doubles the rows, which a
            # read finds against the frames recorded with the build, and leaves unread)
            "CREATE TABLE IF NOT EXISTS grid_value_counts ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " build String, kind LowCardinality(String), key String, value String, split LowCardinality(String),"
            " label_class Nullable(Int32), predicted_class Nullable(Int32), correct Nullable(UInt8),"
            " has_loss UInt8, has_confidence UInt8, has_margin UInt8, rows UInt64)"
            " ENGINE = MergeTree PARTITION BY build"
            " ORDER BY (project, inference_set, dataset, build, kind, key, value)",
        ),
    ),
    Migration(
        component="analysis",
        version=33,
        name="a large set's sorts counted by metadata value and bucket of their key",
        statements=(
            # a build's sort (of confidence, of loss) counted by metadata value (kind '': every row) and by bucket
            # of its key (of the sort's rows, about grid_values.VALUE_BUCKETS; each named by its lowest key, with the
            # lowest and highest key of its rows so counted), by split, class and correctness (not by predicted
            # class: five times the rows) (shoal.analysis.grid_values); written once per build and sort, checked
            # against the sort's rows when read
            "CREATE TABLE IF NOT EXISTS grid_value_buckets ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " build String, listing LowCardinality(String), kind LowCardinality(String), key String, value String,"
            " bucket Float64,"
            " min_key Float64, max_key Float64, split LowCardinality(String), label_class Nullable(Int32),"
            " correct Nullable(UInt8), rows UInt64)"
            " ENGINE = MergeTree PARTITION BY build"
            " ORDER BY (project, inference_set, dataset, build, listing, kind, key, value, bucket)",
        ),
    ),
    Migration(
        component="analysis",
        version=34,
        name="a large set's frames counted by hour of capture",
        statements=(
            # a build's frames by the hour of their capture time (NULL: none), split, class, correctness and the
            # grid's sort fields they have (shoal.analysis.grid_values); written with the counts by value, once per
            # build (a second write doubles the rows, which a read finds against the frames recorded with the build)
            "CREATE TABLE IF NOT EXISTS grid_time_counts ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " build String, hour Nullable(DateTime('UTC')), split LowCardinality(String),"
            " label_class Nullable(Int32), correct Nullable(UInt8), has_loss UInt8, has_confidence UInt8,"
            " has_margin UInt8, rows UInt64)"
            " ENGINE = MergeTree PARTITION BY build ORDER BY (project, inference_set, dataset, build, hour)"
            " SETTINGS allow_nullable_key = 1",
        ),
    ),
    Migration(
        component="analysis",
        version=35,
        name="a large set's rows beside another set's predictions",
        statements=(
            # a comparison's listings (shoal.analysis.grid_compare): the baseline's prediction of each row
            "ALTER TABLE grid_listings ADD COLUMN IF NOT EXISTS base_pred_raw Nullable(Int32)",
            "ALTER TABLE grid_listings ADD COLUMN IF NOT EXISTS base_confidence Nullable(Float64)",
            # and its counts by split, labeled class, predicted class and the baseline's (at threshold 0), which the
            # comparison's metrics read; written with its listing of every frame, once per build
            "CREATE TABLE IF NOT EXISTS grid_compare_counts ("
            " project LowCardinality(String), inference_set LowCardinality(String), dataset LowCardinality(String),"
            " build String, baseline LowCardinality(String), split LowCardinality(String),"
            " label_class Nullable(Int32), predicted_class Nullable(Int32), baseline_predicted_class Nullable(Int32),"
            " rows UInt64) ENGINE = MergeTree PARTITION BY build"
            " ORDER BY (project, inference_set, dataset, build, baseline)",
        ),
    ),
)
#: the tables of a build, a partition of each
TABLES = (
    "grid_listings",
    "grid_listing_builds",
    "grid_listing_counts",
    "grid_value_counts",
    "grid_value_buckets",
    "grid_time_counts",
    "grid_compare_counts",
)


def build_id(view: View, versions: Sequence[Any]) -> str:
    """The name of what is written for ``view`` under the tables' ``versions``."""
    return _hash((*_view_of(view), tuple(versions), "whole"))


def _view_of(view: View) -> tuple[Any, ...]:
    return (view.project, view.dataset, view.inference_set, tuple(view.ontology), float(view.confidence_threshold))


def _hash(*what: Any) -> str:
    return hashlib.sha256(repr(what if len(what) > 1 else what[0]).encode()).hexdigest()[:32]


def listing_name(field: str, descending: bool) -> str:
    return f"{field} {'desc' if descending else 'asc'}"


def key_sql(field: str, descending: bool, row: str = "") -> str:
    """The expression of a listing's key of the sort by ``field`` (of the row named ``row``, if any): the field's
    value (a capture time's in milliseconds), negated for a descending sort."""
    value = f"{row}{field}"
    if field == "capture_time":
        value = f"toFloat64(toUnixTimestamp64Milli({value}))"
    return f"-{value}" if descending else value


def key_of(field: str, value: Any) -> float:
    """The value of ``field`` as a listing's key holds it (before a descending sort negates it): a capture time in
    milliseconds (exactly: a Float64 holds every millisecond of 285,000 years)."""
    if isinstance(value, datetime):
        at = value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # the store's times are UTC
        return float((at - _EPOCH) // timedelta(milliseconds=1))
    return float(value)


#: every listing of a build, in the order written
LISTINGS = tuple(listing_name(field, descending) for field, descending in WRITTEN_FIRST)
#: the listings also counted by bucket of their key (:func:`_write_counts`): each prediction field's first written,
#: which a count of a range of the field with conditions of :data:`COUNTED_FIELDS` reads, whichever way the grid is
#: sorted
COUNTED = tuple(listing_name(f, d) for i, (f, d) in enumerate(WRITTEN_FIRST)
                if f in FIELDS and f not in dict(WRITTEN_FIRST[:i]))  # fmt: skip
#: the fields a listing's counts by bucket are kept by, which the conditions beside a range may name
COUNTED_FIELDS = ("split", "label_class", "predicted_class", "correct", "labeled")
#: buckets of a listing's key counted (about; their bounds are the key's quantiles): a count reads the counts of
#: every bucket, and the rows of the two its range's bounds fall in (about 10,000 each at 10M frames)
BUCKETS = 1024


def _counts_name(listing: str) -> str:
    """The name a listing's counts by bucket are recorded under in ``grid_listing_builds``."""
    return f"{listing} counts"


def _was(name: str) -> str:
    """A patch's listing of the changed frames' rows in its build's listing ``name`` (their keys, the fields a count
    reads, and the split and classes of their rows then; a patch written before those were kept names it otherwise,
    and is not read)."""
    return f"{name} before"


def usable(view: View, sort: Sequence[Any]) -> tuple[str, bool] | None:
    """(field, descending) of a grid query whose pages a kept listing may answer, or None."""
    if not view.inference_set or view.baseline_inference_set or len(sort) != 1 or sort[0].field not in SORTED_FIELDS:
        return None
    return sort[0].field, bool(sort[0].descending)


class _Read:
    """A listing a page or a count reads: a build's (less the frames a patch holds, when ``without`` names the
    patch), or a patch's."""

    def __init__(self, build: str, listing: str, rows: int, sign: int = 1, without: str = "") -> None:
        self.build, self.listing, self.rows, self.sign, self.without = build, listing, rows, sign, without


def _reads(metrics: MetricsStore, view: View, versions: Sequence[Any], name: str) -> tuple[list[_Read], int] | None:
    """What a page (the listings read, those less the changed frames' rows) or a count (each with its sign) of the
    listing ``name`` reads under the tables' ``versions``, and how many frames the listing holds: the build's own,
    or a patched build's and its patch's; None when neither is written."""
    build = build_id(view, versions)
    # the build's listing, and the patches standing in for the build (one read: a set without either costs one)
    rows = [(b, base, n, frames) for b, base, n, frames, stands_for in _builds(metrics, view, build)
            if (b == build and n == name) or (stands_for == build and n in (name, _was(name)))]  # fmt: skip
    patches: dict[tuple[str, str], dict[str, int]] = {}
    for got, base, listing, n in rows:
        if got == build:
            return [_Read(build, name, n)], n
        patches.setdefault((got, base), {})[listing] = n
    for (patch, base), listings in patches.items():
        if name not in listings or _was(name) not in listings:  # written after the rows of both
            continue
        based = written(metrics, view, base, [name])
        if name not in based:  # the build patched was removed since
            continue
        reads = [_Read(base, name, based[name], without=patch), _Read(patch, _was(name), listings[_was(name)], -1),
                 _Read(patch, name, listings[name])]  # fmt: skip
        return reads, based[name] - listings[_was(name)] + listings[name]
    return None


def page(
    metrics: MetricsStore, view: View, versions: Sequence[Any], field: str, descending: bool,
    flt: common_pb2.Filter, size: int, last: Sequence[Any] | None, passing: int | None = None,
) -> list[tuple[Any, ...]] | None:  # fmt: skip
    """Up to ``size`` + 1 rows that pass ``flt`` after the cursor ``last`` (the sort's value and the frame id) of
    the listing, in the form of :func:`shoal.analysis.datapoints.page_statement`'s rows followed by the frame's
    width and height; None when the tables' current versions have no such listing (nor a patch of one), or when
    the filter keeps to a confusion cell and ``passing`` (how many frames pass it) is under one in :data:`SPARSE`
    of the listing."""
    found = _reads(metrics, view, versions, listing_name(field, descending))
    if found is None:
        return None
    reads, total = found
    if passing is not None and passing * SPARSE < total and cell_of(flt, view) is not None:
        return None  # the cell's own rows, sorted, are fewer than the listing's rows passed over
    parts = [_page_of(metrics, view, r, field, descending, flt, size + 1, last) for r in reads if r.sign > 0]
    if len(parts) == 1:
        return parts[0]
    PATCHED.inc()
    # the build's rows (less the changed frames) and the patch's, each in the key's order: (the key, frame id)
    sign = -1.0 if descending else 1.0
    return list(heapq.merge(*parts, key=lambda r: (sign * key_of(field, r[14]), r[15])))[: size + 1]


def _page_of(
    metrics: MetricsStore, view: View, read: _Read, field: str, descending: bool, flt: common_pb2.Filter, want: int,
    last: Sequence[Any] | None,
) -> list[tuple[Any, ...]]:  # fmt: skip
    """Up to ``want`` rows of one listing that pass ``flt`` after the cursor, in the key's order."""
    params = Params()
    source = view_sql(view, params, listing=(read.build, read.listing))
    where = compile_filter(flt, view, params)
    for c in flt.all:  # a range of the sort's own field: its keys alone read, from the first
        bounds = sort_range(c) if c.field == field else None
        for op, key in key_bounds(bounds or [], descending):
            where += f" AND _key {op} {params.add(key, 'Float64')}"
    # a build's rows less a patch's frames: left out here (a statement's NOT IN doubled a page's read at 10M frames)
    left_out = _changed_frames(metrics, view, read.without) if read.without else frozenset()
    if last is not None:
        key = params.add(-key_of(field, last[0]) if descending else key_of(field, last[0]), "Float64")
        frame = params.add(str(last[1]), "String")
        # an OR of the key's ranges (a tuple comparison is not read through the primary key)
        where += f" AND (_key > {key} OR (_key = {key} AND frame_id > {frame}))"
    select = f"SELECT {PAGE_COLUMNS}, CAST(NULL AS Nullable(Int32)), {field}, frame_id, width, height FROM ({source})"
    # a page's rows, and as many more when a patch's frames are left out (a read costs about the same up to there)
    limit = want + min(want, len(left_out))
    rows = metrics.query(f"{select} WHERE {where} ORDER BY _key, frame_id LIMIT {limit}{SETTINGS}", params.values).rows
    out = _kept([tuple(r) for r in rows], 0, left_out, want)
    if len(out) >= want or len(rows) < limit:
        return out
    # rows passed over: a second replica's, or the patch's frames, which may follow each other by the thousand (the
    # worst losses relabelled): the page's frames found by their key and id alone, then their rows read. Past
    # NARROW_ROWS of the patch's frames, the statement leaves them out as it reads (a set of their ids built for it:
    # 0.25 s for 1M, where reading past 500,000 of them took 1.4 s); below it, the reader does, reading at most as
    # many more rows as the patch holds (20,000 in 25 ms at 10M frames)
    if len(left_out) > NARROW_ROWS:  # twice the page: a second replica's rows are side by side with the first's
        where += f" AND frame_id NOT IN ({_changed_sql(view, params, read.without)})"
        rows = metrics.query(f"{select} WHERE {where} ORDER BY _key, frame_id LIMIT {2 * want}{SETTINGS}",
                             params.values).rows  # fmt: skip
        return _kept([tuple(r) for r in rows], 0, left_out, want)
    limit = max(2 * limit, min(want + len(left_out), NARROW_ROWS))
    while True:
        found = metrics.query(f"SELECT _key, frame_id FROM ({source}) WHERE {where} ORDER BY _key, frame_id"
                              f" LIMIT {limit}{SETTINGS}", params.values).rows  # fmt: skip
        keys = _kept([tuple(r) for r in found], 1, left_out)
        if len(keys) >= want or len(found) < limit:
            break
        limit *= 2
    keys = keys[:want]
    if not keys:
        return []
    lo, hi = params.add(float(keys[0][0]), "Float64"), params.add(float(keys[-1][0]), "Float64")
    ids = params.add([str(k[1]) for k in keys], "Array(String)")
    rows = metrics.query(f"{select} WHERE {where} AND _key >= {lo} AND _key <= {hi} AND frame_id IN {ids}"
                         f" ORDER BY _key, frame_id{SETTINGS}", params.values).rows  # fmt: skip
    return _kept([tuple(r) for r in rows], 0, left_out, want)


def _kept(rows: list[tuple[Any, ...]], frame: int, left_out: frozenset[str], most: int | None = None) -> list[Any]:
    """The rows in the key's order but those of ``left_out`` frames and a second replica's (the frame id at
    ``frame``; two replicas that wrote the same build wrote each row twice, side by side in the key's order)."""
    out = [r for i, r in enumerate(rows) if (i == 0 or r[frame] != rows[i - 1][frame]) and r[frame] not in left_out]
    return out if most is None else out[:most]


def _changed_frames(metrics: MetricsStore, view: View, patch: str) -> frozenset[str]:
    """The frames a patch holds, read once (a patch is written before it is read, and never again)."""
    key = (metrics.where, metrics.database, view.project, view.inference_set, view.dataset, patch)
    with _CHANGED_LOCK:
        found = _CHANGED_READ.get(key)
        if found is not None:
            _CHANGED_READ.move_to_end(key)
            return found
    params = Params()
    found = frozenset(str(r[0]) for r in metrics.query(_changed_sql(view, params, patch), params.values).rows)
    with _CHANGED_LOCK:
        _CHANGED_READ[key] = found
        while len(_CHANGED_READ) > 1 and sum(map(len, _CHANGED_READ.values())) > PATCHED_AT_MOST:
            _CHANGED_READ.popitem(last=False)
    return found


def _changed_sql(view: View, params: Params, patch: str) -> str:
    """The frames a patch holds (every frame written since its build)."""
    return f"SELECT frame_id FROM grid_listings WHERE {scope(view, params, patch, _CHANGED)}"


def scope(view: View, params: Params, build: str = "", listing: str = "") -> str:
    """The view's set's rows, in a table keyed by project, inference set and dataset (and, given, those of a build
    and of one of its listings: the tables of :data:`TABLES`)."""
    where = (
        f"project = {params.add(view.project, 'String')} AND inference_set = {params.add(view.inference_set, 'String')}"
        f" AND dataset = {params.add(view.dataset, 'String')}"
    )
    where += f" AND build = {params.add(build, 'String')}" if build else ""
    return where + (f" AND listing = {params.add(listing, 'String')}" if listing else "")


def written(metrics: MetricsStore, view: View, build: str, names: Sequence[str] | None = None) -> dict[str, int]:
    """The listings of the view's ``build`` written (of ``names``, when given), with their rows; listing ``''`` marks
    the build begun."""
    wanted = None if names is None else set(names)
    return {
        n: frames
        for b, _, n, frames, _ in _builds(metrics, view, build)
        if b == build and (wanted is None or n in wanted)
    }


#: within :func:`looked_up`, this thread's reads of the builds' table so far, by the view's set and the build
_looked_up = threading.local()


@contextmanager
def looked_up() -> Iterator[None]:
    """Within it, this thread reads the records of a build (and of the patches standing in for it) once: a request
    reading a count and a page looks up the same build two or three times (about 5 ms apiece at 10M frames). A
    listing written meanwhile is read by the next request; one removed meanwhile is as when removed between the
    look-up and the read. The preparer, which writes them, reads them anew each time (outside it)."""
    outer = getattr(_looked_up, "builds", None) is not None
    if not outer:
        _looked_up.builds = {}
    try:
        yield
    finally:
        if not outer:
            _looked_up.builds = None


def _builds(metrics: MetricsStore, view: View, build: str) -> list[tuple[str, str, str, int, str]]:
    """The records of ``build`` of the view's set and those of the patches standing in for it: (build, base,
    listing, rows, stands_for) each; read once within :func:`looked_up`."""
    kept = getattr(_looked_up, "builds", None)
    key = (view.project, view.inference_set, view.dataset, build)
    if kept is not None and key in kept:
        return kept[key]  # type: ignore[no-any-return]
    found = [(str(b), str(base), str(n), int(rows), str(s)) for b, base, n, rows, s in metrics.query(
        "SELECT build, base, listing, rows, stands_for FROM grid_listing_builds FINAL WHERE project = {project:String}"
        " AND inference_set = {set:String} AND dataset = {dataset:String} AND (build = {build:String}"
        " OR stands_for = {build:String}) ORDER BY build",
        {"project": view.project, "set": view.inference_set, "dataset": view.dataset, "build": build},
    ).rows]  # fmt: skip
    if kept is not None:
        kept[key] = found
    return found


def range_count(
    metrics: MetricsStore, view: View, versions: Sequence[Any], flt: common_pb2.Filter, sort: Sequence[Any],
    present: Callable[[Sequence[str]], int],
) -> int | None:  # fmt: skip
    """How many frames pass ``flt`` when it is one range of numbers on a field of the kept sorts (the grid's slider
    of confidence, loss or margin), alone or with conditions on :data:`COUNTED_FIELDS` (a split, a class, a
    predicted class, the right or wrong predictions), or those conditions alone (:func:`_conditions_count`), the grid
    sorted by ``sort`` (frame id, or fields of the kept sorts). The range alone is counted through the key's range of
    the field's sort, a read of the key alone (tens of milliseconds at 10M frames, where a count of the set reads
    every frame); through a patched build, the build's count less the changed frames' there, plus the patch's. With
    other conditions, through the sort's counts by bucket of its key (:func:`_counted`, through a patch too).
    ``present(fields)`` is how many of the set's frames have all the fields (the preparer keeps it for each field
    alone, and for none): the sort's rows must be as many as have its field, none written twice; a sort by another
    field reads that field's presence too (about 0.15 s at 10M), unless every frame with the range's field has it.
    None when this does not apply."""
    ranges = [c for c in flt.all if c.field in FIELDS]
    besides = [c for c in flt.all if c.field not in FIELDS]
    if len(ranges) > 1 or any(c.field not in COUNTED_FIELDS for c in besides):
        return None
    if not ranges:
        return _conditions_count(metrics, view, versions, flt, sort, present) if besides else None
    c = ranges[0]
    bounds = sort_range(c)
    others = {k.field for k in sort} - {c.field, "frame_id"}
    if not bounds or not others <= set(FIELDS):
        return None
    for descending in (False, True):
        name = listing_name(c.field, descending)
        if besides and name not in COUNTED:
            continue
        found = _reads(metrics, view, versions, name)
        if found is None:
            continue
        reads, total = found
        if total != present([c.field]):
            return None
        if others and present([c.field, *sorted(others)]) == total:
            others = set()  # every frame with the range's field has the sort's field as well
        keys = key_bounds(bounds, descending)
        if besides:  # the counts by bucket hold every frame with the field
            return None if others else _counted(metrics, view, reads, keys, flt, besides)
        counted = 0
        for read in reads:
            params = Params()
            where = [scope(view, params, read.build, read.listing)]
            where += [f"key {op} {params.add(key, 'Float64')}" for op, key in keys]
            where += [f"{field} IS NOT NULL" for field in sorted(others)]
            counted += read.sign * int(metrics.query(f"SELECT count() FROM grid_listings WHERE {' AND '.join(where)}",
                                                     params.values).scalar())  # fmt: skip
        if len(reads) > 1:
            PATCHED.inc()
        return counted
    return None


def _bounds(c: common_pb2.Condition) -> list[tuple[float, bool, bool]] | None:
    """A range condition's bounds (the value, whether exclusive, whether the lower), a capture time's in milliseconds
    as its sort's key holds it; None when one is not a number, or not a time of whole milliseconds for the capture
    time (the count of the set says what is wrong with it, or reads the time as the store does)."""
    bounds = []
    for value, exclusive, lower in ((c.range.min, c.range.min_exclusive, True),
                                    (c.range.max, c.range.max_exclusive, False)):  # fmt: skip
        kind = value.WhichOneof("kind")
        if kind is None:
            continue
        if c.field == "capture_time" and kind == "timestamp_value":
            at = value.timestamp_value
            if at.nanos % 1_000_000:
                return None
            bounds.append((float(at.seconds * 1000 + at.nanos // 1_000_000), exclusive, lower))
            continue
        if kind != "number_value":
            return None
        bounds.append((float(value.number_value), exclusive, lower))
    return bounds


def sort_range(c: common_pb2.Condition) -> list[tuple[float, bool, bool]] | None:
    """The bounds (:func:`_bounds`) of a condition that is a range of numbers on a field of the kept sorts (or of
    times, on the capture time), not negated (a kept sort's keys hold it); None for any other condition."""
    if c.field not in SORTED_FIELDS or c.negate or c.WhichOneof("op") != "range":
        return None
    return _bounds(c)


def _range_reads(
    metrics: MetricsStore, view: View, versions: Sequence[Any], flt: common_pb2.Filter,
    present: Callable[[Sequence[str]], int],
) -> Iterator[tuple[str, list[_Read], list[tuple[str, float]]]]:  # fmt: skip
    """For each range of a kept sort's field in ``flt`` (not negated), in turn: the field, the reads of its first
    written sort under ``versions`` (a build's, or a patched build's and its patch's) and the range as bounds of that
    sort's key; nothing more once a sort's rows are not as many as the set's frames with its field."""
    for c in flt.all:
        bounds = sort_range(c)
        if not bounds:
            continue
        for descending in (False, True):
            found = _reads(metrics, view, versions, listing_name(c.field, descending))
            if found is None:
                continue
            if found[1] != present([c.field]):
                return
            yield c.field, found[0], key_bounds(bounds, descending)
            break


def too_wide(e: ClickHouseError) -> bool:
    """Whether the store refused a read of more rows than :data:`RANGE_ROWS_AT_MOST` (or the bound a read was given)."""
    return "TOO_MANY_ROWS" in str(e)


def rows_count(
    metrics: MetricsStore, view: View, versions: Sequence[Any], flt: common_pb2.Filter, sort: Sequence[Any],
    present: Callable[[Sequence[str]], int],
) -> int | None:  # fmt: skip
    """How many frames pass ``flt`` when it holds a range of a kept sort's field beside conditions the counts do not
    answer (:func:`range_count`): a second range, a metadata value, a capture time, a segment, a negated condition.
    The rows of the field's sort in the range's keys that pass the whole filter, read when those keys hold at most
    :data:`RANGE_ROWS_AT_MOST` rows (ClickHouse refuses a wider read from the sort's index before it reads a row;
    each of the filter's ranges is tried in turn); through a patch, the build's rows less the changed frames, plus
    the patch's. ``present`` as for :func:`range_count`. None when no range is narrow enough or no sort is written."""
    others = {k.field for k in sort} - {"frame_id"}
    if not others <= set(SORTED_FIELDS):
        return None
    for field, reads, keys in _range_reads(metrics, view, versions, flt, present):
        missing = sorted(others - {field})
        if missing and present([field, *missing]) == present([field]):
            missing = []  # every frame with the range's field has the sort's fields as well
        try:
            counted = sum(_rows_in_keys(metrics, view, r, flt, keys, missing) for r in reads if r.sign > 0)
        except ClickHouseError as e:
            if not too_wide(e):
                raise
            continue  # too wide: the filter's next range, if any
        ROWS_COUNTED.labels("patched" if len(reads) > 1 else "build").inc()
        return counted
    return None


def narrow_listings(
    metrics: MetricsStore, view: View, versions: Sequence[Any], flt: common_pb2.Filter,
    present: Callable[[Sequence[str]], int],
) -> list[tuple[tuple[str, str], list[tuple[str, float]]]]:  # fmt: skip
    """The listings (build, name) of the kept sorts of ``flt``'s ranges, each with the range as bounds of its key
    (``_key`` of :func:`shoal.common.data.query.view_sql` with the listing), that a page of a filter few frames pass
    may read in place of the set, in any order: a build's, unpatched (see :func:`_range_reads`)."""
    return [((reads[0].build, reads[0].listing), keys)
            for _, reads, keys in _range_reads(metrics, view, versions, flt, present) if len(reads) == 1]  # fmt: skip


def _rows_in_keys(
    metrics: MetricsStore, view: View, read: _Read, flt: common_pb2.Filter, keys: Sequence[tuple[str, float]],
    missing: Sequence[str],
) -> int:  # fmt: skip
    """How many of a listing's rows in ``keys`` that have the fields ``missing`` pass ``flt`` (a build's less the
    frames its patch holds), reading at most :data:`RANGE_ROWS_AT_MOST` rows (more raise ``TOO_MANY_ROWS``)."""
    params = Params()
    source = view_sql(view, params, listing=(read.build, read.listing))
    where = [compile_filter(flt, view, params)]
    where += [f"_key {op} {params.add(key, 'Float64')}" for op, key in keys]
    where += [f"{field} IS NOT NULL" for field in missing]
    if read.without:
        where.append(f"frame_id NOT IN ({_changed_sql(view, params, read.without)})")
    return int(metrics.query(
        f"SELECT count() FROM ({source}) WHERE {' AND '.join(where)}{SETTINGS},"
        f" max_rows_to_read = {int(RANGE_ROWS_AT_MOST)}, read_overflow_mode = 'throw'", params.values,
    ).scalar())  # fmt: skip


def _conditions_count(
    metrics: MetricsStore, view: View, versions: Sequence[Any], flt: common_pb2.Filter, sort: Sequence[Any],
    present: Callable[[Sequence[str]], int],
) -> int | None:  # fmt: skip
    """How many frames pass ``flt``, conditions on :data:`COUNTED_FIELDS` alone (a predicted class in a split, say,
    which the preparer does not count), from the counts by bucket of a sort that holds every frame of the set (and
    every frame has the fields the grid is sorted by); None when no such sort is written."""
    every = present([])
    by = sorted({k.field for k in sort} - {"frame_id"})
    if not set(by) <= set(FIELDS) or (by and present(by) != every):
        return None
    for name in COUNTED:
        found = _reads(metrics, view, versions, name)
        if found is not None and found[1] == every:
            return _counted(metrics, view, found[0], (), flt, flt.all)
    return None


def _counted(
    metrics: MetricsStore, view: View, reads: Sequence[_Read], keys: Sequence[tuple[str, float]],
    flt: common_pb2.Filter, besides: Sequence[common_pb2.Condition],
) -> int | None:  # fmt: skip
    """How many frames pass ``flt`` in a counted listing's ``reads``: the build's counts by bucket
    (:func:`_bucket_count`) and, through a patch, less the changed frames' rows there, plus theirs now (each
    listing's rows counted, at most :data:`PATCHED_AT_MOST`). None when the build's counts cannot be read."""
    patched = {r.build for r in reads[1:]}
    counted = 0
    for read in reads:
        n = _listing_count(metrics, view, read, flt) if read.build in patched else \
            _bucket_count(metrics, view, read, keys, flt, besides)  # fmt: skip
        if n is None:
            return None
        counted += read.sign * n
    if patched:
        PATCHED.inc()
    return counted


def _listing_count(
    metrics: MetricsStore,
    view: View,
    read: _Read,
    flt: common_pb2.Filter,
    spans: Sequence[tuple[float, float]] = (),
    keys: Sequence[tuple[str, float]] = (),
) -> int:
    """How many of a listing's rows pass ``flt``: a patch's (its frames, at most :data:`PATCHED_AT_MOST`), or those
    of a build's keys in ``spans`` (each the lowest and highest key of a bucket, read by the key) and in ``keys``
    (the bounds of a range of the listing's key, :func:`key_bounds`, which narrow the read to the range's)."""
    params = Params()
    source = view_sql(view, params, listing=(read.build, read.listing))
    where = compile_filter(flt, view, params)
    where += "".join(f" AND _key {op} {params.add(key, 'Float64')}" for op, key in keys)
    if spans:
        where += " AND (" + " OR ".join(f"(_key >= {params.add(lo, 'Float64')} AND _key <= {params.add(hi, 'Float64')})"
                                        for lo, hi in spans) + ")"  # fmt: skip
    return int(metrics.query(f"SELECT count() FROM ({source}) WHERE {where}{SETTINGS}", params.values).scalar())


#: a bound of a listing's key (:func:`key_bounds`) as a test of a key
_HOLDS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                     "<=": operator.le}  # fmt: skip


def key_bounds(bounds: Sequence[tuple[float, bool, bool]], descending: bool) -> list[tuple[str, float]]:
    """A range's bounds of the value (the value, whether exclusive, whether the lower) as bounds of a listing's key:
    the value (up) or its negation (down), where a lower bound of the value bounds the key above."""
    keys = []
    for value, exclusive, lower in bounds:
        above = lower != descending
        op = (">" if exclusive else ">=") if above else ("<" if exclusive else "<=")
        keys.append((op, -value if descending else value))
    return keys


def _bucket_count(
    metrics: MetricsStore, view: View, read: _Read, keys: Sequence[tuple[str, float]], flt: common_pb2.Filter,
    besides: Sequence[common_pb2.Condition],
) -> int | None:  # fmt: skip
    """How many frames pass ``flt`` (the range of the listing's field, ``keys``, and the conditions ``besides`` it,
    on :data:`COUNTED_FIELDS`), from the listing's counts by bucket: the counts that pass ``besides`` in each bucket
    whose lowest and highest keys are in the range, and the frames that pass ``flt`` among the rows of the buckets
    the range's bounds fall in, read by their key. 20 to 80 ms at 10M frames on a first call, where the set's count
    reads the fields of every frame (0.15 to 0.38 s). None when the counts are not written, or written twice (their
    frames are not the listing's)."""
    params = Params()
    passing = compile_filter(common_pb2.Filter(all=besides), view, params)
    buckets = metrics.query(
        f"SELECT min(min_key), max(max_key), sum(rows), sumIf(rows, {passing}) FROM grid_listing_counts"
        f" WHERE {scope(view, params, read.build, read.listing)} GROUP BY bucket",
        params.values,
    ).rows
    if sum(int(b[2]) for b in buckets) != read.rows:
        return None
    counted = in_buckets(metrics, view, read.build, read.listing, flt, keys, [(b[0], b[1], b[3]) for b in buckets])
    COUNTED_BY_BUCKET.inc()
    return counted


def in_buckets(
    metrics: MetricsStore, view: View, build: str, listing: str, flt: common_pb2.Filter,
    keys: Sequence[tuple[str, float]], buckets: Sequence[tuple[float, float, int]],
) -> int:  # fmt: skip
    """How many of a build's listing's rows pass ``flt`` (a range of the listing's key, ``keys``, and other
    conditions), given ``buckets`` of its key: keys at or below and at or above those of a bucket's rows that pass
    the conditions besides the range, and how many those are. A bucket whose keys are all in the range counts its
    rows; one the range's bounds fall in, the listing's rows between its keys (and in the range) that pass ``flt``,
    read by their key."""
    counted, straddled = 0, []
    for low, high, n in buckets:
        if not n:
            continue
        ends = [(_HOLDS[op](float(low), key), _HOLDS[op](float(high), key)) for op, key in keys]
        if any(not a and not b for a, b in ends):  # both ends past one bound: none of its keys in the range
            continue
        if all(a and b for a, b in ends):  # the range is convex: every key between the ends is in it
            counted += int(n)
        else:
            straddled.append((float(low), float(high)))
    if straddled:
        counted += _listing_count(metrics, view, _Read(build, listing, 0), flt, straddled, keys)
    return counted


THRESHOLDS = Counter(
    "shoal_grid_orders_thresholds_total",
    "A large set's classification report or slices by split at a confidence threshold derived from those at 0 and "
    "the confidence sort's counts by bucket, not read from every frame of the set.",
    ["metrics"],
)
#: the most rows of a sort's key range a count of a filter the counts do not answer reads (:func:`rows_count`)
RANGE_ROWS_AT_MOST = 1_000_000
ROWS_COUNTED = Counter(
    "shoal_grid_orders_rows_counted_total",
    "Grid counts of a large set's filter with a narrow range of a sort's field read from that sort's rows in the "
    "range (a build's, or a build's and its patch's), not from every frame of the set.",
    ["read"],
)
#: the conditions a threshold's counts (:func:`below_threshold`) may be filtered by: those whose frames do not
#: change with the threshold (a frame's predicted class and correctness do)
THRESHOLD_FIELDS = ("split", "label_class", "labeled")
#: the counted sort a threshold's counts read: confidence, up (its key is the confidence)
BY_CONFIDENCE = listing_name("confidence", False)


def confidence_listing(metrics: MetricsStore, view: View, versions: Sequence[Any]) -> tuple[str, str] | None:
    """The listing (build, name) of the view's set sorted by confidence up written whole under the tables'
    ``versions`` (unpatched), whose first rows are the frames below a threshold in order of their key; None if not."""
    found = _reads(metrics, replace(view, confidence_threshold=0.0), versions, BY_CONFIDENCE)
    if found is None or len(found[0]) != 1:
        return None
    return found[0][0].build, found[0][0].listing


def below_threshold(
    metrics: MetricsStore, view: View, versions: Sequence[Any], flt: common_pb2.Filter, threshold: float,
    by: Sequence[str],
) -> tuple[dict[tuple[Any, ...], int], dict[tuple[Any, ...], int]] | None:  # fmt: skip
    """The frames of ``view`` (at threshold 0) with a prediction that pass ``flt`` (conditions on
    :data:`THRESHOLD_FIELDS`), and those of them whose confidence is below ``threshold`` (a threshold's abstentions),
    each by the values of ``by`` (of split, label_class, predicted_class, correct: their values at threshold 0), from
    the confidence sort's counts by bucket: the buckets wholly below, and the rows of the one the threshold falls in
    read by their key; through a patch, less the changed frames' rows there, plus theirs now. A metric at any
    threshold is then the metric at 0 with those frames abstaining (:func:`shoal.analysis.classification.at_threshold`),
    where reading the set at the threshold reads every frame (0.15 to 0.61 s at 10M frames). None when the view has a
    threshold or the filter other conditions, or the sort or its counts are not written under ``versions``."""
    if view.confidence_threshold or any(c.field not in THRESHOLD_FIELDS for c in flt.all):
        return None
    found = _reads(metrics, view, versions, BY_CONFIDENCE)
    if found is None:
        return None
    every: dict[tuple[Any, ...], int] = {}
    below: dict[tuple[Any, ...], int] = {}
    patched = {r.build for r in found[0][1:]}
    for read in found[0]:
        rows = _listing_below(metrics, view, read, flt, threshold, by) if read.build in patched else \
            _buckets_below(metrics, view, read, flt, threshold, by)  # fmt: skip
        if rows is None:
            return None
        for *values, n, under in rows:
            group = tuple(values)
            every[group] = every.get(group, 0) + read.sign * int(n)
            below[group] = below.get(group, 0) + read.sign * int(under)
    if patched:
        PATCHED.inc()
    COUNTED_BY_BUCKET.inc()
    return every, below


def _listing_below(
    metrics: MetricsStore, view: View, read: _Read, flt: common_pb2.Filter, threshold: float, by: Sequence[str],
    low: float | None = None,
) -> list[tuple[Any, ...]]:  # fmt: skip
    """A listing's rows that pass ``flt`` (given ``low``, those of a key from it and below the threshold), by ``by``:
    (*values, rows, rows of a key below ``threshold``)."""
    params = Params()
    source = view_sql(view, params, listing=(read.build, read.listing))
    where = compile_filter(flt, view, params)
    t = params.add(threshold, "Float64")
    if low is not None:  # the keys from ``low`` below the threshold alone
        where += f" AND _key >= {params.add(low, 'Float64')} AND _key < {t}"
    groups = ", ".join(by)
    return metrics.query(
        f"SELECT {groups}, count(), countIf(_key < {t}) FROM ({source}) WHERE {where} GROUP BY {groups}{SETTINGS}",
        params.values,
    ).rows


def _buckets_below(
    metrics: MetricsStore, view: View, read: _Read, flt: common_pb2.Filter, threshold: float, by: Sequence[str]
) -> list[tuple[Any, ...]] | None:
    """:func:`_listing_below` of a build's listing from its counts by bucket (None when they are not its rows): the
    counts of the buckets wholly below the threshold, and the rows below it of the bucket it falls in, read by their
    key. A bucket is named by its lowest bound (:func:`_write_counts`) and holds the keys up to the next one: the
    threshold falls in the highest bucket at or below it, and every bucket below that one is below it. One read of
    the counts (the bucket found in it), one of the listing's rows of a bucket."""
    params = Params()
    passing = compile_filter(flt, view, params)
    where = scope(view, params, read.build, read.listing)
    t = params.add(threshold, "Float64")
    groups = ", ".join(by)
    rows = metrics.query(
        f"WITH (SELECT maxOrNull(bucket) FROM grid_listing_counts WHERE {where} AND bucket <= {t}) AS straddled"
        f" SELECT {groups}, sum(rows), sumIf(rows, {passing}), sumIf(rows, {passing} AND bucket < straddled),"
        f" any(straddled) FROM grid_listing_counts WHERE {where} GROUP BY {groups}",
        params.values,
    ).rows
    if sum(int(r[-4]) for r in rows) != read.rows:
        return None
    counted = {tuple(r[:-4]): [int(r[-3]), int(r[-2])] for r in rows if int(r[-3])}
    low = rows[0][-1] if rows else None
    if low is not None:
        for *values, _, under in _listing_below(metrics, view, read, flt, threshold, by, float(low)):
            counted.setdefault(tuple(values), [0, 0])[1] += int(under)
    return [(*group, n, under) for group, (n, under) in counted.items()]


def block_numbers(metrics: MetricsStore) -> bool:
    """Whether ``evaluations`` keeps each row's block number through merges (``enable_block_number_column``), which
    a patch finds the frames written since its build by; turned on here when it is not (a server without the
    setting keeps no patches: its pages are read from the set after a change until the next build)."""
    created = metrics.query(
        "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = 'evaluations'"
    ).rows
    if not created or "enable_block_number_column = 1" in str(created[0][0]):
        return bool(created)
    where = (metrics.where, metrics.database)
    if where in _NO_BLOCK_NUMBERS:
        return False
    try:
        metrics.command("ALTER TABLE evaluations MODIFY SETTING enable_block_number_column = 1")
    except ClickHouseError as e:  # an older server: the pages after a change are read from the set until the next build
        _NO_BLOCK_NUMBERS.add(where)
        log.warning("evaluations cannot keep block numbers (%s): the grid's sorts of large sets are not patched", e)
        return False
    return True


def record(
    metrics: MetricsStore, view: View, build: str, listing: str, rows: int, *, block: int, mutation: int,
    base: str = "", stands_for: str = "",
) -> None:  # fmt: skip
    """Writes a listing's row in ``grid_listing_builds``: the build's view, the newest block of ``evaluations`` and
    its mutation the build was read at (block -1: the table kept no block numbers), the build a patch patches and the
    one it stands in for."""
    metrics.insert("grid_listing_builds",
                   [[view.project, view.inference_set, view.dataset, build, listing, rows, _hash(_view_of(view)),
                     block, mutation, base, stands_for]], _BUILD_COLUMNS)  # fmt: skip


def count_rows(metrics: MetricsStore, view: View, build: str, listing: str) -> int:
    params = Params()
    return int(metrics.query(f"SELECT count() FROM grid_listings WHERE {scope(view, params, build, listing)}",
                             params.values).scalar())  # fmt: skip


def insert_rows(
    metrics: MetricsStore, view: View, build: str, listing: str, key: str, where: str, params: Params, frames: str = ""
) -> None:  # fmt: skip
    """Writes the view's rows that pass ``where`` (over the view as ``v``) as ``listing`` of ``build``, keyed by the
    expression ``key``, each with its frame's size, which a page shows (a merge of the two tables in frame id
    order; with ``frames``, a statement of frame ids, those frames' alone, whose few sizes a hash join looks up, twice
    as fast). A write cut short and written again, or written by two replicas, leaves rows twice until merged."""
    source = view_sql(view, params)
    if frames:  # read through the view's key, before the join
        source = f"SELECT * FROM ({source}) WHERE frame_id IN ({frames})"
    # a view with a baseline: each row with the baseline's prediction (shoal.analysis.grid_compare)
    columns = ", ".join((*_COLUMNS, *(_BASE_COLUMNS if view.baseline_inference_set else ())))
    into = [params.add(v, "String") for v in (view.project, view.inference_set, view.dataset, build, listing)]
    only = f" AND frame_id IN ({frames})" if frames else ""
    sizes = f"SELECT frame_id, width, height FROM frames FINAL WHERE project = {into[0]} AND dataset = {into[2]}{only}"
    metrics.command(
        f"INSERT INTO grid_listings (project, inference_set, dataset, build, listing, key, {columns},"
        f" width, height) SELECT {', '.join(into)}, {key}, {', '.join(f'v.{c}' for c in columns.split(', '))},"
        f" ifNull(s.width, 0), ifNull(s.height, 0) FROM ({source}) AS v LEFT JOIN ({sizes}) AS s"
        f" ON s.frame_id = v.frame_id WHERE {where}{SETTINGS}, join_algorithm = '{'hash' if frames else _MERGE}'",
        params.values,
    )


def bucket_edges(metrics: MetricsStore, view: View, build: str, listing: str, buckets: int) -> tuple[int, list[float]]:
    """A written listing's rows, and the lowest bounds of about ``buckets`` buckets of its key (the key's quantiles;
    the lowest, the least key), as :func:`bucket_of` reads them."""
    params = Params()
    source = view_sql(view, params, listing=(build, listing))
    levels = ", ".join(repr(i / buckets) for i in range(1, buckets))
    rows, edges = metrics.query(f"SELECT count(), arraySort(arrayDistinct(arrayPushFront(quantiles({levels})(_key),"
                                f" min(_key)))) FROM ({source}){SETTINGS}", params.values).rows[0]  # fmt: skip
    return int(rows), [float(e) for e in edges]


def bucket_of(edges: Sequence[float], params: Params) -> str:
    """The bucket of a listing's row (``_key``) by the lowest bounds ``edges`` (:func:`bucket_edges`): the highest
    at or below its key (a key below the lowest is rounded up to it: the lowest is the least key)."""
    return f"roundDown(_key, {params.add(list(edges), 'Array(Float64)')})"


def _write_counts(metrics: MetricsStore, view: View, build: str, listing: str) -> int:
    """Writes the counts of a written listing by bucket of its key (about :data:`BUCKETS`, bounded by the key's
    quantiles) and by each of :data:`COUNTED_FIELDS`' values, with the lowest and highest key of each; returns how
    many rows they count (the listing's). One read of the key, then one of the listing's rows (about 1.5 s at 10M
    frames, where the listing took 25 to 35 s)."""
    first, edges = bucket_edges(metrics, view, build, listing, BUCKETS)
    if not first:
        return 0
    params = Params()
    source = view_sql(view, params, listing=(build, listing))
    into = ", ".join(params.add(v, "String") for v in (view.project, view.inference_set, view.dataset, build, listing))
    bucket = bucket_of(edges, params)
    metrics.command(
        "INSERT INTO grid_listing_counts (project, inference_set, dataset, build, listing, bucket, min_key, max_key,"
        " split, label_class, predicted_class, correct, rows)"
        f" SELECT {into}, {bucket} AS b, min(_key), max(_key), split, label_class, predicted_class, correct, count()"
        f" FROM ({source}) GROUP BY b, split, label_class, predicted_class, correct{SETTINGS}",
        params.values,
    )
    return int(first)


def keep(
    metrics: MetricsStore, view: View, versions: Sequence[Any], *, deadline: float | None = None
) -> tuple[int, bool]:
    """Writes the listings of ``view`` not written yet under ``versions``: every frame with the field, sorted by each of
    :data:`SORTED_FIELDS`, up and down (none by capture time when no frame has one), in the order of
    :data:`WRITTEN_FIRST`, each of :data:`COUNTED` followed by its counts by bucket (:func:`_write_counts`); once all
    are written, removes the builds before (and their patches). Stops at ``deadline`` (monotonic; a call after goes on
    where it stopped). Returns how many listings it wrote, and whether all are."""
    build = build_id(view, versions)
    done = set(written(metrics, view, build))
    block, mutation = (int(v) for v in versions[0])  # evaluations' (VIEW_TABLES[0])
    if not set(LISTINGS) <= done and not block_numbers(metrics):
        block = -1  # no patch builds on it
    wrote = 0
    for field, descending in WRITTEN_FIRST:
        name = listing_name(field, descending)
        for step in (name, _counts_name(name)) if name in COUNTED else (name,):
            if step in done:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return wrote, False
            if not done:  # the build is known before its rows are written: remove finds it if cut short
                record(metrics, view, build, "", 0, block=block, mutation=mutation)
                done.add("")
            if step != name:  # the listing's counts by bucket, once it is written
                record(metrics, view, build, step, _write_counts(metrics, view, build, name), block=block,
                        mutation=mutation)  # fmt: skip
                continue
            params = Params()
            if field in FIELDS or _any_with(metrics, view, field):  # (a set without capture times: none to write)
                insert_rows(metrics, view, build, name, key_sql(field, descending, "v."), f"v.{field} IS NOT NULL",
                            params)  # fmt: skip
            record(metrics, view, build, name, count_rows(metrics, view, build, name), block=block, mutation=mutation)
            wrote += 1
            WRITTEN.inc()
    remove(metrics, view, but=build)  # the builds before: no page reads them any more (their versions are gone)
    return wrote, True


def _any_with(metrics: MetricsStore, view: View, field: str) -> bool:
    """Whether any of the set's frames has ``field`` (a column of ``evaluations``; its rows read until one has)."""
    params = Params()
    return bool(metrics.query(f"SELECT count() FROM (SELECT 1 FROM evaluations WHERE {scope(view, params)}"
                              f" AND {field} IS NOT NULL LIMIT 1)", params.values).scalar())  # fmt: skip


def patch(metrics: MetricsStore, view: View, versions: Sequence[Any]) -> int:
    """Writes, when the set's sorts are not written under the tables' ``versions``, a patch of the newest complete
    build of ``view`` (see the module's docstring) that stands in for them until they are: the frames written since
    the build (when at most :data:`PATCHED_AT_MOST`, a :data:`PATCHED_SHARE` of the build's, and no mutation since),
    their rows now in each sort's order, and their rows in each of the build's sorts; then removes the view's
    patches before. Returns how many listings it wrote (0 when there is nothing to patch, or the build or the patch
    is written)."""
    stands_for = build_id(view, versions)
    if len(written(metrics, view, stands_for, LISTINGS)) == len(LISTINGS) or not block_numbers(metrics):
        return 0
    block, mutation = (int(v) for v in versions[0])
    bases = metrics.query(
        "SELECT build, max(block) AS b, max(rows) FROM grid_listing_builds FINAL WHERE project = {project:String}"
        " AND inference_set = {set:String} AND dataset = {dataset:String} AND view = {view:String}"
        " AND stands_for = '' AND block >= 0 AND block <= {block:Int64} AND mutation = {mutation:Int64}"
        " GROUP BY build HAVING countIf(listing IN {names:Array(String)}) = {n:UInt32} ORDER BY b DESC, build LIMIT 1",
        {"project": view.project, "set": view.inference_set, "dataset": view.dataset, "view": _hash(_view_of(view)),
         "block": block, "mutation": mutation, "names": list(LISTINGS), "n": len(LISTINGS)},
    ).rows  # fmt: skip
    if not bases:
        return 0
    base, since, frames = str(bases[0][0]), int(bases[0][1]), int(bases[0][2])
    name = _hash(stands_for, base, "patch")
    done = set(written(metrics, view, name))
    if set(LISTINGS) <= done:
        return 0
    params = Params()
    since_sql = f"{scope(view, params)} AND _block_number > {params.add(since, 'Int64')}"
    changed = metrics.query(f"SELECT uniqExact(frame_id) FROM evaluations WHERE {since_sql}", params.values).scalar()
    if int(changed) > min(PATCHED_AT_MOST, PATCHED_SHARE * frames):
        return 0
    about = {"block": block, "mutation": mutation, "base": base, "stands_for": stands_for}
    if "" not in done:  # known before its rows are written: removed with the next patch or build if cut short
        record(metrics, view, name, "", 0, **about)
    wrote = 0
    if _CHANGED not in done:
        into = ", ".join(params.add(v, "String") for v in (name, _CHANGED))
        metrics.command(
            f"INSERT INTO grid_listings (project, inference_set, dataset, build, listing, frame_id)"
            f" SELECT DISTINCT project, inference_set, dataset, {into}, frame_id FROM evaluations WHERE {since_sql}",
            params.values,
        )
        record(metrics, view, name, _CHANGED, int(changed), **about)
        wrote += 1
    if _ROWS not in done:  # the changed frames' rows now, read once (the set's view of those frames alone)
        params = Params()
        insert_rows(metrics, view, name, _ROWS, "0", "1", params, frames=_changed_sql(view, params, name))
        record(metrics, view, name, _ROWS, count_rows(metrics, view, name, _ROWS), **about)
        wrote += 1
    for field, descending in WRITTEN_FIRST:
        listing = listing_name(field, descending)
        if listing in done:
            continue
        for into in (_was(listing), listing):  # the build's rows first: a page reads the patch once its sort's is
            params = Params()
            if into == listing:  # the changed frames with the field now, in the sort's order, as a page shows them
                key, source, only = key_sql(field, descending), (name, _ROWS), f"{field} IS NOT NULL"
                columns = ", ".join((*_COLUMNS, "width", "height"))
            else:  # the changed frames' places in the build's sort, and the fields a count reads (not whole rows: the
                # frames lie in every part of the sort, whose other columns would all be read)
                key, source, only = "key", (base, listing), f"frame_id IN ({_changed_sql(view, params, name)})"
                columns = f"frame_id, {', '.join(_BEFORE)}"
            what = ", ".join(params.add(v, "String") for v in (name, into))
            metrics.command(
                f"INSERT INTO grid_listings (project, inference_set, dataset, build, listing, key, {columns})"
                f" SELECT project, inference_set, dataset, {what}, {key}, {columns} FROM grid_listings"
                f" WHERE {scope(view, params, *source)} AND {only}",
                params.values,
            )
            record(metrics, view, name, into, count_rows(metrics, view, name, into), **about)
        wrote += 1
    remove(metrics, view, but=name, patches=True)  # the patches before: no page reads them any more
    return wrote


def remove(metrics: MetricsStore, view: View, but: str = "", *, patches: bool = False) -> None:
    """Removes the view's set's builds (all ``but`` that one; only the patches, with ``patches``): a set that grew
    small again keeps none."""
    params = {"project": view.project, "set": view.inference_set, "dataset": view.dataset, "build": but}
    where = (
        "project = {project:String} AND inference_set = {set:String} AND dataset = {dataset:String}"
        " AND build != {build:String}"
    )
    if patches:
        where += " AND stands_for != ''"
    builds = [str(r[0]) for r in metrics.query(f"SELECT DISTINCT build FROM grid_listing_builds WHERE {where}",
                                                params).rows]  # fmt: skip
    for build in builds:
        if not _BUILD.fullmatch(build):
            raise ValueError(f"not a build of the grid's listings: {build!r}")
        for table in (t for t in TABLES if t != "grid_listing_builds"):
            metrics.command(f"ALTER TABLE {table} DROP PARTITION '{build}'")
    if builds:
        metrics.command(f"DELETE FROM grid_listing_builds WHERE {where}", params)


def equalities(conditions: Sequence[tuple[str, Any]]) -> common_pb2.Filter:
    """A filter of equalities (a scope), in the order given, each value as the console's grid writes it
    (``filterFromQuery``)."""
    return common_pb2.Filter(all=[common_pb2.Condition(field=f, equals=_value(v)) for f, v in conditions])


def _value(v: Any) -> common_pb2.Value:
    """A value as the console's filter writes it."""
    if isinstance(v, bool):
        return common_pb2.Value(bool_value=v)
    return common_pb2.Value(number_value=v) if isinstance(v, int) else common_pb2.Value(string_value=str(v))
