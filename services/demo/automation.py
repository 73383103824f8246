"""One automation firing: a release gate on the digits, a new model that fails it, and the signed webhook
that says so.

A regression-test segment (the test split) carries a gate: the recall of class 8 at least 0.9, which the
current model (``mlp-oof``) passes. A rule on the digits dataset measures and gates every inference set whose
upload completes and notifies a webhook when a gate fails; the webhook is a small HTTP receiver in this process
that checks each delivery's signature with :func:`shoal.analysis.automation_webhooks.verify`. A new model that
takes every 8 for a 1 is then uploaded as ``mlp-v2`` (probabilities only, for the same frames): the rule fires
on its own, and the demo waits for its run to end and reads it back.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from shoal.analysis.automation_webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from shoal.client import Client
from shoal.demo.names import DATASET, INFERENCE_SET, PROJECT, log

RULE = "gate-new-models"
SEGMENT = "release-test-split"
NEW_INFERENCE_SET = "mlp-v2"
#: the gate: the recall of this class on the segment, at least this
GATE_CLASS, GATE_MINIMUM = 8, 0.9
#: what the new model predicts the gate's class as
CONFUSED_WITH = 1
#: the oldest delivery timestamp the receiver accepts, in seconds (a recorded delivery cannot be replayed)
TOLERANCE_SECONDS = 300
#: how long the rule's run may take once the upload completed
RUN_TIMEOUT_SECONDS = 60.0


class Receiver:
    """A webhook receiver on a free loopback port: each delivery is kept with whether its signature and
    timestamp hold, and answered 200 when they do (401 when not)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.deliveries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ts = self.headers.get(TIMESTAMP_HEADER, "")
                signed = verify(outer.secret, ts, body, self.headers.get(SIGNATURE_HEADER, ""))
                fresh = ts.isdigit() and abs(time.time() - int(ts)) < TOLERANCE_SECONDS
                status = 200 if signed and fresh else 401
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {}
                with outer._lock:
                    outer.deliveries.append({
                        "event": self.headers.get(EVENT_HEADER, ""),
                        "delivery_id": self.headers.get(DELIVERY_HEADER, ""),
                        "signature_verified": signed, "fresh": fresh, "status": status, "body": payload,
                    })  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-webhook", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/shoal"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def degraded(probabilities: np.ndarray, true_labels: np.ndarray) -> np.ndarray:
    """The model's probabilities with those of ``GATE_CLASS`` and ``CONFUSED_WITH`` swapped on every frame that
    truly is a ``GATE_CLASS``: a model that takes those frames for the other class."""
    out = np.array(probabilities, dtype=np.float32, copy=True)
    rows = np.flatnonzero(np.asarray(true_labels) == GATE_CLASS)
    out[np.ix_(rows, [GATE_CLASS, CONFUSED_WITH])] = out[np.ix_(rows, [CONFUSED_WITH, GATE_CLASS])]
    return out


def _create(call: Any, request: Any) -> bool:
    """Calls a create RPC; what exists already (a second run on the same data dir) is kept. Whether it was made."""
    import grpc

    try:
        call(request)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        return False
    return True


def _finished_run(client: Client, upload_id: str, timeout: float) -> Any:
    """The rule's run for the upload ``upload_id`` once it ended; a clear error after ``timeout`` seconds."""
    from shoal.analysis.v1 import analysis_pb2 as apb

    deadline = time.monotonic() + timeout
    seen = "no run yet"
    while True:
        found = client.analysis.ListAutomationRuns(apb.ListAutomationRunsRequest(
            project=PROJECT, automation=RULE, inference_set=NEW_INFERENCE_SET)).runs  # fmt: skip
        mine = [r for r in found if r.trigger.upload_id == upload_id]
        if mine:
            run = mine[0]
            if run.state != apb.AUTOMATION_RUN_STATE_RUNNING:
                return run
            seen = f"its run {run.run_id} is RUNNING with {len(run.steps)} steps recorded"
        if time.monotonic() > deadline:
            raise RuntimeError(f"automation {RULE} did not end its run for {NEW_INFERENCE_SET} (upload {upload_id}) "
                               f"within {timeout:.0f} s of the upload completing: {seen}; see server.log")  # fmt: skip
        time.sleep(0.2)


def gate_new_models(client: Client, digits: Any) -> dict[str, Any]:
    """Sets up the release gate and its rule, uploads a worse model, and returns what the rule did: its run,
    the gates, the metrics it recorded and the webhook delivery as the receiver saw it."""
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sdk import UploadColumns

    t0 = time.monotonic()
    test_frames = [f for f, s in zip(digits.frame_ids, digits.splits, strict=True) if s == "test"]
    gate = apb.Gate(metric="recall", class_id=GATE_CLASS, minimum=GATE_MINIMUM)
    _create(client.analysis.CreateSegment, apb.CreateSegmentRequest(project=PROJECT, frame_ids=test_frames,
            segment=apb.Segment(name=SEGMENT, dataset=DATASET, kind=apb.SEGMENT_KIND_REGRESSION_TEST,
                                reason=f"the test split: a new model must keep recalling {GATE_CLASS}s",
                                author="shoal demo", gates=[gate])))  # fmt: skip
    new_set = pb.InferenceSet(name=NEW_INFERENCE_SET, dataset=DATASET, model_name="sklearn-mlp", model_version="2")
    made = _create(client.ingest.CreateInferenceSet, pb.CreateInferenceSetRequest(project=PROJECT,
                                                                                  inference_set=new_set))  # fmt: skip
    # the current model against the same gate, for comparison
    baseline = client.analysis.EvaluateGates(apb.EvaluateGatesRequest(project=PROJECT,
                                                                      inference_set=INFERENCE_SET)).results  # fmt: skip
    current = next(g for g in baseline if g.segment == SEGMENT)
    secret = secrets.token_urlsafe(32)
    with Receiver(secret) as receiver:
        rule = apb.Automation(
            name=RULE,
            description="every new model of the digits is measured and gated; a failing gate calls the hook",
            trigger=apb.AutomationTrigger(kind=apb.AUTOMATION_TRIGGER_KIND_INFERENCE_SET_COMPLETE, dataset=DATASET),
            actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_METRICS),
                     apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_GATES)],
            webhook=apb.AutomationWebhook(url=receiver.url, secret=secret),
        )  # fmt: skip
        # a rule left by an earlier run on the same data dir calls that run's receiver: made again
        if any(a.name == RULE for a in client.analysis.ListAutomations(apb.ListAutomationsRequest(
                project=PROJECT)).automations):  # fmt: skip
            client.analysis.DeleteAutomation(apb.DeleteAutomationRequest(project=PROJECT, name=RULE))
        client.analysis.CreateAutomation(apb.CreateAutomationRequest(project=PROJECT, automation=rule))
        columns = UploadColumns(frame_ids=digits.frame_ids, skip_frames=True, inference_set=NEW_INFERENCE_SET,
                                probabilities=degraded(digits.probabilities, digits.true_labels))  # fmt: skip
        upload = client.upload(PROJECT, DATASET, columns, chunk_size=500, progress=False)
        status = client.wait_for_upload(PROJECT, upload.upload_id, timeout=300)
        if status.state != pb.UPLOAD_STATE_COMPLETED:
            raise RuntimeError(f"the upload of {NEW_INFERENCE_SET} ended {pb.UploadState.Name(status.state)}")
        run = _finished_run(client, upload.upload_id, RUN_TIMEOUT_SECONDS)
        deliveries = list(receiver.deliveries)
    seconds = time.monotonic() - t0
    metrics = next((dict(s.metrics) for s in run.steps if s.action == apb.AUTOMATION_ACTION_KIND_METRICS), {})
    results = [g for s in run.steps if s.action == apb.AUTOMATION_ACTION_KIND_GATES for g in s.gates]

    def gate_json(g: Any) -> dict[str, Any]:
        return {"segment": g.segment, "metric": g.gate.metric,
                "class_id": g.gate.class_id if g.gate.HasField("class_id") else None, "minimum": g.gate.minimum,
                "value": round(g.value, 4), "frames": g.frames, "passed": g.passed}  # fmt: skip

    recorded = list(run.deliveries)
    taken = next((d for d in deliveries if d["status"] == 200), deliveries[-1] if deliveries else None)
    webhook = {
        "url": receiver.url,
        "event": taken["event"] if taken else "",
        "delivery_id": taken["delivery_id"] if taken else "",
        "status": taken["status"] if taken else 0,
        "signature_verified": bool(taken and taken["signature_verified"]),
        "received": len(deliveries),
        "attempts": len(recorded),
        "recorded_status": recorded[-1].status_code if recorded else 0,
        "reported_gates_failed": taken["body"].get("gates", {}).get("failed") if taken else None,
    }
    state = apb.AutomationRunState.Name(run.state).removeprefix("AUTOMATION_RUN_STATE_")
    failing = [gate_json(g) for g in results if not g.passed]
    log.info("automation %s: run %s %s on %s in %.1fs: %d of %d gates failed; webhook %s answered %s (signature %s)",
             RULE, run.run_id, state, NEW_INFERENCE_SET, seconds, run.gates_failed, run.gates_evaluated,
             webhook["event"] or "not called", webhook["status"],
             "verified" if webhook["signature_verified"] else "NOT verified")  # fmt: skip
    return {
        "rule": RULE,
        "trigger": "INFERENCE_SET_COMPLETE",
        "actions": ["METRICS", "GATES"],
        "dataset": DATASET,
        "segment": SEGMENT,
        "segment_frames": len(test_frames),
        "gate": {"metric": "recall", "class_id": GATE_CLASS, "minimum": GATE_MINIMUM},
        "inference_set": NEW_INFERENCE_SET,
        # how the new model is worse: every frame truly of class_id is predicted as predicted_as
        "degraded": {"class_id": GATE_CLASS, "predicted_as": CONFUSED_WITH},
        "frames": len(digits.frame_ids),
        # an earlier demo on the same data dir uploaded it already (its predictions count among the dataset's)
        "inference_set_existed": not made,
        "upload_id": upload.upload_id,
        "run_id": run.run_id,
        "state": state,
        "message": run.message,
        "attempts": run.attempts,
        "gates_evaluated": run.gates_evaluated,
        "gates_passed": run.gates_evaluated - run.gates_failed,
        "gates_failed": run.gates_failed,
        "failing_gates": failing,
        "gates": [gate_json(g) for g in results],
        "accuracy": round(metrics.get("accuracy", 0.0), 4),
        "macro_f1": round(metrics.get("macro_f1", 0.0), 4),
        "metrics_recorded": len(metrics),
        "baseline": {"inference_set": INFERENCE_SET, "value": round(current.value, 4), "passed": current.passed},
        "webhook": webhook,
        "seconds": round(seconds, 2),
    }
