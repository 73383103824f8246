"""Detection metrics through the server: boxes uploaded with the SDK, read back from chDB and
evaluated, equal to pycocotools on the same boxes."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Box, LabeledObject, PredictedObject, UploadColumns
from tests.server.conftest import Running
from tests.unit.test_coco import STAT_NAMES, generate, reference

SIZE = 800


def _inside(bbox: list[float]) -> list[float]:
    """Clamped into the image and rounded to half pixels (exact in float32, as stored)."""
    x, y, w, h = bbox
    x, y = min(max(x, 0.0), SIZE - 2.0), min(max(y, 0.0), SIZE - 2.0)
    w, h = max(1.0, min(w, SIZE - x)), max(1.0, min(h, SIZE - y))
    return [float(np.floor(v * 2) / 2) for v in (x, y, w, h)]


def _dataset(seed: int) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    dataset, dts = generate(seed, images=60)
    for a in dataset["annotations"]:
        a["bbox"] = _inside(a["bbox"])
        a["area"] = a["bbox"][2] * a["bbox"][3]
    for d in dts:
        d["bbox"] = _inside(d["bbox"])
    return dataset, dts


def test_detection_metrics_equal_pycocotools(running: Running) -> None:
    dataset, dts = _dataset(11)
    images = [i["id"] for i in dataset["images"]]
    gts_by_image: dict[int, list] = {i: [] for i in images}  # type: ignore[type-arg]
    for a in dataset["annotations"]:
        x, y, w, h = a["bbox"]
        gts_by_image[a["image_id"]].append(
            LabeledObject(f"g-{a['id']:06d}", a["category_id"], Box(x, y, w, h), is_crowd=bool(a["iscrowd"]))
        )
    dts_by_image: dict[int, list] = {i: [] for i in images}  # type: ignore[type-arg]
    for k, d in enumerate(dts):  # object ids in input order: they break score ties as the input order does
        x, y, w, h = d["bbox"]
        dts_by_image[d["image_id"]].append(PredictedObject(f"d-{k:06d}", d["category_id"], d["score"], Box(x, y, w, h)))
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="cones", task_type=pb.TASK_TYPE_OBJECT_DETECTION_2D,
            classes=[pb.ClassDef(id=cat["id"], name=f"c{cat['id']}") for cat in dataset["categories"]])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="cones", dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="cones", inference_set=pb.InferenceSet(
            name="detr", dataset="val", model_name="detr", model_version="1")))  # fmt: skip
        cols = UploadColumns(
            frame_ids=[f"img-{i:04d}" for i in images],
            sizes=[(SIZE, SIZE)] * len(images),
            objects=[gts_by_image[i] for i in images],
            inference_set="detr",
            predictions=[dts_by_image[i] for i in images],
        )
        r = c.upload("cones", "val", cols, progress=False)
        st = c.wait_for_upload("cones", r.upload_id, timeout=120)
        assert st.state == pb.UPLOAD_STATE_COMPLETED, st
        got = c.analysis.GetDetectionMetrics(
            apb.GetDetectionMetricsRequest(project="cones", inference_set="detr")
        ).metrics
        with pytest.raises(grpc.RpcError) as info:  # classification metrics do not apply
            c.analysis.GetClassificationMetrics(
                apb.GetClassificationMetricsRequest(project="cones", inference_set="detr")
            )
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    ref = reference(dataset, dts)
    fields = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
              "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"]  # fmt: skip
    for name, field, value in zip(STAT_NAMES, fields, ref.stats, strict=True):
        assert getattr(got, field) == pytest.approx(value, abs=1e-6), name
    assert 0.2 < got.ap < 0.95  # a meaningful score, not a degenerate one
    assert (got.frames, got.ground_truth_objects, got.predicted_objects) == (
        len(images),
        len(dataset["annotations"]),
        len(dts),
    )
    by_class = {c.class_id: c for c in got.per_class}
    assert by_class[7].ap == -1 and by_class[7].ground_truth == 0  # never labeled: nothing to measure
    assert sum(c.predicted for c in got.per_class) == len(dts)
