"""Automations: the RPCs of a project's rules and their runs, the actions a run takes (each one an
analysis RPC's handler, called in process), and the consumer that runs them
(:mod:`shoal.analysis.automation_engine`).

The analysis service runs automations because it runs what they set off: metrics, gates and jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from shoal.analysis import automations as au
from shoal.analysis.automation_engine import ActionFn, AutomationConsumer, Engine
from shoal.analysis.rpc import (
    classification,
    cuboids,
    detection,
    gates,
    label_issues,
    multilabel,
    neighbors,
    segmentation,
    sound_events,
)
from shoal.analysis.rpc.context import Analysis, Context
from shoal.analysis.v1 import analysis_pb2 as pb
from shoal.common.convert import page_of, page_response, timestamp
from shoal.common.data.projects import OBJECT_TASKS, Project
from shoal.common.errors import InvalidArgument, NotFound
from shoal.common.settings import ShoalSettings
from shoal.common.stores.events import EventBus
from shoal.common.topics import Topics


def _store(ctx: Context) -> au.AutomationStore:
    return au.AutomationStore(ctx.metrics)


# --- RPCs ----------------------------------------------------------------------------------------
def create_automation(ctx: Context, request: pb.CreateAutomationRequest) -> pb.CreateAutomationResponse:
    project = ctx.projects.get(request.project)
    spec = request.automation
    rule = au.Rule(
        project=project.name,
        name=spec.name,
        trigger=trigger_of(spec.trigger, "automation.trigger"),
        actions=tuple(action_of(a, f"automation.actions[{i}]") for i, a in enumerate(spec.actions)),
        webhook=webhook_of(spec.webhook) if spec.HasField("webhook") else None,
        description=spec.description,
        paused=spec.paused,
    )
    check(ctx, rule, project, "automation")
    return pb.CreateAutomationResponse(automation=automation_proto(_store(ctx).create(rule)))


def get_automation(ctx: Context, request: pb.GetAutomationRequest) -> pb.GetAutomationResponse:
    return pb.GetAutomationResponse(automation=automation_proto(_store(ctx).get(request.project, request.name)))


def list_automations(ctx: Context, request: pb.ListAutomationsRequest) -> pb.ListAutomationsResponse:
    scope = f"automations|{request.project}"
    page = page_of(request.page, scope=scope)
    found, total = _store(ctx).list(request.project, page)
    return pb.ListAutomationsResponse(
        automations=[automation_proto(r) for r in found], page=page_response(page, len(found), total, scope=scope)
    )


def update_automation(ctx: Context, request: pb.UpdateAutomationRequest) -> pb.UpdateAutomationResponse:
    project = ctx.projects.get(request.project)
    store = _store(ctx)
    rule = store.get(request.project, request.name)
    if request.actions and not request.replace_actions:
        raise InvalidArgument("set replace_actions to replace the actions", field="replace_actions")
    if request.remove_webhook and request.HasField("webhook"):
        raise InvalidArgument("give a webhook or remove it, not both", field="remove_webhook")
    changes: dict[str, Any] = {}
    if request.HasField("paused"):
        changes["paused"] = request.paused
    if request.HasField("description"):
        changes["description"] = request.description
    if request.HasField("trigger"):
        changes["trigger"] = trigger_of(request.trigger, "trigger")
    if request.replace_actions:
        changes["actions"] = tuple(action_of(a, f"actions[{i}]") for i, a in enumerate(request.actions))
    if request.remove_webhook:
        changes["webhook"] = None
    elif request.HasField("webhook"):
        webhook = webhook_of(request.webhook)
        if not webhook.secret and rule.webhook is not None:  # an empty secret keeps the one kept
            webhook = au.Webhook(webhook.url, rule.webhook.secret, webhook.always)
        changes["webhook"] = webhook
    updated = replace(rule, **changes)
    check(ctx, updated, project, "")
    return pb.UpdateAutomationResponse(automation=automation_proto(store.update(updated)))


def delete_automation(ctx: Context, request: pb.DeleteAutomationRequest) -> pb.DeleteAutomationResponse:
    _store(ctx).delete(request.project, request.name)
    return pb.DeleteAutomationResponse()


def list_automation_runs(ctx: Context, request: pb.ListAutomationRunsRequest) -> pb.ListAutomationRunsResponse:
    states = []
    for i, value in enumerate(request.states):
        if value == pb.AUTOMATION_RUN_STATE_UNSPECIFIED or value not in pb.AutomationRunState.values():
            raise InvalidArgument(f"unknown run state {value}", field=f"states[{i}]")
        states.append(pb.AutomationRunState.Name(value).removeprefix("AUTOMATION_RUN_STATE_"))
    scope = f"automation-runs|{request.project}|{request.automation}|{','.join(sorted(states))}|{request.inference_set}"
    page = page_of(request.page, scope=scope)
    store = _store(ctx)
    runs, total = store.list_runs(request.project, automation=request.automation, states=states,
                                  inference_set=request.inference_set, page=page)  # fmt: skip
    return pb.ListAutomationRunsResponse(
        runs=runs_proto(store, request.project, runs), page=page_response(page, len(runs), total, scope=scope)
    )


def get_automation_run(ctx: Context, request: pb.GetAutomationRunRequest) -> pb.GetAutomationRunResponse:
    store = _store(ctx)
    run = store.get_run(request.project, request.run_id)
    return pb.GetAutomationRunResponse(run=runs_proto(store, request.project, [run])[0])


# --- checks and conversions --------------------------------------------------------------------------
def check(ctx: Context, rule: au.Rule, project: Project, where: str) -> None:
    """The rule's own checks (:func:`shoal.analysis.automations.check_rule`), then what it names: its
    dataset and the inference sets its actions name must exist (with LABELS_CHANGED, in the trigger's dataset)."""
    prefix = f"{where}." if where else ""
    au.check_rule(rule, project, where=where)
    t = rule.trigger
    if t.dataset and ctx.datasets.find(project.name, t.dataset) is None:
        raise NotFound(f"dataset {t.dataset!r} does not exist in project {project.name!r}",
                       field=f"{prefix}trigger.dataset")  # fmt: skip
    for i, a in enumerate(rule.actions):
        if a.inference_set:
            s = ctx.datasets.get_inference_set(project.name, a.inference_set,
                                               field=f"{prefix}actions[{i}].inference_set")  # fmt: skip
            if t.kind == au.LABELS_CHANGED and t.dataset != s.dataset:
                raise InvalidArgument(
                    f"name the dataset of inference set {s.name!r} ({s.dataset!r}): its {a.kind} action runs again "
                    "when that dataset's labels change",
                    field=f"{prefix}trigger.dataset",
                )


def _kind(enum: Any, value: int, prefix: str, what: str, field: str) -> str:
    if value == 0:
        return ""  # the checks ask for one
    if value not in enum.values():
        raise InvalidArgument(f"unknown {what} {value}", field=field)
    return str(enum.Name(value)).removeprefix(prefix)


def trigger_of(t: pb.AutomationTrigger, where: str) -> au.Trigger:
    kind = _kind(pb.AutomationTriggerKind, t.kind, "AUTOMATION_TRIGGER_KIND_", "trigger kind", f"{where}.kind")
    return au.Trigger(kind, t.dataset, t.inference_set_prefix, t.min_labeled_frames)


def action_of(a: pb.AutomationAction, where: str) -> au.Action:
    kind = _kind(pb.AutomationActionKind, a.kind, "AUTOMATION_ACTION_KIND_", "action kind", f"{where}.kind")
    return au.Action(kind, a.confidence_threshold, a.iou_threshold, a.inference_set, a.embedding_space)


def webhook_of(w: pb.AutomationWebhook) -> au.Webhook:
    return au.Webhook(w.url, w.secret, w.always)


def automation_proto(r: au.Rule) -> pb.Automation:
    t = r.trigger
    out = pb.Automation(
        name=r.name,
        description=r.description,
        trigger=pb.AutomationTrigger(
            kind=pb.AutomationTriggerKind.Value(f"AUTOMATION_TRIGGER_KIND_{t.kind}"),
            dataset=t.dataset,
            inference_set_prefix=t.inference_set_prefix,
            min_labeled_frames=t.min_labeled_frames,
        ),
        actions=[
            pb.AutomationAction(
                kind=pb.AutomationActionKind.Value(f"AUTOMATION_ACTION_KIND_{a.kind}"),
                confidence_threshold=a.confidence_threshold,
                iou_threshold=a.iou_threshold,
                inference_set=a.inference_set,
                embedding_space=a.embedding_space,
            )
            for a in r.actions
        ],
        paused=r.paused,
        create_time=timestamp(r.create_time),
        update_time=timestamp(r.update_time),
    )
    if r.webhook is not None:  # never its secret
        out.webhook.CopyFrom(pb.AutomationWebhook(url=r.webhook.url, always=r.webhook.always,
                                                  has_secret=bool(r.webhook.secret)))  # fmt: skip
    return out


def _state(state: str) -> int:
    return int(pb.AutomationRunState.Value(f"AUTOMATION_RUN_STATE_{state}"))


def _gate_result(g: dict[str, Any]) -> pb.GateResult:
    gate = pb.Gate(metric=g["metric"], minimum=g["minimum"])
    if g.get("class_id") is not None:
        gate.class_id = int(g["class_id"])
    return pb.GateResult(segment=g["segment"], gate=gate, value=g["value"], frames=g["frames"], passed=g["passed"])


def step_proto(s: au.Step) -> pb.AutomationStep:
    action = 0 if s.action not in au.ACTIONS else pb.AutomationActionKind.Value(f"AUTOMATION_ACTION_KIND_{s.action}")
    return pb.AutomationStep(
        action=action,
        state=_state(s.state),
        message=s.message,
        metrics={k: float(v) for k, v in s.result.get("metrics", {}).items()},
        gates=[_gate_result(g) for g in s.result.get("gates", [])],
        job_id=str(s.result.get("job_id", "")),
        start_time=timestamp(s.start_time),
        finish_time=timestamp(s.finish_time),
    )


def delivery_proto(d: au.Delivery) -> pb.WebhookDelivery:
    return pb.WebhookDelivery(
        delivery_id=d.delivery_id,
        attempt=d.attempt,
        event=d.event,
        status_code=d.status_code,
        error=d.error,
        time=timestamp(d.at),
        duration_seconds=d.duration_seconds,
    )


def runs_proto(store: au.AutomationStore, project: str, runs: Sequence[au.Run]) -> list[pb.AutomationRun]:
    ids = [r.run_id for r in runs]
    steps = store.steps(project, ids)
    deliveries = store.deliveries(project, ids)
    out = []
    for r in runs:
        t = r.trigger
        out.append(
            pb.AutomationRun(
                run_id=r.run_id,
                automation=r.automation,
                state=_state(r.state),
                message=r.message,
                attempts=r.attempts,
                trigger=pb.AutomationTriggerEvent(
                    kind=pb.AutomationTriggerKind.Value(f"AUTOMATION_TRIGGER_KIND_{t.kind}"),
                    dataset=t.dataset,
                    upload_id=t.upload_id,
                    inference_set=t.inference_set,
                    frames=t.frames,
                    source=t.source,
                    key=t.key,
                ),
                steps=[step_proto(s) for s in steps.get(r.run_id, [])],
                deliveries=[delivery_proto(d) for d in deliveries.get(r.run_id, [])],
                gates_evaluated=r.gates_evaluated,
                gates_failed=r.gates_failed,
                create_time=timestamp(r.create_time),
                update_time=timestamp(r.update_time),
                finish_time=timestamp(r.finish_time),
            )
        )
    return out


# --- actions -------------------------------------------------------------------------------------------
_NUMBERS = (
    FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_UINT32,
)  # fmt: skip


def figures(message: Any, prefix: str = "") -> dict[str, float]:
    """The single numbers of a metrics message, nested messages' as ``parent.name`` (lists left out)."""
    out: dict[str, float] = {}
    for f in message.DESCRIPTOR.fields:
        if f.is_repeated:
            continue
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if not prefix:
                out.update(figures(getattr(message, f.name), f"{f.name}."))
        elif f.type in _NUMBERS:
            out[prefix + f.name] = float(getattr(message, f.name))
    return out


def headline_metrics(ctx: Context, project: Project, inference_set: str, threshold: float) -> Any:
    """The metrics message of an inference set, from the metrics RPC of the project's task type."""
    p, t = project.name, project.task_type
    if t == "CLASSIFICATION":
        req = pb.GetClassificationMetricsRequest(project=p, inference_set=inference_set, confidence_threshold=threshold)
        return classification.get_classification_metrics(ctx, req).metrics
    if t == "CUBOIDS_3D":
        req3 = pb.GetCuboidMetricsRequest(project=p, inference_set=inference_set, confidence_threshold=threshold)
        return cuboids.get_cuboid_metrics(ctx, req3).metrics
    if t in OBJECT_TASKS:
        return detection.get_detection_metrics(
            ctx, pb.GetDetectionMetricsRequest(project=p, inference_set=inference_set)
        ).metrics
    if t == "MULTI_LABEL":
        req4 = pb.GetMultiLabelMetricsRequest(project=p, inference_set=inference_set, threshold=threshold)
        return multilabel.get_multi_label_metrics(ctx, req4).metrics
    if t == "SEGMENTATION":
        req5 = pb.GetSegmentationMetricsRequest(project=p, inference_set=inference_set)
        return segmentation.get_segmentation_metrics(ctx, req5).metrics
    req6 = pb.GetSoundEventMetricsRequest(project=p, inference_set=inference_set, confidence_threshold=threshold)
    return sound_events.get_sound_event_metrics(ctx, req6).metrics


def gate_json(g: pb.GateResult) -> dict[str, Any]:
    """A gate's result as a run records it."""
    return {
        "segment": g.segment,
        "metric": g.gate.metric,
        "class_id": g.gate.class_id if g.gate.HasField("class_id") else None,
        "minimum": g.gate.minimum,
        "value": g.value,
        "frames": g.frames,
        "passed": g.passed,
    }


def _started_here(job: Any, started: datetime) -> bool:
    """Whether ``job`` (a protobuf Job) was queued by the step that began at ``started`` (or a later attempt of it)."""
    return bool(job.create_time.ToDatetime(tzinfo=UTC) >= started)


def actions(ctx: Context) -> dict[str, ActionFn]:
    """What each action kind does, on the service's context."""

    def metrics(rule: au.Rule, trigger: au.TriggerEvent, action: au.Action, started: datetime) -> dict[str, Any]:
        project = ctx.projects.get(rule.project)
        inference_set = action.inference_set or trigger.inference_set
        return {"metrics": figures(headline_metrics(ctx, project, inference_set, action.confidence_threshold))}

    def gate_results(rule: au.Rule, trigger: au.TriggerEvent, action: au.Action, started: datetime) -> dict[str, Any]:
        resp = gates.evaluate_gates(ctx, pb.EvaluateGatesRequest(
            project=rule.project, inference_set=action.inference_set or trigger.inference_set,
            confidence_threshold=action.confidence_threshold, iou_threshold=action.iou_threshold))  # fmt: skip
        return {"gates": [gate_json(g) for g in resp.results]}

    def rerun(start: Any, request: Any, started: datetime) -> dict[str, Any]:
        """Queues the job again unless this step already did (an attempt cut short after queuing it)."""
        job = start(ctx, request).job
        if not _started_here(job, started):
            request.rerun = True
            job = start(ctx, request).job
        return {"job_id": job.job_id}

    def issues(rule: au.Rule, trigger: au.TriggerEvent, action: au.Action, started: datetime) -> dict[str, Any]:
        request = pb.StartLabelIssuesRequest(project=rule.project,
                                             inference_set=action.inference_set or trigger.inference_set)  # fmt: skip
        return rerun(label_issues.start_label_issues, request, started)

    def neighbours(rule: au.Rule, trigger: au.TriggerEvent, action: au.Action, started: datetime) -> dict[str, Any]:
        request = pb.StartNeighborAnalysisRequest(project=rule.project, dataset=trigger.dataset,
                                                  embedding_space=action.embedding_space)  # fmt: skip
        return rerun(neighbors.start_neighbor_analysis, request, started)

    return {au.METRICS: metrics, au.GATES: gate_results, au.LABEL_ISSUES: issues, au.NEIGHBORS: neighbours}


def consumer(ctx: Context, settings: ShoalSettings, bus: EventBus) -> AutomationConsumer:
    """The service's automations: a member of ``automations_consumer_group`` on the ingested topic."""
    engine = Engine(
        au.AutomationStore(ctx.metrics),
        actions(ctx),
        heartbeat_seconds=settings.job_heartbeat_seconds,
        stale_seconds=settings.job_stale_seconds,
    )
    return AutomationConsumer(bus, Topics(settings.topic_prefix), engine, group_id=settings.automations_consumer_group)


ANALYSIS = Analysis(
    "automations",
    rpcs={
        "CreateAutomation": create_automation,
        "GetAutomation": get_automation,
        "ListAutomations": list_automations,
        "UpdateAutomation": update_automation,
        "DeleteAutomation": delete_automation,
        "ListAutomationRuns": list_automation_runs,
        "GetAutomationRun": get_automation_run,
    },
    migrations=au.MIGRATIONS,
)
