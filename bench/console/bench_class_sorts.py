"""The example grid's pages at N frames sorted by labeled or predicted class: read class by class from the confusion
cells (``evaluations_by_cell``: the frame ids of the cursor's class after its frame, then their rows;
``datapoints._cell_rows``) beside the same page sorted from the set, as each was read before; in the same process
and run, each page asked first (its first call) and then twice more, and checked equal. Each question is asked at
depths 0, 1,000 and 1,000,000 (the cursor: the row before it, read from the set).

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder it
loaded before).

    python bench/console/bench_class_sorts.py --frames 10000000 --work /work/bench10m
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.console.bench_console import first_and_median, open_loaded, row_before, run_on_loaded, timed  # noqa: E402
from bench.harness import peak_rss_mib  # noqa: E402

MODULE = "bench.console.bench_class_sorts"
#: (sort field, descending, the filter's equalities as the console writes them)
QUESTIONS: tuple[tuple[str, bool, tuple[tuple[str, Any], ...]], ...] = (
    ("label_class", False, ()),
    ("label_class", True, ()),
    ("predicted_class", False, ()),
    ("label_class", False, (("split", "val"),)),
    ("predicted_class", False, (("correct", False),)),
    ("predicted_class", True, (("correct", True),)),
    ("label_class", False, (("label_class", 3),)),
    ("predicted_class", False, (("label_class", 3),)),
)
DEPTHS = (0, 1_000, 1_000_000)
REPEATS = 3
#: the set's column of each sort field, to find a depth's cursor
COLUMN = {"label_class": "label_class", "predicted_class": "pred_raw"}


def measure(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.analysis import datapoints, grid_orders
    from shoal.analysis.v1 import analysis_pb2 as apb

    m, view, _ = open_loaded(work)
    out: dict[str, Any] = {"frames": int(m.query("SELECT count() FROM frames FINAL").scalar()), "questions": []}
    for field, descending, conditions in QUESTIONS:
        flt, sort = grid_orders.equalities(conditions), [apb.SortKey(field=field, descending=descending)]
        for depth in DEPTHS:
            last = row_before(m, view, flt, sort, COLUMN[field], depth)
            last = last and [int(last[0]), last[1]]
            cells, cell_times = timed(lambda: datapoints._cell_rows(m, view, flt, sort, 60, last), REPEATS)  # noqa: B023
            sql, params = datapoints.page_statement(view, flt, sort, {}, 60, last)[:2]
            rows, set_times = timed(lambda: m.query(sql, params).rows, REPEATS)  # noqa: B023
            assert cells is not None and [r[0] for r in cells] == [r[0] for r in rows] and len(rows) == 61
            out["questions"].append({
                "sort": f"{field} {'down' if descending else 'up'}", "filter": dict(conditions), "depth": depth,
                "cell_by_cell": first_and_median(cell_times), "sorted_from_the_set": first_and_median(set_times)})  # fmt: skip
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def main() -> None:
    run_on_loaded(MODULE, __doc__, REPO / "bench" / "console" / "results_class_sorts.json")


if __name__ == "__main__":
    main()
