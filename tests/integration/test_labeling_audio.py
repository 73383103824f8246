"""Audio clips with sound events through the labeling round trip, against a real Label Studio server (the
`label_studio` session fixture): clips go out as audio tasks with their events as audio regions, an
annotator's edits (an event moved, one deleted, one added, every event removed) come back as new label
versions with the events in seconds, annotations that do not fit the clip fail alone naming the task, the
frame and the region, a sound-event label-issues job's clips go out each with its flagged intervals as the
reason, and a 3-D cuboid project is refused, saying what Label Studio cannot do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.settings import ShoalSettings
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.labeling_bridge.label_studio import parse_labeling_config
from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb
from shoal.sampler.v1 import sampler_pb2 as spb
from shoal.sdk import Cuboid, LabeledObject, UploadColumns
from tests.integration.test_label_studio_adapter import Api
from tests.integration.test_labeling_round_trip import (
    _assert_provenance,
    _await_request,
    _items,
    _newest_from_label_studio,
    _prediction,
    _settings,
    _tasks,
)
from tests.server.conftest import Running, start_server

pytestmark = pytest.mark.integration

SIREN, DOG, SPEECH = 3, 5, 9
SOUNDS = [pb.ClassDef(id=SIREN, name="siren"), pb.ClassDef(id=DOG, name="dog_bark"),
          pb.ClassDef(id=SPEECH, name="speech")]  # fmt: skip
CLIP_SECONDS = 10.0
#: each clip's labeled events, (onset, offset, class id); times that are exact in binary, so that what
#: comes back compares equal
EVENTS = {
    "c0": [(1.0, 2.5, SIREN), (3.0, 4.0, DOG), (6.0, 8.0, SPEECH)],
    "c1": [(0.5, 1.5, DOG)],
    "c2": [(2.0, 3.0, SIREN)],
    "c3": [],
    "c4": [(4.0, 5.5, SPEECH), (7.25, 9.0, DOG)],
    "c5": [(1.0, 2.0, SIREN)],
}


@pytest.fixture
def polling_only(embedded_settings: ShoalSettings, label_studio: Any) -> Iterator[Running]:
    running = start_server(_settings(embedded_settings, label_studio, webhooks=False, poll=3600))
    yield running
    running.server.stop(grace=1)


def _clips(c: Any, project: str) -> None:
    """A sound-event project of 10 s clips with labeled events, and a detector's events for c5."""
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=project, task_type=pb.TASK_TYPE_SOUND_EVENTS, classes=SOUNDS)))  # fmt: skip
    c.ingest.CreateDataset(
        pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name="clips", kind=pb.DATASET_KIND_LABELED))
    )
    c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
        name="sed", dataset="clips", model_name="sed", model_version="1")))  # fmt: skip
    ids = list(EVENTS)
    r = c.upload(project, "clips", UploadColumns(
        frame_ids=ids, media_uris=[f"http://127.0.0.1:1/clips/{f}.wav" for f in ids], media_type=pb.MEDIA_TYPE_AUDIO,
        durations=[CLIP_SECONDS] * len(ids), sample_rates=[16000] * len(ids), label_events=list(EVENTS.values()),
        provenance=pb.Provenance(source="import", author="vendor")), progress=False)  # fmt: skip
    assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    r = c.upload(project, "clips", UploadColumns(
        frame_ids=["c5"], skip_frames=True, inference_set="sed",
        predicted_events=[[(1.25, 2.0, SIREN, 0.875), (3.0, 4.5, DOG, 0.25), (6.0, 7.0, SPEECH, 0.5)]]),
        progress=False)  # fmt: skip
    assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


def _region(region: str, name: str, start: float, end: float) -> dict[str, Any]:
    """An audio region as Label Studio's editor saves one."""
    return {"id": region, "from_name": "label", "to_name": "audio", "type": "labels", "origin": "manual",
            "value": {"start": start, "end": end, "channel": 0, "labels": [name]}}  # fmt: skip


def _events(version: pb.LabelVersion) -> list[tuple[float, float, int]]:
    return [(e.onset, e.offset, e.class_id) for e in version.events]


def test_sound_events_round_trip_through_label_studio_audio_regions(polling_only: Running, label_studio: Any) -> None:
    """Clips go out as audio tasks, their events as audio regions in seconds (the model's confident ones
    with an inference set); an annotator moves one event, deletes one and adds one, and the new label
    version holds exactly those events, by class name; an interval ending before it starts, one past
    the clip's end and a label the project lacks each fail their task alone, naming task, frame and
    region."""
    project = f"sed-{uuid.uuid4().hex[:6]}"
    api = Api(label_studio)
    with polling_only.client(polling_only.admin_key) as c:
        _clips(c, project)
        req = c.send_for_labeling(project, frames=[f for f in EVENTS if f != "c5"], dataset="clips", timeout=120)
        assert req.state == lpb.LABELING_REQUEST_STATE_SENT and req.counts.sent == 5
        predicted = c.send_for_labeling(project, frames=["c5"], dataset="clips", preannotation_inference_set="sed",
                                        timeout=120)  # fmt: skip
        assert predicted.state == lpb.LABELING_REQUEST_STATE_SENT
        assert predicted.platform_project_id == req.platform_project_id

        # the interface: the clip's waveform and a label per class
        stored = api("GET", f"/api/projects/{req.platform_project_id}/")
        assert '<Audio name="audio" value="$audio"/>' in stored["label_config"]
        assert stored["parsed_label_config"]["label"]["type"] == "Labels"
        assert stored["parsed_label_config"]["label"]["to_name"] == ["audio"]
        assert stored["parsed_label_config"]["label"]["labels"] == ["siren", "dog_bark", "speech"]
        read = parse_labeling_config(stored["label_config"])
        assert read is not None and (read.task_type, read.classes) == ("sound_events", ("siren", "dog_bark", "speech"))

        # each clip a task with its media URL; its events as audio regions in seconds, ids by position
        tasks = _tasks(api, req.platform_project_id)
        assert set(tasks) == {f"clips/{f}" for f in EVENTS}
        assert tasks["clips/c0"]["data"]["audio"] == "http://127.0.0.1:1/clips/c0.wav"
        regions = _prediction(api, tasks["clips/c0"])
        assert [(r["id"], r["from_name"], r["to_name"], r["type"]) for r in regions] == [
            (f"ev{n}", "label", "audio", "labels") for n in range(3)]  # fmt: skip
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"]) for r in regions] == [
            (1.0, 2.5, ["siren"]), (3.0, 4.0, ["dog_bark"]), (6.0, 8.0, ["speech"])]  # fmt: skip
        assert api("GET", "/api/predictions/", params={"task": tasks["clips/c3"]["id"]}) == []  # no event, no region
        # from the inference set: the events scored 0.5 or more, with their scores
        (model,) = api("GET", "/api/predictions/", params={"task": tasks["clips/c5"]["id"]})
        assert model["model_version"] == "inference set sed"
        assert [(r["id"], r["value"]["start"], r["value"]["end"], r["value"]["labels"], r["score"])
                for r in model["result"]] == [("ev0", 1.25, 2.0, ["siren"], 0.875),
                                              ("ev2", 6.0, 7.0, ["speech"], 0.5)]  # fmt: skip

        # the annotator moves the siren, deletes the dog bark and adds speech at the end
        siren, _dog, speech = regions
        siren["value"]["start"], siren["value"]["end"] = 1.5, 3.0
        api.annotate(str(tasks["clips/c0"]["id"]), [siren, speech, _region("new-1", "speech", 8.5, 9.75)])
        # another removes every event: a clip with none
        api.annotate(str(tasks["clips/c4"]["id"]), [])
        # and three do not fit: an interval ending before it starts, one past the clip's end, a zebra
        (bark,) = _prediction(api, tasks["clips/c1"])
        bark["value"]["start"], bark["value"]["end"] = 1.5, 0.5
        api.annotate(str(tasks["clips/c1"]["id"]), [bark])
        (late,) = _prediction(api, tasks["clips/c2"])
        late["value"]["end"] = 10.5
        api.annotate(str(tasks["clips/c2"]["id"]), [late])
        api.annotate(str(tasks["clips/c3"]["id"]), [_region("odd", "zebra", 1.0, 2.0)])

        sync = c.labeling_bridge.SyncAnnotations(lpb.SyncAnnotationsRequest(project=project))
        assert (sync.read, sync.synced, sync.failed) == (5, 2, 3)
        items = _items(c, project, req.request_id)
        assert [items[f].state for f in ("c0", "c1", "c2", "c3", "c4")] == [
            lpb.ITEM_STATE_SYNCED, lpb.ITEM_STATE_FAILED, lpb.ITEM_STATE_FAILED, lpb.ITEM_STATE_FAILED,
            lpb.ITEM_STATE_SYNCED]  # fmt: skip
        for f in ("c1", "c2", "c3"):
            assert f"annotation {items[f].annotation_id} of task {items[f].task_id} (frame clips/{f})" in items[f].error
        assert "interval 'ev0': ends at 0.5 s, before it starts (1.5 s)" in items["c1"].error
        assert "interval 'ev0': ends at 10.5 s, past the end of the 10.0 s clip" in items["c2"].error
        assert "interval 'odd' (result item 0): class 'zebra' is not in the project's classes" in items["c3"].error

        newest = _newest_from_label_studio(c, project, "clips", "c0")
        _assert_provenance(newest, items["c0"], label_studio)
        assert _events(newest) == [(1.5, 3.0, SIREN), (6.0, 8.0, SPEECH), (8.5, 9.75, SPEECH)]
        assert not newest.objects and not newest.HasField("class_id")
        emptied = _newest_from_label_studio(c, project, "clips", "c4")
        assert _events(emptied) == []
        versions = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(
            project=project, dataset="clips", frame_id="c0")).versions  # fmt: skip
        assert len(versions) == 2 and _events(versions[1]) == EVENTS["c0"]
        # the clips whose annotation failed keep their events
        for f in ("c1", "c2", "c3"):
            (version,) = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(
                project=project, dataset="clips", frame_id=f)).versions  # fmt: skip
            assert version.provenance.source == "import" and _events(version) == EVENTS[f]

        # an annotator corrects a failed one: its next revision is written
        ann = api("GET", f"/api/tasks/{tasks['clips/c1']['id']}/annotations/")[0]
        bark["value"]["start"], bark["value"]["end"] = 0.25, 1.5
        api("PATCH", f"/api/annotations/{ann['id']}/", json={"result": [bark]})
        sync = c.labeling_bridge.SyncAnnotations(lpb.SyncAnnotationsRequest(project=project))
        assert sync.synced == 1
        assert _events(_newest_from_label_studio(c, project, "clips", "c1")) == [(0.25, 1.5, DOG)]


def test_a_cuboid_project_is_refused_saying_what_label_studio_cannot_do(
    polling_only: Running, label_studio: Any
) -> None:
    """Label Studio has no point-cloud view and no cuboid tool: sending a CUBOIDS_3D project's frames
    is FAILED_PRECONDITION, whatever the source, the message saying why and what to do instead; a
    request handed over on the labeling-requests topic is recorded FAILED with that message; nothing is
    made in Label Studio."""
    project = f"lidar-{uuid.uuid4().hex[:6]}"
    with polling_only.client(polling_only.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_CUBOIDS_3D,
            classes=[pb.ClassDef(id=0, name="car"), pb.ClassDef(id=1, name="pedestrian")])))  # fmt: skip
        c.ingest.CreateDataset(
            pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name="sweeps", kind=pb.DATASET_KIND_LABELED))
        )
        r = c.upload(project, "sweeps", UploadColumns(
            frame_ids=["s1"], media_uris=["s3://lidar/s1.bin"], media_type=pb.MEDIA_TYPE_POINT_CLOUD,
            coordinate_frames=["ego"],
            objects=[[LabeledObject("o1", 0, cuboid=Cuboid(x=10.0, y=2.0, z=0.5, width=1.8, length=4.5, height=1.6,
                                                           yaw=0.3))]]), progress=False)  # fmt: skip
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED

        for source in ({"frames": lpb.FrameList(dataset="sweeps", frame_ids=["s1"])},
                       {"label_issues": lpb.LabelIssuesSource(job_id="any-job")}):  # fmt: skip
            with pytest.raises(grpc.RpcError) as e:
                c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(project=project, **source))
            assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            details = e.value.details()
            assert details.startswith("project: Label Studio cannot label 3-D cuboids: it has no point-cloud view")
            assert "QueryDetectionLabelIssues" in details and "ListLabelVersions" in details and "Upload" in details
        assert not c.labeling_bridge.ListLabelingRequests(lpb.ListLabelingRequestsRequest(project=project)).requests

        # a request handed over on the labeling-requests topic is recorded, and fails with the same message
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=project, segment=apb.Segment(
            name="boxes-to-fix", dataset="sweeps", kind=apb.SEGMENT_KIND_ISSUE, reason="cuboids off"),
            frame_ids=["s1"]))  # fmt: skip
        handed = c.sampler.RequestLabeling(spb.RequestLabelingRequest(project=project, segment="boxes-to-fix"))
        failed = _await_request(c, project, handed.request_id,
                                lambda r: r.state != lpb.LABELING_REQUEST_STATE_PENDING)  # fmt: skip
        assert failed.state == lpb.LABELING_REQUEST_STATE_FAILED and failed.counts.failed == 1
        assert failed.last_error == details and not failed.platform_project_id
    found = Api(label_studio)("GET", "/api/projects/", params={"title": f"Shoal {project}/", "page_size": 100})
    assert not [p for p in found["results"] if p["title"].startswith(f"Shoal {project}/")]


def test_sound_event_label_issues_are_sent_with_a_reason_per_clip(polling_only: Running, label_studio: Any) -> None:
    """A sound-event label-issues job's flagged clips go out worst first, each with its flagged intervals
    in time order as its reason (kind, class, times); an annotator's fix comes back, and the clip is no
    longer flagged by the next run."""
    from shoal.common.v1 import common_pb2 as cpb

    project = f"sedi-{uuid.uuid4().hex[:6]}"
    clean = [(1.0, 2.0, SIREN), (4.0, 5.0, DOG), (7.0, 8.0, SPEECH)]
    labels = {f"k{i}": clean for i in range(8)}
    predictions = {f"k{i}": [(*e, 0.9) for e in clean] for i in range(8)}
    # a spurious dog bark and a siren the model hears as a dog bark; a speech event missing; a short speech
    labels["p0"] = [(1.0, 2.0, SIREN), (3.0, 4.0, DOG), (6.0, 7.0, SIREN)]
    predictions["p0"] = [(1.0, 2.0, SIREN, 0.9), (6.0, 7.0, DOG, 0.95)]
    labels["p1"] = [(1.0, 2.0, SIREN)]
    predictions["p1"] = [(1.0, 2.0, SIREN, 0.9), (5.0, 6.5, SPEECH, 0.9)]
    labels["p2"] = [(2.0, 2.5, SPEECH)]
    predictions["p2"] = [(2.0, 4.5, SPEECH, 0.8)]
    ids = list(labels)
    api = Api(label_studio)
    with polling_only.client(polling_only.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_SOUND_EVENTS, classes=SOUNDS)))  # fmt: skip
        c.ingest.CreateDataset(
            pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name="clips", kind=pb.DATASET_KIND_LABELED))
        )
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name="sed", dataset="clips", model_name="sed", model_version="1")))  # fmt: skip
        r = c.upload(project, "clips", UploadColumns(
            frame_ids=ids, media_uris=[f"http://127.0.0.1:1/clips/{f}.wav" for f in ids], media_type=pb.MEDIA_TYPE_AUDIO,
            durations=[CLIP_SECONDS] * len(ids), label_events=[labels[f] for f in ids], inference_set="sed",
            predicted_events=[predictions[f] for f in ids]), progress=False)  # fmt: skip
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED

        def issues() -> tuple[str, dict[str, apb.SoundEventClipIssue]]:
            job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=project, inference_set="sed",
                                                                          rerun=True)).job  # fmt: skip
            job = c.wait_for_job(project, job.job_id, progress=False, timeout=120)
            assert job.kind == "sound_event_label_issues"
            clips = c.analysis.QuerySoundEventIssues(apb.QuerySoundEventIssuesRequest(
                project=project, job_id=job.job_id, level=apb.SOUND_EVENT_ISSUE_LEVEL_CLIP,
                page=cpb.PageRequest(page_size=100))).clips  # fmt: skip
            return job.job_id, {x.frame_id: x for x in clips}

        job_id, flagged = issues()
        assert set(flagged) == {"p0", "p1", "p2"}
        req = c.send_for_labeling(project, label_issues_job_id=job_id, timeout=120)
        assert req.state == lpb.LABELING_REQUEST_STATE_SENT and req.counts.sent == 3
        assert req.source == f"label_issues:{job_id}"
        tasks = _tasks(api, req.platform_project_id)
        reasons = {f.split("/", 1)[1]: t["data"]["shoal_reason"] for f, t in tasks.items()}
        score = {f: f"{x.score:.2f}" for f, x in flagged.items()}
        assert reasons == {
            "p0": "label issues in 2 intervals: spurious 'dog_bark' 3.0-4.0 s; wrong class 'siren' 6.0-7.0 s, sounds"
                  f" like 'dog_bark' (clip score {score['p0']})",
            "p1": f"label issues in 1 interval: missing 'speech' 5.0-6.5 s (the model hears it, p 0.90) (clip score"
                  f" {score['p1']})",
            "p2": "label issues in 1 interval: badly bounded 'speech' 2.0-2.5 s (tIoU 0.20 with the model's) (clip"
                  f" score {score['p2']})",
        }  # fmt: skip
        # at most one clip: the worst
        worst = min(flagged.values(), key=lambda x: (x.score, x.frame_id)).frame_id
        one = c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(
            project=project, label_issues=lpb.LabelIssuesSource(job_id=job_id, max_frames=1)))  # fmt: skip
        assert one.request.frames == 1
        assert [i.ref.frame_id for i in _items(c, project, one.request.request_id).values()] == [worst]

        # the annotator drops the spurious bark and names the siren a dog bark: the clip is clean again
        siren, _bark, wrong = _prediction(api, tasks["clips/p0"])
        wrong["value"]["labels"] = ["dog_bark"]
        api.annotate(str(tasks["clips/p0"]["id"]), [siren, wrong])
        assert c.labeling_bridge.SyncAnnotations(lpb.SyncAnnotationsRequest(project=project)).synced == 1
        items = _items(c, project, req.request_id)
        newest = _newest_from_label_studio(c, project, "clips", "p0")
        _assert_provenance(newest, items["p0"], label_studio)
        assert _events(newest) == [(1.0, 2.0, SIREN), (6.0, 7.0, DOG)]
        assert "sent because: label issues in 2 intervals: spurious 'dog_bark'" in newest.provenance.reason
        _, now = issues()
        assert set(now) == {"p1", "p2"}
