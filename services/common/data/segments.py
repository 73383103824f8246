"""Segments: named collections of frames of one dataset, with a kind, a reason and an author.

Regression-test segments carry gates (a metric, optionally of one class, and a minimum) that an
inference set must pass on the segment's frames. Members are rows of ``segment_members``; removing
one writes a newer row marked removed, so the history of a segment's membership is kept.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shoal.common.data.datasets import existing_frames
from shoal.common.data.projects import Project
from shoal.common.errors import AlreadyExists, InvalidArgument, NotFound
from shoal.common.pagination import Page
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.timeutil import as_utc, now_ms

MIGRATIONS = (
    Migration(
        component="analysis",
        version=1,
        name="segments",
        statements=(
            "CREATE TABLE IF NOT EXISTS segments ("
            " project LowCardinality(String), name String, dataset String, kind LowCardinality(String),"
            " reason String, author String,"
            " gates Array(Tuple(metric String, class_id Nullable(Int32), minimum Float64)),"
            " create_time DateTime64(3, 'UTC'), update_time DateTime64(3, 'UTC'), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, name)",
            "CREATE TABLE IF NOT EXISTS segment_members ("
            " project LowCardinality(String), segment String, dataset String, frame_id String, object_id String,"
            " removed UInt8, version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, segment, dataset, frame_id, object_id)",
        ),
    ),
)

KINDS = ("ISSUE", "REGRESSION_TEST", "COLLECTION_SEED", "OTHER")
FRAME_METRICS = ("accuracy", "macro_f1")
CLASS_METRICS = ("precision", "recall", "f1")
#: a segmentation project's gates: over all classes, and per class
SEGMENTATION_FRAME_METRICS = ("mean_iou", "pixel_accuracy")
SEGMENTATION_CLASS_METRICS = ("iou", "precision", "recall")
#: a multi-label project's gates (at the evaluation's score threshold)
MULTI_LABEL_FRAME_METRICS = ("micro_f1", "macro_f1", "subset_accuracy")
MULTI_LABEL_CLASS_METRICS = ("precision", "recall", "f1", "average_precision")
#: a sound-event project's gates: F1 (micro and class-wise average) of the event- and segment-based metrics,
#: and per class the event-based figures
SOUND_EVENT_FRAME_METRICS = ("event_f1", "segment_f1", "event_macro_f1", "segment_macro_f1")
SOUND_EVENT_CLASS_METRICS = ("f1", "precision", "recall")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


MAX_MEMBERS_PER_CALL = 100_000


def valid_name(name: str) -> bool:
    return _NAME.match(name) is not None


@dataclass(frozen=True)
class Gate:
    metric: str
    class_id: int | None
    minimum: float


@dataclass
class Segment:
    project: str
    name: str
    dataset: str
    kind: str
    reason: str = ""
    author: str = ""
    gates: list[Gate] = field(default_factory=list)
    size: int = 0
    create_time: datetime | None = None
    update_time: datetime | None = None


def check_gates(gates: Sequence[Gate], project: Project, where: str = "segment.gates") -> None:
    classes = {c.id for c in project.classes}
    frame_metrics, class_metrics = FRAME_METRICS, CLASS_METRICS
    if project.task_type == "SEGMENTATION":
        frame_metrics, class_metrics = SEGMENTATION_FRAME_METRICS, SEGMENTATION_CLASS_METRICS
    elif project.task_type == "MULTI_LABEL":
        frame_metrics, class_metrics = MULTI_LABEL_FRAME_METRICS, MULTI_LABEL_CLASS_METRICS
    elif project.task_type == "SOUND_EVENTS":
        frame_metrics, class_metrics = SOUND_EVENT_FRAME_METRICS, SOUND_EVENT_CLASS_METRICS
    for i, g in enumerate(gates):
        at = f"{where}[{i}]"
        if g.metric in frame_metrics:
            if g.class_id is not None:
                raise InvalidArgument(f"{g.metric} is over all classes; leave class_id unset", field=f"{at}.class_id")
        elif g.metric in class_metrics:
            if g.class_id is None:
                raise InvalidArgument(f"{g.metric} is per class: set class_id", field=f"{at}.class_id")
            if g.class_id not in classes:
                raise InvalidArgument(f"unknown class id {g.class_id}", field=f"{at}.class_id")
        else:
            raise InvalidArgument(
                f"unknown metric {g.metric!r} for a {project.task_type} project; one of"
                f" {', '.join(frame_metrics + class_metrics)}",
                field=f"{at}.metric",
            )
        if not (math.isfinite(g.minimum) and 0.0 <= g.minimum <= 1.0):
            raise InvalidArgument(f"must lie in [0, 1], got {g.minimum}", field=f"{at}.minimum")


class SegmentStore:
    def __init__(self, metrics: MetricsStore) -> None:
        self.metrics = metrics

    def _write(self, s: Segment) -> None:
        now = now_ms()
        self.metrics.insert(
            "segments",
            [[s.project, s.name, s.dataset, s.kind, s.reason, s.author,
              [(g.metric, g.class_id, g.minimum) for g in s.gates],
              s.create_time or now, now, time.time_ns()]],
            ["project", "name", "dataset", "kind", "reason", "author", "gates", "create_time", "update_time",
             "version"],
        )  # fmt: skip

    def find(self, project: str, name: str) -> Segment | None:
        rows = self.metrics.query(
            "SELECT name, dataset, kind, reason, author, gates, create_time, update_time FROM segments FINAL"
            " WHERE project = {project:String} AND name = {name:String}",
            {"project": project, "name": name},
        ).rows
        if not rows:
            return None
        seg = _segment(project, rows[0])
        seg.size = self.size(project, name)
        return seg

    def get(self, project: str, name: str) -> Segment:
        seg = self.find(project, name)
        if seg is None:
            raise NotFound(f"project {project!r} has no segment {name!r}", field="name")
        return seg

    def size(self, project: str, name: str) -> int:
        return int(
            self.metrics.query(
                "SELECT count() FROM segment_members FINAL"
                " WHERE project = {project:String} AND segment = {name:String} AND removed = 0",
                {"project": project, "name": name},
            ).scalar()
        )

    def create(
        self, seg: Segment, project: Project, frame_ids: Sequence[str], objects: Sequence[tuple[str, str]] = ()
    ) -> Segment:
        """A new segment with frames and objects ((frame id, object id) of a labeled or predicted
        box) as members."""
        if not _NAME.match(seg.name):
            raise InvalidArgument(f"{seg.name!r} must match {_NAME.pattern}", field="segment.name")
        if seg.kind not in KINDS:
            raise InvalidArgument("set a kind (issue, regression test, collection seed or other)", field="segment.kind")
        if seg.gates and seg.kind != "REGRESSION_TEST":
            raise InvalidArgument("only regression-test segments carry gates", field="segment.gates")
        check_gates(seg.gates, project)
        if self.find(seg.project, seg.name) is not None:
            raise AlreadyExists(f"project {seg.project!r} already has a segment {seg.name!r}", field="segment.name")
        self._check_frames(seg, frame_ids, "frame_ids")
        self._check_objects(seg, objects, "objects")
        self._write(seg)
        self._members(seg, [(f, "") for f in frame_ids], removed=False)
        self._members(seg, objects, removed=False)
        return self.get(seg.project, seg.name)

    def update(
        self,
        project: Project,
        name: str,
        *,
        reason: str | None,
        gates: list[Gate] | None,
        add: Sequence[str],
        remove: Sequence[str],
        add_objects: Sequence[tuple[str, str]] = (),
        remove_objects: Sequence[tuple[str, str]] = (),
    ) -> Segment:
        seg = self.get(project.name, name)
        if reason is not None:
            seg.reason = reason
        if gates is not None:
            if gates and seg.kind != "REGRESSION_TEST":
                raise InvalidArgument("only regression-test segments carry gates", field="gates")
            check_gates(gates, project, where="gates")
            seg.gates = gates
        self._check_frames(seg, add, "add_frame_ids")
        self._check_objects(seg, add_objects, "add_objects")
        for removing, where in ((remove, "remove_frame_ids"), (remove_objects, "remove_objects")):
            if len(removing) > MAX_MEMBERS_PER_CALL:
                raise InvalidArgument(f"at most {MAX_MEMBERS_PER_CALL} per call", field=where)
        if reason is not None or gates is not None:
            self._write(seg)
        self._members(seg, [(f, "") for f in add], removed=False)
        self._members(seg, add_objects, removed=False)
        self._members(seg, [(f, "") for f in remove], removed=True)
        self._members(seg, remove_objects, removed=True)
        return self.get(project.name, name)

    def _check_frames(self, seg: Segment, frame_ids: Sequence[str], where: str) -> None:
        if len(frame_ids) > MAX_MEMBERS_PER_CALL:
            raise InvalidArgument(f"at most {MAX_MEMBERS_PER_CALL} per call", field=where)
        if not frame_ids:
            return
        found = existing_frames(self.metrics, seg.project, seg.dataset, frame_ids)
        for i, fid in enumerate(frame_ids):
            if fid not in found:
                raise InvalidArgument(f"frame {fid!r} is not in dataset {seg.dataset!r}", field=f"{where}[{i}]")

    def _check_objects(self, seg: Segment, objects: Sequence[tuple[str, str]], where: str) -> None:
        """Each (frame id, object id) names a labeled or predicted box of the segment's dataset."""
        if len(objects) > MAX_MEMBERS_PER_CALL:
            raise InvalidArgument(f"at most {MAX_MEMBERS_PER_CALL} per call", field=where)
        if not objects:
            return
        for i, (fid, oid) in enumerate(objects):
            if not fid or not oid:
                raise InvalidArgument("needs a frame id and an object id", field=f"{where}[{i}]")
        scope = "project = {project:String} AND dataset = {dataset:String} AND frame_id IN {ids:Array(String)}"
        found = {
            (str(r[0]), str(r[1]))
            for r in self.metrics.query_ids(
                f"SELECT DISTINCT frame_id, object_id FROM label_objects WHERE {scope}"
                f" UNION DISTINCT SELECT DISTINCT frame_id, object_id FROM predicted_objects WHERE {scope}",
                {"project": seg.project, "dataset": seg.dataset},
                "ids",
                [f for f, _ in objects],
            )
        }
        for i, ref in enumerate(objects):
            if tuple(ref) not in found:
                raise InvalidArgument(f"frame {ref[0]!r} of dataset {seg.dataset!r} has no labeled or predicted"
                                      f" object {ref[1]!r}", field=f"{where}[{i}]")  # fmt: skip

    def _members(self, seg: Segment, refs: Sequence[tuple[str, str]], *, removed: bool) -> None:
        """Writes members: (frame id, "") for a frame, (frame id, object id) for an object."""
        if not refs:
            return
        version = time.time_ns()
        n = len(refs)
        self.metrics.insert_columns(
            "segment_members",
            [[seg.project] * n, [seg.name] * n, [seg.dataset] * n, [f for f, _ in refs], [o for _, o in refs],
             [int(removed)] * n, [version] * n],
            ["project", "segment", "dataset", "frame_id", "object_id", "removed", "version"],
        )  # fmt: skip

    def delete(self, project: str, name: str) -> None:
        """Removes a segment and every row of its membership history (for a job that created the
        segment and must keep nothing when it is cancelled or fails)."""
        params = {"project": project, "name": name}
        self.metrics.command("DELETE FROM segment_members WHERE project = {project:String} AND segment = {name:String}",
                             params)  # fmt: skip
        self.metrics.command("DELETE FROM segments WHERE project = {project:String} AND name = {name:String}", params)

    def list(self, project: str, *, kinds: Sequence[str], page: Page, dataset: str = "") -> tuple[list[Segment], int]:
        where = "project = {project:String}"
        params: dict[str, object] = {"project": project}
        if kinds:
            where += " AND kind IN {kinds:Array(String)}"
            params["kinds"] = list(kinds)
        if dataset:
            where += " AND dataset = {dataset:String}"
            params["dataset"] = dataset
        rows, total = self.metrics.page(
            "segments FINAL", "name, dataset, kind, reason, author, gates, create_time, update_time", where, "name",
            params, offset=page.offset, size=page.size,
        )  # fmt: skip
        out = [_segment(project, r) for r in rows]
        for s in out:
            s.size = self.size(project, s.name)
        return out, total

    def members(self, project: str, name: str, *, page: Page) -> tuple[list[tuple[str, str, str]], int]:
        seg = self.get(project, name)
        rows = self.metrics.query(
            "SELECT dataset, frame_id, object_id FROM segment_members FINAL"
            " WHERE project = {project:String} AND segment = {name:String} AND removed = 0"
            " ORDER BY dataset, frame_id, object_id LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
            {"project": project, "name": name, "limit": page.size, "offset": page.offset},
        ).rows
        return [(r[0], r[1], r[2]) for r in rows], seg.size

    def frame_ids(self, project: str, name: str) -> list[str]:
        """The frames of a segment (an object member counts as its frame), each once, by id."""
        self.get(project, name)
        rows = self.metrics.query_columns(
            "SELECT DISTINCT frame_id FROM segment_members FINAL"
            " WHERE project = {project:String} AND segment = {name:String} AND removed = 0 ORDER BY frame_id",
            {"project": project, "name": name},
        )
        return [str(f) for f in rows["frame_id"]]


def _segment(project: str, row: Sequence[object]) -> Segment:
    name, dataset, kind, reason, author, gates, created, updated = row
    return Segment(
        project=project,
        name=str(name),
        dataset=str(dataset),
        kind=str(kind),
        reason=str(reason),
        author=str(author),
        gates=[_gate(g) for g in gates],  # type: ignore[attr-defined]
        create_time=as_utc(created),
        update_time=as_utc(updated),
    )


def _gate(row: object) -> Gate:
    """A gate read back: a named tuple comes as a dict, an unnamed one as a tuple."""
    m, c, v = (row["metric"], row["class_id"], row["minimum"]) if isinstance(row, dict) else row  # type: ignore[misc]
    return Gate(str(m), None if c is None else int(c), float(v))
