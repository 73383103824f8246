"""Upload status, summed over the chunk rows the RPC and the consumers record."""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.common.errors import InvalidArgument, NotFound, shown
from shoal.common.stores.metrics import MetricsStore
from shoal.ingest.catalog import Project
from shoal.ingest.datasets import Dataset

KINDS = ("frames", "labels", "inferences", "embeddings")


@dataclass
class UploadStatus:
    upload_id: str
    dataset: str
    state: str
    chunks_total: int
    chunks_processed: int
    accepted: dict[str, int]
    written: dict[str, int]
    rejected: dict[str, int]
    errors: list[tuple[int, tuple[str, str, str, str, str]]] = field(default_factory=list)


def upload_status(metrics: MetricsStore, project: str, upload_id: str, *, max_errors: int = 100) -> UploadStatus:
    if not upload_id:
        raise InvalidArgument("is empty", field="upload_id")
    rows = metrics.query(
        "SELECT chunk_index, stage, dataset, total_chunks, frames, labels, inferences, embeddings,"
        " rejected_frames, rejected_labels, rejected_inferences, rejected_embeddings, errors"
        " FROM upload_chunks FINAL WHERE project = {project:String} AND upload_id = {upload_id:String}"
        " ORDER BY chunk_index, stage",
        {"project": project, "upload_id": upload_id},
    ).rows
    if not rows:
        raise NotFound(f"project {project!r} has no upload {upload_id!r}", field="upload_id")
    accepted = dict.fromkeys(KINDS, 0)
    written = dict.fromkeys(KINDS, 0)
    rejected = dict.fromkeys(KINDS, 0)
    accepted_chunks: set[int] = set()
    processed_chunks: set[int] = set()
    total = 0
    dataset = ""
    errors: list[tuple[int, tuple[str, str, str, str, str]]] = []
    interrupted: list[str] = []
    for index, stage, ds, total_chunks, f, lab, inf, emb, rf, rl, ri, re_, errs in rows:
        dataset = dataset or ds
        total = max(total, int(total_chunks))
        if stage == "interrupted":
            interrupted += [str(e["message"] if isinstance(e, dict) else e[4]) for e in errs]
        elif stage == "accepted":
            accepted_chunks.add(index)
            for k, v in zip(KINDS, (f, lab, inf, emb), strict=True):
                accepted[k] += int(v)
        else:
            processed_chunks.add(index)
            for k, v in zip(KINDS, (f, lab, inf, emb), strict=True):
                written[k] += int(v)
            for k, v in zip(KINDS, (rf, rl, ri, re_), strict=True):
                rejected[k] += int(v)
            for e in errs:
                if len(errors) < max_errors:
                    errors.append((int(index), tuple(e.values()) if isinstance(e, dict) else tuple(e)))  # type: ignore[arg-type]
    if not accepted_chunks:
        # Events a producer wrote straight to Kafka: what arrived is what was accepted.
        accepted = {k: written[k] + rejected[k] for k in KINDS}
        total = total or len(processed_chunks)
    total = total or len(accepted_chunks)
    received = accepted_chunks | processed_chunks
    gaps = missing_chunks(received, total)
    if accepted_chunks - processed_chunks:
        state = "PROCESSING"
    elif gaps and interrupted:
        state = "INCOMPLETE"
        errors.insert(0, (gaps[0][0], _incomplete_error(upload_id, gaps, total, interrupted[-1])))
        del errors[max_errors:]
    elif len(processed_chunks) < max(total, len(accepted_chunks)):
        state = "PROCESSING"
    elif any(rejected.values()):
        state = "COMPLETED_WITH_ERRORS"
    else:
        state = "COMPLETED"
    return UploadStatus(upload_id, dataset, state, total, len(processed_chunks), accepted, written, rejected, errors)


def missing_chunks(received: set[int], total: int) -> list[tuple[int, int]]:
    """The chunk indices below ``total`` not in ``received``, as (first, last) ranges."""
    gaps = []
    expected = 0
    for i in sorted(i for i in received if 0 <= i < total):
        if i > expected:
            gaps.append((expected, i - 1))
        expected = i + 1
    if expected < total:
        gaps.append((expected, total - 1))
    return gaps


def _incomplete_error(
    upload_id: str, gaps: list[tuple[int, int]], total: int, why: str
) -> tuple[str, str, str, str, str]:
    shown_gaps = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in gaps[:10])
    more = f" and {len(gaps) - 10} more ranges" if len(gaps) > 10 else ""
    count = sum(b - a + 1 for a, b in gaps)
    message = (
        f"{count} of {total} chunks never arrived (chunks {shown_gaps}{more}): the upload stream ended before "
        f"them ({why}); send them again with upload id {shown(upload_id)} and their chunk indices"
    )
    return ("INCOMPLETE", "chunk_index", "", "", message)


@dataclass
class DatasetStats:
    frames: int
    labeled_frames: int
    label_versions: int
    inferences: int
    embeddings: dict[str, int]
    #: frames by split ("" for frames without one)
    frames_per_split: dict[str, int] = field(default_factory=dict)
    #: class id -> frames whose latest label is the class (classification) or has an object of it
    labeled_frames_per_class: dict[int, int] = field(default_factory=dict)
    #: class id -> objects of the class in the frames' latest label versions (tasks labeling objects)
    labeled_objects_per_class: dict[int, int] = field(default_factory=dict)


#: the label versions that are not their frame's latest (the latest: the newest ``(version_time,
#: label_version)``, the version analyses read), as (frame_id, label_version); few unless many frames
#: were relabeled, so "all versions but these" counts the latest ones without joining every frame
_SUPERSEDED = (
    "SELECT frame_id, v.2 FROM (SELECT frame_id, arraySort(groupArray((version_time, label_version))) AS vs"
    " FROM label_versions FINAL WHERE {where} GROUP BY frame_id HAVING length(vs) > 1)"
    " ARRAY JOIN arrayPopBack(vs) AS v"
)


def dataset_stats(metrics: MetricsStore, vectors: object, project: Project, dataset: Dataset) -> DatasetStats:
    """Counts read back from both stores (``FINAL``: a redelivered row is never counted twice).

    Aggregated in ClickHouse, one grouped query each whatever the dataset's size: frames by split,
    label versions by class (all of them, and the latest of each frame), and for tasks that label
    objects the objects of the latest versions by class."""
    from shoal.common.stores.vectors import VectorStore, collection_name

    assert isinstance(vectors, VectorStore)
    params = {"project": project.name, "dataset": dataset.name}
    where = "project = {project:String} AND dataset = {dataset:String}"
    latest = f"(frame_id, label_version) NOT IN ({_SUPERSEDED.format(where=where)})"
    per_split = dict.fromkeys(dataset.splits, 0)
    for split, n in metrics.query(f"SELECT split, count() FROM frames FINAL WHERE {where} GROUP BY split", params).rows:
        per_split[str(split)] = int(n)
    classes = [c.id for c in project.classes]
    frames_per_class = dict.fromkeys(classes, 0)
    labeled = versions = 0
    # every labeled frame has one latest version: a class (classification) or none (objects)
    for class_id, n_latest, n in metrics.query(
        f"SELECT class_id, countIf({latest}), count() FROM label_versions FINAL WHERE {where} GROUP BY class_id",
        params,
    ).rows:
        labeled += int(n_latest)
        versions += int(n)
        if class_id is not None:
            frames_per_class[int(class_id)] = int(n_latest)
    objects_per_class: dict[int, int] = {}
    if project.task_type != "CLASSIFICATION":
        objects_per_class = dict.fromkeys(classes, 0)
        for class_id, n, frames in metrics.query(
            "SELECT class_id, count(), uniqExact(frame_id) FROM label_objects FINAL"
            f" WHERE {where} AND is_crowd = 0 AND {latest} GROUP BY class_id",
            params,
        ).rows:
            objects_per_class[int(class_id)] = int(n)
            frames_per_class[int(class_id)] = int(frames)
    inferences = int(metrics.query(f"SELECT count() FROM inferences FINAL WHERE {where}", params).scalar() or 0)
    embeddings = {}
    for space in project.embedding_spaces:
        name = collection_name(project.name, space.name)
        embeddings[space.name] = vectors.count(name, partition=dataset.name) if vectors.has_collection(name) else 0
    return DatasetStats(
        frames=sum(per_split.values()),
        labeled_frames=labeled,
        label_versions=versions,
        inferences=inferences,
        embeddings=embeddings,
        frames_per_split=per_split,
        labeled_frames_per_class=frames_per_class,
        labeled_objects_per_class=objects_per_class,
    )
