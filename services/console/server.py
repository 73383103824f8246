"""Runs the console's HTTP server: beside the services in ``shoal serve``, or on its own with
``shoal serve --service console``."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

from shoal.common.errors import ConfigurationError
from shoal.common.server import serve_until_signal
from shoal.common.settings import ShoalSettings
from shoal.console.backend import Backend
from shoal.console.web import create_app

log = logging.getLogger(__name__)


class ConsoleServer:
    """The console's uvicorn server on its own thread. ``start()`` binds (so the port is known at
    once, also when 0 asked for a free one) and serves; ``stop()`` ends it."""

    name = "console"

    def __init__(self, settings: ShoalSettings, backend: Backend) -> None:
        self.settings = settings
        self.backend = backend
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls, settings: ShoalSettings, local_port: Callable[[], int | None] | None = None
    ) -> ConsoleServer:
        return cls(settings, Backend.from_settings(settings, local_port))

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.tls_enabled else "http"
        host = self.settings.host if self.settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> int:
        host = self.settings.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named, so the event loop turns Nagle's algorithm off on each connection: otherwise
        # every answer on a reused connection waits ~40 ms for the browser's delayed acknowledgement
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((host, self.settings.console_port))
        except OSError as exc:
            sock.close()
            raise ConfigurationError(
                f"the console cannot listen on {host}:{self.settings.console_port} ({exc.strerror}); "
                "choose another port with --console-port or SHOAL_CONSOLE_PORT"
            ) from exc
        sock.listen(128)
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]
        tls: dict[str, Any] = {}
        if self.settings.tls_enabled:
            tls = {"ssl_certfile": str(self.settings.tls_cert_file), "ssl_keyfile": str(self.settings.tls_key_file)}
        config = uvicorn.Config(
            create_app(self.settings, self.backend),
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=5,
            **tls,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="console", daemon=True)
        self._thread.start()
        log.info("console on %s", self.url)
        return self.port

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_seconds: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_seconds)
        self.backend.close()


def serve_console(settings: ShoalSettings) -> None:
    """``shoal serve --service console``: only the console, until SIGTERM or SIGINT."""
    server = ConsoleServer.from_settings(settings)
    server.backend.targets()  # a missing target stops the process at start, with what to set
    serve_until_signal(server.start, server.stop, stop_limit_seconds=settings.grace_seconds + 10)
