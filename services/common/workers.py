"""The loop a service runs beside its RPCs on a thread of its own (a Kafka consumer, a sender).

A :class:`ThreadWorker` is a :class:`~shoal.common.server.BackgroundWorker`: the server starts it once the
stores answer, asks :meth:`~ThreadWorker.healthy` for readiness, and stops it on shutdown. Subclasses write
:meth:`~ThreadWorker._run`, which loops until :attr:`~ThreadWorker._stop` is set; they use :class:`Backoff`
between failed attempts and set :attr:`~ThreadWorker._failing` while one lasts.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from shoal.common.errors import Unavailable

__all__ = ["Backoff", "ThreadWorker", "close_quietly"]

log = logging.getLogger(__name__)


def close_quietly(consumer: Any) -> None:
    """Closes a consumer whose attempt failed (leaving its group, so that what it did not commit comes
    again); a failure to close is only logged."""
    try:
        consumer.close()
    except Exception:
        log.debug("closing a consumer failed", exc_info=True)


class Backoff:
    """Exponential waits between failed attempts: ``initial``, twice that, ... up to ``maximum``."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.current = initial

    def reset(self) -> None:
        """An attempt succeeded: the next failure waits ``initial`` again."""
        self.current = self.initial

    def wait(self, stop: threading.Event) -> None:
        """Waits the current delay (returning early once ``stop`` is set), then doubles it."""
        stop.wait(self.current)
        self.current = min(self.current * 2, self.maximum)


class ThreadWorker:
    """A background loop on one daemon thread; healthy while the thread lives and no failure lasts."""

    name = "worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: why the last attempt failed, until one succeeds; readiness is off meanwhile
        self._failing: str | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout_seconds: float) -> None:
        """Asks the loop to end, wakes it, and waits up to ``timeout_seconds`` for it."""
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout_seconds)

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._failing is None

    def _interrupt(self) -> None:
        """Wakes a loop that waits on something other than :attr:`_stop` (override when it does)."""

    def _attempt_failed(self, exc: Exception, backoff: Backoff, consumer: Any = None) -> str:
        """After a failed attempt of a consumer's loop: logs it (a store or broker that does not answer
        as a warning, anything else with its traceback), closes ``consumer`` so that what it did not
        commit comes again, waits ``backoff`` (or until stopped), and returns why it failed."""
        if isinstance(exc, Unavailable):
            log.warning("%s: %s; uncommitted events will come again (retry in %.1fs)", self.name, exc, backoff.current)
            why = str(exc)
        else:
            log.exception("%s: unexpected failure; uncommitted events will come again", self.name)
            why = f"unexpected failure ({type(exc).__name__}: {exc}); see the log"
        if consumer is not None:
            close_quietly(consumer)
        backoff.wait(self._stop)
        return why

    def _run(self) -> None:
        raise NotImplementedError
