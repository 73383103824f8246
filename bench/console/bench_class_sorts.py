"""The example grid's pages at N frames sorted by labeled or predicted class: read class by class from the confusion
cells (``evaluations_by_cell``: the frame ids of the cursor's class after its frame, then their rows;
``datapoints._cell_rows``) beside the same page sorted from the set, as each was read before; in the same process
and run, each page asked first (its first call) and then twice more, and checked equal. Each question is asked at
depths 0, 1,000 and 1,000,000 (the cursor: the row before it, read from the set). By predicted class at a
confidence threshold too: the frames below it, of the class -1, read from the first rows of the sort by confidence
(written first, as the preparer writes it) when few, else from the set in frame id order. And in a project of a
thousand classes (step ``add_many_classes``: a second set of the same frames, each class split a hundred ways), by
labeled class and by predicted class of the right predictions (the cells of each lie together).

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder it
loaded before).

    python bench/console/bench_class_sorts.py --frames 10000000 --work /work/bench10m
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.console.bench_console import (  # noqa: E402
    copy_set,
    first_and_median,
    open_loaded,
    row_before,
    run_on_loaded,
    timed,
    write_counted_sorts,
)
from bench.harness import peak_rss_mib  # noqa: E402

MODULE = "bench.console.bench_class_sorts"
#: confidence thresholds of the grid by predicted class: a few frames below the first (read from the sort by
#: confidence), some below the second, most below the third (read from the set in frame id order)
THRESHOLDS = (0.12, 0.2, 0.5)
#: (sort field, descending, the filter's equalities as the console writes them, the confidence threshold: below it a
#: frame's predicted class is -1, read from the set in frame id order)
QUESTIONS: tuple[tuple[str, bool, tuple[tuple[str, Any], ...], float], ...] = (
    ("label_class", False, (), 0.0),
    ("label_class", True, (), 0.0),
    ("predicted_class", False, (), 0.0),
    ("label_class", False, (("split", "val"),), 0.0),
    ("predicted_class", False, (("correct", False),), 0.0),
    ("predicted_class", True, (("correct", True),), 0.0),
    ("label_class", False, (("label_class", 3),), 0.0),
    ("predicted_class", False, (("label_class", 3),), 0.0),
    ("predicted_class", False, (), THRESHOLDS[0]),
    ("predicted_class", False, (), THRESHOLDS[1]),
    ("predicted_class", False, (), THRESHOLDS[2]),
    ("predicted_class", True, (), THRESHOLDS[2]),
    ("predicted_class", False, (("split", "val"),), THRESHOLDS[2]),
    ("predicted_class", False, (("correct", False),), THRESHOLDS[2]),
)
#: a second set of the same frames in a project of :data:`MANY` classes (step ``add_many_classes``): each frame's
#: label and prediction split a hundred ways by a hash of its frame id (the right predictions stay right)
MANY, MANY_SET = 1_000, "m1000"
#: its questions (sort field, descending, the filter's equalities): a labeled class's cells, and a predicted class's
#: on the diagonal, lie together however many classes there are (of one labeled class, its cells are read whole)
MANY_QUESTIONS: tuple[tuple[str, bool, tuple[tuple[str, Any], ...]], ...] = (
    ("label_class", False, ()),
    ("label_class", True, ()),
    ("label_class", False, (("split", "val"),)),
    ("predicted_class", True, (("correct", True),)),
)
DEPTHS = (0, 1_000, 1_000_000)
REPEATS = 3
#: the set's column of each sort field, to find a depth's cursor (the predicted class at the view's threshold)
COLUMN = {"label_class": "label_class", "predicted_class": "predicted_class"}


def add_many_classes(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    """Writes the set of :data:`MANY` classes (the loaded set's rows, each class split a hundred ways), unless
    written."""
    split = f"cityHash64(frame_id, 5) % {MANY // 10}"
    return copy_set(work, MANY_SET, f"label_class * {MANY // 10} + {split} AS label_class,"
                    f" pred_raw * {MANY // 10} + {split} AS pred_raw", "many_classes",
                    ("evaluations", "evaluations_by_cell"))  # fmt: skip


def measure(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    from shoal.common.data.answers import AnswerCache

    m, at_zero, versions = open_loaded(work)
    out: dict[str, Any] = {"frames": int(m.query("SELECT count() FROM frames FINAL").scalar()), "questions": []}
    out["sorts_written_s"] = write_counted_sorts(m, at_zero, versions)  # the sort by confidence, as the preparer's
    answers = AnswerCache(m, max_answers=0)  # the tables' versions, looked up on each call
    for t in THRESHOLDS:
        below = m.query(f"SELECT countIf(confidence < {t}) FROM evaluations FINAL WHERE inference_set = {{s:String}}",
                        {"s": at_zero.inference_set}).scalar()  # fmt: skip
        out[f"frames below {t}"] = int(below)
    for field, descending, conditions, threshold in QUESTIONS:
        view = replace(at_zero, confidence_threshold=threshold)
        for asked in _pages(m, view, answers, field, descending, conditions):
            out["questions"].append({**asked, "threshold": threshold})
    many = replace(at_zero, inference_set=MANY_SET, ontology=tuple(range(MANY)), class_names={})
    out["many_classes"] = [asked for field, descending, conditions in MANY_QUESTIONS
                           for asked in _pages(m, many, answers, field, descending, conditions)]  # fmt: skip
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def _pages(m: Any, view: Any, answers: Any, field: str, descending: bool,
           conditions: tuple[tuple[str, Any], ...]) -> list[dict[str, Any]]:  # fmt: skip
    """A page of 60 by ``field`` at each of :data:`DEPTHS` that many frames pass, read class by class and sorted from
    the set, each :data:`REPEATS` times, checked equal: the question and both figures."""
    from shoal.analysis import datapoints, grid_orders
    from shoal.analysis.v1 import analysis_pb2 as apb

    flt, sort = grid_orders.equalities(conditions), [apb.SortKey(field=field, descending=descending)]
    asked = []
    for depth in DEPTHS:
        last = row_before(m, view, flt, sort, COLUMN[field], depth)
        if last == []:  # fewer frames pass
            continue
        last = last and [int(last[0]), last[1]]
        cells, cell_times = timed(lambda: datapoints._cell_rows(m, view, flt, sort, 60, last, answers),  # noqa: B023
                                  REPEATS)  # fmt: skip
        sql, params = datapoints.page_statement(view, flt, sort, {}, 60, last)[:2]
        rows, set_times = timed(lambda: m.query(sql, params).rows, REPEATS)  # noqa: B023
        assert cells is not None and [r[0] for r in cells] == [r[0] for r in rows] and len(rows) == 61
        asked.append({"sort": f"{field} {'down' if descending else 'up'}", "filter": dict(conditions), "depth": depth,
                      "cell_by_cell": first_and_median(cell_times),
                      "sorted_from_the_set": first_and_median(set_times)})  # fmt: skip
    return asked


def main() -> None:
    run_on_loaded(MODULE, __doc__, REPO / "bench" / "console" / "results_class_sorts.json",
                  ("add_many_classes", "measure"))  # fmt: skip


if __name__ == "__main__":
    main()
