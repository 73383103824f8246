"""The example grid's sorted pages and the slider's counts right after an upload to a large set, on chDB: read from
the sorts written before the upload patched with the frames it wrote (``shoal.analysis.grid_orders.patch``) beside
the set's own statements, as such pages were read until the sorts of the new rows were written (minutes at 10M
frames); in the same process and run, each asked first (its first call) and then twice more, and checked equal.

The data is ``bench_console``'s (N frames of 10 classes, two splits; loaded anew unless ``--work`` names a folder it
loaded before). Step ``build`` writes the set's six sorts whole, as the preparer does once the set's rows settle,
and waits for their parts' merges (the sorts are written long before an upload in use); step ``measure`` then
uploads corrected labels of ``RELABELLED`` frames, half the worst losses (relabelled as predicted, as a person
fixing label errors from the top of the grid sorted by loss would) and half chosen at random, given a class drawn at
random (label versions written and the set's rows refreshed, as the ingest consumer does, the parts left to the
background merges), writes the patch as the preparer does after an upload, and asks for the pages (past the ten the
preparer keeps in memory, and half-way down) and the counts.

    python bench/console/bench_patched_orders.py --frames 10000000 --work /work/bench10m [--relabelled 20000]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.console.bench_console import (  # noqa: E402
    DATABASE,
    DATASET,
    GRID_PAGE,
    INFERENCE_SET,
    PROJECT,
    K,
    beside_the_set,
    first_and_median,
    frame_ids,
    run_on_loaded,
    set_count,
    slider,
    timed,
)
from bench.harness import peak_rss_mib  # noqa: E402

MODULE = "bench.console.bench_patched_orders"
#: frames whose labels the upload corrects (``--relabelled``): the worst losses and as many chosen at random
RELABELLED = 20_000
#: (name, the grid's filter as equalities, sort field, descending)
PAGES = (
    ("every frame, worst loss first", (), "loss", True),
    ("split val, least confident first", (("split", "val"),), "confidence", False),
    ("the wrong predictions, smallest margin first", (("correct", False),), "margin", False),
)
#: (name, field, min, max): a slider's range, as the console's filter writes it
#: the slider's counts asked: (name, field, min, max, the grid's other conditions)
RANGES = (("confidence below 0.5", "confidence", None, 0.5, ()), ("loss above 2", "loss", 2.0, None, ()),
          ("split val, loss above 2", "loss", 2.0, None, (("split", "val"),)),
          ("wrong, confidence below 0.5", "confidence", None, 0.5, (("correct", False),)))  # fmt: skip
REPEATS = 3


def _view() -> Any:
    from shoal.common.data.query import View

    return View(PROJECT, DATASET, INFERENCE_SET, tuple(range(K)), {f"class-{i}": i for i in range(K)}, 0.0)


def _store(work: str) -> Any:
    from shoal.analysis import grid_orders
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    m = EmbeddedMetricsStore(path=Path(work) / "ch", database=DATABASE)
    m.migrate(grid_orders.MIGRATIONS)
    return m


def build(work: str) -> dict[str, Any]:  # type: ignore[type-arg]
    """The set's six sorts written whole, as the preparer writes them."""
    from shoal.analysis import grid_orders
    from shoal.common.data.answers import AnswerCache
    from shoal.common.data.query import VIEW_TABLES

    m = _store(work)
    versions = AnswerCache(m).versions(VIEW_TABLES)
    t = time.perf_counter()
    written, complete = grid_orders.keep(m, _view(), versions)
    assert complete, "the sorts were not written whole"
    out = {"sorts_written": written, "sorts_written_s": round(time.perf_counter() - t, 1)}
    # the sorts were written long before an upload in use: their parts merged (the merges run in this process)
    t = time.perf_counter()
    while int(m.query("SELECT count() FROM system.merges WHERE database = currentDatabase()").scalar()):
        time.sleep(1.0)
    out["merges_waited_s"] = round(time.perf_counter() - t, 1)
    out["sorts_parts"] = int(m.query("SELECT count() FROM system.parts WHERE database = currentDatabase()"
                                     " AND table = 'grid_listings' AND active").scalar())  # fmt: skip
    m.close()
    return out


def _cursor(m: Any, view: Any, flt: Any, field: str, descending: bool, depth: int) -> list[Any]:  # type: ignore[type-arg]
    """The sort's value and the frame id of the ``depth``-th row of the grid (a page's cursor)."""
    from shoal.common.data.query import SETTINGS, Params, compile_filter, view_sql

    params = Params()
    source, where = view_sql(view, params), compile_filter(flt, view, params)
    order = "DESC" if descending else "ASC"
    row = m.query(f"SELECT {field}, frame_id FROM ({source}) WHERE {where} AND {field} IS NOT NULL"
                  f" ORDER BY {field} {order}, frame_id LIMIT 1 OFFSET {depth - 1}{SETTINGS}", params.values).rows[0]  # fmt: skip
    return [row[0], row[1]]


def measure(work: str, relabelled: int = RELABELLED) -> dict[str, Any]:  # type: ignore[type-arg]
    import pyarrow as pa

    from shoal.analysis import datapoints, grid_orders
    from shoal.analysis.v1 import analysis_pb2 as pb
    from shoal.common.data.answers import AnswerCache
    from shoal.common.data.evaluations import EvaluationRefresher
    from shoal.common.data.query import VIEW_TABLES
    from shoal.common.v1 import common_pb2
    from shoal.ingest.columns import constant

    m, view = _store(work), _view()
    n = int(m.query("SELECT count() FROM frames").scalar())
    out: dict[str, Any] = {"frames": n, "relabelled": relabelled}
    # the upload: corrected labels of the worst losses (as a person fixing label errors from the top of the grid
    # sorted by loss sends them: the predicted class) and of as many other frames chosen at random (another class)
    worst = m.query("SELECT frame_id, pred_raw FROM evaluations FINAL WHERE inference_set = {s:String}"
                    " AND loss IS NOT NULL ORDER BY loss DESC, frame_id LIMIT {n:UInt32}",
                    {"s": INFERENCE_SET, "n": relabelled // 2}).rows  # fmt: skip
    moved = {str(f): int(c) for f, c in worst}
    rng = np.random.default_rng(7)
    drawn = (frame_ids(int(i), int(i) + 1)[0] for i in rng.choice(n, relabelled, replace=False))
    for f in [f for f in drawn if f not in moved][: relabelled - len(moved)]:
        moved[f] = -1
    ids = sorted(moved)
    for f in ids:  # a class drawn at random (the same as before for about one in ten: the frame written all the same)
        if moved[f] < 0:
            moved[f] = int(rng.integers(0, K))
    t = time.perf_counter()
    m.insert_arrow("label_versions", pa.table({
        "project": constant(PROJECT, len(ids)), "dataset": constant(DATASET, len(ids)),
        "frame_id": pa.array(ids, pa.string()), "label_version": constant("w", len(ids)),
        "class_id": pa.array([moved[f] for f in ids], pa.int32())}))  # fmt: skip
    EvaluationRefresher(m).refresh(PROJECT, DATASET, ids, list(range(K)))
    out["upload_s"] = round(time.perf_counter() - t, 1)
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None
    assert grid_orders.page(m, view, versions, "loss", True, common_pb2.Filter(), GRID_PAGE, None) is None
    # as the preparer does once the upload settles
    t = time.perf_counter()
    out["patch_listings"] = grid_orders.patch(m, view, versions)
    out["patch_written_s"] = round(time.perf_counter() - t, 2)
    assert out["patch_listings"] == 2 + len(grid_orders.LISTINGS), out

    pages: dict[str, Any] = {}
    for name, where, field, descending in PAGES:
        flt = grid_orders.equalities(where)
        sort = [pb.SortKey(field=field, descending=descending)]
        passing = set_count(m, view, flt, sort)
        for depth_name, depth in (("page 11", 10 * GRID_PAGE), ("half-way down", passing // 2)):
            last = _cursor(m, view, flt, field, descending, depth)  # the row before's (read once, not timed)
            page_sql, page_params, *_ = datapoints.page_statement(view, flt, sort, {}, GRID_PAGE, last)
            patched, patched_times = timed(
                lambda f=flt, c=last, fd=field, d=descending: grid_orders.page(m, view, versions, fd, d, f, GRID_PAGE, c),
                REPEATS,
            )  # fmt: skip
            live, live_times = timed(lambda s=page_sql, p=page_params: m.query(s, p).rows, REPEATS)
            assert patched is not None and [r[:-2] for r in patched] == [tuple(r) for r in live], (name, depth_name)
            pages[f"{name}, {depth_name}"] = {
                "patched_sorts": first_and_median(patched_times),
                "sorted_from_the_set": first_and_median(live_times),
            }
    out["pages"] = pages

    # the set's frames with each field (the preparer keeps each field's count; read here, not timed)
    known = {field: set_count(m, view, common_pb2.Filter(), [pb.SortKey(field=field)]) for _, field, *_ in RANGES}
    counts: dict[str, Any] = {}
    for name, field, lo, hi, besides in RANGES:
        flt = grid_orders.equalities(besides)
        flt.all.extend(slider(field, lo, hi).all)
        sort = [pb.SortKey(field="frame_id")]
        counts[name] = beside_the_set("patched_sorts", lambda f=flt, s=sort: grid_orders.range_count(
            m, view, versions, f, s, lambda fs: known[fs[0]]), m, view, flt, sort, REPEATS)  # fmt: skip
    out["counts"] = counts
    out["peak_rss_mib"] = round(peak_rss_mib(), 0)
    m.close()
    return out


def main() -> None:
    run_on_loaded(MODULE, __doc__, REPO / "bench" / "console" / "results_patched_orders.json", ("build", "measure"),
                  {"relabelled": RELABELLED})  # fmt: skip


if __name__ == "__main__":
    main()
