"""The analysis API the console reads: the boxes of each datapoint, to draw them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Box, LabeledObject, PredictedObject, UploadColumns
from tests.conftest import server_settings
from tests.server.conftest import Running, create_pixel_digits, start_server
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
    upload_cones(running)
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
