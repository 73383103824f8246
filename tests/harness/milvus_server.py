"""Run a real Milvus standalone server for integration tests, from the ``milvus`` wheel on PyPI
(it carries the server binary and starts it on local ports)."""

from __future__ import annotations

import logging
import pathlib
import socket
import time
import urllib.request

from tests.harness._proc import LaunchLog
from tests.harness._wait import WaitFailed, process_exit, scaled, tree_cpu_seconds, wait_until

log = logging.getLogger(__name__)

ETCD_PEER_PORT = 2380


def _healthy(health_port: int, proxy_port: int) -> bool:
    """/healthz says OK and the proxy accepts connections."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=scaled(2)) as response:
            if b"OK" not in response.read():
                return False
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=scaled(2)):
            return True
    except (OSError, ValueError):
        return False


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
        """Start the server on a free port and wait until its /healthz answers OK.

        The wait ends early when the server exits or stops making progress (no output and no CPU time for a
        third of ``timeout``); ``timeout`` is a last resort. Both are multiplied by ``SHOAL_TEST_WAIT_SCALE``.

        Raises:
            RuntimeError: the package is missing, the etcd port is taken, or the server exited, stalled or
                did not answer within the bound; the message quotes the end of its log.
        """
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
        logs = [self.work_dir / "logs" / f"milvus-{name}.log" for name in ("stdout", "stderr")]
        process = server.server_proc

        def tail() -> str:
            return "\n".join(f"last lines of {path}:\n{LaunchLog(path, tail_lines=30).tail()}" for path in logs)

        try:
            wait_until(
                lambda: _healthy(server.webservice_port, self.port),
                what=f"the Milvus server on {self.uri} to answer /healthz",
                bound=timeout,
                dead=process_exit(process, "the Milvus server", tail),
                progress=lambda: (sum(LaunchLog(path).size() for path in logs), int(tree_cpu_seconds(process.pid))),
                stall=timeout / 3,
                interval=0.1,
                max_interval=0.5,
            )
        except WaitFailed as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n{tail()}") from None
        log.info("Milvus server started on %s in %.1fs (data in %s)", self.uri, time.monotonic() - t0, self.work_dir)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            log.info("Milvus server on port %d stopped", self.port)
