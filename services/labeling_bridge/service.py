"""The labeling bridge: the round trip with labeling platforms (see :mod:`shoal.labeling_bridge.bridge`).

Requests arrive by gRPC (``SendForLabeling``) or as ``LabelingRequestEvent``\\ s on the
labeling-requests topic (what the sampler's ``RequestLabeling`` publishes); both are recorded the
same way and sent by the bridge's worker. Annotations come back by webhook (``WebhookServer``) and
by polling (``BridgeLoop``, or ``SyncAnnotations`` at once).
"""

from __future__ import annotations

import logging
from typing import Any

from shoal.analysis import detection_issues, label_issues
from shoal.common import uploads
from shoal.common.convert import page_of, page_response, timestamp
from shoal.common.data import labeling_requests
from shoal.common.data.datasets import MIGRATIONS as DATASET_MIGRATIONS
from shoal.common.data.datasets import DatasetCatalog
from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
from shoal.common.data.projects import MIGRATIONS as PROJECT_MIGRATIONS
from shoal.common.data.projects import ProjectCatalog
from shoal.common.data.segments import MIGRATIONS as SEGMENT_MIGRATIONS
from shoal.common.data.segments import SegmentStore
from shoal.common.errors import FailedPrecondition, InvalidArgument, NotFound
from shoal.common.jobs import JobStore
from shoal.common.jobs_rpc import JobRpcs
from shoal.common.labeling import platform_of
from shoal.common.server import ServiceSpec
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2
from shoal.labeling_bridge import bridge as br
from shoal.labeling_bridge import state as st
from shoal.labeling_bridge.platforms import LabelingPlatform
from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb
from shoal.labeling_bridge.v1 import labeling_bridge_pb2_grpc
from shoal.labeling_bridge.workers import BridgeLoop, RequestConsumer, WebhookServer
from shoal.sampler import campaign, handoff

log = logging.getLogger(__name__)

NAME = "labeling_bridge"
FULL_NAME = lpb.DESCRIPTOR.services_by_name["LabelingBridgeService"].full_name
#: most frames one request may name
MAX_FRAMES = 100_000


def request_to_proto(r: st.Request, counts: dict[str, int]) -> lpb.LabelingRequest:
    return lpb.LabelingRequest(
        request_id=r.request_id,
        project=r.project,
        dataset=r.dataset,
        platform=r.platform,
        source=r.source,
        reason=r.reason,
        preannotation_inference_set=r.preannotation_inference_set,
        requested_by=r.requested_by,
        requested_time=timestamp(r.requested_time),
        state=lpb.LabelingRequestState.Value(f"LABELING_REQUEST_STATE_{r.state}"),
        frames=r.frames,
        counts=lpb.ItemCounts(**{s.lower(): counts.get(s, 0) for s in st.ITEM_STATES}),
        attempts=r.attempts,
        last_error=r.last_error,
        next_attempt_time=timestamp(r.next_attempt_time if r.state == st.PENDING else None),
        platform_project_id=r.platform_project_id,
        platform_project_url=r.platform_project_url,
    )


def item_to_proto(i: st.Item) -> lpb.LabelingItem:
    return lpb.LabelingItem(
        ref=common_pb2.DatapointRef(dataset=i.dataset, frame_id=i.frame_id),
        request_id=i.request_id,
        state=lpb.ItemState.Value(f"ITEM_STATE_{i.state}"),
        task_id=i.task_id,
        annotation_id=i.annotation_id,
        annotator=i.annotator,
        annotated_time=timestamp(i.annotated_time),
        error=i.error,
        label_version=i.label_version,
        reason=i.reason,
        updated_time=timestamp(i.updated_time),
    )


class LabelingBridgeServicer(JobRpcs, labeling_bridge_pb2_grpc.LabelingBridgeServiceServicer):
    GetJobResponse: Any = lpb.GetJobResponse
    ListJobsResponse: Any = lpb.ListJobsResponse
    CancelJobResponse: Any = lpb.CancelJobResponse

    def __init__(
        self, jobs: JobStore, bridge: br.Bridge, projects: ProjectCatalog, datasets: DatasetCatalog, loop: BridgeLoop
    ) -> None:
        self.jobs = jobs
        self.bridge = bridge
        self.metrics = bridge.metrics
        self.projects = projects
        self.datasets = datasets
        self.segments = SegmentStore(bridge.metrics)
        self.loop = loop
        self.analysis_jobs = JobStore(bridge.metrics, service="analysis")
        self.sampler_jobs = JobStore(bridge.metrics, service="sampler")

    def SendForLabeling(self, request: lpb.SendForLabelingRequest, context: Any) -> lpb.SendForLabelingResponse:
        project = self.projects.get(request.project)
        br.task_type_of(project.task_type)  # classification or 2-D detection, else INVALID_ARGUMENT
        platform = platform_of(request.platform)
        if self.bridge.platform() is None:
            raise FailedPrecondition(
                "no labeling platform is configured on the labeling bridge: set "
                "SHOAL_LABEL_STUDIO_URL and SHOAL_LABEL_STUDIO_TOKEN",
                field="platform",
            )
        src = self._resolve(project.name, request)
        dataset, frames, reasons, source, reason = src.dataset, src.frame_ids, src.reasons, src.source, src.reason
        if not frames:
            raise FailedPrecondition(
                f"the {request.WhichOneof('source').replace('_', ' ')} holds no frames",
                field=request.WhichOneof("source"),
            )
        if len(frames) > MAX_FRAMES:
            raise InvalidArgument(f"at most {MAX_FRAMES} frames per request, got {len(frames)}", field="source")
        if request.preannotation_inference_set:
            self.datasets.get_inference_set(
                project.name, request.preannotation_inference_set, dataset=dataset, field="preannotation_inference_set"
            )
        if request.request_id and not labeling_requests.REQUEST_ID.match(request.request_id):
            raise InvalidArgument(f"must match {labeling_requests.REQUEST_ID.pattern}", field="request_id")
        request_id = request.request_id or labeling_requests.derive_request_id(project.name, source, dataset, frames)
        r = st.Request(
            project=project.name,
            request_id=request_id,
            dataset=dataset,
            platform=platform,
            source=source,
            reason=request.reason or reason,
            preannotation_inference_set=request.preannotation_inference_set,
            requested_by=request.requested_by,
            requested_time=st._now(),
            frames=len(frames),
        )
        stored, repeated = self.bridge.record(r, frames, reasons)
        # the frames count as sent for labeling: searches and campaigns can leave them out
        if not repeated:
            labeling_requests.record_sent(
                self.metrics,
                labeling_requests.Request(
                    project=project.name,
                    dataset=dataset,
                    frame_ids=frames,
                    reason=stored.reason,
                    source=source,
                    platform=platform,
                    preannotation_inference_set=request.preannotation_inference_set,
                    requested_by=request.requested_by,
                    request_id=request_id,
                ),
            )
        self.loop.wake()
        counts = self.bridge.state.counts(project.name, request_id)
        return lpb.SendForLabelingResponse(request=request_to_proto(stored, counts), repeated_request=repeated)

    def _resolve(self, project: str, request: lpb.SendForLabelingRequest) -> labeling_requests.Source:
        kind = request.WhichOneof("source")
        if kind is None:
            raise InvalidArgument("set segment, campaign_job_id, label_issues or frames", field="source")
        if kind == "segment":
            return labeling_requests.segment_source(self.segments, project, request.segment)
        if kind == "campaign_job_id":
            job = self._finished(self.sampler_jobs, project, request.campaign_job_id, campaign.KIND, "campaign_job_id")
            return handoff.campaign_source(self.metrics, job)
        if kind == "label_issues":
            return self._label_issues(project, request.label_issues)
        return labeling_requests.frames_source(self.metrics, self.datasets, project, request.frames.dataset,
                                     request.frames.frame_ids)  # fmt: skip

    def _label_issues(self, project: str, li: lpb.LabelIssuesSource) -> labeling_requests.Source:
        """A finished label-issues job's flagged frames, worst first, each with its own reason
        (classification: the given and the suggested class; detection: the kinds of box issues)."""
        if li.max_frames < 0:
            raise InvalidArgument(f"must be >= 0, got {li.max_frames}", field="label_issues.max_frames")
        job = self._finished(self.analysis_jobs, project, li.job_id, (label_issues.KIND, detection_issues.KIND),
                             "label_issues.job_id")  # fmt: skip
        size = li.max_frames or MAX_FRAMES
        dataset = (
            job.params.get("dataset") or self.datasets.get_inference_set(project, job.params["inference_set"]).dataset
        )
        # frames whose issue was dismissed (DismissLabelIssues) are not sent
        if job.kind == detection_issues.KIND:
            rows, _, _ = detection_issues.query_frames(
                self.metrics, project, job.job_id, dataset=dataset, types=[], include_unflagged=False,
                include_dismissed=False, order=0, offset=0, size=size,
            )  # fmt: skip
            reasons = [
                "label issues: " + ", ".join(f"{n} {what}" for n, what in ((missing, "missing box"),
                    (spurious, "spurious box"), (mislocalized, "mislocalized box"), (swapped, "box of another class"))
                    if n) + f" (frame score {float(score):.2f})"
                for _f, score, _is, _worst, _objects, missing, spurious, mislocalized, swapped, _d in rows
            ]  # fmt: skip
        else:
            rows, _, _ = label_issues.query_issues(self.metrics, project, job.job_id, dataset=dataset, all_frames=False,
                                                   include_dismissed=False, order=0, offset=0, size=size)  # fmt: skip
            names = {c.id: c.name for c in self.projects.get(project).classes}
            reasons = [
                f"label issue: labeled {names.get(int(given), given)}, the model suggests"
                f" {names.get(int(suggested), suggested)} (p {float(p):.2f})"
                for _f, given, suggested, _is, _sc, _nm, _we, p, _d in rows
            ]
        return labeling_requests.Source(dataset, [str(r[0]) for r in rows], "", f"label_issues:{job.job_id}", reasons)

    def _finished(self, jobs: JobStore, project: str, job_id: str, kind: str | tuple[str, ...], field: str) -> Any:
        if not job_id:
            raise InvalidArgument("is empty", field=field)
        try:
            job = jobs.get(project, job_id)
        except NotFound as exc:
            raise NotFound(exc.message, field=field) from None
        kinds = (kind,) if isinstance(kind, str) else kind
        if job.kind not in kinds:
            raise InvalidArgument(f"job {job.job_id} is a {job.kind} job, not a {' or '.join(kinds)} job", field=field)
        if job.state != "SUCCEEDED":
            raise FailedPrecondition(f"job {job.job_id} is {job.state}", field=field)
        return job

    def GetLabelingRequest(
        self, request: lpb.GetLabelingRequestRequest, context: Any
    ) -> lpb.GetLabelingRequestResponse:
        project = self.projects.get(request.project)
        if not request.request_id:
            raise InvalidArgument("is empty", field="request_id")
        r = self.bridge.state.request(project.name, request.request_id)
        if r is None:
            raise NotFound(
                f"project {project.name!r} has no labeling request {request.request_id!r}", field="request_id"
            )
        return lpb.GetLabelingRequestResponse(
            request=request_to_proto(r, self.bridge.state.counts(r.project, r.request_id))
        )

    def ListLabelingRequests(
        self, request: lpb.ListLabelingRequestsRequest, context: Any
    ) -> lpb.ListLabelingRequestsResponse:
        project = self.projects.get(request.project)
        scope = f"requests/{project.name}"
        page = page_of(request.page, scope=scope)
        rows, total = self.bridge.state.requests(project.name, offset=page.offset, size=page.size)
        return lpb.ListLabelingRequestsResponse(
            requests=[request_to_proto(r, self.bridge.state.counts(r.project, r.request_id)) for r in rows],
            page=page_response(page, len(rows), total, scope=scope),
        )

    def ListLabelingItems(self, request: lpb.ListLabelingItemsRequest, context: Any) -> lpb.ListLabelingItemsResponse:
        project = self.projects.get(request.project)
        states = []
        for n, s in enumerate(request.states):
            if s == lpb.ITEM_STATE_UNSPECIFIED or s not in lpb.ItemState.values():
                raise InvalidArgument(f"is {s}, not an item state", field=f"states[{n}]")
            states.append(lpb.ItemState.Name(s).removeprefix("ITEM_STATE_"))
        if request.request_id and self.bridge.state.request(project.name, request.request_id) is None:
            raise NotFound(
                f"project {project.name!r} has no labeling request {request.request_id!r}", field="request_id"
            )
        scope = f"items/{project.name}/{request.request_id}/{sorted(states)}"
        page = page_of(request.page, scope=scope)
        rows, total = self.bridge.state.items(
            project.name, request_id=request.request_id, states=states, offset=page.offset, size=page.size
        )
        return lpb.ListLabelingItemsResponse(
            items=[item_to_proto(i) for i in rows],
            page=page_response(page, len(rows), total, scope=scope),
        )

    def SyncAnnotations(self, request: lpb.SyncAnnotationsRequest, context: Any) -> lpb.SyncAnnotationsResponse:
        project = self.projects.get(request.project)
        if self.bridge.platform() is None:
            raise FailedPrecondition("no labeling platform is configured on the labeling bridge", field="project")
        c = self.bridge.poll(project.name)
        return lpb.SyncAnnotationsResponse(
            read=c.read, synced=c.synced, conflicts=c.conflicts, failed=c.failed, unchanged=c.unchanged
        )


def platform_factory(settings: ShoalSettings) -> Any:
    def make() -> LabelingPlatform | None:
        if not settings.label_studio_url:
            return None
        from shoal.labeling_bridge.label_studio import LabelStudioPlatform

        token = settings.label_studio_token.get_secret_value() if settings.label_studio_token else ""
        return LabelStudioPlatform(settings.label_studio_url, token)

    return make


def create_service(settings: ShoalSettings, stores: Stores) -> ServiceSpec:
    projects = ProjectCatalog(stores.metrics)
    datasets = DatasetCatalog(stores.metrics, projects)
    topics = Topics(settings.topic_prefix)
    secret = settings.labeling_webhook_secret.get_secret_value() if settings.labeling_webhook_secret else ""
    bridge = br.Bridge(
        stores.metrics,
        projects,
        lambda event: uploads.publish(stores.events, topics, event),
        platform_factory(settings),
        webhook_url=settings.labeling_webhook_url,
        webhook_secret=secret,
        retry_max_seconds=settings.labeling_retry_max_seconds,
    )
    loop = BridgeLoop(bridge, poll_seconds=settings.labeling_poll_seconds)
    workers: list[Any] = [
        loop,
        RequestConsumer(stores.events, topics, bridge, datasets, group_id=settings.labeling_consumer_group),
    ]
    if settings.label_studio_url and settings.labeling_webhook_url:
        workers.append(WebhookServer(bridge, host=settings.host, port=settings.webhook_port, secret=secret))
    servicer = LabelingBridgeServicer(JobStore(stores.metrics, service=NAME), bridge, projects, datasets, loop)
    return ServiceSpec(
        name=NAME,
        full_name=FULL_NAME,
        register=lambda server: labeling_bridge_pb2_grpc.add_LabelingBridgeServiceServicer_to_server(servicer, server),
        stores=("metrics", "events"),
        migrations=(
            *PROJECT_MIGRATIONS,
            *DATASET_MIGRATIONS,
            *FRAME_MIGRATIONS,
            *SEGMENT_MIGRATIONS,
            *labeling_requests.MIGRATIONS,
            *st.MIGRATIONS,
        ),
        workers=workers,
    )
