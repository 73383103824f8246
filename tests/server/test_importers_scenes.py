"""`shoal import nuscenes` and `shoal import events` against a running server: point clouds with
their cuboids and audio clips with their sound events, read back as the files gave them, and bad
rows refused with the file, the row and the field named."""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.cli import main
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.server.conftest import Running

TURN = (math.cos(0.3), 0.0, 0.0, math.sin(0.3))  # a yaw of 0.6 rad


def _box(name: str, x: float, **changes: object) -> dict[str, object]:
    box = {"translation": [x, 2.0, 0.9], "size": [1.9, 4.5, 1.6], "rotation": list(TURN), "velocity": [3.0, 0.5],
           "detection_name": name, "attribute_name": "vehicle.moving"}  # fmt: skip
    return {**box, **changes}


def _nuscenes(tmp: Path) -> tuple[Path, Path, Path]:
    """Three samples: two boxes (one without a known velocity, its quaternion rounded), none, one."""
    gt = {
        "tok-a": [_box("car", 10.0, num_pts=42),
                  _box("traffic_cone", 5.0, size=[0.4, 0.4, 0.9], velocity=[math.nan, math.nan], attribute_name="",
                       rotation=[1.0004, 0.0, 0.0, 0.0], num_pts=-1)],
        "tok-b": [],
        "tok-c": [_box("pedestrian", -3.0, size=[0.6, 0.7, 1.8], num_pts=7)],
    }  # fmt: skip
    results = {
        "meta": {"use_lidar": True, "use_camera": False},
        "results": {
            "tok-a": [_box("car", 10.2, detection_score=0.9), _box("car", 30.0, detection_score=0.2)],
            "tok-c": [_box("pedestrian", -3.1, size=[0.6, 0.7, 1.8], detection_score=0.75)],
        },
    }
    poses = {"tok-a": {"translation": [100.0, 200.0, 0.0], "rotation": list(TURN)}}
    (tmp / "gt.json").write_text(json.dumps(gt))
    (tmp / "results.json").write_text(json.dumps(results))
    (tmp / "poses.json").write_text(json.dumps(poses))
    return tmp / "gt.json", tmp / "results.json", tmp / "poses.json"


def _cli(running: Running, project: str, kind: str, *args: str) -> list[str]:
    return ["import", kind, "--target", running.target, "--api-key", running.admin_key, "--project", project,
            "--dataset", "val", *args]  # fmt: skip


def test_import_nuscenes_ground_truth_results_and_poses(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt, results, poses = _nuscenes(tmp_path)
    code = main(_cli(shared, project, "nuscenes", "--create", "--labels", str(gt), "--results", str(results),
                     "--inference-set", "centerpoint", "--ego-poses", str(poses), "--split", "val", "--wait"))  # fmt: skip
    assert code == 0, capsys.readouterr()
    with shared.client(shared.admin_key) as c:
        got = c.ingest.GetProject(pb.GetProjectRequest(project=project)).project
        # nuScenes' classes keep the devkit's order
        assert got.task_type == pb.TASK_TYPE_CUBOIDS_3D
        assert [(cl.id, cl.name) for cl in got.classes] == [(0, "car"), (1, "pedestrian"), (2, "traffic_cone")]

        def labels(frame_id: str) -> list[pb.LabelObject]:
            request = pb.ListLabelVersionsRequest(project=project, dataset="val", frame_id=frame_id)
            (version,) = c.ingest.ListLabelVersions(request).versions
            return list(version.objects)

        car, cone = labels("tok-a")
        assert labels("tok-b") == []
        (person,) = labels("tok-c")
    assert (car.object_id, car.class_id, car.cuboid.x, car.cuboid.y, car.cuboid.z) == ("gt-0000", 0, 10.0, 2.0, 0.9)
    # size is nuScenes' wlh; the quaternion's heading is stored as its yaw
    assert (car.cuboid.width, car.cuboid.length, car.cuboid.height) == (1.9, 4.5, 1.6)
    assert car.cuboid.yaw == pytest.approx(0.6)
    assert (car.cuboid.vx, car.cuboid.vy, car.cuboid.attribute) == (3.0, 0.5, "vehicle.moving")
    # an unknown (NaN) velocity is left out; a quaternion rounded in the file is normalised
    assert cone.class_id == 2 and not cone.cuboid.HasField("vx") and cone.cuboid.yaw == pytest.approx(0.0)
    assert person.class_id == 1 and person.cuboid.x == -3.0
    m = shared.server.stores.metrics
    frames = m.query(
        f"SELECT frame_id, coordinate_frame, ego_pose, split FROM frames FINAL WHERE project = '{project}'"
        " ORDER BY frame_id"
    ).rows
    assert [(f, cf, s) for f, cf, _, s in frames] == [("tok-a", "WORLD", "val"), ("tok-b", "WORLD", "val"),
                                                     ("tok-c", "WORLD", "val")]  # fmt: skip
    assert list(frames[0][2]) == pytest.approx([100.0, 200.0, 0.0, *TURN]) and list(frames[1][2]) == []
    predicted = m.query(
        "SELECT frame_id, object_id, class_id, score FROM predicted_objects FINAL"
        f" WHERE project = '{project}' ORDER BY object_id"
    ).rows
    # detections are numbered in the results file's order
    assert [(f, o, k, round(s, 4)) for f, o, k, s in predicted] == [
        ("tok-a", "det-000000", 0, 0.9),
        ("tok-a", "det-000001", 0, 0.2),
        ("tok-c", "det-000002", 1, 0.75),
    ]
    # and measured: the car and the pedestrian found within half a metre at every distance threshold;
    # the far car, a false positive scored lower, costs the car only the last of the 101 recall points
    # (precision 1/2 there), as in the nuScenes devkit: (mean precision over recall 0.1..1 - 0.1) / 0.9
    with shared.client(shared.admin_key) as c:
        m = c.analysis.GetCuboidMetrics(apb.GetCuboidMetricsRequest(project=project, inference_set="centerpoint"))
    got = m.metrics
    assert (got.frames, got.ground_truth_objects, got.predicted_objects) == (3, 3, 3)
    ap = {k.class_name: list(k.ap_at) for k in got.nuscenes.per_class}
    assert ap["pedestrian"] == pytest.approx([1.0] * 4)
    assert ap["car"] == pytest.approx([((89 + 0.5) / 90 - 0.1) / 0.9] * 4)


def test_import_nuscenes_into_an_existing_project_keeps_its_class_ids(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt, _, _ = _nuscenes(tmp_path)
    with shared.client(shared.admin_key) as c:
        classes = [pb.ClassDef(id=i, name=n) for i, n in ((3, "pedestrian"), (5, "traffic_cone"), (9, "car"))]
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_CUBOIDS_3D, classes=classes)))  # fmt: skip
    code = main(_cli(shared, project, "nuscenes", "--create", "--labels", str(gt), "--coordinate-frame", "ego",
                     "--wait"))  # fmt: skip
    assert code == 0, capsys.readouterr()
    m = shared.server.stores.metrics
    rows = m.query(f"SELECT frame_id, class_id FROM label_objects FINAL WHERE project = '{project}' ORDER BY frame_id,"
                   " object_id").rows  # fmt: skip
    assert rows == [("tok-a", 9), ("tok-a", 5), ("tok-c", 3)]
    assert m.query(f"SELECT DISTINCT coordinate_frame FROM frames FINAL WHERE project = '{project}'").rows == [("EGO",)]
    # a class the project lacks is named, and nothing is uploaded
    (tmp_path / "more.json").write_text(json.dumps({"tok-d": [_box("bus", 1.0)]}))
    code = main(_cli(shared, project, "nuscenes", "--labels", str(tmp_path / "more.json")))
    assert code == 2 and "classes ['bus'] are not classes of the project" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("where", "change", "says"),
    [
        ("gt", {"size": [1.9, -4.5, 1.6]}, "sample 'tok-c', box 0: 'size' (width, length, height) must be positive"),
        ("gt", {"rotation": [1.0, 0.0, 0.0, 0.5]}, "sample 'tok-c', box 0: 'rotation' must be a unit quaternion"),
        ("gt", {"translation": [1.0, 2.0]}, "sample 'tok-c', box 0: 'translation' must be a list of 3 numbers"),
        ("gt", {"detection_name": None}, "sample 'tok-c', box 0: 'detection_name' is missing"),
        ("results", {"detection_score": 1.5}, "sample 'tok-c', box 0: 'detection_score' must lie in [0, 1]"),
    ],
)
def test_import_nuscenes_names_the_bad_field(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str,
    change: dict[str, object], says: str,
) -> None:  # fmt: skip
    gt, results, _ = _nuscenes(tmp_path)
    path = gt if where == "gt" else results
    data = json.loads(path.read_text())
    boxes = data["tok-c"] if where == "gt" else data["results"]["tok-c"]
    boxes[0].update(change)
    boxes[0] = {k: v for k, v in boxes[0].items() if v is not None}
    path.write_text(json.dumps(data))
    code = main(_cli(shared, project, "nuscenes", "--create", "--labels", str(gt), "--results", str(results),
                     "--inference-set", "m"))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and f"{path}: {says}" in err, err
    with shared.client(shared.admin_key) as c:
        assert not [p for p in c.ingest.ListProjects(pb.ListProjectsRequest()).projects if p.name == project]


def _wav(path: Path, seconds: float, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(int(seconds * rate), np.int16).tobytes())


def test_import_events_with_durations_from_the_wav_files(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    _wav(audio / "a.wav", 4.0)
    _wav(audio / "b.wav", 2.5, rate=22050)
    _wav(audio / "c.wav", 3.0)
    # DCASE's labels: a header, tabs, a clip without events (its name alone); an offset a file rounded
    # past the clip's end is cut to it
    (tmp_path / "labels.tsv").write_text(
        "filename\tonset\toffset\tevent_label\n"
        "a.wav\t0.5\t1.25\tdog_bark\na.wav\t2.0\t3.5\tsiren\nb.wav\t\t\t\nc.wav\t1.0\t3.01\tsiren\n"
    )
    # predictions: commas, no header, a score after the label (the last row without one: 1)
    (tmp_path / "predicted.csv").write_text(
        "a.wav,0.4,1.3,dog_bark,0.9\nb.wav,0.1,0.6,siren,0.35\nc.wav,1.1,2.9,siren\n"
    )
    code = main(_cli(shared, project, "events", "--create", "--labels", str(tmp_path / "labels.tsv"),
                     "--predictions", str(tmp_path / "predicted.csv"), "--inference-set", "crnn",
                     "--audio", str(audio), "--wait"))  # fmt: skip
    assert code == 0, capsys.readouterr()
    with shared.client(shared.admin_key) as c:
        got = c.ingest.GetProject(pb.GetProjectRequest(project=project)).project
        assert got.task_type == pb.TASK_TYPE_SOUND_EVENTS
        assert [(cl.id, cl.name) for cl in got.classes] == [(0, "dog_bark"), (1, "siren")]

        def events(frame_id: str) -> list[tuple[float, float, int]]:
            request = pb.ListLabelVersionsRequest(project=project, dataset="val", frame_id=frame_id)
            (version,) = c.ingest.ListLabelVersions(request).versions
            return [(e.onset, e.offset, e.class_id) for e in version.events]

        assert events("a.wav") == [(0.5, 1.25, 0), (2.0, 3.5, 1)]
        assert events("b.wav") == []
        assert events("c.wav") == [(1.0, 3.0, 1)]
    m = shared.server.stores.metrics
    clips = m.query(
        "SELECT frame_id, media_type, duration_seconds, sample_rate, media_uri FROM frames FINAL"
        f" WHERE project = '{project}' ORDER BY frame_id"
    ).rows
    assert [r[:4] for r in clips] == [("a.wav", "AUDIO", 4.0, 16000), ("b.wav", "AUDIO", 2.5, 22050),
                                      ("c.wav", "AUDIO", 3.0, 16000)]  # fmt: skip
    assert clips[0][4] == (audio / "a.wav").resolve().as_uri()
    predicted = m.query(
        f"SELECT frame_id, ev_onsets, ev_classes, ev_scores FROM inferences FINAL WHERE project = '{project}'"
        " ORDER BY frame_id"
    ).rows
    assert [(f, list(on), list(k), [round(s, 3) for s in sc]) for f, on, k, sc in predicted] == [
        ("a.wav", [0.4], [0], [0.9]),
        ("b.wav", [0.1], [1], [0.35]),
        ("c.wav", [1.1], [1], [1.0]),
    ]
    # and measured (event-based, 200 ms collars): the dog bark and c's siren found, a's siren missed,
    # b's siren a false alarm
    with shared.client(shared.admin_key) as c:
        m = c.analysis.GetSoundEventMetrics(apb.GetSoundEventMetricsRequest(project=project, inference_set="crnn"))
    got = m.metrics
    assert (got.clips, got.reference_events, got.estimated_events) == (3, 3, 3)
    assert (got.event_based.precision, got.event_based.recall) == pytest.approx((2 / 3, 2 / 3))


def test_import_events_with_a_duration_column_and_a_durations_table(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "labels.csv").write_text("file,event_onset,event_offset,event_label,duration\n"
                                         "x.flac,0.0,1.5,speech,10.0\nx.flac,4.0,9.0,music,10.0\nz.flac,nan,nan,nan,4.0\n")  # fmt: skip
    # clips the durations table lists and the labels do not are clips without events
    (tmp_path / "durations.tsv").write_text("filename\tduration\nx.flac\t99\ny.flac\t5.5\n")
    code = main(_cli(shared, project, "events", "--create", "--labels", str(tmp_path / "labels.csv"),
                     "--durations", str(tmp_path / "durations.tsv"), "--wait"))  # fmt: skip
    assert code == 0, capsys.readouterr()
    m = shared.server.stores.metrics
    rows = m.query(f"SELECT frame_id, duration_seconds, sample_rate, media_uri FROM frames FINAL WHERE project ="
                   f" '{project}' ORDER BY frame_id").rows  # fmt: skip
    # the labels' own duration column comes first; pandas' NaN cells make a clip without events
    assert rows == [("x.flac", 10.0, 0, ""), ("y.flac", 5.5, 0, ""), ("z.flac", 4.0, 0, "")]
    labels = m.query(f"SELECT frame_id, ev_classes FROM label_versions FINAL WHERE project = '{project}' ORDER BY"
                     " frame_id").rows  # fmt: skip
    # classes sorted by name: music 0, speech 1
    assert [(f, list(k)) for f, k in labels] == [("x.flac", [1, 0]), ("y.flac", []), ("z.flac", [])]


@pytest.mark.parametrize(
    ("labels", "predicted", "says"),
    [
        ("a.wav\t1.0\t0.5\tdog\n", "", "labels.tsv, line 1: offset 0.5 must be after onset 1.0"),
        ("a.wav\t0.1\t0.5\tdog\na.wav\tsoon\t0.5\tdog\n", "", "labels.tsv, line 2: onset must be a number, got 'soon'"),
        ("a.wav\t0.5\t3.5\tdog\n", "", "labels.tsv, line 1: offset 3.5 is after the end of clip 'a.wav' (3.0 s)"),
        ("a.wav\t0.5\t1.5\t\n", "", "labels.tsv, line 1: event_label is empty"),
        ("gone.wav\t0.5\t1.5\tdog\n", "", "clip 'gone.wav' (and 0 more) has no duration"),
        ("a.wav\t0.5\t1.5\tdog\n", "b.wav\t0.5\t1.5\tdog\t0.5\n", "predicted.tsv, line 1: clip 'b.wav' is not in"),
        ("a.wav\t0.5\t1.5\tdog\n", "a.wav\t0.5\t1.5\tdog\t7\n", "predicted.tsv, line 1: score must lie in [0, 1]"),
    ],
)
def test_import_events_names_the_bad_row(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], labels: str, predicted: str,
    says: str,
) -> None:  # fmt: skip
    _wav(tmp_path / "a.wav", 3.0)
    (tmp_path / "labels.tsv").write_text(labels)
    args = ["--create", "--labels", str(tmp_path / "labels.tsv")]
    if predicted:
        (tmp_path / "predicted.tsv").write_text(predicted)
        args += ["--predictions", str(tmp_path / "predicted.tsv"), "--inference-set", "m"]
    code = main(_cli(shared, project, "events", *args))
    err = capsys.readouterr().err
    assert code == 2 and says in err, err
