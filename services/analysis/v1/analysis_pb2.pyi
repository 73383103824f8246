import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.common.v1 import common_pb2 as _common_pb2
from shoal.ingest.v1 import ingest_pb2 as _ingest_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SegmentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEGMENT_KIND_UNSPECIFIED: _ClassVar[SegmentKind]
    SEGMENT_KIND_ISSUE: _ClassVar[SegmentKind]
    SEGMENT_KIND_REGRESSION_TEST: _ClassVar[SegmentKind]
    SEGMENT_KIND_COLLECTION_SEED: _ClassVar[SegmentKind]
    SEGMENT_KIND_OTHER: _ClassVar[SegmentKind]

class MultiLabelOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MULTI_LABEL_OUTCOME_UNSPECIFIED: _ClassVar[MultiLabelOutcome]
    MULTI_LABEL_OUTCOME_FALSE_POSITIVE: _ClassVar[MultiLabelOutcome]
    MULTI_LABEL_OUTCOME_FALSE_NEGATIVE: _ClassVar[MultiLabelOutcome]
    MULTI_LABEL_OUTCOME_TRUE_POSITIVE: _ClassVar[MultiLabelOutcome]

class DetectionMatchOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DETECTION_MATCH_ORDER_UNSPECIFIED: _ClassVar[DetectionMatchOrder]
    DETECTION_MATCH_ORDER_SCORE_ASCENDING: _ClassVar[DetectionMatchOrder]
    DETECTION_MATCH_ORDER_IOU_ASCENDING: _ClassVar[DetectionMatchOrder]
    DETECTION_MATCH_ORDER_IOU_DESCENDING: _ClassVar[DetectionMatchOrder]

class LabelIssueOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_ISSUE_ORDER_UNSPECIFIED: _ClassVar[LabelIssueOrder]
    LABEL_ISSUE_ORDER_MARGIN: _ClassVar[LabelIssueOrder]
    LABEL_ISSUE_ORDER_WEIGHTED_ENTROPY: _ClassVar[LabelIssueOrder]

class DetectionIssueType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DETECTION_ISSUE_TYPE_UNSPECIFIED: _ClassVar[DetectionIssueType]
    DETECTION_ISSUE_TYPE_MISSING_LABEL: _ClassVar[DetectionIssueType]
    DETECTION_ISSUE_TYPE_SPURIOUS_LABEL: _ClassVar[DetectionIssueType]
    DETECTION_ISSUE_TYPE_MISLOCALIZED: _ClassVar[DetectionIssueType]
    DETECTION_ISSUE_TYPE_CLASS_SWAP: _ClassVar[DetectionIssueType]
    DETECTION_ISSUE_TYPE_MISPLACED_KEYPOINT: _ClassVar[DetectionIssueType]
    DETECTION_ISSUE_TYPE_SWAPPED_KEYPOINTS: _ClassVar[DetectionIssueType]

class DetectionIssueLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DETECTION_ISSUE_LEVEL_UNSPECIFIED: _ClassVar[DetectionIssueLevel]
    DETECTION_ISSUE_LEVEL_OBJECT: _ClassVar[DetectionIssueLevel]
    DETECTION_ISSUE_LEVEL_FRAME: _ClassVar[DetectionIssueLevel]

class DetectionIssueOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DETECTION_ISSUE_ORDER_UNSPECIFIED: _ClassVar[DetectionIssueOrder]
    DETECTION_ISSUE_ORDER_FRAME_ID: _ClassVar[DetectionIssueOrder]

class OutlierOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTLIER_ORDER_UNSPECIFIED: _ClassVar[OutlierOrder]
    OUTLIER_ORDER_LABEL_DISAGREEMENT: _ClassVar[OutlierOrder]
    OUTLIER_ORDER_CLASS_OUTLIER: _ClassVar[OutlierOrder]

class SoundEventIssueType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOUND_EVENT_ISSUE_TYPE_UNSPECIFIED: _ClassVar[SoundEventIssueType]
    SOUND_EVENT_ISSUE_TYPE_MISSING: _ClassVar[SoundEventIssueType]
    SOUND_EVENT_ISSUE_TYPE_SPURIOUS: _ClassVar[SoundEventIssueType]
    SOUND_EVENT_ISSUE_TYPE_BADLY_BOUNDED: _ClassVar[SoundEventIssueType]
    SOUND_EVENT_ISSUE_TYPE_WRONG_CLASS: _ClassVar[SoundEventIssueType]

class SoundEventIssueLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOUND_EVENT_ISSUE_LEVEL_UNSPECIFIED: _ClassVar[SoundEventIssueLevel]
    SOUND_EVENT_ISSUE_LEVEL_INTERVAL: _ClassVar[SoundEventIssueLevel]
    SOUND_EVENT_ISSUE_LEVEL_CLIP: _ClassVar[SoundEventIssueLevel]

class AutomationTriggerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTOMATION_TRIGGER_KIND_UNSPECIFIED: _ClassVar[AutomationTriggerKind]
    AUTOMATION_TRIGGER_KIND_INFERENCE_SET_COMPLETE: _ClassVar[AutomationTriggerKind]
    AUTOMATION_TRIGGER_KIND_LABELS_CHANGED: _ClassVar[AutomationTriggerKind]
    AUTOMATION_TRIGGER_KIND_STANDING_CAMPAIGN_FULL: _ClassVar[AutomationTriggerKind]

class AutomationActionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTOMATION_ACTION_KIND_UNSPECIFIED: _ClassVar[AutomationActionKind]
    AUTOMATION_ACTION_KIND_METRICS: _ClassVar[AutomationActionKind]
    AUTOMATION_ACTION_KIND_GATES: _ClassVar[AutomationActionKind]
    AUTOMATION_ACTION_KIND_LABEL_ISSUES: _ClassVar[AutomationActionKind]
    AUTOMATION_ACTION_KIND_NEIGHBORS: _ClassVar[AutomationActionKind]
    AUTOMATION_ACTION_KIND_SEND_TO_LABELING: _ClassVar[AutomationActionKind]

class AutomationRunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTOMATION_RUN_STATE_UNSPECIFIED: _ClassVar[AutomationRunState]
    AUTOMATION_RUN_STATE_RUNNING: _ClassVar[AutomationRunState]
    AUTOMATION_RUN_STATE_SUCCEEDED: _ClassVar[AutomationRunState]
    AUTOMATION_RUN_STATE_FAILED: _ClassVar[AutomationRunState]
SEGMENT_KIND_UNSPECIFIED: SegmentKind
SEGMENT_KIND_ISSUE: SegmentKind
SEGMENT_KIND_REGRESSION_TEST: SegmentKind
SEGMENT_KIND_COLLECTION_SEED: SegmentKind
SEGMENT_KIND_OTHER: SegmentKind
MULTI_LABEL_OUTCOME_UNSPECIFIED: MultiLabelOutcome
MULTI_LABEL_OUTCOME_FALSE_POSITIVE: MultiLabelOutcome
MULTI_LABEL_OUTCOME_FALSE_NEGATIVE: MultiLabelOutcome
MULTI_LABEL_OUTCOME_TRUE_POSITIVE: MultiLabelOutcome
DETECTION_MATCH_ORDER_UNSPECIFIED: DetectionMatchOrder
DETECTION_MATCH_ORDER_SCORE_ASCENDING: DetectionMatchOrder
DETECTION_MATCH_ORDER_IOU_ASCENDING: DetectionMatchOrder
DETECTION_MATCH_ORDER_IOU_DESCENDING: DetectionMatchOrder
LABEL_ISSUE_ORDER_UNSPECIFIED: LabelIssueOrder
LABEL_ISSUE_ORDER_MARGIN: LabelIssueOrder
LABEL_ISSUE_ORDER_WEIGHTED_ENTROPY: LabelIssueOrder
DETECTION_ISSUE_TYPE_UNSPECIFIED: DetectionIssueType
DETECTION_ISSUE_TYPE_MISSING_LABEL: DetectionIssueType
DETECTION_ISSUE_TYPE_SPURIOUS_LABEL: DetectionIssueType
DETECTION_ISSUE_TYPE_MISLOCALIZED: DetectionIssueType
DETECTION_ISSUE_TYPE_CLASS_SWAP: DetectionIssueType
DETECTION_ISSUE_TYPE_MISPLACED_KEYPOINT: DetectionIssueType
DETECTION_ISSUE_TYPE_SWAPPED_KEYPOINTS: DetectionIssueType
DETECTION_ISSUE_LEVEL_UNSPECIFIED: DetectionIssueLevel
DETECTION_ISSUE_LEVEL_OBJECT: DetectionIssueLevel
DETECTION_ISSUE_LEVEL_FRAME: DetectionIssueLevel
DETECTION_ISSUE_ORDER_UNSPECIFIED: DetectionIssueOrder
DETECTION_ISSUE_ORDER_FRAME_ID: DetectionIssueOrder
OUTLIER_ORDER_UNSPECIFIED: OutlierOrder
OUTLIER_ORDER_LABEL_DISAGREEMENT: OutlierOrder
OUTLIER_ORDER_CLASS_OUTLIER: OutlierOrder
SOUND_EVENT_ISSUE_TYPE_UNSPECIFIED: SoundEventIssueType
SOUND_EVENT_ISSUE_TYPE_MISSING: SoundEventIssueType
SOUND_EVENT_ISSUE_TYPE_SPURIOUS: SoundEventIssueType
SOUND_EVENT_ISSUE_TYPE_BADLY_BOUNDED: SoundEventIssueType
SOUND_EVENT_ISSUE_TYPE_WRONG_CLASS: SoundEventIssueType
SOUND_EVENT_ISSUE_LEVEL_UNSPECIFIED: SoundEventIssueLevel
SOUND_EVENT_ISSUE_LEVEL_INTERVAL: SoundEventIssueLevel
SOUND_EVENT_ISSUE_LEVEL_CLIP: SoundEventIssueLevel
AUTOMATION_TRIGGER_KIND_UNSPECIFIED: AutomationTriggerKind
AUTOMATION_TRIGGER_KIND_INFERENCE_SET_COMPLETE: AutomationTriggerKind
AUTOMATION_TRIGGER_KIND_LABELS_CHANGED: AutomationTriggerKind
AUTOMATION_TRIGGER_KIND_STANDING_CAMPAIGN_FULL: AutomationTriggerKind
AUTOMATION_ACTION_KIND_UNSPECIFIED: AutomationActionKind
AUTOMATION_ACTION_KIND_METRICS: AutomationActionKind
AUTOMATION_ACTION_KIND_GATES: AutomationActionKind
AUTOMATION_ACTION_KIND_LABEL_ISSUES: AutomationActionKind
AUTOMATION_ACTION_KIND_NEIGHBORS: AutomationActionKind
AUTOMATION_ACTION_KIND_SEND_TO_LABELING: AutomationActionKind
AUTOMATION_RUN_STATE_UNSPECIFIED: AutomationRunState
AUTOMATION_RUN_STATE_RUNNING: AutomationRunState
AUTOMATION_RUN_STATE_SUCCEEDED: AutomationRunState
AUTOMATION_RUN_STATE_FAILED: AutomationRunState

class ExportJobResultRequest(_message.Message):
    __slots__ = ("project", "job_id", "batch_rows")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ROWS_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    batch_rows: int
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., batch_rows: _Optional[int] = ...) -> None: ...

class ExportJobResultResponse(_message.Message):
    __slots__ = ("arrow", "total_rows", "kind")
    ARROW_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    arrow: bytes
    total_rows: int
    kind: str
    def __init__(self, arrow: _Optional[bytes] = ..., total_rows: _Optional[int] = ..., kind: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("class_ids", "counts", "omitted_classes")
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    OMITTED_CLASSES_FIELD_NUMBER: _ClassVar[int]
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    counts: _containers.RepeatedScalarFieldContainer[int]
    omitted_classes: int
    def __init__(self, class_ids: _Optional[_Iterable[int]] = ..., counts: _Optional[_Iterable[int]] = ..., omitted_classes: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("project", "dataset", "inference_set", "filter", "confidence_threshold", "sort", "page", "baseline_inference_set", "include_objects")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    inference_set: str
    filter: _common_pb2.Filter
    confidence_threshold: float
    sort: _containers.RepeatedCompositeFieldContainer[SortKey]
    page: _common_pb2.PageRequest
    baseline_inference_set: str
    include_objects: bool
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., inference_set: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., confidence_threshold: _Optional[float] = ..., sort: _Optional[_Iterable[_Union[SortKey, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., baseline_inference_set: _Optional[str] = ..., include_objects: _Optional[bool] = ...) -> None: ...

class DatapointObject(_message.Message):
    __slots__ = ("object_id", "class_id", "box", "score", "is_crowd", "mask", "keypoints", "cuboid")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    IS_CROWD_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    CUBOID_FIELD_NUMBER: _ClassVar[int]
    object_id: str
    class_id: int
    box: _ingest_pb2.Box
    score: float
    is_crowd: bool
    mask: str
    keypoints: _containers.RepeatedCompositeFieldContainer[_ingest_pb2.Keypoint]
    cuboid: _ingest_pb2.Cuboid
    def __init__(self, object_id: _Optional[str] = ..., class_id: _Optional[int] = ..., box: _Optional[_Union[_ingest_pb2.Box, _Mapping]] = ..., score: _Optional[float] = ..., is_crowd: _Optional[bool] = ..., mask: _Optional[str] = ..., keypoints: _Optional[_Iterable[_Union[_ingest_pb2.Keypoint, _Mapping]]] = ..., cuboid: _Optional[_Union[_ingest_pb2.Cuboid, _Mapping]] = ...) -> None: ...

class Datapoint(_message.Message):
    __slots__ = ("ref", "split", "media_uri", "label_class", "predicted_class", "confidence", "loss", "margin", "class_probabilities", "metadata", "baseline_predicted_class", "width", "height", "label_objects", "predicted_objects", "media_type", "coordinate_frame", "ego_pose", "cameras", "duration_seconds", "sample_rate", "label_events", "predicted_events")
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
    BASELINE_PREDICTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LABEL_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    COORDINATE_FRAME_FIELD_NUMBER: _ClassVar[int]
    EGO_POSE_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    LABEL_EVENTS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_EVENTS_FIELD_NUMBER: _ClassVar[int]
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
    baseline_predicted_class: int
    width: int
    height: int
    label_objects: _containers.RepeatedCompositeFieldContainer[DatapointObject]
    predicted_objects: _containers.RepeatedCompositeFieldContainer[DatapointObject]
    media_type: _ingest_pb2.MediaType
    coordinate_frame: _ingest_pb2.CoordinateFrame
    ego_pose: _ingest_pb2.Pose
    cameras: _containers.RepeatedCompositeFieldContainer[_ingest_pb2.CameraImage]
    duration_seconds: float
    sample_rate: int
    label_events: _containers.RepeatedCompositeFieldContainer[_ingest_pb2.SoundEvent]
    predicted_events: _containers.RepeatedCompositeFieldContainer[_ingest_pb2.SoundEvent]
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., split: _Optional[str] = ..., media_uri: _Optional[str] = ..., label_class: _Optional[int] = ..., predicted_class: _Optional[int] = ..., confidence: _Optional[float] = ..., loss: _Optional[float] = ..., margin: _Optional[float] = ..., class_probabilities: _Optional[_Iterable[float]] = ..., metadata: _Optional[_Mapping[str, _common_pb2.Value]] = ..., baseline_predicted_class: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., label_objects: _Optional[_Iterable[_Union[DatapointObject, _Mapping]]] = ..., predicted_objects: _Optional[_Iterable[_Union[DatapointObject, _Mapping]]] = ..., media_type: _Optional[_Union[_ingest_pb2.MediaType, str]] = ..., coordinate_frame: _Optional[_Union[_ingest_pb2.CoordinateFrame, str]] = ..., ego_pose: _Optional[_Union[_ingest_pb2.Pose, _Mapping]] = ..., cameras: _Optional[_Iterable[_Union[_ingest_pb2.CameraImage, _Mapping]]] = ..., duration_seconds: _Optional[float] = ..., sample_rate: _Optional[int] = ..., label_events: _Optional[_Iterable[_Union[_ingest_pb2.SoundEvent, _Mapping]]] = ..., predicted_events: _Optional[_Iterable[_Union[_ingest_pb2.SoundEvent, _Mapping]]] = ...) -> None: ...

class QueryDatapointsResponse(_message.Message):
    __slots__ = ("datapoints", "page")
    DATAPOINTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    datapoints: _containers.RepeatedCompositeFieldContainer[Datapoint]
    page: _common_pb2.PageResponse
    def __init__(self, datapoints: _Optional[_Iterable[_Union[Datapoint, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetSlicesRequest(_message.Message):
    __slots__ = ("project", "inference_set", "group_by", "time_bucket", "confidence_threshold", "min_support", "confidence_level", "filter", "iou_threshold")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    TIME_BUCKET_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_SUPPORT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    group_by: str
    time_bucket: str
    confidence_threshold: float
    min_support: int
    confidence_level: float
    filter: _common_pb2.Filter
    iou_threshold: float
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., group_by: _Optional[str] = ..., time_bucket: _Optional[str] = ..., confidence_threshold: _Optional[float] = ..., min_support: _Optional[int] = ..., confidence_level: _Optional[float] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., iou_threshold: _Optional[float] = ...) -> None: ...

class Slice(_message.Message):
    __slots__ = ("value", "frames", "correct", "accuracy", "interval_lower", "interval_upper", "drop", "objects", "pixels", "mean_iou")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_LOWER_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_UPPER_FIELD_NUMBER: _ClassVar[int]
    DROP_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    MEAN_IOU_FIELD_NUMBER: _ClassVar[int]
    value: str
    frames: int
    correct: int
    accuracy: float
    interval_lower: float
    interval_upper: float
    drop: float
    objects: int
    pixels: int
    mean_iou: float
    def __init__(self, value: _Optional[str] = ..., frames: _Optional[int] = ..., correct: _Optional[int] = ..., accuracy: _Optional[float] = ..., interval_lower: _Optional[float] = ..., interval_upper: _Optional[float] = ..., drop: _Optional[float] = ..., objects: _Optional[int] = ..., pixels: _Optional[int] = ..., mean_iou: _Optional[float] = ...) -> None: ...

class GetSlicesResponse(_message.Message):
    __slots__ = ("overall_accuracy", "frames", "slices", "worst", "objects", "pixels")
    OVERALL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    WORST_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    overall_accuracy: float
    frames: int
    slices: _containers.RepeatedCompositeFieldContainer[Slice]
    worst: _containers.RepeatedCompositeFieldContainer[Slice]
    objects: int
    pixels: int
    def __init__(self, overall_accuracy: _Optional[float] = ..., frames: _Optional[int] = ..., slices: _Optional[_Iterable[_Union[Slice, _Mapping]]] = ..., worst: _Optional[_Iterable[_Union[Slice, _Mapping]]] = ..., objects: _Optional[int] = ..., pixels: _Optional[int] = ...) -> None: ...

class CompareInferenceSetsRequest(_message.Message):
    __slots__ = ("project", "baseline_inference_set", "candidate_inference_set", "confidence_threshold", "filter", "iou_threshold")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    BASELINE_INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    project: str
    baseline_inference_set: str
    candidate_inference_set: str
    confidence_threshold: float
    filter: _common_pb2.Filter
    iou_threshold: float
    def __init__(self, project: _Optional[str] = ..., baseline_inference_set: _Optional[str] = ..., candidate_inference_set: _Optional[str] = ..., confidence_threshold: _Optional[float] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., iou_threshold: _Optional[float] = ...) -> None: ...

class ClassDelta(_message.Message):
    __slots__ = ("class_id", "class_name", "baseline", "candidate", "precision_delta", "recall_delta", "f1_delta", "baseline_iou", "candidate_iou", "iou_delta")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_DELTA_FIELD_NUMBER: _ClassVar[int]
    RECALL_DELTA_FIELD_NUMBER: _ClassVar[int]
    F1_DELTA_FIELD_NUMBER: _ClassVar[int]
    BASELINE_IOU_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_IOU_FIELD_NUMBER: _ClassVar[int]
    IOU_DELTA_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    baseline: ClassMetrics
    candidate: ClassMetrics
    precision_delta: float
    recall_delta: float
    f1_delta: float
    baseline_iou: float
    candidate_iou: float
    iou_delta: float
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., baseline: _Optional[_Union[ClassMetrics, _Mapping]] = ..., candidate: _Optional[_Union[ClassMetrics, _Mapping]] = ..., precision_delta: _Optional[float] = ..., recall_delta: _Optional[float] = ..., f1_delta: _Optional[float] = ..., baseline_iou: _Optional[float] = ..., candidate_iou: _Optional[float] = ..., iou_delta: _Optional[float] = ...) -> None: ...

class CompareInferenceSetsResponse(_message.Message):
    __slots__ = ("frames", "baseline_accuracy", "candidate_accuracy", "per_class", "improved", "regressed", "objects", "baseline_mean_iou", "candidate_mean_iou")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    BASELINE_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    IMPROVED_FIELD_NUMBER: _ClassVar[int]
    REGRESSED_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_MEAN_IOU_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_MEAN_IOU_FIELD_NUMBER: _ClassVar[int]
    frames: int
    baseline_accuracy: float
    candidate_accuracy: float
    per_class: _containers.RepeatedCompositeFieldContainer[ClassDelta]
    improved: int
    regressed: int
    objects: int
    baseline_mean_iou: float
    candidate_mean_iou: float
    def __init__(self, frames: _Optional[int] = ..., baseline_accuracy: _Optional[float] = ..., candidate_accuracy: _Optional[float] = ..., per_class: _Optional[_Iterable[_Union[ClassDelta, _Mapping]]] = ..., improved: _Optional[int] = ..., regressed: _Optional[int] = ..., objects: _Optional[int] = ..., baseline_mean_iou: _Optional[float] = ..., candidate_mean_iou: _Optional[float] = ...) -> None: ...

class Gate(_message.Message):
    __slots__ = ("metric", "class_id", "minimum")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    metric: str
    class_id: int
    minimum: float
    def __init__(self, metric: _Optional[str] = ..., class_id: _Optional[int] = ..., minimum: _Optional[float] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("name", "dataset", "kind", "reason", "author", "gates", "size", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    dataset: str
    kind: SegmentKind
    reason: str
    author: str
    gates: _containers.RepeatedCompositeFieldContainer[Gate]
    size: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., dataset: _Optional[str] = ..., kind: _Optional[_Union[SegmentKind, str]] = ..., reason: _Optional[str] = ..., author: _Optional[str] = ..., gates: _Optional[_Iterable[_Union[Gate, _Mapping]]] = ..., size: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ObjectRef(_message.Message):
    __slots__ = ("frame_id", "object_id")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    object_id: str
    def __init__(self, frame_id: _Optional[str] = ..., object_id: _Optional[str] = ...) -> None: ...

class CreateSegmentRequest(_message.Message):
    __slots__ = ("project", "segment", "frame_ids", "objects")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    project: str
    segment: Segment
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    objects: _containers.RepeatedCompositeFieldContainer[ObjectRef]
    def __init__(self, project: _Optional[str] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ..., frame_ids: _Optional[_Iterable[str]] = ..., objects: _Optional[_Iterable[_Union[ObjectRef, _Mapping]]] = ...) -> None: ...

class CreateSegmentResponse(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: Segment
    def __init__(self, segment: _Optional[_Union[Segment, _Mapping]] = ...) -> None: ...

class GetSegmentRequest(_message.Message):
    __slots__ = ("project", "name")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetSegmentResponse(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: Segment
    def __init__(self, segment: _Optional[_Union[Segment, _Mapping]] = ...) -> None: ...

class ListSegmentsRequest(_message.Message):
    __slots__ = ("project", "kinds", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    kinds: _containers.RepeatedScalarFieldContainer[SegmentKind]
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[SegmentKind, str]]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListSegmentsResponse(_message.Message):
    __slots__ = ("segments", "page")
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    page: _common_pb2.PageResponse
    def __init__(self, segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class UpdateSegmentRequest(_message.Message):
    __slots__ = ("project", "name", "reason", "gates", "replace_gates", "add_frame_ids", "remove_frame_ids", "add_objects", "remove_objects")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    REPLACE_GATES_FIELD_NUMBER: _ClassVar[int]
    ADD_FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    ADD_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    reason: str
    gates: _containers.RepeatedCompositeFieldContainer[Gate]
    replace_gates: bool
    add_frame_ids: _containers.RepeatedScalarFieldContainer[str]
    remove_frame_ids: _containers.RepeatedScalarFieldContainer[str]
    add_objects: _containers.RepeatedCompositeFieldContainer[ObjectRef]
    remove_objects: _containers.RepeatedCompositeFieldContainer[ObjectRef]
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., reason: _Optional[str] = ..., gates: _Optional[_Iterable[_Union[Gate, _Mapping]]] = ..., replace_gates: _Optional[bool] = ..., add_frame_ids: _Optional[_Iterable[str]] = ..., remove_frame_ids: _Optional[_Iterable[str]] = ..., add_objects: _Optional[_Iterable[_Union[ObjectRef, _Mapping]]] = ..., remove_objects: _Optional[_Iterable[_Union[ObjectRef, _Mapping]]] = ...) -> None: ...

class UpdateSegmentResponse(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: Segment
    def __init__(self, segment: _Optional[_Union[Segment, _Mapping]] = ...) -> None: ...

class ListSegmentMembersRequest(_message.Message):
    __slots__ = ("project", "name", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListSegmentMembersResponse(_message.Message):
    __slots__ = ("members", "page")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatapointRef]
    page: _common_pb2.PageResponse
    def __init__(self, members: _Optional[_Iterable[_Union[_common_pb2.DatapointRef, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class EvaluateGatesRequest(_message.Message):
    __slots__ = ("project", "inference_set", "confidence_threshold", "iou_threshold")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    confidence_threshold: float
    iou_threshold: float
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., confidence_threshold: _Optional[float] = ..., iou_threshold: _Optional[float] = ...) -> None: ...

class GateResult(_message.Message):
    __slots__ = ("segment", "gate", "value", "frames", "passed")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    GATE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    segment: str
    gate: Gate
    value: float
    frames: int
    passed: bool
    def __init__(self, segment: _Optional[str] = ..., gate: _Optional[_Union[Gate, _Mapping]] = ..., value: _Optional[float] = ..., frames: _Optional[int] = ..., passed: _Optional[bool] = ...) -> None: ...

class EvaluateGatesResponse(_message.Message):
    __slots__ = ("results", "failed")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[GateResult]
    failed: _containers.RepeatedCompositeFieldContainer[GateResult]
    def __init__(self, results: _Optional[_Iterable[_Union[GateResult, _Mapping]]] = ..., failed: _Optional[_Iterable[_Union[GateResult, _Mapping]]] = ...) -> None: ...

class GetMultiLabelMetricsRequest(_message.Message):
    __slots__ = ("project", "inference_set", "threshold", "filter")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    threshold: float
    filter: _common_pb2.Filter
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., threshold: _Optional[float] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ...) -> None: ...

class MultiLabelClassMetrics(_message.Message):
    __slots__ = ("class_id", "class_name", "precision", "recall", "f1", "average_precision", "support", "predicted")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRECISION_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    precision: float
    recall: float
    f1: float
    average_precision: float
    support: int
    predicted: int
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., f1: _Optional[float] = ..., average_precision: _Optional[float] = ..., support: _Optional[int] = ..., predicted: _Optional[int] = ...) -> None: ...

class MultiLabelMetrics(_message.Message):
    __slots__ = ("inference_set", "dataset", "frames", "threshold", "micro_precision", "micro_recall", "micro_f1", "macro_precision", "macro_recall", "macro_f1", "mean_average_precision", "subset_accuracy", "hamming_loss", "per_class")
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MICRO_PRECISION_FIELD_NUMBER: _ClassVar[int]
    MICRO_RECALL_FIELD_NUMBER: _ClassVar[int]
    MICRO_F1_FIELD_NUMBER: _ClassVar[int]
    MACRO_PRECISION_FIELD_NUMBER: _ClassVar[int]
    MACRO_RECALL_FIELD_NUMBER: _ClassVar[int]
    MACRO_F1_FIELD_NUMBER: _ClassVar[int]
    MEAN_AVERAGE_PRECISION_FIELD_NUMBER: _ClassVar[int]
    SUBSET_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    HAMMING_LOSS_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    inference_set: str
    dataset: str
    frames: int
    threshold: float
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    mean_average_precision: float
    subset_accuracy: float
    hamming_loss: float
    per_class: _containers.RepeatedCompositeFieldContainer[MultiLabelClassMetrics]
    def __init__(self, inference_set: _Optional[str] = ..., dataset: _Optional[str] = ..., frames: _Optional[int] = ..., threshold: _Optional[float] = ..., micro_precision: _Optional[float] = ..., micro_recall: _Optional[float] = ..., micro_f1: _Optional[float] = ..., macro_precision: _Optional[float] = ..., macro_recall: _Optional[float] = ..., macro_f1: _Optional[float] = ..., mean_average_precision: _Optional[float] = ..., subset_accuracy: _Optional[float] = ..., hamming_loss: _Optional[float] = ..., per_class: _Optional[_Iterable[_Union[MultiLabelClassMetrics, _Mapping]]] = ...) -> None: ...

class GetMultiLabelMetricsResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: MultiLabelMetrics
    def __init__(self, metrics: _Optional[_Union[MultiLabelMetrics, _Mapping]] = ...) -> None: ...

class GetSegmentationMetricsRequest(_message.Message):
    __slots__ = ("project", "inference_set", "filter")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    filter: _common_pb2.Filter
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ...) -> None: ...

class SegmentationClassMetrics(_message.Message):
    __slots__ = ("class_id", "class_name", "iou", "accuracy", "precision", "label_pixels", "predicted_pixels", "true_positive_pixels", "frames")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    LABEL_PIXELS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_PIXELS_FIELD_NUMBER: _ClassVar[int]
    TRUE_POSITIVE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    iou: float
    accuracy: float
    precision: float
    label_pixels: int
    predicted_pixels: int
    true_positive_pixels: int
    frames: int
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., iou: _Optional[float] = ..., accuracy: _Optional[float] = ..., precision: _Optional[float] = ..., label_pixels: _Optional[int] = ..., predicted_pixels: _Optional[int] = ..., true_positive_pixels: _Optional[int] = ..., frames: _Optional[int] = ...) -> None: ...

class SegmentationMetrics(_message.Message):
    __slots__ = ("inference_set", "dataset", "frames", "pixels", "pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou", "per_class", "class_ids", "confusion")
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    PIXEL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    MEAN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    MEAN_IOU_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_WEIGHTED_IOU_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_FIELD_NUMBER: _ClassVar[int]
    inference_set: str
    dataset: str
    frames: int
    pixels: int
    pixel_accuracy: float
    mean_accuracy: float
    mean_iou: float
    frequency_weighted_iou: float
    per_class: _containers.RepeatedCompositeFieldContainer[SegmentationClassMetrics]
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    confusion: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, inference_set: _Optional[str] = ..., dataset: _Optional[str] = ..., frames: _Optional[int] = ..., pixels: _Optional[int] = ..., pixel_accuracy: _Optional[float] = ..., mean_accuracy: _Optional[float] = ..., mean_iou: _Optional[float] = ..., frequency_weighted_iou: _Optional[float] = ..., per_class: _Optional[_Iterable[_Union[SegmentationClassMetrics, _Mapping]]] = ..., class_ids: _Optional[_Iterable[int]] = ..., confusion: _Optional[_Iterable[int]] = ...) -> None: ...

class GetSegmentationMetricsResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: SegmentationMetrics
    def __init__(self, metrics: _Optional[_Union[SegmentationMetrics, _Mapping]] = ...) -> None: ...

class QuerySegmentationFramesRequest(_message.Message):
    __slots__ = ("project", "inference_set", "filter", "class_id", "predicted_class", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    filter: _common_pb2.Filter
    class_id: int
    predicted_class: int
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., class_id: _Optional[int] = ..., predicted_class: _Optional[int] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class SegmentationFrame(_message.Message):
    __slots__ = ("ref", "media_uri", "split", "iou", "cell_pixels", "label_pixels", "predicted_pixels", "pixel_accuracy")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    CELL_PIXELS_FIELD_NUMBER: _ClassVar[int]
    LABEL_PIXELS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_PIXELS_FIELD_NUMBER: _ClassVar[int]
    PIXEL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    split: str
    iou: float
    cell_pixels: int
    label_pixels: int
    predicted_pixels: int
    pixel_accuracy: float
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., split: _Optional[str] = ..., iou: _Optional[float] = ..., cell_pixels: _Optional[int] = ..., label_pixels: _Optional[int] = ..., predicted_pixels: _Optional[int] = ..., pixel_accuracy: _Optional[float] = ...) -> None: ...

class QuerySegmentationFramesResponse(_message.Message):
    __slots__ = ("frames", "page")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[SegmentationFrame]
    page: _common_pb2.PageResponse
    def __init__(self, frames: _Optional[_Iterable[_Union[SegmentationFrame, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class QueryMultiLabelFramesRequest(_message.Message):
    __slots__ = ("project", "inference_set", "filter", "class_id", "outcome", "threshold", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    filter: _common_pb2.Filter
    class_id: int
    outcome: MultiLabelOutcome
    threshold: float
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., class_id: _Optional[int] = ..., outcome: _Optional[_Union[MultiLabelOutcome, str]] = ..., threshold: _Optional[float] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class MultiLabelFrame(_message.Message):
    __slots__ = ("ref", "media_uri", "split", "score", "label_class_ids", "predicted_class_ids")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LABEL_CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    split: str
    score: float
    label_class_ids: _containers.RepeatedScalarFieldContainer[int]
    predicted_class_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., split: _Optional[str] = ..., score: _Optional[float] = ..., label_class_ids: _Optional[_Iterable[int]] = ..., predicted_class_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class QueryMultiLabelFramesResponse(_message.Message):
    __slots__ = ("frames", "page")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[MultiLabelFrame]
    page: _common_pb2.PageResponse
    def __init__(self, frames: _Optional[_Iterable[_Union[MultiLabelFrame, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetDetectionMetricsRequest(_message.Message):
    __slots__ = ("project", "inference_set")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ...) -> None: ...

class DetectionClassMetrics(_message.Message):
    __slots__ = ("class_id", "class_name", "ap", "ap50", "ap75", "ar100", "ground_truth", "predicted", "ar")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    AP_FIELD_NUMBER: _ClassVar[int]
    AP50_FIELD_NUMBER: _ClassVar[int]
    AP75_FIELD_NUMBER: _ClassVar[int]
    AR100_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    AR_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    ap: float
    ap50: float
    ap75: float
    ar100: float
    ground_truth: int
    predicted: int
    ar: float
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., ap: _Optional[float] = ..., ap50: _Optional[float] = ..., ap75: _Optional[float] = ..., ar100: _Optional[float] = ..., ground_truth: _Optional[int] = ..., predicted: _Optional[int] = ..., ar: _Optional[float] = ...) -> None: ...

class DetectionMetrics(_message.Message):
    __slots__ = ("inference_set", "dataset", "frames", "ground_truth_objects", "predicted_objects", "ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large", "per_class", "iou_type", "ar", "ar50", "ar75")
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    AP_FIELD_NUMBER: _ClassVar[int]
    AP50_FIELD_NUMBER: _ClassVar[int]
    AP75_FIELD_NUMBER: _ClassVar[int]
    AP_SMALL_FIELD_NUMBER: _ClassVar[int]
    AP_MEDIUM_FIELD_NUMBER: _ClassVar[int]
    AP_LARGE_FIELD_NUMBER: _ClassVar[int]
    AR1_FIELD_NUMBER: _ClassVar[int]
    AR10_FIELD_NUMBER: _ClassVar[int]
    AR100_FIELD_NUMBER: _ClassVar[int]
    AR_SMALL_FIELD_NUMBER: _ClassVar[int]
    AR_MEDIUM_FIELD_NUMBER: _ClassVar[int]
    AR_LARGE_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    IOU_TYPE_FIELD_NUMBER: _ClassVar[int]
    AR_FIELD_NUMBER: _ClassVar[int]
    AR50_FIELD_NUMBER: _ClassVar[int]
    AR75_FIELD_NUMBER: _ClassVar[int]
    inference_set: str
    dataset: str
    frames: int
    ground_truth_objects: int
    predicted_objects: int
    ap: float
    ap50: float
    ap75: float
    ap_small: float
    ap_medium: float
    ap_large: float
    ar1: float
    ar10: float
    ar100: float
    ar_small: float
    ar_medium: float
    ar_large: float
    per_class: _containers.RepeatedCompositeFieldContainer[DetectionClassMetrics]
    iou_type: str
    ar: float
    ar50: float
    ar75: float
    def __init__(self, inference_set: _Optional[str] = ..., dataset: _Optional[str] = ..., frames: _Optional[int] = ..., ground_truth_objects: _Optional[int] = ..., predicted_objects: _Optional[int] = ..., ap: _Optional[float] = ..., ap50: _Optional[float] = ..., ap75: _Optional[float] = ..., ap_small: _Optional[float] = ..., ap_medium: _Optional[float] = ..., ap_large: _Optional[float] = ..., ar1: _Optional[float] = ..., ar10: _Optional[float] = ..., ar100: _Optional[float] = ..., ar_small: _Optional[float] = ..., ar_medium: _Optional[float] = ..., ar_large: _Optional[float] = ..., per_class: _Optional[_Iterable[_Union[DetectionClassMetrics, _Mapping]]] = ..., iou_type: _Optional[str] = ..., ar: _Optional[float] = ..., ar50: _Optional[float] = ..., ar75: _Optional[float] = ...) -> None: ...

class GetDetectionMetricsResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: DetectionMetrics
    def __init__(self, metrics: _Optional[_Union[DetectionMetrics, _Mapping]] = ...) -> None: ...

class GetDetectionConfusionRequest(_message.Message):
    __slots__ = ("project", "inference_set", "iou_threshold", "confidence_threshold")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    iou_threshold: float
    confidence_threshold: float
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., iou_threshold: _Optional[float] = ..., confidence_threshold: _Optional[float] = ...) -> None: ...

class DetectionConfusion(_message.Message):
    __slots__ = ("inference_set", "iou_threshold", "confidence_threshold", "class_ids", "counts", "ignored_predictions", "omitted_classes")
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    IGNORED_PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    OMITTED_CLASSES_FIELD_NUMBER: _ClassVar[int]
    inference_set: str
    iou_threshold: float
    confidence_threshold: float
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    counts: _containers.RepeatedScalarFieldContainer[int]
    ignored_predictions: int
    omitted_classes: int
    def __init__(self, inference_set: _Optional[str] = ..., iou_threshold: _Optional[float] = ..., confidence_threshold: _Optional[float] = ..., class_ids: _Optional[_Iterable[int]] = ..., counts: _Optional[_Iterable[int]] = ..., ignored_predictions: _Optional[int] = ..., omitted_classes: _Optional[int] = ...) -> None: ...

class GetDetectionConfusionResponse(_message.Message):
    __slots__ = ("confusion",)
    CONFUSION_FIELD_NUMBER: _ClassVar[int]
    confusion: DetectionConfusion
    def __init__(self, confusion: _Optional[_Union[DetectionConfusion, _Mapping]] = ...) -> None: ...

class DetectionMatch(_message.Message):
    __slots__ = ("frame_id", "label_object_id", "predicted_object_id", "label_class", "predicted_class", "iou", "score", "media_uri", "split", "label_box", "predicted_box", "label_cuboid", "predicted_cuboid", "distance", "points")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    LABEL_BOX_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_BOX_FIELD_NUMBER: _ClassVar[int]
    LABEL_CUBOID_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CUBOID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    label_object_id: str
    predicted_object_id: str
    label_class: int
    predicted_class: int
    iou: float
    score: float
    media_uri: str
    split: str
    label_box: _ingest_pb2.Box
    predicted_box: _ingest_pb2.Box
    label_cuboid: _ingest_pb2.Cuboid
    predicted_cuboid: _ingest_pb2.Cuboid
    distance: float
    points: int
    def __init__(self, frame_id: _Optional[str] = ..., label_object_id: _Optional[str] = ..., predicted_object_id: _Optional[str] = ..., label_class: _Optional[int] = ..., predicted_class: _Optional[int] = ..., iou: _Optional[float] = ..., score: _Optional[float] = ..., media_uri: _Optional[str] = ..., split: _Optional[str] = ..., label_box: _Optional[_Union[_ingest_pb2.Box, _Mapping]] = ..., predicted_box: _Optional[_Union[_ingest_pb2.Box, _Mapping]] = ..., label_cuboid: _Optional[_Union[_ingest_pb2.Cuboid, _Mapping]] = ..., predicted_cuboid: _Optional[_Union[_ingest_pb2.Cuboid, _Mapping]] = ..., distance: _Optional[float] = ..., points: _Optional[int] = ...) -> None: ...

class QueryDetectionMatchesRequest(_message.Message):
    __slots__ = ("project", "label_class", "predicted_class", "page", "inference_set", "iou_threshold", "confidence_threshold", "any_label_class", "any_predicted_class", "min_score", "max_score", "min_iou", "max_iou", "frame_filter", "order", "baseline_inference_set", "change", "object_segment", "min_distance", "max_distance", "min_points", "max_points")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    LABEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ANY_LABEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    ANY_PREDICTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    MAX_SCORE_FIELD_NUMBER: _ClassVar[int]
    MIN_IOU_FIELD_NUMBER: _ClassVar[int]
    MAX_IOU_FIELD_NUMBER: _ClassVar[int]
    FRAME_FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    BASELINE_INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    MIN_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    MIN_POINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    project: str
    label_class: int
    predicted_class: int
    page: _common_pb2.PageRequest
    inference_set: str
    iou_threshold: float
    confidence_threshold: float
    any_label_class: bool
    any_predicted_class: bool
    min_score: float
    max_score: float
    min_iou: float
    max_iou: float
    frame_filter: _common_pb2.Filter
    order: DetectionMatchOrder
    baseline_inference_set: str
    change: str
    object_segment: str
    min_distance: float
    max_distance: float
    min_points: int
    max_points: int
    def __init__(self, project: _Optional[str] = ..., label_class: _Optional[int] = ..., predicted_class: _Optional[int] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., inference_set: _Optional[str] = ..., iou_threshold: _Optional[float] = ..., confidence_threshold: _Optional[float] = ..., any_label_class: _Optional[bool] = ..., any_predicted_class: _Optional[bool] = ..., min_score: _Optional[float] = ..., max_score: _Optional[float] = ..., min_iou: _Optional[float] = ..., max_iou: _Optional[float] = ..., frame_filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., order: _Optional[_Union[DetectionMatchOrder, str]] = ..., baseline_inference_set: _Optional[str] = ..., change: _Optional[str] = ..., object_segment: _Optional[str] = ..., min_distance: _Optional[float] = ..., max_distance: _Optional[float] = ..., min_points: _Optional[int] = ..., max_points: _Optional[int] = ...) -> None: ...

class QueryDetectionMatchesResponse(_message.Message):
    __slots__ = ("matches", "page")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[DetectionMatch]
    page: _common_pb2.PageResponse
    def __init__(self, matches: _Optional[_Iterable[_Union[DetectionMatch, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class QuerySegmentationIssuesRequest(_message.Message):
    __slots__ = ("project", "job_id", "all_frames", "order", "page", "include_dismissed")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_FRAMES_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DISMISSED_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    all_frames: bool
    order: int
    page: _common_pb2.PageRequest
    include_dismissed: bool
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., all_frames: _Optional[bool] = ..., order: _Optional[int] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., include_dismissed: _Optional[bool] = ...) -> None: ...

class SegmentationIssue(_message.Message):
    __slots__ = ("ref", "media_uri", "score", "is_issue", "labeled_pixels", "flagged_pixels", "core_pixels", "worst_class", "suggested_class", "flagged_mask", "dismissed")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    IS_ISSUE_FIELD_NUMBER: _ClassVar[int]
    LABELED_PIXELS_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_PIXELS_FIELD_NUMBER: _ClassVar[int]
    CORE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    WORST_CLASS_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_MASK_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    score: float
    is_issue: bool
    labeled_pixels: int
    flagged_pixels: int
    core_pixels: int
    worst_class: int
    suggested_class: int
    flagged_mask: str
    dismissed: bool
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., score: _Optional[float] = ..., is_issue: _Optional[bool] = ..., labeled_pixels: _Optional[int] = ..., flagged_pixels: _Optional[int] = ..., core_pixels: _Optional[int] = ..., worst_class: _Optional[int] = ..., suggested_class: _Optional[int] = ..., flagged_mask: _Optional[str] = ..., dismissed: _Optional[bool] = ...) -> None: ...

class SegmentationIssuesSummary(_message.Message):
    __slots__ = ("frames", "flagged_frames", "flagged_pixels", "confident_pixels", "outline_tolerance", "class_ids", "thresholds", "without_probabilities", "unreadable", "failures")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_PIXELS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENT_PIXELS_FIELD_NUMBER: _ClassVar[int]
    OUTLINE_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    WITHOUT_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    frames: int
    flagged_frames: int
    flagged_pixels: int
    confident_pixels: int
    outline_tolerance: int
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    thresholds: _containers.RepeatedScalarFieldContainer[float]
    without_probabilities: int
    unreadable: int
    failures: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, frames: _Optional[int] = ..., flagged_frames: _Optional[int] = ..., flagged_pixels: _Optional[int] = ..., confident_pixels: _Optional[int] = ..., outline_tolerance: _Optional[int] = ..., class_ids: _Optional[_Iterable[int]] = ..., thresholds: _Optional[_Iterable[float]] = ..., without_probabilities: _Optional[int] = ..., unreadable: _Optional[int] = ..., failures: _Optional[_Iterable[str]] = ...) -> None: ...

class QuerySegmentationIssuesResponse(_message.Message):
    __slots__ = ("summary", "issues", "page", "dismissed_count")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ISSUES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    summary: SegmentationIssuesSummary
    issues: _containers.RepeatedCompositeFieldContainer[SegmentationIssue]
    page: _common_pb2.PageResponse
    dismissed_count: int
    def __init__(self, summary: _Optional[_Union[SegmentationIssuesSummary, _Mapping]] = ..., issues: _Optional[_Iterable[_Union[SegmentationIssue, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ..., dismissed_count: _Optional[int] = ...) -> None: ...

class QueryMultiLabelIssuesRequest(_message.Message):
    __slots__ = ("project", "job_id", "all_frames", "order", "page", "include_dismissed")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_FRAMES_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DISMISSED_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    all_frames: bool
    order: int
    page: _common_pb2.PageRequest
    include_dismissed: bool
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., all_frames: _Optional[bool] = ..., order: _Optional[int] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., include_dismissed: _Optional[bool] = ...) -> None: ...

class MultiLabelIssue(_message.Message):
    __slots__ = ("ref", "media_uri", "score", "is_issue", "worst_class", "missing_class_ids", "extra_class_ids", "dismissed")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    IS_ISSUE_FIELD_NUMBER: _ClassVar[int]
    WORST_CLASS_FIELD_NUMBER: _ClassVar[int]
    MISSING_CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    score: float
    is_issue: bool
    worst_class: int
    missing_class_ids: _containers.RepeatedScalarFieldContainer[int]
    extra_class_ids: _containers.RepeatedScalarFieldContainer[int]
    dismissed: bool
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., score: _Optional[float] = ..., is_issue: _Optional[bool] = ..., worst_class: _Optional[int] = ..., missing_class_ids: _Optional[_Iterable[int]] = ..., extra_class_ids: _Optional[_Iterable[int]] = ..., dismissed: _Optional[bool] = ...) -> None: ...

class MultiLabelIssuesSummary(_message.Message):
    __slots__ = ("frames", "flagged_frames", "missing", "extra")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    frames: int
    flagged_frames: int
    missing: int
    extra: int
    def __init__(self, frames: _Optional[int] = ..., flagged_frames: _Optional[int] = ..., missing: _Optional[int] = ..., extra: _Optional[int] = ...) -> None: ...

class QueryMultiLabelIssuesResponse(_message.Message):
    __slots__ = ("summary", "issues", "page", "dismissed_count")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ISSUES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    summary: MultiLabelIssuesSummary
    issues: _containers.RepeatedCompositeFieldContainer[MultiLabelIssue]
    page: _common_pb2.PageResponse
    dismissed_count: int
    def __init__(self, summary: _Optional[_Union[MultiLabelIssuesSummary, _Mapping]] = ..., issues: _Optional[_Iterable[_Union[MultiLabelIssue, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ..., dismissed_count: _Optional[int] = ...) -> None: ...

class StartLabelIssuesRequest(_message.Message):
    __slots__ = ("project", "inference_set", "filter", "rerun", "neighbor_job_id", "outline_tolerance")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RERUN_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOR_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OUTLINE_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    filter: _common_pb2.Filter
    rerun: bool
    neighbor_job_id: str
    outline_tolerance: int
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., rerun: _Optional[bool] = ..., neighbor_job_id: _Optional[str] = ..., outline_tolerance: _Optional[int] = ...) -> None: ...

class StartLabelIssuesResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class LabelIssuesSummary(_message.Message):
    __slots__ = ("frames", "issues", "class_ids", "thresholds", "confident_joint", "joint", "noise_matrix", "issues_per_class", "neighbor_job_id", "neighbor_weight")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    ISSUES_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENT_JOINT_FIELD_NUMBER: _ClassVar[int]
    JOINT_FIELD_NUMBER: _ClassVar[int]
    NOISE_MATRIX_FIELD_NUMBER: _ClassVar[int]
    ISSUES_PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOR_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOR_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    frames: int
    issues: int
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    thresholds: _containers.RepeatedScalarFieldContainer[float]
    confident_joint: _containers.RepeatedScalarFieldContainer[int]
    joint: _containers.RepeatedScalarFieldContainer[float]
    noise_matrix: _containers.RepeatedScalarFieldContainer[float]
    issues_per_class: _containers.RepeatedScalarFieldContainer[int]
    neighbor_job_id: str
    neighbor_weight: float
    def __init__(self, frames: _Optional[int] = ..., issues: _Optional[int] = ..., class_ids: _Optional[_Iterable[int]] = ..., thresholds: _Optional[_Iterable[float]] = ..., confident_joint: _Optional[_Iterable[int]] = ..., joint: _Optional[_Iterable[float]] = ..., noise_matrix: _Optional[_Iterable[float]] = ..., issues_per_class: _Optional[_Iterable[int]] = ..., neighbor_job_id: _Optional[str] = ..., neighbor_weight: _Optional[float] = ...) -> None: ...

class LabelIssue(_message.Message):
    __slots__ = ("ref", "media_uri", "given_label", "suggested_label", "is_issue", "self_confidence", "normalized_margin", "weighted_entropy", "suggested_probability", "neighbor_label", "neighbor_disagreement", "dismissed")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    GIVEN_LABEL_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_LABEL_FIELD_NUMBER: _ClassVar[int]
    IS_ISSUE_FIELD_NUMBER: _ClassVar[int]
    SELF_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_MARGIN_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_ENTROPY_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOR_LABEL_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOR_DISAGREEMENT_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    given_label: int
    suggested_label: int
    is_issue: bool
    self_confidence: float
    normalized_margin: float
    weighted_entropy: float
    suggested_probability: float
    neighbor_label: int
    neighbor_disagreement: float
    dismissed: bool
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., given_label: _Optional[int] = ..., suggested_label: _Optional[int] = ..., is_issue: _Optional[bool] = ..., self_confidence: _Optional[float] = ..., normalized_margin: _Optional[float] = ..., weighted_entropy: _Optional[float] = ..., suggested_probability: _Optional[float] = ..., neighbor_label: _Optional[int] = ..., neighbor_disagreement: _Optional[float] = ..., dismissed: _Optional[bool] = ...) -> None: ...

class QueryLabelIssuesRequest(_message.Message):
    __slots__ = ("project", "job_id", "all_frames", "order", "page", "neighbor_job_id", "include_dismissed")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_FRAMES_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOR_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DISMISSED_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    all_frames: bool
    order: LabelIssueOrder
    page: _common_pb2.PageRequest
    neighbor_job_id: str
    include_dismissed: bool
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., all_frames: _Optional[bool] = ..., order: _Optional[_Union[LabelIssueOrder, str]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., neighbor_job_id: _Optional[str] = ..., include_dismissed: _Optional[bool] = ...) -> None: ...

class QueryLabelIssuesResponse(_message.Message):
    __slots__ = ("summary", "issues", "page", "dismissed_count")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ISSUES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    summary: LabelIssuesSummary
    issues: _containers.RepeatedCompositeFieldContainer[LabelIssue]
    page: _common_pb2.PageResponse
    dismissed_count: int
    def __init__(self, summary: _Optional[_Union[LabelIssuesSummary, _Mapping]] = ..., issues: _Optional[_Iterable[_Union[LabelIssue, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ..., dismissed_count: _Optional[int] = ...) -> None: ...

class DetectionIssuesSummary(_message.Message):
    __slots__ = ("frames", "labeled_objects", "predicted_objects", "flagged_frames", "missing_labels", "spurious_labels", "mislocalized", "class_swaps", "missing_label_threshold", "spurious_label_threshold", "mislocalized_threshold", "class_swap_threshold", "match_iou", "misplaced_keypoints", "swapped_keypoints", "misplaced_keypoint_threshold", "swapped_keypoints_threshold")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    LABELED_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MISSING_LABELS_FIELD_NUMBER: _ClassVar[int]
    SPURIOUS_LABELS_FIELD_NUMBER: _ClassVar[int]
    MISLOCALIZED_FIELD_NUMBER: _ClassVar[int]
    CLASS_SWAPS_FIELD_NUMBER: _ClassVar[int]
    MISSING_LABEL_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SPURIOUS_LABEL_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MISLOCALIZED_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CLASS_SWAP_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MATCH_IOU_FIELD_NUMBER: _ClassVar[int]
    MISPLACED_KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    SWAPPED_KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    MISPLACED_KEYPOINT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SWAPPED_KEYPOINTS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    frames: int
    labeled_objects: int
    predicted_objects: int
    flagged_frames: int
    missing_labels: int
    spurious_labels: int
    mislocalized: int
    class_swaps: int
    missing_label_threshold: float
    spurious_label_threshold: float
    mislocalized_threshold: float
    class_swap_threshold: float
    match_iou: float
    misplaced_keypoints: int
    swapped_keypoints: int
    misplaced_keypoint_threshold: float
    swapped_keypoints_threshold: float
    def __init__(self, frames: _Optional[int] = ..., labeled_objects: _Optional[int] = ..., predicted_objects: _Optional[int] = ..., flagged_frames: _Optional[int] = ..., missing_labels: _Optional[int] = ..., spurious_labels: _Optional[int] = ..., mislocalized: _Optional[int] = ..., class_swaps: _Optional[int] = ..., missing_label_threshold: _Optional[float] = ..., spurious_label_threshold: _Optional[float] = ..., mislocalized_threshold: _Optional[float] = ..., class_swap_threshold: _Optional[float] = ..., match_iou: _Optional[float] = ..., misplaced_keypoints: _Optional[int] = ..., swapped_keypoints: _Optional[int] = ..., misplaced_keypoint_threshold: _Optional[float] = ..., swapped_keypoints_threshold: _Optional[float] = ...) -> None: ...

class DetectionObjectIssue(_message.Message):
    __slots__ = ("ref", "media_uri", "issue_type", "score", "is_issue", "predicted", "given_class", "suggested_class", "partner_object_id", "iou", "confidence", "label_box", "predicted_box", "dismissed", "keypoints", "label_cuboid", "predicted_cuboid", "mislocalization")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    IS_ISSUE_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    GIVEN_CLASS_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    PARTNER_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LABEL_BOX_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_BOX_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    LABEL_CUBOID_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CUBOID_FIELD_NUMBER: _ClassVar[int]
    MISLOCALIZATION_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    issue_type: DetectionIssueType
    score: float
    is_issue: bool
    predicted: bool
    given_class: int
    suggested_class: int
    partner_object_id: str
    iou: float
    confidence: float
    label_box: _ingest_pb2.Box
    predicted_box: _ingest_pb2.Box
    dismissed: bool
    keypoints: _containers.RepeatedScalarFieldContainer[int]
    label_cuboid: _ingest_pb2.Cuboid
    predicted_cuboid: _ingest_pb2.Cuboid
    mislocalization: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., issue_type: _Optional[_Union[DetectionIssueType, str]] = ..., score: _Optional[float] = ..., is_issue: _Optional[bool] = ..., predicted: _Optional[bool] = ..., given_class: _Optional[int] = ..., suggested_class: _Optional[int] = ..., partner_object_id: _Optional[str] = ..., iou: _Optional[float] = ..., confidence: _Optional[float] = ..., label_box: _Optional[_Union[_ingest_pb2.Box, _Mapping]] = ..., predicted_box: _Optional[_Union[_ingest_pb2.Box, _Mapping]] = ..., dismissed: _Optional[bool] = ..., keypoints: _Optional[_Iterable[int]] = ..., label_cuboid: _Optional[_Union[_ingest_pb2.Cuboid, _Mapping]] = ..., predicted_cuboid: _Optional[_Union[_ingest_pb2.Cuboid, _Mapping]] = ..., mislocalization: _Optional[str] = ...) -> None: ...

class DetectionFrameIssue(_message.Message):
    __slots__ = ("ref", "media_uri", "score", "is_issue", "worst_type", "objects", "missing_labels", "spurious_labels", "mislocalized", "class_swaps", "dismissed", "misplaced_keypoints", "swapped_keypoints")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    IS_ISSUE_FIELD_NUMBER: _ClassVar[int]
    WORST_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    MISSING_LABELS_FIELD_NUMBER: _ClassVar[int]
    SPURIOUS_LABELS_FIELD_NUMBER: _ClassVar[int]
    MISLOCALIZED_FIELD_NUMBER: _ClassVar[int]
    CLASS_SWAPS_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_FIELD_NUMBER: _ClassVar[int]
    MISPLACED_KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    SWAPPED_KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    score: float
    is_issue: bool
    worst_type: DetectionIssueType
    objects: int
    missing_labels: int
    spurious_labels: int
    mislocalized: int
    class_swaps: int
    dismissed: bool
    misplaced_keypoints: int
    swapped_keypoints: int
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., score: _Optional[float] = ..., is_issue: _Optional[bool] = ..., worst_type: _Optional[_Union[DetectionIssueType, str]] = ..., objects: _Optional[int] = ..., missing_labels: _Optional[int] = ..., spurious_labels: _Optional[int] = ..., mislocalized: _Optional[int] = ..., class_swaps: _Optional[int] = ..., dismissed: _Optional[bool] = ..., misplaced_keypoints: _Optional[int] = ..., swapped_keypoints: _Optional[int] = ...) -> None: ...

class QueryDetectionLabelIssuesRequest(_message.Message):
    __slots__ = ("project", "job_id", "level", "issue_types", "include_unflagged", "order", "page", "include_dismissed")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TYPES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNFLAGGED_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DISMISSED_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    level: DetectionIssueLevel
    issue_types: _containers.RepeatedScalarFieldContainer[DetectionIssueType]
    include_unflagged: bool
    order: DetectionIssueOrder
    page: _common_pb2.PageRequest
    include_dismissed: bool
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., level: _Optional[_Union[DetectionIssueLevel, str]] = ..., issue_types: _Optional[_Iterable[_Union[DetectionIssueType, str]]] = ..., include_unflagged: _Optional[bool] = ..., order: _Optional[_Union[DetectionIssueOrder, str]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., include_dismissed: _Optional[bool] = ...) -> None: ...

class QueryDetectionLabelIssuesResponse(_message.Message):
    __slots__ = ("summary", "objects", "frames", "page", "dismissed_count")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    summary: DetectionIssuesSummary
    objects: _containers.RepeatedCompositeFieldContainer[DetectionObjectIssue]
    frames: _containers.RepeatedCompositeFieldContainer[DetectionFrameIssue]
    page: _common_pb2.PageResponse
    dismissed_count: int
    def __init__(self, summary: _Optional[_Union[DetectionIssuesSummary, _Mapping]] = ..., objects: _Optional[_Iterable[_Union[DetectionObjectIssue, _Mapping]]] = ..., frames: _Optional[_Iterable[_Union[DetectionFrameIssue, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ..., dismissed_count: _Optional[int] = ...) -> None: ...

class DismissLabelIssuesRequest(_message.Message):
    __slots__ = ("project", "job_id", "frame_ids", "objects", "reason", "dismissed_by", "restore")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_BY_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    objects: _containers.RepeatedCompositeFieldContainer[ObjectRef]
    reason: str
    dismissed_by: str
    restore: bool
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., frame_ids: _Optional[_Iterable[str]] = ..., objects: _Optional[_Iterable[_Union[ObjectRef, _Mapping]]] = ..., reason: _Optional[str] = ..., dismissed_by: _Optional[str] = ..., restore: _Optional[bool] = ...) -> None: ...

class DismissLabelIssuesResponse(_message.Message):
    __slots__ = ("dataset", "frames", "objects")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    frames: int
    objects: int
    def __init__(self, dataset: _Optional[str] = ..., frames: _Optional[int] = ..., objects: _Optional[int] = ...) -> None: ...

class StartNeighborAnalysisRequest(_message.Message):
    __slots__ = ("project", "dataset", "embedding_space", "k", "duplicate_distance", "rerun")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    RERUN_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    embedding_space: str
    k: int
    duplicate_distance: float
    rerun: bool
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., embedding_space: _Optional[str] = ..., k: _Optional[int] = ..., duplicate_distance: _Optional[float] = ..., rerun: _Optional[bool] = ...) -> None: ...

class StartNeighborAnalysisResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class NeighborSummary(_message.Message):
    __slots__ = ("frames", "k", "metric", "duplicate_distance", "median_nearest_distance", "exact_duplicate_pairs", "near_duplicate_pairs", "cross_split_pairs", "exact_search")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_NEAREST_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    EXACT_DUPLICATE_PAIRS_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATE_PAIRS_FIELD_NUMBER: _ClassVar[int]
    CROSS_SPLIT_PAIRS_FIELD_NUMBER: _ClassVar[int]
    EXACT_SEARCH_FIELD_NUMBER: _ClassVar[int]
    frames: int
    k: int
    metric: str
    duplicate_distance: float
    median_nearest_distance: float
    exact_duplicate_pairs: int
    near_duplicate_pairs: int
    cross_split_pairs: int
    exact_search: bool
    def __init__(self, frames: _Optional[int] = ..., k: _Optional[int] = ..., metric: _Optional[str] = ..., duplicate_distance: _Optional[float] = ..., median_nearest_distance: _Optional[float] = ..., exact_duplicate_pairs: _Optional[int] = ..., near_duplicate_pairs: _Optional[int] = ..., cross_split_pairs: _Optional[int] = ..., exact_search: _Optional[bool] = ...) -> None: ...

class Neighbor(_message.Message):
    __slots__ = ("frame_id", "distance")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    distance: float
    def __init__(self, frame_id: _Optional[str] = ..., distance: _Optional[float] = ...) -> None: ...

class OutlierFrame(_message.Message):
    __slots__ = ("ref", "media_uri", "split", "label_class", "outlier_score", "nearest_distance", "neighbor_label", "label_disagreement", "duplicates", "neighbors", "class_outlier_score")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    LABEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_SCORE_FIELD_NUMBER: _ClassVar[int]
    NEAREST_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOR_LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_DISAGREEMENT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    CLASS_OUTLIER_SCORE_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    split: str
    label_class: int
    outlier_score: float
    nearest_distance: float
    neighbor_label: int
    label_disagreement: float
    duplicates: int
    neighbors: _containers.RepeatedCompositeFieldContainer[Neighbor]
    class_outlier_score: float
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., split: _Optional[str] = ..., label_class: _Optional[int] = ..., outlier_score: _Optional[float] = ..., nearest_distance: _Optional[float] = ..., neighbor_label: _Optional[int] = ..., label_disagreement: _Optional[float] = ..., duplicates: _Optional[int] = ..., neighbors: _Optional[_Iterable[_Union[Neighbor, _Mapping]]] = ..., class_outlier_score: _Optional[float] = ...) -> None: ...

class QueryOutliersRequest(_message.Message):
    __slots__ = ("project", "job_id", "order", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    order: OutlierOrder
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., order: _Optional[_Union[OutlierOrder, str]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class QueryOutliersResponse(_message.Message):
    __slots__ = ("summary", "frames", "page")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    summary: NeighborSummary
    frames: _containers.RepeatedCompositeFieldContainer[OutlierFrame]
    page: _common_pb2.PageResponse
    def __init__(self, summary: _Optional[_Union[NeighborSummary, _Mapping]] = ..., frames: _Optional[_Iterable[_Union[OutlierFrame, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class DuplicatePair(_message.Message):
    __slots__ = ("a", "b", "distance", "exact", "split_a", "split_b")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_A_FIELD_NUMBER: _ClassVar[int]
    SPLIT_B_FIELD_NUMBER: _ClassVar[int]
    a: _common_pb2.DatapointRef
    b: _common_pb2.DatapointRef
    distance: float
    exact: bool
    split_a: str
    split_b: str
    def __init__(self, a: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., b: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., distance: _Optional[float] = ..., exact: _Optional[bool] = ..., split_a: _Optional[str] = ..., split_b: _Optional[str] = ...) -> None: ...

class QueryDuplicatesRequest(_message.Message):
    __slots__ = ("project", "job_id", "cross_split_only", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CROSS_SPLIT_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    cross_split_only: bool
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., cross_split_only: _Optional[bool] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class QueryDuplicatesResponse(_message.Message):
    __slots__ = ("summary", "pairs", "page")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    summary: NeighborSummary
    pairs: _containers.RepeatedCompositeFieldContainer[DuplicatePair]
    page: _common_pb2.PageResponse
    def __init__(self, summary: _Optional[_Union[NeighborSummary, _Mapping]] = ..., pairs: _Optional[_Iterable[_Union[DuplicatePair, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class StartEmbeddingMapRequest(_message.Message):
    __slots__ = ("project", "dataset", "embedding_space", "sample_size", "rerun")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RERUN_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    embedding_space: str
    sample_size: int
    rerun: bool
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., embedding_space: _Optional[str] = ..., sample_size: _Optional[int] = ..., rerun: _Optional[bool] = ...) -> None: ...

class StartEmbeddingMapResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class MapSummary(_message.Message):
    __slots__ = ("frames", "fitted_on", "metric", "min_x", "max_x", "min_y", "max_y")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FITTED_ON_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MIN_X_FIELD_NUMBER: _ClassVar[int]
    MAX_X_FIELD_NUMBER: _ClassVar[int]
    MIN_Y_FIELD_NUMBER: _ClassVar[int]
    MAX_Y_FIELD_NUMBER: _ClassVar[int]
    frames: int
    fitted_on: int
    metric: str
    min_x: float
    max_x: float
    min_y: float
    max_y: float
    def __init__(self, frames: _Optional[int] = ..., fitted_on: _Optional[int] = ..., metric: _Optional[str] = ..., min_x: _Optional[float] = ..., max_x: _Optional[float] = ..., min_y: _Optional[float] = ..., max_y: _Optional[float] = ...) -> None: ...

class MapPoint(_message.Message):
    __slots__ = ("frame_id", "x", "y", "label_class", "split", "predicted_class", "correct", "label_issue", "self_confidence", "metadata_value")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    LABEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    LABEL_ISSUE_FIELD_NUMBER: _ClassVar[int]
    SELF_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_VALUE_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    x: float
    y: float
    label_class: int
    split: str
    predicted_class: int
    correct: bool
    label_issue: bool
    self_confidence: float
    metadata_value: _common_pb2.Value
    def __init__(self, frame_id: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., label_class: _Optional[int] = ..., split: _Optional[str] = ..., predicted_class: _Optional[int] = ..., correct: _Optional[bool] = ..., label_issue: _Optional[bool] = ..., self_confidence: _Optional[float] = ..., metadata_value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...

class GetMapViewportRequest(_message.Message):
    __slots__ = ("project", "job_id", "min_x", "min_y", "max_x", "max_y", "max_points", "inference_set", "label_issue_job_id", "metadata_key", "arrow")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_X_FIELD_NUMBER: _ClassVar[int]
    MIN_Y_FIELD_NUMBER: _ClassVar[int]
    MAX_X_FIELD_NUMBER: _ClassVar[int]
    MAX_Y_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    LABEL_ISSUE_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_KEY_FIELD_NUMBER: _ClassVar[int]
    ARROW_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    min_x: float
    min_y: float
    max_x: float
    max_y: float
    max_points: int
    inference_set: str
    label_issue_job_id: str
    metadata_key: str
    arrow: bool
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., min_x: _Optional[float] = ..., min_y: _Optional[float] = ..., max_x: _Optional[float] = ..., max_y: _Optional[float] = ..., max_points: _Optional[int] = ..., inference_set: _Optional[str] = ..., label_issue_job_id: _Optional[str] = ..., metadata_key: _Optional[str] = ..., arrow: _Optional[bool] = ...) -> None: ...

class GetMapViewportResponse(_message.Message):
    __slots__ = ("summary", "points", "total_in_viewport", "points_arrow")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_IN_VIEWPORT_FIELD_NUMBER: _ClassVar[int]
    POINTS_ARROW_FIELD_NUMBER: _ClassVar[int]
    summary: MapSummary
    points: _containers.RepeatedCompositeFieldContainer[MapPoint]
    total_in_viewport: int
    points_arrow: bytes
    def __init__(self, summary: _Optional[_Union[MapSummary, _Mapping]] = ..., points: _Optional[_Iterable[_Union[MapPoint, _Mapping]]] = ..., total_in_viewport: _Optional[int] = ..., points_arrow: _Optional[bytes] = ...) -> None: ...

class MapVertex(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class QueryMapRegionRequest(_message.Message):
    __slots__ = ("project", "job_id", "polygon", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    POLYGON_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    polygon: _containers.RepeatedCompositeFieldContainer[MapVertex]
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., polygon: _Optional[_Iterable[_Union[MapVertex, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class QueryMapRegionResponse(_message.Message):
    __slots__ = ("dataset", "frame_ids", "page")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    page: _common_pb2.PageResponse
    def __init__(self, dataset: _Optional[str] = ..., frame_ids: _Optional[_Iterable[str]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class DriftSide(_message.Message):
    __slots__ = ("dataset", "since", "until")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, dataset: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartDriftRequest(_message.Message):
    __slots__ = ("project", "a", "b", "embedding_space", "k", "sample_size", "rerun")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RERUN_FIELD_NUMBER: _ClassVar[int]
    project: str
    a: DriftSide
    b: DriftSide
    embedding_space: str
    k: int
    sample_size: int
    rerun: bool
    def __init__(self, project: _Optional[str] = ..., a: _Optional[_Union[DriftSide, _Mapping]] = ..., b: _Optional[_Union[DriftSide, _Mapping]] = ..., embedding_space: _Optional[str] = ..., k: _Optional[int] = ..., sample_size: _Optional[int] = ..., rerun: _Optional[bool] = ...) -> None: ...

class StartDriftResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class DriftRegion(_message.Message):
    __slots__ = ("region", "frames_a", "frames_b", "shift", "score", "examples_a", "examples_b")
    REGION_FIELD_NUMBER: _ClassVar[int]
    FRAMES_A_FIELD_NUMBER: _ClassVar[int]
    FRAMES_B_FIELD_NUMBER: _ClassVar[int]
    SHIFT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_A_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_B_FIELD_NUMBER: _ClassVar[int]
    region: int
    frames_a: int
    frames_b: int
    shift: float
    score: float
    examples_a: _containers.RepeatedScalarFieldContainer[str]
    examples_b: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, region: _Optional[int] = ..., frames_a: _Optional[int] = ..., frames_b: _Optional[int] = ..., shift: _Optional[float] = ..., score: _Optional[float] = ..., examples_a: _Optional[_Iterable[str]] = ..., examples_b: _Optional[_Iterable[str]] = ...) -> None: ...

class GetDriftRequest(_message.Message):
    __slots__ = ("project", "job_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class GetDriftResponse(_message.Message):
    __slots__ = ("frames_a", "frames_b", "k", "metric", "statistic", "expected", "p_value", "z_score", "regions")
    FRAMES_A_FIELD_NUMBER: _ClassVar[int]
    FRAMES_B_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    Z_SCORE_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    frames_a: int
    frames_b: int
    k: int
    metric: str
    statistic: float
    expected: float
    p_value: float
    z_score: float
    regions: _containers.RepeatedCompositeFieldContainer[DriftRegion]
    def __init__(self, frames_a: _Optional[int] = ..., frames_b: _Optional[int] = ..., k: _Optional[int] = ..., metric: _Optional[str] = ..., statistic: _Optional[float] = ..., expected: _Optional[float] = ..., p_value: _Optional[float] = ..., z_score: _Optional[float] = ..., regions: _Optional[_Iterable[_Union[DriftRegion, _Mapping]]] = ...) -> None: ...

class StartFailureClustersRequest(_message.Message):
    __slots__ = ("project", "inference_set", "embedding_space", "filter", "confidence_threshold", "iou_threshold", "max_clusters", "min_cluster_size", "rerun")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    MIN_CLUSTER_SIZE_FIELD_NUMBER: _ClassVar[int]
    RERUN_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    embedding_space: str
    filter: _common_pb2.Filter
    confidence_threshold: float
    iou_threshold: float
    max_clusters: int
    min_cluster_size: int
    rerun: bool
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., embedding_space: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., confidence_threshold: _Optional[float] = ..., iou_threshold: _Optional[float] = ..., max_clusters: _Optional[int] = ..., min_cluster_size: _Optional[int] = ..., rerun: _Optional[bool] = ...) -> None: ...

class StartFailureClustersResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class FailureClusterSummary(_message.Message):
    __slots__ = ("frames", "errors", "error_rate", "clusters", "clustered_errors", "metric", "frames_without_vectors")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    CLUSTERED_ERRORS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    FRAMES_WITHOUT_VECTORS_FIELD_NUMBER: _ClassVar[int]
    frames: int
    errors: int
    error_rate: float
    clusters: int
    clustered_errors: int
    metric: str
    frames_without_vectors: int
    def __init__(self, frames: _Optional[int] = ..., errors: _Optional[int] = ..., error_rate: _Optional[float] = ..., clusters: _Optional[int] = ..., clustered_errors: _Optional[int] = ..., metric: _Optional[str] = ..., frames_without_vectors: _Optional[int] = ...) -> None: ...

class ClassPair(_message.Message):
    __slots__ = ("label_class", "predicted_class", "errors", "share")
    LABEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    label_class: int
    predicted_class: int
    errors: int
    share: float
    def __init__(self, label_class: _Optional[int] = ..., predicted_class: _Optional[int] = ..., errors: _Optional[int] = ..., share: _Optional[float] = ...) -> None: ...

class OverRepresentedValue(_message.Message):
    __slots__ = ("field", "value", "errors", "share", "overall_share", "lift")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    OVERALL_SHARE_FIELD_NUMBER: _ClassVar[int]
    LIFT_FIELD_NUMBER: _ClassVar[int]
    field: str
    value: str
    errors: int
    share: float
    overall_share: float
    lift: float
    def __init__(self, field: _Optional[str] = ..., value: _Optional[str] = ..., errors: _Optional[int] = ..., share: _Optional[float] = ..., overall_share: _Optional[float] = ..., lift: _Optional[float] = ...) -> None: ...

class FailureCluster(_message.Message):
    __slots__ = ("cluster", "errors", "frames", "error_rate", "lift", "score", "class_pairs", "values", "example_frame_ids", "description", "p_value")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    LIFT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CLASS_PAIRS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    cluster: int
    errors: int
    frames: int
    error_rate: float
    lift: float
    score: float
    class_pairs: _containers.RepeatedCompositeFieldContainer[ClassPair]
    values: _containers.RepeatedCompositeFieldContainer[OverRepresentedValue]
    example_frame_ids: _containers.RepeatedScalarFieldContainer[str]
    description: str
    p_value: float
    def __init__(self, cluster: _Optional[int] = ..., errors: _Optional[int] = ..., frames: _Optional[int] = ..., error_rate: _Optional[float] = ..., lift: _Optional[float] = ..., score: _Optional[float] = ..., class_pairs: _Optional[_Iterable[_Union[ClassPair, _Mapping]]] = ..., values: _Optional[_Iterable[_Union[OverRepresentedValue, _Mapping]]] = ..., example_frame_ids: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., p_value: _Optional[float] = ...) -> None: ...

class GetFailureClustersRequest(_message.Message):
    __slots__ = ("project", "job_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class GetFailureClustersResponse(_message.Message):
    __slots__ = ("summary", "clusters")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    summary: FailureClusterSummary
    clusters: _containers.RepeatedCompositeFieldContainer[FailureCluster]
    def __init__(self, summary: _Optional[_Union[FailureClusterSummary, _Mapping]] = ..., clusters: _Optional[_Iterable[_Union[FailureCluster, _Mapping]]] = ...) -> None: ...

class SaveFailureClustersRequest(_message.Message):
    __slots__ = ("project", "job_id", "clusters", "name_prefix", "include_correct", "author")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CORRECT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    clusters: _containers.RepeatedScalarFieldContainer[int]
    name_prefix: str
    include_correct: bool
    author: str
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., clusters: _Optional[_Iterable[int]] = ..., name_prefix: _Optional[str] = ..., include_correct: _Optional[bool] = ..., author: _Optional[str] = ...) -> None: ...

class SaveFailureClustersResponse(_message.Message):
    __slots__ = ("segments",)
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    def __init__(self, segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ...) -> None: ...

class GetCuboidMetricsRequest(_message.Message):
    __slots__ = ("project", "inference_set", "frame_filter", "min_distance", "max_distance", "min_points", "max_points", "iou_thresholds", "confidence_threshold")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    FRAME_FILTER_FIELD_NUMBER: _ClassVar[int]
    MIN_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    MIN_POINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    frame_filter: _common_pb2.Filter
    min_distance: float
    max_distance: float
    min_points: int
    max_points: int
    iou_thresholds: _containers.RepeatedScalarFieldContainer[float]
    confidence_threshold: float
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., frame_filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., min_distance: _Optional[float] = ..., max_distance: _Optional[float] = ..., min_points: _Optional[int] = ..., max_points: _Optional[int] = ..., iou_thresholds: _Optional[_Iterable[float]] = ..., confidence_threshold: _Optional[float] = ...) -> None: ...

class NuScenesClassMetrics(_message.Message):
    __slots__ = ("class_id", "class_name", "ap", "ap_at", "ate", "ase", "aoe", "ave", "aae", "ground_truth", "predicted")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    AP_FIELD_NUMBER: _ClassVar[int]
    AP_AT_FIELD_NUMBER: _ClassVar[int]
    ATE_FIELD_NUMBER: _ClassVar[int]
    ASE_FIELD_NUMBER: _ClassVar[int]
    AOE_FIELD_NUMBER: _ClassVar[int]
    AVE_FIELD_NUMBER: _ClassVar[int]
    AAE_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    ap: float
    ap_at: _containers.RepeatedScalarFieldContainer[float]
    ate: float
    ase: float
    aoe: float
    ave: float
    aae: float
    ground_truth: int
    predicted: int
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., ap: _Optional[float] = ..., ap_at: _Optional[_Iterable[float]] = ..., ate: _Optional[float] = ..., ase: _Optional[float] = ..., aoe: _Optional[float] = ..., ave: _Optional[float] = ..., aae: _Optional[float] = ..., ground_truth: _Optional[int] = ..., predicted: _Optional[int] = ...) -> None: ...

class NuScenesMetrics(_message.Message):
    __slots__ = ("distance_thresholds", "map", "nds", "mate", "mase", "maoe", "mave", "maae", "per_class")
    DISTANCE_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    NDS_FIELD_NUMBER: _ClassVar[int]
    MATE_FIELD_NUMBER: _ClassVar[int]
    MASE_FIELD_NUMBER: _ClassVar[int]
    MAOE_FIELD_NUMBER: _ClassVar[int]
    MAVE_FIELD_NUMBER: _ClassVar[int]
    MAAE_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    distance_thresholds: _containers.RepeatedScalarFieldContainer[float]
    map: float
    nds: float
    mate: float
    mase: float
    maoe: float
    mave: float
    maae: float
    per_class: _containers.RepeatedCompositeFieldContainer[NuScenesClassMetrics]
    def __init__(self, distance_thresholds: _Optional[_Iterable[float]] = ..., map: _Optional[float] = ..., nds: _Optional[float] = ..., mate: _Optional[float] = ..., mase: _Optional[float] = ..., maoe: _Optional[float] = ..., mave: _Optional[float] = ..., maae: _Optional[float] = ..., per_class: _Optional[_Iterable[_Union[NuScenesClassMetrics, _Mapping]]] = ...) -> None: ...

class IouApClassMetrics(_message.Message):
    __slots__ = ("class_id", "class_name", "ap", "ap_at")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    AP_FIELD_NUMBER: _ClassVar[int]
    AP_AT_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    ap: float
    ap_at: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., ap: _Optional[float] = ..., ap_at: _Optional[_Iterable[float]] = ...) -> None: ...

class IouApMetrics(_message.Message):
    __slots__ = ("iou_type", "iou_thresholds", "map", "map_at", "per_class")
    IOU_TYPE_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    MAP_AT_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    iou_type: str
    iou_thresholds: _containers.RepeatedScalarFieldContainer[float]
    map: float
    map_at: _containers.RepeatedScalarFieldContainer[float]
    per_class: _containers.RepeatedCompositeFieldContainer[IouApClassMetrics]
    def __init__(self, iou_type: _Optional[str] = ..., iou_thresholds: _Optional[_Iterable[float]] = ..., map: _Optional[float] = ..., map_at: _Optional[_Iterable[float]] = ..., per_class: _Optional[_Iterable[_Union[IouApClassMetrics, _Mapping]]] = ...) -> None: ...

class CuboidMetrics(_message.Message):
    __slots__ = ("inference_set", "dataset", "frames", "ground_truth_objects", "predicted_objects", "nuscenes", "bev", "iou_3d")
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    NUSCENES_FIELD_NUMBER: _ClassVar[int]
    BEV_FIELD_NUMBER: _ClassVar[int]
    IOU_3D_FIELD_NUMBER: _ClassVar[int]
    inference_set: str
    dataset: str
    frames: int
    ground_truth_objects: int
    predicted_objects: int
    nuscenes: NuScenesMetrics
    bev: IouApMetrics
    iou_3d: IouApMetrics
    def __init__(self, inference_set: _Optional[str] = ..., dataset: _Optional[str] = ..., frames: _Optional[int] = ..., ground_truth_objects: _Optional[int] = ..., predicted_objects: _Optional[int] = ..., nuscenes: _Optional[_Union[NuScenesMetrics, _Mapping]] = ..., bev: _Optional[_Union[IouApMetrics, _Mapping]] = ..., iou_3d: _Optional[_Union[IouApMetrics, _Mapping]] = ...) -> None: ...

class GetCuboidMetricsResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: CuboidMetrics
    def __init__(self, metrics: _Optional[_Union[CuboidMetrics, _Mapping]] = ...) -> None: ...

class GetSoundEventMetricsRequest(_message.Message):
    __slots__ = ("project", "inference_set", "frame_filter", "time_resolution", "t_collar", "percentage_of_length", "onset_only", "offset_only", "confidence_threshold")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    FRAME_FILTER_FIELD_NUMBER: _ClassVar[int]
    TIME_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    T_COLLAR_FIELD_NUMBER: _ClassVar[int]
    PERCENTAGE_OF_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ONSET_ONLY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_ONLY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    frame_filter: _common_pb2.Filter
    time_resolution: float
    t_collar: float
    percentage_of_length: float
    onset_only: bool
    offset_only: bool
    confidence_threshold: float
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., frame_filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., time_resolution: _Optional[float] = ..., t_collar: _Optional[float] = ..., percentage_of_length: _Optional[float] = ..., onset_only: _Optional[bool] = ..., offset_only: _Optional[bool] = ..., confidence_threshold: _Optional[float] = ...) -> None: ...

class SoundEventFigures(_message.Message):
    __slots__ = ("f1", "precision", "recall", "error_rate", "deletion_rate", "insertion_rate", "substitution_rate", "sensitivity", "specificity", "balanced_accuracy", "accuracy", "reference", "estimated")
    F1_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    DELETION_RATE_FIELD_NUMBER: _ClassVar[int]
    INSERTION_RATE_FIELD_NUMBER: _ClassVar[int]
    SUBSTITUTION_RATE_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    SPECIFICITY_FIELD_NUMBER: _ClassVar[int]
    BALANCED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    f1: float
    precision: float
    recall: float
    error_rate: float
    deletion_rate: float
    insertion_rate: float
    substitution_rate: float
    sensitivity: float
    specificity: float
    balanced_accuracy: float
    accuracy: float
    reference: int
    estimated: int
    def __init__(self, f1: _Optional[float] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., error_rate: _Optional[float] = ..., deletion_rate: _Optional[float] = ..., insertion_rate: _Optional[float] = ..., substitution_rate: _Optional[float] = ..., sensitivity: _Optional[float] = ..., specificity: _Optional[float] = ..., balanced_accuracy: _Optional[float] = ..., accuracy: _Optional[float] = ..., reference: _Optional[int] = ..., estimated: _Optional[int] = ...) -> None: ...

class SoundEventClassMetrics(_message.Message):
    __slots__ = ("class_id", "class_name", "segment_based", "event_based")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_BASED_FIELD_NUMBER: _ClassVar[int]
    EVENT_BASED_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    segment_based: SoundEventFigures
    event_based: SoundEventFigures
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., segment_based: _Optional[_Union[SoundEventFigures, _Mapping]] = ..., event_based: _Optional[_Union[SoundEventFigures, _Mapping]] = ...) -> None: ...

class SoundEventMetrics(_message.Message):
    __slots__ = ("inference_set", "dataset", "clips", "reference_events", "estimated_events", "time_resolution", "t_collar", "percentage_of_length", "segment_based", "event_based", "segment_based_class_average", "event_based_class_average", "per_class", "class_ids", "confusion")
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    TIME_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    T_COLLAR_FIELD_NUMBER: _ClassVar[int]
    PERCENTAGE_OF_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_BASED_FIELD_NUMBER: _ClassVar[int]
    EVENT_BASED_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_BASED_CLASS_AVERAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_BASED_CLASS_AVERAGE_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_FIELD_NUMBER: _ClassVar[int]
    inference_set: str
    dataset: str
    clips: int
    reference_events: int
    estimated_events: int
    time_resolution: float
    t_collar: float
    percentage_of_length: float
    segment_based: SoundEventFigures
    event_based: SoundEventFigures
    segment_based_class_average: SoundEventFigures
    event_based_class_average: SoundEventFigures
    per_class: _containers.RepeatedCompositeFieldContainer[SoundEventClassMetrics]
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    confusion: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, inference_set: _Optional[str] = ..., dataset: _Optional[str] = ..., clips: _Optional[int] = ..., reference_events: _Optional[int] = ..., estimated_events: _Optional[int] = ..., time_resolution: _Optional[float] = ..., t_collar: _Optional[float] = ..., percentage_of_length: _Optional[float] = ..., segment_based: _Optional[_Union[SoundEventFigures, _Mapping]] = ..., event_based: _Optional[_Union[SoundEventFigures, _Mapping]] = ..., segment_based_class_average: _Optional[_Union[SoundEventFigures, _Mapping]] = ..., event_based_class_average: _Optional[_Union[SoundEventFigures, _Mapping]] = ..., per_class: _Optional[_Iterable[_Union[SoundEventClassMetrics, _Mapping]]] = ..., class_ids: _Optional[_Iterable[int]] = ..., confusion: _Optional[_Iterable[int]] = ...) -> None: ...

class GetSoundEventMetricsResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: SoundEventMetrics
    def __init__(self, metrics: _Optional[_Union[SoundEventMetrics, _Mapping]] = ...) -> None: ...

class SoundEventMatch(_message.Message):
    __slots__ = ("frame_id", "media_uri", "split", "label_event", "predicted_event", "iou", "duration_seconds")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    LABEL_EVENT_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_EVENT_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    media_uri: str
    split: str
    label_event: _ingest_pb2.SoundEvent
    predicted_event: _ingest_pb2.SoundEvent
    iou: float
    duration_seconds: float
    def __init__(self, frame_id: _Optional[str] = ..., media_uri: _Optional[str] = ..., split: _Optional[str] = ..., label_event: _Optional[_Union[_ingest_pb2.SoundEvent, _Mapping]] = ..., predicted_event: _Optional[_Union[_ingest_pb2.SoundEvent, _Mapping]] = ..., iou: _Optional[float] = ..., duration_seconds: _Optional[float] = ...) -> None: ...

class QuerySoundEventsRequest(_message.Message):
    __slots__ = ("project", "inference_set", "label_class", "predicted_class", "any_label_class", "any_predicted_class", "t_collar", "percentage_of_length", "onset_only", "offset_only", "confidence_threshold", "frame_filter", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    LABEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    ANY_LABEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    ANY_PREDICTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    T_COLLAR_FIELD_NUMBER: _ClassVar[int]
    PERCENTAGE_OF_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ONSET_ONLY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_ONLY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FRAME_FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    inference_set: str
    label_class: int
    predicted_class: int
    any_label_class: bool
    any_predicted_class: bool
    t_collar: float
    percentage_of_length: float
    onset_only: bool
    offset_only: bool
    confidence_threshold: float
    frame_filter: _common_pb2.Filter
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., inference_set: _Optional[str] = ..., label_class: _Optional[int] = ..., predicted_class: _Optional[int] = ..., any_label_class: _Optional[bool] = ..., any_predicted_class: _Optional[bool] = ..., t_collar: _Optional[float] = ..., percentage_of_length: _Optional[float] = ..., onset_only: _Optional[bool] = ..., offset_only: _Optional[bool] = ..., confidence_threshold: _Optional[float] = ..., frame_filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class QuerySoundEventsResponse(_message.Message):
    __slots__ = ("matches", "page")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[SoundEventMatch]
    page: _common_pb2.PageResponse
    def __init__(self, matches: _Optional[_Iterable[_Union[SoundEventMatch, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class SoundEventIssuesSummary(_message.Message):
    __slots__ = ("clips", "labeled_events", "predicted_events", "flagged_clips", "missing", "spurious", "badly_bounded", "wrong_class", "confident", "min_iou", "min_overlap")
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    LABELED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_CLIPS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    SPURIOUS_FIELD_NUMBER: _ClassVar[int]
    BADLY_BOUNDED_FIELD_NUMBER: _ClassVar[int]
    WRONG_CLASS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENT_FIELD_NUMBER: _ClassVar[int]
    MIN_IOU_FIELD_NUMBER: _ClassVar[int]
    MIN_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    clips: int
    labeled_events: int
    predicted_events: int
    flagged_clips: int
    missing: int
    spurious: int
    badly_bounded: int
    wrong_class: int
    confident: float
    min_iou: float
    min_overlap: float
    def __init__(self, clips: _Optional[int] = ..., labeled_events: _Optional[int] = ..., predicted_events: _Optional[int] = ..., flagged_clips: _Optional[int] = ..., missing: _Optional[int] = ..., spurious: _Optional[int] = ..., badly_bounded: _Optional[int] = ..., wrong_class: _Optional[int] = ..., confident: _Optional[float] = ..., min_iou: _Optional[float] = ..., min_overlap: _Optional[float] = ...) -> None: ...

class SoundEventIssue(_message.Message):
    __slots__ = ("frame_id", "media_uri", "issue_type", "score", "is_issue", "label_event", "predicted_event", "event_index", "suggested_class", "iou", "dismissed")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    IS_ISSUE_FIELD_NUMBER: _ClassVar[int]
    LABEL_EVENT_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_EVENT_FIELD_NUMBER: _ClassVar[int]
    EVENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    media_uri: str
    issue_type: SoundEventIssueType
    score: float
    is_issue: bool
    label_event: _ingest_pb2.SoundEvent
    predicted_event: _ingest_pb2.SoundEvent
    event_index: int
    suggested_class: int
    iou: float
    dismissed: bool
    def __init__(self, frame_id: _Optional[str] = ..., media_uri: _Optional[str] = ..., issue_type: _Optional[_Union[SoundEventIssueType, str]] = ..., score: _Optional[float] = ..., is_issue: _Optional[bool] = ..., label_event: _Optional[_Union[_ingest_pb2.SoundEvent, _Mapping]] = ..., predicted_event: _Optional[_Union[_ingest_pb2.SoundEvent, _Mapping]] = ..., event_index: _Optional[int] = ..., suggested_class: _Optional[int] = ..., iou: _Optional[float] = ..., dismissed: _Optional[bool] = ...) -> None: ...

class SoundEventClipIssue(_message.Message):
    __slots__ = ("frame_id", "media_uri", "score", "is_issue", "worst_type", "missing", "spurious", "badly_bounded", "wrong_class", "dismissed")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    IS_ISSUE_FIELD_NUMBER: _ClassVar[int]
    WORST_TYPE_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    SPURIOUS_FIELD_NUMBER: _ClassVar[int]
    BADLY_BOUNDED_FIELD_NUMBER: _ClassVar[int]
    WRONG_CLASS_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    media_uri: str
    score: float
    is_issue: bool
    worst_type: SoundEventIssueType
    missing: int
    spurious: int
    badly_bounded: int
    wrong_class: int
    dismissed: bool
    def __init__(self, frame_id: _Optional[str] = ..., media_uri: _Optional[str] = ..., score: _Optional[float] = ..., is_issue: _Optional[bool] = ..., worst_type: _Optional[_Union[SoundEventIssueType, str]] = ..., missing: _Optional[int] = ..., spurious: _Optional[int] = ..., badly_bounded: _Optional[int] = ..., wrong_class: _Optional[int] = ..., dismissed: _Optional[bool] = ...) -> None: ...

class QuerySoundEventIssuesRequest(_message.Message):
    __slots__ = ("project", "job_id", "level", "issue_types", "include_unflagged", "page", "include_dismissed")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TYPES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNFLAGGED_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DISMISSED_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    level: SoundEventIssueLevel
    issue_types: _containers.RepeatedScalarFieldContainer[SoundEventIssueType]
    include_unflagged: bool
    page: _common_pb2.PageRequest
    include_dismissed: bool
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., level: _Optional[_Union[SoundEventIssueLevel, str]] = ..., issue_types: _Optional[_Iterable[_Union[SoundEventIssueType, str]]] = ..., include_unflagged: _Optional[bool] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., include_dismissed: _Optional[bool] = ...) -> None: ...

class QuerySoundEventIssuesResponse(_message.Message):
    __slots__ = ("summary", "intervals", "clips", "page", "dismissed_count")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    summary: SoundEventIssuesSummary
    intervals: _containers.RepeatedCompositeFieldContainer[SoundEventIssue]
    clips: _containers.RepeatedCompositeFieldContainer[SoundEventClipIssue]
    page: _common_pb2.PageResponse
    dismissed_count: int
    def __init__(self, summary: _Optional[_Union[SoundEventIssuesSummary, _Mapping]] = ..., intervals: _Optional[_Iterable[_Union[SoundEventIssue, _Mapping]]] = ..., clips: _Optional[_Iterable[_Union[SoundEventClipIssue, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ..., dismissed_count: _Optional[int] = ...) -> None: ...

class AutomationTrigger(_message.Message):
    __slots__ = ("kind", "dataset", "inference_set_prefix", "min_labeled_frames", "campaign")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_PREFIX_FIELD_NUMBER: _ClassVar[int]
    MIN_LABELED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    kind: AutomationTriggerKind
    dataset: str
    inference_set_prefix: str
    min_labeled_frames: int
    campaign: str
    def __init__(self, kind: _Optional[_Union[AutomationTriggerKind, str]] = ..., dataset: _Optional[str] = ..., inference_set_prefix: _Optional[str] = ..., min_labeled_frames: _Optional[int] = ..., campaign: _Optional[str] = ...) -> None: ...

class AutomationAction(_message.Message):
    __slots__ = ("kind", "confidence_threshold", "iou_threshold", "inference_set", "embedding_space", "max_frames", "daily_budget", "min_issues", "min_issue_share", "platform", "changed_frames")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    DAILY_BUDGET_FIELD_NUMBER: _ClassVar[int]
    MIN_ISSUES_FIELD_NUMBER: _ClassVar[int]
    MIN_ISSUE_SHARE_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    kind: AutomationActionKind
    confidence_threshold: float
    iou_threshold: float
    inference_set: str
    embedding_space: str
    max_frames: int
    daily_budget: int
    min_issues: int
    min_issue_share: float
    platform: str
    changed_frames: bool
    def __init__(self, kind: _Optional[_Union[AutomationActionKind, str]] = ..., confidence_threshold: _Optional[float] = ..., iou_threshold: _Optional[float] = ..., inference_set: _Optional[str] = ..., embedding_space: _Optional[str] = ..., max_frames: _Optional[int] = ..., daily_budget: _Optional[int] = ..., min_issues: _Optional[int] = ..., min_issue_share: _Optional[float] = ..., platform: _Optional[str] = ..., changed_frames: _Optional[bool] = ...) -> None: ...

class AutomationWebhook(_message.Message):
    __slots__ = ("url", "secret", "always", "has_secret")
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    ALWAYS_FIELD_NUMBER: _ClassVar[int]
    HAS_SECRET_FIELD_NUMBER: _ClassVar[int]
    url: str
    secret: str
    always: bool
    has_secret: bool
    def __init__(self, url: _Optional[str] = ..., secret: _Optional[str] = ..., always: _Optional[bool] = ..., has_secret: _Optional[bool] = ...) -> None: ...

class Automation(_message.Message):
    __slots__ = ("name", "description", "trigger", "actions", "webhook", "paused", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    trigger: AutomationTrigger
    actions: _containers.RepeatedCompositeFieldContainer[AutomationAction]
    webhook: AutomationWebhook
    paused: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., trigger: _Optional[_Union[AutomationTrigger, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[AutomationAction, _Mapping]]] = ..., webhook: _Optional[_Union[AutomationWebhook, _Mapping]] = ..., paused: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateAutomationRequest(_message.Message):
    __slots__ = ("project", "automation")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    project: str
    automation: Automation
    def __init__(self, project: _Optional[str] = ..., automation: _Optional[_Union[Automation, _Mapping]] = ...) -> None: ...

class CreateAutomationResponse(_message.Message):
    __slots__ = ("automation",)
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    automation: Automation
    def __init__(self, automation: _Optional[_Union[Automation, _Mapping]] = ...) -> None: ...

class GetAutomationRequest(_message.Message):
    __slots__ = ("project", "name")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetAutomationResponse(_message.Message):
    __slots__ = ("automation",)
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    automation: Automation
    def __init__(self, automation: _Optional[_Union[Automation, _Mapping]] = ...) -> None: ...

class ListAutomationsRequest(_message.Message):
    __slots__ = ("project", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListAutomationsResponse(_message.Message):
    __slots__ = ("automations", "page")
    AUTOMATIONS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    automations: _containers.RepeatedCompositeFieldContainer[Automation]
    page: _common_pb2.PageResponse
    def __init__(self, automations: _Optional[_Iterable[_Union[Automation, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class UpdateAutomationRequest(_message.Message):
    __slots__ = ("project", "name", "paused", "description", "trigger", "actions", "replace_actions", "webhook", "remove_webhook")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    REMOVE_WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    paused: bool
    description: str
    trigger: AutomationTrigger
    actions: _containers.RepeatedCompositeFieldContainer[AutomationAction]
    replace_actions: bool
    webhook: AutomationWebhook
    remove_webhook: bool
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., paused: _Optional[bool] = ..., description: _Optional[str] = ..., trigger: _Optional[_Union[AutomationTrigger, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[AutomationAction, _Mapping]]] = ..., replace_actions: _Optional[bool] = ..., webhook: _Optional[_Union[AutomationWebhook, _Mapping]] = ..., remove_webhook: _Optional[bool] = ...) -> None: ...

class UpdateAutomationResponse(_message.Message):
    __slots__ = ("automation",)
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    automation: Automation
    def __init__(self, automation: _Optional[_Union[Automation, _Mapping]] = ...) -> None: ...

class DeleteAutomationRequest(_message.Message):
    __slots__ = ("project", "name")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteAutomationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AutomationTriggerEvent(_message.Message):
    __slots__ = ("kind", "dataset", "upload_id", "inference_set", "frames", "source", "key", "frame_ids", "campaign", "similarity_threshold")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    kind: AutomationTriggerKind
    dataset: str
    upload_id: str
    inference_set: str
    frames: int
    source: str
    key: str
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    campaign: str
    similarity_threshold: float
    def __init__(self, kind: _Optional[_Union[AutomationTriggerKind, str]] = ..., dataset: _Optional[str] = ..., upload_id: _Optional[str] = ..., inference_set: _Optional[str] = ..., frames: _Optional[int] = ..., source: _Optional[str] = ..., key: _Optional[str] = ..., frame_ids: _Optional[_Iterable[str]] = ..., campaign: _Optional[str] = ..., similarity_threshold: _Optional[float] = ...) -> None: ...

class AutomationLabelingFrame(_message.Message):
    __slots__ = ("frame_id", "reason")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    reason: str
    def __init__(self, frame_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class AutomationLabeling(_message.Message):
    __slots__ = ("job_id", "dataset", "examined", "flagged", "request_id", "frames", "skipped_frame_ids", "sent_before", "day", "budget_used_before", "note", "segment")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    EXAMINED_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    SENT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    BUDGET_USED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    dataset: str
    examined: int
    flagged: int
    request_id: str
    frames: _containers.RepeatedCompositeFieldContainer[AutomationLabelingFrame]
    skipped_frame_ids: _containers.RepeatedScalarFieldContainer[str]
    sent_before: int
    day: str
    budget_used_before: int
    note: str
    segment: str
    def __init__(self, job_id: _Optional[str] = ..., dataset: _Optional[str] = ..., examined: _Optional[int] = ..., flagged: _Optional[int] = ..., request_id: _Optional[str] = ..., frames: _Optional[_Iterable[_Union[AutomationLabelingFrame, _Mapping]]] = ..., skipped_frame_ids: _Optional[_Iterable[str]] = ..., sent_before: _Optional[int] = ..., day: _Optional[str] = ..., budget_used_before: _Optional[int] = ..., note: _Optional[str] = ..., segment: _Optional[str] = ...) -> None: ...

class AutomationStep(_message.Message):
    __slots__ = ("action", "state", "message", "metrics", "gates", "job_id", "start_time", "finish_time", "labeling")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ACTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELING_FIELD_NUMBER: _ClassVar[int]
    action: AutomationActionKind
    state: AutomationRunState
    message: str
    metrics: _containers.ScalarMap[str, float]
    gates: _containers.RepeatedCompositeFieldContainer[GateResult]
    job_id: str
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    labeling: AutomationLabeling
    def __init__(self, action: _Optional[_Union[AutomationActionKind, str]] = ..., state: _Optional[_Union[AutomationRunState, str]] = ..., message: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., gates: _Optional[_Iterable[_Union[GateResult, _Mapping]]] = ..., job_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labeling: _Optional[_Union[AutomationLabeling, _Mapping]] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("delivery_id", "attempt", "event", "status_code", "error", "time", "duration_seconds")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    attempt: int
    event: str
    status_code: int
    error: str
    time: _timestamp_pb2.Timestamp
    duration_seconds: float
    def __init__(self, delivery_id: _Optional[str] = ..., attempt: _Optional[int] = ..., event: _Optional[str] = ..., status_code: _Optional[int] = ..., error: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_seconds: _Optional[float] = ...) -> None: ...

class AutomationRun(_message.Message):
    __slots__ = ("run_id", "automation", "state", "message", "attempts", "trigger", "steps", "deliveries", "gates_evaluated", "gates_failed", "create_time", "update_time", "finish_time")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    GATES_EVALUATED_FIELD_NUMBER: _ClassVar[int]
    GATES_FAILED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    automation: str
    state: AutomationRunState
    message: str
    attempts: int
    trigger: AutomationTriggerEvent
    steps: _containers.RepeatedCompositeFieldContainer[AutomationStep]
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    gates_evaluated: int
    gates_failed: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., automation: _Optional[str] = ..., state: _Optional[_Union[AutomationRunState, str]] = ..., message: _Optional[str] = ..., attempts: _Optional[int] = ..., trigger: _Optional[_Union[AutomationTriggerEvent, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[AutomationStep, _Mapping]]] = ..., deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ..., gates_evaluated: _Optional[int] = ..., gates_failed: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAutomationRunsRequest(_message.Message):
    __slots__ = ("project", "automation", "states", "inference_set", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    automation: str
    states: _containers.RepeatedScalarFieldContainer[AutomationRunState]
    inference_set: str
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., automation: _Optional[str] = ..., states: _Optional[_Iterable[_Union[AutomationRunState, str]]] = ..., inference_set: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListAutomationRunsResponse(_message.Message):
    __slots__ = ("runs", "page")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[AutomationRun]
    page: _common_pb2.PageResponse
    def __init__(self, runs: _Optional[_Iterable[_Union[AutomationRun, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetAutomationRunRequest(_message.Message):
    __slots__ = ("project", "run_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    run_id: str
    def __init__(self, project: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class GetAutomationRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: AutomationRun
    def __init__(self, run: _Optional[_Union[AutomationRun, _Mapping]] = ...) -> None: ...
