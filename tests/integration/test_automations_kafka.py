"""Automations on a real Apache Kafka broker: the analysis service's consumer of the ingested topic.

- a new inference set runs its rule's metrics and gates, and the failing gate notifies a local receiver
  (signed, retried after a 500); a paused rule beside it does nothing; the trigger's event delivered again
  runs nothing twice;
- a new set's label issues go to labeling over the labeling-requests topic: the labeling bridge records the
  request with each frame's reason;
- a broker that goes down while a run is in the middle of its notification, and comes back after the run
  ended (so the consumer could not commit, and the event comes again): the run is complete, each of its
  actions done once, one notification delivered.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.settings import ShoalSettings
from shoal.common.topics import Topics
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.conftest import REPO
from tests.server.conftest import Running, start_server, wait_for
from tests.server.test_automations import (
    FRAMES,
    MISLABELED,
    N,
    Receiver,
    automation_consumer,
    create_project,
    finished_run,
    gate_rule,
    handled,
    labeling_items,
    runs,
    triage_rule,
    upload_predictions,
)

pytestmark = pytest.mark.integration


def _kafka_settings(settings: ShoalSettings, bootstrap: str) -> ShoalSettings:
    prefix = f"auto-{uuid.uuid4().hex[:8]}"
    return settings.model_copy(update={
        "kafka_bootstrap_servers": bootstrap, "topic_prefix": prefix, "topic_partitions": 2,
        "ingest_consumer_group": f"{prefix}-ingest", "automations_consumer_group": f"{prefix}-automations",
        "store_timeout_seconds": 4.0,
    })  # fmt: skip


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Any]:
    from tests.harness.kafka_broker import KafkaBroker, default_libs_dir

    broker = KafkaBroker(libs_dir=default_libs_dir(REPO), work_dir=tmp_path / "kafka")
    broker.start()
    yield broker
    broker.stop()


def test_on_kafka_a_new_inference_set_runs_its_gates_once_and_a_paused_rule_nothing(
    embedded_settings: ShoalSettings, kafka_broker: Any
) -> None:
    r: Running = start_server(_kafka_settings(embedded_settings, kafka_broker.bootstrap_servers))
    project = "releases"
    try:
        with r.client(r.admin_key) as c, Receiver(answers=(500,)) as receiver:
            create_project(c, project)
            c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project,
                                                                    automation=gate_rule("gates", receiver.url)))  # fmt: skip
            quiet = gate_rule("quiet", receiver.url, always=True)
            quiet.paused = True
            c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project, automation=quiet))

            upload_id = upload_predictions(c, project, "bad-1", right=False)
            run = finished_run(c, project, "gates", "bad-1")
            assert run.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, run.message
            assert (run.gates_evaluated, run.gates_failed, run.attempts, run.trigger.upload_id) == (1, 1, 1, upload_id)
            assert run.trigger.source.startswith(Topics(r.server.settings.topic_prefix).ingested + "/")
            assert run.steps[0].metrics["accuracy"] == 0.0 and not run.steps[1].gates[0].passed
            assert [(d.attempt, d.status_code) for d in run.deliveries] == [(1, 500), (2, 200)]
            assert [(x["status"], x["event"], x["signed"]) for x in receiver.received] == [
                (500, "gates.failed", True), (200, "gates.failed", True)]  # fmt: skip
            assert not runs(c, project, automation="quiet"), "a paused rule does nothing"

            # the event that completed the upload, on the topic again: nothing runs twice
            note = pb.IngestedEvent(project=project, dataset="d", upload_id=upload_id, chunk_index=2, total_chunks=3,
                                    inference_set="bad-1", frame_ids=FRAMES[40:N])  # fmt: skip
            topics = Topics(r.server.settings.topic_prefix)
            sent = r.server.stores.events.publish(topics.ingested, key=f"{project}/d".encode(),
                                                  value=note.SerializeToString()).result(timeout=60)  # fmt: skip
            wait_for(lambda: handled(r, sent), timeout=60, what="the event delivered again to be handled")
            again = runs(c, project)
            assert [(x.run_id, x.state, x.attempts, len(x.deliveries)) for x in again] == [
                (run.run_id, apb.AUTOMATION_RUN_STATE_SUCCEEDED, 1, 2)]  # fmt: skip
            assert len(receiver.received) == 2
    finally:
        r.server.stop(grace=1)


def test_on_kafka_label_issues_go_to_labeling_with_their_reasons(
    embedded_settings: ShoalSettings, kafka_broker: Any
) -> None:
    r: Running = start_server(_kafka_settings(embedded_settings, kafka_broker.bootstrap_servers))
    project = "triage"
    try:
        with r.client(r.admin_key) as c:
            create_project(c, project, inference_sets=("noisy-1",))
            c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project, automation=triage_rule(
                "triage", "noisy", max_frames=5, daily_budget=100)))  # fmt: skip
            upload_predictions(c, project, "noisy-1", right=False, wrong=MISLABELED)
            run = finished_run(c, project, "triage", "noisy-1")
            assert run.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, run.message
            sent = run.steps[1].labeling
            assert (sent.flagged, len(sent.frames), sent.request_id != "") == (MISLABELED, 5, True)
            items = labeling_items(c, project, sent.request_id)
            assert [(i.ref.frame_id, i.reason) for i in items] == sorted((f.frame_id, f.reason) for f in sent.frames)
            assert all(i.reason.startswith("label issue: labeled c") for i in items)
    finally:
        r.server.stop(grace=1)


@pytest.mark.timeout(300)  # times SHOAL_TEST_WAIT_SCALE; a broker restart takes seconds
def test_a_broker_restart_in_the_middle_of_a_run_ends_complete_and_does_nothing_twice(
    embedded_settings: ShoalSettings, private_broker: Any
) -> None:
    r: Running = start_server(_kafka_settings(embedded_settings, private_broker.bootstrap_servers))
    project = "restart"
    try:
        with r.client(r.admin_key) as c, Receiver() as receiver:
            create_project(c, project, inference_sets=("bad-1",))
            c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=project,
                                                                    automation=gate_rule("gates", receiver.url)))  # fmt: skip
            # the receiver answers when told to, and the sender waits for that answer
            release = threading.Event()
            receiver.hold = release
            automation_consumer(r).engine.webhooks.timeout_seconds = 600
            upload_id = upload_predictions(c, project, "bad-1", right=False)
            wait_for(receiver.arrived.is_set, timeout=120, what="the run to reach its notification")
            (mid,) = runs(c, project)
            assert mid.state == apb.AUTOMATION_RUN_STATE_RUNNING and len(mid.steps) == 3, mid
            # the broker goes down in the middle of the run, which ends while it is down (its actions need no
            # broker): the consumer cannot commit, and the event comes again once the broker is back
            private_broker.stop()
            release.set()
            run = finished_run(c, project, "gates", "bad-1")
            consumer = automation_consumer(r)
            wait_for(lambda: consumer.last_error is not None, timeout=120, what="the consumer to fail to commit")
            assert "Kafka" in str(consumer.last_error)
            private_broker.restart()
            assert run.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, run.message
            assert (run.trigger.upload_id, run.attempts, run.gates_failed) == (upload_id, 1, 1)
            assert [s.state for s in run.steps] == [apb.AUTOMATION_RUN_STATE_SUCCEEDED] * 3
            # the consumer's position after the upload's events: the commit went through (after a
            # redelivery, if the restart cost it the first one)
            note = pb.IngestedEvent(project=project, dataset="d", upload_id=upload_id, chunk_index=2, total_chunks=3,
                                    inference_set="bad-1")  # fmt: skip
            topics = Topics(r.server.settings.topic_prefix)
            sent = r.server.stores.events.publish(topics.ingested, key=f"{project}/d".encode(),
                                                  value=note.SerializeToString()).result(timeout=120)  # fmt: skip
            wait_for(lambda: handled(r, sent), timeout=120, what="the consumer to be past the upload's events")
            (after,) = runs(c, project)
            assert (after.run_id, after.state, after.attempts) == (run.run_id, apb.AUTOMATION_RUN_STATE_SUCCEEDED, 1)
            assert [(d.attempt, d.status_code) for d in after.deliveries] == [(1, 200)]
            assert [(x["status"], x["signed"]) for x in receiver.received] == [(200, True)]
    finally:
        r.server.stop(grace=1)
