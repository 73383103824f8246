"""Typed objects and the upload machinery of the Python SDK (used through :class:`shoal.client.Client`).

Uploads are built from columns: frame ids, then optional per-frame arrays (class ids, class
probabilities, embeddings per space) and per-frame objects (boxes, masks, keypoints). They are cut into chunks,
sent over several streams (each retried on UNAVAILABLE with the same upload id and chunk
indices, so a retry writes nothing twice) and can be waited for until written.
"""

from __future__ import annotations

import importlib
import io
import logging
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
import numpy as np

from shoal.common import classmaps, masks
from shoal.common.pagination import pages
from shoal.common.v1 import common_pb2
from shoal.ingest.v1 import ingest_pb2 as pb

log = logging.getLogger(__name__)

#: items of one kind a chunk may carry (the server's default SHOAL_INGEST_MAX_CHUNK_ITEMS)
CHUNK_ITEMS = 10_000
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})


@dataclass(frozen=True)
class Box:
    """Pixels, origin top-left."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Cuboid:
    """A 3-D box in metres, in its frame's coordinate frame: centre, size (width across, length
    along the heading, height up) and heading, as ``yaw`` (radians counter-clockwise about z) or as
    ``rotation``, a unit quaternion (w, x, y, z); optionally its velocity (vx, vy), an attribute and,
    for labels, the points of the frame's cloud inside it (nuScenes' ``num_lidar_pts``)."""

    x: float
    y: float
    z: float
    width: float
    length: float
    height: float
    yaw: float = 0.0
    rotation: Sequence[float] | None = None
    velocity: Sequence[float] | None = None
    attribute: str = ""
    num_points: int | None = None


#: an object's mask: COCO's compact run-length string (``bytes`` or ``str``, as
#: ``pycocotools.mask.encode`` gives it), a COCO RLE dict (``{"size": [h, w], "counts": ...}``, the
#: counts compact or a list of run lengths), or a 2-D boolean array of the frame's height x width
MaskLike = bytes | str | Mapping[str, Any] | np.ndarray


@dataclass(frozen=True)
class LabeledObject:
    """A labeled object. Detection and keypoint projects give its box; instance segmentation its
    ``mask`` or ``polygons`` (each a flat x0, y0, x1, y1, ... list), the box then being optional;
    keypoint projects its ``keypoints``, one (x, y, visibility) row per keypoint of its class
    (visibility 0 not labeled, 1 hidden, 2 visible)."""

    object_id: str
    class_id: int
    box: Box | None = None
    is_crowd: bool = False
    mask: MaskLike | None = None
    polygons: Sequence[Sequence[float]] | None = None
    keypoints: Sequence[Sequence[float]] | np.ndarray | None = None
    #: cuboid projects: the object's 3-D box
    cuboid: Cuboid | None = None


@dataclass(frozen=True)
class PredictedObject:
    """A predicted object: as :class:`LabeledObject`, with a score; its keypoints are (x, y) or
    (x, y, score) rows."""

    object_id: str
    class_id: int
    score: float
    box: Box | None = None
    mask: MaskLike | None = None
    polygons: Sequence[Sequence[float]] | None = None
    keypoints: Sequence[Sequence[float]] | np.ndarray | None = None
    cuboid: Cuboid | None = None


@dataclass
class UploadResult:
    upload_id: str
    chunks: int
    accepted: dict[str, int] = field(default_factory=dict)


class UploadFailed(Exception):
    """An upload that could not be completed: the message says what and how far it got;
    ``status`` is its last UploadStatus, when known."""

    def __init__(self, message: str, status: Any = None) -> None:
        super().__init__(message)
        self.status = status


class JobFailed(Exception):
    """A job that ended FAILED or CANCELLED, or did not end in time; ``job`` is its last state."""

    def __init__(self, message: str, job: Any) -> None:
        super().__init__(message)
        self.job = job


def _kind(v: Any) -> str:
    """The metadata type of a Python value: bool, number, timestamp, or string (anything else)."""
    if isinstance(v, bool | np.bool_):
        return "bool"
    if isinstance(v, int | float | np.integer | np.floating):
        return "number"
    if isinstance(v, datetime):
        return "timestamp"
    return "string"


def _value(v: Any) -> common_pb2.Value:
    kind = _kind(v)
    if kind == "bool":
        return common_pb2.Value(bool_value=bool(v))
    if kind == "number":
        return common_pb2.Value(number_value=float(v))
    if kind == "timestamp":
        out = common_pb2.Value()
        out.timestamp_value.FromDatetime(v)
        return out
    return common_pb2.Value(string_value=str(v))


def _box(b: Box) -> pb.Box:
    return pb.Box(x=b.x, y=b.y, width=b.width, height=b.height)


def _mask(m: MaskLike) -> pb.Mask:
    if isinstance(m, np.ndarray):
        if m.ndim != 2:
            raise ValueError(f"a mask array is 2-D (height x width), got shape {m.shape}")
        return pb.Mask(counts=masks.to_string(masks.encode(m.astype(bool))))
    if isinstance(m, Mapping):
        counts = m.get("counts")
        if isinstance(counts, list):
            return pb.Mask(runs=[int(v) for v in counts])
        m = counts  # type: ignore[assignment]
    if isinstance(m, str):
        return pb.Mask(counts=m.encode("ascii"))
    if isinstance(m, bytes):
        return pb.Mask(counts=m)
    raise TypeError(f"a mask is COCO's compact string, an RLE dict or a 2-D array, not {type(m).__name__}")


#: a frame's class map: a (height, width) array of class ids, or the URI of a PNG label image
MapLike = np.ndarray | str


def _map(msg: pb.SegmentationMap, m: MapLike) -> None:
    if isinstance(m, str):
        msg.uri = m
        return
    values, runs = classmaps.encode(np.asarray(m))
    msg.runs.classes.extend(values.tolist())
    msg.runs.lengths.extend(runs.tolist())


def _cuboid(c: Cuboid) -> pb.Cuboid:
    out = pb.Cuboid(x=c.x, y=c.y, z=c.z, width=c.width, length=c.length, height=c.height, yaw=c.yaw,
                    attribute=c.attribute)  # fmt: skip
    if c.rotation is not None:
        w, x, y, z = (float(v) for v in c.rotation)
        out.rotation.CopyFrom(pb.Quaternion(w=w, x=x, y=y, z=z))
    if c.velocity is not None:
        out.vx, out.vy = (float(v) for v in c.velocity)
    if c.num_points is not None:
        out.num_points = int(c.num_points)
    return out


def _shape(msg: pb.LabelObject | pb.PredictedObject, o: LabeledObject | PredictedObject) -> None:
    """Sets ``msg``'s box, mask, polygons, keypoints and cuboid from ``o``."""
    if o.cuboid is not None:
        msg.cuboid.CopyFrom(_cuboid(o.cuboid))
    if o.box is not None:
        msg.box.CopyFrom(_box(o.box))
    if o.mask is not None:
        msg.mask.CopyFrom(_mask(o.mask))
    for polygon in o.polygons or ():
        msg.polygons.add(points=[float(v) for v in polygon])
    if o.keypoints is not None:
        predicted = isinstance(o, PredictedObject)
        for row in np.asarray(o.keypoints, dtype=np.float64).reshape(len(o.keypoints), -1):
            kp = msg.keypoints.add(x=float(row[0]), y=float(row[1]))
            if len(row) > 2:
                if predicted:
                    kp.score = float(row[2])
                else:
                    kp.visibility = int(row[2])


def _scene(frame: pb.Frame, cols: UploadColumns, i: int) -> None:
    """Sets a point cloud's coordinate frame, pose and cameras, and an audio clip's length and rate."""
    if cols.coordinate_frames is not None:
        frame.coordinate_frame = pb.CoordinateFrame.Value(f"COORDINATE_FRAME_{cols.coordinate_frames[i].upper()}")
    if cols.ego_poses is not None and cols.ego_poses[i] is not None:
        x, y, z, qw, qx, qy, qz = (float(v) for v in cols.ego_poses[i])  # type: ignore[union-attr]
        frame.ego_pose.CopyFrom(pb.Pose(x=x, y=y, z=z, rotation=pb.Quaternion(w=qw, x=qx, y=qy, z=qz)))
    for name, uri in (cols.cameras[i] if cols.cameras is not None else {}).items():
        frame.cameras.add(name=name, uri=uri)
    if cols.durations is not None:
        frame.duration_seconds = float(cols.durations[i])
    if cols.sample_rates is not None:
        frame.sample_rate = int(cols.sample_rates[i])


@dataclass
class UploadColumns:
    """Everything to upload, column by column; every sequence has one entry per frame."""

    frame_ids: Sequence[str]
    splits: Sequence[str] | None = None
    media_uris: Sequence[str] | None = None
    media_type: int = pb.MEDIA_TYPE_IMAGE
    sizes: Sequence[tuple[int, int]] | np.ndarray | None = None
    metadata: Sequence[Mapping[str, Any]] | None = None
    #: when each frame was captured (timezone-aware datetimes; None for unknown)
    capture_times: Sequence[datetime | None] | None = None
    class_ids: Sequence[int] | np.ndarray | None = None
    #: multi-label projects: each frame's classes (none, one or several)
    class_sets: Sequence[Sequence[int]] | None = None
    #: point clouds: each frame's coordinate frame ("ego" or "world"), its ego pose (x, y, z, qw, qx, qy,
    #: qz) and its camera images (name -> URI)
    coordinate_frames: Sequence[str] | None = None
    ego_poses: Sequence[Sequence[float] | None] | None = None
    cameras: Sequence[Mapping[str, str]] | None = None
    #: audio clips: each clip's duration (seconds) and sample rate (Hz)
    durations: Sequence[float] | None = None
    sample_rates: Sequence[int] | None = None
    #: sound-event projects: each clip's labeled events, (onset, offset, class id) rows
    label_events: Sequence[Sequence[Sequence[float]]] | None = None
    #: segmentation projects: each frame's labeled class map, a (height, width) array of class ids
    #: (65535: no class) or the URI of a PNG label image
    label_maps: Sequence[MapLike] | None = None
    objects: Sequence[Sequence[LabeledObject]] | None = None
    provenance: pb.Provenance | None = None
    inference_set: str = ""
    probabilities: np.ndarray | None = None
    predictions: Sequence[Sequence[PredictedObject]] | None = None
    #: segmentation projects: each frame's predicted class map (as label_maps, every pixel a class)
    predicted_maps: Sequence[MapLike] | None = None
    #: segmentation projects, optional: each frame's .npy of per-pixel probabilities (classes, h, w)
    probability_uris: Sequence[str] | None = None
    #: sound-event projects: each clip's predicted events, (onset, offset, class id, score) rows
    predicted_events: Sequence[Sequence[Sequence[float]]] | None = None
    embeddings: Mapping[str, np.ndarray] | None = None
    #: frames already uploaded: send only labels / inferences / embeddings for them
    skip_frames: bool = False

    def __post_init__(self) -> None:
        n = len(self.frame_ids)
        for name in (
            "splits",
            "media_uris",
            "sizes",
            "metadata",
            "capture_times",
            "class_ids",
            "class_sets",
            "objects",
            "probabilities",
            "predictions",
            "label_maps",
            "predicted_maps",
            "probability_uris",
            "coordinate_frames",
            "ego_poses",
            "cameras",
            "durations",
            "sample_rates",
            "label_events",
            "predicted_events",
        ):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} frame ids")
        for space, arr in (self.embeddings or {}).items():
            if np.ndim(arr) != 2 or len(arr) != n:
                raise ValueError(f"embeddings[{space!r}] must be an (N, D) array with N = {n}, got {np.shape(arr)}")
        predicted = (self.probabilities, self.predictions, self.predicted_maps, self.probability_uris,
                     self.predicted_events)  # fmt: skip
        if any(p is not None for p in predicted) and not self.inference_set:
            raise ValueError("predictions need inference_set")

    @property
    def columnar(self) -> bool:
        """Whether the upload travels as columnar blocks (``UploadChunk.columns``): anything but
        per-frame objects does, and metadata whose keys keep one type."""
        per_frame = (self.objects, self.predictions, self.class_sets, self.label_maps, self.predicted_maps,
                     self.coordinate_frames, self.ego_poses, self.cameras, self.durations, self.sample_rates,
                     self.label_events, self.predicted_events)  # fmt: skip
        if any(v is not None for v in per_frame):
            return False
        return self.metadata is None or _metadata_columns(self.metadata) is not None

    def auto_chunk_size(self, target_bytes: int = 4 << 20, largest: int = 5000) -> int:
        """Frames per chunk: about ``target_bytes`` per chunk (well under the event size limit), at
        most ``largest`` (columnar chunks), or 1,000 when frames travel one message each."""
        if self.label_maps is not None or self.predicted_maps is not None:
            return 100  # a map of 512 x 512 pixels is some 10 KB of runs
        if not self.columnar:
            return 1000
        # the server takes at most CHUNK_ITEMS items of a kind per chunk: one vector per frame and space
        largest = min(largest, CHUNK_ITEMS // max(1, len(self.embeddings or {})))
        per_frame = 64 + sum(len(str(v)) for v in self.frame_ids[:1])
        if self.probabilities is not None:
            per_frame += 4 * int(np.shape(self.probabilities)[1])
        per_frame += sum(4 * int(np.shape(v)[1]) for v in (self.embeddings or {}).values())
        per_frame += 48 * len(self.metadata[0]) if self.metadata else 0
        return int(max(100, min(largest, target_bytes // per_frame)))

    def chunks(self, size: int) -> Iterator[pb.UploadChunk]:
        if self.columnar:
            yield from self._column_chunks(size)
            return
        n = len(self.frame_ids)
        probs = None if self.probabilities is None else np.asarray(self.probabilities, dtype=np.float32)
        embs = {k: np.ascontiguousarray(v, dtype="<f4") for k, v in (self.embeddings or {}).items()}
        for start in range(0, n, size):
            stop = min(start + size, n)
            chunk = pb.UploadChunk(inference_set=self.inference_set)
            ids = list(self.frame_ids[start:stop])
            for i in range(start, stop):
                fid = self.frame_ids[i]
                if not self.skip_frames:
                    frame = chunk.frames.add(frame_id=fid, media_type=self.media_type)
                    if self.splits is not None:
                        frame.split = self.splits[i]
                    if self.media_uris is not None:
                        frame.media_uri = self.media_uris[i]
                    if self.sizes is not None:
                        frame.width, frame.height = int(self.sizes[i][0]), int(self.sizes[i][1])
                    if self.metadata is not None:
                        for key, value in self.metadata[i].items():
                            frame.metadata[key].CopyFrom(_value(value))
                    if self.capture_times is not None and self.capture_times[i] is not None:
                        frame.capture_time.FromDatetime(self.capture_times[i])
                    _scene(frame, self, i)
                if any(v is not None for v in (self.class_ids, self.objects, self.class_sets, self.label_maps,
                                               self.label_events)):  # fmt: skip
                    labels = chunk.labels.add(frame_id=fid)
                    for onset, offset, cls in self.label_events[i] if self.label_events is not None else ():
                        labels.events.add(onset=float(onset), offset=float(offset), class_id=int(cls))
                    if self.label_maps is not None:
                        _map(labels.segmentation, self.label_maps[i])
                    if self.class_ids is not None:
                        labels.class_id = int(self.class_ids[i])
                    if self.class_sets is not None:
                        labels.class_ids.extend(int(c) for c in self.class_sets[i])
                    for o in self.objects[i] if self.objects is not None else ():
                        _shape(labels.objects.add(object_id=o.object_id, class_id=o.class_id, is_crowd=o.is_crowd), o)
                    if self.provenance is not None:
                        labels.provenance.CopyFrom(self.provenance)
                if any(v is not None for v in (probs, self.predictions, self.predicted_maps, self.probability_uris,
                                               self.predicted_events)):  # fmt: skip
                    inf = chunk.inferences.add(frame_id=fid)
                    for onset, offset, cls, score in (
                        self.predicted_events[i] if self.predicted_events is not None else ()
                    ):
                        inf.events.add(onset=float(onset), offset=float(offset), class_id=int(cls), score=float(score))
                    if self.predicted_maps is not None:
                        _map(inf.segmentation, self.predicted_maps[i])
                    if self.probability_uris is not None:
                        inf.probabilities_uri = self.probability_uris[i]
                    if probs is not None:
                        inf.class_probabilities.extend(probs[i].tolist())
                    for p in self.predictions[i] if self.predictions is not None else ():
                        _shape(inf.objects.add(object_id=p.object_id, class_id=p.class_id, score=p.score), p)
            for space, arr in embs.items():
                chunk.embeddings.add(space=space, frame_ids=ids, vectors_f32=arr[start:stop].tobytes())
            yield chunk

    def _column_chunks(self, size: int) -> Iterator[pb.UploadChunk]:
        n = len(self.frame_ids)
        ids_all = list(self.frame_ids)
        probs = None if self.probabilities is None else np.ascontiguousarray(self.probabilities, dtype="<f4")
        classes = None if self.class_ids is None else np.asarray(self.class_ids, dtype="<i4")
        sizes = None if self.sizes is None else np.asarray(self.sizes, dtype="<i4").reshape(n, 2)
        meta = _metadata_columns(self.metadata) if self.metadata is not None else {}
        captured = None
        if self.capture_times is not None:
            captured = np.array([_NO_TIME if t is None else int(t.timestamp() * 1000) for t in self.capture_times],
                                dtype="<i8")  # fmt: skip
        embs = {k: np.ascontiguousarray(v, dtype="<f4") for k, v in (self.embeddings or {}).items()}
        for start in range(0, n, size):
            stop = min(start + size, n)
            ids = ids_all[start:stop]
            chunk = pb.UploadChunk(inference_set=self.inference_set)
            cols = chunk.columns
            cols.frame_ids.extend(ids)
            if self.skip_frames:
                cols.frames_stored = True
            else:
                cols.media_type = self.media_type
                if self.splits is not None:
                    cols.splits.extend(self.splits[start:stop])
                if self.media_uris is not None:
                    cols.media_uris.extend(self.media_uris[start:stop])
                if captured is not None:
                    cols.capture_times_ms_i64 = captured[start:stop].tobytes()
                if sizes is not None:
                    cols.widths_i32 = np.ascontiguousarray(sizes[start:stop, 0]).tobytes()
                    cols.heights_i32 = np.ascontiguousarray(sizes[start:stop, 1]).tobytes()
                for key, (kind, values) in meta.items():
                    mc = cols.metadata.add(key=key)
                    if kind == "strings":
                        mc.strings.values.extend(values[start:stop])
                    else:
                        setattr(mc, kind, values[start:stop].tobytes())
            if classes is not None:
                cols.label_class_ids_i32 = classes[start:stop].tobytes()
                if self.provenance is not None:
                    cols.label_provenance.CopyFrom(self.provenance)
            if probs is not None:
                cols.probabilities_f32 = probs[start:stop].tobytes()
            for space, arr in embs.items():
                chunk.embeddings.add(space=space, frame_ids=ids, vectors_f32=arr[start:stop].tobytes())
            yield chunk


_NO_TIME = np.iinfo(np.int64).min
#: the MetadataColumn field of each metadata type
_COLUMN_OF = {"bool": "bools_u8", "number": "numbers_f64", "timestamp": "timestamps_ms_i64", "string": "strings"}


def _metadata_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, Any]] | None:
    """Per-row metadata as typed columns (key -> (kind, values)); None when a key mixes types."""
    kinds: dict[str, str] = {}
    for row in rows:
        for key, v in row.items():
            if v is None:
                continue
            kind = _COLUMN_OF[_kind(v)]
            if kinds.setdefault(key, kind) != kind:
                return None
    out: dict[str, tuple[str, Any]] = {}
    for key, kind in kinds.items():
        if kind == "strings":
            if any(row.get(key) is None for row in rows):
                return None  # a string column has no "no value"
            out[key] = (kind, [str(row[key]) for row in rows])
        elif kind == "numbers_f64":
            out[key] = (kind, np.array([row.get(key, np.nan) for row in rows], dtype="<f8"))
        elif kind == "bools_u8":
            out[key] = (kind, np.array([255 if row.get(key) is None else int(row[key]) for row in rows], dtype="u1"))
        else:
            out[key] = (
                kind,
                np.array(
                    [_NO_TIME if row.get(key) is None else int(row[key].timestamp() * 1000) for row in rows],
                    dtype="<i8",
                ),
            )
    return out


def upload(
    stub: Any,
    project: str,
    dataset: str,
    columns: UploadColumns,
    *,
    chunk_size: int | None = None,
    chunks_per_stream: int = 16,
    upload_id: str | None = None,
    deadline_seconds: float = 600.0,
    progress: bool = True,
) -> UploadResult:
    """Sends ``columns``; returns once every chunk is durably in Kafka. Retries UNAVAILABLE
    within ``deadline_seconds``; raises :class:`UploadFailed` otherwise, or the ``grpc.RpcError`` of
    a refused chunk (INVALID_ARGUMENT naming the field and the frame). Chunks sent before a failure
    stay accepted and the upload is INCOMPLETE: call again with the same ``upload_id`` once the
    data is fixed (chunks sent twice are written once)."""
    from tqdm import tqdm

    upload_id = upload_id or f"up-{uuid.uuid4().hex}"
    n = len(columns.frame_ids)
    chunk_size = chunk_size or columns.auto_chunk_size()
    total = (n + chunk_size - 1) // chunk_size
    deadline = time.monotonic() + deadline_seconds
    accepted = {"frames": 0, "labels": 0, "inferences": 0, "embeddings": 0}
    bar = tqdm(total=n, unit="frame", desc=f"upload {dataset}", disable=not progress, leave=False)
    chunks = columns.chunks(chunk_size)
    index = 0
    try:
        while index < total:
            batch = []
            for _ in range(chunks_per_stream):
                chunk = next(chunks, None)
                if chunk is None:
                    break
                batch.append(chunk)
            requests = [
                pb.UploadRequest(project=project, dataset=dataset, upload_id=upload_id, chunk_index=index + j,
                                 total_chunks=total, chunk=c)
                for j, c in enumerate(batch)
            ]  # fmt: skip
            resp = _send(stub, requests, deadline, first=index)
            for k in accepted:
                accepted[k] += getattr(resp.accepted, k)
            index += len(batch)
            bar.update(min(len(batch) * chunk_size, n - bar.n))
    finally:
        bar.close()
    return UploadResult(upload_id=upload_id, chunks=total, accepted=accepted)


def _send(stub: Any, requests: list[pb.UploadRequest], deadline: float, *, first: int) -> Any:
    delay = 0.5
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UploadFailed(f"chunks from {first} not accepted before the deadline; retry with the same upload id")
        try:
            return stub.Upload(iter(requests), timeout=remaining)
        except grpc.RpcError as err:
            if err.code() not in RETRYABLE:
                raise
            log.warning(
                "upload chunks %d..%d: %s; retrying in %.1fs", first, first + len(requests) - 1, err.code().name, delay
            )
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 10.0)


def wait_for_upload(stub: Any, project: str, upload_id: str, *, timeout: float = 600.0, poll: float = 0.5) -> Any:
    """Polls GetUploadStatus until every chunk is processed; returns the final status
    (COMPLETED or COMPLETED_WITH_ERRORS). Raises :class:`UploadFailed` when the upload is
    INCOMPLETE (a stream ended before all of its chunks arrived: the message names the missing
    chunks; send them again with the same upload id) or not written within ``timeout``."""
    deadline = time.monotonic() + timeout
    done = (pb.UPLOAD_STATE_COMPLETED, pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS)
    while True:
        try:
            status = stub.GetUploadStatus(
                pb.GetUploadStatusRequest(project=project, upload_id=upload_id), timeout=30
            ).status
            if status.state in done:
                return status
            if status.state == pb.UPLOAD_STATE_INCOMPLETE:
                why = status.errors[0].detail.message if status.errors else "chunks are missing"
                raise UploadFailed(
                    f"upload {upload_id} is INCOMPLETE ({status.chunks_processed} of {status.chunks_total} chunks "
                    f"processed): {why}",
                    status=status,
                )
        except grpc.RpcError as err:
            if err.code() not in RETRYABLE and err.code() != grpc.StatusCode.NOT_FOUND:
                raise
        if time.monotonic() > deadline:
            raise UploadFailed(f"upload {upload_id} was not written within {timeout:.0f}s")
        time.sleep(poll)


#: seconds before a job's state is first asked again; it doubles up to the caller's ``poll``
FIRST_POLL = 0.02


def wait_for_job(
    stub: Any, project: str, job_id: str, *, timeout: float = 3600.0, poll: float = 0.5, progress: bool = True
) -> Any:
    """Polls a service's GetJob (``stub``: the analysis, sampler or labeling-bridge stub) until the
    job ends (after 20 ms, then twice as long each time, up to every ``poll`` seconds), showing its
    stage and progress; returns the job when it SUCCEEDED and raises
    :class:`JobFailed` (with the job's message) when it FAILED or was CANCELLED."""
    from tqdm import tqdm

    # the stub's messages live beside it: shoal.<service>.v1.<service>_pb2
    module = importlib.import_module(type(stub).__module__.removesuffix("_grpc"))
    ended = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED)
    deadline = time.monotonic() + timeout
    bar = tqdm(total=100, unit="%", desc=f"job {job_id}", disable=not progress, leave=False)
    job = None
    wait = min(poll, FIRST_POLL)
    try:
        while True:
            try:
                job = stub.GetJob(module.GetJobRequest(project=project, job_id=job_id), timeout=30).job
            except grpc.RpcError as err:
                if err.code() not in RETRYABLE:
                    raise
            if job is not None:
                bar.set_description(f"job {job_id}: {job.stage or common_pb2.JobState.Name(job.state)}")
                bar.update(round(100 * job.progress) - bar.n)
                if job.state in ended:
                    break
            if time.monotonic() > deadline:
                raise JobFailed(f"job {job_id} did not end within {timeout:.0f}s", job)
            time.sleep(wait)
            wait = min(poll, wait * 2)  # a short job is seen done soon; a long one is asked every ``poll`` s
    finally:
        bar.close()
    if job.state != common_pb2.JOB_STATE_SUCCEEDED:
        state = common_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")
        raise JobFailed(f"job {job_id} {state}" + (f": {job.message}" if job.message else ""), job)
    return job


def export_job_result(stub: Any, project: str, job_id: str, *, batch_rows: int = 0, timeout: float = 3600.0) -> Any:
    """Every frame's result of a finished job (label issues, the neighbour job's scores, the map's
    points) as a pyarrow Table, in frame id order, read from the analysis service's ExportJobResult
    stream as it arrives (``table.column("self_confidence").to_numpy()`` gives numpy)."""
    import pyarrow as pa

    from shoal.analysis.v1 import analysis_pb2

    chunks = stub.ExportJobResult(
        analysis_pb2.ExportJobResultRequest(project=project, job_id=job_id, batch_rows=batch_rows), timeout=timeout
    )
    with pa.ipc.open_stream(_StreamFile(c.arrow for c in chunks)) as reader:
        return reader.read_all()


# -- standing campaigns: the same choice on the client's side ------------------------------------


@dataclass
class CampaignScore:
    """What a standing campaign would do with a batch of frames (:func:`score_for_campaign`).

    ``frame_ids`` is the batch as given; ``order`` the same frames in the order they were judged,
    the first ``judged`` of which were judged (the rest came after the budget would be spent).
    ``kept`` are the winners, in the order they would be kept; ``reasons`` says, for every judged
    frame, "kept", "filtered", "below_threshold" or "near_kept"; ``similarity`` is each judged frame's
    cosine similarity to its nearest seed. ``campaign`` is the ``StandingCampaign`` message the rule
    and sample were read from."""

    frame_ids: list[str]
    order: list[str]
    judged: int
    kept: list[str]
    reasons: dict[str, str]
    similarity: dict[str, float]
    campaign: Any

    @property
    def kept_mask(self) -> np.ndarray:
        """Whether each frame of ``frame_ids`` (as given) is kept."""
        kept = set(self.kept)
        return np.asarray([f in kept for f in self.frame_ids], dtype=bool)


def standing_judge(stub: Any, project: str, name: str, *, page_size: int = 1000) -> tuple[Any, Any]:
    """The rule, seeds and kept vectors of a standing campaign, read with ``GetStandingCampaign``
    (``stub``: the sampler stub), as a :class:`shoal.sampler.standing_rule.Judge`, and the campaign
    message. The kept frames are read page by page, in the order they were kept."""
    from shoal.sampler.standing_rule import Judge, Rule
    from shoal.sampler.v1 import sampler_pb2 as spb

    kept: list[np.ndarray] = []
    seeds: np.ndarray | None = None
    campaign = None
    for resp in pages(lambda page: stub.GetStandingCampaign(spb.GetStandingCampaignRequest(
            project=project, name=name, include_vectors=True, page=page), timeout=60), page_size):  # fmt: skip
        if campaign is None:
            campaign = resp.campaign
            seeds = np.asarray([s.vector.values for s in resp.seeds], dtype=np.float32)
        kept += [np.asarray(it.vector.values, dtype=np.float32) for it in resp.items]
    assert campaign is not None and seeds is not None
    rule = Rule(threshold=campaign.similarity_threshold, min_distance=campaign.min_distance, budget=campaign.budget)
    return Judge(rule, seeds, np.asarray(kept, dtype=np.float32) if kept else None), campaign


def score_for_campaign(
    stub: Any,
    project: str,
    name: str,
    frame_ids: Sequence[str],
    embeddings: np.ndarray,
    *,
    passes: Sequence[bool] | np.ndarray | None = None,
    chunk_size: int | None = None,
) -> CampaignScore:
    """Chooses locally, from a batch of local embeddings, exactly the frames standing campaign
    ``name`` would keep if the batch arrived now: its seeds, threshold, diversity rule and budget,
    and the vectors of the frames it kept so far, are read from the sampler (``stub``); the
    embeddings never leave this machine. Upload only the winners (``kept``) and the campaign keeps
    every one of them, unless other frames reached it first.

    Parameters
    ----------
    frame_ids : N str, embeddings : (N, D) float
        The batch; the embeddings as they would be uploaded (they are judged as float32, as stored).
    passes : (N,) bool, optional
        Whether each frame passes the campaign's filter (the filter reads the frame's stored fields,
        which only the server has); all do when omitted.
    chunk_size : int, optional
        The server judges the frames of one upload chunk by frame id, chunk after chunk: give the
        chunk size the batch would be uploaded with to judge it the same way; default: one chunk.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    ids = [str(f) for f in frame_ids]
    if x.ndim != 2 or len(x) != len(ids):
        raise ValueError(f"expected ({len(ids)}, D) embeddings for {len(ids)} frame ids, got shape {x.shape}")
    if len(set(ids)) != len(ids):
        raise ValueError("frame ids must be unique within the batch")
    ok = np.ones(len(ids), dtype=bool) if passes is None else np.asarray(passes, dtype=bool)
    if ok.shape != (len(ids),):
        raise ValueError(f"passes must have shape ({len(ids)},), got {ok.shape}")
    from shoal.sampler.v1 import sampler_pb2 as spb

    judge, campaign = standing_judge(stub, project, name)
    if x.shape[1] != judge.dimension:
        raise ValueError(f"the campaign's space is {judge.dimension}-d, the embeddings are {x.shape[1]}-d")
    size = chunk_size or max(len(ids), 1)
    order = [i for start in range(0, len(ids), size) for i in sorted(range(start, min(start + size, len(ids))),
                                                                      key=lambda i: ids[i])]  # fmt: skip
    out = CampaignScore(frame_ids=ids, order=[ids[i] for i in order], judged=0, kept=[], reasons={}, similarity={},
                        campaign=campaign)  # fmt: skip
    if campaign.state != spb.STANDING_CAMPAIGN_STATE_FILLING:
        return out  # a full or stopped campaign keeps nothing more
    v = judge.judge(x[order], ok[order])
    out.judged = v.judged
    out.kept = [out.order[i] for i in v.kept_indices.tolist()]
    out.reasons = dict(zip(out.order[: v.judged], v.reason, strict=True))
    out.similarity = dict(zip(out.order[: v.judged], v.similarity.tolist(), strict=True))
    return out


class _StreamFile(io.RawIOBase):
    """A readable file over an iterator of byte strings (a stream's messages); ``read(n)`` returns
    ``n`` bytes unless the stream ends first, as Arrow's reader expects."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._rest = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if not self._rest:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._rest = memoryview(piece)
            n = min(len(view) - filled, len(self._rest))
            view[filled : filled + n] = self._rest[:n]
            self._rest = self._rest[n:]
            filled += n
        return filled
