"""Idempotent writes of checked chunks into ClickHouse and Milvus.

Every row's key is derived from the event (project, dataset, frame, object; label versions from
the event's idempotency key), so a redelivered event writes the same rows again: ReplacingMergeTree
keeps one, and a Milvus upsert overwrites in place. Reads use ``FINAL`` (or ``argMax``) so a
duplicate that is not merged yet is never counted twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from shoal.common import telemetry
from shoal.common.data.embeddings import EMBEDDING_FIELDS, vector_pk
from shoal.common.data.evaluations import EvaluationRefresher
from shoal.common.data.frames import SHAPE_COLUMNS
from shoal.common.data.outcomes import OutcomeRefresher
from shoal.common.data.segmentation import ConfusionRefresher
from shoal.common.media import MediaReader
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.stores.vectors import CollectionSpec, VectorStore, collection_name
from shoal.common.v1 import common_pb2
from shoal.ingest import columns as columnar
from shoal.ingest.point_counts import UNKNOWN, PointCounter
from shoal.ingest.scenes import cuboid_row
from shoal.ingest.shapes import mask_area
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.ingest.validate import CheckedChunk

log = logging.getLogger(__name__)

MIGRATIONS = (
    Migration(
        component="ingest",
        version=7,
        name="upload chunks, declared apart from the shared frame tables",
        statements=(
            # per upload chunk: what the RPC accepted, and what the consumer wrote or rejected
            "CREATE TABLE IF NOT EXISTS upload_chunks ("
            " project String, upload_id String, chunk_index Int64, stage LowCardinality(String),"
            " dataset String, total_chunks Int64,"
            " frames UInt64, labels UInt64, inferences UInt64, embeddings UInt64,"
            " rejected_frames UInt64, rejected_labels UInt64, rejected_inferences UInt64, rejected_embeddings UInt64,"
            " errors Array(Tuple(reason String, field String, frame_id String, object_id String, message String)),"
            " updated_at DateTime64(3, 'UTC'), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, upload_id, chunk_index, stage)",
        ),
    ),
)

_METRIC = {"COSINE": "COSINE", "L2": "L2", "INNER_PRODUCT": "IP"}


VectorWork = dict[tuple[str, str], list[tuple["EventMeta", Any]]]


@dataclass
class TableWrites:
    """What :meth:`IngestWriter.write_tables` wrote, and the work that follows from it."""

    written: list[Written]
    #: the vectors still to upsert (:meth:`IngestWriter.write_vectors`)
    vectors: VectorWork
    #: (project, dataset) -> (frame ids touched, the project's class ids in order), for
    #: :meth:`IngestWriter.refresh_derived`
    touched: dict[tuple[str, str], tuple[set[str], list[int]]]


@dataclass(frozen=True)
class EventMeta:
    project: str
    dataset: str
    upload_id: str
    chunk_index: int
    idempotency_key: str
    inference_set: str
    produced_ns: int


@dataclass(frozen=True)
class Written:
    frames: int
    labels: int
    inferences: int
    embeddings: int


def _split_metadata(values: Mapping[str, common_pb2.Value]) -> tuple[dict, dict, dict, dict]:  # type: ignore[type-arg]
    s, n, b, t = {}, {}, {}, {}
    for key, v in values.items():
        kind = v.WhichOneof("kind")
        if kind == "string_value":
            s[key] = v.string_value
        elif kind == "number_value":
            n[key] = v.number_value
        elif kind == "bool_value":
            b[key] = int(v.bool_value)
        elif kind == "timestamp_value":
            t[key] = v.timestamp_value.ToDatetime(tzinfo=UTC)
    return s, n, b, t


def _shape(o: pb.LabelObject | pb.PredictedObject) -> list[Any]:
    """The shape columns of a checked object (``SHAPE_COLUMNS``): its compact mask and area, its
    polygons, its keypoints, and its cuboid with its velocity and attribute."""
    c = o.cuboid
    return [
        o.mask.counts.decode("ascii"),
        mask_area(o),
        [list(p.points) for p in o.polygons],
        [kp.x for kp in o.keypoints],
        [kp.y for kp in o.keypoints],
        [kp.visibility if isinstance(o, pb.LabelObject) else 1 for kp in o.keypoints],
        cuboid_row(c) if o.HasField("cuboid") else [],
        [c.vx, c.vy] if c.HasField("vx") else [],
        c.attribute,
    ]


def _events(item: pb.FrameLabels | pb.FrameInference) -> list[list[Any]]:
    """The sound-event columns of a checked label or prediction: onsets, offsets, classes (and scores)."""
    out = [[e.onset for e in item.events], [e.offset for e in item.events], [e.class_id for e in item.events]]
    if isinstance(item, pb.FrameInference):
        out.append([e.score for e in item.events])
    return out


def _pose(frame: pb.Frame) -> list[float]:
    if not frame.HasField("ego_pose"):
        return []
    p, q = frame.ego_pose, frame.ego_pose.rotation
    return [p.x, p.y, p.z, q.w, q.x, q.y, q.z]


def _class_runs(item: pb.FrameLabels | pb.FrameInference) -> list[list[int]]:
    """The class-run columns of a checked label or prediction (empty without a class map)."""
    runs = item.segmentation.runs
    return [list(runs.classes), list(runs.lengths)]


class IngestWriter:
    def __init__(self, metrics: MetricsStore, vectors: VectorStore, media: MediaReader | None = None) -> None:
        """``media`` reads the point clouds whose points inside labeled cuboids are counted (None: counts not
        given stay unknown)."""
        self.metrics = metrics
        self.vectors = vectors
        self.points = PointCounter(metrics, media)
        self.evaluations = EvaluationRefresher(metrics)
        self.outcomes = OutcomeRefresher(metrics)
        self.segmentation = ConfusionRefresher(metrics)

    def write(self, batch: Sequence[tuple[EventMeta, CheckedChunk]]) -> list[Written]:
        """Writes the valid items of several events: ClickHouse, the evaluation rows, Milvus."""
        done = self.write_tables(batch)
        self.refresh_derived(done.touched)
        self.write_vectors(done.vectors)
        return done.written

    def refresh_derived(self, touched: dict[tuple[str, str], tuple[set[str], list[int]]]) -> None:
        """Recomputes the derived rows of the frames a batch touched: ``evaluations``, and the
        ``detection_outcomes`` of detection sets."""
        for (project, dataset), (ids, ontology) in touched.items():
            self.evaluations.refresh(project, dataset, ids, ontology)
            self.outcomes.refresh(project, dataset, ids)
            self.segmentation.refresh(project, dataset, ids)

    def write_tables(self, batch: Sequence[tuple[EventMeta, CheckedChunk]]) -> TableWrites:
        """Writes the ClickHouse rows of several events, batched per table."""
        frames, versions, objects, inferences, predicted, key_types = [], [], [], [], [], []
        frame_blocks, label_blocks, inference_blocks = [], [], []
        touched: dict[tuple[str, str], set[str]] = defaultdict(set)
        ontologies: dict[tuple[str, str], list[int]] = {}
        vectors: dict[tuple[str, str], list[tuple[EventMeta, object]]] = defaultdict(list)
        out = []
        counted = self.points.count_labels([(m.project, m.dataset, c.frames, c.labels) for m, c in batch])
        for position, (meta, chunk) in enumerate(batch):
            key = (meta.project, meta.dataset)
            ontologies[key] = chunk.ontology
            key_types += [
                [meta.project, meta.dataset, k, kind, meta.produced_ns] for k, kind in chunk.key_types.items()
            ]
            seen = touched[key]
            seen.update(f.frame_id for f in chunk.frames)
            seen.update(lab.frame_id for lab in chunk.labels)
            seen.update(inf.frame_id for inf in chunk.inferences)
            if chunk.columns is not None:
                c = chunk.columns
                rows = c.frame_ok | c.label_ok | c.inference_ok
                seen.update(c.frame_ids if rows.all() else (c.frame_ids[r] for r in np.flatnonzero(rows).tolist()))
            for f in chunk.frames:
                s, n, b, t = _split_metadata(f.metadata)
                capture = f.capture_time.ToDatetime(tzinfo=UTC) if f.HasField("capture_time") else None
                frames.append(
                    [
                        meta.project,
                        meta.dataset,
                        f.frame_id,
                        f.split,
                        f.media_uri,
                        pb.MediaType.Name(f.media_type).removeprefix("MEDIA_TYPE_") if f.media_type else "",
                        f.width,
                        f.height,
                        s,
                        n,
                        b,
                        t,
                        capture,
                        meta.upload_id,
                        meta.produced_ns,
                        pb.CoordinateFrame.Name(f.coordinate_frame).removeprefix("COORDINATE_FRAME_")
                        if f.coordinate_frame
                        else "",
                        _pose(f),
                        [(cam.name, cam.uri) for cam in f.cameras],
                        f.duration_seconds,
                        f.sample_rate,
                    ]
                )
            for lab in chunk.labels:
                prov = lab.provenance
                when = (
                    prov.time.ToDatetime(tzinfo=UTC)
                    if prov.HasField("time")
                    else datetime.fromtimestamp(meta.produced_ns / 1e9, UTC)
                )
                version = meta.idempotency_key
                versions.append(
                    [
                        meta.project,
                        meta.dataset,
                        lab.frame_id,
                        version,
                        when,
                        lab.class_id if lab.HasField("class_id") else None,
                        len(lab.objects),
                        prov.source or "sdk",
                        prov.author,
                        prov.reason,
                        meta.upload_id,
                        list(lab.class_ids),
                        *_class_runs(lab),
                        *_events(lab),
                    ]
                )
                for o in lab.objects:
                    s, n, _b, _t = _split_metadata(o.attributes)
                    box = o.box
                    objects.append(
                        [
                            meta.project,
                            meta.dataset,
                            lab.frame_id,
                            version,
                            o.object_id,
                            o.class_id,
                            box.x,
                            box.y,
                            box.width,
                            box.height,
                            int(o.is_crowd),
                            o.annotation_uri,
                            s,
                            n,
                            *_shape(o),
                            o.cuboid.num_points
                            if o.cuboid.HasField("num_points")
                            else counted.get((position, lab.frame_id, o.object_id), UNKNOWN),
                        ]
                    )
            if chunk.columns is not None:
                block = columnar.BlockMeta(
                    meta.project, meta.dataset, meta.inference_set, meta.upload_id,
                    meta.idempotency_key, meta.produced_ns,
                )  # fmt: skip
                frame_blocks.append(columnar.frame_table(block, chunk.columns))
                label_blocks.append(columnar.label_table(block, chunk.columns))
                inference_blocks.append(columnar.inference_table(block, chunk.columns))
            for inf in chunk.inferences:
                probs = list(inf.class_probabilities)
                conf = max(probs) if probs else 0.0
                # the predicted class id: probabilities are in the order of the ontology
                pred = chunk.ontology[probs.index(conf)] if probs else -1
                inferences.append(
                    [
                        meta.project,
                        meta.inference_set,
                        meta.dataset,
                        inf.frame_id,
                        pred,
                        conf,
                        probs,
                        len(inf.objects),
                        meta.upload_id,
                        meta.produced_ns,
                        *_class_runs(inf),
                        inf.probabilities_uri,
                        *_events(inf),
                    ]
                )
                for o in inf.objects:
                    box = o.box
                    predicted.append(
                        [
                            meta.project,
                            meta.inference_set,
                            meta.dataset,
                            inf.frame_id,
                            o.object_id,
                            o.class_id,
                            o.score,
                            box.x,
                            box.y,
                            box.width,
                            box.height,
                            list(o.class_probabilities),
                            meta.produced_ns,
                            *_shape(o),
                            [kp.score for kp in o.keypoints],
                        ]
                    )
            for rows in chunk.embeddings:
                vectors[(meta.project, rows.space.name)].append((meta, rows))
            out.append(Written(*chunk.counts()))

        m = self.metrics

        def insert_arrow(table: str, data: Any) -> None:
            telemetry.count_rows(table, m.insert_arrow(table, data))

        def insert(table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
            telemetry.count_rows(table, m.insert(table, rows, columns))

        insert("metadata_keys", key_types, ("project", "dataset", "key", "kind", "version"))
        insert_arrow("frames", columnar.concat(frame_blocks))
        insert_arrow("label_versions", columnar.concat(label_blocks))
        insert_arrow("inferences", columnar.concat(inference_blocks))
        insert(
            "frames",
            frames,
            (
                "project",
                "dataset",
                "frame_id",
                "split",
                "media_uri",
                "media_type",
                "width",
                "height",
                "meta_str",
                "meta_num",
                "meta_bool",
                "meta_time",
                "capture_time",
                "upload_id",
                "version",
                "coordinate_frame",
                "ego_pose",
                "cameras",
                "duration_seconds",
                "sample_rate",
            ),
        )
        insert(
            "label_versions",
            versions,
            (
                "project",
                "dataset",
                "frame_id",
                "label_version",
                "version_time",
                "class_id",
                "num_objects",
                "source",
                "author",
                "reason",
                "upload_id",
                "class_ids",
                "seg_classes",
                "seg_runs",
                "ev_onsets",
                "ev_offsets",
                "ev_classes",
            ),
        )
        insert(
            "label_objects",
            objects,
            (
                "project",
                "dataset",
                "frame_id",
                "label_version",
                "object_id",
                "class_id",
                "x",
                "y",
                "w",
                "h",
                "is_crowd",
                "annotation_uri",
                "attr_str",
                "attr_num",
                *SHAPE_COLUMNS,
                "num_points",
            ),
        )
        insert(
            "inferences",
            inferences,
            (
                "project",
                "inference_set",
                "dataset",
                "frame_id",
                "pred_class",
                "confidence",
                "probs",
                "num_objects",
                "upload_id",
                "version",
                "seg_classes",
                "seg_runs",
                "probs_uri",
                "ev_onsets",
                "ev_offsets",
                "ev_classes",
                "ev_scores",
            ),
        )
        insert(
            "predicted_objects",
            predicted,
            (
                "project",
                "inference_set",
                "dataset",
                "frame_id",
                "object_id",
                "class_id",
                "score",
                "x",
                "y",
                "w",
                "h",
                "probs",
                "version",
                *SHAPE_COLUMNS,
                "kp_score",
            ),
        )
        return TableWrites(out, vectors, {key: (ids, ontologies[key]) for key, ids in touched.items() if ids})

    def write_vectors(self, vectors: VectorWork) -> None:
        """Upserts the vectors of :meth:`write_tables`, per collection and dataset partition."""
        for (project, space_name), items in vectors.items():
            space = items[0][1].space  # type: ignore[attr-defined]
            name = collection_name(project, space_name)
            self.vectors.ensure_collection(
                CollectionSpec(
                    name=name,
                    dimension=space.dimension,
                    metric=_METRIC[space.metric],  # type: ignore[arg-type]
                    scalar_fields=EMBEDDING_FIELDS,
                    description=f"{project}/{space_name} {space.model_name}@{space.model_version}",
                )
            )
            by_dataset: dict[str, list[object]] = defaultdict(list)
            for meta, rows in items:
                by_dataset[meta.dataset].append(rows)
            for dataset, blocks in by_dataset.items():
                ids, fids, oids, vecs = [], [], [], []
                for rows in blocks:
                    fids += rows.frame_ids  # type: ignore[attr-defined]
                    oids += rows.object_ids  # type: ignore[attr-defined]
                    vecs.append(rows.vectors)  # type: ignore[attr-defined]
                    ids += [vector_pk(dataset, f, o) for f, o in zip(rows.frame_ids, rows.object_ids, strict=True)]  # type: ignore[attr-defined]
                self.vectors.upsert(
                    name,
                    partition=dataset,
                    ids=ids,
                    vectors=np.concatenate(vecs),
                    fields={"dataset": [dataset] * len(ids), "frame_id": fids, "object_id": oids},
                )
                telemetry.VECTORS_WRITTEN.inc(len(ids))
