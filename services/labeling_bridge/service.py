"""The labeling bridge: the round trip with labeling platforms (see :mod:`shoal.labeling_bridge.bridge`).

Requests arrive by gRPC (``SendForLabeling``) or as ``LabelingRequestEvent``\\ s on the
labeling-requests topic (what the sampler's ``RequestLabeling`` publishes); both are recorded the
same way and sent by the bridge's worker. Annotations come back by webhook (``WebhookServer``) and
by polling (``BridgeLoop``, or ``SyncAnnotations`` at once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from shoal.common import uploads
from shoal.common.channels import Channels, client_tls
from shoal.common.convert import page_of, page_response, timestamp
from shoal.common.data import labeling_requests
from shoal.common.data.datasets import MIGRATIONS as DATASET_MIGRATIONS
from shoal.common.data.datasets import DatasetCatalog
from shoal.common.data.frames import MIGRATIONS as FRAME_MIGRATIONS
from shoal.common.data.projects import MIGRATIONS as PROJECT_MIGRATIONS
from shoal.common.data.projects import ProjectCatalog
from shoal.common.data.segments import MIGRATIONS as SEGMENT_MIGRATIONS
from shoal.common.data.segments import SegmentStore
from shoal.common.errors import ConfigurationError, FailedPrecondition, InvalidArgument, NotFound, Unavailable
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
from shoal.labeling_bridge.owners import Owners
from shoal.labeling_bridge.platforms import LabelingPlatform
from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb
from shoal.labeling_bridge.v1 import labeling_bridge_pb2_grpc
from shoal.labeling_bridge.workers import BridgeLoop, RequestConsumer, WebhookServer

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
        self,
        jobs: JobStore,
        bridge: br.Bridge,
        projects: ProjectCatalog,
        datasets: DatasetCatalog,
        loop: BridgeLoop,
        owners: Owners,
    ) -> None:
        self.jobs = jobs
        self.bridge = bridge
        self.metrics = bridge.metrics
        self.projects = projects
        self.datasets = datasets
        self.segments = SegmentStore(bridge.metrics)
        self.loop = loop
        self.owners = owners

    def SendForLabeling(self, request: lpb.SendForLabelingRequest, context: Any) -> lpb.SendForLabelingResponse:
        project = self.projects.get(request.project)
        br.task_type_of(project.task_type)  # a task type the bridge sends, else INVALID_ARGUMENT
        platform = platform_of(request.platform)
        if self.bridge.platform() is None:
            raise FailedPrecondition(
                "no labeling platform is configured on the labeling bridge: set "
                "SHOAL_LABEL_STUDIO_URL and SHOAL_LABEL_STUDIO_TOKEN",
                field="platform",
            )
        src = self._resolve(project.name, request, context)
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

    def _resolve(self, project: str, request: lpb.SendForLabelingRequest, context: Any) -> labeling_requests.Source:
        kind = request.WhichOneof("source")
        if kind is None:
            raise InvalidArgument("set segment, campaign_job_id, label_issues or frames", field="source")
        if kind == "segment":
            return labeling_requests.segment_source(self.segments, project, request.segment)
        if kind == "campaign_job_id":
            # one frame more than a request may hold, so that a larger campaign is refused as such
            return self.owners.campaign(project, request.campaign_job_id, MAX_FRAMES + 1, context)
        if kind == "label_issues":
            li = request.label_issues
            if li.max_frames < 0:
                raise InvalidArgument(f"must be >= 0, got {li.max_frames}", field="label_issues.max_frames")
            return self.owners.label_issues(project, li.job_id, li.max_frames or MAX_FRAMES, context)
        return labeling_requests.frames_source(self.metrics, self.datasets, project, request.frames.dataset,
                                     request.frames.frame_ids)  # fmt: skip

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


def owner_targets(
    settings: ShoalSettings, local_services: Collection[str] = (), local_port: Callable[[], int | None] | None = None
) -> Callable[[], dict[str, str]]:
    """Where the bridge reaches analysis and the sampler: analysis_target and sampler_target, else
    this server's own port for a service it runs too. A service that is nowhere stops the start."""
    named = {"analysis": settings.analysis_target, "sampler": settings.sampler_target}
    missing = [s for s, t in named.items() if not t and (local_port is None or s not in local_services)]
    if missing:
        raise ConfigurationError(
            "the labeling bridge reads label-issues jobs from analysis and campaigns from the sampler; set "
            + " and ".join(f"SHOAL_{s.upper()}_TARGET=host:port" for s in missing)
            + " (or run them in the same `shoal serve`)"
        )

    def targets() -> dict[str, str]:
        out = dict(named)
        for service, target in named.items():
            if not target:
                port = local_port() if local_port is not None else None
                if port is None:
                    raise Unavailable(f"the {service} service is not bound yet", field="source")
                out[service] = f"127.0.0.1:{port}"
        return out

    return targets


def create_service(
    settings: ShoalSettings,
    stores: Stores,
    *,
    local_services: Collection[str] = (),
    local_port: Callable[[], int | None] | None = None,
) -> ServiceSpec:
    """The bridge; ``local_services`` run in the same server, reached on ``local_port`` unless
    analysis_target or sampler_target names where they are."""
    targets = owner_targets(settings, local_services, local_port)
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
    local = local_port is not None and not (settings.analysis_target and settings.sampler_target)
    if local and settings.tls_client_ca_file is not None and settings.console_grpc_client_cert_file is None:
        log.warning(
            "SendForLabeling cannot read label-issues jobs and campaigns: the services require client certificates "
            "(SHOAL_TLS_CLIENT_CA_FILE); give the bridge one with SHOAL_CONSOLE_GRPC_CLIENT_CERT_FILE and "
            "SHOAL_CONSOLE_GRPC_CLIENT_KEY_FILE"
        )
    channels = Channels(client_tls(settings, local=local), max_message_bytes=settings.max_message_bytes)
    owners = Owners(targets, channels, projects, datasets)
    servicer = LabelingBridgeServicer(JobStore(stores.metrics, service=NAME), bridge, projects, datasets, loop, owners)
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
