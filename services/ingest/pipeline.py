"""The upload pipeline: chunks become UploadEvents on Kafka; consumer-group workers validate them,
write ClickHouse and Milvus, dead-letter what is invalid, record the chunk's status and commit the
offsets only after all of that.

Processing is at-least-once with idempotent writes: a crash between the writes and the commit
makes the events come again, and writing them again changes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError

from shoal.common import telemetry, uploads
from shoal.common.data.datasets import DatasetCatalog
from shoal.common.data.projects import ProjectCatalog
from shoal.common.errors import (
    Datapoint,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    ShoalError,
    Unavailable,
)
from shoal.common.media import MediaReader
from shoal.common.stores.events import Consumer, Event, EventBus, Published, TopicPartition
from shoal.common.stores.metrics import MetricsStore
from shoal.common.timeutil import now_ms, time_problem
from shoal.common.topics import Topics
from shoal.common.uploads import SCHEMA_VERSION, event_key
from shoal.common.workers import Backoff, ThreadWorker, close_quietly
from shoal.ingest.columns import MAX_ID, MAX_TEXT, column_sizes, take_rows
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.ingest.validate import CheckedChunk, Context, check_chunk, check_chunk_size, referenced_frames
from shoal.ingest.writer import EventMeta, IngestWriter, VectorWork, Written

log = logging.getLogger(__name__)

MAX_ERRORS_PER_CHUNK = 20
#: Chunks an upload may have: chunk indices lie in [0, MAX_CHUNKS) and total_chunks is at most this.
MAX_CHUNKS = 1_000_000
#: Writes tried per event when the store refuses part of it (the event is written in halves
#: until the rows it refuses are found; past this, the parts still failing are rejected whole).
MAX_WRITE_ATTEMPTS = 64
_STATUS_COLUMNS = (
    "project",
    "upload_id",
    "chunk_index",
    "stage",
    "dataset",
    "total_chunks",
    "frames",
    "labels",
    "inferences",
    "embeddings",
    "rejected_frames",
    "rejected_labels",
    "rejected_inferences",
    "rejected_embeddings",
    "errors",
    "updated_at",
    "version",
)


def check_position(index: int, total: int) -> None:
    """A chunk index and a declared chunk count are within :data:`MAX_CHUNKS`."""
    if not 0 <= index < MAX_CHUNKS:
        raise InvalidArgument(
            f"must lie in [0, {MAX_CHUNKS}), got {index}: an upload has at most {MAX_CHUNKS} chunks",
            field="chunk_index",
        )
    if not 0 <= total <= MAX_CHUNKS:
        raise InvalidArgument(
            f"must lie in [0, {MAX_CHUNKS}], got {total}: an upload has at most {MAX_CHUNKS} chunks",
            field="total_chunks",
        )
    if total and index >= total:
        raise InvalidArgument(f"chunk {index} is not below total_chunks {total}", field="chunk_index")


class ContextLoader:
    """Loads what chunks are checked against, with a short cache (catalog rows change rarely)."""

    def __init__(
        self,
        metrics: MetricsStore,
        projects: ProjectCatalog,
        datasets: DatasetCatalog,
        ttl: float = 5.0,
        media: MediaReader | None = None,
    ):
        self.metrics = metrics
        self.media = media
        self.projects = projects
        self.datasets = datasets
        self.ttl = ttl
        self._cache: dict[tuple[str, str, str], tuple[float, Context]] = {}
        self._types: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def key_types(self, project: str, dataset: str, *, fresh: bool = False) -> dict[str, str]:
        """The type of each metadata key of a dataset, as the consumers recorded them (cached
        for ``ttl`` seconds unless ``fresh``)."""
        now = time.monotonic()
        with self._lock:
            hit = self._types.get((project, dataset))
        if not fresh and hit is not None and now - hit[0] <= self.ttl:
            return hit[1]
        rows = self.metrics.query(
            "SELECT key, argMin(kind, version) FROM metadata_keys"
            " WHERE project = {project:String} AND dataset = {dataset:String} GROUP BY key",
            {"project": project, "dataset": dataset},
        ).rows
        types = {str(r[0]): str(r[1]) for r in rows}
        with self._lock:
            self._types[(project, dataset)] = (now, types)
        return types

    def learn(self, project: str, dataset: str, types: Mapping[str, str]) -> None:
        """Adds key types just written to the cache."""
        if not types:
            return
        with self._lock:
            hit = self._types.get((project, dataset))
            if hit is not None:
                self._types[(project, dataset)] = (hit[0], {**types, **hit[1]})

    def load(
        self,
        project: str,
        dataset: str,
        inference_set: str,
        chunk: pb.UploadChunk,
        max_items: int,
        key_types: Mapping[str, str] | None = None,
    ) -> Context:
        key = (project, dataset, inference_set)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is None or now - hit[0] > self.ttl:
            p = self.projects.get(project)
            d = self.datasets.get(project, dataset)
            s = None
            if inference_set:
                s = self.datasets.get_inference_set(
                    project, inference_set, dataset=dataset, field="chunk.inference_set"
                )
            base = Context(project=p, dataset=d, inference_set=s, max_items=max_items)
            with self._lock:
                self._cache[key] = (now, base)
        else:
            base = hit[1]
        refs = referenced_frames(chunk)
        known, durations = self.known_frames(project, dataset, refs) if refs else ({}, {})
        if key_types is None:
            key_types = self.key_types(project, dataset) if _has_metadata(chunk) else {}
        return Context(base.project, base.dataset, base.inference_set, known, max_items, key_types, self.media,
                       durations)  # fmt: skip

    def check(
        self,
        project: str,
        dataset: str,
        chunk: pb.UploadChunk,
        max_items: int,
        key_types: Mapping[str, str] | None = None,
    ) -> CheckedChunk:
        """The chunk checked against its project, dataset and inference set (and ``key_types``,
        the dataset's metadata key types, when given; else the cached ones). Raises when the chunk
        cannot be judged at all (too large, unknown dataset or inference set)."""
        check_chunk_size(chunk, max_items)
        return check_chunk(chunk, self.load(project, dataset, chunk.inference_set, chunk, max_items, key_types))

    def known_frames(
        self, project: str, dataset: str, frame_ids: Iterable[str]
    ) -> tuple[dict[str, tuple[int, int]], dict[str, float]]:
        """The (width, height) of these frames where stored, and the duration of those that are clips."""
        rows = self.metrics.query(
            "SELECT frame_id, argMax(width, version), argMax(height, version), argMax(duration_seconds, version)"
            " FROM frames WHERE project = {project:String} AND dataset = {dataset:String}"
            " AND frame_id IN {ids:Array(String)} GROUP BY frame_id",
            {"project": project, "dataset": dataset, "ids": sorted(frame_ids)},
        ).rows
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}, {r[0]: float(r[3]) for r in rows if r[3]}


def _has_metadata(chunk: pb.UploadChunk) -> bool:
    return bool(chunk.columns.metadata) or any(f.metadata for f in chunk.frames)


def _error_tuple(err: ShoalError) -> tuple[str, str, str, str, str]:
    """An error as a status row stores it; ids and text cut to their limits (a rejected id may be
    longer than any valid one)."""
    dp = err.datapoint
    frame_id, object_id = (dp.frame_id, dp.object_id) if dp else ("", "")
    return (err.reason, err.field[:MAX_ID], frame_id[:MAX_ID], object_id[:MAX_ID], err.message[:MAX_TEXT])


class UploadPublisher:
    """The RPC side: checks chunks and publishes them as events."""

    def __init__(self, bus: EventBus, topics: Topics, contexts: ContextLoader, metrics: MetricsStore, max_items: int):
        self.bus = bus
        self.topics = topics
        self.contexts = contexts
        self.metrics = metrics
        self.max_items = max_items

    def check(
        self, project: str, dataset: str, chunk: pb.UploadChunk, index: int, key_types: Mapping[str, str] | None = None
    ) -> CheckedChunk:
        """Raises InvalidArgument for the first problem of the chunk (with how many more there are).
        ``key_types``: metadata key types that earlier chunks of the same stream give keys."""
        try:
            types = None
            if key_types and _has_metadata(chunk):
                types = {**key_types, **self.contexts.key_types(project, dataset)}
            checked = self.contexts.check(project, dataset, chunk, self.max_items, types)
        except NotFound as err:
            raise InvalidArgument(err.message, field=err.field or "dataset") from None
        if checked.rejections:
            first = checked.rejections[0].error
            more = len(checked.rejections) - 1
            suffix = f"; {more} more problems in chunk {index}" if more else f" (chunk {index})"
            raise InvalidArgument(first.message + suffix, field=first.field, datapoint=first.datapoint)
        return checked

    def publish(
        self, project: str, dataset: str, upload_id: str, index: int, chunk: pb.UploadChunk, total: int = 0
    ) -> Future[Published]:
        """Publishes a checked chunk as an event; ``total``: the chunks of the upload, when declared."""
        event = uploads.new_event(pb.UploadEvent, project, dataset, upload_id, index, chunk, total)
        return uploads.publish(self.bus, self.topics, event)

    def record_accepted(
        self, project: str, dataset: str, upload_id: str, checked: Sequence[tuple[int, CheckedChunk]], total: int
    ) -> None:
        self.record_accepted_many(project, dataset, [(upload_id, checked, total)])

    def record_accepted_many(
        self, project: str, dataset: str, uploads: Sequence[tuple[str, Sequence[tuple[int, CheckedChunk]], int]]
    ) -> None:
        """Records several uploads as accepted in one insert: (upload id, (chunk index, checked
        chunk) pairs, total chunks) each."""
        now = now_ms()
        rows = [
            [project, upload_id, i, "accepted", dataset, total,
             *c.counts(), 0, 0, 0, 0, [], now, time.time_ns()]
            for upload_id, checked, total in uploads
            for i, c in checked
        ]  # fmt: skip
        self.metrics.insert("upload_chunks", rows, _STATUS_COLUMNS)

    def record_interrupted(
        self,
        project: str,
        dataset: str,
        upload_id: str,
        checked: Sequence[tuple[int, CheckedChunk]],
        total: int,
        reason: ShoalError,
        *,
        last: int,
    ) -> None:
        """Records the chunks a stream published before it failed as accepted, and that the
        stream ended early (stage "interrupted", with the reason): the upload's status is
        INCOMPLETE until the chunks it misses arrive. ``last``: the index the interruption row
        is kept under (the last chunk the stream published, or read)."""
        now = now_ms()
        rows = [
            [project, upload_id, i, "accepted", dataset, total, *c.counts(), 0, 0, 0, 0, [], now, time.time_ns()]
            for i, c in checked
        ]
        rows.append(
            [project, upload_id, last, "interrupted", dataset, total, 0, 0, 0, 0, 0, 0, 0, 0,
             [_error_tuple(reason)], now, time.time_ns()]
        )  # fmt: skip
        self.metrics.insert("upload_chunks", rows, _STATUS_COLUMNS)


@dataclass
class _Item:
    event: Event
    upload: pb.UploadEvent | None
    meta: EventMeta | None = None
    checked: CheckedChunk | None = None
    failure: ShoalError | None = None


@dataclass
class Staged:
    items: list[_Item]
    written: list[Written]
    vectors: VectorWork
    touched: dict[tuple[str, str], tuple[set[str], list[int]]]


class UploadProcessor:
    """The consumer side, transport-free but for the bus it dead-letters to: turns a batch of
    upload events into writes, dead letters and status rows."""

    def __init__(self, bus: EventBus, topics: Topics, contexts: ContextLoader, writer: IngestWriter, max_items: int):
        self.bus = bus
        self.topics = topics
        self.contexts = contexts
        self.writer = writer
        self.max_items = max_items

    def process(self, events: Sequence[Event]) -> None:
        """Handles a batch. Raises Unavailable when a store is down (nothing must be committed)."""
        self.finish(self.stage(events))

    def stage(self, events: Sequence[Event]) -> Staged:
        """First half: decode, validate and write the ClickHouse rows."""
        types: dict[tuple[str, str], dict[str, str]] = {}
        items = [self._prepare(e, types) for e in events]
        good = [(it.meta, it.checked) for it in items if it.checked is not None]
        if not good:
            return Staged(items, [], {}, {})
        done = self.writer.write_tables(good)  # type: ignore[arg-type]
        self._learn(items)
        return Staged(items, done.written, done.vectors, done.touched)

    def _learn(self, items: Sequence[_Item]) -> None:
        for it in items:
            if it.checked is not None and it.checked.key_types and it.meta is not None:
                self.contexts.learn(it.meta.project, it.meta.dataset, it.checked.key_types)

    def process_alone(self, event: Event) -> None:
        """Handles one event on its own (its batch failed). When the store refuses to write it,
        it is written in halves, down to single frames, so that only the frames whose rows the
        store refuses are rejected (with the store's reason), and the rest is written. Partial
        writes of a refused frame's rows may remain: they are the same rows a resend writes."""
        it = self._prepare(event, {})
        if it.checked is None or it.meta is None:
            self.finish(Staged([it], [], {}, {}))
            return
        written = self._write_in_parts(it)
        self._learn([it])
        self.finish(Staged([it], [written], {}, {}))

    def _write_in_parts(self, it: _Item) -> Written:
        assert it.checked is not None and it.meta is not None and it.upload is not None
        checked, meta = it.checked, it.meta
        totals = (0, 0, 0, 0)
        attempts = 0
        # (frame ids, the failure of the larger part they were in); the first holds every frame
        pending: list[tuple[list[str], Exception | None]] = [(checked.frame_ids(), None)]
        refused: list[tuple[list[str], Exception]] = []
        while pending:
            ids, inherited = pending.pop()
            if inherited is not None and attempts >= MAX_WRITE_ATTEMPTS:
                refused.append((ids, inherited))
                continue
            attempts += 1
            try:
                (w,) = self.writer.write([(meta, checked if inherited is None else checked.subset(set(ids)))])
            except Unavailable:
                raise
            except Exception as exc:  # the store refused some row of this part
                if not ids:
                    raise
                log.warning("the store refused part of %s (%d frames): %s", meta.idempotency_key, len(ids), exc)
                if len(ids) == 1:
                    refused.append((ids, exc))
                else:
                    half = len(ids) // 2
                    pending += [(ids[half:], exc), (ids[:half], exc)]
                continue
            totals = tuple(a + b for a, b in zip(totals, (w.frames, w.labels, w.inferences, w.embeddings), strict=True))
        for ids, exc in refused:
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            text = text if len(text) <= 500 else text[:500] + "…"

            def error(where: str, frame_id: str, text: str = text) -> ShoalError:
                return InternalError(
                    f"the store refused to write this row ({text}); the other rows of the chunk are written",
                    field=where,
                    datapoint=Datapoint(meta.dataset, frame_id),
                )

            checked.reject_frames(it.upload.chunk, set(ids), error)
        return Written(*totals)

    def finish(self, staged: Staged) -> None:
        """Second half (on a helper thread, while the next batch is staged): refresh the rows
        analyses read, upsert the vectors, then record status, dead letters and notifications.
        The batch may be committed once this returns."""
        self.writer.refresh_derived(staged.touched)
        self.writer.write_vectors(staged.vectors)
        results = iter(staged.written)
        status_rows = []
        now = now_ms()
        futures = []
        for it in staged.items:
            if it.checked is None:
                futures.append(self._dead_letter(it, [it.failure] if it.failure else []))
                if it.upload is not None and it.meta is not None:
                    status_rows.append(self._status_row(it, Written(0, 0, 0, 0), now))
                continue
            w = next(results)
            if it.checked.rejections:
                futures.append(self._dead_letter(it, [r.error for r in it.checked.rejections]))
            status_rows.append(self._status_row(it, w, now))
            futures.append(self._notify(it, w))
        if status_rows:
            written = self.writer.metrics.insert("upload_chunks", status_rows, _STATUS_COLUMNS)
            telemetry.count_rows("upload_chunks", written)
        self.bus.flush()
        for fut in futures:
            fut.result(timeout=60)

    def _prepare(self, event: Event, key_types: dict[tuple[str, str], dict[str, str]]) -> _Item:
        """Decodes and checks an event; ``key_types`` holds the metadata key types of each dataset
        as of this event (read fresh for the first event of a dataset in a batch, then updated
        with what each event writes first: the consumers decide a key's type)."""
        try:
            upload = pb.UploadEvent.FromString(event.value)
        except DecodeError as exc:
            return _Item(event, None, failure=InvalidArgument(f"not an UploadEvent: {exc}", field="value"))
        item = _Item(event, upload)
        if upload.schema_version != SCHEMA_VERSION:
            item.failure = InvalidArgument(
                f"schema_version {upload.schema_version} is not supported (expected {SCHEMA_VERSION})",
                field="schema_version",
            )
            return item
        if not upload.project or not upload.dataset:
            item.failure = InvalidArgument("project and dataset are required", field="project")
            return item
        upload_id = upload.upload_id or f"kafka-{event.topic}-{event.partition}-{event.offset}"
        key = upload.idempotency_key or f"{upload_id}/{upload.chunk_index}"
        produced = (
            upload.produced_time.ToNanoseconds() if upload.HasField("produced_time") else event.timestamp_ms * 1_000_000
        )
        item.meta = EventMeta(
            upload.project, upload.dataset, upload_id, upload.chunk_index, key, upload.chunk.inference_set, produced
        )
        try:
            check_position(upload.chunk_index, upload.total_chunks)
            if upload.HasField("produced_time"):
                # it versions the rows (UInt64 nanoseconds) and dates labels without a provenance time
                t = upload.produced_time
                problem = time_problem(t.seconds, t.nanos, "produced_time")
                if problem is None and t.seconds < 0:
                    problem = InvalidArgument("must not be before 1970-01-01T00:00:00Z", field="produced_time")
                if problem is not None:
                    raise problem
        except InvalidArgument as err:
            item.failure = err
            return item
        try:
            types = key_types.get((upload.project, upload.dataset))
            if types is None:
                types = key_types[(upload.project, upload.dataset)] = dict(
                    self.contexts.key_types(upload.project, upload.dataset, fresh=True)
                )
            item.checked = self.contexts.check(upload.project, upload.dataset, upload.chunk, self.max_items, types)
            for key, kind in item.checked.key_types.items():
                types.setdefault(key, kind)
        except (InvalidArgument, NotFound, FailedPrecondition) as err:
            item.failure = err
        return item

    def fail(self, event: Event, exc: Exception) -> None:
        """Dead-letters an event that could not be processed, with the reason, and records its
        chunk as processed with every item rejected and that reason as the error (when the event
        names its upload), so its status never stays PROCESSING."""
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        err = InternalError(f"could not be processed: {text if len(text) <= 500 else text[:500] + '…'}", field="value")
        it = _Item(event, None)
        try:
            upload = pb.UploadEvent.FromString(event.value)
        except DecodeError:
            upload = None
        if upload is not None and upload.project and upload.dataset:
            upload_id = upload.upload_id or f"kafka-{event.topic}-{event.partition}-{event.offset}"
            it = _Item(event, upload, failure=err)
            it.meta = EventMeta(upload.project, upload.dataset, upload_id, upload.chunk_index, "", "", 0)
            try:
                row = self._status_row(it, Written(0, 0, 0, 0), now_ms())
                self.writer.metrics.insert("upload_chunks", [row], _STATUS_COLUMNS)
            except Unavailable:
                raise
            except Exception:
                log.exception("could not record the status of a failed event")
        self._dead_letter(_Item(event, None), [err]).result(timeout=60)

    def _status_row(self, it: _Item, w: Written, now: object) -> list[object]:
        assert it.upload is not None and it.meta is not None
        errors: list[ShoalError] = []
        rejected = {"frame": 0, "labels": 0, "inference": 0, "embedding": 0}
        if it.checked is not None:
            for r in it.checked.rejections:
                rejected[r.kind] += 1
                errors.append(r.error)
        else:
            chunk = it.upload.chunk
            block = column_sizes(chunk.columns)
            rejected = {
                "frame": len(chunk.frames) + block["frames"],
                "labels": len(chunk.labels) + block["labels"],
                "inference": len(chunk.inferences) + block["inferences"],
                "embedding": sum(len(b.frame_ids) for b in chunk.embeddings),
            }
            if it.failure:
                errors.append(it.failure)
        total = it.upload.total_chunks if 0 <= it.upload.total_chunks <= MAX_CHUNKS else 0
        return [
            it.meta.project, it.meta.upload_id, it.meta.chunk_index, "processed", it.meta.dataset,
            total, w.frames, w.labels, w.inferences, w.embeddings,
            rejected["frame"], rejected["labels"], rejected["inference"], rejected["embedding"],
            [_error_tuple(e) for e in errors[:MAX_ERRORS_PER_CHUNK]], now, time.time_ns(),
        ]  # fmt: skip

    def _dead_letter(self, it: _Item, errors: Sequence[ShoalError]) -> Future[Published]:
        """The rejected part of an event (or all of it) with the reasons in headers."""
        value = it.event.value
        if it.upload is not None and it.checked is not None:
            value = _rejected_part(it.upload, it.checked).SerializeToString()
        reasons = [{"reason": e.reason, "field": e.field, "message": e.describe()} for e in errors[:100]]
        headers = (
            ("shoal-reason", (errors[0].describe() if errors else "unknown").encode()),
            ("shoal-errors", json.dumps(reasons).encode()),
            ("shoal-source", f"{it.event.topic}/{it.event.partition}/{it.event.offset}".encode()),
        )
        log.info("dead-lettering %d problem(s) of %s/%d/%d: %s", len(errors), it.event.topic,
                 it.event.partition, it.event.offset, errors[0].describe() if errors else "")  # fmt: skip
        telemetry.DEAD_LETTERS.inc()
        return self.bus.publish(self.topics.dead_letter, key=it.event.key or b"", value=value, headers=headers)

    def _notify(self, it: _Item, w: Written) -> Future[Published]:
        assert it.meta is not None
        note = pb.IngestedEvent(
            project=it.meta.project,
            dataset=it.meta.dataset,
            upload_id=it.meta.upload_id,
            chunk_index=it.meta.chunk_index,
            written=pb.UploadCounts(frames=w.frames, labels=w.labels, inferences=w.inferences, embeddings=w.embeddings),
            inference_set=it.meta.inference_set,
            total_chunks=it.upload.total_chunks if it.upload is not None else 0,
        )
        if it.checked is not None:
            _written_ids(note, it.checked)
        note.written_time.GetCurrentTime()
        return self.bus.publish(
            self.topics.ingested, key=event_key(it.meta.project, it.meta.dataset), value=note.SerializeToString()
        )


def _written_ids(note: pb.IngestedEvent, checked: CheckedChunk) -> None:
    """The frame ids an ingested event names: every frame of the chunk's valid items, those labeled,
    those predicted, and those embedded per space."""
    note.frame_ids.extend(checked.frame_ids())
    labeled = dict.fromkeys(lab.frame_id for lab in checked.labels)
    predicted = dict.fromkeys(inf.frame_id for inf in checked.inferences)
    c = checked.columns
    if c is not None:
        labeled.update(dict.fromkeys(c.frame_ids[r] for r in np.flatnonzero(c.label_ok).tolist()))
        predicted.update(dict.fromkeys(c.frame_ids[r] for r in np.flatnonzero(c.inference_ok).tolist()))
    note.labeled_frame_ids.extend(labeled)
    note.predicted_frame_ids.extend(predicted)
    spaces: dict[str, dict[str, None]] = {}
    for block in checked.embeddings:
        spaces.setdefault(block.space.name, {}).update(dict.fromkeys(block.frame_ids))
    for space, ids in spaces.items():
        note.embeddings.add(space=space, frame_ids=list(ids))


def _rejected_part(upload: pb.UploadEvent, checked: CheckedChunk) -> pb.UploadEvent:
    out = pb.UploadEvent()
    out.CopyFrom(upload)
    chunk = upload.chunk
    del out.chunk.frames[:]
    del out.chunk.labels[:]
    del out.chunk.inferences[:]
    del out.chunk.embeddings[:]
    out.chunk.ClearField("columns")
    by_kind: dict[str, set[int]] = {"frame": set(), "labels": set(), "inference": set()}
    rows: dict[int, list[int]] = {}
    column_rows: set[int] = set()
    for r in checked.rejections:
        if r.columns:
            column_rows.add(r.index)
        elif r.kind == "embedding":
            rows.setdefault(r.index, []).append(r.row)
        else:
            by_kind[r.kind].add(r.index)
    out.chunk.frames.extend(chunk.frames[i] for i in sorted(by_kind["frame"]))
    out.chunk.labels.extend(chunk.labels[i] for i in sorted(by_kind["labels"]))
    out.chunk.inferences.extend(chunk.inferences[i] for i in sorted(by_kind["inference"]))
    if column_rows:
        out.chunk.columns.CopyFrom(take_rows(chunk.columns, sorted(column_rows)))
    for b, rs in sorted(rows.items()):
        block = chunk.embeddings[b]
        n = len(block.frame_ids)
        dim = len(block.vectors_f32) // 4 // n if n else 0
        part = out.chunk.embeddings.add(space=block.space)
        keep = [r for r in sorted(set(rs)) if r < n]
        part.frame_ids.extend(block.frame_ids[r] for r in keep)
        if block.object_ids:
            part.object_ids.extend(block.object_ids[r] for r in keep)
        if dim * n * 4 == len(block.vectors_f32):
            part.vectors_f32 = b"".join(block.vectors_f32[r * dim * 4 : (r + 1) * dim * 4] for r in keep)
        else:
            part.vectors_f32 = block.vectors_f32
    return out


class IngestConsumer(ThreadWorker):
    """A consumer-group member on the uploads topic, on its own thread. Offsets are committed only
    after a batch is fully handled; a store outage makes it retry the same batch with backoff."""

    def __init__(
        self,
        bus: EventBus,
        topics: Topics,
        processor: UploadProcessor,
        *,
        group_id: str,
        max_records: int = 64,
        batch_bytes: int = 32 * 1024 * 1024,
        name: str = "ingest-consumer",
    ) -> None:
        super().__init__()
        self.name = name
        self.bus = bus
        self.topics = topics
        self.processor = processor
        self.group_id = group_id
        self.max_records = max_records
        #: a batch holds about this many bytes of events (so many small chunks or a few large ones)
        self.batch_bytes = batch_bytes
        self._take = max_records
        self._last_poll = 0.0
        self.processed_events = 0
        self._lag = telemetry.LagTracker(group_id)

    def _run(self) -> None:
        """Two batches in flight: while the vectors of one are upserted (and its status and dead
        letters written) on a helper thread, the next is validated and written to ClickHouse. A
        batch is committed only when all of its writes are done, in order."""
        consumer = None
        backoff = Backoff()
        pending: tuple[dict[TopicPartition, int], Future[None], int] | None = None
        finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-finish")

        def settle() -> None:
            nonlocal pending
            if pending is not None:
                offsets, fut, n = pending
                pending = None
                fut.result()  # raises Unavailable: nothing of that batch is committed
                assert consumer is not None
                consumer.commit(offsets)
                self.processed_events += n
                telemetry.EVENTS_CONSUMED.labels(self.group_id, self.topics.uploads).inc(n)

        def on_revoke(_partitions: set[TopicPartition]) -> None:
            # Partitions are about to move: finish and commit what is in flight first.
            try:
                settle()
            except Exception:  # noqa: BLE001 - not committed: the next owner gets it again
                log.warning("%s: in-flight batch failed during a rebalance; it will be redelivered", self.name)

        try:
            while not self._stop.is_set():
                try:
                    if consumer is None:
                        consumer = self.bus.consumer(self.group_id, [self.topics.uploads], on_revoke=on_revoke)
                    events = consumer.poll(0.5 if pending is None else 0.0, max_records=self._take)
                    if events:
                        mean = sum(len(e.value) for e in events) / len(events)
                        self._take = int(min(self.max_records, max(1, self.batch_bytes // max(mean, 1))))
                    self._last_poll = time.monotonic()
                    staged = self._stage(events) if events else None
                    settle()
                    if staged is not None:
                        pending = (_next_offsets(events), finisher.submit(self._finish, staged, events), len(events))
                    if self._lag.due():
                        self._report_lag(consumer)
                    self._failing = None
                    backoff.reset()
                except Unavailable as exc:
                    pending = None
                    self._failing = str(exc)
                    log.warning("%s: %s; uncommitted batches will come again (retry in %.1fs)",
                                self.name, exc, backoff.current)  # fmt: skip
                    consumer = _rejoin(consumer)
                    backoff.wait(self._stop)
                except Exception:
                    pending = None
                    log.exception("%s: unexpected failure; rejoining", self.name)
                    self._failing = "unexpected failure; see the log"
                    consumer = _rejoin(consumer)
                    backoff.wait(self._stop)
            if consumer is not None:
                try:
                    settle()
                except Exception:  # noqa: BLE001
                    log.warning("%s: the last batch was not finished; it will be redelivered", self.name)
        finally:
            finisher.shutdown(wait=True)
            self._lag.clear()
            if consumer is not None:
                close_quietly(consumer)

    def _report_lag(self, consumer: Consumer) -> None:
        """``shoal_consumer_lag`` of the partitions this consumer holds (on its own thread: the
        clients are not thread-safe). A failure to read offsets only skips this report."""
        try:
            held = consumer.assignment()
            ends = consumer.end_offsets(held) if held else {}
            self._lag.update(ends, {tp: consumer.committed(tp) for tp in held})
        except Exception:  # metrics must never stop the consumer
            log.debug("%s: could not read offsets for the lag metric", self.name, exc_info=True)

    def _stage(self, events: Sequence[Event]) -> Staged | None:
        try:
            return self.processor.stage(events)
        except Unavailable:
            raise
        except Exception:
            log.warning("%s: a batch of %d events failed; handling them one by one", self.name, len(events),
                        exc_info=True)  # fmt: skip
            self._one_by_one(events)
            return None

    def _finish(self, staged: Staged | None, events: Sequence[Event]) -> None:
        if staged is None:
            return  # handled one by one already
        try:
            self.processor.finish(staged)
        except Unavailable:
            raise
        except Exception:
            log.warning("%s: finishing a batch of %d events failed; handling them one by one", self.name,
                        len(events), exc_info=True)  # fmt: skip
            self._one_by_one(events)

    def _one_by_one(self, events: Sequence[Event]) -> None:
        """A poison event must not block its partition: handle the batch one event at a time
        (rows the store refuses are rejected alone, see :meth:`UploadProcessor.process_alone`),
        and dead-letter an event that still fails, with its chunk's status saying why."""
        for event in events:
            try:
                self.processor.process_alone(event)
            except Unavailable:
                raise
            except Exception as exc:
                log.exception("dead-lettering an event that could not be processed")
                self.processor.fail(event, exc)


def _next_offsets(events: Sequence[Event]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for e in events:
        tp = e.tp
        out[tp] = max(out.get(tp, 0), e.offset + 1)
    return out


def _rejoin(consumer: object | None) -> None:
    """Leaves the group so that everything uncommitted is delivered again."""
    if consumer is not None:
        close_quietly(consumer)


def new_upload_id() -> str:
    return f"up-{uuid.uuid4().hex}"
