"""The four server interceptors every Shoal service runs, outermost first:

1. :class:`TelemetryInterceptor` gives each RPC a request id (the caller's ``x-request-id`` or a
   new one) that logs carry and the trailing metadata returns, and records the RPC's count and
   latency by method and status code.
2. :class:`ErrorInterceptor` turns a typed :class:`~shoal.common.errors.ShoalError` into its
   status code, message and ``shoal-error-bin`` detail; anything else becomes INTERNAL with a
   generic message and the request id, and the traceback goes to the log.
3. :class:`AuthInterceptor` authenticates the API key and checks the project the request names.
4. :class:`LimitInterceptor` refuses a request any of whose strings or lists is longer than its
   limit (:mod:`shoal.common.limits`), before the servicer does any work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from shoal.common import limits, telemetry
from shoal.common.auth import DEV_PRINCIPAL, KeyStore, Principal, reset_principal, set_principal
from shoal.common.errors import (
    Datapoint,
    InternalError,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    ShoalError,
    Unauthenticated,
    Unavailable,
)
from shoal.common.telemetry import RequestContext
from shoal.common.v1 import common_pb2

log = logging.getLogger(__name__)

ERROR_DETAIL_KEY = "shoal-error-bin"
REQUEST_ID_KEY = "x-request-id"
#: the longest caller-chosen request id taken as is; a longer one is replaced
MAX_REQUEST_ID_LENGTH = 128
#: a remaining time longer than this (a year) means the caller set no deadline
_NO_DEADLINE = 365 * 24 * 3600.0

# Services reachable without a key: health checks and reflection (grpcurl, kubelet probes).
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


def _wrap(
    handler: grpc.RpcMethodHandler, wrapper: Callable[[Callable[..., Any], bool, bool], Callable[..., Any]]
) -> grpc.RpcMethodHandler:
    """A copy of ``handler`` whose behaviour is ``wrapper(behaviour, request_streaming, response_streaming)``."""
    rq, rs = handler.request_streaming, handler.response_streaming
    if rq and rs:
        return grpc.stream_stream_rpc_method_handler(
            wrapper(handler.stream_stream, rq, rs), handler.request_deserializer, handler.response_serializer
        )
    if rq:
        return grpc.stream_unary_rpc_method_handler(
            wrapper(handler.stream_unary, rq, rs), handler.request_deserializer, handler.response_serializer
        )
    if rs:
        return grpc.unary_stream_rpc_method_handler(
            wrapper(handler.unary_stream, rq, rs), handler.request_deserializer, handler.response_serializer
        )
    return grpc.unary_unary_rpc_method_handler(
        wrapper(handler.unary_unary, rq, rs), handler.request_deserializer, handler.response_serializer
    )


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


#: the longest status message and error-detail text sent back: the trailers that carry them stay
#: far below the 8-16 KiB clients accept, whatever the error quotes
MAX_STATUS_MESSAGE = 2048
_MAX_DETAIL_PART = 512


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 20]}… ({len(text)} characters)"


def error_detail(exc: ShoalError) -> common_pb2.ErrorDetail:
    detail = common_pb2.ErrorDetail(
        reason=exc.reason, field=_cut(exc.field, _MAX_DETAIL_PART), message=_cut(exc.message, MAX_STATUS_MESSAGE)
    )
    if exc.datapoint is not None:
        dp: Datapoint = exc.datapoint
        detail.datapoint.dataset = _cut(dp.dataset, _MAX_DETAIL_PART)
        detail.datapoint.frame_id = _cut(dp.frame_id, _MAX_DETAIL_PART)
        detail.datapoint.object_id = _cut(dp.object_id, _MAX_DETAIL_PART)
    return detail


class ErrorInterceptor(grpc.ServerInterceptor):
    """Maps exceptions to status codes, in one place."""

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        def wrapper(behaviour: Callable[..., Any], _rq: bool, rs: bool) -> Callable[..., Any]:
            if rs:

                def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                    try:
                        yield from behaviour(request, context)
                    except Exception as exc:  # noqa: BLE001 - this is the one place that maps them
                        self._abort(exc, context, method)

                return streaming

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    return behaviour(request, context)
                except Exception as exc:  # noqa: BLE001
                    self._abort(exc, context, method)

            return unary

        return _wrap(handler, wrapper)

    @staticmethod
    def _abort(exc: Exception, context: grpc.ServicerContext, method: str) -> None:
        # Servicers never call context.abort(): they raise, and this is where it is turned into
        # a status.
        if isinstance(exc, MemoryError):
            log.warning("%s ran out of memory: %s", method, exc)
            exc = ResourceExhausted(
                "the request needs more memory than the server can give it; narrow it (a filter, fewer classes, "
                "a smaller page) or run it as a job"
            )
        if not isinstance(exc, ShoalError):
            request = telemetry.current_request()
            request_id = request.request_id if request else _request_id(context)
            log.error("%s failed (request %s)", method, request_id, exc_info=exc)
            exc = InternalError(f"internal error; request id {request_id}")
        elif isinstance(exc, Unavailable):
            log.warning("%s: %s", method, exc.describe())
        # keeps what is set already (the request id) and adds the error detail
        kept = tuple((k, v) for k, v in (context.trailing_metadata() or ()) if k != ERROR_DETAIL_KEY)
        context.set_trailing_metadata((*kept, (ERROR_DETAIL_KEY, error_detail(exc).SerializeToString())))
        context.abort(exc.code, _cut(exc.describe(), MAX_STATUS_MESSAGE))


def _request_id(context: grpc.ServicerContext) -> str:
    """The caller's ``x-request-id`` when it is a sensible one, else a new id."""
    given = _metadata(context).get(REQUEST_ID_KEY, "")
    if 0 < len(given) <= MAX_REQUEST_ID_LENGTH and given.isprintable():
        return given
    return telemetry.new_request_id()


class TelemetryInterceptor(grpc.ServerInterceptor):
    """Request ids and RPC metrics. Outermost, so it sees the status the error interceptor set."""

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        service, name = telemetry.split_method(method)

        def wrapper(behaviour: Callable[..., Any], rq: bool, rs: bool) -> Callable[..., Any]:
            kind = telemetry.rpc_type(rq, rs)

            def begin(context: grpc.ServicerContext) -> tuple[RequestContext, float]:
                remaining = context.time_remaining()  # a huge number when the caller set no deadline
                deadline = None if remaining is None or remaining > _NO_DEADLINE else time.monotonic() + remaining
                ctx = RequestContext(_request_id(context), method, deadline, context.is_active)
                context.set_trailing_metadata(((REQUEST_ID_KEY, ctx.request_id),))
                telemetry.RPC_STARTED.labels(service, name, kind).inc()
                telemetry.RPC_IN_FLIGHT.labels(service).inc()
                return ctx, time.perf_counter()

            def end(ctx: RequestContext, started: float, context: grpc.ServicerContext, failed: bool) -> None:
                elapsed = time.perf_counter() - started
                code = context.code()
                if code is None:  # nothing aborted: it ended by itself, by an uncaught error or by the caller
                    if not context.is_active():
                        code = grpc.StatusCode.CANCELLED
                    elif failed:
                        code = grpc.StatusCode.UNKNOWN
                    else:
                        code = grpc.StatusCode.OK
                code_name = code.name if isinstance(code, grpc.StatusCode) else str(code)
                telemetry.RPC_IN_FLIGHT.labels(service).dec()
                telemetry.RPC_HANDLED.labels(service, name, kind, code_name).inc()
                telemetry.RPC_SECONDS.labels(service, name, kind, code_name).observe(elapsed)
                log.debug("%s %s in %.1f ms", method, code_name, elapsed * 1000,
                          extra={"request_id": ctx.request_id, "rpc": method})  # fmt: skip

            if rs:

                def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                    ctx, started = begin(context)
                    token = telemetry.set_request(ctx)
                    failed = False
                    try:
                        yield from behaviour(request, context)
                    except BaseException:
                        failed = True
                        raise
                    finally:
                        end(ctx, started, context, failed)
                        telemetry.reset_request(token)

                return streaming

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                ctx, started = begin(context)
                token = telemetry.set_request(ctx)
                failed = False
                try:
                    return behaviour(request, context)
                except BaseException:
                    failed = True
                    raise
                finally:
                    end(ctx, started, context, failed)
                    telemetry.reset_request(token)

            return unary

        return _wrap(handler, wrapper)


@dataclass(frozen=True)
class MethodPolicy:
    """How the auth interceptor treats the methods of the registered services."""

    #: full method names ("/shoal.ingest.v1.IngestService/CreateProject") that need an admin key
    admin: frozenset[str] = field(default_factory=frozenset)
    #: methods whose request names no project; the servicer filters by the caller's scopes
    unscoped: frozenset[str] = field(default_factory=frozenset)


def request_project(request: Any) -> str | None:
    """The project a request names in its top-level ``project`` field (a name, or a message
    with a ``name``), or None when the message has no such field."""
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None or "project" not in descriptor.fields_by_name:
        return None
    value = request.project
    if isinstance(value, str):
        return value
    return getattr(value, "name", None)


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates every call but health and reflection, and checks its project scope before
    the servicer runs (for client streams: every message)."""

    def __init__(self, keys: KeyStore | None, policy: MethodPolicy, *, insecure_dev_mode: bool = False) -> None:
        if keys is None and not insecure_dev_mode:
            raise ValueError("a KeyStore is needed unless insecure_dev_mode is on")
        self.keys = keys
        self.policy = policy
        self.insecure_dev_mode = insecure_dev_mode

    def _authenticate(self, context: grpc.ServicerContext) -> Principal:
        if self.insecure_dev_mode:
            return DEV_PRINCIPAL
        md = _metadata(context)
        key = md.get("x-api-key", "")
        auth = md.get("authorization", "")
        if not key and auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value:
                raise Unauthenticated("authorization metadata must be 'Bearer <API key>'")
            key = value
        if not key:
            raise Unauthenticated("missing API key: send 'authorization: Bearer <key>' or 'x-api-key: <key>'")
        assert self.keys is not None
        return self.keys.authenticate(key)

    def _check(self, method: str, principal: Principal, request: Any) -> None:
        if method in self.policy.admin:
            principal.require_admin(method.rsplit("/", 1)[-1])
            return
        if method in self.policy.unscoped:
            return
        project = request_project(request)
        if project is None:
            # A method that names no project and is not declared unscoped: refuse rather than
            # guess. tests/unit/test_api_conventions.py keeps this from happening.
            raise PermissionDenied(f"{method} declares no project scope")
        if not project:
            raise InvalidArgument("is empty: name the project", field="project")
        principal.require(project)

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        service = method.lstrip("/").split("/", 1)[0]
        if service in OPEN_SERVICES:
            return handler

        def wrapper(behaviour: Callable[..., Any], rq: bool, rs: bool) -> Callable[..., Any]:
            def call(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
                principal = self._authenticate(context)
                if rq:
                    request_or_iterator = _each_checked(
                        request_or_iterator, lambda r: self._check(method, principal, r)
                    )
                else:
                    self._check(method, principal, request_or_iterator)
                token = set_principal(principal)
                try:
                    result = behaviour(request_or_iterator, context)
                    if rs:
                        return _with_principal(result, principal)
                    return result
                finally:
                    reset_principal(token)

            return call

        return _wrap(handler, wrapper)


def _with_principal(results: Iterator[Any], principal: Principal) -> Iterator[Any]:
    token = set_principal(principal)
    try:
        yield from results
    finally:
        reset_principal(token)


class LimitInterceptor(grpc.ServerInterceptor):
    """Checks every request message (for client streams: each one) against
    :mod:`shoal.common.limits` before the servicer sees it."""

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        service = handler_call_details.method.lstrip("/").split("/", 1)[0]
        if service in OPEN_SERVICES:
            return handler

        def wrapper(behaviour: Callable[..., Any], rq: bool, _rs: bool) -> Callable[..., Any]:
            def call(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
                if rq:
                    return behaviour(_each_checked(request_or_iterator, limits.check), context)
                limits.check(request_or_iterator)
                return behaviour(request_or_iterator, context)

            return call

        return _wrap(handler, wrapper)


def _each_checked(requests: Iterator[Any], check: Callable[[Any], None]) -> Iterator[Any]:
    """The messages of a client stream, each passed to ``check`` (which raises) before the servicer sees it."""
    for request in requests:
        check(request)
        yield request
