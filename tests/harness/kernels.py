"""Waiting for the analysis kernels that `make test` compiles in the background (scripts/warm-kernels.sh start).

pytest starts while they compile: the session servers start, and the tests marked `own_kernel_cache` run, in the
meantime. Every other test first waits, once per process, until the compilation holds its lock no more, so no test
process compiles the same kernels beside it. Without a warm-up (pytest run by hand) nothing is waited for."""

from __future__ import annotations

import fcntl
import os
import pathlib
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
LOCK = REPO / ".cache" / "kernels.lock"
LOG = REPO / ".cache" / "kernels.log"
# written by scripts/warm-kernels.sh once `shoal warm-up` succeeded
DONE = pathlib.Path(sys.prefix) / ".kernels-compiled"

_lock = threading.Lock()
_waited = False


def wait_for_warm_up(timeout: float | None = None) -> tuple[float, str]:
    """Block until the background compilation is over, the first time in a process (later calls return at once).
    Returns the seconds waited and "" when there was nothing to wait for or the kernels compiled, else (the
    first time only) a line saying why the tests will compile the kernels on first use."""
    global _waited
    with _lock:
        if _waited:
            return 0.0, ""
        _waited = True
        return _wait(float(os.environ.get("SHOAL_KERNELS_WAIT_SECONDS", "900")) if timeout is None else timeout)


def _wait(timeout: float) -> tuple[float, str]:
    if not LOCK.exists():
        return 0.0, ""
    fd = os.open(LOCK, os.O_RDONLY)
    released = threading.Event()

    def take() -> None:
        # blocks while the compilation holds the lock; in a thread of its own so that the wait is bounded: a
        # compilation that hangs must not hold the tests back
        fcntl.flock(fd, fcntl.LOCK_SH)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        released.set()

    started = time.monotonic()
    threading.Thread(target=take, name="kernels-wait", daemon=True).start()
    if not released.wait(timeout):
        return (
            timeout,
            f"the kernels were still compiling after {timeout:.0f} s; the tests compile what they need ({LOG})",
        )
    waited = time.monotonic() - started
    if DONE.exists() or not LOG.exists():
        return waited, ""
    return waited, f"the kernels were not compiled ahead (no {DONE}); the tests compile what they need (see {LOG})"
