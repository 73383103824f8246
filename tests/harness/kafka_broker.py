"""Run a real, single-node Apache Kafka 4.x broker for integration tests.

The broker runs in KRaft mode as one combined broker+controller process
(``process.roles=broker,controller``, ``node.id=1``) listening on free loopback
ports. It is started from the jars that ``scripts/fetch-kafka.sh`` resolves from
Maven Central (see ``tests/harness/kafka/pom.xml``) with the machine's Java 17+,
exactly as the distribution's ``kafka-storage.sh`` / ``kafka-server-start.sh``
would run it::

    java -cp 'libs/*' kafka.tools.StorageTool format -t <id> -c server.properties --standalone
    java -Xmx512m -Xms256m -cp 'libs/*' kafka.Kafka server.properties

Typical use::

    broker = KafkaBroker(libs_dir=default_libs_dir(repo_root), work_dir=tmp_path / "kafka")
    with broker:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        ...
        broker.restart()   # same ports, same data: committed offsets survive

Everything the broker writes (storage format output, log4j INFO logs, JVM
stdout/stderr) goes to ``work_dir/broker.log``; startup failures raise
:class:`RuntimeError` quoting its last lines.

This module only needs the standard library: readiness is checked by speaking
the Kafka wire protocol (ApiVersions + Metadata) directly.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import logging
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import IO

from tests.harness._proc import HOST, LaunchLog, free_ports, port_is_bindable, signal_group
from tests.harness._wait import scaled, tree_cpu_seconds, wait_until

__all__ = [
    "KAFKA_MAIN_CLASS",
    "STORAGE_TOOL_MAIN_CLASS",
    "KafkaBroker",
    "default_libs_dir",
    "find_java",
]

logger = logging.getLogger(__name__)

#: Main class of the broker, as run by ``kafka-server-start.sh``.
KAFKA_MAIN_CLASS = "kafka.Kafka"
#: Main class of ``kafka-storage.sh`` (formats the KRaft log directories).
STORAGE_TOOL_MAIN_CLASS = "kafka.tools.StorageTool"

#: Oldest Java the Kafka 4 broker runs on.
MIN_JAVA_MAJOR = 17

#: Node id of the single combined broker+controller.
NODE_ID = 1


#: Heap for the broker: tests run Kafka next to other servers on 2 cores.
BROKER_JVM_OPTS: tuple[str, ...] = (
    "-Xmx512m",
    "-Xms256m",
    # Same GC settings as kafka-run-class.sh.
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    # The quick compiler only: a test broker lives minutes and moves little, and C2's compilations were most of
    # its CPU (measured: start 3.5 to 2.2 CPU-s, 120 MB produced 2.2 to 1.3, idle 28 to 16 ms a second; the
    # produce took as long). The suite runs up to 14 brokers beside everything else on 2 cores.
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)
#: The storage tool is a short-lived CLI: keep it smaller still.
TOOL_JVM_OPTS: tuple[str, ...] = (
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)

_LOG_TAIL_LINES = 40
_MAX_START_ATTEMPTS = 3  # fresh start retries when a picked port got taken meanwhile

_LOG4J2_PROPERTIES = """\
# Written by tests/harness/kafka_broker.py: log everything at INFO to stdout,
# which the harness redirects to broker.log in the same directory.
status = warn
name = ShoalKafkaHarness

appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.target = SYSTEM_OUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n

rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT

# Per-request logging is far too chatty for tests.
logger.request.name = kafka.request.logger
logger.request.level = WARN

# The full "KafkaConfig values: ..." dumps (hundreds of lines, several per
# start) would push everything useful out of the log tail quoted on failures;
# the effective config is server.properties next to this file.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


# --------------------------------------------------------------------------- #
# Java and jar discovery
# --------------------------------------------------------------------------- #


def _java_major_version(java: str) -> int:
    """Return the major version of the ``java`` executable (8 for 1.8, 17, 21...)."""
    try:
        result = subprocess.run(
            [java, "-version"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"could not run '{java} -version': {exc}") from exc
    match = re.search(r'version "([^"]+)"', result.stdout)
    if result.returncode != 0 or match is None:
        raise RuntimeError(
            f"could not determine the version of {java} (exit {result.returncode}): {result.stdout.strip()[:500]}"
        )
    parts = re.split(r"[.\-+_]", match.group(1))
    if parts[0] == "1" and len(parts) > 1:  # "1.8.0_292" style
        return int(parts[1])
    return int(parts[0])


def find_java() -> str:
    """Locate a Java 17+ executable to run the broker with.

    Uses ``$JAVA_HOME/bin/java`` when ``JAVA_HOME`` is set and points at a JDK
    or JRE, otherwise ``java`` on ``PATH``.

    Raises:
        RuntimeError: no Java was found, or it is older than 17; the message
            says how to fix it.
    """
    candidate: str | None = None
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        home_java = pathlib.Path(java_home) / "bin" / "java"
        if home_java.is_file() and os.access(home_java, os.X_OK):
            candidate = str(home_java)
        else:
            logger.warning("JAVA_HOME=%s has no bin/java; looking for java on PATH", java_home)
    if candidate is None:
        candidate = shutil.which("java")
    if candidate is None:
        raise RuntimeError(
            f"Java {MIN_JAVA_MAJOR}+ is required to run the Kafka test broker but none was "
            "found: install one (e.g. 'apt-get install openjdk-17-jre-headless') and put "
            "'java' on PATH or set JAVA_HOME"
        )
    major = _java_major_version(candidate)
    if major < MIN_JAVA_MAJOR:
        raise RuntimeError(
            f"{candidate} is Java {major} but the Kafka 4 broker needs Java "
            f"{MIN_JAVA_MAJOR}+: install a newer JDK and set JAVA_HOME to it "
            "(or put its bin/ first on PATH)"
        )
    logger.debug("using %s (Java %d)", candidate, major)
    return candidate


def default_libs_dir(repo_root: pathlib.Path) -> pathlib.Path:
    """Where ``scripts/fetch-kafka.sh`` puts the Kafka jars.

    ``${SHOAL_CACHE_DIR:-<repo_root>/.cache}/kafka/libs``; a relative
    ``SHOAL_CACHE_DIR`` is taken relative to ``repo_root``, as the script does.
    """
    cache = os.environ.get("SHOAL_CACHE_DIR") or ""
    cache_dir = pathlib.Path(cache) if cache else pathlib.Path(".cache")
    if not cache_dir.is_absolute():
        cache_dir = pathlib.Path(repo_root) / cache_dir
    return cache_dir / "kafka" / "libs"


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #


def _random_cluster_id() -> str:
    """A random Kafka ``Uuid`` string (22 chars of URL-safe base64), like ``random-uuid``."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        # A leading '-' would be parsed as an option by the storage tool's CLI.
        if not cluster_id.startswith("-"):
            return cluster_id


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("connection closed by broker")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _kafka_request(sock: socket.socket, api_key: int, api_version: int, body: bytes) -> bytes:
    """Send one non-flexible request (header v1) and return the response body."""
    correlation_id = random.randint(1, 2**31 - 1)
    client_id = b"shoal-test-harness"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    message = header + body
    sock.sendall(struct.pack(">i", len(message)) + message)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    response = _recv_exact(sock, size)
    (got_correlation_id,) = struct.unpack_from(">i", response, 0)
    if got_correlation_id != correlation_id:
        raise ConnectionError("correlation id mismatch in broker response")
    return response[4:]  # response header v0 is just the correlation id


_API_METADATA = 3
_API_VERSIONS = 18


def _broker_is_ready(port: int, node_id: int, timeout: float = 2.0) -> bool:
    """Whether the broker on ``HOST:port`` serves metadata that lists ``node_id``.

    Speaks the Kafka protocol: ApiVersions v0, then Metadata (v4..v8, the
    non-flexible versions Kafka 4 still accepts) for no topics. A broker only
    opens its client listener and lists itself once it has caught up with the
    metadata log and been unfenced by the controller, i.e. when clients can use
    it.
    """
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            versions = _kafka_request(sock, _API_VERSIONS, 0, b"")
            (error_code, count) = struct.unpack_from(">hi", versions, 0)
            if error_code != 0:
                return False
            metadata_range: tuple[int, int] | None = None
            for i in range(count):
                key, low, high = struct.unpack_from(">hhh", versions, 6 + 6 * i)
                if key == _API_METADATA:
                    metadata_range = (low, high)
            if metadata_range is None:
                return False
            version = max(4, metadata_range[0])
            if version > min(8, metadata_range[1]):
                # No non-flexible Metadata version left; the broker answered
                # ApiVersions, which is as good a sign as we can parse.
                return True
            # topics: empty array (not null, which means "all topics");
            # allow_auto_topic_creation=false; v8 adds two include_* booleans.
            body = struct.pack(">i", 0) + b"\x00"
            if version >= 8:
                body += b"\x00\x00"
            metadata = _kafka_request(sock, _API_METADATA, version, body)
            offset = 4  # throttle_time_ms
            (brokers,) = struct.unpack_from(">i", metadata, offset)
            offset += 4
            for _ in range(brokers):
                (broker_id, host_len) = struct.unpack_from(">ih", metadata, offset)
                offset += 6 + host_len + 4  # node_id, host, port
                (rack_len,) = struct.unpack_from(">h", metadata, offset)
                offset += 2 + max(rack_len, 0)
                if broker_id == node_id:
                    return True
            return False
    except (OSError, ConnectionError, struct.error):
        return False


# Brokers still running when the interpreter exits are killed, so that an
# aborted test run does not leave JVMs behind (they run in their own session
# and would not get the terminal's SIGINT).
_LIVE_BROKERS: set[KafkaBroker] = set()


@atexit.register
def _kill_leftover_brokers() -> None:
    for broker in list(_LIVE_BROKERS):
        with contextlib.suppress(Exception):  # best effort at interpreter exit
            broker.kill()


# --------------------------------------------------------------------------- #
# The broker
# --------------------------------------------------------------------------- #


class KafkaBroker:
    """A single-node KRaft Kafka broker (combined broker+controller) in a subprocess.

    Files under ``work_dir``:

    * ``server.properties`` - the broker configuration;
    * ``log4j2.properties`` - logging config (INFO, to stdout);
    * ``broker.log`` - storage-format output, broker logs and JVM stdout/stderr,
      appended to across starts (each launch is preceded by a ``=====`` marker);
    * ``data/`` - the log directory (``log.dirs`` and the KRaft metadata log).

    :meth:`start` always creates a new cluster (new ports, fresh ``data/``);
    :meth:`restart` brings the same broker back on the same ports and data.
    """

    def __init__(
        self,
        *,
        libs_dir: pathlib.Path,
        work_dir: pathlib.Path,
        java: str | None = None,
        num_partitions: int = 4,
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        """Describe a broker; nothing runs until :meth:`start`.

        Args:
            libs_dir: directory holding the Kafka jars (see :func:`default_libs_dir`).
            work_dir: directory for config, logs and data; created if needed.
            java: java executable; default :func:`find_java` (checked at start).
            num_partitions: ``num.partitions`` for topics created without a count.
            extra_config: server.properties entries added to / overriding the defaults.
        """
        self.libs_dir = pathlib.Path(libs_dir)
        self.work_dir = pathlib.Path(work_dir)
        self.num_partitions = num_partitions
        self.extra_config: dict[str, str] = dict(extra_config or {})
        self._java = java
        self._port: int | None = None
        self._controller_port: int | None = None
        self._cluster_id: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._log = LaunchLog(self.log_file, _LOG_TAIL_LINES)

    # -- paths and properties ------------------------------------------------ #

    @property
    def log_file(self) -> pathlib.Path:
        """``work_dir/broker.log``: everything the broker and storage tool printed."""
        return self.work_dir / "broker.log"

    @property
    def config_file(self) -> pathlib.Path:
        """``work_dir/server.properties``."""
        return self.work_dir / "server.properties"

    @property
    def data_dir(self) -> pathlib.Path:
        """``work_dir/data``: the broker's ``log.dirs``."""
        return self.work_dir / "data"

    @property
    def port(self) -> int:
        """Port of the PLAINTEXT client listener on 127.0.0.1."""
        if self._port is None:
            raise RuntimeError("KafkaBroker has not been started")
        return self._port

    @property
    def controller_port(self) -> int:
        """Port of the KRaft CONTROLLER listener on 127.0.0.1."""
        if self._controller_port is None:
            raise RuntimeError("KafkaBroker has not been started")
        return self._controller_port

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"`` for clients' ``bootstrap_servers``.

        Stays valid across :meth:`stop` / :meth:`kill` and :meth:`restart`.
        """
        return f"{HOST}:{self.port}"

    @property
    def cluster_id(self) -> str | None:
        """The cluster id the storage was formatted with (None before start)."""
        return self._cluster_id

    @property
    def pid(self) -> int | None:
        """Process id of the running broker JVM, or None."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def is_running(self) -> bool:
        """Whether the broker process is alive (not necessarily ready)."""
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ----------------------------------------------------------- #

    def start(self, timeout: float = 150.0) -> None:
        """Start a brand-new single-node cluster and wait until clients can use it.

        Picks free ports for the client and controller listeners, writes
        ``server.properties`` and the log4j2 config, formats ``data/`` with a
        random cluster id (``kafka.tools.StorageTool format --standalone``), then
        launches ``kafka.Kafka`` and waits until it answers a Metadata request
        listing itself.

        Raises:
            RuntimeError: the jars or Java are missing, the broker is already
                running, or it exited, stopped making progress (no output and
                no CPU time for a while) or was not ready within ``timeout``
                seconds times ``SHOAL_TEST_WAIT_SCALE`` (the message includes
                the end of ``broker.log``).
        """
        if self.is_running:
            raise RuntimeError(f"Kafka broker already running on {self.bootstrap_servers}")
        self._reap()  # a previous broker process may have died on its own
        self._check_libs()
        java = self._resolve_java()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        started_at = time.monotonic()

        for attempt in range(1, _MAX_START_ATTEMPTS + 1):
            self._port, self._controller_port = free_ports(2)
            self._cluster_id = _random_cluster_id()
            self._write_config()
            self._format_storage(java, timeout)
            try:
                self._launch_and_wait(java, timeout, what="start")
            except _PortInUseError:
                if attempt == _MAX_START_ATTEMPTS:
                    raise RuntimeError(
                        f"Kafka broker could not bind its ports after {attempt} attempts:\n" + self._log.tail()
                    ) from None
                logger.warning("Kafka broker port was taken; retrying on new ports")
                continue
            break
        logger.info(
            "Kafka broker ready on %s (controller %s:%d, cluster %s) in %.1fs",
            self.bootstrap_servers,
            HOST,
            self._controller_port,
            self._cluster_id,
            time.monotonic() - started_at,
        )

    def restart(self, timeout: float = 150.0) -> None:
        """Stop the broker if it is running and start it again on the same ports and data.

        The log directories are not re-formatted, so topics, records and
        committed offsets survive. Works after :meth:`kill` too (the broker then
        recovers its logs as after a crash).

        Raises:
            RuntimeError: :meth:`start` was never called, or the broker did not
                come back (see :meth:`start`).
        """
        if self._port is None or self._controller_port is None:
            raise RuntimeError("KafkaBroker.restart() called before start()")
        started_at = time.monotonic()
        self.stop()
        java = self._resolve_java()
        self._wait_ports_bindable(timeout)
        try:
            self._launch_and_wait(java, timeout, what="restart")
        except _PortInUseError:
            raise RuntimeError(
                f"Kafka broker could not re-bind {self.bootstrap_servers} on restart:\n" + self._log.tail()
            ) from None
        logger.info(
            "Kafka broker restarted on %s in %.1fs",
            self.bootstrap_servers,
            time.monotonic() - started_at,
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the broker down: SIGTERM, wait up to ``timeout`` s, then SIGKILL.

        Idempotent; a no-op when the broker is not running.
        """
        process = self._process
        if process is not None and process.poll() is None:
            logger.info("stopping Kafka broker (pid %d)", process.pid)
            self._signal_group(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "Kafka broker (pid %d) did not stop within %.0fs; killing it",
                    process.pid,
                    timeout,
                )
                self._signal_group(signal.SIGKILL)
                process.wait()
        self._reap()

    def kill(self) -> None:
        """Kill the broker with SIGKILL, as in a crash. Idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            logger.info("killing Kafka broker (pid %d)", process.pid)
            self._signal_group(signal.SIGKILL)
            process.wait()
        self._reap()

    def __enter__(self) -> KafkaBroker:
        if not self.is_running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{HOST}:{self._port}" if self._port is not None else "unstarted"
        state = "running" if self.is_running else "stopped"
        return f"<KafkaBroker {where} {state} work_dir={str(self.work_dir)!r}>"

    # -- internals ----------------------------------------------------------- #

    def _check_libs(self) -> None:
        if not self.libs_dir.is_dir() or not any(self.libs_dir.glob("*.jar")):
            raise RuntimeError(
                f"Kafka jars not found in {self.libs_dir}: run scripts/fetch-kafka.sh (make test does this)"
            )

    def _resolve_java(self) -> str:
        if self._java is None:
            self._java = find_java()
        return self._java

    def _classpath(self) -> str:
        # The JVM expands the trailing '*' itself, like kafka-run-class.sh.
        return str(self.libs_dir.resolve() / "*")

    def _server_properties(self) -> dict[str, str]:
        port, controller_port = self.port, self.controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            # Dynamic KRaft quorum (KIP-853), formatted with --standalone.
            "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir.resolve()),
            "num.partitions": str(self.num_partitions),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            # Fewer internal partitions than the default 50: much quicker to
            # create on the first consumer group / transaction.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After kill(), the restarted broker cannot register again until
            # the previous incarnation's session expires (default 9s):
            # DUPLICATE_BROKER_REGISTRATION. Shorter session = quicker crash tests.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4000",
            # Small machine: fewer threads than the defaults.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
        }
        props.update(self.extra_config)
        return props

    def _write_config(self) -> None:
        lines = ["# Written by tests/harness/kafka_broker.py"]
        lines += [f"{key}={value}" for key, value in self._server_properties().items()]
        self.config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        (self.work_dir / "log4j2.properties").write_text(_LOG4J2_PROPERTIES, encoding="utf-8")

    def _java_command(self, java: str, jvm_opts: tuple[str, ...], main: str) -> list[str]:
        log4j_config = (self.work_dir / "log4j2.properties").resolve()
        return [
            java,
            *jvm_opts,
            f"-Dlog4j2.configurationFile={log4j_config}",
            f"-Dkafka.logs.dir={self.work_dir.resolve()}",
            "-cp",
            self._classpath(),
            main,
        ]

    def _append_marker(self, text: str) -> None:
        with self.log_file.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"===== [{stamp}] shoal test harness: {text} =====\n".encode())

    def _format_storage(self, java: str, timeout: float) -> None:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self._append_marker(f"formatting {self.data_dir} (cluster id {self._cluster_id})")
        self._log.mark()
        command = [
            *self._java_command(java, TOOL_JVM_OPTS, STORAGE_TOOL_MAIN_CLASS),
            "format",
            "--cluster-id",
            str(self._cluster_id),
            "--config",
            str(self.config_file.resolve()),
            "--standalone",
        ]
        logger.debug("formatting Kafka storage: %s", command)
        with self.log_file.open("ab") as log:
            try:
                result = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=scaled(timeout),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise RuntimeError("timed out formatting Kafka storage:\n" + self._log.tail()) from None
        if result.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed (exit {result.returncode}):\n" + self._log.tail())

    def _launch_and_wait(self, java: str, timeout: float, *, what: str) -> None:
        command = [
            *self._java_command(java, BROKER_JVM_OPTS, KAFKA_MAIN_CLASS),
            str(self.config_file.resolve()),
        ]
        self._append_marker(f"{what} broker on {HOST}:{self.port}")
        self._log.mark()
        logger.debug("launching Kafka broker: %s", command)
        self._log_handle = self.log_file.open("ab")
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
            start_new_session=True,  # own process group: signal the whole JVM tree
        )
        _LIVE_BROKERS.add(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        """Until the broker lists itself in Metadata; ends early when it exits or, alive, neither logs nor
        uses CPU for a third of ``timeout`` (all times ``SHOAL_TEST_WAIT_SCALE``)."""
        process = self._process
        assert process is not None

        def exited() -> str | None:
            if process.poll() is None:
                return None
            if "Address already in use" in self._log.text():
                raise _PortInUseError()
            return f"the broker exited with code {process.returncode} (log: {self.log_file}):\n" + self._log.tail()

        wait_until(
            lambda: _broker_is_ready(self.port, NODE_ID),
            what=f"the Kafka broker on {self.bootstrap_servers} to serve Metadata",
            bound=timeout,
            dead=exited,
            progress=lambda: (self._log.size(), int(tree_cpu_seconds(process.pid))),
            stall=timeout / 3,
            interval=0.1,
            max_interval=0.5,
        )

    def _wait_ports_bindable(self, timeout: float) -> None:
        ports = (self.port, self.controller_port)
        wait_until(
            lambda: all(port_is_bindable(p) for p in ports),
            what=f"the ports {ports} of the stopped Kafka broker to be free again",
            bound=timeout,
            interval=0.2,
        )

    def _signal_group(self, signum: signal.Signals) -> None:
        assert self._process is not None
        signal_group(self._process, signum)

    def _reap(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        _LIVE_BROKERS.discard(self)


class _PortInUseError(Exception):
    """The broker exited because one of its picked ports was taken meanwhile."""
