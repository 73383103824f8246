"""Waiting by readiness: a wait ends when the awaited thing is ready, or when it can no longer become ready.

It can no longer become ready when the process that would make it ready died (the error quotes its exit code
and the end of its log), or when it stopped making progress: the state it reports has not changed for a
stall period. One generous outer bound stays as a last resort. Every period is multiplied by
``SHOAL_TEST_WAIT_SCALE``, so a busy machine slows the tests without failing them::

    wait_until(server_answers, what="the broker to answer Metadata",
               dead=process_exit(process, log), progress=lambda: (log_size(), cpu_seconds(process.pid)),
               stall=120, bound=600)

Only the standard library: the harnesses run before anything else is importable.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

__all__ = [
    "DEFAULT_WAIT_SCALE",
    "WAIT_SCALE_ENV",
    "WaitFailed",
    "process_exit",
    "scaled",
    "tree_cpu_seconds",
    "wait_scale",
    "wait_until",
]

#: The environment variable that multiplies every bound and stall period of the test waits.
WAIT_SCALE_ENV = "SHOAL_TEST_WAIT_SCALE"
#: Bounds in the tests are what an unloaded machine needs with some margin; by default each is taken four
#: times, so that a machine three to four times slower (two cores shared by several runs) still passes.
DEFAULT_WAIT_SCALE = 4.0

T = TypeVar("T")


class WaitFailed(RuntimeError):
    """The awaited thing did not become ready and no longer can (or the last-resort bound passed)."""


def wait_scale() -> float:
    """The factor of ``SHOAL_TEST_WAIT_SCALE`` (``DEFAULT_WAIT_SCALE`` when unset)."""
    raw = os.environ.get(WAIT_SCALE_ENV, "").strip()
    if not raw:
        return DEFAULT_WAIT_SCALE
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(
            f"{WAIT_SCALE_ENV}={raw!r} is not a positive number: set it to the factor by which this machine is "
            f"slower than an unloaded one (default {DEFAULT_WAIT_SCALE:g})"
        )
    return value


def scaled(seconds: float) -> float:
    """``seconds`` multiplied by :func:`wait_scale`."""
    return seconds * wait_scale()


def _ticks_per_second() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) used so far by process ``pid`` and its living descendants, read from
    ``/proc``; 0.0 where ``/proc`` cannot be read. A process that is doing work raises it, however slowly a
    busy machine lets it run."""
    parents: dict[int, int] = {}
    used: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0.0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = pathlib.Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..." where comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        try:
            parents[int(entry)] = int(fields[1])
            used[int(entry)] = int(fields[11]) + int(fields[12])  # utime, stime
        except (IndexError, ValueError):
            continue
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        total += used.get(current, 0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total / _ticks_per_second()


def _tail(path: pathlib.Path | None, lines: int = 40, since: int = 0) -> str:
    if path is None:
        return ""
    try:
        with path.open("rb") as log:
            log.seek(since)
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return f"(cannot read {path})"
    if not text.strip():
        return f"(nothing in {path})"
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def process_exit(
    process: subprocess.Popen[bytes] | Callable[[], subprocess.Popen[bytes] | None],
    name: str,
    log: pathlib.Path | Callable[[], str] | None = None,
) -> Callable[[], str | None]:
    """A ``dead`` check for :func:`wait_until`: None while ``process`` runs; once it has exited, a message with
    its exit code and the end of ``log`` (a file, or a callable that returns the text to quote)."""

    def check() -> str | None:
        current = process() if callable(process) else process
        if current is None:
            return f"{name} is not running"
        code = current.poll()
        if code is None:
            return None
        tail = log() if callable(log) else _tail(log)
        where = f" (log: {log})" if isinstance(log, pathlib.Path) else ""
        return f"{name} exited with code {code}{where}:\n{tail}" if tail else f"{name} exited with code {code}"

    return check


def wait_until(
    ready: Callable[[], T],
    *,
    what: str,
    bound: float,
    dead: Callable[[], str | None] | None = None,
    progress: Callable[[], Hashable] | None = None,
    stall: float | None = None,
    interval: float = 0.05,
    max_interval: float | None = None,
    progress_every: float = 1.0,
    error: type[Exception] = WaitFailed,
) -> T:
    """Polls ``ready()`` until it returns a true value, and returns that value.

    Args:
        ready: the readiness check; polled every ``interval`` seconds, growing by half each time up to
            ``max_interval`` (``interval`` when unset), so the fast path stays fast.
        what: what is awaited, for the error message ("the Kafka broker on 127.0.0.1:9092 to serve").
        bound: the last-resort bound in seconds of an unloaded machine; multiplied by :func:`wait_scale`.
        dead: None while the awaited thing can still become ready, else why it cannot (a process exited);
            the wait ends at once with that message.
        progress: the state the awaited thing reports (a job's stage and progress, a log's size, rows
            written); quoted in the error, and with ``stall``, the wait ends when it has not changed for
            ``stall`` seconds (multiplied by :func:`wait_scale`). Read every ``progress_every`` seconds.
        error: the exception type raised (``AssertionError`` in tests, :class:`WaitFailed` in harnesses).

    Raises:
        error: the thing died, stalled, or the bound passed; the message says what was awaited, for how
            long, and the last state seen.
    """
    scale = wait_scale()
    limit = bound * scale
    stall_limit = None if stall is None else stall * scale
    started = time.monotonic()
    delay = interval
    state: Hashable = None
    changed_at = started
    read_at = float("-inf")

    def fail(reason: str) -> Exception:
        seen = f"; last state seen: {state!r}" if progress is not None else ""
        return error(f"waited {time.monotonic() - started:.1f}s for {what}: {reason}{seen}")

    while True:
        value = ready()
        if value:
            return value
        now = time.monotonic()
        if dead is not None:
            reason = dead()
            if reason is not None:
                # the last look: it may have become ready just before it went away
                value = ready()
                if value:
                    return value
                raise fail(reason)
        if progress is not None and now - read_at >= progress_every:
            read_at = now
            current = progress()
            if current != state:
                state, changed_at = current, now
            elif stall_limit is not None and now - changed_at >= stall_limit:
                raise fail(
                    f"no progress for {now - changed_at:.0f}s (the stall period is {stall:g}s x {WAIT_SCALE_ENV} "
                    f"{scale:g})"
                )
        if now - started >= limit:
            raise fail(
                f"not ready within the last-resort bound of {limit:.0f}s ({bound:g}s x {WAIT_SCALE_ENV} {scale:g}; "
                f"raise {WAIT_SCALE_ENV} on a slower machine)"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, max_interval if max_interval is not None else interval)
