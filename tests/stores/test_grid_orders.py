"""The grid's sorts of a large set kept whole, on chDB: every page read from a kept sort equals the page sorted from
the set, at every depth and with any filter (ties, frames without the sort's field, splits, the wrong predictions,
a class, a confusion cell, a confidence range, a metadata value, a negated condition, and several together), a
second replica's rows are never shown twice, and a change of the data leaves the kept sorts unused until they are
written again for the new versions, or patched with the frames written since."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from shoal.analysis import classification, datapoints, grid_orders, slices
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data.answers import AnswerCache
from shoal.common.data.datasets import MIGRATIONS as DATASET_MIGRATIONS
from shoal.common.data.evaluations import MIGRATIONS as EVALUATION_MIGRATIONS
from shoal.common.data.evaluations import EvaluationRefresher
from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
from shoal.common.data.query import VIEW_TABLES, View
from shoal.common.stores.metrics import EmbeddedMetricsStore
from shoal.common.v1 import common_pb2
from tests.stores._rows import LABEL_COLUMNS, create_sets, write_labels, write_predictions

N, K = 150, 4
IDS = [f"f{i:04d}" for i in range(N)]
PAGE = 16
SPLITS = ("train", "val", "test")
VIEW = View("p", "d", "a", tuple(range(K)), {f"c{i}": i for i in range(K)}, 0.0)

#: the grid's filters: the scopes kept before, and the combinations sorted on every call before
FILTERS = {
    "every frame": (),
    "split val": (("split", "val"),),
    "wrong": (("correct", False),),
    "class 2": (("label_class", 2),),
    "split test, wrong": (("split", "test"), ("correct", False)),
    "cell 1 -> 3": (("label_class", 1), ("predicted_class", 3)),
}


def _range(field: str, lo: float | None = None, hi: float | None = None) -> common_pb2.Condition:
    r = common_pb2.Range(max_exclusive=True)
    if lo is not None:
        r.min.number_value = lo
    if hi is not None:
        r.max.number_value = hi
    return common_pb2.Condition(field=field, range=r)


def _is(field: str, negate: bool = False, **value: object) -> common_pb2.Condition:
    return common_pb2.Condition(field=field, equals=common_pb2.Value(**value), negate=negate)  # type: ignore[arg-type]


OTHER_FILTERS = {
    "confidence in [0.3, 0.5)": common_pb2.Filter(all=[_range("confidence", 0.3, 0.5)]),
    "camera front, not train": common_pb2.Filter(
        all=[_is("metadata.camera", string_value="front"), _is("split", negate=True, string_value="train")]
    ),
    "labeled, right, loss above 0.9": common_pb2.Filter(
        all=[_is("labeled", bool_value=True), _is("correct", bool_value=True), _range("loss", lo=0.9)]
    ),
}


def _filters() -> dict[str, common_pb2.Filter]:
    return {**{k: grid_orders.equalities(v) for k, v in FILTERS.items()}, **OTHER_FILTERS}


def _captured(i: int) -> datetime | None:
    """Frame ``i``'s capture time: one of 40 minutes, so that frames tie (one in eleven has none)."""
    return (
        None if i % 11 == 0 else datetime(2026, 3, 5, 9, tzinfo=UTC) + timedelta(minutes=i * 7 % 40, milliseconds=i % 2)
    )


def _labels(m: EmbeddedMetricsStore, frames: list[int], classes: np.ndarray, version: int) -> None:
    write_labels(m, [IDS[i] for i in frames], classes, version)


@pytest.fixture
def store(embedded_metrics: EmbeddedMetricsStore) -> EmbeddedMetricsStore:
    m, rng = embedded_metrics, np.random.default_rng(11)
    m.migrate((*DATASET_MIGRATIONS, *FRAME_MIGRATIONS, *EVALUATION_MIGRATIONS, *grid_orders.MIGRATIONS))
    create_sets(m, ["a"])
    m.insert("frames", [["p", "d", f, SPLITS[i % 3], f"s3://b/{f}", {"camera": ("front", "rear")[i % 5 == 0]},
                         _captured(i), 640 + i, 480 - i, 1] for i, f in enumerate(IDS)],
             ["project", "dataset", "frame_id", "split", "media_uri", "meta_str", "capture_time", "width", "height",
              "version"])  # fmt: skip
    _labels(m, list(range(N - 20)), rng.integers(0, K, N - 20), 1)  # the last 20 unlabeled: no loss
    # few distinct probabilities: the loss, confidence and margin tie, and ties go by frame id
    probs = rng.integers(1, 4, (N - 10, K)).astype(np.float32)
    probs /= probs.sum(1, keepdims=True)
    write_predictions(m, "a", IDS[: N - 10], probs)  # the last 10 without a prediction
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
                 r.probabilities, r.media_uri, r.metadata, r.width, r.height) for r in page.rows]  # fmt: skip
        pages.append((rows, page.next_token, page.total))
        token = page.next_token
        if not token:
            return pages
        assert len(pages) <= 2 * N, "the pages never end: a page's cursor does not move past its rows"


def _kept_pages() -> float:
    return datapoints.SORTED_PAGES.labels("kept")._value.get()


def test_pages_from_the_kept_sorts_equal_the_pages_sorted_from_the_set(
    store: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = store
    monkeypatch.setattr(grid_orders, "SPARSE", 10**9)  # a class and a cell read the sorts as well
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None
    want = {
        (name, field, d): _walk(m, flt, field, d, PAGE, None)
        for name, flt in _filters().items()
        for field in grid_orders.SORTED_FIELDS
        for d in (False, True)
    }
    assert all(pages[0][0] for pages in want.values())  # no filter leaves the grid empty
    assert sum(len(p) > 2 for p in want.values()) > len(want) // 2  # most run to several pages
    # a round that stops at its deadline goes on in the next
    assert grid_orders.keep(m, VIEW, versions, deadline=time.monotonic()) == (0, False)
    written, complete = grid_orders.keep(m, VIEW, versions)
    assert complete and written == len(grid_orders.LISTINGS) == len(grid_orders.SORTED_FIELDS) * 2
    assert grid_orders.keep(m, VIEW, versions) == (0, True)
    before = _kept_pages()
    for (name, field, d), pages in want.items():
        assert _walk(m, _filters()[name], field, d, PAGE, AnswerCache(m)) == pages, (name, field, d)
    assert _kept_pages() - before == sum(len(p) for p in want.values())  # every page read from a kept sort

    # each page of a kept sort is the page the set's statement reads, rows and cursor values alike
    for name, flt in _filters().items():
        for field in grid_orders.SORTED_FIELDS:
            for d in (False, True):
                sort = [pb.SortKey(field=field, descending=d)]
                last = None
                while True:
                    sql, params, *_ = datapoints.page_statement(VIEW, flt, sort, {}, PAGE, last)
                    live = [tuple(r) for r in m.query(sql, params).rows]
                    kept = grid_orders.page(m, VIEW, versions, field, d, flt, PAGE, last)
                    assert kept is not None and [r[:-2] for r in kept] == live, (name, field, d)
                    if len(live) <= PAGE:
                        break
                    last = [live[PAGE - 1][14], live[PAGE - 1][15]]

    # a second replica that writes the same build (before it saw the first's listings) shows no row twice
    m.command("TRUNCATE TABLE grid_listing_builds")
    assert grid_orders.keep(m, VIEW, versions) == (written, True)
    assert int(m.query("SELECT count() FROM grid_listings").scalar()) > 6 * N  # each row written twice
    for name in ("every frame", "wrong", "split test, wrong"):
        for d in (False, True):
            assert _walk(m, _filters()[name], "loss", d, PAGE, AnswerCache(m)) == want[(name, "loss", d)], (name, d)
    # a query of another sort or view reads the set
    assert grid_orders.usable(VIEW, [pb.SortKey(field="frame_id")]) is None
    assert grid_orders.usable(VIEW, [pb.SortKey(field="loss"), pb.SortKey(field="margin")]) is None
    assert grid_orders.usable(VIEW, [pb.SortKey(field="margin", descending=True)]) == ("margin", True)
    other = View("p", "d", "a", VIEW.ontology, VIEW.class_names, 0.5)
    assert grid_orders.page(m, other, versions, "loss", False, common_pb2.Filter(), 9, None) is None


def test_a_small_cell_is_sorted_from_its_own_rows(store: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A class of few frames in a large set is read from its cell, not from a sort it is a small part of; a filter
    as selective that keeps to no cell is read from the sort."""
    m = store
    monkeypatch.setattr(grid_orders, "SPARSE", 10)  # the listings hold 130 to 140 rows: the class has fewer than 14
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None and grid_orders.keep(m, VIEW, versions)[1]
    cell = grid_orders.equalities((("label_class", 1), ("predicted_class", 3), ("split", "val")))
    before = _kept_pages()
    assert _walk(m, cell, "loss", True, 4, AnswerCache(m)) == _walk(m, cell, "loss", True, 4, None)
    assert _kept_pages() == before
    rare = common_pb2.Filter(all=[_range("loss", lo=1.5), _is("metadata.camera", string_value="rear")])
    pages = _walk(m, rare, "loss", True, 4, AnswerCache(m))
    assert pages == _walk(m, rare, "loss", True, 4, None) and 0 < pages[0][2] < 14
    assert _kept_pages() == before + len(pages)


def _patched() -> float:
    return grid_orders.PATCHED._value.get()


def _probs(m: EmbeddedMetricsStore, frames: list[str]) -> list[list[float]]:
    rows = dict(m.query("SELECT frame_id, probs FROM evaluations FINAL WHERE frame_id IN {f:Array(String)}",
                        {"f": frames}).rows)  # fmt: skip
    return [list(rows[f]) for f in frames]


def _live_count(m: EmbeddedMetricsStore, flt: common_pb2.Filter, sort: list[pb.SortKey]) -> int:
    """The grid's count of the filter, sorted so, read from the set."""
    return int(m.query(*datapoints.page_statement(VIEW, flt, sort, {}, 1, None)[3:]).scalar())


def _present(m: EmbeddedMetricsStore) -> Callable[[list[str]], int]:
    """The set's frames with all the fields (``range_count``'s ``present``)."""
    return lambda fields: _live_count(m, common_pb2.Filter(), [pb.SortKey(field=f) for f in fields])


def test_a_change_of_the_data_is_patched_until_the_sorts_are_written_again(
    store: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upload the kept sorts are not read as they are; patched with the frames written since (relabelled,
    unlabelled, new) they answer every page and the slider's counts (with a split, a class or the wrong predictions
    too) as the set sorted and counted now does, until
    the sorts of the new rows are written, which removes the build before and its patch; each upload patches the
    same build again, and a mutation of the table is not patched."""
    m, rng = store, np.random.default_rng(8)
    before = AnswerCache(m).versions(VIEW_TABLES)
    assert before is not None and grid_orders.keep(m, VIEW, before)[1]
    assert grid_orders.block_numbers(m)  # the table keeps each row's block number from now on
    assert grid_orders.patch(m, VIEW, before) == 0  # the sorts are written: nothing to patch
    # an upload: a tenth of the frames relabelled, two unlabelled (no loss now), and 12 new frames
    relabeled = sorted(rng.choice(N - 20, N // 10, replace=False).tolist())
    _labels(m, relabeled, rng.integers(0, K, len(relabeled)), 2)
    m.insert("label_versions", [["p", "d", IDS[i], "v3", "2026-01-03 00:00:00", None, 0, "up", "", "", "u"]
                                for i in (0, 1)], LABEL_COLUMNS)  # fmt: skip
    new = [f"g{i:03d}" for i in range(12)]
    m.insert("frames", [["p", "d", f, SPLITS[i % 3], f"s3://b/{f}", {"camera": "front"}, _captured(i + 3), 320, 240,
                         1] for i, f in enumerate(new)],
             ["project", "dataset", "frame_id", "split", "media_uri", "meta_str", "capture_time", "width", "height",
              "version"])  # fmt: skip
    write_labels(m, new, rng.integers(0, K, len(new)), 1)
    probs = rng.integers(1, 4, (len(new), K)).astype(np.float32)
    write_predictions(m, "a", new, probs / probs.sum(1, keepdims=True))
    EvaluationRefresher(m).refresh("p", "d", [IDS[i] for i in (0, 1, *relabeled)] + new, list(range(K)))
    after = AnswerCache(m).versions(VIEW_TABLES)
    assert after is not None and after != before
    assert grid_orders.page(m, VIEW, after, "loss", True, common_pb2.Filter(), 9, None) is None  # not yet patched
    # the 29 frames written are more than a tenth of the sorts' 140: a patch would cost what writing them does
    monkeypatch.setattr(grid_orders, "PATCHED_SHARE", 0.1)
    assert grid_orders.patch(m, VIEW, after) == 0
    monkeypatch.setattr(grid_orders, "PATCHED_SHARE", 0.5)  # this small set's two uploads: 41 of its 140 frames
    assert grid_orders.patch(m, VIEW, after) == 2 + len(grid_orders.LISTINGS)  # the frames, their rows, each sort
    assert grid_orders.patch(m, VIEW, after) == 0  # written once
    written = {IDS[i] for i in (0, 1, *relabeled)} | set(new)

    def changed() -> set[str]:  # the frames the patch holds
        return {str(r[0]) for r in m.query("SELECT frame_id FROM grid_listings WHERE listing = 'changed'").rows}

    assert changed() == written  # the frames written since the build, no other

    def check(versions: tuple[object, ...], walked: dict[str, list[tuple[str, bool]]]) -> None:
        for name, sorts in walked.items():
            flt = _filters()[name]
            for field, d in sorts:
                before_pages = _patched()
                pages = _walk(m, flt, field, d, 2 * PAGE, AnswerCache(m))
                assert pages == _walk(m, flt, field, d, 2 * PAGE, None), (name, field, d)
                assert _patched() - before_pages >= len(pages)  # every page read through the patch (and a count)
        present = _present(m)
        for field in grid_orders.FIELDS:
            for lo, hi in ((0.2, 0.6), (None, 0.9), (0.5, None)):
                flt = common_pb2.Filter(all=[_range(field, lo, hi)])
                for sort in ([], [pb.SortKey(field="margin", descending=True)]):
                    got = grid_orders.range_count(m, VIEW, versions, flt, sort, present)
                    assert got == _live_count(m, flt, sort), (field, lo, hi, sort)
        # with a split, a class or the wrong predictions: the build's counts by bucket, less the changed frames'
        # rows there, plus theirs now
        patched = _patched()
        for name, besides in BESIDES.items():
            for field in grid_orders.FIELDS:
                flt = common_pb2.Filter(all=[*besides, _range(field, 0.2, 0.6)])
                got = grid_orders.range_count(m, VIEW, versions, flt, [], present)
                assert got == _live_count(m, flt, []), (name, field)
        assert _patched() - patched == len(BESIDES) * len(grid_orders.FIELDS)
        # what the counts do not answer, with a narrow range: the build's rows in it less the changed frames, plus
        # the patch's
        patched = grid_orders.ROWS_COUNTED.labels("patched")._value.get()
        assert _rows_counts_hold(m, versions) == 2 * len(NARROW)
        assert grid_orders.ROWS_COUNTED.labels("patched")._value.get() - patched == 2 * len(NARROW)
        # the metrics at a threshold: the build's counts below it, less the changed frames' rows there, plus theirs
        patched = _patched()
        assert _thresholds_hold(m, versions, [0.4]) == 2 * len(AT_THRESHOLD)
        assert _patched() - patched == 2 * len(AT_THRESHOLD)

    # every filter by the worst loss first (the unlabelled frames left its sorts), and every sort of every frame
    every = [(field, d) for field in grid_orders.SORTED_FIELDS for d in (False, True)]
    check(after, {name: [("loss", True)] for name in _filters()} | {"every frame": every})
    # the next upload, of the worst losses relabelled as predicted (the first rows of the sort written, one after
    # another), patches the same build again (the frames written since it), and the patch before goes
    worst = [str(r[0]) for r in m.query("SELECT frame_id FROM grid_listings WHERE listing = 'loss desc' AND build ="
                                        " {b:String} ORDER BY key, frame_id LIMIT 12",
                                        {"b": grid_orders.build_id(VIEW, before)}).rows]  # fmt: skip
    relabeled = [IDS.index(f) for f in worst]
    _labels(m, relabeled, [int(np.argmax(probs)) for probs in _probs(m, worst)], 4)
    EvaluationRefresher(m).refresh("p", "d", worst, list(range(K)))
    later = AnswerCache(m).versions(VIEW_TABLES)
    assert later is not None and grid_orders.patch(m, VIEW, later) > 0
    assert changed() == written | set(worst)
    check(later, {"every frame": [("loss", True), ("margin", False)], "split test, wrong": [("confidence", False)]})
    # pages of three: the first rows of the sort written are all left out, the page's frames found past them by the
    # reader, or (a patch of more frames than NARROW_ROWS) by the statement
    live = _walk(m, common_pb2.Filter(), "loss", True, 3, None)
    assert _walk(m, common_pb2.Filter(), "loss", True, 3, AnswerCache(m)) == live
    monkeypatch.setattr(grid_orders, "NARROW_ROWS", 5)
    assert _walk(m, common_pb2.Filter(), "loss", True, 3, AnswerCache(m)) == live
    builds = {r[0] for r in m.query("SELECT DISTINCT build FROM grid_listings").rows}
    assert len(builds) == 2 and grid_orders.build_id(VIEW, before) in builds
    # the sorts of the rows now written: the build before and its patch go
    assert grid_orders.keep(m, VIEW, later)[1]
    assert m.query("SELECT DISTINCT build FROM grid_listings").rows == [(grid_orders.build_id(VIEW, later),)]
    # a mutation rewrote rows without new blocks: read from the set until the sorts are written again
    m.command("ALTER TABLE evaluations UPDATE loss = loss / 2 WHERE frame_id < 'f0050' SETTINGS mutations_sync = 2")
    mutated = AnswerCache(m).versions(VIEW_TABLES)
    assert mutated is not None and grid_orders.patch(m, VIEW, mutated) == 0
    assert grid_orders.page(m, VIEW, mutated, "loss", True, common_pb2.Filter(), 9, None) is None
    # a set that grew small again keeps none
    grid_orders.remove(m, VIEW)
    assert m.query("SELECT count() FROM grid_listings").scalar() == 0
    assert m.query("SELECT count() FROM grid_listing_builds").scalar() == 0
    assert grid_orders.page(m, VIEW, later, "loss", True, common_pb2.Filter(), 9, None) is None


def test_a_build_cut_short_is_removed_with_the_next(store: EmbeddedMetricsStore) -> None:
    """A server stopped while it wrote a build leaves rows no page reads: the next build removes them."""
    m = store
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None
    stopped = grid_orders.build_id(View("p", "d", "a", VIEW.ontology, VIEW.class_names, 0.25), versions)
    m.insert("grid_listing_builds", [["p", "a", "d", stopped, "", 0]],
             ["project", "inference_set", "dataset", "build", "listing", "rows"])  # fmt: skip
    m.insert("grid_listings", [["p", "a", "d", stopped, "loss asc", 0.5, "f0001"]],
             ["project", "inference_set", "dataset", "build", "listing", "key", "frame_id"])  # fmt: skip
    assert grid_orders.keep(m, VIEW, versions)[1]
    assert m.query("SELECT DISTINCT build FROM grid_listings").rows == [(grid_orders.build_id(VIEW, versions),)]


def test_a_filter_no_frame_passes_answers_an_empty_page(store: EmbeddedMetricsStore) -> None:
    """Every prediction right: the wrong predictions' pages are answered empty from the kept sorts, and the grid's,
    counted first, reads no page at all."""
    m = store
    m.command("ALTER TABLE evaluations UPDATE label_class = pred_raw WHERE 1 SETTINGS mutations_sync = 2")
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None
    assert grid_orders.keep(m, VIEW, versions)[1]
    wrong = grid_orders.equalities((("correct", False),))
    assert grid_orders.page(m, VIEW, versions, "loss", True, wrong, 9, None) == []
    before = _kept_pages()
    assert _walk(m, wrong, "loss", True, 9, AnswerCache(m)) == [([], "", 0)]
    assert _kept_pages() == before


def test_a_range_of_a_kept_sorts_field_is_counted_through_the_sorts_key(store: EmbeddedMetricsStore) -> None:
    """The grid's slider (one range on loss, confidence or margin) counts its frames from the key's range of the
    field's sort: the count the set's statement gives, bounds in or out, sorted by any kept field or frame id; any
    other filter, or a sort written twice, is counted from the set."""
    m = store
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None and grid_orders.keep(m, VIEW, versions)[1]

    present = _present(m)

    counted = 0
    for field in grid_orders.FIELDS:
        values = sorted({float(v) for v in m.query(f"SELECT {field} FROM evaluations WHERE {field} IS NOT NULL").rows
                         for v in v})  # fmt: skip
        for lo, hi in ((values[1], values[-2]), (values[0], None), (None, values[len(values) // 2]), (-1e9, 1e9)):
            for lo_out, hi_out in ((False, False), (True, True), (False, True)):
                r = common_pb2.Range(min_exclusive=lo_out, max_exclusive=hi_out)
                if lo is not None:
                    r.min.number_value = lo
                if hi is not None:
                    r.max.number_value = hi
                flt = common_pb2.Filter(all=[common_pb2.Condition(field=field, range=r)])
                for sort in ([], [pb.SortKey(field="loss", descending=True)], [pb.SortKey(field="margin")]):
                    got = grid_orders.range_count(m, VIEW, versions, flt, sort, present)
                    assert got == _live_count(m, flt, sort), (field, lo, hi, lo_out, hi_out, sort)
                    counted += 1
    assert counted == 3 * 4 * 3 * 3
    # the page's count goes the same way, and agrees
    flt = common_pb2.Filter(all=[_range("confidence", 0.3, 0.5)])
    page = datapoints.query_datapoints(m, VIEW, flt, [pb.SortKey(field="loss")], 5, "", scope="s",
                                       answers=AnswerCache(m))  # fmt: skip
    assert page.total == _live_count(m, flt, [pb.SortKey(field="loss")]) > 0
    # not a single range of numbers on a kept field, or sorted by another field: the set's count
    for other, sort in ((OTHER_FILTERS["camera front, not train"], []),
                        (common_pb2.Filter(all=[_range("loss", 0.5), _range("confidence", 0.3)]), []),
                        (common_pb2.Filter(all=[_range("loss", 0.5), _is("metadata.camera", string_value="front")]),
                         []),
                        (common_pb2.Filter(all=[common_pb2.Condition(field="confidence", range=common_pb2.Range(
                            min=common_pb2.Value(number_value=0.3)), negate=True)]), []),
                        (flt, [pb.SortKey(field="capture_time")])):  # fmt: skip
        assert grid_orders.range_count(m, VIEW, versions, other, sort, present) is None
    # a sort written twice (two replicas) holds more rows than frames: the set's count
    m.command("TRUNCATE TABLE grid_listing_builds")
    assert grid_orders.keep(m, VIEW, versions)[1]
    assert grid_orders.range_count(m, VIEW, versions, flt, [], present) is None


def _captured_between(low: datetime, high: datetime) -> common_pb2.Condition:
    r = common_pb2.Range(max_exclusive=True)
    r.min.timestamp_value.FromDatetime(low)
    r.max.timestamp_value.FromDatetime(high)
    return common_pb2.Condition(field="capture_time", range=r)


#: conditions beside a range that a sort's counts by bucket answer
BESIDES = {
    "split val": [_is("split", string_value="val")],
    "not train": [_is("split", negate=True, string_value="train")],
    "split in train, test": [common_pb2.Condition(field="split", **{"in": common_pb2.ValueList(values=[
        common_pb2.Value(string_value="train"), common_pb2.Value(string_value="test")])})],
    "class 2": [_is("label_class", number_value=2)],
    "predicted c1, by name": [_is("predicted_class", string_value="c1")],
    "wrong": [_is("correct", bool_value=False)],
    "labeled, right": [_is("labeled", bool_value=True), _is("correct", bool_value=True)],
    "cell 1 -> 3, val": [_is("label_class", number_value=1), _is("predicted_class", number_value=3),
                         _is("split", string_value="val")],
    "unlabeled": [_is("labeled", bool_value=False)],
}  # fmt: skip


@pytest.mark.parametrize("buckets", [3, grid_orders.BUCKETS])
def test_a_range_with_a_split_a_class_or_the_wrong_predictions_is_counted_by_bucket(
    store: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch, buckets: int
) -> None:
    """The slider with a split, a class, a predicted class or the wrong predictions picked counts its frames from the
    field's sort counted by bucket of its key, and the rows of the buckets its bounds fall in: the set's count, bounds
    in or out, in a bucket or on its edge (few buckets: the bounds fall inside them; many: each a value of the key),
    sorted by frame id or the range's field; counts written twice, or not at all, are not read. Those conditions
    alone are counted so too when a counted sort holds every frame of the set."""
    m = store
    monkeypatch.setattr(grid_orders, "BUCKETS", buckets)
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None and grid_orders.keep(m, VIEW, versions)[1]
    present = _present(m)
    by_bucket = grid_orders.COUNTED_BY_BUCKET._value.get()
    counted = 0
    for field in grid_orders.FIELDS:
        values = sorted(
            {float(v) for (v,) in m.query(f"SELECT {field} FROM evaluations WHERE {field} IS NOT NULL").rows}
        )
        middle = values[len(values) // 2]
        for lo, hi, lo_out, hi_out in ((values[1], values[-2], False, True), (middle, None, True, False),
                                       (None, middle, False, False), ((values[0] + values[1]) / 2, middle, False, True),
                                       (-1e9, 1e9, False, False)):  # fmt: skip
            r = common_pb2.Range(min_exclusive=lo_out, max_exclusive=hi_out)
            if lo is not None:
                r.min.number_value = lo
            if hi is not None:
                r.max.number_value = hi
            for name, besides in BESIDES.items():
                flt = common_pb2.Filter(all=[*besides, common_pb2.Condition(field=field, range=r)])
                sort = [pb.SortKey(field=field, descending=True)] if counted % 2 else []
                got = grid_orders.range_count(m, VIEW, versions, flt, sort, present)
                assert got == _live_count(m, flt, sort), (field, lo, hi, lo_out, hi_out, name, sort)
                counted += 1
    assert counted == 3 * 5 * len(BESIDES)
    assert grid_orders.COUNTED_BY_BUCKET._value.get() - by_bucket == counted
    assert m.query("SELECT uniqExact(listing) FROM grid_listing_counts").scalar() == len(grid_orders.COUNTED)
    # the page's count goes the same way
    flt = common_pb2.Filter(all=[*BESIDES["wrong"], _range("confidence", 0.3, 0.6)])
    page = datapoints.query_datapoints(m, VIEW, flt, [pb.SortKey(field="frame_id")], 5, "", scope="s",
                                       answers=AnswerCache(m))  # fmt: skip
    assert page.total == _live_count(m, flt, [pb.SortKey(field="frame_id")]) > 0
    assert grid_orders.COUNTED_BY_BUCKET._value.get() - by_bucket == counted + 1
    # counts written twice (a write cut short and written again) count more frames than the sort's: not read
    build = grid_orders.build_id(VIEW, versions)
    m.command("INSERT INTO grid_listing_counts SELECT * FROM grid_listing_counts WHERE listing = 'confidence asc'")
    assert grid_orders.range_count(m, VIEW, versions, flt, [], present) is None
    # a build written before the counts were kept: not read, and the next round writes them
    m.command(f"ALTER TABLE grid_listing_counts DROP PARTITION '{build}'")
    m.command("DELETE FROM grid_listing_builds WHERE endsWith(listing, ' counts')")
    assert grid_orders.range_count(m, VIEW, versions, flt, [], present) is None
    assert grid_orders.keep(m, VIEW, versions) == (0, True)
    assert grid_orders.range_count(m, VIEW, versions, flt, [], present) == page.total
    # the conditions alone: from a sort that holds every frame, once every frame has a prediction (its confidence)
    alone = [common_pb2.Filter(all=besides) for besides in BESIDES.values()]
    assert all(grid_orders.range_count(m, VIEW, versions, f, [], present) is None for f in alone)
    write_predictions(m, "a", IDS[N - 10 :], np.full((10, K), 1 / K, np.float32))
    EvaluationRefresher(m).refresh("p", "d", IDS[N - 10 :], list(range(K)))
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None and grid_orders.keep(m, VIEW, versions)[1]
    by_bucket = grid_orders.COUNTED_BY_BUCKET._value.get()
    for flt in alone:
        for sort in ([], [pb.SortKey(field="confidence", descending=True)]):
            assert grid_orders.range_count(m, VIEW, versions, flt, sort, present) == _live_count(m, flt, sort), flt
        # sorted by loss, which the unlabeled frames lack: the set's count
        assert grid_orders.range_count(m, VIEW, versions, flt, [pb.SortKey(field="loss")], present) is None
    assert grid_orders.COUNTED_BY_BUCKET._value.get() - by_bucket == 2 * len(alone)


#: the performance page's filters at a threshold (conditions whose frames do not change with it)
AT_THRESHOLD = {
    "every frame": [],
    "split val": [_is("split", string_value="val")],
    "not train": [_is("split", negate=True, string_value="train")],
    "class 2": [_is("label_class", number_value=2)],
    "unlabeled": [_is("labeled", bool_value=False)],
}


def _report_fields(r: classification.ClassificationReport) -> tuple[object, ...]:
    return (r.frames, r.abstained, r.accuracy, r.top_k_accuracy, r.macro, r.weighted, r.per_class,
            r.confusion.tolist(), r.class_ids, r.ece, r.bins, r.omitted_classes)  # fmt: skip


def _thresholds_hold(m: EmbeddedMetricsStore, versions: tuple[object, ...], thresholds: list[float]) -> int:
    """At each threshold, the report and the slices by split derived from those at 0 and the confidence sort's counts
    equal those read from the set at the threshold, for each of the page's filters; returns how many were derived."""
    derived = 0
    for name, conditions in AT_THRESHOLD.items():
        flt = common_pb2.Filter(all=conditions)
        zero = classification.classification_report(m, VIEW, flt)
        by_split = slices.slices(m, VIEW, flt, group_by="split")[2]
        for t in thresholds:
            at = replace(VIEW, confidence_threshold=t)
            found = grid_orders.below_threshold(m, VIEW, versions, flt, t, ("label_class", "predicted_class"))
            assert found is not None, (name, t)
            every, below = found
            assert sum(n for (label, _), n in every.items() if label is not None) == sum(b.count for b in zero.bins)
            got = classification.at_threshold(zero, list(VIEW.ontology), below)
            assert _report_fields(got) == _report_fields(classification.classification_report(m, at, flt)), (name, t)
            found = grid_orders.below_threshold(m, VIEW, versions, flt, t, ("split", "correct"))
            assert found is not None
            right = {str(split): n for (split, correct), n in found[1].items() if correct}
            got_slices = slices.at_threshold(by_split, right, slices.DEFAULT_MIN_SUPPORT, slices.DEFAULT_LEVEL)
            assert got_slices == slices.slices(m, at, flt, group_by="split"), (name, t)
            derived += 2
    return derived


@pytest.mark.parametrize("buckets", [3, grid_orders.BUCKETS])
def test_the_metrics_at_a_threshold_are_those_at_0_with_the_frames_below_it_abstaining(
    store: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch, buckets: int
) -> None:
    """The classification report and the slices by split at a confidence threshold, of every frame, a split or a
    class, are those at 0 with the frames below the threshold counted from the confidence sort's counts by bucket
    abstaining: equal to those read from the set at the threshold, at every confidence of the set (a bucket's edge,
    or inside one of few buckets), between two, below the lowest and above the highest. A filter of a predicted class
    or of correctness (whose frames change with the threshold), a view at a threshold, or counts not written: not
    derived."""
    m = store
    monkeypatch.setattr(grid_orders, "BUCKETS", buckets)
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None and grid_orders.keep(m, VIEW, versions)[1]
    values = sorted({float(v) for (v,) in m.query("SELECT toFloat64(confidence) FROM evaluations"
                                                   " WHERE confidence IS NOT NULL").rows})  # fmt: skip
    assert len(values) > 5
    thresholds = [*values, (values[0] + values[1]) / 2, values[0] / 2, 1.0, np.nextafter(values[2], 1.0)]
    assert _thresholds_hold(m, versions, thresholds) == 2 * len(AT_THRESHOLD) * len(thresholds)
    for conditions in (BESIDES["predicted c1, by name"], BESIDES["wrong"]):
        flt = common_pb2.Filter(all=conditions)
        assert grid_orders.below_threshold(m, VIEW, versions, flt, 0.5, ("split", "correct")) is None
    at = replace(VIEW, confidence_threshold=0.5)
    assert grid_orders.below_threshold(m, at, versions, common_pb2.Filter(), 0.5, ("split", "correct")) is None
    # counts written twice count more frames than the sort's: not read
    m.command("INSERT INTO grid_listing_counts SELECT * FROM grid_listing_counts WHERE listing = 'confidence asc'")
    assert grid_orders.below_threshold(m, VIEW, versions, common_pb2.Filter(), 0.5, ("split", "correct")) is None


#: filters the counts do not answer, each with a range of a kept sort's field: their count reads the sort's rows in
#: the range when few
NARROW = {
    "two ranges": [_range("confidence", 0.3, 0.6), _range("loss", lo=0.9)],
    "a range and a metadata value": [_range("margin", hi=0.3), _is("metadata.camera", string_value="front")],
    "a range and a negated value": [_range("loss", 0.5, 2.0), _is("metadata.camera", negate=True, string_value="rear")],
    "two ranges of a field, wrong, not test": [_range("loss", lo=0.2), _range("loss", hi=1.5),
                                               _is("correct", bool_value=False),
                                               _is("split", negate=True, string_value="test")],
    # bounds inside an hour (as the grid's "captured from" and "captured before" write them): the sort by capture time
    "capture times to the minute, in val": [_captured_between(datetime(2026, 3, 5, 9, 7, 30, tzinfo=UTC),
                                                              datetime(2026, 3, 5, 9, 31, tzinfo=UTC)),
                                            _is("split", string_value="val")],
}  # fmt: skip


def _rows_counts_hold(m: EmbeddedMetricsStore, versions: tuple[object, ...]) -> int:
    """Every filter of :data:`NARROW`, sorted by frame id or by margin, down: counted from a sort's rows as the set
    counts it; returns how many."""
    present, counted = _present(m), 0
    for name, conditions in NARROW.items():
        flt = common_pb2.Filter(all=conditions)
        assert grid_orders.range_count(m, VIEW, versions, flt, [], present) is None  # not from the counts
        for sort in ([], [pb.SortKey(field="margin", descending=True)]):
            got = grid_orders.rows_count(m, VIEW, versions, flt, sort, present)
            assert got == _live_count(m, flt, sort), (name, sort)
            counted += 1
    return counted


def test_a_narrow_range_beside_what_the_counts_do_not_answer_is_counted_from_its_sorts_rows(
    store: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter of a range of a kept sort's field beside a second range, a metadata value, a negation (what neither
    the counts by bucket nor by value answer) is counted from the sort's rows in the range, with the whole filter, as
    the set counts it (through the grid's count too); a range whose keys hold more rows than a count may read is
    refused by the store before a row is read, and the set is counted; a filter without a range is not read so."""
    m = store
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None and grid_orders.keep(m, VIEW, versions)[1]
    rows_counted = lambda: grid_orders.ROWS_COUNTED.labels("build")._value.get()  # noqa: E731
    before = rows_counted()
    assert _rows_counts_hold(m, versions) == 2 * len(NARROW)
    assert rows_counted() - before == 2 * len(NARROW)
    # the grid's count goes the same way
    flt = common_pb2.Filter(all=NARROW["two ranges"])
    page = datapoints.query_datapoints(m, VIEW, flt, [pb.SortKey(field="frame_id")], 5, "", scope="s",
                                       answers=AnswerCache(m))  # fmt: skip
    assert page.total == _live_count(m, flt, [pb.SortKey(field="frame_id")]) > 0
    assert rows_counted() - before == 2 * len(NARROW) + 1
    # a class's count reads that class's rows, and a filter without a range any sort's: not read so
    present = _present(m)
    for conditions in (NARROW["two ranges"] + [_is("label_class", number_value=2)],
                       [_is("metadata.camera", string_value="front"), _is("correct", bool_value=False)]):  # fmt: skip
        flt = common_pb2.Filter(all=conditions)
        datapoints.query_datapoints(m, VIEW, flt, [], 5, "", scope="s", answers=AnswerCache(m))
    assert rows_counted() - before == 2 * len(NARROW) + 1
    assert grid_orders.rows_count(m, VIEW, versions, common_pb2.Filter(all=conditions), [], present) is None
    # the store's granules hold more rows than a count may read here: refused, the set counted
    monkeypatch.setattr(grid_orders, "RANGE_ROWS_AT_MOST", 5)
    for conditions in NARROW.values():
        assert grid_orders.rows_count(m, VIEW, versions, common_pb2.Filter(all=conditions), [], present) is None
    page = datapoints.query_datapoints(m, VIEW, flt, [pb.SortKey(field="frame_id")], 5, "", scope="s",
                                       answers=AnswerCache(m))  # fmt: skip
    assert page.total == _live_count(m, flt, [pb.SortKey(field="frame_id")])


def test_a_page_few_frames_pass_is_read_from_a_kept_sorts_rows_in_its_range(
    store: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter with a range of a kept sort's field that few frames pass (so that a read of the set, or of a kept
    sort in its order, passes over many rows to fill a page) has its pages read from that sort's rows in the range,
    sorted by the grid's sort (frame id, a prediction field, a metadata key): every page the set's; none when the
    range holds more rows than the read it stands for, or the sorts are patched."""
    m = store
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None and grid_orders.keep(m, VIEW, versions)[1]
    narrow = lambda: datapoints.NARROW_PAGES._value.get()  # noqa: E731
    sorts = [("frame_id", False), ("loss", True), ("metadata.camera", False), ("capture_time", True)]
    want = {(name, f, d): _walk(m, common_pb2.Filter(all=c), f, d, PAGE, None)
            for name, c in NARROW.items() for f, d in sorts}  # fmt: skip
    assert sum(len(p) > 1 for p in want.values()) > len(want) // 2  # most run to several pages
    # this set's pages are found within a few of its rows: read from the set or a kept sort
    before = narrow()
    for (name, f, d), pages in want.items():
        page = datapoints.query_datapoints(m, VIEW, common_pb2.Filter(all=NARROW[name]),
                                           [pb.SortKey(field=f, descending=d)], PAGE, "", scope="grid",
                                           answers=AnswerCache(m))  # fmt: skip
        assert [r.frame_id for r in page.rows] == [r[0] for r in pages[0][0]], (name, f, d)
    assert narrow() == before
    # as in a large set of which few frames pass: every page from the range's rows
    monkeypatch.setattr(datapoints, "NARROW_READ_FROM", 0)
    for (name, f, d), pages in want.items():
        assert _walk(m, common_pb2.Filter(all=NARROW[name]), f, d, PAGE, AnswerCache(m)) == pages, (name, f, d)
    assert narrow() - before == sum(len(p) for p in want.values())
    # the range holds more rows than the read it stands for (here: any granule): refused, read as before
    monkeypatch.setattr(grid_orders, "RANGE_ROWS_AT_MOST", 5)
    before = narrow()
    for name, f, d in list(want)[:4]:
        assert _walk(m, common_pb2.Filter(all=NARROW[name]), f, d, PAGE, AnswerCache(m)) == want[(name, f, d)]
    assert narrow() == before


def test_a_request_reads_each_builds_records_once(store: EmbeddedMetricsStore) -> None:
    """A grid page of a kept sort with its count (a range of the sort's field: counted through the sort's key, the
    page read from its rows) looks the build up in the builds' table once, not once for the count and again for the
    page; a listing written after a request's look-up is read by the next request."""
    m = store
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None and grid_orders.keep(m, VIEW, versions)[1]
    looks: list[str] = []
    query = m.query

    def spy(sql: str, *args: object, **kwargs: object) -> object:
        looks.extend([sql] if "grid_listing_builds" in sql else [])
        return query(sql, *args, **kwargs)

    flt = common_pb2.Filter(all=[_range("loss", lo=0.9)])
    sort = [pb.SortKey(field="loss", descending=True)]
    counted, before = grid_orders.range_count, _kept_pages()
    ranged: list[int | None] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(m, "query", spy)
        patch.setattr(grid_orders, "range_count", lambda *a, **k: ranged.append(counted(*a, **k)) or ranged[-1])
        page = datapoints.query_datapoints(m, VIEW, flt, sort, PAGE, "", scope="s", answers=AnswerCache(m))
    assert ranged and ranged[-1] is not None and _kept_pages() == before + 1  # the count and page from the sort
    assert page.total == _live_count(m, flt, sort) and [r.frame_id for r in page.rows] == [
        r[0] for r in _walk(m, flt, "loss", True, PAGE, None)[0][0]
    ]
    assert len(looks) == 1, looks
    # within one look-up, what is written meanwhile is not seen; the next look-up sees it
    build = grid_orders.build_id(VIEW, versions)
    with grid_orders.looked_up():
        before = grid_orders.written(m, VIEW, build)
        grid_orders.record(m, VIEW, build, "a listing written meanwhile", 7, block=-1, mutation=0)
        assert grid_orders.written(m, VIEW, build) == before
    assert grid_orders.written(m, VIEW, build) == {**before, "a listing written meanwhile": 7}
