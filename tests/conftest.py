"""Session fixtures: the real servers the tests need, started on free ports and stopped after.

- chDB: one data directory per test session (chDB opens one per process); each test gets its
  own database in it, so tests never see each other's tables.
- Milvus Lite: one file per test.
- Milvus server: one standalone server per session (the `milvus` wheel).
- Kafka: one Apache Kafka 4 broker per session (jars from scripts/fetch-kafka.sh).
- Label Studio: one server per session (its own venv, from scripts/ensure-label-studio.sh).
"""

from __future__ import annotations

import logging
import os
import pathlib
import sys
import time
import uuid
import warnings
from collections.abc import Iterator

import pytest

from shoal.common.settings import ShoalSettings
from shoal.common.stores.events import EmbeddedEventBus, EventBus, KafkaEventBus
from shoal.common.stores.metrics import EmbeddedMetricsStore, MetricsStore, ServerMetricsStore
from shoal.common.stores.vectors import EmbeddedVectorStore, ServerVectorStore, VectorStore
from tests.harness import kernels, parallel
from tests.harness._wait import wait_scale

REPO = pathlib.Path(__file__).resolve().parent.parent
# Every `shoal serve` the tests start picks a free port for its console unless told otherwise, so two
# servers (or a developer's own on 8080) never collide.
os.environ.setdefault("SHOAL_CONSOLE_PORT", "0")
log = logging.getLogger("shoal.tests")


def announce(config: pytest.Config, message: str) -> None:
    """Writes a line to the test log even while output is captured, so the log shows which real
    servers ran."""
    capman = config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        sys.stderr.write(f"\n[harness] {message}\n")
        sys.stderr.flush()


@pytest.fixture(autouse=True)
def _kernels_compiled(request: pytest.FixtureRequest) -> None:
    """Every test but those marked `own_kernel_cache` waits for the kernels that `make test` compiles in the
    background, once per process (tests/harness/kernels.py); the session and module fixtures start before."""
    if request.node.get_closest_marker("own_kernel_cache") is not None:
        return
    waited, problem = kernels.wait_for_warm_up()
    if waited > 1.0:
        announce(request.config, f"waited {waited:.1f} s for the kernels compiling in the background")
    if problem:
        warnings.warn(problem, stacklevel=1)


def pytest_configure(config: pytest.Config) -> None:
    parallel.configure(config)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    return parallel.make_scheduler(config, log) if config.getoption("dist") == "loadgroup" else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test's timeout (its ``timeout`` marker, else the ``timeout`` of pyproject.toml) is multiplied by
    SHOAL_TEST_WAIT_SCALE, as the waits inside the tests are: a busy machine slows a test without failing it.
    A timeout given with ``--timeout`` or ``PYTEST_TIMEOUT`` applies as given to tests without a marker."""
    scale = wait_scale()
    given = config.getoption("timeout", None) is not None or bool(os.environ.get("PYTEST_TIMEOUT"))
    ini = float(config.getini("timeout") or 0)
    parallel.record(config, items)
    for item in items:
        marker = item.get_closest_marker("timeout")
        if marker is not None:
            base = marker.args[0] if marker.args else marker.kwargs.get("timeout")
            options = {k: v for k, v in marker.kwargs.items() if k != "timeout"}
        elif given:
            continue
        else:
            base, options = ini, {}
        if base:
            item.add_marker(pytest.mark.timeout(float(base) * scale, **options), append=False)


# --- chDB --------------------------------------------------------------------------------
#: The session's chDB data directory, once a test has asked for it.
_CHDB: dict[str, pathlib.Path] = {}


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    _CHDB["path"] = tmp_path_factory.mktemp("chdb")
    return _CHDB["path"]


def drop_test_databases(path: pathlib.Path, names: list[str] | None = None) -> None:
    """Drops the tests' databases (``t_*``, or ``names``) in the session's chDB. chDB slows down with every
    table it holds (creating a database and its ~40 tables took 1 s in a fresh session and 10 s after 50
    left behind), so each test's database goes when its test or module ends."""
    store = EmbeddedMetricsStore(path=path, database="default")
    try:
        if names is None:
            rows = store.query("SELECT name FROM system.databases WHERE startsWith(name, 't_')").rows
            names = [r[0] for r in rows]
        for name in names:
            store.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
    finally:
        store.close()


@pytest.fixture(scope="module", autouse=True)
def _drop_module_databases() -> Iterator[None]:
    """After each module, the databases its servers and stores made (see drop_test_databases)."""
    yield
    if "path" in _CHDB:
        drop_test_databases(_CHDB["path"])


@pytest.fixture
def database() -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    if "path" in _CHDB:
        drop_test_databases(_CHDB["path"], [name])


def _metrics_params() -> list[str]:
    params = ["chdb"]
    if os.environ.get("SHOAL_TEST_CLICKHOUSE_URL"):
        params.append("clickhouse-server")
    return params


@pytest.fixture(params=_metrics_params())
def metrics_store(request: pytest.FixtureRequest, chdb_path: pathlib.Path, database: str) -> Iterator[MetricsStore]:
    """The metrics behaviour suite runs on chDB, and on a ClickHouse server when
    SHOAL_TEST_CLICKHOUSE_URL names one (none can be installed on the CI machines)."""
    store: MetricsStore
    if request.param == "chdb":
        store = EmbeddedMetricsStore(path=chdb_path, database=database)
    else:
        store = ServerMetricsStore(url=os.environ["SHOAL_TEST_CLICKHOUSE_URL"], database=database)
    yield store
    try:
        store.command(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        store.close()


@pytest.fixture
def embedded_metrics(chdb_path: pathlib.Path, database: str) -> Iterator[EmbeddedMetricsStore]:
    store = EmbeddedMetricsStore(path=chdb_path, database=database)
    yield store
    store.close()


# --- Milvus ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[str]:
    """URI of a real Milvus standalone server for the whole session."""
    from tests.harness.milvus_server import MilvusTestServer

    server = MilvusTestServer(work_dir=tmp_path_factory.mktemp("milvus-server"))
    announce(pytestconfig, "starting a Milvus standalone server (milvus wheel)")
    t0 = time.monotonic()
    server.start()
    announce(pytestconfig, f"Milvus server ready at {server.uri} after {time.monotonic() - t0:.1f}s")
    yield server.uri
    server.stop()
    announce(pytestconfig, "Milvus server stopped")


@pytest.fixture(params=["milvus-lite", pytest.param("milvus-server", marks=pytest.mark.integration)])
def vector_store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[VectorStore]:
    store: VectorStore
    if request.param == "milvus-lite":
        store = EmbeddedVectorStore(path=tmp_path / "vectors.db", timeout_seconds=30)
    else:
        store = ServerVectorStore(url=request.getfixturevalue("milvus_server"), timeout_seconds=30)
    yield store
    try:
        for name in store.list_collections():
            if name.startswith("t_"):
                store.drop_collection(name)
    finally:
        store.close()


# --- Kafka -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[object]:
    """A real Apache Kafka 4 broker (KRaft, one node) for the whole session."""
    from tests.harness.kafka_broker import KafkaBroker, default_libs_dir

    broker = KafkaBroker(libs_dir=default_libs_dir(REPO), work_dir=tmp_path_factory.mktemp("kafka"))
    announce(pytestconfig, "starting an Apache Kafka broker (KRaft, jars from Maven Central)")
    t0 = time.monotonic()
    broker.start()
    announce(pytestconfig, f"Kafka broker ready at {broker.bootstrap_servers} after {time.monotonic() - t0:.1f}s")
    yield broker
    broker.stop()
    announce(pytestconfig, "Kafka broker stopped")


#: kafka-python's group coordinator: it says at DEBUG why a member rejoins its group
COORDINATOR_LOGGERS = ("kafka.coordinator.base", "kafka.coordinator.consumer")


def _report_coordinator_debug(request: pytest.FixtureRequest) -> None:
    """Puts the group coordinator's DEBUG lines into a failing test's report, raised to INFO (pytest's
    ``log_level``), so a rebalance that repeats shows why each rejoin happened. Until the test ends."""

    def to_report(record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True

    for name in COORDINATOR_LOGGERS:
        logger = logging.getLogger(name)
        level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addFilter(to_report)

        def restore(logger: logging.Logger = logger, level: int = level) -> None:
            logger.removeFilter(to_report)
            logger.setLevel(level)

        request.addfinalizer(restore)


@pytest.fixture(params=["embedded-memory", "embedded-file", pytest.param("kafka", marks=pytest.mark.integration)])
def bus_factory(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[object]:
    """Builds event buses of one kind. For the file-backed embedded bus, a second bus on the same
    directory is the same bus after a restart."""
    made: list[EventBus] = []
    directory = tmp_path / "bus"

    def make() -> EventBus:
        bus: EventBus
        if request.param == "embedded-memory":
            bus = made[0] if made else EmbeddedEventBus(None)
        elif request.param == "embedded-file":
            bus = EmbeddedEventBus(directory)
        else:
            broker = request.getfixturevalue("kafka_broker")
            bus = KafkaEventBus(broker.bootstrap_servers, request_timeout_seconds=30)  # type: ignore[attr-defined]
        made.append(bus)
        return bus

    make.kind = request.param  # type: ignore[attr-defined]
    if request.param == "kafka":
        _report_coordinator_debug(request)
    yield make
    for bus in made:
        try:
            bus.close()
        except Exception:
            log.warning("closing a test bus failed", exc_info=True)


# --- Label Studio --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[object]:
    """A real Label Studio server (SQLite, a loopback port) for the whole session, started only when a
    test asks for it. It has `url`, `token` (the admin's personal access token), `log_file`, and
    `restart()` / `stop()` / `start()` for outage tests."""
    from tests.harness.label_studio_server import LabelStudioServer, default_venv_dir

    server = LabelStudioServer(venv_dir=default_venv_dir(REPO), work_dir=tmp_path_factory.mktemp("label-studio"))
    announce(pytestconfig, "starting a Label Studio server (label-studio from PyPI, SQLite)")
    server.start()
    announce(pytestconfig, f"Label Studio ready at {server.url} after {server.startup_seconds:.1f}s")
    yield server
    server.stop()
    announce(pytestconfig, "Label Studio stopped")


# --- settings for in-process servers ------------------------------------------------------
def server_settings(
    data_dir: pathlib.Path, chdb_path: pathlib.Path, database: str = "", **more: object
) -> ShoalSettings:
    """Settings of an in-process all-in-one server on a free port, on the session's chDB path (chDB
    opens one data directory per process) in a database of its own (a new one unless named). The
    kernels are not warmed at start: the tests' servers share the process, whose kernels the first job
    loads (tests/integration/test_cold_start.py covers the warm-up, on a server process of its own).
    Every job's listings are kept in page order, as a large job's are (``ranked_pages_above``), so that the
    tests' pages come from the ranked rows; tests/stores/test_ranked_pages.py compares them with pages
    sorted from every row. The grid's sorted pages are kept for sets of more than 500 frames
    (``sorted_pages_above``): the preparer's test uploads 600, the others fewer (keeping them for every set
    would load each test's server with background writes); tests/stores/test_grid_orders.py compares them
    with pages sorted from the set."""
    more.setdefault("warm_kernels", False)
    more.setdefault("ranked_pages_above", 0)
    more.setdefault("sorted_pages_above", 500)
    more.setdefault("automations_allow_private_webhooks", True)  # the tests' webhook receivers are on loopback
    return ShoalSettings(
        port=0,
        data_dir=data_dir,
        metrics_url=f"chdb://{chdb_path}",
        clickhouse_database=database or f"t_{uuid.uuid4().hex[:12]}",
        readiness_interval_seconds=0.2,
        drain_seconds=0.0,
        grace_seconds=2.0,
        **more,  # type: ignore[arg-type]
    )


@pytest.fixture
def embedded_settings(tmp_path: pathlib.Path, chdb_path: pathlib.Path, database: str) -> ShoalSettings:
    """Settings of an all-in-one server on a free port, on the session's chDB path."""
    return server_settings(tmp_path / "data", chdb_path, database)
