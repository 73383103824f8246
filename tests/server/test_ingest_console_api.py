"""What the console's dataset overview reads from ingest: counts per split and class (GetDataset
with stats) and the upload history of a project (ListUploads), on one embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from shoal.client import Client
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.conftest import server_settings
from tests.server.conftest import Running, start_server, wait_for


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path) -> Iterator[Running]:
    running = start_server(server_settings(tmp_path_factory.mktemp("console-api") / "data", chdb_path))
    yield running
    running.server.stop(grace=1)


def _time(year: int) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime(year, 1, 1, tzinfo=UTC))
    return ts


def _project(c: Client, name: str, task: int, classes: list[str], dataset: str, splits: list[str]) -> None:
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=name, task_type=task, classes=[pb.ClassDef(id=i, name=n) for i, n in enumerate(classes)])))  # fmt: skip
    c.ingest.CreateDataset(pb.CreateDatasetRequest(
        project=name, dataset=pb.Dataset(name=dataset, kind=pb.DATASET_KIND_LABELED, splits=splits)))  # fmt: skip


def _upload(c: Client, project: str, dataset: str, chunk: pb.UploadChunk, upload_id: str = "") -> pb.UploadStatus:
    resp = c.ingest.Upload(iter([pb.UploadRequest(project=project, dataset=dataset, upload_id=upload_id, chunk=chunk)]))
    return c.wait_for_upload(project, resp.upload_id, timeout=120)


def _frames(chunk: pb.UploadChunk, splits: dict[str, str]) -> None:
    for fid, split in splits.items():
        chunk.frames.add(frame_id=fid, split=split, media_uri=f"file:///{fid}.png", media_type=pb.MEDIA_TYPE_IMAGE,
                         width=100, height=100)  # fmt: skip


def _box(x: float, y: float) -> pb.Box:
    return pb.Box(x=x, y=y, width=10, height=10)


def test_stats_count_frames_per_split_and_latest_labels_per_class(served: Running) -> None:
    with served.client(served.admin_key) as c:
        # classification: f5 is labeled cat, then relabeled bird; f8 has no label
        _project(c, "cls", pb.TASK_TYPE_CLASSIFICATION, ["cat", "dog", "bird"], "photos", ["train", "val", "test"])
        first = pb.UploadChunk()
        _frames(first, {**{f"f{i}": "train" for i in range(6)}, "f6": "val", "f7": "val", "f8": "val", "f9": ""})
        for fid, cls in {"f0": 0, "f1": 0, "f2": 1, "f3": 1, "f4": 2, "f5": 0, "f6": 1, "f7": 0, "f9": 1}.items():
            first.labels.add(frame_id=fid, class_id=cls, provenance=pb.Provenance(source="import", time=_time(2025)))
        _upload(c, "cls", "photos", first)
        relabel = pb.UploadChunk(labels=[pb.FrameLabels(frame_id="f5", class_id=2,
                                                        provenance=pb.Provenance(source="sdk", time=_time(2026)))])  # fmt: skip
        _upload(c, "cls", "photos", relabel)
        stats = c.ingest.GetDataset(pb.GetDatasetRequest(project="cls", dataset="photos", include_stats=True)).stats
        assert (stats.frames, stats.labeled_frames, stats.label_versions) == (10, 9, 10)
        assert dict(stats.frames_per_split) == {"train": 6, "val": 3, "test": 0, "": 1}
        assert dict(stats.labeled_frames_per_class) == {0: 3, 1: 4, 2: 2}
        assert dict(stats.labeled_objects_per_class) == {}

        # detection: d1's bike is replaced by a car and two persons; d2's crowd region is no object;
        # d3's latest version has no objects; d4 is never labeled
        _project(c, "det", pb.TASK_TYPE_OBJECT_DETECTION_2D, ["car", "person", "bike"], "street", ["train", "val"])
        first = pb.UploadChunk()
        _frames(first, {"d0": "train", "d1": "train", "d2": "train", "d3": "val", "d4": ""})
        old = pb.Provenance(source="import", time=_time(2025))
        first.labels.add(frame_id="d0", provenance=old, objects=[
            pb.LabelObject(object_id="a", class_id=0, box=_box(0, 0)),
            pb.LabelObject(object_id="b", class_id=0, box=_box(20, 0)),
            pb.LabelObject(object_id="c", class_id=1, box=_box(40, 0))])  # fmt: skip
        first.labels.add(
            frame_id="d1", provenance=old, objects=[pb.LabelObject(object_id="a", class_id=2, box=_box(0, 0))]
        )
        first.labels.add(frame_id="d2", provenance=old, objects=[
            pb.LabelObject(object_id="a", class_id=1, box=_box(0, 0)),
            pb.LabelObject(object_id="b", class_id=1, box=_box(50, 50), is_crowd=True)])  # fmt: skip
        first.labels.add(frame_id="d3", provenance=old)
        _upload(c, "det", "street", first)
        relabel = pb.UploadChunk()
        relabel.labels.add(frame_id="d1", provenance=pb.Provenance(source="sdk", time=_time(2026)), objects=[
            pb.LabelObject(object_id="x", class_id=0, box=_box(0, 0)),
            pb.LabelObject(object_id="y", class_id=1, box=_box(20, 20)),
            pb.LabelObject(object_id="z", class_id=1, box=_box(40, 40))])  # fmt: skip
        _upload(c, "det", "street", relabel)
        stats = c.ingest.GetDataset(pb.GetDatasetRequest(project="det", dataset="street", include_stats=True)).stats
        assert (stats.frames, stats.labeled_frames, stats.label_versions) == (5, 4, 5)
        assert dict(stats.frames_per_split) == {"train": 3, "val": 1, "": 1}
        assert dict(stats.labeled_objects_per_class) == {0: 3, 1: 4, 2: 0}
        assert dict(stats.labeled_frames_per_class) == {0: 2, 1: 3, 2: 0}


def _status(c: Client, project: str, upload_id: str) -> pb.UploadStatus:
    return c.ingest.GetUploadStatus(pb.GetUploadStatusRequest(project=project, upload_id=upload_id)).status


def _settled(c: Client, project: str, upload_id: str) -> pb.UploadStatus:
    """The status once it is no longer PROCESSING (a producer's event may not be consumed yet)."""
    seen: list[pb.UploadStatus] = []

    def settled() -> bool:
        try:
            seen.append(_status(c, project, upload_id))
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return seen[-1].state != pb.UPLOAD_STATE_PROCESSING

    wait_for(settled, timeout=60, what=f"upload {upload_id} to settle")
    return seen[-1]


def _list(c: Client, **request: Any) -> list[pb.ListUploadsResponse]:
    """Every page of ListUploads, following the tokens."""
    pages = [c.ingest.ListUploads(pb.ListUploadsRequest(**request))]
    while pages[-1].page.next_page_token:
        request["page"] = cpb.PageRequest(
            page_size=request["page"].page_size, page_token=pages[-1].page.next_page_token
        )
        pages.append(c.ingest.ListUploads(pb.ListUploadsRequest(**request)))
    return pages


def _ids(pages: list[pb.ListUploadsResponse]) -> list[str]:
    return [u.upload_id for p in pages for u in p.uploads]


def _code(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def test_upload_history_lists_every_upload_newest_first_with_states_and_errors(served: Running) -> None:
    project = "hist"
    with served.client(served.admin_key) as c:
        _project(c, project, pb.TASK_TYPE_CLASSIFICATION, ["a", "b"], "one", ["train"])
        c.ingest.CreateDataset(pb.CreateDatasetRequest(
            project=project, dataset=pb.Dataset(name="two", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip

        def frames(prefix: str) -> pb.UploadChunk:
            chunk = pb.UploadChunk()
            _frames(chunk, {f"{prefix}{i}": "train" for i in range(3)})
            return chunk

        def upload(dataset: str, chunk: pb.UploadChunk) -> str:
            resp = c.ingest.Upload(iter([pb.UploadRequest(project=project, dataset=dataset, chunk=chunk)]))
            return _settled(c, project, resp.upload_id).upload_id

        first = upload("one", frames("a"))
        second = upload("two", pb.UploadChunk(frames=[pb.Frame(frame_id="b0")]))
        # a producer's event with a label of an unknown class: that row is rejected, the rest written
        rejecting = pb.UploadChunk(labels=[pb.FrameLabels(frame_id="a0", class_id=0),
                                           pb.FrameLabels(frame_id="a1", class_id=7)])  # fmt: skip
        event = pb.UploadEvent(
            schema_version=1, upload_id="producer-1", project=project, dataset="one", chunk=rejecting
        )
        topics = Topics(served.server.settings.topic_prefix)
        served.server.stores.events.publish(
            topics.uploads, key=f"{project}/one".encode(), value=event.SerializeToString()
        ).result(timeout=10)
        third = _settled(c, project, "producer-1").upload_id
        # a stream whose second chunk is refused: its first chunk is written, the upload INCOMPLETE
        bad = frames("x")
        bad.frames[0].split = "nope"
        requests = [pb.UploadRequest(project=project, dataset="one", upload_id="broken", chunk=frames("c")),
                    pb.UploadRequest(project=project, dataset="one", upload_id="broken", chunk=bad)]  # fmt: skip
        assert _code(lambda: c.ingest.Upload(iter(requests))).code() == grpc.StatusCode.INVALID_ARGUMENT
        fourth = _settled(c, project, "broken").upload_id
        fifth = upload("one", frames("d"))
        newest_first = [fifth, fourth, third, second, first]

        # one page by default, every upload as GetUploadStatus reports it, with its times
        (page,) = _list(c, project=project)
        assert _ids([page]) == newest_first and page.page.total_count == 5
        for listed in page.uploads:
            full = _status(c, project, listed.upload_id)
            assert (listed.state, listed.dataset, listed.chunks_total, listed.chunks_processed) == (
                full.state, full.dataset, full.chunks_total, full.chunks_processed)  # fmt: skip
            assert (listed.accepted, listed.written, listed.rejected) == (full.accepted, full.written, full.rejected)
            assert list(listed.errors) == list(full.errors)
            assert listed.HasField("create_time") and listed.update_time.ToDatetime() >= listed.create_time.ToDatetime()
        times = [u.create_time.ToDatetime() for u in page.uploads]
        assert times == sorted(times, reverse=True)
        by_id = {u.upload_id: u for u in page.uploads}
        assert by_id[third].state == pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS
        assert (by_id[third].written.labels, by_id[third].rejected.labels) == (1, 1)
        (error,) = by_id[third].errors
        assert error.detail.field == "chunk.labels[1].class_id" and error.detail.datapoint.frame_id == "a1"
        assert "unknown class id 7" in error.detail.message
        assert (
            by_id[fourth].state == pb.UPLOAD_STATE_INCOMPLETE and "chunks 1" in by_id[fourth].errors[0].detail.message
        )
        assert by_id[fourth].written.frames == 3
        assert {by_id[u].state for u in (first, second, fifth)} == {pb.UPLOAD_STATE_COMPLETED}

        # pages of two; an upload made while paging does not shift the pages still to come
        one = c.ingest.ListUploads(pb.ListUploadsRequest(project=project, page=cpb.PageRequest(page_size=2)))
        assert _ids([one]) == newest_first[:2] and one.page.next_page_token
        sixth = upload("two", pb.UploadChunk(frames=[pb.Frame(frame_id="b1")]))
        rest = _list(c, project=project, page=cpb.PageRequest(page_size=2, page_token=one.page.next_page_token))
        assert _ids(rest) == newest_first[2:] and [len(p.uploads) for p in rest] == [2, 1]
        assert rest[0].page.total_count == 6 and not rest[-1].page.next_page_token
        assert _ids(_list(c, project=project, page=cpb.PageRequest(page_size=4)))[:2] == [sixth, fifth]

        # filters: a dataset, some states
        assert _ids(_list(c, project=project, dataset="two", page=cpb.PageRequest(page_size=1))) == [sixth, second]
        failed = [pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS, pb.UPLOAD_STATE_INCOMPLETE]
        (page,) = _list(c, project=project, states=failed)
        assert _ids([page]) == [fourth, third] and page.page.total_count == 2

        # a token belongs to its query; unknown states, datasets and projects are refused
        token = c.ingest.ListUploads(pb.ListUploadsRequest(project=project, dataset="two",
                                                           page=cpb.PageRequest(page_size=1))).page.next_page_token  # fmt: skip
        err = _code(
            lambda: c.ingest.ListUploads(pb.ListUploadsRequest(project=project, page=cpb.PageRequest(page_token=token)))
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "page.page_token" in err.details()
        err = _code(
            lambda: c.ingest.ListUploads(pb.ListUploadsRequest(project=project, states=[pb.UPLOAD_STATE_UNSPECIFIED]))
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("states[0]")
        err = _code(lambda: c.ingest.ListUploads(pb.ListUploadsRequest(project=project, dataset="three")))
        assert err.code() == grpc.StatusCode.NOT_FOUND and "dataset" in err.details()

        # another project's key cannot list them, and its own project's history is its own
        _project(c, "elsewhere", pb.TASK_TYPE_CLASSIFICATION, ["a"], "one", ["train"])
    _, other = served.server.keys.create(["elsewhere"], description="another project's key")
    with served.client(other) as c:
        err = _code(lambda: c.ingest.ListUploads(pb.ListUploadsRequest(project=project)))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        mine = c.ingest.ListUploads(pb.ListUploadsRequest(project="elsewhere"))
        assert not mine.uploads and mine.page.total_count == 0
