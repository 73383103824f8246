"""The grid's pages of a large set sorted by a prediction field, at any depth and with any filter: each sort of
the set kept whole, in page order.

A page of the example grid sorted by loss, confidence or margin sorts the whole set on the call: at 10M frames
0.3 to 0.5 s a page, however few rows it shows. For an inference set of more than ``sorted_pages_above`` frames,
once its data has settled, the preparer (:mod:`shoal.analysis.prepared`) writes every frame with the sort's field
into ``grid_listings``, once per sort (each of :data:`FIELDS`, up and down), keyed by the field's value (negated
for a descending sort) and the frame id, with every column the grid's filters and page read
(:data:`shoal.common.data.query.ROW_COLUMNS`). A page is then the listing's rows after the cursor, read in the
key's order until it holds the page: the filter (a split, the wrong predictions, a class, a confidence range, a
metadata value, a segment, or any of them together) is applied to the rows as they are read, and the first page
costs what the millionth does. The count of a filter that is one range of a sort's field (the grid's slider of
confidence, loss or margin) is read from the key's range of that sort (:func:`range_count`), a read of the key alone.

What was written is a *build*, named by the view it was read through and the versions of the tables under it
(:data:`shoal.common.data.query.VIEW_TABLES`); a page uses the build of the tables' current versions only, so an
upload, a relabel or a segment's change leaves the pages sorted from the set again until the preparer has written
the next build (and removed the ones before). :func:`page` returns None when there is no such listing.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

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

WRITTEN = Counter(
    "shoal_grid_orders_written_total",
    "Sorts of the example grid the preparer wrote whole for large sets (shoal.analysis.grid_orders): every frame of "
    "an inference set in the order of a prediction field, up or down, written after the set's data changed.",
)
#: sets of more frames than this keep their listings (the ``sorted_pages_above`` setting's default): a
#: page of a smaller set sorts it in tens of milliseconds
KEPT_ABOVE = 500_000
#: a page of a filter that keeps to a confusion cell and passes fewer than one frame in this many of the listing's
#: sorts the cell's rows (``evaluations_by_cell``): a listing passes over this many rows per row it shows
SPARSE = 1_000
#: the grid's sorts kept (by a field of the prediction; a page by frame id reads the table in order)
FIELDS = ("loss", "confidence", "margin")
#: the order the sorts are written in after a change of the data: the worst predictions first (the grid's most
#: asked sorts after frame id), so that those pages read their sort soonest
WRITTEN_FIRST = (("loss", True), ("confidence", False), ("margin", False), ("loss", False), ("confidence", True),
                 ("margin", True))  # fmt: skip
_COLUMNS = (*ROW_COLUMNS, "confidence")
#: a build's name (:func:`build_id`), written into the statement that drops its rows
_BUILD = re.compile(r"[0-9a-f]{32}")

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
)
TABLES = ("grid_listings", "grid_listing_builds")


def build_id(view: View, versions: Sequence[Any]) -> str:
    """The name of what is written for ``view`` under the tables' ``versions``."""
    what = (view.project, view.dataset, view.inference_set, tuple(view.ontology), float(view.confidence_threshold),
            tuple(versions), "whole")  # fmt: skip
    return hashlib.sha256(repr(what).encode()).hexdigest()[:32]


def listing_name(field: str, descending: bool) -> str:
    return f"{field} {'desc' if descending else 'asc'}"


def usable(view: View, sort: Sequence[Any]) -> tuple[str, bool] | None:
    """(field, descending) of a grid query whose pages a kept listing may answer, or None."""
    if not view.inference_set or view.baseline_inference_set or len(sort) != 1 or sort[0].field not in FIELDS:
        return None
    return sort[0].field, bool(sort[0].descending)


def page(
    metrics: MetricsStore, view: View, versions: Sequence[Any], field: str, descending: bool,
    flt: common_pb2.Filter, size: int, last: Sequence[Any] | None, passing: int | None = None,
) -> list[tuple[Any, ...]] | None:  # fmt: skip
    """Up to ``size`` + 1 rows that pass ``flt`` after the cursor ``last`` (the sort's value and the frame id) of
    the listing, in the form of :func:`shoal.analysis.datapoints.page_statement`'s rows followed by the frame's
    width and height; None when the tables' current versions have no such listing, or when the filter keeps to a
    confusion cell and ``passing`` (how many frames pass it) is under one in :data:`SPARSE` of the listing."""
    build, name = build_id(view, versions), listing_name(field, descending)
    found = _written(metrics, view, build, [name])
    if name not in found:
        return None
    if passing is not None and passing * SPARSE < found[name] and cell_of(flt, view) is not None:
        return None  # the cell's own rows, sorted, are fewer than the listing's rows passed over
    params = Params()
    source = view_sql(view, params, listing=(build, name))
    where = compile_filter(flt, view, params)
    if last is not None:
        key = params.add(-float(last[0]) if descending else float(last[0]), "Float64")
        frame = params.add(str(last[1]), "String")
        # an OR of the key's ranges (a tuple comparison is not read through the primary key)
        where += f" AND (_key > {key} OR (_key = {key} AND frame_id > {frame}))"
    want, limit = size + 1, size + 1
    while True:
        rows = metrics.query(
            f"SELECT {PAGE_COLUMNS}, CAST(NULL AS Nullable(Int32)), {field}, frame_id, width, height FROM ({source})"
            f" WHERE {where} ORDER BY _key, frame_id LIMIT {limit}{SETTINGS}",
            params.values,
        ).rows
        # two replicas that wrote the same build wrote each row twice, side by side in the key's order
        out = [tuple(r) for i, r in enumerate(rows) if i == 0 or r[0] != rows[i - 1][0]]
        if len(out) >= want or len(rows) < limit:
            return out[:want]
        limit *= 2


def _written(metrics: MetricsStore, view: View, build: str, names: Sequence[str] | None = None) -> dict[str, int]:
    """The listings of the view's ``build`` written (of ``names``, when given), with their rows; listing ``''`` marks
    the build begun."""
    only = " AND listing IN {names:Array(String)}" if names is not None else ""
    rows = metrics.query(
        "SELECT listing, rows FROM grid_listing_builds FINAL WHERE project = {project:String}"
        f" AND inference_set = {{set:String}} AND dataset = {{dataset:String}} AND build = {{build:String}}{only}",
        {"project": view.project, "set": view.inference_set, "dataset": view.dataset, "build": build,
         "names": list(names or ())},
    ).rows  # fmt: skip
    return {str(name): int(n) for name, n in rows}


def range_count(
    metrics: MetricsStore, view: View, versions: Sequence[Any], flt: common_pb2.Filter, sort: Sequence[Any],
    present: Callable[[Sequence[str]], int],
) -> int | None:  # fmt: skip
    """How many frames pass ``flt`` when it is one range of numbers on a field of the kept sorts (the grid's slider
    of confidence, loss or margin), the grid sorted by ``sort`` (frame id, or fields of the kept sorts): counted
    through the key's range of the field's sort, a read of the key alone (tens of milliseconds at 10M frames, where
    a count of the set reads every frame). ``present(fields)`` is how many of the set's frames have all the fields
    (the preparer keeps it for each field alone): the sort's rows must be as many as have its field, none written
    twice; a sort by another field reads that field's presence too (about 0.15 s at 10M), unless every frame with
    the range's field has it. None when this does not apply."""
    if len(flt.all) != 1:
        return None
    c = flt.all[0]
    if c.negate or c.WhichOneof("op") != "range" or c.field not in FIELDS:
        return None
    others = {k.field for k in sort} - {c.field, "frame_id"}
    if not others <= set(FIELDS):
        return None
    bounds = []
    for value, exclusive, lower in ((c.range.min, c.range.min_exclusive, True),
                                    (c.range.max, c.range.max_exclusive, False)):  # fmt: skip
        kind = value.WhichOneof("kind")
        if kind is None:
            continue
        if kind != "number_value":  # the count of the set says what is wrong with it
            return None
        bounds.append((float(value.number_value), exclusive, lower))
    if not bounds:
        return None
    build = build_id(view, versions)
    written = _written(metrics, view, build, [listing_name(c.field, d) for d in (False, True)])
    for descending in (False, True):
        name = listing_name(c.field, descending)
        if name not in written:
            continue
        if written[name] != present([c.field]):
            return None
        if others and present([c.field, *sorted(others)]) == written[name]:
            others = set()  # every frame with the range's field has the sort's field as well
        params = Params()
        where = [f"{col} = {params.add(v, 'String')}" for col, v in (("project", view.project),
                 ("inference_set", view.inference_set), ("dataset", view.dataset), ("build", build),
                 ("listing", name))]  # fmt: skip
        for value, exclusive, lower in bounds:
            # the key is the value (up) or its negation (down), where a lower bound of the value bounds the key above
            above = lower != descending
            op = (">" if exclusive else ">=") if above else ("<" if exclusive else "<=")
            where.append(f"key {op} {params.add(-value if descending else value, 'Float64')}")
        where += [f"{field} IS NOT NULL" for field in sorted(others)]
        return int(metrics.query(f"SELECT count() FROM grid_listings WHERE {' AND '.join(where)}",
                                 params.values).scalar())  # fmt: skip
    return None


def keep(
    metrics: MetricsStore, view: View, versions: Sequence[Any], *, deadline: float | None = None
) -> tuple[int, bool]:
    """Writes the listings of ``view`` not written yet under ``versions``: every frame with the field, sorted by
    each of :data:`FIELDS`, up and down, in the order of :data:`WRITTEN_FIRST`; once all are written, removes the
    builds before. Stops at ``deadline`` (monotonic; a call after goes on where it stopped). Returns how many
    listings it wrote, and whether all are."""
    build = build_id(view, versions)
    target = {"project": view.project, "set": view.inference_set, "dataset": view.dataset, "build": build}
    done = set(_written(metrics, view, build))
    written = 0
    for field, descending in WRITTEN_FIRST:
        name = listing_name(field, descending)
        if name in done:
            continue
        if deadline is not None and time.monotonic() >= deadline:
            return written, False
        params = Params()
        source = view_sql(view, params)
        columns = ", ".join(_COLUMNS)
        into = [params.add(v, "String") for v in (view.project, view.inference_set, view.dataset, build, name)]
        if not done:  # the build is known before its rows are written: remove finds it if cut short
            metrics.insert("grid_listing_builds", [[view.project, view.inference_set, view.dataset, build, "", 0]],
                           ["project", "inference_set", "dataset", "build", "listing", "rows"])  # fmt: skip
            done.add("")
        # with each frame's size, which a page shows (a merge of the two tables in frame id order); a write
        # cut short and written again, or written by two replicas, leaves rows twice until merged
        sizes = f"SELECT frame_id, width, height FROM frames FINAL WHERE project = {into[0]} AND dataset = {into[2]}"
        metrics.command(
            f"INSERT INTO grid_listings (project, inference_set, dataset, build, listing, key, {columns},"
            f" width, height) SELECT {', '.join(into)}, {'-' if descending else ''}v.{field},"
            f" {', '.join(f'v.{c}' for c in _COLUMNS)}, ifNull(s.width, 0), ifNull(s.height, 0)"
            f" FROM ({source}) AS v LEFT JOIN ({sizes}) AS s ON s.frame_id = v.frame_id"
            f" WHERE v.{field} IS NOT NULL{SETTINGS}, join_algorithm = 'full_sorting_merge'",
            params.values,
        )
        rows = int(
            metrics.query(
                "SELECT count() FROM grid_listings WHERE project = {project:String}"
                " AND inference_set = {set:String} AND dataset = {dataset:String} AND build = {build:String}"
                " AND listing = {listing:String}",
                {**target, "listing": name},
            ).scalar()
        )
        metrics.insert(
            "grid_listing_builds",
            [[view.project, view.inference_set, view.dataset, build, name, rows]],
            ["project", "inference_set", "dataset", "build", "listing", "rows"],
        )
        written += 1
        WRITTEN.inc()
    remove(metrics, view, but=build)  # the builds before: no page reads them any more (their versions are gone)
    return written, True


def remove(metrics: MetricsStore, view: View, but: str = "") -> None:
    """Removes the view's set's builds (all ``but`` that one): a set that grew small again keeps none."""
    params = {"project": view.project, "set": view.inference_set, "dataset": view.dataset, "build": but}
    where = (
        "project = {project:String} AND inference_set = {set:String} AND dataset = {dataset:String}"
        " AND build != {build:String}"
    )
    builds = [str(r[0]) for r in metrics.query(f"SELECT DISTINCT build FROM grid_listing_builds WHERE {where}",
                                                params).rows]  # fmt: skip
    for build in builds:
        if not _BUILD.fullmatch(build):
            raise ValueError(f"not a build of the grid's listings: {build!r}")
        metrics.command(f"ALTER TABLE grid_listings DROP PARTITION '{build}'")
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
