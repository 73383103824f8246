"""The compiled-kernel cache's plumbing: the seed copied into NUMBA_CACHE_DIR once, numba's disk cache
turned on for a library's kernels compiled without it, and a build step's kernels compiled in processes."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import pytest

from shoal.common.jit import SEED_ENV, Warmup, cache_compiled, seed_cache, warm_in_processes

#: where the kernels below record the process that ran them (the pool's processes inherit the environment)
RAN = "SHOAL_TEST_WARM_RAN"


def _records_its_process() -> None:
    with open(os.environ[RAN], "a") as out:
        out.write(f"{os.getpid()}\n")


def _fails() -> None:
    raise RuntimeError("no compiler here")


def test_the_seed_cache_is_copied_once_and_a_missing_one_is_no_error(tmp_path: Path) -> None:
    seed, target = tmp_path / "seed", tmp_path / "numba"
    (seed / "shoal_analysis").mkdir(parents=True)
    (seed / "shoal_analysis" / "neighbors._drop_self-1.py311.nbi").write_bytes(b"index")
    env = {SEED_ENV: str(seed), "NUMBA_CACHE_DIR": str(target)}
    assert seed_cache(env) is True
    assert (target / "shoal_analysis" / "neighbors._drop_self-1.py311.nbi").read_bytes() == b"index"
    # a restart of the container keeps what the process compiled since: not copied over again
    (target / "shoal_analysis" / "neighbors._drop_self-1.py311.nbi").write_bytes(b"newer")
    assert seed_cache(env) is False
    assert (target / "shoal_analysis" / "neighbors._drop_self-1.py311.nbi").read_bytes() == b"newer"
    assert seed_cache({SEED_ENV: str(tmp_path / "absent"), "NUMBA_CACHE_DIR": str(tmp_path / "other")}) is False
    assert seed_cache({"NUMBA_CACHE_DIR": str(target)}) is False


def test_a_librarys_kernels_compiled_without_the_disk_cache_get_it(tmp_path: Path) -> None:
    source = tmp_path / "library_kernels.py"
    source.write_text(  # a module as a library would write it: numba.njit without cache=True
        "import numba\n\n@numba.njit\ndef double(x):\n    return 2 * x\n\n"
        "@numba.njit(cache=True)\ndef triple(x):\n    return 3 * x\n"
    )
    spec = importlib.util.spec_from_file_location("library_kernels", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert type(module.double._cache).__name__ == "NullCache"
    assert cache_compiled([module]) == 1, "only the kernel without a cache"
    assert cache_compiled([module]) == 0, "idempotent"
    assert module.double(21) == 42
    assert list((tmp_path / "__pycache__").glob("library_kernels.double-*.nbi")), "its code is kept on disk"


def test_a_build_steps_kernels_run_in_other_processes_and_a_failure_is_counted_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ran = tmp_path / "ran"
    monkeypatch.setenv(RAN, str(ran))
    with caplog.at_level(logging.ERROR, logger="shoal.common.jit"):
        seconds, failed = warm_in_processes([_records_its_process, _fails, _records_its_process], 2)
    assert failed == 1 and seconds > 0
    pids = ran.read_text().split()
    assert len(pids) == 2 and str(os.getpid()) not in pids
    assert "warming _fails failed" in caplog.text and "no compiler here" in caplog.text


def test_the_warm_up_thread_logs_a_failed_kernel_and_warms_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []
    worker = Warmup([_fails, lambda: ran.append("next")])
    with caplog.at_level(logging.INFO, logger="shoal.common.jit"):
        worker.run()
    assert ran == ["next"] and worker.done.is_set() and worker.seconds is not None
    assert "warming _fails failed" in caplog.text and "1 compiled kernels ready" in caplog.text
    assert "(1 failed)" in caplog.text
