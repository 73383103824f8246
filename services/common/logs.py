"""Logging, configured once per process by :func:`configure` (the CLI calls it).

Every record logged while an RPC is served carries its request id and method (``request_id``,
``rpc``): :class:`RequestContextFilter` takes them from :mod:`shoal.common.telemetry`'s request
context, and both formats print them (JSON: one object per line, for log pipelines).

grpc logs a traceback for every request whose bytes do not parse, before any Shoal code (or key
check) runs: :class:`UnparsableRequestFilter` turns those into one line at most every ten seconds,
with how many were left out, so garbage sent to the port cannot flood the log.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime

from shoal.common import telemetry

_configured = False


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` and ``rpc`` to a record (empty outside an RPC) unless it has them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            ctx = telemetry.current_request()
            record.request_id = ctx.request_id if ctx else ""
            record.rpc = ctx.method if ctx else ""
        elif not hasattr(record, "rpc"):
            record.rpc = ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            data["request_id"] = request_id
            data["rpc"] = getattr(record, "rpc", "")
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", "")
        return f"{text} [request {request_id}]" if request_id else text


class UnparsableRequestFilter(logging.Filter):
    """On grpc's loggers: "Exception deserializing message!" (logged with a traceback for each
    request that is not a valid protobuf) becomes one line without the traceback, at most one
    every ``interval_seconds``; the next says how many were left out. grpc logs these before
    dispatch, so the record names no method; the caller gets INTERNAL from grpc."""

    def __init__(self, interval_seconds: float = 10.0) -> None:
        super().__init__()
        self.interval_seconds = interval_seconds
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Exception deserializing"):
            return True
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval_seconds:
                self._suppressed += 1
                return False
            self._last, suppressed, self._suppressed = now, self._suppressed, 0
        cause = record.exc_info[1] if record.exc_info else None
        why = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        more = f"; {suppressed} more in the last {self.interval_seconds:.0f}s not shown" if suppressed else ""
        record.msg = "a request could not be parsed (not a valid protobuf message); grpc answered INTERNAL%s%s"
        record.args = (str(why)[:200], more)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_grpc_filter = UnparsableRequestFilter()


def install_grpc_filters() -> None:
    """Puts :class:`UnparsableRequestFilter` on grpc's loggers (once; any later call does nothing)."""
    for name in ("grpc._common", "grpc._server"):
        logger = logging.getLogger(name)
        if _grpc_filter not in logger.filters:
            logger.addFilter(_grpc_filter)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Sends logs to stderr, in text or one JSON object per line. Later calls do nothing."""
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    install_grpc_filters()
    for noisy in ("kafka", "pymilvus", "urllib3", "clickhouse_connect"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    _configured = True
