"""Python client of a Shoal deployment.

    from shoal.client import Client
    with Client("localhost:50051", api_key="shoal_...") as shoal:
        shoal.ingest.GetProject(ingest_pb2.GetProjectRequest(project="digits"))

Each attribute (``ingest``, ``analysis``, ``sampler``, ``labeling_bridge``, ``health``) is the
generated stub of that service, with the API key sent on every call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shoal.analysis.v1 import analysis_pb2_grpc
from shoal.common.interceptors import ERROR_DETAIL_KEY
from shoal.common.v1 import common_pb2
from shoal.ingest.v1 import ingest_pb2_grpc
from shoal.labeling_bridge.v1 import labeling_bridge_pb2_grpc
from shoal.sampler.v1 import sampler_pb2_grpc


class _KeyInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, api_key: str) -> None:
        self._md = (("authorization", f"Bearer {api_key}"),)

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        md = list(details.metadata or ()) + list(self._md)
        return _Details(
            details.method, details.timeout, md, details.credentials, details.wait_for_ready, details.compression
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)


class _Details(grpc.ClientCallDetails):
    def __init__(
        self,
        method: str,
        timeout: float | None,
        metadata: Sequence[tuple[str, str]],
        credentials: Any,
        wait_for_ready: bool | None,
        compression: Any,
    ) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def error_detail(err: grpc.RpcError) -> common_pb2.ErrorDetail | None:
    """The machine-readable detail of a Shoal error, if the server sent one."""
    for key, value in (err.trailing_metadata() or ()) if hasattr(err, "trailing_metadata") else ():
        if key == ERROR_DETAIL_KEY:
            return common_pb2.ErrorDetail.FromString(value)
    return None


def open_channel(
    target: str,
    *,
    api_key: str | None = None,
    tls: bool = False,
    ca_file: Path | None = None,
    max_message_bytes: int = 64 * 1024 * 1024,
) -> grpc.Channel:
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    if tls or ca_file is not None:
        creds = grpc.ssl_channel_credentials(root_certificates=ca_file.read_bytes() if ca_file else None)
        channel = grpc.secure_channel(target, creds, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    if api_key:
        channel = grpc.intercept_channel(channel, _KeyInterceptor(api_key))
    return channel


class Client:
    def __init__(
        self, target: str, *, api_key: str | None = None, tls: bool = False, ca_file: Path | None = None
    ) -> None:
        self.target = target
        self.channel = open_channel(target, api_key=api_key, tls=tls, ca_file=ca_file)
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self.channel)
        self.analysis = analysis_pb2_grpc.AnalysisServiceStub(self.channel)
        self.sampler = sampler_pb2_grpc.SamplerServiceStub(self.channel)
        self.labeling_bridge = labeling_bridge_pb2_grpc.LabelingBridgeServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def health_status(self, service: str = "", timeout: float = 5.0) -> str:
        """SERVING, NOT_SERVING, SERVICE_UNKNOWN, or UNAVAILABLE when the server cannot be reached."""
        try:
            resp = self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            return "UNAVAILABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    # -- high-level helpers --------------------------------------------------------------------
    def upload(self, project: str, dataset: str, columns: Any, **kwargs: Any) -> Any:
        """Uploads :class:`shoal.sdk.UploadColumns` in chunks; see :func:`shoal.sdk.upload`."""
        from shoal.sdk import upload

        return upload(self.ingest, project, dataset, columns, **kwargs)

    def wait_for_upload(self, project: str, upload_id: str, **kwargs: Any) -> Any:
        """Waits until an upload is written; returns its ``UploadStatus``."""
        from shoal.sdk import wait_for_upload

        return wait_for_upload(self.ingest, project, upload_id, **kwargs)

    def wait_for_job(self, project: str, job_id: str, *, service: str = "analysis", **kwargs: Any) -> Any:
        """Waits until a job of ``service`` (analysis, sampler or labeling_bridge) ends; returns it
        when it succeeded, raises :class:`shoal.sdk.JobFailed` otherwise."""
        from shoal.sdk import wait_for_job

        stubs = {"analysis": self.analysis, "sampler": self.sampler, "labeling_bridge": self.labeling_bridge}
        if service not in stubs:
            raise ValueError(f"service must be one of {', '.join(stubs)}, got {service!r}")
        return wait_for_job(stubs[service], project, job_id, **kwargs)

    def export_job_result(self, project: str, job_id: str, **kwargs: Any) -> Any:
        """Every frame's result of a finished analysis job as a pyarrow Table; see
        :func:`shoal.sdk.export_job_result`."""
        from shoal.sdk import export_job_result

        return export_job_result(self.analysis, project, job_id, **kwargs)

    def run_campaign(
        self,
        project: str,
        name: str,
        *,
        pool_dataset: str,
        embedding_space: str,
        budget: int,
        seed_segment: str = "",
        similarity: float | None = None,
        uncertainty: float | None = None,
        diversity: float | None = None,
        balance: float | None = None,
        diversity_method: str = "mmr",
        uncertainty_inference_set: str = "",
        uncertainty_measure: str = "entropy",
        wait: bool = True,
        timeout: float = 3600.0,
        progress: bool = True,
        **request: Any,
    ) -> Any:
        """Starts a collection campaign (see ``StartCampaignRequest``; further request fields,
        e.g. ``exclude_labeled=True`` or ``rerun=True``, pass through ``request``) and, with
        ``wait``, waits for it and returns its :class:`Campaign` (summary and every ranked item);
        without ``wait`` returns the job. ``diversity_method`` is "mmr" or "k_center";
        ``uncertainty_measure`` "entropy", "margin" or "least_confidence"."""
        from shoal.sampler.v1 import sampler_pb2 as spb

        weights = {"similarity": similarity, "uncertainty": uncertainty, "diversity": diversity, "balance": balance}
        job = self.sampler.StartCampaign(
            spb.StartCampaignRequest(
                project=project,
                name=name,
                seed_segment=seed_segment,
                pool_dataset=pool_dataset,
                embedding_space=embedding_space,
                budget=budget,
                weights=spb.CampaignWeights(**{k: v for k, v in weights.items() if v is not None}),
                diversity_method=_enum(spb.DiversityMethod, "DIVERSITY_METHOD_", diversity_method),
                uncertainty_inference_set=uncertainty_inference_set,
                uncertainty_measure=_enum(spb.UncertaintyMeasure, "UNCERTAINTY_MEASURE_", uncertainty_measure),
                **request,
            )
        ).job
        if not wait:
            return job
        self.wait_for_job(project, job.job_id, service="sampler", timeout=timeout, progress=progress)
        return self.campaign(project, job.job_id)

    def campaign(self, project: str, job_id: str) -> Campaign:
        """A finished campaign's summary and all of its items, by rank."""
        from shoal.common.pagination import pages
        from shoal.sampler.v1 import sampler_pb2 as spb

        answers = list(pages(lambda page: self.sampler.GetCampaign(
            spb.GetCampaignRequest(project=project, job_id=job_id, page=page))))  # fmt: skip
        return Campaign(job_id=job_id, summary=answers[-1].summary, items=[i for a in answers for i in a.items])

    def start_standing_campaign(
        self,
        project: str,
        name: str,
        *,
        pool_dataset: str,
        embedding_space: str,
        similarity_threshold: float,
        budget: int,
        seed_segment: str = "",
        seed_frames: Sequence[tuple[str, str]] = (),
        min_distance: float = 0.0,
        retention_seconds: float | None = None,
        **request: Any,
    ) -> Any:
        """Starts a standing campaign (see ``StartStandingCampaignRequest``; ``seed_frames`` are
        (dataset, frame id) pairs; ``filter`` and other fields pass through ``request``) and returns
        its ``StandingCampaign``. It then keeps the frames that arrive; follow it with
        :meth:`standing_campaign`."""
        from shoal.sampler.v1 import sampler_pb2 as spb

        if retention_seconds is not None:
            request["retention_seconds"] = retention_seconds
        return self.sampler.StartStandingCampaign(
            spb.StartStandingCampaignRequest(
                project=project,
                name=name,
                pool_dataset=pool_dataset,
                embedding_space=embedding_space,
                similarity_threshold=similarity_threshold,
                budget=budget,
                seed_segment=seed_segment,
                seed_frames=[common_pb2.DatapointRef(dataset=d, frame_id=f) for d, f in seed_frames],
                min_distance=min_distance,
                **request,
            )
        ).campaign

    def standing_campaign(self, project: str, name: str) -> StandingCampaign:
        """A standing campaign's state and counts and every frame it kept so far, in the order kept."""
        from shoal.common.pagination import pages
        from shoal.sampler.v1 import sampler_pb2 as spb

        answers = list(pages(lambda page: self.sampler.GetStandingCampaign(
            spb.GetStandingCampaignRequest(project=project, name=name, page=page))))  # fmt: skip
        return StandingCampaign(campaign=answers[-1].campaign, items=[i for a in answers for i in a.items])

    def wait_for_standing_campaign(
        self, project: str, name: str, *, judged: int, timeout: float = 600.0, poll: float = 0.25
    ) -> StandingCampaign:
        """Waits until standing campaign ``name`` judged ``judged`` frames, or stopped judging (FULL or
        STOPPED), and returns it (:meth:`standing_campaign`); raises TimeoutError otherwise."""
        import time

        from shoal.sampler.v1 import sampler_pb2 as spb

        deadline = time.monotonic() + timeout
        while True:
            c = self.sampler.GetStandingCampaign(spb.GetStandingCampaignRequest(project=project, name=name)).campaign
            if c.judged >= judged or c.state != spb.STANDING_CAMPAIGN_STATE_FILLING:
                return self.standing_campaign(project, name)
            if time.monotonic() > deadline:
                raise TimeoutError(f"standing campaign {name} judged {c.judged} of {judged} frames in {timeout:.0f}s")
            time.sleep(poll)

    def score_for_campaign(
        self, project: str, name: str, frame_ids: Sequence[str], embeddings: Any, **kwargs: Any
    ) -> Any:
        """The frames of a local batch that standing campaign ``name`` would keep, chosen on this
        machine; see :func:`shoal.sdk.score_for_campaign`."""
        from shoal.sdk import score_for_campaign

        return score_for_campaign(self.sampler, project, name, frame_ids, embeddings, **kwargs)

    def send_for_labeling(
        self,
        project: str,
        *,
        segment: str = "",
        campaign_job_id: str = "",
        label_issues_job_id: str = "",
        frames: Sequence[str] = (),
        dataset: str = "",
        wait: bool = True,
        timeout: float = 3600.0,
        **request: Any,
    ) -> Any:
        """Sends one source (a segment, a finished campaign, a finished label-issues job's issues,
        or ``frames`` of ``dataset``) to the labeling platform; further ``SendForLabelingRequest``
        fields (``reason``, ``preannotation_inference_set``, ``request_id``, ...) pass through.
        With ``wait``, returns the ``LabelingRequest`` once every frame is on the platform (or the
        request FAILED); a request still PENDING at ``timeout`` raises TimeoutError with its last
        error."""
        import time

        from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb

        given = {"segment": segment, "campaign_job_id": campaign_job_id, "label_issues": label_issues_job_id,
                 "frames": list(frames)}  # fmt: skip
        chosen = [k for k, v in given.items() if v]
        if len(chosen) != 1:
            raise ValueError(
                f"give exactly one of segment, campaign_job_id, label_issues_job_id or frames, got {chosen}"
            )
        source: dict[str, Any] = {"segment": segment, "campaign_job_id": campaign_job_id}
        source = {k: v for k, v in source.items() if v}
        if label_issues_job_id:
            source["label_issues"] = lpb.LabelIssuesSource(job_id=label_issues_job_id)
        if frames:
            source["frames"] = lpb.FrameList(dataset=dataset, frame_ids=list(frames))
        r = self.labeling_bridge.SendForLabeling(
            lpb.SendForLabelingRequest(project=project, **source, **request)
        ).request
        deadline = time.monotonic() + timeout
        while wait and r.state == lpb.LABELING_REQUEST_STATE_PENDING:
            if time.monotonic() > deadline:
                raise TimeoutError(f"labeling request {r.request_id} still pending after {timeout:.0f}s"
                                   + (f": {r.last_error}" if r.last_error else ""))  # fmt: skip
            time.sleep(0.5)
            r = self.labeling_bridge.GetLabelingRequest(
                lpb.GetLabelingRequestRequest(project=project, request_id=r.request_id)
            ).request
        return r

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Campaign:
    """A finished collection campaign: its ``CampaignSummary`` and its ``CampaignItem`` messages by rank."""

    job_id: str
    summary: Any
    items: list[Any]

    @property
    def frame_ids(self) -> list[str]:
        return [item.ref.frame_id for item in self.items]


@dataclass
class StandingCampaign:
    """A standing campaign: its ``StandingCampaign`` message (rule, state, counts) and the
    ``StandingItem`` messages of the frames it kept so far, in the order kept."""

    campaign: Any
    items: list[Any]

    @property
    def frame_ids(self) -> list[str]:
        return [item.ref.frame_id for item in self.items]


def _enum(enum: Any, prefix: str, name: str) -> int:
    """The value of ``prefix + name.upper()`` in a proto enum, with a clear error otherwise."""
    options = [n.removeprefix(prefix).lower() for n in enum.keys() if not n.endswith("UNSPECIFIED")]
    key = prefix + name.upper().replace("-", "_")
    if name.lower().replace("-", "_") not in options:
        raise ValueError(f"{prefix.rstrip('_').lower()} must be one of {', '.join(options)}, got {name!r}")
    return int(enum.Value(key))


def list_services(channel: grpc.Channel, timeout: float = 10.0) -> list[str]:
    """The services a server lists through reflection."""
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=timeout
    )
    names: list[str] = []
    for resp in responses:
        names.extend(s.name for s in resp.list_services_response.service)
    return sorted(names)
