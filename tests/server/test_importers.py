"""`shoal import coco` and `shoal import table` against a running server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.cli import main
from shoal.common.stores.vectors import collection_name
from shoal.importers import COCO_PERSON_KEYPOINTS
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.server.conftest import Running
from tests.unit.test_coco_masks_keypoints import PERSON, generate_keypoints, generate_segm, reference


def _coco(tmp: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    images, anns, dets = [], [], []
    for i in range(1, 31):
        images.append({"id": i, "file_name": f"{i:06d}.jpg", "width": 640, "height": 480})
        for _ in range(int(rng.integers(0, 4))):  # some images without ground truth
            x, y = float(rng.uniform(0, 500)), float(rng.uniform(0, 350))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(rng.choice([1, 3])),
                         "bbox": [x, y, 100.0, 100.0], "iscrowd": int(rng.random() < 0.1), "area": 1e4})  # fmt: skip
        for _ in range(int(rng.integers(0, 3))):
            dets.append({"image_id": i, "category_id": 3, "score": float(rng.random()),
                         "bbox": [600.0, 400.0, 100.0, 100.0]})  # overhangs the image: kept  # fmt: skip
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]}
    (tmp / "instances.json").write_text(json.dumps(gt))
    (tmp / "results.json").write_text(json.dumps(dets))
    return tmp / "instances.json", tmp / "results.json"


def test_import_coco_ground_truth_and_results(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running, p = shared, project
    ann, res = _coco(tmp_path)
    gt = json.loads(ann.read_text())
    dets = json.loads(res.read_text())
    code = main(["import", "coco", "--target", running.target, "--api-key", running.admin_key, "--project", p,
                 "--dataset", "val", "--create", "--annotations", str(ann), "--results", str(res),
                 "--inference-set", "detr", "--media-root", "s3://bucket/val2017", "--split", "val", "--wait"])  # fmt: skip
    assert code == 0, capsys.readouterr()
    m = running.server.stores.metrics
    assert m.query(f"SELECT count() FROM frames FINAL WHERE project = '{p}'").scalar() == 30
    assert m.query(f"SELECT count() FROM label_objects FINAL WHERE project = '{p}'").scalar() == len(gt["annotations"])
    assert m.query(f"SELECT count() FROM predicted_objects FINAL WHERE project = '{p}'").scalar() == len(dets)
    crowd = sum(a["iscrowd"] for a in gt["annotations"])
    assert m.query(f"SELECT sum(is_crowd) FROM label_objects FINAL WHERE project = '{p}'").scalar() == crowd
    # kept as given, overhanging the 640x480 image (as pycocotools evaluates them)
    assert m.query(f"SELECT max(x + w), max(y + h) FROM predicted_objects FINAL WHERE project = '{p}'").rows[0] == (
        700.0,
        500.0,
    )
    # detection ids sort in file order
    ids = m.query(f"SELECT object_id FROM predicted_objects FINAL WHERE project = '{p}'").rows
    assert sorted(r[0] for r in ids) == [f"det-{k:06d}" for k in range(len(dets))]
    uri = m.query(f"SELECT media_uri FROM frames FINAL WHERE project = '{p}' AND frame_id = '7'").scalar()
    assert uri == "s3://bucket/val2017/000007.jpg"
    with running.client(running.admin_key) as c:
        got = c.ingest.GetProject(pb.GetProjectRequest(project=p)).project
        assert got.task_type == pb.TASK_TYPE_OBJECT_DETECTION_2D
        assert [(cl.id, cl.name) for cl in got.classes] == [(1, "person"), (3, "car")]


def test_import_table_with_embeddings(shared: Running, project: str, tmp_path: Path) -> None:
    running, p = shared, project
    import pandas as pd

    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="cat"), pb.ClassDef(id=1, name="dog")],
            embedding_spaces=[pb.EmbeddingSpace(name="clip", dimension=4, metric=pb.DISTANCE_METRIC_COSINE,
                                                level=pb.EMBEDDING_LEVEL_FRAME, model_name="clip", model_version="1")])))  # fmt: skip
    n = 50
    rng = np.random.default_rng(1)
    p_dog = rng.random(n)
    df = pd.DataFrame({
        "frame_id": [f"img{i}" for i in range(n)], "label": rng.choice(["cat", "dog"], n),
        "prob_cat": 1 - p_dog, "prob_dog": p_dog, "camera": rng.choice(["front", "rear"], n), "speed": rng.random(n),
    })  # fmt: skip
    df.to_parquet(tmp_path / "frames.parquet")
    vecs = rng.normal(size=(n, 4)).astype(np.float32)
    np.save(tmp_path / "emb.npy", vecs)
    code = main(["import", "table", "--target", running.target, "--api-key", running.admin_key, "--project", p,
                 "--dataset", "pets", "--create", "--table", str(tmp_path / "frames.parquet"), "--embeddings",
                 str(tmp_path / "emb.npy"), "--space", "clip", "--inference-set", "m1", "--wait"])  # fmt: skip
    assert code == 0
    m = running.server.stores.metrics
    rows = m.query(
        f"SELECT frame_id, meta_str['camera'], meta_num['speed'] FROM frames FINAL WHERE project = '{p}' ORDER BY frame_id"
    ).rows
    assert len(rows) == n and {r[1] for r in rows} <= {"front", "rear"}
    got = dict(m.query(f"SELECT frame_id, class_id FROM label_versions FINAL WHERE project = '{p}'").rows)
    assert got == {f"img{i}": {"cat": 0, "dog": 1}[df.label[i]] for i in range(n)}
    assert running.server.stores.vectors.count(collection_name(p, "clip"), partition="pets") == n


def test_import_table_refuses_unknown_labels(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running, p = shared, project
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="cat")])))  # fmt: skip
    (tmp_path / "t.csv").write_text("frame_id,label\na,cat\nb,zebra\n")
    code = main(["import", "table", "--target", running.target, "--api-key", running.admin_key, "--project", p,
                 "--dataset", "x", "--create", "--table", str(tmp_path / "t.csv")])  # fmt: skip
    assert code == 2 and "labels ['zebra'] are not classes of the project" in capsys.readouterr().err


def _import(running: Running, p: str, ann: Path, res: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["import", "coco", "--target", running.target, "--api-key", running.admin_key, "--project", p,
                 "--dataset", "val", "--create", "--annotations", str(ann), "--results", str(res),
                 "--inference-set", "mrcnn", "--wait"])  # fmt: skip
    assert code == 0, capsys.readouterr()


def test_import_coco_instance_masks_and_measure_them_as_pycocotools(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An instances file with polygons and run lengths (crowd regions) and a results file of run
    lengths: the project is made an instance segmentation project, and its mask AP is the
    reference's on the same two files."""
    running, p = shared, project
    dataset, dts = generate_segm(3, images=25)
    for im in dataset["images"]:
        im["file_name"] = f"{im['id']:06d}.jpg"
    (tmp_path / "instances.json").write_text(json.dumps(dataset))
    (tmp_path / "results.json").write_text(json.dumps(dts))
    polygons = sum(isinstance(a["segmentation"], list) for a in dataset["annotations"])
    _import(running, p, tmp_path / "instances.json", tmp_path / "results.json", capsys)
    ref = reference(dataset, dts, "segm")  # (turns the dataset's polygons into run lengths)
    with running.client(running.admin_key) as c:
        assert c.ingest.GetProject(pb.GetProjectRequest(project=p)).project.task_type == (
            pb.TASK_TYPE_INSTANCE_SEGMENTATION
        )
        got = c.analysis.GetDetectionMetrics(apb.GetDetectionMetricsRequest(project=p, inference_set="mrcnn")).metrics
    assert got.iou_type == "segm" and got.ground_truth_objects == len(dataset["annotations"])
    assert (got.ap, got.ap50, got.ap_small, got.ar100) == pytest.approx(
        (ref.stats[0], ref.stats[1], ref.stats[3], ref.stats[8]), abs=1e-6
    )
    # polygons are kept as given beside the mask drawn from them
    m = running.server.stores.metrics
    kept = m.query(f"SELECT countIf(notEmpty(polygons)), countIf(mask != '') FROM label_objects FINAL"
                   f" WHERE project = '{p}'").rows[0]  # fmt: skip
    assert kept == (polygons, len(dataset["annotations"]))


def test_import_coco_person_keypoints_with_cocos_sigmas(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A person_keypoints file with the 17 COCO keypoints: the class gets their names, the
    skeleton (from 0) and COCO's sigmas, and keypoint AP is the reference's (which uses those
    sigmas) on the same files."""
    running, p = shared, project
    dataset, dts = generate_keypoints(4, 17, [1], images=30)
    dataset["categories"][0].update(name="person", keypoints=list(COCO_PERSON_KEYPOINTS), skeleton=[[16, 14], [14, 12]])
    for im in dataset["images"]:
        im["file_name"] = f"{im['id']:06d}.jpg"
    for a in dataset["annotations"]:  # half pixels (exact as stored); a label's area is its box's
        a["bbox"] = [max(float(np.floor(v * 2) / 2), 1.0) for v in a["bbox"]]
        a["area"] = a["bbox"][2] * a["bbox"][3]
    (tmp_path / "keypoints.json").write_text(json.dumps(dataset))
    (tmp_path / "results.json").write_text(json.dumps(dts))
    _import(running, p, tmp_path / "keypoints.json", tmp_path / "results.json", capsys)
    ref = reference(dataset, dts, "keypoints")
    with running.client(running.admin_key) as c:
        got_project = c.ingest.GetProject(pb.GetProjectRequest(project=p)).project
        got = c.analysis.GetDetectionMetrics(apb.GetDetectionMetricsRequest(project=p, inference_set="mrcnn")).metrics
    person = got_project.classes[0]
    assert got_project.task_type == pb.TASK_TYPE_KEYPOINTS and list(person.keypoints) == list(COCO_PERSON_KEYPOINTS)
    assert [(e.a, e.b) for e in person.skeleton] == [(15, 13), (13, 11)]
    assert list(person.keypoint_sigmas) == pytest.approx(PERSON)
    assert got.iou_type == "keypoints"
    assert (got.ap, got.ap50, got.ap75, got.ar) == pytest.approx(
        (ref.stats[0], ref.stats[1], ref.stats[2], ref.stats[5]), abs=1e-6
    )
