"""A standing campaign's full sample goes to labeling by an automation (chDB, Milvus Lite, the embedded bus):

- a STANDING_CAMPAIGN_FULL rule sends the frames the campaign kept, in the order kept, each with why, as one
  labeling request (within its max_frames and daily budget; frames sent before passed over), records the run
  and notifies its webhook; the full event delivered again runs nothing twice; a rule for another campaign, a
  paused rule and a rule made after the campaign filled do nothing;
- the sampler dies after publishing the full event, before saving the campaign FULL: the campaign still ends
  FULL, its event published again (at least once), and the rule runs once;
- rules of this trigger are validated, the field named.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.stores.events import Event
from shoal.common.topics import STANDING_CAMPAIGN_FULL_EVENT, Topics, event_type, event_type_headers
from shoal.common.uploads import event_key
from shoal.common.v1 import common_pb2 as cpb
from shoal.sampler import standing
from shoal.sampler.v1 import sampler_pb2 as spb
from shoal.sampler.workers import StandingConsumer
from tests.conftest import server_settings
from tests.server.conftest import Running, start_server, wait_for
from tests.server.test_automations import SECRET, Receiver, finished_run, handled, labeling_items, runs
from tests.server.test_sampler_standing import (
    _Faults,
    _sampler_consumer,
    arrival_order,
    create_stream_project,
    get,
    plain_rule,
    start,
    stream_data,
    upload_batch,
    wait_state,
)

BUDGET = 25
THRESHOLD = 0.8
REASON = f"kept by standing campaign small (cosine similarity >= {THRESHOLD:g} to its seeds)"


def campaign_rule(name: str, campaign: str = "small", *, paused: bool = False, **send: Any) -> apb.Automation:
    """When ``campaign`` (any campaign: "") is full, send its kept frames to labeling."""
    return apb.Automation(
        name=name,
        paused=paused,
        trigger=apb.AutomationTrigger(kind=apb.AUTOMATION_TRIGGER_KIND_STANDING_CAMPAIGN_FULL, campaign=campaign),
        actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_SEND_TO_LABELING,
                                      **{"max_frames": 50, "daily_budget": 100, **send})],
    )  # fmt: skip


def fill(c: Any, project: str, d: dict[str, Any], name: str = "small") -> Any:
    """Streams the pool's uploads, one after another, until campaign ``name`` is full; returns it."""
    for b in d["batches"]:
        upload_batch(c, project, b)
        if get(c, project, name).state == spb.STANDING_CAMPAIGN_STATE_FULL:
            break
    return wait_state(c, project, name, spb.STANDING_CAMPAIGN_STATE_FULL)


def read_topic(r: Running, topic: str, keep: Any) -> list[Any]:
    """What ``keep`` makes of each event of ``topic``, from its start up to its end now (None: left out)."""
    bus = r.server.stores.events
    ends = {tp: end for tp, end in bus.end_offsets(topic).items() if end > 0}
    consumer = bus.consumer(f"test-read-{uuid.uuid4().hex}", [topic])
    at: dict[Any, int] = {}
    out: list[Any] = []

    def caught_up() -> bool:
        for e in consumer.poll(0.5):
            at[e.tp] = e.offset + 1
            found = keep(e)
            if found is not None:
                out.append(found)
        return all(at.get(tp, 0) >= end for tp, end in ends.items())

    try:
        wait_for(caught_up, timeout=60, what=f"the events of {topic} to be read", progress=lambda: sorted(at.items()))
    finally:
        consumer.close()
    return out


def labeling_requests_of(r: Running, project: str) -> list[cpb.LabelingRequestEvent]:
    def keep(e: Event) -> cpb.LabelingRequestEvent | None:
        request = cpb.LabelingRequestEvent.FromString(e.value)
        return request if request.project == project else None

    return read_topic(r, Topics(r.server.settings.topic_prefix).labeling_requests, keep)


def full_events_of(r: Running, project: str) -> list[tuple[Event, cpb.StandingCampaignFullEvent]]:
    def keep(e: Event) -> tuple[Event, cpb.StandingCampaignFullEvent] | None:
        if event_type(e) != STANDING_CAMPAIGN_FULL_EVENT:
            return None
        full = cpb.StandingCampaignFullEvent.FromString(e.value)
        return (e, full) if full.project == project else None

    return read_topic(r, Topics(r.server.settings.topic_prefix).ingested, keep)


def test_a_full_campaign_goes_to_labeling_once_with_why_each_frame_was_kept(shared: Running, project: str) -> None:
    p = project
    d = stream_data(uploads=4, seed=11)
    with shared.client(shared.admin_key) as c, Receiver() as receiver:
        create_stream_project(c, p, d)
        made = campaign_rule("send-small", max_frames=20)
        made.webhook.CopyFrom(apb.AutomationWebhook(url=receiver.url, secret=SECRET, always=True))
        for rule in (made, campaign_rule("z-any", "", max_frames=10, daily_budget=3),
                     campaign_rule("other", "other"), campaign_rule("paused", paused=True)):  # fmt: skip
            c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=p, automation=rule))
        start(c, p, "small", similarity_threshold=THRESHOLD, budget=BUDGET)
        full = fill(c, p, d)
        kept = list(c.standing_campaign(p, "small").frame_ids)
        assert full.kept == len(kept) == BUDGET

        run = finished_run(c, p, "send-small", "")
        assert run.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, run.message
        t = run.trigger
        assert t.kind == apb.AUTOMATION_TRIGGER_KIND_STANDING_CAMPAIGN_FULL
        assert (t.campaign, t.dataset, t.frames, t.key) == ("small", "pool", BUDGET, "standing-campaign-full/small")
        assert t.similarity_threshold == pytest.approx(THRESHOLD)
        send, hook = run.steps
        got = send.labeling
        assert send.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED and got.request_id in run.message
        assert (got.segment, got.dataset, got.examined, got.job_id) == ("small", "pool", BUDGET, "")
        # the first 20 in the order kept, each with why
        assert [(f.frame_id, f.reason) for f in got.frames] == [(f, REASON) for f in kept[:20]]
        assert (list(got.skipped_frame_ids), got.sent_before, got.note) == ([], 0, "")
        # one request on the labeling-requests topic, which the labeling bridge takes
        (request,) = [r for r in labeling_requests_of(shared, p) if r.request_id == got.request_id]
        assert [i.frame_id for i in request.items] == kept[:20] and list(request.reasons) == [REASON] * 20
        assert (request.dataset, request.source, request.requested_by) == ("pool", "segment:small",
                                                                           "automation:send-small")  # fmt: skip
        items = labeling_items(c, p, got.request_id)
        assert [(i.ref.frame_id, i.reason) for i in items] == sorted((f, REASON) for f in kept[:20])
        # its webhook heard of it
        assert hook.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED
        (delivery,) = receiver.received
        body = delivery["body"]
        assert (delivery["event"], delivery["signed"]) == ("run.succeeded", True)
        assert (body["trigger"]["kind"], body["trigger"]["campaign"], body["trigger"]["frames"]) == (
            "STANDING_CAMPAIGN_FULL", "small", BUDGET)  # fmt: skip
        assert (body["labeling"]["segment"], body["labeling"]["frames"]) == ("small", 20)

        # a rule for any campaign: the 20 sent are passed over; its budget of 3 a day leaves 2 unsent
        rest = finished_run(c, p, "z-any", "")
        assert rest.state == apb.AUTOMATION_RUN_STATE_SUCCEEDED, rest.message
        more = rest.steps[0].labeling
        assert [f.frame_id for f in more.frames] == kept[20:23] and list(more.skipped_frame_ids) == kept[23:25]
        assert more.sent_before == 20 and "20 kept frames were sent for labeling before" in more.note
        assert "2 frames over the daily budget of 3" in more.note
        assert sorted(r.request_id for r in labeling_requests_of(shared, p)) == sorted([got.request_id,
                                                                                         more.request_id])  # fmt: skip
        assert not runs(c, p, automation="other") and not runs(c, p, automation="paused")

        # the full event delivered again (its time when the campaign filled), with a rule made since then:
        # nothing runs twice, nothing new is sent, the new rule does not fire
        c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=p, automation=campaign_rule("late")))
        again = standing.full_event(standing.find(shared.server.stores.metrics, p, "small"), BUDGET)
        again.full_time.CopyFrom(full.update_time)
        topics = Topics(shared.server.settings.topic_prefix)
        sent = shared.server.stores.events.publish(topics.ingested, key=event_key(p, "pool"),
                                                   value=again.SerializeToString(),
                                                   headers=event_type_headers(STANDING_CAMPAIGN_FULL_EVENT)
                                                   ).result(timeout=30)  # fmt: skip
        wait_for(lambda: handled(shared, sent), what="the full event delivered again to be handled")
        assert sorted((r.automation, r.run_id, r.attempts) for r in runs(c, p)) == [
            ("send-small", run.run_id, 1), ("z-any", rest.run_id, 1)]  # fmt: skip
        assert len(labeling_requests_of(shared, p)) == 2 and len(receiver.received) == 1
        assert not runs(c, p, automation="late")
        # the sampler passed over the event: the campaign is as it was
        assert get(c, p, "small").judged == full.judged and get(c, p, "small").state == full.state


class _FullFaults(_Faults):
    """Also fails the ``fail_full``-th saves of a campaign as FULL: the process died after the full event was
    published, before the campaign was saved FULL."""

    def __init__(self, bus: Any, *, fail_full: set[int]) -> None:
        super().__init__(bus, fail_commits=set(), fail_insert=set())
        self.fail_full = fail_full
        self.full_saves = 0

    def wrap_metrics(self, metrics: Any) -> Any:
        inner = super().wrap_metrics(metrics)
        faults = self

        class Metrics:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def insert(self, table: str, rows: Any, *args: Any, **kwargs: Any) -> Any:
                if table == "standing_campaigns" and any(row[11] == standing.FULL for row in rows):
                    with faults.lock:
                        faults.full_saves += 1
                        fail = faults.full_saves in faults.fail_full
                    if fail:
                        faults.injected += 1
                        raise RuntimeError("injected: the process died after publishing, before saving FULL")
                return metrics.insert(table, rows, *args, **kwargs)

        return Metrics()


@pytest.fixture
def own_server(tmp_path: Any, chdb_path: Any) -> Iterator[Running]:
    """A server of this test's own: its standing consumer is replaced during the test."""
    r = start_server(server_settings(tmp_path / "data", chdb_path))
    yield r
    r.server.stop(grace=1)


def test_a_crash_between_the_full_event_and_the_full_state_still_ends_full_and_runs_once(
    own_server: Running,
) -> None:
    r, p = own_server, "crashed"
    stores = r.server.stores
    original = _sampler_consumer(r)
    original.stop(10)
    faults = _FullFaults(stores.events, fail_full={1})
    published: list[cpb.StandingCampaignFullEvent] = []
    publish = standing.publisher(stores.events, original.topics)

    def counted(e: cpb.StandingCampaignFullEvent) -> None:
        publish(e)
        published.append(e)

    crashing = StandingConsumer(stores.events, original.topics,
                                standing.Standing(faults.wrap_metrics(stores.metrics), stores.vectors, counted),
                                group_id=original.group_id)  # fmt: skip
    d = stream_data(uploads=1, seed=12)
    # frames the campaign keeps every one of (near the seeds, far apart), in one chunk: the last fills it, so
    # the batch that comes again after the crash has no frame left to judge
    order, x, _ = arrival_order(d["batches"])
    winners = plain_rule(x, d["seeds"], threshold=THRESHOLD, min_distance=standing.DEFAULT_MIN_DISTANCE,
                         budget=BUDGET, passes=np.ones(len(order), dtype=bool))  # fmt: skip
    assert len(winners) == BUDGET
    chosen = {"ids": [order[i] for i in winners], "x": x[winners], "weather": ["sun"] * BUDGET}
    with r.client(r.admin_key) as c:
        create_stream_project(c, p, d)
        c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=p, automation=campaign_rule("send", "")))
        start(c, p, "small", similarity_threshold=THRESHOLD, budget=BUDGET)
        crashing.start()
        try:
            upload_batch(c, p, chosen, chunk=BUDGET)
            full = wait_state(c, p, "small", spb.STANDING_CAMPAIGN_STATE_FULL)
        finally:
            crashing.stop(10)
        assert faults.injected == 1 and full.kept == full.judged == BUDGET
        kept = list(c.standing_campaign(p, "small").frame_ids)
        assert sorted(kept) == sorted(chosen["ids"])
        # published before the crash, and again by the batch that came again, whose frames were all judged: the
        # campaign found full by its kept count
        assert [(e.campaign, e.kept, e.budget) for e in published] == [("small", BUDGET, BUDGET)] * 2
        events = full_events_of(r, p)
        assert [(f.campaign, f.segment, f.pool_dataset, f.kept) for _, f in events] == [
            ("small", "small", "pool", BUDGET)] * 2  # fmt: skip
        # keyed as the pool's ingested events: on their partition
        assert {e.key for e, _ in events} == {event_key(p, "pool")}
        run = finished_run(c, p, "send", "")
        wait_for(lambda: all(handled(r, e) for e, _ in events), what="both full events to be handled")
        (only,) = runs(c, p)
        assert (only.run_id, only.state, only.attempts) == (run.run_id, apb.AUTOMATION_RUN_STATE_SUCCEEDED, 1)
        assert [f.frame_id for f in run.steps[0].labeling.frames] == kept
        (request,) = labeling_requests_of(r, p)
        assert [i.frame_id for i in request.items] == kept
        # one verdict per judged frame, the campaign judged nothing after its budget was spent
        rows, frames = stores.metrics.query(
            "SELECT count(), uniqExact(frame_id) FROM standing_decisions WHERE project = {p:String}"
            " AND campaign = 'small'", {"p": p}).rows[0]  # fmt: skip
        assert rows == frames == full.judged


def test_campaign_rules_are_validated_naming_the_field(shared: Running, project: str) -> None:
    p = project
    d = stream_data(uploads=0)
    bad = grpc.StatusCode.INVALID_ARGUMENT
    with shared.client(shared.admin_key) as c:
        create_stream_project(c, p, d)

        def refused(rule: apb.Automation, field: str, needle: str) -> None:
            with pytest.raises(grpc.RpcError) as info:
                c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=p, automation=rule))
            assert info.value.code() == bad and info.value.details().startswith(field), info.value.details()
            assert needle in info.value.details(), info.value.details()

        refused(campaign_rule("r", "Bad Name"), "automation.trigger.campaign", "campaign's name")
        refused(campaign_rule("r", min_issues=3), "automation.actions[0].min_issues", "label issues only")
        refused(campaign_rule("r", min_issue_share=0.5), "automation.actions[0].min_issue_share", "label issues")
        refused(campaign_rule("r", max_frames=0), "automation.actions[0].max_frames", "must lie in")
        refused(campaign_rule("r", daily_budget=0), "automation.actions[0].daily_budget", "at least 1")
        metrics = campaign_rule("r")
        metrics.actions.insert(0, apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_METRICS))
        refused(metrics, "automation.actions[0].inference_set", "STANDING_CAMPAIGN_FULL trigger names no inference")
        other = apb.Automation(name="r", trigger=apb.AutomationTrigger(
            kind=apb.AUTOMATION_TRIGGER_KIND_LABELS_CHANGED, min_labeled_frames=5, campaign="small"),
            actions=[apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_NEIGHBORS, embedding_space="clip")])  # fmt: skip
        refused(other, "automation.trigger.campaign", "STANDING_CAMPAIGN_FULL triggers only")
        # the campaign need not exist yet; NEIGHBORS runs on its pool
        ok = campaign_rule("ok", "later")
        ok.actions.insert(0, apb.AutomationAction(kind=apb.AUTOMATION_ACTION_KIND_NEIGHBORS, embedding_space="clip"))
        made = c.analysis.CreateAutomation(apb.CreateAutomationRequest(project=p, automation=ok)).automation
        assert (made.trigger.kind, made.trigger.campaign) == (apb.AUTOMATION_TRIGGER_KIND_STANDING_CAMPAIGN_FULL,
                                                              "later")  # fmt: skip
