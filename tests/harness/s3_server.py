"""Run a real S3-compatible server, S3Proxy, for the console's object-store tests.

S3Proxy serves the S3 API (path-style, AWS Signature Version 2 and 4 checked against one
identity and credential) over jclouds' ``filesystem`` provider, so buckets are folders under
``work_dir/data``. It is started from the jars that ``scripts/fetch-s3proxy.sh`` resolves from
Maven Central (see ``tests/harness/s3proxy/pom.xml``) with the machine's Java 17+::

    java -cp 'libs/*' org.gaul.s3proxy.Main --properties s3proxy.properties

Typical use::

    server = S3Server(libs_dir=default_libs_dir(repo_root), work_dir=tmp_path / "s3")
    with server:
        server.create_bucket("frames")
        server.put_object("frames", "cars/a.png", png_bytes)
        ...  # point a client at server.url with server.access_key_id / server.secret_access_key

Everything S3Proxy prints goes to ``work_dir/s3proxy.log``; startup failures raise
:class:`RuntimeError` quoting its last lines. Readiness is a signed ListBuckets answering 200, so
the server is ready when it serves authenticated requests, not only when its port is open. The
harness signs with the console's :class:`~shoal.common.objectstore.SigV4Signer` (checked against
AWS's published examples in tests/integration/test_console_s3.py), over the standard library's
http.client, so it sets up test data without a client library.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import http.client
import logging
import os
import pathlib
import secrets
import shutil
import signal
import subprocess
import time
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit

from pydantic import SecretStr

from shoal.common.objectstore import SigV4Signer, uri_encode
from tests.harness._proc import HOST, LaunchLog, free_ports, signal_group
from tests.harness._wait import tree_cpu_seconds, wait_until

__all__ = ["S3PROXY_MAIN_CLASS", "S3Server", "default_libs_dir"]

logger = logging.getLogger(__name__)

#: Main class of S3Proxy.
S3PROXY_MAIN_CLASS = "org.gaul.s3proxy.Main"
#: The region the server's SigV4 scope is checked against (S3Proxy accepts any; clients sign with this one).
REGION = "us-east-1"

JVM_OPTS: tuple[str, ...] = (
    "-Xmx256m",
    "-Xms64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)

# S3Proxy ships no logback configuration, so logback's default (everything at DEBUG) would fill the log.
_LOGBACK_XML = """\
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


def default_libs_dir(repo_root: pathlib.Path) -> pathlib.Path:
    """Where ``scripts/fetch-s3proxy.sh`` puts the S3Proxy jars:
    ``${SHOAL_CACHE_DIR:-<repo_root>/.cache}/s3proxy/libs`` (a relative ``SHOAL_CACHE_DIR`` is
    taken relative to ``repo_root``, as the script does)."""
    cache = os.environ.get("SHOAL_CACHE_DIR") or ""
    cache_dir = pathlib.Path(cache) if cache else pathlib.Path(".cache")
    if not cache_dir.is_absolute():
        cache_dir = pathlib.Path(repo_root) / cache_dir
    return cache_dir / "s3proxy" / "libs"


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(pathlib.Path(java_home) / "bin" / "java", os.X_OK):
        return str(pathlib.Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(
            "Java 17+ is required to run S3Proxy but none was found: install one (e.g. 'apt-get install "
            "openjdk-17-jre-headless'; scripts/ensure-java.sh does) and put 'java' on PATH or set JAVA_HOME"
        )
    return java


# Servers still running when the interpreter exits are killed, so that an aborted test run does not
# leave JVMs behind (they run in their own session and would not get the terminal's SIGINT).
_LIVE: set[S3Server] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):  # best effort at interpreter exit
            server.stop(timeout=5)


class S3Server:
    """S3Proxy on a free loopback port, its buckets under ``work_dir/data``, one identity.

    Files under ``work_dir``: ``s3proxy.properties``, ``logback.xml``, ``s3proxy.log`` (appended
    to across starts) and ``data/``.
    """

    def __init__(self, *, libs_dir: pathlib.Path, work_dir: pathlib.Path, java: str | None = None) -> None:
        self.libs_dir = pathlib.Path(libs_dir)
        self.work_dir = pathlib.Path(work_dir)
        self.access_key_id = "shoal-test-" + secrets.token_hex(4)
        self.secret_access_key = secrets.token_urlsafe(24)
        self._java = java
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._log = LaunchLog(self.log_file)
        self.signer = SigV4Signer(self.access_key_id, SecretStr(self.secret_access_key), REGION)
        self.startup_seconds = 0.0

    @property
    def log_file(self) -> pathlib.Path:
        return self.work_dir / "s3proxy.log"

    @property
    def data_dir(self) -> pathlib.Path:
        return self.work_dir / "data"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the endpoint clients use (path-style)."""
        if self._port is None:
            raise RuntimeError("S3Server has not been started")
        return f"http://{HOST}:{self._port}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        """Launch S3Proxy and wait until a signed ListBuckets answers 200.

        Raises:
            RuntimeError: the jars or Java are missing, or the server exited, stopped making progress
                or was not ready within ``timeout`` seconds times ``SHOAL_TEST_WAIT_SCALE`` (the
                message quotes the end of ``s3proxy.log``).
        """
        if self.is_running:
            raise RuntimeError(f"S3Proxy already running at {self.url}")
        if not self.libs_dir.is_dir() or not any(self.libs_dir.glob("s3proxy-*.jar")):
            raise RuntimeError(
                f"S3Proxy jars not found in {self.libs_dir}: run scripts/fetch-s3proxy.sh (make test does this)"
            )
        java = self._java or _find_java()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        (self._port,) = free_ports(1)
        properties = {
            "s3proxy.endpoint": self.url,
            "s3proxy.authorization": "aws-v2-or-v4",
            "s3proxy.identity": self.access_key_id,
            "s3proxy.credential": self.secret_access_key,
            "jclouds.provider": "filesystem",
            "jclouds.filesystem.basedir": str(self.data_dir.resolve()),
        }
        config = self.work_dir / "s3proxy.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in properties.items()), encoding="utf-8")
        logback = self.work_dir / "logback.xml"
        logback.write_text(_LOGBACK_XML, encoding="utf-8")
        command = [
            java,
            *JVM_OPTS,
            f"-Dlogback.configurationFile={logback.resolve()}",
            "-cp",
            str(self.libs_dir.resolve() / "*"),
            S3PROXY_MAIN_CLASS,
            "--properties",
            str(config.resolve()),
        ]
        self._log.mark()
        self._log_handle = self.log_file.open("ab")
        started = time.monotonic()
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
            start_new_session=True,  # own process group: signal the whole JVM
        )
        _LIVE.add(self)
        process = self._process

        def exited() -> str | None:
            if process.poll() is None:
                return None
            return f"S3Proxy exited with code {process.returncode} (log: {self.log_file}):\n" + self._log.tail()

        try:
            wait_until(
                lambda: self._answers(),
                what=f"S3Proxy at {self.url} to answer a signed ListBuckets",
                bound=timeout,
                dead=exited,
                progress=lambda: (self._log.size(), int(tree_cpu_seconds(process.pid))),
                stall=timeout / 3,
                interval=0.1,
                max_interval=0.5,
            )
        except BaseException:
            self.stop(timeout=5)
            raise
        self.startup_seconds = time.monotonic() - started
        logger.info("S3Proxy ready at %s in %.1fs", self.url, self.startup_seconds)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("S3Proxy (pid %d) did not stop within %.0fs; killing it", process.pid, timeout)
                signal_group(process, signal.SIGKILL)
                process.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        _LIVE.discard(self)

    def __enter__(self) -> S3Server:
        if not self.is_running:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- a signed S3 client, enough to set up test data -----------------------------------
    def request(self, method: str, path: str, body: bytes = b"", timeout: float = 30.0) -> tuple[int, bytes]:
        """One SigV4-signed request to ``path`` (UriEncoded, with any query); (status, body)."""
        url = self.url + path
        headers = self.signer.sign(method, url, payload_sha256=hashlib.sha256(body).hexdigest())
        if body or method in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=timeout)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def create_bucket(self, bucket: str) -> None:
        status, text = self.request("PUT", f"/{uri_encode(bucket)}")
        if status != 200:
            raise RuntimeError(f"S3Proxy refused to create the bucket {bucket}: HTTP {status} {text[:300]!r}")

    def put_object(self, bucket: str, key: str, body: bytes) -> None:
        status, text = self.request("PUT", f"/{uri_encode(bucket)}/{uri_encode(key, slash=False)}", body)
        if status != 200:
            raise RuntimeError(f"S3Proxy refused to store s3://{bucket}/{key}: HTTP {status} {text[:300]!r}")

    def _answers(self) -> bool:
        try:
            status, _ = self.request("GET", "/", timeout=5)
        except OSError:
            return False
        return status == 200
