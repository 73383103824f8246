"""Logging, configured once per process by :func:`configure` (the CLI calls it).

Every record logged while an RPC is served carries its request id and method (``request_id``,
``rpc``): :class:`RequestContextFilter` takes them from :mod:`shoal.common.telemetry`'s request
context, and both formats print them (JSON: one object per line, for log pipelines).
"""

from __future__ import annotations

import json
import logging
import sys
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
    for noisy in ("kafka", "pymilvus", "urllib3", "clickhouse_connect"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    _configured = True
