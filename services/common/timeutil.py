"""Time as the stores keep it: UTC, millisecond precision (DateTime64(3))."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from shoal.common.errors import InvalidArgument


def now_ms() -> datetime:
    """Now in UTC, truncated to milliseconds, so what an RPC returns equals what is read back."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: object) -> datetime:
    """A datetime read from ClickHouse, as an aware UTC datetime."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


#: the times ClickHouse's DateTime64 columns hold (capture times, metadata times, label version
#: times), and so the only times Shoal accepts: 1900-01-01T00:00:00Z (inclusive) to
#: 2300-01-01T00:00:00Z (exclusive)
MIN_TIME_S = -2_208_988_800
END_TIME_S = 10_413_792_000
TIME_RANGE = "1900-01-01T00:00:00Z to 2299-12-31T23:59:59.999Z"


def time_problem(seconds: int, nanos: int, where: str) -> InvalidArgument | None:
    """What is wrong with a timestamp (seconds and nanos since the Unix epoch) for the stores'
    DateTime64 columns, as an error naming ``where``; None when nothing is."""
    if not 0 <= nanos < 1_000_000_000:
        return InvalidArgument(f"nanos {nanos} must lie in [0, 999999999]", field=where)
    if not MIN_TIME_S <= seconds < END_TIME_S:
        return InvalidArgument(
            f"time {seconds} s since the Unix epoch is outside the range Shoal stores ({TIME_RANGE})", field=where
        )
    return None


def time_in_range(ts: Timestamp, field: str) -> datetime:
    """A request's timestamp as an aware UTC datetime; raises InvalidArgument naming ``field``
    when it lies outside :data:`TIME_RANGE` or is not a valid timestamp."""
    problem = time_problem(ts.seconds, ts.nanos, field)
    if problem is not None:
        raise problem
    return ts.ToDatetime(tzinfo=UTC)
