"""A full disk and read-only storage, as a running ``shoal serve`` on the embedded stores meets
them: health says NOT_SERVING for every service, writes answer RESOURCE_EXHAUSTED (disk full) or
UNAVAILABLE (read-only) naming the store and its directory, and all is well again once the disk is.

The data directory is a small tmpfs. The kernel refuses ``remount,ro`` of a filesystem with files
open for writing (chDB keeps one open), so read-only storage is a read-only bind mount laid over
the data directory, which is what every new write through a path meets. One server process for
the module: chDB opens one data directory per process.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from shoal.client import Client
from shoal.common.auth import generate_key
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.integration.test_serve_process import ALL, _free_port, _serving, _spawn
from tests.server.conftest import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs for the data directory needs root")

NAMES = ("", *sorted(ALL))


@dataclass
class Served:
    target: str
    key: str
    data: Path
    log: Path


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"`mount {' '.join(args)}` is not permitted here ({done.stderr.strip()}); needs root")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    disk = tmp_path_factory.mktemp("disk")
    _mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk))
    proc = None
    try:
        data = disk / "data"
        log = tmp_path_factory.mktemp("serve-log") / "serve.log"
        port = _free_port()
        key = generate_key()[1]
        env = {
            "SHOAL_ADMIN_API_KEY": key,
            "SHOAL_MIN_FREE_DISK_MB": "4",
            "SHOAL_READINESS_INTERVAL_SECONDS": "0.2",
            "SHOAL_TOPIC_PARTITIONS": "2",
            "SHOAL_DRAIN_SECONDS": "0",
            "SHOAL_GRACE_SECONDS": "2",
        }
        proc = _spawn(["serve", "--port", str(port), "--data-dir", str(data)], env, log)
        target = f"127.0.0.1:{port}"
        _serving(target, proc, log)
        with Client(target, api_key=key) as c:
            c.ingest.CreateProject(
                pb.CreateProjectRequest(
                    project=pb.Project(
                        name="disk", task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="a")]
                    )
                )
            )
        yield Served(target, key, data, log)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _statuses(c: Client) -> set[str]:
    return {c.health_status(name, timeout=2) for name in NAMES}


def _create_dataset(c: Client, name: str) -> None:
    c.ingest.CreateDataset(
        pb.CreateDatasetRequest(project="disk", dataset=pb.Dataset(name=name, kind=pb.DATASET_KIND_LABELED))
    )


def _fill(path: Path) -> None:
    """Writes to ``path`` until the disk is full."""
    block = b"\0" * (1 << 20)
    with path.open("wb") as fh:
        try:
            while True:
                fh.write(block)
                fh.flush()
        except OSError:
            pass


def test_a_full_disk_makes_every_service_not_serving_and_writes_resource_exhausted(served: Served) -> None:
    fill = served.data.parent / "fill"
    with Client(served.target, api_key=served.key) as c:
        try:
            _fill(fill)
            wait_for(lambda: _statuses(c) == {"NOT_SERVING"}, what="every service NOT_SERVING on a full disk")
            # every store's check meets the full disk (one store's is enough to turn every service NOT_SERVING)
            _await_logged(served.log, "metrics store is not ready: disk full")
            with pytest.raises(grpc.RpcError) as info:
                _create_dataset(c, "full")
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value.details()
            assert "disk full" in info.value.details()
            assert str(served.data) in info.value.details()
        finally:
            fill.unlink()
        wait_for(lambda: _statuses(c) == {"SERVING"}, what="every service SERVING with space again")
        _create_dataset(c, "after-full")
    _assert_logged_on_turns(served.log, "metrics store is not ready: disk full")


def _await_logged(log: Path, reason: str) -> None:
    """Waits until the server has logged ``reason`` (its readiness checks run every 0.2 s, each store's on
    its own)."""
    wait_for(lambda: reason in log.read_text(), what=f"the server to log {reason!r}")


def _assert_logged_on_turns(log: Path, reason: str) -> None:
    """The reason is logged when readiness turns, not on every probe (five a second here). A busy
    machine may make the store's check fail another way in between (a ping that times out), which is
    a turn of its own and logged again: a few lines, never one per probe."""
    turns = [line for line in log.read_text().splitlines() if "store is not ready" in line or "ready again" in line]
    assert 1 <= sum(reason in line for line in turns) <= 3, "\n".join(turns)


def test_read_only_storage_makes_every_service_not_serving_and_writes_unavailable(served: Served) -> None:
    data = str(served.data)
    with Client(served.target, api_key=served.key) as c:
        _mount("--bind", "-o", "ro", data, data)
        try:
            wait_for(lambda: _statuses(c) == {"NOT_SERVING"}, what="every service NOT_SERVING on read-only storage")
            _await_logged(served.log, "metrics store is not ready: storage is read-only")
            with pytest.raises(grpc.RpcError) as info:
                _create_dataset(c, "read-only")
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
            assert "read-only" in info.value.details()
            assert data in info.value.details()
        finally:
            subprocess.run(["umount", "-l", data], check=True)
        wait_for(lambda: _statuses(c) == {"SERVING"}, what="every service SERVING with writable storage again")
        _create_dataset(c, "after-read-only")
    _assert_logged_on_turns(served.log, "metrics store is not ready: storage is read-only")


def test_the_embedded_bus_on_a_full_disk_fails_publishes_as_disk_full_then_continues(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A publish that cannot be written because the disk is full fails with RESOURCE_EXHAUSTED naming
    the bus; nothing half-written stays, and once there is space the partition continues after its
    last acknowledged event, in the running bus and after a restart."""
    from shoal.common.errors import ResourceExhausted
    from shoal.common.stores.events import EmbeddedEventBus, TopicSpec

    disk = tmp_path_factory.mktemp("bus-disk")
    _mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk))
    try:
        directory = disk / "bus"
        bus = EmbeddedEventBus(directory)
        try:
            bus.ensure_topics([TopicSpec("t", partitions=1)])
            bus.publish("t", key=b"k", value=b"before").result(10)
            fill = disk / "fill"
            _fill(fill)
            with pytest.raises(ResourceExhausted) as info:
                bus.publish("t", key=b"k", value=b"x" * (1 << 20)).result(30)
            assert "disk full" in str(info.value) and str(directory) in str(info.value), info.value
            fill.unlink()
            assert bus.publish("t", key=b"k", value=b"after").result(10).offset == 1
            with bus.consumer("g", ["t"]) as c:
                values = [e.value for e in c.poll(5)]
            assert values == [b"before", b"after"]
        finally:
            bus.close()
        bus = EmbeddedEventBus(directory)
        try:
            with bus.consumer("g", ["t"]) as c:
                assert [(e.offset, e.value) for e in c.poll(5)] == [(0, b"before"), (1, b"after")]
        finally:
            bus.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
