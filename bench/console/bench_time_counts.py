"""The Performance page's slices by capture time, and the grid's first count of a capture-time slice's link (a range of
whole hours), at N frames on chDB: read from the set's frames counted by hour of capture (``grid_time_counts``,
written by the preparer with the counts by metadata value, ``grid_values.keep``) beside the same read from every
frame of the set, as each was read before; in the same process and run, each asked first (its first call) and then
twice more, and checked equal.

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder it
loaded before), to which each frame's capture time is written once (step ``add_capture_times``: a time in 2026 from
the frame id's hash, a new version of the frames' and the set's rows, merged as a settled store has them).

    python bench/console/bench_time_counts.py --frames 10000000 --work /work/bench10m
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
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

MODULE = "bench.console.bench_time_counts"
#: each frame's capture time, of its frame id's hash: a second of 2026
CAPTURED = "toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(cityHash64(frame_id, 7) % 31536000)"
#: the slices asked: (time bucket, the split picked, if any)
SLICES = (("hour", ""), ("day", ""), ("week", ""), ("month", ""), ("day", "val"))
DAY = datetime(2026, 3, 5, tzinfo=UTC)
#: the grid's counts asked, as a slice's link writes them: (name, first moment, last moment included, conditions
#: beside, sort field)
COUNTS = (
    ("5 March, by frame id", DAY, DAY + timedelta(days=1), (), "frame_id"),
    ("5 March, split val, wrong, by loss", DAY, DAY + timedelta(days=1), (("split", "val"), ("correct", False)),
     "loss"),
    ("5 March 13:00 to 14:00, by confidence", DAY + timedelta(hours=13), DAY + timedelta(hours=14), (), "confidence"),
    ("the week of 2 March, class 4, by frame id", datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC),
     (("label_class", 4),), "frame_id"),
    ("March, by frame id", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), (), "frame_id"),
)  # fmt: skip
REPEATS = 3


def add_capture_times(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    """Writes each frame's capture time (a new version of its rows), then merges them, unless written before."""
    return write_metadata(work, {"capture_time": CAPTURED}, "capture_time IS NOT NULL", "capture_times")


def measure(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.analysis import grid_orders, grid_values, slices
    from shoal.analysis.v1 import analysis_pb2 as pb
    from shoal.common.v1 import common_pb2

    m, view, versions = open_loaded(work)
    out: dict[str, Any] = {"frames": int(m.query("SELECT count() FROM frames FINAL").scalar())}
    grid_orders.remove(m, view)  # what a run before wrote: the counts are written anew
    t = time.perf_counter()
    assert grid_values.keep(m, view, versions) == 1
    out["values_and_hours_written_s"] = round(time.perf_counter() - t, 1)
    out["hour_counts_rows"] = int(m.query("SELECT count() FROM grid_time_counts").scalar())

    by_bucket: dict[str, Any] = {}
    for bucket, split in SLICES:
        flt = grid_orders.equalities((("split", split),) if split else ())

        def counted(b: str = bucket, f: Any = flt) -> Any:
            return slices.slices(m, view, f, group_by="capture_time", time_bucket=b,
                                 kept_times=lambda fn: grid_values.time_slice_rows(m, view, versions, f, fn))  # fmt: skip

        got, got_times = timed(counted, REPEATS)
        live, live_times = timed(lambda b=bucket, f=flt: slices.slices(m, view, f, group_by="capture_time",
                                                                         time_bucket=b), REPEATS)  # fmt: skip
        assert got == live, (bucket, split)
        by_bucket[f"by {bucket}{f' in {split}' if split else ''}"] = {
            "slices": len(live[2]), "from_the_hour_counts": first_and_median(got_times),
            "from_the_set": first_and_median(live_times)}  # fmt: skip
    out["slices"] = by_bucket

    counts: dict[str, Any] = {}
    for name, first, past, besides, by in COUNTS:
        r = common_pb2.Range()
        r.min.timestamp_value.FromDatetime(first)
        r.max.timestamp_value.FromDatetime(past - timedelta(milliseconds=1))  # the link's end, included
        flt = grid_orders.equalities(besides)
        flt.all.add(field="capture_time", range=r)
        sort = [pb.SortKey(field=by)]
        counts[name] = beside_the_set("from_the_hour_counts", lambda f=flt, s=sort: grid_values.time_count(
            m, view, versions, f, s), m, view, flt, sort, REPEATS)  # fmt: skip
    out["counts"] = counts
    out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    m.close()
    return out


def main() -> None:
    run_on_loaded(MODULE, __doc__, REPO / "bench" / "console" / "results_time_counts.json",
                  ("add_capture_times", "measure"))  # fmt: skip


if __name__ == "__main__":
    main()
