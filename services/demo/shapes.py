"""The demo's instance segmentation set: scenes of coloured shapes drawn with a fixed seed, a simple
model that segments them from the pixels, and labels with errors planted of every kind.

Each scene is a 96 x 96 image holding one to four shapes (discs, squares, triangles, one colour per
class, in cells of their own) on a noisy background. The labels are the shapes' polygons, except
for the planted errors: a shape left unlabeled, a label over empty background, a polygon drawn a
third of its size off its shape, and a shape labeled with another class. The model never sees the
labels: it thresholds each class colour, splits the result into connected regions and reports each
region as an instance of that class, scored by how cleanly its pixels match the colour. Its masks
then go up as predictions, the labels as polygons, and Shoal's mask AP and mask label issues are
scored against what was planted.
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

PROJECT = "shapes"
DATASET = "scenes"
INFERENCE_SET = "colour-threshold"
SIZE = 96
CLASSES = ("disc", "square", "triangle")
#: RGB of each class's shapes
COLOURS = ((214, 69, 65), (52, 120, 198), (60, 160, 90))
#: issue types planted, as the API names them, and how many of each
KINDS = ("missing_label", "spurious_label", "mislocalized", "class_swap")
PER_KIND = 6


@dataclass
class Scenes:
    frame_ids: list[str]
    media_uris: list[str]
    #: per frame: (object id, class, polygon) of its labels, and of the model's masks (object id, class, score, mask)
    labels: list[list[tuple[str, int, list[float]]]] = field(default_factory=list)
    predictions: list[list[tuple[str, int, float, np.ndarray]]] = field(default_factory=list)
    #: per planted kind: (frame id, object id) of the issue's object (a missing label: the model's mask there)
    planted: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def _polygon(kind: int, cx: float, cy: float, r: float, turn: float) -> np.ndarray:
    """The outline of a shape of class ``kind`` (x0, y0, x1, y1, ...)."""
    corners = (24, 4, 3)[kind]
    angles = turn + np.arange(corners) * 2 * np.pi / corners
    return np.round(np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1).ravel(), 2)


def build_scenes(media: Path, n: int = 120, seed: int = 7) -> Scenes:
    """Draws the scenes into ``media`` and returns their labels (with the planted errors) and the
    model's masks."""
    from PIL import Image, ImageDraw
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    media.mkdir(parents=True, exist_ok=True)
    out = Scenes([], [], planted={k: [] for k in KINDS})
    cells = [(24 + 48 * (i % 2), 24 + 48 * (i // 2)) for i in range(4)]
    objects = [(f, c) for f in range(n) for c in range(int(rng.integers(1, 4)))]  # a free cell stays in each frame
    kinds = [k for k in KINDS for _ in range(PER_KIND)]
    planted = rng.permutation(kinds + [""] * (len(objects) - len(kinds)))
    plant = dict(zip(objects, planted, strict=True))
    for f in range(n):
        fid = f"s-{f:04d}"
        noise = rng.normal(235, 9, (SIZE, SIZE, 3)).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(noise.copy())
        draw = ImageDraw.Draw(image)
        order = rng.permutation(4)
        shown = [c for c in range(4) if (f, c) in plant]
        labels: list[tuple[str, int, list[float]]] = []
        for k, c in enumerate(shown):
            cx, cy = cells[order[c]]
            kind = int(rng.integers(0, 3))
            r = float(rng.uniform(10, 19))
            outline = _polygon(kind, cx + rng.uniform(-3, 3), cy + rng.uniform(-3, 3), r, rng.uniform(0, np.pi))
            shade = np.clip(np.array(COLOURS[kind]) + rng.normal(0, 12, 3), 0, 255).astype(int)
            draw.polygon([tuple(p) for p in outline.reshape(-1, 2)], fill=tuple(shade))
            what = plant[(f, c)]
            oid = f"o{k}"
            if what == "missing_label":
                out.planted[what].append((fid, f"@{cx},{cy}"))  # named by its prediction below
                continue
            given, poly = kind, outline
            if what == "class_swap":
                given = (kind + 1 + int(rng.integers(0, 2))) % 3
            elif what == "mislocalized":
                shift = r * 0.75 * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
                poly = np.round((outline.reshape(-1, 2) + shift).clip(0, SIZE).ravel(), 2)
            if what:
                out.planted[what].append((fid, oid))
            labels.append((oid, given, poly.tolist()))
            if what == "spurious_label":  # the label stays, over a cell the shape is erased from
                cell = order[c]
                x0, y0 = cells[cell][0] - 24, cells[cell][1] - 24
                image.paste(Image.fromarray(noise[y0 : y0 + 48, x0 : x0 + 48]), (x0, y0))
        path = media / f"{fid}.png"
        image.save(path)
        pixels = np.asarray(image).astype(np.float64)
        predictions = _segment(pixels, ndimage)
        # a missing label's object is the model's mask over the unlabeled shape
        named = []
        for fid_, where in out.planted["missing_label"]:
            if fid_ != fid or not where.startswith("@"):
                named.append((fid_, where))
                continue
            x, y = (int(v) for v in where[1:].split(","))
            hit = [oid for oid, _, _, m in predictions if m[max(0, y - 8) : y + 8, max(0, x - 8) : x + 8].any()]
            named.append((fid_, hit[0] if hit else where))
        out.planted["missing_label"] = named
        out.frame_ids.append(fid)
        out.media_uris.append(path.resolve().as_uri())
        out.labels.append(labels)
        out.predictions.append(predictions)
    return out


def _segment(pixels: np.ndarray, ndimage: Any) -> list[tuple[str, int, float, np.ndarray]]:
    """The model: per class colour, the connected regions of pixels near it, scored by how close
    their pixels are to the colour (and how large they are)."""
    found = []
    for kind, colour in enumerate(COLOURS):
        distance = np.linalg.norm(pixels - np.array(colour), axis=2)
        regions, count = ndimage.label(distance < 60)
        for region in range(1, count + 1):
            mask = regions == region
            size = int(mask.sum())
            if size < 12:
                continue
            closeness = float(np.clip(1 - distance[mask].mean() / 60, 0, 1))
            score = round(min(0.99, 0.5 + 0.5 * closeness * min(1.0, size / 150)), 3)
            found.append((kind, score, mask))
    found.sort(key=lambda x: -x[1])
    return [(f"p{i}", kind, score, mask) for i, (kind, score, mask) in enumerate(found)]


def ingest_scenes(client: Client, out: Path, data_dir: Path) -> tuple[dict[str, Any], Scenes]:
    """Builds the scenes, uploads labels (polygons) and the model's masks, and waits for them."""
    from shoal.demo.dataset import _create_all
    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sdk import LabeledObject, PredictedObject, UploadColumns

    t0 = time.monotonic()
    scenes = build_scenes(data_dir / "media" / "shapes")
    (out / "shapes_planted.json").write_text(json.dumps(scenes.planted) + "\n")
    _create_all((
        (client.ingest.CreateProject, pb.CreateProjectRequest(project=pb.Project(
            name=PROJECT, display_name="shapes (instance segmentation)", task_type=pb.TASK_TYPE_INSTANCE_SEGMENTATION,
            classes=[pb.ClassDef(id=i, name=n) for i, n in enumerate(CLASSES)]))),
        (client.ingest.CreateDataset, pb.CreateDatasetRequest(project=PROJECT, dataset=pb.Dataset(
            name=DATASET, kind=pb.DATASET_KIND_LABELED))),
        (client.ingest.CreateInferenceSet, pb.CreateInferenceSetRequest(project=PROJECT, inference_set=pb.InferenceSet(
            name=INFERENCE_SET, dataset=DATASET, model_name="colour-threshold", model_version="1"))),
    ))  # fmt: skip
    cols = UploadColumns(
        frame_ids=scenes.frame_ids,
        media_uris=scenes.media_uris,
        sizes=[(SIZE, SIZE)] * len(scenes.frame_ids),
        objects=[[LabeledObject(oid, k, polygons=[poly]) for oid, k, poly in labels] for labels in scenes.labels],
        inference_set=INFERENCE_SET,
        predictions=[[PredictedObject(oid, k, s, mask=m) for oid, k, s, m in p] for p in scenes.predictions],
    )
    result = client.upload(PROJECT, DATASET, cols, progress=False)
    status = client.wait_for_upload(PROJECT, result.upload_id, timeout=300)
    counts = {
        "frames": len(scenes.frame_ids),
        "labeled_objects": sum(len(x) for x in scenes.labels),
        "predicted_objects": sum(len(x) for x in scenes.predictions),
        "state": pb.UploadState.Name(status.state),
        "planted": {k: len(v) for k, v in scenes.planted.items()},
    }
    log.info("shapes: %s (%.1fs)", counts, time.monotonic() - t0)
    return counts, scenes


def _annotated(scenes: Scenes, out: Path, frame_id: str, object_id: str, *, predicted: bool) -> str:
    """The frame at twice its size with the issue's object drawn: a label's polygon as a black
    outline, or the model's mask (a missing label) as a black boundary; returns the image's path."""
    from PIL import Image, ImageDraw

    i = scenes.frame_ids.index(frame_id)
    image = Image.open(Path(scenes.media_uris[i].removeprefix("file://"))).convert("RGB").resize((2 * SIZE, 2 * SIZE))
    draw = ImageDraw.Draw(image, "RGBA")
    if predicted:
        for oid, _, _, mask in scenes.predictions[i]:
            if oid == object_id:
                inner = mask.copy()
                inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
                ys, xs = np.nonzero(mask & ~inner)
                for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
                    draw.rectangle((2 * x, 2 * y, 2 * x + 1, 2 * y + 1), fill=(0, 0, 0, 255))
    else:
        for oid, _, poly in scenes.labels[i]:
            if oid == object_id:
                corners = [(2 * x, 2 * y) for x, y in np.reshape(poly, (-1, 2)).tolist()]
                draw.polygon(corners, outline=(0, 0, 0), width=2)
    path = out / "shapes" / f"{frame_id}-{object_id}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path.resolve().as_uri()


def score_scenes(client: Client, scenes: Scenes, out: Path) -> dict[str, Any]:
    """Mask AP of the model, then the label-issue job on the masks, scored against what was planted:
    per kind, how many of its first flagged objects (lowest score first) were planted."""
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.common.v1 import common_pb2 as cpb
    from shoal.demo.score import _finish

    m = client.analysis.GetDetectionMetrics(
        apb.GetDetectionMetricsRequest(project=PROJECT, inference_set=INFERENCE_SET)
    ).metrics
    job = client.analysis.StartLabelIssues(
        apb.StartLabelIssuesRequest(project=PROJECT, inference_set=INFERENCE_SET, rerun=True)
    ).job
    job = _finish(client, job, "mask label-issues", project=PROJECT)
    kinds = {}
    gallery = []
    for name in KINDS:
        t = apb.DetectionIssueType.Value(f"DETECTION_ISSUE_TYPE_{name.upper()}")
        resp = client.analysis.QueryDetectionLabelIssues(apb.QueryDetectionLabelIssuesRequest(
            project=PROJECT, job_id=job.job_id, issue_types=[t], page=cpb.PageRequest(page_size=1000)))  # fmt: skip
        flagged = [(o.ref.frame_id, o.ref.object_id) for o in resp.objects]
        planted = set(map(tuple, scenes.planted[name]))
        first = flagged[: len(planted)]
        hits = sum(1 for x in flagged if x in planted)
        kinds[name] = {
            "planted": len(planted),
            "flagged": len(flagged),
            "planted_flagged": hits,
            "precision": round(hits / len(flagged), 4) if flagged else 0.0,
            "recall": round(hits / len(planted), 4) if planted else 0.0,
            "planted_in_first": sum(1 for x in first if x in planted),
        }
        for o in resp.objects[:3]:
            ref = (o.ref.frame_id, o.ref.object_id)
            image = _annotated(scenes, out, *ref, predicted=o.predicted)
            gallery.append({"frame_id": ref[0], "object_id": ref[1], "kind": name, "score": round(o.score, 3),
                            "planted": ref in planted, "image": image})  # fmt: skip
    log.info("shapes: mask AP %.3f, AP50 %.3f; label issues %s", m.ap, m.ap50, kinds)
    return {
        "job_id": job.job_id,
        "mask_ap": round(m.ap, 4),
        "mask_ap50": round(m.ap50, 4),
        "mask_ar100": round(m.ar100, 4),
        "per_class_ap": {c.class_name: round(c.ap, 4) for c in m.per_class},
        "label_issues": kinds,
        "gallery": gallery,
    }
