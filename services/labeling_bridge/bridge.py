"""The round trip: requests are recorded, sent to the platform as tasks, and the annotations that
come back (by webhook or by polling) are published as upload events, which the ingest consumer writes
as new label versions.

- **Recording** is idempotent: a request id is recorded once, and each frame of it once, whatever
  path (gRPC, a Kafka event, a redelivered event) brings it again. With each frame the bridge keeps
  the label version the frame had then, to tell later whether Shoal's label moved meanwhile.
- **Sending** runs on the bridge's worker. An unreachable platform leaves the request PENDING with
  its error and the time of the next attempt (exponential backoff up to
  ``labeling_retry_max_seconds``); the platform adapter skips frames that already have a task, so
  an attempt cut off half-way creates every task exactly once when it is made again.
- **Receiving** converts each annotation to a label, checks the frame's label in Shoal has not
  changed since it was sent (otherwise the item is a CONFLICT and nothing is written), checks it
  fits the ontology and the frame as ingest will (a class, or a keypoint of a class, that does not
  exist, a box, polygon or point outside the image, a mask of another size: the item is FAILED, its
  error naming the annotation, task, frame and region, and the rest of the batch is written), and
  publishes it as an upload event whose id derives from the annotation and its revision, so a
  repeated webhook, a poll that sees it again or a crash before it was marked applied write the
  same label version, never a second one.

Task types: classification (a class), multi-label (a set of classes), 2-D detection (boxes),
instance segmentation (objects with polygons or a COCO run-length mask), keypoints (objects with
a box and one point per keypoint of their class, those not placed unlabeled), semantic
segmentation (a class map, sent as one region per class and put together again from the regions
that come back: pixels in no region unlabeled, a pixel that regions of two classes paint refused)
and sound events (an audio clip's intervals, each with a class, checked to lie within the clip).
3-D cuboid projects are refused (:data:`CUBOIDS_REFUSAL`): Label Studio cannot show a point cloud or
draw a cuboid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from shoal.common import classmaps, masks, telemetry, uploads
from shoal.common.boxes import check_box
from shoal.common.data.projects import ClassDef, ProjectCatalog
from shoal.common.data.segmentation import latest_maps_sql
from shoal.common.errors import FailedPrecondition, InvalidArgument, ShoalError
from shoal.common.stores.metrics import MetricsStore
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.labeling_bridge import state as st
from shoal.labeling_bridge.platforms import (
    Box,
    ClassRegion,
    Instance,
    Keypoint,
    LabelingPlatform,
    Labels,
    PlatformAnnotation,
    PlatformError,
    PlatformUnavailable,
    ProjectRef,
    ProjectSpec,
    SoundEvent,
    TaskSpec,
    TaskType,
    seconds,
)

log = logging.getLogger(__name__)

#: frames per import call, so progress is recorded as it goes
SEND_CHUNK = 500
#: the poll reads back this far before its cursor: annotations saved at the same moment may commit
#: out of order
POLL_OVERLAP = dt.timedelta(seconds=5)
FIRST_RETRY_SECONDS = 1.0
PUBLISH_TIMEOUT_SECONDS = 60.0
#: multi-label pre-annotations from an inference set: the classes scored at or above this (the
#: threshold the multi-label metrics take by default)
MULTI_LABEL_THRESHOLD = 0.5
#: sound-event pre-annotations from an inference set: the events scored at or above this (the score
#: from which the sound-event label issues trust a prediction)
SOUND_EVENT_THRESHOLD = 0.5
#: how far past a clip's duration an event may end (as ingest allows), in seconds
DURATION_SLACK = 1e-6
#: Shoal's task types the bridge sends, as the platforms name them
TASK_TYPES: dict[str, TaskType] = {
    "CLASSIFICATION": "classification",
    "MULTI_LABEL": "multi_label",
    "OBJECT_DETECTION_2D": "detection",
    "INSTANCE_SEGMENTATION": "instance_segmentation",
    "KEYPOINTS": "keypoints",
    "SEGMENTATION": "segmentation",
    "SOUND_EVENTS": "sound_events",
}
#: why a 3-D cuboid project is not sent (Label Studio 1.23, the open-source edition the bridge drives)
CUBOIDS_REFUSAL = (
    "Label Studio cannot label 3-D cuboids: it has no point-cloud view and no cuboid tool (its labeling"
    " interfaces show images, audio, video, text, HTML, tables and time series; its LiDAR interface is a"
    " Label Studio Enterprise and Starter Cloud feature), so a CUBOIDS_3D project's frames cannot be sent"
    " to it. Instead, read the frames to fix with QueryDetectionLabelIssues (or ExportJobResult) of the"
    " project's label-issues job and their current cuboids with ListLabelVersions, correct them in a"
    " point-cloud labeling tool (e.g. CVAT), and upload the corrected cuboids as new label versions"
    " (Upload, with their provenance)"
)


@dataclass(frozen=True)
class Media:
    """A frame as the annotator is shown it: its media URI, image size (pixels; 0 unknown) and clip
    duration (seconds; 0 unknown)."""

    uri: str = ""
    width: int = 0
    height: int = 0
    duration: float = 0.0


@dataclass
class ApplyCounts:
    read: int = 0
    synced: int = 0
    conflicts: int = 0
    failed: int = 0
    unchanged: int = 0

    def add(self, other: ApplyCounts) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))


def task_type_of(project_task_type: str) -> TaskType:
    """The platform task type of a Shoal project's; FailedPrecondition for 3-D cuboids (see
    :data:`CUBOIDS_REFUSAL`), InvalidArgument for any other task type the bridge does not send."""
    if project_task_type == "CUBOIDS_3D":
        raise FailedPrecondition(CUBOIDS_REFUSAL, field="project")
    if project_task_type not in TASK_TYPES:
        raise InvalidArgument(
            f"the labeling bridge sends {', '.join(TASK_TYPES)} projects, not {project_task_type}", field="project"
        )
    return TASK_TYPES[project_task_type]


def platform_project_name(project: str, dataset: str) -> str:
    return f"Shoal {project}/{dataset}"


def upload_id_of(platform: str, annotation_id: str, updated: dt.datetime | None) -> str:
    """The same annotation revision always becomes the same upload (and label version)."""
    stamp = updated.isoformat() if updated else ""
    return "lb-" + hashlib.sha256(f"{platform}\x1f{annotation_id}\x1f{stamp}".encode()).hexdigest()[:24]


def latest_labels(
    metrics: MetricsStore, project: str, dataset: str, frame_ids: Sequence[str]
) -> dict[str, tuple[str, str, str, dt.datetime]]:
    """frame id -> (label version, source, author, time) of its latest label version."""
    rows = metrics.query_ids(
        "SELECT frame_id, argMax(tuple(label_version, source, author, version_time), (version_time, label_version))"
        " FROM label_versions WHERE project = {p:String} AND dataset = {d:String} AND frame_id IN {f:Array(String)}"
        " GROUP BY frame_id",
        {"p": project, "d": dataset},
        "f",
        frame_ids,
    )
    return {str(f): (str(v[0]), str(v[1]), str(v[2]), v[3]) for f, v in rows}


class Bridge:
    def __init__(
        self,
        metrics: MetricsStore,
        projects: ProjectCatalog,
        publish: Callable[[pb.UploadEvent], Future[Any]],
        platform: Callable[[], LabelingPlatform | None],
        *,
        webhook_url: str = "",
        webhook_secret: str = "",
        retry_max_seconds: float = 300.0,
    ) -> None:
        self.metrics = metrics
        self.state = st.BridgeState(metrics)
        self.projects = projects
        #: publishes an upload event on the uploads topic (:func:`shoal.common.uploads.publish`)
        self.publish = publish
        self._platform_factory = platform
        self._platform: LabelingPlatform | None = None
        self.webhook_url = webhook_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.retry_max_seconds = retry_max_seconds
        self._lock = threading.RLock()
        self._refs: dict[tuple[str, str], ProjectRef] = {}

    # -- the platform -----------------------------------------------------------------------
    def platform(self) -> LabelingPlatform | None:
        if self._platform is None:
            self._platform = self._platform_factory()
        return self._platform

    def close(self) -> None:
        if self._platform is not None:
            self._platform.close()

    def project_ref(self, platform: LabelingPlatform, project: str, dataset: str) -> ProjectRef:
        """The platform project of a Shoal dataset, with the project's classes, keypoints and class
        colours (cached; made again when the ontology grew or a colour changed)."""
        p = self.projects.get(project)
        ordered = sorted(p.classes, key=lambda c: c.id)
        classes = [c.name for c in ordered]
        keypoints = list(dict.fromkeys(k for c in ordered for k in c.keypoints))
        colors = {c.name: c.color for c in ordered if c.color}
        key = (project, dataset)
        ref = self._refs.get(key)
        if ref is None or not (
            set(classes) <= set(ref.spec.classes)
            and set(keypoints) <= set(ref.spec.keypoints)
            and all(ref.spec.colors.get(c) == v for c, v in colors.items())
        ):
            spec = ProjectSpec(
                name=platform_project_name(project, dataset),
                task_type=task_type_of(p.task_type),
                classes=classes,
                description=f"Frames of the Shoal dataset {project}/{dataset}",
                keypoints=keypoints,
                colors=colors,
            )
            ref = platform.ensure_project(spec)
            if self.webhook_url:
                headers = {"X-Shoal-Webhook-Token": self.webhook_secret} if self.webhook_secret else {}
                platform.register_webhook(
                    ref, f"{self.webhook_url}/webhooks/{platform.name}/{project}", headers=headers
                )
            self._refs[key] = ref
        return ref

    # -- recording --------------------------------------------------------------------------
    def record(
        self,
        request: st.Request,
        frame_ids: Sequence[str],
        reasons: Sequence[str] | None = None,
        *,
        first_position: int = 0,
        missing: Sequence[str] = (),
    ) -> tuple[st.Request, bool]:
        """Records a request (or one part of it) and its frames, each once. ``missing`` frames (not
        in the dataset) are recorded FAILED. Returns the request as stored and whether its id was
        recorded before."""
        with self._lock:
            known = self.state.request(request.project, request.request_id)
            frames = list(dict.fromkeys(frame_ids))
            reason_of = dict(zip(frame_ids, reasons, strict=True)) if reasons else {}
            have, _ = self.state.items(request.project, request_id=request.request_id, frames=(request.dataset, frames))
            seen = {i.frame_id for i in have}
            base = latest_labels(self.metrics, request.project, request.dataset, frames)
            gone = set(missing)
            new = []
            for pos, f in enumerate(frames):
                if f in seen:
                    continue
                reason = reason_of.get(f) or request.reason
                item = st.Item(
                    request.project,
                    request.request_id,
                    request.dataset,
                    f,
                    first_position + pos,
                    reason,
                    base_label_version=base.get(f, ("",))[0],
                )
                if f in gone:
                    item = st.with_state(item, st.FAILED, error=f"frame {f!r} is not in dataset {request.dataset!r}")
                new.append(item)
            self.state.put_items(new)
            stored = known or request
            if new or known is None:
                total = sum(self.state.counts(request.project, request.request_id).values())
                pending = any(i.state == st.PENDING for i in new)
                stored = replace(
                    stored,
                    frames=total,
                    state=st.PENDING if pending else stored.state,
                    next_attempt_time=st._now() if pending else stored.next_attempt_time,
                )
                self.state.put_request(stored)
            return stored, known is not None

    # -- sending ----------------------------------------------------------------------------
    def send_due(self) -> int:
        """Makes an attempt at every request that is due; returns how many were attempted."""
        due = self.state.due_requests(st._now())
        for r in due:
            self.send(r)
        return len(due)

    def send(self, r: st.Request) -> st.Request:
        platform = self.platform()
        if platform is None:
            return self._retry_later(
                r,
                "no labeling platform is configured: set SHOAL_LABEL_STUDIO_URL and "
                "SHOAL_LABEL_STUDIO_TOKEN on the labeling bridge",
            )
        try:
            ref = self.project_ref(platform, r.project, r.dataset)
            r = replace(r, platform_project_id=ref.project_id, platform_project_url=ref.url)
            pending, _ = self.state.items(r.project, request_id=r.request_id, states=[st.PENDING])
            for start in range(0, len(pending), SEND_CHUNK):
                chunk = pending[start : start + SEND_CHUNK]
                specs = self.task_specs(r, chunk, ref)
                ids = platform.import_tasks(ref, list(specs.values())) if specs else {}
                telemetry.LABELING_TASKS.labels(platform.name, "sent").inc(len(ids))
                self.state.put_items(
                    [
                        st.with_state(i, st.SENT, task_id=ids[i.external_id])
                        if i.external_id in ids
                        else st.with_state(i, st.FAILED, error="the platform made no task for this frame")
                        for i in chunk
                        if i.external_id in specs
                    ]
                )
        except PlatformUnavailable as exc:
            return self._retry_later(r, f"{platform.name} is unreachable: {exc}")
        except (PlatformError, ShoalError, ValueError) as exc:
            msg = exc.describe() if isinstance(exc, ShoalError) else str(exc)
            log.warning("labeling request %s/%s failed: %s", r.project, r.request_id, msg)
            with self._lock:
                pending, _ = self.state.items(r.project, request_id=r.request_id, states=[st.PENDING])
                self.state.put_items([st.with_state(i, st.FAILED, error=msg) for i in pending])
                return self._update(r, state=st.FAILED, attempts=r.attempts + 1, last_error=msg)
        with self._lock:  # frames recorded for the request meanwhile keep it pending
            counts = self.state.counts(r.project, r.request_id)
            if counts.get(st.PENDING, 0):
                r = self._update(r, attempts=r.attempts + 1, next_attempt_time=st._now())
                return r
            if counts.get(st.FAILED, 0) and not any(counts.get(s, 0) for s in st.ITEM_STATES if s != st.FAILED):
                r = self._update(r, state=st.FAILED, attempts=r.attempts + 1,
                                 last_error="no frame of the request could be sent")  # fmt: skip
            else:
                r = self._update(r, state=st.SENT, attempts=r.attempts + 1, last_error="")
        log.info(
            "labeling request %s/%s: every frame has a task in %s project %s",
            r.project,
            r.request_id,
            platform.name,
            r.platform_project_id,
        )
        return r

    def _update(self, r: st.Request, **changes: Any) -> st.Request:
        """Writes ``changes`` onto the request as stored now (a part recorded since ``r`` was read
        keeps its frames count), with the platform project ``r`` reached; call under the lock."""
        current = self.state.request(r.project, r.request_id) or r
        updated = replace(
            current,
            platform_project_id=r.platform_project_id or current.platform_project_id,
            platform_project_url=r.platform_project_url or current.platform_project_url,
            **changes,
        )
        self.state.put_request(updated)
        return updated

    def _retry_later(self, r: st.Request, error: str) -> st.Request:
        wait = min(self.retry_max_seconds, FIRST_RETRY_SECONDS * 2 ** min(r.attempts, 20))
        with self._lock:
            r = self._update(r, attempts=r.attempts + 1, last_error=error,
                             next_attempt_time=st._now() + dt.timedelta(seconds=wait))  # fmt: skip
        log.warning(
            "labeling request %s/%s stays pending (attempt %d): %s; next attempt in %.0fs",
            r.project,
            r.request_id,
            r.attempts,
            error,
            wait,
        )
        return r

    def task_specs(self, r: st.Request, items: Sequence[st.Item], ref: ProjectRef) -> dict[str, TaskSpec]:
        """A task per item whose frame has media; the others are marked FAILED here."""
        frames = [i.frame_id for i in items]
        media = self._media(r.project, r.dataset, frames)
        prelabels, source = self._prelabels(r, frames, ref.spec.task_type, ref.spec.classes, media)
        out: dict[str, TaskSpec] = {}
        broken = []
        for i in items:
            m = media.get(i.frame_id, Media())
            if not m.uri:
                broken.append(st.with_state(i, st.FAILED, error="the frame has no media_uri to show the annotator"))
                continue
            out[i.external_id] = TaskSpec(
                external_id=i.external_id,
                media_url=m.uri,
                reason=i.reason or r.reason,
                prelabels=prelabels.get(i.frame_id),
                prelabel_source=source,
                image_width=m.width or None,
                image_height=m.height or None,
                meta={"project": r.project, "request_id": r.request_id, "source": r.source},
            )
        self.state.put_items(broken)
        return out

    def _media(self, project: str, dataset: str, frames: Sequence[str]) -> dict[str, Media]:
        rows = self.metrics.query(
            "SELECT frame_id, media_uri, width, height, duration_seconds FROM frames FINAL WHERE project = {p:String}"
            " AND dataset = {d:String} AND frame_id IN {f:Array(String)}",
            {"p": project, "d": dataset, "f": sorted(set(frames))},
        ).rows
        return {str(f): Media(str(u), int(w), int(h), float(s or 0.0)) for f, u, w, h, s in rows}

    def _prelabels(
        self,
        r: st.Request,
        frames: Sequence[str],
        task_type: str,
        classes: Sequence[str],
        media: dict[str, Media],
    ) -> tuple[dict[str, Labels], str]:
        """The predictions of the request's inference set, or else the frames' current labels."""
        ontology = self.projects.get(r.project).classes
        # the classes the platform project offers
        by_id = {c.id: c for c in ontology if c.name in classes}
        params = {"p": r.project, "d": r.dataset, "f": sorted(set(frames)), "s": r.preannotation_inference_set}
        out: dict[str, Labels] = {}

        if task_type in ("classification", "multi_label"):
            column = "class_id" if task_type == "classification" else "class_ids"
            if r.preannotation_inference_set:
                sql = (
                    "SELECT frame_id, pred_class, probs FROM inferences FINAL WHERE project = {p:String}"
                    " AND inference_set = {s:String} AND frame_id IN {f:Array(String)}"
                )
            else:
                sql = (
                    f"SELECT frame_id, argMax({column}, (version_time, label_version)), CAST([] AS Array(Float32))"
                    " FROM label_versions WHERE project = {p:String} AND dataset = {d:String}"
                    " AND frame_id IN {f:Array(String)} GROUP BY frame_id"
                )
            for f, given, scores in self.metrics.query(sql, params).rows:
                if task_type == "classification":
                    if given is not None and int(given) in by_id:
                        out[str(f)] = Labels(class_name=by_id[int(given)].name)
                    continue
                if r.preannotation_inference_set:
                    # a score per class in the ontology's order (fewer when scored before the ontology grew)
                    chosen = [c.id for c, p in zip(ontology, scores, strict=False) if p >= MULTI_LABEL_THRESHOLD]
                else:
                    chosen = [int(c) for c in given]
                names = tuple(by_id[c].name for c in chosen if c in by_id)
                if names:
                    out[str(f)] = Labels(class_names=names)
        elif task_type == "segmentation":
            if r.preannotation_inference_set:
                sql = (
                    "SELECT frame_id, seg_classes, seg_runs FROM inferences FINAL WHERE project = {p:String}"
                    " AND inference_set = {s:String} AND frame_id IN {f:Array(String)}"
                )
            else:
                sql = latest_maps_sql("frame_id IN {f:Array(String)}")
            for f, values, runs in self.metrics.query(sql, {**params, "project": r.project, "dataset": r.dataset}).rows:
                m = media.get(str(f), Media())
                regions = class_regions(values, runs, m.width, m.height, by_id)
                if regions:
                    out[str(f)] = Labels(class_regions=regions, image_width=m.width, image_height=m.height)
        elif task_type == "sound_events":
            if r.preannotation_inference_set:
                sql = (
                    "SELECT frame_id, ev_onsets, ev_offsets, ev_classes, ev_scores FROM inferences FINAL"
                    " WHERE project = {p:String} AND inference_set = {s:String} AND frame_id IN {f:Array(String)}"
                )
            else:
                sql = (
                    "SELECT frame_id, e.1, e.2, e.3, CAST([] AS Array(Float32)) FROM (SELECT frame_id,"
                    " argMax(tuple(ev_onsets, ev_offsets, ev_classes), (version_time, label_version)) AS e"
                    " FROM label_versions WHERE project = {p:String} AND dataset = {d:String}"
                    " AND frame_id IN {f:Array(String)} GROUP BY frame_id)"
                )
            for f, onsets, offsets, given, scores in self.metrics.query(sql, params).rows:
                events = clip_events(onsets, offsets, given, scores, by_id)
                if events:
                    out[str(f)] = Labels(events=events)
        else:
            shape = "mask, polygons, kp_x, kp_y, kp_v"
            if r.preannotation_inference_set:
                sql = (
                    f"SELECT frame_id, class_id, x, y, w, h, score, {shape} FROM predicted_objects FINAL"
                    " WHERE project = {p:String} AND inference_set = {s:String} AND frame_id IN {f:Array(String)}"
                    " ORDER BY frame_id, object_id"
                )
            else:
                sql = (
                    "SELECT o.frame_id, o.class_id, o.x, o.y, o.w, o.h, CAST(NULL AS Nullable(Float32)),"
                    " o.mask, o.polygons, o.kp_x, o.kp_y, o.kp_v"
                    f" FROM (SELECT frame_id, label_version, object_id, class_id, x, y, w, h, {shape}"
                    " FROM label_objects FINAL"
                    " WHERE project = {p:String} AND dataset = {d:String} AND frame_id IN {f:Array(String)}) AS o"
                    " INNER JOIN (SELECT frame_id, argMax(label_version, (version_time, label_version)) AS latest"
                    " FROM label_versions WHERE project = {p:String} AND dataset = {d:String}"
                    " AND frame_id IN {f:Array(String)} GROUP BY frame_id) AS l"
                    " ON l.frame_id = o.frame_id AND l.latest = o.label_version ORDER BY o.frame_id, o.object_id"
                )
            boxes: dict[str, list[Box]] = {}
            instances: dict[str, list[Instance]] = {}
            for f, c, x, y, w, h, score, mask, polygons, kx, ky, kv in self.metrics.query(sql, params).rows:
                cls = by_id.get(int(c))
                if cls is None:
                    continue
                score = None if score is None else float(score)
                if task_type == "instance_segmentation":
                    instances.setdefault(str(f), []).append(
                        Instance(
                            cls.name,
                            polygons=tuple(tuple(float(v) for v in p) for p in polygons),
                            mask=mask.encode() if isinstance(mask, str) else bytes(mask),
                            score=score,
                        )
                    )
                    continue
                # keypoint projects: the points labeled (predictions: every point), by the class's names
                points = tuple(
                    Keypoint(n, float(a), float(b)) for n, a, b, v in zip(cls.keypoints, kx, ky, kv, strict=True) if v
                )
                boxes.setdefault(str(f), []).append(
                    Box(cls.name, float(x), float(y), float(w), float(h), score, keypoints=points)
                )
            for f in boxes.keys() | instances.keys():
                m = media.get(f, Media())
                if m.width and m.height:  # objects are placed on the image by its size
                    out[f] = Labels(boxes=tuple(boxes.get(f, ())), instances=tuple(instances.get(f, ())),
                                    image_width=m.width, image_height=m.height)  # fmt: skip
        return out, (
            f"inference set {r.preannotation_inference_set}" if r.preannotation_inference_set else "current labels"
        )

    # -- receiving --------------------------------------------------------------------------
    def poll(self, project: str | None = None) -> ApplyCounts:
        """Reads the annotations of every platform project (of one Shoal project) since its cursor
        and applies them."""
        total = ApplyCounts()
        platform = self.platform()
        if platform is None:
            return total
        for proj, dataset, _platform, ppid in self.state.platform_projects():
            if project is not None and proj != project:
                continue
            ref = self.project_ref(platform, proj, dataset)
            since = self.state.cursor(proj, platform.name, ppid)
            annotations = platform.annotations_since(ref, None if since is None else since - POLL_OVERLAP)
            total.add(self.apply(proj, platform.name, annotations))
            stamps = [a.updated_at for a in annotations if a.updated_at is not None]
            if stamps and (since is None or max(stamps) > since):
                self.state.set_cursor(proj, platform.name, ppid, max(stamps))
        return total

    def apply(self, project: str, platform: str, annotations: Sequence[PlatformAnnotation]) -> ApplyCounts:
        """Applies annotations of one Shoal project: each new (annotation, revision) once."""
        counts = ApplyCounts(read=len(annotations))
        with self._lock:
            keys = [(a.annotation_id, a.updated_at or dt.datetime.fromtimestamp(0, dt.UTC)) for a in annotations]
            done = self.state.applied(project, platform, keys)
            fresh = []
            for a, (aid, upd) in zip(annotations, keys, strict=True):
                if (aid, upd.isoformat()) in done or a.external_id is None or "/" not in a.external_id:
                    counts.unchanged += 1
                else:
                    fresh.append((a, upd))
            fresh.sort(key=lambda t: t[1])  # older revisions first: the newest label ends up latest
            by_dataset: dict[str, list[tuple[PlatformAnnotation, dt.datetime]]] = {}
            for a, upd in fresh:
                by_dataset.setdefault(str(a.external_id).split("/", 1)[0], []).append((a, upd))
            for dataset, group in by_dataset.items():
                self._apply_dataset(project, platform, dataset, group, counts)
        return counts

    def _apply_dataset(
        self,
        project: str,
        platform: str,
        dataset: str,
        group: list[tuple[PlatformAnnotation, dt.datetime]],
        counts: ApplyCounts,
    ) -> None:
        """Decides each annotation's fate in order, then writes the batch: every label upload is
        published as an ordinary upload event (the ingest consumer validates, writes and records it
        like any other) and durable before anything is recorded, and the item states and applied
        marks are one insert each. A bus failure raises before anything is recorded, so
        the next poll applies the same annotations again (to the same label versions)."""
        frames = [str(a.external_id).split("/", 1)[1] for a, _ in group]
        items, _ = self.state.items(project, frames=(dataset, frames))
        by_frame: dict[str, list[st.Item]] = {}
        for i in items:
            by_frame.setdefault(i.frame_id, []).append(i)
        latest = latest_labels(self.metrics, project, dataset, frames)
        p = self.projects.get(project)
        classes = {c.name: c for c in p.classes}
        applied: list[tuple[str, dt.datetime, str]] = []
        updates: dict[tuple[str, str], st.Item] = {}  # the last state of each (request, frame)
        events: list[pb.UploadEvent] = []  # one upload of one chunk per annotation
        media = self._media(project, dataset, frames)

        def settle(mine: list[st.Item], state: str, **changes: Any) -> list[st.Item]:
            done = [st.with_state(i, state, **changes) for i in mine]
            updates.update({(i.request_id, i.frame_id): i for i in done})
            return done

        for (a, upd), frame in zip(group, frames, strict=True):
            mine = by_frame.get(frame, [])
            if not mine:
                # a task of this project that no request of Shoal's made (or made by another Shoal)
                counts.unchanged += 1
                applied.append((a.annotation_id, upd, "unknown"))
                continue
            common = {"annotation_id": a.annotation_id, "annotator": a.annotator, "annotated_time": a.updated_at,
                      "task_id": a.task_id}  # fmt: skip
            which = f"annotation {a.annotation_id} of task {a.task_id} (frame {a.external_id})"
            if a.error is not None or (a.labels is None and not a.cancelled):
                settle(mine, st.FAILED, error=f"{which}: {a.error or 'no labels'}", **common)
                counts.failed += 1
                applied.append((a.annotation_id, upd, "failed"))
                continue
            if a.cancelled:
                settle(mine, st.ANNOTATED, error="skipped by the annotator", **common)
                counts.unchanged += 1
                applied.append((a.annotation_id, upd, "skipped"))
                continue
            own = {i.base_label_version for i in mine} | {i.label_version for i in mine if i.label_version}
            now = latest.get(frame)
            if now is not None and now[0] not in own:
                version, source, author, when = now
                error = (f"the frame's label changed in Shoal after it was sent: version {version} by"
                         f" {author or source or 'unknown'} at {when}; the annotation was not written")  # fmt: skip
                settle(mine, st.CONFLICT, error=error, label_version=version, **common)
                counts.conflicts += 1
                applied.append((a.annotation_id, upd, "conflict"))
                continue
            try:
                m = media.get(frame)
                size, duration = ((m.width, m.height), m.duration or None) if m else (None, None)
                upload_id, chunk = label_upload(frame, a, p.task_type, classes, mine, size, duration=duration)
            except ShoalError as exc:
                settle(mine, st.FAILED, error=f"{which}: {exc.describe()}", **common)
                counts.failed += 1
                applied.append((a.annotation_id, upd, "failed"))
                continue
            events.append(uploads.new_event(pb.UploadEvent, project, dataset, upload_id, 0, chunk))
            version = uploads.idempotency_key(upload_id, 0)  # the label version ingest gives the chunk
            latest[frame] = (version, f"labeling:{platform}", a.annotator, upd)
            by_frame[frame] = settle(mine, st.SYNCED, error="", label_version=version, **common)
            counts.synced += 1
            applied.append((a.annotation_id, upd, "synced"))
        futures = [self.publish(event) for event in events]
        for f in futures:
            f.result(timeout=PUBLISH_TIMEOUT_SECONDS)
        self.state.put_items(list(updates.values()))
        self.state.mark_applied(project, platform, applied)
        for _a, _u, outcome in applied:
            telemetry.LABELING_ANNOTATIONS.labels(platform, outcome).inc()


def label_upload(
    frame: str,
    a: PlatformAnnotation,
    task_type: str,
    classes: dict[str, ClassDef],
    items: Sequence[st.Item],
    size: tuple[int, int] | None,
    *,
    duration: float | None = None,
) -> tuple[str, pb.UploadChunk]:
    """The annotation as a label upload: its id (from the annotation and its revision) and its
    one chunk. InvalidArgument naming the region when it does not fit the project as ingest would
    find: a class outside the ontology, a keypoint its object's class does not have or placed
    twice, a box, polygon or keypoint outside the frame's image (``size``, as stored), a mask
    over another size; for a class map, what :func:`class_map` refuses; for sound events, what
    :func:`check_event` refuses (against the clip's ``duration`` in seconds, as stored). Unplaced
    keypoints of a class are unlabeled (visibility 0), placed ones labeled and visible (2)."""
    assert a.labels is not None
    reasons = sorted({i.reason for i in items if i.reason})
    prov = pb.Provenance(
        source=f"labeling:{a.platform}",
        author=a.annotator,
        reason=f"{a.platform} task {a.task_id}, annotation {a.annotation_id}"
        + (f"; sent because: {'; '.join(reasons)}" if reasons else ""),
    )
    if a.updated_at is not None:
        prov.time.FromDatetime(a.updated_at.astimezone(dt.UTC).replace(tzinfo=None))
    labels = pb.FrameLabels(frame_id=frame, provenance=prov)
    got = a.labels
    if task_type == "CLASSIFICATION":
        labels.class_id = _class_of(got.class_name, classes, "class").id
    elif task_type == "MULTI_LABEL":
        labels.class_ids.extend(_class_of(name, classes, f"choice {name!r}").id for name in got.class_names)
    elif task_type == "SOUND_EVENTS":
        for n, e in enumerate(got.events):
            where = _region("interval", e.region, n)
            cls = _class_of(e.class_name, classes, where)
            check_event(e, duration, where)
            labels.events.add(onset=e.onset, offset=e.offset, class_id=cls.id)
    elif task_type == "SEGMENTATION":
        values, runs = class_map(got.class_regions, classes, size)
        labels.segmentation.runs.classes.extend(values.tolist())
        labels.segmentation.runs.lengths.extend(runs.tolist())
    elif task_type == "INSTANCE_SEGMENTATION":
        for n, instance in enumerate(got.instances):
            where = _region("polygon" if instance.polygons else "brush", instance.region, n)
            obj = labels.objects.add(object_id=f"{a.annotation_id}-{n}",
                                     class_id=_class_of(instance.class_name, classes, where).id)  # fmt: skip
            _set_shape(obj, instance, size, where)
    else:
        for n, b in enumerate(got.boxes):
            where = _region("box", b.region, n)
            cls = _class_of(b.class_name, classes, where)
            box = pb.Box(x=b.x, y=b.y, width=b.width, height=b.height)
            check_box(box, size, where)
            obj = labels.objects.add(object_id=f"{a.annotation_id}-{n}", class_id=cls.id, box=box)
            if task_type == "KEYPOINTS":
                obj.keypoints.extend(_keypoints(b, cls, size, where))
    chunk = pb.UploadChunk(labels=[labels])
    return upload_id_of(a.platform, a.annotation_id, a.updated_at), chunk


def check_event(event: SoundEvent, duration: float | None, where: str) -> None:
    """Refuses, naming ``where``, an interval that does not start at 0 s or later, does not end after
    it starts, or ends past the clip's ``duration`` (seconds; not checked when unknown), as ingest
    refuses a sound event."""
    onset, offset = event.onset, event.offset
    if not (math.isfinite(onset) and math.isfinite(offset)):
        raise InvalidArgument(f"the interval {onset} to {offset} s is not made of finite numbers", field=where)
    if onset < 0:
        raise InvalidArgument(f"starts at {seconds(onset)} s, before the clip's start", field=where)
    if offset <= onset:
        raise InvalidArgument(
            f"ends at {seconds(offset)} s, {'before' if offset < onset else 'as'} it starts ({seconds(onset)} s):"
            " an interval ends after it starts",
            field=where,
        )
    if duration and offset > duration + DURATION_SLACK:
        raise InvalidArgument(f"ends at {seconds(offset)} s, past the end of the {seconds(duration)} s clip",
                              field=where)  # fmt: skip


def clip_events(
    onsets: Sequence[float],
    offsets: Sequence[float],
    class_ids: Sequence[int],
    scores: Sequence[float],
    classes: dict[int, ClassDef],
) -> tuple[SoundEvent, ...]:
    """A clip's stored events (parallel arrays) as pre-annotations: those of a class in ``classes``
    (by id), each region ``ev<n>`` by its position ``n`` in the clip. With ``scores`` (an inference
    set's events), only those scored at or above :data:`SOUND_EVENT_THRESHOLD`, with their score."""
    out = []
    for n, (on, off, c) in enumerate(zip(onsets, offsets, class_ids, strict=True)):
        score = float(scores[n]) if len(scores) else None
        if int(c) not in classes or (score is not None and score < SOUND_EVENT_THRESHOLD):
            continue
        out.append(SoundEvent(classes[int(c)].name, float(on), float(off), score, region=f"ev{n}"))
    return tuple(out)


def class_regions(
    values: Sequence[int], runs: Sequence[int], width: int, height: int, classes: dict[int, ClassDef]
) -> tuple[ClassRegion, ...]:
    """A class map (its class runs) as one region per class present that ``classes`` (by id) holds,
    in class id order, each named ``class-<id>``; unlabeled pixels are in none. None for a frame
    without a map, or whose map does not cover its ``width`` x ``height`` pixels."""
    lengths = np.asarray(runs, dtype=np.int64)
    if not len(lengths) or width <= 0 or height <= 0 or int(lengths.sum()) != width * height:
        return ()
    return tuple(
        ClassRegion(classes[c].name, masks.to_string(counts), width, height, region=f"class-{c}")
        for c, counts in classmaps.regions(np.asarray(values, dtype=np.uint16), lengths)
        if c in classes
    )


def class_map(
    regions: Sequence[ClassRegion], classes: dict[str, ClassDef], size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The class map (values, runs; :mod:`shoal.common.classmaps`) that the regions of an annotation
    paint on a frame of ``size`` (width, height): each region's pixels take its class, pixels in no
    region are unlabeled, and a region that paints nothing changes nothing. Regions of one class may
    overlap; a pixel painted by regions of two classes is refused rather than guessed at, since the
    platform keeps no order of strokes across regions.

    Raises:
        InvalidArgument: naming the region: a class outside the ontology, a region drawn over
            another size than the frame's, a mask that cannot be read, pixels another region paints
            another class (naming both); and, for the whole map, a frame without a size in Shoal or
            an annotation that paints no pixel at all (an empty map would take every pixel's class
            away, which skipping the task does not).
    """
    width, height = size or (0, 0)
    if width <= 0 or height <= 0:
        raise InvalidArgument(
            "the frame has no width and height in Shoal, and a class map is drawn over them: upload the frame with"
            " its size",
            field="segmentation",
        )
    out = np.full((height, width), classmaps.UNLABELED, dtype=np.uint16)
    owner = np.full((height, width), -1, dtype=np.int32)  # the region that gave each pixel its class
    names: list[str] = []
    for n, r in enumerate(regions):
        where = _region("brush", r.region, n)
        names.append(where)
        cls = _class_of(r.class_name, classes, where)
        if (r.width, r.height) != (width, height):
            raise InvalidArgument(
                f"the brush is drawn over {r.width}x{r.height} pixels, not the frame's {width}x{height}: the platform"
                " showed the image at another size",
                field=where,
            )
        try:
            counts = masks.from_string(r.mask)
        except (ValueError, IndexError, OverflowError) as exc:
            raise InvalidArgument(f"the mask is not COCO's compact run-length string: {exc}", field=where) from None
        problem = masks.check(counts, height, width)
        if problem is not None:
            raise InvalidArgument(f"the mask is not one of the frame's {width}x{height} pixels ({problem})",
                                  field=where)  # fmt: skip
        on = masks.decode(counts, height, width).astype(bool)
        clash = on & (out != classmaps.UNLABELED) & (out != cls.id)
        if clash.any():
            y, x = (int(v) for v in np.argwhere(clash)[0])
            other = int(owner[y, x])
            raise InvalidArgument(
                f"{int(clash.sum()):,} of its pixels (the first at x={x}, y={y}) are painted {cls.name!r} here and"
                f" {regions[other].class_name!r} by {names[other]}: a pixel takes one class, so erase them from one"
                " of the two regions",
                field=where,
            )
        out[on] = cls.id
        owner[on] = n
    if (owner < 0).all():
        raise InvalidArgument(
            "no pixel is painted: the annotation would take every pixel's class away; to leave the frame's labels as"
            " they are, skip the task",
            field="segmentation",
        )
    return classmaps.encode(out)


def _region(kind: str, region: str, n: int) -> str:
    """How errors name an object: by the platform's region id, else by its position."""
    return f"{kind} {region!r}" if region else f"{kind} {n}"


def _class_of(name: str | None, classes: dict[str, ClassDef], where: str) -> ClassDef:
    if name not in classes:
        raise InvalidArgument(f"class {name!r} is not in the project's ontology", field=where)
    return classes[name]


def _set_shape(obj: pb.LabelObject, instance: Instance, size: tuple[int, int] | None, where: str) -> None:
    """The instance's polygons or mask onto ``obj``, checked against the frame's ``size`` as ingest does."""
    width, height = size or (0, 0)
    if width <= 0 or height <= 0:
        raise InvalidArgument(
            "the frame has no width and height in Shoal, and a mask is drawn over them: upload the frame with its size",
            field=where,
        )
    if instance.polygons:
        for points in instance.polygons:
            problem = masks.check_polygon(points, height, width)
            if problem is not None:
                raise InvalidArgument(problem, field=where)
            obj.polygons.add(points=points)
        return
    if not instance.mask:
        raise InvalidArgument("the object has neither polygons nor a mask", field=where)
    try:
        runs = masks.from_string(instance.mask)
    except (ValueError, IndexError, OverflowError) as exc:
        raise InvalidArgument(f"the mask is not COCO's compact run-length string: {exc}", field=where) from None
    problem = masks.check(runs, height, width)
    if problem is not None:
        raise InvalidArgument(
            f"the mask is not one of the frame's {width}x{height} pixels ({problem}): the platform showed the image at"
            " another size",
            field=where,
        )
    obj.mask.counts = instance.mask


def _keypoints(box: Box, cls: ClassDef, size: tuple[int, int] | None, where: str) -> list[pb.Keypoint]:
    """One keypoint per keypoint of ``cls``, in its order: the box's points where placed (visible),
    unlabeled elsewhere."""
    position = {name: q for q, name in enumerate(cls.keypoints)}
    out = [pb.Keypoint() for _ in cls.keypoints]
    placed: dict[int, str] = {}
    width, height = size or (0, 0)
    for kp in box.keypoints:
        at = f"keypoint {kp.region or kp.name!r} of {where}"
        q = position.get(kp.name)
        if q is None:
            raise InvalidArgument(
                f"{kp.name!r} is not a keypoint of class {cls.name!r} ({', '.join(cls.keypoints)})", field=at
            )
        if q in placed:
            raise InvalidArgument(f"{kp.name!r} is placed twice on the object (also as {placed[q]})", field=at)
        # as ingest checks a label: in the image, with half a pixel of slack
        if width > 0 and height > 0 and not (-0.5 <= kp.x <= width + 0.5 and -0.5 <= kp.y <= height + 0.5):
            raise InvalidArgument(f"point ({kp.x}, {kp.y}) lies outside the {width}x{height} image", field=at)
        placed[q] = at
        out[q] = pb.Keypoint(x=kp.x, y=kp.y, visibility=2)
    return out
