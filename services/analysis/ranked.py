"""A finished job's listings kept in page order, so that any page of a large job reads its own rows.

A page of a job's label issues, outliers or duplicate pairs sorts every row of the job (at 10M
frames, about a second). When a job's listing has more rows than the service's
``ranked_pages_above``, the job's end writes the first :data:`RANKED` rows of each of its orders
(each a *listing*) into a table ordered by (project, job, listing, rank), with the row's columns
beside its rank, and the listing's length into ``result_listings``; the analysis service's preparer
then ranks the rest of a longer listing in the background (:func:`complete`: 12 to 16 s for an order
of 10M frames' label-issue scores), so that the job itself takes no longer. A page is a range of ranks,
read through the table's primary key. Rows left out of a page (a dismissed label issue) move the range
by as many ranks as come before it (:func:`window`).

A page beyond the ranked rows (until the rest is ranked), and a page of a job finished before its
listings were ranked, is read from the job's rows as before: the caller falls back when :func:`page`
returns None.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shoal.common.data.answers import AnswerCache
from shoal.common.jobs import Job
from shoal.common.stores.metrics import MetricsStore, Migration

log = logging.getLogger(__name__)

#: the rows of each listing kept in page order at the job's end (a console shows 24 to 50 at a time); the rest
#: is ranked in the background (:func:`complete`)
RANKED = 100_000
#: listings longer than this are ranked (the ``ranked_pages_above`` setting's default): a page of a
#: shorter one sorts it in a few milliseconds
RANKED_ABOVE = 100_000

_RANK_FRAMES = (
    "CREATE TABLE IF NOT EXISTS rank_frames ("
    " project LowCardinality(String), job_id String, listing LowCardinality(String), frame_id String,"
    " object_id String, rank UInt32)"
    " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, listing, frame_id, object_id, rank)"
    # a page looks up a few hundred frames scattered over millions of rows: smaller granules than the default
    " SETTINGS index_granularity = 1024"
)

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
    Migration(
        component="analysis",
        version=27,
        name="the ranks of a job's listings by frame",
        statements=(_RANK_FRAMES,),
    ),
)


def backfill(table: str, frames: str) -> tuple[str, str]:
    """The statements that write into ``rank_frames`` (made if need be: a service may migrate its job kinds'
    tables alone) the ranks ``table`` held before they were kept by frame (``frames``: a listing's
    :attr:`Listing.frames`)."""
    rows = f"SELECT project, job_id, concat('{table}/', listing), {frames}, rank FROM {table} FINAL"
    return _RANK_FRAMES, f"INSERT INTO rank_frames {rows}"


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
    #: shows); ``{within}`` in it stands for ``within`` when a part of the listing is ranked (``1`` when
    #: the rest of it is)
    around: str = "{rows}"
    #: a condition on the other side of ``around``'s join: only what the ranked rows (``{rows}``) need
    within: str = "1"
    #: the frame id and object id (``''`` for none) of a ranked row, for a listing whose pages leave out rows by
    #: their frames (dismissed ones): its ranks are kept by frame as well (``rank_frames``), so that a page finds
    #: the ranks it leaves out without reading the listing; empty for none
    frames: str = ""

    @property
    def key(self) -> str:
        return f"{self.table}/{self.name}"


def keep(metrics: MetricsStore, job: Job, listings: Iterable[tuple[Listing, int]], *, above: int,
         limit: int | None = None) -> int:  # fmt: skip
    """Writes the first ``limit`` (:data:`RANKED`) rows of each listing of ``job`` in page order, for
    the listings given with more than ``above`` rows (as the job's summary counts them; the length
    kept is counted from the listing's rows); returns how many were ranked. A rerun writes its ranks
    over the earlier (and removes those past them), and a listing ranked by an earlier run that is now
    too short to rank is marked so (its pages are read from the job's rows again)."""
    limit = RANKED if limit is None else limit
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
        around = listing.around.replace("{within}", listing.within).replace("{rows}", first)
        args = {**params, "_listing": listing.name, "_limit": limit}
        if listing.key in earlier:  # an earlier run's ranks past this run's (ranked in the background), and by frame
            metrics.command(
                f"DELETE FROM {listing.table} WHERE project = {{project:String}} AND job_id = {{job:String}}"
                " AND listing = {_listing:String} AND rank >= {_limit:UInt64}",
                args,
            )
            metrics.command(
                "DELETE FROM rank_frames WHERE project = {project:String} AND job_id = {job:String}"
                " AND listing = {_key:String}",
                {**args, "_key": listing.key},
            )
        metrics.command(
            f"INSERT INTO {listing.table} (project, job_id, listing, rank, {listing.columns})"
            " SELECT {project:String}, {job:String}, {_listing:String},"
            f" toUInt32(row_number() OVER (ORDER BY {listing.order}) - 1), {listing.columns} FROM ({around})",
            args,
        )
        _by_frame(metrics, job.project, job.job_id, listing, 0)
        lengths.append([job.project, job.job_id, listing.key, total, min(total, limit), time.time_ns()])
    if lengths:
        metrics.insert("result_listings", lengths, ["project", "job_id", "listing", "total", "ranked", "version"])
    return sum(1 for row in lengths if row[4])


#: a whole listing's sort, and the join of what else its pages show, spill to disk past this many bytes (the
#: preparer ranks it beside a serving process)
SPILL_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Partial:
    """A job's listing ranked in part: its ``ranked`` first rows of ``total``, as written at ``version``."""

    project: str
    job_id: str
    key: str
    total: int
    ranked: int
    version: int


def _by_frame(metrics: MetricsStore, project: str, job_id: str, listing: Listing, start: int) -> None:
    """Keeps the ranks of ``listing`` from ``start`` by frame (for a listing with :attr:`Listing.frames`)."""
    if not listing.frames:
        return
    metrics.command(
        f"INSERT INTO rank_frames SELECT project, job_id, {{_key:String}}, {listing.frames}, rank"
        f" FROM {listing.table} FINAL WHERE project = {{project:String}} AND job_id = {{job:String}}"
        " AND listing = {_listing:String} AND rank >= {_start:UInt32}",
        {"project": project, "job": job_id, "_key": listing.key, "_listing": listing.name, "_start": start},
    )


#: the tables the ranks of a job's rows by frame depend on (with the dismissals, those of the rows left out)
BY_FRAME_TABLES = ("rank_frames", "result_listings")


def ranks_by_frame(
    metrics: MetricsStore,
    project: str,
    job_id: str,
    listings: Sequence[Listing],
    frames: Sequence[str],
    answers: AnswerCache | None = None,
) -> dict[str, list[tuple[str, str, int]]]:
    """For each of ``listings`` (kept by frame) by name, the (frame id, object id, rank) of its rows of ``frames``,
    by rank: read through the frames, about 0.1 ms a frame. With ``answers``, each frame's ranks are kept until
    the ranks change, so that a call after one more dismissal reads that frame's alone."""
    names = {lst.key: lst.name for lst in listings}

    def find(wanted: list[str]) -> dict[str, tuple[tuple[str, str, int], ...]]:
        found: dict[str, list[tuple[str, str, int]]] = {f: [] for f in wanted}
        for key, frame, obj, r in metrics.query(
            "SELECT DISTINCT listing, frame_id, object_id, rank FROM rank_frames WHERE project = {project:String}"
            " AND job_id = {job:String} AND listing IN {keys:Array(String)} AND frame_id IN {frames:Array(String)}",
            {"project": project, "job": job_id, "keys": list(names), "frames": sorted(wanted)},
        ).rows:
            found[str(frame)].append((str(key), str(obj), int(r)))
        return {f: tuple(rows) for f, rows in found.items()}

    out: dict[str, list[tuple[str, str, int]]] = {lst.name: [] for lst in listings}
    if not frames or not listings:
        return out
    if answers is None:
        by_frame = find(sorted(set(frames)))
    else:
        key = ("ranked.ranks_by_frame", project, job_id, tuple(sorted(names)))
        by_frame = answers.lookups(BY_FRAME_TABLES, key, find, frames, weight=len)
    for frame, rows in by_frame.items():
        for key, obj, r in rows:
            out[names[key]].append((frame, obj, r))
    for rows in out.values():
        rows.sort(key=lambda row: (row[2], row[0], row[1]))
    return out


def partial(metrics: MetricsStore) -> list[Partial]:
    """The listings of every job ranked in part, the latest first."""
    rows = metrics.query(
        "SELECT project, job_id, listing, total, ranked, version FROM result_listings FINAL"
        " WHERE ranked > 0 AND ranked < total ORDER BY version DESC"
    ).rows
    return [Partial(str(p), str(j), str(k), int(t), int(r), int(v)) for p, j, k, t, r, v in rows]


def rank_rest(metrics: MetricsStore, part: Partial, listing: Listing) -> None:
    """Writes the ranks of ``listing`` from ``part.ranked`` to its end (its order over every row of the
    job, the first ranks left as they are), and marks it whole unless the job ran again meanwhile (its
    length was written since ``part.version``)."""
    params = {"project": part.project, "job": part.job_id}
    rows = (
        f"SELECT * FROM (SELECT *, toUInt32(row_number() OVER (ORDER BY {listing.order}) - 1) AS _rank"
        f" FROM {listing.source} WHERE {listing.where}) WHERE _rank >= {{_start:UInt32}}"
    )
    around = listing.around.replace("{within}", "1").replace("{rows}", rows)
    metrics.command(
        f"INSERT INTO {listing.table} (project, job_id, listing, rank, {listing.columns})"
        f" SELECT {{project:String}}, {{job:String}}, {{_listing:String}}, _rank, {listing.columns} FROM ({around})"
        f" SETTINGS join_algorithm = 'full_sorting_merge', max_bytes_before_external_sort = {SPILL_BYTES},"
        " max_bytes_ratio_before_external_sort = 0",
        {**params, "_listing": listing.name, "_start": part.ranked},
    )
    _by_frame(metrics, part.project, part.job_id, listing, part.ranked)
    now = metrics.query(
        "SELECT version FROM result_listings FINAL WHERE project = {project:String} AND job_id = {job:String}"
        " AND listing = {key:String}",
        {**params, "key": part.key},
    ).rows
    if now and int(now[0][0]) == part.version:
        metrics.insert("result_listings", [[part.project, part.job_id, part.key, part.total, part.total,
                                            time.time_ns()]], ["project", "job_id", "listing", "total", "ranked",
                                                               "version"])  # fmt: skip


def complete(
    metrics: MetricsStore,
    listings: Mapping[str, Listing],
    *,
    current: Callable[[str, str], bool],
    deadline: float,
    failed: set[Partial],
) -> tuple[int, bool]:
    """Ranks the rest of the listings of finished jobs ranked in part (:func:`rank_rest`), the latest
    job's first, until ``deadline`` (monotonic; a listing begun is ranked whole). ``current`` tells
    whether a job's run is finished (not running again); ``failed`` holds the listings whose ranking
    failed, not tried again. Returns how many it ranked, and whether none is left."""
    done = 0
    for part in partial(metrics):
        listing = listings.get(part.key)
        if listing is None or part in failed or not current(part.project, part.job_id):
            continue
        if time.monotonic() >= deadline:
            return done, False
        try:
            rank_rest(metrics, part, listing)
            done += 1
        except Exception:  # not again for this run of the job
            log.warning("ranking the rest of %s of job %s failed", part.key, part.job_id, exc_info=True)
            failed.add(part)
    return done, True


def discard(metrics: MetricsStore, job: Job, tables: Sequence[str]) -> None:
    """Removes the ranked rows of a run of ``job`` from ``tables`` and their lengths."""
    params = {"project": job.project, "job": job.job_id}
    for table in (*tables, "result_listings", "rank_frames"):
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
