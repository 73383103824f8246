"""The interface between the labeling bridge and a labeling platform, and the values that cross it.

The bridge speaks to every platform through :class:`LabelingPlatform`; Label Studio's adapter is
:class:`shoal.labeling_bridge.label_studio.LabelStudioPlatform`. An adapter for another platform (CVAT,
Labelbox, Scale) implements the same methods with the same promises:

- **Idempotent sends.** A Shoal frame is a task keyed by its external id (``"<dataset>/<frame_id>"``);
  importing it again, or after a crash between the platform's commit and our reading of its answer,
  creates no second task. Adapters check what exists before creating, so a retried call is safe.
  Two callers importing the same frames into the same project at the same moment are not guarded
  against: the bridge serialises the sends of one project.
- **Errors say what to do.** :class:`PlatformUnavailable` (unreachable, timed out, 5xx, 429) means
  "try again later, nothing is wrong with the request"; :class:`PlatformError` (4xx, a rejected
  credential, a project that is not ours) means "retrying will not help". Neither message carries a
  credential.
- **One bad annotation spoils nothing else.** Annotations that cannot be converted come back as a
  :class:`PlatformAnnotation` with ``error`` set; the rest of the batch converts as usual.
- **Labels in Shoal's terms.** Boxes, polygons and keypoints are in pixels, ``x, y`` the top-left
  corner of a box, and masks are COCO run lengths over the frame, whatever the platform stores (Label
  Studio stores percentages of the image size, and masks as its own brush bit stream). A semantic
  segmentation map travels as one mask per class (:class:`ClassRegion`); the bridge, not the adapter,
  puts the regions that come back together into the frame's class map. Sound events are intervals in
  seconds from the clip's start (:class:`SoundEvent`).

Everything here is plain data: the interface knows no HTTP and no gRPC.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args, runtime_checkable

__all__ = [
    "ANNOTATION_EVENTS",
    "TASK_TYPES",
    "Box",
    "ClassRegion",
    "Instance",
    "Keypoint",
    "LabelingPlatform",
    "Labels",
    "PlatformAnnotation",
    "PlatformError",
    "PlatformException",
    "PlatformUnavailable",
    "ProjectRef",
    "ProjectSpec",
    "SoundEvent",
    "TaskSpec",
    "TaskType",
    "seconds",
]

TaskType = Literal[
    "classification", "multi_label", "detection", "instance_segmentation", "keypoints", "segmentation", "sound_events"
]
TASK_TYPES: tuple[TaskType, ...] = get_args(TaskType)

_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")

#: The webhook events the bridge subscribes to (Label Studio's names; other adapters map them).
ANNOTATION_EVENTS: tuple[str, ...] = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


def seconds(value: float) -> str:
    """A time in seconds as errors and reasons write it: at most three decimals, at least one (1.2,
    2.0, 1.25, 0.125)."""
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


class PlatformException(Exception):
    """Base of the errors an adapter raises."""


class PlatformUnavailable(PlatformException):
    """The platform could not be reached or failed on its side (connection refused, timeout, 5xx,
    429). The request may succeed later unchanged: retry with backoff. When a send was interrupted
    this way, some of its tasks may exist on the platform; sending again creates only the others."""


class PlatformError(PlatformException):
    """The platform refused the request (4xx, a credential it does not accept, a project of the same
    name that Shoal did not make). Retrying the same request will not help.

    Attributes:
        status: the HTTP status, when there was one.
        body: the platform's answer (its first 2,000 characters), which names what it refused.
    """

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class ProjectSpec:
    """A labeling project as Shoal wants it.

    Attributes:
        name: the project's title on the platform; projects are found by it.
        task_type: ``"classification"`` (one class per frame), ``"multi_label"`` (any number of
            classes per frame), ``"detection"`` (2-D boxes), ``"instance_segmentation"`` (objects
            with polygons or a mask), ``"keypoints"`` (objects with a box and named points),
            ``"segmentation"`` (a class for every pixel) or ``"sound_events"`` (intervals of an
            audio clip, each with a class).
        classes: the ontology's class names, in display order. Classes may be added later
            (the project follows); classes are never removed from a platform project, since
            annotations may use them.
        description: shown on the platform with the project.
        keypoints: keypoint projects: the keypoint names the annotators may place, those of every
            class, each once (which belong to which class is Shoal's to check). Grows like the
            classes.
        colors: class name -> the colour the platform paints it in, ``#rrggbb`` (the classes'
            ``ClassDef.color``; classes without one get the platform's). A changed colour is
            changed on the platform too.
    """

    name: str
    task_type: TaskType
    classes: Sequence[str]
    description: str = ""
    keypoints: Sequence[str] = ()
    colors: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("ProjectSpec.name is empty: name the labeling project")
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"ProjectSpec.task_type is {self.task_type!r}: use one of {', '.join(TASK_TYPES)}")
        classes = tuple(str(c) for c in self.classes)
        if not classes or any(not c.strip() for c in classes):
            raise ValueError("ProjectSpec.classes must list at least one non-empty class name")
        if len(set(classes)) != len(classes):
            raise ValueError(f"ProjectSpec.classes repeats a class: {classes}")
        keypoints = tuple(str(k) for k in self.keypoints)
        if keypoints and self.task_type != "keypoints":
            raise ValueError(f"ProjectSpec.keypoints are for keypoint projects, not {self.task_type}")
        if self.task_type == "keypoints" and (not keypoints or any(not k.strip() for k in keypoints)):
            raise ValueError("ProjectSpec.keypoints must list at least one non-empty keypoint name")
        if len(set(keypoints)) != len(keypoints):
            raise ValueError(f"ProjectSpec.keypoints repeats a keypoint: {keypoints}")
        colors = {str(c): str(v) for c, v in self.colors.items()}
        odd = sorted(set(colors) - set(classes))
        if odd:
            raise ValueError(f"ProjectSpec.colors names classes that are not in classes: {odd}")
        bad = sorted(c for c, v in colors.items() if not _COLOR.match(v))
        if bad:
            raise ValueError(f"ProjectSpec.colors of {bad} are not written #rrggbb")
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "keypoints", keypoints)
        object.__setattr__(self, "colors", colors)


@dataclass(frozen=True)
class ProjectRef:
    """A platform project that :meth:`LabelingPlatform.ensure_project` found or made.

    Attributes:
        platform: the adapter's name (``"label-studio"``).
        project_id: the platform's id of the project.
        spec: what the project was ensured as; ``spec.classes`` are every class its config offers
            (those asked for, then any the project had before).
        url: where a person opens the project.
    """

    platform: str
    project_id: str
    spec: ProjectSpec
    url: str = ""


@dataclass(frozen=True)
class Keypoint:
    """A labeled keypoint in pixels, by its name among its class's keypoints.

    ``region`` is the platform's id of the point, named in errors ("" when it has none).
    """

    name: str
    x: float
    y: float
    region: str = ""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: ``x, y`` is the top-left corner. In a keypoint project, the
    object's box with the keypoints labeled on it (those not labeled are absent).

    ``region`` is the platform's id of the box, named in errors ("" when it has none).
    """

    class_name: str
    x: float
    y: float
    width: float
    height: float
    score: float | None = None
    keypoints: tuple[Keypoint, ...] = ()
    region: str = ""


@dataclass(frozen=True)
class Instance:
    """An object of an instance segmentation frame: its polygons (each ``x0, y0, x1, y1, ...`` in
    pixels), or its mask as COCO's compact run-length string over the frame (``image_height`` x
    ``image_width`` of its :class:`Labels`). Pre-annotations may carry both, as Shoal stores an
    object drawn as polygons (the mask is their union); the platform chooses what to show.

    ``region`` is the platform's id of the region, named in errors ("" when it has none).
    """

    class_name: str
    polygons: tuple[tuple[float, ...], ...] = ()
    mask: bytes = b""
    score: float | None = None
    region: str = ""


@dataclass(frozen=True)
class ClassRegion:
    """Semantic segmentation: pixels given one class, as COCO's compact run-length string over an
    image of ``height`` x ``width`` pixels (the size the platform drew it over; the bridge checks it
    is the frame's).

    Going out, a frame's class map is one region per class present (unlabeled pixels in none).
    Coming back, the regions are the annotation's, in the platform's order: several may share a
    class, and they may overlap (the bridge refuses pixels given two classes) or paint nothing.

    ``region`` is the platform's id of the region, named in errors ("" when it has none).
    """

    class_name: str
    mask: bytes
    width: int
    height: int
    region: str = ""


@dataclass(frozen=True)
class SoundEvent:
    """A sound event of an audio clip: an interval in seconds from the clip's start, with its class.

    Going out, ``onset < offset``; coming back, the interval as the platform stores it (the bridge
    checks it lies within the clip and ends after it starts). ``score`` is a prediction's, ``None``
    for a label. ``region`` is the platform's id of the region, named in errors ("" when it has none).
    """

    class_name: str
    onset: float
    offset: float
    score: float | None = None
    region: str = ""


@dataclass(frozen=True)
class Labels:
    """What a frame is labeled as: a class (classification), a set of classes (multi-label), boxes
    (detection, and keypoints on them), instances (instance segmentation), class regions
    (semantic segmentation), or sound events (an audio clip).

    ``image_width`` and ``image_height`` (pixels) are needed to place boxes, polygons, masks and
    keypoints on platforms that store relative coordinates; a frame of an object task with no
    object is a frame with no object, a multi-label frame with no class has none of them, and a
    clip with no event has none.
    """

    class_name: str | None = None
    class_names: tuple[str, ...] = ()
    boxes: tuple[Box, ...] = ()
    instances: tuple[Instance, ...] = ()
    class_regions: tuple[ClassRegion, ...] = ()
    events: tuple[SoundEvent, ...] = ()
    image_width: int | None = None
    image_height: int | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One frame to be labeled.

    Attributes:
        external_id: the Shoal frame, ``"<dataset>/<frame_id>"``; the key that keeps sends idempotent.
        media_url: where the annotator's browser loads the image (or the audio clip) from.
        reason: why Shoal sent the frame, shown to the annotator beside it.
        prelabels: the current labels or the model's predictions, offered as pre-annotations.
        prelabel_source: what the pre-annotations are (a label version or an inference set);
            Label Studio shows it as the prediction's model version.
        image_width, image_height: the image size in pixels, when known (the object tasks need it,
            to place boxes, polygons, masks and keypoints; taken from ``prelabels`` when not given
            here).
        meta: free JSON-serialisable data kept with the task (request id, issue scores, ...).
    """

    external_id: str
    media_url: str
    reason: str = ""
    prelabels: Labels | None = None
    prelabel_source: str = "shoal"
    image_width: int | None = None
    image_height: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.external_id:
            raise ValueError("TaskSpec.external_id is empty: use '<dataset>/<frame_id>'")
        if not self.media_url:
            raise ValueError(f"TaskSpec.media_url is empty for {self.external_id}")


@dataclass(frozen=True)
class PlatformAnnotation:
    """One annotation as the platform has it, converted to Shoal's terms.

    Attributes:
        platform: the adapter's name.
        external_id: the Shoal frame the task was made for (``None`` when the task carries none,
            e.g. a task someone added to the project by hand).
        task_id, annotation_id: the platform's ids.
        annotator: who made the annotation (the platform user's email when known).
        created_at, updated_at: when, in UTC. An annotation id with a later ``updated_at`` is a
            newer version of the same annotation.
        labels: the converted labels; ``None`` when ``error`` is set or the annotator skipped the task.
        cancelled: the annotator skipped the task instead of labeling it.
        error: why the annotation could not be converted; the batch it came in is otherwise fine.
        raw: the platform's own record of the annotation, for provenance and debugging.
    """

    platform: str
    external_id: str | None
    task_id: str
    annotation_id: str
    annotator: str
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    labels: Labels | None
    cancelled: bool = False
    error: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class LabelingPlatform(Protocol):
    """A labeling platform, as the labeling bridge uses it. Every method may raise
    :class:`PlatformUnavailable` (retry later) or :class:`PlatformError` (the request is wrong)."""

    #: A short name of the platform, recorded in the provenance of labels (``"label-studio"``).
    name: str

    def ensure_project(self, spec: ProjectSpec) -> ProjectRef:
        """Find the project titled ``spec.name`` or create it, with a labeling interface made from
        the ontology and a place that shows each task's reason. Idempotent: a second call finds the
        project; classes (and keypoints) added to ``spec`` since are added to the project's interface,
        and colours changed since are changed there.

        Raises:
            PlatformError: a project of that name exists but is not one Shoal can use (another task
                type, an interface without Shoal's controls).
        """
        ...

    def existing_tasks(self, project: ProjectRef, external_ids: Iterable[str]) -> dict[str, str]:
        """The tasks of ``project`` made for these frames: external id -> task id. Frames without a
        task are absent from the answer."""
        ...

    def import_tasks(self, project: ProjectRef, tasks: Sequence[TaskSpec]) -> dict[str, str]:
        """Create a task for each frame that has none yet, with its pre-annotations and reason, in
        chunks. Returns external id -> task id for every frame given, old and new.

        Idempotent: frames that already have a task are skipped, also after an interrupted call.

        Raises:
            ValueError: a task's pre-annotations do not fit the project (a class it lacks, objects
                without the image size, a mask of another size); nothing is sent.
        """
        ...

    def annotations_since(self, project: ProjectRef, since: dt.datetime | None = None) -> list[PlatformAnnotation]:
        """Every annotation of ``project`` created or changed at or after ``since`` (all of them when
        ``None``), oldest task first: the polling fallback to webhooks and the catch-up after an outage.

        Callers keep the largest ``updated_at`` they have seen as the next ``since``, go back a
        little (annotations saved at the same moment may commit out of order) and drop what they
        already have by ``(annotation_id, updated_at)``.
        """
        ...

    def register_webhook(
        self,
        project: ProjectRef,
        url: str,
        actions: Sequence[str] = ANNOTATION_EVENTS,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Make the platform call ``url`` on these events of ``project``, with ``headers`` (e.g. a
        shared secret the receiver checks). Idempotent: one webhook per project and URL, updated
        when the actions or headers changed. Returns the webhook's id."""
        ...

    def parse_webhook(self, payload: Mapping[str, Any]) -> list[PlatformAnnotation]:
        """The annotations a webhook call carries (none for events that carry none). Never raises
        for a malformed annotation: it comes back with ``error`` set."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
