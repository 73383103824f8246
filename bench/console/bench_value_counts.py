"""The example grid's first count of a metadata value at N frames on chDB, as a person reaches it from the Performance
page: the slices of a metadata key (``GetSlices``), then a slice's link, which opens the grid filtered to that value.
The slices' read now also counts each value's frames as the grid counts them under each of its sorts
(``slices(grid_counts=)``), and those counts are kept (``datapoints.keep_value_counts``), so the grid's first count
is one already kept. Measured in the same process and run: the slices' read without and with the grid's counts, and
the grid's first count of a value from the set (as it was read before) and from the kept answers; the counts are
checked equal.

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder it
loaded before), to which each frame's metadata is written once: a camera (8 values) and a light level (100 values).

    python bench/console/bench_value_counts.py --frames 10000000 --work /work/bench10m
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.console.bench_console import (  # noqa: E402
    DATABASE,
    DATASET,
    INFERENCE_SET,
    PROJECT,
    K,
    first_and_median,
    run_on_loaded,
    set_count,
    timed,
    write_metadata,
)
from bench.harness import peak_rss_mib  # noqa: E402

MODULE = "bench.console.bench_value_counts"
#: (metadata key, the value whose slice is opened, as the console's grid writes it)
KEYS = (("camera", {"string_value": "cam3"}), ("lux", {"number_value": 40.0}))
REPEATS = 3


def add_metadata(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    """Writes each frame's metadata (a new version of its rows), then merges them as a settled store has them."""
    return write_metadata(work, {"meta_str": "map('camera', concat('cam', toString(cityHash64(frame_id, 1) % 8)))",
                                 "meta_num": "map('lux', toFloat64(cityHash64(frame_id, 2) % 100))"},
                          "mapContains(meta_str, 'camera')")  # fmt: skip


def measure(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.analysis import datapoints, grid_orders
    from shoal.analysis.slices import GridCounts, slices
    from shoal.analysis.v1 import analysis_pb2 as pb
    from shoal.common.data.answers import AnswerCache
    from shoal.common.data.query import VIEW_TABLES, View
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.common.v1 import common_pb2

    m = EmbeddedMetricsStore(path=Path(work) / "ch", database=DATABASE)
    m.migrate(grid_orders.MIGRATIONS)
    view = View(PROJECT, DATASET, INFERENCE_SET, tuple(range(K)), {f"class-{i}": i for i in range(K)}, 0.0)
    out: dict[str, Any] = {"frames": int(m.query("SELECT count() FROM frames FINAL").scalar()), "keys": {}}

    for key, value in KEYS:
        group = f"metadata.{key}"
        plain, plain_times = timed(lambda g=group: slices(m, view, common_pb2.Filter(), group_by=g), REPEATS)  # type: ignore[misc]
        answers = AnswerCache(m)
        versions = answers.versions(VIEW_TABLES)
        assert versions is not None
        counts = GridCounts()

        def with_counts(g: str = group, c: Any = counts) -> Any:  # type: ignore[misc]
            return slices(m, view, common_pb2.Filter(), group_by=g, grid_counts=c)

        both, both_times = timed(with_counts, REPEATS)
        assert both == plain, key  # the same slices
        t = time.perf_counter()
        datapoints.keep_value_counts(answers, versions, view, common_pb2.Filter(), key, counts.kind, counts.by_value)
        keeping = time.perf_counter() - t
        flt = common_pb2.Filter(all=[common_pb2.Condition(field=group, equals=common_pb2.Value(**value))])
        grid: dict[str, Any] = {}
        for sort in ("frame_id", "loss"):
            by = [pb.SortKey(field=sort)]
            live, live_times = timed(lambda f=flt, b=by: set_count(m, view, f, b), REPEATS)  # type: ignore[misc]

            def kept_count(f: Any = flt, b: Any = by, a: Any = answers) -> int:  # type: ignore[misc]
                """The grid's count as it asks for it: kept under the statement's key, else counted."""
                return int(a.get(VIEW_TABLES, datapoints.count_key(view, f, b), lambda: -1))

            kept, kept_times = timed(kept_count, REPEATS)
            shown = datapoints.query_datapoints(m, view, flt, by, 60, "", scope="grid", answers=answers).total
            assert kept == live == shown, (key, sort, kept, live, shown)
            grid[f"by {sort}"] = {
                "frames": live,
                "count_of_the_set": first_and_median(live_times),
                "kept_count": first_and_median(kept_times),
            }
        out["keys"][key] = {
            "values": len(counts.by_value),
            "slices_as_before": first_and_median(plain_times),
            "slices_with_the_grid_counts": first_and_median(both_times),
            "keeping_the_counts_ms": round(keeping * 1e3, 1),
            "grid": grid,
        }
    out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    m.close()
    return out


def main() -> None:
    run_on_loaded(
        MODULE, __doc__, REPO / "bench" / "console" / "results_value_counts.json", ("add_metadata", "measure")
    )


if __name__ == "__main__":
    main()
