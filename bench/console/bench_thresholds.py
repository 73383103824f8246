"""The performance page at a confidence threshold at N frames on chDB: the classification report and the slices by
split, of every frame or of a split, derived from those at threshold 0 (which the preparer keeps) and the frames
below the threshold counted from the confidence sort's counts by bucket (``grid_orders.below_threshold``, then
``classification.at_threshold`` and ``slices.at_threshold``), beside the same read from every frame of the set at
the threshold, as each was read before; in the same process and run, each asked first (its first call) and then
twice more, and checked equal.

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder it
loaded before). The sorts are written as the preparer writes them until each field has one counted by bucket; the
report and slices at 0 are read once before the questions (the preparer's, kept in memory).

    python bench/console/bench_thresholds.py --frames 10000000 --work /work/bench10m
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
    first_and_median,
    open_loaded,
    run_on_loaded,
    timed,
    write_counted_sorts,
)
from bench.harness import peak_rss_mib  # noqa: E402

MODULE = "bench.console.bench_thresholds"
#: (the split picked, or none; the threshold): the console's score threshold, in its steps of 0.05
QUESTIONS = (("", 0.1), ("", 0.3), ("", 0.5), ("", 0.75), ("val", 0.3), ("val", 0.6))
REPEATS = 3


def measure(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.analysis import classification, grid_orders, slices
    from shoal.common.v1 import common_pb2

    m, view, versions = open_loaded(work)
    out: dict[str, Any] = {"frames": int(m.query("SELECT count() FROM frames").scalar()),
                           "sorts_written_s": write_counted_sorts(m, view, versions)}  # fmt: skip

    def split_filter(split: str) -> Any:
        return common_pb2.Filter(all=[common_pb2.Condition(field="split", equals=common_pb2.Value(
            string_value=split))] if split else [])  # fmt: skip

    at_zero: dict[str, Any] = {}  # the preparer's report and slices by split at 0, of every frame and of each split
    t = time.perf_counter()
    for split in sorted({s for s, _ in QUESTIONS}):
        flt = split_filter(split)
        at_zero[split] = (classification.classification_report(m, view, flt),
                          slices.slices(m, view, flt, group_by="split")[2])  # fmt: skip
    out["at_zero_s"] = round(time.perf_counter() - t, 2)

    def report_at(flt: Any, threshold: float, split: str) -> Any:
        found = grid_orders.below_threshold(m, view, versions, flt, threshold, ("label_class", "predicted_class"))
        assert found is not None
        return classification.at_threshold(at_zero[split][0], list(view.ontology), found[1])

    def slices_at(flt: Any, threshold: float, split: str) -> Any:
        found = grid_orders.below_threshold(m, view, versions, flt, threshold, ("split", "correct"))
        assert found is not None
        right = {str(s): n for (s, correct), n in found[1].items() if correct}
        return slices.at_threshold(at_zero[split][1], right, slices.DEFAULT_MIN_SUPPORT, slices.DEFAULT_LEVEL)

    def fields(r: Any) -> tuple[Any, ...]:
        return r.frames, r.abstained, r.accuracy, r.per_class, r.confusion.tolist(), r.bins

    questions: dict[str, Any] = {}
    for split, threshold in QUESTIONS:
        flt, at = split_filter(split), replace(view, confidence_threshold=threshold)
        derived, derived_times = timed(lambda f=flt, t=threshold, s=split: report_at(f, t, s), REPEATS)
        read, read_times = timed(lambda f=flt, v=at: classification.classification_report(m, v, f), REPEATS)
        assert fields(derived) == fields(read), (split, threshold)
        by_split, by_split_times = timed(lambda f=flt, t=threshold, s=split: slices_at(f, t, s), REPEATS)
        read_split, read_split_times = timed(lambda f=flt, v=at: slices.slices(m, v, f, group_by="split"), REPEATS)
        assert by_split == read_split, (split, threshold)
        questions[f"{'split ' + split if split else 'every frame'}, threshold {threshold}"] = {
            "abstained": derived.abstained,
            "report": {"derived": first_and_median(derived_times), "read_from_the_set": first_and_median(read_times)},
            "slices_by_split": {"derived": first_and_median(by_split_times),
                                "read_from_the_set": first_and_median(read_split_times)},
        }  # fmt: skip
    out["questions"] = questions
    out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    m.close()
    return out


def main() -> None:
    run_on_loaded(MODULE, __doc__, REPO / "bench" / "console" / "results_thresholds.json")


if __name__ == "__main__":
    main()
