"""Colouring the embedding map through the server: a viewport's points carry an inference set's
predicted class and correctness, a label-issues job's flags (without the dismissed ones) and a
metadata key's values, each equal to what the drill-down RPCs say about those frames; and asking for
them never changes which points a viewport returns."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from sklearn.datasets import load_digits

from shoal.analysis import label_issues
from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.console.backend import to_json
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.conftest import server_settings
from tests.server.conftest import Running, create_pixel_digits, finish_job, start_server, wait_for
from tests.server.test_analysis_console_api import BOX_FRAMES, FRAMES, NOISY, _box_data, _digits_probs, _frame

#: frames of "train" with predictions of the set "oof" (the others have none, so no correctness either)
PREDICTED = 50
CAMERAS = ("north", "south", "east")
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _metadata(i: int) -> dict[str, Any]:
    """Every frame has a camera and a capture hour; every third frame has no exposure."""
    meta: dict[str, Any] = {"camera": CAMERAS[i % 3], "seen": T0 + timedelta(hours=i), "night": i % 2 == 0}
    if i % 3:
        meta["exposure"] = 0.5 * i
    return meta


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path) -> Iterator[Running]:
    """digits: "train" (60 digit images, labels of test_analysis_console_api with its flipped ones,
    metadata, the inference set "oof" on the first 50) and "other" (6 frames, its set "other-m");
    boxes (detection): "val" with the boxes of test_analysis_console_api and an embedding each."""
    running = start_server(server_settings(tmp_path_factory.mktemp("map-colours") / "data", chdb_path))
    labels, probs = _digits_probs()
    x, _ = load_digits(return_X_y=True)
    with running.client(running.admin_key) as c:
        create_pixel_digits(c)
        for name in ("train", "other"):
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project="digits", dataset=pb.Dataset(
                name=name, kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        for name, dataset in (("oof", "train"), ("other-m", "other")):
            c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="digits", inference_set=pb.InferenceSet(
                name=name, dataset=dataset, model_name="logreg", model_version="1")))  # fmt: skip
        ids = [_frame(i) for i in range(FRAMES)]
        uploads = [
            ("train", UploadColumns(frame_ids=ids, class_ids=labels, metadata=[_metadata(i) for i in range(FRAMES)],
                                    embeddings={"pixels": x[:FRAMES].astype(np.float32)})),
            ("train", UploadColumns(frame_ids=ids[:PREDICTED], inference_set="oof", probabilities=probs[:PREDICTED],
                                    skip_frames=True)),
            ("other", UploadColumns(frame_ids=[f"o{i}" for i in range(6)], class_ids=[i % 3 for i in range(6)],
                                    inference_set="other-m", probabilities=probs[:6])),
        ]  # fmt: skip
        for dataset, cols in uploads:
            result = c.upload("digits", dataset, cols, progress=False)
            assert c.wait_for_upload("digits", result.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED

        space = pb.EmbeddingSpace(name="feat", dimension=8, metric=pb.DISTANCE_METRIC_L2,
                                  level=pb.EMBEDDING_LEVEL_FRAME, model_name="raw", model_version="1")  # fmt: skip
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="boxes", task_type=pb.TASK_TYPE_OBJECT_DETECTION_2D,
            classes=[pb.ClassDef(id=k, name=f"c{k}") for k in (1, 2, 3)], embedding_spaces=[space])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="boxes", dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="boxes", inference_set=pb.InferenceSet(
            name="det", dataset="val", model_name="detr", model_version="1")))  # fmt: skip
        sizes, objects, preds = _box_data()
        vectors = np.random.default_rng(5).normal(size=(BOX_FRAMES, 8)).astype(np.float32)
        result = c.upload("boxes", "val", UploadColumns(
            frame_ids=[f"b{i:02d}" for i in range(BOX_FRAMES)], sizes=sizes, objects=objects, inference_set="det",
            predictions=preds, embeddings={"feat": vectors}), progress=False)  # fmt: skip
        assert c.wait_for_upload("boxes", result.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    yield running
    running.server.stop(grace=1)


def _error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def _map(c: Any, project: str, dataset: str, space: str) -> str:
    job = c.analysis.StartEmbeddingMap(apb.StartEmbeddingMapRequest(project=project, dataset=dataset,
                                                                    embedding_space=space)).job  # fmt: skip
    return str(finish_job(c, project, job).job_id)


def _datapoints(c: Any) -> dict[str, apb.Datapoint]:
    out: dict[str, apb.Datapoint] = {}
    request = apb.QueryDatapointsRequest(project="digits", dataset="train", inference_set="oof",
                                         page=cpb.PageRequest(page_size=1000))  # fmt: skip
    resp = c.analysis.QueryDatapoints(request)
    assert not resp.page.next_page_token
    out.update((d.ref.frame_id, d) for d in resp.datapoints)
    return out


def _value(v: cpb.Value) -> Any:
    kind = v.WhichOneof("kind")
    return v.timestamp_value.ToDatetime(UTC) if kind == "timestamp_value" else getattr(v, kind)


def test_viewport_points_carry_predictions_label_issues_and_metadata(served: Running) -> None:
    with served.client(served.admin_key) as c:
        map_id = _map(c, "digits", "train", "pixels")
        issues_id = finish_job(c, "digits", c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(
            project="digits", inference_set="oof")).job).job_id  # fmt: skip

        def viewport(**kwargs: Any) -> apb.GetMapViewportResponse:
            return c.analysis.GetMapViewport(apb.GetMapViewportRequest(project="digits", job_id=map_id, **kwargs))

        plain = viewport(max_points=FRAMES)
        coloured = viewport(max_points=FRAMES, inference_set="oof", label_issue_job_id=issues_id,
                            metadata_key="camera")  # fmt: skip
        assert len(plain.points) == FRAMES
        assert [(p.frame_id, p.x, p.y) for p in coloured.points] == [(p.frame_id, p.x, p.y) for p in plain.points]
        assert not any(p.HasField("predicted_class") or p.HasField("metadata_value") or p.label_issue
                       for p in plain.points)  # fmt: skip

        # predictions and correctness: those of QueryDatapoints for the same frames
        datapoints = _datapoints(c)
        for p in coloured.points:
            d = datapoints[p.frame_id]
            assert p.HasField("predicted_class") == d.HasField("predicted_class") == (p.frame_id < _frame(PREDICTED))
            if d.HasField("predicted_class"):
                assert p.predicted_class == d.predicted_class and p.correct == (d.predicted_class == d.label_class)
            else:
                assert not p.HasField("correct")
        assert {p.frame_id for p in coloured.points if p.HasField("correct") and not p.correct} == {
            _frame(i) for i in NOISY
        }

        # label issues: the job's flagged frames, with their self-confidence
        examined = {r.ref.frame_id: r for r in c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(
            project="digits", job_id=issues_id, all_frames=True, page=cpb.PageRequest(page_size=1000))).issues}  # fmt: skip
        flagged = {f for f, r in examined.items() if r.is_issue}
        assert flagged == {_frame(i) for i in NOISY}
        assert {p.frame_id for p in coloured.points if p.label_issue} == flagged
        for p in coloured.points:
            assert p.HasField("self_confidence") == (p.frame_id in examined)
            if p.frame_id in examined:
                assert p.self_confidence == pytest.approx(examined[p.frame_id].self_confidence)

        # metadata: the uploaded values, of each type; none for a frame without the key
        for key in ("camera", "exposure", "night", "seen"):
            got = {p.frame_id: p for p in viewport(max_points=FRAMES, metadata_key=key).points}
            assert list(got) == [p.frame_id for p in plain.points]
            for i in range(FRAMES):
                expected = _metadata(i).get(key)
                point = got[_frame(i)]
                assert point.HasField("metadata_value") == (expected is not None), (key, i)
                if expected is not None:
                    assert _value(point.metadata_value) == expected, (key, i)
        assert [p.metadata_value.string_value for p in coloured.points] == [
            CAMERAS[int(p.frame_id[1:]) % 3] for p in coloured.points
        ]
        # asked as an Arrow table (as the console asks), the same points: the console's JSON of both is the same
        for extra in ({}, {"inference_set": "oof", "label_issue_job_id": issues_id, "metadata_key": "camera"},
                      *({"metadata_key": key} for key in ("exposure", "night", "seen"))):  # fmt: skip
            points, table = viewport(max_points=FRAMES, **extra), viewport(max_points=FRAMES, arrow=True, **extra)
            assert not table.points and table.points_arrow and table.total_in_viewport == points.total_in_viewport
            assert to_json(table) == to_json(points), extra
        # a leading "metadata." is the filters' spelling of the same key
        spelled = viewport(max_points=FRAMES, metadata_key="metadata.camera")
        assert [p.metadata_value for p in spelled.points] == [p.metadata_value for p in coloured.points]

        # a dismissed issue is no longer flagged; restored, it is again
        target = _frame(NOISY[0])
        c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(project="digits", job_id=issues_id,
                                                                    frame_ids=[target]))  # fmt: skip
        after = viewport(max_points=FRAMES, label_issue_job_id=issues_id)
        assert {p.frame_id for p in after.points if p.label_issue} == flagged - {target}
        c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(project="digits", job_id=issues_id,
                                                                    frame_ids=[target], restore=True))  # fmt: skip
        assert {p.frame_id for p in viewport(max_points=FRAMES, label_issue_job_id=issues_id).points
                if p.label_issue} == flagged  # fmt: skip

        # a sampled viewport (a budget smaller than what it holds) keeps its points whatever it is coloured by
        xy = np.array([[p.x, p.y] for p in plain.points])
        (x0, x1), (y0, y1) = np.quantile(xy[:, 0], [0.1, 0.8]), np.quantile(xy[:, 1], [0.1, 0.8])
        box = {"min_x": x0, "max_x": x1, "min_y": y0, "max_y": y1, "max_points": 12}
        sampled = viewport(**box)
        assert len(sampled.points) == 12 < sampled.total_in_viewport
        for extra in ({"inference_set": "oof"}, {"label_issue_job_id": issues_id}, {"metadata_key": "exposure"},
                      {"inference_set": "oof", "label_issue_job_id": issues_id, "metadata_key": "seen"}):  # fmt: skip
            again = viewport(**box, **extra)
            assert [p.frame_id for p in again.points] == [p.frame_id for p in sampled.points], extra
            assert again.total_in_viewport == sampled.total_in_viewport


def test_a_detection_map_is_coloured_by_its_flagged_frames(served: Running) -> None:
    with served.client(served.admin_key) as c:
        map_id = _map(c, "boxes", "val", "feat")
        job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project="boxes", inference_set="det")).job
        issues_id = finish_job(c, "boxes", job).job_id

        def flagged_frames() -> set[str]:
            resp = c.analysis.QueryDetectionLabelIssues(apb.QueryDetectionLabelIssuesRequest(
                project="boxes", job_id=issues_id, level=apb.DETECTION_ISSUE_LEVEL_FRAME,
                page=cpb.PageRequest(page_size=100)))  # fmt: skip
            return {f.ref.frame_id for f in resp.frames}

        def on_map() -> set[str]:
            resp = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project="boxes", job_id=map_id,
                                                                       label_issue_job_id=issues_id))  # fmt: skip
            assert len(resp.points) == BOX_FRAMES and not any(p.HasField("self_confidence") for p in resp.points)
            return {p.frame_id for p in resp.points if p.label_issue}

        flagged = flagged_frames()
        assert flagged and on_map() == flagged
        target = sorted(flagged)[0]
        c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(project="boxes", job_id=issues_id,
                                                                    frame_ids=[target]))  # fmt: skip
        assert on_map() == flagged_frames() == flagged - {target}


def test_colouring_fields_are_checked(served: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    with served.client(served.admin_key) as c:
        map_id = _map(c, "digits", "train", "pixels")

        def refused(**kwargs: Any) -> grpc.RpcError:
            return _error(lambda: c.analysis.GetMapViewport(apb.GetMapViewportRequest(project="digits", job_id=map_id,
                                                                                      **kwargs)))  # fmt: skip

        def check(err: grpc.RpcError, code: grpc.StatusCode, field: str) -> None:
            assert err.code() == code and err.details().startswith(f"{field}: "), err.details()

        inv, missing, early = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                               grpc.StatusCode.FAILED_PRECONDITION)  # fmt: skip
        # an inference set of another dataset, or none
        err = refused(inference_set="other-m")
        check(err, inv, "inference_set")
        assert "'other'" in err.details() and "'train'" in err.details()
        check(refused(inference_set="nope"), missing, "inference_set")
        # a label-issues job of another dataset, a job of another kind, no job
        other = finish_job(c, "digits", c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(
            project="digits", inference_set="other-m")).job).job_id  # fmt: skip
        err = refused(label_issue_job_id=other)
        check(err, inv, "label_issue_job_id")
        assert "'other'" in err.details()
        check(refused(label_issue_job_id=map_id), inv, "label_issue_job_id")
        check(refused(label_issue_job_id="nope"), missing, "label_issue_job_id")
        # a metadata key that is no key name
        for key in ("bad key", "metadata.", "a'b", "x" * 65):
            check(refused(metadata_key=key), inv, "metadata_key")

        # a label-issues job that has not finished
        release = threading.Event()
        compute = label_issues.find_label_issues

        def held(*args: Any, **kwargs: Any) -> Any:
            release.wait(timeout=120)
            return compute(*args, **kwargs)

        monkeypatch.setattr(label_issues, "find_label_issues", held)
        # (a filter makes it another job than the finished one)
        labeled = cpb.Filter(all=[cpb.Condition(field="labeled", equals=cpb.Value(bool_value=True))])
        job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project="digits", inference_set="oof",
                                                                      filter=labeled)).job  # fmt: skip
        try:
            wait_for(lambda: c.analysis.GetJob(apb.GetJobRequest(project="digits", job_id=job.job_id)).job.state
                     == cpb.JOB_STATE_RUNNING, timeout=60, what="the label-issues job to run")  # fmt: skip
            err = refused(label_issue_job_id=job.job_id)
            check(err, early, "label_issue_job_id")
            assert "RUNNING" in err.details()
        finally:
            release.set()
        finish_job(c, "digits", job)
