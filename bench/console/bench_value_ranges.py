"""The grid's first count of the slider (a range of confidence), or of a range of loss, beside a metadata value at N
frames on chDB: read from the field's sort's rows counted by metadata value and bucket of its key
(``grid_values.value_range_count``, written by the preparer once per version of a large set's data, after each sort)
beside the count of the set's
statement, as such a count of a range too wide to read a sort's rows of was read before; in the same process and
run, each asked first (its first call) and then twice more, and checked equal. Also how long the counts took to
write, and how many rows they are; and the Performance page's slices by a metadata key at a confidence threshold,
derived from the slices at 0 (read from the counts by value) and the right predictions below the threshold (from
these counts), beside the slices read from the set at the threshold.

The data is ``bench_grid_values``'s (``bench_console``'s N frames of 10 classes, two splits, with six metadata keys
written once; loaded anew unless ``--work`` names a folder it loaded before). The sorts are written as the preparer
writes them until each field has one, then the counts by value, then these.

    python bench/console/bench_value_ranges.py --frames 10000000 --work /work/bench10m
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
    beside_the_set,
    first_and_median,
    open_loaded,
    presence,
    run_on_loaded,
    timed,
    write_counted_sorts,
)
from bench.console.bench_grid_values import add_metadata  # noqa: E402, F401 - a step of this module's run
from bench.console.bench_rows_counts import _filter  # noqa: E402
from bench.harness import peak_rss_mib  # noqa: E402

MODULE = "bench.console.bench_value_ranges"
#: (name, the grid's conditions as bench_rows_counts writes them, its sort field)
QUESTIONS = (
    ("confidence above 0.5, weather rain, by frame id", (("confidence", 0.5, None), ("metadata.weather", "rain", False)),
     "frame_id"),
    ("confidence in [0.2, 0.8), camera cam3, by confidence",
     (("confidence", 0.2, 0.8), ("metadata.camera", "cam3", False)), "confidence"),
    ("confidence above 0.35, speed in [10, 20), by frame id",
     (("confidence", 0.35, None), ("metadata.speed", 10.0, 20.0)), "frame_id"),
    ("confidence below 0.9, not at night, by frame id",
     (("confidence", None, 0.9), ("metadata.night", True, True)), "frame_id"),
    ("confidence above 0.5, road-3, split val, wrong, by frame id",
     (("confidence", 0.5, None), ("metadata.road", "road-3", False)), "frame_id"),
    ("loss above 1, weather rain, by loss", (("loss", 1.0, None), ("metadata.weather", "rain", False)), "loss"),
    ("loss below 0.5, camera cam3, by frame id", (("loss", None, 0.5), ("metadata.camera", "cam3", False)),
     "frame_id"),
    ("loss in [0.5, 2), speed in [10, 20), by confidence", (("loss", 0.5, 2.0), ("metadata.speed", 10.0, 20.0)),
     "confidence"),
)  # fmt: skip
#: conditions added to a question's (by name): the split and the wrong predictions
BESIDES = {"confidence above 0.5, road-3, split val, wrong, by frame id": (("split", "val"), ("correct", False))}
#: the slices by a key at a threshold asked: (metadata key, the split picked, if any, the threshold)
SLICED = (("weather", "", 0.5), ("camera", "", 0.3), ("speed", "", 0.7), ("road", "val", 0.5))
REPEATS = 3


def measure(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.analysis import grid_orders, grid_values, slices
    from shoal.analysis.v1 import analysis_pb2 as pb

    m, view, versions = open_loaded(work)
    out: dict[str, Any] = {"frames": int(m.query("SELECT count() FROM frames FINAL").scalar()),
                           "sorts_written_s": write_counted_sorts(m, view, versions)}  # fmt: skip
    t = time.perf_counter()
    grid_values.keep(m, view, versions)
    out["values_written_s"] = round(time.perf_counter() - t, 1)
    m.command(f"ALTER TABLE grid_value_buckets DROP PARTITION '{grid_orders.build_id(view, versions)}'")
    m.command("DELETE FROM grid_listing_builds WHERE listing LIKE 'values:%'")
    written: dict[str, Any] = {}
    for field, listing in grid_values.BUCKETED_SORTS.items():  # one sort's a call, as the preparer writes them
        t = time.perf_counter()
        assert grid_values.keep_buckets(m, view, versions) == 1
        written[field] = {"written_s": round(time.perf_counter() - t, 1), "rows": int(m.query(
            "SELECT count() FROM grid_value_buckets WHERE listing = {n:String}", {"n": listing}).scalar())}  # fmt: skip
    out["value_buckets"] = written
    present = presence(m, view)
    present(["confidence"]), present(["loss"])  # the preparer keeps these
    questions: dict[str, Any] = {}
    for name, conditions, by in QUESTIONS:
        flt, sort = _filter(conditions), [pb.SortKey(field=by)]
        for field, value in BESIDES.get(name, ()):
            flt.all.add(field=field, equals={"string_value": value} if isinstance(value, str) else
                        {"bool_value": value})  # fmt: skip
        # too wide a range to read the sort's rows of (at 10M frames): those were refused, and the set counted
        refused = grid_orders.rows_count(m, view, versions, flt, sort, present) is None
        questions[name] = {**beside_the_set("from_the_value_buckets", lambda f=flt, s=sort: grid_values.value_range_count(
            m, view, versions, f, s, present), m, view, flt, sort, REPEATS), "sorts_rows_refused": refused}  # fmt: skip
    out["questions"] = questions
    # the Performance page's slices by a key at a threshold: those at 0 (read here from the counts by value, as for a
    # key the preparer did not read; kept for the keys it did) with the right predictions below the threshold wrong
    by_key: dict[str, Any] = {}
    for key, split, threshold in SLICED:
        flt = grid_orders.equalities((("split", split),) if split else ())
        at = replace(view, confidence_threshold=threshold)

        def derived(k: str = key, f: Any = flt, t: float = threshold) -> Any:
            zero = slices.slices(m, view, f, group_by=f"metadata.{k}",
                                 kept=lambda name: grid_values.slice_rows(m, view, versions, f, name))  # fmt: skip
            found = grid_values.below_by_value(m, view, versions, f, t, k)
            assert found is not None and {x.value: x.frames for x in zero[2]} == found[0], k
            return slices.at_threshold(zero[2], found[1], slices.DEFAULT_MIN_SUPPORT, slices.DEFAULT_LEVEL)

        got, got_times = timed(derived, REPEATS)
        live, live_times = timed(lambda k=key, f=flt, a=at: slices.slices(m, a, f, group_by=f"metadata.{k}"), REPEATS)
        assert got == live, (key, split, threshold)
        by_key[f"{key}{f' in {split}' if split else ''} at {threshold}"] = {
            "values": len(live[2]),
            "derived": first_and_median(got_times),
            "from_the_set": first_and_median(live_times),
        }
    out["slices_at_a_threshold"] = by_key
    out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    m.close()
    return out


def main() -> None:
    run_on_loaded(
        MODULE, __doc__, REPO / "bench" / "console" / "results_value_ranges.json", ("add_metadata", "measure")
    )


if __name__ == "__main__":
    main()
