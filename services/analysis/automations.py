"""Automations: a project's rules (a trigger, actions, an optional signed webhook) and the record of
their runs, kept in the metrics store.

Tables (each row written again, with a higher version, on every change; reads use ``FINAL``):

- ``automations``: the rules, one row per (project, name); a deleted rule is a row marked deleted, so
  its runs keep their rule's name and the name may be given to a new rule (a new ``automation_id``).
- ``automation_chunks``: each chunk the ingested topic announced (upload, chunk index, declared chunk
  count, inference set, the frames whose labels it wrote, where the event was read): what triggers are
  decided from.
- ``automation_runs``, ``automation_steps``, ``automation_deliveries``: each run of a rule (with the frames
  whose labels changed, for LABELS_CHANGED; the campaign and its threshold, for STANDING_CAMPAIGN_FULL), each
  of its actions (and its notification) with what it found, started or sent, and each webhook attempt. The
  frames a rule sent for labeling on a UTC day (its daily budget) are counted from its steps.
- ``automation_claims`` and ``automation_heartbeats``: which consumer runs each attempt of a run (the
  first claim of an attempt wins, atomically), and that it is alive.

The engine that fills them is :mod:`shoal.analysis.automation_engine`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from shoal.common.data.labeling_requests import EVENT_ITEMS
from shoal.common.data.projects import OBJECT_TASKS, Project
from shoal.common.errors import AlreadyExists, InvalidArgument, NotFound
from shoal.common.labeling import platform_of
from shoal.common.pagination import Page
from shoal.common.secretbox import SecretBox, SecretUnreadable
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.timeutil import as_utc, now_ms

log = logging.getLogger(__name__)

INFERENCE_SET_COMPLETE, LABELS_CHANGED = "INFERENCE_SET_COMPLETE", "LABELS_CHANGED"
STANDING_CAMPAIGN_FULL = "STANDING_CAMPAIGN_FULL"
TRIGGERS = (INFERENCE_SET_COMPLETE, LABELS_CHANGED, STANDING_CAMPAIGN_FULL)
#: the triggers that name no inference set: the actions that read one name it
WITHOUT_INFERENCE_SET = (LABELS_CHANGED, STANDING_CAMPAIGN_FULL)
METRICS, GATES, LABEL_ISSUES, NEIGHBORS = "METRICS", "GATES", "LABEL_ISSUES", "NEIGHBORS"
SEND_TO_LABELING = "SEND_TO_LABELING"
ACTIONS = (METRICS, GATES, LABEL_ISSUES, NEIGHBORS, SEND_TO_LABELING)
#: the actions that read an inference set: the triggering one, or the one they name (which a LABELS_CHANGED or
#: STANDING_CAMPAIGN_FULL trigger, naming none, needs)
ON_INFERENCE_SETS = (METRICS, GATES, LABEL_ISSUES)
RUNNING, SUCCEEDED, FAILED = "RUNNING", "SUCCEEDED", "FAILED"
RUN_STATES = (RUNNING, SUCCEEDED, FAILED)
#: the step of a run that notifies its webhook (the others are its actions, by position)
WEBHOOK_STEP = "webhook"

MAX_ACTIONS = 16
MAX_DESCRIPTION = 1000
MAX_URL = 2048
MIN_SECRET, MAX_SECRET = 16, 256
#: most frames one SEND_TO_LABELING step sends: one labeling-request event
MAX_SEND_FRAMES = EVENT_ITEMS
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")

MIGRATIONS = (
    Migration(
        component="automations",
        version=1,
        name="automations, their runs and the chunks they watch",
        statements=(
            "CREATE TABLE IF NOT EXISTS automations ("
            " project LowCardinality(String), name String, automation_id String, description String,"
            " trigger String, actions String, webhook_url String, webhook_secret String, webhook_always UInt8,"
            " paused UInt8, deleted UInt8, create_time DateTime64(3, 'UTC'), update_time DateTime64(3, 'UTC'),"
            " version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, name)",
            "CREATE TABLE IF NOT EXISTS automation_chunks ("
            " project LowCardinality(String), dataset String, upload_id String, chunk_index Int64,"
            " total_chunks Int64, inference_set String, frames UInt64, labeled UInt64,"
            " topic String, partition Int32, offset Int64, written_time DateTime64(3, 'UTC'), at DateTime64(3, 'UTC'),"
            " version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, upload_id, chunk_index)"
            " TTL toDateTime(at) + INTERVAL 30 DAY",
            "CREATE TABLE IF NOT EXISTS automation_runs ("
            " project LowCardinality(String), run_id String, automation_id String, automation String,"
            " trigger_kind LowCardinality(String), trigger_key String, dataset String, upload_id String,"
            " inference_set String, frames Int64, source String, partition Int32, offset Int64,"
            " state LowCardinality(String), message String, retry UInt8, attempts Int32, runner String,"
            " gates_evaluated Int32, gates_failed Int32, create_time DateTime64(3, 'UTC'),"
            " update_time DateTime64(3, 'UTC'), finish_time Nullable(DateTime64(3, 'UTC')), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, run_id)",
            "CREATE TABLE IF NOT EXISTS automation_steps ("
            " project LowCardinality(String), run_id String, step String, action LowCardinality(String),"
            " state LowCardinality(String), message String, result String, start_time DateTime64(3, 'UTC'),"
            " finish_time Nullable(DateTime64(3, 'UTC')), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, run_id, step)",
            "CREATE TABLE IF NOT EXISTS automation_deliveries ("
            " project LowCardinality(String), run_id String, delivery_id String, attempt Int32, event String,"
            " status_code Int32, error String, at DateTime64(3, 'UTC'), duration_seconds Float64)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, run_id, delivery_id, attempt)",
            # the first claim of a (run, attempt) wins; the others are dropped by the insert's deduplication
            # token (atomic on one server and across replicas)
            "CREATE TABLE IF NOT EXISTS automation_claims ("
            " project String, run_id String, claim String, runner String, at DateTime64(3, 'UTC'))"
            " ENGINE = MergeTree ORDER BY (project, run_id, claim) TTL toDateTime(at) + INTERVAL 30 DAY"
            " SETTINGS non_replicated_deduplication_window = 100000",
            "CREATE TABLE IF NOT EXISTS automation_heartbeats ("
            " project String, run_id String, runner String, at DateTime64(3, 'UTC'))"
            " ENGINE = MergeTree ORDER BY (project, run_id) TTL toDateTime(at) + INTERVAL 1 DAY",
        ),
    ),
    Migration(
        component="automations",
        version=2,
        name="the frames whose labels changed, per chunk and per run",
        statements=(
            "ALTER TABLE automation_chunks ADD COLUMN IF NOT EXISTS labeled_frame_ids Array(String)",
            "ALTER TABLE automation_runs ADD COLUMN IF NOT EXISTS frame_ids Array(String)",
        ),
    ),
    Migration(
        component="automations",
        version=3,
        name="the standing campaign that filled, per run",
        statements=(
            "ALTER TABLE automation_runs ADD COLUMN IF NOT EXISTS campaign String",
            "ALTER TABLE automation_runs ADD COLUMN IF NOT EXISTS similarity_threshold Float64",
        ),
    ),
)


# --- rules ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trigger:
    kind: str
    #: only this dataset's events ("" for every dataset)
    dataset: str = ""
    #: INFERENCE_SET_COMPLETE: only inference sets whose name starts with it
    inference_set_prefix: str = ""
    #: LABELS_CHANGED: frames whose labels must be written to fire
    min_labeled_frames: int = 0
    #: STANDING_CAMPAIGN_FULL: only this campaign ("" for every campaign of the project)
    campaign: str = ""


@dataclass(frozen=True)
class Action:
    kind: str
    confidence_threshold: float = 0.0
    iou_threshold: float = 0.0
    inference_set: str = ""
    embedding_space: str = ""
    #: SEND_TO_LABELING: the most frames one run sends, and one UTC day over all the rule's runs
    max_frames: int = 0
    daily_budget: int = 0
    #: SEND_TO_LABELING after LABEL_ISSUES: send only when the job flagged at least this many frames, and this
    #: share of those it examined
    min_issues: int = 0
    min_issue_share: float = 0.0
    #: SEND_TO_LABELING: the labeling platform ("" for the bridge's default)
    platform: str = ""
    #: METRICS on LABELS_CHANGED: only the frames whose labels the trigger counted
    changed_frames: bool = False


@dataclass(frozen=True)
class Webhook:
    url: str
    #: signs each delivery; never returned nor logged (kept out of the repr); sealed at rest
    secret: str = field(default="", repr=False)
    #: notify after every run, not only when a gate or the run failed
    always: bool = False
    #: why the stored secret could not be opened ("" when it was): nothing is delivered unsigned
    unreadable: str = ""
    #: the secret as stored when it could not be opened, written back as it is until a new one is given
    sealed: str = field(default="", repr=False)


@dataclass(frozen=True)
class Rule:
    project: str
    name: str
    trigger: Trigger
    actions: tuple[Action, ...]
    webhook: Webhook | None = None
    description: str = ""
    paused: bool = False
    #: names this rule among the rules that had its name (a deleted rule's runs keep the old one)
    automation_id: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None


def new_automation_id() -> str:
    return f"au-{uuid.uuid4().hex[:16]}"


def check_rule(rule: Rule, project: Project, *, where: str = "automation") -> None:
    """What can be checked without the stores: the name, the kinds and their parameters, the
    webhook. Errors name the field under ``where`` (the request's message holding the rule; "" for
    fields at the top of the request)."""

    def at(name: str) -> str:
        return f"{where}.{name}" if where else name

    if not _NAME.match(rule.name):
        raise InvalidArgument(f"{rule.name!r} is not a rule name: [a-z0-9][a-z0-9_.-]{{0,62}}", field=at("name"))
    if len(rule.description) > MAX_DESCRIPTION:
        raise InvalidArgument(f"at most {MAX_DESCRIPTION} characters", field=at("description"))
    check_trigger(rule.trigger, at("trigger"))
    check_actions(rule.actions, rule.trigger.kind, project, at("actions"))
    if rule.webhook is not None:
        check_webhook(rule.webhook, at("webhook"))


def check_trigger(t: Trigger, where: str) -> None:
    if t.kind not in TRIGGERS:
        raise InvalidArgument(f"set a trigger kind: one of {', '.join(TRIGGERS)}", field=f"{where}.kind")
    if t.inference_set_prefix and t.kind != INFERENCE_SET_COMPLETE:
        raise InvalidArgument(
            f"applies to {INFERENCE_SET_COMPLETE} triggers only", field=f"{where}.inference_set_prefix"
        )
    if t.kind == LABELS_CHANGED and t.min_labeled_frames < 1:
        raise InvalidArgument(
            f"must be at least 1, got {t.min_labeled_frames}: how many frames' labels fire the rule",
            field=f"{where}.min_labeled_frames",
        )
    if t.kind != LABELS_CHANGED and t.min_labeled_frames:
        raise InvalidArgument(f"applies to {LABELS_CHANGED} triggers only", field=f"{where}.min_labeled_frames")
    if t.campaign and t.kind != STANDING_CAMPAIGN_FULL:
        raise InvalidArgument(f"applies to {STANDING_CAMPAIGN_FULL} triggers only", field=f"{where}.campaign")
    if t.campaign and not _NAME.match(t.campaign):
        raise InvalidArgument(f"{t.campaign!r} is not a standing campaign's name: [a-z0-9][a-z0-9_.-]{{0,62}}",
                              field=f"{where}.campaign")  # fmt: skip


def check_actions(actions: Sequence[Action], trigger: str, project: Project, where: str) -> None:
    if not actions:
        raise InvalidArgument("give at least one action", field=where)
    if len(actions) > MAX_ACTIONS:
        raise InvalidArgument(f"at most {MAX_ACTIONS} actions, got {len(actions)}", field=where)
    spaces = {s.name for s in project.embedding_spaces}
    for i, a in enumerate(actions):
        at = f"{where}[{i}]"
        if a.kind not in ACTIONS:
            raise InvalidArgument(f"set an action kind: one of {', '.join(ACTIONS)}", field=f"{at}.kind")
        for name in ("confidence_threshold", "iou_threshold"):
            value = getattr(a, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise InvalidArgument(f"must lie in [0, 1], got {value}", field=f"{at}.{name}")
        if a.confidence_threshold and a.kind not in (METRICS, GATES):
            raise InvalidArgument("applies to METRICS and GATES actions only", field=f"{at}.confidence_threshold")
        if a.iou_threshold and a.kind != GATES:
            raise InvalidArgument("applies to GATES actions only", field=f"{at}.iou_threshold")
        if a.inference_set and a.kind not in ON_INFERENCE_SETS:
            raise InvalidArgument(
                f"applies to {', '.join(ON_INFERENCE_SETS)} actions only", field=f"{at}.inference_set"
            )
        if a.kind in ON_INFERENCE_SETS and trigger in WITHOUT_INFERENCE_SET and not a.inference_set:
            raise InvalidArgument(
                f"is empty: a {trigger} trigger names no inference set, so name the one {a.kind} reads",
                field=f"{at}.inference_set",
            )
        if a.kind == SEND_TO_LABELING:
            _check_send(a, actions[:i], trigger, at)
        else:
            for name in ("max_frames", "daily_budget", "min_issues", "min_issue_share", "platform"):
                if getattr(a, name):
                    raise InvalidArgument(f"applies to {SEND_TO_LABELING} actions only", field=f"{at}.{name}")
        if a.changed_frames:
            if a.kind != METRICS or trigger != LABELS_CHANGED:
                raise InvalidArgument(f"applies to METRICS actions of {LABELS_CHANGED} rules only",
                                      field=f"{at}.changed_frames")  # fmt: skip
            if project.task_type in OBJECT_TASKS and project.task_type != "CUBOIDS_3D":
                raise InvalidArgument(f"the metrics of {project.task_type} projects take no frame filter",
                                      field=f"{at}.changed_frames")  # fmt: skip
        if a.kind == NEIGHBORS:
            if not a.embedding_space:
                raise InvalidArgument("is empty: name the embedding space of the neighbour job",
                                      field=f"{at}.embedding_space")  # fmt: skip
            if a.embedding_space not in spaces:
                known = ", ".join(sorted(spaces)) or "none"
                raise InvalidArgument(f"project {project.name!r} has no embedding space {a.embedding_space!r} "
                                      f"(it has: {known})", field=f"{at}.embedding_space")  # fmt: skip
        elif a.embedding_space:
            raise InvalidArgument("applies to NEIGHBORS actions only", field=f"{at}.embedding_space")


def _check_send(a: Action, before: Sequence[Action], trigger: str, at: str) -> None:
    """A SEND_TO_LABELING action: after a LABEL_ISSUES action (whose job it reads), or on a STANDING_CAMPAIGN_FULL
    trigger (it sends the campaign's kept frames, without thresholds), the only one of its rule (the budget is
    the rule's), with its frames per run and per day."""
    if trigger == STANDING_CAMPAIGN_FULL:
        for name in ("min_issues", "min_issue_share"):
            if getattr(a, name):
                raise InvalidArgument(f"applies to label issues only: on a {STANDING_CAMPAIGN_FULL} trigger "
                                      f"{SEND_TO_LABELING} sends the frames the campaign kept",
                                      field=f"{at}.{name}")  # fmt: skip
    elif not any(b.kind == LABEL_ISSUES for b in before):
        raise InvalidArgument(f"needs a {LABEL_ISSUES} action before it: it sends the frames that action's job "
                              "flags", field=f"{at}.kind")  # fmt: skip
    if any(b.kind == SEND_TO_LABELING for b in before):
        raise InvalidArgument(f"a rule has at most one {SEND_TO_LABELING} action (the daily budget is the rule's)",
                              field=f"{at}.kind")  # fmt: skip
    if not 1 <= a.max_frames <= MAX_SEND_FRAMES:
        raise InvalidArgument(f"must lie in [1, {MAX_SEND_FRAMES}], got {a.max_frames}: the most frames one run "
                              "sends", field=f"{at}.max_frames")  # fmt: skip
    if a.daily_budget < 1:
        raise InvalidArgument(f"must be at least 1, got {a.daily_budget}: the most frames the rule sends per UTC day",
                              field=f"{at}.daily_budget")  # fmt: skip
    if a.min_issues < 0:
        raise InvalidArgument(f"must be at least 0, got {a.min_issues}", field=f"{at}.min_issues")
    if not (math.isfinite(a.min_issue_share) and 0.0 <= a.min_issue_share <= 1.0):
        raise InvalidArgument(f"must lie in [0, 1], got {a.min_issue_share}", field=f"{at}.min_issue_share")
    platform_of(a.platform, field=f"{at}.platform")


def check_webhook(w: Webhook, where: str) -> None:
    """An http(s) URL with a host, and a secret of 16 to 256 printable characters (never quoted)."""
    url = w.url
    if not url:
        raise InvalidArgument("is empty: the http:// or https:// URL notifications are POSTed to", field=f"{where}.url")
    if len(url) > MAX_URL or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidArgument(f"is not a URL (at most {MAX_URL} printable characters, no spaces)", field=f"{where}.url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise InvalidArgument(f"is not a URL: {exc}", field=f"{where}.url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(
            f"must be an http:// or https:// URL, not {parts.scheme or 'one without a scheme'}", field=f"{where}.url"
        )
    if not host:
        raise InvalidArgument("names no host", field=f"{where}.url")
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument("must not carry credentials (user:password@): the secret signs each delivery",
                              field=f"{where}.url")  # fmt: skip
    if w.unreadable:
        return  # the kept secret, sealed under another key: checked when it was given
    n = len(w.secret)
    if not MIN_SECRET <= n <= MAX_SECRET:
        raise InvalidArgument(f"must have {MIN_SECRET} to {MAX_SECRET} characters, has {n} (the secret is not shown)",
                              field=f"{where}.secret")  # fmt: skip
    if any(not ch.isprintable() for ch in w.secret):
        raise InvalidArgument("must be printable characters (the secret is not shown)", field=f"{where}.secret")


# --- runs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TriggerEvent:
    """What set a run off; ``key`` is its identity (one run per rule and key)."""

    kind: str
    key: str
    dataset: str
    upload_id: str = ""
    inference_set: str = ""
    frames: int = 0
    #: topic/partition/offset of the event that completed the trigger
    source: str = ""
    partition: int = -1
    offset: int = -1
    #: LABELS_CHANGED: the frames whose labels were written, each once, sorted
    frame_ids: tuple[str, ...] = ()
    #: STANDING_CAMPAIGN_FULL: the campaign (its kept frames are the segment of its name; ``dataset`` is its
    #: pool, ``frames`` the frames it kept) and its similarity threshold
    campaign: str = ""
    similarity_threshold: float = 0.0


@dataclass(frozen=True)
class Run:
    project: str
    run_id: str
    automation_id: str
    automation: str
    trigger: TriggerEvent
    state: str = RUNNING
    message: str = ""
    #: a failed run is tried again when its trigger's event comes again (a store was unreachable)
    retry: bool = False
    attempts: int = 1
    #: the consumer running (or that ran) the latest attempt
    runner: str = ""
    gates_evaluated: int = 0
    gates_failed: int = 0
    create_time: datetime | None = None
    update_time: datetime | None = None
    finish_time: datetime | None = None


@dataclass(frozen=True)
class Step:
    project: str
    run_id: str
    #: "<position>:<action kind>", or "webhook"
    step: str
    action: str
    state: str
    message: str = ""
    #: what the action found, started or sent: {"metrics": {...}}, {"gates": [...]}, {"job_id": ...},
    #: {"labeling": {...}}; while it runs, what it is about to do (see Engine's StepContext.note)
    result: dict[str, Any] = field(default_factory=dict)
    start_time: datetime | None = None
    finish_time: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    attempt: int
    event: str
    status_code: int
    error: str
    at: datetime
    duration_seconds: float

    @property
    def delivered(self) -> bool:
        return 200 <= self.status_code < 300


def run_id_for(automation_id: str, trigger_key: str) -> str:
    """One run per rule and trigger: a trigger delivered twice finds its run."""
    return "ar-" + hashlib.sha256(f"{automation_id}\x1f{trigger_key}".encode()).hexdigest()[:24]


def step_key(position: int, action: Action) -> str:
    return f"{position}:{action.kind}"


_RULE_COLUMNS = (
    "project", "name", "automation_id", "description", "trigger", "actions", "webhook_url", "webhook_secret",
    "webhook_always", "paused", "deleted", "create_time", "update_time", "version",
)  # fmt: skip
_RUN_COLUMNS = (
    "project", "run_id", "automation_id", "automation", "trigger_kind", "trigger_key", "dataset", "upload_id",
    "inference_set", "frames", "source", "partition", "offset", "state", "message", "retry", "attempts", "runner",
    "gates_evaluated", "gates_failed", "create_time", "update_time", "finish_time", "frame_ids", "campaign",
    "similarity_threshold", "version",
)  # fmt: skip
_STEP_COLUMNS = ("project", "run_id", "step", "action", "state", "message", "result", "start_time", "finish_time",
                 "version")  # fmt: skip
_CHUNK_COLUMNS = ("project", "dataset", "upload_id", "chunk_index", "total_chunks", "inference_set", "frames",
                  "labeled", "topic", "partition", "offset", "written_time", "at", "labeled_frame_ids",
                  "version")  # fmt: skip


@dataclass(frozen=True)
class Chunk:
    """A chunk the ingested topic announced."""

    project: str
    dataset: str
    upload_id: str
    chunk_index: int
    total_chunks: int
    inference_set: str
    frames: int
    labeled: int
    topic: str
    partition: int
    offset: int
    #: when the ingest consumer wrote the chunk (None: unknown, now)
    written_time: datetime | None = None
    #: the frames whose labels it wrote
    labeled_frame_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class UploadProgress:
    """What the chunks announced of one upload tell."""

    dataset: str
    #: the chunk count the upload declared (0: none did)
    total: int
    #: chunk indices announced
    chunks: frozenset[int]
    #: the inference sets its chunks wrote
    inference_sets: tuple[str, ...]
    frames: int
    #: when the last of its chunks announced was written
    last_written: datetime | None = None

    @property
    def complete(self) -> bool:
        return self.total > 0 and all(i in self.chunks for i in range(self.total))


class AutomationStore:
    """The rules and their runs in the metrics store (see the module's docstring)."""

    def __init__(self, metrics: MetricsStore, box: SecretBox | None = None) -> None:
        self.metrics = metrics
        #: seals the webhook secrets kept (default: a key of this object's lifetime, for tests and tools)
        self.box = box if box is not None else SecretBox.ephemeral()

    # -- rules ------------------------------------------------------------------------------------
    def _write_rule(self, r: Rule, *, deleted: bool = False) -> Rule:
        now = now_ms()
        r = replace(r, create_time=r.create_time or now, update_time=now)
        w = r.webhook
        self.metrics.insert(
            "automations",
            [[r.project, r.name, r.automation_id, r.description, json.dumps(asdict(r.trigger)),
              json.dumps([asdict(a) for a in r.actions]), w.url if w else "",
              (w.sealed if w.unreadable else self.box.seal(w.secret, _secret_place(r))) if w else "",
              int(bool(w and w.always)), int(r.paused), int(deleted), r.create_time, r.update_time, time.time_ns()]],
            _RULE_COLUMNS,
        )  # fmt: skip
        return r

    def create(self, rule: Rule) -> Rule:
        if self.find(rule.project, rule.name) is not None:
            raise AlreadyExists(f"project {rule.project!r} has a rule {rule.name!r}", field="automation.name")
        return self._write_rule(replace(rule, automation_id=new_automation_id(), create_time=None))

    def update(self, rule: Rule) -> Rule:
        return self._write_rule(rule)

    def delete(self, project: str, name: str) -> None:
        self._write_rule(self.get(project, name), deleted=True)

    def find(self, project: str, name: str) -> Rule | None:
        rows = self.metrics.query(
            f"SELECT {', '.join(_RULE_COLUMNS[:-1])} FROM automations FINAL"
            " WHERE project = {project:String} AND name = {name:String} AND deleted = 0",
            {"project": project, "name": name},
        ).rows
        return _rule(rows[0], self.box) if rows else None

    def get(self, project: str, name: str) -> Rule:
        if not name:
            raise InvalidArgument("is empty", field="name")
        rule = self.find(project, name)
        if rule is None:
            raise NotFound(f"project {project!r} has no automation {name!r}", field="name")
        return rule

    def list(self, project: str, page: Page) -> tuple[list[Rule], int]:
        where = "project = {project:String} AND deleted = 0"
        params: dict[str, Any] = {"project": project}
        total = int(self.metrics.query(f"SELECT count() FROM automations FINAL WHERE {where}", params).scalar() or 0)
        rows = self.metrics.query(
            f"SELECT {', '.join(_RULE_COLUMNS[:-1])} FROM automations FINAL WHERE {where}"
            " ORDER BY name LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
            {**params, "limit": page.size, "offset": page.offset},
        ).rows
        return [_rule(r, self.box) for r in rows], total

    def active(self, projects: Iterable[str]) -> dict[str, list[Rule]]:
        """The rules that are neither paused nor deleted, of each project (read now: a pause takes
        effect at the next event)."""
        wanted = sorted(set(projects))
        if not wanted:
            return {}
        rows = self.metrics.query(
            f"SELECT {', '.join(_RULE_COLUMNS[:-1])} FROM automations FINAL"
            " WHERE project IN {projects:Array(String)} AND deleted = 0 AND paused = 0 ORDER BY project, name",
            {"projects": wanted},
        ).rows
        out: dict[str, list[Rule]] = {}
        for row in rows:
            r = _rule(row, self.box)
            out.setdefault(r.project, []).append(r)
        return out

    # -- chunks -----------------------------------------------------------------------------------
    def record_chunks(self, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            return
        now = now_ms()
        version = time.time_ns()
        self.metrics.insert(
            "automation_chunks",
            [[c.project, c.dataset, c.upload_id, c.chunk_index, c.total_chunks, c.inference_set, c.frames, c.labeled,
              c.topic, c.partition, c.offset, c.written_time or now, now, list(c.labeled_frame_ids), version]
             for c in chunks],
            _CHUNK_COLUMNS,
        )  # fmt: skip

    def upload_progress(self, project: str, upload_id: str) -> UploadProgress:
        rows = self.metrics.query(
            "SELECT any(dataset), max(total_chunks), groupUniqArray(chunk_index),"
            " arraySort(groupUniqArrayIf(inference_set, inference_set != '')), sum(frames), max(written_time), count()"
            " FROM automation_chunks FINAL WHERE project = {project:String} AND upload_id = {upload_id:String}",
            {"project": project, "upload_id": upload_id},
        ).rows
        dataset, total, indices, sets, frames, written, n = rows[0] if rows else ("", 0, [], [], 0, None, 0)
        return UploadProgress(str(dataset or ""), int(total or 0), frozenset(int(i) for i in indices or ()),
                              tuple(str(s) for s in sets or ()), int(frames or 0),
                              as_utc(written) if n else None)  # fmt: skip

    def labeled_between(
        self, project: str, dataset: str, topic: str, partition: int, after: int, upto: int, since: datetime
    ) -> int:
        """Frames whose labels the chunks of ``dataset`` announced at offsets in (``after``, ``upto``] of
        one partition, written since ``since``."""
        value = self._chunks_between("sum(labeled)", project, dataset, topic, partition, after, upto, since)
        return int(value or 0)

    def labeled_frames_between(
        self, project: str, dataset: str, topic: str, partition: int, after: int, upto: int, since: datetime
    ) -> tuple[str, ...]:
        """The frames (each once, sorted) whose labels the chunks counted by :meth:`labeled_between` wrote."""
        value = self._chunks_between("arraySort(groupUniqArrayArray(labeled_frame_ids))", project, dataset, topic,
                                     partition, after, upto, since)  # fmt: skip
        return tuple(str(f) for f in value or ())

    def _chunks_between(
        self, what: str, project: str, dataset: str, topic: str, partition: int, after: int, upto: int, since: datetime
    ) -> Any:
        """``what``, an aggregate over the chunks of ``dataset`` announced at offsets in (``after``, ``upto``] of
        one partition, written since ``since``."""
        return self.metrics.query(
            f"SELECT {what} FROM automation_chunks FINAL WHERE project = {{project:String}}"
            " AND dataset = {dataset:String} AND topic = {topic:String} AND partition = {partition:Int32}"
            " AND offset > {after:Int64} AND offset <= {upto:Int64} AND written_time >= {since:DateTime64(3, 'UTC')}",
            {"project": project, "dataset": dataset, "topic": topic, "partition": partition, "after": after,
             "upto": upto, "since": since},
        ).scalar()  # fmt: skip

    def last_offset(self, project: str, automation_id: str, dataset: str, topic: str, partition: int) -> int:
        """The offset of the event that set off the rule's latest run for ``dataset`` on one partition; -1 if none."""
        rows = self.metrics.query(
            "SELECT count(), max(offset) FROM automation_runs FINAL WHERE project = {project:String}"
            " AND automation_id = {automation_id:String} AND dataset = {dataset:String}"
            " AND startsWith(source, {topic:String}) AND partition = {partition:Int32}",
            {"project": project, "automation_id": automation_id, "dataset": dataset, "topic": f"{topic}/",
             "partition": partition},
        ).rows  # fmt: skip
        return int(rows[0][1]) if rows and rows[0][0] else -1

    # -- runs -------------------------------------------------------------------------------------
    def write_run(self, r: Run) -> Run:
        now = now_ms()
        r = replace(r, create_time=r.create_time or now, update_time=now)
        if r.state != RUNNING and r.finish_time is None:
            r = replace(r, finish_time=now)
        t = r.trigger
        self.metrics.insert(
            "automation_runs",
            [[r.project, r.run_id, r.automation_id, r.automation, t.kind, t.key, t.dataset, t.upload_id,
              t.inference_set, t.frames, t.source, t.partition, t.offset, r.state, r.message, int(r.retry), r.attempts,
              r.runner, r.gates_evaluated, r.gates_failed, r.create_time, r.update_time, r.finish_time,
              list(t.frame_ids), t.campaign, t.similarity_threshold, time.time_ns()]],
            _RUN_COLUMNS,
        )  # fmt: skip
        return r

    def find_run(self, project: str, run_id: str) -> Run | None:
        rows = self.metrics.query(
            f"SELECT {', '.join(_RUN_COLUMNS[:-1])} FROM automation_runs FINAL"
            " WHERE project = {project:String} AND run_id = {run_id:String}",
            {"project": project, "run_id": run_id},
        ).rows
        return _run(rows[0]) if rows else None

    def get_run(self, project: str, run_id: str) -> Run:
        if not run_id:
            raise InvalidArgument("is empty", field="run_id")
        run = self.find_run(project, run_id)
        if run is None:
            raise NotFound(f"project {project!r} has no automation run {run_id!r}", field="run_id")
        return run

    def list_runs(
        self, project: str, *, automation: str = "", states: Sequence[str] = (), inference_set: str = "", page: Page
    ) -> tuple[list[Run], int]:
        where = ["project = {project:String}"]
        params: dict[str, Any] = {"project": project}
        if automation:
            where.append("automation = {automation:String}")
            params["automation"] = automation
        if states:
            where.append("state IN {states:Array(String)}")
            params["states"] = sorted(set(states))
        if inference_set:
            where.append("inference_set = {inference_set:String}")
            params["inference_set"] = inference_set
        cond = " AND ".join(where)
        total = int(self.metrics.query(f"SELECT count() FROM automation_runs FINAL WHERE {cond}", params).scalar() or 0)
        rows = self.metrics.query(
            f"SELECT {', '.join(_RUN_COLUMNS[:-1])} FROM automation_runs FINAL WHERE {cond}"
            " ORDER BY create_time DESC, run_id LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
            {**params, "limit": page.size, "offset": page.offset},
        ).rows
        return [_run(r) for r in rows], total

    def write_step(self, s: Step) -> Step:
        now = now_ms()
        s = replace(s, start_time=s.start_time or now)
        if s.state != RUNNING and s.finish_time is None:
            s = replace(s, finish_time=now)
        self.metrics.insert(
            "automation_steps",
            [[s.project, s.run_id, s.step, s.action, s.state, s.message, json.dumps(s.result), s.start_time,
              s.finish_time, time.time_ns()]],
            _STEP_COLUMNS,
        )  # fmt: skip
        return s

    def steps(self, project: str, run_ids: Sequence[str]) -> dict[str, list[Step]]:
        """Each run's steps: its actions in order, then its notification."""
        if not run_ids:
            return {}
        rows = self.metrics.query(
            f"SELECT {', '.join(_STEP_COLUMNS[:-1])} FROM automation_steps FINAL"
            " WHERE project = {project:String} AND run_id IN {ids:Array(String)}"
            " ORDER BY run_id, step = 'webhook', toInt32OrZero(splitByChar(':', step)[1])",
            {"project": project, "ids": list(run_ids)},
        ).rows
        out: dict[str, list[Step]] = {}
        for p, run_id, step, action, state, message, result, start, finish in rows:
            finished = as_utc(finish) if finish is not None else None
            loaded = json.loads(result or "{}")
            step_ = Step(str(p), str(run_id), str(step), str(action), str(state), str(message), loaded, as_utc(start),
                         finished)  # fmt: skip
            out.setdefault(str(run_id), []).append(step_)
        return out

    def sent_for_labeling(self, project: str, automation_id: str, day: date, *, besides: str = "") -> int:
        """Frames the rule's runs (but ``besides``) sent for labeling on the UTC ``day``, or are about to
        send (a step cut short after choosing them)."""
        value = self.metrics.query(
            "SELECT sum(length(JSONExtractArrayRaw(result, 'labeling', 'frames'))) FROM automation_steps FINAL"
            " WHERE project = {project:String} AND action = {action:String} AND state != {failed:String}"
            " AND JSONExtractString(result, 'labeling', 'day') = {day:String} AND run_id != {besides:String}"
            " AND run_id IN (SELECT run_id FROM automation_runs FINAL WHERE project = {project:String}"
            " AND automation_id = {automation_id:String})",
            {"project": project, "action": SEND_TO_LABELING, "failed": FAILED, "day": day.isoformat(),
             "besides": besides, "automation_id": automation_id},
        ).scalar()  # fmt: skip
        return int(value or 0)

    def record_delivery(self, project: str, run_id: str, d: Delivery) -> None:
        self.metrics.insert(
            "automation_deliveries",
            [[project, run_id, d.delivery_id, d.attempt, d.event, d.status_code, d.error, d.at, d.duration_seconds]],
            ["project", "run_id", "delivery_id", "attempt", "event", "status_code", "error", "at", "duration_seconds"],
        )

    def deliveries(self, project: str, run_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        if not run_ids:
            return {}
        rows = self.metrics.query(
            "SELECT run_id, delivery_id, attempt, event, status_code, error, at, duration_seconds"
            " FROM automation_deliveries FINAL WHERE project = {project:String} AND run_id IN {ids:Array(String)}"
            " ORDER BY run_id, at, attempt",
            {"project": project, "ids": list(run_ids)},
        ).rows
        out: dict[str, list[Delivery]] = {}
        for run_id, delivery_id, attempt, event, code, error, at, duration in rows:
            out.setdefault(str(run_id), []).append(
                Delivery(str(delivery_id), int(attempt), str(event), int(code), str(error), as_utc(at), float(duration))
            )
        return out

    # -- who runs a run -----------------------------------------------------------------------------
    def claim(self, project: str, run_id: str, attempt: int, runner: str) -> bool:
        """Whether ``runner`` won attempt ``attempt`` of the run: of every consumer that claims it, exactly
        one wins (one insert whose deduplication token names the attempt; the winner is read back)."""
        claim = f"attempt-{attempt}"
        self.metrics.insert(
            "automation_claims",
            [[project, run_id, claim, runner, now_ms()]],
            ["project", "run_id", "claim", "runner", "at"],
            once=f"{project}/{run_id}/{claim}",
        )
        rows = self.metrics.query(
            "SELECT runner FROM automation_claims WHERE project = {project:String} AND run_id = {run_id:String}"
            " AND claim = {claim:String} ORDER BY at, runner LIMIT 1",
            {"project": project, "run_id": run_id, "claim": claim},
        ).rows
        return bool(rows) and str(rows[0][0]) == runner

    def heartbeat(self, project: str, run_id: str, runner: str) -> None:
        self.metrics.insert(
            "automation_heartbeats", [[project, run_id, runner, now_ms()]], ["project", "run_id", "runner", "at"]
        )

    def last_heartbeat(self, project: str, run_id: str) -> datetime | None:
        rows = self.metrics.query(
            "SELECT max(at), count() FROM automation_heartbeats WHERE project = {project:String}"
            " AND run_id = {run_id:String}",
            {"project": project, "run_id": run_id},
        ).rows
        return as_utc(rows[0][0]) if rows and rows[0][1] else None


def _secret_place(r: Rule) -> str:
    return _secret_place_of(r.project, r.automation_id)


def _secret_place_of(project: str, automation_id: str) -> str:
    """What a rule's sealed secret is bound to: it opens only as this rule's."""
    return f"automation/{project}/{automation_id}"


def _rule(row: Sequence[Any], box: SecretBox) -> Rule:
    (project, name, automation_id, description, trigger, actions, url, secret, always, paused, _deleted, ct,
     ut) = row  # fmt: skip
    return Rule(
        project=str(project),
        name=str(name),
        trigger=Trigger(**json.loads(trigger)),
        actions=tuple(Action(**a) for a in json.loads(actions)),
        webhook=_webhook(str(project), str(automation_id), str(url), str(secret), bool(always), box) if url else None,
        description=str(description),
        paused=bool(paused),
        automation_id=str(automation_id),
        create_time=as_utc(ct),
        update_time=as_utc(ut),
    )


def _webhook(project: str, automation_id: str, url: str, sealed: str, always: bool, box: SecretBox) -> Webhook:
    place = _secret_place_of(project, automation_id)
    try:
        return Webhook(url, box.open(sealed, place), always)
    except SecretUnreadable as exc:
        log.error("automation %s of project %s: its webhook secret cannot be opened: %s", automation_id, project, exc)
        return Webhook(url, "", always, unreadable=str(exc), sealed=sealed)


def _run(row: Sequence[Any]) -> Run:
    (project, run_id, automation_id, automation, kind, key, dataset, upload_id, inference_set, frames, source,
     partition, offset, state, message, retry, attempts, runner, evaluated, failed, ct, ut, ft,
     frame_ids, campaign, threshold) = row  # fmt: skip
    trigger = TriggerEvent(str(kind), str(key), str(dataset), str(upload_id), str(inference_set), int(frames),
                           str(source), int(partition), int(offset),
                           tuple(str(f) for f in frame_ids or ()), str(campaign or ""),
                           float(threshold or 0.0))  # fmt: skip
    return Run(
        project=str(project),
        run_id=str(run_id),
        automation_id=str(automation_id),
        automation=str(automation),
        trigger=trigger,
        state=str(state),
        message=str(message),
        retry=bool(retry),
        attempts=int(attempts),
        runner=str(runner),
        gates_evaluated=int(evaluated),
        gates_failed=int(failed),
        create_time=as_utc(ct),
        update_time=as_utc(ut),
        finish_time=as_utc(ft) if ft is not None else None,
    )
