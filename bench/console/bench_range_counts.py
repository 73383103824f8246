"""The count of the example grid's slider (one range of confidence, loss or margin, alone or with a split, a class
or the wrong predictions picked) at N frames on chDB: read from the key's range of the field's sort that a large set
keeps whole, or with the other conditions from that sort's counts by bucket of its key
(``shoal.analysis.grid_orders.range_count``), beside the count of the set's statement, as every such count was read
before, in the same process and run; each asked first (its first call) and then twice more, and checked equal.

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder it
loaded before). The sorts are written as the preparer writes them, the worst predictions first, until each field
has one (loss down, confidence up, margin up: three of the six), each followed by its counts by bucket; a count reads
whichever of a field's two it finds.

    python bench/console/bench_range_counts.py --frames 10000000 --work /work/bench10m
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
    open_loaded,
    presence,
    run_on_loaded,
    slider,
    write_counted_sorts,
)
from bench.harness import peak_rss_mib  # noqa: E402

MODULE = "bench.console.bench_range_counts"
#: (name, field, min, max, the grid's sort field, the grid's other conditions): a slider's range (no field: none),
#: with what else the grid picked, as the console's filter writes them
QUESTIONS = (
    ("confidence below 0.5, by frame id", "confidence", None, 0.5, "frame_id", ()),
    ("confidence in [0.3, 0.5), by margin", "confidence", 0.3, 0.5, "margin", ()),
    ("confidence above 0.9, by confidence", "confidence", 0.9, None, "confidence", ()),
    ("loss above 2, by loss", "loss", 2.0, None, "loss", ()),
    ("loss in [0.5, 1), by frame id", "loss", 0.5, 1.0, "frame_id", ()),
    ("margin below 0.1, by loss", "margin", None, 0.1, "loss", ()),
    ("split val, loss above 2, by loss", "loss", 2.0, None, "loss", (("split", "val"),)),
    ("wrong, confidence below 0.5, by frame id", "confidence", None, 0.5, "frame_id", (("correct", False),)),
    ("class 3 in val, loss in [0.5, 1), by frame id", "loss", 0.5, 1.0, "frame_id",
     (("label_class", 3), ("split", "val"))),
    ("predicted class 7, margin below 0.1, by margin", "margin", None, 0.1, "margin", (("predicted_class", 7),)),
    ("right, confidence above 0.9, by confidence", "confidence", 0.9, None, "confidence", (("correct", True),)),
    ("predicted class 7 in val, by frame id", "", None, None, "frame_id", (("predicted_class", 7), ("split", "val"))),
    ("predicted class 7, wrong, by loss", "", None, None, "loss", (("predicted_class", 7), ("correct", False))),
)  # fmt: skip
REPEATS = 3


def measure(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.analysis import grid_orders
    from shoal.analysis.v1 import analysis_pb2 as pb

    m, view, versions = open_loaded(work)
    out: dict[str, Any] = {"frames": int(m.query("SELECT count() FROM frames").scalar()),
                           "sorts_written_s": write_counted_sorts(m, view, versions)}  # fmt: skip

    present = presence(m, view)  # its counts counted here before the questions are timed
    t = time.perf_counter()
    for _, field, _, _, by, _ in QUESTIONS:
        present([field] if field else [])  # every frame with the range's field (or every frame)
        if by not in (field, "frame_id"):
            present([field, by] if field else [by])
    out["frames_with_the_fields_s"] = round(time.perf_counter() - t, 2)

    questions: dict[str, Any] = {}
    for name, field, lo, hi, by, besides in QUESTIONS:
        flt = grid_orders.equalities(besides)
        flt.all.extend(slider(field, lo, hi).all if field else ())
        sort = [pb.SortKey(field=by)]
        questions[name] = beside_the_set("kept_sort", lambda f=flt, s=sort: grid_orders.range_count(
            m, view, versions, f, s, present), m, view, flt, sort, REPEATS)  # fmt: skip
    out["questions"] = questions
    out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    m.close()
    return out


def main() -> None:
    run_on_loaded(MODULE, __doc__, REPO / "bench" / "console" / "results_range_counts.json")


if __name__ == "__main__":
    main()
