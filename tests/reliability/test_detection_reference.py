"""Detection metrics on raw COCO files equal pycocotools': detections overhanging the image edge
are accepted and evaluated as given, and score ties are broken in the reference's order (images by
their integer id, detections of an image in file order), with unpadded numeric image ids."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.cli import main
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Box, LabeledObject, PredictedObject, UploadColumns, UploadFailed
from tests.conftest import server_settings
from tests.server.conftest import Running, start_server
from tests.unit.test_coco import STAT_NAMES

WIDTH, HEIGHT = 640, 480
CATEGORIES = [1, 2, 3]
FIELDS = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
          "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"]  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path) -> Iterator[Running]:
    settings = server_settings(tmp_path_factory.mktemp("reference") / "data", chdb_path)
    running = start_server(settings)
    yield running
    running.server.stop(grace=1)


def _half(v: np.ndarray) -> list[float]:
    """Half pixels: exact in float32, as boxes are stored."""
    return [float(x) for x in np.floor(np.asarray(v, dtype=np.float64) * 2) / 2]


def _write_coco(tmp: Path, *, images: int, seed: int, overhang: bool) -> tuple[Path, Path]:
    """A COCO instances file (boxes inside the image, area = w * h as Shoal measures it) and a
    results file: detections jittered around the ground truth, duplicates, other classes and false
    positives, scores rounded to 2 decimals (many exact ties). With ``overhang``, ground truth
    touches the edges and many detections reach past them (negative x/y, beyond width/height)."""
    rng = np.random.default_rng(seed)
    image_rows, anns, dets = [], [], []
    for img in range(1, images + 1):
        image_rows.append({"id": img, "file_name": f"{img}.jpg", "width": WIDTH, "height": HEIGHT})
        for _ in range(int(rng.integers(0, 6))):
            w, h = np.exp(rng.uniform(np.log(8), np.log(300), 2))
            x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
            if overhang and rng.random() < 0.6:  # against an edge
                x = 0.0 if rng.random() < 0.5 else WIDTH - w
                y = 0.0 if rng.random() < 0.5 else HEIGHT - h
            gx, gy, gw, gh = _half([x, y, w, h])
            gw, gh = min(gw, WIDTH - gx), min(gh, HEIGHT - gy)
            cat = int(rng.choice(CATEGORIES))
            anns.append({"id": len(anns) + 1, "image_id": img, "category_id": cat, "bbox": [gx, gy, gw, gh],
                         "area": gw * gh, "iscrowd": int(rng.random() < 0.05)})  # fmt: skip
            for _ in range(int(rng.integers(0, 4))):
                box = np.array([gx, gy, gw, gh]) + rng.normal(0, 0.12, 4) * [gw, gh, gw, gh]
                if overhang and rng.random() < 0.5:  # reach past the edge the box touches
                    box[0] -= 15 if gx == 0 else 0
                    box[1] -= 15 if gy == 0 else 0
                    box[2] += 15 + (15 if gx + gw >= WIDTH else 0)
                    box[3] += 15 + (15 if gy + gh >= HEIGHT else 0)
                box[2:] = np.maximum(box[2:], 2.0)
                dcat = cat if rng.random() < 0.85 else int(rng.choice(CATEGORIES))
                dets.append({"image_id": img, "category_id": dcat, "bbox": _half(box),
                             "score": round(float(rng.random()), 2)})  # fmt: skip
        for _ in range(int(rng.integers(0, 3))):  # false positives, some over a corner
            w, h = np.exp(rng.uniform(np.log(8), np.log(200), 2))
            x, y = (
                rng.uniform(-w / 2 if overhang else 0, WIDTH - (w / 2 if overhang else w)),
                rng.uniform(0, HEIGHT - h),
            )
            dets.append({"image_id": img, "category_id": int(rng.choice(CATEGORIES)), "bbox": _half([x, y, w, h]),
                         "score": round(float(rng.random()), 2)})  # fmt: skip
    gt = {"images": image_rows, "annotations": anns,
          "categories": [{"id": c, "name": f"c{c}"} for c in CATEGORIES]}  # fmt: skip
    (tmp / "instances.json").write_text(json.dumps(gt))
    (tmp / "results.json").write_text(json.dumps(dets))
    return tmp / "instances.json", tmp / "results.json"


def _reference(annotations: Path, results: Path) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        ev = COCOeval(gt, gt.loadRes(str(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _import(
    running: Running, project: str, annotations: Path, results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["import", "coco", "--target", running.target, "--api-key", running.admin_key, "--project", project,
                 "--dataset", "val", "--create", "--annotations", str(annotations), "--results", str(results),
                 "--inference-set", "det", "--wait"])  # fmt: skip
    assert code == 0, capsys.readouterr()


def _assert_equal_to_reference(running: Running, project: str, annotations: Path, results: Path) -> None:
    ref = _reference(annotations, results)
    with running.client(running.admin_key) as c:
        got = c.analysis.GetDetectionMetrics(
            apb.GetDetectionMetricsRequest(project=project, inference_set="det")
        ).metrics
    for name, field, value in zip(STAT_NAMES, FIELDS, ref.stats, strict=True):
        assert getattr(got, field) == pytest.approx(value, abs=1e-9), name
    # per class, from the reference's precision and recall arrays (all areas, 100 detections)
    precision, recall = ref.eval["precision"], ref.eval["recall"]
    for k, cat in enumerate(ref.params.catIds):
        p = precision[:, :, k, 0, 2]
        want_ap = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
        r = recall[:, k, 0, 2]
        want_ar = float(np.mean(r[r > -1])) if (r > -1).any() else -1.0
        per_class = next(pc for pc in got.per_class if pc.class_id == cat)
        assert (per_class.ap, per_class.ar100) == pytest.approx((want_ap, want_ar), abs=1e-9), cat


def test_overhanging_detections_are_kept_as_given_and_metrics_equal_pycocotools(
    served: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ann, res = _write_coco(tmp_path, images=60, seed=3, overhang=True)
    dets = json.loads(res.read_text())
    over = [d for d in dets if d["bbox"][0] < 0 or d["bbox"][1] < 0 or d["bbox"][0] + d["bbox"][2] > WIDTH
            or d["bbox"][1] + d["bbox"][3] > HEIGHT]  # fmt: skip
    assert len(over) > 30 and any(d["bbox"][0] < 0 for d in over) and any(d["bbox"][1] < 0 for d in over)
    _import(served, "edges", ann, res, capsys)
    m = served.server.stores.metrics
    stored = m.query(
        "SELECT x, y, w, h, score FROM predicted_objects FINAL WHERE project = 'edges' ORDER BY x, y, w, h, score"
    ).rows
    want = sorted((*d["bbox"], float(np.float32(d["score"]))) for d in dets)
    assert [tuple(float(v) for v in r) for r in stored] == want  # every one, as given (exact in float32)
    _assert_equal_to_reference(served, "edges", ann, res)


def _status_errors(running: Running, project: str, cols: UploadColumns) -> list[str]:
    """The errors an upload reports, whether the RPC refuses it or the status lists them."""
    with running.client(running.admin_key) as c:
        try:
            r = c.upload(project, "val", cols, progress=False)
        except (grpc.RpcError, UploadFailed) as err:
            return [err.details() if isinstance(err, grpc.RpcError) else str(err)]
        st = c.wait_for_upload(project, r.upload_id, timeout=120)
        return [e.detail.message for e in st.errors]


def test_predicted_boxes_may_overhang_ground_truth_may_not(served: Running) -> None:
    with served.client(served.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="rules", task_type=pb.TASK_TYPE_OBJECT_DETECTION_2D, classes=[pb.ClassDef(id=1, name="car")])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="rules", dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="rules", inference_set=pb.InferenceSet(
            name="det", dataset="val", model_name="m", model_version="1")))  # fmt: skip
    ok = UploadColumns(
        frame_ids=["a"], sizes=[(WIDTH, HEIGHT)], inference_set="det",
        predictions=[[PredictedObject("p1", 1, 0.9, Box(-20.0, -10.5, 100.0, 80.0)),
                      PredictedObject("p2", 1, 0.8, Box(600.0, 450.0, 90.0, 60.0))]],
    )  # fmt: skip
    assert _status_errors(served, "rules", ok) == []
    rows = served.server.stores.metrics.query(
        "SELECT object_id, x, y, w, h FROM predicted_objects FINAL WHERE project = 'rules' ORDER BY object_id"
    ).rows
    assert [tuple(r) for r in rows] == [("p1", -20.0, -10.5, 100.0, 80.0), ("p2", 600.0, 450.0, 90.0, 60.0)]
    # ground truth outside its image is still an error to report
    gt = UploadColumns(frame_ids=["b"], sizes=[(WIDTH, HEIGHT)],
                       objects=[[LabeledObject("g1", 1, Box(-20.0, 0.0, 100.0, 80.0))]])  # fmt: skip
    errors = _status_errors(served, "rules", gt)
    assert errors and "outside the image" in errors[0], errors
    # a predicted box far beyond its image (more than the image's own size) is a mistake, not an overhang
    far = UploadColumns(frame_ids=["c"], sizes=[(WIDTH, HEIGHT)], inference_set="det",
                        predictions=[[PredictedObject("p1", 1, 0.9, Box(5000.0, 10.0, 50.0, 50.0))]])  # fmt: skip
    errors = _status_errors(served, "rules", far)
    assert errors and "far outside" in errors[0], errors


def test_score_ties_follow_the_reference_with_unpadded_numeric_ids(
    served: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ann, res = _write_coco(tmp_path, images=200, seed=7, overhang=False)
    dets = json.loads(res.read_text())
    scores = [d["score"] for d in dets]
    assert len(scores) - len(set(scores)) > 500  # exact ties everywhere
    _import(served, "ties", ann, res, capsys)
    _assert_equal_to_reference(served, "ties", ann, res)
