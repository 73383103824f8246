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

class Aggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_UNSPECIFIED: _ClassVar[Aggregation]
    AGGREGATION_MAX: _ClassVar[Aggregation]
    AGGREGATION_MEAN: _ClassVar[Aggregation]

class DiversityMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIVERSITY_METHOD_UNSPECIFIED: _ClassVar[DiversityMethod]
    DIVERSITY_METHOD_MMR: _ClassVar[DiversityMethod]
    DIVERSITY_METHOD_K_CENTER: _ClassVar[DiversityMethod]

class UncertaintyMeasure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNCERTAINTY_MEASURE_UNSPECIFIED: _ClassVar[UncertaintyMeasure]
    UNCERTAINTY_MEASURE_ENTROPY: _ClassVar[UncertaintyMeasure]
    UNCERTAINTY_MEASURE_MARGIN: _ClassVar[UncertaintyMeasure]
    UNCERTAINTY_MEASURE_LEAST_CONFIDENCE: _ClassVar[UncertaintyMeasure]

class StandingCampaignState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STANDING_CAMPAIGN_STATE_UNSPECIFIED: _ClassVar[StandingCampaignState]
    STANDING_CAMPAIGN_STATE_FILLING: _ClassVar[StandingCampaignState]
    STANDING_CAMPAIGN_STATE_FULL: _ClassVar[StandingCampaignState]
    STANDING_CAMPAIGN_STATE_STOPPED: _ClassVar[StandingCampaignState]
AGGREGATION_UNSPECIFIED: Aggregation
AGGREGATION_MAX: Aggregation
AGGREGATION_MEAN: Aggregation
DIVERSITY_METHOD_UNSPECIFIED: DiversityMethod
DIVERSITY_METHOD_MMR: DiversityMethod
DIVERSITY_METHOD_K_CENTER: DiversityMethod
UNCERTAINTY_MEASURE_UNSPECIFIED: UncertaintyMeasure
UNCERTAINTY_MEASURE_ENTROPY: UncertaintyMeasure
UNCERTAINTY_MEASURE_MARGIN: UncertaintyMeasure
UNCERTAINTY_MEASURE_LEAST_CONFIDENCE: UncertaintyMeasure
STANDING_CAMPAIGN_STATE_UNSPECIFIED: StandingCampaignState
STANDING_CAMPAIGN_STATE_FILLING: StandingCampaignState
STANDING_CAMPAIGN_STATE_FULL: StandingCampaignState
STANDING_CAMPAIGN_STATE_STOPPED: StandingCampaignState

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
    __slots__ = ("project", "pool_dataset", "embedding_space", "seeds", "k", "filter", "exclude_labeled", "exclude_sent_for_labeling", "exclude_segments", "aggregation", "seed_embedding_space", "vectors_model_name", "vectors_model_version")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    POOL_DATASET_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_LABELED_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SENT_FOR_LABELING_FIELD_NUMBER: _ClassVar[int]
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
    exclude_sent_for_labeling: bool
    exclude_segments: _containers.RepeatedScalarFieldContainer[str]
    aggregation: Aggregation
    seed_embedding_space: str
    vectors_model_name: str
    vectors_model_version: str
    def __init__(self, project: _Optional[str] = ..., pool_dataset: _Optional[str] = ..., embedding_space: _Optional[str] = ..., seeds: _Optional[_Iterable[_Union[Seed, _Mapping]]] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., exclude_labeled: _Optional[bool] = ..., exclude_sent_for_labeling: _Optional[bool] = ..., exclude_segments: _Optional[_Iterable[str]] = ..., aggregation: _Optional[_Union[Aggregation, str]] = ..., seed_embedding_space: _Optional[str] = ..., vectors_model_name: _Optional[str] = ..., vectors_model_version: _Optional[str] = ...) -> None: ...

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

class CampaignWeights(_message.Message):
    __slots__ = ("similarity", "uncertainty", "diversity", "balance")
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    similarity: float
    uncertainty: float
    diversity: float
    balance: float
    def __init__(self, similarity: _Optional[float] = ..., uncertainty: _Optional[float] = ..., diversity: _Optional[float] = ..., balance: _Optional[float] = ...) -> None: ...

class StartCampaignRequest(_message.Message):
    __slots__ = ("project", "name", "seed_segment", "pool_dataset", "embedding_space", "seed_embedding_space", "budget", "weights", "diversity_method", "uncertainty_inference_set", "uncertainty_measure", "duplicate_distance", "labeled_dataset", "filter", "exclude_labeled", "exclude_sent_for_labeling", "exclude_segments", "rerun")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEED_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    POOL_DATASET_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    SEED_EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_METHOD_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_MEASURE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    LABELED_DATASET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_LABELED_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SENT_FOR_LABELING_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    RERUN_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    seed_segment: str
    pool_dataset: str
    embedding_space: str
    seed_embedding_space: str
    budget: int
    weights: CampaignWeights
    diversity_method: DiversityMethod
    uncertainty_inference_set: str
    uncertainty_measure: UncertaintyMeasure
    duplicate_distance: float
    labeled_dataset: str
    filter: _common_pb2.Filter
    exclude_labeled: bool
    exclude_sent_for_labeling: bool
    exclude_segments: _containers.RepeatedScalarFieldContainer[str]
    rerun: bool
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., seed_segment: _Optional[str] = ..., pool_dataset: _Optional[str] = ..., embedding_space: _Optional[str] = ..., seed_embedding_space: _Optional[str] = ..., budget: _Optional[int] = ..., weights: _Optional[_Union[CampaignWeights, _Mapping]] = ..., diversity_method: _Optional[_Union[DiversityMethod, str]] = ..., uncertainty_inference_set: _Optional[str] = ..., uncertainty_measure: _Optional[_Union[UncertaintyMeasure, str]] = ..., duplicate_distance: _Optional[float] = ..., labeled_dataset: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., exclude_labeled: _Optional[bool] = ..., exclude_sent_for_labeling: _Optional[bool] = ..., exclude_segments: _Optional[_Iterable[str]] = ..., rerun: _Optional[bool] = ...) -> None: ...

class StartCampaignResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class GetCampaignRequest(_message.Message):
    __slots__ = ("project", "job_id", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ClassCount(_message.Message):
    __slots__ = ("class_id", "class_name", "frames")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    frames: int
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., frames: _Optional[int] = ...) -> None: ...

class CampaignSummary(_message.Message):
    __slots__ = ("segment", "budget", "selected", "candidates", "preselected", "skipped_duplicates_of_picked", "skipped_duplicates_of_labeled", "classes", "strategy", "seeds", "duplicate_distance")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    PRESELECTED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_DUPLICATES_OF_PICKED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_DUPLICATES_OF_LABELED_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    segment: str
    budget: int
    selected: int
    candidates: int
    preselected: int
    skipped_duplicates_of_picked: int
    skipped_duplicates_of_labeled: int
    classes: _containers.RepeatedCompositeFieldContainer[ClassCount]
    strategy: str
    seeds: int
    duplicate_distance: float
    def __init__(self, segment: _Optional[str] = ..., budget: _Optional[int] = ..., selected: _Optional[int] = ..., candidates: _Optional[int] = ..., preselected: _Optional[int] = ..., skipped_duplicates_of_picked: _Optional[int] = ..., skipped_duplicates_of_labeled: _Optional[int] = ..., classes: _Optional[_Iterable[_Union[ClassCount, _Mapping]]] = ..., strategy: _Optional[str] = ..., seeds: _Optional[int] = ..., duplicate_distance: _Optional[float] = ...) -> None: ...

class CampaignItem(_message.Message):
    __slots__ = ("ref", "media_uri", "rank", "score", "similarity", "nearest_seed", "uncertainty", "predicted_class", "diversity_gain", "reason")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    NEAREST_SEED_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_GAIN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    rank: int
    score: float
    similarity: float
    nearest_seed: _common_pb2.DatapointRef
    uncertainty: float
    predicted_class: int
    diversity_gain: float
    reason: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., rank: _Optional[int] = ..., score: _Optional[float] = ..., similarity: _Optional[float] = ..., nearest_seed: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., uncertainty: _Optional[float] = ..., predicted_class: _Optional[int] = ..., diversity_gain: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class GetCampaignResponse(_message.Message):
    __slots__ = ("summary", "items", "page")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    summary: CampaignSummary
    items: _containers.RepeatedCompositeFieldContainer[CampaignItem]
    page: _common_pb2.PageResponse
    def __init__(self, summary: _Optional[_Union[CampaignSummary, _Mapping]] = ..., items: _Optional[_Iterable[_Union[CampaignItem, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class FrameList(_message.Message):
    __slots__ = ("dataset", "frame_ids")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset: _Optional[str] = ..., frame_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RequestLabelingRequest(_message.Message):
    __slots__ = ("project", "segment", "campaign_job_id", "frames", "reason", "platform", "preannotation_inference_set", "requested_by", "request_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    PREANNOTATION_INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    segment: str
    campaign_job_id: str
    frames: FrameList
    reason: str
    platform: str
    preannotation_inference_set: str
    requested_by: str
    request_id: str
    def __init__(self, project: _Optional[str] = ..., segment: _Optional[str] = ..., campaign_job_id: _Optional[str] = ..., frames: _Optional[_Union[FrameList, _Mapping]] = ..., reason: _Optional[str] = ..., platform: _Optional[str] = ..., preannotation_inference_set: _Optional[str] = ..., requested_by: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RequestLabelingResponse(_message.Message):
    __slots__ = ("request_id", "dataset", "frames", "events", "topic", "repeated_request")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    REPEATED_REQUEST_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    dataset: str
    frames: int
    events: int
    topic: str
    repeated_request: bool
    def __init__(self, request_id: _Optional[str] = ..., dataset: _Optional[str] = ..., frames: _Optional[int] = ..., events: _Optional[int] = ..., topic: _Optional[str] = ..., repeated_request: _Optional[bool] = ...) -> None: ...

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("project", "job_id", "accepted", "rejected", "next_batch_size")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    NEXT_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    project: str
    job_id: str
    accepted: _containers.RepeatedScalarFieldContainer[str]
    rejected: _containers.RepeatedScalarFieldContainer[str]
    next_batch_size: int
    def __init__(self, project: _Optional[str] = ..., job_id: _Optional[str] = ..., accepted: _Optional[_Iterable[str]] = ..., rejected: _Optional[_Iterable[str]] = ..., next_batch_size: _Optional[int] = ...) -> None: ...

class RoundYield(_message.Message):
    __slots__ = ("round", "judged", "accepted", "yield_rate")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    JUDGED_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    YIELD_RATE_FIELD_NUMBER: _ClassVar[int]
    round: int
    judged: int
    accepted: int
    yield_rate: float
    def __init__(self, round: _Optional[int] = ..., judged: _Optional[int] = ..., accepted: _Optional[int] = ..., yield_rate: _Optional[float] = ...) -> None: ...

class FeedbackCandidate(_message.Message):
    __slots__ = ("ref", "media_uri", "score")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    score: float
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ("round", "rounds", "next", "accepted_total", "rejected_total")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    REJECTED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    round: int
    rounds: _containers.RepeatedCompositeFieldContainer[RoundYield]
    next: _containers.RepeatedCompositeFieldContainer[FeedbackCandidate]
    accepted_total: int
    rejected_total: int
    def __init__(self, round: _Optional[int] = ..., rounds: _Optional[_Iterable[_Union[RoundYield, _Mapping]]] = ..., next: _Optional[_Iterable[_Union[FeedbackCandidate, _Mapping]]] = ..., accepted_total: _Optional[int] = ..., rejected_total: _Optional[int] = ...) -> None: ...

class StartStandingCampaignRequest(_message.Message):
    __slots__ = ("project", "name", "pool_dataset", "embedding_space", "seed_segment", "seed_frames", "seed_embedding_space", "similarity_threshold", "min_distance", "filter", "budget", "retention_seconds")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    POOL_DATASET_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    SEED_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SEED_EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    RETENTION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    pool_dataset: str
    embedding_space: str
    seed_segment: str
    seed_frames: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatapointRef]
    seed_embedding_space: str
    similarity_threshold: float
    min_distance: float
    filter: _common_pb2.Filter
    budget: int
    retention_seconds: float
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., pool_dataset: _Optional[str] = ..., embedding_space: _Optional[str] = ..., seed_segment: _Optional[str] = ..., seed_frames: _Optional[_Iterable[_Union[_common_pb2.DatapointRef, _Mapping]]] = ..., seed_embedding_space: _Optional[str] = ..., similarity_threshold: _Optional[float] = ..., min_distance: _Optional[float] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., budget: _Optional[int] = ..., retention_seconds: _Optional[float] = ...) -> None: ...

class StartStandingCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: StandingCampaign
    def __init__(self, campaign: _Optional[_Union[StandingCampaign, _Mapping]] = ...) -> None: ...

class StandingCampaign(_message.Message):
    __slots__ = ("project", "name", "segment", "pool_dataset", "embedding_space", "seed_embedding_space", "seed_segment", "seeds", "similarity_threshold", "min_distance", "filter", "budget", "retention_seconds", "state", "start_time", "update_time", "judged", "kept", "filtered", "below_threshold", "near_kept", "vectors_deleted")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    POOL_DATASET_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    SEED_EMBEDDING_SPACE_FIELD_NUMBER: _ClassVar[int]
    SEED_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    RETENTION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    JUDGED_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    FILTERED_FIELD_NUMBER: _ClassVar[int]
    BELOW_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    NEAR_KEPT_FIELD_NUMBER: _ClassVar[int]
    VECTORS_DELETED_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    segment: str
    pool_dataset: str
    embedding_space: str
    seed_embedding_space: str
    seed_segment: str
    seeds: int
    similarity_threshold: float
    min_distance: float
    filter: _common_pb2.Filter
    budget: int
    retention_seconds: float
    state: StandingCampaignState
    start_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    judged: int
    kept: int
    filtered: int
    below_threshold: int
    near_kept: int
    vectors_deleted: int
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., segment: _Optional[str] = ..., pool_dataset: _Optional[str] = ..., embedding_space: _Optional[str] = ..., seed_embedding_space: _Optional[str] = ..., seed_segment: _Optional[str] = ..., seeds: _Optional[int] = ..., similarity_threshold: _Optional[float] = ..., min_distance: _Optional[float] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., budget: _Optional[int] = ..., retention_seconds: _Optional[float] = ..., state: _Optional[_Union[StandingCampaignState, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., judged: _Optional[int] = ..., kept: _Optional[int] = ..., filtered: _Optional[int] = ..., below_threshold: _Optional[int] = ..., near_kept: _Optional[int] = ..., vectors_deleted: _Optional[int] = ...) -> None: ...

class StandingItem(_message.Message):
    __slots__ = ("ref", "media_uri", "rank", "position", "similarity", "nearest_seed", "kept_distance", "decide_time", "upload_id", "chunk_index", "vector")
    REF_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URI_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    NEAREST_SEED_FIELD_NUMBER: _ClassVar[int]
    KEPT_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    media_uri: str
    rank: int
    position: int
    similarity: float
    nearest_seed: _common_pb2.DatapointRef
    kept_distance: float
    decide_time: _timestamp_pb2.Timestamp
    upload_id: str
    chunk_index: int
    vector: Vector
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., media_uri: _Optional[str] = ..., rank: _Optional[int] = ..., position: _Optional[int] = ..., similarity: _Optional[float] = ..., nearest_seed: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., kept_distance: _Optional[float] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., upload_id: _Optional[str] = ..., chunk_index: _Optional[int] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ...) -> None: ...

class StandingSeed(_message.Message):
    __slots__ = ("ref", "vector")
    REF_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DatapointRef
    vector: Vector
    def __init__(self, ref: _Optional[_Union[_common_pb2.DatapointRef, _Mapping]] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ...) -> None: ...

class GetStandingCampaignRequest(_message.Message):
    __slots__ = ("project", "name", "page", "include_vectors")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    page: _common_pb2.PageRequest
    include_vectors: bool
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., include_vectors: _Optional[bool] = ...) -> None: ...

class GetStandingCampaignResponse(_message.Message):
    __slots__ = ("campaign", "items", "page", "seeds")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    campaign: StandingCampaign
    items: _containers.RepeatedCompositeFieldContainer[StandingItem]
    page: _common_pb2.PageResponse
    seeds: _containers.RepeatedCompositeFieldContainer[StandingSeed]
    def __init__(self, campaign: _Optional[_Union[StandingCampaign, _Mapping]] = ..., items: _Optional[_Iterable[_Union[StandingItem, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ..., seeds: _Optional[_Iterable[_Union[StandingSeed, _Mapping]]] = ...) -> None: ...

class ListStandingCampaignsRequest(_message.Message):
    __slots__ = ("project", "page")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    project: str
    page: _common_pb2.PageRequest
    def __init__(self, project: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListStandingCampaignsResponse(_message.Message):
    __slots__ = ("campaigns", "page")
    CAMPAIGNS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    campaigns: _containers.RepeatedCompositeFieldContainer[StandingCampaign]
    page: _common_pb2.PageResponse
    def __init__(self, campaigns: _Optional[_Iterable[_Union[StandingCampaign, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class StopStandingCampaignRequest(_message.Message):
    __slots__ = ("project", "name")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class StopStandingCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: StandingCampaign
    def __init__(self, campaign: _Optional[_Union[StandingCampaign, _Mapping]] = ...) -> None: ...
