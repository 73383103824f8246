"""Time as the stores keep it: UTC, millisecond precision (DateTime64(3))."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def now_ms() -> datetime:
    """Now in UTC, truncated to milliseconds, so what an RPC returns equals what is read back."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: object) -> datetime:
    """A datetime read from ClickHouse, as an aware UTC datetime."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


#: the times ClickHouse's DateTime64 columns hold, and so the only times Shoal accepts:
#: 1900-01-01T00:00:00Z (inclusive) to 2300-01-01T00:00:00Z (exclusive)
MIN_SECONDS = -2_208_988_800
END_SECONDS = 10_413_792_000
TIME_RANGE = "1900-01-01T00:00:00Z to 2299-12-31T23:59:59.999Z"


def time_in_range(ts: Timestamp, field: str) -> datetime:
    """A request's timestamp as an aware UTC datetime; raises InvalidArgument naming ``field``
    when it lies outside :data:`TIME_RANGE` or is not a valid timestamp."""
    from shoal.common.errors import InvalidArgument

    if not (MIN_SECONDS <= ts.seconds < END_SECONDS and 0 <= ts.nanos < 1_000_000_000):
        raise InvalidArgument(
            f"{ts.seconds}s {ts.nanos}ns is outside the times Shoal stores ({TIME_RANGE})", field=field
        )
    return ts.ToDatetime(tzinfo=UTC)
