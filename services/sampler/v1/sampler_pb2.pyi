from shoal.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Aggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_UNSPECIFIED: _ClassVar[Aggregation]
    AGGREGATION_MAX: _ClassVar[Aggregation]
    AGGREGATION_MEAN: _ClassVar[Aggregation]
AGGREGATION_UNSPECIFIED: Aggregation
AGGREGATION_MAX: Aggregation
AGGREGATION_MEAN: Aggregation

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

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Seed(_message.Message):
    __slots__ = ("ref", "vector")
    REF_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    vector: Vector
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ...) -> None: ...

class SearchSimilarRequest(_message.Message):
    __slots__ = ("project", "pool_dataset", "embedding_space", "seeds", "k", "filter", "exclude_labeled", "exclude_segments", "aggregation", "seed_embedding_space", "vectors_model_name", "vectors_model_version")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    POOL_DATASET_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_LABELED_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    SEED_EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    VECTORS_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VECTORS_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    project: str
    pool_dataset: str
    embedding_space: str
    seeds: _containers.RepeatedCompositeFieldContainer[Seed]
    k: int
    filter: _common_pb2.Filter
    exclude_labeled: bool
    exclude_segments: _containers.RepeatedScalarFieldContainer[str]
    aggregation: Aggregation
    seed_embedding_space: str
    vectors_model_name: str
    vectors_model_version: str
    def __init__(self, project: _Optional[str] = ..., pool_dataset: _Optional[str] = ..., embedding_space: _Optional[str] = ..., seeds: _Optional[_Iterable[_Union[Seed, _Mapping]]] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., exclude_labeled: _Optional[bool] = ..., exclude_segments: _Optional[_Iterable[str]] = ..., aggregation: _Optional[_Union[Aggregation, str]] = ..., seed_embedding_space: _Optional[str] = ..., vectors_model_name: _Optional[str] = ..., vectors_model_version: _Optional[str] = ...) -> None: ...

class SimilarItem(_message.Message):
    __slots__ = ("ref", "media_uri", "split", "similarity", "distance", "seed_index")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    SEED_INDEX_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    split: str
    similarity: float
    distance: float
    seed_index: int
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., split: _Optional[str] = ..., similarity: _Optional[float] = ..., distance: _Optional[float] = ..., seed_index: _Optional[int] = ...) -> None: ...

class SearchSimilarResponse(_message.Message):
    __slots__ = ("items", "metric", "candidates", "truncated")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[SimilarItem]
    metric: str
    candidates: int
    truncated: bool
    def __init__(self, items: _Optional[_Iterable[_Union[SimilarItem, _Mapping]]] = ..., metric: _Optional[str] = ..., candidates: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...
