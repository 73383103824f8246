import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LabelingRequestState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABELING_REQUEST_STATE_UNSPECIFIED: _ClassVar[LabelingRequestState]
    LABELING_REQUEST_STATE_PENDING: _ClassVar[LabelingRequestState]
    LABELING_REQUEST_STATE_SENT: _ClassVar[LabelingRequestState]
    LABELING_REQUEST_STATE_FAILED: _ClassVar[LabelingRequestState]

class ItemState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITEM_STATE_UNSPECIFIED: _ClassVar[ItemState]
    ITEM_STATE_PENDING: _ClassVar[ItemState]
    ITEM_STATE_SENT: _ClassVar[ItemState]
    ITEM_STATE_ANNOTATED: _ClassVar[ItemState]
    ITEM_STATE_SYNCED: _ClassVar[ItemState]
    ITEM_STATE_CONFLICT: _ClassVar[ItemState]
    ITEM_STATE_FAILED: _ClassVar[ItemState]
LABELING_REQUEST_STATE_UNSPECIFIED: LabelingRequestState
LABELING_REQUEST_STATE_PENDING: LabelingRequestState
LABELING_REQUEST_STATE_SENT: LabelingRequestState
LABELING_REQUEST_STATE_FAILED: LabelingRequestState
ITEM_STATE_UNSPECIFIED: ItemState
ITEM_STATE_PENDING: ItemState
ITEM_STATE_SENT: ItemState
ITEM_STATE_ANNOTATED: ItemState
ITEM_STATE_SYNCED: ItemState
ITEM_STATE_CONFLICT: ItemState
ITEM_STATE_FAILED: ItemState

class FrameList(_message.Message):
    __slots__ = ("dataset", "frame_ids")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset: _Optional[str] = ..., frame_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LabelIssuesSource(_message.Message):
    __slots__ = ("job_id", "max_frames")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    max_frames: int
    def __init__(self, job_id: _Optional[str] = ..., max_frames: _Optional[int] = ...) -> None: ...

class SendForLabelingRequest(_message.Message):
    __slots__ = ("project", "segment", "campaign_job_id", "label_issues", "frames", "reason", "platform", "preannotation_inference_set", "requested_by", "request_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_ISSUES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    PREANNOTATION_INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    segment: str
    campaign_job_id: str
    label_issues: LabelIssuesSource
    frames: FrameList
    reason: str
    platform: str
    preannotation_inference_set: str
    requested_by: str
    request_id: str
    def __init__(self, project: _Optional[str] = ..., segment: _Optional[str] = ..., campaign_job_id: _Optional[str] = ..., label_issues: _Optional[_Union[LabelIssuesSource, _Mapping]] = ..., frames: _Optional[_Union[FrameList, _Mapping]] = ..., reason: _Optional[str] = ..., platform: _Optional[str] = ..., preannotation_inference_set: _Optional[str] = ..., requested_by: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ItemCounts(_message.Message):
    __slots__ = ("pending", "sent", "annotated", "synced", "conflict", "failed")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    ANNOTATED_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    pending: int
    sent: int
    annotated: int
    synced: int
    conflict: int
    failed: int
    def __init__(self, pending: _Optional[int] = ..., sent: _Optional[int] = ..., annotated: _Optional[int] = ..., synced: _Optional[int] = ..., conflict: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class LabelingRequest(_message.Message):
    __slots__ = ("request_id", "project", "dataset", "platform", "source", "reason", "preannotation_inference_set", "requested_by", "requested_time", "state", "frames", "counts", "attempts", "last_error", "next_attempt_time", "platform_project_id", "platform_project_url")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PREANNOTATION_INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_PROJECT_URL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    project: str
    dataset: str
    platform: str
    source: str
    reason: str
    preannotation_inference_set: str
    requested_by: str
    requested_time: _timestamp_pb2.Timestamp
    state: LabelingRequestState
    frames: int
    counts: ItemCounts
    attempts: int
    last_error: str
    next_attempt_time: _timestamp_pb2.Timestamp
    platform_project_id: str
    platform_project_url: str
    def __init__(self, request_id: _Optional[str] = ..., project: _Optional[str] = ..., dataset: _Optional[str] = ..., platform: _Optional[str] = ..., source: _Optional[str] = ..., reason: _Optional[str] = ..., preannotation_inference_set: _Optional[str] = ..., requested_by: _Optional[str] = ..., requested_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[LabelingRequestState, str]] = ..., frames: _Optional[int] = ..., counts: _Optional[_Union[ItemCounts, _Mapping]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., platform_project_id: _Optional[str] = ..., platform_project_url: _Optional[str] = ...) -> None: ...

class SendForLabelingResponse(_message.Message):
    __slots__ = ("request", "repeated_request")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    REPEATED_REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: LabelingRequest
    repeated_request: bool
    def __init__(self, request: _Optional[_Union[LabelingRequest, _Mapping]] = ..., repeated_request: _Optional[bool] = ...) -> None: ...

class GetLabelingRequestRequest(_message.Message):
    __slots__ = ("project", "request_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    request_id: str
    def __init__(self, project: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetLabelingRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: LabelingRequest
    def __init__(self, request: _Optional[_Union[LabelingRequest, _Mapping]] = ...) -> None: ...

class ListLabelingRequestsRequest(_message.Message):
    __slots__ = ("project", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListLabelingRequestsResponse(_message.Message):
    __slots__ = ("requests", "page")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[LabelingRequest]
    page: _common_pb2.PageResponse
    def __init__(self, requests: _Optional[_Iterable[_Union[LabelingRequest, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class ListLabelingItemsRequest(_message.Message):
    __slots__ = ("project", "request_id", "states", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    request_id: str
    states: _containers.RepeatedScalarFieldContainer[ItemState]
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., request_id: _Optional[str] = ..., states: _Optional[_Iterable[_Union[ItemState, str]]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class LabelingItem(_message.Message):
    __slots__ = ("ref", "request_id", "state", "task_id", "annotation_id", "annotator", "annotated_time", "error", "label_version", "reason", "updated_time")
    REF_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ANNOTATION_ID_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    ANNOTATED_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LABEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UPDATED_TIME_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    request_id: str
    state: ItemState
    task_id: str
    annotation_id: str
    annotator: str
    annotated_time: _timestamp_pb2.Timestamp
    error: str
    label_version: str
    reason: str
    updated_time: _timestamp_pb2.Timestamp
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., request_id: _Optional[str] = ..., state: _Optional[_Union[ItemState, str]] = ..., task_id: _Optional[str] = ..., annotation_id: _Optional[str] = ..., annotator: _Optional[str] = ..., annotated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ..., label_version: _Optional[str] = ..., reason: _Optional[str] = ..., updated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListLabelingItemsResponse(_message.Message):
    __slots__ = ("items", "page")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[LabelingItem]
    page: _common_pb2.PageResponse
    def __init__(self, items: _Optional[_Iterable[_Union[LabelingItem, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class SyncAnnotationsRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class SyncAnnotationsResponse(_message.Message):
    __slots__ = ("read", "synced", "conflicts", "failed", "unchanged")
    READ_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    read: int
    synced: int
    conflicts: int
    failed: int
    unchanged: int
    def __init__(self, read: _Optional[int] = ..., synced: _Optional[int] = ..., conflicts: _Optional[int] = ..., failed: _Optional[int] = ..., unchanged: _Optional[int] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("project", "job_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("project", "states", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    states: _containers.RepeatedScalarFieldContainer[_common_pb2.JobState]
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_common_pb2.JobState, str]]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "page")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Job]
    page: _common_pb2.PageResponse
    def __init__(self, jobs: _Optional[_Iterable[_Union[_common_pb2.Job, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("project", "job_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...
