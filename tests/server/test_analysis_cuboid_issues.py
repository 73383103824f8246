"""Label issues of 3-D cuboids through the server: generated lidar frames whose detector sees every object a
little off (centre, size and heading noise; a cone's heading anything, a barrier's front and back told apart
only half the time), with two errors of each kind planted in the labels. Each planted error must be flagged
with its type, rank first in that type's list, and a mislocalized one must say what is off; nothing else may
be flagged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoal.analysis import detection_issues
from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Cuboid, LabeledObject, PredictedObject, UploadColumns
from tests.server.conftest import Running, finish_job

FRAMES = 24
#: class id: name, width, length, height (m)
CLASSES = {0: ("car", 1.9, 4.6, 1.7), 1: ("truck", 2.5, 7.0, 2.9), 2: ("pedestrian", 0.7, 0.7, 1.8),
           3: ("barrier", 2.5, 0.5, 1.0), 4: ("traffic_cone", 0.4, 0.4, 1.1)}  # fmt: skip
CAR, TRUCK = 0, 1
#: planted errors, each on two frames: frame index -> (kind, the object it is planted on)
PLANTED = {1: ("missing", 0), 4: ("spurious", -1), 6: ("centre", 0), 9: ("size", 1), 11: ("heading", 0),
           14: ("swap", 1), 16: ("missing", 1), 17: ("spurious", -1), 19: ("centre", 1), 20: ("size", 0),
           22: ("heading", 1), 23: ("swap", 0)}  # fmt: skip
TYPES = {"missing": apb.DETECTION_ISSUE_TYPE_MISSING_LABEL, "spurious": apb.DETECTION_ISSUE_TYPE_SPURIOUS_LABEL,
         "centre": apb.DETECTION_ISSUE_TYPE_MISLOCALIZED, "size": apb.DETECTION_ISSUE_TYPE_MISLOCALIZED,
         "heading": apb.DETECTION_ISSUE_TYPE_MISLOCALIZED, "swap": apb.DETECTION_ISSUE_TYPE_CLASS_SWAP}  # fmt: skip


def _scene(rng: np.random.Generator) -> list[tuple[int, list[float]]]:
    """Two vehicles and a group of each small class, 12 m apart on a ring around the ego vehicle: (class,
    x, y, z, w, l, h, yaw)."""
    out = []
    spots = [(12.0 * math.cos(a), 12.0 * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 7)[:-1]]
    for k, (cls, (cx, cy)) in enumerate(
        zip((CAR, TRUCK if rng.random() < 0.3 else CAR, 2, 3, 4, 4), spots, strict=True)
    ):
        _, w, length, h = CLASSES[cls]
        size = np.array([w, length, h]) * np.exp(rng.normal(0, 0.05, 3))
        yaw = float(rng.uniform(-math.pi, math.pi))
        members = 2 if k >= 2 else 1  # people side by side, barriers end to end, cones in a row
        for i in range(members):
            along = (i - (members - 1) / 2) * {2: 1.3, 3: 0.0, 4: 1.8}.get(cls, 0.0)
            across = (i - (members - 1) / 2) * (2.7 if cls == 3 else 0.0)
            x = cx + along * math.cos(yaw) - across * math.sin(yaw)
            y = cy + along * math.sin(yaw) + across * math.cos(yaw)
            out.append((cls, [x, y, size[2] / 2, *size.tolist(), yaw]))
    return out


def _cuboid(c: list[float]) -> Cuboid:
    return Cuboid(*c[:6], yaw=c[6])


def _upload(running: Running, p: str, seed: int) -> dict[str, tuple[str, str, list[float], list[float]]]:
    """Uploads the frames; returns per planted frame the kind, the object id flagged and, for a mislocalized
    label, its cuboid and its prediction's."""
    rng = np.random.default_rng(seed)
    ids, labels, predictions, planted = [], [], [], {}
    for i in range(FRAMES):
        frame = f"sweep-{i:03d}"
        scene = _scene(rng)
        preds = []
        for j, (cls, c) in enumerate(scene):
            d = list(c)
            d[0] += float(rng.normal(0, 0.08))
            d[1] += float(rng.normal(0, 0.08))
            d[2] += float(rng.normal(0, 0.04))
            d[3:6] = (np.asarray(c[3:6]) * np.exp(rng.normal(0, 0.03, 3))).tolist()
            if cls == 4:
                d[6] = float(rng.uniform(-math.pi, math.pi))  # a cone's heading is anything
            else:
                d[6] += float(rng.normal(0, 0.03)) + (math.pi if cls == 3 and rng.random() < 0.5 else 0.0)
            preds.append(PredictedObject(f"d{j}", cls, float(rng.uniform(0.9, 0.99)), cuboid=_cuboid(d)))
        if i % 3 == 0:  # an unsure false alarm, where nothing is
            preds.append(PredictedObject("d99", CAR, 0.08, cuboid=Cuboid(0.0, 25.0, 0.9, 1.9, 4.5, 1.7, yaw=0.3)))
        objects = [LabeledObject(f"g{j}", cls, cuboid=_cuboid(c)) for j, (cls, c) in enumerate(scene)]
        kind, at = PLANTED.get(i, ("", 0))
        if kind == "missing":
            objects.pop(at)
            planted[frame] = (kind, f"d{at}", [], [])
        elif kind == "spurious":
            objects.append(LabeledObject("g99", TRUCK, cuboid=Cuboid(-25.0, 0.0, 1.4, 2.5, 7.0, 2.9, yaw=1.0)))
            planted[frame] = (kind, "g99", [], [])
        elif kind in ("centre", "size", "heading"):
            c = list(scene[at][1])
            if kind == "centre":  # 1 to 1.4 m off, as much across the vehicle as along it
                turn = c[6] + float(rng.choice([-1, 1])) * float(rng.uniform(0.6, 1.0))
                off = float(rng.uniform(1.0, 1.4))
                c[0], c[1] = c[0] + off * math.cos(turn), c[1] + off * math.sin(turn)
            elif kind == "size":  # far too long
                c[4] *= float(rng.uniform(1.6, 1.9))
            else:  # turned across, or around
                c[6] += math.pi / 2 if at == 0 else math.pi
            objects[at] = LabeledObject(f"g{at}", scene[at][0], cuboid=_cuboid(c))
            p_box = preds[at].cuboid
            planted[frame] = (kind, f"g{at}", c, [p_box.x, p_box.y, p_box.z, p_box.width, p_box.length,
                                                  p_box.height, p_box.yaw])  # fmt: skip
        elif kind == "swap":
            cls = scene[at][0]
            objects[at] = LabeledObject(f"g{at}", TRUCK if cls == CAR else CAR, cuboid=_cuboid(scene[at][1]))
            planted[frame] = (kind, f"g{at}", [], [])
        ids.append(frame)
        labels.append(objects)
        predictions.append(preds)
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_CUBOIDS_3D,
            classes=[pb.ClassDef(id=k, name=v[0]) for k, v in CLASSES.items()])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="lidar", dataset="val", model_name="centerpoint", model_version="1")))  # fmt: skip
        cols = UploadColumns(frame_ids=ids, media_type=pb.MEDIA_TYPE_POINT_CLOUD, coordinate_frames=["ego"] * FRAMES,
                             media_uris=[f"s3://lidar/{f}.bin" for f in ids], objects=labels, inference_set="lidar",
                             predictions=predictions)  # fmt: skip
        r = c.upload(p, "val", cols, progress=False)
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return planted


def _query(c, p: str, job_id: str, **kwargs) -> apb.QueryDetectionLabelIssuesResponse:  # type: ignore[no-untyped-def]
    return c.analysis.QueryDetectionLabelIssues(
        apb.QueryDetectionLabelIssuesRequest(project=p, job_id=job_id, **kwargs)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_cuboid_label_errors_are_found_named_and_ranked_first(shared: Running, project: str, seed: int) -> None:
    p = project
    planted = _upload(shared, p, seed)
    with shared.client(shared.admin_key) as c:
        job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=p, inference_set="lidar")).job
        job = finish_job(c, p, job)
        assert job.kind == detection_issues.KIND
        flagged = _query(c, p, job.job_id)
        pages = {t: _query(c, p, job.job_id, issue_types=[t], include_unflagged=True,
                           page=cpb.PageRequest(page_size=20)) for t in set(TYPES.values())}  # fmt: skip

    s = flagged.summary
    assert (s.missing_labels, s.spurious_labels, s.mislocalized, s.class_swaps) == (2, 2, 6, 2)
    assert s.flagged_frames == len(planted) and s.frames == FRAMES
    # nothing but the planted errors is flagged, each with its type
    assert {(o.ref.frame_id, o.ref.object_id, o.issue_type) for o in flagged.objects} == {
        (f, obj, TYPES[kind]) for f, (kind, obj, _, _) in planted.items()
    }
    for t, page in pages.items():
        want = {(f, obj) for f, (kind, obj, _, _) in planted.items() if TYPES[kind] == t}
        rows = list(page.objects)
        assert [r.score for r in rows] == sorted(r.score for r in rows)
        # the planted ones first, flagged; the next one not
        assert {(r.ref.frame_id, r.ref.object_id) for r in rows[: len(want)]} == want
        assert all(r.is_issue for r in rows[: len(want)]) and not rows[len(want)].is_issue
    by_object = {(o.ref.frame_id, o.ref.object_id): o for o in flagged.objects}
    for f, (kind, obj, label, prediction) in planted.items():
        o = by_object[(f, obj)]
        assert o.mislocalization == (kind if kind in ("centre", "size", "heading") else "")
        if kind == "missing":
            assert o.predicted and o.suggested_class in CLASSES and o.confidence > 0.9
            assert o.predicted_cuboid.length > 0 and not o.HasField("label_cuboid") and not o.HasField("predicted_box")
        elif kind == "spurious":
            assert not o.predicted and o.partner_object_id == "" and not o.HasField("suggested_class")
            lc = o.label_cuboid
            assert (lc.x, lc.y, lc.width, lc.length, lc.yaw) == (-25.0, 0.0, 2.5, 7.0, 1.0)
        elif kind == "swap":
            assert o.given_class != o.suggested_class and o.suggested_class == o.given_class ^ 1
            assert o.partner_object_id == "d" + obj[1:] and o.iou > 0.7
        else:
            # the label and its own prediction, as uploaded; the IoU of their footprints seen from above
            assert o.partner_object_id == "d" + obj[1:] and o.given_class == o.suggested_class
            for got, want in ((o.label_cuboid, label), (o.predicted_cuboid, prediction)):
                assert [got.x, got.y, got.z, got.width, got.length, got.height, got.yaw] == pytest.approx(want)
            # a box turned around covers the same ground: its footprints' IoU alone would not tell
            turned_around = abs(math.remainder(label[6] - prediction[6], 2 * math.pi)) > 3
            assert o.iou > 0.8 if turned_around else 0.1 < o.iou < 0.7
