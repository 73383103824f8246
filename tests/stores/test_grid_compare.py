"""A large set compared with another, on chDB: the comparison's pages (every page, at threshold 0 and at a threshold,
sorted by frame id or a prediction field), counts and metrics read from the set's rows kept beside the baseline's
predictions equal those read from the join of the two sets, the changed frames' listing read for a filter of improved
or regressed frames; listings written twice, or before a change of the data, are never read."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from shoal.analysis import compare, datapoints, grid_compare, grid_orders
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.data.answers import AnswerCache
from shoal.common.data.datasets import MIGRATIONS as DATASET_MIGRATIONS
from shoal.common.data.evaluations import MIGRATIONS as EVALUATION_MIGRATIONS
from shoal.common.data.evaluations import EvaluationRefresher
from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
from shoal.common.data.query import VIEW_TABLES, View
from shoal.common.stores.metrics import EmbeddedMetricsStore
from shoal.common.v1 import common_pb2
from tests.stores._rows import create_sets, write_labels, write_predictions

N, K = 150, 4
IDS = [f"f{i:04d}" for i in range(N)]
SPLITS = ("train", "val")
VIEW = View("p", "d", "a", tuple(range(K)), {f"c{i}": i for i in range(K)}, 0.0)
COMPARED = replace(VIEW, baseline_inference_set="b")


@pytest.fixture
def store(embedded_metrics: EmbeddedMetricsStore) -> EmbeddedMetricsStore:
    m, rng = embedded_metrics, np.random.default_rng(11)
    m.migrate((*DATASET_MIGRATIONS, *FRAME_MIGRATIONS, *EVALUATION_MIGRATIONS, *grid_orders.MIGRATIONS))
    create_sets(m, ["a", "b", "c"])
    m.insert("frames", [["p", "d", f, SPLITS[i % 2], f"s3://b/{f}", 64, 48, 1] for i, f in enumerate(IDS)],
             ["project", "dataset", "frame_id", "split", "media_uri", "width", "height", "version"])  # fmt: skip
    write_labels(m, IDS[: N - 10], rng.integers(0, K, N - 10), 1)  # the last 10 unlabeled
    for name, without in (("a", 4), ("b", 7), ("c", 0)):  # the last few of each without a prediction
        probs = rng.random((N - without, K)).astype(np.float32) ** 2
        write_predictions(m, name, IDS[: N - without], probs / probs.sum(1, keepdims=True))
    EvaluationRefresher(m).refresh("p", "d", IDS, list(range(K)))
    return m


def _change(*values: str, negate: bool = False) -> common_pb2.Condition:
    if len(values) == 1:
        return common_pb2.Condition(field="change", equals=common_pb2.Value(string_value=values[0]), negate=negate)
    listed = common_pb2.ValueList(values=[common_pb2.Value(string_value=v) for v in values])
    return common_pb2.Condition(field="change", negate=negate, **{"in": listed})


FILTERS = {
    "regressed": [_change("regressed")],
    "improved in val": [_change("improved"), common_pb2.Condition(field="split", equals=common_pb2.Value(
        string_value="val"))],
    "improved or regressed": [_change("improved", "regressed")],
    "unchanged": [_change("unchanged")],
    "not regressed": [_change("regressed", negate=True)],
    "class 1": [common_pb2.Condition(field="label_class", equals=common_pb2.Value(number_value=1))],
    "every frame": [],
}  # fmt: skip


def _pages(m: EmbeddedMetricsStore, view: View, flt: common_pb2.Filter, sort: list[pb.SortKey],
           answers: AnswerCache | None) -> tuple[int, list[object]]:  # fmt: skip
    """Every page of 40 rows, and the count."""
    rows: list[object] = []
    token, total = "", -1
    while True:
        page = datapoints.query_datapoints(m, view, flt, sort, 40, token, scope="s", answers=answers)
        rows += [(d.frame_id, d.predicted_class, d.baseline_predicted_class, d.loss) for d in page.rows]
        total, token = page.total, page.next_token
        if not token:
            return total, rows


def test_a_comparison_is_read_from_the_sets_rows_kept_beside_the_baselines(store: EmbeddedMetricsStore) -> None:
    m = store
    answers = AnswerCache(m, max_answers=0)  # each call reads the store
    versions = answers.versions(VIEW_TABLES)
    assert versions is not None
    frames = int(m.query("SELECT count() FROM evaluations FINAL WHERE inference_set = 'a'").scalar())
    assert grid_compare.kept(m, COMPARED, versions, frames) is None  # not written yet
    assert grid_compare.keep(m, VIEW, versions, "b") == 1  # every frame
    assert grid_compare.keep(m, VIEW, versions, "b") == 1  # the changed frames
    assert grid_compare.keep(m, VIEW, versions, "b") == 0
    read = {w: grid_compare.READ.labels(w)._value.get() for w in (grid_compare.CHANGED, grid_compare.EVERY)}
    from_counts = grid_compare.READ.labels("changes")._value.get()
    asked = {grid_compare.CHANGED: 0, grid_compare.EVERY: 0}
    for threshold in (0.0, 0.5):
        view = replace(COMPARED, confidence_threshold=threshold)
        for i, (name, conditions) in enumerate(FILTERS.items()):
            flt = common_pb2.Filter(all=conditions)
            sort = [[], [pb.SortKey(field="loss", descending=True)], [pb.SortKey(field="confidence")]][i % 3]
            got = _pages(m, view, flt, sort, answers)
            assert got == _pages(m, view, flt, sort, None), (threshold, name)  # the join of the two sets
            assert got[0] > 0 or name == "improved in val", (threshold, name)
            changed = not threshold and name in ("regressed", "improved in val", "improved or regressed")
            asked[grid_compare.CHANGED if changed else grid_compare.EVERY] += 2  # its count and its page
            found = datapoints.compared(m, view, answers)
            assert found is not None
            joined = compare.compare(m, view, flt)
            assert compare.compare(m, view, flt, grid_compare.listing(view, flt, found[0])[0]) == joined, (
                threshold,
                name,
            )
            counted = grid_compare.counts(m, view, flt, *found)
            assert (counted is not None) == (not threshold and name in ("class 1", "every frame")), (threshold, name)
            if counted is not None:  # the comparison's metrics from its counts
                assert compare.compare(m, view, flt, counted=counted) == joined, name
    for which, n in asked.items():
        assert grid_compare.READ.labels(which)._value.get() - read[which] >= n, which
    # the grid's counts of "regressed" and "unchanged" by frame id, and the metrics of "class 1" and every frame, at 0
    assert grid_compare.READ.labels("changes")._value.get() - from_counts >= 4
    # written twice (a write cut short and written again, or two replicas at once): not read
    every = grid_compare.listing_name("b", grid_compare.EVERY)
    m.command("INSERT INTO grid_listings SELECT * FROM grid_listings WHERE listing = {n:String} LIMIT 3", {"n": every})
    build = grid_orders.build_id(VIEW, versions)
    grid_orders.record(m, VIEW, build, every, grid_orders.count_rows(m, VIEW, build, every), block=-1, mutation=0)
    assert grid_compare.kept(m, COMPARED, versions, frames) is None
    # the data changed: the listings of the versions before are not read
    write_labels(m, IDS[:5], [3] * 5, 2)
    EvaluationRefresher(m).refresh("p", "d", IDS[:5], list(range(K)))
    after = answers.versions(VIEW_TABLES)
    assert after is not None and after != versions
    assert grid_compare.kept(m, COMPARED, after, frames) is None
    # a set that grew small keeps none: the listings and their counts are removed with the build
    grid_orders.remove(m, VIEW)
    for table in ("grid_listings", "grid_compare_counts"):
        assert m.query(f"SELECT count() FROM {table}").scalar() == 0, table


def test_the_comparisons_asked_last_are_kept_and_those_asked_before_removed(store: EmbeddedMetricsStore) -> None:
    """A comparison read from the join (a baseline the preparer did not keep) is noted as asked; once kept, it is
    read from its rows; keeping the one asked after it removes it (its listings, counts and records), so a client
    asking every baseline in turn leaves no more copies than the comparisons asked last."""
    m = store
    answers, asked = AnswerCache(m, max_answers=0), grid_compare.Asked(per_set=1, sets=2)
    versions = answers.versions(VIEW_TABLES)
    assert versions is not None
    frames = int(m.query("SELECT count() FROM evaluations FINAL WHERE inference_set = 'a'").scalar())
    flt, sort = common_pb2.Filter(all=FILTERS["regressed"]), [pb.SortKey(field="loss", descending=True)]
    for i, baseline in enumerate(("b", "c", "b")):
        view = replace(VIEW, baseline_inference_set=baseline)
        assert datapoints.compared(m, view, answers, asked) is None  # read from the join: noted
        assert asked.of("p", "d", "a") == (baseline,)
        # the one kept before (none at first) removed
        assert grid_compare.forget(m, VIEW, versions, asked.of("p", "d", "a")) == (i > 0)
        while grid_compare.keep(m, VIEW, versions, baseline):
            pass
        found = datapoints.compared(m, view, answers, asked)
        assert found is not None and found[1] == frames
        assert _pages(m, view, flt, sort, answers) == _pages(m, view, flt, sort, None)  # equal to the join's
        other = "c" if baseline == "b" else "b"
        assert grid_compare.kept(m, replace(VIEW, baseline_inference_set=other), versions, frames) is None
        for table, column in (("grid_listings", "listing"), ("grid_listing_builds", "listing")):
            left = m.query(f"SELECT count() FROM {table} WHERE {column} LIKE {{n:String}}", {"n": f"vs:%:{other}"})
            assert left.scalar() == 0, (table, other)
        assert (
            m.query("SELECT count() FROM grid_compare_counts WHERE baseline = {b:String}", {"b": other}).scalar() == 0
        )
    # the sets asked last are remembered, those before forgotten
    for name in ("b", "c"):
        asked.ask(replace(VIEW, inference_set=name, baseline_inference_set="a"))
    assert asked.of("p", "d", "a") == () and asked.of("p", "d", "c") == ("a",)
