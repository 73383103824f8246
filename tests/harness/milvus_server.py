"""Run a real Milvus standalone server for integration tests, from the ``milvus`` wheel on PyPI
(it carries the server binary and starts it on local ports)."""

from __future__ import annotations

import logging
import pathlib
import socket
import time

log = logging.getLogger(__name__)

ETCD_PEER_PORT = 2380


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MilvusTestServer:
    def __init__(self, *, work_dir: pathlib.Path) -> None:
        self.work_dir = work_dir
        self._server = None
        self.port = 0

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> None:
        try:
            from milvus import MilvusServer, MilvusServerConfig
        except ImportError as exc:
            raise RuntimeError(
                "the `milvus` package is not installed: `pip install -e .[dev]` (make test does this)"
            ) from exc
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # The server's embedded etcd listens on the fixed peer port 2380: one such server per
        # machine at a time.
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", ETCD_PEER_PORT)) == 0:
                raise RuntimeError(
                    f"port {ETCD_PEER_PORT} is taken (another Milvus standalone server or etcd is running on "
                    "this machine); stop it: the embedded etcd of the Milvus server needs that port"
                )
        self.port = free_port()
        config = MilvusServerConfig(data_dir=str(self.work_dir), proxy_port=self.port)
        server = MilvusServer(config, wait_for_started=False)
        t0 = time.monotonic()
        server.start()
        self._server = server
        try:
            server.wait_started(timeout=int(timeout * 1000))
        except Exception as exc:
            logs = self.work_dir / "logs" / "milvus-stderr.log"
            tail = logs.read_text(errors="replace").splitlines()[-30:] if logs.exists() else []
            self.stop()
            raise RuntimeError(
                f"the Milvus server did not start within {timeout:.0f}s ({exc}); last lines of {logs}:\n"
                + "\n".join(tail)
            ) from exc
        log.info("Milvus server started on %s in %.1fs (data in %s)", self.uri, time.monotonic() - t0, self.work_dir)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            log.info("Milvus server on port %d stopped", self.port)
