"""The slices by any metadata key, and the grid's first count of a metadata value, at N frames on chDB: read from the
set's frames counted by metadata value (``shoal.analysis.grid_values``, written by the preparer once per version of
a large set's data) beside the same read from every frame of the set, as each was read before for a key the preparer
did not read (it reads the first four keys' slices) or a value nobody asked for; in the same process and run, each
asked first (its first call) and then twice more, and checked equal.

Also a negated value's count, and a key's absence (every frame that passes the other conditions less those that
pass the condition).

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder it
loaded before), to which each frame's metadata is written once: six keys (a camera of 8 values, a light level of 100,
a weather of 5, a road of 12, a speed of 50, a night flag). Step ``add_metadata`` writes it and merges the tables;
step ``measure`` writes the counts as the preparer does and asks the questions.

    python bench/console/bench_grid_values.py --frames 10000000 --work /work/bench10m
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.console.bench_console import (  # noqa: E402
    beside_the_set,
    first_and_median,
    open_loaded,
    run_on_loaded,
    timed,
    write_metadata,
)
from bench.harness import peak_rss_mib  # noqa: E402

MODULE = "bench.console.bench_grid_values"
#: the keys written, and how: (map, key, the value's expression of the frame id's hash ``{h}``)
WRITTEN = (
    ("meta_str", "camera", "concat('cam', toString({h} % 8))"),
    ("meta_num", "lux", "toFloat64(intDiv({h}, 8) % 100)"),
    ("meta_str", "road", "concat('road-', toString(intDiv({h}, 800) % 12))"),
    ("meta_num", "speed", "toFloat64(intDiv({h}, 9600) % 50)"),
    ("meta_str", "weather", "['clear', 'rain', 'fog', 'snow', 'dusk'][1 + intDiv({h}, 480000) % 5]"),
    ("meta_bool", "night", "toUInt8(intDiv({h}, 2400000) % 4 = 0)"),
)
#: the slices asked: (metadata key, the split picked, if any)
SLICES = (("camera", ""), ("lux", ""), ("night", ""), ("road", ""), ("speed", ""), ("weather", ""),
          ("weather", "val"))  # fmt: skip
#: the grid's counts asked: (name, the grid's conditions as the console writes them, its sort field)
COUNTS = (
    ("weather fog, by frame id", (("metadata.weather", "fog"),), "frame_id"),
    ("weather fog, by loss", (("metadata.weather", "fog"),), "loss"),
    ("speed 12, by frame id", (("metadata.speed", 12),), "frame_id"),
    ("weather snow in val, wrong, by loss", (("metadata.weather", "snow"), ("split", "val"), ("correct", False)),
     "loss"),
    ("road-3, class 4, by confidence", (("metadata.road", "road-3"), ("label_class", 4)), "confidence"),
)  # fmt: skip
#: the grid's counts of a negated value or a key's absence asked: (name, key, the value (none: the key's absence),
#: the grid's other conditions, its sort field)
FAILING = (
    ("weather not fog, by frame id", "weather", "fog", (), "frame_id"),
    ("camera not cam3 in val, wrong, by loss", "camera", "cam3", (("split", "val"), ("correct", False)), "loss"),
    ("without a night flag, by frame id", "night", None, (), "frame_id"),
)
REPEATS = 3


def add_metadata(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    """Writes each frame's metadata (a new version of its rows), then merges them as a settled store has them."""
    maps = {}
    for column in ("meta_str", "meta_num", "meta_bool"):
        pairs = ", ".join(f"'{key}', {value.format(h='cityHash64(frame_id, 3)')}"
                          for c, key, value in WRITTEN if c == column)  # fmt: skip
        maps[column] = f"map({pairs})"
    return write_metadata(work, maps, "mapContains(meta_str, 'weather')")


def measure(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.analysis import grid_orders, grid_values
    from shoal.analysis.slices import GridCounts, slices
    from shoal.analysis.v1 import analysis_pb2 as pb
    from shoal.common.v1 import common_pb2

    m, view, versions = open_loaded(work)
    out: dict[str, Any] = {"frames": int(m.query("SELECT count() FROM frames FINAL").scalar())}
    grid_orders.remove(m, view)  # what a run before wrote: the counts are written anew
    t = time.perf_counter()
    assert grid_values.keep(m, view, versions) == 1
    out["values_written_s"] = round(time.perf_counter() - t, 1)
    out["value_counts_rows"] = int(m.query("SELECT count() FROM grid_value_counts").scalar())

    def sliced(key: str, flt: Any, kept: bool) -> Any:  # type: ignore[type-arg]
        """The slices by ``key`` as GetSlices reads them for a metadata key (with the grid's counts of each value)."""
        counts = GridCounts()
        found = slices(m, view, flt, group_by=f"metadata.{key}", grid_counts=counts,
                       kept=(lambda k: grid_values.slice_rows(m, view, versions, flt, k)) if kept else None)  # fmt: skip
        return found, counts.by_value

    by_key: dict[str, Any] = {}
    for key, split in SLICES:
        flt = grid_orders.equalities((("split", split),) if split else ())
        counted, counted_times = timed(lambda k=key, f=flt: sliced(k, f, True), REPEATS)  # type: ignore[misc]
        live, live_times = timed(lambda k=key, f=flt: sliced(k, f, False), REPEATS)  # type: ignore[misc]
        assert counted == live, key
        by_key[f"{key}{f' in {split}' if split else ''}"] = {
            "values": len(live[1]),
            "from_the_value_counts": first_and_median(counted_times),
            "from_the_set": first_and_median(live_times),
        }
    out["slices"] = by_key

    counts: dict[str, Any] = {}
    for name, where, by in COUNTS:
        flt = grid_orders.equalities(where)
        sort = [pb.SortKey(field=by)]
        counts[name] = beside_the_set("from_the_value_counts",
                                      lambda f=flt, s=sort: grid_values.value_count(m, view, versions, f, s),  # type: ignore[misc]
                                      m, view, flt, sort, REPEATS)  # fmt: skip
    for name, key, value, where, by in FAILING:
        flt = grid_orders.equalities(where)
        if value is None:
            flt.all.add(field=f"metadata.{key}", exists=False)
        else:
            flt.all.add(field=f"metadata.{key}", equals=common_pb2.Value(string_value=value), negate=True)
        sort = [pb.SortKey(field=by)]
        counts[name] = beside_the_set("from_the_value_counts",
                                      lambda f=flt, s=sort: grid_values.value_count(m, view, versions, f, s),  # type: ignore[misc]
                                      m, view, flt, sort, REPEATS)  # fmt: skip
    out["counts"] = counts
    out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    m.close()
    return out


def main() -> None:
    run_on_loaded(MODULE, __doc__, REPO / "bench" / "console" / "results_grid_values.json", ("add_metadata", "measure"))


if __name__ == "__main__":
    main()
