"""Small projects with real images for the console's tests.

- "shapes" (classification, 3 classes, 150 frames of 64x64 PNGs: a circle, a square or a
  triangle): splits train/val, metadata camera front/rear, capture times over ten days, a model's
  probabilities that are right on most frames, 8 frames whose label was flipped (the model is
  confident they are another class: label issues), and a 16-d embedding space "pixels" where each
  class is a cluster.
- "cones" (2-D detection, 3 classes, 24 frames of 160x120 PNGs with boxes drawn): labels and
  predictions of one inference set with a missed box, a false positive and a class swap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Box, LabeledObject, PredictedObject, UploadColumns
from tests.console.conftest import Console

SHAPES = ("circle", "square", "triangle")
CONES = ("cone", "barrel", "sign")


@dataclass
class Shapes:
    frame_ids: list[str]
    labels: list[int]
    truth: list[int]
    splits: list[str]
    cameras: list[str]
    flipped: list[str] = field(default_factory=list)


def _draw_shape(path: Path, kind: int, rng: np.random.Generator) -> None:
    img = Image.new("RGB", (64, 64), tuple(int(v) for v in rng.integers(200, 255, 3)))
    d = ImageDraw.Draw(img)
    c = tuple(int(v) for v in rng.integers(0, 120, 3))
    x, y, r = (int(v) for v in (rng.integers(22, 42), rng.integers(22, 42), rng.integers(10, 18)))
    if kind == 0:
        d.ellipse((x - r, y - r, x + r, y + r), fill=c)
    elif kind == 1:
        d.rectangle((x - r, y - r, x + r, y + r), fill=c)
    else:
        d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=c)
    img.save(path)


def make_shapes(console: Console, project: str = "shapes", n: int = 150, seed: int = 3) -> Shapes:
    rng = np.random.default_rng(seed)
    media = console.media / project
    media.mkdir(parents=True, exist_ok=True)
    truth = [int(v) for v in rng.integers(0, 3, n)]
    frame_ids = [f"s-{i:04d}" for i in range(n)]
    for fid, k in zip(frame_ids, truth, strict=True):
        _draw_shape(media / f"{fid}.png", k, rng)
    labels = list(truth)
    flipped = [frame_ids[i] for i in range(5, n, n // 8)][:8]
    for fid in flipped:
        i = frame_ids.index(fid)
        labels[i] = (truth[i] + 1) % 3
    probs = np.full((n, 3), 0.04)
    for i, k in enumerate(truth):
        sure = 0.92 if i % 10 else 0.55  # every tenth frame the model is unsure
        probs[i] = (1 - sure) / 2
        probs[i, k] = sure
        if i % 17 == 3:  # a few plain mistakes of the model
            probs[i] = np.roll(probs[i], 1)
    centres = rng.normal(0, 1, (3, 16)) * 4
    vectors = (centres[truth] + rng.normal(0, 0.5, (n, 16))).astype(np.float32)
    splits = ["val" if i % 3 == 0 else "train" for i in range(n)]
    cameras = ["rear" if i % 4 == 0 else "front" for i in range(n)]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    space = pb.EmbeddingSpace(name="pixels", dimension=16, metric=pb.DISTANCE_METRIC_L2,
                              level=pb.EMBEDDING_LEVEL_FRAME, model_name="toy", model_version="1")  # fmt: skip
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=i, name=s) for i, s in enumerate(SHAPES)], embedding_spaces=[space])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
            name="shapes", kind=pb.DATASET_KIND_LABELED, splits=["train", "val"])))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name="cnn", dataset="shapes", model_name="cnn", model_version="1")))  # fmt: skip
        cols = UploadColumns(
            frame_ids=frame_ids,
            splits=splits,
            media_uris=[f"file://{media / fid}.png" for fid in frame_ids],
            sizes=[(64, 64)] * n,
            metadata=[{"camera": cam} for cam in cameras],
            capture_times=[start + timedelta(hours=2 * i) for i in range(n)],
            class_ids=labels,
            inference_set="cnn",
            probabilities=probs,
            embeddings={"pixels": vectors},
        )
        r = c.upload(project, "shapes", cols, progress=False)
        st = c.wait_for_upload(project, r.upload_id, timeout=120)
        assert st.state == pb.UPLOAD_STATE_COMPLETED, st
    return Shapes(frame_ids, labels, truth, splits, cameras, flipped)


@dataclass
class Cones:
    frame_ids: list[str]
    labels: dict[str, list[LabeledObject]]
    predictions: dict[str, list[PredictedObject]]


def make_cones(console: Console, project: str = "cones", n: int = 24, seed: int = 5) -> Cones:
    rng = np.random.default_rng(seed)
    media = console.media / project
    media.mkdir(parents=True, exist_ok=True)
    frame_ids = [f"c-{i:03d}" for i in range(n)]
    labels: dict[str, list[LabeledObject]] = {}
    preds: dict[str, list[PredictedObject]] = {}
    colours = [(230, 120, 20), (60, 60, 200), (20, 160, 60)]
    for i, fid in enumerate(frame_ids):
        img = Image.new("RGB", (160, 120), (235, 235, 225))
        d = ImageDraw.Draw(img)
        objs, ps = [], []
        for j in range(1 + i % 2):
            k = int(rng.integers(0, 3))
            x, y = float(10 + 70 * j + rng.integers(0, 10)), float(20 + rng.integers(0, 40))
            w, h = 40.0, 50.0
            d.rectangle((x, y, x + w, y + h), fill=colours[k])
            objs.append(LabeledObject(f"{fid}-g{j}", k, Box(x, y, w, h)))
            if i == 3 and j == 0:
                continue  # missed by the model
            pk = (k + 1) % 3 if i == 5 else k  # frame 5: a class swap
            ps.append(PredictedObject(f"{fid}-p{j}", pk, 0.9 - 0.01 * i, Box(x + 1, y + 1, w - 2, h - 2)))
        if i == 7:  # a false positive where nothing is
            ps.append(PredictedObject(f"{fid}-p9", 2, 0.8, Box(120.0, 80.0, 30.0, 30.0)))
        img.save(media / f"{fid}.png")
        labels[fid], preds[fid] = objs, ps
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_OBJECT_DETECTION_2D,
            classes=[pb.ClassDef(id=i, name=s) for i, s in enumerate(CONES)])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
            name="road", kind=pb.DATASET_KIND_LABELED, splits=["val"])))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name="yolo", dataset="road", model_name="yolo", model_version="1")))  # fmt: skip
        cols = UploadColumns(
            frame_ids=frame_ids,
            splits=["val"] * n,
            media_uris=[str(media / f"{fid}.png") for fid in frame_ids],
            sizes=[(160, 120)] * n,
            objects=[labels[f] for f in frame_ids],
            inference_set="yolo",
            predictions=[preds[f] for f in frame_ids],
        )
        r = c.upload(project, "road", cols, progress=False)
        st = c.wait_for_upload(project, r.upload_id, timeout=120)
        assert st.state == pb.UPLOAD_STATE_COMPLETED, st
    return Cones(frame_ids, labels, preds)
