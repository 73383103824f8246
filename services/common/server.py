"""Bootstrap shared by every Shoal service: one gRPC server, standard health whose status
follows the stores, reflection, the telemetry, error and auth interceptors, TLS, message-size
limits, a Prometheus endpoint and a graceful SIGTERM.

A service contributes a :class:`ServiceSpec`; ``shoal serve`` passes all four to one
:class:`ShoalServer` (one process, one port), ``shoal serve --service NAME`` passes one.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shoal.common import auth, jobs, logs, telemetry
from shoal.common.auth import KeyStore
from shoal.common.errors import FailedPrecondition, ShoalError
from shoal.common.interceptors import (
    AuthInterceptor,
    ErrorInterceptor,
    LimitInterceptor,
    MethodPolicy,
    TelemetryInterceptor,
)
from shoal.common.jit import Warmup
from shoal.common.settings import ShoalSettings
from shoal.common.stores import Stores, disk
from shoal.common.stores.events import EmbeddedEventBus
from shoal.common.stores.metrics import EmbeddedMetricsStore, Migration
from shoal.common.stores.vectors import EmbeddedVectorStore
from shoal.common.topics import Topics

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
STORE_ROLES = ("metrics", "vectors", "events")
#: a health name that is SERVING from the moment the server runs until it stops, whatever the
#: stores: what a liveness probe asks (a store outage must not restart the pod)
LIVENESS = "liveness"


class BackgroundWorker(Protocol):
    """Something a service runs beside its RPCs (a Kafka consumer, a job runner)."""

    name: str

    def start(self) -> None: ...

    def stop(self, timeout_seconds: float) -> None:
        """Stops taking new work, finishes or abandons the current item, commits, returns."""

    def healthy(self) -> bool: ...


@dataclass
class ServiceSpec:
    """What a service brings to a server."""

    #: short name: ingest, analysis, sampler, labeling_bridge
    name: str
    #: full gRPC service name, from the descriptor
    full_name: str
    #: adds the servicer to a grpc.Server
    register: Callable[[grpc.Server], None]
    #: which stores must answer for the service to be SERVING
    stores: tuple[str, ...] = STORE_ROLES
    #: stores it also connects to without depending on them to serve its RPCs (an outage there delays its
    #: background work, e.g. a consumer, and is seen in its log and consumer lag, not in its readiness)
    also_uses: tuple[str, ...] = ()
    policy: MethodPolicy = field(default_factory=MethodPolicy)
    migrations: tuple[Migration, ...] = ()
    workers: list[BackgroundWorker] = field(default_factory=list)
    #: an extra readiness check; raise to report NOT_SERVING
    check: Callable[[], None] | None = None


class ShoalServer:
    """A gRPC server hosting one or more services. Build it, ``start()`` it, ``stop()`` it, or
    ``serve()`` until SIGTERM."""

    def __init__(self, settings: ShoalSettings, specs: Sequence[ServiceSpec], stores: Stores) -> None:
        if not specs:
            raise ValueError("a server needs at least one service")
        self.settings = settings
        self.specs = list(specs)
        self.stores = stores
        self.keys = KeyStore(stores.metrics)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.port: int | None = None
        #: the plaintext health-only port (``health_port``) and the metrics port, once started
        self.health_port: int | None = None
        self.metrics_port: int | None = None
        self._server: grpc.Server | None = None
        self._health_server: grpc.Server | None = None
        self._metrics_http: telemetry.MetricsHttpServer | None = None
        self._stop_event = threading.Event()
        self._stopped = threading.Event()
        self._monitor: threading.Thread | None = None
        self._prepared = False
        self._workers_started = False
        self._status: dict[str, int] = {}
        #: started once the gRPC port is bound, stopped first (the console of the all-in-one server)
        self.companions: list[BackgroundWorker] = []
        self._store_errors: dict[str, str] = {}
        self._lock = threading.Lock()
        for name in self._health_names():
            self.health.set(name, NOT_SERVING)

    def _health_names(self) -> list[str]:
        return ["", LIVENESS, *[s.full_name for s in self.specs]]

    # -- start ---------------------------------------------------------------------------
    def build(self) -> grpc.Server:
        """The unstarted grpc.Server with every servicer, health and reflection."""
        policy = MethodPolicy(
            admin=frozenset().union(*(s.policy.admin for s in self.specs)),
            unscoped=frozenset().union(*(s.policy.unscoped for s in self.specs)),
        )
        if self.settings.insecure_dev_mode:
            log.warning(
                "INSECURE DEVELOPMENT MODE: every call is accepted without an API key, as an administrator. "
                "Never run like this outside a laptop; unset SHOAL_INSECURE_DEV_MODE."
            )
        interceptors = [
            TelemetryInterceptor(),
            ErrorInterceptor(),
            AuthInterceptor(self.keys, policy, insecure_dev_mode=self.settings.insecure_dev_mode),
            LimitInterceptor(),
        ]
        size = self.settings.max_message_bytes
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.settings.worker_threads, thread_name_prefix="shoal-rpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=self.settings.worker_threads * 8,
        )
        for spec in self.specs:
            spec.register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [s.full_name for s in self.specs]
        names += [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, server)
        return server

    def _bind(self, server: grpc.Server) -> int:
        address = f"{self.settings.host}:{self.settings.port}"
        if self.settings.tls_enabled:
            assert self.settings.tls_cert_file and self.settings.tls_key_file
            cert = self.settings.tls_cert_file.read_bytes()
            key = self.settings.tls_key_file.read_bytes()
            ca = self.settings.tls_client_ca_file.read_bytes() if self.settings.tls_client_ca_file else None
            creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"could not bind {address}: is the port in use?")
        return port

    def _start_health_server(self, port: int) -> int:
        """A plaintext server with only the health service (the same statuses), for kubelet gRPC
        probes when the main port speaks TLS."""
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="shoal-health"),
            interceptors=[TelemetryInterceptor()],
            options=[("grpc.so_reuseport", 0)],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        bound = server.add_insecure_port(f"{self.settings.host}:{port}")
        if bound == 0:
            raise OSError(f"could not bind the health port {self.settings.host}:{port}: is it in use?")
        server.start()
        self._health_server = server
        return bound

    def start(self) -> int:
        """Binds and starts serving; returns the port. Health stays NOT_SERVING until the stores
        answer and the schema is migrated."""
        logs.install_grpc_filters()
        server = self.build()
        self.port = self._bind(server)
        if self.settings.metrics_port is not None:
            self._metrics_http = telemetry.start_metrics_server(self.settings.host, self.settings.metrics_port)
            self.metrics_port = self._metrics_http.port
        if self.settings.health_port is not None:
            self.health_port = self._start_health_server(self.settings.health_port)
            log.info("health only, plaintext, on %s:%d", self.settings.host, self.health_port)
        server.start()
        self._server = server
        for companion in self.companions:
            companion.start()
        self._set(LIVENESS, SERVING)
        log.info(
            "serving %s on %s:%d (%s)",
            ", ".join(s.full_name for s in self.specs),
            self.settings.host,
            self.port,
            "TLS" if self.settings.tls_enabled else "plaintext",
        )
        self._refresh()
        self._monitor = threading.Thread(target=self._watch, name="shoal-readiness", daemon=True)
        self._monitor.start()
        return self.port

    # -- readiness -----------------------------------------------------------------------
    def _prepare(self) -> None:
        """Once the stores answer: schema migrations, topics, the bootstrap admin key."""
        if self._prepared:
            return
        every = [*auth.MIGRATIONS, *jobs.MIGRATIONS, *(m for s in self.specs for m in s.migrations)]
        # services that share tables declare the same migration; it is applied once
        migrations = list({(m.component, m.version): m for m in every}.values())
        self.stores.metrics.migrate(migrations)
        if any("events" in (*s.stores, *s.also_uses) for s in self.specs):
            topics = Topics(self.settings.topic_prefix)
            self.stores.events.ensure_topics(
                topics.specs(
                    self.settings.topic_partitions,
                    self.settings.topic_replication_factor,
                    retention_hours=self.settings.topic_retention_hours,
                    dead_letter_retention_hours=self.settings.dead_letter_retention_hours,
                )
            )
        if self.settings.admin_api_key is not None:
            self._register_admin_key(self.settings.admin_api_key.get_secret_value())
        self._prepared = True

    def _register_admin_key(self, key: str) -> None:
        """Registers SHOAL_ADMIN_API_KEY, unless it was revoked: a revoked key stays revoked."""
        try:
            key_id = self.keys.ensure(key, [auth.ADMIN_SCOPE], description="SHOAL_ADMIN_API_KEY")
        except FailedPrecondition:
            log.error(
                "SHOAL_ADMIN_API_KEY holds API key %s, which was revoked: it stays revoked and is not registered. "
                "Rotate the Secret: put a new key in SHOAL_ADMIN_API_KEY (%s) and restart.",
                auth.parse_key(key),
                "shoal_<16 lowercase hex>_<secret>",
            )
            return
        log.info("administrator key %s from SHOAL_ADMIN_API_KEY is registered", key_id)

    def _check_stores(self) -> dict[str, str]:
        """The stores that cannot serve, with why: each must answer, and an embedded one's disk must
        be writable with at least SHOAL_MIN_FREE_DISK_MB free (a server store owns its disk)."""
        errors = {}
        needed = {role for s in self.specs for role in s.stores}
        min_free = self.settings.min_free_disk_mb * 2**20
        for role in STORE_ROLES:
            if role not in needed:
                continue
            store = getattr(self.stores, role)
            try:
                store.ping()
                path = _embedded_path(store)
                if path is not None:
                    disk.check_writable(path, store=role, min_free_bytes=min_free)
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                errors[role] = str(exc) if isinstance(exc, ShoalError) else f"{type(exc).__name__}: {exc}"
        return errors

    def _refresh(self) -> None:
        if self._stop_event.is_set():
            return
        errors = self._check_stores()
        if not errors:
            try:
                self._prepare()
            except Exception as exc:  # noqa: BLE001
                errors["metrics"] = f"preparing stores failed: {exc}"
        if not errors and self._prepared and not self._workers_started:
            for spec in self.specs:
                for worker in spec.workers:
                    worker.start()
            self._workers_started = True
        for role in STORE_ROLES:
            old, new = self._store_errors.get(role), errors.get(role)
            if new and new != old:
                log.warning("%s store is not ready: %s", role, new)
            elif old and not new:
                log.info("%s store is ready again", role)
        self._store_errors = errors
        statuses = {}
        for spec in self.specs:
            ok = self._prepared and not any(role in errors for role in spec.stores)
            if ok and spec.check is not None:
                try:
                    spec.check()
                except Exception as exc:  # noqa: BLE001
                    ok = False
                    log.warning("%s is not ready: %s", spec.name, exc)
            if ok and self._workers_started:
                ok = all(w.healthy() for w in spec.workers)
            statuses[spec.full_name] = SERVING if ok else NOT_SERVING
        # every service's status known first (a check may take seconds), then the server's set before any service's
        # goes down and after every one's came up: no client sees a service down with the server up
        all_ok = all(status == SERVING for status in statuses.values())
        if not all_ok:
            self._set("", NOT_SERVING)
        for name, status in statuses.items():
            self._set(name, status)
        if all_ok:
            self._set("", SERVING)

    def _set(self, name: str, status: int) -> None:
        with self._lock:
            if self._stop_event.is_set():
                return
            if self._status.get(name) != status:
                log.info("health %s: %s", name or "(server)", health_pb2.HealthCheckResponse.ServingStatus.Name(status))
                self._status[name] = status
                self.health.set(name, status)

    def _watch(self) -> None:
        while not self._stop_event.wait(self.settings.readiness_interval_seconds):
            try:
                self._refresh()
            except Exception:
                log.exception("readiness check failed")

    def status(self) -> dict[str, str]:
        with self._lock:
            return {k: health_pb2.HealthCheckResponse.ServingStatus.Name(v) for k, v in self._status.items()}

    # -- stop ----------------------------------------------------------------------------
    def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first, a drain pause, then stop the workers, then the server with a
        grace period, then close the stores. Safe to call twice."""
        if self._stop_event.is_set():
            self._stopped.wait()
            return
        grace = self.settings.grace_seconds if grace is None else grace
        with self._lock:
            self._stop_event.set()
            self.health.enter_graceful_shutdown()
        log.info("shutting down: health is NOT_SERVING; draining for %.1fs", self.settings.drain_seconds)
        time.sleep(self.settings.drain_seconds)
        for companion in self.companions:
            try:
                companion.stop(timeout_seconds=grace)
            except Exception:
                log.exception("stopping %s failed", companion.name)
        for spec in self.specs:
            for worker in spec.workers:
                try:
                    worker.stop(timeout_seconds=grace)
                except Exception:
                    log.exception("stopping worker %s failed", worker.name)
        if self._server is not None:
            log.info("stopping the gRPC server (grace %.1fs)", grace)
            self._server.stop(grace).wait()
        if self._health_server is not None:
            self._health_server.stop(0).wait()
        if self._metrics_http is not None:
            self._metrics_http.close()
        self.stores.close()
        log.info("stopped")
        self._stopped.set()

    def serve(self) -> None:
        """Starts, then blocks until SIGTERM or SIGINT and stops gracefully. If a store or worker
        hangs on the way out, the process still ends: the kubelet would SIGKILL it at
        terminationGracePeriodSeconds anyway."""
        limit = self.settings.drain_seconds + 2 * self.settings.grace_seconds + 10
        serve_until_signal(self.start, self.stop, stop_limit_seconds=limit)
        if any(isinstance(w, Warmup) and w.busy() for s in self.specs for w in s.workers):
            # everything is stopped and closed; only the warm-up's compilation runs on
            log.info("stopped while the kernel warm-up is still compiling: the process ends without waiting for it")
            _exit_now(0)


def serve_until_signal(start: Callable[[], object], stop: Callable[[], object], *, stop_limit_seconds: float) -> None:
    """Runs ``start``, waits for SIGTERM or SIGINT, then runs ``stop``; if stopping takes longer
    than ``stop_limit_seconds`` the process exits anyway."""
    received = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        received.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        start()
        received.wait()
    finally:
        watchdog = threading.Timer(stop_limit_seconds, _force_exit, args=(stop_limit_seconds,))
        watchdog.daemon = True
        watchdog.start()
        stop()
        watchdog.cancel()
        for s, handler in previous.items():
            signal.signal(s, handler)


def _embedded_path(store: object) -> Path | None:
    """Where an embedded store keeps its files; None for a server store or the in-memory bus."""
    if isinstance(store, (EmbeddedMetricsStore, EmbeddedVectorStore)):
        return store.path
    if isinstance(store, EmbeddedEventBus):
        return store.directory
    return None


def _force_exit(limit: float) -> None:
    log.error("shutdown did not finish within %.0fs; exiting now", limit)
    _exit_now(1)


def _exit_now(code: int) -> None:
    """Ends the process at once, its logs and output flushed, without finalizing the interpreter."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
