"""The tests' wait for the kernels compiling in the background (tests/harness/kernels.py), against a real lock held
by another process as scripts/warm-kernels.sh holds it."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import kernels

HOLDER = """
import fcntl, sys
f = open(sys.argv[1], "w")
fcntl.flock(f, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()  # holds the lock until its stdin closes
"""


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(kernels, "LOCK", tmp_path / "kernels.lock")
    monkeypatch.setattr(kernels, "LOG", tmp_path / "kernels.log")
    monkeypatch.setattr(kernels, "DONE", tmp_path / ".kernels-compiled")
    monkeypatch.setattr(kernels, "_waited", False)
    return tmp_path


@pytest.fixture
def compiling(paths: Path) -> Iterator[subprocess.Popen[str]]:
    """A process holding the lock, as the background compilation does, until its stdin is closed."""
    (paths / "kernels.log").write_text("compiling\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(paths / "kernels.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    yield holder
    holder.kill()
    holder.wait()


def test_without_a_warm_up_nothing_is_waited_for(paths: Path) -> None:
    assert kernels.wait_for_warm_up(timeout=0.1) == (0.0, "")


def test_the_first_wait_lasts_until_the_compilation_lets_go_and_later_ones_return_at_once(
    paths: Path, compiling: subprocess.Popen[str]
) -> None:
    outcome: list[tuple[float, str]] = []
    waiter = threading.Thread(target=lambda: outcome.append(kernels.wait_for_warm_up(timeout=600)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "the test waits while the compilation holds the lock"

    (paths / ".kernels-compiled").touch()
    assert compiling.stdin is not None
    compiling.stdin.close()  # the compilation ends and lets go of the lock
    compiling.wait()
    waiter.join(60)
    assert not waiter.is_alive()
    waited, problem = outcome[0]
    assert waited >= 0.5 and problem == ""

    assert kernels.wait_for_warm_up(timeout=600) == (0.0, ""), "once per process"


def test_a_compilation_that_does_not_end_holds_the_tests_back_only_until_the_bound(
    paths: Path, compiling: subprocess.Popen[str]
) -> None:
    waited, problem = kernels.wait_for_warm_up(timeout=0.2)
    assert waited == 0.2
    assert "still compiling after 0 s" in problem and str(paths / "kernels.log") in problem


def test_a_failed_compilation_is_reported_once(paths: Path, compiling: subprocess.Popen[str]) -> None:
    assert compiling.stdin is not None
    compiling.stdin.close()  # ends without writing the marker of success
    compiling.wait()
    _, problem = kernels.wait_for_warm_up(timeout=60)
    assert "not compiled ahead" in problem and str(paths / ".kernels-compiled") in problem
    assert kernels.wait_for_warm_up(timeout=60) == (0.0, "")
