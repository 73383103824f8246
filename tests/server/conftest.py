from __future__ import annotations

import pathlib
import re
import uuid
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shoal.app import build_server
from shoal.client import Client
from shoal.common.server import ShoalServer
from shoal.common.settings import ShoalSettings
from tests.conftest import server_settings
from tests.harness._wait import wait_until


@dataclass
class Running:
    server: ShoalServer
    target: str
    admin_key: str

    def client(self, key: str | None = None) -> Client:
        return Client(self.target, api_key=key)


def wait_for(
    predicate: Callable[[], bool],
    timeout: float = 30.0,
    what: str = "condition",
    *,
    progress: Callable[[], Hashable] | None = None,
    stall: float | None = None,
    dead: Callable[[], str | None] | None = None,
) -> None:
    """Polls ``predicate`` every 50 ms until it holds. ``timeout`` is the last-resort bound of an unloaded
    machine, multiplied by SHOAL_TEST_WAIT_SCALE (4 by default); with ``progress`` (the state the awaited
    thing reports) the error quotes the last state seen, and with ``stall`` the wait ends once that state has
    not changed for ``stall`` seconds (scaled the same way). ``dead`` (e.g. ``process_exit`` of
    tests.harness._wait) ends the wait at once when what would make the condition true has gone."""
    wait_until(
        predicate,
        what=what,
        bound=timeout,
        progress=progress,
        stall=stall,
        dead=dead,
        interval=0.05,
        error=AssertionError,
    )


def preparer_of(running: Running) -> Any:
    """The analysis service's preparer (``shoal.analysis.prepared.Preparer``), which runs in the rounds of its
    answer refresher."""
    from shoal.analysis.prepared import Preparer
    from shoal.common.data.answers import AnswerRefresher

    refresher = next(w for s in running.server.specs for w in s.workers if isinstance(w, AnswerRefresher))
    preparer = refresher.prepare.__self__  # type: ignore[union-attr]
    assert isinstance(preparer, Preparer)
    return preparer


def computed_answers() -> float:
    """Answers the services of this process computed on a call (neither kept nor being computed by another)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("shoal_kept_answers_total", {"outcome": "computed"}) or 0.0


def finish_job(c: Client, project: str, job: Any, timeout: float = 300.0, stall: float = 120.0) -> Any:
    """Waits for an analysis job to end and returns it, which must have succeeded. The wait ends early
    when the job's state, stage and progress stay the same for ``stall`` seconds (scaled: see ``wait_for``)."""
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.common.v1 import common_pb2 as cpb

    ended = (cpb.JOB_STATE_SUCCEEDED, cpb.JOB_STATE_FAILED, cpb.JOB_STATE_CANCELLED)

    def done() -> bool:
        nonlocal job
        job = c.analysis.GetJob(apb.GetJobRequest(project=project, job_id=job.job_id)).job
        return job.state in ended

    def seen() -> tuple[str, str, float]:
        return cpb.JobState.Name(job.state), job.stage, round(job.progress, 4)

    wait_for(done, timeout=timeout, what=f"job {job.job_id} to end", progress=seen, stall=stall)
    assert job.state == cpb.JOB_STATE_SUCCEEDED, job.message
    return job


def create_pixel_digits(c: Client, project: str = "digits") -> None:
    """The classification project ``project`` (classes 0-9) with the 64-d cosine space "pixels"."""
    from shoal.ingest.v1 import ingest_pb2 as pb

    space = pb.EmbeddingSpace(name="pixels", dimension=64, metric=pb.DISTANCE_METRIC_COSINE,
                              level=pb.EMBEDDING_LEVEL_FRAME, model_name="raw", model_version="1")  # fmt: skip
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=project, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=i, name=str(i)) for i in range(10)],
        embedding_spaces=[space])))  # fmt: skip


def start_server(settings: ShoalSettings) -> Running:
    server = build_server(settings)
    port = server.start()
    target = f"127.0.0.1:{port}"
    with Client(target) as c:
        wait_for(
            lambda: c.health_status() == "SERVING",
            what=f"the server on {target} to be SERVING",
            progress=lambda: tuple(sorted(server.status().items())),
        )
    _, admin = server.keys.create(["*"], description="test admin")
    return Running(server, target, admin)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, chdb_path: pathlib.Path) -> Iterator[Running]:
    """One all-in-one server for a whole test module, on its own chDB database and data dir. Its tests
    keep apart by working each in a project of its own (the ``project`` fixture)."""
    r = start_server(server_settings(tmp_path_factory.mktemp("server") / "data", chdb_path))
    yield r
    r.server.stop(grace=1)


def project_name(name: str) -> str:
    """A project name unique to one test: ``p_``, the test's name shortened, a random suffix."""
    short = re.sub(r"[^a-z0-9]+", "_", name.lower().removeprefix("test_")).strip("_")[:40].rstrip("_")
    return f"p_{short}_{uuid.uuid4().hex[:6]}"


@pytest.fixture
def project(request: pytest.FixtureRequest) -> str:
    """The name of this test's own project on the module's ``shared`` server (not created yet)."""
    return project_name(request.node.name)
