"""A large set compared with another at N frames on chDB: the comparison's metrics (``CompareInferenceSets``), the
grid's count of the frames it regressed or improved and its pages, read from the set's rows kept beside the
baseline's predictions (``shoal.analysis.grid_compare``, written by the preparer once the set's sorts are) beside the
same read from the join of the two sets, as each was read before; in the same process and run, each asked first
(its first call) and then twice more (each through a fresh cache of answers, holding the set's count as the preparer
keeps it), and checked equal. Also how long the two listings took to write.

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder it
loaded before), to which a second inference set is written once (step ``add_baseline``: the first set's rows with
one prediction in ten moved to the next class), the set compared with.

    python bench/console/bench_compare.py --frames 10000000 --work /work/bench10m
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.console.bench_console import (  # noqa: E402
    copy_set,
    first_and_median,
    open_loaded,
    run_on_loaded,
    set_count,
    timed,
)
from bench.harness import peak_rss_mib  # noqa: E402

MODULE = "bench.console.bench_compare"
BASELINE = "b"
#: the grid's questions: (name, its conditions as the console writes them, its sort field, descending)
QUESTIONS = (
    ("regressed, by frame id", (("change", "regressed"),), "frame_id", False),
    ("regressed, by loss", (("change", "regressed"),), "loss", True),
    ("improved in val, by frame id", (("change", "improved"), ("split", "val")), "frame_id", False),
    ("every frame, by frame id", (), "frame_id", False),
)
REPEATS = 3
PAGE = 50


def add_baseline(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    """Writes the second inference set's rows (the first's, one prediction in ten moved), unless written."""
    return copy_set(work, BASELINE, "if(cityHash64(frame_id, 11) % 10 = 0, (pred_raw + 1) % 10, pred_raw) AS pred_raw",
                    "baseline")  # fmt: skip


def measure(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.analysis import compare, datapoints, grid_compare, grid_orders
    from shoal.analysis.v1 import analysis_pb2 as pb
    from shoal.common.data.answers import AnswerCache
    from shoal.common.data.query import VIEW_TABLES
    from shoal.common.v1 import common_pb2

    m, view, versions = open_loaded(work)
    compared = replace(view, baseline_inference_set=BASELINE)
    out: dict[str, Any] = {"frames": int(m.query("SELECT count() FROM frames FINAL").scalar())}
    grid_orders.remove(m, view)  # what a run before wrote: the listings are written anew
    written = {}
    for which in (grid_compare.EVERY, grid_compare.CHANGED):
        t = time.perf_counter()
        assert grid_compare.keep(m, view, versions, BASELINE) == 1
        written[which] = round(time.perf_counter() - t, 1)
    out["listings_written_s"] = written
    frames = set_count(m, view, common_pb2.Filter(), [])

    def answers() -> Any:
        """A fresh cache holding the set's count, as the preparer keeps it."""
        a = AnswerCache(m)
        a.keep(VIEW_TABLES, versions, {datapoints.count_key(view, common_pb2.Filter(), []): frames})
        return a

    metrics: dict[str, Any] = {}
    for name, conditions in (("every frame", ()), ("split val", (("split", "val"),))):
        flt = grid_orders.equalities(conditions)

        def kept_compare(f: Any = flt) -> Any:  # as the service reads it: the counts, or the listing
            found = datapoints.compared(m, compared, answers())
            assert found is not None
            counted = grid_compare.counts(m, compared, f, *found)
            listing = None if counted is not None else grid_compare.listing(compared, f, found[0])[0]
            return compare.compare(m, compared, f, listing, counted)

        kept, kept_times = timed(kept_compare, REPEATS)
        joined, joined_times = timed(lambda f=flt: compare.compare(m, compared, f), REPEATS)
        assert kept == joined, name
        metrics[name] = {"from_the_kept_rows": first_and_median(kept_times),
                         "from_the_join": first_and_median(joined_times)}  # fmt: skip
    out["compare_inference_sets"] = metrics

    grid: dict[str, Any] = {}
    for name, conditions, by, descending in QUESTIONS:
        flt, sort = grid_orders.equalities(conditions), [pb.SortKey(field=by, descending=descending)]

        def page(a: Any, f: Any = flt, s: Any = sort) -> Any:
            p = datapoints.query_datapoints(m, compared, f, s, PAGE, "", scope="bench", answers=a)
            return p.total, [r.frame_id for r in p.rows]

        kept, kept_times = timed(lambda: page(answers()), REPEATS)
        joined, joined_times = timed(lambda: page(None), REPEATS)
        assert kept == joined, name
        grid[name] = {"frames": kept[0], "from_the_kept_rows": first_and_median(kept_times),
                      "from_the_join": first_and_median(joined_times)}  # fmt: skip
    out["grid_count_and_first_page"] = grid
    out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    m.close()
    return out


def main() -> None:
    run_on_loaded(MODULE, __doc__, REPO / "bench" / "console" / "results_compare.json", ("add_baseline", "measure"))


if __name__ == "__main__":
    main()
