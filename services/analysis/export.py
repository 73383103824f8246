"""Every frame's result of a finished job as one Arrow IPC stream, for notebooks and pipelines.

The Query RPCs answer pages for people; a pipeline that wants all of a job's scores would otherwise
page through them 1,000 rows at a time. Here the job's per-frame table is read in blocks
(``MetricsStore.query_batches``) and written as Arrow record batches into one IPC stream, cut into
messages small enough for any gRPC client's default limit (4 MiB)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from shoal.common.stores.metrics import MetricsStore

DEFAULT_BATCH_ROWS = 131_072
MAX_BATCH_ROWS = 1_048_576
#: bytes of the stream per message
MESSAGE_BYTES = 1 << 20


@dataclass(frozen=True)
class FrameTable:
    """A job kind's per-frame result: its table (keyed by project, job_id, frame_id) and the columns
    exported (constant SQL, frame_id first)."""

    table: str
    columns: str


def count(metrics: MetricsStore, spec: FrameTable, project: str, job_id: str) -> int:
    sql = f"SELECT count() FROM {spec.table} FINAL WHERE project = {{p:String}} AND job_id = {{j:String}}"
    return int(metrics.query(sql, {"p": project, "j": job_id}).scalar())


def record_batches(
    metrics: MetricsStore, spec: FrameTable, project: str, job_id: str, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The job's rows in frame id order, as record batches of at most ``batch_rows`` rows; at least
    one batch (empty when the job wrote no rows), so that the stream always carries the schema."""
    sql = (f"SELECT {spec.columns} FROM {spec.table} FINAL"
           " WHERE project = {p:String} AND job_id = {j:String} ORDER BY frame_id")  # fmt: skip
    params = {"p": project, "j": job_id}
    schema: pa.Schema | None = None
    for block in metrics.query_batches(sql, params):
        batch = _plain(block)
        schema = schema or batch.schema
        for start in range(0, batch.num_rows, batch_rows):
            yield batch.slice(start, batch_rows)
    if schema is None:  # no rows: the schema of the empty answer
        empty = metrics.query_arrow(f"{sql} LIMIT 0", params)
        yield _plain(pa.RecordBatch.from_pylist([], schema=empty.schema))


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with dictionary columns (ClickHouse's LowCardinality) decoded and binary columns read as
    UTF-8, so that every batch of a stream has one schema."""
    arrays, fields = [], []
    for f, col in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_dictionary(f.type):
            col = col.dictionary_decode()
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
            col = pc.cast(col, pa.string())
        arrays.append(col)
        fields.append(pa.field(f.name, col.type, nullable=f.nullable))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def arrow_stream(table: pa.Table) -> bytes:
    """``table`` as one Arrow IPC stream, its columns made plain as :func:`_plain` makes them."""
    batches = [_plain(b) for b in table.to_batches()] or [_plain(pa.RecordBatch.from_pylist([], schema=table.schema))]
    return b"".join(ipc_chunks(iter(batches)))


def ipc_chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    """One Arrow IPC stream of ``batches`` (schema, batches, end), cut into pieces of at most
    :data:`MESSAGE_BYTES`, each yielded as soon as its batch is written."""
    sink = io.BytesIO()
    writer = None
    for batch in batches:
        if writer is None:
            writer = pa.ipc.new_stream(sink, batch.schema)
        writer.write_batch(batch)
        yield from _take(sink)
    if writer is not None:
        writer.close()
        yield from _take(sink)


def _take(sink: io.BytesIO) -> Iterator[bytes]:
    """What ``sink`` holds, in pieces; the sink is emptied."""
    data = sink.getbuffer()
    try:
        for start in range(0, len(data), MESSAGE_BYTES):
            yield bytes(data[start : start + MESSAGE_BYTES])
    finally:
        data.release()
    sink.seek(0)
    sink.truncate()
