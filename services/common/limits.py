"""Bounds on every size a caller controls in a request, checked before any work is done.

Each string and each list of a request message has a limit: the ones named in :data:`FIELD_LIMITS`
or, failing that, the default of its kind (:data:`MAX_NAME` characters for a string,
:data:`MAX_LIST` items for a list or map). :class:`~shoal.common.interceptors.LimitInterceptor`
applies them to every message of every RPC, streams included, and answers INVALID_ARGUMENT naming
the field, its size and the limit. Upload chunks are the exception: their items are judged row by
row by the ingest validation, so that one bad row is rejected alone (:data:`PER_ROW_CHECKED`).

docs/reference/limits.md is :func:`markdown` (``make docs`` writes it; ``tests/unit/test_docs.py``
keeps it current).
Limits that depend on more than a length (a probability vector's length, an embedding's dimension,
a chunk's item count) are checked where the value is understood.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from shoal.common.errors import InvalidArgument

#: names and ids: projects, datasets, inference sets, spaces, classes, frames, objects, segments, jobs
MAX_NAME = 256
#: free text: reasons, authors, string values of filters and metadata (characters)
MAX_TEXT = 4096
#: descriptions of projects, datasets and inference sets
MAX_DESCRIPTION = 10_000
#: page tokens (a keyset cursor carries the sort values of the last row)
MAX_PAGE_TOKEN = 16_384
#: any list or map of a request not named below
MAX_LIST = 1_000
#: classes of a project's ontology
MAX_CLASSES = 10_000
#: conditions of one filter (every condition is one more term of the query)
MAX_CONDITIONS = 64
#: values of one `in` condition
MAX_FILTER_VALUES = 10_000
#: frame or object ids named in one request (segments, labeling requests, feedback)
MAX_IDS = 100_000
#: the largest embedding dimension (also Milvus's)
MAX_DIMENSION = 32_768
#: seeds of one similarity search
MAX_SEEDS = 1_000
#: small enumerations and lists of names
MAX_SMALL_LIST = 64
#: vertices of a polygon (a lasso on the embedding map)
MAX_VERTICES = 1_000


@dataclass(frozen=True)
class Limit:
    value: int
    what: str


#: full protobuf field name -> its limit (characters of a string, items of a list or map)
FIELD_LIMITS: dict[str, Limit] = {
    # catalog
    "shoal.ingest.v1.Project.classes": Limit(MAX_CLASSES, "classes of a project"),
    "shoal.ingest.v1.Project.embedding_spaces": Limit(MAX_SMALL_LIST, "embedding spaces of a project"),
    "shoal.ingest.v1.Project.display_name": Limit(200, "characters of a display name"),
    "shoal.ingest.v1.Project.description": Limit(MAX_DESCRIPTION, "characters of a description"),
    "shoal.ingest.v1.Dataset.splits": Limit(MAX_SMALL_LIST, "splits of a dataset"),
    "shoal.ingest.v1.Dataset.description": Limit(MAX_DESCRIPTION, "characters of a description"),
    "shoal.ingest.v1.InferenceSet.description": Limit(MAX_DESCRIPTION, "characters of a description"),
    "google.protobuf.FieldMask.paths": Limit(MAX_SMALL_LIST, "paths of an update mask"),
    # paging, filters, sorts
    "shoal.common.v1.PageRequest.page_token": Limit(MAX_PAGE_TOKEN, "characters of a page token"),
    "shoal.common.v1.Filter.all": Limit(MAX_CONDITIONS, "conditions of a filter"),
    "shoal.common.v1.ValueList.values": Limit(MAX_FILTER_VALUES, "values of an `in` condition"),
    "shoal.common.v1.Value.string_value": Limit(MAX_TEXT, "characters of a string value"),
    "shoal.analysis.v1.QueryDatapointsRequest.sort": Limit(8, "sort keys"),
    # segments and failure clusters
    "shoal.analysis.v1.Segment.reason": Limit(MAX_TEXT, "characters of a reason"),
    "shoal.analysis.v1.Segment.author": Limit(MAX_TEXT, "characters of an author"),
    "shoal.analysis.v1.Segment.gates": Limit(MAX_SMALL_LIST, "gates of a segment"),
    "shoal.analysis.v1.UpdateSegmentRequest.reason": Limit(MAX_TEXT, "characters of a reason"),
    "shoal.analysis.v1.UpdateSegmentRequest.gates": Limit(MAX_SMALL_LIST, "gates of a segment"),
    "shoal.analysis.v1.CreateSegmentRequest.frame_ids": Limit(MAX_IDS, "frame ids of one request"),
    "shoal.analysis.v1.CreateSegmentRequest.objects": Limit(MAX_IDS, "objects of one request"),
    "shoal.analysis.v1.UpdateSegmentRequest.add_frame_ids": Limit(MAX_IDS, "frame ids of one request"),
    "shoal.analysis.v1.UpdateSegmentRequest.remove_frame_ids": Limit(MAX_IDS, "frame ids of one request"),
    "shoal.analysis.v1.UpdateSegmentRequest.add_objects": Limit(MAX_IDS, "objects of one request"),
    "shoal.analysis.v1.UpdateSegmentRequest.remove_objects": Limit(MAX_IDS, "objects of one request"),
    "shoal.analysis.v1.SaveFailureClustersRequest.clusters": Limit(MAX_LIST, "clusters of one request"),
    "shoal.analysis.v1.SaveFailureClustersRequest.author": Limit(MAX_TEXT, "characters of an author"),
    # label-issue dismissals and the map
    "shoal.analysis.v1.DismissLabelIssuesRequest.frame_ids": Limit(MAX_IDS, "frame ids of one request"),
    "shoal.analysis.v1.DismissLabelIssuesRequest.objects": Limit(MAX_IDS, "objects of one request"),
    "shoal.analysis.v1.DismissLabelIssuesRequest.reason": Limit(MAX_TEXT, "characters of a reason"),
    "shoal.analysis.v1.DismissLabelIssuesRequest.dismissed_by": Limit(MAX_TEXT, "characters of an author"),
    "shoal.analysis.v1.QueryMapRegionRequest.polygon": Limit(MAX_VERTICES, "vertices of a polygon"),
    # sampler
    "shoal.sampler.v1.SearchSimilarRequest.seeds": Limit(MAX_SEEDS, "seeds of a search"),
    "shoal.sampler.v1.Vector.values": Limit(MAX_DIMENSION, "values of a vector (its dimension)"),
    "shoal.sampler.v1.FrameList.frame_ids": Limit(MAX_IDS, "frame ids of one request"),
    "shoal.sampler.v1.SubmitFeedbackRequest.accepted": Limit(MAX_IDS, "frame ids of one request"),
    "shoal.sampler.v1.SubmitFeedbackRequest.rejected": Limit(MAX_IDS, "frame ids of one request"),
    "shoal.sampler.v1.RequestLabelingRequest.reason": Limit(MAX_TEXT, "characters of a reason"),
    "shoal.sampler.v1.RequestLabelingRequest.requested_by": Limit(MAX_TEXT, "characters of a requester"),
    # labeling bridge
    "shoal.labeling_bridge.v1.FrameList.frame_ids": Limit(MAX_IDS, "frame ids of one request"),
    "shoal.labeling_bridge.v1.SendForLabelingRequest.reason": Limit(MAX_TEXT, "characters of a reason"),
    "shoal.labeling_bridge.v1.SendForLabelingRequest.requested_by": Limit(MAX_TEXT, "characters of a requester"),
}

#: messages whose items the ingest validation checks one by one (a bad row is rejected alone)
PER_ROW_CHECKED = frozenset({"shoal.ingest.v1.UploadChunk"})

_STRING = FieldDescriptor.TYPE_STRING
_BYTES = FieldDescriptor.TYPE_BYTES
_MESSAGE = FieldDescriptor.TYPE_MESSAGE


def limit_of(field: FieldDescriptor) -> int:
    """The limit of one field: characters of a string, items of a repeated field or a map."""
    known = FIELD_LIMITS.get(field.full_name)
    if known is not None:
        return known.value
    if _repeated(field):
        return MAX_LIST
    return MAX_NAME


def _repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def check(message: Message, path: str = "") -> None:
    """Raises :class:`InvalidArgument` for the first string or list of ``message`` (and the
    messages in it) longer than its limit. Visits only the fields that are set."""
    if message.DESCRIPTOR.full_name in PER_ROW_CHECKED:
        return
    for field, value in message.ListFields():
        where = f"{path}.{field.name}" if path else field.name
        if _repeated(field):
            limit = limit_of(field)
            if len(value) > limit:
                raise InvalidArgument(
                    f"has {len(value):,} items, more than the {limit:,} allowed (docs/reference/limits.md)", field=where
                )
            if field.type == _MESSAGE:
                if field.message_type.GetOptions().map_entry:
                    _check_map(field.message_type, value, where)
                else:
                    for i, item in enumerate(value):
                        check(item, f"{where}[{i}]")
            elif field.type == _STRING:
                for i, item in enumerate(value):
                    _check_string(field, item, f"{where}[{i}]")
        elif field.type == _MESSAGE:
            check(value, where)
        elif field.type in (_STRING, _BYTES):
            _check_string(field, value, where)


def _check_map(entry: Descriptor, value: object, where: str) -> None:
    key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
    for key in value:  # type: ignore[attr-defined]
        if key_field.type == _STRING and len(key) > MAX_NAME:
            raise InvalidArgument(f"has a key of {len(key):,} characters, more than {MAX_NAME}", field=where)
        item = value[key]  # type: ignore[index]
        if value_field.type == _MESSAGE:
            check(item, f"{where}[{key[:40]!r}]")
        elif value_field.type in (_STRING, _BYTES) and len(item) > MAX_TEXT:
            raise InvalidArgument(f"has a value of {len(item):,} characters, more than {MAX_TEXT}", field=where)


def _check_string(field: FieldDescriptor, value: str | bytes, where: str) -> None:
    limit = limit_of(field)
    if len(value) > limit:
        unit = "bytes" if field.type == _BYTES else "characters"
        raise InvalidArgument(f"is {len(value):,} {unit} long, more than the {limit:,} allowed", field=where)


def markdown() -> str:
    """The limits as a Markdown table, for docs/reference/limits.md."""
    rows = [
        "| what | limit |",
        "| --- | --- |",
        f"| a name or id (project, dataset, frame, object, class, segment, job, ...) | {MAX_NAME} characters |",
        f"| any other list of a request | {MAX_LIST:,} items |",
    ]
    seen: set[tuple[str, int]] = set()
    for limit in FIELD_LIMITS.values():
        if (limit.what, limit.value) not in seen:
            seen.add((limit.what, limit.value))
            rows.append(f"| {limit.what} | {limit.value:,} |")
    return "\n".join(rows)
