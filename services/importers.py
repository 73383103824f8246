"""Importers: COCO JSON (ground truth and results files of boxes, instance masks or keypoints),
tables (CSV or Parquet, with a .npy of embeddings) and folders of PNG label images (semantic
segmentation), turned into :class:`shoal.sdk.UploadColumns`.

All are plain functions over files; the CLI (``shoal import coco|table|masks``) and user code call them.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shoal.sdk import Box, LabeledObject, PredictedObject, UploadColumns

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
