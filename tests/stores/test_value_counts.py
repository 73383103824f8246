"""The example grid's first count of a metadata value, kept by the slices of that key (``slices(grid_counts=)`` and
``datapoints.keep_value_counts``), on chDB: a slice's link opens the grid with one value of the key, and that count
is already kept, under each of the grid's sorts, with or without the slices' own filter; every kept count equals
the grid's count of the set; a value whose condition the console writes otherwise is counted from the set."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.analysis import datapoints, grid_orders
from shoal.analysis.slices import GridCounts, slices
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

N, K = 240, 3
IDS = [f"f{i:04d}" for i in range(N)]
VIEW = View("p", "d", "a", tuple(range(K)), {f"c{i}": i for i in range(K)}, 0.0)
SPLIT_VAL = common_pb2.Filter(all=[common_pb2.Condition(field="split", equals=common_pb2.Value(string_value="val"))])
#: each key's values as a slice names them, the condition the console's grid writes from the slice's link
#: (``filterFromQuery``), and whether that count is kept: not where the grid's condition would count other frames
#: than the slice's (a string that reads as a boolean; 0 and -0, which are equal)
LINKS = {
    "camera": {"front": (common_pb2.Value(string_value="front"), True),
               "rear": (common_pb2.Value(string_value="rear"), True),
               "12": (common_pb2.Value(string_value="12"), True),
               "true": (common_pb2.Value(bool_value=True), False)},
    "lux": {"1.5": (common_pb2.Value(number_value=1.5), True), "1e21": (common_pb2.Value(number_value=1e21), True),
            "0": (common_pb2.Value(number_value=0.0), False), "-0": (common_pb2.Value(number_value=-0.0), False)},
    "night": {"true": (common_pb2.Value(bool_value=True), True), "false": (common_pb2.Value(bool_value=False), True)},
}  # fmt: skip


@pytest.fixture
def store(embedded_metrics: EmbeddedMetricsStore) -> EmbeddedMetricsStore:
    m, rng = embedded_metrics, np.random.default_rng(5)
    m.migrate((*DATASET_MIGRATIONS, *FRAME_MIGRATIONS, *EVALUATION_MIGRATIONS, *grid_orders.MIGRATIONS))
    create_sets(m, ["a"])
    cameras, lux = ("front", "rear", "true", "12", ""), (1.5, 1e21, 0.0, -0.0)
    rows = []
    for i, f in enumerate(IDS):  # some frames lack a key, or have the empty value
        strings = {"camera": cameras[i % 5]} if i % 7 else {}
        numbers = {"lux": lux[i % 4]} if i % 6 else {}
        rows.append(
            ["p", "d", f, ("train", "val")[i // 4 % 2], f"s3://b/{f}", strings, numbers, {"night": i % 3 == 0}, 1]
        )
    m.insert("frames", rows,
             ["project", "dataset", "frame_id", "split", "media_uri", "meta_str", "meta_num", "meta_bool", "version"])  # fmt: skip
    write_labels(m, IDS[: N - 30], rng.integers(0, K, N - 30))  # the last 30 unlabeled: no loss
    probs = rng.random((N - 20, K)).astype(np.float32)
    probs /= probs.sum(1, keepdims=True)
    write_predictions(m, "a", IDS[: N - 20], probs)  # the last 20 without a prediction
    EvaluationRefresher(m).refresh("p", "d", IDS, list(range(K)))
    return m


def _count(m: EmbeddedMetricsStore, flt: common_pb2.Filter, sort: str, answers: AnswerCache | None) -> int:
    return datapoints.query_datapoints(m, VIEW, flt, [pb.SortKey(field=sort)], 10, "", scope="grid",
                                       answers=answers).total  # fmt: skip


def _recorded(m: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements the store is asked from now on."""
    seen: list[str] = []
    query = m.query

    def recording(sql: str, *args: object, **kwargs: object) -> object:
        seen.append(sql)
        return query(sql, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(m, "query", recording)
    return seen


@pytest.mark.parametrize("scope", [common_pb2.Filter(), SPLIT_VAL], ids=["every frame", "split val"])
def test_a_slice_links_to_a_grid_whose_first_count_is_kept(
    store: EmbeddedMetricsStore, scope: common_pb2.Filter, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = store
    seen = _recorded(m, monkeypatch)
    for key, links in LINKS.items():
        answers = AnswerCache(m)
        versions = answers.versions(VIEW_TABLES)
        assert versions is not None
        counts = GridCounts()
        _, _, every, _ = slices(m, VIEW, scope, group_by=f"metadata.{key}", min_support=1, grid_counts=counts)
        assert slices(m, VIEW, scope, group_by=f"metadata.{key}", min_support=1)[2] == every  # the same slices
        assert set(counts.by_value) == set(links) | ({""} if key == "camera" else set())  # and the empty value
        datapoints.keep_value_counts(answers, versions, VIEW, scope, key, counts.kind, counts.by_value)
        for value, (link, kept) in links.items():
            flt = common_pb2.Filter(all=[*scope.all, common_pb2.Condition(field=f"metadata.{key}", equals=link)])
            for sort in datapoints.GRID_SORTS:
                want = _count(m, flt, sort, None)
                del seen[:]
                assert _count(m, flt, sort, answers) == want, (key, value, sort)
                # the grid's first count was kept (only its page was read), unless the link counts other frames
                counted = [q for q in seen if q.startswith("SELECT count()")]
                assert len(counted) == (0 if kept else 1), (key, value, sort)
            # the slice's frames are those of the value that were labeled and predicted (those with a loss)
            if kept:
                assert next(s for s in every if s.value == value).frames == _count(m, flt, "loss", None)


def test_kept_counts_are_not_used_once_the_set_changes(store: EmbeddedMetricsStore) -> None:
    m = store
    answers = AnswerCache(m)
    versions = answers.versions(VIEW_TABLES)
    assert versions is not None
    counts = GridCounts()
    slices(m, VIEW, common_pb2.Filter(), group_by="metadata.camera", grid_counts=counts)
    datapoints.keep_value_counts(answers, versions, VIEW, common_pb2.Filter(), "camera", counts.kind,
                                 counts.by_value)  # fmt: skip
    front = common_pb2.Filter(all=[common_pb2.Condition(field="metadata.camera",
                                                        equals=common_pb2.Value(string_value="front"))])  # fmt: skip
    before = _count(m, front, "frame_id", answers)
    m.insert("frames", [["p", "d", "g0001", "train", "s3://b/g", {"camera": "front"}, 1]],
             ["project", "dataset", "frame_id", "split", "media_uri", "meta_str", "version"])  # fmt: skip
    EvaluationRefresher(m).refresh("p", "d", ["g0001"], list(range(K)))  # as the ingest consumer does after a batch
    fresh = _count(m, front, "frame_id", None)
    assert (_count(m, front, "frame_id", answers), fresh) == (before + 1, before + 1)
