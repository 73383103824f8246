"""Upload status, summed over the chunk rows the RPC and the consumers record, and the counts of a
dataset. Both are aggregated in ClickHouse: one upload or a page of a project's uploads is a few
grouped queries whatever the number of chunks or frames."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shoal.common.data.datasets import Dataset
from shoal.common.data.projects import Project
from shoal.common.errors import InvalidArgument, NotFound, shown
from shoal.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from shoal.common.stores.metrics import MetricsStore
from shoal.common.timeutil import as_utc

KINDS = ("frames", "labels", "inferences", "embeddings")
STATES = ("PROCESSING", "COMPLETED", "COMPLETED_WITH_ERRORS", "INCOMPLETE")
#: the errors GetUploadStatus returns, and each upload of a ListUploads page (many uploads per page)
MAX_ERRORS = 100
LIST_ERRORS = 10
#: missing-chunk ranges an INCOMPLETE upload's error names
SHOWN_GAPS = 10

ErrorRow = tuple[int, tuple[str, str, str, str, str]]


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
    errors: list[ErrorRow] = field(default_factory=list)
    create_time: datetime | None = None
    update_time: datetime | None = None


# Each upload's status from its chunk rows ("accepted" by the RPC, "processed" by a consumer,
# "interrupted" where a stream failed): first per chunk, then per upload, then its total and state.
_PER_CHUNK = (
    "SELECT upload_id, chunk_index, max(stage = 'accepted') AS a, max(stage = 'processed') AS p,"
    " argMinIf(dataset, stage, dataset != '') AS chunk_dataset, max(total_chunks) AS chunk_total,"
    + "".join(f" sumIf({k}, stage = 'accepted') AS a_{k}, sumIf({k}, stage = 'processed') AS w_{k},"
              f" sumIf(rejected_{k}, stage = 'processed') AS r_{k}," for k in KINDS)
    + " sumIf(length(errors), stage = 'interrupted') AS chunk_interruptions,"
    " tupleElement(arrayElement(anyIf(errors, stage = 'interrupted'), -1), 'message') AS chunk_why,"
    " min(updated_at) AS first_time, max(updated_at) AS last_time"
    " FROM upload_chunks FINAL WHERE {where} GROUP BY upload_id, chunk_index"
)  # fmt: skip
_PER_UPLOAD = (
    "SELECT upload_id, argMinIf(chunk_dataset, chunk_index, chunk_dataset != '') AS dataset,"
    " max(chunk_total) AS declared, toInt64(countIf(a)) AS n_accepted, toInt64(countIf(p)) AS n_processed,"
    " countIf(a AND NOT p) AS n_pending,"
    + "".join(f" sum(a_{k}) AS accepted_{k}, sum(w_{k}) AS written_{k}, sum(r_{k}) AS rejected_{k}," for k in KINDS)
    + " sum(chunk_interruptions) AS interruptions,"
    " argMaxIf(chunk_why, chunk_index, chunk_interruptions > 0) AS why,"
    " groupArrayIf(chunk_index, a OR p) AS received, min(first_time) AS create_time, max(last_time) AS update_time"
    f" FROM ({_PER_CHUNK}) GROUP BY upload_id"
)  # fmt: skip
# The chunks expected: the declared total, else those recorded. Gaps: the (first, last) ranges of
# the expected chunk indices that never arrived.
_SUMMARY = (
    "SELECT *, if(declared > 0, declared, if(n_accepted = 0, n_processed, n_accepted)) AS total,"
    " arraySort(arrayFilter(i -> i >= 0 AND i < total, received)) AS arrived,"
    " arrayFilter(g -> g.1 <= g.2, arrayMap((lo, hi) -> (lo + 1, hi - 1), arrayPushFront(arrived, -1),"
    " arrayPushBack(arrived, total))) AS gaps,"
    " multiIf(n_pending > 0, 'PROCESSING', length(arrived) < total AND interruptions > 0, 'INCOMPLETE',"
    " n_processed < greatest(total, n_accepted), 'PROCESSING',"
    " " + " + ".join(f"rejected_{k}" for k in KINDS) + " > 0, 'COMPLETED_WITH_ERRORS', 'COMPLETED') AS state,"
    " toUnixTimestamp64Milli(create_time) AS create_ms"
    f" FROM ({_PER_UPLOAD})"
)  # fmt: skip
_COLUMNS = (
    "upload_id, dataset, state, total, n_accepted, n_processed,"
    + "".join(f" accepted_{k}, written_{k}, rejected_{k}," for k in KINDS)
    + f" create_time, update_time, create_ms, why, arraySlice(gaps, 1, {SHOWN_GAPS}), length(gaps),"
    " total - length(arrived)"
)
#: the position of create_ms in _COLUMNS
_CREATE_MS = 6 + 3 * len(KINDS) + 2


def upload_status(metrics: MetricsStore, project: str, upload_id: str, *, max_errors: int = MAX_ERRORS) -> UploadStatus:
    """One upload's status with its first ``max_errors`` errors; NotFound when nothing of it is recorded."""
    if not upload_id:
        raise InvalidArgument("is empty", field="upload_id")
    where = "project = {project:String} AND upload_id = {upload_id:String}"
    rows = metrics.query(
        f"SELECT {_COLUMNS} FROM ({_SUMMARY.format(where=where)})", {"project": project, "upload_id": upload_id}
    ).rows
    if not rows:
        raise NotFound(f"project {project!r} has no upload {upload_id!r}", field="upload_id")
    return _with_errors(metrics, project, [_status(rows[0])], max_errors)[0]


def list_uploads(
    metrics: MetricsStore,
    project: str,
    *,
    dataset: str = "",
    states: Sequence[str] = (),
    page_size: int = 0,
    page_token: str = "",
    max_errors: int = LIST_ERRORS,
) -> tuple[list[UploadStatus], str, int]:
    """One page of a project's uploads, newest first (by the time the first chunk was recorded,
    then by upload id, both descending), optionally of one dataset or in some states; the token of
    the next page ("" after the last) and how many uploads match in all. Keyset pages: the token
    holds the last upload's (time, id), so uploads made while paging do not shift later pages."""
    if page_size < 0:
        raise InvalidArgument(f"must be >= 0, got {page_size}", field="page.page_size")
    for i, state in enumerate(states):
        if state not in STATES:
            raise InvalidArgument(f"unknown upload state {state!r}", field=f"states[{i}]")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    scope = f"uploads|{project}|{dataset}|{','.join(sorted(set(states)))}"
    params: dict[str, Any] = {"project": project, "limit": size + 1}
    filters = ["1"]
    if dataset:
        filters.append("dataset = {dataset:String}")
        params["dataset"] = dataset
    if states:
        filters.append("state IN {states:Array(String)}")
        params["states"] = sorted(set(states))
    matching = f"FROM ({_SUMMARY.format(where='project = {project:String}')}) WHERE {' AND '.join(filters)}"
    total = int(metrics.query(f"SELECT count() {matching}", params).scalar() or 0)
    after = ""
    if page_token:
        params["after_ms"], params["after_id"] = _read_cursor(page_token, scope)
        after = (
            " AND (create_ms < {after_ms:Int64} OR (create_ms = {after_ms:Int64} AND upload_id < {after_id:String}))"
        )
    rows = metrics.query(
        f"SELECT {_COLUMNS} {matching}{after} ORDER BY create_ms DESC, upload_id DESC LIMIT {{limit:UInt32}}", params
    ).rows
    more = len(rows) > size
    rows = rows[:size]
    token = _cursor(int(rows[-1][_CREATE_MS]), str(rows[-1][0]), scope) if more else ""
    return _with_errors(metrics, project, [_status(r) for r in rows], max_errors), token, total


def _status(row: Sequence[Any]) -> UploadStatus:
    upload_id, dataset, state, total, n_accepted, n_processed = row[:6]
    counts = row[6 : 6 + 3 * len(KINDS)]
    accepted = {k: int(counts[3 * i]) for i, k in enumerate(KINDS)}
    written = {k: int(counts[3 * i + 1]) for i, k in enumerate(KINDS)}
    rejected = {k: int(counts[3 * i + 2]) for i, k in enumerate(KINDS)}
    create_time, update_time, _, why, gaps, n_gaps, missing = row[6 + 3 * len(KINDS) :]
    if not n_accepted:
        # Events a producer wrote straight to Kafka: what arrived is what was accepted.
        accepted = {k: written[k] + rejected[k] for k in KINDS}
    errors: list[ErrorRow] = []
    if state == "INCOMPLETE":
        ranges = [(int(a), int(b)) for a, b in gaps]
        errors.append((ranges[0][0], _incomplete_error(upload_id, ranges, int(n_gaps), int(missing), int(total), why)))
    return UploadStatus(
        upload_id=str(upload_id),
        dataset=str(dataset),
        state=str(state),
        chunks_total=int(total),
        chunks_processed=int(n_processed),
        accepted=accepted,
        written=written,
        rejected=rejected,
        errors=errors,
        create_time=as_utc(create_time),
        update_time=as_utc(update_time),
    )


def _with_errors(metrics: MetricsStore, project: str, found: list[UploadStatus], max_errors: int) -> list[UploadStatus]:
    """Adds each upload's first rejected rows (by chunk index) after what it holds already, up to
    ``max_errors`` in all."""
    wanted = [s.upload_id for s in found if len(s.errors) < max_errors]
    rows = metrics.query_ids(
        "SELECT upload_id, chunk_index, arraySlice(errors, 1, {n:UInt32}) FROM upload_chunks FINAL"
        " WHERE project = {project:String} AND upload_id IN {ids:Array(String)} AND stage = 'processed'"
        " AND notEmpty(errors) ORDER BY upload_id, chunk_index LIMIT {n:UInt32} BY upload_id",
        {"project": project, "n": max_errors},
        "ids",
        wanted,
    ) if wanted else []  # fmt: skip
    by_id = {s.upload_id: s for s in found}
    for upload_id, index, errs in rows:
        by_id[str(upload_id)].errors.extend(
            (int(index), tuple(e.values()) if isinstance(e, dict) else tuple(e)) for e in errs
        )
    for s in found:
        del s.errors[max_errors:]
    return found


def _fingerprint(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def _cursor(create_ms: int, upload_id: str, scope: str) -> str:
    raw = json.dumps({"k": [create_ms, upload_id], "f": _fingerprint(scope)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(token: str, scope: str) -> tuple[int, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode() + b"==="))
        (create_ms, upload_id), fp = raw["k"], str(raw["f"])
        create_ms, upload_id = int(create_ms), str(upload_id)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument("is not a token this server issued", field="page.page_token") from exc
    if fp != _fingerprint(scope):
        raise InvalidArgument("belongs to a different query", field="page.page_token")
    return create_ms, upload_id


def _incomplete_error(
    upload_id: str, gaps: list[tuple[int, int]], n_gaps: int, count: int, total: int, why: str
) -> tuple[str, str, str, str, str]:
    """The error of an INCOMPLETE upload: ``count`` chunks are missing, in ``n_gaps`` ranges, the
    first of which are ``gaps``."""
    shown_gaps = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in gaps[:SHOWN_GAPS])
    more = f" and {n_gaps - SHOWN_GAPS} more ranges" if n_gaps > SHOWN_GAPS else ""
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
    # every labeled frame has one latest version: a class (classification) or none (objects, multi-label)
    for class_id, n_latest, n in metrics.query(
        f"SELECT class_id, countIf({latest}), count() FROM label_versions FINAL WHERE {where} GROUP BY class_id",
        params,
    ).rows:
        labeled += int(n_latest)
        versions += int(n)
        if class_id is not None:
            frames_per_class[int(class_id)] = int(n_latest)
    objects_per_class: dict[int, int] = {}
    if project.task_type == "MULTI_LABEL":  # a frame counts for each class of its latest label version
        for class_id, n in metrics.query(
            f"SELECT c, count() FROM label_versions FINAL ARRAY JOIN class_ids AS c WHERE {where} AND {latest}"
            " GROUP BY c",
            params,
        ).rows:
            frames_per_class[int(class_id)] = int(n)
    elif project.task_type != "CLASSIFICATION":
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
