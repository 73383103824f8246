"""The demo's semantic segmentation set: street-like scenes drawn with a fixed seed, a model that
labels every pixel by its colour, and class maps with errors planted of three kinds.

Each scene is a 96 x 96 image: sky above a horizon, road below, and one to three cars (dark
rectangles) and people (narrow red-brown shapes) on the road, with noise. The labels are the
scenes' class maps, their outlines drawn a pixel off as an annotator would (each map shifted by up
to a pixel), with pixels along the horizon left unlabeled; in some frames an error is planted: a car
labeled as a person (a swapped class), a car erased to road, or a stretch of sky painted as road. The
model never sees the labels: it scores every pixel's closeness to each class's colour, and its
softmax goes up as each frame's probabilities (a .npy beside the image), the argmax as its
predicted map. Shoal's segmentation metrics and label issues are then scored against the plants.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoal.client import Client
from shoal.demo.names import log

PROJECT = "streets"
DATASET = "drive"
INFERENCE_SET = "colour-softmax"
SIZE = 96
#: class ids, names and label colours
CLASSES = ((1, "road", "#804080"), (2, "sky", "#4682b4"), (3, "car", "#00008e"), (4, "person", "#dc143c"))
#: the RGB each class is drawn in
PAINT = {1: (110, 110, 110), 2: (150, 190, 235), 3: (40, 40, 70), 4: (180, 80, 60)}
KINDS = ("class_swap", "erased_object", "painted_region")
PER_KIND = 4
NONE = 65535


@dataclass
class Streets:
    frame_ids: list[str] = field(default_factory=list)
    media_uris: list[str] = field(default_factory=list)
    probability_uris: list[str] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    predictions: list[np.ndarray] = field(default_factory=list)
    #: per planted kind, its frames
    planted: dict[str, list[str]] = field(default_factory=dict)


def build_streets(media: Path, n: int = 80, seed: int = 11) -> Streets:
    """Draws the scenes into ``media`` with the model's probabilities beside them; returns their
    labels (with the planted errors) and the model's maps."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    media.mkdir(parents=True, exist_ok=True)
    out = Streets(planted={k: [] for k in KINDS})
    kinds = [k for k in KINDS for _ in range(PER_KIND)]
    plant = dict(zip(rng.permutation(n)[: len(kinds)].tolist(), kinds, strict=True))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for f in range(n):
        fid = f"st-{f:04d}"
        horizon = int(rng.integers(30, 50))
        truth = np.where(yy < horizon, 2, 1).astype(np.uint16)
        cars = []
        for _ in range(int(rng.integers(1, 4))):
            if rng.random() < 0.6:
                w, h = int(rng.integers(16, 28)), int(rng.integers(10, 16))
                x0, y0 = int(rng.integers(0, SIZE - w)), int(rng.integers(horizon + 2, SIZE - h))
                truth[y0 : y0 + h, x0 : x0 + w] = 3
                cars.append((y0, y0 + h, x0, x0 + w))
            else:
                cx, cy = int(rng.integers(6, SIZE - 6)), int(rng.integers(horizon + 8, SIZE - 10))
                truth[((xx - cx) / 4) ** 2 + ((yy - cy) / 10) ** 2 < 1] = 4
        image = np.zeros((SIZE, SIZE, 3))
        for c, rgb in PAINT.items():
            image[truth == c] = rgb
        image = (image + rng.normal(0, 14, image.shape)).clip(0, 255)
        path = media / f"{fid}.png"
        Image.fromarray(image.astype(np.uint8)).save(path)
        # the model: closeness of each pixel's colour to each class's, as a softmax
        distance = np.stack([np.linalg.norm(image - np.array(rgb), axis=2) for rgb in PAINT.values()])
        logits = -distance / 12.0
        probs = np.exp(logits - logits.max(axis=0))
        probs /= probs.sum(axis=0)
        prob_path = media / f"{fid}.npy"
        np.save(prob_path, probs.astype(np.float16))
        # the annotator: the map a pixel off, the horizon's pixels left unlabeled
        label = np.roll(truth, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))
        label[horizon - 1 : horizon + 1] = NONE
        what = plant.get(f, "")
        if what == "class_swap" and cars:
            y0, y1, x0, x1 = cars[0]
            label[y0:y1, x0:x1] = 4
        elif what == "erased_object" and cars:
            y0, y1, x0, x1 = cars[0]
            label[y0:y1, x0:x1] = 1
        elif what == "painted_region":
            label[4 : horizon - 10, 10:60] = 1
        else:
            what = ""
        if what:
            out.planted[what].append(fid)
        out.frame_ids.append(fid)
        out.media_uris.append(path.resolve().as_uri())
        out.probability_uris.append(prob_path.resolve().as_uri())
        out.labels.append(label.astype(np.uint16))
        out.predictions.append((probs.argmax(axis=0) + 1).astype(np.uint16))
    return out


def ingest_streets(client: Client, out: Path, data_dir: Path) -> tuple[dict[str, Any], Streets]:
    """Builds the scenes, uploads their class maps and the model's maps and probabilities."""
    from shoal.demo.dataset import _create_all
    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sdk import UploadColumns

    t0 = time.monotonic()
    streets = build_streets(data_dir / "media" / "streets")
    (out / "streets_planted.json").write_text(json.dumps(streets.planted) + "\n")
    _create_all((
        (client.ingest.CreateProject, pb.CreateProjectRequest(project=pb.Project(
            name=PROJECT, display_name="streets (semantic segmentation)", task_type=pb.TASK_TYPE_SEGMENTATION,
            classes=[pb.ClassDef(id=i, name=n, color=c) for i, n, c in CLASSES]))),
        (client.ingest.CreateDataset, pb.CreateDatasetRequest(project=PROJECT, dataset=pb.Dataset(
            name=DATASET, kind=pb.DATASET_KIND_LABELED))),
        (client.ingest.CreateInferenceSet, pb.CreateInferenceSetRequest(project=PROJECT, inference_set=pb.InferenceSet(
            name=INFERENCE_SET, dataset=DATASET, model_name="colour-softmax", model_version="1"))),
    ))  # fmt: skip
    n = len(streets.frame_ids)
    for cols in (
        UploadColumns(frame_ids=streets.frame_ids, media_uris=streets.media_uris, sizes=[(SIZE, SIZE)] * n,
                      label_maps=streets.labels),
        UploadColumns(frame_ids=streets.frame_ids, inference_set=INFERENCE_SET, skip_frames=True,
                      predicted_maps=streets.predictions, probability_uris=streets.probability_uris),
    ):  # fmt: skip
        result = client.upload(PROJECT, DATASET, cols, progress=False)
        status = client.wait_for_upload(PROJECT, result.upload_id, timeout=300)
        if status.state != pb.UPLOAD_STATE_COMPLETED:
            break
    counts = {
        "frames": n,
        "state": pb.UploadState.Name(status.state),
        "planted": {k: len(v) for k, v in streets.planted.items()},
    }
    log.info("streets: %s (%.1fs)", counts, time.monotonic() - t0)
    return counts, streets


def _annotated(streets: Streets, out: Path, frame_id: str, mask: str) -> str:
    """The frame at twice its size with its flagged pixels tinted; returns the image's path."""
    from PIL import Image

    from shoal.common import masks

    i = streets.frame_ids.index(frame_id)
    image = np.asarray(Image.open(Path(streets.media_uris[i].removeprefix("file://"))).convert("RGB")).astype(float)
    if mask:
        flagged = masks.decode(masks.from_string(mask), SIZE, SIZE).astype(bool)
        image[flagged] = 0.45 * image[flagged] + 0.55 * np.array([213, 94, 0])
    path = out / "streets" / f"{frame_id}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.astype(np.uint8)).resize((2 * SIZE, 2 * SIZE), Image.NEAREST).save(path)
    return path.resolve().as_uri()


def score_streets(client: Client, streets: Streets, out: Path) -> dict[str, Any]:
    """The model's segmentation metrics, then the label-issue job, scored against what was planted:
    how many planted frames are among the first flagged, and the flags' precision and recall."""
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.common.v1 import common_pb2 as cpb
    from shoal.demo.score import _finish

    m = client.analysis.GetSegmentationMetrics(
        apb.GetSegmentationMetricsRequest(project=PROJECT, inference_set=INFERENCE_SET)
    ).metrics
    job = client.analysis.StartLabelIssues(
        apb.StartLabelIssuesRequest(project=PROJECT, inference_set=INFERENCE_SET, rerun=True)
    ).job
    job = _finish(client, job, "segmentation label-issues", project=PROJECT)
    resp = client.analysis.QuerySegmentationIssues(apb.QuerySegmentationIssuesRequest(
        project=PROJECT, job_id=job.job_id, page=cpb.PageRequest(page_size=1000)))  # fmt: skip
    planted = {f for frames in streets.planted.values() for f in frames}
    flagged = [x.ref.frame_id for x in resp.issues]
    hits = sum(1 for f in flagged if f in planted)
    first = flagged[: len(planted)]
    gallery = [
        {"frame_id": x.ref.frame_id, "planted": x.ref.frame_id in planted, "flagged_pixels": x.flagged_pixels,
         "given": x.worst_class, "suggested": x.suggested_class,
         "image": _annotated(streets, out, x.ref.frame_id, x.flagged_mask)}
        for x in resp.issues[:6]
    ]  # fmt: skip
    summary = {
        "job_id": job.job_id,
        "mean_iou": round(m.mean_iou, 4),
        "pixel_accuracy": round(m.pixel_accuracy, 4),
        "frequency_weighted_iou": round(m.frequency_weighted_iou, 4),
        "per_class_iou": {c.class_name: round(c.iou, 4) for c in m.per_class},
        "label_issues": {
            "planted": len(planted),
            "flagged": len(flagged),
            "planted_flagged": hits,
            "precision": round(hits / len(flagged), 4) if flagged else 0.0,
            "recall": round(hits / len(planted), 4) if planted else 0.0,
            "planted_in_first": sum(1 for f in first if f in planted),
            "by_kind": {k: sum(1 for f in v if f in set(flagged)) for k, v in streets.planted.items()},
        },
        "gallery": gallery,
    }
    log.info("streets: mIoU %.3f; label issues %s", m.mean_iou, summary["label_issues"])
    return summary
