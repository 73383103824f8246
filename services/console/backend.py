"""The console's side of the gRPC API: one channel per service, every call made with the signed-in
person's API key, so the services' own authorisation decides what the console may show or do.

The console holds no store. A browser's request names a service and a unary method; the request
body is the method's request message in protobuf's JSON form, and the answer is the response
message in the same form. Streaming methods (``Upload``) are not reachable through the console.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shoal.analysis.v1 import analysis_pb2
from shoal.common.channels import Channels, ClientTls, api_key_metadata, client_tls
from shoal.common.convert import set_value
from shoal.common.errors import ConfigurationError
from shoal.common.interceptors import ERROR_DETAIL_KEY
from shoal.common.settings import SERVICE_NAMES, ShoalSettings
from shoal.common.v1 import common_pb2
from shoal.ingest.v1 import ingest_pb2
from shoal.labeling_bridge.v1 import labeling_bridge_pb2
from shoal.sampler.v1 import sampler_pb2

log = logging.getLogger(__name__)

_DESCRIPTORS: dict[str, ServiceDescriptor] = {
    "ingest": ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
    "analysis": analysis_pb2.DESCRIPTOR.services_by_name["AnalysisService"],
    "sampler": sampler_pb2.DESCRIPTOR.services_by_name["SamplerService"],
    "labeling_bridge": labeling_bridge_pb2.DESCRIPTOR.services_by_name["LabelingBridgeService"],
}

#: the longest a call made for a page may take; the services stop their work when it passes
DEFAULT_TIMEOUT_SECONDS = 60.0

#: gRPC status -> the HTTP status the console answers with
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


@dataclass(frozen=True)
class CallError(Exception):
    """A call that did not succeed, as the browser is told about it: never a traceback."""

    http_status: int
    code: str
    message: str
    service: str
    field: str = ""

    def body(self) -> dict[str, str]:
        out = {"error": self.message, "code": self.code, "service": self.service}
        if self.field:
            out["field"] = self.field
        return out


@dataclass(frozen=True)
class Method:
    service: str
    name: str
    path: str
    request: type[Message]
    response: type[Message]


def _methods() -> dict[tuple[str, str], Method]:
    out = {}
    for service, desc in _DESCRIPTORS.items():
        m: MethodDescriptor
        for m in desc.methods:
            if m.client_streaming or m.server_streaming:
                continue
            request, response = GetMessageClass(m.input_type), GetMessageClass(m.output_type)
            out[(service, m.name)] = Method(service, m.name, f"/{desc.full_name}/{m.name}", request, response)
    return out


METHODS = _methods()


def to_json(message: Message) -> dict[str, Any]:
    """``message`` in protobuf's JSON form (proto field names), as the browser reads it."""
    fast = _FAST_JSON.get(message.DESCRIPTOR.full_name)
    if fast is not None:
        return fast(message)
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _map_viewport(resp: Any) -> dict[str, Any]:
    """GetMapViewport's answer, up to 100,000 points, as columns (``point_columns``) instead of one JSON
    object per point: each field's values in one list (None where a point has none), and the coordinates as
    base64 of little-endian float32 (the points' own precision). 20,000 points are about 0.6 MB instead of
    2 MB, written, compressed and parsed several times faster; ``map.js`` reads them. A field no point has
    is left out. MAP_POINT_FIELDS lists the fields it knows; a test fails when MapPoint gains another."""
    head = analysis_pb2.GetMapViewportResponse(summary=resp.summary, total_in_viewport=resp.total_in_viewport)
    out = json_format.MessageToDict(head, preserving_proto_field_name=True)
    if resp.points_arrow:  # asked with arrow (as map.js asks): the columns are there already
        out["point_columns"] = _arrow_point_columns(resp.points_arrow)
        return out
    points = resp.points
    n = len(points)
    columns: dict[str, Any] = {"frame_id": [p.frame_id for p in points]}
    for axis in ("x", "y"):
        values = np.fromiter((getattr(p, axis) for p in points), dtype="<f4", count=n)
        columns[axis] = base64.b64encode(values.tobytes()).decode()
    columns["split"] = [p.split for p in points]
    for name in ("label_class", "predicted_class", "correct", "self_confidence"):
        values = [getattr(p, name) if p.HasField(name) else None for p in points]
        if any(v is not None for v in values):
            columns[name] = values
    if any(p.label_issue for p in points):
        columns["label_issue"] = [p.label_issue for p in points]
    if any(p.HasField("metadata_value") for p in points):
        columns["metadata_value"] = [
            json_format.MessageToDict(p.metadata_value, preserving_proto_field_name=True)
            if p.HasField("metadata_value") else None
            for p in points
        ]  # fmt: skip
    out["point_columns"] = columns
    return out


def _arrow_point_columns(stream: bytes) -> dict[str, Any]:
    """``point_columns`` of a viewport answered as an Arrow table (GetMapViewportResponse.points_arrow): the
    same as of its points, without a Python object per point but for metadata values."""
    table = pa.ipc.open_stream(stream).read_all()
    columns: dict[str, Any] = {"frame_id": table.column("frame_id").to_pylist()}
    for axis in ("x", "y"):
        values = table.column(axis).to_numpy().astype("<f4", copy=False)
        columns[axis] = base64.b64encode(values.tobytes()).decode()
    columns["split"] = table.column("split").to_pylist()
    for name in ("label_class", "predicted_class", "correct", "self_confidence"):
        column = table.column(name)
        if column.null_count < len(column):
            columns[name] = column.to_pylist()
    if pc.any(table.column("label_issue")).as_py():
        columns["label_issue"] = table.column("label_issue").to_pylist()
    if "meta_kind" in table.column_names:
        kinds = table.column("meta_kind").to_pylist()
        if any(kinds):
            values = {k: table.column(f"meta_{k}").to_pylist() for k in {k for k in kinds if k}}
            columns["metadata_value"] = [_metadata_json(k, values[k][i]) if k else None for i, k in enumerate(kinds)]
    return columns


def _metadata_json(kind: str, value: Any) -> dict[str, Any]:
    """A metadata value in protobuf's JSON form of ``Value``."""
    v = common_pb2.Value()
    set_value(v, kind, value)
    return json_format.MessageToDict(v, preserving_proto_field_name=True)


#: the fields of MapPoint and GetMapViewportResponse that _map_point and _map_viewport write
MAP_POINT_FIELDS = frozenset(
    {
        "frame_id",
        "x",
        "y",
        "label_class",
        "split",
        "predicted_class",
        "correct",
        "label_issue",
        "self_confidence",
        "metadata_value",
    }
)
MAP_VIEWPORT_FIELDS = frozenset({"summary", "points", "total_in_viewport", "points_arrow"})
_FAST_JSON = {"shoal.analysis.v1.GetMapViewportResponse": _map_viewport}


class Backend:
    """Channels to the four services. ``targets`` maps a service to ``host:port``; a callable is
    read at first use (the all-in-one server knows its port only once bound)."""

    def __init__(
        self,
        targets: Mapping[str, str] | Callable[[], Mapping[str, str]],
        *,
        ca_file: Path | None = None,
        server_name: str = "",
        client_cert: tuple[Path, Path] | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._targets_of = targets if callable(targets) else (lambda: targets)
        self._targets: dict[str, str] | None = None
        self._channels = Channels(
            ClientTls(ca_file=ca_file, server_name=server_name, client_cert=client_cert),
            max_message_bytes=max_message_bytes,
        )
        self._ready_at = 0.0
        self._ready: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: ShoalSettings, local_port: Callable[[], int | None] | None = None) -> Backend:
        """The targets of ``settings``; with ``local_port`` (the all-in-one server), this process's
        own port for every service not named in console_service_targets."""
        tls = client_tls(settings, local=local_port is not None)

        def targets() -> dict[str, str]:
            fallback = settings.console_grpc_target
            if local_port is not None and not fallback:
                port = local_port()
                if port is None:
                    raise ConfigurationError("the console started before the gRPC server was bound")
                fallback = f"127.0.0.1:{port}"
            out = {name: settings.console_service_targets.get(name, fallback) for name in SERVICE_NAMES}
            missing = [name for name, target in out.items() if not target]
            if missing:
                raise ConfigurationError(
                    "the console needs to know where the services are: set SHOAL_CONSOLE_GRPC_TARGET=host:port "
                    f"or SHOAL_CONSOLE_SERVICE_TARGETS (missing: {', '.join(missing)})"
                )
            return out

        unknown = sorted(set(settings.console_service_targets) - set(SERVICE_NAMES))
        if unknown:
            raise ConfigurationError(
                f"SHOAL_CONSOLE_SERVICE_TARGETS names {', '.join(unknown)}; the services are {', '.join(SERVICE_NAMES)}"
            )
        return cls(
            targets,
            ca_file=tls.ca_file,
            server_name=tls.server_name,
            client_cert=tls.client_cert,
            max_message_bytes=settings.max_message_bytes,
        )

    def targets(self) -> dict[str, str]:
        if self._targets is None:
            self._targets = dict(self._targets_of())
        return self._targets

    def channel(self, service: str) -> grpc.Channel:
        return self._channels.get(self.targets()[service])

    def call(
        self, service: str, method: str, body: Mapping[str, Any], api_key: str, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Calls ``service.method`` with ``body`` (JSON form of its request) as the key's holder."""
        return to_json(self.call_message(service, method, body, api_key, timeout=timeout))

    def call_message(
        self,
        service: str,
        method: str,
        body: Mapping[str, Any] | Message,
        api_key: str,
        *,
        timeout: float | None = None,
    ) -> Message:
        m = METHODS.get((service, method))
        if m is None:
            raise CallError(404, "NOT_FOUND", f"{service}.{method} is no method the console can call", service)
        if isinstance(body, Message):
            request = body
        else:
            try:
                request = json_format.ParseDict(dict(body), m.request(), ignore_unknown_fields=False)
            except json_format.ParseError as exc:
                raise CallError(400, "INVALID_ARGUMENT", f"{m.request.DESCRIPTOR.name}: {exc}", service) from exc
        stub = self.channel(service).unary_unary(
            m.path, request_serializer=m.request.SerializeToString, response_deserializer=m.response.FromString
        )
        try:
            return stub(request, timeout=timeout or DEFAULT_TIMEOUT_SECONDS, metadata=api_key_metadata(api_key))
        except grpc.RpcError as err:
            raise _call_error(service, err) from None

    def ready(self, cache_seconds: float = 2.0) -> dict[str, str]:
        """Each service's health status (SERVING, NOT_SERVING, UNAVAILABLE), cached briefly."""
        now = time.monotonic()
        if now - self._ready_at < cache_seconds and self._ready:
            return dict(self._ready)
        out = {}
        for service in SERVICE_NAMES:
            full = _DESCRIPTORS[service].full_name
            try:
                resp = health_pb2_grpc.HealthStub(self.channel(service)).Check(
                    health_pb2.HealthCheckRequest(service=full), timeout=2.0
                )
                out[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            except grpc.RpcError as err:
                out[service] = "UNAVAILABLE" if err.code() != grpc.StatusCode.NOT_FOUND else "SERVICE_UNKNOWN"
            except ConfigurationError:
                out[service] = "UNAVAILABLE"
        self._ready, self._ready_at = out, now
        return dict(out)

    def close(self) -> None:
        self._channels.close()


def _call_error(service: str, err: grpc.RpcError) -> CallError:
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else "") or ""
    field = ""
    for key, value in (err.trailing_metadata() or ()) if hasattr(err, "trailing_metadata") else ():
        if key == ERROR_DETAIL_KEY:
            field = common_pb2.ErrorDetail.FromString(value).field
    if code == grpc.StatusCode.UNAVAILABLE:
        log.warning("the %s service is unavailable: %s", service, details)
        details = f"the {service} service cannot be reached right now; try again, or ask an operator to check it"
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        details = f"your API key was refused ({details}); sign in again"
    return CallError(HTTP_STATUS.get(code, 502), code.name, details, service, field)
