"""Multi-label projects through the server: label sets and per-class scores uploaded with the SDK
(message and columnar paths), read back and measured equal to scikit-learn on the same arrays, at
several thresholds and under a filter; bad label sets and scores are refused naming the field."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    hamming_loss,
    precision_recall_fscore_support,
)

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.client import error_detail
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running, finish_job

CLASSES = ["person", "dog", "cat", "car", "tree", "boat"]  # boat: never labeled


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labels (frames x classes) with correlated classes and frames without any, scores from a
    noisy model (some ties), and a camera per frame."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    rate = np.array([0.5, 0.3, 0.25, 0.2, 0.4, 0.0])
    y = rng.random((n, k)) < rate
    y[:, 2] &= ~y[:, 1] | (rng.random(n) < 0.2)  # dogs and cats seldom together
    s = np.clip(np.where(y, 0.7, 0.3) + rng.normal(0, 0.25, (n, k)), 0, 1)
    s = np.round(s, 2)  # ties on purpose
    cameras = ["rear" if i % 3 == 0 else "front" for i in range(n)]
    return y, s, cameras


def _upload(running: Running, p: str, y: np.ndarray, s: np.ndarray, cameras: list[str]) -> list[str]:
    ids = [f"m-{i:05d}" for i in range(len(y))]
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_MULTI_LABEL,
            classes=[pb.ClassDef(id=10 + i, name=n) for i, n in enumerate(CLASSES)])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="vit", dataset="val", model_name="vit", model_version="1")))  # fmt: skip
        # frames and labels as messages, scores as a columnar block (the SDK's fast path)
        labels = UploadColumns(frame_ids=ids, metadata=[{"camera": cam} for cam in cameras],
                               class_sets=[[10 + c for c in np.flatnonzero(row)] for row in y])  # fmt: skip
        r = c.upload(p, "val", labels, progress=False)
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        scores = UploadColumns(frame_ids=ids, inference_set="vit", probabilities=s.astype(np.float32),
                               skip_frames=True)  # fmt: skip
        assert scores.columnar
        r = c.upload(p, "val", scores, progress=False)
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return ids


def _expected(y: np.ndarray, s: np.ndarray, t: float) -> dict[str, object]:
    pred = s >= t
    p, r, f, support = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    return {
        "per_class": (p, r, f, support, pred.sum(axis=0)),
        "micro": precision_recall_fscore_support(y, pred, average="micro", zero_division=0)[:3],
        "macro": precision_recall_fscore_support(y, pred, average="macro", zero_division=0)[:3],
        "subset_accuracy": accuracy_score(y, pred),
        "hamming_loss": hamming_loss(y, pred),
        "ap": [average_precision_score(y[:, c], s[:, c]) if y[:, c].any() else -1.0 for c in range(y.shape[1])],
    }


def _check(got: apb.MultiLabelMetrics, y: np.ndarray, s: np.ndarray, t: float) -> None:
    want = _expected(y, s.astype(np.float32).astype(np.float64), t)
    assert got.frames == len(y) and got.threshold == pytest.approx(t)
    assert (got.micro_precision, got.micro_recall, got.micro_f1) == pytest.approx(want["micro"], abs=1e-12)
    assert (got.macro_precision, got.macro_recall, got.macro_f1) == pytest.approx(want["macro"], abs=1e-12)
    assert got.subset_accuracy == pytest.approx(want["subset_accuracy"], abs=1e-12)
    assert got.hamming_loss == pytest.approx(want["hamming_loss"], abs=1e-12)
    p, r, f, support, predicted = want["per_class"]  # type: ignore[misc]
    for c, m in enumerate(got.per_class):
        assert (m.class_id, m.class_name) == (10 + c, CLASSES[c])
        assert (m.precision, m.recall, m.f1) == pytest.approx((p[c], r[c], f[c]), abs=1e-12)
        assert (m.support, m.predicted) == (support[c], predicted[c])
        assert m.average_precision == pytest.approx(want["ap"][c], abs=1e-12)  # type: ignore[index]
    aps = [a for a in want["ap"] if a >= 0]  # type: ignore[attr-defined]
    assert got.mean_average_precision == pytest.approx(np.mean(aps), abs=1e-12)


def test_multi_label_metrics_equal_scikit_learn(shared: Running, project: str) -> None:
    running, p = shared, project
    y, s, cameras = _data(600, 1)
    assert not y.any(axis=1).all() and (y.sum(axis=1) >= 2).any()  # frames with none and with several
    _upload(running, p, y, s, cameras)
    with running.client(running.admin_key) as c:
        for t in (0.0, 0.35, 0.5, 0.71):
            got = c.analysis.GetMultiLabelMetrics(apb.GetMultiLabelMetricsRequest(
                project=p, inference_set="vit", threshold=t)).metrics  # fmt: skip
            _check(got, y, s, t or 0.5)
        rear = cpb.Filter(all=[cpb.Condition(field="metadata.camera", equals=cpb.Value(string_value="rear"))])
        got = c.analysis.GetMultiLabelMetrics(apb.GetMultiLabelMetricsRequest(
            project=p, inference_set="vit", filter=rear)).metrics  # fmt: skip
        keep = np.array([cam == "rear" for cam in cameras])
        _check(got, y[keep], s[keep], 0.5)
        assert got.per_class[5].average_precision == -1  # boat: never labeled
        # classification metrics do not apply, and the other way round
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.GetClassificationMetrics(apb.GetClassificationMetricsRequest(project=p, inference_set="vit"))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_relabel_changes_the_metrics(shared: Running, project: str) -> None:
    """A new label version of a frame (say, a class added after review) is what the metrics read."""
    running, p = shared, project
    y, s, cameras = _data(80, 2)
    ids = _upload(running, p, y, s, cameras)
    frame = int(np.flatnonzero(~y[:, 0])[0])
    y[frame, 0] = True
    with running.client(running.admin_key) as c:
        r = c.upload(p, "val", UploadColumns(frame_ids=[ids[frame]], skip_frames=True,
                                             class_sets=[[10 + k for k in np.flatnonzero(y[frame])]]),
                     progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        got = c.analysis.GetMultiLabelMetrics(apb.GetMultiLabelMetricsRequest(project=p, inference_set="vit"))
        versions = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(
            project=p, dataset="val", frame_id=ids[frame])).versions  # fmt: skip
    _check(got.metrics, y, s, 0.5)
    # newest first: the class added, then the labels as first uploaded
    assert [list(v.class_ids) for v in versions] == [
        [10 + k for k in np.flatnonzero(y[frame])],
        [10 + k for k in np.flatnonzero(y[frame]) if k != 0],
    ]


@pytest.mark.parametrize(
    ("make", "field", "says"),
    [
        (lambda ch: ch.labels.add(frame_id="f1", class_ids=[10, 99]), "chunk.labels[0].class_ids[1]", "unknown"),
        (lambda ch: ch.labels.add(frame_id="f1", class_ids=[10, 10]), "chunk.labels[0].class_ids[1]", "twice"),
        (lambda ch: ch.labels.add(frame_id="f1", class_id=10), "chunk.labels[0].class_id", "class_ids"),
        (lambda ch: ch.inferences.add(frame_id="f1", class_probabilities=[0.9, 1.2] + [0.0] * 4),
         "chunk.inferences[0].class_probabilities", "[0, 1]"),
        (lambda ch: ch.inferences.add(frame_id="f1", class_probabilities=[0.9, 0.9]),
         "chunk.inferences[0].class_probabilities", "6 classes"),
    ],
)  # fmt: skip
def test_bad_label_sets_and_scores_are_refused(shared: Running, project: str, make, field: str, says: str) -> None:  # type: ignore[no-untyped-def]
    p = project
    _upload(shared, p, *_data(5, 3))
    chunk = pb.UploadChunk(inference_set="vit", frames=[pb.Frame(frame_id="f1")])
    make(chunk)
    with shared.client(shared.admin_key) as c, pytest.raises(grpc.RpcError) as info:
        c.ingest.Upload(iter([pb.UploadRequest(project=p, dataset="val", chunk=chunk)]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_detail(info.value)
    assert detail.field == field and detail.datapoint.frame_id == "f1" and says in info.value.details()


def test_scores_need_not_sum_to_one_but_classification_probabilities_still_do(shared: Running, project: str) -> None:
    """Scores of 0.9 for every class are a multi-label prediction, and no classification one."""
    p = project
    _upload(shared, p, *_data(5, 4))
    ok = pb.UploadChunk(inference_set="vit", frames=[pb.Frame(frame_id="f1")])
    ok.inferences.add(frame_id="f1", class_probabilities=[0.9] * len(CLASSES))
    with shared.client(shared.admin_key) as c:
        r = c.ingest.Upload(iter([pb.UploadRequest(project=p, dataset="val", chunk=ok)]))
        assert r.accepted.inferences == 1


def test_dataset_stats_count_each_class_of_a_frame(shared: Running, project: str) -> None:
    p = project
    y, s, cameras = _data(40, 5)
    _upload(shared, p, y, s, cameras)
    with shared.client(shared.admin_key) as c:
        st = c.ingest.GetDataset(pb.GetDatasetRequest(project=p, dataset="val", include_stats=True)).stats
    assert st.labeled_frames == 40
    assert dict(st.labeled_frames_per_class) == {10 + c: int(n) for c, n in enumerate(y.sum(axis=0))}


def _noisy(n: int, seed: int, planted: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, set, set]:  # type: ignore[type-arg]
    """True classes, a good model's scores, and the labels with ``planted`` classes removed and
    ``planted`` added at random (returned as (frame, class position) pairs)."""
    rng = np.random.default_rng(seed)
    truth = rng.random((n, len(CLASSES))) < [0.5, 0.3, 0.25, 0.2, 0.4, 0.05]
    scores = np.round(np.clip(np.where(truth, 0.85, 0.1) + rng.normal(0, 0.08, truth.shape), 0, 1), 3)
    given = truth.copy()
    on, off = np.argwhere(truth), np.argwhere(~truth)
    removed = {tuple(x) for x in on[rng.choice(len(on), planted, replace=False)]}
    added = {tuple(x) for x in off[rng.choice(len(off), planted, replace=False)]}
    for f, c in removed:
        given[f, c] = False
    for f, c in added:
        given[f, c] = True
    return truth, scores, given, removed, added


def test_planted_missing_and_extra_classes_are_found(shared: Running, project: str) -> None:
    from shoal.analysis.multilabel_issues import find

    running, p = shared, project
    _, scores, given, removed, added = _noisy(400, 6, 25)
    ids = _upload(running, p, given, scores, ["front"] * len(given))
    with running.client(running.admin_key) as c:
        job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=p, inference_set="vit")).job
        job = finish_job(c, p, job)
        assert job.kind == "multilabel_label_issues"
        got, token = [], ""
        while True:
            resp = c.analysis.QueryMultiLabelIssues(apb.QueryMultiLabelIssuesRequest(
                project=p, job_id=job.job_id, page=cpb.PageRequest(page_size=17, page_token=token)))  # fmt: skip
            got += list(resp.issues)
            token = resp.page.next_page_token
            if not token:
                break
    position = {10 + i: i for i in range(len(CLASSES))}
    missing = {(ids.index(i.ref.frame_id), position[c]) for i in got for c in i.missing_class_ids}
    extra = {(ids.index(i.ref.frame_id), position[c]) for i in got for c in i.extra_class_ids}
    # the server's flags are the method's on the same arrays (scores as stored: float32)
    want = find(given, scores.astype(np.float32).astype(np.float64))
    assert missing == {tuple(x) for x in np.argwhere(want.missing)}
    assert extra == {tuple(x) for x in np.argwhere(want.extra)}
    assert resp.summary.flagged_frames == len(got) == int(want.flagged.sum())
    # and they are planted errors, and most of them: a removed class is missing, an added one extra
    # (the misses are the planted errors the model itself is least sure of)
    assert missing <= removed and len(missing) >= 0.75 * len(removed)
    assert extra <= added and len(extra) >= 0.75 * len(added)
    # most likely issue first
    assert [i.score for i in got] == sorted(i.score for i in got)
    # a person judges the first one labeled right: it leaves the pages, and comes back on request
    with running.client(running.admin_key) as c:
        first = got[0].ref.frame_id
        c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(project=p, job_id=job.job_id, frame_ids=[first],
                                                                    reason="checked", dismissed_by="ana"))  # fmt: skip
        page = c.analysis.QueryMultiLabelIssues(apb.QueryMultiLabelIssuesRequest(project=p, job_id=job.job_id,
                                                                                 page=cpb.PageRequest(page_size=500)))  # fmt: skip
        assert first not in {i.ref.frame_id for i in page.issues} and page.dismissed_count == 1
        assert page.page.total_count == len(got) - 1
        page = c.analysis.QueryMultiLabelIssues(apb.QueryMultiLabelIssuesRequest(
            project=p, job_id=job.job_id, include_dismissed=True, page=cpb.PageRequest(page_size=1)))  # fmt: skip
        assert page.issues[0].ref.frame_id == first and page.issues[0].dismissed


def test_a_class_opens_its_false_positives_and_negatives(shared: Running, project: str) -> None:
    p = project
    y, s, cameras = _data(200, 6)
    ids = _upload(shared, p, y, s, cameras)
    s32 = s.astype(np.float32).astype(np.float64)
    rear = cpb.Filter(all=[cpb.Condition(field="metadata.camera", equals=cpb.Value(string_value="rear"))])
    with shared.client(shared.admin_key) as c:
        for outcome, t in ((apb.MULTI_LABEL_OUTCOME_FALSE_POSITIVE, 0.5), (apb.MULTI_LABEL_OUTCOME_FALSE_NEGATIVE, 0.6),
                           (apb.MULTI_LABEL_OUTCOME_TRUE_POSITIVE, 0.0)):  # fmt: skip
            got = c.analysis.QueryMultiLabelFrames(apb.QueryMultiLabelFramesRequest(
                project=p, inference_set="vit", class_id=11, outcome=outcome, threshold=t, filter=rear,
                page=cpb.PageRequest(page_size=500)))  # fmt: skip
            t = t or 0.5
            keep = [i for i in range(len(y)) if cameras[i] == "rear"]
            has, sc = y[:, 1], s32[:, 1]
            want = [i for i in keep if {
                apb.MULTI_LABEL_OUTCOME_FALSE_POSITIVE: not has[i] and sc[i] >= t,
                apb.MULTI_LABEL_OUTCOME_FALSE_NEGATIVE: has[i] and sc[i] < t,
                apb.MULTI_LABEL_OUTCOME_TRUE_POSITIVE: has[i] and sc[i] >= t}[outcome]]  # fmt: skip
            low_first = outcome == apb.MULTI_LABEL_OUTCOME_FALSE_NEGATIVE
            want.sort(key=lambda i: (sc[i] if low_first else -sc[i], ids[i]))
            assert [f.ref.frame_id for f in got.frames] == [ids[i] for i in want] and got.page.total_count == len(want)
            assert [f.score for f in got.frames] == pytest.approx([sc[i] for i in want])
            if got.frames:
                i = want[0]
                assert list(got.frames[0].label_class_ids) == [10 + k for k in np.flatnonzero(y[i])]
                assert list(got.frames[0].predicted_class_ids) == [10 + k for k in np.flatnonzero(s32[i] >= t)]
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.QueryMultiLabelFrames(
                apb.QueryMultiLabelFramesRequest(project=p, inference_set="vit", class_id=11)
            )
        assert error_detail(info.value).field == "outcome"


def test_two_models_compared_gated_and_sliced(shared: Running, project: str) -> None:
    p = project
    y, s, cameras = _data(300, 7)
    ids = _upload(shared, p, y, s, cameras)
    rng = np.random.default_rng(9)
    worse = np.round(
        np.clip(s + rng.normal(0, 0.3, s.shape) * np.array([c == "rear" for c in cameras])[:, None], 0, 1), 2
    )
    with shared.client(shared.admin_key) as c:
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="worse", dataset="val", model_name="tiny", model_version="1")))  # fmt: skip
        r = c.upload(p, "val", UploadColumns(frame_ids=ids, inference_set="worse", probabilities=worse.astype(np.float32),
                                             skip_frames=True), progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        cmp = c.analysis.CompareInferenceSets(apb.CompareInferenceSetsRequest(
            project=p, baseline_inference_set="vit", candidate_inference_set="worse", confidence_threshold=0.4))  # fmt: skip
        b = s.astype(np.float32).astype(np.float64) >= 0.4
        w = worse.astype(np.float32).astype(np.float64) >= 0.4
        assert cmp.frames == len(y)
        assert (cmp.baseline_accuracy, cmp.candidate_accuracy) == pytest.approx(
            (accuracy_score(y, b), accuracy_score(y, w))
        )
        wrong_b, wrong_w = (b != y).sum(axis=1), (w != y).sum(axis=1)
        assert (cmp.improved, cmp.regressed) == ((wrong_w < wrong_b).sum(), (wrong_w > wrong_b).sum())
        f_b = precision_recall_fscore_support(y, b, average=None, zero_division=0)[2]
        f_w = precision_recall_fscore_support(y, w, average=None, zero_division=0)[2]
        assert [d.f1_delta for d in cmp.per_class] == pytest.approx(list(f_w - f_b))
        # the rear camera: a slice worse for the noisy model, and a gate it fails
        sl = c.analysis.GetSlices(apb.GetSlicesRequest(project=p, inference_set="worse", group_by="metadata.camera",
                                                       min_support=20))  # fmt: skip
        by = {x.value: x for x in sl.slices}
        w5 = worse.astype(np.float32).astype(np.float64) >= 0.5
        for cam, x in by.items():
            keep = np.array([cc == cam for cc in cameras])
            assert (x.frames, x.correct) == (keep.sum(), (w5[keep] == y[keep]).all(axis=1).sum())
        assert [x.value for x in sl.worst] == ["rear"]
        rear = [f for f, cam in zip(ids, cameras, strict=True) if cam == "rear"]
        keep = np.array([cam == "rear" for cam in cameras])
        micro = {name: precision_recall_fscore_support(y[keep], (sc.astype(np.float32).astype(np.float64) >= 0.5)[keep],
                                                       average="micro", zero_division=0)[2] for name, sc in (("vit", s), ("worse", worse))}  # fmt: skip
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=p, frame_ids=rear, segment=apb.Segment(
            name="rear-rt", dataset="val", kind=apb.SEGMENT_KIND_REGRESSION_TEST,
            gates=[apb.Gate(metric="micro_f1", minimum=(micro["vit"] + micro["worse"]) / 2),
                   apb.Gate(metric="average_precision", class_id=10, minimum=0.0)])))  # fmt: skip
        for name, passed in (("vit", True), ("worse", False)):
            res = c.analysis.EvaluateGates(apb.EvaluateGatesRequest(project=p, inference_set=name)).results
            assert res[0].value == pytest.approx(micro[name]) and res[0].passed is passed and res[0].frames == len(rear)
            assert res[1].passed
