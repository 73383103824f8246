"""Answers prepared before anyone asks: the console's first views of the data that changed lately.

A person who opens the console after an upload first sees an inference set's heat map and its slices
by split, then opens a confusion cell, a class or a split (the example grid: its count, and a page
of frames by frame id), or the embedding map as a whole. At 10M frames each of these reads the whole
dataset, hundreds of milliseconds on two cores, the first time it is asked;
:mod:`shoal.common.data.answers` keeps it for the calls after. The preparer computes them in the
background once the data has settled, so that the first call finds them kept too:

- for the inference sets whose rows changed lately (the ``max_sets`` most recent, once no new rows
  have reached them for ``quiet_seconds``): the heat map and the slices by split as the performance page asks for
  them (no threshold, no filter) and, from one aggregation, the counts of every
  frame, each split, each labeled class and each confusion cell, with and without a split (and of
  the right and the wrong predictions among every frame, a split and a class), as the
  grid sorted by frame id, loss, confidence or margin counts them; the slices by each of the first four
  metadata keys that are not a value per frame, with the counts of their most frequent values as the grid a
  slice links to counts them (a set of more than ``sorted_pages_above`` frames also has its frames counted by the
  values of every metadata key of at most 10,000, once per version of its data, :mod:`shoal.analysis.grid_values`:
  the slices by any such key, and the grid's count of one of its values, are read from those counts); for a set
  whose grid sorts were written whole before the change (:mod:`shoal.analysis.grid_orders`), their patch with the
  frames written since, which the grid's sorted pages and the slider's counts read until the sorts of the rows now
  are written; the grid's first ten pages of every frame and of each split sorted by loss, confidence and margin,
  up and down; and the heat map and the slices by split of each split (the performance page with a split picked).
  The grid's page by frame id, the default, is read in the table's order and stops after a page; a class's or a
  confusion cell's page reads that cell's rows alone, whatever it is sorted by;
- for the embedding maps finished lately (the ``max_sets`` most recent, one per dataset and space):
  the whole map, as the map page first asks for it;
- for the label-issue jobs finished lately (one per inference set; a detection project's too): the first page of
  the Issues page, in each of its orders (a detection job's in its one); for the neighbour jobs (one per dataset
  and space), the first pages of outliers and duplicates of the Findings page;
- for every finished job whose lists are longer than a job's end keeps in page order
  (:mod:`shoal.analysis.ranked`), the rest of each list, so that a page at any depth reads its own rows; then
  the first pages above again (a page with dismissed rows finds their ranks anew in the whole list).

What the console asks beyond these (another sort, a filter of metadata, a zoomed map) is computed
on its first call and kept from then on. A round computes only what is not kept under the tables'
current versions, so once prepared, a round costs a look at the tables' parts."""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from shoal.analysis import (
    datapoints,
    detection_issues,
    embedding_map,
    grid_compare,
    grid_orders,
    grid_values,
    label_issues,
    neighbors,
    ranked,
)
from shoal.analysis.rpc.classification import get_classification_metrics
from shoal.analysis.rpc.context import Context
from shoal.analysis.rpc.detection_issues import query_detection_label_issues
from shoal.analysis.rpc.embedding_map import get_map_viewport
from shoal.analysis.rpc.label_issues import query_label_issues
from shoal.analysis.rpc.neighbors import query_duplicates, query_outliers
from shoal.analysis.rpc.slices import get_slices
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data.evaluations import frame_rows_set
from shoal.common.data.query import METADATA_MAPS, SETTINGS, VIEW_TABLES, Params, View, view_sql
from shoal.common.errors import NotFound
from shoal.common.jobs import SUCCEEDED, Job
from shoal.common.v1 import common_pb2

log = logging.getLogger(__name__)

#: a set's views are prepared once no new rows have reached it for this long: an upload in progress
#: changes its rows every second or so, and each preparation would be thrown away by the next batch
QUIET_SECONDS = 2.0
#: counts kept per set at most (every frame, then the splits, the classes, and the cells by size)
MAX_COUNTS = 2_000
#: the points of the whole map, as the console's map page asks for them
MAP_POINTS = 20_000
#: frames per page of the console's Issues page, and outliers or pairs per page of its Findings page
ISSUES_PAGE = 48
FINDINGS_PAGE = 24
GRID_SORTS = datapoints.GRID_SORTS
#: metadata keys of a set whose slices (and the grid's counts of their most frequent values) are prepared, the
#: values they may have, and the frames looked at to judge it
MAX_SLICE_KEYS = 4
MAX_SLICE_VALUES = 10_000
VALUES_LOOKED_AT = 200_000
#: the grid's page (``examples.js``: PAGE_SIZE), and the splits whose first pages by each sort are kept
GRID_PAGE = 60
MAX_SPLITS = 8
#: pages kept of each of those sorts (one read of the set keeps them all)
GRID_PAGES = 10
#: seconds after which a round begins no other listing of the grid's sorts of large sets (six listings a set,
#: each written whole: about 24 s a listing at 10M frames): the rest is written in the rounds after
ORDERS_SECONDS = 5.0

SetKey = tuple[str, str, str]  # project, dataset, inference set
#: the tables a round looks at: those under the sets' answers, and the jobs (a job that finished)
WATCHED = (*VIEW_TABLES, "jobs")
#: finished jobs remembered as prepared
MAX_PREPARED_JOBS = 4_096
#: every listing a finished job keeps in page order, by key (:mod:`shoal.analysis.ranked`)
JOB_LISTINGS = {lst.key: lst for lst in (*label_issues.LISTINGS, *neighbors.LISTINGS, *detection_issues.LISTINGS)}


class Preparer:
    """Prepares the console's first views of the sets that changed and the jobs that finished lately;
    :meth:`round` runs in :class:`~shoal.common.data.answers.AnswerRefresher`'s rounds."""

    def __init__(self, ctx: Context, max_sets: int, quiet_seconds: float = QUIET_SECONDS) -> None:
        self.ctx = ctx
        self.max_sets = max_sets
        self.quiet_seconds = quiet_seconds
        #: the newest block of each table looked at (-1: not looked at yet)
        self._seen = {"evaluations": -1}
        #: when each table last had new blocks (monotonic)
        self._changed = dict.fromkeys(self._seen, 0.0)
        #: the sets whose rows changed lately, the most recent last, each with the versions of the
        #: tables it was prepared under (None: not yet)
        self._sets: OrderedDict[SetKey, tuple[Any, ...] | None] = OrderedDict()
        #: the sets whose grid orders are kept (:mod:`shoal.analysis.grid_orders`), with the versions of the
        #: tables they were written under
        self._orders: dict[SetKey, tuple[Any, ...]] = {}
        #: the comparisons asked for (:class:`grid_compare.Asked`) kept with each set's orders: the baselines
        self._asked_kept: dict[SetKey, tuple[str, ...]] = {}
        #: the versions of :data:`WATCHED` as last looked at
        self._versions: tuple[Any, ...] | None = None
        #: the finished jobs whose first pages were prepared (label issues, neighbours, maps): project, job id
        #: and when it finished (a job run again is prepared again)
        self.prepared_jobs: set[tuple[str, str, Any]] = set()
        #: whether finished jobs' listings may be ranked in part (looked for at the start, and when a job changed)
        self._partial = True
        #: the listings whose ranking failed (not tried again for that run of their job)
        self._rank_failed: set[ranked.Partial] = set()

    def round(self) -> int:
        """Looks for sets that changed, and prepares those not prepared under the tables' current
        versions once the tables have settled (every set's answers are kept under the versions of
        whole tables, so an upload to one set is waited out before any is prepared); and, when a job
        changed, the first pages of the jobs finished last that are not prepared yet. Returns how
        many answers it computed."""
        if self.max_sets <= 0:
            return 0
        now = time.monotonic()
        # one look at the watched tables' versions per round (those the kept answers are checked against); more
        # only for a table that changed
        versions = self.ctx.answers.versions(WATCHED)
        if versions is None:
            return 0
        last = self._versions or (None,) * len(WATCHED)
        changed = {t for t, v, w in zip(WATCHED, versions, last, strict=True) if v != w}
        self._versions = versions
        if "evaluations" in changed:
            for key in self._changed_sets(now):
                self._sets.pop(key, None)
                self._sets[key] = None
            while len(self._sets) > self.max_sets:
                self._sets.popitem(last=False)
        done = 0
        view = versions[: len(VIEW_TABLES)]
        if now - self._changed["evaluations"] >= self.quiet_seconds:
            for key in reversed(list(self._sets)):
                if self._sets.get(key) == view:
                    continue
                try:
                    done += self._prepare_set(*key)
                    self._sets[key] = view
                except NotFound:  # the project, dataset or set went since it changed
                    self._sets.pop(key, None)
                except Exception:  # one set's failure must not stop the others'
                    log.warning("preparing the views of %s failed", key, exc_info=True)
                    self._sets.pop(key, None)
        if now - self._changed["evaluations"] >= self.quiet_seconds:
            done += self._keep_orders(view)
        if "jobs" in changed:  # a job finished (or changed): the pages of those finished last, not yet prepared
            done += self._prepare_jobs()
            self._partial = True
        if self._partial:
            ranked_now = self._rank_jobs()
            if ranked_now:  # a list read from its whole ranks now: the first pages prepared again for them
                self.prepared_jobs.clear()
                done += ranked_now + self._prepare_jobs()
        return done

    def _prepare_jobs(self) -> int:
        return (self._prepare_maps() + self._prepare_issues() + self._prepare_detection_issues()
                + self._prepare_findings())  # fmt: skip

    def job_prepared(self, project: str, job_id: str) -> bool:
        """Whether the first pages of the job, as it last finished, were prepared."""
        return any(p == project and j == job_id for p, j, _ in self.prepared_jobs)

    def orders_kept(self, project: str, dataset: str, inference_set: str) -> bool:
        """Whether the set's grid orders are written under the tables' current versions."""
        versions = self._orders.get((project, dataset, inference_set))
        return versions is not None and versions == self.ctx.answers.versions(VIEW_TABLES)

    def compared(self, project: str, dataset: str, inference_set: str, baseline: str) -> bool:
        """Whether the set's grid orders are written under the tables' current versions, with its comparison with the
        set ``baseline``, asked for (:class:`grid_compare.Asked`)."""
        key = (project, dataset, inference_set)
        return self.orders_kept(*key) and baseline in self._asked_kept.get(key, ())

    def prepared(self, project: str, dataset: str, inference_set: str) -> bool:
        """Whether the set's views are prepared under the tables' current versions."""
        versions = self._sets.get((project, dataset, inference_set))
        return versions is not None and versions == self.ctx.answers.versions(VIEW_TABLES)

    # -- what changed ------------------------------------------------------------------------------

    def _new_parts(self, table: str, now: float) -> list[str]:
        """The active parts of ``table`` holding blocks written since the last look (every part at the
        first look); remembers the newest block, and when there were new ones."""
        rows = self.ctx.metrics.query(
            "SELECT name, max_block_number FROM system.parts WHERE database = currentDatabase()"
            " AND table = {table:String} AND active AND max_block_number > {seen:Int64}",
            {"table": table, "seen": self._seen[table]},
        ).rows
        if rows:
            self._seen[table] = max(int(r[1]) for r in rows)
            self._changed[table] = now
        elif self._seen[table] < 0:
            self._seen[table] = 0
        return [str(r[0]) for r in rows]

    def _changed_sets(self, now: float) -> list[SetKey]:
        """The sets with rows in new parts of ``evaluations``, the most recently refreshed last."""
        parts = self._new_parts("evaluations", now)
        if not parts:
            return []
        rows = self.ctx.metrics.query(
            "SELECT project, dataset, inference_set, max(version) AS v FROM evaluations"
            " WHERE _part IN {parts:Array(String)} GROUP BY project, dataset, inference_set"
            " ORDER BY v DESC LIMIT {n:UInt32}",
            {"parts": parts, "n": self.max_sets},
        ).rows
        return [(str(p), str(d), str(s)) for p, d, s, _ in reversed(rows)]

    # -- what is prepared --------------------------------------------------------------------------

    def _prepare_set(self, project: str, dataset: str, inference_set: str) -> int:
        p = self.ctx.projects.get(project)
        if p.task_type != "CLASSIFICATION":
            return 0
        answers = self.ctx.answers
        done = 0
        with answers.preparing():
            if inference_set:
                before = answers.misses
                heat_map = pb.GetClassificationMetricsRequest(project=project, inference_set=inference_set)
                get_classification_metrics(self.ctx, heat_map)
                by_split = pb.GetSlicesRequest(project=project, inference_set=inference_set, group_by="split")
                get_slices(self.ctx, by_split)
                for key in self._slice_keys(project, dataset):  # and the grid's counts of each value (links)
                    get_slices(self.ctx, pb.GetSlicesRequest(project=project, inference_set=inference_set,
                                                             group_by=f"metadata.{key}"))  # fmt: skip
                done += answers.misses - before
            views = [self.ctx.view(p, dataset, inference_set, 0.0)]
            if inference_set and frame_rows_set(self.ctx.metrics, project, dataset) == inference_set:
                views.append(self.ctx.view(p, dataset, "", 0.0))  # the frames alone read this set's rows
            done += prepare_counts(self.ctx, views)
            if inference_set:  # the patched sorts answer the grid's pages at any depth; then its first pages kept
                done += self._patch_orders(p, (project, dataset, inference_set))
                splits = self._splits(views[0])
                done += self._prepare_sorted_pages(views[0], splits)
                done += self._prepare_split_views(views[0], splits)
        return done

    def _prepare_split_views(self, view: View, splits: list[str]) -> int:
        """The performance page of each of the set's ``splits`` (:meth:`_splits`), as ``performance.js`` asks for it
        when a split is picked: the heat map and the slices by split of the split's frames (0.3 s each at 10M
        frames)."""
        answers, before = self.ctx.answers, self.ctx.answers.misses
        for split in splits:
            flt = grid_orders.equalities((("split", split),))
            get_classification_metrics(self.ctx, pb.GetClassificationMetricsRequest(
                project=view.project, inference_set=view.inference_set, filter=flt))  # fmt: skip
            get_slices(self.ctx, pb.GetSlicesRequest(project=view.project, inference_set=view.inference_set,
                                                     group_by="split", filter=flt))  # fmt: skip
        return answers.misses - before

    def _patch_orders(self, p: Any, key: SetKey) -> int:
        """For a set of more than ``sorted_pages_above`` frames whose grid sorts were written before its rows changed,
        the patch that stands in for the sorts of its rows now until they are written (:func:`grid_orders.patch`),
        after the heat map, the slices and the counts and before the grid's first pages: the grid's pages at any depth
        and the slider's counts are then read from it (50 to 100 ms a page at 10M frames after 20,000 were written)."""
        versions = self.ctx.answers.versions(VIEW_TABLES)
        if versions is None or self._rows(key) <= self.ctx.sorted_above:
            return 0
        try:
            return grid_orders.patch(self.ctx.metrics, self.ctx.view(p, key[1], key[2], 0.0), versions)
        except Exception:  # the pages are read from the set until the sorts are written
            log.warning("patching the grid's sorts of %s failed", key, exc_info=True)
            return 0

    def _slice_keys(self, project: str, dataset: str) -> list[str]:
        """The dataset's metadata keys whose slices are prepared: the first :data:`MAX_SLICE_KEYS` by name (strings,
        numbers and flags) holding at most :data:`MAX_SLICE_VALUES` values, and at most one for two frames, among the
        frames that have them of the first :data:`VALUES_LOOKED_AT` frames, so that no key of a value per frame is
        sliced. One read of those frames per type of value."""
        found: dict[str, tuple[int, int]] = {}
        for kind in ("string", "number", "bool"):
            column = METADATA_MAPS[kind]
            rows = self.ctx.metrics.query(
                f"SELECT k, uniqExact(v), count() FROM (SELECT {column} FROM frames WHERE project = {{project:String}}"
                f" AND dataset = {{dataset:String}} LIMIT {{frames:UInt32}}) ARRAY JOIN mapKeys({column}) AS k,"
                f" mapValues({column}) AS v GROUP BY k",
                {"project": project, "dataset": dataset, "frames": VALUES_LOOKED_AT},
            ).rows
            for key, values, frames in rows:  # a key written as two types: as most of its frames hold it
                if int(frames) > found.get(str(key), (0, 0))[1]:
                    found[str(key)] = (int(values), int(frames))
        few = [k for k, (n, frames) in sorted(found.items()) if n <= MAX_SLICE_VALUES and 2 * n <= frames]
        return few[:MAX_SLICE_KEYS]

    def _keep_values(self, view: View, versions: tuple[Any, ...]) -> int:
        """A large set's frames counted by metadata value (:mod:`shoal.analysis.grid_values`), before its sorts: the
        slices by any key and the grid's counts of a value read them (17 s at 10M frames of six keys)."""
        try:
            return grid_values.keep(self.ctx.metrics, view, versions)
        except Exception:  # the slices and counts are read from the set; the sorts are written still
            log.warning("counting the frames of %s by metadata value failed", view.inference_set, exc_info=True)
            return 0

    def _keep_value_buckets(self, view: View, versions: tuple[Any, ...]) -> int:
        """A large set's sorts of confidence and loss counted by metadata value and bucket of their key
        (:func:`grid_values.keep_buckets`), once each sort is written, one a call: the count of the slider or of a loss
        range beside a metadata value reads them (21 s a sort at 10M frames of six keys)."""
        try:
            return grid_values.keep_buckets(self.ctx.metrics, view, versions)
        except Exception:  # those counts are read from the set, or the sort's rows
            log.warning("counting the sorts of %s by metadata value and bucket failed", view.inference_set,
                        exc_info=True)  # fmt: skip
            return 0

    def _keep_comparison(self, view: View, key: SetKey, versions: tuple[Any, ...], asked: tuple[str, ...]) -> int:
        """A large set's rows beside the predictions of the inference set of its dataset created before it (a new model
        against the one before: :func:`grid_compare.keep`), once its sorts are written, then beside those of the
        sets it was ``asked`` to be compared with lately (:class:`grid_compare.Asked`), one listing a call: the
        comparison's pages, counts and metrics read them, not the join of the two sets (3 s a page at 10M frames).
        The comparisons asked for before those are removed."""
        try:
            before = self.ctx.metrics.query(
                "SELECT name FROM inference_sets FINAL WHERE project = {project:String} AND dataset = {dataset:String}"
                " AND (create_time, name) < (SELECT create_time, name FROM inference_sets FINAL"
                " WHERE project = {project:String} AND name = {name:String}) ORDER BY create_time DESC, name DESC"
                " LIMIT 1",
                {"project": key[0], "dataset": key[1], "name": key[2]},
            ).rows
            baselines = [str(r[0]) for r in before] + [b for b in asked if b != key[2]]
            grid_compare.forget(self.ctx.metrics, view, versions, baselines)
            for baseline in dict.fromkeys(baselines):
                if grid_compare.keep(self.ctx.metrics, view, versions, baseline):
                    return 1
            return 0
        except Exception:  # the comparison joins the two sets, as before
            log.warning("keeping the comparisons of %s failed", key, exc_info=True)
            return 0

    def _keep_orders(self, versions: tuple[Any, ...]) -> int:
        """Writes, for the prepared sets of more than ``sorted_pages_above`` frames, its frames counted by metadata
        value, and the grid's sorts of every frame whole (:mod:`shoal.analysis.grid_orders`): listings for
        :data:`ORDERS_SECONDS` per round (a listing begun is written whole), the rest in the rounds after. Returns
        how many listings it wrote."""
        for key in [k for k in self._orders if k not in self._sets]:
            del self._orders[key]
            self._asked_kept.pop(key, None)
        deadline = time.monotonic() + ORDERS_SECONDS
        written = 0
        for key in reversed(list(self._sets)):
            # a set's orders written, and the comparisons asked for since: the comparisons written
            asked = self.ctx.comparisons.of(*key)
            if self._sets.get(key) != versions or (self._orders.get(key) == versions
                                                   and set(self._asked_kept.get(key, ())) == set(asked)):  # fmt: skip
                continue
            project, dataset, inference_set = key
            try:
                complete = True
                p = self.ctx.projects.get(project)
                if inference_set and p.task_type == "CLASSIFICATION":
                    view = self.ctx.view(p, dataset, inference_set, 0.0)
                    if self._rows(key) > self.ctx.sorted_above:
                        written += self._keep_values(view, versions)
                        n, complete = grid_orders.keep(self.ctx.metrics, view, versions, deadline=deadline)
                        counted = self._keep_value_buckets(view, versions)
                        written, complete = written + n + counted, complete and not counted  # one sort's a round
                        if complete:  # then the comparisons with the set before it and those asked, a listing a round
                            compared = self._keep_comparison(view, key, versions, asked)
                            written, complete = written + compared, not compared
                    else:  # written when it was larger
                        grid_orders.remove(self.ctx.metrics, view)
            except NotFound:
                self._sets.pop(key, None)
                continue
            except Exception:  # one set's failure must not stop the others'
                log.warning("keeping the grid's sorted pages of %s failed", key, exc_info=True)
                complete = True  # not again under these versions
            if not complete:
                break
            self._orders[key], self._asked_kept[key] = versions, asked
        return written

    def _rank_jobs(self) -> int:
        """Ranks the rest of finished jobs' listings ranked in part at their end, for :data:`ORDERS_SECONDS` per round
        (a listing begun is ranked whole); returns how many it ranked."""

        def finished(project: str, job_id: str) -> bool:
            job = self.ctx.jobs.find(project, job_id)
            return job is not None and job.state == SUCCEEDED

        try:
            deadline = time.monotonic() + ORDERS_SECONDS
            n, whole = ranked.complete(self.ctx.metrics, JOB_LISTINGS, current=finished, deadline=deadline,
                                       failed=self._rank_failed)  # fmt: skip
        except Exception:  # looked for again when a job changes
            log.warning("ranking the rest of finished jobs' listings failed", exc_info=True)
            n, whole = 0, True
        self._partial = not whole
        return n

    def _rows(self, key: SetKey) -> int:
        """The set's rows, about (a row of a frame written again counts until the two are merged)."""
        project, dataset, inference_set = key
        return int(
            self.ctx.metrics.query(
                "SELECT count() FROM evaluations WHERE project = {p:String} AND inference_set = {s:String}"
                " AND dataset = {d:String}",
                {"p": project, "s": inference_set, "d": dataset},
            ).scalar()
        )

    def _splits(self, view: View) -> list[str]:
        """The set's splits (:data:`MAX_SPLITS` at most), by name."""
        rows = self.ctx.metrics.query(
            "SELECT DISTINCT split FROM evaluations WHERE project = {p:String} AND inference_set = {s:String}"
            " AND dataset = {d:String} ORDER BY split LIMIT {n:UInt32}",
            {"p": view.project, "s": view.inference_set, "d": view.dataset, "n": MAX_SPLITS},
        ).rows
        return [str(r[0]) for r in rows]

    def _prepare_sorted_pages(self, view: View, splits: list[str]) -> int:
        """The grid's first :data:`GRID_PAGES` pages of every frame and of each of the set's ``splits``
        (:meth:`_splits`) sorted by each prediction field, up and down, as ``examples.js`` asks for
        them: each read of the whole set (a class or a cell reads its own rows,
        :mod:`shoal.common.data.evaluations`) keeps ten pages, fewer when the set has many classes (a
        page weighs its probabilities)."""
        wheres = [(), *((("split", s),) for s in splits)]
        sorts = [[pb.SortKey(field=f, descending=d)] for f in GRID_SORTS[1:] for d in (False, True)]
        # as many pages as fit an eighth of the kept answers' weight (fewer for many classes; none for thousands)
        page = GRID_PAGE * (1 + len(view.ontology) // 10)
        pages = min(GRID_PAGES, self.ctx.answers.max_weight // 8 // (page * len(wheres) * len(sorts)))
        done = 0
        for where in wheres if pages else ():
            flt = grid_orders.equalities(where)
            for sort in sorts:
                done += datapoints.keep_pages(self.ctx.metrics, self.ctx.answers, view, flt, sort, GRID_PAGE, pages)
        return done

    def _prepare_issues(self) -> int:
        """The first page of the Issues page (``issues.js``: 48 frames) in each of its orders, the default
        first, of the label-issue jobs finished last, one per inference set."""

        def first(job: Job) -> None:
            page = common_pb2.PageRequest(page_size=ISSUES_PAGE)
            for order in label_issues.ORDERS:
                query_label_issues(self.ctx, pb.QueryLabelIssuesRequest(project=job.project, job_id=job.job_id,
                                                                        order=order, page=page))  # fmt: skip

        return self._prepare_latest(label_issues.KIND, ("inference_set",), first)

    def _prepare_detection_issues(self) -> int:
        """The first page of the Issues page of a detection project (``issues.js``: 48 flagged objects, the likeliest
        issues first) of the detection label-issue jobs finished last, one per inference set."""

        def first(job: Job) -> None:
            page = common_pb2.PageRequest(page_size=ISSUES_PAGE)
            query_detection_label_issues(self.ctx, pb.QueryDetectionLabelIssuesRequest(
                project=job.project, job_id=job.job_id, level=pb.DETECTION_ISSUE_LEVEL_OBJECT, page=page))  # fmt: skip

        return self._prepare_latest(detection_issues.KIND, ("inference_set",), first)

    def _prepare_findings(self) -> int:
        """The first pages of the Findings page (``findings.js``: 24 outliers, most outlying first, and 24
        duplicate pairs) of the neighbour jobs finished last, one per dataset and embedding space."""

        def first(job: Job) -> None:
            page = common_pb2.PageRequest(page_size=FINDINGS_PAGE)
            query_outliers(self.ctx, pb.QueryOutliersRequest(project=job.project, job_id=job.job_id, page=page))
            query_duplicates(self.ctx, pb.QueryDuplicatesRequest(project=job.project, job_id=job.job_id, page=page))

        return self._prepare_latest(neighbors.KIND, ("dataset", "embedding_space"), first)

    def _prepare_maps(self) -> int:
        """The whole map, as the map page first asks for it, of the maps finished last, one per dataset and
        embedding space."""

        def whole(job: Job) -> None:
            # as the console's map asks for it: as an Arrow table
            request = pb.GetMapViewportRequest(
                project=job.project, job_id=job.job_id, max_points=MAP_POINTS, arrow=True
            )
            get_map_viewport(self.ctx, request)

        return self._prepare_latest(embedding_map.KIND, ("dataset", "embedding_space"), whole)

    def _prepare_latest(self, kind: str, by: tuple[str, ...], prepare: Callable[[Job], None]) -> int:
        """Runs ``prepare`` on the jobs of ``kind`` finished last (one per value of the params ``by``, at
        most ``max_sets``) so that its answers are kept; returns how many answers it computed."""
        answers = self.ctx.answers
        before = answers.misses
        with answers.preparing():
            for job in self.ctx.jobs.latest_succeeded(kind, by, self.max_sets):
                key = (job.project, job.job_id, job.finish_time)
                if key in self.prepared_jobs:
                    continue
                try:
                    prepare(job)
                    if len(self.prepared_jobs) >= MAX_PREPARED_JOBS:  # the next rounds find the latest kept
                        self.prepared_jobs.clear()
                    self.prepared_jobs.add(key)
                except NotFound:  # the project, or what the job read, went
                    continue
                except Exception:
                    log.warning("preparing the answers of job %s failed", job.job_id, exc_info=True)
        return answers.misses - before


def prepare_counts(ctx: Context, views: list[View]) -> int:
    """Keeps the grid's counts of every frame, each split, each labeled class and each confusion cell
    (with and without a split), under each of :data:`GRID_SORTS` and the capture time, of the views, which read the same
    rows (a set's, and the frames alone read from it), and how many of the set's frames have each set of those fields
    together (:func:`datapoints.present_key`), from one aggregation over the first. Returns how many it kept anew."""
    view = views[0]
    versions = ctx.answers.versions(VIEW_TABLES)
    if versions is None:
        return 0
    params = Params()
    source = view_sql(view, params)
    # and under the sort by capture time: the frames with one, which a count of a capture-time range read from that
    # sort's rows is checked against (grid_orders.rows_count)
    sorts = (*GRID_SORTS, "capture_time") if view.inference_set else GRID_SORTS[:1]
    present = "".join(f", countIf({field} IS NOT NULL)" for field in sorts[1:])
    # and every frame's with several of those fields (a range of one beside a sort by another: whether the range's
    # rows all have the sort's field), which the grid's counts and pages check on their first call
    together = [c for n in range(2, len(sorts)) for c in itertools.combinations(sorted(sorts[1:]), n)]
    present += "".join(f", countIf({' AND '.join(f'{f} IS NOT NULL' for f in c)})" for c in together)
    rows = ctx.metrics.query(
        f"SELECT split, label_class, predicted_class, count(){present} FROM ({source})"
        f" GROUP BY split, label_class, predicted_class{SETTINGS}",
        params.values,
    ).rows
    width = 3 + len(sorts)  # split, classes, then a count under each sort; then each set of fields together
    every = [sum(int(r[width + i]) for r in rows) for i in range(len(together))]
    rows = [r[:width] for r in rows]
    counts: dict[tuple[tuple[str, Any], ...], list[int]] = {}

    def add(key: tuple[tuple[str, Any], ...], n: list[int]) -> None:
        counts[key] = [a + b for a, b in zip(counts.get(key, [0] * len(n)), n, strict=True)]

    for split, label, predicted, *ns in rows:
        n = [int(v) for v in ns]
        # the grid's "correct" filter (a frame with both a label and a prediction, at confidence threshold 0)
        right = None if label is None or predicted is None or not view.inference_set else int(label) == int(predicted)
        for where in ((), (("split", str(split)),)):
            add(where, n)
            if right is not None:
                add((*where, ("correct", right)), n)
            if label is None:
                continue
            add((*where, ("label_class", int(label))), n)
            if right is not None:
                add((*where, ("label_class", int(label)), ("correct", right)), n)
            if predicted is not None and view.inference_set:
                add((*where, ("label_class", int(label)), ("predicted_class", int(predicted))), n)
    if view.inference_set:  # the empty cells of the heat map open an empty grid, counted as well
        labels = {k[0][1] for k in counts if len(k) == 1 and k[0][0] == "label_class"}
        predicted = {k[1][1] for k in counts if len(k) == 2 and k[1][0] == "predicted_class"}
        for a in labels:
            for b in predicted:
                counts.setdefault((("label_class", a), ("predicted_class", b)), [0] * len(sorts))
    # every frame, the splits, the classes, then the cells, the largest first
    order = sorted(counts.items(), key=lambda kv: (len(kv[0]), -kv[1][0]))[:MAX_COUNTS]
    kept: dict[Hashable, int] = {}
    for where, ns in order:
        flt = grid_orders.equalities(where)
        for v in views:
            if any(f in ("predicted_class", "correct") for f, _ in where) and not v.inference_set:
                continue
            for field, n in zip(sorts if v.inference_set else sorts[:1], ns, strict=False):
                kept[datapoints.count_key(v, flt, [pb.SortKey(field=field)])] = n
    kept.update({datapoints.present_key(view, c): n for c, n in zip(together, every, strict=True)})
    return ctx.answers.keep(VIEW_TABLES, versions, kept)
