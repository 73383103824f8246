"""Detection label issues through the server: a detection dataset whose predictions see the true
objects, with one error of each kind planted in the labels. Each planted error must be found with
its type and rank first; the clean frames must not be flagged."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from shoal.analysis import detection_issues
from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.jobs import JobStore
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Box, LabeledObject, PredictedObject, UploadColumns
from tests.server.conftest import Running, computed_answers, finish_job, preparer_of, wait_for

FRAMES = 40
CLASSES = (1, 2, 3)
#: planted errors: frame index -> kind
MISSING, SPURIOUS, SHIFTED, SWAPPED = 5, 12, 21, 33
PLANTED = {
    f"img-{MISSING:03d}": apb.DETECTION_ISSUE_TYPE_MISSING_LABEL,
    f"img-{SPURIOUS:03d}": apb.DETECTION_ISSUE_TYPE_SPURIOUS_LABEL,
    f"img-{SHIFTED:03d}": apb.DETECTION_ISSUE_TYPE_MISLOCALIZED,
    f"img-{SWAPPED:03d}": apb.DETECTION_ISSUE_TYPE_CLASS_SWAP,
}
SPURIOUS_BOX = (500.0, 380.0, 60.0, 40.0)


def _scene(rng: np.random.Generator) -> list[tuple[int, tuple[float, float, float, float]]]:
    """Three objects in separate cells of a 640 x 480 image (the bottom-right cell stays empty)."""
    out = []
    for cx, cy in ((0, 0), (1, 0), (0, 1)):
        w, h = (float(v) for v in rng.integers(60, 140, 2))
        x, y = cx * 320 + float(rng.integers(10, 150)), cy * 240 + float(rng.integers(10, 80))
        out.append((int(rng.choice(CLASSES)), (x, y, w, h)))
    return out


def _upload(running: Running, p: str) -> dict[str, dict]:  # type: ignore[type-arg]
    """Uploads the dataset; returns per planted frame what was planted (object ids, classes, boxes)."""
    rng = np.random.default_rng(7)
    ids, labels, predictions, planted = [], [], [], {}
    for i in range(FRAMES):
        frame = f"img-{i:03d}"
        scene = _scene(rng)
        preds = []
        for j, (cls, (x, y, w, h)) in enumerate(scene):
            jx, jy = (float(v) for v in rng.normal(0, 1.5, 2))
            preds.append(PredictedObject(f"d{j}", cls, float(rng.uniform(0.93, 0.99)), Box(x + jx, y + jy, w, h)))
        if i % 4 == 1:  # an unsure background box, in the empty cell
            preds.append(PredictedObject("d9", 1, 0.08, Box(420.0, 300.0, 50.0, 50.0)))
        objects = [LabeledObject(f"g{j}", cls, Box(*box)) for j, (cls, box) in enumerate(scene)]
        if i == MISSING:
            objects.pop(1)
            planted[frame] = {"object": "d1", "class": scene[1][0]}
        elif i == SPURIOUS:
            objects.append(LabeledObject("g3", 2, Box(*SPURIOUS_BOX)))
            planted[frame] = {"object": "g3", "box": SPURIOUS_BOX}
        elif i == SHIFTED:
            cls, (x, y, w, h) = scene[2]
            objects[2] = LabeledObject("g2", cls, Box(x + 0.3 * w, y + 0.3 * h, w, h))
            planted[frame] = {"object": "g2", "class": cls}
        elif i == SWAPPED:
            cls = scene[0][0]
            wrong = CLASSES[(CLASSES.index(cls) + 1) % len(CLASSES)]
            objects[0] = LabeledObject("g0", wrong, Box(*scene[0][1]))
            planted[frame] = {"object": "g0", "given": wrong, "class": cls}
        ids.append(frame)
        labels.append(objects)
        predictions.append(preds)
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_OBJECT_DETECTION_2D,
            classes=[pb.ClassDef(id=k, name=f"c{k}") for k in CLASSES])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED, splits=["val"])))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="detr", dataset="val", model_name="detr", model_version="1")))  # fmt: skip
        cols = UploadColumns(
            frame_ids=ids,
            sizes=[(640, 480)] * FRAMES,
            metadata=[{"camera": "rear" if i % 2 else "front"} for i in range(FRAMES)],
            splits=["val"] * FRAMES,
            media_uris=[f"s3://cones/{f}.jpg" for f in ids],
            objects=labels,
            inference_set="detr",
            predictions=predictions,
        )
        r = c.upload(p, "val", cols, progress=False)
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return planted


def _start(c, p: str, **kwargs) -> cpb.Job:  # type: ignore[no-untyped-def]
    return c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=p, inference_set="detr", **kwargs)).job


def _query(c, p: str, job_id: str, **kwargs) -> apb.QueryDetectionLabelIssuesResponse:  # type: ignore[no-untyped-def]
    return c.analysis.QueryDetectionLabelIssues(
        apb.QueryDetectionLabelIssuesRequest(project=p, job_id=job_id, **kwargs)
    )


def test_planted_detection_label_errors_are_found_typed_and_ranked_first(shared: Running, project: str) -> None:
    running, p = shared, project
    planted = _upload(running, p)
    with running.client(running.admin_key) as c:
        job = finish_job(c, p, _start(c, p))
        assert job.kind == detection_issues.KIND
        frames = _query(c, p, job.job_id, level=apb.DETECTION_ISSUE_LEVEL_FRAME, include_unflagged=True,
                        page=cpb.PageRequest(page_size=100))  # fmt: skip
        objects = _query(c, p, job.job_id)

    s = frames.summary
    assert (s.frames, s.labeled_objects, s.flagged_frames) == (FRAMES, 3 * FRAMES, len(PLANTED))
    assert (s.missing_labels, s.spurious_labels, s.mislocalized, s.class_swaps) == (1, 1, 1, 1)
    assert s.predicted_objects == 3 * FRAMES + FRAMES // 4 and s.match_iou == detection_issues.MATCH_IOU
    # frames: the planted ones first, flagged, each with its kind as its worst object; no clean frame flagged
    rows = list(frames.frames)
    assert len(rows) == FRAMES == frames.page.total_count
    assert {r.ref.frame_id for r in rows[: len(PLANTED)]} == set(PLANTED)
    assert [r.score for r in rows] == sorted(r.score for r in rows)
    for r in rows:
        assert r.is_issue == (r.ref.frame_id in PLANTED) and r.media_uri == f"s3://cones/{r.ref.frame_id}.jpg"
        if r.is_issue:
            assert r.worst_type == PLANTED[r.ref.frame_id] and r.score < 0.5
            counts = (r.missing_labels, r.spurious_labels, r.mislocalized, r.class_swaps)
            assert sum(counts) == 1 and counts[PLANTED[r.ref.frame_id] - 1] == 1
        else:
            assert r.score > 0.5

    # objects: exactly the planted errors, with the evidence
    found = {o.ref.frame_id: o for o in objects.objects}
    assert set(found) == set(PLANTED) and objects.page.total_count == len(PLANTED)
    assert all(found[f].issue_type == t and found[f].is_issue for f, t in PLANTED.items())
    missing = found[f"img-{MISSING:03d}"]
    assert missing.predicted and missing.ref.object_id == planted[missing.ref.frame_id]["object"]
    assert missing.suggested_class == planted[missing.ref.frame_id]["class"] and not missing.HasField("given_class")
    assert missing.predicted_box.width > 0 and missing.confidence > 0.9
    spurious = found[f"img-{SPURIOUS:03d}"]
    assert not spurious.predicted and spurious.ref.object_id == "g3" and not spurious.HasField("suggested_class")
    b = spurious.label_box
    assert (b.x, b.y, b.width, b.height) == SPURIOUS_BOX and spurious.score < 0.1
    shifted = found[f"img-{SHIFTED:03d}"]
    assert shifted.ref.object_id == "g2" and shifted.partner_object_id == "d2" and 0.2 < shifted.iou < 0.5
    assert shifted.given_class == shifted.suggested_class == planted[shifted.ref.frame_id]["class"]
    swapped = found[f"img-{SWAPPED:03d}"]
    want = planted[swapped.ref.frame_id]
    assert (swapped.ref.object_id, swapped.given_class, swapped.suggested_class) == ("g0", want["given"], want["class"])
    assert swapped.partner_object_id == "d0" and swapped.iou > 0.9


def test_detection_issue_queries_filter_page_and_check_their_fields(shared: Running, project: str) -> None:
    running, p = shared, project
    _upload(running, p)
    with running.client(running.admin_key) as c:
        job = finish_job(c, p, _start(c, p))
        # the same request gives the same job; a frame filter makes another one over those frames only
        assert _start(c, p).job_id == job.job_id
        rear = cpb.Filter(all=[cpb.Condition(field="metadata.camera", equals=cpb.Value(string_value="rear"))])
        part = finish_job(c, p, _start(c, p, filter=rear))
        assert part.job_id != job.job_id
        part_frames = _query(c, p, part.job_id, level=apb.DETECTION_ISSUE_LEVEL_FRAME, include_unflagged=True)
        assert part_frames.summary.frames == FRAMES // 2
        assert {int(r.ref.frame_id[4:]) % 2 for r in part_frames.frames} == {1}

        swaps = _query(c, p, job.job_id, issue_types=[apb.DETECTION_ISSUE_TYPE_CLASS_SWAP])
        assert [o.ref.frame_id for o in swaps.objects] == [f"img-{SWAPPED:03d}"]
        by_type = _query(
            c,
            p,
            job.job_id,
            level=apb.DETECTION_ISSUE_LEVEL_FRAME,
            issue_types=[apb.DETECTION_ISSUE_TYPE_MISSING_LABEL, apb.DETECTION_ISSUE_TYPE_MISLOCALIZED],
        )
        assert {r.ref.frame_id for r in by_type.frames} == {f"img-{MISSING:03d}", f"img-{SHIFTED:03d}"}
        # every scored (object, type): three per labeled box, one per predicted box; pages of 50 cover them once
        seen, token = [], ""
        while True:
            resp = _query(c, p, job.job_id, include_unflagged=True, order=apb.DETECTION_ISSUE_ORDER_FRAME_ID,
                          page=cpb.PageRequest(page_size=50, page_token=token))  # fmt: skip
            seen += [(o.ref.frame_id, o.ref.object_id, o.issue_type) for o in resp.objects]
            token = resp.page.next_page_token
            if not token:
                break
        s = resp.summary
        assert len(seen) == len(set(seen)) == 3 * s.labeled_objects + s.predicted_objects == resp.page.total_count
        assert seen == sorted(seen)

        def refused(code: grpc.StatusCode, field: str, call) -> None:  # type: ignore[no-untyped-def]
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == code and info.value.details().startswith(field), info.value.details()

        invalid = grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as info:
            _query(c, p, "detection_label_issues-nope")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND and "detection_label_issues-nope" in info.value.details()
        refused(invalid, "level", lambda: _query(c, p, job.job_id, level=7))
        refused(invalid, "order", lambda: _query(c, p, job.job_id, order=9))
        refused(invalid, "issue_types[1]", lambda: _query(c, p, job.job_id, issue_types=[1, 0]))
        refused(invalid, "include_unflagged", lambda: _query(c, p, job.job_id, level=apb.DETECTION_ISSUE_LEVEL_FRAME,
                                                             issue_types=[1], include_unflagged=True))  # fmt: skip
        # a detection filter takes frame fields only
        by_class = cpb.Filter(all=[cpb.Condition(field="label_class", equals=cpb.Value(string_value="1"))])
        refused(invalid, "filter.all[0]", lambda: _start(c, p, filter=by_class))
        # the classification query does not read a detection job, nor this query a classification job
        refused(invalid, "job_id", lambda: c.analysis.QueryLabelIssues(
            apb.QueryLabelIssuesRequest(project=p, job_id=job.job_id)))  # fmt: skip
        store = JobStore(running.server.stores.metrics, service="analysis")
        other, _ = store.submit(p, "label_issues", {"inference_set": "detr"})
        refused(invalid, "job_id", lambda: _query(c, p, other.job_id))
        store.cancel(p, other.job_id)  # a job made by hand: it must not run on the module's server after the test


def test_a_cancelled_detection_issue_job_keeps_nothing(
    shared: Running, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, p = shared, project
    _upload(running, p)
    metrics = running.server.stores.metrics
    monkeypatch.setattr(detection_issues, "CHUNK_FRAMES", 10)  # several chunks: rows are written before the end
    score_chunk = detection_issues._score_chunk
    cancelled: list[str] = []

    def then_cancel(m, job, *args, **kwargs):  # type: ignore[no-untyped-def]
        score_chunk(m, job, *args, **kwargs)
        if not cancelled:  # the first chunk is stored; cancel before the next one
            with running.client(running.admin_key) as c:
                c.analysis.CancelJob(apb.CancelJobRequest(project=p, job_id=job.job_id))
            cancelled.append(job.job_id)

    monkeypatch.setattr(detection_issues, "_score_chunk", then_cancel)
    with running.client(running.admin_key) as c:
        job = _start(c, p)

        def ended() -> bool:
            state = c.analysis.GetJob(apb.GetJobRequest(project=p, job_id=job.job_id)).job.state
            return state == cpb.JOB_STATE_CANCELLED

        wait_for(ended, timeout=60, what="the job to be cancelled")
        for table in detection_issues.TABLES:
            n = metrics.query(
                f"SELECT count() FROM {table} WHERE project = {{p:String}} AND job_id = {{j:String}}",
                {"p": p, "j": job.job_id},
            ).scalar()
            assert n == 0, table
        with pytest.raises(grpc.RpcError) as info:
            _query(c, p, job.job_id)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "job_id" in info.value.details()


def test_the_detection_issues_first_page_is_prepared_before_anyone_asks(shared: Running, project: str) -> None:
    """Once a detection label-issue job has finished, the Issues page's first page (48 flagged objects, the likeliest
    issues first) is kept before anyone asks; a dismissal is seen at once."""
    running, p = shared, project
    preparer, computed = preparer_of(running), computed_answers
    _upload(running, p)
    with running.client(running.admin_key) as c:
        job = finish_job(c, p, _start(c, p))
        wait_for(lambda: preparer.job_prepared(p, job.job_id), what="the first page of the detection issues")
        before = computed()
        first = _query(c, p, job.job_id, level=apb.DETECTION_ISSUE_LEVEL_OBJECT, page=cpb.PageRequest(page_size=48))
        assert computed() == before  # prepared
        assert {o.ref.frame_id for o in first.objects} == set(PLANTED) and first.dismissed_count == 0
        gone = first.objects[0].ref
        c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(
            project=p, job_id=job.job_id, frame_ids=[gone.frame_id], reason="checked"))  # fmt: skip
        after = _query(c, p, job.job_id, level=apb.DETECTION_ISSUE_LEVEL_OBJECT, page=cpb.PageRequest(page_size=48))
        assert gone.frame_id not in {o.ref.frame_id for o in after.objects} and after.dismissed_count == 1
