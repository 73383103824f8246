"""Validation of upload chunks: every rule a frame, label, inference or embedding must meet.

The same rules serve both paths: the Upload RPC refuses a chunk with any error
(INVALID_ARGUMENT naming the first field and frame), and the Kafka consumer writes the good items
of an event and dead-letters the bad ones with their reasons. Each item is judged on its own: a
bad label does not reject the frame it belongs to.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TypeVar

import numpy as np

from shoal.common.boxes import check_box
from shoal.common.data.datasets import Dataset, InferenceSet
from shoal.common.data.projects import OBJECT_TASKS, ClassDef, EmbeddingSpace, Project
from shoal.common.errors import Datapoint, InvalidArgument, ShoalError, shown
from shoal.common.media import MediaReader
from shoal.common.timeutil import time_problem
from shoal.common.v1 import common_pb2
from shoal.ingest.columns import (
    MAX_ID,
    MAX_TEXT,
    VALUE_TYPES,
    CheckedColumns,
    KeyTypes,
    check_columns,
    column_frame_ids,
    probability_problem,
    probability_rows_ok,
    provenance_problem,
)
from shoal.ingest.scenes import check_cuboid, check_events, check_frame_scene
from shoal.ingest.segmaps import check_map
from shoal.ingest.shapes import SHAPED_TASKS, check_shape
from shoal.ingest.v1 import ingest_pb2 as pb

MAX_ID_LENGTH = MAX_ID
MAX_METADATA_KEYS = 64
_ID_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


_Item = TypeVar("_Item", pb.FrameLabels, pb.FrameInference)


@dataclass(frozen=True)
class Context:
    """What a chunk is checked against."""

    project: Project
    dataset: Dataset
    inference_set: InferenceSet | None = None
    #: (width, height) of frames stored before, for boxes of frames not in the chunk
    known_frames: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    max_items: int = 10_000
    #: the type of each metadata key the dataset stored before ("string", "number", "bool", "timestamp")
    key_types: Mapping[str, str] = field(default_factory=dict)
    #: reads segmentation maps given at a URI (None: such maps are refused)
    media: MediaReader | None = None
    #: the duration (seconds) of the audio clips stored before, for sound events of frames not in the chunk
    known_durations: Mapping[str, float] = field(default_factory=dict)

    # built once per context (a chunk), not once per label or inference that asks

    @cached_property
    def classes(self) -> dict[int, int]:
        """class id -> position in the ontology (the order of probability vectors)."""
        return {c.id: i for i, c in enumerate(self.project.classes)}

    @cached_property
    def class_defs(self) -> dict[int, ClassDef]:
        """class id -> its definition (keypoints and their sigmas)."""
        return {c.id: c for c in self.project.classes}

    @cached_property
    def spaces(self) -> dict[str, EmbeddingSpace]:
        return {s.name: s for s in self.project.embedding_spaces}


@dataclass(frozen=True)
class Rejection:
    #: "frame", "labels", "inference" or "embedding"
    kind: str
    #: position of the item in its list (for embeddings: block index)
    index: int
    #: for embeddings: row within the block
    row: int
    error: ShoalError
    #: the item is a row of the chunk's columnar block (``index`` is the row)
    columns: bool = False


@dataclass
class EmbeddingRows:
    space: EmbeddingSpace
    frame_ids: list[str]
    object_ids: list[str]
    vectors: np.ndarray  # (N, D) float32
    #: position of the block in chunk.embeddings, and of each row in the block
    block: int = 0
    rows: list[int] = field(default_factory=list)

    def take(self, keep: Sequence[int]) -> EmbeddingRows:
        """These rows at positions ``keep``."""
        return EmbeddingRows(
            self.space,
            [self.frame_ids[j] for j in keep],
            [self.object_ids[j] for j in keep],
            np.ascontiguousarray(self.vectors[list(keep)]),
            self.block,
            [self.rows[j] for j in keep] if self.rows else list(keep),
        )


@dataclass
class CheckedChunk:
    frames: list[pb.Frame] = field(default_factory=list)
    labels: list[pb.FrameLabels] = field(default_factory=list)
    inferences: list[pb.FrameInference] = field(default_factory=list)
    embeddings: list[EmbeddingRows] = field(default_factory=list)
    columns: CheckedColumns | None = None
    rejections: list[Rejection] = field(default_factory=list)
    #: class id of each position of a probability vector (the project's classes, in order)
    ontology: list[int] = field(default_factory=list)
    #: metadata keys the chunk writes first in its dataset, with their types
    key_types: dict[str, str] = field(default_factory=dict)

    @property
    def embedding_count(self) -> int:
        return sum(len(e.frame_ids) for e in self.embeddings)

    def frame_ids(self) -> list[str]:
        """The ids of the frames the valid items belong to, in order of first appearance."""
        ids: dict[str, None] = {}
        ids.update(dict.fromkeys(f.frame_id for f in self.frames))
        if self.columns is not None:
            c = self.columns
            rows = np.flatnonzero(c.frame_ok | c.label_ok | c.inference_ok).tolist()
            ids.update(dict.fromkeys(c.frame_ids[r] for r in rows))
        ids.update(dict.fromkeys(lab.frame_id for lab in self.labels))
        ids.update(dict.fromkeys(inf.frame_id for inf in self.inferences))
        for e in self.embeddings:
            ids.update(dict.fromkeys(e.frame_ids))
        return list(ids)

    def subset(self, frame_ids: set[str]) -> CheckedChunk:
        """The valid items of ``frame_ids`` only (every item of a frame goes with it)."""
        columns = None
        if self.columns is not None:
            c = self.columns
            mask = np.fromiter((fid in frame_ids for fid in c.frame_ids), dtype=bool, count=len(c.frame_ids))
            columns = replace(
                c, frame_ok=c.frame_ok & mask, label_ok=c.label_ok & mask, inference_ok=c.inference_ok & mask
            )
        embeddings = []
        for e in self.embeddings:
            keep = [j for j, fid in enumerate(e.frame_ids) if fid in frame_ids]
            if keep:
                embeddings.append(e.take(keep))
        return CheckedChunk(
            frames=[f for f in self.frames if f.frame_id in frame_ids],
            labels=[lab for lab in self.labels if lab.frame_id in frame_ids],
            inferences=[inf for inf in self.inferences if inf.frame_id in frame_ids],
            embeddings=embeddings,
            columns=columns,
            ontology=self.ontology,
            key_types=self.key_types,
        )

    def reject_frames(self, chunk: pb.UploadChunk, frame_ids: set[str], make: Callable[[str, str], ShoalError]) -> None:
        """Turns every valid item of ``frame_ids`` into a rejection (``make(field, frame_id)``
        gives its error); ``chunk`` is the chunk these items were checked from."""
        for kind, items, name in (
            ("frame", chunk.frames, "frames"),
            ("labels", chunk.labels, "labels"),
            ("inference", chunk.inferences, "inferences"),
        ):
            # a valid item's frame id is unique in its list (items sharing an id are all refused)
            mine = {"frame": self.frames, "labels": self.labels, "inference": self.inferences}[kind]
            valid = {x.frame_id for x in mine} & frame_ids
            for i, item in enumerate(items):
                if item.frame_id in valid:
                    self.rejections.append(Rejection(kind, i, 0, make(f"chunk.{name}[{i}]", item.frame_id)))
        for e in self.embeddings:
            for j, fid in enumerate(e.frame_ids):
                if fid in frame_ids:
                    row = e.rows[j] if e.rows else j
                    err = make(f"chunk.embeddings[{e.block}].frame_ids[{row}]", fid)
                    self.rejections.append(Rejection("embedding", e.block, row, err))
        if self.columns is not None:
            c = self.columns
            for r, fid in enumerate(c.frame_ids):
                if fid not in frame_ids:
                    continue
                for kind, ok in (("frame", c.frame_ok), ("labels", c.label_ok), ("inference", c.inference_ok)):
                    if ok[r]:
                        self.rejections.append(Rejection(kind, r, 0, make(f"chunk.columns.frame_ids[{r}]", fid), True))

    def counts(self) -> tuple[int, int, int, int]:
        """Valid frames, labels, inferences and embeddings, in that order."""
        f, lab, inf = self.columns.counts() if self.columns is not None else (0, 0, 0)
        return len(self.frames) + f, len(self.labels) + lab, len(self.inferences) + inf, self.embedding_count


def referenced_frames(chunk: pb.UploadChunk) -> set[str]:
    """Frame ids that labels and inferences of a chunk refer to but the chunk does not carry."""
    own = {f.frame_id for f in chunk.frames}
    refs = {lab.frame_id for lab in chunk.labels} | {inf.frame_id for inf in chunk.inferences}
    if chunk.HasField("columns"):
        brings, stored = column_frame_ids(chunk.columns)
        own.update(brings)
        refs.update(stored)
    for block in chunk.embeddings:
        refs.update(block.frame_ids)
    return refs - own


def check_chunk_size(chunk: pb.UploadChunk, max_items: int) -> None:
    """Refuses chunks too large to be one event."""
    sizes = {
        "chunk.frames": len(chunk.frames),
        "chunk.labels": len(chunk.labels),
        "chunk.inferences": len(chunk.inferences),
        "chunk.embeddings": sum(len(b.frame_ids) for b in chunk.embeddings),
        "chunk.columns.frame_ids": len(chunk.columns.frame_ids),
    }
    if len(chunk.inference_set) > MAX_ID_LENGTH:
        raise InvalidArgument(f"is longer than {MAX_ID_LENGTH} characters", field="chunk.inference_set")
    for name, n in sizes.items():
        if n > max_items:
            raise InvalidArgument(
                f"{n} items is more than the {max_items} a chunk may carry; split the upload into smaller chunks",
                field=name,
            )


def check_chunk(chunk: pb.UploadChunk, ctx: Context) -> CheckedChunk:
    """The chunk's valid items, and a rejection for each invalid one."""
    out = CheckedChunk(ontology=[c.id for c in ctx.project.classes])
    ds = ctx.dataset.name
    dims: dict[str, tuple[int, int]] = dict(ctx.known_frames)
    durations: dict[str, float] = dict(ctx.known_durations)
    types = KeyTypes(ctx.key_types)

    counts = Counter(f.frame_id for f in chunk.frames)
    for i, frame in enumerate(chunk.frames):
        where = f"chunk.frames[{i}]"
        try:
            _check_frame(frame, ctx, where, types)
            if counts[frame.frame_id] > 1:
                raise InvalidArgument(
                    f"frame id {frame.frame_id!r} appears {counts[frame.frame_id]} times in one chunk",
                    field=f"{where}.frame_id",
                )
        except ShoalError as err:
            out.rejections.append(Rejection("frame", i, 0, _at(err, ds, frame.frame_id)))
            continue
        out.frames.append(frame)
        dims[frame.frame_id] = (frame.width, frame.height)
        durations[frame.frame_id] = frame.duration_seconds
        for key, value in frame.metadata.items():
            types.learn(key, VALUE_TYPES[value.WhichOneof("kind")])

    if chunk.HasField("columns"):
        out.columns = check_columns(
            chunk.columns,
            ctx,
            taken=set(counts),
            dims=dims,
            record_sizes=bool(chunk.labels or chunk.inferences or chunk.embeddings),
            rejections=out.rejections,
            make_rejection=Rejection,
            inference_set=ctx.inference_set is not None,
            key_types=types,
        )
    out.key_types = types.new

    counts = Counter(lab.frame_id for lab in chunk.labels)
    for i, labels in enumerate(chunk.labels):
        where = f"chunk.labels[{i}]"
        try:
            if counts[labels.frame_id] > 1:
                raise InvalidArgument(
                    f"labels for frame {shown(labels.frame_id)} appear {counts[labels.frame_id]} times in one chunk",
                    field=f"{where}.frame_id",
                )
            checked = _check_labels(labels, ctx, dims, where, durations)
        except ShoalError as err:
            out.rejections.append(Rejection("labels", i, 0, _at(err, ds, labels.frame_id)))
            continue
        out.labels.append(checked)

    if chunk.inferences:
        counts = Counter(inf.frame_id for inf in chunk.inferences)
        summing = ctx.project.task_type != "MULTI_LABEL"
        probs_ok = _probabilities_ok(chunk.inferences, len(ctx.project.classes), summing=summing)
        for i, inference in enumerate(chunk.inferences):
            where = f"chunk.inferences[{i}]"
            try:
                if ctx.inference_set is None:
                    raise InvalidArgument("inferences need chunk.inference_set", field="chunk.inference_set")
                if counts[inference.frame_id] > 1:
                    raise InvalidArgument(
                        f"inference for frame {shown(inference.frame_id)} appears {counts[inference.frame_id]} times",
                        field=f"{where}.frame_id",
                    )
                checked_inference = _check_inference(inference, ctx, dims, where, probs_ok=bool(probs_ok[i]),
                                                     durations=durations)  # fmt: skip
            except ShoalError as err:
                out.rejections.append(Rejection("inference", i, 0, _at(err, ds, inference.frame_id)))
                continue
            out.inferences.append(checked_inference)

    for b, block in enumerate(chunk.embeddings):
        _check_block(block, b, ctx, dims, out)
    return out


def _at(err: ShoalError, dataset: str, frame_id: str, object_id: str = "") -> ShoalError:
    if err.datapoint is None:
        err.datapoint = Datapoint(dataset, frame_id, object_id)
    return err


def _check_id(value: str, where: str, what: str) -> None:
    if not value:
        raise InvalidArgument(f"{what} is empty", field=where)
    if not _ID_RE.match(value):
        raise InvalidArgument(f"{what} must be 1 to {MAX_ID_LENGTH} characters without control characters", field=where)


def _check_value(v: common_pb2.Value, where: str) -> None:
    kind = v.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument("value is not set", field=where)
    if kind == "number_value" and not math.isfinite(v.number_value):
        raise InvalidArgument(f"must be finite, got {v.number_value}", field=where)
    if kind == "string_value" and len(v.string_value) > MAX_TEXT:
        raise InvalidArgument(f"is longer than {MAX_TEXT} characters", field=where)
    if kind == "timestamp_value":
        _check_time(v.timestamp_value, where)


def _check_time(ts: object, where: str) -> None:
    problem = time_problem(ts.seconds, ts.nanos, where)  # type: ignore[attr-defined]
    if problem is not None:
        raise problem


def _check_map(values: Mapping[str, common_pb2.Value], where: str) -> None:
    if len(values) > MAX_METADATA_KEYS:
        raise InvalidArgument(f"{len(values)} keys is more than {MAX_METADATA_KEYS}", field=where)
    for key, value in values.items():
        if not _KEY_RE.match(key):
            raise InvalidArgument(f"key {shown(key)} must match {_KEY_RE.pattern}", field=where)
        _check_value(value, f"{where}[{key!r}]")


def _check_frame(frame: pb.Frame, ctx: Context, where: str, types: KeyTypes | None = None) -> None:
    _check_id(frame.frame_id, f"{where}.frame_id", "frame id")
    if frame.split and frame.split not in ctx.dataset.splits:
        raise InvalidArgument(
            f"split {shown(frame.split)} is not one of dataset {ctx.dataset.name!r}'s splits "
            f"({', '.join(ctx.dataset.splits) or 'none declared'})",
            field=f"{where}.split",
        )
    if frame.width < 0 or frame.height < 0:
        raise InvalidArgument(f"image size {frame.width}x{frame.height} is negative", field=f"{where}.width")
    check_frame_scene(frame, ctx.project.task_type, where)
    if len(frame.media_uri) > MAX_TEXT:
        raise InvalidArgument(f"is longer than {MAX_TEXT} characters", field=f"{where}.media_uri")
    if frame.HasField("capture_time"):
        _check_time(frame.capture_time, f"{where}.capture_time")
    _check_map(frame.metadata, f"{where}.metadata")
    if types is not None:
        for key, value in frame.metadata.items():
            conflict = types.conflict(
                key, VALUE_TYPES[value.WhichOneof("kind")], ctx.dataset.name, f"{where}.metadata[{key!r}]"
            )
            if conflict is not None:
                raise conflict


def _frame_size(frame_id: str, dims: Mapping[str, tuple[int, int]], where: str) -> tuple[int, int]:
    if frame_id not in dims:
        raise InvalidArgument(
            f"frame {frame_id!r} is not in this chunk nor stored before; upload the frame first", field=where
        )
    return dims[frame_id]


def _check_object_identity(
    obj: pb.LabelObject | pb.PredictedObject, seen: set[str], classes: Mapping[int, int], where: str
) -> None:
    """An object's id is valid and unique in its frame, and its class is in the ontology."""
    _check_id(obj.object_id, f"{where}.object_id", "object id")
    if obj.object_id in seen:
        raise InvalidArgument(f"object id {obj.object_id!r} appears twice", field=f"{where}.object_id")
    seen.add(obj.object_id)
    if obj.class_id not in classes:
        raise InvalidArgument(f"unknown class id {obj.class_id}", field=f"{where}.class_id")


def _check_object_shape(
    obj: pb.LabelObject | pb.PredictedObject,
    task: str,
    size: tuple[int, int],
    cls: ClassDef | None,
    where: str,
    *,
    predicted: bool,
) -> None:
    """An object's shape as its project's task has it: a cuboid, a box with its mask, polygons or
    keypoints (``check_shape``), or a box (required of a prediction, optional on a label)."""
    if task == "CUBOIDS_3D":
        check_cuboid(obj, where)
    elif obj.HasField("cuboid"):
        raise InvalidArgument(f"only a CUBOIDS_3D project's objects have a cuboid, not {task}'s",
                              field=f"{where}.cuboid")  # fmt: skip
    elif task in OBJECT_TASKS:
        check_shape(obj, task, size, cls, where, predicted=predicted)
    elif predicted or obj.HasField("box"):
        check_box(obj.box, size, f"{where}.box", predicted=predicted)


def _check_labels(
    labels: pb.FrameLabels,
    ctx: Context,
    dims: Mapping[str, tuple[int, int]],
    where: str,
    durations: Mapping[str, float] | None = None,
) -> pb.FrameLabels:
    """The labels as written: a copy completed with its objects' shapes (``check_shape``) when
    the project's objects have masks or keypoints, else ``labels`` itself."""
    _check_id(labels.frame_id, f"{where}.frame_id", "frame id")
    labels = _completed(labels, ctx)
    size = _frame_size(labels.frame_id, dims, f"{where}.frame_id")
    classes = ctx.classes
    task = ctx.project.task_type
    if task == "CLASSIFICATION":
        if not labels.HasField("class_id"):
            raise InvalidArgument("a classification label needs class_id", field=f"{where}.class_id")
        if labels.objects:
            raise InvalidArgument("a classification project takes no objects", field=f"{where}.objects")
    if task == "MULTI_LABEL":
        if labels.HasField("class_id"):
            raise InvalidArgument(
                "a multi-label project labels a frame with class_ids (its classes, none or several)",
                field=f"{where}.class_id",
            )
        if labels.objects:
            raise InvalidArgument("a multi-label project takes no objects", field=f"{where}.objects")
        seen_classes: set[int] = set()
        for j, cid in enumerate(labels.class_ids):
            if cid not in classes:
                raise InvalidArgument(f"unknown class id {cid}", field=f"{where}.class_ids[{j}]")
            if cid in seen_classes:
                raise InvalidArgument(f"class id {cid} appears twice", field=f"{where}.class_ids[{j}]")
            seen_classes.add(cid)
    elif labels.class_ids:
        raise InvalidArgument(
            f"only a multi-label project's labels have class_ids, not {task}'s", field=f"{where}.class_ids"
        )
    elif labels.HasField("class_id") and task in OBJECT_TASKS:
        raise InvalidArgument(f"a {task} project labels objects, not frames", field=f"{where}.class_id")
    if task == "SOUND_EVENTS":
        for name, given in (("class_id", labels.HasField("class_id")), ("objects", bool(labels.objects))):
            if given:
                raise InvalidArgument(f"a sound-event project labels a clip's events, not {name}",
                                      field=f"{where}.{name}")  # fmt: skip
        check_events(list(labels.events), classes, (durations or {}).get(labels.frame_id), where, predicted=False)
    elif labels.events:
        raise InvalidArgument(
            f"only a SOUND_EVENTS project's labels have events, not {task}'s", field=f"{where}.events"
        )
    if task == "SEGMENTATION":
        for name, given in (("class_id", labels.HasField("class_id")), ("objects", bool(labels.objects))):
            if given:
                raise InvalidArgument(
                    f"a segmentation project labels a frame's pixels (segmentation), not {name}",
                    field=f"{where}.{name}",
                )
        check_map(labels, size, ctx.class_defs, ctx.media, where)
    elif labels.HasField("segmentation"):
        raise InvalidArgument(f"only a SEGMENTATION project's labels have a class map, not {task}'s",
                              field=f"{where}.segmentation")  # fmt: skip
    if labels.HasField("class_id") and labels.class_id not in classes:
        raise InvalidArgument(f"unknown class id {labels.class_id}", field=f"{where}.class_id")
    problem = provenance_problem(labels.provenance, f"{where}.provenance")
    if problem is not None:
        raise problem
    seen: set[str] = set()
    defs = ctx.class_defs
    for j, obj in enumerate(labels.objects):
        ow = f"{where}.objects[{j}]"
        try:
            _check_object_identity(obj, seen, classes, ow)
            _check_object_shape(obj, task, size, defs.get(obj.class_id), ow, predicted=False)
            _check_map(obj.attributes, f"{ow}.attributes")
            if len(obj.annotation_uri) > MAX_TEXT:
                raise InvalidArgument(f"is longer than {MAX_TEXT} characters", field=f"{ow}.annotation_uri")
        except ShoalError as err:
            raise _at(err, ctx.dataset.name, labels.frame_id, obj.object_id) from None
    return labels


def _completed(item: _Item, ctx: Context) -> _Item:
    """A copy of ``item`` when check_shape will complete its objects: the chunk as received is
    what an event carries, and is checked again by the consumer as it came."""
    if ctx.project.task_type == "SEGMENTATION":
        if not item.HasField("segmentation"):
            return item
    elif ctx.project.task_type not in SHAPED_TASKS or not item.objects:
        return item
    copy = type(item)()
    copy.CopyFrom(item)
    return copy


def _check_probabilities(probs: list[float] | np.ndarray, k: int, where: str, *, summing: bool = True) -> None:
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (k,):
        raise InvalidArgument(f"has {p.size} probabilities for {k} classes", field=where)
    problem = probability_problem(p, where, summing=summing)
    if problem is not None:
        raise problem


def _probabilities_ok(inferences: Sequence[pb.FrameInference], k: int, *, summing: bool = True) -> np.ndarray:
    """Per inference: its frame-level probabilities pass every check (computed for the whole
    chunk at once; only failures are looked at one by one, to name what is wrong)."""
    n = len(inferences)
    lengths = np.fromiter((len(inf.class_probabilities) for inf in inferences), dtype=np.int64, count=n)
    ok = lengths == k
    if k == 0 or not ok.any():
        return ok
    rows = np.flatnonzero(ok)
    p = np.array([inferences[int(i)].class_probabilities for i in rows], dtype=np.float64).reshape(len(rows), k)
    ok[rows] = probability_rows_ok(p, summing=summing)
    return ok


def _check_inference(
    inf: pb.FrameInference,
    ctx: Context,
    dims: Mapping[str, tuple[int, int]],
    where: str,
    *,
    probs_ok: bool = False,
    durations: Mapping[str, float] | None = None,
) -> pb.FrameInference:
    """The inference as written (see :func:`_check_labels`)."""
    _check_id(inf.frame_id, f"{where}.frame_id", "frame id")
    inf = _completed(inf, ctx)
    size = _frame_size(inf.frame_id, dims, f"{where}.frame_id")
    k = len(ctx.project.classes)
    task = ctx.project.task_type
    if task in ("CLASSIFICATION", "MULTI_LABEL"):
        if not probs_ok:
            summing = task != "MULTI_LABEL"
            _check_probabilities(inf.class_probabilities, k, f"{where}.class_probabilities", summing=summing)
        if inf.objects:
            raise InvalidArgument(f"a {task} project takes no predicted objects", field=f"{where}.objects")
    elif task == "SEGMENTATION":
        for name, given in (("class_probabilities", bool(inf.class_probabilities)), ("objects", bool(inf.objects))):
            if given:
                raise InvalidArgument(
                    f"a segmentation project predicts a frame's pixels (segmentation, probabilities_uri), not {name}",
                    field=f"{where}.{name}",
                )
        check_map(inf, size, ctx.class_defs, ctx.media, where)
    elif task == "SOUND_EVENTS":
        for name, given in (("class_probabilities", bool(inf.class_probabilities)), ("objects", bool(inf.objects))):
            if given:
                raise InvalidArgument(f"a sound-event project predicts a clip's events, not {name}",
                                      field=f"{where}.{name}")  # fmt: skip
        check_events(list(inf.events), ctx.classes, (durations or {}).get(inf.frame_id), where, predicted=True)
    elif inf.class_probabilities and not probs_ok:
        _check_probabilities(inf.class_probabilities, k, f"{where}.class_probabilities")
    if task != "SOUND_EVENTS" and inf.events:
        raise InvalidArgument(f"only a SOUND_EVENTS project's predictions have events, not {task}'s",
                              field=f"{where}.events")  # fmt: skip
    if task != "SEGMENTATION" and (inf.HasField("segmentation") or inf.probabilities_uri):
        name = "segmentation" if inf.HasField("segmentation") else "probabilities_uri"
        raise InvalidArgument(f"only a SEGMENTATION project's predictions have {name}, not {task}'s",
                              field=f"{where}.{name}")  # fmt: skip
    classes = ctx.classes
    defs = ctx.class_defs
    seen: set[str] = set()
    for j, obj in enumerate(inf.objects):
        ow = f"{where}.objects[{j}]"
        try:
            _check_object_identity(obj, seen, classes, ow)
            if not (math.isfinite(obj.score) and 0.0 <= obj.score <= 1.0):
                raise InvalidArgument(f"score {obj.score} must lie in [0, 1]", field=f"{ow}.score")
            _check_object_shape(obj, task, size, defs.get(obj.class_id), ow, predicted=True)
            if obj.class_probabilities:
                _check_probabilities(obj.class_probabilities, k, f"{ow}.class_probabilities")
        except ShoalError as err:
            raise _at(err, ctx.dataset.name, inf.frame_id, obj.object_id) from None
    return inf


def _check_block(
    block: pb.EmbeddingBlock, b: int, ctx: Context, dims: Mapping[str, tuple[int, int]], out: CheckedChunk
) -> None:
    where = f"chunk.embeddings[{b}]"
    ds = ctx.dataset.name

    def reject_all(err: ShoalError) -> None:
        for r, fid in enumerate(block.frame_ids or [""]):
            out.rejections.append(Rejection("embedding", b, r, _at(err, ds, fid)))

    space = ctx.spaces.get(block.space)
    if space is None:
        known = ", ".join(ctx.spaces) or "none"
        reject_all(
            InvalidArgument(
                f"unknown embedding space {shown(block.space)} (project has: {known})", field=f"{where}.space"
            )
        )
        return
    n = len(block.frame_ids)
    if space.level == "OBJECT" and len(block.object_ids) != n:
        reject_all(
            InvalidArgument(
                f"space {space.name!r} holds object embeddings: give one object id per row", field=f"{where}.object_ids"
            )
        )
        return
    if space.level == "FRAME" and block.object_ids:
        reject_all(
            InvalidArgument(
                f"space {space.name!r} holds frame embeddings: leave object_ids empty", field=f"{where}.object_ids"
            )
        )
        return
    expected = n * space.dimension * 4
    if len(block.vectors_f32) != expected:
        got = len(block.vectors_f32) / 4 / max(n, 1)
        reject_all(
            InvalidArgument(
                f"wrong embedding dimension: {n} rows need {n} x {space.dimension} float32 values, got {got:g} per row",
                field=f"{where}.vectors_f32",
            )
        )
        return
    vectors = np.frombuffer(block.vectors_f32, dtype="<f4").reshape(n, space.dimension)
    finite = np.isfinite(vectors).all(axis=1)
    object_ids = list(block.object_ids) if block.object_ids else [""] * n
    keys = Counter(zip(block.frame_ids, object_ids, strict=True))
    keep: list[int] = []
    for r in range(n):
        fid, oid = block.frame_ids[r], object_ids[r]
        try:
            _check_id(fid, f"{where}.frame_ids[{r}]", "frame id")
            if oid:
                _check_id(oid, f"{where}.object_ids[{r}]", "object id")
            _frame_size(fid, dims, f"{where}.frame_ids[{r}]")
            if keys[(fid, oid)] > 1:
                raise InvalidArgument(
                    "this embedding appears more than once in the block", field=f"{where}.frame_ids[{r}]"
                )
            if not finite[r]:
                raise InvalidArgument("embedding has NaN or infinite values", field=f"{where}.vectors_f32[{r}]")
        except ShoalError as err:
            out.rejections.append(Rejection("embedding", b, r, _at(err, ds, fid, oid)))
            continue
        keep.append(r)
    if keep:
        idx = np.asarray(keep)
        out.embeddings.append(
            EmbeddingRows(
                space=space,
                frame_ids=[block.frame_ids[r] for r in keep],
                object_ids=[object_ids[r] for r in keep],
                vectors=np.ascontiguousarray(vectors[idx]),
                block=b,
                rows=keep,
            )
        )
