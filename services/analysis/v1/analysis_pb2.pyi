from shoal.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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

class GetClassificationMetricsRequest(_message.Message):
    __slots__ = ("project", "inference_set", "confidence_threshold", "filter", "top_k", "calibration_bins")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_BINS_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    confidence_threshold: float
    filter: _common_pb2.Filter
    top_k: int
    calibration_bins: int
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., confidence_threshold: _Optional[float] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., top_k: _Optional[int] = ..., calibration_bins: _Optional[int] = ...) -> None: ...

class GetClassificationMetricsResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: ClassificationMetrics
    def __init__(self, metrics: _Optional[_Union[ClassificationMetrics, _Mapping]] = ...) -> None: ...

class ClassMetrics(_message.Message):
    __slots__ = ("class_id", "class_name", "precision", "recall", "f1", "support", "predicted")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., f1: _Optional[float] = ..., support: _Optional[int] = ..., predicted: _Optional[int] = ...) -> None: ...

class ConfusionMatrix(_message.Message):
    __slots__ = ("class_ids", "counts")
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, class_ids: _Optional[_Iterable[int]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class CalibrationBin(_message.Message):
    __slots__ = ("lower", "upper", "count", "mean_confidence", "accuracy")
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    lower: float
    upper: float
    count: int
    mean_confidence: float
    accuracy: float
    def __init__(self, lower: _Optional[float] = ..., upper: _Optional[float] = ..., count: _Optional[int] = ..., mean_confidence: _Optional[float] = ..., accuracy: _Optional[float] = ...) -> None: ...

class ClassificationMetrics(_message.Message):
    __slots__ = ("inference_set", "dataset", "frames", "abstained", "confidence_threshold", "accuracy", "top_k", "top_k_accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_precision", "weighted_recall", "weighted_f1", "per_class", "confusion", "expected_calibration_error", "reliability")
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    ABSTAINED_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_K_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    MACRO_PRECISION_FIELD_NUMBER: _ClassVar[int]
    MACRO_RECALL_FIELD_NUMBER: _ClassVar[int]
    MACRO_F1_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_PRECISION_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_RECALL_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_F1_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_CALIBRATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    RELIABILITY_FIELD_NUMBER: _ClassVar[int]
    inference_set: str
    dataset: str
    frames: int
    abstained: int
    confidence_threshold: float
    accuracy: float
    top_k: int
    top_k_accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    per_class: _containers.RepeatedCompositeFieldContainer[ClassMetrics]
    confusion: ConfusionMatrix
    expected_calibration_error: float
    reliability: _containers.RepeatedCompositeFieldContainer[CalibrationBin]
    def __init__(self, inference_set: _Optional[str] = ..., dataset: _Optional[str] = ..., frames: _Optional[int] = ..., abstained: _Optional[int] = ..., confidence_threshold: _Optional[float] = ..., accuracy: _Optional[float] = ..., top_k: _Optional[int] = ..., top_k_accuracy: _Optional[float] = ..., macro_precision: _Optional[float] = ..., macro_recall: _Optional[float] = ..., macro_f1: _Optional[float] = ..., weighted_precision: _Optional[float] = ..., weighted_recall: _Optional[float] = ..., weighted_f1: _Optional[float] = ..., per_class: _Optional[_Iterable[_Union[ClassMetrics, _Mapping]]] = ..., confusion: _Optional[_Union[ConfusionMatrix, _Mapping]] = ..., expected_calibration_error: _Optional[float] = ..., reliability: _Optional[_Iterable[_Union[CalibrationBin, _Mapping]]] = ...) -> None: ...

class SortKey(_message.Message):
    __slots__ = ("field", "descending")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCENDING_FIELD_NUMBER: _ClassVar[int]
    field: str
    descending: bool
    def __init__(self, field: _Optional[str] = ..., descending: _Optional[bool] = ...) -> None: ...

class QueryDatapointsRequest(_message.Message):
    __slots__ = ("project", "dataset", "inference_set", "filter", "confidence_threshold", "sort", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    inference_set: str
    filter: _common_pb2.Filter
    confidence_threshold: float
    sort: _containers.RepeatedCompositeFieldContainer[SortKey]
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., inference_set: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., confidence_threshold: _Optional[float] = ..., sort: _Optional[_Iterable[_Union[SortKey, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class Datapoint(_message.Message):
    __slots__ = ("ref", "split", "media_uri", "label_class", "predicted_class", "confidence", "loss", "margin", "class_probabilities", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...
    REF_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    LABEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    CLASS_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    split: str
    media_uri: str
    label_class: int
    predicted_class: int
    confidence: float
    loss: float
    margin: float
    class_probabilities: _containers.RepeatedScalarFieldContainer[float]
    metadata: _containers.MessageMap[str, _common_pb2.Value]
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., split: _Optional[str] = ..., media_uri: _Optional[str] = ..., label_class: _Optional[int] = ..., predicted_class: _Optional[int] = ..., confidence: _Optional[float] = ..., loss: _Optional[float] = ..., margin: _Optional[float] = ..., class_probabilities: _Optional[_Iterable[float]] = ..., metadata: _Optional[_Mapping[str, _common_pb2.Value]] = ...) -> None: ...

class QueryDatapointsResponse(_message.Message):
    __slots__ = ("datapoints", "page")
    DATAPOINTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    datapoints: _containers.RepeatedCompositeFieldContainer[Datapoint]
    page: _common_pb2.PageResponse
    def __init__(self, datapoints: _Optional[_Iterable[_Union[Datapoint, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...
