"""The analysis API the console reads: label-issue dismissals that outlive reruns and follow label
versions, lasso selection on the embedding map, and the boxes of each datapoint to draw."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from sklearn.datasets import load_digits

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.limits import MAX_IDS
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb
from shoal.sdk import Box, LabeledObject, PredictedObject, UploadColumns
from tests.conftest import server_settings
from tests.server.conftest import Running, create_pixel_digits, finish_job, start_server
from tests.server.test_analysis_detection_issues import MISSING, PLANTED, SWAPPED
from tests.server.test_analysis_detection_issues import _upload as upload_cones

#: classification: frames n000..n059 labeled i % 3; these are labeled so but the model says the next class
NOISY = (3, 10, 17, 26, 41)
FRAMES = 60
MAP_FRAMES = 300
BOX_FRAMES = 12


def _frame(i: int) -> str:
    return f"n{i:03d}"


def _digits_probs() -> tuple[list[int], np.ndarray]:
    labels = [i % 3 for i in range(FRAMES)]
    probs = np.full((FRAMES, 10), 0.02, dtype=np.float32)
    for i, label in enumerate(labels):
        probs[i, label] = 0.82
        if i in NOISY:
            probs[i, label], probs[i, (label + 1) % 3] = 0.02, 0.82
    return labels, probs


def _box_data() -> tuple[list[tuple[int, int]], list[list[LabeledObject]], list[list[PredictedObject]]]:
    """Frames of two sizes with 0 to 3 labeled and predicted boxes each."""
    rng = np.random.default_rng(11)
    sizes, labels, preds = [], [], []
    for i in range(BOX_FRAMES):
        w, h = (640, 480) if i % 2 else (1280, 720)
        sizes.append((w, h))

        def box() -> Box:
            x, y = (float(v) for v in rng.integers(0, 300, 2))
            return Box(x + 0.25, y + 0.5, float(rng.integers(20, 200)), float(rng.integers(20, 200)))

        labels.append([LabeledObject(f"g{j}", int(rng.choice([1, 2, 3])), box(), is_crowd=j == 2)
                       for j in range(i % 4)])  # fmt: skip
        preds.append([PredictedObject(f"p{j}", int(rng.choice([1, 2, 3])), round(float(rng.uniform(0.1, 1)), 3), box())
                      for j in range((i + 1) % 4)])  # fmt: skip
    return sizes, labels, preds


def _wait_upload(c: Any, project: str, result: Any) -> None:
    assert c.wait_for_upload(project, result.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path) -> Iterator[Running]:
    """digits (classification): dataset "train" with out-of-sample probabilities, "other" with three
    frames, "all" with 300 digit images' pixels; cones (detection): the planted errors of
    test_analysis_detection_issues in "val", and "boxes" with boxes of known place and size."""
    # a labeling platform nobody listens at: requests are recorded and wait
    settings = server_settings(tmp_path_factory.mktemp("console-api") / "data", chdb_path,
                               label_studio_url="http://127.0.0.1:9", label_studio_token="unused")  # fmt: skip
    running = start_server(settings)
    with running.client(running.admin_key) as c:
        create_pixel_digits(c)
        for name in ("train", "other", "all"):
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project="digits", dataset=pb.Dataset(
                name=name, kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="digits", inference_set=pb.InferenceSet(
            name="oof", dataset="train", model_name="logreg", model_version="1")))  # fmt: skip
        labels, probs = _digits_probs()
        _wait_upload(c, "digits", c.upload("digits", "train", UploadColumns(
            frame_ids=[_frame(i) for i in range(FRAMES)], class_ids=labels, inference_set="oof",
            probabilities=probs), progress=False))  # fmt: skip
        _wait_upload(c, "digits", c.upload("digits", "other", UploadColumns(
            frame_ids=["o0", "o1", "o2"], class_ids=[0, 1, 2]), progress=False))  # fmt: skip
        x, y = load_digits(return_X_y=True)
        _wait_upload(c, "digits", c.upload("digits", "all", UploadColumns(
            frame_ids=[f"f{i:04d}" for i in range(MAP_FRAMES)], class_ids=y[:MAP_FRAMES],
            embeddings={"pixels": x[:MAP_FRAMES].astype(np.float32)}), progress=False))  # fmt: skip
    upload_cones(running, "cones")
    with running.client(running.admin_key) as c:
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="cones", dataset=pb.Dataset(
            name="boxes", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="cones", inference_set=pb.InferenceSet(
            name="boxes-m", dataset="boxes", model_name="detr", model_version="2")))  # fmt: skip
        sizes, objects, preds = _box_data()
        _wait_upload(c, "cones", c.upload("cones", "boxes", UploadColumns(
            frame_ids=[f"b{i:02d}" for i in range(BOX_FRAMES)], sizes=sizes, objects=objects,
            inference_set="boxes-m", predictions=preds), progress=False))  # fmt: skip
    yield running
    running.server.stop(grace=1)


def _error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def _label_issues(c: Any, job_id: str, **kwargs: Any) -> tuple[list[apb.LabelIssue], int, int]:
    """Every issue of the job over pages of 4, with total_count and dismissed_count."""
    out: list[apb.LabelIssue] = []
    token = ""
    while True:
        resp = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(
            project="digits", job_id=job_id, page=cpb.PageRequest(page_size=4, page_token=token), **kwargs))  # fmt: skip
        out += list(resp.issues)
        token = resp.page.next_page_token
        if not token:
            return out, resp.page.total_count, resp.dismissed_count


def _start_digits(c: Any, rerun: bool = False) -> cpb.Job:
    return c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project="digits", inference_set="oof",
                                                                   rerun=rerun)).job  # fmt: skip


# -- dismissals ---------------------------------------------------------------------------------------


def test_a_dismissed_label_issue_stays_dismissed_after_a_rerun_until_the_frame_is_relabeled(served: Running) -> None:
    with served.client(served.admin_key) as c:
        job = finish_job(c, "digits", _start_digits(c))
        issues, total, dismissed = _label_issues(c, job.job_id)
        flagged = [r.ref.frame_id for r in issues]
        assert set(flagged) == {_frame(i) for i in NOISY} and total == len(NOISY) and dismissed == 0
        target, other = _frame(NOISY[0]), _frame(NOISY[1])

        resp = c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(
            project="digits", job_id=job.job_id, frame_ids=[target, other], reason="the label is right",
            dismissed_by="ana"))  # fmt: skip
        assert (resp.dataset, resp.frames, resp.objects) == ("train", 2, 0)
        # undo one of them
        c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(project="digits", job_id=job.job_id,
                                                                    frame_ids=[other], restore=True))  # fmt: skip
        issues, total, dismissed = _label_issues(c, job.job_id)
        assert target not in {r.ref.frame_id for r in issues} and other in {r.ref.frame_id for r in issues}
        assert (total, dismissed, len(issues)) == (len(NOISY) - 1, 1, len(NOISY) - 1)
        shown, total, dismissed = _label_issues(c, job.job_id, include_dismissed=True)
        assert (total, dismissed) == (len(NOISY), 1)
        assert {r.ref.frame_id: r.dismissed for r in shown} == {f: f == target for f in flagged}
        # every examined frame (all_frames): the dismissed one is still left out
        every, total, dismissed = _label_issues(c, job.job_id, all_frames=True)
        assert (total, dismissed) == (FRAMES - 1, 1) and target not in {r.ref.frame_id for r in every}

        # a rerun computes the issues again: the dismissed frame is flagged again, and stays dismissed
        again = _start_digits(c, rerun=True)
        assert again.job_id == job.job_id and again.state == cpb.JOB_STATE_PENDING
        finish_job(c, "digits", again)
        issues, total, dismissed = _label_issues(c, job.job_id)
        assert target not in {r.ref.frame_id for r in issues}
        assert (total, dismissed) == (len(NOISY) - 1, 1)
        shown, _, _ = _label_issues(c, job.job_id, include_dismissed=True)
        assert [r.dismissed for r in shown if r.ref.frame_id == target] == [True]
        # nor is it sent for labeling with the job's issues
        sent = c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(
            project="digits", label_issues=lpb.LabelIssuesSource(job_id=job.job_id), requested_by="ana"))  # fmt: skip
        assert sent.request.frames == len(NOISY) - 1

        # a relabel (a new label version of the frame, here with the same class) opens the issue again
        _wait_upload(c, "digits", c.upload("digits", "train", UploadColumns(
            frame_ids=[target], class_ids=[NOISY[0] % 3], skip_frames=True,
            provenance=pb.Provenance(source="review", author="ana", reason="checked again")), progress=False))  # fmt: skip
        issues, total, dismissed = _label_issues(c, job.job_id)
        assert target in {r.ref.frame_id for r in issues} and (total, dismissed) == (len(NOISY), 0)
        assert not any(r.dismissed for r in _label_issues(c, job.job_id, include_dismissed=True)[0])
        finish_job(c, "digits", _start_digits(c, rerun=True))
        issues, _, dismissed = _label_issues(c, job.job_id)
        assert target in {r.ref.frame_id for r in issues} and dismissed == 0
        # dismissed on the new label version, it is left out again
        c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(project="digits", job_id=job.job_id,
                                                                    frame_ids=[target]))  # fmt: skip
        issues, _, dismissed = _label_issues(c, job.job_id)
        assert target not in {r.ref.frame_id for r in issues} and dismissed == 1


def test_dismissals_check_their_job_and_frames(served: Running) -> None:
    with served.client(served.admin_key) as c:
        job = finish_job(c, "digits", _start_digits(c))

        def dismiss(**kwargs: Any) -> grpc.RpcError:
            kwargs.setdefault("job_id", job.job_id)
            return _error(lambda: c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(project="digits",
                                                                                              **kwargs)))  # fmt: skip

        err = dismiss(job_id="", frame_ids=[_frame(1)])
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("job_id: ")
        err = dismiss(job_id="no-such-job", frame_ids=[_frame(1)])
        assert err.code() == grpc.StatusCode.NOT_FOUND and err.details().startswith("job_id: ")
        err = dismiss()
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("frame_ids: ")
        err = dismiss(frame_ids=[_frame(1), "o1"])  # a frame of another dataset of the project
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("frame_ids[1]: ")
        assert "'train'" in err.details() and "'o1'" in err.details()
        err = dismiss(frame_ids=[""])
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("frame_ids[0]: ")
        err = dismiss(objects=[apb.ObjectRef(frame_id=_frame(1), object_id="a")])
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("objects: ")
        err = dismiss(frame_ids=[f"x{i}" for i in range(MAX_IDS + 1)])
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith(f"frame_ids: has {MAX_IDS + 1:,} items, more than the {MAX_IDS:,} allowed")
        # a job of another kind
        other = c.analysis.StartEmbeddingMap(apb.StartEmbeddingMapRequest(project="digits", dataset="all",
                                                                          embedding_space="pixels")).job  # fmt: skip
        err = dismiss(job_id=other.job_id, frame_ids=[_frame(1)])
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("job_id: ")
        # the refused calls dismissed nothing
        every = _label_issues(c, job.job_id, all_frames=True, include_dismissed=True)[0]
        assert [r.dismissed for r in every if r.ref.frame_id == _frame(1)] == [False]
        # the call is scoped to the key's projects
        _, key = served.server.keys.create(["cones"], description="cones only")
    with served.client(key) as c:
        err = _error(lambda: c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(
            project="digits", job_id=job.job_id, frame_ids=[_frame(1)])))  # fmt: skip
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def _detection(c: Any, job_id: str, **kwargs: Any) -> apb.QueryDetectionLabelIssuesResponse:
    return c.analysis.QueryDetectionLabelIssues(apb.QueryDetectionLabelIssuesRequest(
        project="cones", job_id=job_id, page=cpb.PageRequest(page_size=100), **kwargs))  # fmt: skip


def test_detection_issues_are_dismissed_by_object_or_by_frame(served: Running) -> None:
    frame_level = {"level": apb.DETECTION_ISSUE_LEVEL_FRAME}
    missing, swapped = f"img-{MISSING:03d}", f"img-{SWAPPED:03d}"
    with served.client(served.admin_key) as c:
        start = apb.StartLabelIssuesRequest(project="cones", inference_set="detr")
        job = finish_job(c, "cones", c.analysis.StartLabelIssues(start).job)
        objects = {o.ref.frame_id: o for o in _detection(c, job.job_id).objects}
        assert set(objects) == set(PLANTED)
        swap = objects[swapped].ref
        resp = c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(
            project="cones", job_id=job.job_id, frame_ids=[missing],
            objects=[apb.ObjectRef(frame_id=swap.frame_id, object_id=swap.object_id)], reason="fine"))  # fmt: skip
        assert (resp.dataset, resp.frames, resp.objects) == ("val", 1, 1)

        def check() -> None:
            left = _detection(c, job.job_id)
            assert {o.ref.frame_id for o in left.objects} == set(PLANTED) - {missing, swapped}
            assert (left.page.total_count, left.dismissed_count) == (len(PLANTED) - 2, 2)
            shown = _detection(c, job.job_id, include_dismissed=True)
            assert {o.ref.frame_id: o.dismissed for o in shown.objects} == {f: f in (missing, swapped) for f in PLANTED}
            # frames: only the frame dismissed as a whole is left out
            frames = _detection(c, job.job_id, **frame_level)
            assert {f.ref.frame_id for f in frames.frames} == set(PLANTED) - {missing} and frames.dismissed_count == 1
            shown = _detection(c, job.job_id, include_dismissed=True, **frame_level)
            assert {f.ref.frame_id: f.dismissed for f in shown.frames} == {f: f == missing for f in PLANTED}

        check()
        start.rerun = True
        finish_job(c, "cones", c.analysis.StartLabelIssues(start).job)
        check()

        # the swapped frame's labels uploaded again, unchanged: a new label version opens its issue again
        page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project="cones", dataset="val", include_objects=True, filter=cpb.Filter(all=[cpb.Condition(
                field="frame_id", equals=cpb.Value(string_value=swapped))])))  # fmt: skip
        again = [LabeledObject(o.object_id, o.class_id, Box(o.box.x, o.box.y, o.box.width, o.box.height), o.is_crowd)
                 for o in page.datapoints[0].label_objects]  # fmt: skip
        assert swap.object_id in {o.object_id for o in again}
        _wait_upload(c, "cones", c.upload("cones", "val", UploadColumns(frame_ids=[swapped], objects=[again],
                                                                        skip_frames=True), progress=False))  # fmt: skip
        left = _detection(c, job.job_id)
        assert {o.ref.frame_id for o in left.objects} == set(PLANTED) - {missing} and left.dismissed_count == 1

        err = _error(lambda: c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(
            project="cones", job_id=job.job_id, objects=[apb.ObjectRef(frame_id=swapped, object_id="nope")])))  # fmt: skip
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("objects[0]: ")


# -- lasso on the map --------------------------------------------------------------------------------


def _inside(xy: np.ndarray, polygon: list[tuple[float, float]]) -> np.ndarray:
    """Even-odd rule: a point is inside when a ray to its right crosses the edges an odd number of times."""
    inside = np.zeros(len(xy), dtype=bool)
    px, py = xy[:, 0], xy[:, 1]
    for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        spans = (y0 > py) != (y1 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
        inside ^= spans & (px < cross)
    return inside


def test_a_lasso_selects_exactly_the_frames_inside_it_page_by_page(served: Running) -> None:
    with served.client(served.admin_key) as c:
        job = c.analysis.StartEmbeddingMap(apb.StartEmbeddingMapRequest(project="digits", dataset="all",
                                                                        embedding_space="pixels")).job  # fmt: skip
        job = finish_job(c, "digits", job)
        whole = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project="digits", job_id=job.job_id,
                                                                    max_points=MAP_FRAMES))  # fmt: skip
        assert len(whole.points) == MAP_FRAMES
        ids = [p.frame_id for p in whole.points]
        xy = np.array([[p.x, p.y] for p in whole.points], dtype=np.float64)
        # a concave region (an L with a notch) around the middle of the map
        (x0, x1, x2), (y0, y1, y2) = np.quantile(xy[:, 0], [0.1, 0.5, 0.9]), np.quantile(xy[:, 1], [0.1, 0.5, 0.9])
        polygon = [(x0, y0), (x2, y0), (x2, y1), (x1, y1), ((x0 + x1) / 2, (y1 + y2) / 2), (x1, y2), (x0, y2)]
        expected = sorted(f for f, ok in zip(ids, _inside(xy, polygon), strict=True) if ok)
        assert 60 < len(expected) < MAP_FRAMES - 60

        request = apb.QueryMapRegionRequest(project="digits", job_id=job.job_id,
                                            polygon=[apb.MapVertex(x=x, y=y) for x, y in polygon])  # fmt: skip
        got: list[str] = []
        tokens: list[str] = []
        pages = 0
        while True:
            request.page.page_size = 25
            resp = c.analysis.QueryMapRegion(request)
            assert resp.dataset == "all" and resp.page.total_count == len(expected)
            got += list(resp.frame_ids)
            pages += 1
            if not resp.page.next_page_token:
                break
            tokens.append(resp.page.next_page_token)
            request.page.page_token = resp.page.next_page_token
        assert got == expected and pages == -(-len(expected) // 25)
        # the first vertex repeated at the end closes the same polygon
        closed = apb.QueryMapRegionRequest(project="digits", job_id=job.job_id, page=cpb.PageRequest(page_size=1000),
                                           polygon=[*request.polygon, request.polygon[0]])  # fmt: skip
        assert list(c.analysis.QueryMapRegion(closed).frame_ids) == expected

        def refused(polygon: list[apb.MapVertex], token: str = "") -> str:
            err = _error(lambda: c.analysis.QueryMapRegion(apb.QueryMapRegionRequest(
                project="digits", job_id=job.job_id, polygon=polygon, page=cpb.PageRequest(page_token=token))))  # fmt: skip
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            return str(err.details())

        v = [apb.MapVertex(x=x, y=y) for x, y in polygon]
        assert refused(v[:2]).startswith("polygon: ")
        assert refused([v[0], v[1], v[1], v[0]]).startswith("polygon: ")  # two distinct vertices
        assert refused([v[0], apb.MapVertex(x=float("nan"), y=0.0), v[2]]).startswith("polygon[1].x: ")
        assert refused([v[0], v[1], apb.MapVertex(x=1.0, y=float("inf"))]).startswith("polygon[2].y: ")
        many = [apb.MapVertex(x=float(np.cos(t)), y=float(np.sin(t))) for t in np.linspace(0, 6, 1001)]
        assert refused(many).startswith("polygon: has 1,001 items, more than the 1,000 allowed")
        bow_tie = [apb.MapVertex(x=x0, y=y0), apb.MapVertex(x=x2, y=y2), apb.MapVertex(x=x2, y=y0),
                   apb.MapVertex(x=x0, y=y2)]  # fmt: skip
        assert "crosses" in refused(bow_tie)
        # a page token of another polygon
        assert refused(v[:3], token=tokens[0]).startswith("page.page_token: ")
        err = _error(lambda: c.analysis.QueryMapRegion(apb.QueryMapRegionRequest(project="digits", job_id="",
                                                                                 polygon=v)))  # fmt: skip
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("job_id: ")


# -- objects of datapoints ---------------------------------------------------------------------------


def _all_datapoints(c: Any, **kwargs: Any) -> list[apb.Datapoint]:
    out: list[apb.Datapoint] = []
    request = apb.QueryDatapointsRequest(project="cones", page=cpb.PageRequest(page_size=5), **kwargs)
    while True:
        resp = c.analysis.QueryDatapoints(request)
        out += list(resp.datapoints)
        if not resp.page.next_page_token:
            return out
        request.page.page_token = resp.page.next_page_token


def _boxes(objects: Any) -> list[tuple[Any, ...]]:
    """(object id, class, x, y, width, height) of proto or SDK objects."""
    return [(o.object_id, o.class_id, o.box.x, o.box.y, o.box.width, o.box.height) for o in objects]


def test_datapoints_carry_their_frame_size_and_boxes(served: Running) -> None:
    sizes, labels, preds = _box_data()
    ids = [f"b{i:02d}" for i in range(BOX_FRAMES)]
    with served.client(served.admin_key) as c:
        rows = _all_datapoints(c, inference_set="boxes-m", include_objects=True)
        assert [d.ref.frame_id for d in rows] == ids
        for d, size, label, pred in zip(rows, sizes, labels, preds, strict=True):
            assert (d.width, d.height) == size
            assert _boxes(d.label_objects) == sorted(_boxes(label))
            assert [o.is_crowd for o in d.label_objects] == [
                o.is_crowd for o in sorted(label, key=lambda o: o.object_id)
            ]
            assert not any(o.HasField("score") for o in d.label_objects)
            assert _boxes(d.predicted_objects) == sorted(_boxes(pred))
            scores = {o.object_id: o.score for o in pred}
            assert [o.score for o in d.predicted_objects] == pytest.approx([scores[o.object_id]
                                                                            for o in d.predicted_objects])  # fmt: skip
        # without an inference set: the labeled boxes only; without include_objects: the sizes only
        rows = _all_datapoints(c, dataset="boxes", include_objects=True)
        assert [len(d.label_objects) for d in rows] == [len(x) for x in labels]
        assert not any(d.predicted_objects for d in rows)
        rows = _all_datapoints(c, inference_set="boxes-m")
        assert [(d.width, d.height) for d in rows] == sizes
        assert not any(d.label_objects or d.predicted_objects for d in rows)

        # a new label version of a frame: its boxes are the new ones
        moved = [LabeledObject("g9", 2, Box(1.0, 2.0, 30.0, 40.0))]
        _wait_upload(c, "cones", c.upload("cones", "boxes", UploadColumns(frame_ids=[ids[3]], objects=[moved],
                                                                          skip_frames=True), progress=False))  # fmt: skip
        rows = _all_datapoints(c, inference_set="boxes-m", include_objects=True)
        assert _boxes(rows[3].label_objects) == [("g9", 2, 1.0, 2.0, 30.0, 40.0)]
        assert _boxes(rows[2].label_objects) == sorted(_boxes(labels[2]))
