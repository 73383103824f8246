"""How ``make test`` spreads the tests over processes (pytest-xdist, ``-n N --dist loadgroup``).

The unit of work is a test file, so a module's server starts once; except that every test needing a session
server runs in one process: the Milvus server's tests must (its embedded etcd takes port 2380, so one runs per
machine), and Label Studio's and the Kafka broker's go with them, so each of the three starts once in a run.
(With a unit per server, tests needing two of them had their own second broker: three brokers in all.)
Which tests need which server is known only once the tests are collected (a test's fixture closure), and
the workers collect, not the controller that schedules: the first worker writes each test's group to a
file the controller named in ``SHOAL_TEST_GROUPS`` (pytest-xdist's own ``xdist_group`` marker can't carry
it: it rewrites a private node id that pytest 9.2 no longer reads).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

#: Session fixtures that start a real server.
SESSION_SERVERS = ("milvus_server", "label_studio", "kafka_broker")
#: The unit of work of every test needing one of them.
SESSION_GROUP = "session servers"
ENV = "SHOAL_TEST_GROUPS"


#: Groups handed out first, longest first: the session servers' tests took about 550 s of a worker in a
#: clean-clone run (2 cores, 3 workers; a worker does about 620 s in all), the demo and the cold start over
#: 100 s each. pytest-xdist hands out the groups with the most tests first, so these came last and one worker
#: ran on for minutes after the others had finished. Every other group follows in pytest-xdist's order.
LONGEST_FIRST = (
    SESSION_GROUP,
    "tests/integration/test_serve_process.py",
    "tests/integration/test_cold_start.py",
)

#: Parameters of the store fixtures (tests/conftest.py) that start a session server with
#: ``request.getfixturevalue``, which a test's fixture closure does not show.
PARAM_SERVERS = {"milvus-server": "milvus_server", "kafka": "kafka_broker"}


def group_of(item: pytest.Item) -> str:
    """The unit of work of ``item``: the session servers' when it needs one of them, else its file."""
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        names.update(PARAM_SERVERS[v] for v in callspec.params.values() if isinstance(v, str) and v in PARAM_SERVERS)
    return SESSION_GROUP if names.intersection(SESSION_SERVERS) else item.nodeid.split("::")[0]


def configure(config: pytest.Config) -> None:
    """In the controller of a parallel run: names the file the workers' groups go to (the workers start
    after this and inherit the environment)."""
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        return
    fd, path = tempfile.mkstemp(prefix="shoal-test-groups-", suffix=".json")
    os.close(fd)
    os.environ[ENV] = path
    config.add_cleanup(lambda: Path(path).unlink(missing_ok=True))


def record(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In each worker, once collected: the tests in the order their groups are handed out (every worker
    collects the same order); and in the first worker each test's group, for the controller's scheduler."""
    worker = getattr(config, "workerinput", {}).get("workerid")
    path = os.environ.get(ENV)
    if worker is None or not path:
        return
    items[:] = in_schedule_order(items)
    if worker != "gw0":
        return
    tmp = f"{path}.{os.getpid()}"
    Path(tmp).write_text(json.dumps({item.nodeid: group_of(item) for item in items}))
    os.replace(tmp, path)


def in_schedule_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` with the groups of ``LONGEST_FIRST`` first, then every other group by its number of tests
    (most first, as pytest-xdist orders them); a group's tests keep their order."""
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)

    def rank(name: str) -> tuple[int, int]:
        first = LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
        return first, -len(groups[name])

    return [item for name in sorted(groups, key=rank) for item in groups[name]]


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """A scheduler that hands out whole groups (pytest-xdist's scope scheduling, by our groups), in the order
    the workers collected them (``in_schedule_order``)."""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False

    groups: dict[str, str] = {}

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if not groups:
                # Scheduling starts once every worker has reported its collection, after gw0 wrote this.
                groups.update(json.loads(Path(os.environ[ENV]).read_text() or "{}"))
            return groups.get(nodeid) or nodeid.split("::")[0]

    return ByGroup(config, log)
