"""Automations on a real server (chDB, the embedded bus) and a local webhook receiver.

- a complete inference set runs its rule's metrics and gates; a failing gate notifies the receiver with a
  signed delivery, retried after a 500; a passing set notifies nobody; the trigger delivered again runs
  nothing twice;
- a labeled dataset whose labels change by enough frames reruns its label-issues job and its metrics, once; the
  run lists the frames whose labels changed, and a metrics action measures those frames alone;
- a set's label issues go to labeling (classification, multi-label): the worst flagged frames with their
  reasons, one request per run through the labeling bridge, within the rule's budget for the day (what exceeds
  it recorded as skipped), frames sent before passed over, nothing below the rule's threshold; an attempt cut
  short after sending sends nothing twice;
- rules are validated (the field named), scoped to their project, paused (a paused rule does nothing),
  resumed and deleted (their runs stay readable); the webhook's secret is never returned nor logged;
- the engine on its own: an attempt cut short resumes without doing an action twice, a run another
  consumer holds waits until it is stale, one consumer wins each attempt, a refused delivery fails the run
  for good.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from shoal.analysis import automations as au
from shoal.analysis.automation_engine import AutomationConsumer, Engine, RunBusy
from shoal.analysis.automation_webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    verify,
)
from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.data.projects import Project
from shoal.common.errors import Unavailable
from shoal.common.stores.events import TopicPartition
from shoal.common.stores.metrics import EmbeddedMetricsStore
from shoal.common.topics import Topics
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running, wait_for

SECRET = "s3cret-for-automation-tests-0123456789"
N = 60
K = 3


class Receiver:
    """A webhook receiver on a free loopback port (http.server on a thread of its own). Each delivery is
    kept with whether its signature holds; it is answered with the statuses of ``answers`` in turn, then
    200. While ``hold`` is set to an event, an answer waits for that event first (``arrived`` is set when a
    delivery came)."""

    def __init__(self, secret: str = SECRET, answers: tuple[int, ...] = ()) -> None:
        self.secret = secret
        self.answers = list(answers)
        self.received: list[dict[str, Any]] = []
        self.hold: threading.Event | None = None
        self.arrived = threading.Event()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ts = self.headers.get(TIMESTAMP_HEADER, "")
                with outer._lock:
                    status = outer.answers.pop(0) if outer.answers else 200
                    outer.received.append({
                        "status": status,
                        "event": self.headers.get(EVENT_HEADER),
                        "delivery": self.headers.get(DELIVERY_HEADER),
                        "signed": verify(outer.secret, ts, body, self.headers.get(SIGNATURE_HEADER, "")),
                        "body": json.loads(body),
                    })  # fmt: skip
                outer.arrived.set()
                if outer.hold is not None:
                    outer.hold.wait(60)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/shoal"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the server's data --------------------------------------------------------------------------------
FRAMES = [f"f{i:03d}" for i in range(N)]
LABELS = np.arange(N) % K


#: the frames a noisy set predicts as another class than their label: the label issues it flags
MISLABELED = 10


def probabilities(right: bool, wrong: int = N) -> np.ndarray:
    """Each frame 0.9 on its label (``right``) or on the next class; with ``wrong``, only the first ``wrong``
    frames on the next class."""
    out = np.full((N, K), 0.05, dtype=np.float32)
    predicted = LABELS.copy() if right else (LABELS + 1) % K
    if not right and wrong < N:
        predicted[wrong:] = LABELS[wrong:]
    out[np.arange(N), predicted] = 0.9
    return out


def create_project(c: Any, project: str, inference_sets: tuple[str, ...] = ("good-1", "bad-1", "good-2")) -> None:
    """A classification project: dataset ``d`` of labeled frames, a regression test on half of them
    (accuracy at least 0.8), and empty inference sets."""
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=project, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=i, name=f"c{i}") for i in range(K)],
        embedding_spaces=[pb.EmbeddingSpace(name="emb", dimension=4, metric=pb.DISTANCE_METRIC_COSINE,
                                            level=pb.EMBEDDING_LEVEL_FRAME, model_name="m", model_version="1")])))  # fmt: skip
    c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name="d",
                                                                                        kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
    for name in inference_sets:
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name=name, dataset="d", model_name="m", model_version=name)))  # fmt: skip
    done = c.upload(project, "d", UploadColumns(frame_ids=FRAMES, class_ids=LABELS), progress=False)
    assert c.wait_for_upload(project, done.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    c.analysis.CreateSegment(apb.CreateSegmentRequest(project=project, frame_ids=FRAMES[: N // 2], segment=apb.Segment(
        name="core", dataset="d", kind=apb.SEGMENT_KIND_REGRESSION_TEST, reason="must hold",
        gates=[apb.Gate(metric="accuracy", minimum=0.8)])))  # fmt: skip


def upload_predictions(
    c: Any, project: str, inference_set: str, *, right: bool, chunk_size: int = 20, wrong: int = N
) -> str:
    """Predictions of every frame into ``inference_set``, in chunks of ``chunk_size``; the upload's id."""
    columns = UploadColumns(frame_ids=FRAMES, skip_frames=True, inference_set=inference_set,
                            probabilities=probabilities(right, wrong))  # fmt: skip
    return str(c.upload(project, "d", columns, chunk_size=chunk_size, progress=False).upload_id)


def gate_rule(name: str, url: str = "", **webhook: Any) -> apb.Automation:
    rule = apb.Automation(
        name=name,
        description="gate each release",
        trigger=apb.AutomationTrigger(kind=apb.AUTOMATION_TRIGGER_KIND_INFERENCE_SET_COMPLETE),
        actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_METRICS),
                 apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_GATES)],
    )  # fmt: skip
    if url:
        rule.webhook.CopyFrom(apb.AutomationWebhook(url=url, secret=webhook.pop("secret", SECRET), **webhook))
    return rule


def runs(c: Any, project: str, **kwargs: Any) -> list[apb.AutomationRun]:
    return list(c.analysis.ListAutomationRuns(apb.ListAutomationRunsRequest(project=project, **kwargs)).runs)


def finished_run(
    c: Any, project: str, automation: str, inference_set: str, what: str = "", run_id: str = ""
) -> apb.AutomationRun:
    """Waits for the run of ``automation`` for ``inference_set`` (or the run ``run_id``) to end; returns it."""
    found: list[apb.AutomationRun] = []

    def ended() -> bool:
        found[:] = runs(c, project, automation=automation, inference_set=inference_set)
        if run_id:
            found[:] = [r for r in found if r.run_id == run_id]
        return bool(found) and found[0].state != apb.AUTOMATION_RUN_STATE_RUNNING

    wait_for(ended, timeout=60, what=what or f"the run of {automation} for {inference_set} to end",
             progress=lambda: [(r.state, len(r.steps), len(r.deliveries)) for r in found], stall=30)  # fmt: skip
    assert len(found) == 1, found
    return found[0]


def automation_consumer(r: Running) -> AutomationConsumer:
    return next(w for s in r.server.specs for w in s.workers if isinstance(w, AutomationConsumer))


# --- on the server ------------------------------------------------------------------------------------
def test_a_complete_inference_set_runs_metrics_and_gates_and_a_failing_gate_notifies(
    shared: Running, project: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with shared.client(shared.admin_key) as c, Receiver(answers=(500,)) as receiver:
        create_project(c, project)
        made = c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project,
                                                                        automation=gate_rule("gates", receiver.url)))  # fmt: skip
        hook = made.automation.webhook
        assert (hook.url, hook.has_secret, hook.secret, hook.always) == (receiver.url, True, "", False)

        bad_upload = upload_predictions(c, project, "bad-1", right=False)
        bad = finished_run(c, project, "gates", "bad-1")
        assert bad.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, bad.message
        assert (bad.gates_evaluated, bad.gates_failed, bad.attempts) == (1, 1, 1)
        assert (bad.trigger.upload_id, bad.trigger.dataset, bad.trigger.frames) == (bad_upload, "d", N)
        metrics, gates, webhook = bad.steps
        assert metrics.action == apb.AUTOMATION_ACTION_KIND_METRICS and metrics.metrics["accuracy"] == 0.0
        assert metrics.metrics["frames"] == N
        assert [(g.segment, g.gate.metric, g.passed, g.frames) for g in gates.gates] == [("core", "accuracy", False,
                                                                                          N // 2)]  # fmt: skip
        assert webhook.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED and webhook.message == "delivered on attempt 2"
        # the 500 was retried; both attempts are one delivery, each signed with the rule's secret
        assert [(d.attempt, d.status_code) for d in bad.deliveries] == [(1, 500), (2, 200)]
        assert len({d.delivery_id for d in bad.deliveries}) == 1
        assert [(r["status"], r["event"], r["signed"]) for r in receiver.received] == [
            (500, "gates.failed", True), (200, "gates.failed", True)]  # fmt: skip
        body = receiver.received[-1]["body"]
        assert receiver.received[-1]["delivery"] == body["delivery_id"] == bad.deliveries[0].delivery_id
        assert (body["project"], body["automation"], body["run_id"], body["state"]) == (project, "gates", bad.run_id,
                                                                                        "SUCCEEDED")  # fmt: skip
        assert body["trigger"]["inference_set"] == "bad-1" and body["trigger"]["upload_id"] == bad_upload
        assert body["metrics"]["accuracy"] == 0.0
        assert (body["gates"]["evaluated"], body["gates"]["failed"]) == (1, 1)
        assert body["gates"]["results"][0] | {"value": 0.0} == {
            "segment": "core", "metric": "accuracy", "class_id": None, "minimum": 0.8, "value": 0.0, "frames": N // 2,
            "passed": False}  # fmt: skip

        # a set that passes its gates is recorded and notifies nobody (the webhook is for failures)
        upload_predictions(c, project, "good-1", right=True, chunk_size=N)
        good = finished_run(c, project, "gates", "good-1")
        assert (good.state, good.gates_evaluated, good.gates_failed) == (apb.AUTOMATION_RUN_STATE_SUCCEEDED, 1, 0)
        assert good.steps[0].metrics["accuracy"] == 1.0 and [s.action for s in good.steps] == [
            apb.AUTOMATION_ACTION_KIND_METRICS, apb.AUTOMATION_ACTION_KIND_GATES]  # fmt: skip
        assert not good.deliveries and len(receiver.received) == 2
        assert "1 of 1 gates passed" in good.message

        # the event that completed the upload, delivered again: nothing runs twice
        note = pb.IngestedEvent(project=project, dataset="d", upload_id=bad_upload, chunk_index=2, total_chunks=3,
                                inference_set="bad-1", frame_ids=FRAMES[40:], predicted_frame_ids=FRAMES[40:])  # fmt: skip
        topics = Topics(shared.server.settings.topic_prefix)
        sent = shared.server.stores.events.publish(topics.ingested, key=f"{project}/d".encode(),
                                                   value=note.SerializeToString()).result(timeout=30)  # fmt: skip
        wait_for(lambda: handled(shared, sent), what="the event delivered again to be handled")
        again = runs(c, project)
        assert [(r.run_id, r.state, r.attempts) for r in again] == [(good.run_id, good.state, 1),
                                                                     (bad.run_id, bad.state, 1)]  # fmt: skip
        assert len(receiver.received) == 2
    assert SECRET not in caplog.text


def test_labels_changed_by_enough_frames_rerun_label_issues_and_metrics_once(shared: Running, project: str) -> None:
    with shared.client(shared.admin_key) as c:
        create_project(c, project)
        upload_predictions(c, project, "good-1", right=True, chunk_size=N)
        rule = apb.Automation(
            name="relabeled",
            trigger=apb.AutomationTrigger(kind=apb.AUTOMATION_TRIGGER_KIND_LABELS_CHANGED, dataset="d",
                                          min_labeled_frames=25),
            actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_LABEL_ISSUES, inference_set="good-1"),
                     apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_METRICS, inference_set="good-1"),
                     apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_METRICS, inference_set="good-1",
                                          changed_frames=True)],
        )  # fmt: skip
        c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project, automation=rule))
        relabel = UploadColumns(frame_ids=FRAMES[:20], class_ids=(LABELS[:20] + 1) % K, skip_frames=True)
        first = c.upload(project, "d", relabel, progress=False)
        c.wait_for_upload(project, first.upload_id, timeout=120)
        assert not runs(c, project), "20 frames are fewer than 25: nothing runs yet"
        second = c.upload(project, "d", UploadColumns(frame_ids=FRAMES[20:30], class_ids=LABELS[20:30],
                                                      skip_frames=True), progress=False)  # fmt: skip
        c.wait_for_upload(project, second.upload_id, timeout=120)
        run = finished_run(c, project, "relabeled", "")
        assert run.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, run.message
        assert (run.trigger.kind, run.trigger.dataset, run.trigger.frames) == (
            apb.AUTOMATION_TRIGGER_KIND_LABELS_CHANGED, "d", 30)  # fmt: skip
        issues, metrics, changed = run.steps
        job = c.analysis.GetJob(apb.GetJobRequest(project=project, job_id=issues.job_id)).job
        assert job.kind == "label_issues" and job.params["inference_set"] == "good-1"
        # the metrics on the labels as they are now: 20 frames relabeled away from what good-1 predicts
        assert metrics.metrics["accuracy"] == pytest.approx(40 / N)
        # the run lists the 30 frames whose labels came back; the metrics on those alone: 10 of them still agree
        assert list(run.trigger.frame_ids) == FRAMES[:30]
        assert (changed.metrics["frames"], changed.metrics["accuracy"]) == (30, pytest.approx(10 / 30))
        assert changed.message == "on the 30 frames whose labels changed"
        # 10 more frames count from the run on: not enough alone; with 20 more, enough again
        for lo, hi in ((30, 40), (40, 60)):
            more = c.upload(project, "d", UploadColumns(frame_ids=FRAMES[lo:hi], class_ids=LABELS[lo:hi],
                                                        skip_frames=True), progress=False)  # fmt: skip
            c.wait_for_upload(project, more.upload_id, timeout=120)
        wait_for(lambda: len(runs(c, project)) == 2, what="the second run")
        second, first = runs(c, project)
        assert first.run_id == run.run_id and second.trigger.frames == 30
        assert list(second.trigger.frame_ids) == FRAMES[30:]
        again = finished_run(c, project, "relabeled", "", run_id=second.run_id)
        assert again.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, again.message
        assert (again.steps[2].metrics["frames"], again.steps[2].metrics["accuracy"]) == (30, 1.0)


def triage_rule(name: str, prefix: str, dataset: str = "d", **send: Any) -> apb.Automation:
    """Each new set's label issues, the worst sent to labeling."""
    return apb.Automation(
        name=name,
        trigger=apb.AutomationTrigger(kind=apb.AUTOMATION_TRIGGER_KIND_INFERENCE_SET_COMPLETE, dataset=dataset,
                                      inference_set_prefix=prefix),
        actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_LABEL_ISSUES),
                 apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_SEND_TO_LABELING, **send)],
    )  # fmt: skip


def labeling_items(c: Any, project: str, request_id: str) -> list[lpb.LabelingItem]:
    """The frames of a labeling request as the labeling bridge recorded them, once it has."""
    found: list[lpb.LabelingItem] = []

    def recorded() -> bool:
        bridge = c.labeling_bridge
        try:
            r = bridge.GetLabelingRequest(lpb.GetLabelingRequestRequest(project=project, request_id=request_id)).request
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND, err
            return False
        found[:] = bridge.ListLabelingItems(lpb.ListLabelingItemsRequest(project=project, request_id=request_id)).items
        return len(found) == r.frames

    wait_for(recorded, what=f"the labeling bridge to record request {request_id}")
    return sorted(found, key=lambda i: i.ref.frame_id)


def test_label_issues_go_to_labeling_worst_first_within_the_daily_budget_and_never_twice(
    shared: Running, project: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with shared.client(shared.admin_key) as c:
        create_project(c, project, inference_sets=("noisy-1", "noisy-2", "strict-1"))
        c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project, automation=triage_rule(
            "triage", "noisy", max_frames=4, daily_budget=6, min_issues=3)))  # fmt: skip
        c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project, automation=triage_rule(
            "picky", "strict", max_frames=4, daily_budget=6, min_issue_share=0.5)))  # fmt: skip

        # the first run is cut short right after it sent (the service stopped before recording it): the
        # attempt that takes it up sends the same request again, which the labeling bridge takes once
        engine = automation_consumer(shared).engine
        send = engine.actions[au.SEND_TO_LABELING]
        cut: list[dict[str, Any]] = []

        def cut_short_once(*args: Any) -> dict[str, Any]:
            found = send(*args)
            if not cut:
                cut.append(found)
                raise Unavailable("stopped after sending (in the test)")
            return found

        engine.actions[au.SEND_TO_LABELING] = cut_short_once
        try:
            upload_predictions(c, project, "noisy-1", right=False, wrong=MISLABELED, chunk_size=N)
            taken: list[apb.AutomationRun] = []

            def taken_up_and_ended() -> bool:
                taken[:] = runs(c, project, automation="triage")
                return bool(taken) and taken[0].attempts == 2 and taken[0].state != apb.AUTOMATION_RUN_STATE_RUNNING

            wait_for(taken_up_and_ended, timeout=60, what="the run cut short to be taken up and end",
                     progress=lambda: [(r.state, r.attempts, r.message) for r in taken], stall=30)  # fmt: skip
            first = taken[0]
        finally:
            engine.actions[au.SEND_TO_LABELING] = send
        assert first.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, first.message
        assert first.attempts == 2 and len(cut) == 1
        issues, sent = first.steps
        assert sent.action == apb.AUTOMATION_ACTION_KIND_SEND_TO_LABELING
        got = sent.labeling
        assert (got.job_id, got.dataset, got.examined, got.flagged) == (issues.job_id, "d", N, MISLABELED)
        assert got.request_id == cut[0]["labeling"]["request_id"] and got.request_id in first.message
        # worst first, as the label-issues query ranks them, each with its reason
        ranked = c.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(project=project, job_id=issues.job_id)).issues
        worst = [i for i in ranked if i.is_issue]
        assert [f.frame_id for f in got.frames] == [i.ref.frame_id for i in worst[:4]]
        for f, i in zip(got.frames, worst, strict=False):
            given, suggested = f"c{i.given_label}", f"c{i.suggested_label}"
            assert f.reason.startswith(f"label issue: labeled {given}, the model suggests {suggested} (p "), f.reason
        assert (got.budget_used_before, got.sent_before, list(got.skipped_frame_ids), got.note) == (0, 0, [], "")
        items = labeling_items(c, project, got.request_id)
        assert [(i.ref.frame_id, i.reason) for i in items] == sorted((f.frame_id, f.reason) for f in got.frames)
        request = c.labeling_bridge.GetLabelingRequest(lpb.GetLabelingRequestRequest(
            project=project, request_id=got.request_id)).request  # fmt: skip
        assert (request.frames, request.source) == (4, f"label_issues:{issues.job_id}")

        # the next set flags the same frames: those sent are passed over, and the day's budget (6) leaves 2
        upload_predictions(c, project, "noisy-2", right=False, wrong=MISLABELED, chunk_size=N)
        second = finished_run(c, project, "triage", "noisy-2")
        assert second.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, second.message
        more = second.steps[1].labeling
        already = {f.frame_id for f in got.frames}
        rest = [i.ref.frame_id for i in worst if i.ref.frame_id not in already]
        assert (more.sent_before, more.budget_used_before) == (4, 4)
        assert [f.frame_id for f in more.frames] == rest[:2] and list(more.skipped_frame_ids) == rest[2:4]
        assert "2 frames over the daily budget of 6" in more.note and more.request_id != got.request_id
        assert [i.ref.frame_id for i in labeling_items(c, project, more.request_id)] == sorted(rest[:2])
        assert "2 frames sent for labeling" in second.message
        from shoal.cli import main

        capsys.readouterr()
        assert main(["automations", "runs", "--run", second.run_id, "--target", shared.target, "--api-key",
                     shared.admin_key, "--project", project]) == 0  # fmt: skip
        shown = capsys.readouterr().out
        assert f"{MISLABELED} of {N} frames flagged; 2 sent (request {more.request_id})" in shown
        assert f"sent d/{rest[0]}: label issue: labeled" in shown and ", ".join(rest[2:4]) in shown

        # a rule whose threshold the job does not reach sends nothing, and says why
        upload_predictions(c, project, "strict-1", right=False, wrong=MISLABELED, chunk_size=N)
        picky = finished_run(c, project, "picky", "strict-1")
        assert picky.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, picky.message
        nothing = picky.steps[1]
        assert (nothing.labeling.flagged, nothing.labeling.request_id, len(nothing.labeling.frames)) == (
            MISLABELED, "", 0)  # fmt: skip
        assert nothing.message == f"the job flagged {MISLABELED} of {N} frames, short of a share of 0.5: nothing sent"
        assert "nothing sent for labeling" in picky.message


def test_a_multi_label_sets_issues_go_to_labeling_with_the_classes_missing_and_extra(
    shared: Running, project: str
) -> None:
    from tests.server.test_analysis_multilabel import CLASSES, _noisy

    _, scores, given, _, _ = _noisy(120, 3, 10)
    ids = [f"m-{i:04d}" for i in range(len(given))]
    with shared.client(shared.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_MULTI_LABEL,
            classes=[pb.ClassDef(id=10 + i, name=n) for i, n in enumerate(CLASSES)])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name="vit", dataset="val", model_name="vit", model_version="1")))  # fmt: skip
        labels = UploadColumns(frame_ids=ids, class_sets=[[10 + k for k in np.flatnonzero(row)] for row in given])
        done = c.upload(project, "val", labels, progress=False)
        assert c.wait_for_upload(project, done.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project, automation=triage_rule(
            "triage", "", "val", max_frames=3, daily_budget=10)))  # fmt: skip
        c.upload(project, "val", UploadColumns(frame_ids=ids, inference_set="vit", skip_frames=True,
                                               probabilities=scores.astype(np.float32)), progress=False)  # fmt: skip
        run = finished_run(c, project, "triage", "vit")
        assert run.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, run.message
        issues, sent = run.steps
        flagged = c.analysis.QueryMultiLabelIssues(apb.QueryMultiLabelIssuesRequest(project=project,
                                                                                    job_id=issues.job_id)).issues  # fmt: skip
        assert sent.labeling.flagged == len(flagged) > 3
        assert [f.frame_id for f in sent.labeling.frames] == [i.ref.frame_id for i in flagged[:3]]
        for f, i in zip(sent.labeling.frames, flagged, strict=False):
            named = [f"{what} {', '.join(CLASSES[k - 10] for k in ks)}" for what, ks in
                     (("missing", i.missing_class_ids), ("extra", i.extra_class_ids)) if ks]  # fmt: skip
            assert f.reason == f"label issue: {'; '.join(named)} (label quality {i.score:.2f})", f.reason
        items = labeling_items(c, project, sent.labeling.request_id)
        assert sorted(i.reason for i in items) == sorted(f.reason for f in sent.labeling.frames)


def handled(r: Running, sent: Any) -> bool:
    """Whether the automations handled and committed the event published as ``sent``."""
    tp = TopicPartition(sent.topic, sent.partition)
    return automation_consumer(r).positions.get(tp, 0) > sent.offset


def test_rules_are_validated_scoped_paused_resumed_and_deleted(shared: Running, project: str) -> None:
    with shared.client(shared.admin_key) as c:
        create_project(c, project)

        def refused(rule: apb.Automation, code: grpc.StatusCode, field: str) -> None:
            with pytest.raises(grpc.RpcError) as info:
                c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project, automation=rule))
            assert info.value.code() == code and info.value.details().startswith(field), info.value.details()
            assert SECRET not in info.value.details()

        def changed(**fields: Any) -> apb.Automation:
            rule = gate_rule("r", "http://127.0.0.1:9/x")
            for name, value in fields.items():
                target, _, attr = name.rpartition("__")
                message = rule
                for part in filter(None, target.split("__")):
                    message = getattr(message, part)
                if isinstance(value, list):
                    del getattr(message, attr)[:]
                    getattr(message, attr).extend(value)
                else:
                    setattr(message, attr, value)
            return rule

        bad = grpc.StatusCode.INVALID_ARGUMENT
        refused(changed(name="Bad Name"), bad, "automation.name")
        refused(changed(trigger__kind=0), bad, "automation.trigger.kind")
        refused(changed(trigger__kind=99), bad, "automation.trigger.kind")
        refused(changed(actions=[]), bad, "automation.actions")
        refused(changed(actions=[apb.AutomationAction(kind=42)]), bad, "automation.actions[0].kind")
        refused(changed(actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_NEIGHBORS)]), bad,
                "automation.actions[0].embedding_space")  # fmt: skip
        refused(changed(actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_GATES, iou_threshold=2.0)]), bad,
                "automation.actions[0].iou_threshold")  # fmt: skip
        refused(changed(trigger__kind=apb.AUTOMATION_TRIGGER_KIND_LABELS_CHANGED, trigger__min_labeled_frames=5), bad,
                "automation.actions[0].inference_set")  # METRICS reads an inference set: none is triggering  # fmt: skip
        refused(changed(trigger__kind=apb.AUTOMATION_TRIGGER_KIND_LABELS_CHANGED), bad,
                "automation.trigger.min_labeled_frames")  # fmt: skip
        refused(changed(webhook__url="ftp://example.com/hook"), bad, "automation.webhook.url")
        refused(changed(webhook__url="file:///etc/passwd"), bad, "automation.webhook.url")
        refused(changed(webhook__url="http://user:pw@example.com/"), bad, "automation.webhook.url")
        refused(changed(webhook__secret="short"), bad, "automation.webhook.secret")
        refused(changed(trigger__dataset="nope"), grpc.StatusCode.NOT_FOUND, "automation.trigger.dataset")
        labels_rule = changed(trigger__kind=apb.AUTOMATION_TRIGGER_KIND_LABELS_CHANGED, trigger__min_labeled_frames=5,
                              actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_LABEL_ISSUES,
                                                            inference_set="missing")])  # fmt: skip
        refused(labels_rule, grpc.StatusCode.NOT_FOUND, "automation.actions[0].inference_set")
        labels_rule.actions[0].inference_set = "good-1"
        refused(labels_rule, bad, "automation.trigger.dataset")  # its dataset must be named
        # the changed frames are those of a LABELS_CHANGED trigger
        refused(changed(actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_METRICS, changed_frames=True)]),
                bad, "automation.actions[0].changed_frames")  # fmt: skip
        issues_first = apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_LABEL_ISSUES)

        def send(**fields: Any) -> apb.AutomationAction:
            return apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_SEND_TO_LABELING,
                                        **{"max_frames": 5, "daily_budget": 10, **fields})  # fmt: skip

        refused(changed(actions=[send()]), bad, "automation.actions[0].kind")  # no label-issues job to read
        refused(changed(actions=[issues_first, send(), send()]), bad, "automation.actions[2].kind")
        refused(changed(actions=[issues_first, send(max_frames=0)]), bad, "automation.actions[1].max_frames")
        refused(changed(actions=[issues_first, send(max_frames=5001)]), bad, "automation.actions[1].max_frames")
        refused(changed(actions=[issues_first, send(daily_budget=0)]), bad, "automation.actions[1].daily_budget")
        refused(changed(actions=[issues_first, send(min_issues=-1)]), bad, "automation.actions[1].min_issues")
        refused(changed(actions=[issues_first, send(min_issue_share=1.5)]), bad,
                "automation.actions[1].min_issue_share")  # fmt: skip
        refused(changed(actions=[issues_first, send(platform="paper")]), bad, "automation.actions[1].platform")
        refused(changed(actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_METRICS, max_frames=5)]), bad,
                "automation.actions[0].max_frames")  # fmt: skip

        # paused does nothing; the active rule beside it shows the event was handled
        c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project, automation=gate_rule("a-paused")))
        refused(gate_rule("a-paused"), grpc.StatusCode.ALREADY_EXISTS, "automation.name")
        paused = c.analysis.UpdateAutomation(apb.UpdateAutomationRequest(project=project, name="a-paused",
                                                                         paused=True)).automation  # fmt: skip
        assert paused.paused and paused.description == "gate each release"
        c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project, automation=gate_rule("b-active")))
        listed = c.analysis.ListAutomations(apb.ListAutomationsRequest(project=project)).automations
        assert [(a.name, a.paused) for a in listed] == [("a-paused", True), ("b-active", False)]
        upload_predictions(c, project, "good-1", right=True, chunk_size=N)
        finished_run(c, project, "b-active", "good-1")
        assert not runs(c, project, automation="a-paused")

        # resumed, it runs on the next set (not on what it missed)
        resumed = c.analysis.UpdateAutomation(apb.UpdateAutomationRequest(project=project, name="a-paused",
                                                                          paused=False)).automation  # fmt: skip
        assert not resumed.paused
        upload_predictions(c, project, "good-2", right=True, chunk_size=N)
        assert finished_run(c, project, "a-paused", "good-2").state == apb.AUTOMATION_RUN_STATE_SUCCEEDED
        assert finished_run(c, project, "b-active", "good-2").state == apb.AUTOMATION_RUN_STATE_SUCCEEDED
        assert [r.trigger.inference_set for r in runs(c, project, automation="a-paused")] == ["good-2"]

        # updates: replacing actions needs the flag; a webhook given without a secret keeps the one kept
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.UpdateAutomation(apb.UpdateAutomationRequest(project=project, name="b-active", actions=[
                apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_METRICS)]))  # fmt: skip
        assert info.value.details().startswith("replace_actions")
        hooked = c.analysis.UpdateAutomation(apb.UpdateAutomationRequest(
            project=project, name="b-active", webhook=apb.AutomationWebhook(url="https://example.com/a", secret=SECRET),
            actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_METRICS)],
            replace_actions=True)).automation  # fmt: skip
        assert [a.kind for a in hooked.actions] == [apb.AUTOMATION_ACTION_KIND_METRICS] and hooked.webhook.has_secret
        moved = c.analysis.UpdateAutomation(apb.UpdateAutomationRequest(
            project=project, name="b-active", webhook=apb.AutomationWebhook(url="https://example.com/b",
                                                                            always=True))).automation  # fmt: skip
        assert (moved.webhook.url, moved.webhook.has_secret, moved.webhook.always) == ("https://example.com/b", True,
                                                                                         True)  # fmt: skip
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.UpdateAutomation(apb.UpdateAutomationRequest(project=project, name="b-active", webhook=(
                apb.AutomationWebhook(url="gopher://example.com")), remove_webhook=False))  # fmt: skip
        assert info.value.details().startswith("webhook.url")
        gone = c.analysis.UpdateAutomation(apb.UpdateAutomationRequest(project=project, name="b-active",
                                                                       remove_webhook=True)).automation  # fmt: skip
        assert not gone.HasField("webhook")

        # a key of another project sees none of it
        _, other = shared.server.keys.create(["some-other-project"], description="other")
        with shared.client(other) as o, pytest.raises(grpc.RpcError) as info:
            o.analysis.ListAutomations(apb.ListAutomationsRequest(project=project))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # deleted: gone from the rules, its runs still readable; its name may be given again
        old = runs(c, project, automation="b-active")
        c.analysis.DeleteAutomation(apb.DeleteAutomationRequest(project=project, name="b-active"))
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.GetAutomation(apb.GetAutomationRequest(project=project, name="b-active"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND and info.value.details().startswith("name")
        assert [a.name for a in c.analysis.ListAutomations(apb.ListAutomationsRequest(project=project)).automations] == [
            "a-paused"]  # fmt: skip
        assert [r.run_id for r in runs(c, project, automation="b-active")] == [r.run_id for r in old]
        kept = c.analysis.GetAutomationRun(apb.GetAutomationRunRequest(project=project, run_id=old[0].run_id)).run
        assert kept.automation == "b-active" and kept.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED
        c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project, automation=gate_rule("b-active")))
        for request, field in (
            (apb.ListAutomationRunsRequest(project=project, states=[0]), "states[0]"),
            (apb.GetAutomationRunRequest(project=project, run_id="ar-none"), "run_id"),
        ):
            method = c.analysis.ListAutomationRuns if "states" in str(request) else c.analysis.GetAutomationRun
            with pytest.raises(grpc.RpcError) as info:
                method(request)
            assert info.value.details().startswith(field), info.value.details()
        done = runs(c, project, states=[apb.AUTOMATION_RUN_STATE_SUCCEEDED])
        assert len(done) == 3 and not runs(c, project, states=[apb.AUTOMATION_RUN_STATE_FAILED])


# --- the engine on its own ----------------------------------------------------------------------------
PROJECT = Project(name="p", task_type="CLASSIFICATION")


@pytest.fixture
def store(chdb_path: Path, database: str) -> Iterator[au.AutomationStore]:
    metrics = EmbeddedMetricsStore(path=chdb_path, database=database)
    metrics.migrate(au.MIGRATIONS)
    yield au.AutomationStore(metrics)
    metrics.close()


class Actions:
    """Actions that count their calls; ``fail`` maps an action to the errors its next calls raise."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.fail: dict[str, list[Exception]] = {}

    def fns(self) -> dict[str, Any]:
        def make(kind: str) -> Any:
            def run(rule: au.Rule, trigger: au.TriggerEvent, action: au.Action, started: Any) -> dict[str, Any]:
                self.calls[kind] = self.calls.get(kind, 0) + 1
                if self.fail.get(kind):
                    raise self.fail[kind].pop(0)
                if kind == au.GATES:
                    return {"gates": [{"segment": "s", "metric": "accuracy", "class_id": None, "minimum": 0.9,
                                       "value": 0.5, "frames": 10, "passed": False}]}  # fmt: skip
                return {"metrics": {"accuracy": 0.5}}

            return run

        return {kind: make(kind) for kind in au.ACTIONS}


def _rule(store: au.AutomationStore, url: str) -> au.Rule:
    rule = au.Rule("p", "r", au.Trigger(au.INFERENCE_SET_COMPLETE), (au.Action(au.METRICS), au.Action(au.GATES)),
                   au.Webhook(url, SECRET))  # fmt: skip
    au.check_rule(rule, PROJECT)
    return store.create(rule)


TRIGGER = au.TriggerEvent(au.INFERENCE_SET_COMPLETE, "inference-set-complete/d/up-1/m", "d", "up-1", "m", 10)


def _engine(store: au.AutomationStore, actions: Actions, **kwargs: Any) -> Engine:
    sender = WebhookSender(attempts=3, initial_backoff=0.05, allow_private=True)  # the receiver is on loopback
    return Engine(store, actions.fns(), webhooks=sender, **kwargs)


def test_webhooks_to_private_addresses_are_refused_unless_allowed(store: au.AutomationStore) -> None:
    """By default a rule cannot make the service post to loopback or private addresses (internal services):
    the delivery is refused without a request, the attempt recorded with why, the run failed for good."""
    with Receiver() as receiver:
        rule = _rule(store, receiver.url)
        engine = Engine(store, Actions().fns(), webhooks=WebhookSender(attempts=3, initial_backoff=0.05))
        run = engine.fire(rule, TRIGGER)
        assert run.state == au.FAILED and not run.retry and "private or local address" in run.message
        assert receiver.received == []
        (delivery,) = store.deliveries("p", [run.run_id])[run.run_id]
        assert delivery.status_code == 0 and "SHOAL_AUTOMATIONS_ALLOW_PRIVATE_WEBHOOKS" in delivery.error


def test_an_attempt_cut_short_resumes_without_doing_an_action_twice(store: au.AutomationStore) -> None:
    with Receiver() as receiver:
        rule = _rule(store, receiver.url)
        actions = Actions()
        actions.fail[au.GATES] = [Unavailable("ClickHouse unreachable")]
        engine = _engine(store, actions)
        with pytest.raises(Unavailable):
            engine.fire(rule, TRIGGER)
        cut = store.get_run("p", au.run_id_for(rule.automation_id, TRIGGER.key))
        assert (cut.state, cut.retry, cut.attempts) == (au.FAILED, True, 1) and "tried again" in cut.message
        steps = store.steps("p", [cut.run_id])[cut.run_id]
        assert [(s.action, s.state) for s in steps] == [(au.METRICS, au.SUCCEEDED), (au.GATES, au.RUNNING)]

        run = engine.fire(rule, TRIGGER)  # the event came again
        assert (run.state, run.attempts, run.gates_evaluated, run.gates_failed) == (au.SUCCEEDED, 2, 1, 1)
        assert actions.calls == {au.METRICS: 1, au.GATES: 2}  # METRICS was done: not done again
        assert [r["event"] for r in receiver.received] == ["gates.failed"]

        # and again: a run that ended does nothing
        assert engine.fire(rule, TRIGGER).attempts == 2
        other = _engine(store, actions)
        assert other.fire(rule, TRIGGER).attempts == 2
        assert actions.calls == {au.METRICS: 1, au.GATES: 2} and len(receiver.received) == 1


def test_a_run_another_consumer_holds_waits_until_it_is_stale(store: au.AutomationStore) -> None:
    rule = store.update(replace(_rule(store, "http://127.0.0.1:9/unused"), webhook=None))
    run_id = au.run_id_for(rule.automation_id, TRIGGER.key)
    store.write_run(au.Run("p", run_id, rule.automation_id, rule.name, TRIGGER, runner="elsewhere"))
    assert store.claim("p", run_id, 1, "elsewhere")
    actions = Actions()
    with pytest.raises(RunBusy):
        _engine(store, actions).fire(rule, TRIGGER)
    assert not actions.calls
    # its consumer stopped marking it alive (here: any mark is too old): the next takes it up
    taken = _engine(store, actions, stale_seconds=-1.0)
    done = taken.fire(rule, TRIGGER)
    assert (done.state, done.attempts, done.runner) == (au.SUCCEEDED, 2, taken.runner_id)
    assert actions.calls == {au.METRICS: 1, au.GATES: 1}
    # one consumer wins each attempt, however many claim it
    wins = [store.claim("p", "ar-race", 1, f"runner-{i}") for i in range(4)]
    assert wins.count(True) == 1


def test_a_refused_delivery_fails_the_run_for_good(store: au.AutomationStore) -> None:
    with Receiver(answers=(400,)) as receiver:
        rule = _rule(store, receiver.url)
        actions = Actions()
        engine = _engine(store, actions)
        run = engine.fire(rule, TRIGGER)
        assert (run.state, run.retry) == (au.FAILED, False)
        assert "webhook not delivered" in run.message and "HTTP 400" in run.message
        assert len(receiver.received) == 1  # a 4xx is a refusal: not tried again
        assert engine.fire(rule, TRIGGER).attempts == 1 and len(receiver.received) == 1
        (delivery,) = store.deliveries("p", [run.run_id])[run.run_id]
        assert (delivery.attempt, delivery.status_code, delivery.event) == (1, 400, "gates.failed")


def test_the_cli_creates_lists_pauses_resumes_shows_runs_and_deletes(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shoal.cli import main

    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    connection = ["--target", shared.target, "--api-key", shared.admin_key, "--project", project]

    def shoal(*argv: str) -> str:
        capsys.readouterr()
        assert main(["automations", *argv, *connection]) == 0
        return capsys.readouterr().out

    with shared.client(shared.admin_key) as c, Receiver() as receiver:
        create_project(c, project)
        made = shoal("create", "--name", "gates", "--on", "inference-set-complete", "--action", "metrics",
                     "--action", "gates", "--webhook-url", receiver.url, "--webhook-secret-file", str(secret))  # fmt: skip
        assert made.startswith("gates") and "active" in made and "metrics, gates" in made and "(on failure)" in made
        assert SECRET not in made
        rule = c.analysis.GetAutomation(apb.GetAutomationRequest(project=project, name="gates")).automation
        assert rule.webhook.has_secret
        assert "paused" in shoal("pause", "gates") and "active" in shoal("resume", "gates")
        assert shoal("list").splitlines()[0].split()[:2] == ["gates", "active"]
        upload_predictions(c, project, "bad-1", right=False, chunk_size=N)
        run = finished_run(c, project, "gates", "bad-1")
        assert receiver.received and receiver.received[0]["signed"]  # the secret came from the file, newline dropped
        listed = shoal("runs", "--automation", "gates")
        assert run.run_id in listed and "SUCCEEDED" in listed and "0 of 1 gates passed" in listed
        detail = shoal("runs", "--run", run.run_id)
        assert "FAIL  core: accuracy = 0.0000 (minimum 0.8, 30 frames)" in detail and "accuracy = 0.0000" in detail
        assert "attempt 1: 200" in detail
        assert json.loads(shoal("runs", "--json").splitlines()[0])["run_id"] == run.run_id
        assert "deleted" in shoal("delete", "gates") and not shoal("list").strip()
        assert run.run_id in shoal("runs", "--automation", "gates")
        triage = shoal("create", "--name", "triage", "--on", "inference-set-complete", "--action", "label-issues",
                       "--action", "send-to-labeling", "--max-frames", "5", "--daily-budget", "20")  # fmt: skip
        assert "label_issues, send_to_labeling" in triage
        made = c.analysis.GetAutomation(apb.GetAutomationRequest(project=project, name="triage")).automation
        assert [(a.max_frames, a.daily_budget) for a in made.actions] == [(0, 0), (5, 20)]
