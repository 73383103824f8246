"""`shoal import coco` and `shoal import table` against a running server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shoal.cli import main
from shoal.common.stores.vectors import collection_name
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.server.conftest import Running


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
