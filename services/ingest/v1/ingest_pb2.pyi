import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_TYPE_UNSPECIFIED: _ClassVar[TaskType]
    TASK_TYPE_CLASSIFICATION: _ClassVar[TaskType]
    TASK_TYPE_OBJECT_DETECTION_2D: _ClassVar[TaskType]
    TASK_TYPE_CUBOIDS_3D: _ClassVar[TaskType]
    TASK_TYPE_KEYPOINTS: _ClassVar[TaskType]
    TASK_TYPE_SEGMENTATION: _ClassVar[TaskType]

class DistanceMetric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISTANCE_METRIC_UNSPECIFIED: _ClassVar[DistanceMetric]
    DISTANCE_METRIC_COSINE: _ClassVar[DistanceMetric]
    DISTANCE_METRIC_L2: _ClassVar[DistanceMetric]
    DISTANCE_METRIC_INNER_PRODUCT: _ClassVar[DistanceMetric]

class EmbeddingLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMBEDDING_LEVEL_UNSPECIFIED: _ClassVar[EmbeddingLevel]
    EMBEDDING_LEVEL_FRAME: _ClassVar[EmbeddingLevel]
    EMBEDDING_LEVEL_OBJECT: _ClassVar[EmbeddingLevel]
TASK_TYPE_UNSPECIFIED: TaskType
TASK_TYPE_CLASSIFICATION: TaskType
TASK_TYPE_OBJECT_DETECTION_2D: TaskType
TASK_TYPE_CUBOIDS_3D: TaskType
TASK_TYPE_KEYPOINTS: TaskType
TASK_TYPE_SEGMENTATION: TaskType
DISTANCE_METRIC_UNSPECIFIED: DistanceMetric
DISTANCE_METRIC_COSINE: DistanceMetric
DISTANCE_METRIC_L2: DistanceMetric
DISTANCE_METRIC_INNER_PRODUCT: DistanceMetric
EMBEDDING_LEVEL_UNSPECIFIED: EmbeddingLevel
EMBEDDING_LEVEL_FRAME: EmbeddingLevel
EMBEDDING_LEVEL_OBJECT: EmbeddingLevel

class ClassDef(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class EmbeddingSpace(_message.Message):
    __slots__ = ("name", "dimension", "metric", "level", "model_name", "model_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimension: int
    metric: DistanceMetric
    level: EmbeddingLevel
    model_name: str
    model_version: str
    def __init__(self, name: _Optional[str] = ..., dimension: _Optional[int] = ..., metric: _Optional[_Union[DistanceMetric, str]] = ..., level: _Optional[_Union[EmbeddingLevel, str]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("name", "display_name", "description", "task_type", "classes", "embedding_spaces", "create_time", "update_time", "revision")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    description: str
    task_type: TaskType
    classes: _containers.RepeatedCompositeFieldContainer[ClassDef]
    embedding_spaces: _containers.RepeatedCompositeFieldContainer[EmbeddingSpace]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    revision: int
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., task_type: _Optional[_Union[TaskType, str]] = ..., classes: _Optional[_Iterable[_Union[ClassDef, _Mapping]]] = ..., embedding_spaces: _Optional[_Iterable[_Union[EmbeddingSpace, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class CreateProjectRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: Project
    def __init__(self, project: _Optional[_Union[Project, _Mapping]] = ...) -> None: ...

class CreateProjectResponse(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: Project
    def __init__(self, project: _Optional[_Union[Project, _Mapping]] = ...) -> None: ...

class GetProjectRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class GetProjectResponse(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: Project
    def __init__(self, project: _Optional[_Union[Project, _Mapping]] = ...) -> None: ...

class ListProjectsRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListProjectsResponse(_message.Message):
    __slots__ = ("projects", "page")
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedCompositeFieldContainer[Project]
    page: _common_pb2.PageResponse
    def __init__(self, projects: _Optional[_Iterable[_Union[Project, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class UpdateProjectRequest(_message.Message):
    __slots__ = ("project", "update", "update_mask")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    project: str
    update: Project
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, project: _Optional[str] = ..., update: _Optional[_Union[Project, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateProjectResponse(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: Project
    def __init__(self, project: _Optional[_Union[Project, _Mapping]] = ...) -> None: ...
