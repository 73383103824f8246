"""Importers: COCO JSON (ground truth and results files of boxes, instance masks or keypoints),
tables (CSV or Parquet, with a .npy of embeddings), folders of PNG label images (semantic
segmentation), nuScenes detection JSON (3-D cuboids) and DCASE event tables (sound events in audio
clips), turned into :class:`shoal.sdk.UploadColumns`.

All are plain functions over files; the CLI (``shoal import coco|table|masks|nuscenes|events``) and
user code call them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import wave
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Box, Cuboid, LabeledObject, PredictedObject, UploadColumns

log = logging.getLogger(__name__)


#: COCO's 17 person keypoints, and the sigmas its keypoint evaluation gives them
COCO_PERSON_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)  # fmt: skip
COCO_PERSON_SIGMAS = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
                      0.107, 0.107, 0.087, 0.087, 0.089, 0.089)  # fmt: skip
#: what a COCO file's objects are, as the project's task type
COCO_TASKS = {"detection": "OBJECT_DETECTION_2D", "segmentation": "INSTANCE_SEGMENTATION", "keypoints": "KEYPOINTS"}


@dataclass(frozen=True)
class CocoCategory:
    id: int
    name: str
    #: keypoint files: the category's keypoints, its skeleton (positions from 0) and their sigmas
    keypoints: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    sigmas: tuple[float, ...] = ()


@dataclass
class CocoImport:
    columns: UploadColumns
    #: category id -> name, to create or check the project's classes
    categories: dict[int, str]
    images: int
    annotations: int
    #: detections imported (those without area are skipped)
    detections: int
    #: "OBJECT_DETECTION_2D", "INSTANCE_SEGMENTATION" or "KEYPOINTS"
    task_type: str = "OBJECT_DETECTION_2D"
    #: the categories with their keypoints, in id order
    classes: tuple[CocoCategory, ...] = ()


def load_coco(
    annotations: Path,
    *,
    results: Path | None = None,
    inference_set: str = "",
    media_root: str = "",
    split: str = "",
    task: str = "auto",
) -> CocoImport:
    """Reads a COCO ``instances`` or ``person_keypoints`` file (and optionally a results file).

    ``task`` says what the objects are: ``"detection"`` (boxes), ``"segmentation"`` (masks: the
    annotations' ``segmentation``, polygons or run lengths, and the results' run lengths) or
    ``"keypoints"`` (the annotations' and results' ``keypoints``, each category's keypoint names and
    skeleton; the 17 COCO person keypoints get COCO's sigmas); ``"auto"`` takes keypoints when the
    categories declare them, else masks when the annotations have them, else boxes.

    Frame ids are the image ids as strings; object ids are the annotation ids; detections get ids
    ``det-<n>``, ``n`` their zero-padded position in the results file, so that object-id order is
    file order (it breaks score ties, as file order does in pycocotools). Boxes are kept as given:
    detected boxes may overhang the image, as in pycocotools' evaluation (the server refuses
    ground-truth boxes outside their image). Detections of boxes without area (a width or height of
    zero or less) are skipped, with a warning.
    """
    gt = json.loads(Path(annotations).read_text())
    images = gt.get("images")
    if not isinstance(images, list):
        raise ValueError(f"{annotations}: not a COCO instances file (no 'images' list)")
    anns = gt.get("annotations", [])
    cats = gt.get("categories", [])
    kind = task if task != "auto" else _coco_kind(cats, anns)
    if kind not in COCO_TASKS:
        raise ValueError(f"task is one of auto, {', '.join(COCO_TASKS)}; got {task!r}")
    categories = {int(c["id"]): str(c["name"]) for c in cats}
    classes = tuple(sorted((_category(c, kind) for c in cats), key=lambda c: c.id))
    by_image: dict[int, list[LabeledObject]] = defaultdict(list)
    for a in anns:
        by_image[int(a["image_id"])].append(_labeled(a, kind))
    detections: dict[int, list[PredictedObject]] = defaultdict(list)
    n_det = skipped = 0
    sizes = {int(im["id"]): (int(im.get("width", 0)), int(im.get("height", 0))) for im in images}
    if results is not None:
        if not inference_set:
            raise ValueError("a results file needs an inference set name")
        dets = json.loads(Path(results).read_text())
        if not isinstance(dets, list):
            raise ValueError(f"{results}: a COCO results file is a list of detections")
        digits = max(6, len(str(len(dets) - 1)))
        for d in dets:
            image_id = int(d["image_id"])
            if image_id not in sizes:
                raise ValueError(f"{results}: detection {n_det} refers to image {image_id}, not in {annotations}")
            predicted = _predicted(d, kind, f"det-{n_det:0{digits}d}")
            if predicted is not None:
                detections[image_id].append(predicted)
            else:
                skipped += 1
            n_det += 1
        if skipped:
            log.warning("%s: skipped %d detections without area (width or height 0 or less)", results, skipped)
    ids = [int(im["id"]) for im in images]
    root = media_root.rstrip("/")
    columns = UploadColumns(
        frame_ids=[str(i) for i in ids],
        splits=[split] * len(ids) if split else None,
        media_uris=[f"{root}/{im['file_name']}" if root else str(im.get("file_name", "")) for im in images],
        sizes=[sizes[i] for i in ids],
        objects=[by_image.get(i, []) for i in ids],
        inference_set=inference_set if results is not None else "",
        predictions=[detections.get(i, []) for i in ids] if results is not None else None,
    )
    n_ann = sum(len(v) for v in by_image.values())
    return CocoImport(columns, categories, len(ids), n_ann, n_det - skipped, COCO_TASKS[kind], classes)


def _coco_kind(cats: list[dict[str, Any]], anns: list[dict[str, Any]]) -> str:
    if any(c.get("keypoints") for c in cats):
        return "keypoints"
    if any(a.get("segmentation") for a in anns):
        return "segmentation"
    return "detection"


def _category(c: dict[str, Any], kind: str) -> CocoCategory:
    if kind != "keypoints":
        return CocoCategory(int(c["id"]), str(c["name"]))
    names = tuple(str(k) for k in c.get("keypoints") or ())
    # COCO's skeleton counts keypoints from 1
    skeleton = tuple((int(a) - 1, int(b) - 1) for a, b in c.get("skeleton") or ())
    sigmas = COCO_PERSON_SIGMAS if names == COCO_PERSON_KEYPOINTS else ()
    return CocoCategory(int(c["id"]), str(c["name"]), names, skeleton, sigmas)


def _segmentation(seg: Any) -> dict[str, Any]:
    """The ``mask`` or ``polygons`` keyword of an object from a COCO ``segmentation``."""
    if isinstance(seg, list):
        return {"polygons": [list(map(float, p)) for p in seg]}
    if isinstance(seg, dict):
        return {"mask": seg}
    return {}


def _labeled(a: dict[str, Any], kind: str) -> LabeledObject:
    box = Box(*(float(v) for v in a["bbox"])) if a.get("bbox") else None
    shape: dict[str, Any] = {}
    if kind in ("segmentation", "keypoints") and a.get("segmentation"):
        shape = _segmentation(a["segmentation"])
    if kind == "keypoints":
        shape["keypoints"] = np.asarray(a.get("keypoints") or [], dtype=np.float64).reshape(-1, 3)
    if kind == "detection" and box is None:
        raise ValueError(f"annotation {a.get('id')} has no bbox: a detection file gives every annotation one")
    return LabeledObject(str(a["id"]), int(a["category_id"]), box, bool(a.get("iscrowd", 0)), **shape)


def _predicted(d: dict[str, Any], kind: str, object_id: str) -> PredictedObject | None:
    """A results-file detection, or None for a box without area."""
    score = float(d["score"])
    if kind == "segmentation":
        return PredictedObject(object_id, int(d["category_id"]), score, mask=d["segmentation"])
    if kind == "keypoints":
        # the third value of a result's keypoint is not read by COCO's evaluation (nor by Shoal's)
        points = np.asarray(d["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2]
        return PredictedObject(object_id, int(d["category_id"]), score, keypoints=points)
    x, y, w, h = (float(v) for v in d["bbox"])
    if w <= 0 or h <= 0:
        return None
    return PredictedObject(object_id, int(d["category_id"]), score, Box(x, y, w, h))


RESERVED = {"frame_id", "split", "media_uri", "width", "height", "label", "class_id", "label_map", "predicted_map",
            "probabilities_uri"}  # fmt: skip


def load_table(
    table: Path,
    *,
    classes: dict[str, int],
    embeddings: Path | None = None,
    space: str = "",
    inference_set: str = "",
) -> UploadColumns:
    """Reads a CSV or Parquet table: one row per frame.

    Columns: ``frame_id`` (required); ``split``, ``media_uri``, ``width``, ``height`` (optional);
    ``label`` (a class name) or ``class_id``; ``prob_<class name>`` for every class (an inference,
    needs ``inference_set``); segmentation projects: ``label_map`` and ``predicted_map`` (URIs of
    PNG label images, read by the server; ``width`` and ``height`` needed) and ``probabilities_uri``;
    every other column becomes typed metadata. ``embeddings`` is a .npy of shape (rows, D) in row
    order, for the embedding space ``space``.
    """
    import pandas as pd

    path = Path(table)
    df = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    if "frame_id" not in df.columns:
        raise ValueError(f"{path}: needs a frame_id column")
    n = len(df)
    kw: dict[str, Any] = {"frame_ids": df["frame_id"].astype(str).tolist()}
    if "split" in df.columns:
        kw["splits"] = df["split"].fillna("").astype(str).tolist()
    if "media_uri" in df.columns:
        kw["media_uris"] = df["media_uri"].fillna("").astype(str).tolist()
    if "width" in df.columns and "height" in df.columns:
        kw["sizes"] = list(zip(df["width"].astype(int), df["height"].astype(int), strict=True))
    if "class_id" in df.columns:
        kw["class_ids"] = df["class_id"].astype(int).to_numpy()
    elif "label" in df.columns:
        unknown = sorted(set(df["label"].astype(str)) - set(classes))
        if unknown:
            raise ValueError(f"{path}: labels {unknown[:5]} are not classes of the project")
        kw["class_ids"] = np.array([classes[v] for v in df["label"].astype(str)])
    prob_cols = [c for c in df.columns if c.startswith("prob_")]
    if prob_cols:
        if not inference_set:
            raise ValueError(f"{path}: prob_* columns need an inference set")
        order = sorted(classes, key=classes.get)  # type: ignore[arg-type]
        missing = [f"prob_{c}" for c in order if f"prob_{c}" not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing probability columns {missing[:5]}")
        kw["probabilities"] = df[[f"prob_{c}" for c in order]].to_numpy(dtype=np.float32)
        kw["inference_set"] = inference_set
    if "label_map" in df.columns:
        kw["label_maps"] = df["label_map"].astype(str).tolist()
    predicted = [c for c in ("predicted_map", "probabilities_uri") if c in df.columns]
    if predicted and not inference_set:
        raise ValueError(f"{path}: {predicted[0]} needs an inference set")
    if "predicted_map" in df.columns:
        kw["predicted_maps"] = df["predicted_map"].astype(str).tolist()
        kw["inference_set"] = inference_set
    if "probabilities_uri" in df.columns:
        kw["probability_uris"] = df["probabilities_uri"].fillna("").astype(str).tolist()
        kw["inference_set"] = inference_set
    meta_cols = [c for c in df.columns if c not in RESERVED and not c.startswith("prob_")]
    if meta_cols:
        records = df[meta_cols].to_dict("records")
        kw["metadata"] = [{k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))} for r in records]
    if embeddings is not None:
        if not space:
            raise ValueError("embeddings need the name of their embedding space")
        vectors = np.load(embeddings, mmap_mode="r")
        if vectors.ndim != 2 or len(vectors) != n:
            raise ValueError(f"{embeddings}: expected ({n}, D) vectors for {n} rows, got {vectors.shape}")
        kw["embeddings"] = {space: vectors}
    return UploadColumns(**kw)


#: the image files a folder import pairs with label images, by file name without its suffix
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def load_mask_folder(
    masks: Path,
    *,
    images: Path | None = None,
    predictions: Path | None = None,
    inference_set: str = "",
    colors: dict[tuple[int, int, int], int] | None = None,
    split: str = "",
) -> UploadColumns:
    """Reads a folder of PNG label images, one per frame (named ``<frame id>.png``), and optionally
    a folder of the images (same names, any image suffix: their ``file://`` URIs become the frames'
    media) and one of predicted label images (same names; needs ``inference_set``). Maps are read
    here and sent as class runs, so the server needs no access to the files; grey and palette
    images hold class ids (255: no class), RGB ones the colours in ``colors``. Frame sizes come from
    the label images."""
    from shoal.common import classmaps

    found = sorted(p for p in Path(masks).iterdir() if p.suffix.lower() == ".png")
    if not found:
        raise ValueError(f"{masks}: no .png label images")
    if predictions is not None and not inference_set:
        raise ValueError("predicted label images need an inference set")
    media: dict[str, Path] = {}
    if images is not None:
        for p in Path(images).iterdir():
            if p.suffix.lower() in IMAGE_SUFFIXES:
                media.setdefault(p.stem, p)
    ids, sizes, label_maps, predicted_maps, uris = [], [], [], [], []
    for path in found:
        try:
            y = classmaps.from_png(path.read_bytes(), colors)
            p = None
            if predictions is not None:
                pred_path = Path(predictions) / path.name
                if not pred_path.exists():
                    raise ValueError(f"no predicted label image {pred_path}")
                p = classmaps.from_png(pred_path.read_bytes(), colors)
                if p.shape != y.shape:
                    h, w = y.shape
                    raise ValueError(f"the prediction is {p.shape[1]}x{p.shape[0]}, the label {w}x{h}")
        except classmaps.MapError as err:
            raise ValueError(f"{path}: {err}") from None
        ids.append(path.stem)
        sizes.append((y.shape[1], y.shape[0]))
        label_maps.append(y)
        if p is not None:
            predicted_maps.append(p)
        image = media.get(path.stem)
        uris.append(image.resolve().as_uri() if image is not None else "")
    if images is not None and not any(uris):
        raise ValueError(f"{images}: no image is named as a label image of {masks}")
    return UploadColumns(
        frame_ids=ids,
        splits=[split] * len(ids) if split else None,
        media_uris=uris if images is not None else None,
        sizes=sizes,
        label_maps=label_maps,
        predicted_maps=predicted_maps if predictions is not None else None,
        inference_set=inference_set if predictions is not None else "",
    )


#: nuScenes' ten detection classes, in the devkit's order: a project made from a nuScenes file numbers
#: the ones it has in this order (so the devkit's class rules apply by name), then any other by name
NUSCENES_CLASSES = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle",
                    "traffic_cone", "barrier")  # fmt: skip
#: how far from 1 a quaternion's norm may be, as written in a file with few decimals, to be normalised
#: rather than refused
QUATERNION_ROUNDING = 1e-2


@dataclass
class SceneImport:
    """What an importer of point clouds or audio clips read: the columns to upload and the classes."""

    columns: UploadColumns
    #: class id -> name: the project's classes, or those to create it with
    classes: dict[int, str]
    frames: int
    #: labeled objects or events
    labels: int
    #: predicted objects or events
    predictions: int
    #: "CUBOIDS_3D" or "SOUND_EVENTS"
    task_type: str


def _class_ids(
    names: list[str], classes: Mapping[str, int] | None, order: tuple[str, ...], where: str
) -> dict[str, int]:
    """Class name -> id: the project's (every name must be one of its classes) or, for a new project,
    the names in ``order`` first, then the others sorted."""
    if classes is not None:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise ValueError(f"{where}: classes {unknown[:5]} are not classes of the project")
        return dict(classes)
    found = set(names)
    ordered = [n for n in order if n in found] + sorted(found - set(order))
    return {n: i for i, n in enumerate(ordered)}


def _numbers(value: Any, n: int, where: str, *, positive: bool = False) -> list[float]:
    if not isinstance(value, list | tuple) or len(value) != n:
        raise ValueError(f"{where} must be a list of {n} numbers, got {value!r}")
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a list of {n} numbers, got {value!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{where} must be finite numbers, got {value!r}")
    if positive and not all(v > 0 for v in out):
        raise ValueError(f"{where} must be positive, got {value!r}")
    return out


def _quaternion(value: Any, where: str) -> list[float]:
    """A unit quaternion (w, x, y, z), normalised when files rounded it."""
    q = _numbers(value, 4, where)
    norm = math.sqrt(sum(v * v for v in q))
    if abs(norm - 1.0) > QUATERNION_ROUNDING:
        raise ValueError(f"{where} must be a unit quaternion (w, x, y, z), got {value!r} of norm {norm:.4g}")
    return [v / norm for v in q]


def _nuscenes_box(box: Any, where: str, *, predicted: bool) -> tuple[str, float, Cuboid]:
    """A box of a nuScenes detection file: its detection name, its score (predicted) and its cuboid."""
    if not isinstance(box, dict):
        raise ValueError(f"{where} must be an object with translation, size, rotation and detection_name")
    for key in ("translation", "size", "rotation", "detection_name"):
        if key not in box:
            raise ValueError(f"{where}: '{key}' is missing")
    x, y, z = _numbers(box["translation"], 3, f"{where}: 'translation'")
    w, length, h = _numbers(box["size"], 3, f"{where}: 'size' (width, length, height)", positive=True)
    rotation = _quaternion(box["rotation"], f"{where}: 'rotation'")
    velocity = None
    if box.get("velocity") is not None:
        # the devkit's ground truth writes NaN for a velocity it does not know
        v = box["velocity"]
        if isinstance(v, list | tuple) and len(v) >= 2 and all(isinstance(e, float) and math.isnan(e) for e in v[:2]):
            v = None
        velocity = None if v is None else _numbers(list(v)[:2], 2, f"{where}: 'velocity'")
    name = box["detection_name"]
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: 'detection_name' must be a class name, got {name!r}")
    attribute = box.get("attribute_name") or ""
    if not isinstance(attribute, str):
        raise ValueError(f"{where}: 'attribute_name' must be a string, got {attribute!r}")
    points = None
    if not predicted and box.get("num_pts") is not None:
        n = box["num_pts"]
        if not isinstance(n, int | float) or n != int(n) or n < -1:
            raise ValueError(f"{where}: 'num_pts' must be a count of points, got {n!r}")
        points = int(n) if n >= 0 else None  # the devkit writes -1 for "not counted"
    score = 0.0
    if predicted:
        if "detection_score" not in box:
            raise ValueError(f"{where}: 'detection_score' is missing")
        try:
            score = float(box["detection_score"])
        except (TypeError, ValueError):
            score = math.nan
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            raise ValueError(f"{where}: 'detection_score' must lie in [0, 1], got {box['detection_score']!r}")
    cuboid = Cuboid(x, y, z, w, length, h, rotation=rotation, velocity=velocity, attribute=attribute, num_points=points)
    return name, score, cuboid


def _samples(path: Path, *, results: bool) -> dict[str, list[Any]]:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if isinstance(data, dict) and isinstance(data.get("results"), dict):
        data = data["results"]
    elif results:
        raise ValueError(f'{path}: a nuScenes results file is {{"meta": ..., "results": {{sample_token: [boxes]}}}}')
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a nuScenes detection file maps sample tokens to lists of boxes")
    for token, boxes in data.items():
        if not isinstance(boxes, list):
            raise ValueError(f"{path}: sample {token!r}: its boxes must be a list, got {type(boxes).__name__}")
    return data


def load_nuscenes(
    labels: Path,
    *,
    results: Path | None = None,
    inference_set: str = "",
    classes: Mapping[str, int] | None = None,
    ego_poses: Path | None = None,
    coordinate_frame: str = "world",
    split: str = "",
) -> SceneImport:
    """Reads nuScenes detection JSON: ground truth as ``{sample_token: [box, ...]}`` (the devkit's
    serialised ``EvalBoxes``; a file wrapped like a results file is read too) and optionally a
    results file ``{"meta": {...}, "results": {sample_token: [box, ...]}}``.

    A box has ``translation`` (x, y, z: the centre, metres), ``size`` (width, length, height),
    ``rotation`` (a quaternion w, x, y, z), ``detection_name``, and optionally ``velocity`` (vx, vy;
    NaN: unknown), ``attribute_name``, ``num_pts`` (labels: the lidar points inside, -1 unknown)
    and, in results, ``detection_score`` in [0, 1]. Quaternions a file rounded are normalised.

    One frame per sample of the ground truth (frame id: the sample token), a point cloud whose
    cuboids are in ``coordinate_frame``: ``"world"`` as nuScenes gives its boxes (global
    coordinates), or ``"ego"``. ``ego_poses`` is an optional JSON ``{sample_token: {"translation":
    [x, y, z], "rotation": [w, x, y, z]}}`` placing the vehicle in the world (for distances from
    it). Labeled objects get ids ``gt-<n>``, ``n`` their position in the sample's list; detections
    ``det-<n>``, their position in the results file. ``classes`` maps the project's class names to
    ids; without it the classes are the file's detection names (nuScenes' in the devkit's order
    first). A bad box raises ValueError naming the file, the sample, the box and the field."""
    if coordinate_frame not in ("world", "ego"):
        raise ValueError(f"the coordinate frame is 'world' or 'ego', not {coordinate_frame!r}")
    gt = _samples(labels, results=False)
    tokens = list(gt)
    parsed: dict[str, list[tuple[str, float, Cuboid]]] = {
        t: [_nuscenes_box(b, f"{labels}: sample {t!r}, box {i}", predicted=False) for i, b in enumerate(boxes)]
        for t, boxes in gt.items()
    }
    detections: dict[str, list[tuple[str, float, Cuboid]]] = {}
    if results is not None:
        if not inference_set:
            raise ValueError("a results file needs an inference set name")
        for t, boxes in _samples(results, results=True).items():
            if t not in parsed:
                raise ValueError(f"{results}: sample {t!r} is not in {labels}")
            detections[t] = [
                _nuscenes_box(b, f"{results}: sample {t!r}, box {i}", predicted=True) for i, b in enumerate(boxes)
            ]
    names = [n for boxes in (*parsed.values(), *detections.values()) for n, _, _ in boxes]
    ids = _class_ids(names, classes, NUSCENES_CLASSES, str(labels))
    poses: list[list[float] | None] | None = None
    if ego_poses is not None:
        table = json.loads(Path(ego_poses).read_text())
        if not isinstance(table, dict):
            raise ValueError(
                f'{ego_poses}: ego poses are {{sample_token: {{"translation": [...], "rotation": [...]}}}}'
            )
        poses = []
        for t in tokens:
            pose = table.get(t)
            if pose is None:
                poses.append(None)
                continue
            where = f"{ego_poses}: sample {t!r}"
            if not isinstance(pose, dict):
                raise ValueError(f'{where}: a pose is {{"translation": [x, y, z], "rotation": [w, x, y, z]}}')
            poses.append(_numbers(pose.get("translation"), 3, f"{where}: 'translation'")
                         + _quaternion(pose.get("rotation"), f"{where}: 'rotation'"))  # fmt: skip
    objects = [
        [LabeledObject(f"gt-{i:04d}", ids[n], cuboid=c) for i, (n, _, c) in enumerate(parsed[t])] for t in tokens
    ]
    predictions = None
    n_det = sum(len(v) for v in detections.values())
    if results is not None:
        digits = max(6, len(str(n_det - 1)))
        position = {t: k for k, t in enumerate(detections)}
        starts = np.r_[0, np.cumsum([len(v) for v in detections.values()])]
        predictions = [
            [PredictedObject(f"det-{starts[position[t]] + i:0{digits}d}", ids[n], s, cuboid=c)
             for i, (n, s, c) in enumerate(detections.get(t, []))]
            for t in tokens
        ]  # fmt: skip
    columns = UploadColumns(
        frame_ids=tokens,
        splits=[split] * len(tokens) if split else None,
        media_type=pb.MEDIA_TYPE_POINT_CLOUD,
        coordinate_frames=[coordinate_frame] * len(tokens),
        ego_poses=poses,
        objects=objects,
        inference_set=inference_set if results is not None else "",
        predictions=predictions,
    )
    n_gt = sum(len(v) for v in objects)
    return SceneImport(columns, {i: n for n, i in ids.items()}, len(tokens), n_gt, n_det, "CUBOIDS_3D")


#: the names a header may give each column of an event table (DCASE's, sed_eval's and plain ones)
EVENT_COLUMNS = {
    "filename": ("filename", "file", "audio_file", "file_name", "clip"),
    "onset": ("onset", "event_onset", "start"),
    "offset": ("offset", "event_offset", "end"),
    "event_label": ("event_label", "label", "class", "event"),
    "score": ("score", "confidence", "probability"),
    "duration": ("duration", "duration_seconds"),
}
#: an event may end this far (seconds) past its clip's duration, as files rounded it; it is cut to the duration
DURATION_ROUNDING = 0.05


@dataclass
class _EventRow:
    line: int
    filename: str
    event: tuple[float, float, str, float] | None
    duration: float | None


def _read_events(path: Path, *, predicted: bool) -> list[_EventRow]:
    """The rows of a DCASE-style event table: tab- or comma-separated ``filename onset offset
    event_label [score]``, with or without a header; a row with only a file name (or empty or NaN
    onset, offset and label) is a clip without events."""
    text = Path(path).read_text()
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    if not lines:
        return []
    delimiter = "\t" if "\t" in lines[0][1] else ","
    parsed = csv.reader((line for _, line in lines), delimiter=delimiter)
    rows = [(n, [c.strip() for c in row]) for (n, _), row in zip(lines, parsed, strict=True)]
    order = ["filename", "onset", "offset", "event_label", "score"]
    index = {name: k for k, name in enumerate(order)}
    first = rows[0][1]
    if len(first) > 1 and first[1] and not _is_number(first[1]):
        header = [c.lower() for c in first]
        index = {}
        for name, aliases in EVENT_COLUMNS.items():
            found = [k for k, c in enumerate(header) if c in aliases]
            if found:
                index[name] = found[0]
        missing = [n for n in ("filename", "onset", "offset", "event_label") if n not in index]
        if missing:
            raise ValueError(f"{path}, line {rows[0][0]}: the header names no {', '.join(missing)} column"
                             f" (columns: {', '.join(first)})")  # fmt: skip
        rows = rows[1:]
    out = []
    for n, row in rows:
        where = f"{path}, line {n}"

        def cell(name: str, row: list[str] = row) -> str:
            k = index.get(name)
            return row[k] if k is not None and k < len(row) else ""

        filename = cell("filename")
        if not filename:
            raise ValueError(f"{where}: the file name is empty")
        duration = None
        if cell("duration"):
            duration = _float(cell("duration"), f"{where}: duration")
            if duration <= 0:
                raise ValueError(f"{where}: duration must be positive, got {duration}")
        # pandas writes a clip without events as NaN cells
        onset, offset, label = ("" if cell(c).lower() == "nan" else cell(c) for c in ("onset", "offset", "event_label"))
        if not (onset or offset or label):
            out.append(_EventRow(n, filename, None, duration))
            continue
        start = _float(onset, f"{where}: onset")
        end = _float(offset, f"{where}: offset")
        if start < 0:
            raise ValueError(f"{where}: onset must be 0 s or later, got {start}")
        if end <= start:
            raise ValueError(f"{where}: offset {end} must be after onset {start}")
        if not label:
            raise ValueError(f"{where}: event_label is empty")
        score = 1.0
        if predicted and cell("score"):
            score = _float(cell("score"), f"{where}: score")
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"{where}: score must lie in [0, 1], got {score}")
        out.append(_EventRow(n, filename, (start, end, label, score), duration))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _float(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {text!r}")
    return value


def wav_info(path: Path) -> tuple[float, int]:
    """A WAV file's duration (seconds) and sample rate (Hz), read with the standard library."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / w.getframerate(), w.getframerate()
    except (wave.Error, EOFError) as err:
        raise ValueError(f"{path}: not a PCM WAV file ({err}); give the clips' durations instead") from None


def load_events(
    labels: Path,
    *,
    predictions: Path | None = None,
    inference_set: str = "",
    classes: Mapping[str, int] | None = None,
    audio: Path | None = None,
    durations: Path | None = None,
    split: str = "",
) -> SceneImport:
    """Reads DCASE-style event tables: a labels file and optionally a predictions file, each tab- or
    comma-separated ``filename onset offset event_label`` rows (predictions: a ``score`` in [0, 1]
    after them, 1 when absent), with or without a header naming the columns (a header may add a
    ``duration`` column). A row with only a file name, or empty onset, offset and label, is a clip
    without events.

    One frame per clip (frame id: the file name as written), an audio clip whose duration comes
    from, in this order: the labels' ``duration`` column; ``durations``, a table of ``filename
    duration`` rows (its clips without a row in the labels become clips without events); the clip's
    WAV file in ``audio`` (default: the labels file's folder), read with the standard library, which
    also gives its sample rate and its ``file://`` URI. Events may end up to 50 ms past their clip's
    end (files round), and are cut to it. ``classes`` maps the project's class names to ids; without
    it the classes are the tables' event labels, sorted. A bad row raises ValueError naming the
    file, the line and the field."""
    rows = _read_events(labels, predicted=False)
    clips: dict[str, list[tuple[float, float, str, float, int]]] = {}
    duration: dict[str, float] = {}
    for r in rows:
        clips.setdefault(r.filename, [])
        if r.event is not None:
            clips[r.filename].append((*r.event, r.line))
        if r.duration is not None:
            if duration.setdefault(r.filename, r.duration) != r.duration:
                raise ValueError(f"{labels}, line {r.line}: clip {r.filename!r} was given another duration before")
    if durations is not None:
        for r in _read_durations(durations):
            filename, seconds = r
            clips.setdefault(filename, [])
            duration.setdefault(filename, seconds)
    if not clips:
        raise ValueError(f"{labels}: no clips")
    folder = Path(audio) if audio is not None else Path(labels).parent
    uris: dict[str, str] = {}
    rates: dict[str, int] = {}
    for name in clips:
        path = folder / name
        if path.is_file():
            uris[name] = path.resolve().as_uri()
            if name not in duration or path.suffix.lower() == ".wav":
                seconds, rate = wav_info(path)
                duration.setdefault(name, seconds)
                rates[name] = rate
    unknown = [n for n in clips if n not in duration]
    if unknown:
        raise ValueError(f"clip {unknown[0]!r} (and {len(unknown) - 1} more) has no duration: give a duration column,"
                         f" a durations table or its WAV file in {folder}")  # fmt: skip
    predicted: dict[str, list[tuple[float, float, str, float, int]]] = {}
    if predictions is not None:
        if not inference_set:
            raise ValueError("a predictions file needs an inference set name")
        for r in _read_events(predictions, predicted=True):
            if r.filename not in clips:
                raise ValueError(f"{predictions}, line {r.line}: clip {r.filename!r} is not in {labels}")
            predicted.setdefault(r.filename, [])
            if r.event is not None:
                predicted[r.filename].append((*r.event, r.line))
    names = [e[2] for events in (*clips.values(), *predicted.values()) for e in events]
    ids = _class_ids(names, classes, (), str(labels))

    def rows_of(events: list[tuple[float, float, str, float, int]], name: str, path: Path) -> list[list[float]]:
        out = []
        for onset, offset, label, score, line in events:
            if onset >= duration[name]:
                raise ValueError(
                    f"{path}, line {line}: onset {onset} is not within clip {name!r} of {duration[name]} s"
                )
            if offset > duration[name] + DURATION_ROUNDING:
                raise ValueError(f"{path}, line {line}: offset {offset} is after the end of clip {name!r}"
                                 f" ({duration[name]} s)")  # fmt: skip
            out.append([onset, min(offset, duration[name]), ids[label], score])
        return out

    names_in_order = list(clips)
    label_events = [[e[:3] for e in rows_of(clips[n], n, labels)] for n in names_in_order]
    predicted_events = None
    if predictions is not None:
        predicted_events = [rows_of(predicted.get(n, []), n, predictions) for n in names_in_order]
    n = len(names_in_order)
    columns = UploadColumns(
        frame_ids=names_in_order,
        splits=[split] * n if split else None,
        media_uris=[uris.get(c, "") for c in names_in_order] if uris else None,
        media_type=pb.MEDIA_TYPE_AUDIO,
        durations=[duration[c] for c in names_in_order],
        sample_rates=[rates.get(c, 0) for c in names_in_order] if rates else None,
        label_events=label_events,
        inference_set=inference_set if predictions is not None else "",
        predicted_events=predicted_events,
    )
    n_pred = sum(len(v) for v in predicted_events) if predicted_events is not None else 0
    return SceneImport(columns, {i: name for name, i in ids.items()}, n, sum(len(v) for v in label_events), n_pred,
                       "SOUND_EVENTS")  # fmt: skip


def _read_durations(path: Path) -> list[tuple[str, float]]:
    """A durations table: ``filename duration`` rows, tab- or comma-separated, with or without a header."""
    lines = [(n, line) for n, line in enumerate(Path(path).read_text().splitlines(), 1) if line.strip()]
    if not lines:
        return []
    delimiter = "\t" if "\t" in lines[0][1] else ","
    out = []
    for k, (n, line) in enumerate(lines):
        cells = [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]
        if k == 0 and len(cells) > 1 and not _is_number(cells[1]):
            continue  # a header
        if len(cells) < 2 or not cells[0]:
            raise ValueError(f"{path}, line {n}: a durations row is 'filename{delimiter}duration', got {line!r}")
        seconds = _float(cells[1], f"{path}, line {n}: duration")
        if seconds <= 0:
            raise ValueError(f"{path}, line {n}: duration must be positive, got {seconds}")
        out.append((cells[0], seconds))
    return out
