"""The automations' engine: triggers decided from the ingested topic, rules run once per trigger.

:class:`AutomationConsumer` is a consumer-group member on the ingested topic. For each batch it records
the chunks announced (``automation_chunks``), decides the triggers the batch completes, runs the active
rules they set off, and commits the offsets only after all of that: at least once, as the ingest
consumer. The topic also carries the sampler's ``StandingCampaignFullEvent`` (header ``shoal-event-type``:
``standing-campaign-full``), which set off STANDING_CAMPAIGN_FULL rules. A trigger has an identity (an upload
and inference set; the event at which a dataset's labels changed by enough frames; a standing campaign); a
run's id derives from the rule's and the trigger's, so an event delivered
again finds its run and does nothing.

A run records each action as it finishes (``automation_steps``) before the next begins; an action with an
effect outside its own tables (sending frames for labeling) records what it is about to do first
(:attr:`StepContext.note`), so that the attempt after one cut short does exactly that again, not something
else. An attempt cut short (a store or the broker unreachable, the process stopped or killed) leaves the
event uncommitted: when it comes again, the next attempt skips the actions already done and continues.
Each attempt is claimed (only one consumer wins it) and marked alive while it runs; a run left RUNNING by
a consumer that stopped marking it for ``stale_seconds`` is taken up by the next. A refusal (an inference
set that does not exist, a webhook receiver answering 4xx or not at all) fails the run for good: it is
recorded with the reason and not tried again.

:class:`Engine` is transport-free apart from decoding the ingested events; the actions (what METRICS,
GATES, ... do) are given to it (:mod:`shoal.analysis.rpc.automations`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import DecodeError

from shoal.analysis import automations as au
from shoal.analysis.automation_webhooks import Attempt, NotDelivered, WebhookSender
from shoal.common import telemetry
from shoal.common.errors import ShoalError, Unavailable
from shoal.common.stores.events import Event, EventBus, TopicPartition
from shoal.common.timeutil import now_ms
from shoal.common.topics import INGESTED_EVENT, STANDING_CAMPAIGN_FULL_EVENT, Topics, event_type
from shoal.common.v1 import common_pb2
from shoal.common.workers import Backoff, ThreadWorker, close_quietly
from shoal.ingest.v1 import ingest_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepContext:
    """What an action knows of its step and run."""

    run: au.Run
    #: when the step first began: an action that starts a job tells its own submission from an earlier one by it
    started: datetime
    #: what an earlier attempt of this step noted before it was cut short ({} if none)
    earlier: Mapping[str, Any]
    #: the run's actions done before this one, in order
    before: Sequence[au.Step]
    #: set when the engine stops: an action that waits gives up (raising Unavailable)
    stopping: threading.Event
    #: records what the step is about to do, kept if the attempt is cut short (see ``earlier``)
    note: Callable[[dict[str, Any]], None]


#: what an action does: the rule, its trigger, the action and its step -> what it found, started or sent, as JSON
ActionFn = Callable[[au.Rule, au.TriggerEvent, au.Action, StepContext], dict[str, Any]]

GATES_FAILED, RUN_FAILED, RUN_SUCCEEDED = "gates.failed", "run.failed", "run.succeeded"


class RunBusy(Unavailable):
    """Another consumer runs this attempt: the event waits (uncommitted) and comes again."""


@dataclass(frozen=True)
class Announced:
    """An event of the ingested topic as read, with where it was read: an IngestedEvent, or (``kind``
    STANDING_CAMPAIGN_FULL_EVENT) a StandingCampaignFullEvent."""

    note: Any  # ingest_pb2.IngestedEvent or common_pb2.StandingCampaignFullEvent
    topic: str
    partition: int
    offset: int
    kind: str = INGESTED_EVENT

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def dataset(self) -> str:
        """The dataset the event is of (a standing campaign's pool)."""
        return str(self.note.pool_dataset if self.kind == STANDING_CAMPAIGN_FULL_EVENT else self.note.dataset)


class Engine:
    """Decides triggers and runs rules (see the module's docstring)."""

    def __init__(
        self,
        store: au.AutomationStore,
        actions: Mapping[str, ActionFn],
        *,
        webhooks: WebhookSender | None = None,
        heartbeat_seconds: float = 5.0,
        stale_seconds: float = 30.0,
        stopping: threading.Event | None = None,
        allow_private_webhooks: bool = False,
    ) -> None:
        self.store = store
        self.actions = dict(actions)
        self.stopping = stopping or threading.Event()
        self.webhooks = webhooks or WebhookSender(stopping=self.stopping, allow_private=allow_private_webhooks)
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        #: names this engine in claims and runs: the host, the process and the engine
        self.runner_id = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"

    # -- triggers ----------------------------------------------------------------------------------
    def handle(self, events: Sequence[Announced]) -> None:
        """Records a batch's chunks, then runs what they set off. Raises Unavailable (the batch is not
        committed, and comes again) when a store is unreachable or a run is another consumer's."""
        self.store.record_chunks([_chunk(a) for a in events if a.kind == INGESTED_EVENT])
        rules = self.store.active({a.note.project for a in events})
        uploads: dict[tuple[str, str], au.UploadProgress] = {}
        for a in events:
            for rule in rules.get(a.note.project, []):
                if rule.trigger.dataset and rule.trigger.dataset != a.dataset:
                    continue
                if (rule.trigger.kind == au.STANDING_CAMPAIGN_FULL) != (a.kind == STANDING_CAMPAIGN_FULL_EVENT):
                    continue
                try:
                    for trigger in self._triggers(rule, a, uploads):
                        self.fire(rule, trigger)
                except Unavailable:
                    raise
                except Exception:  # a bug must not hold the partition: the others' rules go on
                    log.exception("automation %s of project %s: %s not handled", rule.name, rule.project, a.source)

    def _triggers(
        self, rule: au.Rule, a: Announced, uploads: dict[tuple[str, str], au.UploadProgress]
    ) -> list[au.TriggerEvent]:
        note = a.note
        if rule.trigger.kind == au.STANDING_CAMPAIGN_FULL:
            if rule.trigger.campaign and rule.trigger.campaign != note.campaign:
                return []
            assert rule.create_time is not None
            if note.HasField("full_time") and note.full_time.ToDatetime(tzinfo=UTC) < rule.create_time:
                return []  # full before the rule was made (the consumer is catching up)
            return [
                au.TriggerEvent(
                    kind=au.STANDING_CAMPAIGN_FULL,
                    key=f"standing-campaign-full/{note.campaign}",
                    dataset=note.pool_dataset,
                    frames=int(note.kept),
                    source=a.source,
                    partition=a.partition,
                    offset=a.offset,
                    campaign=note.campaign,
                    similarity_threshold=float(note.similarity_threshold),
                )
            ]
        if rule.trigger.kind == au.INFERENCE_SET_COMPLETE:
            progress = uploads.get((note.project, note.upload_id))
            if progress is None:
                progress = uploads[(note.project, note.upload_id)] = self.store.upload_progress(
                    note.project, note.upload_id
                )
            if not progress.complete:
                return []
            assert rule.create_time is not None
            if progress.last_written is not None and progress.last_written < rule.create_time:
                return []  # complete before the rule was made (the consumer is catching up)
            prefix = rule.trigger.inference_set_prefix
            return [
                au.TriggerEvent(
                    kind=au.INFERENCE_SET_COMPLETE,
                    key=f"inference-set-complete/{progress.dataset}/{note.upload_id}/{name}",
                    dataset=progress.dataset,
                    upload_id=note.upload_id,
                    inference_set=name,
                    frames=progress.frames,
                    source=a.source,
                    partition=a.partition,
                    offset=a.offset,
                )
                for name in progress.inference_sets
                if name.startswith(prefix)
            ]
        if rule.trigger.kind == au.LABELS_CHANGED:
            if not note.labeled_frame_ids:
                return []
            trigger = au.TriggerEvent(
                kind=au.LABELS_CHANGED,
                key=f"labels-changed/{note.dataset}/{a.source}",
                dataset=note.dataset,
                source=a.source,
                partition=a.partition,
                offset=a.offset,
            )
            # the event that crossed the threshold before: its run decides (retried, or nothing)
            if self.store.find_run(rule.project, au.run_id_for(rule.automation_id, trigger.key)) is not None:
                return [trigger]
            after = self.store.last_offset(rule.project, rule.automation_id, note.dataset, a.topic, a.partition)
            assert rule.create_time is not None
            labeled = self.store.labeled_between(
                rule.project, note.dataset, a.topic, a.partition, after, a.offset, rule.create_time
            )
            if labeled < rule.trigger.min_labeled_frames:
                return []
            changed = self.store.labeled_frames_between(
                rule.project, note.dataset, a.topic, a.partition, after, a.offset, rule.create_time
            )
            return [replace(trigger, frames=labeled, frame_ids=changed)]
        return []

    # -- runs --------------------------------------------------------------------------------------
    def fire(self, rule: au.Rule, trigger: au.TriggerEvent) -> au.Run:
        """Runs ``rule`` for ``trigger`` unless it ran (or runs) already; returns the run as it stands."""
        run_id = au.run_id_for(rule.automation_id, trigger.key)
        run = self.store.find_run(rule.project, run_id)
        if run is not None:
            if run.state == au.SUCCEEDED or (run.state == au.FAILED and not run.retry):
                log.debug("automation %s already ran for %s (%s)", rule.name, trigger.key, run.state)
                return run
            if run.state == au.RUNNING and run.runner != self.runner_id and not self._stale(run):
                raise RunBusy(f"automation run {run_id} is running on {run.runner}; its event comes again")
        attempt = run.attempts + 1 if run is not None else 1
        if not self.store.claim(rule.project, run_id, attempt, self.runner_id):
            raise RunBusy(f"attempt {attempt} of automation run {run_id} is another consumer's; its event comes again")
        if run is None:
            run = au.Run(rule.project, run_id, rule.automation_id, rule.name, trigger)
            log.info("automation %s of project %s fires for %s (run %s)", rule.name, rule.project, trigger.key, run_id)
        else:
            log.info("automation run %s: attempt %d (the last ended %s: %s)", run_id, attempt, run.state, run.message)
        run = self.store.write_run(
            replace(run, state=au.RUNNING, message="", retry=False, attempts=attempt, runner=self.runner_id,
                    finish_time=None)
        )  # fmt: skip
        with self._alive(run):
            return self._execute(rule, run)

    def _stale(self, run: au.Run) -> bool:
        """Whether the consumer running ``run`` stopped marking it alive ``stale_seconds`` ago."""
        last = self.store.last_heartbeat(run.project, run.run_id)
        seen = max(t for t in (last, run.update_time) if t is not None)
        return now_ms() - seen > timedelta(seconds=self.stale_seconds)

    @contextlib.contextmanager
    def _alive(self, run: au.Run) -> Iterator[None]:
        """Marks ``run`` alive every ``heartbeat_seconds`` while the block runs."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat_seconds):
                try:
                    self.store.heartbeat(run.project, run.run_id, self.runner_id)
                except Exception:  # the next beat tries again
                    log.warning("automation run %s: heartbeat failed", run.run_id, exc_info=True)

        marker = threading.Thread(target=beat, name="automation-heartbeat", daemon=True)
        marker.start()
        try:
            yield
        finally:
            done.set()
            marker.join(self.heartbeat_seconds + 5)

    def _execute(self, rule: au.Rule, run: au.Run) -> au.Run:
        done = {s.step: s for s in self.store.steps(run.project, [run.run_id]).get(run.run_id, [])}
        results: list[au.Step] = []
        failure = ""
        try:
            for i, action in enumerate(rule.actions):
                key = au.step_key(i, action)
                step = done.get(key)
                if step is not None and step.state == au.SUCCEEDED:
                    results.append(step)
                    continue
                started = step.start_time if step is not None and step.start_time else now_ms()
                earlier = dict(step.result) if step is not None else {}
                step = self.store.write_step(au.Step(run.project, run.run_id, key, action.kind, au.RUNNING,
                                                     result=earlier, start_time=started))  # fmt: skip
                current = [step]

                def note(intent: dict[str, Any], current: list[au.Step] = current) -> None:
                    current[0] = self.store.write_step(replace(current[0], result=intent))

                context = StepContext(run, started, earlier, tuple(results), self.stopping, note)
                try:
                    found = self.actions[action.kind](rule, run.trigger, action, context)
                except Unavailable:
                    raise
                except ShoalError as exc:
                    failure = f"{action.kind}: {exc.describe()}"
                except Exception as exc:
                    log.exception("automation run %s: action %s failed", run.run_id, action.kind)
                    failure = f"{action.kind}: internal error ({type(exc).__name__}); see the analysis service's log"
                step = current[0]
                if failure:
                    self.store.write_step(replace(step, state=au.FAILED, message=failure.split(": ", 1)[1]))
                    break
                found = dict(found)
                said = str(found.pop("message", ""))  # what the action says of itself, as the step's message
                results.append(self.store.write_step(replace(step, state=au.SUCCEEDED, result=found, message=said)))
            gates = [g for s in results for g in s.result.get("gates", [])]
            failed_gates = sum(1 for g in gates if not g.get("passed"))
            run = replace(run, gates_evaluated=len(gates), gates_failed=failed_gates)
            event = RUN_FAILED if failure else GATES_FAILED if failed_gates else RUN_SUCCEEDED
            webhook = rule.webhook
            if webhook is not None and (webhook.always or event != RUN_SUCCEEDED):
                note = self._notify(rule, run, webhook, event, results, failure, done.get(au.WEBHOOK_STEP))
                failure = "; ".join(f for f in (failure, note) if f)
        except Unavailable as exc:
            # cut short: recorded as failed, and tried again when the event comes again
            with contextlib.suppress(Exception):
                self.store.write_run(replace(run, state=au.FAILED, retry=True,
                                             message=f"{exc}; tried again when its event comes again"))  # fmt: skip
            raise
        state = au.FAILED if failure else au.SUCCEEDED
        message = failure or _summary(run, results)
        log.info("automation run %s of %s ended %s: %s", run.run_id, rule.name, state, message)
        return self.store.write_run(replace(run, state=state, message=message, retry=False))

    def _notify(
        self,
        rule: au.Rule,
        run: au.Run,
        webhook: au.Webhook,
        event: str,
        results: list[au.Step],
        failure: str,
        earlier: au.Step | None,
    ) -> str:
        """Delivers the run's notification unless an earlier attempt did; returns why it failed ("" if not)."""
        if earlier is not None and earlier.state == au.SUCCEEDED:
            return ""
        delivery_id = f"{run.run_id}/{event}"
        body = json.dumps(_payload(rule, run, event, delivery_id, results, failure), sort_keys=True).encode()
        previous = self.store.deliveries(run.project, [run.run_id]).get(run.run_id, [])
        step = self.store.write_step(au.Step(run.project, run.run_id, au.WEBHOOK_STEP, "WEBHOOK", au.RUNNING,
                                             result={"event": event, "delivery_id": delivery_id},
                                             start_time=earlier.start_time if earlier else None))  # fmt: skip

        def record(a: Attempt) -> None:
            self.store.record_delivery(run.project, run.run_id, au.Delivery(delivery_id, a.attempt, event,
                                       a.status_code, a.error, a.at, a.duration_seconds))  # fmt: skip

        if webhook.unreadable:  # never delivered unsigned: failed, with the reason, until the secret is set again
            self.store.write_step(replace(step, state=au.FAILED, message=webhook.unreadable))
            return f"webhook not delivered: {webhook.unreadable}"

        try:
            taken = self.webhooks.deliver(webhook.url, webhook.secret, event=event, delivery_id=delivery_id, body=body,
                                          record=record, first_attempt=len(previous) + 1)  # fmt: skip
        except NotDelivered as exc:
            self.store.write_step(replace(step, state=au.FAILED, message=str(exc)))
            return f"webhook not delivered: {exc}"
        self.store.write_step(replace(step, state=au.SUCCEEDED, message=f"delivered on attempt {taken.attempt}"))
        return ""


def _summary(run: au.Run, results: list[au.Step]) -> str:
    parts = []
    for s in results:
        if "metrics" in s.result:
            parts.append(f"{len(s.result['metrics'])} metrics recorded")
        if "gates" in s.result:
            parts.append(f"{run.gates_evaluated - run.gates_failed} of {run.gates_evaluated} gates passed")
        if "job_id" in s.result:
            parts.append(f"{s.action.lower()} job {s.result['job_id']}")
        if "labeling" in s.result:
            sent = s.result["labeling"]
            n = len(sent.get("frames", []))
            parts.append(f"{n} frames sent for labeling (request {sent['request_id']})" if n
                         else "nothing sent for labeling")  # fmt: skip
    return "; ".join(parts) or "done"


def _payload(
    rule: au.Rule, run: au.Run, event: str, delivery_id: str, results: list[au.Step], failure: str
) -> dict[str, Any]:
    """The JSON body of a notification (documented in docs/guides/automations.md)."""
    t = run.trigger
    metrics: dict[str, float] = {}
    gates: list[dict[str, Any]] = []
    jobs = []
    labeling = None
    for s in results:
        metrics.update(s.result.get("metrics", {}))
        gates.extend(s.result.get("gates", []))
        if "job_id" in s.result:
            jobs.append({"action": s.action, "job_id": s.result["job_id"]})
        if "labeling" in s.result:
            sent = s.result["labeling"]
            labeling = {"request_id": sent.get("request_id", ""), "job_id": sent.get("job_id", ""),
                        "segment": sent.get("segment", ""), "frames": len(sent.get("frames", [])),
                        "skipped": len(sent.get("skipped_frame_ids", [])), "note": sent.get("note", "")}  # fmt: skip
    return {
        "event": event,
        "delivery_id": delivery_id,
        "project": rule.project,
        "automation": rule.name,
        "run_id": run.run_id,
        "attempt": run.attempts,
        "trigger": {
            "kind": t.kind,
            "dataset": t.dataset,
            "upload_id": t.upload_id,
            "inference_set": t.inference_set,
            "frames": t.frames,
            "key": t.key,
            "campaign": t.campaign,
        },
        "state": "FAILED" if failure else "SUCCEEDED",
        "message": failure,
        "metrics": metrics,
        "gates": {"evaluated": len(gates), "failed": sum(1 for g in gates if not g.get("passed")), "results": gates},
        "jobs": jobs,
        "labeling": labeling,
    }


def _chunk(a: Announced) -> au.Chunk:
    n = a.note
    written = n.written_time.ToDatetime(tzinfo=UTC) if n.HasField("written_time") else None
    return au.Chunk(n.project, n.dataset, n.upload_id, int(n.chunk_index), int(n.total_chunks), n.inference_set,
                    len(n.frame_ids), len(n.labeled_frame_ids), a.topic, a.partition, a.offset, written,
                    tuple(n.labeled_frame_ids))  # fmt: skip


class AutomationConsumer(ThreadWorker):
    """A consumer-group member on the ingested topic that runs the automations (see the module's
    docstring). A broker or store outage is retried with backoff; it does not make the analysis service
    unready (its RPCs do not need the broker): the log and ``shoal_consumer_lag`` show it."""

    name = "automation-consumer"

    def __init__(self, bus: EventBus, topics: Topics, engine: Engine, *, group_id: str) -> None:
        super().__init__()
        self.bus = bus
        self.topics = topics
        self.engine = engine
        self.group_id = group_id
        #: events handled and committed
        self.processed_events = 0
        #: per partition, the offset after the last event handled and committed
        self.positions: dict[TopicPartition, int] = {}
        #: why the last attempt failed, until one succeeds
        self.last_error: str | None = None
        self._lag = telemetry.LagTracker(group_id)

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _interrupt(self) -> None:
        self.engine.stopping.set()

    def _run(self) -> None:
        consumer = None
        backoff = Backoff()
        try:
            while not self._stop.is_set():
                try:
                    if consumer is None:
                        consumer = self.bus.consumer(self.group_id, [self.topics.ingested])
                    events = consumer.poll(0.5, max_records=100)
                    if events:
                        self.engine.handle([a for e in events if (a := self._decode(e)) is not None])
                        consumer.commit()
                        self.processed_events += len(events)
                        for e in events:
                            self.positions[e.tp] = max(self.positions.get(e.tp, 0), e.offset + 1)
                        telemetry.EVENTS_CONSUMED.labels(self.group_id, self.topics.ingested).inc(len(events))
                    if self._lag.due():
                        self._report_lag(consumer)
                    self.last_error = None
                    backoff.reset()
                except Exception as exc:  # noqa: BLE001 - the loop must outlive any failure; _attempt_failed logs it
                    self.last_error = self._attempt_failed(exc, backoff, consumer)
                    consumer = None
        finally:
            self._lag.clear()
            if consumer is not None:
                close_quietly(consumer)

    def _decode(self, event: Event) -> Announced | None:
        kind = event_type(event)
        if kind == STANDING_CAMPAIGN_FULL_EVENT:
            try:
                full = common_pb2.StandingCampaignFullEvent.FromString(event.value)
            except DecodeError as exc:
                log.warning("%s: %s/%d/%d is not a StandingCampaignFullEvent (%s); skipped", self.name, event.topic,
                            event.partition, event.offset, exc)  # fmt: skip
                return None
            if not full.project or not full.campaign:
                return None
            return Announced(full, event.topic, event.partition, event.offset, kind)
        if kind != INGESTED_EVENT:
            log.debug("%s: %s/%d/%d is a %r event; passed over", self.name, event.topic, event.partition,
                      event.offset, kind)  # fmt: skip
            return None
        try:
            note = ingest_pb2.IngestedEvent.FromString(event.value)
        except DecodeError as exc:
            log.warning("%s: %s/%d/%d is not an IngestedEvent (%s); skipped", self.name, event.topic,
                        event.partition, event.offset, exc)  # fmt: skip
            return None
        if not note.project or not note.upload_id:
            return None
        return Announced(note, event.topic, event.partition, event.offset)

    def _report_lag(self, consumer: Any) -> None:
        try:
            held = consumer.assignment()
            ends = consumer.end_offsets(held) if held else {}
            self._lag.update(ends, {tp: consumer.committed(tp) for tp in held})
        except Exception:  # metrics must never stop the consumer
            log.debug("%s: could not read offsets for the lag metric", self.name, exc_info=True)
