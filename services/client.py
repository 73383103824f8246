"""Python client of a Shoal deployment.

    from shoal.client import Client
    with Client("localhost:50051", api_key="shoal_...") as shoal:
        shoal.ingest.GetProject(ingest_pb2.GetProjectRequest(project="digits"))

Each attribute (``ingest``, ``analysis``, ``sampler``, ``labeling_bridge``, ``health``) is the
generated stub of that service, with the API key sent on every call.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
