"""Automations: the RPCs of a project's rules and their runs, the actions a run takes (each one an
analysis RPC's handler, called in process, but SEND_TO_LABELING, which publishes a labeling request on the
labeling-requests topic for the labeling bridge: the label issues of the job before it, or the frames a
standing campaign kept, read from its segment), and the consumer that runs them
(:mod:`shoal.analysis.automation_engine`).

The analysis service runs automations because it runs what they set off: metrics, gates and jobs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from shoal.analysis import automations as au
from shoal.analysis import detection_issues as detection_kind
from shoal.analysis import multilabel_issues, segmentation_label_issues, sound_event_label_issues
from shoal.analysis.automation_engine import ActionFn, AutomationConsumer, Engine, StepContext
from shoal.analysis.rpc import (
    classification,
    cuboids,
    detection,
    detection_issues,
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
from shoal.common.data import labeling_requests
from shoal.common.data.projects import OBJECT_TASKS, Project
from shoal.common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from shoal.common.jobs import SUCCEEDED as JOB_SUCCEEDED
from shoal.common.jobs import Job
from shoal.common.labeling import platform_of
from shoal.common.pagination import pages
from shoal.common.settings import ShoalSettings
from shoal.common.stores.events import EventBus
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2

log = logging.getLogger(__name__)

#: how long a SEND_TO_LABELING step waits for its label-issues job before its run is cut short (and taken up
#: again when its event comes again): under Kafka's five-minute poll interval, so the consumer keeps its group
JOB_WAIT_SECONDS = 240.0
#: how long publishing a labeling request may take
PUBLISH_TIMEOUT_SECONDS = 60.0
#: flagged frames read per page of a label-issues query
PAGE = 1000


def _store(ctx: Context) -> au.AutomationStore:
    return au.AutomationStore(ctx.metrics, ctx.secret_box)


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
            if rule.webhook.unreadable:
                raise FailedPrecondition(f"give the secret again: {rule.webhook.unreadable}", field="webhook.secret")
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
    return au.Trigger(kind, t.dataset, t.inference_set_prefix, t.min_labeled_frames, t.campaign)


def action_of(a: pb.AutomationAction, where: str) -> au.Action:
    kind = _kind(pb.AutomationActionKind, a.kind, "AUTOMATION_ACTION_KIND_", "action kind", f"{where}.kind")
    return au.Action(kind, a.confidence_threshold, a.iou_threshold, a.inference_set, a.embedding_space,
                     max_frames=a.max_frames, daily_budget=a.daily_budget, min_issues=a.min_issues,
                     min_issue_share=a.min_issue_share, platform=a.platform,
                     changed_frames=a.changed_frames)  # fmt: skip


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
            campaign=t.campaign,
        ),
        actions=[
            pb.AutomationAction(
                kind=pb.AutomationActionKind.Value(f"AUTOMATION_ACTION_KIND_{a.kind}"),
                confidence_threshold=a.confidence_threshold,
                iou_threshold=a.iou_threshold,
                inference_set=a.inference_set,
                embedding_space=a.embedding_space,
                max_frames=a.max_frames,
                daily_budget=a.daily_budget,
                min_issues=a.min_issues,
                min_issue_share=a.min_issue_share,
                platform=a.platform,
                changed_frames=a.changed_frames,
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


def _labeling(sent: dict[str, Any]) -> pb.AutomationLabeling:
    return pb.AutomationLabeling(
        job_id=sent.get("job_id", ""),
        dataset=sent.get("dataset", ""),
        examined=int(sent.get("examined", 0)),
        flagged=int(sent.get("flagged", 0)),
        request_id=sent.get("request_id", ""),
        frames=[pb.AutomationLabelingFrame(frame_id=f["frame_id"], reason=f["reason"]) for f in sent.get("frames", [])],
        skipped_frame_ids=sent.get("skipped_frame_ids", []),
        sent_before=int(sent.get("sent_before", 0)),
        day=sent.get("day", ""),
        budget_used_before=int(sent.get("budget_used_before", 0)),
        note=sent.get("note", ""),
        segment=sent.get("segment", ""),
    )


def step_proto(s: au.Step) -> pb.AutomationStep:
    action = 0 if s.action not in au.ACTIONS else pb.AutomationActionKind.Value(f"AUTOMATION_ACTION_KIND_{s.action}")
    out = pb.AutomationStep(
        action=action,
        state=_state(s.state),
        message=s.message,
        metrics={k: float(v) for k, v in s.result.get("metrics", {}).items()},
        gates=[_gate_result(g) for g in s.result.get("gates", [])],
        job_id=str(s.result.get("job_id", "")),
        start_time=timestamp(s.start_time),
        finish_time=timestamp(s.finish_time),
    )
    if "labeling" in s.result:
        out.labeling.CopyFrom(_labeling(s.result["labeling"]))
    return out


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
                    frame_ids=t.frame_ids,
                    campaign=t.campaign,
                    similarity_threshold=t.similarity_threshold,
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


def headline_metrics(
    ctx: Context, project: Project, inference_set: str, threshold: float,
    frames: common_pb2.Filter | None = None,
) -> Any:  # fmt: skip
    """The metrics message of an inference set, from the metrics RPC of the project's task type; ``frames``
    narrows it (not on object projects but cuboids, whose metrics take no filter)."""
    p, t = project.name, project.task_type
    flt = frames or common_pb2.Filter()
    if t == "CLASSIFICATION":
        req = pb.GetClassificationMetricsRequest(project=p, inference_set=inference_set, confidence_threshold=threshold,
                                                 filter=flt)  # fmt: skip
        return classification.get_classification_metrics(ctx, req).metrics
    if t == "CUBOIDS_3D":
        req3 = pb.GetCuboidMetricsRequest(project=p, inference_set=inference_set, confidence_threshold=threshold,
                                          frame_filter=flt)  # fmt: skip
        return cuboids.get_cuboid_metrics(ctx, req3).metrics
    if t in OBJECT_TASKS:
        if frames is not None:
            raise InvalidArgument(f"the metrics of {t} projects take no frame filter", field="changed_frames")
        return detection.get_detection_metrics(
            ctx, pb.GetDetectionMetricsRequest(project=p, inference_set=inference_set)
        ).metrics
    if t == "MULTI_LABEL":
        req4 = pb.GetMultiLabelMetricsRequest(project=p, inference_set=inference_set, threshold=threshold, filter=flt)
        return multilabel.get_multi_label_metrics(ctx, req4).metrics
    if t == "SEGMENTATION":
        req5 = pb.GetSegmentationMetricsRequest(project=p, inference_set=inference_set, filter=flt)
        return segmentation.get_segmentation_metrics(ctx, req5).metrics
    req6 = pb.GetSoundEventMetricsRequest(project=p, inference_set=inference_set, confidence_threshold=threshold,
                                          frame_filter=flt)  # fmt: skip
    return sound_events.get_sound_event_metrics(ctx, req6).metrics


def frame_filter(frame_ids: Sequence[str]) -> common_pb2.Filter:
    """Only these frames: a ``frame_id`` condition."""
    values = common_pb2.ValueList(values=[common_pb2.Value(string_value=f) for f in frame_ids])
    return common_pb2.Filter(all=[common_pb2.Condition(field="frame_id", **{"in": values})])


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


# --- SEND_TO_LABELING ------------------------------------------------------------------------------------
#: a label-issues job's flagged frames, worst first: (frame id, reason), page by page
Flagged = Iterator[list[tuple[str, str]]]


def finished_issues_job(ctx: Context, project: str, job_id: str, step: StepContext, wait_seconds: float) -> Job:
    """The label-issues job ``job_id`` once it ended, which must have succeeded. Raises Unavailable (the run is
    taken up again when its event comes again) when it runs longer than ``wait_seconds`` or the engine stops."""
    deadline = time.monotonic() + wait_seconds
    while True:
        job = ctx.jobs.get(project, job_id)
        if job.done:
            break
        if time.monotonic() >= deadline:
            raise Unavailable(f"label-issues job {job_id} is still {job.state} after {wait_seconds:.0f} s")
        if step.stopping.wait(0.25):
            raise Unavailable(f"stopping while label-issues job {job_id} runs")
    if job.state != JOB_SUCCEEDED:
        raise FailedPrecondition(f"label-issues job {job_id} ended {job.state}" + (f": {job.message}" if job.message
                                 else ""), field="job_id")  # fmt: skip
    return job


def flagged_frames(ctx: Context, project: Project, job: Job) -> tuple[int, int, Flagged]:
    """Frames the label-issues ``job`` examined and flagged, and its flagged frames worst first, each with
    the reason annotators are given (dismissed issues left out, as the queries leave them out)."""
    names = {c.id: c.name for c in project.classes}

    def name(c: int) -> str:
        return names.get(c, str(c))

    p, j = project.name, job.job_id
    kind = job.kind
    if kind == detection_kind.KIND:
        read = pages(lambda page: detection_issues.query_detection_label_issues(
            ctx, pb.QueryDetectionLabelIssuesRequest(project=p, job_id=j, level=pb.DETECTION_ISSUE_LEVEL_FRAME,
                                                     page=page)), PAGE)  # fmt: skip
        first = next(read)
        counts = ("missing_labels", "missing box"), ("spurious_labels", "spurious box"), \
            ("mislocalized", "mislocalized box"), ("class_swaps", "box of another class"), \
            ("misplaced_keypoints", "misplaced keypoint"), ("swapped_keypoints", "swapped keypoints")  # fmt: skip

        def detection_rows(resp: Any) -> list[tuple[str, str]]:
            return [(f.ref.frame_id, "label issues: " + ", ".join(f"{getattr(f, n)} {what}" for n, what in counts
                                                                  if getattr(f, n)) + f" (frame score {f.score:.2f})")
                    for f in resp.frames if f.is_issue]  # fmt: skip

        rows = detection_rows
        examined, flagged = first.summary.frames, first.summary.flagged_frames
    elif kind == multilabel_issues.KIND:
        read = pages(lambda page: multilabel.query_multi_label_issues(ctx, pb.QueryMultiLabelIssuesRequest(
            project=p, job_id=j, page=page)), PAGE)  # fmt: skip
        first = next(read)

        def multilabel_rows(resp: Any) -> list[tuple[str, str]]:
            out = []
            for m in resp.issues:
                if not m.is_issue:
                    continue
                parts = [f"{what} {', '.join(name(c) for c in ids)}" for what, ids in
                         (("missing", m.missing_class_ids), ("extra", m.extra_class_ids)) if ids]  # fmt: skip
                out.append((m.ref.frame_id, f"label issue: {'; '.join(parts) or f'doubtful {name(m.worst_class)}'} "
                                            f"(label quality {m.score:.2f})"))  # fmt: skip
            return out

        rows = multilabel_rows
        examined, flagged = first.summary.frames, first.summary.flagged_frames
    elif kind == segmentation_label_issues.KIND:
        read = pages(lambda page: segmentation.query_segmentation_issues(ctx, pb.QuerySegmentationIssuesRequest(
            project=p, job_id=j, page=page)), PAGE)  # fmt: skip
        first = next(read)

        def segmentation_rows(resp: Any) -> list[tuple[str, str]]:
            out = []
            for sg in resp.issues:
                if not sg.is_issue:
                    continue
                mixed = (f", mostly labeled {name(sg.worst_class)} where the model sees {name(sg.suggested_class)}"
                         if sg.worst_class >= 0 and sg.suggested_class >= 0 else "")  # fmt: skip
                out.append((sg.ref.frame_id, f"label issue: {sg.flagged_pixels:,} pixels likely mislabeled{mixed} "
                                             f"(label quality {sg.score:.2f})"))  # fmt: skip
            return out

        rows = segmentation_rows
        examined, flagged = first.summary.frames, first.summary.flagged_frames
    elif kind == sound_event_label_issues.KIND:
        read = pages(lambda page: sound_events.query_sound_event_issues(ctx, pb.QuerySoundEventIssuesRequest(
            project=p, job_id=j, level=pb.SOUND_EVENT_ISSUE_LEVEL_CLIP, page=page)), PAGE)  # fmt: skip
        first = next(read)
        kinds = ("spurious", "spurious"), ("badly_bounded", "badly bounded"), ("wrong_class", "of the wrong class"), \
            ("missing", "missing")  # fmt: skip

        def sound_rows(resp: Any) -> list[tuple[str, str]]:
            return [(c.frame_id, "label issues: " + ", ".join(f"{getattr(c, n)} {what}" for n, what in kinds
                                                              if getattr(c, n)) + f" (clip score {c.score:.2f})")
                    for c in resp.clips if c.is_issue]  # fmt: skip

        rows = sound_rows
        examined, flagged = first.summary.clips, first.summary.flagged_clips
    else:
        read = pages(lambda page: label_issues.query_label_issues(ctx, pb.QueryLabelIssuesRequest(
            project=p, job_id=j, page=page)), PAGE)  # fmt: skip
        first = next(read)

        def classification_rows(resp: Any) -> list[tuple[str, str]]:
            return [(i.ref.frame_id, f"label issue: labeled {name(i.given_label)}, the model suggests "
                                     f"{name(i.suggested_label)} (p {i.suggested_probability:.2f})")
                    for i in resp.issues if i.is_issue]  # fmt: skip

        rows = classification_rows
        examined, flagged = first.summary.frames, first.summary.issues

    def flagged_pages() -> Flagged:
        yield rows(first)
        for resp in read:
            yield rows(resp)

    return int(examined), int(flagged), flagged_pages()


def sent_before(ctx: Context, project: str, dataset: str, frame_ids: Sequence[str]) -> set[str]:
    """Those of ``frame_ids`` sent for labeling before, by any request."""
    if not frame_ids:
        return set()
    rows = ctx.metrics.query(
        "SELECT DISTINCT frame_id FROM labeling_requests WHERE project = {p:String} AND dataset = {d:String}"
        " AND frame_id IN {ids:Array(String)}",
        {"p": project, "d": dataset, "ids": list(frame_ids)},
    ).rows
    return {str(r[0]) for r in rows}


def choose_for_labeling(
    ctx: Context, store: au.AutomationStore, rule: au.Rule, action: au.Action, step: StepContext, wait_seconds: float
) -> dict[str, Any]:
    """What a SEND_TO_LABELING step sends: the flagged frames of the label-issues job before it, worst first,
    passed over when sent before, within the thresholds, the run's ``max_frames`` and the rule's budget left
    for the UTC day."""
    jobs = [s.result["job_id"] for s in step.before if s.action == au.LABEL_ISSUES and s.result.get("job_id")]
    if not jobs:
        raise FailedPrecondition(f"no {au.LABEL_ISSUES} action before it started a job", field="actions")
    project = ctx.projects.get(rule.project)
    job = finished_issues_job(ctx, rule.project, jobs[-1], step, wait_seconds)
    dataset = ctx.datasets.get_inference_set(rule.project, job.params["inference_set"]).dataset
    examined, flagged, pages = flagged_frames(ctx, project, job)
    day = datetime.now(UTC).date()
    out: dict[str, Any] = {"job_id": job.job_id, "dataset": dataset, "examined": examined, "flagged": flagged,
                           "request_id": "", "frames": [], "skipped_frame_ids": [], "sent_before": 0,
                           "day": day.isoformat(), "budget_used_before": 0, "note": ""}  # fmt: skip
    share = flagged / examined if examined else 0.0
    if not flagged:
        out["note"] = f"the job flagged none of {examined} frames: nothing sent"
        return out
    if flagged < action.min_issues or share < action.min_issue_share:
        wanted = " and ".join(w for w in (f"{action.min_issues} frames" if action.min_issues else "",
                                          f"a share of {action.min_issue_share:g}" if action.min_issue_share else "")
                              if w)  # fmt: skip
        out["note"] = f"the job flagged {flagged} of {examined} frames, short of {wanted}: nothing sent"
        return out
    return within_budget(ctx, store, rule, action, step, dataset, pages, out, what="flagged")


def within_budget(
    ctx: Context, store: au.AutomationStore, rule: au.Rule, action: au.Action, step: StepContext, dataset: str,
    pages: Flagged, out: dict[str, Any], *, what: str,
) -> dict[str, Any]:  # fmt: skip
    """Fills ``out`` with what a SEND_TO_LABELING step sends of the candidate frames ``pages`` (in the order
    given): those sent for labeling before passed over, at most the run's ``max_frames``, and those beyond the
    rule's budget left for the UTC day (``out["day"]``) recorded as skipped; and the request's id."""
    day = date.fromisoformat(out["day"])
    used = store.sent_for_labeling(rule.project, rule.automation_id, day, besides=step.run.run_id)
    left = max(action.daily_budget - used, 0)
    chosen: list[tuple[str, str]] = []
    passed = 0
    for rows in pages:
        before = sent_before(ctx, rule.project, dataset, [f for f, _ in rows])
        for frame, reason in rows:
            if frame in before:
                passed += 1
            elif len(chosen) < action.max_frames:
                chosen.append((frame, reason))
        if len(chosen) >= action.max_frames:
            break
    sent, skipped = chosen[:left], chosen[left:]
    notes = []
    if passed:
        notes.append(f"{passed} {what} frames were sent for labeling before")
    if skipped:
        notes.append(f"{len(skipped)} frames over the daily budget of {action.daily_budget} ({used} sent earlier on "
                     f"{day.isoformat()}): not sent")  # fmt: skip
    if not chosen:
        notes.append(f"no {what} frame left to send")
    request_id = ""
    if sent:
        request_id = labeling_requests.derive_request_id(rule.project, f"automation:{step.run.run_id}", dataset,
                                                         [f for f, _ in sent])  # fmt: skip
    out.update(request_id=request_id, frames=[{"frame_id": f, "reason": r} for f, r in sent],
               skipped_frame_ids=[f for f, _ in skipped], sent_before=passed, budget_used_before=used,
               note="; ".join(notes))  # fmt: skip
    return out


def campaign_frames(ctx: Context, project: str, segment: str) -> list[str]:
    """The frames of a standing campaign's segment, in the order they joined it (the order the campaign kept
    them, between batches; by frame id within one)."""
    rows = ctx.metrics.query_columns(
        "SELECT frame_id FROM segment_members FINAL WHERE project = {p:String} AND segment = {s:String}"
        " AND removed = 0 GROUP BY frame_id ORDER BY min(version), frame_id",
        {"p": project, "s": segment},
    )
    return [str(f) for f in rows["frame_id"]]


def choose_campaign_frames(
    ctx: Context, store: au.AutomationStore, rule: au.Rule, trigger: au.TriggerEvent, action: au.Action,
    step: StepContext,
) -> dict[str, Any]:  # fmt: skip
    """What a SEND_TO_LABELING step of a STANDING_CAMPAIGN_FULL run sends: the frames the campaign kept (its
    segment, which has its name), in the order kept, each with why, passed over when sent before, within the
    run's ``max_frames`` and the rule's budget left for the UTC day."""
    seg = ctx.segments.find(rule.project, trigger.campaign)
    if seg is None:
        raise FailedPrecondition(f"project {rule.project!r} has no segment {trigger.campaign!r}: the standing "
                                 "campaign's kept frames are not there", field="trigger.campaign")  # fmt: skip
    frames = campaign_frames(ctx, rule.project, seg.name)
    reason = (f"kept by standing campaign {trigger.campaign} (cosine similarity >= {trigger.similarity_threshold:g} "
              "to its seeds)")  # fmt: skip
    day = datetime.now(UTC).date()
    out: dict[str, Any] = {"job_id": "", "segment": seg.name, "dataset": seg.dataset, "examined": len(frames),
                           "flagged": len(frames), "request_id": "", "frames": [], "skipped_frame_ids": [],
                           "sent_before": 0, "day": day.isoformat(), "budget_used_before": 0, "note": ""}  # fmt: skip
    if not frames:
        out["note"] = f"segment {seg.name!r} has no frames: nothing sent"
        return out
    pages = iter([[(f, reason) for f in frames[i : i + PAGE]] for i in range(0, len(frames), PAGE)])
    return within_budget(ctx, store, rule, action, step, seg.dataset, pages, out, what="kept")


def labeling_event(rule: au.Rule, action: au.Action, sent: dict[str, Any]) -> common_pb2.LabelingRequestEvent:
    """The one event of the request ``sent`` (at most MAX_SEND_FRAMES frames: one part)."""
    frames = sent["frames"]
    if sent.get("segment"):
        why, source = f"standing campaign {sent['segment']} is full", f"segment:{sent['segment']}"
    else:
        why, source = f"label issues of job {sent['job_id']}", f"label_issues:{sent['job_id']}"
    e = common_pb2.LabelingRequestEvent(
        schema_version=labeling_requests.SCHEMA_VERSION, request_id=sent["request_id"], part=0, parts=1,
        project=rule.project, dataset=sent["dataset"],
        items=[common_pb2.DatapointRef(dataset=sent["dataset"], frame_id=f["frame_id"]) for f in frames],
        reasons=[f["reason"] for f in frames],
        reason=f"automation {rule.name}: {why}", source=source, platform=platform_of(action.platform),
        requested_by=f"automation:{rule.name}",
    )  # fmt: skip
    e.requested_time.GetCurrentTime()
    return e


def publisher(bus: EventBus, topics: Topics) -> Callable[[common_pb2.LabelingRequestEvent], None]:
    """Publishes a labeling request on the labeling-requests topic and waits until it is durable."""

    def publish(e: common_pb2.LabelingRequestEvent) -> None:
        headers = (("shoal-schema-version", str(labeling_requests.SCHEMA_VERSION).encode()),)
        try:
            published = bus.publish(topics.labeling_requests, key=f"{e.project}/{e.request_id}".encode(),
                                    value=e.SerializeToString(), headers=headers)  # fmt: skip
            published.result(timeout=PUBLISH_TIMEOUT_SECONDS)
        except Unavailable:
            raise
        except Exception as exc:  # the broker did not take it: tried again with the same request
            raise Unavailable(f"labeling request {e.request_id} not published: {type(exc).__name__}: {exc}") from exc

    return publish


def actions(
    ctx: Context,
    publish: Callable[[common_pb2.LabelingRequestEvent], None] | None = None,
    *,
    job_wait_seconds: float = JOB_WAIT_SECONDS,
) -> dict[str, ActionFn]:
    """What each action kind does, on the service's context; ``publish`` sends labeling requests."""
    store = au.AutomationStore(ctx.metrics, ctx.secret_box)

    def metrics(rule: au.Rule, trigger: au.TriggerEvent, action: au.Action, step: StepContext) -> dict[str, Any]:
        project = ctx.projects.get(rule.project)
        inference_set = action.inference_set or trigger.inference_set
        frames = None
        if action.changed_frames:
            if not trigger.frame_ids:
                return {"metrics": {}, "message": "the trigger recorded no frame whose labels changed"}
            frames = frame_filter(trigger.frame_ids)
        found = figures(headline_metrics(ctx, project, inference_set, action.confidence_threshold, frames))
        if frames is not None:
            return {"metrics": found, "message": f"on the {len(trigger.frame_ids)} frames whose labels changed"}
        return {"metrics": found}

    def gate_results(rule: au.Rule, trigger: au.TriggerEvent, action: au.Action, step: StepContext) -> dict[str, Any]:
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

    def issues(rule: au.Rule, trigger: au.TriggerEvent, action: au.Action, step: StepContext) -> dict[str, Any]:
        request = pb.StartLabelIssuesRequest(project=rule.project,
                                             inference_set=action.inference_set or trigger.inference_set)  # fmt: skip
        return rerun(label_issues.start_label_issues, request, step.started)

    def neighbours(rule: au.Rule, trigger: au.TriggerEvent, action: au.Action, step: StepContext) -> dict[str, Any]:
        request = pb.StartNeighborAnalysisRequest(project=rule.project, dataset=trigger.dataset,
                                                  embedding_space=action.embedding_space)  # fmt: skip
        return rerun(neighbors.start_neighbor_analysis, request, step.started)

    def send(rule: au.Rule, trigger: au.TriggerEvent, action: au.Action, step: StepContext) -> dict[str, Any]:
        """Chooses the frames, notes them on the step, publishes the request and records its frames as sent.
        An attempt after one cut short sends what that one noted, under the same request id: the labeling
        bridge takes a request once, however often it comes."""
        sent = step.earlier.get("labeling")
        if not sent or not sent.get("request_id"):
            if trigger.kind == au.STANDING_CAMPAIGN_FULL:
                sent = choose_campaign_frames(ctx, store, rule, trigger, action, step)
            else:
                sent = choose_for_labeling(ctx, store, rule, action, step, job_wait_seconds)
            if not sent["frames"]:
                return {"labeling": sent, "message": sent["note"]}
            step.note({"labeling": sent})
        if publish is None:
            raise FailedPrecondition("this analysis service publishes no labeling requests", field="actions")
        event = labeling_event(rule, action, sent)
        publish(event)
        labeling_requests.record_sent(ctx.metrics, labeling_requests.Request(
            project=rule.project, dataset=event.dataset, frame_ids=[i.frame_id for i in event.items],
            reason=event.reason, source=event.source, platform=event.platform, preannotation_inference_set="",
            requested_by=event.requested_by, request_id=event.request_id))  # fmt: skip
        log.info("automation run %s sent %d frames for labeling (request %s)", step.run.run_id, len(sent["frames"]),
                 sent["request_id"])  # fmt: skip
        said = f"sent {len(sent['frames'])} frames (request {sent['request_id']})"
        return {"labeling": sent, "message": "; ".join(m for m in (said, sent["note"]) if m)}

    return {au.METRICS: metrics, au.GATES: gate_results, au.LABEL_ISSUES: issues, au.NEIGHBORS: neighbours,
            au.SEND_TO_LABELING: send}  # fmt: skip


def consumer(ctx: Context, settings: ShoalSettings, bus: EventBus) -> AutomationConsumer:
    """The service's automations: a member of ``automations_consumer_group`` on the ingested topic, publishing
    the labeling requests of SEND_TO_LABELING on the labeling-requests topic."""
    topics = Topics(settings.topic_prefix)
    engine = Engine(
        au.AutomationStore(ctx.metrics, ctx.secret_box),
        actions(ctx, publisher(bus, topics)),
        allow_private_webhooks=settings.automations_allow_private_webhooks,
        heartbeat_seconds=settings.job_heartbeat_seconds,
        stale_seconds=settings.job_stale_seconds,
    )
    return AutomationConsumer(bus, topics, engine, group_id=settings.automations_consumer_group)


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
    # SEND_TO_LABELING records the frames it sends where searches and campaigns leave them out
    migrations=(*au.MIGRATIONS, *labeling_requests.MIGRATIONS),
)
