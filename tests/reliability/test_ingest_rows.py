"""No good row is lost with a bad one, and an upload's status tells the truth.

One server for the module (embedded stores); each test works in a dataset of its own.
"""

from __future__ import annotations

import json
import pathlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.conftest import server_settings
from tests.server.conftest import Running, start_server, wait_for

PROJECT = "rows"
K = 3


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, chdb_path: pathlib.Path) -> Iterator[Running]:
    settings = server_settings(tmp_path_factory.mktemp("rows-data"), chdb_path)
    r = start_server(settings)
    with r.client(r.admin_key) as c:
        c.ingest.CreateProject(
            pb.CreateProjectRequest(
                project=pb.Project(
                    name=PROJECT,
                    task_type=pb.TASK_TYPE_CLASSIFICATION,
                    classes=[pb.ClassDef(id=i, name=f"c{i}") for i in range(K)],
                )
            )
        )
    yield r
    r.server.stop(grace=1)


def _dataset(running: Running) -> str:
    name = f"d{uuid.uuid4().hex[:8]}"
    with running.client(running.admin_key) as c:
        c.ingest.CreateDataset(
            pb.CreateDatasetRequest(
                project=PROJECT, dataset=pb.Dataset(name=name, kind=pb.DATASET_KIND_LABELED, splits=["train"])
            )
        )
    return name


def _frames(n: int, prefix: str = "f") -> pb.UploadChunk:
    chunk = pb.UploadChunk()
    for i in range(n):
        frame = chunk.frames.add(frame_id=f"{prefix}{i}", split="train", width=8, height=8)
        frame.capture_time.FromDatetime(datetime(2024, 1, 1, tzinfo=UTC))
        frame.metadata["camera"].string_value = "front"
    return chunk


def _status(c, upload_id: str) -> pb.UploadStatus:  # type: ignore[no-untyped-def]
    return c.ingest.GetUploadStatus(pb.GetUploadStatusRequest(project=PROJECT, upload_id=upload_id)).status


def _written(c, upload_id: str) -> int:  # type: ignore[no-untyped-def]
    try:
        return _status(c, upload_id).written.frames
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            return 0
        raise


def _wait_settled(c, upload_id: str) -> pb.UploadStatus:  # type: ignore[no-untyped-def]
    """The status once it is no longer PROCESSING."""
    seen: list[pb.UploadStatus] = []

    def settled() -> bool:
        try:
            st = _status(c, upload_id)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        seen.append(st)
        return st.state != pb.UPLOAD_STATE_PROCESSING

    wait_for(settled, timeout=60, what=f"upload {upload_id} to settle")
    return seen[-1]


def _publish(running: Running, dataset: str, upload_id: str, chunk: pb.UploadChunk, **fields: int) -> None:
    """An UploadEvent written straight to the uploads topic, as a producer of its own does."""
    event = pb.UploadEvent(
        schema_version=1, upload_id=upload_id, project=PROJECT, dataset=dataset, chunk=chunk, **fields
    )
    topics = Topics(running.server.settings.topic_prefix)
    running.server.stores.events.publish(
        topics.uploads, key=f"{PROJECT}/{dataset}".encode(), value=event.SerializeToString()
    ).result(timeout=10)


def _dead_letters(running: Running, upload_id: str, count: int = 1) -> list[pb.UploadEvent]:
    topics = Topics(running.server.settings.topic_prefix)
    dlq = running.server.stores.events.consumer(f"test-dlq-{uuid.uuid4().hex}", [topics.dead_letter])
    got: list = []

    def arrived() -> bool:
        got.extend(e for e in dlq.poll(0.5) if upload_id.encode() in e.value)
        return len(got) >= count

    try:
        wait_for(arrived, timeout=60, what=f"dead letters of {upload_id}")
    finally:
        dlq.close()
    for e in got:
        headers = dict(e.headers)
        assert headers["shoal-reason"] and json.loads(headers["shoal-errors"])
    return [pb.UploadEvent.FromString(e.value) for e in got]


def _frame_ids(running: Running, dataset: str) -> set[str]:
    rows = running.server.stores.metrics.query(
        "SELECT frame_id FROM frames FINAL WHERE project = {p:String} AND dataset = {d:String}",
        {"p": PROJECT, "d": dataset},
    ).rows
    return {r[0] for r in rows}


def _refused(c, dataset: str, chunk: pb.UploadChunk, **fields: object) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        c.ingest.Upload(iter([pb.UploadRequest(project=PROJECT, dataset=dataset, chunk=chunk, **fields)]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    return info.value


# -- one bad timestamp -------------------------------------------------------------------------


@pytest.mark.parametrize("year", [1000, 3000])
def test_rpc_refuses_a_capture_time_the_store_cannot_hold(running: Running, year: int) -> None:
    dataset = _dataset(running)
    chunk = _frames(100)
    chunk.frames[37].capture_time.FromDatetime(datetime(year, 6, 1, tzinfo=UTC))
    with running.client(running.admin_key) as c:
        err = _refused(c, dataset, chunk)
        assert "chunk.frames[37].capture_time" in err.details() and "'f37'" in err.details()
        assert "1900-01-01" in err.details() and "2299-12-31" in err.details()

        cols = pb.UploadChunk()
        cols.columns.frame_ids.extend(f"c{i}" for i in range(100))
        times = np.full(100, 1_700_000_000_000, dtype="<i8")
        times[12] = 10**15  # year 33658
        cols.columns.capture_times_ms_i64 = times.tobytes()
        err = _refused(c, dataset, cols)
        assert "chunk.columns.capture_times_ms_i64[12]" in err.details() and "'c12'" in err.details()


def test_metadata_and_provenance_times_are_checked_per_row(running: Running) -> None:
    dataset = _dataset(running)
    with running.client(running.admin_key) as c:
        chunk = _frames(10)
        chunk.frames[4].metadata["seen"].timestamp_value.FromDatetime(datetime(2500, 1, 1, tzinfo=UTC))
        err = _refused(c, dataset, chunk)
        assert "chunk.frames[4].metadata['seen']" in err.details()

        chunk = _frames(10)
        chunk.labels.add(frame_id="f3", class_id=1).provenance.time.FromDatetime(datetime(1800, 1, 1, tzinfo=UTC))
        err = _refused(c, dataset, chunk)
        assert "chunk.labels[0].provenance.time" in err.details()


def test_event_with_one_bad_time_writes_the_other_99_frames(running: Running) -> None:
    dataset = _dataset(running)
    chunk = _frames(100)
    chunk.frames[37].capture_time.FromDatetime(datetime(1000, 6, 1, tzinfo=UTC))
    upload_id = f"producer-{uuid.uuid4().hex[:8]}"
    _publish(running, dataset, upload_id, chunk)
    with running.client(running.admin_key) as c:
        st = _wait_settled(c, upload_id)
    assert st.state == pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS
    assert (st.chunks_processed, st.chunks_total) == (1, 1)
    assert (st.written.frames, st.rejected.frames) == (99, 1)
    assert [(e.detail.field, e.detail.datapoint.frame_id) for e in st.errors] == [
        ("chunk.frames[37].capture_time", "f37")
    ]
    assert _frame_ids(running, dataset) == {f"f{i}" for i in range(100)} - {"f37"}
    (part,) = _dead_letters(running, upload_id)
    assert [f.frame_id for f in part.chunk.frames] == ["f37"]


def test_rows_the_store_refuses_are_rejected_alone(running: Running) -> None:
    """A row that passes validation but that the store refuses (here: a constraint of the frames
    table) is rejected and dead-lettered with the store's reason; the rest of its chunk is
    written and the status says so."""
    dataset = _dataset(running)
    running.server.stores.metrics.command(
        f"ALTER TABLE frames ADD CONSTRAINT refuse_{dataset} CHECK frame_id != 'poison-{dataset}'"
    )
    chunk = _frames(100)
    chunk.frames[61].frame_id = f"poison-{dataset}"
    upload_id = f"producer-{uuid.uuid4().hex[:8]}"
    _publish(running, dataset, upload_id, chunk, total_chunks=1)
    # the same in the columnar form, with labels: the refused frame's label goes with it
    cols = pb.UploadChunk()
    cols.columns.frame_ids.extend(f"c{i}" for i in range(50))
    cols.columns.frame_ids[7] = f"poison-{dataset}"
    cols.columns.label_class_ids_i32 = np.full(50, 1, dtype="<i4").tobytes()
    columnar_id = f"producer-{uuid.uuid4().hex[:8]}"
    _publish(running, dataset, columnar_id, cols, total_chunks=1)
    with running.client(running.admin_key) as c:
        st = _wait_settled(c, upload_id)
        by_columns = _wait_settled(c, columnar_id)
    running.server.stores.metrics.command(f"ALTER TABLE frames DROP CONSTRAINT refuse_{dataset}")
    assert by_columns.state == pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS
    assert (by_columns.written.frames, by_columns.written.labels) == (49, 49)
    assert (by_columns.rejected.frames, by_columns.rejected.labels) == (1, 1)
    assert {e.detail.field for e in by_columns.errors} == {"chunk.columns.frame_ids[7]"}
    assert st.state == pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS
    assert (st.chunks_processed, st.chunks_total) == (1, 1)
    assert (st.written.frames, st.rejected.frames) == (99, 1)
    assert len(st.errors) == 1 and st.errors[0].detail.datapoint.frame_id == f"poison-{dataset}"
    assert "refuse_" in st.errors[0].detail.message
    assert len(_frame_ids(running, dataset)) == 99 + 49
    (part,) = _dead_letters(running, upload_id)
    assert [f.frame_id for f in part.chunk.frames] == [f"poison-{dataset}"]
    (part,) = _dead_letters(running, columnar_id)
    assert list(part.chunk.columns.frame_ids) == [f"poison-{dataset}"]


# -- chunk index bounds, extreme but storable times --------------------------------------------


def test_chunk_index_and_total_are_bounded(running: Running) -> None:
    dataset = _dataset(running)
    with running.client(running.admin_key) as c:
        err = _refused(c, dataset, _frames(1), chunk_index=2**63 - 1)
        assert "chunk_index" in err.details()
        err = _refused(c, dataset, _frames(1), total_chunks=2**62)
        assert "total_chunks" in err.details()


def test_frames_at_the_ends_of_the_time_range_page_and_sort(running: Running) -> None:
    dataset = _dataset(running)
    chunk = _frames(4)
    chunk.frames[0].capture_time.FromDatetime(datetime(1900, 1, 1, tzinfo=UTC))
    chunk.frames[1].capture_time.FromDatetime(datetime(2299, 12, 31, 23, 59, 59, tzinfo=UTC))
    chunk.frames[2].ClearField("capture_time")
    chunk.frames[0].metadata["seen"].timestamp_value.FromDatetime(datetime(2299, 12, 31, tzinfo=UTC))
    chunk.frames[1].metadata["seen"].timestamp_value.FromDatetime(datetime(1900, 1, 1, tzinfo=UTC))
    with running.client(running.admin_key) as c:
        resp = c.ingest.Upload(iter([pb.UploadRequest(project=PROJECT, dataset=dataset, chunk=chunk)]))
        assert _wait_settled(c, resp.upload_id).state == pb.UPLOAD_STATE_COMPLETED
        for descending, first in ((False, "f0"), (True, "f1")):
            page = c.analysis.QueryDatapoints(
                apb.QueryDatapointsRequest(
                    project=PROJECT,
                    dataset=dataset,
                    sort=[apb.SortKey(field="capture_time", descending=descending)],
                    page=cpb.PageRequest(page_size=2),
                )
            )
            assert page.datapoints[0].ref.frame_id == first
            assert page.page.total_count >= 3
            by_seen = c.analysis.QueryDatapoints(
                apb.QueryDatapointsRequest(
                    project=PROJECT,
                    dataset=dataset,
                    sort=[apb.SortKey(field="metadata.seen", descending=descending)],
                    page=cpb.PageRequest(page_size=1),
                )
            )
            assert by_seen.datapoints[0].ref.frame_id == ("f0" if descending else "f1")
            seen = by_seen.datapoints[0].metadata["seen"].timestamp_value.ToDatetime(tzinfo=UTC)
            assert seen.year == (2299 if descending else 1900)


# -- an upload stream that fails part-way ------------------------------------------------------


def test_stream_failing_part_way_is_incomplete_until_the_rest_arrives(running: Running) -> None:
    from shoal.sdk import UploadFailed, wait_for_upload

    dataset = _dataset(running)
    upload_id = f"up-{uuid.uuid4().hex}"
    chunks = [_frames(5, prefix=f"s{j}-") for j in range(3)]

    with running.client(running.admin_key) as c:

        def broken() -> Iterator[pb.UploadRequest]:
            yield pb.UploadRequest(
                project=PROJECT, dataset=dataset, upload_id=upload_id, chunk_index=0, total_chunks=3, chunk=chunks[0]
            )
            # fail only once chunk 0 is surely published (the consumer has written it)
            wait_for(lambda: _written(c, upload_id) == 5, timeout=60, what="chunk 0 to be written")
            raise RuntimeError("the client's data source failed")

        with pytest.raises(grpc.RpcError):
            c.ingest.Upload(broken())
        st = _wait_settled(c, upload_id)
        assert pb.UploadState.Name(st.state) == "UPLOAD_STATE_INCOMPLETE"
        assert (st.chunks_processed, st.chunks_total) == (1, 3)
        assert st.accepted.frames == 5 and st.written.frames == 5
        assert any("1-2" in e.detail.message and upload_id in e.detail.message for e in st.errors), st.errors
        with pytest.raises(UploadFailed, match="INCOMPLETE"):
            wait_for_upload(c.ingest, PROJECT, upload_id, timeout=60)

        rest = [
            pb.UploadRequest(
                project=PROJECT, dataset=dataset, upload_id=upload_id, chunk_index=j, total_chunks=3, chunk=chunks[j]
            )
            for j in (1, 2)
        ]
        c.ingest.Upload(iter(rest))
        wait_for(
            lambda: _status(c, upload_id).state == pb.UPLOAD_STATE_COMPLETED, timeout=60, what="the upload to complete"
        )
        st = _status(c, upload_id)
        assert (st.chunks_processed, st.chunks_total, st.accepted.frames, st.written.frames) == (3, 3, 15, 15)
        assert not st.errors


def test_stream_refused_part_way_records_what_was_published(running: Running) -> None:
    dataset = _dataset(running)
    upload_id = f"up-{uuid.uuid4().hex}"
    bad = _frames(5, prefix="b")
    bad.frames[2].split = "nope"
    requests = [
        pb.UploadRequest(project=PROJECT, dataset=dataset, upload_id=upload_id, chunk=_frames(5, prefix="a")),
        pb.UploadRequest(project=PROJECT, dataset=dataset, upload_id=upload_id, chunk=bad),
    ]
    with running.client(running.admin_key) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter(requests))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        st = _wait_settled(c, upload_id)
        assert pb.UploadState.Name(st.state) == "UPLOAD_STATE_INCOMPLETE"
        assert (st.chunks_processed, st.chunks_total, st.accepted.frames) == (1, 2, 5)


# -- one type per metadata key -----------------------------------------------------------------


def test_a_metadata_key_keeps_its_first_type(running: Running) -> None:
    dataset = _dataset(running)
    with running.client(running.admin_key) as c:
        resp = c.ingest.Upload(iter([pb.UploadRequest(project=PROJECT, dataset=dataset, chunk=_frames(1000))]))
        assert _wait_settled(c, resp.upload_id).state == pb.UPLOAD_STATE_COMPLETED

        number = _frames(1, prefix="n")
        number.frames[0].metadata["camera"].number_value = 3
        err = _refused(c, dataset, number)
        assert "chunk.frames[0].metadata['camera']" in err.details() and "'n0'" in err.details()
        assert "string" in err.details() and "number" in err.details()

        cols = pb.UploadChunk()
        cols.columns.frame_ids.extend(["n1", "n2"])
        cols.columns.metadata.add(key="camera", numbers_f64=np.array([np.nan, 2.0], dtype="<f8").tobytes())
        err = _refused(c, dataset, cols)
        assert "chunk.columns.metadata[0].numbers_f64[1]" in err.details() and "'n2'" in err.details()

        # within one chunk: the first frame gives a new key its type
        mixed = _frames(2, prefix="m")
        mixed.frames[0].metadata["lens"].bool_value = True
        mixed.frames[1].metadata["lens"].string_value = "wide"
        err = _refused(c, dataset, mixed)
        assert "chunk.frames[1].metadata['lens']" in err.details()

        # a producer's event: the conflicting row is dead-lettered, the other one written
        event = _frames(2, prefix="e")
        event.frames[1].metadata["camera"].number_value = 7
        upload_id = f"producer-{uuid.uuid4().hex[:8]}"
        _publish(running, dataset, upload_id, event)
        st = _wait_settled(c, upload_id)
        assert (st.written.frames, st.rejected.frames) == (1, 1)
        assert st.errors[0].detail.field == "chunk.frames[1].metadata['camera']"
        (part,) = _dead_letters(running, upload_id)
        assert [f.frame_id for f in part.chunk.frames] == ["e1"]

        found = c.analysis.QueryDatapoints(
            apb.QueryDatapointsRequest(
                project=PROJECT,
                dataset=dataset,
                filter=cpb.Filter(all=[cpb.Condition(field="metadata.camera", equals=cpb.Value(string_value="front"))]),
            )
        )
        assert found.page.total_count == 1001


# -- free-text limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "mutate"),
    [
        ("chunk.labels[0].provenance.reason", lambda ch: setattr(ch.labels[0].provenance, "reason", "r" * 4097)),
        ("chunk.labels[0].provenance.author", lambda ch: setattr(ch.labels[0].provenance, "author", "a" * 257)),
        ("chunk.labels[0].provenance.source", lambda ch: setattr(ch.labels[0].provenance, "source", "s" * 257)),
    ],
)
def test_free_text_of_a_chunk_is_bounded(running: Running, field: str, mutate) -> None:  # type: ignore[no-untyped-def]
    dataset = _dataset(running)
    chunk = _frames(2)
    chunk.labels.add(frame_id="f0", class_id=1)
    mutate(chunk)
    with running.client(running.admin_key) as c:
        err = _refused(c, dataset, chunk)
    assert field in err.details()


def test_a_later_stream_refused_at_its_first_chunk_leaves_the_upload_incomplete(running: Running) -> None:
    """As the SDK sends a large upload: several streams under one upload id, each declaring the total."""
    dataset = _dataset(running)
    upload_id = f"up-{uuid.uuid4().hex}"

    def request(j: int, chunk: pb.UploadChunk) -> pb.UploadRequest:
        return pb.UploadRequest(
            project=PROJECT, dataset=dataset, upload_id=upload_id, chunk_index=j, total_chunks=4, chunk=chunk
        )

    bad = _frames(5, prefix="x")
    bad.frames[0].split = "nope"
    with running.client(running.admin_key) as c:
        c.ingest.Upload(iter([request(j, _frames(5, prefix=f"s{j}-")) for j in (0, 1)]))
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter([request(2, bad), request(3, _frames(5, prefix="s3-"))]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        st = _wait_settled(c, upload_id)
        assert pb.UploadState.Name(st.state) == "UPLOAD_STATE_INCOMPLETE"
        assert (st.chunks_processed, st.chunks_total, st.written.frames) == (2, 4, 10)
        assert "chunks 2-3" in st.errors[0].detail.message and "split" in st.errors[0].detail.message


def test_an_event_produced_at_an_impossible_time_is_refused_with_its_reason(running: Running) -> None:
    dataset = _dataset(running)
    upload_id = f"producer-{uuid.uuid4().hex[:8]}"
    event = pb.UploadEvent(schema_version=1, upload_id=upload_id, project=PROJECT, dataset=dataset, chunk=_frames(3))
    event.produced_time.FromDatetime(datetime(1950, 1, 1, tzinfo=UTC))
    topics = Topics(running.server.settings.topic_prefix)
    running.server.stores.events.publish(
        topics.uploads, key=f"{PROJECT}/{dataset}".encode(), value=event.SerializeToString()
    ).result(timeout=10)
    with running.client(running.admin_key) as c:
        st = _wait_settled(c, upload_id)
    assert st.state == pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS and st.rejected.frames == 3
    assert [e.detail.field for e in st.errors] == ["produced_time"]
