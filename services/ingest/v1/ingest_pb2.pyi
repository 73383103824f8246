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
    TASK_TYPE_INSTANCE_SEGMENTATION: _ClassVar[TaskType]
    TASK_TYPE_MULTI_LABEL: _ClassVar[TaskType]
    TASK_TYPE_SOUND_EVENTS: _ClassVar[TaskType]

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

class DatasetKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_KIND_UNSPECIFIED: _ClassVar[DatasetKind]
    DATASET_KIND_LABELED: _ClassVar[DatasetKind]
    DATASET_KIND_UNLABELED_POOL: _ClassVar[DatasetKind]

class MediaType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEDIA_TYPE_UNSPECIFIED: _ClassVar[MediaType]
    MEDIA_TYPE_IMAGE: _ClassVar[MediaType]
    MEDIA_TYPE_VIDEO_FRAME: _ClassVar[MediaType]
    MEDIA_TYPE_AUDIO: _ClassVar[MediaType]
    MEDIA_TYPE_TEXT: _ClassVar[MediaType]
    MEDIA_TYPE_POINT_CLOUD: _ClassVar[MediaType]

class CoordinateFrame(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COORDINATE_FRAME_UNSPECIFIED: _ClassVar[CoordinateFrame]
    COORDINATE_FRAME_EGO: _ClassVar[CoordinateFrame]
    COORDINATE_FRAME_WORLD: _ClassVar[CoordinateFrame]

class UploadState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPLOAD_STATE_UNSPECIFIED: _ClassVar[UploadState]
    UPLOAD_STATE_PROCESSING: _ClassVar[UploadState]
    UPLOAD_STATE_COMPLETED: _ClassVar[UploadState]
    UPLOAD_STATE_COMPLETED_WITH_ERRORS: _ClassVar[UploadState]
    UPLOAD_STATE_INCOMPLETE: _ClassVar[UploadState]
TASK_TYPE_UNSPECIFIED: TaskType
TASK_TYPE_CLASSIFICATION: TaskType
TASK_TYPE_OBJECT_DETECTION_2D: TaskType
TASK_TYPE_CUBOIDS_3D: TaskType
TASK_TYPE_KEYPOINTS: TaskType
TASK_TYPE_SEGMENTATION: TaskType
TASK_TYPE_INSTANCE_SEGMENTATION: TaskType
TASK_TYPE_MULTI_LABEL: TaskType
TASK_TYPE_SOUND_EVENTS: TaskType
DISTANCE_METRIC_UNSPECIFIED: DistanceMetric
DISTANCE_METRIC_COSINE: DistanceMetric
DISTANCE_METRIC_L2: DistanceMetric
DISTANCE_METRIC_INNER_PRODUCT: DistanceMetric
EMBEDDING_LEVEL_UNSPECIFIED: EmbeddingLevel
EMBEDDING_LEVEL_FRAME: EmbeddingLevel
EMBEDDING_LEVEL_OBJECT: EmbeddingLevel
DATASET_KIND_UNSPECIFIED: DatasetKind
DATASET_KIND_LABELED: DatasetKind
DATASET_KIND_UNLABELED_POOL: DatasetKind
MEDIA_TYPE_UNSPECIFIED: MediaType
MEDIA_TYPE_IMAGE: MediaType
MEDIA_TYPE_VIDEO_FRAME: MediaType
MEDIA_TYPE_AUDIO: MediaType
MEDIA_TYPE_TEXT: MediaType
MEDIA_TYPE_POINT_CLOUD: MediaType
COORDINATE_FRAME_UNSPECIFIED: CoordinateFrame
COORDINATE_FRAME_EGO: CoordinateFrame
COORDINATE_FRAME_WORLD: CoordinateFrame
UPLOAD_STATE_UNSPECIFIED: UploadState
UPLOAD_STATE_PROCESSING: UploadState
UPLOAD_STATE_COMPLETED: UploadState
UPLOAD_STATE_COMPLETED_WITH_ERRORS: UploadState
UPLOAD_STATE_INCOMPLETE: UploadState

class ClassDef(_message.Message):
    __slots__ = ("id", "name", "keypoints", "skeleton", "keypoint_sigmas", "color")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    SKELETON_FIELD_NUMBER: _ClassVar[int]
    KEYPOINT_SIGMAS_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    keypoints: _containers.RepeatedScalarFieldContainer[str]
    skeleton: _containers.RepeatedCompositeFieldContainer[KeypointEdge]
    keypoint_sigmas: _containers.RepeatedScalarFieldContainer[float]
    color: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., keypoints: _Optional[_Iterable[str]] = ..., skeleton: _Optional[_Iterable[_Union[KeypointEdge, _Mapping]]] = ..., keypoint_sigmas: _Optional[_Iterable[float]] = ..., color: _Optional[str] = ...) -> None: ...

class KeypointEdge(_message.Message):
    __slots__ = ("a", "b")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    a: int
    b: int
    def __init__(self, a: _Optional[int] = ..., b: _Optional[int] = ...) -> None: ...

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

class Dataset(_message.Message):
    __slots__ = ("project", "name", "kind", "splits", "description", "create_time", "update_time", "revision")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    kind: DatasetKind
    splits: _containers.RepeatedScalarFieldContainer[str]
    description: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    revision: int
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[DatasetKind, str]] = ..., splits: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class CreateDatasetRequest(_message.Message):
    __slots__ = ("project", "dataset")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: Dataset
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class CreateDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("project", "dataset", "include_stats")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_STATS_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    include_stats: bool
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., include_stats: _Optional[bool] = ...) -> None: ...

class GetDatasetResponse(_message.Message):
    __slots__ = ("dataset", "stats")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    stats: DatasetStats
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., stats: _Optional[_Union[DatasetStats, _Mapping]] = ...) -> None: ...

class DatasetStats(_message.Message):
    __slots__ = ("frames", "labeled_frames", "label_versions", "inferences", "embeddings", "frames_per_split", "labeled_frames_per_class", "labeled_objects_per_class")
    class EmbeddingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class FramesPerSplitEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class LabeledFramesPerClassEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    class LabeledObjectsPerClassEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    LABELED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    LABEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    INFERENCES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_PER_SPLIT_FIELD_NUMBER: _ClassVar[int]
    LABELED_FRAMES_PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    LABELED_OBJECTS_PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    frames: int
    labeled_frames: int
    label_versions: int
    inferences: int
    embeddings: _containers.ScalarMap[str, int]
    frames_per_split: _containers.ScalarMap[str, int]
    labeled_frames_per_class: _containers.ScalarMap[int, int]
    labeled_objects_per_class: _containers.ScalarMap[int, int]
    def __init__(self, frames: _Optional[int] = ..., labeled_frames: _Optional[int] = ..., label_versions: _Optional[int] = ..., inferences: _Optional[int] = ..., embeddings: _Optional[_Mapping[str, int]] = ..., frames_per_split: _Optional[_Mapping[str, int]] = ..., labeled_frames_per_class: _Optional[_Mapping[int, int]] = ..., labeled_objects_per_class: _Optional[_Mapping[int, int]] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("project", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "page")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    page: _common_pb2.PageResponse
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class UpdateDatasetRequest(_message.Message):
    __slots__ = ("project", "dataset", "update", "update_mask")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    update: Dataset
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., update: _Optional[_Union[Dataset, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class InferenceSet(_message.Message):
    __slots__ = ("project", "name", "dataset", "model_name", "model_version", "description", "create_time")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    dataset: str
    model_name: str
    model_version: str
    description: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., dataset: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateInferenceSetRequest(_message.Message):
    __slots__ = ("project", "inference_set")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: InferenceSet
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[_Union[InferenceSet, _Mapping]] = ...) -> None: ...

class CreateInferenceSetResponse(_message.Message):
    __slots__ = ("inference_set",)
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    inference_set: InferenceSet
    def __init__(self, inference_set: _Optional[_Union[InferenceSet, _Mapping]] = ...) -> None: ...

class GetInferenceSetRequest(_message.Message):
    __slots__ = ("project", "inference_set")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ...) -> None: ...

class GetInferenceSetResponse(_message.Message):
    __slots__ = ("inference_set",)
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    inference_set: InferenceSet
    def __init__(self, inference_set: _Optional[_Union[InferenceSet, _Mapping]] = ...) -> None: ...

class ListInferenceSetsRequest(_message.Message):
    __slots__ = ("project", "dataset", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListInferenceSetsResponse(_message.Message):
    __slots__ = ("inference_sets", "page")
    INFERENCE_SETS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    inference_sets: _containers.RepeatedCompositeFieldContainer[InferenceSet]
    page: _common_pb2.PageResponse
    def __init__(self, inference_sets: _Optional[_Iterable[_Union[InferenceSet, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class UpdateInferenceSetRequest(_message.Message):
    __slots__ = ("project", "inference_set", "update", "update_mask")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    update: InferenceSet
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., update: _Optional[_Union[InferenceSet, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateInferenceSetResponse(_message.Message):
    __slots__ = ("inference_set",)
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    inference_set: InferenceSet
    def __init__(self, inference_set: _Optional[_Union[InferenceSet, _Mapping]] = ...) -> None: ...

class CreateEmbeddingSpaceRequest(_message.Message):
    __slots__ = ("project", "embedding_space")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    project: str
    embedding_space: EmbeddingSpace
    def __init__(self, project: _Optional[str] = ..., embedding_space: _Optional[_Union[EmbeddingSpace, _Mapping]] = ...) -> None: ...

class CreateEmbeddingSpaceResponse(_message.Message):
    __slots__ = ("embedding_space",)
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    embedding_space: EmbeddingSpace
    def __init__(self, embedding_space: _Optional[_Union[EmbeddingSpace, _Mapping]] = ...) -> None: ...

class GetEmbeddingSpaceRequest(_message.Message):
    __slots__ = ("project", "embedding_space")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    project: str
    embedding_space: str
    def __init__(self, project: _Optional[str] = ..., embedding_space: _Optional[str] = ...) -> None: ...

class GetEmbeddingSpaceResponse(_message.Message):
    __slots__ = ("embedding_space",)
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    embedding_space: EmbeddingSpace
    def __init__(self, embedding_space: _Optional[_Union[EmbeddingSpace, _Mapping]] = ...) -> None: ...

class ListEmbeddingSpacesRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class ListEmbeddingSpacesResponse(_message.Message):
    __slots__ = ("embedding_spaces",)
    EMBEDDING_SPACES_FIELD_NUMBER: _ClassVar[int]
    embedding_spaces: _containers.RepeatedCompositeFieldContainer[EmbeddingSpace]
    def __init__(self, embedding_spaces: _Optional[_Iterable[_Union[EmbeddingSpace, _Mapping]]] = ...) -> None: ...

class Pose(_message.Message):
    __slots__ = ("x", "y", "z", "rotation")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    z: float
    rotation: Quaternion
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., z: _Optional[float] = ..., rotation: _Optional[_Union[Quaternion, _Mapping]] = ...) -> None: ...

class Quaternion(_message.Message):
    __slots__ = ("w", "x", "y", "z")
    W_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    w: float
    x: float
    y: float
    z: float
    def __init__(self, w: _Optional[float] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., z: _Optional[float] = ...) -> None: ...

class CameraImage(_message.Message):
    __slots__ = ("name", "uri")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    name: str
    uri: str
    def __init__(self, name: _Optional[str] = ..., uri: _Optional[str] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("frame_id", "split", "media_uri", "media_type", "width", "height", "metadata", "capture_time", "coordinate_frame", "ego_pose", "cameras", "duration_seconds", "sample_rate")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    COORDINATE_FRAME_FIELD_NUMBER: _ClassVar[int]
    EGO_POSE_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    split: str
    media_uri: str
    media_type: MediaType
    width: int
    height: int
    metadata: _containers.MessageMap[str, _common_pb2.Value]
    capture_time: _timestamp_pb2.Timestamp
    coordinate_frame: CoordinateFrame
    ego_pose: Pose
    cameras: _containers.RepeatedCompositeFieldContainer[CameraImage]
    duration_seconds: float
    sample_rate: int
    def __init__(self, frame_id: _Optional[str] = ..., split: _Optional[str] = ..., media_uri: _Optional[str] = ..., media_type: _Optional[_Union[MediaType, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., metadata: _Optional[_Mapping[str, _common_pb2.Value]] = ..., capture_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., coordinate_frame: _Optional[_Union[CoordinateFrame, str]] = ..., ego_pose: _Optional[_Union[Pose, _Mapping]] = ..., cameras: _Optional[_Iterable[_Union[CameraImage, _Mapping]]] = ..., duration_seconds: _Optional[float] = ..., sample_rate: _Optional[int] = ...) -> None: ...

class Cuboid(_message.Message):
    __slots__ = ("x", "y", "z", "width", "length", "height", "yaw", "rotation", "vx", "vy", "attribute", "num_points")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    YAW_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    VX_FIELD_NUMBER: _ClassVar[int]
    VY_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    NUM_POINTS_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    z: float
    width: float
    length: float
    height: float
    yaw: float
    rotation: Quaternion
    vx: float
    vy: float
    attribute: str
    num_points: int
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., z: _Optional[float] = ..., width: _Optional[float] = ..., length: _Optional[float] = ..., height: _Optional[float] = ..., yaw: _Optional[float] = ..., rotation: _Optional[_Union[Quaternion, _Mapping]] = ..., vx: _Optional[float] = ..., vy: _Optional[float] = ..., attribute: _Optional[str] = ..., num_points: _Optional[int] = ...) -> None: ...

class SoundEvent(_message.Message):
    __slots__ = ("onset", "offset", "class_id", "score")
    ONSET_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    onset: float
    offset: float
    class_id: int
    score: float
    def __init__(self, onset: _Optional[float] = ..., offset: _Optional[float] = ..., class_id: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    width: float
    height: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., width: _Optional[float] = ..., height: _Optional[float] = ...) -> None: ...

class Mask(_message.Message):
    __slots__ = ("counts", "runs")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    counts: bytes
    runs: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, counts: _Optional[bytes] = ..., runs: _Optional[_Iterable[int]] = ...) -> None: ...

class SegmentationMap(_message.Message):
    __slots__ = ("runs", "regions", "uri")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    runs: ClassRuns
    regions: _containers.RepeatedCompositeFieldContainer[ClassRegion]
    uri: str
    def __init__(self, runs: _Optional[_Union[ClassRuns, _Mapping]] = ..., regions: _Optional[_Iterable[_Union[ClassRegion, _Mapping]]] = ..., uri: _Optional[str] = ...) -> None: ...

class ClassRuns(_message.Message):
    __slots__ = ("classes", "lengths")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    LENGTHS_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedScalarFieldContainer[int]
    lengths: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, classes: _Optional[_Iterable[int]] = ..., lengths: _Optional[_Iterable[int]] = ...) -> None: ...

class ClassRegion(_message.Message):
    __slots__ = ("class_id", "mask")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    mask: Mask
    def __init__(self, class_id: _Optional[int] = ..., mask: _Optional[_Union[Mask, _Mapping]] = ...) -> None: ...

class Polygon(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, points: _Optional[_Iterable[float]] = ...) -> None: ...

class Keypoint(_message.Message):
    __slots__ = ("x", "y", "visibility", "score")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    visibility: int
    score: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., visibility: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class LabelObject(_message.Message):
    __slots__ = ("object_id", "class_id", "box", "is_crowd", "attributes", "annotation_uri", "mask", "polygons", "keypoints", "cuboid")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    IS_CROWD_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ANNOTATION_URI_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    POLYGONS_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    CUBOID_FIELD_NUMBER: _ClassVar[int]
    object_id: str
    class_id: int
    box: Box
    is_crowd: bool
    attributes: _containers.MessageMap[str, _common_pb2.Value]
    annotation_uri: str
    mask: Mask
    polygons: _containers.RepeatedCompositeFieldContainer[Polygon]
    keypoints: _containers.RepeatedCompositeFieldContainer[Keypoint]
    cuboid: Cuboid
    def __init__(self, object_id: _Optional[str] = ..., class_id: _Optional[int] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., is_crowd: _Optional[bool] = ..., attributes: _Optional[_Mapping[str, _common_pb2.Value]] = ..., annotation_uri: _Optional[str] = ..., mask: _Optional[_Union[Mask, _Mapping]] = ..., polygons: _Optional[_Iterable[_Union[Polygon, _Mapping]]] = ..., keypoints: _Optional[_Iterable[_Union[Keypoint, _Mapping]]] = ..., cuboid: _Optional[_Union[Cuboid, _Mapping]] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("source", "author", "reason", "time")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    source: str
    author: str
    reason: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, source: _Optional[str] = ..., author: _Optional[str] = ..., reason: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FrameLabels(_message.Message):
    __slots__ = ("frame_id", "class_id", "objects", "provenance", "class_ids", "segmentation", "events")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    class_id: int
    objects: _containers.RepeatedCompositeFieldContainer[LabelObject]
    provenance: Provenance
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    segmentation: SegmentationMap
    events: _containers.RepeatedCompositeFieldContainer[SoundEvent]
    def __init__(self, frame_id: _Optional[str] = ..., class_id: _Optional[int] = ..., objects: _Optional[_Iterable[_Union[LabelObject, _Mapping]]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., class_ids: _Optional[_Iterable[int]] = ..., segmentation: _Optional[_Union[SegmentationMap, _Mapping]] = ..., events: _Optional[_Iterable[_Union[SoundEvent, _Mapping]]] = ...) -> None: ...

class PredictedObject(_message.Message):
    __slots__ = ("object_id", "class_id", "score", "box", "class_probabilities", "mask", "polygons", "keypoints", "cuboid")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    CLASS_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    POLYGONS_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    CUBOID_FIELD_NUMBER: _ClassVar[int]
    object_id: str
    class_id: int
    score: float
    box: Box
    class_probabilities: _containers.RepeatedScalarFieldContainer[float]
    mask: Mask
    polygons: _containers.RepeatedCompositeFieldContainer[Polygon]
    keypoints: _containers.RepeatedCompositeFieldContainer[Keypoint]
    cuboid: Cuboid
    def __init__(self, object_id: _Optional[str] = ..., class_id: _Optional[int] = ..., score: _Optional[float] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., class_probabilities: _Optional[_Iterable[float]] = ..., mask: _Optional[_Union[Mask, _Mapping]] = ..., polygons: _Optional[_Iterable[_Union[Polygon, _Mapping]]] = ..., keypoints: _Optional[_Iterable[_Union[Keypoint, _Mapping]]] = ..., cuboid: _Optional[_Union[Cuboid, _Mapping]] = ...) -> None: ...

class FrameInference(_message.Message):
    __slots__ = ("frame_id", "class_probabilities", "objects", "segmentation", "probabilities_uri", "events")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_URI_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    class_probabilities: _containers.RepeatedScalarFieldContainer[float]
    objects: _containers.RepeatedCompositeFieldContainer[PredictedObject]
    segmentation: SegmentationMap
    probabilities_uri: str
    events: _containers.RepeatedCompositeFieldContainer[SoundEvent]
    def __init__(self, frame_id: _Optional[str] = ..., class_probabilities: _Optional[_Iterable[float]] = ..., objects: _Optional[_Iterable[_Union[PredictedObject, _Mapping]]] = ..., segmentation: _Optional[_Union[SegmentationMap, _Mapping]] = ..., probabilities_uri: _Optional[str] = ..., events: _Optional[_Iterable[_Union[SoundEvent, _Mapping]]] = ...) -> None: ...

class EmbeddingBlock(_message.Message):
    __slots__ = ("space", "frame_ids", "object_ids", "vectors_f32")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_F32_FIELD_NUMBER: _ClassVar[int]
    space: str
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    object_ids: _containers.RepeatedScalarFieldContainer[str]
    vectors_f32: bytes
    def __init__(self, space: _Optional[str] = ..., frame_ids: _Optional[_Iterable[str]] = ..., object_ids: _Optional[_Iterable[str]] = ..., vectors_f32: _Optional[bytes] = ...) -> None: ...

class MetadataColumn(_message.Message):
    __slots__ = ("key", "strings", "numbers_f64", "bools_u8", "timestamps_ms_i64")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_F64_FIELD_NUMBER: _ClassVar[int]
    BOOLS_U8_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_MS_I64_FIELD_NUMBER: _ClassVar[int]
    key: str
    strings: StringValues
    numbers_f64: bytes
    bools_u8: bytes
    timestamps_ms_i64: bytes
    def __init__(self, key: _Optional[str] = ..., strings: _Optional[_Union[StringValues, _Mapping]] = ..., numbers_f64: _Optional[bytes] = ..., bools_u8: _Optional[bytes] = ..., timestamps_ms_i64: _Optional[bytes] = ...) -> None: ...

class StringValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class FrameColumns(_message.Message):
    __slots__ = ("frame_ids", "frames_stored", "splits", "media_uris", "media_type", "widths_i32", "heights_i32", "metadata", "capture_times_ms_i64", "label_class_ids_i32", "label_provenance", "probabilities_f32")
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_STORED_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URIS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTHS_I32_FIELD_NUMBER: _ClassVar[int]
    HEIGHTS_I32_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIMES_MS_I64_FIELD_NUMBER: _ClassVar[int]
    LABEL_CLASS_IDS_I32_FIELD_NUMBER: _ClassVar[int]
    LABEL_PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_F32_FIELD_NUMBER: _ClassVar[int]
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    frames_stored: bool
    splits: _containers.RepeatedScalarFieldContainer[str]
    media_uris: _containers.RepeatedScalarFieldContainer[str]
    media_type: MediaType
    widths_i32: bytes
    heights_i32: bytes
    metadata: _containers.RepeatedCompositeFieldContainer[MetadataColumn]
    capture_times_ms_i64: bytes
    label_class_ids_i32: bytes
    label_provenance: Provenance
    probabilities_f32: bytes
    def __init__(self, frame_ids: _Optional[_Iterable[str]] = ..., frames_stored: _Optional[bool] = ..., splits: _Optional[_Iterable[str]] = ..., media_uris: _Optional[_Iterable[str]] = ..., media_type: _Optional[_Union[MediaType, str]] = ..., widths_i32: _Optional[bytes] = ..., heights_i32: _Optional[bytes] = ..., metadata: _Optional[_Iterable[_Union[MetadataColumn, _Mapping]]] = ..., capture_times_ms_i64: _Optional[bytes] = ..., label_class_ids_i32: _Optional[bytes] = ..., label_provenance: _Optional[_Union[Provenance, _Mapping]] = ..., probabilities_f32: _Optional[bytes] = ...) -> None: ...

class UploadChunk(_message.Message):
    __slots__ = ("frames", "labels", "inference_set", "inferences", "embeddings", "columns")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    INFERENCES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[Frame]
    labels: _containers.RepeatedCompositeFieldContainer[FrameLabels]
    inference_set: str
    inferences: _containers.RepeatedCompositeFieldContainer[FrameInference]
    embeddings: _containers.RepeatedCompositeFieldContainer[EmbeddingBlock]
    columns: FrameColumns
    def __init__(self, frames: _Optional[_Iterable[_Union[Frame, _Mapping]]] = ..., labels: _Optional[_Iterable[_Union[FrameLabels, _Mapping]]] = ..., inference_set: _Optional[str] = ..., inferences: _Optional[_Iterable[_Union[FrameInference, _Mapping]]] = ..., embeddings: _Optional[_Iterable[_Union[EmbeddingBlock, _Mapping]]] = ..., columns: _Optional[_Union[FrameColumns, _Mapping]] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("project", "dataset", "upload_id", "chunk_index", "chunk", "total_chunks")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    upload_id: str
    chunk_index: int
    chunk: UploadChunk
    total_chunks: int
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., upload_id: _Optional[str] = ..., chunk_index: _Optional[int] = ..., chunk: _Optional[_Union[UploadChunk, _Mapping]] = ..., total_chunks: _Optional[int] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("upload_id", "chunks", "accepted")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    chunks: int
    accepted: UploadCounts
    def __init__(self, upload_id: _Optional[str] = ..., chunks: _Optional[int] = ..., accepted: _Optional[_Union[UploadCounts, _Mapping]] = ...) -> None: ...

class UploadCounts(_message.Message):
    __slots__ = ("frames", "labels", "inferences", "embeddings")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    INFERENCES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    frames: int
    labels: int
    inferences: int
    embeddings: int
    def __init__(self, frames: _Optional[int] = ..., labels: _Optional[int] = ..., inferences: _Optional[int] = ..., embeddings: _Optional[int] = ...) -> None: ...

class UploadEvent(_message.Message):
    __slots__ = ("schema_version", "upload_id", "chunk_index", "idempotency_key", "project", "dataset", "chunk", "produced_time", "total_chunks")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    PRODUCED_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    upload_id: str
    chunk_index: int
    idempotency_key: str
    project: str
    dataset: str
    chunk: UploadChunk
    produced_time: _timestamp_pb2.Timestamp
    total_chunks: int
    def __init__(self, schema_version: _Optional[int] = ..., upload_id: _Optional[str] = ..., chunk_index: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., project: _Optional[str] = ..., dataset: _Optional[str] = ..., chunk: _Optional[_Union[UploadChunk, _Mapping]] = ..., produced_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_chunks: _Optional[int] = ...) -> None: ...

class UploadError(_message.Message):
    __slots__ = ("chunk_index", "detail")
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    chunk_index: int
    detail: _common_pb2.ErrorDetail
    def __init__(self, chunk_index: _Optional[int] = ..., detail: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ...) -> None: ...

class UploadStatus(_message.Message):
    __slots__ = ("upload_id", "dataset", "state", "chunks_total", "chunks_processed", "accepted", "written", "rejected", "errors", "create_time", "update_time")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    dataset: str
    state: UploadState
    chunks_total: int
    chunks_processed: int
    accepted: UploadCounts
    written: UploadCounts
    rejected: UploadCounts
    errors: _containers.RepeatedCompositeFieldContainer[UploadError]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, upload_id: _Optional[str] = ..., dataset: _Optional[str] = ..., state: _Optional[_Union[UploadState, str]] = ..., chunks_total: _Optional[int] = ..., chunks_processed: _Optional[int] = ..., accepted: _Optional[_Union[UploadCounts, _Mapping]] = ..., written: _Optional[_Union[UploadCounts, _Mapping]] = ..., rejected: _Optional[_Union[UploadCounts, _Mapping]] = ..., errors: _Optional[_Iterable[_Union[UploadError, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUploadStatusRequest(_message.Message):
    __slots__ = ("project", "upload_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    upload_id: str
    def __init__(self, project: _Optional[str] = ..., upload_id: _Optional[str] = ...) -> None: ...

class GetUploadStatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: UploadStatus
    def __init__(self, status: _Optional[_Union[UploadStatus, _Mapping]] = ...) -> None: ...

class ListUploadsRequest(_message.Message):
    __slots__ = ("project", "dataset", "states", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    states: _containers.RepeatedScalarFieldContainer[UploadState]
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., states: _Optional[_Iterable[_Union[UploadState, str]]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListUploadsResponse(_message.Message):
    __slots__ = ("uploads", "page")
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    uploads: _containers.RepeatedCompositeFieldContainer[UploadStatus]
    page: _common_pb2.PageResponse
    def __init__(self, uploads: _Optional[_Iterable[_Union[UploadStatus, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class ListLabelVersionsRequest(_message.Message):
    __slots__ = ("project", "dataset", "frame_id", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    frame_id: str
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., frame_id: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class LabelVersion(_message.Message):
    __slots__ = ("label_version", "class_id", "objects", "provenance", "upload_id", "class_ids", "segmentation", "events")
    LABEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    label_version: str
    class_id: int
    objects: _containers.RepeatedCompositeFieldContainer[LabelObject]
    provenance: Provenance
    upload_id: str
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    segmentation: SegmentationMap
    events: _containers.RepeatedCompositeFieldContainer[SoundEvent]
    def __init__(self, label_version: _Optional[str] = ..., class_id: _Optional[int] = ..., objects: _Optional[_Iterable[_Union[LabelObject, _Mapping]]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., upload_id: _Optional[str] = ..., class_ids: _Optional[_Iterable[int]] = ..., segmentation: _Optional[_Union[SegmentationMap, _Mapping]] = ..., events: _Optional[_Iterable[_Union[SoundEvent, _Mapping]]] = ...) -> None: ...

class ListLabelVersionsResponse(_message.Message):
    __slots__ = ("versions", "page")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[LabelVersion]
    page: _common_pb2.PageResponse
    def __init__(self, versions: _Optional[_Iterable[_Union[LabelVersion, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class IngestedEvent(_message.Message):
    __slots__ = ("project", "dataset", "upload_id", "chunk_index", "written", "rejected", "written_time", "inference_set", "total_chunks", "frame_ids", "labeled_frame_ids", "predicted_frame_ids", "embeddings")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_TIME_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    LABELED_FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    upload_id: str
    chunk_index: int
    written: UploadCounts
    rejected: UploadCounts
    written_time: _timestamp_pb2.Timestamp
    inference_set: str
    total_chunks: int
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    labeled_frame_ids: _containers.RepeatedScalarFieldContainer[str]
    predicted_frame_ids: _containers.RepeatedScalarFieldContainer[str]
    embeddings: _containers.RepeatedCompositeFieldContainer[IngestedEmbeddings]
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., upload_id: _Optional[str] = ..., chunk_index: _Optional[int] = ..., written: _Optional[_Union[UploadCounts, _Mapping]] = ..., rejected: _Optional[_Union[UploadCounts, _Mapping]] = ..., written_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inference_set: _Optional[str] = ..., total_chunks: _Optional[int] = ..., frame_ids: _Optional[_Iterable[str]] = ..., labeled_frame_ids: _Optional[_Iterable[str]] = ..., predicted_frame_ids: _Optional[_Iterable[str]] = ..., embeddings: _Optional[_Iterable[_Union[IngestedEmbeddings, _Mapping]]] = ...) -> None: ...

class IngestedEmbeddings(_message.Message):
    __slots__ = ("space", "frame_ids")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    space: str
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, space: _Optional[str] = ..., frame_ids: _Optional[_Iterable[str]] = ...) -> None: ...
