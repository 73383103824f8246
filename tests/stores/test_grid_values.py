"""A large set's frames counted by metadata value, on chDB: the slices by a metadata key and the grid's count of a
metadata value read from those counts equal the slices and counts read from every frame of the set (strings,
numbers with a zero and a negative zero, flags, times, a key of two types, a value named like the slice of the frames
without the key, frames without it; with a split, a class, a predicted class or the wrong predictions picked),
keys of too many values and other filters are read from the set, and counts written twice or for other versions of
the data are never read. So do the counts of a confidence or loss range beside a metadata value and the slices by a
key at a confidence threshold, read from the sorts counted by value and bucket, and the slices by capture time and the
counts of a range of whole hours, read from the frames counted by hour."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from shoal.analysis import datapoints, grid_orders, grid_values, slices
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

N, K = 160, 4
IDS = [f"f{i:04d}" for i in range(N)]
SPLITS = ("train", "val", "test")
VIEW = View("p", "d", "a", tuple(range(K)), {f"c{i}": i for i in range(K)}, 0.0)
#: a value per frame: more values than the test's limit
MAX_VALUES = 40


def _metadata(i: int) -> tuple[dict[str, str], dict[str, float], dict[str, int], dict[str, datetime]]:
    """Frame ``i``'s strings, numbers, flags and times: a camera (one frame in 9 without; one named like the slice of
    the frames without), a light level (0 and -0 among them), a night flag on some, a key written as a string on some
    frames and a number on others, a path (a value per frame), and the time of a shot (to the millisecond)."""
    strings = {"path": f"/data/{i}.png"}
    if i % 9:
        strings["camera"] = "(none)" if i == 5 else ("front", "rear", "side")[i % 3]
    numbers = {"lux": (0.0, -0.0, 1.5, 2.0, 3.0)[i % 5]}
    if i % 4 == 0:
        strings["zone"] = f"z{i % 3}"
    elif i % 4 == 1:
        numbers["zone"] = float(i % 2)
    flags = {"night": int(i % 7 == 0)} if i % 2 else {}
    times = {"shot": datetime(2026, 1, 1 + i % 3, 8, 30, 0, 125_000 * (i % 2), tzinfo=UTC)} if i % 3 else {}
    return strings, numbers, flags, times


def _captured(i: int) -> datetime | None:
    """Frame ``i``'s capture time: every 37 minutes and 250 ms over four days from a Thursday (one frame in ten
    without)."""
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=37 * i, milliseconds=250 * (i % 4)) if i % 10 else None


@pytest.fixture
def store(embedded_metrics: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch) -> EmbeddedMetricsStore:
    m, rng = embedded_metrics, np.random.default_rng(5)
    monkeypatch.setattr(grid_values, "MAX_VALUES", MAX_VALUES)
    m.migrate((*DATASET_MIGRATIONS, *FRAME_MIGRATIONS, *EVALUATION_MIGRATIONS, *grid_orders.MIGRATIONS))
    create_sets(m, ["a"])
    m.insert("frames", [["p", "d", f, SPLITS[i % 3], f"s3://b/{f}", *_metadata(i), _captured(i), 64, 48, 1]
                        for i, f in enumerate(IDS)],
             ["project", "dataset", "frame_id", "split", "media_uri", "meta_str", "meta_num", "meta_bool", "meta_time",
              "capture_time", "width", "height", "version"])  # fmt: skip
    write_labels(m, IDS[: N - 15], rng.integers(0, K, N - 15), 1)  # the last 15 unlabeled: no loss
    probs = rng.random((N - 6, K)).astype(np.float32)
    write_predictions(m, "a", IDS[: N - 6], probs / probs.sum(1, keepdims=True))  # the last 6 without a prediction
    EvaluationRefresher(m).refresh("p", "d", IDS, list(range(K)))
    return m


def _is(field: str, negate: bool = False, **value: object) -> common_pb2.Condition:
    return common_pb2.Condition(field=field, equals=common_pb2.Value(**value), negate=negate)  # type: ignore[arg-type]


def _within(field: str, *values: common_pb2.Value) -> common_pb2.Condition:
    return common_pb2.Condition(field=field, **{"in": common_pb2.ValueList(values=list(values))})


#: the filters the counts answer beside a metadata value (and the slices are read with)
BESIDES = {
    "every frame": [],
    "split val": [_is("split", string_value="val")],
    "wrong": [_is("correct", bool_value=False)],
    "class 2, not train": [_is("label_class", number_value=2), _is("split", negate=True, string_value="train")],
    "predicted c1": [_is("predicted_class", string_value="c1")],
    "unlabeled": [_is("labeled", bool_value=False)],
}
#: a metadata condition as the grid writes one
VALUES = {
    "camera front": _is("metadata.camera", string_value="front"),
    "camera named (none)": _is("metadata.camera", string_value="(none)"),
    "camera rear or side": _within(
        "metadata.camera", common_pb2.Value(string_value="rear"), common_pb2.Value(string_value="side")
    ),
    "lux 0 (and -0)": _is("metadata.lux", number_value=0.0),
    "lux in [1, 2.5)": common_pb2.Condition(
        field="metadata.lux",
        range=common_pb2.Range(
            min=common_pb2.Value(number_value=1.0), max=common_pb2.Value(number_value=2.5), max_exclusive=True
        ),
    ),
    "night": _is("metadata.night", bool_value=True),
    "zone z1 (a string)": _is("metadata.zone", string_value="z1"),
    "zone 1 (a number)": _is("metadata.zone", number_value=1.0),
    "shot on 2 January, after 8:30:00.0": common_pb2.Condition(
        field="metadata.shot",
        range=common_pb2.Range(
            min=common_pb2.Value(
                timestamp_value=Timestamp(seconds=int(datetime(2026, 1, 2, 8, 30, tzinfo=UTC).timestamp()))
            ),
            min_exclusive=True,
            max=common_pb2.Value(timestamp_value=Timestamp(seconds=int(datetime(2026, 1, 3, tzinfo=UTC).timestamp()))),
        ),
    ),
}


def _negated(c: common_pb2.Condition) -> common_pb2.Condition:
    out = common_pb2.Condition()
    out.CopyFrom(c)
    out.negate = True
    return out


#: a key's presence or absence (a negation of either is the other), and each value condition negated (the frames
#: without the key pass it): every frame that passes the filter's other conditions less those that pass it
FAILING = {
    "camera present": common_pb2.Condition(field="metadata.camera", exists=True),
    "shot absent": common_pb2.Condition(field="metadata.shot", exists=False),
    "night not present": common_pb2.Condition(field="metadata.night", exists=True, negate=True),
    "lux not absent": common_pb2.Condition(field="metadata.lux", exists=False, negate=True),
    **{f"not {name}": _negated(c) for name, c in VALUES.items()},
}


def _kept(m: EmbeddedMetricsStore) -> tuple[object, ...]:
    versions = AnswerCache(m).versions(VIEW_TABLES)
    assert versions is not None
    assert grid_values.keep(m, VIEW, versions) == 1
    assert grid_values.keep(m, VIEW, versions) == 0  # once per version of the data
    return versions


def _live_count(m: EmbeddedMetricsStore, flt: common_pb2.Filter, sort: list[pb.SortKey]) -> int:
    return int(m.query(*datapoints.page_statement(VIEW, flt, sort, {}, 1, None)[3:]).scalar())


def _slices(m: EmbeddedMetricsStore, flt: common_pb2.Filter, key: str, versions: object | None) -> tuple[object, ...]:
    counts = slices.GridCounts()

    def kept(key: str) -> tuple[str, list[object]] | None:
        return grid_values.slice_rows(m, VIEW, versions, flt, key)  # type: ignore[arg-type]

    found = slices.slices(m, VIEW, flt, group_by=f"metadata.{key}", min_support=3, grid_counts=counts,
                          kept=kept if versions is not None else None)  # fmt: skip
    plain = slices.slices(m, VIEW, flt, group_by=f"metadata.{key}", min_support=3,
                          kept=kept if versions is not None else None)  # fmt: skip
    return found, plain, counts.kind, counts.by_value


def test_the_slices_by_a_metadata_key_read_from_the_counts_equal_the_slices_of_the_set(
    store: EmbeddedMetricsStore,
) -> None:
    """Every key of few values, with each filter of the split, the classes and the right or wrong predictions: the
    slices (every value, the worst, the overall accuracy) and the grid's counts of each value equal those read from
    the set, with the frames without the key (and the value named like them) one slice."""
    m = store
    versions = _kept(m)
    read = grid_values.READ._value.get()
    assert grid_values.NONE == slices.NONE
    for key in ("camera", "lux", "night", "zone", "shot"):
        for name, besides in BESIDES.items():
            flt = common_pb2.Filter(all=besides)
            got = _slices(m, flt, key, versions)
            assert got == _slices(m, flt, key, None), (key, name)
            assert got[0][2] or name == "unlabeled", (key, name)  # some slices (of the frames with labels)
    assert grid_values.READ._value.get() - read == 2 * 5 * len(BESIDES)
    by_camera = {s.value: s.frames for s in _slices(m, common_pb2.Filter(), "camera", versions)[0][2]}
    assert by_camera["(none)"] == sum(1 for i in range(N - 15) if i % 9 == 0 or i == 5)  # labeled and predicted
    # a key of a value per frame is not counted, nor is a filter of other fields: read from the set
    assert grid_values.slice_rows(m, VIEW, versions, common_pb2.Filter(), "path") is None
    night = common_pb2.Filter(all=[_is("metadata.night", bool_value=True)])
    assert grid_values.slice_rows(m, VIEW, versions, night, "camera") is None


def test_the_grid_count_of_a_metadata_value_is_read_from_the_counts(store: EmbeddedMetricsStore) -> None:
    """A value equal, in a list or in a range, a key's presence or absence, or any of them negated, with each filter
    of the split, the classes and the right or wrong predictions, the grid sorted by frame id or a prediction field:
    the set's count; two keys, a key of too many values or of two types' presence, a range beside, or another sort
    are counted from the set; counts written twice, or for the data before a change, are not read."""
    m = store
    versions = _kept(m)
    counted = 0
    for value_name, condition in {**VALUES, **FAILING}.items():
        for name, besides in BESIDES.items():
            flt = common_pb2.Filter(all=[condition, *besides])
            sorts = ([], [pb.SortKey(field="loss", descending=True)], [pb.SortKey(field="confidence")])
            for sort in sorts if value_name in VALUES else sorts[:2]:  # the negations: by frame id and by loss
                got = grid_values.value_count(m, VIEW, versions, flt, sort)
                assert got == _live_count(m, flt, sort), (value_name, name, sort)
                counted += got or 0
    assert counted > 0
    # the page's count goes the same way
    flt = common_pb2.Filter(all=[VALUES["lux 0 (and -0)"], *BESIDES["split val"]])
    read = grid_values.READ._value.get()
    page = datapoints.query_datapoints(m, VIEW, flt, [pb.SortKey(field="frame_id")], 5, "", scope="s",
                                       answers=AnswerCache(m))  # fmt: skip
    assert page.total == _live_count(m, flt, []) > 0
    assert grid_values.READ._value.get() - read == 1
    # what the counts do not answer
    camera = VALUES["camera front"]
    for other, sort in (
        (common_pb2.Filter(all=[common_pb2.Condition(field="metadata.zone", exists=True)]), []),
        (common_pb2.Filter(all=[camera, VALUES["night"]]), []),
        (common_pb2.Filter(all=[_is("metadata.path", string_value="/data/3.png")]), []),
        (common_pb2.Filter(all=[camera, common_pb2.Condition(field="loss", range=common_pb2.Range(
            min=common_pb2.Value(number_value=1.0)))]), []),
        (common_pb2.Filter(all=[camera]), [pb.SortKey(field="capture_time")]),
    ):  # fmt: skip
        assert grid_values.value_count(m, VIEW, versions, other, sort) is None, other
    # written twice (a write cut short and written again): not read
    flt = common_pb2.Filter(all=[camera])
    assert grid_values.value_count(m, VIEW, versions, flt, []) == _live_count(m, flt, [])
    m.command("INSERT INTO grid_value_counts SELECT * FROM grid_value_counts WHERE kind = ''")
    assert grid_values.value_count(m, VIEW, versions, flt, []) is None
    assert grid_values.slice_rows(m, VIEW, versions, common_pb2.Filter(), "camera") is None
    # the data changed: the counts of the versions before are not read; the next counts, and the next build's
    # removal of the one before, leave the new ones alone
    write_labels(m, IDS[:10], [3] * 10, 2)
    EvaluationRefresher(m).refresh("p", "d", IDS[:10], list(range(K)))
    after = AnswerCache(m).versions(VIEW_TABLES)
    assert after is not None and after != versions
    assert grid_values.value_count(m, VIEW, after, flt, []) is None
    assert grid_values.keep(m, VIEW, after) == 1
    assert grid_orders.keep(m, VIEW, after)[1]
    builds = {r[0] for r in m.query("SELECT DISTINCT build FROM grid_value_counts").rows}
    assert builds == {grid_orders.build_id(VIEW, after)}
    assert grid_values.value_count(m, VIEW, after, flt, []) == _live_count(m, flt, [])
    # a set that grew small keeps none
    grid_orders.remove(m, VIEW)
    assert m.query("SELECT count() FROM grid_value_counts").scalar() == 0


def test_the_keys_of_fewest_values_are_counted_up_to_a_bound(
    store: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A set of many keys of many values keeps its counts bounded: the keys of fewest values first, up to
    ``MAX_COUNTED_VALUES`` values in all; the keys past it are sliced and counted from the set."""
    m = store
    # night (2 values), camera (4) and shot (4) fit in 12; zone (4, of two types, past shot by name) and lux (5) do
    # not
    monkeypatch.setattr(grid_values, "MAX_COUNTED_VALUES", 12)
    versions = _kept(m)
    keys = {r[0] for r in m.query("SELECT DISTINCT key FROM grid_value_counts WHERE kind != ''").rows}
    assert keys == {"night", "camera", "shot"}
    assert grid_values.slice_rows(m, VIEW, versions, common_pb2.Filter(), "lux") is None
    for name in ("lux 0 (and -0)", "zone 1 (a number)"):
        assert grid_values.value_count(m, VIEW, versions, common_pb2.Filter(all=[VALUES[name]]), []) is None
    flt = common_pb2.Filter(all=[VALUES["camera front"]])
    assert grid_values.value_count(m, VIEW, versions, flt, []) == _live_count(m, flt, [])
    assert _slices(m, common_pb2.Filter(), "lux", versions) == _slices(m, common_pb2.Filter(), "lux", None)


def _range(
    field: str, low: float | None, high: float | None, *, low_out: bool = False, high_out: bool = True
) -> common_pb2.Condition:
    """A range of a field, as the grid's slider of confidence and its loss range write one."""
    r = common_pb2.Range(min_exclusive=low_out, max_exclusive=high_out)
    if low is not None:
        r.min.number_value = low
    if high is not None:
        r.max.number_value = high
    return common_pb2.Condition(field=field, range=r)


@pytest.mark.parametrize("buckets", [3, 64])
def test_a_confidence_or_loss_range_beside_a_metadata_value_is_counted_from_the_value_buckets(
    store: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch, buckets: int
) -> None:
    """The slider of confidence, or a range of loss, beside a metadata value (equal, in a list or a range, a key's
    presence or absence, or negated), with each filter of the split, the labeled class and the right or wrong
    predictions, the grid sorted by frame id, confidence or loss, in buckets of the sort's key the range's bounds fall
    in (3) or fewer rows than buckets (64): the set's count; a predicted class, a range of another field, two keys, or
    a sort by a field some frames with the range's field lack are counted otherwise; counts written twice, or before
    the sort, are not read."""
    m = store
    monkeypatch.setattr(grid_values, "VALUE_BUCKETS", buckets)
    versions = _kept(m)
    assert grid_values.keep_buckets(m, VIEW, versions) == 0  # the sorts are not written yet
    assert grid_orders.keep(m, VIEW, versions)[1]
    assert grid_values.keep_buckets(m, VIEW, versions) == 1  # confidence's
    assert grid_values.keep_buckets(m, VIEW, versions) == 1  # loss's
    assert grid_values.keep_buckets(m, VIEW, versions) == 0  # once per version of the data
    counts: dict[tuple[str, ...], int] = {}

    def present(fields: list[str]) -> int:  # kept, as the preparer keeps them
        if tuple(fields) not in counts:
            counts[tuple(fields)] = _live_count(m, common_pb2.Filter(), [pb.SortKey(field=f) for f in fields])
        return counts[tuple(fields)]

    ranges = []
    for field in grid_values.BUCKETED_SORTS:
        values = sorted(float(r[0]) for r in m.query(f"SELECT {field} FROM evaluations WHERE {field} IS NOT NULL").rows)
        at = values[len(values) // 3]  # a bound on a frame's value, in or out
        ranges += [
            _range(field, values[len(values) // 2], None),
            _range(field, None, at),
            _range(field, at, values[2 * len(values) // 3], low_out=True),
            _range(field, at, at, high_out=False),
            _range(field, values[-1], None, low_out=True),  # above every frame
        ]
    read, checked, asked = grid_values.READ._value.get(), 0, 0
    for i, (value_name, condition) in enumerate({**VALUES, **FAILING}.items()):
        for j, (name, besides) in enumerate(BESIDES.items()):
            if (i + j) % (2 if buckets == 3 else 5):  # half the questions (many buckets: a fifth)
                continue
            asked += 1
            r = ranges[(i + 3 * j) % len(ranges)]
            sort = [pb.SortKey(field=("confidence", "loss")[i % 2], descending=bool(j % 2))] if (i + j) % 2 else []
            flt = common_pb2.Filter(all=[r, condition, *besides])
            got = grid_values.value_range_count(m, VIEW, versions, flt, sort, present)
            if name == "predicted c1":  # not counted by predicted class
                assert got is None
                asked -= 1
                continue
            assert got == _live_count(m, flt, sort), (value_name, name, sort, r)
            checked += got or 0
    assert checked > 0
    assert grid_values.READ._value.get() - read == asked
    # the page's count goes the same way
    flt = common_pb2.Filter(all=[ranges[1], VALUES["camera front"], *BESIDES["wrong"]])
    read = grid_values.READ._value.get()
    page = datapoints.query_datapoints(m, VIEW, flt, [pb.SortKey(field="frame_id")], 5, "", scope="s",
                                       answers=AnswerCache(m))  # fmt: skip
    assert page.total == _live_count(m, flt, []) > 0
    assert grid_values.READ._value.get() - read == 1
    # what these counts do not answer
    camera, margin = VALUES["camera front"], _range("margin", 0.1, None)
    for other, sort in (
        (common_pb2.Filter(all=[camera, margin]), []),
        (common_pb2.Filter(all=[ranges[0], camera, margin]), []),
        (common_pb2.Filter(all=[ranges[0], camera, VALUES["night"]]), []),
        (common_pb2.Filter(all=[ranges[0], _is("metadata.path", string_value="/data/3.png")]), []),
        (common_pb2.Filter(all=[ranges[0], common_pb2.Condition(field="metadata.zone", exists=True)]), []),
        (common_pb2.Filter(all=[ranges[0], camera]), [pb.SortKey(field="loss")]),  # the unlabeled have no loss
    ):  # fmt: skip
        assert grid_values.value_range_count(m, VIEW, versions, other, sort, present) is None, other
    # written twice (a write cut short and written again): not read
    flt = common_pb2.Filter(all=[ranges[0], camera])
    assert grid_values.value_range_count(m, VIEW, versions, flt, [], present) == _live_count(m, flt, [])
    m.command("INSERT INTO grid_value_buckets SELECT * FROM grid_value_buckets WHERE kind = '' AND listing = {n:String}"
              " LIMIT 1", {"n": grid_orders.BY_CONFIDENCE})  # fmt: skip
    assert grid_values.value_range_count(m, VIEW, versions, flt, [], present) is None


#: the filters the slices at a threshold are derived with (their frames do not change with the threshold)
AT_THRESHOLD = {name: BESIDES[name] for name in ("every frame", "split val", "class 2, not train")}


def test_the_slices_by_a_metadata_key_at_a_threshold_are_those_at_0_with_the_frames_below_it_wrong(
    store: EmbeddedMetricsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slices by every key of few values (strings, numbers, flags, times, a key of two types, a value named like
    the frames without the key) at a confidence threshold, of every frame, a split or a class, are those at 0 with the
    right predictions below the threshold, counted from the confidence sort's counts by value and bucket, wrong: equal
    to the slices read from the set at the threshold, at a frame's confidence, between two, below the lowest and above
    the highest. A filter of a predicted class or of correctness, a view at a threshold, a key of too many values or
    counts not written: not derived. The grid's count of a value at a threshold is the count at 0."""
    m = store
    monkeypatch.setattr(grid_values, "VALUE_BUCKETS", 3)  # the threshold inside a bucket of many rows
    versions = _kept(m)
    assert grid_values.below_by_value(m, VIEW, versions, common_pb2.Filter(), 0.5, "camera") is None  # not written
    assert grid_orders.keep(m, VIEW, versions)[1]
    assert grid_values.keep_buckets(m, VIEW, versions) == 1
    values = sorted({float(r[0]) for r in m.query("SELECT toFloat64(confidence) FROM evaluations"
                                                   " WHERE confidence IS NOT NULL").rows})  # fmt: skip
    thresholds = [values[len(values) // 4], values[len(values) // 2], (values[3] + values[4]) / 2, values[0] / 2, 1.0]
    derived = 0
    for key in ("camera", "lux", "night", "zone", "shot"):
        for name, besides in AT_THRESHOLD.items():
            flt = common_pb2.Filter(all=besides)
            zero = slices.slices(m, VIEW, flt, group_by=f"metadata.{key}", min_support=3)
            for t in thresholds:
                found = grid_values.below_by_value(m, VIEW, versions, flt, t, key)
                assert found is not None, (key, name, t)
                frames, below = found
                assert {x.value: x.frames for x in zero[2]} == frames, (key, name)
                got = slices.at_threshold(zero[2], below, 3, slices.DEFAULT_LEVEL)
                at = replace(VIEW, confidence_threshold=t)
                assert got == slices.slices(m, at, flt, group_by=f"metadata.{key}", min_support=3), (key, name, t)
                derived += 1
    assert derived > 0
    for conditions in (BESIDES["predicted c1"], BESIDES["wrong"]):
        assert grid_values.below_by_value(m, VIEW, versions, common_pb2.Filter(all=conditions), 0.5, "camera") is None
    assert grid_values.below_by_value(m, replace(VIEW, confidence_threshold=0.5), versions, common_pb2.Filter(), 0.6,
                                      "camera") is None  # fmt: skip
    assert grid_values.below_by_value(m, VIEW, versions, common_pb2.Filter(), 0.5, "path") is None
    # the grid's count of a value at a threshold: a split's or a class's frames are those at 0; not its predictions'
    at = replace(VIEW, confidence_threshold=values[len(values) // 2])
    for besides in (BESIDES["split val"], BESIDES["class 2, not train"]):
        flt = common_pb2.Filter(all=[VALUES["camera front"], *besides])
        got = grid_values.value_count(m, at, versions, flt, [pb.SortKey(field="confidence")])
        assert got == int(m.query(*datapoints.page_statement(at, flt, [pb.SortKey(field="confidence")], {}, 1,
                                                             None)[3:]).scalar())  # fmt: skip
    flt = common_pb2.Filter(all=[VALUES["camera front"], *BESIDES["wrong"]])
    assert grid_values.value_count(m, at, versions, flt, []) is None
    # written twice: not read
    m.command("INSERT INTO grid_value_buckets SELECT * FROM grid_value_buckets WHERE kind = '' AND listing = {n:String}"
              " LIMIT 1", {"n": grid_orders.BY_CONFIDENCE})  # fmt: skip
    assert grid_values.below_by_value(m, VIEW, versions, common_pb2.Filter(), 0.5, "camera") is None


def _between(low: datetime | None, high: datetime | None, *, high_in: bool = True) -> common_pb2.Condition:
    """A range of capture time, as the grid writes one (its end included, unless ``high_in`` is False)."""
    r = common_pb2.Range(max_exclusive=not high_in)
    if low is not None:
        r.min.timestamp_value.FromDatetime(low)
    if high is not None:
        r.max.timestamp_value.FromDatetime(high)
    return common_pb2.Condition(field="capture_time", range=r)


def test_the_slices_by_capture_time_and_a_count_of_whole_hours_are_read_from_the_counts_by_hour(
    store: EmbeddedMetricsStore,
) -> None:
    """The slices by capture time in every bucket (hour, day, week, month), with each filter of the split, the
    labeled class and the right or wrong predictions, and the grid's count of a range of whole hours (a slice's
    link: a day to its last millisecond, an hour to the next, from or up to an hour), with those filters and the grid
    sorted by frame id or a prediction field, at 0 and at a threshold: read from the frames counted by hour of capture,
    equal to the set's; a range inside an hour, a predicted class, a negated range or counts written twice: not
    read."""
    m = store
    versions = _kept(m)
    read = grid_values.READ._value.get()
    asked = 0
    for bucket in slices.BUCKETS:
        for name, besides in BESIDES.items():
            flt = common_pb2.Filter(all=besides)

            def kept(fn: str, f: common_pb2.Filter = flt) -> list[object] | None:
                return grid_values.time_slice_rows(m, VIEW, versions, f, fn)  # type: ignore[return-value]

            got = slices.slices(m, VIEW, flt, group_by="capture_time", time_bucket=bucket, min_support=3,
                                kept_times=kept)  # fmt: skip
            want = slices.slices(m, VIEW, flt, group_by="capture_time", time_bucket=bucket, min_support=3)
            if name == "predicted c1":
                assert grid_values.time_slice_rows(m, VIEW, versions, flt, slices.BUCKETS[bucket]) is None
            else:
                asked += 1
            assert got == want, (bucket, name)
    assert grid_values.READ._value.get() - read == asked
    day = datetime(2026, 1, 2, tzinfo=UTC)
    ranges = (
        _between(day, day + timedelta(days=1) - timedelta(milliseconds=1)),  # a day slice's link
        _between(day + timedelta(hours=5), day + timedelta(hours=6), high_in=False),
        _between(day + timedelta(hours=30), None),
        _between(None, day + timedelta(hours=7)),  # up to and with 7:00:00.000
    )
    for view in (VIEW, replace(VIEW, confidence_threshold=0.5)):
        for i, (name, besides) in enumerate(BESIDES.items()):
            for j, r in enumerate(ranges):
                flt = common_pb2.Filter(all=[r, *besides])
                sort = [pb.SortKey(field=("frame_id", "loss", "confidence")[(i + j) % 3])]
                got = grid_values.time_count(m, view, versions, flt, sort)
                live = int(m.query(*datapoints.page_statement(view, flt, sort, {}, 1, None)[3:]).scalar())
                if name == "predicted c1" or (view.confidence_threshold and name == "wrong"):
                    assert got is None, (
                        name,
                        j,
                    )  # not counted by predicted class; correctness moves with the threshold
                elif j == 3:
                    assert got is None  # its end is 7:00:00.000, inside that hour
                else:
                    assert got == live, (view.confidence_threshold, name, j)
    # sorted by capture time: the frames with one (every hour, without a range; one frame in ten has none)
    by_time = [pb.SortKey(field="capture_time", descending=True)]
    for name, besides in BESIDES.items():
        for r in ((), (ranges[0],)):
            flt = common_pb2.Filter(all=[*r, *besides])
            live = int(m.query(*datapoints.page_statement(VIEW, flt, by_time, {}, 1, None)[3:]).scalar())
            got = grid_values.time_count(m, VIEW, versions, flt, by_time)
            assert got == (None if name == "predicted c1" else live), (name, r)
            assert not r or live == _live_count(m, flt, [])
    assert grid_values.time_count(m, VIEW, versions, common_pb2.Filter(), by_time) < N
    # not read: a bound inside an hour, a negated range, two ranges; counts written twice
    inside = _between(day + timedelta(minutes=30), None)
    negated = _between(day, None)
    negated.negate = True
    for flt in (common_pb2.Filter(all=[inside]), common_pb2.Filter(all=[negated]),
                common_pb2.Filter(all=[ranges[0], ranges[1]])):  # fmt: skip
        assert grid_values.time_count(m, VIEW, versions, flt, []) is None
    flt = common_pb2.Filter(all=[ranges[0]])
    assert grid_values.time_count(m, VIEW, versions, flt, []) == _live_count(m, flt, []) > 0
    m.command("INSERT INTO grid_time_counts SELECT * FROM grid_time_counts LIMIT 1")
    assert grid_values.time_count(m, VIEW, versions, flt, []) is None
    assert grid_values.time_slice_rows(m, VIEW, versions, common_pb2.Filter(), "toStartOfDay") is None
