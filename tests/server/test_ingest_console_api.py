"""What the console's dataset overview reads from ingest: counts per split and class (GetDataset
with stats) and the upload history of a project (ListUploads), on one embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from shoal.client import Client
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.conftest import server_settings
from tests.server.conftest import Running, start_server


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
