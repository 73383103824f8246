"""Label Studio (1.23) behind :class:`~shoal.labeling_bridge.platforms.LabelingPlatform`, over its HTTP API.

How Shoal's things map onto Label Studio:

- A project's labeling interface is generated from the ontology: the image (``$image``), a header
  showing why Shoal sent the frame (``$shoal_reason``), and a control named ``label`` whose labels are
  the classes: ``<Choices>`` (one choice) for classification, ``<Choices choice="multiple">`` for
  multi-label, ``<RectangleLabels>`` (no rotation) for detection and for keypoints, ``<PolygonLabels>``
  for instance segmentation. Instance segmentation adds ``<BrushLabels name="brush">`` with the same
  classes, keypoints ``<KeyPointLabels name="keypoint">`` whose labels are the keypoint names. Semantic
  segmentation has the brush alone, ``<BrushLabels name="brush">``, each class's label painted in its
  ``ClassDef.color`` where it has one (the label's ``background``). Sound events show the audio clip
  (``<Audio name="audio" value="$audio"/>``, its waveform) and ``<Labels name="label" toName="audio">``,
  a label per class.
- A task's data holds the media URL (``image``, or ``audio`` for a clip), the Shoal frame id
  (``shoal_frame_id``, the idempotency key), the reason and the image size; pre-annotations are the
  task's prediction, with the pre-annotations' source as its model version.
- Label Studio stores places in percent of the image size (0..100, with ``original_width`` and
  ``original_height`` in pixels): a rectangle's ``x, y, width, height``, a polygon's ``points`` (one
  ``[x, y]`` a point), a keypoint's ``x, y``. :func:`result_from_labels` and :func:`labels_from_result`
  convert to and from Shoal's pixels. A brush mask is Label Studio's own run-length bit stream over
  the image (:mod:`shoal.labeling_bridge.brush`), converted to and from COCO's run lengths.
- Instance segmentation: an object drawn as one polygon goes out as a polygon region; an object
  with a mask, or with several polygons (a polygon region holds one), goes out as a brush region of
  its mask, so that it stays one object. A polygon region comes back as an object with that polygon,
  a brush region as an object with its mask.
- Keypoints: an object goes out as a rectangle region of its class and one keypoint region for
  each of its labeled keypoints, nested under the rectangle (``parentID``, the region list's tree).
  Coming back, a keypoint belongs to the rectangle its ``parentID`` names; a keypoint without one (a
  point the annotator added: the editor nests a new region under none) belongs to the smallest
  rectangle that contains it. The limits: where the rectangles of two objects overlap, a new point
  goes to the smaller, which may be the wrong one; the annotator fixes that by dragging it onto its
  rectangle in the region list (which sets ``parentID``). A point nested under no rectangle and lying
  in none is an error. Deleting a rectangle lifts its points to the top, where they go by containment.
  Label Studio has no hidden points: a point labeled hidden (COCO visibility 1) goes out as a point
  and comes back visible (2); a keypoint of the class without a point comes back unlabeled (0).
- Sound events: each event is an audio region (result type ``labels``) whose ``value`` holds ``start``
  and ``end`` in seconds from the clip's start and one label, its class; the regions Shoal sends have the
  ids ``ev<n>``, ``n`` the event's position in the clip's labels. Seconds need no conversion: an event
  comes back as the interval Label Studio stores, which the bridge checks against the clip.
- Semantic segmentation: a frame's class map goes out as one brush region per class present (id
  ``class-<id>``), unlabeled pixels in none, and each brush region comes back as a
  :class:`~shoal.labeling_bridge.platforms.ClassRegion` in the order of the result (the order the
  regions were made), a region erased to nothing included; the bridge puts them together. Label
  Studio keeps every brush region as its own mask, so regions may overlap: the server stores them
  as posted, and the editor draws them translucent, one over the other in an order that is not the
  result's (it lifts the selected region to the top), so no order of the result says which class an
  annotator meant for a pixel painted twice.

Authentication: Label Studio 1.23 turns legacy tokens off by default. A personal access token is a
long-lived JWT refresh token; ``POST /api/token/refresh/`` exchanges it for an access token that lasts
five minutes and is sent as ``Authorization: Bearer <access>``. The adapter refreshes it before it
expires and once more on a 401. A legacy token (40 hex characters, ``Authorization: Token <token>``)
still works where an organization enabled legacy tokens. Tokens are never logged.

Webhooks, as Label Studio 1.23 sends them: without Redis it posts inside the request that saved the
annotation, ``{"action": "ANNOTATION_CREATED" | "ANNOTATION_UPDATED", "annotation": {...}, "task": {...,
"data": {...}}, "project": {..., "label_config": "<View>..."}}``, with the webhook's headers, waits one
second (``WEBHOOK_TIMEOUT``) and never retries a failed call: a receiver answers at once and polling
(:meth:`LabelStudioPlatform.annotations_since`) catches up what was lost. Its SSRF protection
(``SSRF_PROTECTION_ENABLED``, on by default) refuses webhook URLs that resolve to private addresses,
such as a Kubernetes service; such a deployment turns it off or registers a public address.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

import numpy as np
import requests

from shoal.common import masks
from shoal.labeling_bridge import brush
from shoal.labeling_bridge.platforms import (
    ANNOTATION_EVENTS,
    Box,
    ClassRegion,
    Instance,
    Keypoint,
    Labels,
    PlatformAnnotation,
    PlatformError,
    PlatformUnavailable,
    ProjectRef,
    ProjectSpec,
    SoundEvent,
    TaskSpec,
    TaskType,
)

__all__ = [
    "AUDIO_NAME",
    "BRUSH_NAME",
    "CONTROL_NAME",
    "IMAGE_NAME",
    "KEYPOINT_NAME",
    "Interface",
    "LabelStudioPlatform",
    "MalformedResult",
    "group_keypoints",
    "labeling_config",
    "labels_from_result",
    "parse_labeling_config",
    "result_from_labels",
]

log = logging.getLogger(__name__)

PLATFORM = "label-studio"
#: Names in the generated labeling interface; annotations' results refer to them.
CONTROL_NAME = "label"
IMAGE_NAME = "image"
#: instance segmentation: the brush beside the polygons of CONTROL_NAME
BRUSH_NAME = "brush"
#: keypoint projects: the points placed on the rectangles of CONTROL_NAME
KEYPOINT_NAME = "keypoint"
#: sound-event projects: the audio clip that CONTROL_NAME labels
AUDIO_NAME = "audio"
#: Keys of a task's data.
DATA_IMAGE = "image"
DATA_AUDIO = "audio"
DATA_FRAME_ID = "shoal_frame_id"
DATA_REASON = "shoal_reason"
DATA_WIDTH = "shoal_image_width"
DATA_HEIGHT = "shoal_image_height"

_CONTROL_TAGS: dict[TaskType, str] = {
    "classification": "Choices",
    "multi_label": "Choices",
    "detection": "RectangleLabels",
    "instance_segmentation": "PolygonLabels",
    "keypoints": "RectangleLabels",
    "segmentation": "BrushLabels",
    "sound_events": "Labels",
}
_CONTROL_ATTRIBUTES: dict[TaskType, str] = {
    "classification": ' choice="single-radio" required="true" showInline="true"',
    # no choice is an answer too: the frame has none of the classes
    "multi_label": ' choice="multiple" showInline="true"',
    "detection": ' canRotate="false"',
    "instance_segmentation": "",
    "keypoints": ' canRotate="false"',
    "segmentation": "",
    "sound_events": "",
}
#: the result item types of each task type's annotations
_RESULT_TYPES: dict[TaskType, tuple[str, ...]] = {
    "classification": ("choices",),
    "multi_label": ("choices",),
    "detection": ("rectanglelabels",),
    "instance_segmentation": ("polygonlabels", "brushlabels"),
    "keypoints": ("rectanglelabels", "keypointlabels"),
    "segmentation": ("brushlabels",),
    "sound_events": ("labels",),
}
#: the task types a result of unknown project is read as, by its item types; multi-label and
#: segmentation are never guessed (their results look like classification's and instance
#: segmentation's)
_GUESSED: tuple[TaskType, ...] = ("classification", "detection", "instance_segmentation", "keypoints", "sound_events")
#: how errors name a region of each result item type
_REGION_NAMES = {
    "rectanglelabels": "rectangle",
    "polygonlabels": "polygon",
    "brushlabels": "brush",
    "keypointlabels": "keypoint",
    "labels": "interval",
}
_CONTROLS = (CONTROL_NAME, BRUSH_NAME, KEYPOINT_NAME)
#: a keypoint's size as the editor draws one (its KeyPointLabels' default strokeWidth), in pixels
_POINT_WIDTH = 1.0
_LS_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # the data manager's datetime filter format, UTC
_BODY_LIMIT = 2000
_PATTERN_BUDGET = 3000  # characters of frame ids per lookup query
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


class MalformedResult(ValueError):
    """A Label Studio result cannot be read as Shoal labels; the message says what is wrong."""


# --------------------------------------------------------------------------------------------
# Labeling interface (XML)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interface:
    """What a labeling interface made by :func:`labeling_config` offers."""

    task_type: TaskType
    classes: tuple[str, ...]
    keypoints: tuple[str, ...] = ()
    #: (class, ``#rrggbb``) of each class whose label has a colour (its ``background``)
    colors: tuple[tuple[str, str], ...] = ()


def labeling_config(spec: ProjectSpec) -> str:
    """The labeling interface of a Shoal project: the reason as a header, the image (or the audio
    clip), its controls."""
    if spec.task_type == "sound_events":
        media = f'  <Audio name="{AUDIO_NAME}" value="${DATA_AUDIO}"/>\n'
        controls = _control("Labels", CONTROL_NAME, spec.classes, colors=spec.colors, to=AUDIO_NAME)
    else:
        media = f'  <Image name="{IMAGE_NAME}" value="${DATA_IMAGE}" zoom="true"/>\n'
        # semantic segmentation has the brush alone; the other task types a control named CONTROL_NAME
        name = BRUSH_NAME if spec.task_type == "segmentation" else CONTROL_NAME
        controls = _control(_CONTROL_TAGS[spec.task_type], name, spec.classes, _CONTROL_ATTRIBUTES[spec.task_type],
                            spec.colors)  # fmt: skip
    if spec.task_type == "instance_segmentation":
        controls += _control("BrushLabels", BRUSH_NAME, spec.classes, colors=spec.colors)
    if spec.task_type == "keypoints":
        controls += _control("KeyPointLabels", KEYPOINT_NAME, spec.keypoints)
    return f'<View>\n  <Header value="${DATA_REASON}" size="5"/>\n{media}{controls}</View>\n'


def _control(
    tag: str,
    name: str,
    values: Sequence[str],
    attributes: str = "",
    colors: Mapping[str, str] | None = None,
    *,
    to: str = IMAGE_NAME,
) -> str:
    item = "Choice" if tag == "Choices" else "Label"
    paint = colors if item == "Label" and colors else {}
    items = "\n".join(
        f"    <{item} value={quoteattr(v)}" + (f" background={quoteattr(paint[v])}" if v in paint else "") + "/>"
        for v in values
    )
    return f'  <{tag} name="{name}" toName="{to}"{attributes}>\n{items}\n  </{tag}>\n'


def parse_labeling_config(config: str) -> Interface | None:
    """What a project's labeling interface (its ``label_config`` XML) offers, or ``None`` when it has
    no Shoal control (a project Shoal did not make). Read from the XML rather than from Label Studio's
    ``parsed_label_config``, which leaves out the attributes that tell multi-label from classification."""
    try:
        # the XML of the Label Studio server the adapter is configured with; expat refuses entity bombs
        root = ET.fromstring(config)  # noqa: S314
    except ET.ParseError:
        return None
    controls = {e.get("name"): e for e in root.iter() if e.get("name") and e.get("toName")}
    main = controls.get(CONTROL_NAME)
    task_type: TaskType
    if main is None:
        # semantic segmentation: the brush alone
        main = controls.get(BRUSH_NAME)
        if main is None or main.tag != "BrushLabels":
            return None
        task_type = "segmentation"
    elif main.tag == "Choices":
        task_type = "multi_label" if main.get("choice") == "multiple" else "classification"
    elif main.tag == "RectangleLabels":
        points = controls.get(KEYPOINT_NAME)
        task_type = "keypoints" if points is not None and points.tag == "KeyPointLabels" else "detection"
    elif main.tag == "PolygonLabels":
        task_type = "instance_segmentation"
    elif main.tag == "Labels" and main.get("toName") == AUDIO_NAME:
        task_type = "sound_events"
    else:
        return None

    def values(control: ET.Element) -> tuple[str, ...]:
        return tuple(str(e.get("value")) for e in control.iter() if e.tag in ("Choice", "Label") and e.get("value"))

    keypoints = values(controls[KEYPOINT_NAME]) if task_type == "keypoints" else ()
    colors = tuple(
        (str(e.get("value")), str(e.get("background")))
        for e in main.iter()
        if e.tag == "Label" and e.get("value") and e.get("background")
    )
    return Interface(task_type, values(main), keypoints, colors)


# --------------------------------------------------------------------------------------------
# Results <-> labels
# --------------------------------------------------------------------------------------------


def result_from_labels(
    labels: Labels,
    task_type: TaskType,
    *,
    classes: Sequence[str] | None = None,
    keypoints: Sequence[str] | None = None,
    image_width: int | None = None,
    image_height: int | None = None,
) -> list[dict[str, Any]]:
    """Shoal labels as a Label Studio result (the ``result`` of a prediction or an annotation).

    Places are converted from pixels to percent of ``image_width`` x ``image_height`` (those of
    ``labels`` when not given). Boxes are cut to the image; keypoints outside it are left out.
    Keypoint regions are nested under their object's rectangle (ids ``obj<n>`` and ``obj<n>-<k>``).
    Sound events are audio regions in seconds (ids their ``region``, else ``ev<n>``).

    Raises:
        ValueError: a class not in ``classes`` or a keypoint not in ``keypoints``, objects without
            the image size, a classification without a class, an instance with neither polygons
            nor a mask, a mask of another size, or a sound event that does not end after it starts.
    """
    known = set(classes) if classes is not None else None
    points = set(keypoints) if keypoints is not None else None

    def check(name: str) -> str:
        if known is not None and name not in known:
            raise ValueError(f"class {name!r} is not in the project's classes {sorted(known)}")
        return name

    def check_point(name: str) -> str:
        if points is not None and name not in points:
            raise ValueError(f"keypoint {name!r} is not among the project's keypoints {sorted(points)}")
        return name

    choice = {"from_name": CONTROL_NAME, "to_name": IMAGE_NAME, "type": "choices"}
    if task_type == "classification":
        if labels.class_name is None:
            raise ValueError("a classification label needs class_name")
        return [{**choice, "value": {"choices": [check(labels.class_name)]}}]
    if task_type == "multi_label":
        names = [check(c) for c in labels.class_names]
        return [{**choice, "value": {"choices": names}}] if names else []
    if task_type == "sound_events":
        return [_event_item(e, n, check(e.class_name)) for n, e in enumerate(labels.events)]
    width = image_width or labels.image_width
    height = image_height or labels.image_height
    if task_type == "segmentation":
        return [
            _class_region_item(r, n, width, height, check(r.class_name)) for n, r in enumerate(labels.class_regions)
        ]
    if (labels.boxes or labels.instances) and not (width and height and width > 0 and height > 0):
        raise ValueError("objects need the image size in pixels (image_width, image_height) to be placed")
    result = []
    sized = {"original_width": int(width or 0), "original_height": int(height or 0), "image_rotation": 0}
    for n, box in enumerate(labels.boxes):
        assert width and height
        # predicted boxes may overhang the image (they are stored as given); Label Studio keeps a
        # rectangle inside its image, so the part outside is cut off, and a box wholly outside is left out
        x0, y0 = max(box.x, 0.0), max(box.y, 0.0)
        x1, y1 = min(box.x + box.width, float(width)), min(box.y + box.height, float(height))
        if x1 <= x0 or y1 <= y0:
            continue
        item: dict[str, Any] = {
            "from_name": CONTROL_NAME,
            "to_name": IMAGE_NAME,
            "type": "rectanglelabels",
            **sized,
            "value": {
                "x": x0 / width * 100.0,
                "y": y0 / height * 100.0,
                "width": (x1 - x0) / width * 100.0,
                "height": (y1 - y0) / height * 100.0,
                "rotation": 0,
                "rectanglelabels": [check(box.class_name)],
            },
        }
        if box.score is not None:
            item["score"] = float(box.score)
        if task_type != "keypoints":
            result.append(item)
            continue
        owner = f"obj{n}"
        result.append({"id": owner, **item})
        for k, kp in enumerate(box.keypoints):
            if not (0.0 <= kp.x <= width and 0.0 <= kp.y <= height):  # a predicted point off the image
                continue
            value = {"x": kp.x / width * 100.0, "y": kp.y / height * 100.0, "width": _POINT_WIDTH / width * 100.0,
                     "keypointlabels": [check_point(kp.name)]}  # fmt: skip
            result.append({"id": f"{owner}-{k}", "parentID": owner, "from_name": KEYPOINT_NAME,
                           "to_name": IMAGE_NAME, "type": "keypointlabels", **sized, "value": value})  # fmt: skip
    for n, instance in enumerate(labels.instances):
        assert width and height
        result.append(_instance_item(instance, n, int(width), int(height), check(instance.class_name)))
    return result


def _event_item(event: SoundEvent, n: int, class_name: str) -> dict[str, Any]:
    """The audio region of one sound event, in seconds from the clip's start."""
    onset, offset = float(event.onset), float(event.offset)
    if not (math.isfinite(onset) and math.isfinite(offset) and 0.0 <= onset < offset):
        raise ValueError(f"sound event {event.region or n}: {onset} to {offset} s is not an interval of the clip")
    value = {"start": onset, "end": offset, "channel": 0, "labels": [class_name]}
    item: dict[str, Any] = {"id": event.region or f"ev{n}", "from_name": CONTROL_NAME, "to_name": AUDIO_NAME,
                            "type": "labels", "value": value}  # fmt: skip
    if event.score is not None:
        item["score"] = float(event.score)
    return item


def _instance_item(instance: Instance, n: int, width: int, height: int, class_name: str) -> dict[str, Any]:
    """The region of one instance: a polygon region when it is one polygon, else a brush region of its
    mask (or of the union of its polygons, drawn as COCO draws them), so that it stays one object."""
    place = {"to_name": IMAGE_NAME, "original_width": width, "original_height": height, "image_rotation": 0}
    score = {} if instance.score is None else {"score": float(instance.score)}
    if len(instance.polygons) == 1:
        (polygon,) = instance.polygons
        if len(polygon) < 6 or len(polygon) % 2:
            raise ValueError(
                f"instance {n}: a polygon needs x, y pairs of at least 3 points, not {len(polygon)} values"
            )
        points = [[x / width * 100.0, y / height * 100.0] for x, y in zip(polygon[0::2], polygon[1::2], strict=True)]
        value = {"points": points, "closed": True, "polygonlabels": [class_name]}
        return {"from_name": CONTROL_NAME, **place, "type": "polygonlabels", **score, "value": value}
    if instance.mask:
        runs = masks.from_string(instance.mask)
    elif instance.polygons:
        runs = masks.from_polygons([np.asarray(p, dtype=np.float64) for p in instance.polygons], height, width)
    else:
        raise ValueError(f"instance {n} has neither polygons nor a mask")
    problem = masks.check(runs, height, width)
    if problem is not None:
        raise ValueError(f"instance {n}: its mask is not one of the {width}x{height} image: {problem}")
    value = {"format": "rle", "rle": brush.encode(masks.decode(runs, height, width)), "brushlabels": [class_name]}
    return {"from_name": BRUSH_NAME, **place, "type": "brushlabels", **score, "value": value}


def _class_region_item(
    region: ClassRegion, n: int, width: int | None, height: int | None, class_name: str
) -> dict[str, Any]:
    """The brush region of one class's pixels, over the image of the region's size (which must be the
    task's, ``width`` x ``height``, when that is known)."""
    where = f"class region {region.region!r}" if region.region else f"class region {n}"
    if region.width <= 0 or region.height <= 0:
        raise ValueError(f"{where}: image size {region.width}x{region.height}")
    if width and height and (region.width, region.height) != (width, height):
        raise ValueError(f"{where}: drawn over {region.width}x{region.height} pixels, not the {width}x{height} image")
    try:
        runs = masks.from_string(region.mask)
    except (ValueError, IndexError, OverflowError) as exc:
        raise ValueError(f"{where}: the mask is not COCO's compact run-length string: {exc}") from None
    problem = masks.check(runs, region.height, region.width)
    if problem is not None:
        raise ValueError(f"{where}: its mask is not one of the {region.width}x{region.height} image: {problem}")
    value = {"format": "rle", "rle": brush.encode(masks.decode(runs, region.height, region.width)),
             "brushlabels": [class_name]}  # fmt: skip
    return {
        **({"id": region.region} if region.region else {}),
        "from_name": BRUSH_NAME,
        "to_name": IMAGE_NAME,
        "original_width": region.width,
        "original_height": region.height,
        "image_rotation": 0,
        "type": "brushlabels",
        "value": value,
    }


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MalformedResult(f"{what} is {value!r}, not a finite number")
    return float(value)


def labels_from_result(
    result: Any,
    *,
    classes: Sequence[str] | None = None,
    image_width: int | None = None,
    image_height: int | None = None,
    task_type: TaskType | None = None,
) -> Labels:
    """A Label Studio result as Shoal labels, read as the project's ``task_type`` (else as the type
    of its items say: multi-label is never guessed) from Shoal's controls; items of other controls,
    and relations, are ignored.

    Places are converted from percent to pixels of the items' ``original_width`` x
    ``original_height``, or of ``image_width`` x ``image_height`` when the result lacks them. An
    empty result is a frame with no object in an object project, and a frame with no class in a
    multi-label project. Keypoints are grouped onto rectangles by :func:`group_keypoints`. In a
    segmentation project each brush region is a class region over its own image size, in the
    result's order; one that paints nothing is kept (the bridge decides what it means). In a
    sound-event project each audio region is an event, its ``start`` and ``end`` in seconds as
    stored (the bridge checks them against the clip), in the result's order.

    Raises:
        MalformedResult: naming the region: not a list of result items, items of another task type
            or of several, a class not in ``classes``, not exactly one choice (classification) or
            label (a box, region or interval), a rotated rectangle, places or times that are not
            numbers, objects without an image size, a polygon
            of fewer than 3 points or left open, a brush mask that cannot be read (or, of an
            instance, paints nothing), a keypoint nested under no rectangle and lying in none.
    """
    if not isinstance(result, list):
        raise MalformedResult(f"the result is a {type(result).__name__}, not a list of items")
    known = set(classes) if classes is not None else None
    items = []
    for i, item in enumerate(result):
        if not isinstance(item, Mapping):
            raise MalformedResult(f"result item {i} is a {type(item).__name__}, not an object")
        if item.get("type") == "relation" or item.get("from_name", CONTROL_NAME) not in _CONTROLS:
            continue
        items.append((i, item))
    kind = _kind({str(item.get("type")) for _, item in items}, task_type)

    def check(name: Any, where: str) -> str:
        if not isinstance(name, str) or not name:
            raise MalformedResult(f"{where}: the class is {name!r}")
        if known is not None and name not in known:
            raise MalformedResult(f"{where}: class {name!r} is not in the project's classes {sorted(known)}")
        return name

    if kind in ("classification", "multi_label"):
        choices = [c for i, item in items for c in _value(item, item_index=i)["choices_list"]]
        if kind == "multi_label":
            return Labels(class_names=tuple(dict.fromkeys(check(c, f"choice {c!r}") for c in choices)))
        if len(choices) != 1:
            raise MalformedResult(f"expected exactly one choice, got {choices}")
        return Labels(class_name=check(choices[0], "choice"))
    if kind == "sound_events":
        return Labels(events=tuple(_event(item, i, check) for i, item in items))

    boxes: list[Box] = []
    instances: list[Instance] = []
    regions: list[ClassRegion] = []
    points: list[tuple[Keypoint, str, str]] = []
    width_seen: int | None = None
    height_seen: int | None = None
    for i, item in items:
        value = _value(item, item_index=i)
        kind_of = str(item.get("type"))
        region = str(item.get("id") or "")
        where = f"{_REGION_NAMES[kind_of]} {region!r} (result item {i})" if region else f"{_REGION_NAMES[kind_of]} {i}"
        width = item.get("original_width", image_width)
        height = item.get("original_height", image_height)
        if width is None or height is None:
            raise MalformedResult(f"{where}: no original_width/original_height and the image size is unknown")
        width = _number(width, f"{where}: original_width")
        height = _number(height, f"{where}: original_height")
        if width <= 0 or height <= 0:
            raise MalformedResult(f"{where}: image size {width}x{height}")
        labels = value.get(kind_of)
        if not isinstance(labels, list) or len(labels) != 1:
            raise MalformedResult(f"{where}: expected one label in {kind_of}, got {labels!r}")
        if kind_of == "keypointlabels":
            name = labels[0]
            if not isinstance(name, str) or not name:
                raise MalformedResult(f"{where}: the keypoint is {name!r}")
            x = _number(value.get("x"), f"{where}: x") * width / 100.0
            y = _number(value.get("y"), f"{where}: y") * height / 100.0
            points.append((Keypoint(name, x, y, region=region), str(item.get("parentID") or ""), where))
        elif kind_of == "polygonlabels":
            instances.append(
                Instance(check(labels[0], where), polygons=(_polygon(value, width, height, where),), region=region)
            )
        elif kind_of == "brushlabels" and kind == "segmentation":
            mask = _brush(value, width, height, where, empty=True)
            regions.append(ClassRegion(check(labels[0], where), mask, round(width), round(height), region=region))
        elif kind_of == "brushlabels":
            instances.append(Instance(check(labels[0], where), mask=_brush(value, width, height, where), region=region))
        else:
            if abs(_number(value.get("rotation", 0), f"{where}: rotation")) > 1e-6:
                raise MalformedResult(
                    f"{where}: rotated by {value.get('rotation')} degrees; Shoal boxes are axis-aligned"
                )
            boxes.append(
                Box(
                    class_name=check(labels[0], where),
                    x=_number(value.get("x"), f"{where}: x") * width / 100.0,
                    y=_number(value.get("y"), f"{where}: y") * height / 100.0,
                    width=_number(value.get("width"), f"{where}: width") * width / 100.0,
                    height=_number(value.get("height"), f"{where}: height") * height / 100.0,
                    score=float(item["score"]) if isinstance(item.get("score"), int | float) else None,
                    region=region,
                )
            )
        width_seen, height_seen = round(width), round(height)
    return Labels(
        boxes=group_keypoints(boxes, points) if kind == "keypoints" else tuple(boxes),
        instances=tuple(instances),
        class_regions=tuple(regions),
        image_width=width_seen if width_seen is not None else image_width,
        image_height=height_seen if height_seen is not None else image_height,
    )


def _kind(types: set[str], task_type: TaskType | None) -> TaskType:
    """The task type a result with items of ``types`` is read as."""
    if task_type is not None:
        allowed = _RESULT_TYPES[task_type]
        odd = sorted(types - set(allowed))
        if odd:
            raise MalformedResult(
                f"result items of type {odd} in a {task_type} project, whose results hold {list(allowed)}"
            )
        return task_type
    if not types:
        raise MalformedResult("the result is empty and the project's task type is unknown")
    for guess in _GUESSED:
        if types <= set(_RESULT_TYPES[guess]):
            return guess
    odd = sorted(types - set(_REGION_NAMES) - {"choices"})
    if odd:
        raise MalformedResult(f"result items of type {odd}: expected 'choices' or {sorted(_REGION_NAMES)}")
    raise MalformedResult(f"the result mixes {sorted(types)}")


def _event(item: Mapping[str, Any], i: int, check: Callable[[Any, str], str]) -> SoundEvent:
    """An audio region as a sound event, its times in seconds as stored."""
    value = _value(item, item_index=i)
    region = str(item.get("id") or "")
    where = f"interval {region!r} (result item {i})" if region else f"interval {i}"
    labels = value.get("labels")
    if not isinstance(labels, list) or len(labels) != 1:
        raise MalformedResult(f"{where}: expected one label in labels, got {labels!r}")
    return SoundEvent(
        check(labels[0], where),
        onset=_number(value.get("start"), f"{where}: start"),
        offset=_number(value.get("end"), f"{where}: end"),
        score=float(item["score"]) if isinstance(item.get("score"), int | float) else None,
        region=region,
    )


def _polygon(value: Mapping[str, Any], width: float, height: float, where: str) -> tuple[float, ...]:
    """A polygon region's points, in pixels (``x0, y0, x1, y1, ...``)."""
    if value.get("closed") is False:
        raise MalformedResult(f"{where}: the polygon is left open; close it to make it an object's outline")
    points = value.get("points")
    if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
        raise MalformedResult(f"{where}: points is {points!r}, not a list of [x, y] pairs")
    if len(points) < 3:
        raise MalformedResult(f"{where}: the polygon has {len(points)} points; it needs at least 3")
    return tuple(
        _number(v, f"{where}: point {k}") * size / 100.0
        for k, p in enumerate(points)
        for v, size in zip(p, (width, height), strict=True)
    )


def _brush(value: Mapping[str, Any], width: float, height: float, where: str, *, empty: bool = False) -> bytes:
    """A brush region's mask as COCO's compact run-length string over its image; one that paints
    nothing is an error unless ``empty``."""
    if value.get("format", "rle") != "rle" or not isinstance(value.get("rle"), list):
        raise MalformedResult(f"{where}: expected a brush mask of format 'rle' with its bytes in rle")
    if width != round(width) or height != round(height):
        raise MalformedResult(f"{where}: a brush mask needs a whole image size, not {width}x{height}")
    try:
        mask = brush.decode(value["rle"], round(height), round(width))
    except brush.BrushError as exc:
        raise MalformedResult(f"{where}: the brush mask cannot be read: {exc}") from None
    if not empty and not mask.any():
        raise MalformedResult(f"{where}: the brush mask paints no pixel")
    return masks.to_string(masks.encode(mask))


def group_keypoints(boxes: Sequence[Box], points: Sequence[tuple[Keypoint, str, str]]) -> tuple[Box, ...]:
    """The boxes with their keypoints. Each point is ``(keypoint, parent, where)``: ``parent`` the
    id of the region it is nested under ("" for none), ``where`` how errors name it. A point belongs to
    the box whose region ``parent`` names, else to the smallest box that contains it (the first of
    equal ones). Its order among its box's keypoints is its order in ``points``.

    Raises:
        MalformedResult: a point nested under no box of ``boxes`` and lying in none.
    """
    by_region = {b.region: n for n, b in enumerate(boxes) if b.region}
    owner = np.array([by_region.get(parent, -1) if parent else -1 for _, parent, _ in points], dtype=np.int64)
    loose = np.flatnonzero(owner < 0)
    if loose.size:
        xy = np.array([(points[p][0].x, points[p][0].y) for p in loose], dtype=np.float64).reshape(-1, 2)
        x0, y0, w, h = np.array([(b.x, b.y, b.width, b.height) for b in boxes], dtype=np.float64).reshape(-1, 4).T
        # points x boxes
        inside = (xy[:, :1] >= x0) & (xy[:, :1] <= x0 + w) & (xy[:, 1:] >= y0) & (xy[:, 1:] <= y0 + h)
        area = np.where(inside, w * h, np.inf)
        homeless = np.flatnonzero(~inside.any(axis=1))
        if homeless.size:
            kp, _, where = points[int(loose[homeless[0]])]
            raise MalformedResult(
                f"{where}: keypoint {kp.name!r} at ({kp.x:g}, {kp.y:g}) lies in no rectangle and is nested under"
                " none; draw it inside its object's rectangle or drag it onto that rectangle in the region list"
            )
        owner[loose] = area.argmin(axis=1)
    return tuple(
        replace(b, keypoints=tuple(points[p][0] for p in np.flatnonzero(owner == n))) for n, b in enumerate(boxes)
    )


def _value(item: Mapping[str, Any], *, item_index: int) -> dict[str, Any]:
    value = item.get("value")
    if not isinstance(value, Mapping):
        raise MalformedResult(f"result item {item_index} has no value object")
    out = dict(value)
    if item.get("type") == "choices":
        choices = value.get("choices")
        if not isinstance(choices, list):
            raise MalformedResult(f"result item {item_index}: choices is {choices!r}, not a list")
        out["choices_list"] = choices
    return out


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


class LabelStudioPlatform:
    """Label Studio over its HTTP API. Thread-safe for concurrent calls.

    Args:
        url: the server, e.g. ``http://label-studio:8080``.
        token: a personal access token (a JWT refresh token, as 1.23 issues by default) or a legacy
            token; never logged.
        auth_scheme: ``"personal"``, ``"legacy"``, or ``"auto"`` (a JWT is a personal access token).
        timeout_seconds: per HTTP request.
        chunk_size: tasks per import request.
        page_size: tasks per page when reading tasks back.
    """

    name = PLATFORM

    def __init__(
        self,
        url: str,
        token: str,
        *,
        auth_scheme: Literal["auto", "personal", "legacy"] = "auto",
        timeout_seconds: float = 30.0,
        chunk_size: int = 500,
        page_size: int = 200,
    ) -> None:
        if not url:
            raise ValueError("the Label Studio URL is empty")
        if not token:
            raise ValueError("the Label Studio token is empty: give a personal access token")
        if chunk_size < 1 or page_size < 1:
            raise ValueError("chunk_size and page_size must be at least 1")
        self.url = url.rstrip("/")
        self._token = token
        kind = auth_scheme if auth_scheme != "auto" else ("personal" if _JWT.match(token) else "legacy")
        self.auth_scheme: Literal["personal", "legacy"] = kind  # type: ignore[assignment]
        self.timeout_seconds = timeout_seconds
        self.chunk_size = chunk_size
        self.page_size = page_size
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        self._lock = threading.Lock()
        self._access: str | None = None
        self._access_expires = 0.0
        self._users: dict[int, str] = {}

    def __repr__(self) -> str:  # no token in here
        return f"<LabelStudioPlatform {self.url} ({self.auth_scheme} token)>"

    def close(self) -> None:
        self._session.close()

    # -- projects ----------------------------------------------------------------------------

    def ensure_project(self, spec: ProjectSpec) -> ProjectRef:
        found = self._find_project(spec.name)
        if found is None:
            created = self._request(
                "POST",
                "/api/projects/",
                json={"title": spec.name, "description": spec.description, "label_config": labeling_config(spec)},
            )
            log.info("created Label Studio project %r (id %s)", spec.name, created["id"])
            return self._ref(created["id"], spec)
        project_id = found["id"]
        have = parse_labeling_config(str(found.get("label_config") or ""))
        if have is None:
            raise PlatformError(
                f"Label Studio project {spec.name!r} (id {project_id}) has no '{CONTROL_NAME}' control: it was not "
                "made by Shoal; rename it or give Shoal's project another name"
            )
        if have.task_type != spec.task_type:
            raise PlatformError(
                f"Label Studio project {spec.name!r} (id {project_id}) is a {have.task_type} project, "
                f"not {spec.task_type}: give Shoal's project another name"
            )
        missing = [c for c in spec.classes if c not in have.classes]
        missing_points = [k for k in spec.keypoints if k not in have.keypoints]
        painted = dict(have.colors)
        recolored = [c for c, color in spec.colors.items() if painted.get(c, "").lower() != color.lower()]
        # The asked-for classes (and keypoints) first, then any the project had before (never drop a label
        # annotations may use), with the colours asked for, else those they had.
        classes = [*spec.classes, *(c for c in have.classes if c not in spec.classes)]
        merged = replace(
            spec,
            classes=classes,
            keypoints=[*spec.keypoints, *(k for k in have.keypoints if k not in spec.keypoints)],
            colors={**{c: v for c, v in painted.items() if c in classes}, **spec.colors},
        )
        if missing or missing_points or recolored or DATA_REASON not in str(found.get("label_config", "")):
            self._request("PATCH", f"/api/projects/{project_id}/", json={"label_config": labeling_config(merged)})
            log.info(
                "Label Studio project %r (id %s): added classes %s, keypoints %s; colours of %s",
                spec.name,
                project_id,
                missing,
                missing_points,
                recolored,
            )
        return self._ref(project_id, merged)

    def _ref(self, project_id: Any, spec: ProjectSpec) -> ProjectRef:
        return ProjectRef(
            platform=PLATFORM, project_id=str(project_id), spec=spec, url=f"{self.url}/projects/{project_id}/"
        )

    def _find_project(self, title: str) -> dict[str, Any] | None:
        page = 1
        while True:
            body = self._request("GET", "/api/projects/", params={"title": title, "page": page, "page_size": 100})
            results = body.get("results", []) if isinstance(body, Mapping) else body
            for project in results:
                if project.get("title") == title:  # the filter matches substrings, case-insensitively
                    return dict(project)
            if not isinstance(body, Mapping) or not body.get("next"):
                return None
            page += 1

    # -- tasks -------------------------------------------------------------------------------

    def existing_tasks(self, project: ProjectRef, external_ids: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(external_ids))
        found: dict[str, str] = {}
        # One data manager filter per query: the frame id matches an alternation of the wanted ids,
        # anchored and escaped (one SQL query for the lot; the URL stays within proxies' limits).
        for chunk in _chunks_by_length(wanted, _PATTERN_BUDGET):
            pattern = "^(" + "|".join(re.escape(x) for x in chunk) + ")$"
            query = {
                "filters": {
                    "conjunction": "and",
                    "items": [
                        {
                            "filter": f"filter:tasks:data.{DATA_FRAME_ID}",
                            "operator": "regex",
                            "type": "String",
                            "value": pattern,
                        }
                    ],
                }
            }
            members = set(chunk)
            for task in self._tasks(project, query, fields="task_only"):
                external = (task.get("data") or {}).get(DATA_FRAME_ID)
                if external in members and external not in found:
                    found[external] = str(task["id"])
        return found

    def import_tasks(self, project: ProjectRef, tasks: Sequence[TaskSpec]) -> dict[str, str]:
        unique: dict[str, TaskSpec] = {}
        for task in tasks:
            unique.setdefault(task.external_id, task)
        payloads = {x: self._task_payload(project, t) for x, t in unique.items()}  # ValueError before sending
        ids = self.existing_tasks(project, unique)
        todo = [x for x in unique if x not in ids]
        if ids:
            log.info("project %s: %d of %d frames already have a task", project.project_id, len(ids), len(unique))
        for start in range(0, len(todo), self.chunk_size):
            chunk = todo[start : start + self.chunk_size]
            body = self._request(
                "POST",
                f"/api/projects/{project.project_id}/import",
                params={"return_task_ids": "true"},
                json=[payloads[x] for x in chunk],
            )
            task_ids = body.get("task_ids") if isinstance(body, Mapping) else None
            if isinstance(task_ids, list) and len(task_ids) == len(chunk):
                ids.update({x: str(t) for x, t in zip(chunk, task_ids, strict=True)})
            else:  # an edition that imports in the background: read the tasks back
                ids.update(self._await_tasks(project, chunk))
            log.info("project %s: imported %d tasks", project.project_id, len(chunk))
        return {x: ids[x] for x in unique if x in ids}

    def _await_tasks(self, project: ProjectRef, external_ids: list[str], timeout: float = 300.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.existing_tasks(project, external_ids)
            if len(found) == len(external_ids) or time.monotonic() > deadline:
                return found
            time.sleep(1.0)

    def _task_payload(self, project: ProjectRef, task: TaskSpec) -> dict[str, Any]:
        width = task.image_width or (task.prelabels.image_width if task.prelabels else None)
        height = task.image_height or (task.prelabels.image_height if task.prelabels else None)
        data: dict[str, Any] = {
            DATA_AUDIO if project.spec.task_type == "sound_events" else DATA_IMAGE: task.media_url,
            DATA_FRAME_ID: task.external_id,
            DATA_REASON: task.reason,
        }
        if width and height:
            data[DATA_WIDTH], data[DATA_HEIGHT] = int(width), int(height)
        payload: dict[str, Any] = {"data": data, "meta": dict(task.meta)}
        if task.prelabels is not None:
            try:
                result = result_from_labels(
                    task.prelabels,
                    project.spec.task_type,
                    classes=project.spec.classes,
                    keypoints=project.spec.keypoints,
                    image_width=width,
                    image_height=height,
                )
            except ValueError as exc:
                raise ValueError(f"pre-annotations of {task.external_id}: {exc}") from None
            payload["predictions"] = [{"model_version": task.prelabel_source, "result": result}]
        return payload

    def _tasks(self, project: ProjectRef, query: Mapping[str, Any], *, fields: str) -> Iterator[dict[str, Any]]:
        """Every task of the project that the data manager query selects, page by page, by task id."""
        page, seen = 1, 0
        while True:
            body = self._request(
                "GET",
                "/api/tasks/",
                params={
                    "project": project.project_id,
                    "query": json.dumps({**query, "ordering": ["tasks:id"]}),
                    "fields": fields,
                    "page": page,
                    "page_size": self.page_size,
                },
            )
            tasks = body.get("tasks", []) if isinstance(body, Mapping) else []
            yield from tasks
            seen += len(tasks)
            total = int(body.get("total", 0)) if isinstance(body, Mapping) else 0
            if not tasks or seen >= total:
                return
            page += 1

    # -- annotations -------------------------------------------------------------------------

    def annotations_since(self, project: ProjectRef, since: dt.datetime | None = None) -> list[PlatformAnnotation]:
        items: list[dict[str, Any]] = [
            {"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number", "value": 0}
        ]
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be timezone-aware (UTC)")
            # A task's updated_at moves when one of its annotations is created or changed.
            stamp = since.astimezone(dt.UTC).strftime(_LS_TIME)
            items.append(
                {
                    "filter": "filter:tasks:updated_at",
                    "operator": "greater_or_equal",
                    "type": "Datetime",
                    "value": stamp,
                }
            )
        query = {"filters": {"conjunction": "and", "items": items}}
        out: list[PlatformAnnotation] = []
        for task in self._tasks(project, query, fields="all"):
            for annotation in task.get("annotations") or []:
                updated = _parse_time(annotation.get("updated_at")) if isinstance(annotation, Mapping) else None
                if since is not None and updated is not None and updated < since:
                    continue
                out.append(self._convert(annotation, task, project.spec.classes, project.spec.task_type))
        return out

    def register_webhook(
        self,
        project: ProjectRef,
        url: str,
        actions: Sequence[str] = ANNOTATION_EVENTS,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        wanted = {
            "project": int(project.project_id),
            "url": url,
            "send_payload": True,
            "send_for_all_actions": False,
            "actions": list(actions),
            "headers": dict(headers or {}),
            "is_active": True,
        }
        hooks = self._request("GET", "/api/webhooks/", params={"project": project.project_id})
        for hook in hooks if isinstance(hooks, list) else []:
            if hook.get("url") != url or str(hook.get("project")) != project.project_id:
                continue
            same = (
                sorted(hook.get("actions") or []) == sorted(actions)
                and (hook.get("headers") or {}) == wanted["headers"]
                and hook.get("is_active")
                and hook.get("send_payload")
                and not hook.get("send_for_all_actions")
            )
            if not same:
                self._request(
                    "PATCH", f"/api/webhooks/{hook['id']}/", json={k: v for k, v in wanted.items() if k != "project"}
                )
                log.info("project %s: updated webhook %s", project.project_id, hook["id"])
            return str(hook["id"])
        created = self._request("POST", "/api/webhooks/", json=wanted)
        log.info("project %s: registered webhook %s for %s", project.project_id, created["id"], list(actions))
        return str(created["id"])

    def parse_webhook(self, payload: Mapping[str, Any]) -> list[PlatformAnnotation]:
        """Label Studio posts ``{"action", "annotation", "task", "project"}`` on ANNOTATION_CREATED and
        ANNOTATION_UPDATED (a list under ``annotation`` on ANNOTATIONS_CREATED); other events carry no
        annotation and give an empty list."""
        action = payload.get("action")
        if action not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"):
            return []
        task = payload.get("task") if isinstance(payload.get("task"), Mapping) else {}
        project = payload.get("project") if isinstance(payload.get("project"), Mapping) else {}
        have = parse_labeling_config(str(project.get("label_config") or "")) if project else None
        task_type, classes = (have.task_type, have.classes) if have else (None, None)
        annotations = payload.get("annotation")
        if isinstance(annotations, Mapping):
            annotations = [annotations]
        if not isinstance(annotations, list):
            return [self._broken(payload, task, f"{action} carries no annotation object")]
        return [self._convert(a, task, classes, task_type) for a in annotations]

    # -- conversion of one annotation ----------------------------------------------------------

    def _convert(
        self,
        annotation: Any,
        task: Mapping[str, Any],
        classes: Sequence[str] | None,
        task_type: TaskType | None,
    ) -> PlatformAnnotation:
        if not isinstance(annotation, Mapping):
            return self._broken(annotation, task, f"the annotation is a {type(annotation).__name__}, not an object")
        data = task.get("data") if isinstance(task.get("data"), Mapping) else {}
        task_id = annotation.get("task", task.get("id"))
        base = {
            "platform": PLATFORM,
            "external_id": data.get(DATA_FRAME_ID) if isinstance(data.get(DATA_FRAME_ID), str) else None,
            "task_id": str(task_id) if task_id is not None else "",
            "annotation_id": str(annotation.get("id", "")),
            "annotator": self._annotator(annotation),
            "created_at": _parse_time(annotation.get("created_at")),
            "updated_at": _parse_time(annotation.get("updated_at")),
            "raw": dict(annotation),
        }
        if annotation.get("was_cancelled"):
            return PlatformAnnotation(**base, labels=None, cancelled=True)
        try:
            labels = labels_from_result(
                annotation.get("result"),
                classes=classes,
                image_width=_int_or_none(data.get(DATA_WIDTH)),
                image_height=_int_or_none(data.get(DATA_HEIGHT)),
                task_type=task_type,
            )
        except MalformedResult as exc:
            return PlatformAnnotation(**base, labels=None, error=str(exc))
        return PlatformAnnotation(**base, labels=labels)

    def _broken(self, raw: Any, task: Mapping[str, Any], error: str) -> PlatformAnnotation:
        data = task.get("data") if isinstance(task.get("data"), Mapping) else {}
        external = data.get(DATA_FRAME_ID)
        return PlatformAnnotation(
            platform=PLATFORM,
            external_id=external if isinstance(external, str) else None,
            task_id=str(task.get("id", "")),
            annotation_id="",
            annotator="",
            created_at=None,
            updated_at=None,
            labels=None,
            error=error,
            raw=dict(raw) if isinstance(raw, Mapping) else {"value": raw},
        )

    def _annotator(self, annotation: Mapping[str, Any]) -> str:
        user = annotation.get("completed_by")
        if isinstance(user, Mapping):  # some serializers expand the user
            return str(user.get("email") or user.get("id", ""))
        if not isinstance(user, int):
            return ""
        if user not in self._users:
            try:
                body = self._request("GET", f"/api/users/{user}/")
                self._users[user] = str(body.get("email") or f"user {user}")
            except (PlatformUnavailable, PlatformError):  # a name is not worth failing the annotation for
                return f"user {user}"
        return self._users[user]

    # -- HTTP --------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            response = self._send(method, path, self._auth_header(), **kwargs)
            if response.status_code == 401 and self.auth_scheme == "personal" and attempt == 1:
                self._refresh_access(force=True)  # revoked or expired early: one more try with a new one
                continue
            break
        return self._answer(method, path, response)

    def _send(self, method: str, path: str, auth: str | None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": auth} if auth else {}
        try:
            return self._session.request(
                method, f"{self.url}{path}", headers=headers, timeout=self.timeout_seconds, **kwargs
            )
        except requests.RequestException as exc:
            raise PlatformUnavailable(
                f"Label Studio at {self.url} is unreachable ({method} {path}): {type(exc).__name__}: {exc}"
            ) from None

    def _answer(self, method: str, path: str, response: requests.Response) -> Any:
        status = response.status_code
        if status >= 500 or status == 429:
            raise PlatformUnavailable(
                f"Label Studio at {self.url} answered {status} to {method} {path}: {response.text[:_BODY_LIMIT]}"
            )
        if status >= 400:
            hint = ""
            if status == 401:
                hint = " (the token was not accepted: is it revoked, or a legacy token where legacy tokens are off?)"
            raise PlatformError(
                f"Label Studio refused {method} {path} with {status}{hint}: {response.text[:_BODY_LIMIT]}",
                status=status,
                body=response.text[:_BODY_LIMIT],
            )
        if status == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise PlatformUnavailable(
                f"Label Studio at {self.url} answered {method} {path} with something that is not JSON: "
                f"{response.text[:200]!r}"
            ) from None

    def _auth_header(self) -> str:
        if self.auth_scheme == "legacy":
            return f"Token {self._token}"
        return f"Bearer {self._refresh_access()}"

    def _refresh_access(self, *, force: bool = False) -> str:
        with self._lock:
            if not force and self._access is not None and time.time() < self._access_expires - 30:
                return self._access
            response = self._send("POST", "/api/token/refresh/", None, json={"refresh": self._token})
            if response.status_code in (400, 401, 403):
                raise PlatformError(
                    f"Label Studio at {self.url} did not accept the personal access token ({response.status_code}): "
                    "it may be revoked or expired, Label Studio's SECRET_KEY may have changed since it was issued, "
                    "or personal access tokens are off for the organization; "
                    "create a new one under Account & Settings",
                    status=response.status_code,
                    body=response.text[:_BODY_LIMIT],
                )
            body = self._answer("POST", "/api/token/refresh/", response)
            access = body.get("access") if isinstance(body, Mapping) else None
            if not isinstance(access, str):
                raise PlatformUnavailable(f"Label Studio at {self.url} gave no access token on refresh")
            self._access = access
            self._access_expires = _jwt_expiry(access) or time.time() + 60
            return access


def _chunks_by_length(items: list[str], budget: int) -> Iterator[list[str]]:
    """Consecutive runs of ``items`` whose lengths add up to about ``budget`` (at least one item each)."""
    chunk: list[str] = []
    size = 0
    for item in items:
        if chunk and size + len(item) > budget:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item) + 1
    if chunk:
        yield chunk


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without checking the signature (only to refresh in time)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None
