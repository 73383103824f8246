"""A large set's frames counted by metadata value, kept beside its grid sorts: the slices by any metadata key, and
the grid's count of a metadata value, without reading every frame.

The slices by a metadata key (``GetSlices``) and the grid's count of one of its values read the set's metadata maps
for every frame: at 10M frames 0.65 to 0.96 s on the first call for each key's slices (the preparer reads the first
few keys' before anyone asks). For an inference set whose grid sorts are kept (:mod:`shoal.analysis.grid_orders`,
more than ``sorted_pages_above`` frames), the preparer also writes, once per version of the data, every frame's
metadata values counted in one read of the set: for each key of at most :data:`MAX_VALUES` values (the keys of
fewest values first, :data:`MAX_COUNTED_VALUES` values in all), each value's frames by split, label class, predicted
class and correctness, and with or without each of the grid's sort fields; and every frame so counted (kind ``''``),
whose difference from a key's values is the frames without the key. The slices by any such key with no filter, or a
filter of the split, the classes and the right or wrong predictions (:func:`slice_rows`), and the grid's count of
one condition on such a key (its value equal to one, in a list, or in a range; the key present or absent; any of
these negated), alone or with those conditions (:func:`value_count`), are then read from those counts. They are
written for the tables' versions, in the build the grid's sorts of those versions are written under, and removed
with it; after a change of the data they are not read until written again (17 s at 10M frames of six keys), the set
read as before. At 10M frames the slices by a key then take 11 to 69 ms on their first call, and a value's count 12
to 38 ms (from the set: 0.08 to 0.75 s).

Once the confidence sort and the loss sort of the same build are written, the preparer also counts their rows by
those values and by bucket of their key (:func:`keep_buckets`, ``grid_value_buckets``): the grid's count of the
confidence slider or a loss range beside a metadata value (:func:`value_range_count`), and the slices by a key at a
confidence threshold (:func:`below_by_value`), are read from them, whatever the range's width: 41 to 147 ms at 10M
frames on the first call (most below 100), where reading the set took 0.27 to 1.6 s.

With the counts by value, :func:`keep` counts the set's frames by hour of capture (``grid_time_counts``): the slices
by capture time in any bucket (:func:`time_slice_rows`) and the grid's count of a range of whole hours, as a slice's
link writes one (:func:`time_count`), are read from them (15 to 127 ms at 10M frames, the set 0.04 to 0.5 s).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter

from shoal.analysis import grid_orders
from shoal.common.data.query import (
    METADATA_KINDS,
    METADATA_MAPS,
    SETTINGS,
    Params,
    View,
    compile_filter,
    condition_kind,
    view_sql,
)
from shoal.common.stores.metrics import MetricsStore
from shoal.common.v1 import common_pb2

NONE = "(none)"
READ = Counter(
    "shoal_grid_values_read_total",
    "Slices by a metadata key and grid counts of a metadata value of a large set read from its frames counted by "
    "metadata value (shoal.analysis.grid_values), not from every frame of the set.",
)
#: keys of more values than this in the set are not counted (a value per frame, or nearly: an id, a path), as the
#: preparer's slices leave them out
MAX_VALUES = 10_000
#: the values of every key counted together at most: the keys of fewest values first (a set of many keys of many
#: values keeps its counts, and their write, bounded; the keys left out are read from the set)
MAX_COUNTED_VALUES = 200_000
#: the name the counts of a build are recorded under in ``grid_listing_builds``, with the set's frames
VALUES = "values"
#: the grid's sort fields whose presence each count is kept with (a grid sorted by one leaves out the frames without;
#: the table, ``grid_value_counts``, is one of a build's, :data:`shoal.analysis.grid_orders.MIGRATIONS`)
PRESENT = grid_orders.FIELDS
#: a metadata value (``{v}``) of each kind as text, as the slices name it
_TEXT = {"string": "{v}", "number": "toString({v})", "bool": "toString(toBool({v}))", "timestamp": "toString({v})"}
#: each metadata entry of a frame as (kind, key, value as text); and every frame once
_ENTRIES = "arrayConcat([('', '', '')], {})".format(", ".join(
    f"arrayMap((k, v) -> ('{kind}', toString(k), {text.format(v='v')}), mapKeys({column}), mapValues({column}))"
    for kind, text in _TEXT.items() for column in [METADATA_MAPS[kind]]))  # fmt: skip
#: a counted value as the set's rows hold it in its kind's map, for a filter compiled against the set's view (the
#: text of every other kind's rows read as zero, never used)
_MAPS = {
    "string": "value",
    "number": "toFloat64OrZero(value)",
    "bool": "toUInt8(value = 'true')",
    "timestamp": "toDateTime64OrZero(value, 3, 'UTC')",
}


#: a counted value's row (kind, key, value) as the set's maps of metadata, which a filter compiled against the set's
#: view reads
_COUNTED_MAPS = ", ".join(
    f"if(kind = '{k}', map(key, {typed}), map()) AS {METADATA_MAPS[k]}" for k, typed in _MAPS.items()
)


def _held(condition: common_pb2.Condition, kind: str | None) -> tuple[common_pb2.Condition, bool]:
    """A metadata condition as it holds (not negated; a key's absence as its presence), and whether a count of it is
    of the frames that fail that (every frame that passes the other conditions, less those that pass it)."""
    held = common_pb2.Condition()
    held.CopyFrom(condition)
    held.negate = False
    failing = condition.negate
    if kind is None and not held.exists:  # a key's absence: every frame less those with the key
        held.exists, failing = True, not failing
    return held, failing


def keep(metrics: MetricsStore, view: View, versions: Sequence[Any]) -> int:
    """Writes the set's frames counted by metadata value for the tables' ``versions``, unless written: two reads of
    the set (its keys' values, then the counts; 17 s at 10M frames of six keys). Returns 1 when written."""
    build = grid_orders.build_id(view, versions)
    done = grid_orders.written(metrics, view, build)
    if VALUES in done:
        return 0
    mutation = int(versions[0][1])  # evaluations' (VIEW_TABLES[0]); no patch builds on these counts
    if not done:  # the build is known before its rows are written: the next build's removal finds it if cut short
        grid_orders.record(metrics, view, build, "", 0, block=-1, mutation=mutation)
    params = Params()
    source = view_sql(view, params)
    keys = metrics.query(
        f"SELECT e.1, e.2, count(), uniq(e.3) FROM ({source}) ARRAY JOIN {_ENTRIES} AS e GROUP BY e.1, e.2{SETTINGS}",
        params.values,
    ).rows
    frames = next((int(n) for kind, _, n, _ in keys if kind == ""), 0)
    # a key of too many values is left out whole (of every type it has, so that its type is read as the set's)
    values: dict[str, int] = {}
    for kind, key, _, n in keys:
        if kind != "":
            values[str(key)] = values.get(str(key), 0) + int(n)
    kept, total = set(), 0
    for key, n in sorted(values.items(), key=lambda kv: (kv[1], kv[0])):
        if n > MAX_VALUES or total + n > MAX_COUNTED_VALUES:
            break
        kept.add(key)
        total += n
    counted = [(str(kind), str(key)) for kind, key, _, _ in keys if kind != "" and str(key) in kept]
    params = Params()
    source = view_sql(view, params)
    into = ", ".join(params.add(v, "String") for v in (view.project, view.inference_set, view.dataset, build))
    present = ", ".join(f"{f} IS NOT NULL AS has_{f}" for f in PRESENT)
    has = ", ".join(f"has_{f}" for f in PRESENT)
    metrics.command(
        "INSERT INTO grid_value_counts (project, inference_set, dataset, build, kind, key, value, split, label_class,"
        f" predicted_class, correct, {has}, rows)"
        f" SELECT {into}, e.1, e.2, e.3, split, label_class, predicted_class, correct, {present}, count()"
        f" FROM ({source}) ARRAY JOIN {_ENTRIES} AS e"
        f" WHERE e.1 = '' OR has({params.add(counted, 'Array(Tuple(String, String))')}, (e.1, e.2))"
        f" GROUP BY e.1, e.2, e.3, split, label_class, predicted_class, correct, {has}{SETTINGS}",
        params.values,
    )
    params = Params()
    source = view_sql(view, params)
    into = ", ".join(params.add(v, "String") for v in (view.project, view.inference_set, view.dataset, build))
    metrics.command(  # and by hour of capture
        "INSERT INTO grid_time_counts (project, inference_set, dataset, build, hour, split, label_class, correct,"
        f" {has}, rows) SELECT {into}, toStartOfHour(capture_time) AS h, split, label_class, correct, {present},"
        f" count() FROM ({source}) GROUP BY h, split, label_class, correct, {has}{SETTINGS}",
        params.values,
    )
    grid_orders.record(metrics, view, build, VALUES, frames, block=-1, mutation=mutation)
    return 1


def _counted(metrics: MetricsStore, view: View, versions: Sequence[Any] | None) -> tuple[str, int] | None:
    """The build whose frames are counted by value under the tables' ``versions``, and its frames."""
    if versions is None or not view.inference_set or view.baseline_inference_set:
        return None
    build = grid_orders.build_id(view, versions)
    frames = grid_orders.written(metrics, view, build, [VALUES]).get(VALUES)
    return None if frames is None else (build, frames)


def _at_zero(view: View, besides: Sequence[common_pb2.Condition]) -> View | None:
    """The view a count of frames that pass ``besides`` reads its counts under: the view at threshold 0, whose frames
    of a split or a class are those at any threshold (their predictions are not: a count at a threshold with a
    condition on them is None)."""
    if not view.confidence_threshold:
        return view
    if any(c.field not in grid_orders.THRESHOLD_FIELDS for c in besides):
        return None
    return replace(view, confidence_threshold=0.0)


def _key_rows(rows: Sequence[Any], frames: int) -> tuple[Any, str] | None:
    """Of the counts of a key's values and of every frame (kind ``''``) read together, each row kind first: every
    frame's row and the key's type (as the set's slices read it: the first of its kinds), or None when those are not
    as many as the build's ``frames`` (not written whole, or written twice) or the key is not counted (the set's
    frames do not have it, or it has too many values)."""
    every = [r for r in rows if r[0] == ""]
    if not every or int(every[0][2]) != frames:
        return None
    kind = next((k for k in METADATA_KINDS if any(r[0] == k for r in rows)), None)
    return None if kind is None else (every[0], kind)


def _with_none(by_value: dict[str, list[int]], every: Sequence[Any]) -> dict[str, list[int]]:
    """The counts of a key's values with those of the frames without the key (every frame's, ``every``, less the
    values'): one slice, ``(none)``, with a value named so, as the set groups them."""
    without = [int(a) - sum(v[i] for v in by_value.values()) for i, a in enumerate(every)]
    by_value[NONE] = [a + b for a, b in zip(by_value.get(NONE, [0] * len(without)), without, strict=True)]
    return by_value


def slice_rows(
    metrics: MetricsStore, view: View, versions: Sequence[Any] | None, flt: common_pb2.Filter, key: str
) -> tuple[str, list[tuple[Any, ...]]] | None:
    """The type of metadata ``key`` and the slices by its values of the frames that pass ``flt``, as
    :func:`shoal.analysis.slices.slices` reads them from the set: for each value (``(none)``: the frames without the
    key), its frames with a label and a prediction, those predicted right, every frame, and those with each of
    :data:`PRESENT`, in the value's order; None when the set's frames are not counted by value under ``versions``,
    the key is not counted (no frame has it, or it has too many values), or ``flt`` names other fields than the
    split, the classes and the right or wrong predictions."""
    found = _counted(metrics, view, versions)
    if found is None or any(c.field not in grid_orders.COUNTED_FIELDS for c in flt.all):
        return None
    build, frames = found
    params = Params()
    passing = compile_filter(flt, view, params)
    evaluated = "label_class IS NOT NULL AND predicted_class IS NOT NULL"
    rows = metrics.query(
        f"SELECT kind, value, sum(rows), sumIf(rows, {passing} AND {evaluated}),"
        f" sumIf(rows, {passing} AND {evaluated} AND correct = 1), sumIf(rows, {passing}),"
        f" {', '.join(f'sumIf(rows, {passing} AND has_{f})' for f in PRESENT)} FROM grid_value_counts"
        f" WHERE {grid_orders.scope(view, params, build)} AND (key = {params.add(key, 'String')} OR kind = '')"
        " GROUP BY kind, value",
        params.values,
    ).rows
    found = _key_rows(rows, frames)
    if found is None:
        return None
    every, kind = found
    READ.inc()
    out = _with_none({str(r[1]): [int(n) for n in r[3:]] for r in rows if r[0] == kind}, every[3:])
    # the slices of the frames that pass the filter, in the value's order
    return kind, [(value, *out[value]) for value in sorted(out) if out[value][2]]


def value_count(
    metrics: MetricsStore, view: View, versions: Sequence[Any] | None, flt: common_pb2.Filter, sort: Sequence[Any]
) -> int | None:
    """The grid's count of ``flt`` when it is one condition on a metadata key (its value equal to one, in a list, or in
    a range; the key present or absent; or any of these negated), alone or with conditions on the split, the classes and
    the right or wrong predictions (at a confidence threshold, the split and the classes labeled), the grid sorted by
    frame id or a field of :data:`PRESENT`: from the set's frames counted by value (a filter compiled against those
    counts as against the set's rows; a negated condition, or a key's absence, is every frame that passes the other
    conditions less those that pass it); None when this does not apply."""
    meta = [c for c in flt.all if c.field.startswith("metadata.")]
    if len(meta) != 1:
        return None
    kind = condition_kind(meta[0])
    if kind not in _MAPS and kind is not None:  # values of mixed types: the set's count says what is wrong
        return None
    besides = [c for c in flt.all if not c.field.startswith("metadata.")]
    if any(c.field not in grid_orders.COUNTED_FIELDS for c in besides):
        return None
    at_zero = _at_zero(view, besides)
    if at_zero is None:
        return None
    view = at_zero
    fields = {k.field for k in sort} - {"frame_id"}
    if not fields <= set(PRESENT):
        return None
    found = _counted(metrics, view, versions)
    if found is None:
        return None
    build, frames = found
    held, failing = _held(meta[0], kind)
    params = Params()
    passing = compile_filter(common_pb2.Filter(all=[*besides, held]), view, params)
    others = compile_filter(common_pb2.Filter(all=besides), view, params)
    has = "".join(f" AND has_{f}" for f in sorted(fields))
    key = params.add(meta[0].field.removeprefix("metadata."), "String")
    maps = _COUNTED_MAPS
    # the key's kinds counted: the condition's (a key of too many values is not counted); any one, for its presence
    # (a key of two types would count a frame twice)
    kinds = f"countIf(kind = {params.add(kind, 'String')})" if kind is not None else "uniqExactIf(kind, kind != '')"
    ((every, counted, passed, among),) = metrics.query(
        f"SELECT sumIf(rows, kind = ''), {kinds}, sumIf(rows, kind != '' AND {passing}{has}),"
        f" sumIf(rows, kind = '' AND {others}{has}) FROM (SELECT *, {maps}"
        f" FROM grid_value_counts WHERE {grid_orders.scope(view, params, build)} AND (kind = '' OR key = {key}))",
        params.values,
    ).rows
    if int(every) != frames or not counted or (kind is None and int(counted) != 1):
        return None  # not written whole or written twice; a key of too many values, or of two types
    READ.inc()
    return int(among) - int(passed) if failing else int(passed)


#: buckets of a sort's key the counts by value are kept in (:func:`keep_buckets`; about, their bounds the key's
#: quantiles): a count reads a value's counts, and the sort's rows of the buckets the range's bounds fall in (about
#: 80,000 rows each at 10M frames, fewer the range's part of them)
VALUE_BUCKETS = 128
#: the fields the counts by value and bucket are kept by, which the conditions beside a range and a metadata value
#: may name (not the predicted class: five times the rows at 10 classes)
BUCKETED_FIELDS = ("split", "label_class", "correct", "labeled")
#: the sorts counted by value and bucket, by field, in the order they are written: those of the grid's range filters
#: (the confidence slider and the loss range), each field's sort counted by bucket
#: (:data:`shoal.analysis.grid_orders.COUNTED`)
BUCKETED_SORTS = {"confidence": grid_orders.BY_CONFIDENCE, "loss": grid_orders.listing_name("loss", True)}


def bucketed(listing: str) -> str:
    """The name a sort's counts by value and bucket are recorded under in ``grid_listing_builds`` (with the rows of
    the sort they count)."""
    return f"values:{listing}"


def keep_buckets(metrics: MetricsStore, view: View, versions: Sequence[Any]) -> int:
    """Writes, once the set's frames are counted by value (:func:`keep`), for the first sort of
    :data:`BUCKETED_SORTS` written under the tables' ``versions`` and not counted so, that sort's rows counted by the
    values of the keys counted, by bucket of its key (about :data:`VALUE_BUCKETS`) and by :data:`BUCKETED_FIELDS`:
    the grid's count of a range of the sort's field beside a metadata value is then read from them
    (:func:`value_range_count`). One read of the sort's key and one of its rows (21 s at 10M frames of six keys).
    Returns 1 when one was written."""
    build = grid_orders.build_id(view, versions)
    names = [VALUES, *BUCKETED_SORTS.values(), *(bucketed(s) for s in BUCKETED_SORTS.values())]
    done = grid_orders.written(metrics, view, build, names)
    listing = next((s for s in BUCKETED_SORTS.values() if s in done and bucketed(s) not in done), None)
    if listing is None or VALUES not in done:
        return 0
    rows, edges = grid_orders.bucket_edges(metrics, view, build, listing, VALUE_BUCKETS)
    params = Params()
    counted = [tuple(r) for r in metrics.query(
        f"SELECT DISTINCT kind, key FROM grid_value_counts WHERE {grid_orders.scope(view, params, build)}"
        " AND kind != ''", params.values).rows]  # fmt: skip
    params = Params()
    source = view_sql(view, params, listing=(build, listing))
    into = ", ".join(params.add(v, "String") for v in (view.project, view.inference_set, view.dataset, build, listing))
    bucket = grid_orders.bucket_of(edges, params) if edges else "0"
    metrics.command(
        "INSERT INTO grid_value_buckets (project, inference_set, dataset, build, listing, kind, key, value, bucket,"
        " min_key, max_key, split, label_class, correct, rows)"
        f" SELECT {into}, e.1, e.2, e.3, {bucket} AS b, min(_key), max(_key), split, label_class, correct, count()"
        f" FROM ({source}) ARRAY JOIN {_ENTRIES} AS e"
        f" WHERE e.1 = '' OR has({params.add(counted, 'Array(Tuple(String, String))')}, (e.1, e.2))"
        f" GROUP BY e.1, e.2, e.3, b, split, label_class, correct{SETTINGS}",
        params.values,
    )
    grid_orders.record(metrics, view, build, bucketed(listing), rows, block=-1, mutation=int(versions[0][1]))
    return 1


def value_range_count(
    metrics: MetricsStore, view: View, versions: Sequence[Any] | None, flt: common_pb2.Filter, sort: Sequence[Any],
    present: Callable[[Sequence[str]], int],
) -> int | None:  # fmt: skip
    """The grid's count of ``flt`` when it is a range of confidence (the slider) or loss and one condition on a
    metadata key (as :func:`value_count` takes it), alone or with conditions on the split, the labeled class and the
    right or wrong predictions, the grid sorted by frame id or by fields every frame with the range's field has: from
    that field's sort's rows counted by value and bucket (:func:`keep_buckets`), the buckets wholly in the range and
    the sort's rows of those its bounds fall in, read by their key (a negated condition, or a key's absence: the
    range's count with the other conditions, :func:`shoal.analysis.grid_orders.range_count`, less those that pass
    it). A range of millions of frames costs what a narrow one does. ``present`` as for
    :func:`shoal.analysis.grid_orders.range_count`. None when this does not apply."""
    meta = [c for c in flt.all if c.field.startswith("metadata.")]
    ranges = [c for c in flt.all if c.field in grid_orders.FIELDS]
    besides = [c for c in flt.all if not c.field.startswith("metadata.") and c.field not in grid_orders.FIELDS]
    if len(meta) != 1 or len(ranges) != 1 or ranges[0].field not in BUCKETED_SORTS:
        return None
    field = ranges[0].field
    listing = BUCKETED_SORTS[field]
    bounds = grid_orders.sort_range(ranges[0])
    kind = condition_kind(meta[0])
    if not bounds or (kind not in _MAPS and kind is not None):
        return None
    if any(c.field not in BUCKETED_FIELDS for c in besides):
        return None
    others = sorted({k.field for k in sort} - {"frame_id", field})
    if not set(others) <= set(grid_orders.FIELDS):
        return None
    if others and present([field, *others]) != present([field]):
        return None  # the grid leaves out frames with the range's field the counts hold
    if versions is None or not view.inference_set or view.baseline_inference_set:
        return None
    build = grid_orders.build_id(view, versions)
    done = grid_orders.written(metrics, view, build, [listing, bucketed(listing)])
    rows = done.get(bucketed(listing))
    if rows is None or rows != done.get(listing) or rows != present([field]):
        return None
    held, failing = _held(meta[0], kind)
    params = Params()
    passing = compile_filter(common_pb2.Filter(all=[*besides, held]), view, params)
    key = params.add(meta[0].field.removeprefix("metadata."), "String")
    maps = _COUNTED_MAPS
    found = metrics.query(
        f"SELECT bucket, sumIf(rows, kind = ''), groupUniqArrayIf(kind, kind != ''),"
        f" minIf(min_key, kind != '' AND {passing}), maxIf(max_key, kind != '' AND {passing}),"
        f" sumIf(rows, kind != '' AND {passing}) FROM (SELECT *, {maps} FROM grid_value_buckets"
        f" WHERE {grid_orders.scope(view, params, build, listing)} AND (kind = '' OR key = {key})) GROUP BY bucket",
        params.values,
    ).rows
    kinds = {str(k) for r in found for k in r[2]}
    if sum(int(r[1]) for r in found) != rows:
        return None  # not written whole, or written twice
    if (kind is not None and kind not in kinds) or (kind is None and len(kinds) != 1):
        return None  # a key of too many values, or of two types
    among = 0
    if failing:  # the frames in the range that pass the other conditions, counted from the sort's counts by bucket
        among = grid_orders.range_count(metrics, view, versions, common_pb2.Filter(all=[*ranges, *besides]), sort,
                                        present)  # fmt: skip
        if among is None:
            return None
    keys = grid_orders.key_bounds(bounds, listing != grid_orders.listing_name(field, False))
    passed = grid_orders.in_buckets(metrics, view, build, listing,
                                    common_pb2.Filter(all=[*ranges, *besides, held]), keys,
                                    [(float(r[3]), float(r[4]), int(r[5])) for r in found])  # fmt: skip
    READ.inc()
    return among - passed if failing else passed


def below_by_value(
    metrics: MetricsStore, view: View, versions: Sequence[Any] | None, flt: common_pb2.Filter, threshold: float,
    key: str,
) -> tuple[dict[str, int], dict[str, int]] | None:  # fmt: skip
    """The frames of ``view`` (at threshold 0) with a label and a prediction that pass ``flt`` (conditions on
    :data:`shoal.analysis.grid_orders.THRESHOLD_FIELDS`), by value of metadata ``key`` as the slices name them
    (``(none)``: the frames without the key), and those of them predicted right whose confidence is below
    ``threshold`` (at the threshold they abstain, so are wrong), from the confidence sort's counts by value and
    bucket (:func:`keep_buckets`): the buckets wholly below, and the sort's rows of the one the threshold falls in.
    The slices by the key at the threshold are then those at 0 with those frames wrong
    (:func:`shoal.analysis.slices.at_threshold`). None when this does not apply (a key not counted, other
    conditions, the counts not written under ``versions``)."""
    if versions is None or not view.inference_set or view.baseline_inference_set or view.confidence_threshold:
        return None
    if any(c.field not in grid_orders.THRESHOLD_FIELDS for c in flt.all):
        return None
    build, listing = grid_orders.build_id(view, versions), grid_orders.BY_CONFIDENCE
    rows = grid_orders.written(metrics, view, build, [bucketed(listing)]).get(bucketed(listing))
    if rows is None:
        return None
    params = Params()
    scoped = grid_orders.scope(view, params, build, listing)
    where = f"{scoped} AND (kind = '' OR key = {params.add(key, 'String')})"
    passing = f"{compile_filter(flt, view, params)} AND correct IS NOT NULL"  # a label and a prediction
    t = params.add(threshold, "Float64")
    found = metrics.query(
        f"WITH (SELECT maxOrNull(bucket) FROM grid_value_buckets WHERE {scoped}"
        f" AND kind = '' AND bucket <= {t}) AS straddled SELECT kind, value, sum(rows), sumIf(rows, {passing}),"
        f" sumIf(rows, {passing} AND correct = 1 AND bucket < straddled), any(straddled) FROM grid_value_buckets"
        f" WHERE {where} GROUP BY kind, value",
        params.values,
    ).rows
    keyed = _key_rows(found, rows)
    if keyed is None:
        return None
    every, kind = keyed
    counts = {(str(r[0]), str(r[1])): [int(r[3]), int(r[4])] for r in found if r[0] in ("", kind)}
    low = every[5]
    if low is not None:  # the rows of the bucket the threshold falls in, below it
        params = Params()
        source = view_sql(view, params, listing=(build, listing))
        passing = f"{compile_filter(flt, view, params)} AND correct IS NOT NULL"  # a label and a prediction
        column, k = METADATA_MAPS[kind], params.add(key, "String")
        text = _TEXT[kind].format(v=f"{column}[{k}]")
        straddled = metrics.query(
            f"SELECT mapContains({column}, {k}) AS has, if(has, {text}, ''), count() FROM ({source})"
            f" WHERE _key >= {params.add(float(low), 'Float64')} AND _key < {params.add(threshold, 'Float64')}"
            f" AND {passing} AND correct = 1 GROUP BY has, 2{SETTINGS}",
            params.values,
        ).rows
        for has, value, n in straddled:
            counts.setdefault(("", ""), [0, 0])[1] += int(n)
            if has:
                counts.setdefault((kind, str(value)), [0, 0])[1] += int(n)
    everything = counts.pop(("", ""), [0, 0])
    by_value = _with_none({value: n for (_, value), n in counts.items()}, everything)
    READ.inc()
    return {v: n[0] for v, n in by_value.items() if n[0]}, {v: n[1] for v, n in by_value.items() if n[1]}


def time_slice_rows(
    metrics: MetricsStore, view: View, versions: Sequence[Any] | None, flt: common_pb2.Filter, bucket: str
) -> list[tuple[str, int, int]] | None:
    """The slices by capture time of the frames that pass ``flt`` (conditions on :data:`BUCKETED_FIELDS`), each
    frame's hour of capture put in its ``bucket`` (a ClickHouse function of a time: ``toStartOfDay``, say), as
    :func:`shoal.analysis.slices.slices` reads them from the set: for each bucket (``(none)``: the frames without a
    capture time), its frames with a label and a prediction and those predicted right, in the bucket's order; from
    the set's frames counted by hour of capture (``grid_time_counts``, written by :func:`keep`). None when those are
    not written under ``versions``, the view has a threshold, or the filter other conditions."""
    found = _counted(metrics, view, versions)
    if found is None or view.confidence_threshold or any(c.field not in BUCKETED_FIELDS for c in flt.all):
        return None
    build, frames = found
    params = Params()
    passing = compile_filter(flt, view, params)
    rows = metrics.query(
        f"SELECT if(hour IS NULL, '{NONE}', toString({bucket}(hour))) AS g, sum(rows),"
        f" sumIf(rows, {passing} AND correct IS NOT NULL), sumIf(rows, {passing} AND correct = 1)"
        f" FROM grid_time_counts WHERE {grid_orders.scope(view, params, build)} GROUP BY g ORDER BY g",
        params.values,
    ).rows
    if sum(int(r[1]) for r in rows) != frames:  # not written whole, or written twice
        return None
    READ.inc()
    return [(str(g), int(n), int(right)) for g, _, n, right in rows if int(n)]


def time_count(
    metrics: MetricsStore, view: View, versions: Sequence[Any] | None, flt: common_pb2.Filter, sort: Sequence[Any]
) -> int | None:
    """The grid's count of ``flt`` when it is a range of capture time whose bounds are whole hours (a capture-time
    slice's link: an hour, a day, a week or a month, its end included to the millisecond before the next), alone or
    with conditions on :data:`BUCKETED_FIELDS` (at a confidence threshold, the split and the classes labeled), the
    grid sorted by frame id, the capture time (the frames with one: every hour, without a range) or a field of
    :data:`PRESENT`: from the set's frames counted by hour of capture. None when this does not apply (a bound inside
    an hour is counted from the sort by capture time's rows in the range, :func:`shoal.analysis.grid_orders.rows_count`,
    or from the set)."""
    times = [c for c in flt.all if c.field == "capture_time"]
    besides = [c for c in flt.all if c.field != "capture_time"]
    fields = {k.field for k in sort} - {"frame_id"}
    if not times and "capture_time" in fields:  # sorted by capture time: the frames that have one
        times = [common_pb2.Condition(field="capture_time", range=common_pb2.Range())]
    if len(times) != 1 or times[0].negate or times[0].WhichOneof("op") != "range":
        return None
    if any(c.field not in BUCKETED_FIELDS for c in besides):
        return None
    at_zero = _at_zero(view, besides)
    if at_zero is None:
        return None
    view = at_zero
    fields -= {"capture_time"}  # a range of hours holds the frames with a capture time alone
    if not fields <= set(PRESENT):
        return None
    hours = _whole_hours(times[0].range)
    found = _counted(metrics, view, versions)
    if hours is None or found is None:
        return None
    build, frames = found
    params = Params()
    where = [compile_filter(common_pb2.Filter(all=besides), view, params), *(f"has_{f}" for f in sorted(fields))]
    low, high = hours
    utc = "DateTime64(3, 'UTC')"
    where += [f"hour >= {params.add(low, utc)}"] if low is not None else ["hour IS NOT NULL"]
    where += [f"hour < {params.add(high, utc)}"] if high is not None else []
    ((every, passed),) = metrics.query(
        f"SELECT sum(rows), sumIf(rows, {' AND '.join(where)}) FROM grid_time_counts"
        f" WHERE {grid_orders.scope(view, params, build)}",
        params.values,
    ).rows
    if int(every) != frames:  # not written whole, or written twice
        return None
    READ.inc()
    return int(passed)


def _whole_hours(r: common_pb2.Range) -> tuple[datetime | None, datetime | None] | None:
    """The hours a range of capture time holds whole, as the first hour in it and the first past it (None: no bound),
    when it holds no hour in part; else None."""
    out: list[datetime | None] = []
    for value, exclusive, lower in ((r.min, r.min_exclusive, True), (r.max, r.max_exclusive, False)):
        kind = value.WhichOneof("kind")
        if kind is None:
            out.append(None)
            continue
        if kind != "timestamp_value":
            return None
        t = value.timestamp_value.ToDatetime(tzinfo=UTC)
        if not lower and not exclusive:  # its end included, to the millisecond (the store's precision)
            t += timedelta(milliseconds=1)
        if (lower and exclusive) or t.minute or t.second or t.microsecond:
            return None
        out.append(t)
    return out[0], out[1]
