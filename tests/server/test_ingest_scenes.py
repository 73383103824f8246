"""Point clouds with cuboids and audio clips with sound events through the server: uploaded, read
back as given (a quaternion heading as its yaw), and bad ones refused naming the field and the frame."""

from __future__ import annotations

import math

import grpc
import pytest

from shoal.client import error_detail
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.server.conftest import Running
from tests.server.test_ingest_upload import _wait_done

TURN = pb.Quaternion(w=math.cos(0.3), z=math.sin(0.3))  # a yaw of 0.6 rad


def _setup(c, p: str, task: int) -> None:  # type: ignore[no-untyped-def]
    names = ("car", "pedestrian", "barrier") if task == pb.TASK_TYPE_CUBOIDS_3D else ("siren", "dog_bark")
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=p, task_type=task, classes=[pb.ClassDef(id=i, name=n) for i, n in enumerate(names)])))  # fmt: skip
    c.ingest.CreateDataset(
        pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(name="val", kind=pb.DATASET_KIND_LABELED))
    )
    c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
        name="m", dataset="val", model_name="m", model_version="1")))  # fmt: skip


def _upload(c, p: str, chunk: pb.UploadChunk, upload_id: str):  # type: ignore[no-untyped-def]
    c.ingest.Upload(iter([pb.UploadRequest(project=p, dataset="val", upload_id=upload_id, chunk=chunk)]))
    return _wait_done(c, p, upload_id)


def test_cuboids_are_stored_and_read_back(shared: Running, project: str) -> None:
    with shared.client(shared.admin_key) as c:
        _setup(c, project, pb.TASK_TYPE_CUBOIDS_3D)
        chunk = pb.UploadChunk(inference_set="m")
        chunk.frames.add(frame_id="s1", media_uri="s3://lidar/s1.bin", media_type=pb.MEDIA_TYPE_POINT_CLOUD,
                         coordinate_frame=pb.COORDINATE_FRAME_EGO,
                         ego_pose=pb.Pose(x=10, y=-2, z=0.5, rotation=TURN),
                         cameras=[pb.CameraImage(name="CAM_FRONT", uri="s3://cams/s1-front.jpg")])  # fmt: skip
        lab = chunk.labels.add(frame_id="s1")
        lab.objects.add(object_id="a", class_id=0, cuboid=pb.Cuboid(x=5, y=1, z=0.8, width=1.9, length=4.5, height=1.6,
                                                                    yaw=0.1, vx=3.0, vy=0.0, attribute="vehicle.moving"))  # fmt: skip
        lab.objects.add(object_id="b", class_id=1, cuboid=pb.Cuboid(x=8, y=-3, z=0.9, width=0.6, length=0.7, height=1.8,
                                                                    rotation=TURN))  # fmt: skip
        inf = chunk.inferences.add(frame_id="s1")
        inf.objects.add(object_id="p", class_id=0, score=0.8, cuboid=pb.Cuboid(x=5.2, y=1.1, z=0.8, width=2, length=4.4,
                                                                               height=1.5, yaw=0.12))  # fmt: skip
        st = _upload(c, project, chunk, f"{project}-1")
        assert st.state == pb.UPLOAD_STATE_COMPLETED and (st.written.labels, st.written.inferences) == (1, 1)
        (version,) = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(project=project, dataset="val",
                                                                            frame_id="s1")).versions  # fmt: skip
    a, b = version.objects
    assert (a.cuboid.x, a.cuboid.length, a.cuboid.yaw, a.cuboid.vx, a.cuboid.attribute) == (
        5,
        4.5,
        0.1,
        3.0,
        "vehicle.moving",
    )
    assert b.cuboid.yaw == pytest.approx(0.6) and not b.cuboid.HasField("vx") and not b.HasField("box")
    m = shared.server.stores.metrics
    row = m.query(f"SELECT coordinate_frame, ego_pose, cameras FROM frames FINAL WHERE project = '{project}'").rows[0]
    assert row[0] == "EGO" and list(row[1])[:3] == [10, -2, 0.5] and [tuple(x.values()) if isinstance(x, dict) else tuple(x) for x in row[2]] == [
        ("CAM_FRONT", "s3://cams/s1-front.jpg")]  # fmt: skip


def _cuboid(**changes: object) -> pb.Cuboid:
    base = {"x": 1.0, "y": 2.0, "z": 0.5, "width": 1.0, "length": 2.0, "height": 1.5, "yaw": 0.2}
    return pb.Cuboid(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "field", "says"),
    [
        (lambda ch: ch.labels.add(frame_id="s1").objects.add(object_id="a", class_id=0, cuboid=_cuboid(width=-1)),
         "chunk.labels[0].objects[0].cuboid.width", "positive"),
        (lambda ch: ch.labels.add(frame_id="s1").objects.add(object_id="a", class_id=0, cuboid=_cuboid(x=math.nan)),
         "chunk.labels[0].objects[0].cuboid.x", "finite"),
        (lambda ch: ch.labels.add(frame_id="s1").objects.add(object_id="a", class_id=0, cuboid=_cuboid(
            yaw=0, rotation=pb.Quaternion(w=1, z=0.5))), "chunk.labels[0].objects[0].cuboid.rotation", "norm is 1.11803"),
        (lambda ch: ch.labels.add(frame_id="s1").objects.add(object_id="a", class_id=0, cuboid=_cuboid(
            rotation=pb.Quaternion(w=1))), "chunk.labels[0].objects[0].cuboid.rotation", "not both"),
        (lambda ch: ch.inferences.add(frame_id="s1").objects.add(object_id="p", class_id=0, score=0.5,
                                                                 cuboid=_cuboid(vx=1.0)),
         "chunk.inferences[0].objects[0].cuboid.vy", "both"),
        (lambda ch: ch.labels.add(frame_id="s1").objects.add(object_id="a", class_id=0, cuboid=_cuboid(),
                                                             box=pb.Box(width=3, height=3)),
         "chunk.labels[0].objects[0].box", "not a box"),
        (lambda ch: ch.labels.add(frame_id="s1").objects.add(object_id="a", class_id=0),
         "chunk.labels[0].objects[0].cuboid", "needs its cuboid"),
        (lambda ch: ch.frames[0].ClearField("coordinate_frame"), "chunk.frames[0].coordinate_frame", "EGO"),
    ],
)  # fmt: skip
def test_bad_cuboids_are_refused(shared: Running, project: str, make, field: str, says: str) -> None:  # type: ignore[no-untyped-def]
    chunk = pb.UploadChunk(
        inference_set="m", frames=[pb.Frame(frame_id="s1", coordinate_frame=pb.COORDINATE_FRAME_WORLD)]
    )
    make(chunk)
    with shared.client(shared.admin_key) as c:
        _setup(c, project, pb.TASK_TYPE_CUBOIDS_3D)
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter([pb.UploadRequest(project=project, dataset="val", chunk=chunk)]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_detail(info.value)
    assert detail.field == field and detail.datapoint.frame_id == "s1", info.value.details()
    assert says in info.value.details()


def test_sound_events_are_stored_and_checked_against_their_clip(shared: Running, project: str) -> None:
    with shared.client(shared.admin_key) as c:
        _setup(c, project, pb.TASK_TYPE_SOUND_EVENTS)
        clips = pb.UploadChunk(frames=[pb.Frame(frame_id="c1", media_uri="s3://audio/c1.flac", media_type=pb.MEDIA_TYPE_AUDIO,
                                                duration_seconds=10.0, sample_rate=16000)])  # fmt: skip
        assert _upload(c, project, clips, f"{project}-clips").state == pb.UPLOAD_STATE_COMPLETED
        # labels and predictions of a clip stored before: checked against its stored duration
        chunk = pb.UploadChunk(inference_set="m")
        chunk.labels.add(frame_id="c1", events=[pb.SoundEvent(onset=0.5, offset=2.0, class_id=0),
                                                pb.SoundEvent(onset=1.0, offset=9.5, class_id=1)])  # fmt: skip
        chunk.inferences.add(frame_id="c1", events=[pb.SoundEvent(onset=0.4, offset=2.2, class_id=0, score=0.9)])
        assert _upload(c, project, chunk, f"{project}-events").state == pb.UPLOAD_STATE_COMPLETED
        (version,) = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(project=project, dataset="val",
                                                                            frame_id="c1")).versions  # fmt: skip
        assert [(e.onset, e.offset, e.class_id) for e in version.events] == [(0.5, 2.0, 0), (1.0, 9.5, 1)]
        for event, field, says in (
            (pb.SoundEvent(onset=2.0, offset=1.0, class_id=0), "chunk.labels[0].events[0].offset", "ends after it starts"),
            (pb.SoundEvent(onset=9.0, offset=10.5, class_id=0), "chunk.labels[0].events[0].offset", "after the clip's 10.0 s"),
            (pb.SoundEvent(onset=-1.0, offset=1.0, class_id=0), "chunk.labels[0].events[0].onset", "0 s or later"),
            (pb.SoundEvent(onset=1.0, offset=2.0, class_id=7), "chunk.labels[0].events[0].class_id", "unknown class id 7"),
        ):  # fmt: skip
            bad = pb.UploadChunk()
            bad.labels.add(frame_id="c1", events=[event])
            with pytest.raises(grpc.RpcError) as info:
                c.ingest.Upload(iter([pb.UploadRequest(project=project, dataset="val", chunk=bad)]))
            assert error_detail(info.value).field == field and says in info.value.details(), info.value.details()
        bad = pb.UploadChunk(inference_set="m")
        bad.inferences.add(frame_id="c1", events=[pb.SoundEvent(onset=1.0, offset=2.0, class_id=0, score=1.5)])
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter([pb.UploadRequest(project=project, dataset="val", chunk=bad)]))
        assert error_detail(info.value).field == "chunk.inferences[0].events[0].score"
        no_length = pb.UploadChunk(frames=[pb.Frame(frame_id="c2", media_type=pb.MEDIA_TYPE_AUDIO)])
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter([pb.UploadRequest(project=project, dataset="val", chunk=no_length)]))
        assert error_detail(info.value).field == "chunk.frames[0].duration_seconds"


def test_events_and_cuboids_belong_to_their_project_types(shared: Running, project: str) -> None:
    with shared.client(shared.admin_key) as c:
        _setup(c, project, pb.TASK_TYPE_OBJECT_DETECTION_2D)
        chunk = pb.UploadChunk(frames=[pb.Frame(frame_id="f", width=10, height=10)])
        chunk.labels.add(frame_id="f", events=[pb.SoundEvent(onset=0, offset=1, class_id=0)])
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter([pb.UploadRequest(project=project, dataset="val", chunk=chunk)]))
        assert error_detail(info.value).field == "chunk.labels[0].events"
        chunk = pb.UploadChunk(frames=[pb.Frame(frame_id="f", width=10, height=10)])
        chunk.labels.add(frame_id="f").objects.add(object_id="a", class_id=0, cuboid=_cuboid())
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter([pb.UploadRequest(project=project, dataset="val", chunk=chunk)]))
        assert error_detail(info.value).field == "chunk.labels[0].objects[0].cuboid"


def test_the_sdk_uploads_cuboids_and_events(shared: Running, project: str) -> None:
    from shoal.sdk import Cuboid, LabeledObject, PredictedObject, UploadColumns

    with shared.client(shared.admin_key) as c:
        _setup(c, project, pb.TASK_TYPE_CUBOIDS_3D)
        cols = UploadColumns(
            frame_ids=["s1", "s2"], media_type=pb.MEDIA_TYPE_POINT_CLOUD, coordinate_frames=["ego", "world"],
            ego_poses=[None, (1, 2, 0, math.cos(0.3), 0, 0, math.sin(0.3))], cameras=[{"CAM_FRONT": "s3://c/1.jpg"}, {}],
            objects=[[LabeledObject("a", 0, cuboid=Cuboid(1, 2, 0.5, 1.9, 4.5, 1.6, rotation=(math.cos(0.3), 0, 0, math.sin(0.3)),
                                                          velocity=(2.0, 0.5), attribute="vehicle.moving"))], []],
            inference_set="m",
            predictions=[[PredictedObject("p", 0, 0.7, cuboid=Cuboid(1.1, 2, 0.5, 2, 4.4, 1.5, yaw=0.55))], []],
        )  # fmt: skip
        r = c.upload(project, "val", cols, progress=False)
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        (version,) = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(project=project, dataset="val",
                                                                            frame_id="s1")).versions  # fmt: skip
        got = version.objects[0].cuboid
        assert got.yaw == pytest.approx(0.6) and (got.vx, got.vy, got.attribute) == (2.0, 0.5, "vehicle.moving")
    with shared.client(shared.admin_key) as c:
        sound = project + "-audio"
        _setup(c, sound, pb.TASK_TYPE_SOUND_EVENTS)
        cols = UploadColumns(frame_ids=["c1"], media_type=pb.MEDIA_TYPE_AUDIO, durations=[4.0], sample_rates=[22050],
                             label_events=[[(0.1, 1.0, 0), (2.0, 3.5, 1)]], inference_set="m",
                             predicted_events=[[(0.2, 1.1, 0, 0.9)]])  # fmt: skip
        r = c.upload(sound, "val", cols, progress=False)
        assert c.wait_for_upload(sound, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        (version,) = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(project=sound, dataset="val",
                                                                            frame_id="c1")).versions  # fmt: skip
        assert [(e.onset, e.offset, e.class_id) for e in version.events] == [(0.1, 1.0, 0), (2.0, 3.5, 1)]


def check_scene_dead_letters(running: Running, p: str) -> None:
    """A producer's events for a cuboid project and a sound-event project: a cuboid of negative
    width and an event ending past its clip go to the dead-letter topic as received, with their
    reasons naming the field; the good cuboids and events of the same events are written."""
    import uuid

    from shoal.common.topics import Topics
    from tests.server.conftest import wait_for

    audio = f"{p}_audio"
    with running.client(running.admin_key) as c:
        _setup(c, p, pb.TASK_TYPE_CUBOIDS_3D)
        _setup(c, audio, pb.TASK_TYPE_SOUND_EVENTS)
    scene = pb.UploadChunk(inference_set="m", frames=[
        pb.Frame(frame_id=f"s{i}", media_type=pb.MEDIA_TYPE_POINT_CLOUD, coordinate_frame=pb.COORDINATE_FRAME_EGO)
        for i in range(2)])  # fmt: skip
    scene.labels.add(frame_id="s0").objects.add(object_id="a", class_id=0, cuboid=_cuboid())
    scene.labels.add(frame_id="s1").objects.add(object_id="b", class_id=0, cuboid=_cuboid(width=-1))
    scene.inferences.add(frame_id="s0").objects.add(object_id="p", class_id=0, score=0.9, cuboid=_cuboid(x=1.1))
    clips = pb.UploadChunk(inference_set="m", frames=[
        pb.Frame(frame_id=f"c{i}", media_type=pb.MEDIA_TYPE_AUDIO, duration_seconds=4.0, sample_rate=16000)
        for i in range(2)])  # fmt: skip
    clips.labels.add(frame_id="c0", events=[pb.SoundEvent(onset=0.5, offset=1.5, class_id=0)])
    clips.labels.add(frame_id="c1", events=[pb.SoundEvent(onset=3.5, offset=4.5, class_id=1)])
    clips.inferences.add(frame_id="c0", events=[pb.SoundEvent(onset=0.6, offset=1.4, class_id=0, score=0.8)])
    bus = running.server.stores.events
    topics = Topics(running.server.settings.topic_prefix)
    for project, chunk in ((p, scene), (audio, clips)):
        event = pb.UploadEvent(schema_version=1, upload_id=f"{project}-ev", chunk_index=0, project=project,
                               dataset="val", chunk=chunk)  # fmt: skip
        bus.publish(topics.uploads, key=f"{project}/val".encode(), value=event.SerializeToString()).result(timeout=10)
    with running.client(running.admin_key) as c:
        st = _wait_done(c, p, f"{p}-ev")
        assert st.state == pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS
        assert (st.written.frames, st.written.labels, st.written.inferences) == (2, 1, 1)
        assert [e.detail.field for e in st.errors] == ["chunk.labels[1].objects[0].cuboid.width"]
        st = _wait_done(c, audio, f"{audio}-ev")
        assert (st.written.frames, st.written.labels, st.written.inferences) == (2, 1, 1)
        assert [e.detail.field for e in st.errors] == ["chunk.labels[1].events[0].offset"]
        (version,) = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(project=p, dataset="val",
                                                                            frame_id="s0")).versions  # fmt: skip
        assert version.objects[0].cuboid.width == 1.0
        (version,) = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(project=audio, dataset="val",
                                                                            frame_id="c0")).versions  # fmt: skip
        assert [(e.onset, e.offset) for e in version.events] == [(0.5, 1.5)]
    keys = {f"{p}/val".encode(), f"{audio}/val".encode()}
    dlq = bus.consumer(f"test-dlq-{uuid.uuid4().hex}", [topics.dead_letter])
    seen: list = []  # type: ignore[type-arg]
    wait_for(lambda: seen.extend(e for e in dlq.poll(0.5) if e.key in keys) or len(seen) >= 2, timeout=60,
             what="the dead letters")  # fmt: skip
    dlq.close()
    parts = {pb.UploadEvent.FromString(e.value).project: pb.UploadEvent.FromString(e.value).chunk for e in seen}
    assert [x.frame_id for x in parts[p].labels] == ["s1"] and parts[p].labels[0].objects[0].cuboid.width == -1
    assert [(e.onset, e.offset) for e in parts[audio].labels[0].events] == [(3.5, 4.5)]  # as received


def test_bad_cuboids_and_events_on_the_event_path_are_dead_lettered(shared: Running, project: str) -> None:
    check_scene_dead_letters(shared, project)
