"""Time as the stores keep it: UTC, millisecond precision (DateTime64(3))."""

from __future__ import annotations

from datetime import UTC, datetime


def now_ms() -> datetime:
    """Now in UTC, truncated to milliseconds, so what an RPC returns equals what is read back."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: object) -> datetime:
    """A datetime read from ClickHouse, as an aware UTC datetime."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)
