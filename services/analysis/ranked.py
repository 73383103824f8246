"""A finished job's listings kept in page order, so that any page of a large job reads its own rows.

A page of a job's label issues, outliers or duplicate pairs sorts every row of the job (at 10M
frames, about a second). When a job's listing has more rows than the service's
``ranked_pages_above``, the job's end writes the first :data:`RANKED` rows of each of its orders
(each a *listing*) into a table ordered by (project, job, listing, rank), with the row's columns
beside its rank, and the listing's length into ``result_listings``. A page is then a range of
ranks, read through the table's primary key. Rows left out of a page (a dismissed label issue)
move the range by as many ranks as come before it (:func:`window`).

A page beyond the ranked rows, and a page of a job finished before its listings were ranked, is
read from the job's rows as before: the caller falls back when :func:`page` returns None.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shoal.common.jobs import Job
from shoal.common.stores.metrics import MetricsStore, Migration

#: the rows of each listing kept in page order (a console shows 24 to 50 at a time)
RANKED = 100_000
#: listings longer than this are ranked (the ``ranked_pages_above`` setting's default): a page of a
#: shorter one sorts it in a few milliseconds
RANKED_ABOVE = 100_000

MIGRATIONS = (
    Migration(
        component="analysis",
        version=17,
        name="the length of a job's ranked listings",
        statements=(
            "CREATE TABLE IF NOT EXISTS result_listings ("
            " project LowCardinality(String), job_id String, listing LowCardinality(String), total UInt64,"
            " ranked UInt64, version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY (project, job_id, listing)",
        ),
    ),
)


@dataclass(frozen=True)
class Listing:
    """One order of a job's rows: ``SELECT columns FROM source WHERE where ORDER BY order``, kept
    in ``table`` under ``name``. ``source``, ``where`` and ``order`` may use ``{project:String}``
    and ``{job:String}``; ``order`` must end in a unique column so that ranks are stable."""

    table: str
    name: str
    columns: str
    source: str
    where: str
    order: str
    #: SQL around the ordered rows (``{rows}``) giving ``columns`` (e.g. a join of what else a page
    #: shows, read for the ranked rows alone)
    around: str = "{rows}"

    @property
    def key(self) -> str:
        return f"{self.table}/{self.name}"


def keep(metrics: MetricsStore, job: Job, listings: Iterable[tuple[Listing, int]], *, above: int,
         limit: int = RANKED) -> int:  # fmt: skip
    """Writes the first ``limit`` rows of each listing of ``job`` in page order, for the listings
    given with more than ``above`` rows (as the job's summary counts them; the length kept is
    counted from the listing's rows); returns how many were ranked. A rerun writes the same ranks
    over the earlier, and a listing ranked by an earlier run that is now too short to rank is marked
    so (its pages are read from the job's rows again)."""
    params = {"project": job.project, "job": job.job_id}
    earlier = {
        str(r[0])
        for r in metrics.query(
            "SELECT listing FROM result_listings FINAL WHERE project = {project:String} AND job_id = {job:String}",
            params,
        ).rows
    }
    lengths = []
    for listing, rows in listings:
        if rows <= above:
            if listing.key in earlier:
                lengths.append([job.project, job.job_id, listing.key, rows, 0, time.time_ns()])
            continue
        total = int(metrics.query(f"SELECT count() FROM {listing.source} WHERE {listing.where}", params).scalar())
        first = f"SELECT * FROM {listing.source} WHERE {listing.where} ORDER BY {listing.order} LIMIT {{_limit:UInt64}}"
        metrics.command(
            f"INSERT INTO {listing.table} (project, job_id, listing, rank, {listing.columns})"
            " SELECT {project:String}, {job:String}, {_listing:String},"
            f" toUInt32(row_number() OVER (ORDER BY {listing.order}) - 1), {listing.columns}"
            f" FROM ({listing.around.replace('{rows}', first)})",
            {**params, "_listing": listing.name, "_limit": limit},
        )
        lengths.append([job.project, job.job_id, listing.key, total, min(total, limit), time.time_ns()])
    if lengths:
        metrics.insert("result_listings", lengths, ["project", "job_id", "listing", "total", "ranked", "version"])
    return sum(1 for row in lengths if row[4])


def discard(metrics: MetricsStore, job: Job, tables: Sequence[str]) -> None:
    """Removes the ranked rows of a run of ``job`` from ``tables`` and their lengths."""
    params = {"project": job.project, "job": job.job_id}
    for table in (*tables, "result_listings"):
        metrics.command(f"DELETE FROM {table} WHERE project = {{project:String}} AND job_id = {{job:String}}", params)


def length(metrics: MetricsStore, project: str, job_id: str, listing: Listing) -> tuple[int, int] | None:
    """(rows in the listing, rows of it ranked), or None when the job's listing was not ranked."""
    rows = metrics.query(
        "SELECT total, ranked FROM result_listings FINAL WHERE project = {project:String} AND job_id = {job:String}"
        " AND listing = {listing:String}",
        {"project": project, "job": job_id, "listing": listing.key},
    ).rows
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def window(offset: int, size: int, skipped: Sequence[int], ranked: int, total: int) -> tuple[int, int] | None:
    """The ranks [start, stop) holding the page at ``offset`` of ``size`` rows once the rows ranked
    ``skipped`` (sorted) are left out, or None when the page reaches past the ``ranked`` rows of a
    listing of ``total``."""
    start = offset
    for r in skipped:  # each skipped rank at or before the start moves it one further
        if r > start:
            break
        start += 1
    stop = start + size
    i = bisect.bisect_left(skipped, start)
    while i < len(skipped) and skipped[i] < stop:
        stop += 1
        i += 1
    stop = min(stop, total)
    if stop > ranked and ranked < total:
        return None
    return min(start, stop), stop


def ranks_of(metrics: MetricsStore, project: str, job_id: str, listings: Sequence[Listing], column: str,
             values: Sequence[str]) -> dict[str, dict[str, int]]:  # fmt: skip
    """For each of ``listings`` (of one table) by name, the ranks of its ranked rows whose
    ``column`` is one of ``values``."""
    out: dict[str, dict[str, int]] = {lst.name: {} for lst in listings}
    if not values or not listings:
        return out
    rows = metrics.query(
        f"SELECT listing, {column}, rank FROM {listings[0].table} FINAL WHERE project = {{project:String}}"
        " AND job_id = {job:String} AND listing IN {listings:Array(String)}"
        f" AND {column} IN {{values:Array(String)}}",
        {"project": project, "job": job_id, "listings": list(out), "values": list(values)},
    ).rows
    for name, value, r in rows:
        out[str(name)][str(value)] = int(r)
    return out


def page(
    metrics: MetricsStore,
    project: str,
    job_id: str,
    listing: Listing,
    *,
    offset: int,
    size: int,
    skipped: Iterable[int] = (),
    known: tuple[int, int] | None = None,
) -> tuple[list[tuple[Any, ...]], int] | None:
    """The page at ``offset`` of the listing's ranked rows (its ``columns``) and the listing's
    length, the rows ranked ``skipped`` left out; None when the listing was not ranked or the page
    reaches past its ranked rows (read it from the job's rows). ``known`` is its :func:`length`
    when the caller has read it."""
    known = known or length(metrics, project, job_id, listing)
    if known is None:
        return None
    total, ranked = known
    skip = sorted(set(skipped))
    span = window(offset, size, skip, ranked, total)
    if span is None:
        return None
    start, stop = span
    inside = [r for r in skip if start <= r < stop]
    rows = metrics.query(
        f"SELECT {listing.columns} FROM {listing.table} FINAL WHERE project = {{project:String}}"
        " AND job_id = {job:String} AND listing = {listing:String} AND rank >= {start:UInt32} AND rank < {stop:UInt32}"
        " AND rank NOT IN {skip:Array(UInt32)} ORDER BY rank",
        {"project": project, "job": job_id, "listing": listing.name, "start": start, "stop": stop, "skip": inside},
    ).rows
    return rows[:size], total
