"""The grid's first count of a filter neither the counts by bucket nor the counts by value answer (two ranges, a range
with a metadata value or a negated flag) at N frames on chDB: read from a kept sort's rows in the filter's narrow
range, with the whole filter (``shoal.analysis.grid_orders.rows_count``), beside the count of the set's statement,
as every such count was read before, in the same process and run; each asked first (its first call) and then twice
more, and checked equal. A range too wide to read so is refused by the store before a row is read: its time is
given with the set's count that follows. Then the first page of each, read from the same rows sorted by the grid's
sort when few of the set's frames pass the filter (``datapoints._narrow_rows``), beside the page of the set's
statement and, sorted by a prediction field, the kept sort read in its order until the page passed.

The data is ``bench_grid_values``'s (``bench_console``'s N frames of 10 classes, two splits, with six metadata keys
written once; loaded anew unless ``--work`` names a folder it loaded before). The sorts are written as the preparer
writes them until each field has one.

    python bench/console/bench_rows_counts.py --frames 10000000 --work /work/bench10m
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.console.bench_console import (  # noqa: E402
    beside_the_set,
    first_and_median,
    open_loaded,
    presence,
    run_on_loaded,
    set_count,
    timed,
    write_counted_sorts,
)
from bench.console.bench_grid_values import add_metadata  # noqa: E402, F401 - a step of this module's run
from bench.harness import peak_rss_mib  # noqa: E402

MODULE = "bench.console.bench_rows_counts"
#: (name, the grid's conditions: ranges as (field, min, max), values as (field, value, negated), its sort field)
QUESTIONS = (
    ("confidence above 0.9, loss above 2, by frame id", (("confidence", 0.9, None), ("loss", 2.0, None)), "frame_id"),
    ("confidence in [0.3, 0.32), margin below 0.05, by loss",
     (("confidence", 0.3, 0.32), ("margin", None, 0.05)), "loss"),
    ("loss above 3, weather fog, by loss", (("loss", 3.0, None), ("metadata.weather", "fog", False)), "loss"),
    ("margin below 0.02, camera cam3, by frame id", (("margin", None, 0.02), ("metadata.camera", "cam3", False)),
     "frame_id"),
    ("confidence below 0.2, not at night, by confidence",
     (("confidence", None, 0.2), ("metadata.night", True, True)), "confidence"),
    ("loss above 4, speed in [10, 20), by frame id", (("loss", 4.0, None), ("metadata.speed", 10.0, 20.0)),
     "frame_id"),
)  # fmt: skip
#: too wide a range to read a sort's rows of (at 10M frames): refused, then the set counted
WIDE = (("confidence above 0.5, weather rain, by frame id", (("confidence", 0.5, None),
                                                             ("metadata.weather", "rain", False)), "frame_id"),)  # fmt: skip
REPEATS = 3
PAGE = 50


def _filter(conditions: Any) -> Any:
    from shoal.common.v1 import common_pb2

    flt = common_pb2.Filter()
    for field, a, b in conditions:
        if isinstance(a, str) or isinstance(b, bool):  # a value, maybe negated
            kind = "string_value" if isinstance(a, str) else "bool_value"
            flt.all.add(field=field, equals=common_pb2.Value(**{kind: a}), negate=b)
            continue
        r = common_pb2.Range(max_exclusive=True)
        if a is not None:
            r.min.number_value = a
        if b is not None:
            r.max.number_value = b
        flt.all.add(field=field, range=r)
    return flt


def measure(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.analysis import datapoints, grid_orders
    from shoal.analysis.v1 import analysis_pb2 as pb
    from shoal.common.data.answers import AnswerCache
    from shoal.common.data.query import VIEW_TABLES
    from shoal.common.v1 import common_pb2

    m, view, versions = open_loaded(work)
    out: dict[str, Any] = {"frames": int(m.query("SELECT count() FROM frames FINAL").scalar()),
                           "sorts_written_s": write_counted_sorts(m, view, versions)}  # fmt: skip
    present = presence(m, view)
    for _, conditions, by in (*QUESTIONS, *WIDE):  # the counts the preparer keeps, and two fields' if asked
        for field, *_ in conditions:
            if field in grid_orders.FIELDS:
                present([field])
                if by not in (field, "frame_id"):
                    present([field, by])

    questions: dict[str, Any] = {}
    for name, conditions, by in QUESTIONS:
        flt, sort = _filter(conditions), [pb.SortKey(field=by)]
        assert grid_orders.range_count(m, view, versions, flt, sort, present) is None  # not from the counts
        questions[name] = beside_the_set("from_the_sorts_rows", lambda f=flt, s=sort: grid_orders.rows_count(
            m, view, versions, f, s, present), m, view, flt, sort, REPEATS)  # fmt: skip
    for name, conditions, by in WIDE:
        flt, sort = _filter(conditions), [pb.SortKey(field=by)]

        refused: list[bool] = []

        def refused_then_set(f: Any = flt, s: Any = sort, refused: list[bool] = refused) -> int:
            found = grid_orders.rows_count(m, view, versions, f, s, present)
            refused.append(found is None)
            return set_count(m, view, f, s) if found is None else found

        got, times = timed(refused_then_set, REPEATS)
        live, live_times = timed(lambda f=flt, s=sort: set_count(m, view, f, s), REPEATS)
        assert got == live, name
        questions[name] = {"frames": live, "refused": all(refused), "refused_then_the_set": first_and_median(times),
                           "count_of_the_set": first_and_median(live_times)}  # fmt: skip
    out["questions"] = questions
    # their first pages (of 50, the set's frames over the filter's times the page passed over by a read of the set or
    # of a kept sort): from the range's rows, sorted, beside the page as read before, checked equal to the set's
    answers = AnswerCache(m)
    for fields in ([], *([f] for f in grid_orders.FIELDS)):  # the counts the preparer keeps
        answers.keep(VIEW_TABLES, versions, {datapoints.count_key(view, common_pb2.Filter(), [
            pb.SortKey(field=f) for f in fields]): present(fields)})  # fmt: skip
    pages: dict[str, Any] = {}
    for name, conditions, by in QUESTIONS:
        flt, sort = _filter(conditions), [pb.SortKey(field=by)]
        total = questions[name]["frames"]
        sql, params = datapoints.page_statement(view, flt, sort, {}, PAGE, None)[:2]
        narrow, narrow_times = timed(lambda f=flt, s=sort, n=total: datapoints._narrow_rows(
            m, view, f, s, {}, PAGE, None, n, answers), REPEATS)  # fmt: skip
        live, live_times = timed(lambda q=sql, p=params: [tuple(r) for r in m.query(q, p).rows], REPEATS)
        assert narrow is None or narrow == live, name
        before = {"the_sets_page": first_and_median(live_times)}
        if by != "frame_id":  # read in the kept sort's order until the page passed
            _, kept_times = timed(lambda f=flt, b=by: grid_orders.page(m, view, versions, b, False, f, PAGE, None),
                                  REPEATS)  # fmt: skip
            before["the_kept_sorts_page"] = first_and_median(kept_times)
        # not read so: a read of the set (or a kept sort) passes over fewer rows to fill the page
        pages[name] = {"from_the_ranges_rows": first_and_median(narrow_times) if narrow is not None else None,
                       **before}  # fmt: skip
    out["pages"] = pages
    out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    m.close()
    return out


def main() -> None:
    run_on_loaded(MODULE, __doc__, REPO / "bench" / "console" / "results_rows_counts.json", ("add_metadata", "measure"))


if __name__ == "__main__":
    main()
