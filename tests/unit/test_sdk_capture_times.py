"""Capture times travel in both chunk forms of the SDK: per frame (uploads with boxes) and columnar."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from shoal.sdk import Box, LabeledObject, UploadColumns

T = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)


def test_per_frame_chunks_carry_capture_times() -> None:
    cols = UploadColumns(frame_ids=["a", "b"], capture_times=[T, None],
                         objects=[[LabeledObject("o", 1, Box(0, 0, 2, 2))], []])  # fmt: skip
    (chunk,) = list(cols.chunks(10))
    assert chunk.frames[0].capture_time.ToDatetime(tzinfo=UTC) == T
    assert not chunk.frames[1].HasField("capture_time")


def test_columnar_chunks_carry_capture_times() -> None:
    cols = UploadColumns(frame_ids=["a", "b"], capture_times=[T, None], class_ids=[1, 2])
    (chunk,) = list(cols.chunks(10))
    got = np.frombuffer(chunk.columns.capture_times_ms_i64, dtype="<i8")
    assert got[0] == int(T.timestamp() * 1000) and got[1] == np.iinfo(np.int64).min
