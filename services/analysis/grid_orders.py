"""The grid's deeper pages of a large set: the first rows of each of its sorts kept in page order.

A page of the example grid sorted by loss, confidence or margin sorts the whole set (or split) to
find the rows after its cursor: at 10M frames 0.4 to 0.5 s a page, however few rows it shows. The
preparer (:mod:`shoal.analysis.prepared`) keeps the first ten pages of each sort in memory; past them,
for a set of more than ``sorted_pages_above`` frames, it writes the first :data:`KEPT` rows of each
sort (up and down) of every frame, of each split and of the wrong predictions, and the first
:data:`KEPT_CLASS` of each labeled class of more than ``sorted_pages_above`` frames (a class's page
reads that class's rows alone, ``evaluations_by_cell``), into ``grid_orders``, with the columns a
page shows, keyed by the sort's value (negated for a descending sort) and the frame id: a page is
then a range of that key after the cursor, read through the primary key.

What was written is a *build*, named by the view it was read through and the versions of the tables
under it (:data:`shoal.common.data.query.VIEW_TABLES`); a page uses the build of the tables' current
versions only, so an upload, a relabel or a segment's change leaves the pages read from the set
again until the preparer has written the next build (and removed the ones before). A page that
reaches past the kept rows of a listing is read from the set as before: :func:`page` returns None.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data.answers import AnswerCache
from shoal.common.data.query import PAGE_COLUMNS, SETTINGS, VIEW_TABLES, View
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.v1 import common_pb2

WRITTEN = Counter(
    "shoal_grid_orders_written_total",
    "Listings of the example grid's sorted pages the preparer wrote for large sets (shoal.analysis.grid_orders): "
    "the first rows of a sort of every frame, a split, the wrong predictions or a class, written after the set's data "
    "changed.",
)
#: rows kept of each listing: 1,666 pages of the grid's 60
KEPT = 100_000
#: of a labeled class's listings (166 pages): a page past them reads that class's rows alone
#: (``evaluations_by_cell``), about 0.1 s for a class of a million frames
KEPT_CLASS = 10_000
#: sets of more frames than this keep their listings (the ``sorted_pages_above`` setting's default): a
#: page of a smaller set sorts it in tens of milliseconds (a page of a split or of the wrong predictions
#: reads the whole set as well)
KEPT_ABOVE = 500_000
#: the grid's sorts kept (by a field of the prediction; a page by frame id reads the table in order)
FIELDS = ("loss", "confidence", "margin")

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
)
TABLES = ("grid_orders", "grid_order_listings")

#: a listing's scope: the equalities of the grid's filter (none: every frame), as (field, value)
Scope = tuple[tuple[str, Any], ...]


def build_id(view: View, versions: Sequence[Any]) -> str:
    """The name of what is written for ``view`` under the tables' ``versions``."""
    what = (view.project, view.dataset, view.inference_set, tuple(view.ontology), float(view.confidence_threshold),
            tuple(versions), KEPT)  # fmt: skip
    return hashlib.sha256(repr(what).encode()).hexdigest()[:32]


def listing_name(field: str, descending: bool, scope: Scope) -> str:
    conditions = "".join(f" {f}={v!r}" for f, v in sorted(scope))
    return f"{field} {'desc' if descending else 'asc'}{conditions}"


def scope_of(flt: common_pb2.Filter) -> Scope | None:
    """The filter as a scope, if it is one the preparer may keep listings of: equalities of the
    split, of whether the prediction is correct, or of the labeled class (by id), each once."""
    out: list[tuple[str, Any]] = []
    for c in flt.all:
        if c.negate or c.WhichOneof("op") != "equals":
            return None
        kind = c.equals.WhichOneof("kind")
        if c.field == "split" and kind == "string_value":
            out.append(("split", c.equals.string_value))
        elif c.field == "correct" and kind == "bool_value":
            out.append(("correct", c.equals.bool_value))
        elif c.field == "label_class" and kind == "number_value" and float(c.equals.number_value).is_integer():
            out.append(("label_class", int(c.equals.number_value)))
        else:
            return None
    fields = [f for f, _ in out]
    return tuple(sorted(out)) if len(set(fields)) == len(fields) else None


def usable(view: View, sort: Sequence[Any], flt: common_pb2.Filter) -> tuple[str, bool, Scope] | None:
    """(field, descending, scope) of a grid query whose pages may be kept listings, or None."""
    if not view.inference_set or view.baseline_inference_set or len(sort) != 1 or sort[0].field not in FIELDS:
        return None
    scope = scope_of(flt)
    return None if scope is None else (sort[0].field, bool(sort[0].descending), scope)


def page(
    metrics: MetricsStore, view: View, versions: Sequence[Any], field: str, descending: bool, scope: Scope,
    size: int, last: Sequence[Any] | None,
) -> list[tuple[Any, ...]] | None:  # fmt: skip
    """Up to ``size`` + 1 rows after the cursor ``last`` (the sort's value and the frame id) of the
    listing, in the form of :func:`shoal.analysis.datapoints.page_statement`'s rows; None when the
    tables' current versions have no such listing or the page reaches past its kept rows."""
    params: dict[str, Any] = {
        "project": view.project,
        "set": view.inference_set,
        "dataset": view.dataset,
        "build": build_id(view, versions),
        "listing": listing_name(field, descending, scope),
        "n": size + 1,
    }
    where = (
        "project = {project:String} AND inference_set = {set:String} AND dataset = {dataset:String}"
        " AND build = {build:String} AND listing = {listing:String}"
    )
    found = metrics.query(f"SELECT total, kept FROM grid_order_listings FINAL WHERE {where}", params).rows
    if not found:
        return None
    total, kept = int(found[0][0]), int(found[0][1])
    if not total:
        return []
    after = ""
    if last is not None:
        params["key"] = -float(last[0]) if descending else float(last[0])
        params["frame"] = str(last[1])
        # an OR of the key's ranges (a tuple comparison is not read through the primary key)
        after = " AND (key > {key:Float64} OR (key = {key:Float64} AND frame_id > {frame:String}))"
    # a build is written whole or again the same (two replicas): its rows' duplicates are left out by their key,
    # not by FINAL, which merges the parts the range spans (a few times slower while a build's parts are unmerged)
    rows = metrics.query(
        f"SELECT {PAGE_COLUMNS}, CAST(NULL AS Nullable(Int32)), {field}, frame_id FROM grid_orders"
        f" WHERE {where}{after} ORDER BY key, frame_id LIMIT 1 BY key, frame_id LIMIT {{n:UInt32}}",
        params,
    ).rows
    if len(rows) <= size and kept < total:
        return None  # the page goes on past the kept rows
    return [tuple(r) for r in rows]


def keep(
    metrics: MetricsStore, view: View, versions: Sequence[Any], scopes: Sequence[Scope], *, limit: int = KEPT,
    deadline: float | None = None, answers: AnswerCache | None = None,
) -> tuple[int, bool]:  # fmt: skip
    """Writes the listings of ``view`` not written yet under ``versions``: the first ``limit`` rows of
    every scope sorted by each of :data:`FIELDS`, up and down (a small scope of a large set is kept as
    well: sorting it reads the whole set); once all are written, removes the builds before. Stops at
    ``deadline`` (monotonic; a call after goes on where it stopped). With ``answers``, a listing's
    length is the grid's count kept there (the preparer keeps those of every scope) instead of a
    count of the set. Returns how many listings it wrote, and whether all are."""
    from shoal.analysis import datapoints  # which imports this module

    build = build_id(view, versions)
    params = {"project": view.project, "set": view.inference_set, "dataset": view.dataset, "build": build}
    where = "project = {project:String} AND inference_set = {set:String} AND dataset = {dataset:String}"
    done = {
        str(r[0])
        for r in metrics.query(
            f"SELECT listing FROM grid_order_listings FINAL WHERE {where} AND build = {{build:String}}", params
        ).rows
    }
    written = 0
    for scope in scopes:
        flt = equalities(scope)
        for field in FIELDS:
            names = [listing_name(field, d, scope) for d in (False, True)]
            if all(n in done for n in names):
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return written, False
            count_sql, count_params = datapoints.page_statement(view, flt, [pb.SortKey(field=field)], {}, 0, None)[3:]

            def count(sql: str = count_sql, params: dict[str, Any] = count_params) -> int:
                return int(metrics.query(sql, params).scalar())

            key = datapoints.statement_key("datapoints.count", count_sql, count_params)
            total = count() if answers is None else answers.get(VIEW_TABLES, key, count)
            for descending, name in zip((False, True), names, strict=True):
                if name in done:
                    continue
                kept = min(total, limit, KEPT_CLASS if any(f == "label_class" for f, _ in scope) else limit)
                if kept:
                    sort = [pb.SortKey(field=field, descending=descending)]
                    target = {"_project": view.project, "_set": view.inference_set, "_dataset": view.dataset,
                              "_build": build}  # fmt: skip
                    rows_sql, rows_params = datapoints.page_statement(view, flt, sort, {}, kept - 1, None)[:2]
                    metrics.command(
                        "INSERT INTO grid_orders (project, inference_set, dataset, build, listing, key,"
                        f" {PAGE_COLUMNS}) SELECT {{_project:String}}, {{_set:String}}, {{_dataset:String}},"
                        f" {{_build:String}}, {{_listing:String}}, {'-' if descending else ''}_k0, {PAGE_COLUMNS}"
                        f" FROM ({rows_sql.removesuffix(SETTINGS)}){SETTINGS}",
                        {**rows_params, **target, "_listing": name},
                    )
                    written += 1
                    WRITTEN.inc()
                # each listing's length once its rows are written: a page reads it first
                metrics.insert(
                    "grid_order_listings",
                    [[view.project, view.inference_set, view.dataset, build, name, total, kept]],
                    ["project", "inference_set", "dataset", "build", "listing", "total", "kept"],
                )
    remove(metrics, view, but=build)  # the builds before: no page reads them any more (their versions are gone)
    return written, True


def remove(metrics: MetricsStore, view: View, but: str = "") -> None:
    """Removes the view's set's builds (all ``but`` that one): a set that grew small again keeps none."""
    params = {"project": view.project, "set": view.inference_set, "dataset": view.dataset, "build": but}
    where = (
        "project = {project:String} AND inference_set = {set:String} AND dataset = {dataset:String}"
        " AND build != {build:String}"
    )
    if int(metrics.query(f"SELECT count() FROM grid_order_listings WHERE {where}", params).scalar()):
        for table in TABLES:
            metrics.command(f"DELETE FROM {table} WHERE {where}", params)


def equalities(conditions: Sequence[tuple[str, Any]]) -> common_pb2.Filter:
    """A filter of equalities (a scope), in the order given, each value as the console's grid writes it
    (``filterFromQuery``)."""
    return common_pb2.Filter(all=[common_pb2.Condition(field=f, equals=_value(v)) for f, v in conditions])


def _value(v: Any) -> common_pb2.Value:
    """A value as the console's filter writes it."""
    if isinstance(v, bool):
        return common_pb2.Value(bool_value=v)
    return common_pb2.Value(number_value=v) if isinstance(v, int) else common_pb2.Value(string_value=str(v))
