"""The grid's sorted pages of a large set kept in page order, on chDB: every page read from the kept listings
equals the page sorted from the set (ties, frames without the sort's field, pages across the end of the kept
rows, each split and the wrong predictions), and a change of the data leaves the kept rows unused until they are
written again for the new versions."""

from __future__ import annotations

import time

import numpy as np
import pytest

from shoal.analysis import datapoints, grid_orders
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data.answers import AnswerCache
from shoal.common.data.datasets import MIGRATIONS as DATASET_MIGRATIONS
from shoal.common.data.evaluations import MIGRATIONS as EVALUATION_MIGRATIONS
from shoal.common.data.evaluations import EvaluationRefresher
from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
from shoal.common.data.query import VIEW_TABLES, View
from shoal.common.stores.metrics import EmbeddedMetricsStore
from shoal.common.v1 import common_pb2

N, K = 150, 4
LIMIT = 25  # rows kept per listing: pages past them are sorted from the set
IDS = [f"f{i:04d}" for i in range(N)]
SPLITS = ("train", "val", "test")
VIEW = View("p", "d", "a", tuple(range(K)), {f"c{i}": i for i in range(K)}, 0.0)
SCOPES = [(), (("split", "train"),), (("split", "val"),), (("split", "test"),), (("correct", False),),
          (("label_class", 2),)]  # fmt: skip
CLASS_LIMIT = 12  # rows kept of a class's listings (grid_orders.KEPT_CLASS)
LABEL_COLUMNS = ["project", "dataset", "frame_id", "label_version", "version_time", "class_id", "num_objects",
                 "source", "author", "reason", "upload_id"]  # fmt: skip


def _labels(m: EmbeddedMetricsStore, frames: list[int], classes: np.ndarray, version: int) -> None:
    rows = [["p", "d", IDS[i], f"v{version}", f"2026-01-0{version} 00:00:00", int(c), 0, "up", "", "", "u"]
            for i, c in zip(frames, classes, strict=True)]  # fmt: skip
    m.insert("label_versions", rows, LABEL_COLUMNS)


@pytest.fixture
def store(embedded_metrics: EmbeddedMetricsStore) -> EmbeddedMetricsStore:
    m, rng = embedded_metrics, np.random.default_rng(11)
    m.migrate((*DATASET_MIGRATIONS, *FRAME_MIGRATIONS, *EVALUATION_MIGRATIONS, *grid_orders.MIGRATIONS))
    m.insert("inference_sets", [["p", "a", "d", "m", "1", "", "2026-01-01 00:00:00", 1]],
             ["project", "name", "dataset", "model_name", "model_version", "description", "create_time", "version"])  # fmt: skip
    m.insert("frames", [["p", "d", f, SPLITS[i % 3], f"s3://b/{f}", 1] for i, f in enumerate(IDS)],
             ["project", "dataset", "frame_id", "split", "media_uri", "version"])  # fmt: skip
    _labels(m, list(range(N - 20)), rng.integers(0, K, N - 20), 1)  # the last 20 unlabeled: no loss
    # few distinct probabilities: the loss, confidence and margin tie, and ties go by frame id
    probs = rng.integers(1, 4, (N - 10, K)).astype(np.float32)
    probs /= probs.sum(1, keepdims=True)
    m.insert("inferences", [["p", "a", "d", IDS[i], int(q.argmax()), float(q.max()), q.tolist(), 0, "u", 1]
                            for i, q in enumerate(probs)],  # the last 10 without a prediction
             ["project", "inference_set", "dataset", "frame_id", "pred_class", "confidence", "probs", "num_objects",
              "upload_id", "version"])  # fmt: skip
    EvaluationRefresher(m).refresh("p", "d", IDS, list(range(K)))
    return m


def _walk(m: EmbeddedMetricsStore, flt: common_pb2.Filter, field: str, descending: bool, size: int,
          answers: AnswerCache | None) -> list[tuple[list[tuple[object, ...]], str, int]]:  # fmt: skip
    """Every page of the query: its rows (frame id and the fields shown), its token and its count."""
    pages, token = [], ""
    while True:
        page = datapoints.query_datapoints(m, VIEW, flt, [pb.SortKey(field=field, descending=descending)], size,
                                           token, scope="grid", answers=answers)  # fmt: skip
        rows = [(r.frame_id, r.split, r.label_class, r.predicted_class, r.confidence, r.loss, r.margin,
                 r.probabilities, r.media_uri) for r in page.rows]  # fmt: skip
        pages.append((rows, page.next_token, page.total))
        token = page.next_token
        if not token:
            return pages


def test_pages_from_the_kept_listings_equal_the_pages_sorted_from_the_set(
    store: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = store
    monkeypatch.setattr(grid_orders, "KEPT_CLASS", CLASS_LIMIT)
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None
    want = {
        (scope, field, d, size): _walk(m, grid_orders.equalities(scope), field, d, size, None)
        for scope in SCOPES
        for field in grid_orders.FIELDS
        for d in (False, True)
        for size in (9,)
    }
    assert all(len(p) > 2 for p in want.values())  # several pages each, past the kept rows
    # a round that stops at its deadline goes on in the next
    assert grid_orders.keep(m, VIEW, versions, SCOPES, limit=LIMIT, deadline=time.monotonic()) == (0, False)
    written, complete = grid_orders.keep(m, VIEW, versions, SCOPES, limit=LIMIT)
    assert complete and written == len(SCOPES) * len(grid_orders.FIELDS) * 2
    assert grid_orders.keep(m, VIEW, versions, SCOPES, limit=LIMIT) == (0, True)
    for (scope, field, d, size), pages in want.items():
        assert _walk(m, grid_orders.equalities(scope), field, d, size, AnswerCache(m)) == pages, (scope, field, d, size)

    # the listings answer the pages within their kept rows, and leave those past them to the set
    for scope in SCOPES:
        for field in grid_orders.FIELDS:
            for d in (False, True):
                sort = [pb.SortKey(field=field, descending=d)]
                last, read, limit = None, 0, CLASS_LIMIT if scope and scope[0][0] == "label_class" else LIMIT
                while True:
                    sql, params, *_ = datapoints.page_statement(VIEW, grid_orders.equalities(scope), sort, {}, 9, last)
                    live = [tuple(r) for r in m.query(sql, params).rows]
                    kept = grid_orders.page(m, VIEW, versions, field, d, scope, 9, last)
                    if read + len(live) <= limit:
                        assert kept == live, (scope, field, d, read)
                    else:
                        assert kept is None, (scope, field, d, read)
                    if len(live) <= 9:
                        break
                    read += 9
                    last = [live[8][14], live[8][15]]
    # a second replica that writes the same build (before it saw the first's listings) shows no row twice
    m.command("TRUNCATE TABLE grid_order_listings")
    assert grid_orders.keep(m, VIEW, versions, SCOPES, limit=LIMIT) == (written, True)
    for scope in SCOPES:
        assert (
            _walk(m, grid_orders.equalities(scope), "loss", True, 9, AnswerCache(m)) == want[(scope, "loss", True, 9)]
        )
    # a query of another filter, sort or view reads the set
    assert grid_orders.usable(VIEW, [pb.SortKey(field="frame_id")], grid_orders.equalities(())) is None
    assert grid_orders.usable(
        VIEW, [pb.SortKey(field="loss")], grid_orders.equalities((("split", "val"), ("correct", True)))
    )
    assert grid_orders.page(m, VIEW, versions, "loss", False, (("correct", True),), 9, None) is None
    other = View("p", "d", "a", VIEW.ontology, VIEW.class_names, 0.5)
    assert grid_orders.page(m, other, versions, "loss", False, (), 9, None) is None


def test_a_change_of_the_data_leaves_the_kept_pages_unused_until_written_again(store: EmbeddedMetricsStore) -> None:
    m, rng = store, np.random.default_rng(5)
    before = AnswerCache(m).versions(VIEW_TABLES)
    assert before is not None
    assert grid_orders.keep(m, VIEW, before, SCOPES, limit=LIMIT)[1]
    # relabel a third of the frames: losses change, and some predictions turn right or wrong
    relabeled = sorted(rng.choice(N - 20, N // 3, replace=False).tolist())
    _labels(m, relabeled, rng.integers(0, K, len(relabeled)), 2)
    EvaluationRefresher(m).refresh("p", "d", [IDS[i] for i in relabeled], list(range(K)))
    after = AnswerCache(m).versions(VIEW_TABLES)
    assert after is not None and after != before
    assert grid_orders.page(m, VIEW, after, "loss", True, (), 9, None) is None
    for scope in SCOPES:
        for d in (False, True):
            assert _walk(m, grid_orders.equalities(scope), "loss", d, 9, AnswerCache(m)) == _walk(
                m, grid_orders.equalities(scope), "loss", d, 9, None
            )
    # written again for the new versions: the pages come from the new rows, and the rows before are removed
    assert grid_orders.keep(m, VIEW, after, SCOPES, limit=LIMIT)[1]
    for scope in SCOPES:
        for d in (False, True):
            live = _walk(m, grid_orders.equalities(scope), "loss", d, 9, None)
            assert grid_orders.page(m, VIEW, after, "loss", d, scope, 9, None) is not None
            assert _walk(m, grid_orders.equalities(scope), "loss", d, 9, AnswerCache(m)) == live
    builds = m.query("SELECT DISTINCT build FROM grid_orders").rows
    assert builds == [(grid_orders.build_id(VIEW, after),)]
    # a set that grew small again keeps none
    grid_orders.remove(m, VIEW)
    assert m.query("SELECT count() FROM grid_orders").scalar() == 0
    assert grid_orders.page(m, VIEW, after, "loss", True, (), 9, None) is None


def test_a_listing_without_rows_answers_an_empty_page(store: EmbeddedMetricsStore) -> None:
    """Every prediction right: the wrong predictions' listings are empty, and their pages are answered empty
    without sorting the set."""
    m = store
    m.command("ALTER TABLE evaluations UPDATE label_class = pred_raw WHERE 1 SETTINGS mutations_sync = 2")
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None
    assert grid_orders.keep(m, VIEW, versions, SCOPES, limit=LIMIT)[1]
    assert grid_orders.page(m, VIEW, versions, "loss", True, (("correct", False),), 9, None) == []
    assert _walk(m, grid_orders.equalities((("correct", False),)), "loss", True, 9, AnswerCache(m)) == [([], "", 0)]
