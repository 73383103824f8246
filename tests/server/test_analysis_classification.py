"""Classification metrics and drill-down on a real server (chDB), checked against scikit-learn and
brute-force numpy on the same data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.conftest import server_settings
from tests.harness._wait import scaled
from tests.server.conftest import Running, computed_answers, preparer_of, start_server, wait_for

CLASSES = [(7, "cat"), (2, "dog"), (11, "fox"), (5, "owl")]  # ids are not positions
IDS = np.array([c for c, _ in CLASSES])
N = 3000


class Data:
    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        k = len(CLASSES)
        self.frame_ids = [f"img-{i:05d}" for i in range(N)]
        true_pos = rng.integers(0, k, N)
        self.site = np.array([f"s{i}" for i in rng.integers(0, 8, N)])
        # a model that is right ~70% of the time, with varied confidence, and guesses at site s7
        logits = rng.normal(size=(N, k)) * 1.5
        logits[np.arange(N), true_pos] += rng.uniform(0, 3, N) * (self.site != "s7")
        probs = np.exp(logits)
        self.probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
        self.labels = IDS[true_pos].astype(np.int64)
        self.unlabeled = rng.random(N) < 0.05
        self.labels_sent = np.where(self.unlabeled, -1, self.labels)
        self.splits = np.where(rng.random(N) < 0.3, "val", "train")
        self.camera = np.where(rng.random(N) < 0.5, "front", "rear")
        self.lux = rng.uniform(0, 1000, N)
        # a second label version for some frames: analyses must read the latest
        self.relabeled = rng.choice(np.flatnonzero(~self.unlabeled), 200, replace=False)
        self.labels[self.relabeled] = IDS[rng.integers(0, k, 200)]
        # a worse model: every frame labeled dog (2) at first is predicted fox (11)
        self.bad_probs = self.probs.copy()
        dogs = self.labels_sent == 2
        self.bad_probs[dogs] = np.array([0.05, 0.05, 0.85, 0.05], dtype=np.float32)

    @property
    def labeled(self) -> np.ndarray:
        return ~self.unlabeled

    def pred(self, threshold: float = 0.0, probs: np.ndarray | None = None) -> np.ndarray:
        probs = self.probs if probs is None else probs
        top = IDS[probs.argmax(axis=1)]
        return np.where(probs.max(axis=1) >= np.float32(threshold), top, -1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path) -> Iterator[tuple[Running, Data]]:
    settings = server_settings(tmp_path_factory.mktemp("analysis") / "data", chdb_path)
    running = start_server(settings)
    data = Data()
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="pets", task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=i, name=n) for i, n in CLASSES])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(
            project="pets", dataset=pb.Dataset(name="photos", kind=pb.DATASET_KIND_LABELED, splits=["train", "val"])))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(
            project="pets", inference_set=pb.InferenceSet(name="resnet", dataset="photos", model_name="resnet",
                                                          model_version="1")))  # fmt: skip
        first = UploadColumns(
            frame_ids=data.frame_ids,
            splits=list(data.splits),
            media_uris=[f"s3://b/{f}.jpg" for f in data.frame_ids],
            metadata=[
                {"camera": str(cam), "lux": float(lux), "site": str(site)}
                for cam, lux, site in zip(data.camera, data.lux, data.site, strict=True)
            ],
            class_ids=data.labels_sent,
            inference_set="resnet",
            probabilities=data.probs,
        )
        r1 = c.upload("pets", "photos", first, progress=False)
        assert c.wait_for_upload("pets", r1.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        relabel = UploadColumns(
            frame_ids=[data.frame_ids[i] for i in data.relabeled],
            class_ids=data.labels[data.relabeled],
            skip_frames=True,
            provenance=pb.Provenance(source="review", author="ana", reason="fixed"),
        )
        r2 = c.upload("pets", "photos", relabel, progress=False)
        assert c.wait_for_upload("pets", r2.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(
            project="pets", inference_set=pb.InferenceSet(name="resnet-bad", dataset="photos", model_name="resnet",
                                                          model_version="2")))  # fmt: skip
        bad = UploadColumns(frame_ids=data.frame_ids, skip_frames=True, inference_set="resnet-bad",
                            probabilities=data.bad_probs)  # fmt: skip
        r4 = c.upload("pets", "photos", bad, progress=False)
        assert c.wait_for_upload("pets", r4.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        # frames with neither label nor prediction
        extra = UploadColumns(frame_ids=[f"bare-{i}" for i in range(50)], splits=["train"] * 50)
        r3 = c.upload("pets", "photos", extra, progress=False)
        assert c.wait_for_upload("pets", r3.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    yield running, data
    running.server.stop(grace=1)


def _metrics(running: Running, **kwargs) -> apb.ClassificationMetrics:  # type: ignore[no-untyped-def]
    with running.client(running.admin_key) as c:
        return c.analysis.GetClassificationMetrics(
            apb.GetClassificationMetricsRequest(project="pets", inference_set="resnet", **kwargs)
        ).metrics


def _reference_ece(conf: np.ndarray, right: np.ndarray, bins: int) -> float:
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(right[m].mean() - conf[m].mean())
    return ece


@pytest.mark.parametrize("threshold", [0.0, 0.55])
def test_classification_metrics_equal_scikit_learn(served, threshold: float) -> None:  # type: ignore[no-untyped-def]
    running, data = served
    m = _metrics(running, confidence_threshold=threshold, top_k=2, calibration_bins=15)
    keep = data.labeled
    y_true, y_pred = data.labels[keep], data.pred(threshold)[keep]
    labels = list(IDS)
    assert m.frames == keep.sum() and m.abstained == (y_pred == -1).sum()
    assert m.accuracy == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    assert [c.class_id for c in m.per_class] == labels
    assert [c.class_name for c in m.per_class] == [n for _, n in CLASSES]
    np.testing.assert_allclose([c.precision for c in m.per_class], p, atol=1e-12)
    np.testing.assert_allclose([c.recall for c in m.per_class], r, atol=1e-12)
    np.testing.assert_allclose([c.f1 for c in m.per_class], f, atol=1e-12)
    assert [c.support for c in m.per_class] == list(s)
    for avg, got in (("macro", (m.macro_precision, m.macro_recall, m.macro_f1)),
                     ("weighted", (m.weighted_precision, m.weighted_recall, m.weighted_f1))):  # fmt: skip
        want = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)[:3]
        np.testing.assert_allclose(got, want, atol=1e-12)
    k = len(labels)
    cm = np.array(m.confusion.counts).reshape(k, k + 1)
    assert list(m.confusion.class_ids) == labels
    np.testing.assert_array_equal(cm[:, :k], confusion_matrix(y_true, y_pred, labels=labels))
    np.testing.assert_array_equal(cm[:, k], [((y_true == c) & (y_pred == -1)).sum() for c in labels])
    probs = data.probs[keep]
    assert m.top_k == 2
    assert m.top_k_accuracy == pytest.approx(
        top_k_accuracy_score(y_true, probs[:, np.argsort(IDS)], k=2, labels=np.sort(IDS)), abs=1e-12
    )
    conf = probs.max(axis=1).astype(np.float64)
    right = IDS[probs.argmax(axis=1)] == y_true
    assert m.expected_calibration_error == pytest.approx(_reference_ece(conf, right, 15), abs=1e-9)
    assert len(m.reliability) == 15 and sum(b.count for b in m.reliability) == keep.sum()


def test_metrics_of_a_filtered_slice(served) -> None:  # type: ignore[no-untyped-def]
    running, data = served
    flt = cpb.Filter(all=[
        cpb.Condition(field="split", equals=cpb.Value(string_value="val")),
        cpb.Condition(field="metadata.camera", equals=cpb.Value(string_value="front")),
        cpb.Condition(field="metadata.lux", range=cpb.Range(min=cpb.Value(number_value=200.0))),
    ])  # fmt: skip
    m = _metrics(running, filter=flt)
    keep = data.labeled & (data.splits == "val") & (data.camera == "front") & (data.lux >= 200)
    assert m.frames == keep.sum() > 100
    assert m.accuracy == pytest.approx(accuracy_score(data.labels[keep], data.pred()[keep]), abs=1e-12)


def _query(running: Running, **kwargs) -> apb.QueryDatapointsResponse:  # type: ignore[no-untyped-def]
    with running.client(running.admin_key) as c:
        return c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(project="pets", **kwargs))


def _all_pages(running: Running, page_size: int, **kwargs) -> list[apb.Datapoint]:  # type: ignore[no-untyped-def]
    out: list[apb.Datapoint] = []
    token = ""
    while True:
        resp = _query(running, page=cpb.PageRequest(page_size=page_size, page_token=token), **kwargs)
        out.extend(resp.datapoints)
        token = resp.page.next_page_token
        if not token:
            return out


def test_a_confusion_cell_opens_to_exactly_its_frames_sorted_by_loss(served) -> None:  # type: ignore[no-untyped-def]
    running, data = served
    truth, predicted = 2, 7  # dogs taken for cats
    cell = cpb.Filter(all=[
        cpb.Condition(field="label_class", equals=cpb.Value(number_value=truth)),
        cpb.Condition(field="predicted_class", equals=cpb.Value(string_value="cat")),  # by name works too
    ])  # fmt: skip
    sort = [apb.SortKey(field="loss", descending=True)]
    got = _all_pages(running, 7, inference_set="resnet", filter=cell, sort=sort)
    want = np.flatnonzero(data.labeled & (data.labels == truth) & (data.pred() == predicted))
    assert len(want) > 20
    order = {c: i for i, c in enumerate(IDS)}
    loss = -np.log(np.maximum(data.probs[want, order[truth]].astype(np.float64), 1e-12))
    want_sorted = [data.frame_ids[i] for i in want[np.lexsort((np.array(data.frame_ids)[want], -loss))]]
    assert [d.ref.frame_id for d in got] == want_sorted  # no row lost, none repeated, in loss order
    first = got[0]
    assert first.label_class == truth and first.predicted_class == predicted
    assert first.media_uri == f"s3://b/{first.ref.frame_id}.jpg" and first.ref.dataset == "photos"
    assert first.loss == pytest.approx(loss.max(), rel=1e-6)
    assert len(first.class_probabilities) == len(CLASSES)
    assert first.metadata["camera"].string_value in ("front", "rear")
    assert _query(running, inference_set="resnet", filter=cell).page.total_count == len(want)


def test_paging_is_stable_when_rows_arrive_between_pages(served) -> None:  # type: ignore[no-untyped-def]
    running, _ = served
    # a dataset of its own, since this test adds a frame mid-way
    rng = np.random.default_rng(11)
    n = 300
    ids = [f"s-{i:04d}" for i in range(n)]
    probs = rng.dirichlet(np.ones(len(CLASSES)), n).astype(np.float32)
    with running.client(running.admin_key) as c:
        c.ingest.CreateDataset(pb.CreateDatasetRequest(
            project="pets", dataset=pb.Dataset(name="stream", kind=pb.DATASET_KIND_LABELED, splits=["val"])))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="pets", inference_set=pb.InferenceSet(
            name="stream-model", dataset="stream", model_name="m", model_version="1")))  # fmt: skip
        r = c.upload("pets", "stream", UploadColumns(frame_ids=ids, splits=["val"] * n, class_ids=IDS[np.arange(n) % 4],
                                                     inference_set="stream-model", probabilities=probs), progress=False)  # fmt: skip
        c.wait_for_upload("pets", r.upload_id, timeout=60)
    sort = [apb.SortKey(field="confidence", descending=True)]
    page1 = _query(running, inference_set="stream-model", sort=sort, page=cpb.PageRequest(page_size=50))
    # a new, very confident frame that sorts before the cursor arrives between the two pages
    with running.client(running.admin_key) as c:
        extra = UploadColumns(frame_ids=["late-1"], splits=["val"], class_ids=[7], inference_set="stream-model",
                              probabilities=np.array([[0.997, 0.001, 0.001, 0.001]], dtype=np.float32))  # fmt: skip
        r = c.upload("pets", "stream", extra, progress=False)
        c.wait_for_upload("pets", r.upload_id, timeout=60)
    page2 = _query(running, inference_set="stream-model", sort=sort,
                   page=cpb.PageRequest(page_size=50, page_token=page1.page.next_page_token))  # fmt: skip
    ids1 = [d.ref.frame_id for d in page1.datapoints]
    ids2 = [d.ref.frame_id for d in page2.datapoints]
    assert not set(ids1) & set(ids2) and "late-1" not in ids2
    ranked = [ids[i] for i in np.lexsort((np.array(ids), -probs.max(axis=1)))]
    assert ids1 + ids2 == ranked[:100]
    assert page1.page.total_count == n and page2.page.total_count == n + 1  # the count sees the new frame


def test_filters_are_values_never_sql(served) -> None:  # type: ignore[no-untyped-def]
    running, _ = served
    before = _query(running, dataset="photos").page.total_count
    evil = "front' OR 1=1 --"
    resp = _query(running, dataset="photos", filter=cpb.Filter(all=[
        cpb.Condition(field="metadata.camera", equals=cpb.Value(string_value=evil))]))  # fmt: skip
    assert resp.page.total_count == 0 and not resp.datapoints
    resp = _query(running, dataset="photos", filter=cpb.Filter(all=[
        cpb.Condition(field="frame_id", **{"in": cpb.ValueList(values=[cpb.Value(string_value="x') OR ('1'='1")])})]))  # fmt: skip
    assert resp.page.total_count == 0
    for field in ("split = '' OR 1=1", "metadata.x'] OR 1=1 --", "frames.frame_id"):
        with pytest.raises(grpc.RpcError) as info:
            _query(running, dataset="photos",
                   filter=cpb.Filter(all=[cpb.Condition(field=field, exists=True)]))  # fmt: skip
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith("filter.all[0].field")
    # the data is all still there
    assert _query(running, dataset="photos").page.total_count == before == N + 50


@pytest.mark.parametrize(
    ("request_kwargs", "field", "words"),
    [
        ({"inference_set": "resnet", "confidence_threshold": 1.5}, "confidence_threshold", "[0, 1]"),
        ({"dataset": "photos", "filter": cpb.Filter(all=[cpb.Condition(field="loss", exists=True)])},
         "filter.all[0].field", "needs an inference set"),
        ({"inference_set": "resnet", "filter": cpb.Filter(all=[
            cpb.Condition(field="confidence", equals=cpb.Value(string_value="high"))])},
         "filter.all[0].equals", "expects a number value"),
        ({"inference_set": "resnet", "filter": cpb.Filter(all=[
            cpb.Condition(field="label_class", equals=cpb.Value(string_value="unicorn"))])},
         "filter.all[0].equals", "unknown class 'unicorn'"),
        ({"inference_set": "resnet", "sort": [apb.SortKey(field="media_uri")]}, "sort[0].field", "cannot sort by"),
        ({"inference_set": "resnet", "page": cpb.PageRequest(page_token="garbage")}, "page.page_token", "not a token"),
        ({}, "dataset", "give a dataset or an inference set"),
    ],
)  # fmt: skip
def test_bad_queries_name_the_field(served, request_kwargs, field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    running, _ = served
    with pytest.raises(grpc.RpcError) as info:
        _query(running, **request_kwargs)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(field) and words in info.value.details()


def test_a_token_of_another_query_is_refused_and_unknown_sets_are_not_found(served) -> None:  # type: ignore[no-untyped-def]
    running, _ = served
    first = _query(running, inference_set="resnet", page=cpb.PageRequest(page_size=5))
    with pytest.raises(grpc.RpcError) as info:
        _query(running, inference_set="resnet", confidence_threshold=0.3,
               page=cpb.PageRequest(page_size=5, page_token=first.page.next_page_token))  # fmt: skip
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "different query" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        _query(running, inference_set="nope")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_sorting_by_metadata_and_unlabeled_frames(served) -> None:  # type: ignore[no-untyped-def]
    running, data = served
    got = _query(running, dataset="photos", sort=[apb.SortKey(field="metadata.lux")],
                 page=cpb.PageRequest(page_size=10)).datapoints  # fmt: skip
    assert [d.ref.frame_id for d in got] == [data.frame_ids[i] for i in np.argsort(data.lux)[:10]]
    unlabeled = _query(running, dataset="photos", filter=cpb.Filter(all=[
        cpb.Condition(field="labeled", equals=cpb.Value(bool_value=False))]))  # fmt: skip
    assert unlabeled.page.total_count == data.unlabeled.sum() + 50
    # a key scoped to another project sees nothing of this one
    _, other = running.server.keys.create(["other"])
    with running.client(other) as c, pytest.raises(grpc.RpcError) as info:
        c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(project="pets", dataset="photos"))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_slices_rank_the_site_where_the_model_guesses(served) -> None:  # type: ignore[no-untyped-def]
    from scipy.stats import binomtest

    running, data = served
    with running.client(running.admin_key) as c:
        resp = c.analysis.GetSlices(apb.GetSlicesRequest(project="pets", inference_set="resnet",
                                                         group_by="metadata.site", min_support=50))  # fmt: skip
    keep = data.labeled
    right = data.pred()[keep] == data.labels[keep]
    assert resp.frames == keep.sum() and resp.overall_accuracy == pytest.approx(right.mean(), abs=1e-12)
    assert [x.value for x in resp.slices] == [f"s{i}" for i in range(8)]
    for x in resp.slices:
        m = data.site[keep] == x.value
        assert (x.frames, x.correct) == (m.sum(), right[m].sum())
        ci = binomtest(int(right[m].sum()), int(m.sum())).proportion_ci(confidence_level=0.95, method="wilson")
        assert (x.interval_lower, x.interval_upper) == pytest.approx((ci.low, ci.high), abs=1e-9)
        assert x.drop == pytest.approx(right.mean() - right[m].mean(), abs=1e-12)
    assert [x.value for x in resp.worst][:1] == ["s7"]
    assert all(x.interval_upper < resp.overall_accuracy for x in resp.worst)
    # a slice's link opens the grid at its value: its count (kept by the slices' read) is the grid's count
    for x in resp.slices[:3]:
        for sort in ("frame_id", "loss"):
            site = cpb.Condition(field="metadata.site", equals=cpb.Value(string_value=x.value))
            among = cpb.Condition(
                field="metadata.site", **{"in": cpb.ValueList(values=[cpb.Value(string_value=x.value)])}
            )
            counted = [_query(running, inference_set="resnet", filter=cpb.Filter(all=[c]), sort=[apb.SortKey(field=sort)],
                              page=cpb.PageRequest(page_size=1)).page.total_count for c in (site, among)]  # fmt: skip
            assert counted[0] == counted[1] >= x.frames > 0, (x.value, sort)
    with running.client(running.admin_key) as c:
        by_split = c.analysis.GetSlices(apb.GetSlicesRequest(project="pets", inference_set="resnet", group_by="split"))
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.GetSlices(apb.GetSlicesRequest(project="pets", inference_set="resnet", group_by="media_uri"))
    assert {x.value: x.frames for x in by_split.slices} == {
        v: int((data.splits[keep] == v).sum()) for v in ("train", "val")
    }
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and info.value.details().startswith("group_by")


def test_model_comparison_and_the_regressed_frames(served) -> None:  # type: ignore[no-untyped-def]
    running, data = served
    with running.client(running.admin_key) as c:
        resp = c.analysis.CompareInferenceSets(apb.CompareInferenceSetsRequest(
            project="pets", baseline_inference_set="resnet", candidate_inference_set="resnet-bad"))  # fmt: skip
    keep = data.labeled
    y = data.labels[keep]
    base, cand = data.pred()[keep], data.pred(probs=data.bad_probs)[keep]
    assert resp.frames == keep.sum()
    assert resp.baseline_accuracy == pytest.approx(accuracy_score(y, base), abs=1e-12)
    assert resp.candidate_accuracy == pytest.approx(accuracy_score(y, cand), abs=1e-12)
    assert resp.improved == ((cand == y) & (base != y)).sum() and resp.regressed == ((base == y) & (cand != y)).sum()
    p0, r0, f0, _ = precision_recall_fscore_support(y, base, labels=list(IDS), zero_division=0)
    p1, r1, f1, _ = precision_recall_fscore_support(y, cand, labels=list(IDS), zero_division=0)
    np.testing.assert_allclose([d.recall_delta for d in resp.per_class], r1 - r0, atol=1e-12)
    np.testing.assert_allclose([d.f1_delta for d in resp.per_class], f1 - f0, atol=1e-12)
    np.testing.assert_allclose([d.baseline.precision for d in resp.per_class], p0, atol=1e-12)
    np.testing.assert_allclose([d.candidate.precision for d in resp.per_class], p1, atol=1e-12)
    dog = next(d for d in resp.per_class if d.class_name == "dog")
    assert dog.recall_delta < -0.4 and dog.candidate.recall < 0.05
    # the regressed frames, drillable like a confusion cell
    regressed = _all_pages(
        running, 200, inference_set="resnet-bad", baseline_inference_set="resnet",
        filter=cpb.Filter(all=[cpb.Condition(field="change", equals=cpb.Value(string_value="regressed"))]),
    )  # fmt: skip
    want = {data.frame_ids[i] for i in np.flatnonzero(keep)[(base == y) & (cand != y)]}
    assert {d.ref.frame_id for d in regressed} == want
    assert all(d.baseline_predicted_class == d.label_class != d.predicted_class for d in regressed)


def _segment(c, name: str, kind: int, frame_ids, gates=()):  # type: ignore[no-untyped-def]
    return c.analysis.CreateSegment(apb.CreateSegmentRequest(project="pets", frame_ids=list(frame_ids), segment=apb.Segment(
        name=name, dataset="photos", kind=kind, reason="dogs must stay dogs", author="ana", gates=list(gates))))  # fmt: skip


def test_segments_membership_and_errors(served) -> None:  # type: ignore[no-untyped-def]
    running, data = served
    members = data.frame_ids[:40]
    with running.client(running.admin_key) as c:
        seg = _segment(c, "night-shift", apb.SEGMENT_KIND_ISSUE, members).segment
        assert (seg.name, seg.size, seg.kind, seg.author) == ("night-shift", 40, apb.SEGMENT_KIND_ISSUE, "ana")
        got = _query(running, dataset="photos", filter=cpb.Filter(all=[
            cpb.Condition(field="segment", equals=cpb.Value(string_value="night-shift"))]), page=cpb.PageRequest(page_size=100))  # fmt: skip
        assert sorted(d.ref.frame_id for d in got.datapoints) == sorted(members)
        upd = c.analysis.UpdateSegment(apb.UpdateSegmentRequest(
            project="pets", name="night-shift", reason="seen at night", add_frame_ids=["bare-1"],
            remove_frame_ids=members[:10])).segment  # fmt: skip
        assert (upd.size, upd.reason) == (31, "seen at night")
        listed = c.analysis.ListSegmentMembers(apb.ListSegmentMembersRequest(
            project="pets", name="night-shift", page=cpb.PageRequest(page_size=20)))  # fmt: skip
        assert listed.page.total_count == 31 and len(listed.members) == 20 and listed.page.next_page_token
        issues = c.analysis.ListSegments(apb.ListSegmentsRequest(project="pets", kinds=[apb.SEGMENT_KIND_ISSUE]))
        assert "night-shift" in [s.name for s in issues.segments]
        for args, code, field in (
            (("Bad Name", apb.SEGMENT_KIND_ISSUE, members), grpc.StatusCode.INVALID_ARGUMENT, "segment.name"),
            (("night-shift", apb.SEGMENT_KIND_ISSUE, members), grpc.StatusCode.ALREADY_EXISTS, "segment.name"),
            (("x", apb.SEGMENT_KIND_ISSUE, ["img-00001", "nope"]), grpc.StatusCode.INVALID_ARGUMENT, "frame_ids[1]"),
            (("y", apb.SEGMENT_KIND_ISSUE, members, [apb.Gate(metric="accuracy", minimum=0.5)]),
             grpc.StatusCode.INVALID_ARGUMENT, "segment.gates"),
            (("z", apb.SEGMENT_KIND_REGRESSION_TEST, members, [apb.Gate(metric="recall", minimum=0.5)]),
             grpc.StatusCode.INVALID_ARGUMENT, "segment.gates[0].class_id"),
        ):  # fmt: skip
            with pytest.raises(grpc.RpcError) as info:
                _segment(c, *args)
            assert info.value.code() == code and info.value.details().startswith(field), info.value.details()


def test_regression_gates_and_shoal_check(served) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    running, data = served
    dogs = [data.frame_ids[i] for i in np.flatnonzero(data.labeled & (data.labels == 2))]
    gates = [apb.Gate(metric="recall", class_id=2, minimum=0.4), apb.Gate(metric="accuracy", minimum=0.4)]
    with running.client(running.admin_key) as c:
        _segment(c, "dogs-rt", apb.SEGMENT_KIND_REGRESSION_TEST, dogs, gates)
        good = c.analysis.EvaluateGates(apb.EvaluateGatesRequest(project="pets", inference_set="resnet"))
        bad = c.analysis.EvaluateGates(apb.EvaluateGatesRequest(project="pets", inference_set="resnet-bad"))
    idx = np.flatnonzero(data.labeled & (data.labels == 2))
    recall = (data.pred()[idx] == 2).mean()
    assert len(good.results) == 2 and not good.failed
    assert good.results[0].value == pytest.approx(recall, abs=1e-12) and good.results[0].frames == len(dogs)
    assert len(bad.failed) == 2 and all(r.value < 0.4 for r in bad.failed)

    env = {**os.environ, "SHOAL_API_KEY": running.admin_key}

    def check(inference_set: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shoal.cli", "check", "--target", running.target, "--project", "pets",
             "--inference-set", inference_set], capture_output=True, text=True, env=env, timeout=scaled(120),
        )  # fmt: skip

    passed, failed = check("resnet"), check("resnet-bad")
    assert passed.returncode == 0, passed.stderr
    assert "PASS  dogs-rt: recall[class 2]" in passed.stdout and "2 of 2 gates passed" in passed.stdout
    assert failed.returncode == 1 and "FAIL  dogs-rt: accuracy" in failed.stdout
    missing = check("nope")
    assert missing.returncode == 2 and "NOT_FOUND" in missing.stderr


def test_an_inference_set_created_later_covers_every_frame(served) -> None:  # type: ignore[no-untyped-def]
    running, data = served
    with running.client(running.admin_key) as c:
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="pets", inference_set=pb.InferenceSet(
            name="late-model", dataset="photos", model_name="m", model_version="9")))  # fmt: skip
        m = c.analysis.GetClassificationMetrics(
            apb.GetClassificationMetricsRequest(project="pets", inference_set="late-model")
        ).metrics
    assert m.frames == 0  # nothing predicted yet
    every = _query(running, inference_set="late-model")
    assert every.page.total_count == _query(running, dataset="photos").page.total_count
    predicted = _query(running, inference_set="late-model", filter=cpb.Filter(all=[
        cpb.Condition(field="predicted_class", exists=True)]))  # fmt: skip
    assert predicted.page.total_count == 0
    # labels are there: the rows carry the frames' current labels
    labeled = _query(running, inference_set="late-model", filter=cpb.Filter(all=[
        cpb.Condition(field="label_class", equals=cpb.Value(string_value="dog"))]))  # fmt: skip
    assert labeled.page.total_count == (data.labeled & (data.labels == 2)).sum()


def test_a_dataset_without_inference_sets_and_its_first_set(served) -> None:  # type: ignore[no-untyped-def]
    running, _ = served
    ids = [f"p-{i}" for i in range(120)]
    with running.client(running.admin_key) as c:
        c.ingest.CreateDataset(pb.CreateDatasetRequest(
            project="pets", dataset=pb.Dataset(name="plain", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        r = c.upload("pets", "plain", UploadColumns(frame_ids=ids, class_ids=IDS[np.arange(120) % 4]), progress=False)
        c.wait_for_upload("pets", r.upload_id, timeout=60)
        assert _query(running, dataset="plain").page.total_count == 120
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="pets", inference_set=pb.InferenceSet(
            name="first", dataset="plain", model_name="m", model_version="1")))  # fmt: skip
        more = UploadColumns(frame_ids=["p-late"], class_ids=[7])
        r = c.upload("pets", "plain", more, progress=False)
        c.wait_for_upload("pets", r.upload_id, timeout=60)
    # the new set covers the frames from before it and after it, and so do frame-only queries
    assert _query(running, inference_set="first").page.total_count == 121
    assert _query(running, dataset="plain").page.total_count == 121
    cats = _query(running, dataset="plain", filter=cpb.Filter(all=[
        cpb.Condition(field="label_class", equals=cpb.Value(string_value="cat"))]))  # fmt: skip
    assert cats.page.total_count == 30 + 1


def test_repeated_questions_follow_every_change_of_the_data(served) -> None:  # type: ignore[no-untyped-def]
    # the heat map, a cell's count and its first page are kept between calls; a relabel must show at once
    running, _ = served
    n = 40
    rng = np.random.default_rng(3)
    probs = np.tile(np.array([0.9, 0.1], dtype=np.float32), (n, 1))
    probs[:, 0] -= rng.uniform(0, 0.3, n).astype(np.float32)
    probs[:, 1] = 1 - probs[:, 0]
    ids = [f"h{i:02d}" for i in range(n)]
    cell = cpb.Filter(all=[cpb.Condition(field="label_class", equals=cpb.Value(number_value=1))])
    sort = [apb.SortKey(field="loss", descending=True)]
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="herd", task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="cow"),
                                                                         pb.ClassDef(id=1, name="ox")])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="herd", dataset=pb.Dataset(
            name="field", kind=pb.DATASET_KIND_LABELED, splits=["train"])))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="herd", inference_set=pb.InferenceSet(
            name="m", dataset="field", model_name="m", model_version="1")))  # fmt: skip

        def upload(columns: UploadColumns) -> None:
            r = c.upload("herd", "field", columns, progress=False)
            assert c.wait_for_upload("herd", r.upload_id, timeout=scaled(120)).state == pb.UPLOAD_STATE_COMPLETED

        def confusion() -> list[int]:
            request = apb.GetClassificationMetricsRequest(project="herd", inference_set="m")
            return list(c.analysis.GetClassificationMetrics(request).metrics.confusion.counts)

        def oxen() -> tuple[int, list[str]]:
            page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
                project="herd", inference_set="m", filter=cell, sort=sort, page=cpb.PageRequest(page_size=5)))  # fmt: skip
            return page.page.total_count, [d.ref.frame_id for d in page.datapoints]

        upload(UploadColumns(frame_ids=ids, splits=["train"] * n, class_ids=[0] * n, inference_set="m",
                             probabilities=probs))  # fmt: skip
        # rows: labeled cow, ox; columns: predicted cow, ox, abstained
        assert confusion() == confusion() == [n, 0, 0, 0, 0, 0]
        assert oxen() == oxen() == (0, [])
        relabeled = [0, 3, 5, 8, 13, 21]
        before = _refreshed()
        upload(UploadColumns(frame_ids=[ids[i] for i in relabeled], class_ids=[1] * len(relabeled),
                             skip_frames=True))  # fmt: skip
        # the questions just asked are computed again in the background once their tables changed
        wait_for(lambda: _refreshed() > before, what="the kept answers to be refreshed after the relabel")
        assert confusion() == [n - len(relabeled), 0, 0, len(relabeled), 0, 0]
        worst = sorted(relabeled, key=lambda i: (-probs[i, 0], ids[i]))  # labeled ox, so the loss is -log p(ox)
        assert oxen() == (len(relabeled), [ids[i] for i in worst[:5]])


def _refreshed() -> float:
    """Answers the analysis services of this process computed again in the background."""
    value = REGISTRY.get_sample_value("shoal_kept_answers_total", {"outcome": "refreshed"})
    return value or 0.0


def test_a_large_sets_comparison_with_the_set_before_is_read_from_their_rows_kept_side_by_side(  # type: ignore[no-untyped-def]
    served,
) -> None:
    """Once a second model's predictions of a large set settle, the preparer keeps its rows beside the first model's:
    the comparison, and the grid of the frames it regressed (count and pages) read them, not the join of the two
    sets, and equal numpy's. A comparison of another pair, asked for, is kept too."""
    running, _ = served
    preparer = preparer_of(running)
    n, rng = 600, np.random.default_rng(5)
    labels = rng.integers(0, 3, n)
    ids = [f"o{i:04d}" for i in range(n)]
    predicted = {}
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="owl", task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=i, name=f"c{i}") for i in range(3)])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="owl", dataset=pb.Dataset(
            name="barn", kind=pb.DATASET_KIND_LABELED, splits=["train"])))  # fmt: skip
        for name in ("old", "new"):  # the new model after the old one
            c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="owl", inference_set=pb.InferenceSet(
                name=name, dataset="barn", model_name=name, model_version="1")))  # fmt: skip
            probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
            probs[np.arange(n), labels] += 0.3 if name == "new" else 0.2
            probs /= probs.sum(axis=1, keepdims=True)
            predicted[name] = probs.argmax(axis=1)
            done = c.upload("owl", "barn", UploadColumns(frame_ids=ids, splits=["train"] * n, class_ids=labels,
                                                         inference_set=name, probabilities=probs), progress=False)  # fmt: skip
            assert c.wait_for_upload("owl", done.upload_id, timeout=scaled(120)).state == pb.UPLOAD_STATE_COMPLETED
        wait_for(lambda: preparer.orders_kept("owl", "barn", "new"), what="owl/new's sorts and comparison")
        right = {name: predicted[name] == labels for name in predicted}
        regressed = np.flatnonzero(right["old"] & ~right["new"])
        read = lambda w: REGISTRY.get_sample_value("shoal_grid_compare_read_total", {"listing": w}) or 0.0  # noqa: E731
        before = read("changed"), read("changes")
        got = c.analysis.CompareInferenceSets(apb.CompareInferenceSetsRequest(
            project="owl", baseline_inference_set="old", candidate_inference_set="new"))  # fmt: skip
        assert (got.improved, got.regressed) == (int((~right["old"] & right["new"]).sum()), len(regressed))
        assert got.candidate_accuracy == pytest.approx(right["new"].mean())
        shown, token = [], ""
        while True:
            page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
                project="owl", inference_set="new", baseline_inference_set="old",
                filter=cpb.Filter(all=[cpb.Condition(field="change", equals=cpb.Value(string_value="regressed"))]),
                page=cpb.PageRequest(page_size=20, page_token=token)))  # fmt: skip
            assert page.page.total_count == len(regressed) > 0
            shown += [d.ref.frame_id for d in page.datapoints]
            token = page.page.next_page_token
            if not token:
                break
        assert shown == [ids[i] for i in regressed]
        assert read("changed") > before[0] and read("changes") > before[1]  # the grid's listing; the metrics' counts
        # another pair (the old model against the new one): read from the join, noted, then kept by the preparer too
        back = apb.QueryDatapointsRequest(
            project="owl", inference_set="old", baseline_inference_set="new",
            filter=cpb.Filter(all=[cpb.Condition(field="change", equals=cpb.Value(string_value="regressed"))]),
            page=cpb.PageRequest(page_size=1000))  # fmt: skip
        worse = [ids[i] for i in np.flatnonzero(right["new"] & ~right["old"])]
        before = read("changed")
        assert [d.ref.frame_id for d in c.analysis.QueryDatapoints(back).datapoints] == worse
        assert read("changed") == before
        wait_for(lambda: preparer.compared("owl", "barn", "old", "new"), what="owl/old compared with owl/new")
        back.filter.all.add(field="split", equals=cpb.Value(string_value="train"))  # not a kept answer
        assert [d.ref.frame_id for d in c.analysis.QueryDatapoints(back).datapoints] == worse
        assert read("changed") > before


def test_the_consoles_first_views_are_prepared_before_anyone_asks(served) -> None:  # type: ignore[no-untyped-def]
    """Once an upload has settled, the heat map, the slices by split and the grid's counts (every frame, a split,
    a class, a confusion cell, with and without a split) are kept before the first call: they are answered
    without reading the data, and equal what reading it gives."""
    running, _ = served
    preparer = preparer_of(running)
    n, rng = 600, np.random.default_rng(11)
    labels = rng.integers(0, 3, n)
    probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
    probs[np.arange(n), labels] += 0.4
    probs /= probs.sum(axis=1, keepdims=True)
    predicted = probs.argmax(axis=1)
    splits = np.where(rng.random(n) < 0.25, "val", "train")
    ids = [f"d{i:04d}" for i in range(n)]
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="den", task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=i, name=f"c{i}") for i in range(3)])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="den", dataset=pb.Dataset(
            name="cave", kind=pb.DATASET_KIND_LABELED, splits=["train", "val"])))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="den", inference_set=pb.InferenceSet(
            name="m", dataset="cave", model_name="m", model_version="1")))  # fmt: skip
        # a camera (few values) and a frame's own serial (a value per frame, which is not sliced)
        cameras = np.array(["front", "rear", "side"])[rng.integers(0, 3, n)]
        metadata = [{"camera": str(cam), "serial": f"s{i}"} for i, cam in enumerate(cameras)]
        done = c.upload("den", "cave", UploadColumns(frame_ids=ids, splits=list(splits), class_ids=labels,
                                                     inference_set="m", probabilities=probs, metadata=metadata),
                        progress=False)  # fmt: skip
        assert c.wait_for_upload("den", done.upload_id, timeout=scaled(120)).state == pb.UPLOAD_STATE_COMPLETED
        wait_for(lambda: preparer.prepared("den", "cave", "m"), what="the views of den/m to be prepared")

        def eq(field: str, value: object) -> cpb.Condition:
            v = cpb.Value(string_value=value) if isinstance(value, str) else cpb.Value(number_value=float(value))
            return cpb.Condition(field=field, equals=v)

        computed = computed_answers
        wrong = cpb.Condition(field="correct", equals=cpb.Value(bool_value=False))
        before = computed()
        heat = c.analysis.GetClassificationMetrics(
            apb.GetClassificationMetricsRequest(project="den", inference_set="m")
        )
        assert list(heat.metrics.confusion.counts) == [int(((labels == a) & (predicted == b)).sum()) if b < 3 else 0
                                                       for a in range(3) for b in range(4)]  # fmt: skip
        assert computed() == before  # the heat map was kept
        by_split = c.analysis.GetSlices(apb.GetSlicesRequest(project="den", inference_set="m", group_by="split"))
        got = {x.value: (x.frames, x.correct) for x in by_split.slices}
        assert got == {v: (int((splits == v).sum()), int(((splits == v) & (labels == predicted)).sum()))
                       for v in ("train", "val")}  # fmt: skip
        assert computed() == before  # and so were the slices by split
        # the performance page with a split picked: its heat map and its slices by split
        in_val = cpb.Filter(all=[cpb.Condition(field="split", equals=cpb.Value(string_value="val"))])
        val_heat = c.analysis.GetClassificationMetrics(
            apb.GetClassificationMetricsRequest(project="den", inference_set="m", filter=in_val)
        )
        val = splits == "val"
        assert list(val_heat.metrics.confusion.counts) == [int((val & (labels == a) & (predicted == b)).sum())
                                                           if b < 3 else 0 for a in range(3) for b in range(4)]  # fmt: skip
        val_slices = c.analysis.GetSlices(apb.GetSlicesRequest(project="den", inference_set="m", group_by="split",
                                                               filter=in_val))  # fmt: skip
        assert {x.value: x.frames for x in val_slices.slices} == {"val": int(val.sum())}
        assert computed() == before
        by_camera = c.analysis.GetSlices(apb.GetSlicesRequest(project="den", inference_set="m",
                                                              group_by="metadata.camera"))  # fmt: skip
        assert {x.value: x.frames for x in by_camera.slices} == {v: int((cameras == v).sum()) for v in cameras}
        assert computed() == before  # and by a metadata key of few values, with the grid's count of each value
        for value in ("front", "side"):  # a slice's link: the grid's count is kept, its page and sizes are read
            page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
                project="den", inference_set="m", filter=cpb.Filter(all=[eq("metadata.camera", value)]),
                sort=[apb.SortKey(field="frame_id")], page=cpb.PageRequest(page_size=60)))  # fmt: skip
            assert page.page.total_count == int((cameras == value).sum()) and computed() == before + 2, value
            before = computed()
        # a key of a value per frame was not sliced before anyone asked: its slices are read on the call
        c.analysis.GetSlices(apb.GetSlicesRequest(project="den", inference_set="m", group_by="metadata.serial"))
        assert computed() == before + 1
        before = computed()
        grids = [
            ([], n),
            ([eq("split", "val")], int((splits == "val").sum())),
            ([eq("label_class", 2)], int((labels == 2).sum())),
            ([eq("label_class", 1), eq("predicted_class", 0)], int(((labels == 1) & (predicted == 0)).sum())),
            ([eq("label_class", 2), eq("predicted_class", 1)], int(((labels == 2) & (predicted == 1)).sum())),
            ([eq("split", "train"), eq("label_class", 0), eq("predicted_class", 2)],
             int(((splits == "train") & (labels == 0) & (predicted == 2)).sum())),
            # the wrong (and right) predictions, of every frame, a split and a class
            ([wrong], int((labels != predicted).sum())),
            ([eq("split", "val"), wrong], int(((splits == "val") & (labels != predicted)).sum())),
            ([eq("label_class", 2), wrong], int(((labels == 2) & (predicted != 2)).sum())),
            ([eq("split", "train"), eq("label_class", 1), cpb.Condition(field="correct", equals=cpb.Value(
                bool_value=True))], int(((splits == "train") & (labels == 1) & (predicted == 1)).sum())),
        ]  # fmt: skip
        for conditions, want in grids:
            for inference_set in ("m", ""):  # the frames alone read the set's rows too
                if inference_set == "" and any(x.field in ("predicted_class", "correct") for x in conditions):
                    continue
                before = computed()
                page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
                    project="den", dataset="cave", inference_set=inference_set, filter=cpb.Filter(all=conditions),
                    sort=[apb.SortKey(field="frame_id")], page=cpb.PageRequest(page_size=60)))  # fmt: skip
                assert page.page.total_count == want, conditions
                shown = [d.ref.frame_id for d in page.datapoints]
                assert shown == sorted(shown) and len(shown) == min(60, want)
                # the page itself is read (by frame id, the store stops after it), and its frames' sizes; its count
                # was kept
                assert computed() == before + 2, conditions
        # the first pages of every frame and of a split sorted by a prediction field, up or down, are kept too
        # (ten: here every page), and hold the frames in numpy's order
        loss = -np.log(np.maximum(probs[np.arange(n), labels].astype(np.float64), 1e-12))
        for conditions, rows in (([], np.arange(n)), ([eq("split", "val")], np.flatnonzero(splits == "val"))):
            for field, descending in (("loss", True), ("loss", False), ("confidence", False), ("margin", True)):
                before = computed()
                page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
                    project="den", dataset="cave", inference_set="m", filter=cpb.Filter(all=conditions),
                    sort=[apb.SortKey(field=field, descending=descending)], page=cpb.PageRequest(page_size=60)))  # fmt: skip
                assert computed() == before, (conditions, field, descending)
                assert page.page.total_count == len(rows) and len(page.datapoints) == 60
                if field == "loss":
                    key = -loss[rows] if descending else loss[rows]
                    want = [ids[i] for i in rows[np.lexsort((np.array(ids)[rows], key))]]
                    got = [d.ref.frame_id for d in page.datapoints]
                    # the next pages, as the grid scrolls, were kept with the first: none reads the set
                    while page.page.next_page_token:
                        page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
                            project="den", dataset="cave", inference_set="m", filter=cpb.Filter(all=conditions),
                            sort=[apb.SortKey(field=field, descending=descending)],
                            page=cpb.PageRequest(page_size=60, page_token=page.page.next_page_token)))  # fmt: skip
                        got += [d.ref.frame_id for d in page.datapoints]
                    assert got == want and computed() == before, (conditions, descending)
        # past the pages kept in memory (here: pages of 9 rows, which the grid does not ask for), a set of more
        # than `sorted_pages_above` frames (500 in the tests) keeps each sort whole in the store: every page of
        # every frame, of a split, of the wrong predictions, of both and of a confidence range is read from them,
        # in numpy's order
        wait_for(lambda: preparer.orders_kept("den", "cave", "m"), what="the grid's sorted pages of den/m")
        # sorted by labeled or predicted class: counted from the sorts' counts, read class by class from the cells
        for field, column in (("label_class", labels), ("predicted_class", predicted)):
            page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
                project="den", inference_set="m", filter=cpb.Filter(all=[eq("split", "val")]),
                sort=[apb.SortKey(field=field, descending=True)], page=cpb.PageRequest(page_size=60)))  # fmt: skip
            rows = np.flatnonzero(splits == "val")
            assert page.page.total_count == len(rows)
            want = [ids[i] for i in rows[np.lexsort((np.array(ids)[rows], -column[rows]))][:60]]
            assert [d.ref.frame_id for d in page.datapoints] == want, field
        # a confidence range sorted by loss: how many frames have both fields was kept too, so the first call
        # computes its count and its page alone
        before = computed()
        page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project="den", inference_set="m", filter=cpb.Filter(all=[cpb.Condition(field="confidence", range=cpb.Range(
                min=cpb.Value(number_value=0.5), max=cpb.Value(number_value=0.7)))]),
            sort=[apb.SortKey(field="loss", descending=True)], page=cpb.PageRequest(page_size=60)))  # fmt: skip
        confidence = probs.max(axis=1).astype(np.float64)
        assert page.page.total_count == int(((confidence >= 0.5) & (confidence <= 0.7)).sum())
        assert computed() == before + 2
        # its frames were counted by metadata value first: the slices by a key with a split picked, and the grid's
        # count of a value in a split, are read from those counts, not from the set
        values_read = lambda: REGISTRY.get_sample_value("shoal_grid_values_read_total") or 0.0  # noqa: E731
        before, in_val = values_read(), splits == "val"
        sliced = c.analysis.GetSlices(apb.GetSlicesRequest(project="den", inference_set="m", group_by="metadata.camera",
                                                           filter=cpb.Filter(all=[eq("split", "val")])))  # fmt: skip
        assert {x.value: x.frames for x in sliced.slices} == {v: int(((cameras == v) & in_val).sum()) for v in cameras}
        page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project="den", inference_set="m", filter=cpb.Filter(all=[eq("metadata.camera", "rear"), eq("split", "val")]),
            sort=[apb.SortKey(field="frame_id")], page=cpb.PageRequest(page_size=60)))  # fmt: skip
        assert page.page.total_count == int(((cameras == "rear") & in_val).sum())
        assert values_read() == before + 2

        # the performance page at a confidence threshold, of every frame and of a split: the metrics and the slices
        # by split at 0 (kept), with the frames below the threshold counted from the confidence sort's counts
        def derived() -> float:
            return sum(REGISTRY.get_sample_value("shoal_grid_orders_thresholds_total", {"metrics": x}) or 0.0
                       for x in ("report", "slices"))  # fmt: skip

        confidence, before = probs.max(axis=1).astype(np.float64), derived()
        for conditions, rows in (([], np.arange(n)), ([eq("split", "val")], np.flatnonzero(splits == "val"))):
            right = (labels[rows] == predicted[rows]) & (confidence[rows] >= 0.55)
            at = c.analysis.GetClassificationMetrics(
                apb.GetClassificationMetricsRequest(
                    project="den", inference_set="m", confidence_threshold=0.55, filter=cpb.Filter(all=conditions)
                )
            ).metrics
            assert at.frames == len(rows) and at.abstained == int((confidence[rows] < 0.55).sum()) > 0
            assert at.accuracy == pytest.approx(right.mean())
            assert [x.support for x in at.per_class] == np.bincount(labels[rows], minlength=3).tolist()
            sliced = c.analysis.GetSlices(apb.GetSlicesRequest(project="den", inference_set="m", group_by="split",
                                                               confidence_threshold=0.55,
                                                               filter=cpb.Filter(all=conditions)))  # fmt: skip
            assert {x.value: x.correct for x in sliced.slices} == {
                str(v): int(right[splits[rows] == v].sum()) for v in set(splits[rows])}  # fmt: skip
        assert derived() == before + 4
        # by a metadata key at the threshold too, from the confidence sort's counts by value and bucket; and the
        # slider beside a value from them
        right, in_val, before, read = (
            (labels == predicted) & (confidence >= 0.55),
            splits == "val",
            derived(),
            values_read(),
        )
        sliced = c.analysis.GetSlices(apb.GetSlicesRequest(project="den", inference_set="m", group_by="metadata.camera",
                                                           confidence_threshold=0.55,
                                                           filter=cpb.Filter(all=[eq("split", "val")])))  # fmt: skip
        assert {x.value: (x.frames, x.correct) for x in sliced.slices} == {
            v: (int(((cameras == v) & in_val).sum()), int(((cameras == v) & in_val & right).sum())) for v in cameras
        }
        assert derived() == before + 1
        sure = cpb.Condition(field="confidence", range=cpb.Range(min=cpb.Value(number_value=0.55)))
        page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project="den", inference_set="m", filter=cpb.Filter(all=[sure, eq("metadata.camera", "rear")]),
            sort=[apb.SortKey(field="frame_id")], page=cpb.PageRequest(page_size=60)))  # fmt: skip
        assert page.page.total_count == int(((cameras == "rear") & (confidence >= 0.55)).sum())
        high = cpb.Condition(field="loss", range=cpb.Range(min=cpb.Value(number_value=1.0)))  # and a range of loss
        page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project="den", inference_set="m", filter=cpb.Filter(all=[high, eq("metadata.camera", "front")]),
            sort=[apb.SortKey(field="loss", descending=True)], page=cpb.PageRequest(page_size=60)))  # fmt: skip
        assert page.page.total_count == int(((cameras == "front") & (loss >= 1.0)).sum()) > 0
        assert values_read() == read + 3
        kept = lambda: REGISTRY.get_sample_value("shoal_grid_sorted_pages_total", {"source": "kept"}) or 0.0  # noqa: E731
        wrong_rows = np.flatnonzero(labels != predicted)
        unsure = cpb.Condition(field="confidence", range=cpb.Range(max=cpb.Value(number_value=0.6)))
        for conditions, rows in (([], np.arange(n)), ([eq("split", "val")], np.flatnonzero(splits == "val")),
                                 ([wrong], wrong_rows), ([eq("split", "val"), wrong], np.intersect1d(
                                     wrong_rows, np.flatnonzero(splits == "val"))),
                                 ([unsure], np.flatnonzero(probs.max(axis=1).astype(np.float64) <= 0.6))):  # fmt: skip
            for descending in (True, False):
                before, got, token, pages = kept(), [], "", 0
                while True:
                    page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
                        project="den", dataset="cave", inference_set="m", filter=cpb.Filter(all=conditions),
                        sort=[apb.SortKey(field="loss", descending=descending)],
                        page=cpb.PageRequest(page_size=9, page_token=token)))  # fmt: skip
                    got += [d.ref.frame_id for d in page.datapoints]
                    pages, token = pages + 1, page.page.next_page_token
                    if not token:
                        break
                key = -loss[rows] if descending else loss[rows]
                assert got == [ids[i] for i in rows[np.lexsort((np.array(ids)[rows], key))]], (conditions, descending)
                assert kept() == before + pages, (conditions, descending)
        # sorted by loss, the count is kept too (the frames with a loss); the page is read from the kept sort with
        # its frames' sizes (no read of the frames)
        before, from_sort = computed(), kept()
        by_loss = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project="den", inference_set="m", filter=cpb.Filter(all=[eq("label_class", 1)]),
            sort=[apb.SortKey(field="loss", descending=True)]))  # fmt: skip
        assert by_loss.page.total_count == int((labels == 1).sum()) and computed() == before + 1
        assert kept() == from_sort + 1
        # a question nobody prepared is computed on its first call: its count and its page; sorted by frame id (no
        # kept sort), its frames' sizes too
        confident = cpb.Condition(field="confidence", range=cpb.Range(min=cpb.Value(number_value=0.5)))
        for field, reads in (("loss", 2), ("frame_id", 3)):
            before = computed()
            c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
                project="den", inference_set="m", filter=cpb.Filter(all=[eq("label_class", 1), confident]),
                sort=[apb.SortKey(field=field, descending=True)]))  # fmt: skip
            assert computed() == before + reads, field
        # 40 frames relabelled: once the upload settles, the sorted pages past those kept in memory are read from the
        # sorts patched with those frames (or from the sorts of the rows now, once written), never sorted from the
        # set, and hold the frames in numpy's order of the new losses
        moved = np.sort(rng.choice(n, 40, replace=False))
        labels[moved] = (labels[moved] + 1) % 3
        done = c.upload("den", "cave", UploadColumns(frame_ids=[ids[i] for i in moved], splits=list(splits[moved]),
                                                     class_ids=labels[moved], metadata=[metadata[i] for i in moved]),
                        progress=False)  # fmt: skip
        assert c.wait_for_upload("den", done.upload_id, timeout=scaled(120)).state == pb.UPLOAD_STATE_COMPLETED
        wait_for(lambda: preparer.prepared("den", "cave", "m"), what="the views of den/m to be prepared again")
        loss = -np.log(np.maximum(probs[np.arange(n), labels].astype(np.float64), 1e-12))
        before, got, token, pages = kept(), [], "", 0
        while True:
            page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
                project="den", dataset="cave", inference_set="m", sort=[apb.SortKey(field="loss", descending=True)],
                page=cpb.PageRequest(page_size=9, page_token=token)))  # fmt: skip
            got += [d.ref.frame_id for d in page.datapoints]
            pages, token = pages + 1, page.page.next_page_token
            if not token:
                break
        assert got == [ids[i] for i in np.lexsort((np.array(ids), -loss))]
        assert kept() == before + pages
