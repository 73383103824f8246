"""The example grid's pages at N frames sorted by capture time, newest or oldest first: read from the set's sorts by
capture time kept whole (``shoal.analysis.grid_orders``, the two listings the preparer writes after the prediction
fields' six) beside the same page sorted from the set, as each was read before; in the same process and run, each
page asked first (its first call) and then twice more, and checked equal. Each question is asked at depths 0, 1,000
and 1,000,000 (the cursor: the row before it, read from the set). The two listings are written first, as the
preparer writes them (their time, rows and size on disk are reported), and removed at the end.

Then capture-time ranges whose bounds fall inside an hour (as the grid's "captured from" and "captured before"
write them): the grid's first count and page of each, read from the sort by capture time's rows in the range, beside
the set's.

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder it
loaded before), to which each frame's capture time is written once (``bench_time_counts.add_capture_times``).

    python bench/console/bench_capture_sorts.py --frames 10000000 --work /work/bench10m
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.console.bench_console import first_and_median, open_loaded, row_before, run_on_loaded, timed  # noqa: E402
from bench.console.bench_time_counts import add_capture_times  # noqa: E402,F401
from bench.harness import peak_rss_mib  # noqa: E402

MODULE = "bench.console.bench_capture_sorts"
#: (descending, the filter's equalities as the console writes them)
QUESTIONS: tuple[tuple[bool, tuple[tuple[str, Any], ...]], ...] = (
    (True, ()),
    (False, ()),
    (True, (("split", "val"),)),
    (True, (("correct", False),)),
    (False, (("label_class", 3), ("correct", False))),
)
DEPTHS = (0, 1_000, 1_000_000)
REPEATS = 3
#: capture-time ranges as the grid's "captured from" and "captured before" write them, to the minute: (name, first
#: moment, first moment past it, the filter's other equalities)
RANGES: tuple[tuple[str, datetime, datetime, tuple[tuple[str, Any], ...]], ...] = (
    ("5 March 10:30 to 14:45", datetime(2026, 3, 5, 10, 30, tzinfo=UTC), datetime(2026, 3, 5, 14, 45, tzinfo=UTC),
     ()),
    ("5 March 10:30 to 14:45, split val", datetime(2026, 3, 5, 10, 30, tzinfo=UTC),
     datetime(2026, 3, 5, 14, 45, tzinfo=UTC), (("split", "val"),)),
    ("1 March 08:20 to 15 March 17:40, wrong", datetime(2026, 3, 1, 8, 20, tzinfo=UTC),
     datetime(2026, 3, 15, 17, 40, tzinfo=UTC), (("correct", False),)),
)  # fmt: skip


def measure(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.analysis import datapoints, grid_orders
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.common.data.query import Params

    m, view, versions = open_loaded(work)
    out: dict[str, Any] = {"frames": int(m.query("SELECT count() FROM frames FINAL").scalar()), "questions": []}
    grid_orders.remove(m, view)  # what a run before wrote
    build = grid_orders.build_id(view, versions)
    for descending in (True, False):  # as the preparer writes them (grid_orders.keep)
        name = grid_orders.listing_name("capture_time", descending)
        t = time.perf_counter()
        grid_orders.insert_rows(m, view, build, name, grid_orders.key_sql("capture_time", descending, "v."),
                                "v.capture_time IS NOT NULL", Params())  # fmt: skip
        rows = grid_orders.count_rows(m, view, build, name)
        grid_orders.record(m, view, build, name, rows, block=-1, mutation=0)
        out[f"written_{name.replace(' ', '_')}_s"] = round(time.perf_counter() - t, 1)
        out["listing_rows"] = rows
    m.command("OPTIMIZE TABLE grid_listings FINAL")  # merged, as a settled store has them
    out["listings_on_disk_mib"] = round(int(m.query(
        "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND table = 'grid_listings'").scalar()) / 2**20)  # fmt: skip
    for descending, conditions in QUESTIONS:
        flt, sort = grid_orders.equalities(conditions), [apb.SortKey(field="capture_time", descending=descending)]
        for depth in DEPTHS:
            last = row_before(m, view, flt, sort, "capture_time", depth)
            if last == []:  # fewer frames pass
                continue

            def kept_page(d: bool = descending, f: Any = flt, at: Any = last) -> Any:
                return grid_orders.page(m, view, versions, "capture_time", d, f, 60, at)

            kept, kept_times = timed(kept_page, REPEATS)
            sql, params = datapoints.page_statement(view, flt, sort, {}, 60, last)[:2]
            rows, set_times = timed(lambda: m.query(sql, params).rows, REPEATS)  # noqa: B023
            assert kept is not None and [r[:-2] for r in kept] == [tuple(r) for r in rows] and len(rows) == 61
            out["questions"].append({
                "sort": f"capture time {'down' if descending else 'up'}", "filter": dict(conditions), "depth": depth,
                "kept_sort": first_and_median(kept_times), "sorted_from_the_set": first_and_median(set_times)})  # fmt: skip
    out["ranges"] = [_range_question(m, view, *question) for question in RANGES]
    grid_orders.remove(m, view)
    out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    m.close()
    return out


def _range_question(m: Any, view: Any, name: str, low: datetime, high: datetime, conditions: Any) -> dict[str, Any]:
    """A capture-time range whose bounds fall inside an hour: the grid's first page (and count) of it by frame id
    through ``QueryDatapoints``' function, with the frames with a capture time counted before (the preparer keeps
    that count), beside the set's count and page; checked equal."""
    from shoal.analysis import datapoints, grid_orders
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.common.data.answers import AnswerCache
    from shoal.common.v1 import common_pb2

    r = common_pb2.Range(max_exclusive=True)
    r.min.timestamp_value.FromDatetime(low)
    r.max.timestamp_value.FromDatetime(high)
    flt = grid_orders.equalities(conditions)
    flt.all.insert(0, common_pb2.Condition(field="capture_time", range=r))
    sort = [apb.SortKey(field="frame_id")]

    def kept() -> Any:
        answers = AnswerCache(m)
        present = datapoints._present(m, view, answers)
        present([]), present(["capture_time"])  # kept by the preparer
        t = time.perf_counter()
        page = datapoints.query_datapoints(m, view, flt, sort, 60, "", scope="bench", answers=answers)
        return page, time.perf_counter() - t

    got = [kept() for _ in range(REPEATS)]
    page_sql, page_params, _, count_sql, count_params = datapoints.page_statement(view, flt, sort, {}, 60, None)
    live, live_times = timed(lambda: (m.query(count_sql, count_params).scalar(), m.query(page_sql, page_params).rows),
                             REPEATS)  # fmt: skip
    page = got[0][0]
    assert page.total == int(live[0]) > 0 and [r.frame_id for r in page.rows] == [str(x[0]) for x in live[1][:60]]
    return {"range": name, "frames": page.total, "kept_sort": first_and_median([t for _, t in got]),
            "from_the_set": first_and_median(live_times)}  # fmt: skip


def main() -> None:
    run_on_loaded(MODULE, __doc__, REPO / "bench" / "console" / "results_capture_sorts.json",
                  ("add_capture_times", "measure"))  # fmt: skip


if __name__ == "__main__":
    main()
