"""Upload status, summed over the chunk rows the RPC and the consumers record."""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.common.errors import InvalidArgument, NotFound, shown
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
