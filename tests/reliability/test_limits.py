"""No request can make the server do unbounded work: every size a caller controls has a limit,
computations are sized by their data, work stops when its caller stops waiting, and an error never
echoes unbounded input back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common import limits, telemetry
from shoal.common.errors import Cancelled, DeadlineExceeded
from shoal.common.telemetry import RequestContext
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sampler.v1 import sampler_pb2 as spb
from shoal.sdk import UploadColumns
from tests.conftest import server_settings
from tests.server.conftest import Running, start_server

LARGE_K = 2_000
USED = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path) -> Iterator[Running]:

    data = tmp_path_factory.mktemp("limits")
    settings = server_settings(data, chdb_path, "t_limits")
    running = start_server(settings)
    with running.client(running.admin_key) as c:
        classes = [pb.ClassDef(id=i, name=f"c{i}") for i in range(LARGE_K)]
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="wide", task_type=pb.TASK_TYPE_CLASSIFICATION, classes=classes)))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="wide", dataset=pb.Dataset(
            name="d", kind=pb.DATASET_KIND_LABELED, splits=["train"])))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="wide", inference_set=pb.InferenceSet(
            name="m", dataset="d", model_name="m", model_version="1")))  # fmt: skip
    yield running
    running.server.stop(grace=1)


@pytest.fixture(scope="module")
def wide_data(server: Running) -> tuple[np.ndarray, np.ndarray]:
    """200 frames of a 2,000-class project, labeled and predicted with 6 of its classes."""
    rng = np.random.default_rng(7)
    n = 200
    labels = rng.integers(0, USED, n)
    probs = np.full((n, LARGE_K), 1e-6)
    predicted = np.where(rng.random(n) < 0.7, labels, rng.integers(0, USED, n))
    probs[np.arange(n), predicted] = 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    with server.client(server.admin_key) as c:
        result = c.upload("wide", "d", UploadColumns(
            frame_ids=[f"f{i}" for i in range(n)], splits=["train"] * n, class_ids=labels.tolist(),
            inference_set="m", probabilities=probs.astype(np.float32)), progress=False)  # fmt: skip
        c.wait_for_upload("wide", result.upload_id)
    return labels, predicted


def _code(call) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def test_a_project_key_cannot_declare_more_classes_than_the_limit(server: Running) -> None:
    too_many = [pb.ClassDef(id=i, name=f"c{i}") for i in range(50_000)]
    with server.client(server.admin_key) as c:
        err = _code(lambda: c.ingest.UpdateProject(pb.UpdateProjectRequest(
            project="wide", update=pb.Project(classes=too_many), update_mask={"paths": ["classes"]})))  # fmt: skip
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith("update.classes: has 50,000 items, more than the 10,000 allowed")
        err = _code(lambda: c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="huge", task_type=pb.TASK_TYPE_CLASSIFICATION, classes=too_many[: limits.MAX_CLASSES + 1]))))  # fmt: skip
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "project.classes" in err.details()
        # the project is unchanged
        assert len(c.ingest.GetProject(pb.GetProjectRequest(project="wide")).project.classes) == LARGE_K


def test_metrics_of_a_wide_ontology_are_sized_by_the_classes_its_frames_carry(
    server: Running, wide_data: tuple[np.ndarray, np.ndarray]
) -> None:
    labels, predicted = wide_data
    with server.client(server.admin_key) as c:
        m = c.analysis.GetClassificationMetrics(
            apb.GetClassificationMetricsRequest(project="wide", inference_set="m")
        ).metrics
    present = sorted(set(labels.tolist()) | set(predicted.tolist()))
    assert list(m.confusion.class_ids) == present
    assert m.confusion.omitted_classes == LARGE_K - len(present)
    assert len(m.confusion.counts) == len(present) * (len(present) + 1)
    counts = np.array(m.confusion.counts).reshape(len(present), len(present) + 1)
    assert int(counts.sum()) == len(labels)
    assert len(m.per_class) == LARGE_K
    assert m.accuracy == pytest.approx(accuracy_score(labels, predicted))
    macro = f1_score(labels, predicted, labels=list(range(LARGE_K)), average="macro", zero_division=0)
    assert m.macro_f1 == pytest.approx(macro)


def test_the_detection_confusion_of_a_wide_ontology_is_sized_by_the_classes_its_boxes_carry(server: Running) -> None:
    from shoal.sdk import Box, LabeledObject, PredictedObject

    with server.client(server.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="wide-boxes", task_type=pb.TASK_TYPE_OBJECT_DETECTION_2D,
            classes=[pb.ClassDef(id=i, name=f"c{i}") for i in range(LARGE_K)])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="wide-boxes", dataset=pb.Dataset(
            name="d", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="wide-boxes", inference_set=pb.InferenceSet(
            name="m", dataset="d", model_name="m", model_version="1")))  # fmt: skip
        box = Box(10, 10, 20, 20)
        # frame 0: a class-3 box found as class 3; frame 1: a class-5 box found as class 7; frame 2: a
        # class-9 box missed and a spurious class-11 box
        objects = [[LabeledObject("g0", 3, box)], [LabeledObject("g1", 5, box)], [LabeledObject("g2", 9, box)]]
        predictions = [[PredictedObject("p0", 3, 0.9, box)], [PredictedObject("p1", 7, 0.8, box)],
                       [PredictedObject("p2", 11, 0.7, Box(60, 60, 10, 10))]]  # fmt: skip
        result = c.upload("wide-boxes", "d", UploadColumns(
            frame_ids=["a", "b", "c"], sizes=[(100, 100)] * 3, objects=objects, inference_set="m",
            predictions=predictions), progress=False)  # fmt: skip
        c.wait_for_upload("wide-boxes", result.upload_id)
        confusion = c.analysis.GetDetectionConfusion(apb.GetDetectionConfusionRequest(
            project="wide-boxes", inference_set="m", iou_threshold=0.5)).confusion  # fmt: skip
        metrics = c.analysis.GetDetectionMetrics(
            apb.GetDetectionMetricsRequest(project="wide-boxes", inference_set="m")
        ).metrics
    # COCO evaluation over the classes with boxes: one of three labeled boxes found at every threshold
    assert len(metrics.per_class) == LARGE_K
    assert metrics.ap50 == pytest.approx(1 / 3)
    assert list(confusion.class_ids) == [3, 5, 7, 9, 11]
    assert confusion.omitted_classes == LARGE_K - 5
    counts = np.array(confusion.counts).reshape(6, 6)
    expected = np.zeros((6, 6), dtype=int)
    expected[0, 0] = 1  # 3 -> 3
    expected[1, 2] = 1  # 5 -> 7
    expected[3, 5] = 1  # 9 missed
    expected[5, 4] = 1  # a false positive of class 11
    assert counts.tolist() == expected.tolist()


def test_label_issues_refuse_an_ontology_too_wide_for_their_matrices(server: Running) -> None:
    with server.client(server.admin_key) as c:
        err = _code(lambda: c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project="wide", inference_set="m")))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "2,000 classes" in err.details() and "at most 1,000" in err.details()


def test_a_filter_has_at_most_the_documented_number_of_conditions(server: Running, wide_data: object) -> None:
    def conditions(n: int) -> cpb.Filter:
        return cpb.Filter(all=[cpb.Condition(field="label_class", range=cpb.Range(min=cpb.Value(number_value=-i)))
                               for i in range(n)])  # fmt: skip

    with server.client(server.admin_key) as c:
        page = c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project="wide", dataset="d", inference_set="m", filter=conditions(limits.MAX_CONDITIONS)))  # fmt: skip
        assert page.page.total_count == 200
        err = _code(lambda: c.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project="wide", dataset="d", inference_set="m", filter=conditions(limits.MAX_CONDITIONS + 1))))  # fmt: skip
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith("filter.all: has 65 items, more than the 64 allowed")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e300])
def test_a_class_filter_with_a_value_that_is_no_class_id_is_refused(server: Running, bad: float) -> None:
    flt = cpb.Filter(all=[cpb.Condition(field="label_class", equals=cpb.Value(number_value=bad))])
    with server.client(server.admin_key) as c:
        err = _code(lambda: c.analysis.GetClassificationMetrics(
            apb.GetClassificationMetricsRequest(project="wide", inference_set="m", filter=flt)))  # fmt: skip
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("filter.all[0].equals:")


def test_drift_windows_outside_the_stored_times_are_refused(server: Running) -> None:
    with server.client(server.admin_key) as c:
        c.ingest.CreateEmbeddingSpace(pb.CreateEmbeddingSpaceRequest(project="wide", embedding_space=pb.EmbeddingSpace(
            name="e", dimension=4, metric=pb.DISTANCE_METRIC_L2, level=pb.EMBEDDING_LEVEL_FRAME,
            model_name="m", model_version="1")))  # fmt: skip
        side = apb.DriftSide(dataset="d")
        side.since.seconds = -70_000_000_000  # year -248
        err = _code(lambda: c.analysis.StartDrift(apb.StartDriftRequest(
            project="wide", embedding_space="e", a=side, b=apb.DriftSide(dataset="d"))))  # fmt: skip
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("a.since:") and "1900-01-01" in err.details()


def test_a_long_name_is_refused_with_a_short_message(server: Running) -> None:
    name = "n" * (4 * 1024 * 1024)
    with server.client(server.admin_key) as c:
        err = _code(lambda: c.ingest.CreateDataset(pb.CreateDatasetRequest(
            project="wide", dataset=pb.Dataset(name=name, kind=pb.DATASET_KIND_LABELED))))  # fmt: skip
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith("dataset.name: is 4,194,304 characters long, more than the 256 allowed")
        # an error that quotes a value (an unknown dataset) quotes a bounded part of it
        err = _code(lambda: c.ingest.GetDataset(pb.GetDatasetRequest(project="wide", dataset="x" * 250)))
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert len(err.details()) < 400


def test_free_text_has_a_limit_too(server: Running) -> None:
    with server.client(server.admin_key) as c:
        err = _code(lambda: c.analysis.CreateSegment(apb.CreateSegmentRequest(project="wide", segment=apb.Segment(
            name="s", dataset="d", kind=apb.SEGMENT_KIND_ISSUE, reason="r" * (limits.MAX_TEXT + 1)))))  # fmt: skip
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith("segment.reason: is 4,097 characters long, more than the 4,096 allowed")
        err = _code(lambda: c.sampler.RequestLabeling(spb.RequestLabelingRequest(
            project="wide", frames=spb.FrameList(dataset="d", frame_ids=["f1"]), requested_by="x" * 5000)))  # fmt: skip
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith("requested_by: is 5,000 characters long")


def test_labeling_requests_name_a_platform_the_bridge_serves(server: Running, wide_data: object) -> None:
    with server.client(server.admin_key) as c:
        err = _code(lambda: c.sampler.RequestLabeling(spb.RequestLabelingRequest(
            project="wide", frames=spb.FrameList(dataset="d", frame_ids=["f1", "f2"]), platform="labelbox")))  # fmt: skip
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("platform: is 'labelbox'; the labeling bridge serves label_studio")


# -- work stops with its caller ---------------------------------------------------------------

_HEAVY = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3"


def test_a_query_for_an_rpc_stops_at_the_callers_deadline(embedded_metrics) -> None:  # type: ignore[no-untyped-def]
    embedded_metrics.query("SELECT 1")
    token = telemetry.set_request(RequestContext("r1", "/test/Heavy", deadline=time.monotonic() + 0.5))
    try:
        with pytest.raises(DeadlineExceeded, match="deadline passed"):
            embedded_metrics.query(_HEAVY)
    finally:
        telemetry.reset_request(token)


def test_no_query_starts_for_a_caller_who_cancelled(embedded_metrics) -> None:  # type: ignore[no-untyped-def]
    gone = threading.Event()
    gone.set()
    token = telemetry.set_request(RequestContext("r2", "/test/Heavy", active=lambda: not gone.is_set()))
    try:
        with pytest.raises(Cancelled):
            embedded_metrics.query(_HEAVY)
    finally:
        telemetry.reset_request(token)


def test_a_heavy_rpc_ends_with_deadline_exceeded_on_the_server(server: Running, wide_data: object) -> None:
    """The server's own record of the RPC says it stopped at the deadline, not that it ran on."""
    from prometheus_client import REGISTRY

    def handled(code: str) -> float:
        return REGISTRY.get_sample_value(
            "shoal_grpc_server_handled_total",
            {"grpc_service": "shoal.analysis.v1.AnalysisService", "grpc_method": "QueryDatapoints",
             "grpc_type": "unary", "grpc_code": code},
        ) or 0.0  # fmt: skip

    # A deadline too short for the RPC: whether the server receives the call before the deadline passes
    # depends on the machine, so try shorter and longer ones until the server has seen one.
    before = handled("DEADLINE_EXCEEDED")
    with server.client(server.admin_key) as c:
        for timeout in (0.002, 0.005, 0.01, 0.02, 0.05, 0.1) * 5:
            try:
                c.analysis.QueryDatapoints(
                    apb.QueryDatapointsRequest(project="wide", dataset="d", inference_set="m"), timeout=timeout
                )
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            if handled("DEADLINE_EXCEEDED") > before:
                break
    from tests.server.conftest import wait_for

    wait_for(lambda: handled("DEADLINE_EXCEEDED") > before, what="the server to record the deadline")


def test_the_limits_reference_is_current() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "limits.md").read_text()
    assert limits.markdown() in page, "docs/reference/limits.md differs from limits.markdown(): run `make docs`"
