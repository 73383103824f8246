"""Prometheus metrics and the request context of a Shoal process.

The metrics are process-wide, like loggers: every server, consumer and job runner of the process
records into the one registry that :class:`MetricsHttpServer` serves on ``SHOAL_METRICS_PORT``
(``/metrics``, plain HTTP, the Prometheus text format). Their names and labels are listed in
docs/reference/metrics.md (``make docs``); labels never carry a project, dataset or frame, so the number of
series stays bounded whatever the data.

The request context is a :mod:`contextvars` variable set for the duration of each RPC by the
outermost server interceptor: the request id (the caller's ``x-request-id`` or a new one) and
the method. Logs carry it (:mod:`shoal.common.logs`) and so does the RPC's trailing metadata.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# -- the request context -----------------------------------------------------------------------


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    #: full gRPC method, e.g. /shoal.ingest.v1.IngestService/Upload
    method: str
    #: ``time.monotonic()`` at which the caller's deadline passes; None: the caller set none
    deadline: float | None = None
    #: False once the caller cancelled or went away (``grpc.ServicerContext.is_active``)
    active: Callable[[], bool] | None = None

    def remaining(self) -> float | None:
        """Seconds until the caller's deadline (negative once passed); None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check(self, what: str = "") -> None:
        """Raises :class:`~shoal.common.errors.DeadlineExceeded` once the caller's deadline has
        passed and :class:`~shoal.common.errors.Cancelled` once the caller cancelled, so that work
        for a caller who no longer waits stops at the next check."""
        from shoal.common.errors import Cancelled, DeadlineExceeded

        doing = f" while {what}" if what else ""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise DeadlineExceeded(f"the caller's deadline passed{doing}; the work was stopped")
        if self.active is not None and not self.active():
            raise Cancelled(f"the caller cancelled{doing}; the work was stopped")


_request: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("shoal_request", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request() -> RequestContext | None:
    """The RPC this thread is serving, if any."""
    return _request.get()


def set_request(ctx: RequestContext | None) -> contextvars.Token[RequestContext | None]:
    return _request.set(ctx)


def check_request(what: str = "") -> None:
    """:meth:`RequestContext.check` of the RPC this thread serves; nothing outside an RPC (jobs
    have their own cancellation)."""
    ctx = _request.get()
    if ctx is not None:
        ctx.check(what)


def reset_request(token: contextvars.Token[RequestContext | None]) -> None:
    try:
        _request.reset(token)
    except ValueError:  # a generator resumed in another context: leave that context clean
        _request.set(None)


# -- the metrics ---------------------------------------------------------------------------------

#: latency buckets of RPCs, in seconds: from a cached lookup to a long streaming upload
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: duration buckets of jobs, in seconds: from a second to half a day
JOB_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0)

RPC_STARTED = Counter(
    "shoal_grpc_server_started_total",
    "RPCs started on the server, by service and method.",
    ["grpc_service", "grpc_method", "grpc_type"],
)
RPC_HANDLED = Counter(
    "shoal_grpc_server_handled_total",
    "RPCs completed on the server, by service, method and status code.",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
RPC_SECONDS = Histogram(
    "shoal_grpc_server_handling_seconds",
    "Time from the start of an RPC to its status (streams: until the last message), by method and status code.",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
    buckets=RPC_BUCKETS,
)
RPC_IN_FLIGHT = Gauge(
    "shoal_grpc_server_in_flight",
    "RPCs being served right now, by service.",
    ["grpc_service"],
)
ROWS_WRITTEN = Counter(
    "shoal_ingest_rows_written_total",
    "Rows the ingest consumers wrote, by ClickHouse table.",
    ["table"],
)
VECTORS_WRITTEN = Counter(
    "shoal_ingest_vectors_written_total",
    "Embedding vectors the ingest consumers upserted into Milvus.",
)
DEAD_LETTERS = Counter(
    "shoal_ingest_dead_letters_total",
    "Upload events (or their rejected parts) sent to the dead-letter topic.",
)
EVENTS_CONSUMED = Counter(
    "shoal_consumer_events_total",
    "Events a consumer group handled and committed, by group and topic.",
    ["group", "topic"],
)
CONSUMER_LAG = Gauge(
    "shoal_consumer_lag",
    "Events in a partition not yet committed by the consumer group (end offset - committed offset), "
    "per partition this process holds.",
    ["group", "topic", "partition"],
)
LABELING_TASKS = Counter(
    "shoal_labeling_tasks_total",
    "Frames the labeling bridge handed to a platform, by outcome (sent, failed).",
    ["platform", "outcome"],
)
LABELING_ANNOTATIONS = Counter(
    "shoal_labeling_annotations_total",
    "Annotations the labeling bridge received, by how they were applied (synced, conflict, failed, unchanged).",
    ["platform", "outcome"],
)
JOB_SECONDS = Histogram(
    "shoal_job_duration_seconds",
    "Run time of jobs, by service, kind and outcome (succeeded, failed, cancelled, interrupted).",
    ["service", "kind", "outcome"],
    buckets=JOB_BUCKETS,
)
JOBS_RUNNING = Gauge(
    "shoal_jobs_running",
    "Jobs running right now in this process, by service.",
    ["service"],
)
KERNEL_COMPILATIONS = Counter(
    "shoal_kernel_compilations_total",
    "Kernels numba compiled in this process (not loaded from its disk cache); once the warm-up is done, each "
    "is a job that waited for a compiler.",
)
KERNELS_WARM = Gauge(
    "shoal_kernels_warm",
    "1 once the warm-up has loaded every compiled kernel of this process's jobs (shoal_kernels_warm_seconds "
    "after start).",
)
KERNELS_WARM_SECONDS = Gauge(
    "shoal_kernels_warm_seconds",
    "How long the warm-up took to load (or compile) the compiled kernels.",
)


def split_method(method: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> (``pkg.Service``, ``Method``)."""
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def rpc_type(request_streaming: bool, response_streaming: bool) -> str:
    if request_streaming and response_streaming:
        return "bidi_stream"
    if request_streaming:
        return "client_stream"
    if response_streaming:
        return "server_stream"
    return "unary"


def count_rows(table: str, rows: int) -> None:
    if rows:
        ROWS_WRITTEN.labels(table).inc(rows)


class LagTracker:
    """Keeps ``shoal_consumer_lag`` of the partitions one consumer holds: updated from the
    consumer's own thread (clients are not thread-safe) at most every ``every_seconds``, and the
    series of partitions it no longer holds removed."""

    def __init__(self, group: str, every_seconds: float = 10.0) -> None:
        self.group = group
        self.every_seconds = every_seconds
        self._last = float("-inf")
        self._series: set[tuple[str, str]] = set()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_seconds

    def update(self, end_offsets: Mapping[Any, int], committed: Mapping[Any, int | None]) -> None:
        """``end_offsets`` and ``committed`` are keyed by partitions with ``topic`` and
        ``partition`` attributes; a partition with no commit counts from offset 0."""
        self._last = time.monotonic()
        now: set[tuple[str, str]] = set()
        for tp, position in committed.items():
            end = end_offsets.get(tp)
            if end is None:
                continue
            key = (tp.topic, str(tp.partition))
            CONSUMER_LAG.labels(self.group, *key).set(max(0, end - (position or 0)))
            now.add(key)
        self.clear(self._series - now)
        self._series = now

    def clear(self, series: Iterable[tuple[str, str]] | None = None) -> None:
        for key in list(self._series if series is None else series):
            try:
                CONSUMER_LAG.remove(self.group, *key)
            except KeyError:
                pass
        if series is None:
            self._series = set()


# -- the endpoint --------------------------------------------------------------------------------


class MetricsHttpServer:
    """``/metrics`` over plain HTTP on its own thread."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry = REGISTRY) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.host = host
        self.port = int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(host: str, port: int) -> MetricsHttpServer:
    server = MetricsHttpServer(host, port)
    log.info("metrics on http://%s:%d/metrics", host, server.port)
    return server
