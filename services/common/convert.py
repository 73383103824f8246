"""Conversions between protobuf messages of shoal.common.v1 and domain objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from shoal.common import jobs
from shoal.common.errors import InvalidArgument
from shoal.common.pagination import Page, next_token, read_page
from shoal.common.timeutil import as_utc
from shoal.common.v1 import common_pb2


def timestamp(dt: datetime | None) -> Timestamp | None:
    if dt is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(dt.astimezone(UTC))
    return ts


def job_to_proto(job: jobs.Job) -> common_pb2.Job:
    msg = common_pb2.Job(
        job_id=job.job_id,
        project=job.project,
        kind=job.kind,
        state=common_pb2.JobState.Value(f"JOB_STATE_{job.state}"),
        stage=job.stage,
        progress=job.progress,
        message=job.message,
        params=dict(job.params),
        create_time=timestamp(job.create_time),
        update_time=timestamp(job.update_time),
    )
    if job.finish_time is not None:
        msg.finish_time.CopyFrom(timestamp(job.finish_time))
    return msg


def job_states(values: list[int]) -> list[str]:
    out = []
    for i, v in enumerate(values):
        if v == common_pb2.JOB_STATE_UNSPECIFIED or v not in common_pb2.JobState.values():
            raise InvalidArgument(f"unknown job state {v}", field=f"states[{i}]")
        out.append(common_pb2.JobState.Name(v).removeprefix("JOB_STATE_"))
    return out


def page_of(request_page: common_pb2.PageRequest, *, scope: str) -> Page:
    return read_page(request_page.page_size, request_page.page_token, scope=scope)


def page_response(page: Page, returned: int, total: int, *, scope: str) -> common_pb2.PageResponse:
    return common_pb2.PageResponse(next_page_token=next_token(page, returned, total, scope=scope), total_count=total)


def set_value(v: common_pb2.Value, kind: str, value: Any) -> None:
    """Sets ``v`` to a metadata value of ``kind`` (string, number, bool, timestamp)."""
    if kind == "string":
        v.string_value = value
    elif kind == "number":
        v.number_value = value
    elif kind == "bool":
        v.bool_value = bool(value)
    else:
        v.timestamp_value.CopyFrom(timestamp(as_utc(value)))
