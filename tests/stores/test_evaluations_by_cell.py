"""``evaluations_by_cell`` on chDB: the rows of ``evaluations`` ordered by label and predicted class hold exactly
the current rows, after relabels and new predictions move frames between cells, and the rows written before the
table existed are copied by its migration."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from shoal.common.data.datasets import MIGRATIONS as DATASET_MIGRATIONS
from shoal.common.data.evaluations import LABEL_KEY, PRED_KEY, EvaluationRefresher
from shoal.common.data.evaluations import MIGRATIONS as EVALUATION_MIGRATIONS
from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
from shoal.common.stores.metrics import EmbeddedMetricsStore
from tests.stores._rows import create_sets, write_labels, write_predictions

N, K = 400, 4
IDS = [f"f{i:04d}" for i in range(N)]
SETS = ("a", "b")


def _labels(m: EmbeddedMetricsStore, frames: list[int], classes: np.ndarray, version: str) -> None:
    write_labels(m, [IDS[i] for i in frames], classes, int(version[1:]))


def _predictions(m: EmbeddedMetricsStore, name: str, frames: list[int], rng: np.random.Generator, v: int) -> None:
    write_predictions(m, name, [IDS[i] for i in frames], rng.dirichlet(np.ones(K), len(frames)).astype(np.float32), v)


def _cells(m: EmbeddedMetricsStore, table: str) -> list[tuple[object, ...]]:
    keys = "label_key, pred_key" if table == "evaluations_by_cell" else f"{LABEL_KEY}, {PRED_KEY}"
    return [tuple(r) for r in m.query(
        f"SELECT inference_set, {keys}, frame_id, split, label_class, pred_raw, loss FROM {table} FINAL"
        " WHERE project = 'p' AND dataset = 'd' ORDER BY inference_set, frame_id").rows]  # fmt: skip


def test_the_cells_hold_the_current_rows_after_labels_and_predictions_change(
    embedded_metrics: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, rng = embedded_metrics, np.random.default_rng(3)
    m.migrate([x for x in (*DATASET_MIGRATIONS, *FRAME_MIGRATIONS, *EVALUATION_MIGRATIONS) if x.version < 9])
    create_sets(m, SETS)
    m.insert("frames", [["p", "d", f, "train" if i % 3 else "val", f"s3://b/{f}", 1] for i, f in enumerate(IDS)],
             ["project", "dataset", "frame_id", "split", "media_uri", "version"])  # fmt: skip
    everything = list(range(N))
    _labels(m, everything[: N - 40], rng.integers(0, K, N - 40), "v1")  # the last 40 unlabeled
    for s in SETS:
        _predictions(m, s, everything[: N - 20], rng, 1)  # the last 20 without predictions
    # rows written before the table existed (as an earlier version's refresh wrote them): copied by its migration
    m.insert("evaluations", [["p", s, "d", f, "train", int(rng.integers(0, K)), int(rng.integers(0, K)),
                              float(rng.random()), 1] for s in SETS for f in IDS],
             ["project", "inference_set", "dataset", "frame_id", "split", "label_class", "pred_raw", "loss",
              "version"])  # fmt: skip
    m.migrate(EVALUATION_MIGRATIONS)
    assert _cells(m, "evaluations_by_cell") == _cells(m, "evaluations") and len(_cells(m, "evaluations")) == 2 * N
    refresher = EvaluationRefresher(m)
    refresher.refresh("p", "d", IDS, list(range(K)))  # every frame's row computed: most change cells
    assert _cells(m, "evaluations_by_cell") == _cells(m, "evaluations")

    # relabels (some to the same class), labels for unlabeled frames, new predictions: frames change cells
    relabeled = sorted(rng.choice(N, 120, replace=False).tolist())
    _labels(m, relabeled, rng.integers(0, K, len(relabeled)), "v2")
    repredicted = sorted(rng.choice(N, 150, replace=False).tolist())
    _predictions(m, "a", repredicted, rng, 2)
    refresher.refresh("p", "d", [IDS[i] for i in sorted(set(relabeled) | set(repredicted))], list(range(K)))
    refresher.refresh("p", "d", [IDS[i] for i in relabeled[:30]], list(range(K)))  # a redelivered batch
    cells = _cells(m, "evaluations_by_cell")
    assert cells == _cells(m, "evaluations")
    assert sum(1 for r in cells if r[1] >= 0 and r[2] >= 0) > 1.5 * N  # most frames are in a cell
    # a cell's rows read through its key are that cell's frames alone
    for label in range(K):
        for pred in range(K):
            got = m.query(
                "SELECT frame_id FROM evaluations_by_cell FINAL WHERE project = 'p' AND inference_set = 'a'"
                " AND dataset = 'd' AND label_key = {l:Int32} AND pred_key = {q:Int32} ORDER BY frame_id",
                {"l": label, "q": pred},
            ).rows
            want = m.query(
                "SELECT frame_id FROM evaluations FINAL WHERE project = 'p' AND inference_set = 'a' AND dataset = 'd'"
                " AND label_class = {l:Int32} AND pred_raw = {q:Int32} ORDER BY frame_id",
                {"l": label, "q": pred},
            ).rows
            assert got == want, (label, pred)
    _below_a_threshold_read_from_the_sort_by_confidence(m, monkeypatch)
    _pages_by_class_read_cell_by_cell(m, monkeypatch)


def _below_a_threshold_read_from_the_sort_by_confidence(m: EmbeddedMetricsStore, mp: pytest.MonkeyPatch) -> None:
    """By predicted class at a threshold, the frames below it (the class -1) are read from the first rows of the
    set's kept sort by confidence when at most BELOW_FROM_LISTING are, else (the store refuses the wider read) from
    the set in frame id order: every page the same as the set's own sort either way."""
    from shoal.analysis import datapoints, grid_orders
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.common.data.answers import AnswerCache
    from shoal.common.data.query import VIEW_TABLES, View
    from shoal.common.v1 import common_pb2 as cpb

    m.migrate(grid_orders.MIGRATIONS)
    at_zero, answers = View("p", "d", "a", tuple(range(K)), {}, 0.0), AnswerCache(m, max_answers=0)
    versions = answers.versions(VIEW_TABLES)
    assert versions is not None
    while not grid_orders.keep(m, at_zero, versions)[1]:
        pass
    listing_reads: list[bool] = []  # each read of the sort's rows below the threshold: whether the store read it
    query = m.query

    def spied(sql: str, *args: object, **kwargs: object) -> object:
        if "grid_listings" not in sql or "_key <" not in sql:
            return query(sql, *args, **kwargs)
        try:
            found = query(sql, *args, **kwargs)
        except Exception:
            listing_reads.append(False)
            raise
        listing_reads.append(True)
        return found

    mp.setattr(m, "query", spied)
    for most, read in ((datapoints.BELOW_FROM_LISTING, True), (1, False)):
        mp.setattr(datapoints, "BELOW_FROM_LISTING", most)
        for descending in (False, True):
            view, sort = replace(at_zero, confidence_threshold=0.5), [apb.SortKey(field="predicted_class",
                                                                                   descending=descending)]  # fmt: skip
            sql, params = datapoints.page_statement(view, cpb.Filter(), sort, {}, N, None)[:2]
            want = [str(r[0]) for r in m.query(sql, params).rows]
            got, token = [], ""
            listing_reads.clear()
            for _ in range(N):
                page = datapoints.query_datapoints(m, view, cpb.Filter(), sort, 37, token, scope="b", answers=answers)
                got += [r.frame_id for r in page.rows]
                token = page.next_token
                if not token:
                    break
            assert got == want and -1 in {int(r[4]) for r in m.query(sql, params).rows}, (most, descending)
            assert listing_reads and set(listing_reads) == {read}, (most, descending, listing_reads)
    mp.setattr(m, "query", query)


def _pages_by_class_read_cell_by_cell(m: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The grid sorted by labeled or predicted class is read class by class from the cells: every page, walked with
    its cursor, with or without a filter, up or down, holds the rows the set's own sort gives (the class, then the
    frame id; no frame without the class), and the count is the same."""
    from shoal.analysis import datapoints
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.common.data.query import View
    from shoal.common.v1 import common_pb2 as cpb

    def eq(field: str, value: object) -> cpb.Condition:
        v = cpb.Value(bool_value=value) if isinstance(value, bool) else \
            cpb.Value(number_value=value) if isinstance(value, int) else cpb.Value(string_value=str(value))  # fmt: skip
        return cpb.Condition(field=field, equals=v)

    filters = ([], [eq("split", "val")], [eq("correct", False)], [eq("correct", True)], [eq("label_class", 2)],
               [eq("label_class", 1), eq("predicted_class", 3)], [eq("predicted_class", 0), eq("split", "train")])  # fmt: skip
    read = lambda: datapoints.CELL_PAGES._value.get()  # noqa: E731
    # (threshold, sort field, descending, filters): the filters with both sorts at 0, up and down; at a threshold
    questions = [(0.0, f, d, conditions) for f in ("label_class", "predicted_class") for d in (False, True)
                 for conditions in (filters[::2] if d else filters[1::2])]  # fmt: skip
    # at a threshold: below it a frame's predicted class is -1 whatever its cell (read from the set in frame id order)
    questions += [(0.3, "label_class", False, filters[2]), (0.3, "predicted_class", True, filters[0])]
    questions += [(0.5, "predicted_class", d, conditions) for d in (False, True) for conditions in filters]
    for threshold, field, descending, conditions in questions:
        view = View("p", "d", "a", tuple(range(K)), {}, threshold)
        sort, flt = [apb.SortKey(field=field, descending=descending)], cpb.Filter(all=conditions)
        sql, params, _, count_sql, count_params = datapoints.page_statement(view, flt, sort, {}, N, None)
        want = [str(r[0]) for r in m.query(sql, params).rows]
        before, got, token = read(), [], ""
        for _ in range(N):  # a cursor that does not move fails, not loops
            page = datapoints.query_datapoints(m, view, flt, sort, 23, token, scope="cells")
            assert page.total == len(want) == m.query(count_sql, count_params).scalar()
            got += [r.frame_id for r in page.rows]
            token = page.next_token
            if not token:
                break
        where = (threshold, field, descending, [str(c) for c in conditions])
        assert got == want and len(want) > 0, where
        assert read() > before, where
        if threshold == 0.5 and not conditions:  # the class -1 first (last, down)
            assert [r[4] for r in m.query(sql, params).rows][-1 if descending else 0] == -1
    # more classes than CELL_CLASSES_AT_MOST: by predicted class of any labeled class the set is sorted (a predicted
    # class's cells lie one under each labeled class); by labeled class, or predicted of one labeled class or on the
    # diagonal, the class's cells lie together: read class by class still
    monkeypatch.setattr(datapoints, "CELL_CLASSES_AT_MOST", K - 1)
    view = View("p", "d", "a", tuple(range(K)), {}, 0.0)
    for field, conditions, by_class in (("label_class", [], True), ("predicted_class", [eq("label_class", 1)], True),
                                        ("predicted_class", [eq("correct", True)], True),
                                        ("predicted_class", [eq("split", "val")], False)):  # fmt: skip
        sort, flt = [apb.SortKey(field=field)], cpb.Filter(all=conditions)
        sql, params = datapoints.page_statement(view, flt, sort, {}, N, None)[:2]
        before = read()
        page = datapoints.query_datapoints(m, view, flt, sort, 31, "", scope="many")
        assert [r.frame_id for r in page.rows] == [str(r[0]) for r in m.query(sql, params).rows][:31], field
        assert (read() > before) == by_class, (field, conditions)
    monkeypatch.undo()
    # a page that would read more classes one after another than CELL_READS_AT_MOST sorts the set at once
    monkeypatch.setattr(datapoints, "CELL_READS_AT_MOST", 2)
    view, sort = View("p", "d", "a", tuple(range(K)), {}, 0.0), [apb.SortKey(field="label_class")]
    flt = cpb.Filter(all=[eq("split", "val")])
    sql, params = datapoints.page_statement(view, flt, sort, {}, N, None)[:2]
    for size, by_class in ((5, True), (N, False)):  # within the first class; over every class
        before = read()
        page = datapoints.query_datapoints(m, view, flt, sort, size, "", scope="cells")
        assert [r.frame_id for r in page.rows] == [str(r[0]) for r in m.query(sql, params).rows][:size]
        assert (read() > before) == by_class, size
