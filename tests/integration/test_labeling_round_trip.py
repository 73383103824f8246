"""The labeling round trip against a real Label Studio server (the `label_studio` session fixture)
and a Shoal server on embedded stores: label issues found by the analysis are sent with
pre-annotations and reasons; annotations submitted through Label Studio's own API come back by
webhook and by polling and land as new label versions with provenance; the label issue is gone
from the next analysis; sending twice creates no second task; a label changed in Shoal meanwhile
is a conflict, not overwritten; a malformed annotation fails alone; and stopping Label Studio in
the middle of a send ends, once it is back, with every task created exactly once. Instance
segmentation (polygons and brush masks), keypoints and multi-label frames make the same round trip:
what Label Studio stores is read back, an annotator's edit comes back exactly (masks pixel for pixel)
and an annotation that does not fit fails alone, naming its region."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from pydantic import SecretStr

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.settings import ShoalSettings
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb
from shoal.sampler.v1 import sampler_pb2 as spb
from shoal.sdk import UploadColumns
from tests.integration.test_label_studio_adapter import Api
from tests.server.conftest import Running, start_server, wait_for

pytestmark = pytest.mark.integration

CLASSES = ("cat", "dog", "fox")
N, FLIPS = 90, 10
SECRET = "hook-secret-for-tests"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(embedded_settings: ShoalSettings, label_studio: Any, *, webhooks: bool, poll: float) -> ShoalSettings:
    port = _free_port()
    return embedded_settings.model_copy(update={
        "label_studio_url": label_studio.url, "label_studio_token": SecretStr(label_studio.token),
        "webhook_port": port, "labeling_webhook_url": f"http://127.0.0.1:{port}" if webhooks else "",
        "labeling_webhook_secret": SecretStr(SECRET), "labeling_poll_seconds": poll, "labeling_retry_max_seconds": 2.0,
    })  # fmt: skip


@pytest.fixture
def with_webhooks(embedded_settings: ShoalSettings, label_studio: Any) -> Iterator[Running]:
    running = start_server(_settings(embedded_settings, label_studio, webhooks=True, poll=3600))
    yield running
    running.server.stop(grace=1)


@pytest.fixture
def polling_only(embedded_settings: ShoalSettings, label_studio: Any) -> Iterator[Running]:
    running = start_server(_settings(embedded_settings, label_studio, webhooks=False, poll=3600))
    yield running
    running.server.stop(grace=1)


def _pets(running: Running, project: str, n: int = N) -> dict[str, Any]:
    """A classification project whose model is right on every frame, and FLIPS labels flipped."""
    rng = np.random.default_rng(0)
    truth = np.arange(n) % 3
    given = truth.copy()
    flipped = rng.choice(n, FLIPS, replace=False) if n >= FLIPS else np.array([], dtype=int)
    given[flipped] = (truth[flipped] + 1) % 3
    probs = np.full((n, 3), 0.05, dtype=np.float32)
    probs[np.arange(n), truth] = 0.9
    ids = [f"img-{i:04d}" for i in range(n)]
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(
            pb.CreateProjectRequest(
                project=pb.Project(
                    name=project,
                    task_type=pb.TASK_TYPE_CLASSIFICATION,
                    classes=[pb.ClassDef(id=i, name=name) for i, name in enumerate(CLASSES)],
                )
            )
        )
        c.ingest.CreateDataset(
            pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name="photos", kind=pb.DATASET_KIND_LABELED))
        )
        c.ingest.CreateInferenceSet(
            pb.CreateInferenceSetRequest(
                project=project,
                inference_set=pb.InferenceSet(name="net", dataset="photos", model_name="net", model_version="1"),
            )
        )
        r = c.upload(
            project,
            "photos",
            UploadColumns(
                frame_ids=ids,
                media_uris=[f"http://127.0.0.1:1/photos/{f}.png" for f in ids],
                sizes=[(64, 48)] * n,
                class_ids=given,
                provenance=pb.Provenance(source="import", author="vendor-a", reason="first pass"),
                inference_set="net",
                probabilities=probs,
            ),
            progress=False,
        )
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return {"ids": ids, "truth": truth, "given": given, "flipped": {ids[i] for i in flipped}}  # fmt: skip


def _label_issues(c: Any, project: str) -> tuple[str, set[str]]:
    job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=project, inference_set="net", rerun=True)).job
    c.wait_for_job(project, job.job_id, progress=False, timeout=120)
    found = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(
        project=project, job_id=job.job_id, page=cpb.PageRequest(page_size=1000))).issues  # fmt: skip
    return job.job_id, {i.ref.frame_id for i in found}


def _await_request(c: Any, project: str, request_id: str, done: Callable[[lpb.LabelingRequest], bool],
                   timeout: float = 120) -> lpb.LabelingRequest:  # fmt: skip
    got: list[lpb.LabelingRequest] = []

    def check() -> bool:
        try:
            got[:] = [c.labeling_bridge.GetLabelingRequest(lpb.GetLabelingRequestRequest(
                project=project, request_id=request_id)).request]  # fmt: skip
        except grpc.RpcError as err:  # a request sent as an event is recorded when the bridge consumes it
            if err.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return False
        return done(got[0])

    wait_for(check, timeout=timeout, what=f"labeling request {request_id}")
    return got[0]


def _items(c: Any, project: str, request_id: str = "") -> dict[str, lpb.LabelingItem]:
    r = c.labeling_bridge.ListLabelingItems(lpb.ListLabelingItemsRequest(
        project=project, request_id=request_id, page=cpb.PageRequest(page_size=1000)))  # fmt: skip
    return {i.ref.frame_id: i for i in r.items}


def _choice(name: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [name]}}]


def _tasks(api: Api, project_id: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        r = api("GET", "/api/tasks/", params={"project": project_id, "page": page, "page_size": 100, "fields": "all"})
        for t in r["tasks"]:
            out[t["data"]["shoal_frame_id"]] = t
        if len(out) >= r["total"] or not r["tasks"]:
            return out
        page += 1


def test_label_issues_round_trip_by_webhook(with_webhooks: Running, label_studio: Any) -> None:
    project = f"pets-{uuid.uuid4().hex[:6]}"
    d = _pets(with_webhooks, project)
    api = Api(label_studio)
    with with_webhooks.client(with_webhooks.admin_key) as c:
        job_id, flagged = _label_issues(c, project)
        assert flagged == d["flipped"]  # the model is right everywhere: the flips are the issues

        sent = c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(
            project=project, label_issues=lpb.LabelIssuesSource(job_id=job_id), requested_by="ana"))  # fmt: skip
        assert not sent.repeated_request and sent.request.frames == FLIPS and sent.request.source.endswith(job_id)
        req = _await_request(
            c, project, sent.request.request_id, lambda r: r.state != lpb.LABELING_REQUEST_STATE_PENDING
        )
        assert req.state == lpb.LABELING_REQUEST_STATE_SENT and req.counts.sent == FLIPS, req
        assert req.platform_project_id and req.platform_project_url.startswith(label_studio.url)

        # one task per flagged frame, with the current label as the pre-annotation and the reason shown
        tasks = _tasks(api, req.platform_project_id)
        assert set(tasks) == {f"photos/{f}" for f in flagged}
        some = next(iter(flagged))
        i = d["ids"].index(some)
        task = tasks[f"photos/{some}"]
        assert task["data"]["shoal_reason"] == (
            f"label issue: labeled {CLASSES[d['given'][i]]}, the model suggests {CLASSES[d['truth'][i]]} (p 0.90)"
        )
        predictions = api("GET", "/api/predictions/", params={"task": task["id"]})
        assert predictions[0]["result"][0]["value"]["choices"] == [CLASSES[d["given"][i]]]

        # sending again: the same request, recorded once; the same frames from another source: no new task
        again = c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(
            project=project, label_issues=lpb.LabelIssuesSource(job_id=job_id), requested_by="ana"))  # fmt: skip
        assert again.repeated_request and again.request.request_id == sent.request.request_id
        other = c.labeling_bridge.SendForLabeling(
            lpb.SendForLabelingRequest(
                project=project, frames=lpb.FrameList(dataset="photos", frame_ids=sorted(flagged)), reason="second look"
            )
        )
        _await_request(c, project, other.request.request_id, lambda r: r.state == lpb.LABELING_REQUEST_STATE_SENT)
        assert len(_tasks(api, req.platform_project_id)) == FLIPS
        assert {i.task_id for i in _items(c, project, other.request.request_id).values()} == {
            str(t["id"]) for t in tasks.values()
        }

        # a label changed in Shoal after the frame was sent is not overwritten by the annotation
        order = sorted(flagged)
        changed, annotated, broken = order[0], order[1:8], order[8:]
        j = d["ids"].index(changed)
        r = c.upload(
            project,
            "photos",
            UploadColumns(
                frame_ids=[changed],
                class_ids=[d["truth"][j]],
                provenance=pb.Provenance(source="sdk", author="bob", reason="fixed by hand"),
            ),
            progress=False,
        )
        assert c.wait_for_upload(project, r.upload_id, timeout=60).state == pb.UPLOAD_STATE_COMPLETED

        # annotators fix the labels in Label Studio: each annotation arrives by webhook at once
        for f in [changed, *annotated]:
            api.annotate(str(tasks[f"photos/{f}"]["id"]), _choice(CLASSES[d["truth"][d["ids"].index(f)]]))
        # and one annotation names a class the project does not have
        api.annotate(str(tasks[f"photos/{broken[0]}"]["id"]), _choice("zebra"))

        def states() -> dict[str, int]:
            items = _items(c, project, sent.request.request_id)
            return {f: items[f].state for f in [changed, *annotated, broken[0]]}

        # every webhook dealt with: the annotated frames synced, the changed and the broken one settled (the
        # webhooks may be applied in any order)
        settled = {lpb.ITEM_STATE_SYNCED, lpb.ITEM_STATE_CONFLICT, lpb.ITEM_STATE_FAILED}

        def all_dealt_with() -> bool:
            now = states()
            return [now[f] for f in annotated].count(lpb.ITEM_STATE_SYNCED) == len(annotated) and all(
                now[f] in settled for f in (changed, broken[0])
            )

        wait_for(
            all_dealt_with,
            timeout=60,
            what="the webhook annotations to be dealt with",
            progress=lambda: tuple(sorted(states().items())),
        )
        items = _items(c, project, sent.request.request_id)
        assert items[changed].state == lpb.ITEM_STATE_CONFLICT and "changed in Shoal" in items[changed].error
        assert items[broken[0]].state == lpb.ITEM_STATE_FAILED and "zebra" in items[broken[0]].error
        assert items[broken[1]].state == lpb.ITEM_STATE_SENT
        got = c.labeling_bridge.GetLabelingRequest(lpb.GetLabelingRequestRequest(
            project=project, request_id=sent.request.request_id)).request.counts  # fmt: skip
        assert (got.synced, got.conflict, got.failed, got.sent) == (len(annotated), 1, 1, 1)

        # the corrected labels are new label versions with provenance
        first = annotated[0]
        wait_for(lambda: len(_versions(c, project, first)) == 2, timeout=60, what="the new label version")
        newest, older = _versions(c, project, first)
        assert newest.class_id == d["truth"][d["ids"].index(first)] and older.provenance.source == "import"
        assert newest.provenance.source == "labeling:label-studio" and newest.provenance.author
        task_id = items[first].task_id
        assert f"task {task_id}" in newest.provenance.reason and "label issue: labeled" in newest.provenance.reason
        assert newest.label_version == items[first].label_version and newest.provenance.time.seconds > 0
        # the conflicting frame keeps the label set in Shoal
        assert _versions(c, project, changed)[0].provenance.author == "bob"

        # the next analysis no longer flags the corrected frames
        def reanalysed() -> bool:
            _, now = _label_issues(c, project)
            return not now & set(annotated)

        wait_for(reanalysed, timeout=60, what="the label issues to disappear")
        _, now = _label_issues(c, project)
        assert now == set(broken)

        # a repeated webhook or a poll that reads the same annotations writes nothing twice
        sync = c.labeling_bridge.SyncAnnotations(lpb.SyncAnnotationsRequest(project=project))
        assert sync.read >= len(annotated) + 2 and sync.synced == 0 and sync.unchanged == sync.read
        assert len(_versions(c, project, first)) == 2


def _versions(c: Any, project: str, frame: str) -> list[pb.LabelVersion]:
    return list(c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(
        project=project, dataset="photos", frame_id=frame)).versions)  # fmt: skip


def test_annotations_come_back_by_polling_and_requests_come_by_kafka_event_path(
    polling_only: Running, label_studio: Any
) -> None:
    """Without webhooks the poll brings the annotations; a request made through the sampler's
    hand-off (an event on the labeling-requests topic) is recorded and sent the same way."""
    project = f"poll-{uuid.uuid4().hex[:6]}"
    d = _pets(polling_only, project, n=30)
    api = Api(label_studio)
    with polling_only.client(polling_only.admin_key) as c:
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=project, segment=apb.Segment(
            name="check-these", dataset="photos", kind=apb.SEGMENT_KIND_ISSUE, reason="blurry night shots"),
            frame_ids=d["ids"][:6]))  # fmt: skip
        handed = c.sampler.RequestLabeling(spb.RequestLabelingRequest(project=project, segment="check-these"))
        req = _await_request(c, project, handed.request_id, lambda r: r.state == lpb.LABELING_REQUEST_STATE_SENT)
        assert req.source == "segment:check-these" and req.frames == 6 and req.reason == "blurry night shots"
        tasks = _tasks(api, req.platform_project_id)
        assert set(tasks) == {f"photos/{f}" for f in d["ids"][:6]}
        for f in d["ids"][:3]:
            api.annotate(str(tasks[f"photos/{f}"]["id"]), _choice("fox"))
        time.sleep(1.0)
        assert not any(i.state == lpb.ITEM_STATE_SYNCED for i in _items(c, project).values())  # no webhooks here
        sync = c.labeling_bridge.SyncAnnotations(lpb.SyncAnnotationsRequest(project=project))
        assert (sync.read, sync.synced) == (3, 3)
        items = _items(c, project, handed.request_id)
        assert [items[f].state for f in d["ids"][:6]] == [lpb.ITEM_STATE_SYNCED] * 3 + [lpb.ITEM_STATE_SENT] * 3
        wait_for(lambda: _versions(c, project, d["ids"][0])[0].class_id == CLASSES.index("fox"), timeout=60,
                 what="the polled label to be written")  # fmt: skip
        # an annotator edits an annotation: a new revision, a new label version
        first_task = tasks["photos/" + d["ids"][0]]["id"]
        ann = api("GET", f"/api/tasks/{first_task}/annotations/")[0]
        api("PATCH", f"/api/annotations/{ann['id']}/", json={"result": _choice("dog")})
        assert c.labeling_bridge.SyncAnnotations(lpb.SyncAnnotationsRequest(project=project)).synced == 1
        wait_for(lambda: _versions(c, project, d["ids"][0])[0].class_id == CLASSES.index("dog"), timeout=60,
                 what="the edited label to be written")  # fmt: skip
        assert len(_versions(c, project, d["ids"][0])) == 3


def test_the_cli_sends_and_reports_and_bad_requests_are_refused_naming_the_field(
    with_webhooks: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    from shoal import cli

    project = f"bad-{uuid.uuid4().hex[:6]}"
    _pets(with_webhooks, project, n=12)
    connect = ["--target", with_webhooks.target, "--api-key", with_webhooks.admin_key, "--project", project]
    args = ["--dataset", "photos", "--frame", "img-0001", "--frame", "img-0002", "--request-id", "cli-1"]
    assert cli.main(["send-for-labeling", *connect, *args, "--reason", "look again"]) == 0
    assert "labeling request cli-1: 2 frames of photos" in capsys.readouterr().out
    with with_webhooks.client(with_webhooks.admin_key) as c:
        _await_request(c, project, "cli-1", lambda r: r.state == lpb.LABELING_REQUEST_STATE_SENT)
    assert cli.main(["labeling-status", *connect, "--request", "cli-1"]) == 0
    out = capsys.readouterr().out
    assert "cli-1 (frames, 2 frames of photos): SENT" in out and "sent 2, annotated 0" in out
    assert cli.main(["labeling-status", *connect, "--request", "nope"]) == 2
    assert "NOT_FOUND" in capsys.readouterr().err
    with with_webhooks.client(with_webhooks.admin_key) as c:

        def refused(**kwargs: Any) -> grpc.RpcError:
            with pytest.raises(grpc.RpcError) as e:
                c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(project=project, **kwargs))
            return e.value

        e = refused()
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "source" in e.details()
        e = refused(segment="nope")
        assert e.code() == grpc.StatusCode.NOT_FOUND and "segment" in e.details()
        e = refused(frames=lpb.FrameList(dataset="photos", frame_ids=["img-0000", "ghost"]))
        assert e.code() == grpc.StatusCode.NOT_FOUND and "frames.frame_ids" in e.details() and "ghost" in e.details()
        e = refused(frames=lpb.FrameList(dataset="photos", frame_ids=["img-0000"]), platform="cvat")
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "platform" in e.details()
        e = refused(label_issues=lpb.LabelIssuesSource(job_id="no-such-job"))
        assert e.code() == grpc.StatusCode.NOT_FOUND and "label_issues.job_id" in e.details()
        e = refused(frames=lpb.FrameList(dataset="photos", frame_ids=["img-0000"]), request_id="bad id!")
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "request_id" in e.details()
        with pytest.raises(grpc.RpcError) as err:
            c.labeling_bridge.GetLabelingRequest(lpb.GetLabelingRequestRequest(project=project, request_id="nope"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "request_id" in err.value.details()


def test_label_studio_stopped_mid_send_ends_with_every_task_created_once(
    with_webhooks: Running, label_studio: Any
) -> None:
    project = f"outage-{uuid.uuid4().hex[:6]}"
    n = 2400
    d = _pets(with_webhooks, project, n=n)
    api = Api(label_studio)
    with with_webhooks.client(with_webhooks.admin_key) as c:
        sent = c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(
            project=project, frames=lpb.FrameList(dataset="photos", frame_ids=d["ids"])))  # fmt: skip
        rid = sent.request.request_id
        # stop Label Studio once the first chunks are in
        wait_for(lambda: _counts(c, project, rid).sent > 0, timeout=120, what="the first tasks")
        label_studio.stop()
        try:
            req = _await_request(c, project, rid, lambda r: r.attempts >= 1 and bool(r.last_error), timeout=120)
            assert req.state == lpb.LABELING_REQUEST_STATE_PENDING and "unreachable" in req.last_error
            assert 0 < req.counts.sent < n and req.counts.pending == n - req.counts.sent
            assert req.HasField("next_attempt_time")
        finally:
            label_studio.restart()
        req = _await_request(c, project, rid, lambda r: r.state == lpb.LABELING_REQUEST_STATE_SENT, timeout=300)
        assert req.counts.sent == n and req.last_error == ""
        api = Api(label_studio)
        tasks = _tasks(api, req.platform_project_id)
        assert len(tasks) == n == api.task_count(req.platform_project_id)  # each frame exactly once


def _counts(c: Any, project: str, rid: str) -> lpb.ItemCounts:
    return c.labeling_bridge.GetLabelingRequest(
        lpb.GetLabelingRequestRequest(project=project, request_id=rid)
    ).request.counts


def test_request_events_on_kafka_are_recorded_once_and_bad_ones_dead_lettered(
    embedded_settings: ShoalSettings, label_studio: Any, kafka_broker: Any
) -> None:
    """The bridge's consumer on a real Kafka broker: a hand-off published twice (a redelivery) is
    one request with each frame once; an event that is not a request, and one naming a dataset
    that does not exist, go to the labeling dead-letter topic with the reason; the good events
    around them are recorded and sent."""
    from shoal.common.topics import Topics
    from shoal.sampler import handoff

    settings = _settings(embedded_settings, label_studio, webhooks=False, poll=3600).model_copy(update={
        "kafka_bootstrap_servers": kafka_broker.bootstrap_servers, "topic_prefix": f"lb-{uuid.uuid4().hex[:8]}",
        "labeling_consumer_group": f"lb-{uuid.uuid4().hex[:8]}",
    })  # fmt: skip
    running = start_server(settings)
    try:
        project = f"kafka-{uuid.uuid4().hex[:6]}"
        d = _pets(running, project, n=20)
        bus, topics = running.server.stores.events, Topics(settings.topic_prefix)
        request = handoff.Request(project=project, dataset="photos", frame_ids=d["ids"][:8], reason="from a script",
                                  source="frames", platform="label_studio", preannotation_inference_set="net",
                                  requested_by="pipeline", request_id="nightly-7")  # fmt: skip
        key = f"{project}/nightly-7".encode()
        bus.publish(topics.labeling_requests, key=key, value=b"\x08\xffnot a request").result(timeout=30)
        ghost = handoff.events(handoff.Request(**{**vars(request), "dataset": "ghost", "request_id": "ghost-1"}))[0]
        bus.publish(topics.labeling_requests, key=key, value=ghost.SerializeToString()).result(timeout=30)
        handoff.send(bus, topics, running.server.stores.metrics, request)
        handoff.send(bus, topics, running.server.stores.metrics, request)  # delivered again
        with running.client(running.admin_key) as c:
            req = _await_request(c, project, "nightly-7", lambda r: r.state == lpb.LABELING_REQUEST_STATE_SENT)
            assert req.frames == 8 and req.counts.sent == 8 and req.preannotation_inference_set == "net"
            assert len(_items(c, project, "nightly-7")) == 8
            assert len(_tasks(Api(label_studio), req.platform_project_id)) == 8
            with pytest.raises(grpc.RpcError) as e:
                c.labeling_bridge.GetLabelingRequest(
                    lpb.GetLabelingRequestRequest(project=project, request_id="ghost-1")
                )
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
        dlq = bus.consumer(f"test-dlq-{uuid.uuid4().hex}", [topics.labeling_dead_letter])
        got: list[Any] = []
        wait_for(lambda: got.extend(dlq.poll(0.5)) or len(got) >= 2, timeout=60, what="two dead letters")
        dlq.close()
        reasons = sorted(dict(e.headers)["shoal-reason"].decode() for e in got)
        assert len(got) == 2 and "not a LabelingRequestEvent" in reasons[1] and "ghost" in reasons[0], reasons
    finally:
        running.server.stop(grace=1)


def test_detection_frames_round_trip_with_boxes_in_pixels(polling_only: Running, label_studio: Any) -> None:
    """2-D detection: the frames the detection label-issue job flags (a confident truck where the
    label says car) go out with the model's boxes as rectangle pre-annotations and the kind of issue
    as the reason, and the boxes an annotator draws come back in pixels as a new label version with
    one object per box."""
    from shoal.labeling_bridge.label_studio import result_from_labels
    from shoal.labeling_bridge.platforms import Box, Labels
    from shoal.sdk import Box as SdkBox
    from shoal.sdk import LabeledObject, PredictedObject

    project = f"cars-{uuid.uuid4().hex[:6]}"
    ids = [f"cam-{i}" for i in range(6)]
    with polling_only.client(polling_only.admin_key) as c:
        c.ingest.CreateProject(
            pb.CreateProjectRequest(
                project=pb.Project(
                    name=project,
                    task_type=pb.TASK_TYPE_OBJECT_DETECTION_2D,
                    classes=[pb.ClassDef(id=1, name="car"), pb.ClassDef(id=2, name="truck")],
                )
            )
        )
        c.ingest.CreateDataset(
            pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name="road", kind=pb.DATASET_KIND_LABELED))
        )
        c.ingest.CreateInferenceSet(
            pb.CreateInferenceSetRequest(
                project=project,
                inference_set=pb.InferenceSet(name="det", dataset="road", model_name="det", model_version="1"),
            )
        )
        r = c.upload(
            project,
            "road",
            UploadColumns(
                frame_ids=ids,
                media_uris=[f"http://127.0.0.1:1/road/{f}.jpg" for f in ids],
                sizes=[(640, 480)] * 6,
                objects=[[LabeledObject("o1", 1, SdkBox(10, 20, 100, 50))] for _ in ids],
                inference_set="det",
                # the model sees a truck on the first three, and agrees with the label on the rest
                predictions=[
                    [PredictedObject("p1", 2 if i < 3 else 1, 0.95, SdkBox(12, 22, 98, 48))] for i in range(6)
                ],
            ),
            progress=False,
        )
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        with pytest.raises(ValueError, match="exactly one of"):
            c.send_for_labeling(project, segment="x", frames=ids, dataset="road")
        job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=project, inference_set="det")).job
        c.wait_for_job(project, job.job_id, progress=False, timeout=120)
        req = c.send_for_labeling(project, label_issues_job_id=job.job_id, preannotation_inference_set="det",
                                  timeout=120)  # fmt: skip
        assert req.state == lpb.LABELING_REQUEST_STATE_SENT and req.counts.sent == 3
        api = Api(label_studio)
        tasks = _tasks(api, req.platform_project_id)
        assert set(tasks) == {"road/cam-0", "road/cam-1", "road/cam-2"}
        task = tasks["road/cam-0"]
        assert task["data"]["shoal_reason"].startswith("label issues: 1 box of another class (frame score")
        pred = api("GET", "/api/predictions/", params={"task": task["id"]})[0]["result"][0]
        assert pred["type"] == "rectanglelabels" and pred["value"]["rectanglelabels"] == ["truck"]
        assert pred["value"]["x"] == pytest.approx(12 / 640 * 100) and pred["value"]["width"] == pytest.approx(
            98 / 640 * 100
        )

        drawn = Labels(boxes=(Box("car", 50, 60, 200, 100), Box("truck", 300, 200, 120, 90)), image_width=640,
                       image_height=480)  # fmt: skip
        api.annotate(str(task["id"]), result_from_labels(drawn, "detection", classes=["car", "truck"]))
        sync = c.labeling_bridge.SyncAnnotations(lpb.SyncAnnotationsRequest(project=project))
        assert (sync.read, sync.synced) == (1, 1)

        def newest() -> pb.LabelVersion:
            return c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(
                project=project, dataset="road", frame_id="cam-0")).versions[0]  # fmt: skip

        wait_for(lambda: newest().provenance.source == "labeling:label-studio", timeout=60, what="the new boxes")
        boxes = sorted((o.class_id, round(o.box.x), round(o.box.y), round(o.box.width), round(o.box.height))
                       for o in newest().objects)  # fmt: skip
        assert boxes == [(1, 50, 60, 200, 100), (2, 300, 200, 120, 90)]


# --- instance segmentation, keypoints, multi-label ----------------------------------------------------
# Image sizes are powers of two, so that pixels -> percent -> pixels is exact and an edit made in
# percent comes back as exactly the pixels it names.


def _shaped_project(c: Any, project: str, task_type: int, classes: list[pb.ClassDef], dataset: str,
                    columns: UploadColumns) -> None:  # fmt: skip
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(name=project, task_type=task_type,
                                                                      classes=classes)))  # fmt: skip
    c.ingest.CreateDataset(
        pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name=dataset, kind=pb.DATASET_KIND_LABELED))
    )
    r = c.upload(project, dataset, columns, progress=False)
    assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


def _newest_from_label_studio(c: Any, project: str, dataset: str, frame: str) -> pb.LabelVersion:
    def newest() -> pb.LabelVersion:
        return c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(
            project=project, dataset=dataset, frame_id=frame)).versions[0]  # fmt: skip

    wait_for(lambda: newest().provenance.source == "labeling:label-studio", timeout=60, what=f"{frame}'s new label")
    return newest()


def _assert_provenance(version: pb.LabelVersion, item: lpb.LabelingItem, label_studio: Any) -> None:
    assert version.label_version == item.label_version and item.state == lpb.ITEM_STATE_SYNCED
    prov = version.provenance
    assert prov.source == "labeling:label-studio" and prov.author == label_studio.username
    assert f"task {item.task_id}, annotation {item.annotation_id}" in prov.reason and prov.time.seconds > 0


def _prediction(api: Api, task: dict[str, Any]) -> list[dict[str, Any]]:
    (prediction,) = api("GET", "/api/predictions/", params={"task": task["id"]})
    return list(prediction["result"])


def test_instance_segmentation_round_trip_with_polygons_and_brush_masks(
    polling_only: Running, label_studio: Any
) -> None:
    """Polygons go out as polygon regions in percent, masks (and objects of several polygons) as brush
    regions; an annotator moves a polygon point and repaints a mask, and the new label version holds
    that polygon and that mask exactly; a polygon of two points fails alone, naming its region."""
    from shoal.common import masks
    from shoal.labeling_bridge import brush
    from shoal.sdk import LabeledObject

    w, h = 64, 32
    project = f"seg-{uuid.uuid4().hex[:6]}"
    blob = np.zeros((h, w), dtype=bool)
    blob[10:25, 44:60] = True
    square = [8.0, 4.0, 40.0, 4.0, 40.0, 20.0, 8.0, 20.0]
    parts = [[2.0, 2.0, 12.0, 2.0, 12.0, 12.0], [20.0, 20.0, 30.0, 20.0, 30.0, 30.0]]
    with polling_only.client(polling_only.admin_key) as c:
        _shaped_project(c, project, pb.TASK_TYPE_INSTANCE_SEGMENTATION,
                        [pb.ClassDef(id=1, name="cat"), pb.ClassDef(id=2, name="dog")], "shapes",
                        UploadColumns(frame_ids=["a", "b"], media_uris=["http://127.0.0.1:1/a.png"] * 2,
                                      sizes=[(w, h)] * 2,
                                      objects=[[LabeledObject("o1", 1, polygons=[square]),
                                                LabeledObject("o2", 2, mask=blob)],
                                               [LabeledObject("o1", 2, polygons=parts)]],
                                      provenance=pb.Provenance(source="import", author="vendor")))  # fmt: skip
        req = c.send_for_labeling(project, frames=["a", "b"], dataset="shapes", timeout=120)
        assert req.state == lpb.LABELING_REQUEST_STATE_SENT and req.counts.sent == 2
        api = Api(label_studio)
        tasks = _tasks(api, req.platform_project_id)
        config = api("GET", f"/api/projects/{req.platform_project_id}/")["parsed_label_config"]
        assert (config["label"]["type"], config["brush"]["type"]) == ("PolygonLabels", "BrushLabels")

        # what Label Studio stored: the polygon in percent of the image, the masks as brush bit streams
        polygon, painted = _prediction(api, tasks["shapes/a"])
        assert (polygon["type"], polygon["from_name"], polygon["value"]["polygonlabels"]) == (
            "polygonlabels", "label", ["cat"])  # fmt: skip
        assert polygon["value"]["points"] == [[12.5, 12.5], [62.5, 12.5], [62.5, 62.5], [12.5, 62.5]]
        assert (painted["type"], painted["from_name"], painted["value"]["brushlabels"]) == (
            "brushlabels", "brush", ["dog"])  # fmt: skip
        assert (painted["original_width"], painted["original_height"]) == (w, h)
        np.testing.assert_array_equal(brush.decode(painted["value"]["rle"], h, w), blob)
        (union,) = _prediction(api, tasks["shapes/b"])  # two polygons: one brush region, one object
        assert union["type"] == "brushlabels"
        np.testing.assert_array_equal(brush.decode(union["value"]["rle"], h, w),
                                      masks.decode(masks.from_polygons(parts, h, w), h, w))  # fmt: skip

        # the annotator drags a corner of the polygon and repaints the mask
        polygon["value"]["points"][1] = [75.0, 25.0]
        edited = blob.copy()
        edited[2:6, 2:10] = True
        edited[10:12, 44:60] = False
        painted["value"]["rle"] = brush.encode(edited)
        api.annotate(str(tasks["shapes/a"]["id"]), [polygon, painted])
        api.annotate(str(tasks["shapes/b"]["id"]), [{"id": "bad-poly", "from_name": "label", "to_name": "image",
                     "type": "polygonlabels", "original_width": w, "original_height": h,
                     "value": {"points": [[1, 1], [50, 50]], "closed": True, "polygonlabels": ["dog"]}}])  # fmt: skip
        sync = c.labeling_bridge.SyncAnnotations(lpb.SyncAnnotationsRequest(project=project))
        assert (sync.read, sync.synced, sync.failed) == (2, 1, 1)

        items = _items(c, project, req.request_id)
        failed = items["b"]
        assert failed.state == lpb.ITEM_STATE_FAILED
        assert f"of task {failed.task_id} (frame shapes/b)" in failed.error and "polygon 'bad-poly'" in failed.error
        assert "it needs at least 3" in failed.error
        newest = _newest_from_label_studio(c, project, "shapes", "a")
        _assert_provenance(newest, items["a"], label_studio)
        cat, dog = sorted(newest.objects, key=lambda o: o.class_id)
        assert (cat.class_id, dog.class_id) == (1, 2)
        assert [list(p.points) for p in cat.polygons] == [[8.0, 4.0, 48.0, 8.0, 40.0, 20.0, 8.0, 20.0]]
        assert not dog.polygons
        np.testing.assert_array_equal(masks.decode(masks.from_string(dog.mask.counts), h, w), edited)
        # the frame whose annotation failed keeps its label
        assert c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(
            project=project, dataset="shapes", frame_id="b")).versions[0].provenance.source == "import"  # fmt: skip


def test_keypoints_round_trip_grouped_onto_their_objects(polling_only: Running, label_studio: Any) -> None:
    """An object goes out as its rectangle and its labeled keypoints nested under it; the annotator
    moves a point, places a missing one and adds an object of another class with a point drawn inside
    it; each point comes back on its object, the unplaced ones unlabeled; a point whose name is not a
    keypoint of its object's class fails alone, naming its region."""
    from shoal.sdk import Box as SdkBox
    from shoal.sdk import LabeledObject

    w, h = 128, 64
    project = f"kp-{uuid.uuid4().hex[:6]}"
    person = pb.ClassDef(id=1, name="person", keypoints=["nose", "left_hand", "right_hand"])
    dog = pb.ClassDef(id=2, name="dog", keypoints=["nose", "tail"])
    with polling_only.client(polling_only.admin_key) as c:
        _shaped_project(c, project, pb.TASK_TYPE_KEYPOINTS, [person, dog], "yard",
                        UploadColumns(frame_ids=["a", "b"], media_uris=["http://127.0.0.1:1/a.png"] * 2,
                                      sizes=[(w, h)] * 2,
                                      objects=[[LabeledObject("o1", 1, SdkBox(16, 8, 64, 48),
                                                              keypoints=[[40, 16, 2], [20, 40, 2], [0, 0, 0]])],
                                               [LabeledObject("o1", 2, SdkBox(8, 8, 32, 32),
                                                              keypoints=[[12, 12, 2], [36, 36, 1]])]],
                                      provenance=pb.Provenance(source="import", author="vendor")))  # fmt: skip
        req = c.send_for_labeling(project, frames=["a", "b"], dataset="yard", timeout=120)
        assert req.state == lpb.LABELING_REQUEST_STATE_SENT
        api = Api(label_studio)
        tasks = _tasks(api, req.platform_project_id)
        config = api("GET", f"/api/projects/{req.platform_project_id}/")["parsed_label_config"]
        assert config["keypoint"]["type"] == "KeyPointLabels"
        assert config["keypoint"]["labels"] == ["nose", "left_hand", "right_hand", "tail"]

        # what Label Studio stored: the rectangle, and the two labeled points nested under it (the
        # unlabeled right hand is not sent)
        stored = _prediction(api, tasks["yard/a"])
        rect, nose, hand = stored
        assert (rect["id"], rect["value"]["rectanglelabels"]) == ("obj0", ["person"])
        assert [rect["value"][k] for k in ("x", "y", "width", "height")] == [12.5, 12.5, 50.0, 75.0]
        assert [(p["id"], p["parentID"], p["type"], p["value"]["keypointlabels"], p["value"]["x"], p["value"]["y"])
                for p in (nose, hand)] == [("obj0-0", "obj0", "keypointlabels", ["nose"], 31.25, 25.0),
                                           ("obj0-1", "obj0", "keypointlabels", ["left_hand"], 15.625, 62.5)]  # fmt: skip
        assert len(_prediction(api, tasks["yard/b"])) == 3  # the hidden tail goes out as a point too

        def point(region: str, name: str, x: float, y: float, parent: str = "") -> dict[str, Any]:
            return {"id": region, **({"parentID": parent} if parent else {}), "from_name": "keypoint",
                    "to_name": "image", "type": "keypointlabels", "original_width": w, "original_height": h,
                    "value": {"x": x, "y": y, "width": 0.8, "keypointlabels": [name]}}  # fmt: skip

        nose["value"]["x"], nose["value"]["y"] = 25.0, 25.0
        new_dog = {"id": "new-dog", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
                   "original_width": w, "original_height": h,
                   "value": {"x": 75.0, "y": 12.5, "width": 18.75, "height": 50.0, "rotation": 0,
                             "rectanglelabels": ["dog"]}}  # fmt: skip
        # the new points are nested under nothing, as the editor draws them
        api.annotate(str(tasks["yard/a"]["id"]), [rect, nose, hand, point("rh", "right_hand", 50.0, 50.0),
                                                  new_dog, point("tl", "tail", 87.5, 37.5)])  # fmt: skip
        api.annotate(
            str(tasks["yard/b"]["id"]),
            [*_prediction(api, tasks["yard/b"]), point("odd", "left_hand", 20.0, 40.0, parent="obj0")],
        )
        sync = c.labeling_bridge.SyncAnnotations(lpb.SyncAnnotationsRequest(project=project))
        assert (sync.read, sync.synced, sync.failed) == (2, 1, 1)

        items = _items(c, project, req.request_id)
        assert items["b"].state == lpb.ITEM_STATE_FAILED
        assert "keypoint 'odd' of box 'obj0'" in items["b"].error
        assert "'left_hand' is not a keypoint of class 'dog' (nose, tail)" in items["b"].error
        newest = _newest_from_label_studio(c, project, "yard", "a")
        _assert_provenance(newest, items["a"], label_studio)
        got = {o.class_id: o for o in newest.objects}
        assert sorted(got) == [1, 2]
        boxes = {k: (o.box.x, o.box.y, o.box.width, o.box.height) for k, o in got.items()}
        assert boxes == {1: (16.0, 8.0, 64.0, 48.0), 2: (96.0, 8.0, 24.0, 32.0)}
        points = {k: [(p.x, p.y, p.visibility) for p in o.keypoints] for k, o in got.items()}
        assert points == {1: [(32.0, 16.0, 2), (20.0, 40.0, 2), (64.0, 32.0, 2)], 2: [(0.0, 0.0, 0), (112.0, 24.0, 2)]}


def test_multi_label_round_trip_by_webhook(with_webhooks: Running, label_studio: Any) -> None:
    """Frames go out with their current classes (or the inference set's, at or above 0.5) ticked in a
    multiple-choice control; an annotator's ticks come back by webhook as the frame's classes (none
    ticked: none of them); a class the project does not have fails alone."""
    project = f"ml-{uuid.uuid4().hex[:6]}"
    ids = ["f0", "f1", "f2", "f3"]
    with with_webhooks.client(with_webhooks.admin_key) as c:
        _shaped_project(c, project, pb.TASK_TYPE_MULTI_LABEL, [pb.ClassDef(id=i, name=n) for i, n in enumerate(CLASSES)],
                        "photos", UploadColumns(frame_ids=ids, media_uris=["http://127.0.0.1:1/p.png"] * 4,
                                                sizes=[(32, 32)] * 4, class_sets=[[0, 1], [2], [], [0]],
                                                provenance=pb.Provenance(source="import", author="vendor")))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name="net", dataset="photos", model_name="net", model_version="1")))  # fmt: skip
        scores = np.array([[0.9, 0.9, 0.1], [0.1, 0.1, 0.9], [0.1, 0.1, 0.1], [0.1, 0.7, 0.9]], dtype=np.float32)
        r = c.upload(project, "photos", UploadColumns(frame_ids=ids, skip_frames=True, inference_set="net",
                                                            probabilities=scores),
                     progress=False)  # fmt: skip
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        current = c.send_for_labeling(project, frames=ids[:3], dataset="photos", timeout=120)
        predicted = c.send_for_labeling(project, frames=ids[3:], dataset="photos", preannotation_inference_set="net",
                                        timeout=120)  # fmt: skip
        assert current.state == predicted.state == lpb.LABELING_REQUEST_STATE_SENT
        api = Api(label_studio)
        tasks = _tasks(api, current.platform_project_id)
        config = api("GET", f"/api/projects/{current.platform_project_id}/")["label_config"]
        assert 'choice="multiple"' in config

        def ticked(frame: str) -> list[list[str]]:
            found = api("GET", "/api/predictions/", params={"task": tasks[f"photos/{frame}"]["id"]})
            return [item["value"]["choices"] for p in found for item in p["result"]]

        assert [ticked(f) for f in ids] == [[["cat", "dog"]], [["fox"]], [], [["dog", "fox"]]]
        assert api("GET", "/api/predictions/", params={"task": tasks["photos/f3"]["id"]})[0]["model_version"] == (
            "inference set net")  # fmt: skip

        def tick(*names: str) -> list[dict[str, Any]]:
            return [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": list(names)}}]

        api.annotate(str(tasks["photos/f0"]["id"]), tick("dog", "fox"))  # cat removed, fox added
        api.annotate(str(tasks["photos/f1"]["id"]), tick("fox", "zebra"))
        api.annotate(str(tasks["photos/f2"]["id"]), [])  # none of the classes
        api.annotate(str(tasks["photos/f3"]["id"]), tick("dog", "fox"))  # the prediction, accepted

        def states() -> dict[str, int]:
            items = {**_items(c, project, current.request_id), **_items(c, project, predicted.request_id)}
            return {f: items[f].state for f in ids}

        wait_for(lambda: lpb.ITEM_STATE_SENT not in states().values(), timeout=60,
                 what="the webhook annotations to be dealt with", progress=lambda: tuple(sorted(states().items())))  # fmt: skip
        items = {**_items(c, project, current.request_id), **_items(c, project, predicted.request_id)}
        assert states() == {"f0": lpb.ITEM_STATE_SYNCED, "f1": lpb.ITEM_STATE_FAILED, "f2": lpb.ITEM_STATE_SYNCED,
                            "f3": lpb.ITEM_STATE_SYNCED}  # fmt: skip
        assert "choice 'zebra'" in items["f1"].error and "not in the project's classes" in items["f1"].error
        for frame, classes in (("f0", [1, 2]), ("f2", []), ("f3", [1, 2])):
            newest = _newest_from_label_studio(c, project, "photos", frame)
            _assert_provenance(newest, items[frame], label_studio)
            assert list(newest.class_ids) == classes and not newest.HasField("class_id")


# --- semantic segmentation, and label issues of every task type -------------------------------------

NONE = 65535
STREET = [pb.ClassDef(id=3, name="road", color="#804080"), pb.ClassDef(id=5, name="car"),
          pb.ClassDef(id=9, name="sky", color="#4682b4")]  # fmt: skip


def _street(seed: int, h: int = 32, w: int = 64) -> np.ndarray:
    """Sky above road, a car on the road, the horizon's row and some pixels without a class."""
    rng = np.random.default_rng(seed)
    a = np.full((h, w), 9, dtype=np.uint16)
    a[h // 3 :] = 3
    top, left = int(rng.integers(h // 3 + 1, h - 8)), int(rng.integers(0, w - 16))
    a[top : top + 6, left : left + 14] = 5
    a[h // 3] = NONE
    a[rng.random((h, w)) < 0.05] = NONE
    return a


def _painted(item: dict[str, Any], h: int, w: int) -> np.ndarray:
    from shoal.labeling_bridge import brush

    return brush.decode(item["value"]["rle"], h, w)


def test_semantic_segmentation_round_trip_pixel_for_pixel(polling_only: Running, label_studio: Any) -> None:
    """A label map goes out as one brush region per class present (in the class's colour), the
    unlabeled pixels in none; an annotator repaints the car as road and erases the top of the sky, and
    the new label version is that map pixel for pixel, with provenance. Label Studio keeps two
    overlapping regions as they were posted; such an annotation, and one painted over another image
    size, fail alone, naming their regions."""
    from shoal.common import classmaps
    from shoal.labeling_bridge import brush

    w, h = 64, 32
    project = f"sem-{uuid.uuid4().hex[:6]}"
    maps = {f: _street(i) for i, f in enumerate(["a", "b", "c"])}
    with polling_only.client(polling_only.admin_key) as c:
        _shaped_project(c, project, pb.TASK_TYPE_SEGMENTATION, STREET, "streets",
                        UploadColumns(frame_ids=list(maps), media_uris=["http://127.0.0.1:1/s.png"] * 3,
                                      sizes=[(w, h)] * 3, label_maps=list(maps.values()),
                                      provenance=pb.Provenance(source="import", author="vendor")))  # fmt: skip
        req = c.send_for_labeling(project, frames=list(maps), dataset="streets", timeout=120)
        assert req.state == lpb.LABELING_REQUEST_STATE_SENT and req.counts.sent == 3
        api = Api(label_studio)
        tasks = _tasks(api, req.platform_project_id)
        stored = api("GET", f"/api/projects/{req.platform_project_id}/")
        assert set(stored["parsed_label_config"]) == {"brush"}
        assert stored["parsed_label_config"]["brush"]["type"] == "BrushLabels"
        assert 'value="road" background="#804080"' in stored["label_config"]
        assert 'value="car"/>' in stored["label_config"]

        # what Label Studio stored: a brush region per class, its pixels exactly; unlabeled pixels in none
        for frame, want in maps.items():
            regions = _prediction(api, tasks[f"streets/{frame}"])
            assert [(r["id"], r["from_name"], r["value"]["brushlabels"]) for r in regions] == [
                ("class-3", "brush", ["road"]), ("class-5", "brush", ["car"]), ("class-9", "brush", ["sky"])]  # fmt: skip
            assert all((r["original_width"], r["original_height"]) == (w, h) for r in regions)
            for r, cid in zip(regions, (3, 5, 9), strict=True):
                np.testing.assert_array_equal(_painted(r, h, w), want == cid)
        road, car, sky = _prediction(api, tasks["streets/a"])

        # the annotator repaints the car as road and erases the top three rows of the sky
        car["value"]["brushlabels"] = ["road"]
        top = _painted(sky, h, w)
        top[:3] = False
        sky["value"]["rle"] = brush.encode(top)
        api.annotate(str(tasks["streets/a"]["id"]), [road, car, sky])
        edited = maps["a"].copy()
        edited[edited == 5] = 3
        edited[:3][edited[:3] == 9] = NONE

        # another paints road over the horizon without erasing the sky there: Label Studio keeps both
        # regions as posted, each its own mask, in the order given
        b_regions = _prediction(api, tasks["streets/b"])
        over = np.zeros((h, w), dtype=bool)
        over[8:14] = True
        stroke = {"id": "new-road", "from_name": "brush", "to_name": "image", "type": "brushlabels",
                  "original_width": w, "original_height": h,
                  "value": {"format": "rle", "rle": brush.encode(over), "brushlabels": ["road"]}}  # fmt: skip
        posted = api.annotate(str(tasks["streets/b"]["id"]), [*b_regions, stroke])
        kept = api("GET", f"/api/annotations/{posted['id']}/")["result"]
        assert [r["id"] for r in kept] == ["class-3", "class-5", "class-9", "new-road"]
        both = _painted(kept[2], h, w) & _painted(kept[3], h, w)
        np.testing.assert_array_equal(both, (maps["b"] == 9) & over)
        assert both.any()
        # and a third paints over an image of another size
        small = {**stroke, "id": "small", "original_width": 32, "original_height": 16,
                 "value": {"format": "rle", "rle": brush.encode(np.ones((16, 32))), "brushlabels": ["sky"]}}  # fmt: skip
        api.annotate(str(tasks["streets/c"]["id"]), [small])

        sync = c.labeling_bridge.SyncAnnotations(lpb.SyncAnnotationsRequest(project=project))
        assert (sync.read, sync.synced, sync.failed) == (3, 1, 2)
        items = _items(c, project, req.request_id)
        assert items["b"].state == items["c"].state == lpb.ITEM_STATE_FAILED
        assert f"of task {items['b'].task_id} (frame streets/b)" in items["b"].error
        assert "brush 'new-road': " in items["b"].error
        assert "are painted 'road' here and 'sky' by brush 'class-9'" in items["b"].error
        assert "brush 'small': the brush is drawn over 32x16 pixels, not the frame's 64x32" in items["c"].error

        newest = _newest_from_label_studio(c, project, "streets", "a")
        _assert_provenance(newest, items["a"], label_studio)
        runs = newest.segmentation.runs
        got = classmaps.decode(np.array(runs.classes), np.array(runs.lengths), h, w)
        np.testing.assert_array_equal(got, edited)
        assert (got == NONE).sum() > (maps["a"] == NONE).sum()  # the erased pixels are unlabeled now
        # the frames whose annotation failed keep their label
        for frame in ("b", "c"):
            (version,) = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(
                project=project, dataset="streets", frame_id=frame)).versions  # fmt: skip
            assert version.provenance.source == "import"


@pytest.fixture
def with_media(embedded_settings: ShoalSettings, label_studio: Any, tmp_path: Any) -> Iterator[tuple[Running, Any]]:
    """A server that reads files under a media root (per-pixel probabilities as .npy)."""
    media = tmp_path / "media"
    media.mkdir()
    settings = _settings(embedded_settings, label_studio, webhooks=False, poll=3600)
    running = start_server(settings.model_copy(update={"console_media_roots": [str(media)]}))
    yield running, media
    running.server.stop(grace=1)


def test_multi_label_and_segmentation_label_issues_are_sent_with_their_reasons(
    with_media: tuple[Running, Any], label_studio: Any
) -> None:
    """The flagged frames of a multi-label label-issues job go out with the classes missing from and
    extra in their labels; those of a segmentation job with the pixels flagged and the classes mixed
    up, pre-annotated with the model's maps."""
    from tests.unit.test_segmentation_issues import K, dataset

    running, media = with_media
    api = Api(label_studio)

    # multi-label: a model right everywhere, labels with a class removed, one added, and both
    ml = f"mli-{uuid.uuid4().hex[:6]}"
    rng = np.random.default_rng(4)
    truth = rng.random((60, 3)) < 0.5
    truth[[3, 7, 11]] = [[1, 1, 0], [0, 0, 1], [0, 1, 0]]
    given = truth.copy()
    given[[3, 7, 11]] = [[1, 0, 0], [1, 0, 1], [0, 0, 1]]
    scores = np.where(truth, 0.93, 0.04).astype(np.float32)
    ids = [f"p{i:02d}" for i in range(60)]
    with running.client(running.admin_key) as c:
        _shaped_project(c, ml, pb.TASK_TYPE_MULTI_LABEL, [pb.ClassDef(id=i, name=n) for i, n in enumerate(CLASSES)],
                        "photos", UploadColumns(frame_ids=ids, media_uris=["http://127.0.0.1:1/p.png"] * 60,
                                                sizes=[(32, 32)] * 60,
                                                class_sets=[np.flatnonzero(g).tolist() for g in given]))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=ml, inference_set=pb.InferenceSet(
            name="net", dataset="photos", model_name="net", model_version="1")))  # fmt: skip
        r = c.upload(ml, "photos", UploadColumns(frame_ids=ids, skip_frames=True, inference_set="net",
                                                 probabilities=scores), progress=False)  # fmt: skip
        assert c.wait_for_upload(ml, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=ml, inference_set="net")).job
        job = c.wait_for_job(ml, job.job_id, progress=False, timeout=120)
        assert job.kind == "multilabel_label_issues"
        issues = {i.ref.frame_id: i for i in c.analysis.QueryMultiLabelIssues(apb.QueryMultiLabelIssuesRequest(
            project=ml, job_id=job.job_id, page=cpb.PageRequest(page_size=100))).issues}  # fmt: skip
        assert set(issues) == {"p03", "p07", "p11"}
        req = c.send_for_labeling(ml, label_issues_job_id=job.job_id, timeout=120)
        assert req.state == lpb.LABELING_REQUEST_STATE_SENT and req.counts.sent == 3
        assert req.source == f"label_issues:{job.job_id}"
        reasons = {
            f.split("/", 1)[1]: t["data"]["shoal_reason"] for f, t in _tasks(api, req.platform_project_id).items()
        }
        q = {f: f"{i.score:.2f}" for f, i in issues.items()}
        assert reasons == {
            "p03": f"label issue: missing dog (label quality {q['p03']})",
            "p07": f"label issue: extra cat (label quality {q['p07']})",
            "p11": f"label issue: missing dog; extra fox (label quality {q['p11']})",
        }

    # semantic segmentation: per-pixel probabilities as .npy files, a car relabeled, one erased, a
    # region painted over with another class
    seg = f"sgi-{uuid.uuid4().hex[:6]}"
    names = ["ground", "road", "car", "sky"][:K]
    labels, probs = dataset(n=30, seed=3)
    planted = {4: "swap", 11: "erase", 19: "paint"}
    for i, kind in planted.items():
        y = labels[i]
        if kind == "paint":
            y[2:12, 3:15] = (int(np.bincount(y.ravel()).argmax()) + 1) % K
        else:
            cls = int(np.unique(y[y > 0])[0])
            y[y == cls] = 0 if kind == "erase" else (cls % (K - 1)) + 1
    frames = [f"m-{i:02d}" for i in range(len(labels))]
    uris = []
    for f, p in zip(frames, probs, strict=True):
        np.save(media / f"{f}.npy", p.astype(np.float16))
        uris.append((media / f"{f}.npy").as_uri())
    h, w = labels.shape[1:]
    predicted = [(p.argmax(0) + 20).astype(np.uint16) for p in probs]
    with running.client(running.admin_key) as c:
        _shaped_project(c, seg, pb.TASK_TYPE_SEGMENTATION, [pb.ClassDef(id=20 + k, name=n) for k, n in enumerate(names)],
                        "val", UploadColumns(frame_ids=frames, media_uris=["http://127.0.0.1:1/m.png"] * len(frames),
                                             sizes=[(w, h)] * len(frames),
                                             label_maps=[(y + 20).astype(np.uint16) for y in labels]))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=seg, inference_set=pb.InferenceSet(
            name="unet", dataset="val", model_name="unet", model_version="1")))  # fmt: skip
        r = c.upload(seg, "val", UploadColumns(frame_ids=frames, inference_set="unet", skip_frames=True,
                                               probability_uris=uris, predicted_maps=predicted), progress=False)  # fmt: skip
        assert c.wait_for_upload(seg, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=seg, inference_set="unet")).job
        job = c.wait_for_job(seg, job.job_id, progress=False, timeout=120)
        assert job.kind == "segmentation_label_issues"
        found = c.analysis.QuerySegmentationIssues(apb.QuerySegmentationIssuesRequest(
            project=seg, job_id=job.job_id, all_frames=True, page=cpb.PageRequest(page_size=100))).issues  # fmt: skip
        flagged = {i.ref.frame_id: i for i in found if i.is_issue}
        assert {frames[i] for i in planted} <= set(flagged) and len(flagged) < len(frames)
        req = c.send_for_labeling(seg, label_issues_job_id=job.job_id, preannotation_inference_set="unet",
                                  timeout=120)  # fmt: skip
        assert req.state == lpb.LABELING_REQUEST_STATE_SENT and req.counts.sent == len(flagged)
        tasks = _tasks(api, req.platform_project_id)
        assert set(tasks) == {f"val/{f}" for f in flagged}
        for f, i in flagged.items():
            assert tasks[f"val/{f}"]["data"]["shoal_reason"] == (
                f"label issue: {i.flagged_pixels:,} pixels likely mislabeled, mostly labeled {names[i.worst_class - 20]}"
                f" where the model sees {names[i.suggested_class - 20]} (label quality {i.score:.2f})"
            )
        # pre-annotated with the model's map, every pixel a class
        f = frames[19]
        regions = _prediction(api, tasks[f"val/{f}"])
        assert {r["value"]["brushlabels"][0] for r in regions} == {names[c - 20] for c in np.unique(predicted[19])}
        drawn = np.full((h, w), NONE, dtype=np.uint16)
        for r in regions:
            drawn[_painted(r, h, w)] = 20 + names.index(r["value"]["brushlabels"][0])
        np.testing.assert_array_equal(drawn, predicted[19])
