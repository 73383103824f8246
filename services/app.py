"""Composes services into a server: all four in one process (``shoal serve``), or one
(``shoal serve --service NAME``). The services stay separate: each is built by its own factory
and only shares the process, the port and the stores."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from shoal.common.errors import ConfigurationError
from shoal.common.server import ServiceSpec, ShoalServer
from shoal.common.settings import SERVICE_NAMES, ShoalSettings
from shoal.common.stores import Stores, open_stores

log = logging.getLogger(__name__)

#: a service's create_service(settings, stores); the labeling bridge's also takes where its peers run
Factory = Callable[..., ServiceSpec]


def factories() -> dict[str, Factory]:
    from shoal.analysis.service import create_service as analysis
    from shoal.ingest.service import create_service as ingest
    from shoal.labeling_bridge.service import create_service as labeling_bridge
    from shoal.sampler.service import create_service as sampler

    return {"ingest": ingest, "analysis": analysis, "sampler": sampler, "labeling_bridge": labeling_bridge}


def check_external_stores(settings: ShoalSettings, service: str) -> None:
    """A single service runs as a pod would: against stores named explicitly, never the embedded
    defaults under data_dir (those cannot be shared between processes)."""
    missing = []
    if not settings.metrics_url:
        missing.append("SHOAL_METRICS_URL=http(s)://clickhouse:8123")
    if not settings.vectors_url:
        missing.append("SHOAL_VECTORS_URL=http(s)://milvus:19530")
    if not settings.kafka_bootstrap_servers:
        missing.append("SHOAL_KAFKA_BOOTSTRAP_SERVERS=kafka:9092")
    if missing:
        raise ConfigurationError(
            f"`shoal serve --service {service}` runs against external servers; set "
            + ", ".join(missing)
            + " (or run `shoal serve` without --service for the embedded all-in-one mode)"
        )


def build_server(
    settings: ShoalSettings,
    services: Sequence[str] = SERVICE_NAMES,
    stores: Stores | None = None,
    *,
    console: bool = False,
) -> ShoalServer:
    """The server of ``services``; with ``console``, the web console beside them on its own HTTP
    port (``console_port``), calling them on this server's gRPC port."""
    known = factories()
    for name in services:
        if name not in known:
            raise ConfigurationError(f"unknown service {name!r}; choose from {', '.join(SERVICE_NAMES)}")
    stores = stores if stores is not None else open_stores(settings)

    def spec(name: str) -> ServiceSpec:
        if name == "labeling_bridge":  # reaches analysis and the sampler on this server's port when they run here
            return known[name](settings, stores, local_services=services, local_port=lambda: server.port)
        return known[name](settings, stores)

    specs = [spec(name) for name in services]
    server = ShoalServer(settings, specs, stores)
    if console and settings.tls_client_ca_file is not None and settings.console_grpc_client_cert_file is None:
        log.warning(
            "the console is not served: the services require client certificates (SHOAL_TLS_CLIENT_CA_FILE); "
            "give the console one with SHOAL_CONSOLE_GRPC_CLIENT_CERT_FILE and SHOAL_CONSOLE_GRPC_CLIENT_KEY_FILE"
        )
    elif console:
        from shoal.console.server import ConsoleServer

        server.companions.append(ConsoleServer.from_settings(settings, local_port=lambda: server.port))
    return server
