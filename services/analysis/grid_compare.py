"""A large set compared with another inference set of its dataset, kept beside its grid sorts: the comparison's
pages, counts and metrics without joining the two sets on each call.

A view with a baseline (the Performance page's comparison, and the example grid of the frames a new model improved or
regressed: ``change``) reads each of the set's rows beside the baseline's prediction of the same frame, a join of the
two sets' rows: at 10M frames 1.2 to 2.7 s for the comparison's metrics, and 3.9 to 7.7 s for the grid's first count
and page of the regressed frames (the join reads both sets whole before the page's first row). For an inference set
whose grid sorts are kept (more than ``sorted_pages_above`` frames), once they are written, the preparer
(:mod:`shoal.analysis.prepared`) writes the set's rows joined with those of the set compared with (the baseline: the
inference set of the same dataset created before it) into ``grid_listings``, each row with the baseline's prediction
and confidence, in frame id order: every frame (:data:`EVERY`), with the comparison's counts by split, labeled,
predicted and baseline class (``grid_compare_counts``), then the frames whose prediction changed from wrong to right
or right to wrong (:data:`CHANGED`, a few percent of the set), keyed by the change. A view with that baseline then
reads those in place of the join (looked up once a request: :func:`kept`): the metrics at threshold 0 from the counts
(:func:`counts`), the grid's count of a filter naming the change from them too (:func:`count`), and its pages from a
listing (:func:`listing`): the changed
frames' for improved or regressed frames at threshold 0, every frame's otherwise, a page by frame id read in the
listing's order (31 to 118 ms at 10M frames). The listings are written for the tables' versions under the build of
the set's sorts (:func:`shoal.analysis.grid_orders.build_id`), removed with it; after a change of the data they are
not read until written again, the join read as before. A comparison with another baseline (the console offers every
set of the dataset) reads the join and is noted as asked (:class:`Asked`): the preparer keeps the two asked last of
each set too, and removes those asked before them (:func:`forget`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import Counter

from shoal.analysis import grid_orders
from shoal.common.data.query import (
    BASELINE_CORRECT,
    BASELINE_FIELDS,
    CHANGE,
    CORRECT,
    ROW_COLUMNS,
    SETTINGS,
    Params,
    View,
    compile_filter,
    view_sql,
)
from shoal.common.stores.metrics import MetricsStore
from shoal.common.v1 import common_pb2

READ = Counter(
    "shoal_grid_compare_read_total",
    "Pages, counts and metrics of a large set compared with another inference set read from the set's rows kept "
    "beside the other's predictions (shoal.analysis.grid_compare), not from a join of the two sets.",
    ["listing"],
)
#: the listings of a comparison: the frames whose prediction changed from wrong to right or right to wrong, and every
#: frame
CHANGED, EVERY = "changed", "every"
#: the name the changed frames of the listing of every frame are recorded under, which that of :data:`CHANGED` must
#: hold
_COUNTED = "changes"
#: what begins the name of each listing of a comparison (:func:`listing_name`)
_PREFIX = "vs:"
#: the changes of a frame the listing of :data:`CHANGED` holds (at threshold 0)
_CHANGES = ("improved", "regressed")


def listing_name(baseline: str, which: str) -> str:
    """The name of a comparison's listing (:data:`CHANGED` or :data:`EVERY`) with the set ``baseline``."""
    return f"{_PREFIX}{which}:{baseline}"


#: the comparisons of a set with another than the set before it that the preparer keeps: those asked last
ASKED_PER_SET = 2
#: the sets whose asked comparisons are remembered (those asked last)
ASKED_SETS = 64


class Asked:
    """The comparisons asked for whose rows were not kept (a view with a baseline read from the join of the two sets):
    the preparer keeps those of a large set too, beside its comparison with the set before it, the
    :data:`ASKED_PER_SET` asked last of each set (a console's baseline picked from every set of the dataset), and
    removes those asked before them (:func:`forget`), so that a client asking every baseline in turn keeps no more
    copies of the set than that. Shared by a process's requests and its preparer."""

    def __init__(self, per_set: int = ASKED_PER_SET, sets: int = ASKED_SETS) -> None:
        self._per_set, self._sets = per_set, sets
        self._lock = threading.Lock()
        self._asked: OrderedDict[tuple[str, str, str], list[str]] = OrderedDict()

    def ask(self, view: View) -> None:
        """Notes that ``view``'s comparison (its set with its baseline) was asked for and not found kept."""
        if not view.inference_set or not view.baseline_inference_set or self._per_set <= 0:
            return
        key = (view.project, view.dataset, view.inference_set)
        with self._lock:
            baselines = [b for b in self._asked.pop(key, []) if b != view.baseline_inference_set]
            self._asked[key] = [*baselines, view.baseline_inference_set][-self._per_set :]
            while len(self._asked) > self._sets:
                self._asked.popitem(last=False)

    def of(self, project: str, dataset: str, inference_set: str) -> tuple[str, ...]:
        """The baselines the set was compared with lately, the last asked last."""
        with self._lock:
            return tuple(self._asked.get((project, dataset, inference_set), ()))


def forget(metrics: MetricsStore, view: View, versions: Sequence[Any], keep_with: Sequence[str]) -> int:
    """Removes the comparisons of ``view``'s set written under the tables' ``versions`` with a baseline not in
    ``keep_with``: their listings, counts and records. Returns how many comparisons it removed."""
    build = grid_orders.build_id(view, versions)
    written = grid_orders.written(metrics, view, build)
    gone = {name.removeprefix(_PREFIX).split(":", 1)[1] for name in written if name.startswith(_PREFIX)}
    gone -= set(keep_with)
    if not gone:
        return 0
    params = Params()
    names = params.add([listing_name(b, w) for b in sorted(gone) for w in (EVERY, CHANGED, _COUNTED)], "Array(String)")
    baselines = params.add(sorted(gone), "Array(String)")
    for table, which in (("grid_listings", f"listing IN {names}"), ("grid_compare_counts", f"baseline IN {baselines}"),
                         ("grid_listing_builds", f"listing IN {names}")):  # fmt: skip
        metrics.command(f"DELETE FROM {table} WHERE {grid_orders.scope(view, params, build)} AND {which}",
                        params.values)  # fmt: skip
    return len(gone)


def keep(metrics: MetricsStore, view: View, versions: Sequence[Any], baseline: str) -> int:
    """Writes the next listing of ``view`` (an inference set's, at threshold 0, without a baseline) compared with the
    set ``baseline`` not written under the tables' ``versions``, one a call: :data:`EVERY` (the join of the two sets,
    written once), then :data:`CHANGED` (read from it, with how many changed frames it holds, which a read checks the
    listing against). Returns 1 when one was written."""
    build = grid_orders.build_id(view, versions)
    every, changed, changes = (listing_name(baseline, which) for which in (EVERY, CHANGED, _COUNTED))
    done = grid_orders.written(metrics, view, build)
    mutation = int(versions[0][1])  # evaluations' (VIEW_TABLES[0]); no patch builds on these listings
    if not done:  # the build is known before its rows are written: the next build's removal finds it if cut short
        grid_orders.record(metrics, view, build, "", 0, block=-1, mutation=mutation)
    compared = replace(view, baseline_inference_set=baseline)
    if every not in done:
        grid_orders.insert_rows(metrics, compared, build, every, "0", "1", Params())
        params = Params()  # and the comparison's counts, by what its metrics and their filters read
        source = view_sql(compared, params, listing=(build, every))
        into = ", ".join(params.add(v, "String") for v in (view.project, view.inference_set, view.dataset, build,
                                                               baseline))  # fmt: skip
        metrics.command(
            "INSERT INTO grid_compare_counts (project, inference_set, dataset, build, baseline, split, label_class,"
            f" predicted_class, baseline_predicted_class, rows) SELECT {into}, split, label_class, pred_raw,"
            f" base_pred_raw, count() FROM ({source}) GROUP BY split, label_class, pred_raw, base_pred_raw{SETTINGS}",
            params.values,
        )
        grid_orders.record(metrics, view, build, every, grid_orders.count_rows(metrics, view, build, every),
                           block=-1, mutation=mutation)  # fmt: skip
        return 1
    if changed in done:
        return 0
    params = Params()  # how many changed, from the counts written with every frame's listing (not a read of it)
    n = _sums(metrics, compared, build, common_pb2.Filter(all=[_CHANGED_ONLY]))[1]
    source = view_sql(compared, params, listing=(build, every))
    where = f"change IN {params.add(list(_CHANGES), 'Array(String)')}"
    into = ", ".join(params.add(v, "String") for v in (view.project, view.inference_set, view.dataset, build, changed))
    columns = ", ".join((*ROW_COLUMNS, "confidence", "base_pred_raw", "base_confidence", "width", "height"))
    metrics.command(  # keyed by the change (improved 0, regressed 1), in frame id order within each
        f"INSERT INTO grid_listings (project, inference_set, dataset, build, listing, key, {columns})"
        f" SELECT {into}, toFloat64(change = 'regressed'), {columns} FROM ({source}) WHERE {where}{SETTINGS}",
        params.values,
    )
    grid_orders.record(metrics, view, build, changes, n, block=-1, mutation=mutation)
    grid_orders.record(metrics, view, build, changed, grid_orders.count_rows(metrics, view, build, changed),
                       block=-1, mutation=mutation)  # fmt: skip
    return 1


@dataclass(frozen=True)
class Kept:
    """A view with a baseline's comparison written under the tables' versions: the build, its listings' names (by
    :data:`EVERY`, :data:`CHANGED` and the changed frames' count) and those written with their rows."""

    build: str
    names: dict[str, str]
    done: dict[str, int]


def kept(metrics: MetricsStore, view: View, versions: Sequence[Any] | None, frames: int) -> Kept | None:
    """The comparison of a view with a baseline written under the tables' ``versions``, when its listing of every
    frame holds the set's ``frames`` (one written twice is not read); else None. One read of the builds' table."""
    if versions is None or not view.inference_set or not view.baseline_inference_set:
        return None
    own = replace(view, baseline_inference_set="", confidence_threshold=0.0)
    build = grid_orders.build_id(own, versions)
    names = {which: listing_name(view.baseline_inference_set, which) for which in (CHANGED, EVERY, _COUNTED)}
    done = grid_orders.written(metrics, own, build, list(names.values()))
    if done.get(names[EVERY]) != frames:  # not written, or written twice
        return None
    return Kept(build, names, done)


def listing(view: View, flt: common_pb2.Filter, found: Kept) -> tuple[tuple[str, str], list[tuple[str, float]]]:
    """The listing (build, name) a view with a baseline reads in place of the join of the two sets, with bounds of
    its key: the changed frames' for a filter of improved or regressed frames at threshold 0 (the regressed or the
    improved alone by their key, when the listing holds as many as the counts say changed), else every frame's."""
    names, done = found.names, found.done
    whole = names[CHANGED] in done and done[names[CHANGED]] == done.get(names[_COUNTED])
    changes = _changes(flt) if not view.confidence_threshold and whole else None
    READ.labels(EVERY if changes is None else CHANGED).inc()
    if changes is None:  # its key is 0: by it and the frame id, a page by frame id read in the listing's order
        return (found.build, names[EVERY]), [("=", 0.0)]
    keys = [] if len(changes) == 2 else [("=", 1.0)] if "regressed" in changes else [("=", 0.0)]
    return (found.build, names[CHANGED]), keys


def _changes(flt: common_pb2.Filter) -> set[str] | None:
    """The changes ``flt`` keeps to (improved, regressed, or either), when it keeps to frames whose prediction
    changed; else None."""
    for c in flt.all:
        if c.field != "change" or c.negate:
            continue
        values = [c.equals] if c.WhichOneof("op") == "equals" else list(getattr(c, "in").values) \
            if c.WhichOneof("op") == "in" else []  # fmt: skip
        if values and all(v.WhichOneof("kind") == "string_value" and v.string_value in _CHANGES for v in values):
            return {v.string_value for v in values}
    return None


#: the frames whose prediction changed, as a filter
_CHANGED_ONLY = common_pb2.Condition(
    field="change", **{"in": common_pb2.ValueList(values=[common_pb2.Value(string_value=c) for c in _CHANGES])}
)


def _counted_rows(view: View, params: Params, build: str) -> str:
    """The comparison's counts as the view's rows at threshold 0 (each class as it is read then, with the correctness
    and the change of each), which a filter compiled against the view reads."""
    rows = (
        "SELECT *, predicted_class AS pred_raw, baseline_predicted_class AS base_pred_raw FROM grid_compare_counts"
        f" WHERE {grid_orders.scope(view, params, build)}"
        f" AND baseline = {params.add(view.baseline_inference_set, 'String')}"
    )
    derived = f"SELECT *, {CORRECT} AS correct, {BASELINE_CORRECT} AS baseline_correct FROM ({rows})"
    return f"SELECT *, {CHANGE} AS change FROM ({derived})"


def _sums(metrics: MetricsStore, view: View, build: str, flt: common_pb2.Filter) -> tuple[int, int]:
    """Every frame the comparison's counts hold, and those that pass ``flt``."""
    params = Params()
    where = compile_filter(flt, view, params)
    every, passed = metrics.query(
        f"SELECT sum(rows), sumIf(rows, {where}) FROM ({_counted_rows(view, params, build)})", params.values
    ).rows[0]
    return int(every or 0), int(passed or 0)


def counts(
    metrics: MetricsStore, view: View, flt: common_pb2.Filter, found: Kept, frames: int
) -> list[tuple[Any, ...]] | None:
    """The frames of a view with a baseline (at threshold 0) with a label and both predictions that pass ``flt``
    (conditions on :data:`shoal.analysis.grid_orders.THRESHOLD_FIELDS`), by labeled class, predicted class and the
    baseline's predicted class, as :func:`shoal.analysis.compare.compare` counts them, from the comparison's counts
    (which must hold the set's ``frames``); None when this does not apply."""
    if view.confidence_threshold or any(c.field not in grid_orders.THRESHOLD_FIELDS for c in flt.all):
        return None
    params = Params()
    where = compile_filter(flt, view, params)
    rows = metrics.query(  # a label and both predictions: both correctnesses known
        f"SELECT label_class, predicted_class, baseline_predicted_class, sum(rows), sumIf(rows, correct IS NOT NULL"
        f" AND baseline_correct IS NOT NULL AND {where}) FROM ({_counted_rows(view, params, found.build)})"
        " GROUP BY label_class, predicted_class, baseline_predicted_class",
        params.values,
    ).rows
    if sum(int(r[3]) for r in rows) != frames:  # not written whole, or written twice
        return None
    READ.labels(_COUNTED).inc()
    return [(*r[:3], int(r[4])) for r in rows if int(r[4])]


#: the fields a count of a view with a baseline may be filtered by, from the comparison's counts (at threshold 0)
COUNTED_FIELDS = ("split", "label_class", "labeled", "predicted_class", "correct", *BASELINE_FIELDS)


def count(
    metrics: MetricsStore, view: View, flt: common_pb2.Filter, sort: Sequence[Any], found: Kept, frames: int
) -> int | None:
    """The grid's count of a view with a baseline (at threshold 0) whose filter names the baseline (the frames a new
    model improved or regressed, say) with conditions on :data:`COUNTED_FIELDS`, the grid sorted by frame id: from
    the comparison's counts (which must hold the set's ``frames``); None when this does not apply."""
    if view.confidence_threshold or any(c.field not in COUNTED_FIELDS for c in flt.all):
        return None
    if any(k.field != "frame_id" for k in sort):
        return None
    every, passed = _sums(metrics, view, found.build, flt)
    if every != frames:  # not written whole, or written twice
        return None
    READ.labels(_COUNTED).inc()
    return passed
