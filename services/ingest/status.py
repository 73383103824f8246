"""Upload status, summed over the chunk rows the RPC and the consumers record."""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.common.errors import InvalidArgument, NotFound
from shoal.common.stores.metrics import MetricsStore

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
    for index, stage, ds, total_chunks, f, lab, inf, emb, rf, rl, ri, re_, errs in rows:
        dataset = dataset or ds
        total = max(total, int(total_chunks))
        if stage == "accepted":
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
    if len(processed_chunks) < max(total, len(accepted_chunks)):
        state = "PROCESSING"
    elif any(rejected.values()):
        state = "COMPLETED_WITH_ERRORS"
    else:
        state = "COMPLETED"
    return UploadStatus(upload_id, dataset, state, total, len(processed_chunks), accepted, written, rejected, errors)


@dataclass
class DatasetStats:
    frames: int
    labeled_frames: int
    label_versions: int
    inferences: int
    embeddings: dict[str, int]


def dataset_stats(metrics: MetricsStore, vectors: object, project: object, dataset: str) -> DatasetStats:
    """Counts read back from both stores (``FINAL``: a redelivered row is never counted twice)."""
    from shoal.common.stores.vectors import VectorStore, collection_name

    assert isinstance(vectors, VectorStore)
    params = {"project": project.name, "dataset": dataset}  # type: ignore[attr-defined]
    where = "project = {project:String} AND dataset = {dataset:String}"
    frames = int(metrics.query(f"SELECT count() FROM frames FINAL WHERE {where}", params).scalar() or 0)
    labeled, versions = metrics.query(
        f"SELECT uniqExact(frame_id), count() FROM label_versions FINAL WHERE {where}", params
    ).rows[0]
    inferences = int(metrics.query(f"SELECT count() FROM inferences FINAL WHERE {where}", params).scalar() or 0)
    embeddings = {}
    for space in project.embedding_spaces:  # type: ignore[attr-defined]
        name = collection_name(project.name, space.name)  # type: ignore[attr-defined]
        embeddings[space.name] = vectors.count(name, partition=dataset) if vectors.has_collection(name) else 0
    return DatasetStats(frames, int(labeled), int(versions), inferences, embeddings)
