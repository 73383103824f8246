"""The frames of a job that another service owns, read over gRPC with the caller's own API key: a
finished label-issues job's flagged frames (classification, objects, multi-label, semantic
segmentation or sound events) from the analysis service, a finished campaign's sample from the sampler. The owning
service's authorisation decides what the caller may read; the caller's request id and deadline go
along.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.analysis.v1 import analysis_pb2_grpc
from shoal.common.channels import Channels, forwarded_metadata, forwarded_timeout
from shoal.common.data.datasets import DatasetCatalog
from shoal.common.data.labeling_requests import Source
from shoal.common.data.projects import ProjectCatalog
from shoal.common.errors import (
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ShoalError,
    Unauthenticated,
    Unavailable,
)
from shoal.common.interceptors import ERROR_DETAIL_KEY
from shoal.common.pagination import MAX_PAGE_SIZE
from shoal.common.v1 import common_pb2
from shoal.labeling_bridge.platforms import seconds
from shoal.sampler.v1 import sampler_pb2 as spb
from shoal.sampler.v1 import sampler_pb2_grpc

#: the job kinds (common.v1.Job.kind) whose frames SendForLabeling takes
LABEL_ISSUES_KIND = "label_issues"
DETECTION_ISSUES_KIND = "detection_label_issues"
MULTILABEL_ISSUES_KIND = "multilabel_label_issues"
SEGMENTATION_ISSUES_KIND = "segmentation_label_issues"
SOUND_EVENT_ISSUES_KIND = "sound_event_label_issues"
#: every kind of label-issues job, one per task type's analysis
LABEL_ISSUE_KINDS = (LABEL_ISSUES_KIND, DETECTION_ISSUES_KIND, MULTILABEL_ISSUES_KIND, SEGMENTATION_ISSUES_KIND,
                     SOUND_EVENT_ISSUES_KIND)  # fmt: skip
CAMPAIGN_KIND = "campaign"
#: the page size asked for: the largest the services give
PAGE_SIZE = MAX_PAGE_SIZE
#: the longest one call may take when the caller set no deadline
CALL_TIMEOUT_SECONDS = 60.0
#: the flagged intervals a sound-event clip's reason lists (the rest are counted)
REASON_INTERVALS = 5

#: an owner's answer that keeps its meaning for the caller, with the caller's field
_AS_FIELD: dict[grpc.StatusCode, type[ShoalError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
}
#: an owner's answer passed on as it is
_AS_IS: dict[grpc.StatusCode, type[ShoalError]] = {
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}


def remote_error(service: str, target: str, err: grpc.RpcError, field: str) -> ShoalError:
    """The error the bridge answers with when ``service`` at ``target`` refused a call made for the
    request field ``field``."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else "") or ""
    message = details
    for key, value in (err.trailing_metadata() or ()) if hasattr(err, "trailing_metadata") else ():
        if key == ERROR_DETAIL_KEY:
            message = common_pb2.ErrorDetail.FromString(value).message or details
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"the {service} service at {target} cannot be reached: {details}", field=field)
    if code in _AS_FIELD:
        return _AS_FIELD[code](message, field=field)
    if code in _AS_IS:
        return _AS_IS[code](f"the {service} service answered: {details}")
    return InternalError(f"the {service} service at {target} answered {code.name}: {details}")


class Owners:
    """Calls analysis and the sampler; ``targets`` gives their ``host:port`` (read at each call: the
    all-in-one server knows its own port only once bound)."""

    def __init__(
        self,
        targets: Callable[[], dict[str, str]],
        channels: Channels,
        projects: ProjectCatalog,
        datasets: DatasetCatalog,
    ) -> None:
        self.targets = targets
        self.channels = channels
        self.projects = projects
        self.datasets = datasets

    def _call(self, service: str, method: str, request: Any, context: grpc.ServicerContext, field: str) -> Any:
        target = self.targets()[service]
        channel = self.channels.get(target)
        stub: Any = (
            analysis_pb2_grpc.AnalysisServiceStub(channel)
            if service == "analysis"
            else sampler_pb2_grpc.SamplerServiceStub(channel)
        )
        try:
            return getattr(stub, method)(
                request, timeout=forwarded_timeout(CALL_TIMEOUT_SECONDS), metadata=forwarded_metadata(context)
            )
        except grpc.RpcError as err:
            raise remote_error(service, target, err, field) from None

    def _finished(
        self, service: str, project: str, job_id: str, kinds: tuple[str, ...], context: Any, field: str
    ) -> common_pb2.Job:
        if not job_id:
            raise InvalidArgument("is empty", field=field)
        request_type = apb.GetJobRequest if service == "analysis" else spb.GetJobRequest
        job = self._call(service, "GetJob", request_type(project=project, job_id=job_id), context, field).job
        if job.kind not in kinds:
            raise InvalidArgument(f"job {job.job_id} is a {job.kind} job, not a {' or '.join(kinds)} job", field=field)
        if job.state != common_pb2.JOB_STATE_SUCCEEDED:
            state = common_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")
            raise FailedPrecondition(f"job {job.job_id} is {state}", field=field)
        return job

    def _pages(self, service: str, method: str, make: Callable[[common_pb2.PageRequest], Any], most: int,
               context: Any, field: str) -> Iterator[Any]:  # fmt: skip
        """The responses of ``method`` page by page until ``most`` items or the last page."""
        token, left = "", most
        while True:
            size = min(PAGE_SIZE, left)
            resp = self._call(service, method, make(common_pb2.PageRequest(page_size=size, page_token=token)),
                              context, field)  # fmt: skip
            yield resp
            token, left = resp.page.next_page_token, left - size
            if not token or left <= 0:
                return

    def label_issues(self, project: str, job_id: str, most: int, context: Any) -> Source:
        """A finished label-issues job's flagged frames (at most ``most``), worst first, each with its
        own reason (classification: the given and the suggested class; detection: the kinds of box
        issues; multi-label: the classes missing and extra; semantic segmentation: the pixels
        flagged and the classes most of them mix up; sound events: each flagged interval, its kind,
        class and times); frames whose issue was dismissed (DismissLabelIssues) are left out, as the
        analysis service's queries leave them out."""
        field = "label_issues.job_id"
        job = self._finished("analysis", project, job_id, LABEL_ISSUE_KINDS, context, field)
        params = job.params
        dataset = params.get("dataset") or self.datasets.get_inference_set(project, params["inference_set"]).dataset
        frames: list[str] = []
        reasons: list[str] = []
        names = {c.id: c.name for c in self.projects.get(project).classes}
        if job.kind == MULTILABEL_ISSUES_KIND:

            def multilabel(page: common_pb2.PageRequest) -> apb.QueryMultiLabelIssuesRequest:
                return apb.QueryMultiLabelIssuesRequest(project=project, job_id=job.job_id, page=page)

            for resp in self._pages("analysis", "QueryMultiLabelIssues", multilabel, most, context, field):
                for m in resp.issues[: most - len(frames)]:
                    frames.append(m.ref.frame_id)
                    reasons.append(_multilabel_reason(m, names))
        elif job.kind == SEGMENTATION_ISSUES_KIND:

            def segmentation(page: common_pb2.PageRequest) -> apb.QuerySegmentationIssuesRequest:
                return apb.QuerySegmentationIssuesRequest(project=project, job_id=job.job_id, page=page)

            for resp in self._pages("analysis", "QuerySegmentationIssues", segmentation, most, context, field):
                # the pages hold the flagged frames only (all_frames unset); is_issue says so again
                for sg in [x for x in resp.issues if x.is_issue][: most - len(frames)]:
                    frames.append(sg.ref.frame_id)
                    reasons.append(_segmentation_reason(sg, names))
        elif job.kind == SOUND_EVENT_ISSUES_KIND:
            for clip, intervals in self._sound_event_clips(project, job.job_id, most, context, field):
                frames.append(clip.frame_id)
                reasons.append(_sound_event_reason(clip, intervals, names))
        elif job.kind == DETECTION_ISSUES_KIND:

            def detection(page: common_pb2.PageRequest) -> apb.QueryDetectionLabelIssuesRequest:
                return apb.QueryDetectionLabelIssuesRequest(project=project, job_id=job.job_id, page=page,
                                                            level=apb.DETECTION_ISSUE_LEVEL_FRAME)  # fmt: skip

            for resp in self._pages("analysis", "QueryDetectionLabelIssues", detection, most, context, field):
                for f in resp.frames[: most - len(frames)]:
                    frames.append(f.ref.frame_id)
                    reasons.append(_detection_reason(f))
        else:

            def classification(page: common_pb2.PageRequest) -> apb.QueryLabelIssuesRequest:
                return apb.QueryLabelIssuesRequest(project=project, job_id=job.job_id, page=page)

            for resp in self._pages("analysis", "QueryLabelIssues", classification, most, context, field):
                for i in resp.issues[: most - len(frames)]:
                    frames.append(i.ref.frame_id)
                    reasons.append(f"label issue: labeled {names.get(i.given_label, i.given_label)}, the model "
                                   f"suggests {names.get(i.suggested_label, i.suggested_label)} "
                                   f"(p {i.suggested_probability:.2f})")  # fmt: skip
        return Source(dataset, frames, "", f"label_issues:{job.job_id}", reasons)

    def _sound_event_clips(
        self, project: str, job_id: str, most: int, context: Any, field: str
    ) -> list[tuple[apb.SoundEventClipIssue, list[apb.SoundEventIssue]]]:
        """The flagged clips of a sound-event label-issues job (at most ``most``, worst first), each
        with its flagged intervals. The intervals come ranked over the whole job, not by clip: they
        are read until every clip has as many as it counts (or to the last page)."""

        def request(level: int, page: common_pb2.PageRequest) -> apb.QuerySoundEventIssuesRequest:
            return apb.QuerySoundEventIssuesRequest(project=project, job_id=job_id, level=level, page=page)

        clips: list[apb.SoundEventClipIssue] = []
        for resp in self._pages("analysis", "QuerySoundEventIssues",
                                lambda page: request(apb.SOUND_EVENT_ISSUE_LEVEL_CLIP, page), most, context,
                                field):  # fmt: skip
            clips += [c for c in resp.clips if c.is_issue][: most - len(clips)]
        intervals: dict[str, list[apb.SoundEventIssue]] = {c.frame_id: [] for c in clips}
        # how many flagged intervals each clip has left to read
        left = {c.frame_id: c.missing + c.spurious + c.badly_bounded + c.wrong_class for c in clips}
        waiting = sum(1 for n in left.values() if n > 0)
        if waiting:
            for resp in self._pages("analysis", "QuerySoundEventIssues",
                                    lambda page: request(apb.SOUND_EVENT_ISSUE_LEVEL_INTERVAL, page), 2**62,
                                    context, field):  # fmt: skip
                for i in resp.intervals:
                    if not i.is_issue or i.frame_id not in intervals:
                        continue
                    intervals[i.frame_id].append(i)
                    left[i.frame_id] -= 1
                    waiting -= left[i.frame_id] == 0
                if waiting <= 0:
                    break
        return [(c, intervals[c.frame_id]) for c in clips]

    def campaign(self, project: str, job_id: str, most: int, context: Any) -> Source:
        """A finished campaign's sample, by rank."""
        field = "campaign_job_id"
        job = self._finished("sampler", project, job_id, (CAMPAIGN_KIND,), context, field)
        frames: list[str] = []
        strategy = ""

        def page_of(page: common_pb2.PageRequest) -> spb.GetCampaignRequest:
            return spb.GetCampaignRequest(project=project, job_id=job.job_id, page=page)

        for resp in self._pages("sampler", "GetCampaign", page_of, most, context, field):
            strategy = resp.summary.strategy
            frames += [item.ref.frame_id for item in resp.items[: most - len(frames)]]
        return Source(job.params["pool_dataset"], frames, f"collection campaign {job.job_id}: {strategy}",
                      f"campaign:{job.job_id}")  # fmt: skip


def _multilabel_reason(m: apb.MultiLabelIssue, names: dict[int, str]) -> str:
    parts = [f"{what} {', '.join(names.get(c, str(c)) for c in ids)}"
             for what, ids in (("missing", m.missing_class_ids), ("extra", m.extra_class_ids)) if ids]  # fmt: skip
    if not parts:  # flagged by its worst class alone
        parts = [f"doubtful {names.get(m.worst_class, str(m.worst_class))}"]
    return f"label issue: {'; '.join(parts)} (label quality {m.score:.2f})"


def _segmentation_reason(s: apb.SegmentationIssue, names: dict[int, str]) -> str:
    flagged = f"{s.flagged_pixels:,} {'pixel' if s.flagged_pixels == 1 else 'pixels'} likely mislabeled"
    if s.worst_class >= 0 and s.suggested_class >= 0:
        flagged += (f", mostly labeled {names.get(s.worst_class, str(s.worst_class))} where the model sees "
                    f"{names.get(s.suggested_class, str(s.suggested_class))}")  # fmt: skip
    return f"label issue: {flagged} (label quality {s.score:.2f})"


def _sound_event_reason(
    clip: apb.SoundEventClipIssue, intervals: Sequence[apb.SoundEventIssue], names: dict[int, str]
) -> str:
    """``label issues in 2 intervals: spurious 'dog_bark' 1.2-2.0 s; wrong class 'siren' 3.1-4.0 s,
    sounds like 'dog_bark' (clip score 0.08)``: the clip's flagged intervals in time order (the first
    :data:`REASON_INTERVALS`, the rest counted); by their counts when none could be read."""
    counted = clip.missing + clip.spurious + clip.badly_bounded + clip.wrong_class
    total = max(counted, len(intervals))

    def when(e: Any) -> float:
        return float(
            e.predicted_event.onset if e.issue_type == apb.SOUND_EVENT_ISSUE_TYPE_MISSING else e.label_event.onset
        )

    parts = [_interval(i, names) for i in sorted(intervals, key=when)[:REASON_INTERVALS]]
    if parts and total > len(parts):
        parts.append(f"{total - len(parts)} more")
    if not parts:
        counts = ((clip.spurious, "spurious"), (clip.badly_bounded, "badly bounded"),
                  (clip.wrong_class, "of the wrong class"), (clip.missing, "missing"))  # fmt: skip
        parts = [f"{n} {what}" for n, what in counts if n]
    noun = "interval" if total == 1 else "intervals"
    return f"label issues in {total} {noun}: {'; '.join(parts)} (clip score {clip.score:.2f})"


def _interval(i: apb.SoundEventIssue, names: dict[int, str]) -> str:
    def span(e: Any) -> str:
        return f"{names.get(e.class_id, str(e.class_id))!r} {seconds(e.onset)}-{seconds(e.offset)} s"

    if i.issue_type == apb.SOUND_EVENT_ISSUE_TYPE_MISSING:
        return f"missing {span(i.predicted_event)} (the model hears it, p {i.predicted_event.score:.2f})"
    if i.issue_type == apb.SOUND_EVENT_ISSUE_TYPE_WRONG_CLASS:
        like = f", sounds like {names.get(i.suggested_class, str(i.suggested_class))!r}" if i.HasField(
            "suggested_class") else ""  # fmt: skip
        return f"wrong class {span(i.label_event)}{like}"
    if i.issue_type == apb.SOUND_EVENT_ISSUE_TYPE_BADLY_BOUNDED:
        overlap = f" (tIoU {i.iou:.2f} with the model's)" if math.isfinite(i.iou) else ""
        return f"badly bounded {span(i.label_event)}{overlap}"
    return f"spurious {span(i.label_event)}"


def _detection_reason(f: apb.DetectionFrameIssue) -> str:
    counts = ((f.missing_labels, "missing box"), (f.spurious_labels, "spurious box"),
              (f.mislocalized, "mislocalized box"), (f.class_swaps, "box of another class"),
              (f.misplaced_keypoints, "misplaced keypoint"), (f.swapped_keypoints, "swapped keypoints"))  # fmt: skip
    return "label issues: " + ", ".join(f"{n} {what}" for n, what in counts if n) + f" (frame score {f.score:.2f})"
