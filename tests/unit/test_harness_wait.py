"""The tests wait by readiness: a wait ends when the thing is ready, when it died, or when it stopped making
progress; a generous bound, multiplied by SHOAL_TEST_WAIT_SCALE, is only the last resort. A busy machine
slows the suite without failing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_a_wait_ends_when_the_process_that_would_answer_exits_and_quotes_its_log(tmp_path: Path) -> None:
    from tests.harness._wait import WaitFailed, process_exit, wait_until

    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "print('cannot open the metrics store', flush=True); raise SystemExit(3)"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    with pytest.raises(WaitFailed) as failed:
        wait_until(lambda: False, what="the server to serve", bound=600, dead=process_exit(process, "the server", log))
    message = str(failed.value)
    assert "the server to serve" in message
    assert "exited with code 3" in message
    assert "cannot open the metrics store" in message


def test_a_wait_that_keeps_making_progress_outlasts_its_stall_period(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.harness._wait import wait_until

    monkeypatch.setenv("SHOAL_TEST_WAIT_SCALE", "1")
    rows = [0]

    def written() -> int:
        rows[0] += 1
        return rows[0]

    # a row per look, a look every 5 ms or more: ready only after ten stall periods of 20 ms
    assert wait_until(
        lambda: rows[0] >= 40, what="40 rows", bound=600, progress=written, stall=0.02, interval=0.005, progress_every=0
    )
    assert rows[0] >= 40


def test_a_wait_that_stopped_making_progress_ends_and_names_the_last_state(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.harness._wait import WaitFailed, wait_until

    monkeypatch.setenv("SHOAL_TEST_WAIT_SCALE", "1")
    with pytest.raises(WaitFailed) as failed:
        wait_until(
            lambda: False,
            what="job j1 to end",
            bound=600,
            progress=lambda: ("RUNNING", "encode", 0.4),
            stall=0.2,
            progress_every=0.01,
        )
    message = str(failed.value)
    assert "job j1 to end" in message and "no progress" in message
    assert "('RUNNING', 'encode', 0.4)" in message


def test_the_wait_for_of_the_server_tests_says_what_it_waited_for_and_the_last_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.server.conftest import wait_for

    monkeypatch.setenv("SHOAL_TEST_WAIT_SCALE", "0.001")  # a 30 s bound becomes 30 ms
    with pytest.raises(AssertionError) as failed:
        wait_for(lambda: False, what="upload u1 to complete", progress=lambda: "PROCESSING 3/7")
    assert "upload u1 to complete" in str(failed.value)
    assert "PROCESSING 3/7" in str(failed.value)
    assert "SHOAL_TEST_WAIT_SCALE" in str(failed.value)


def test_every_bound_is_multiplied_by_the_scale_and_a_bad_scale_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.harness._wait import DEFAULT_WAIT_SCALE, scaled

    monkeypatch.delenv("SHOAL_TEST_WAIT_SCALE", raising=False)
    assert scaled(30) == 30 * DEFAULT_WAIT_SCALE >= 90  # a machine three times slower passes
    monkeypatch.setenv("SHOAL_TEST_WAIT_SCALE", "2.5")
    assert scaled(30) == 75
    monkeypatch.setenv("SHOAL_TEST_WAIT_SCALE", "0")
    with pytest.raises(ValueError, match="SHOAL_TEST_WAIT_SCALE='0' is not a positive number"):
        scaled(30)


def _scale() -> float:
    from tests.harness._wait import wait_scale

    return wait_scale()


def test_the_per_test_timeout_is_scaled_like_the_waits(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("timeout", None) is not None:
        pytest.skip("--timeout was given: it applies as given")
    marker = request.node.get_closest_marker("timeout")
    assert marker is not None and marker.args[0] == float(request.config.getini("timeout")) * _scale()


@pytest.mark.timeout(60)
def test_a_timeout_marker_is_scaled_too(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("timeout").args[0] == 60 * _scale()
