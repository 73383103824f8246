// Automations: the project's rules (a trigger, ordered actions, an optional signed webhook), paused and
// resumed, changed, deleted after a confirmation, made with a form whose refused fields show the service's
// message beside them (each action kind with its own fields, sending to labeling with its frames per run and
// per day); the runs of every rule (deleted ones too) filtered by rule, state and inference set, with what
// each sent to labeling; one run's metrics, gates, started jobs, frames sent to labeling (each with its
// reason, and those over the day's budget) and webhook deliveries. The webhook's secret is write-only: the
// form sends it, no answer carries it back (`has_secret` says one is kept), and the page never shows it.
import { all, rpc } from "../api.js";
import { clearFieldErrors, enumName, fmt, h, href, numberOr, projectInfo, showError, showFieldError, time } from "../ui.js";

const COMPLETE = "AUTOMATION_TRIGGER_KIND_INFERENCE_SET_COMPLETE";
const LABELS = "AUTOMATION_TRIGGER_KIND_LABELS_CHANGED";
const CAMPAIGN_FULL = "AUTOMATION_TRIGGER_KIND_STANDING_CAMPAIGN_FULL";
const TRIGGERS = [
  [COMPLETE, "an inference set's upload is complete"],
  [LABELS, "labels of a dataset changed"],
  [CAMPAIGN_FULL, "a standing campaign's sample is full"],
];
const METRICS = "AUTOMATION_ACTION_KIND_METRICS";
const GATES = "AUTOMATION_ACTION_KIND_GATES";
const LABEL_ISSUES = "AUTOMATION_ACTION_KIND_LABEL_ISSUES";
const NEIGHBORS = "AUTOMATION_ACTION_KIND_NEIGHBORS";
const SEND = "AUTOMATION_ACTION_KIND_SEND_TO_LABELING";
const ACTIONS = [
  [METRICS, "record the metrics"],
  [GATES, "evaluate the regression gates"],
  [LABEL_ISSUES, "rerun the label issues"],
  [NEIGHBORS, "rerun the neighbour job"],
  [SEND, "send frames to labeling"],
];
const ON_SETS = new Set([METRICS, GATES, LABEL_ISSUES]);
// the labeling platforms the labeling bridge serves ("": its default)
const PLATFORMS = [["", "(the labeling bridge's default)"], ["label_studio", "Label Studio"]];
const RUNNING = "AUTOMATION_RUN_STATE_RUNNING";
const RUN_STATES = [RUNNING, "AUTOMATION_RUN_STATE_SUCCEEDED", "AUTOMATION_RUN_STATE_FAILED"];
const RUNS_PAGE = 50;
// how often the runs are read again while the page is open (a new upload's run shows up by itself)
const REFRESH_MS = [2000, 3000, 5000, 8000, 15000];
const num = (v) => (v === undefined || v === null ? 0 : Number(v));
const enc = encodeURIComponent;

// Puts children in el instead of its own, as h() does: arrays flattened, null, undefined and false left out.
function put(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function pill(state, prefix) {
  const name = enumName(state, prefix);
  return h("span", { class: `pill ${name}` }, name);
}

export function runPill(run) {
  return pill(run.state, "AUTOMATION_RUN_STATE_");
}

// "k of n gates passed", or null when the run evaluated none.
export function gatesText(run) {
  const n = num(run.gates_evaluated);
  return n ? `${n - num(run.gates_failed)} of ${n} gates passed` : null;
}

function hostOf(url) {
  try {
    return new URL(url).host || url;
  } catch (err) {
    return url;
  }
}

function describeTrigger(t = {}) {
  const where = t.dataset ? `dataset ${t.dataset}` : "any dataset";
  if (t.kind === LABELS) return `labels of ${fmt(num(t.min_labeled_frames))} frames of ${where} changed`;
  if (t.kind === CAMPAIGN_FULL) return `${t.campaign ? `standing campaign ${t.campaign}` : "a standing campaign"} of ${where} is full`;
  return `an inference set of ${where} is complete${t.inference_set_prefix ? ` (name starts with “${t.inference_set_prefix}”)` : ""}`;
}

function describeAction(a) {
  const label = (ACTIONS.find(([k]) => k === a.kind) || [a.kind, enumName(a.kind, "AUTOMATION_ACTION_KIND_")])[1];
  const bits = [];
  if (ON_SETS.has(a.kind)) bits.push(a.inference_set ? `of ${a.inference_set}` : "of the triggering set");
  if (a.confidence_threshold) bits.push(`confidence ${a.confidence_threshold}`);
  if (a.iou_threshold) bits.push(`IoU ${a.iou_threshold}`);
  if (a.embedding_space) bits.push(`in ${a.embedding_space}`);
  if (a.changed_frames) bits.push("on the frames whose labels changed");
  if (a.kind === SEND) {
    bits.push(`at most ${fmt(num(a.max_frames))} a run and ${fmt(num(a.daily_budget))} a day`);
    if (num(a.min_issues)) bits.push(`once at least ${fmt(num(a.min_issues))} frames are flagged`);
    if (num(a.min_issue_share)) bits.push(`once at least a share of ${a.min_issue_share} is flagged`);
    if (a.platform) bits.push(`on ${a.platform}`);
  }
  return `${label}${bits.length ? " " + bits.join(", ") : ""}`;
}

// The SEND_TO_LABELING step of a run, or null.
function labelingStep(run) {
  return (run.steps || []).find((s) => s.action === SEND && s.labeling) || null;
}

// "3 sent to labeling · 2 over the budget", or null when the run sent nothing (and had no such step).
function sentText(run) {
  const s = labelingStep(run);
  if (!s) return null;
  const l = s.labeling;
  const sent = (l.frames || []).length;
  const skipped = (l.skipped_frame_ids || []).length;
  return `${fmt(sent)} sent to labeling${skipped ? ` · ${fmt(skipped)} over the budget` : ""}`;
}

function describeRunTrigger(t = {}) {
  if (t.kind === LABELS) return `labels of ${fmt(num(t.frames))} frames of ${t.dataset || "?"} changed`;
  if (t.kind === CAMPAIGN_FULL) return `standing campaign ${t.campaign || "?"} of ${t.dataset || "?"} is full · ${fmt(num(t.frames))} frames kept`;
  return [h("span", { class: "trigger-set" }, t.inference_set || "?"), ` complete · ${t.dataset || "?"} · ${fmt(num(t.frames))} frames`];
}

export async function render(main, ctx) {
  const timers = new Set();
  const cleanup = () => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
    window.removeEventListener("hashchange", left);
  };
  const left = () => { if (!ctx.isCurrent()) cleanup(); };
  window.addEventListener("hashchange", left);
  const info = await projectInfo(ctx.project);
  const runId = ctx.query.get("run");
  if (runId) await renderRun(main, ctx, info, runId, timers);
  else await renderRules(main, ctx, info, timers);
  return cleanup;
}

// Calls fn after each wait of REFRESH_MS (the last repeated) while the page is current; fn returns true
// when what it follows changed, which starts the waits again from the shortest, and "done" to stop.
function every(ctx, timers, fn) {
  let step = 0;
  const tick = async () => {
    if (!ctx.isCurrent()) return;
    let changed = false;
    if (document.visibilityState !== "hidden") {
      try {
        changed = await fn();
      } catch (err) {
        changed = false; // a failed read is tried again at the next tick
      }
    }
    if (!ctx.isCurrent() || changed === "done") return;
    step = changed ? 0 : Math.min(step + 1, REFRESH_MS.length - 1);
    const t = setTimeout(() => { timers.delete(t); tick(); }, REFRESH_MS[step]);
    timers.add(t);
  };
  const t = setTimeout(() => { timers.delete(t); tick(); }, REFRESH_MS[0]);
  timers.add(t);
}

// -- the rules, the form, the runs ----------------------------------------------------------------------
async function renderRules(main, ctx, info, timers) {
  const { project } = ctx;
  const base = `/p/${enc(project)}/automations`;
  let rules = await all("analysis", "ListAutomations", { project }, "automations", 1000);
  const knownRules = new Set(rules.map((r) => r.name)); // also the deleted ones whose runs were seen

  // -- rules ------------------------------------------------------------------------------------------
  const rulesBox = h("div", { id: "automation-rules-box" });
  const lastRuns = new Map(); // rule name -> its last run's cell

  function ruleRow(rule) {
    const w = rule.webhook;
    const last = h("td", { class: "last-run" }, h("span", { class: "muted" }, "…"));
    lastRuns.set(rule.name, last);
    const buttons = h("td", { class: "actions" });
    const row = h("tr", { id: `rule-${rule.name}`, dataset: { name: rule.name, paused: rule.paused ? "true" : "false" } },
      h("td", {}, h("strong", { class: "rule-name" }, rule.name),
        rule.description ? h("div", { class: "muted rule-description" }, rule.description) : null),
      h("td", { class: "rule-trigger" }, describeTrigger(rule.trigger)),
      h("td", { class: "rule-actions" }, h("ol", {}, (rule.actions || []).map((a) => h("li", {}, describeAction(a))))),
      h("td", { class: "rule-webhook" }, w
        ? [h("span", { class: "webhook-host" }, hostOf(w.url || "")), " ",
          h("span", { class: "muted" }, w.always ? "every run" : "on failure"),
          w.has_secret ? [" ", h("span", { class: "badge secret-kept", title: "a signing secret is kept; it is never shown" }, "secret kept")] : null]
        : h("span", { class: "muted" }, "none")),
      h("td", { class: "rule-state" }, h("span", { class: `pill ${rule.paused ? "paused" : "active"}` }, rule.paused ? "paused" : "active")),
      last, buttons);
    const message = h("span", { class: "row-message", role: "status" });
    const fail = (err) => {
      message.textContent = err.message;
      message.className = "row-message error-text";
    };
    const setPaused = async (paused, button) => {
      button.disabled = true;
      try {
        const r = await rpc("analysis", "UpdateAutomation", { project, name: rule.name, paused });
        replaceRule(r.automation);
      } catch (err) {
        button.disabled = false;
        fail(err);
      }
    };
    const confirmDelete = () => {
      const yes = h("button", { type: "button", class: "danger confirm-delete", onclick: async () => {
        yes.disabled = true;
        try {
          await rpc("analysis", "DeleteAutomation", { project, name: rule.name });
          rules = rules.filter((r) => r.name !== rule.name);
          if (editing && editing.name === rule.name) startNew();
          drawRules();
          runs.reload();
        } catch (err) {
          yes.disabled = false;
          fail(err);
        }
      } }, "Delete it");
      const no = h("button", { type: "button", class: "cancel-delete", onclick: drawButtons }, "Keep it");
      put(buttons, h("div", { class: "confirm", role: "group", "aria-label": `delete ${rule.name}?` },
        h("span", {}, `Delete ${rule.name}? It runs no more; its runs stay readable.`), " ", yes, " ", no), message);
      yes.focus();
    };
    function drawButtons() {
      const toggle = rule.paused
        ? h("button", { type: "button", class: "resume", onclick: (e) => setPaused(false, e.target) }, "Resume")
        : h("button", { type: "button", class: "pause", onclick: (e) => setPaused(true, e.target) }, "Pause");
      put(buttons, toggle, " ",
        h("button", { type: "button", class: "edit", onclick: () => startEdit(rule) }, "Change"), " ",
        h("button", { type: "button", class: "danger delete", onclick: confirmDelete }, "Delete"), " ", message);
    }
    drawButtons();
    return row;
  }

  function replaceRule(rule) {
    rules = rules.map((r) => (r.name === rule.name ? rule : r));
    if (!rules.some((r) => r.name === rule.name)) rules = [...rules, rule].sort((a, b) => a.name.localeCompare(b.name));
    knownRules.add(rule.name);
    drawRules();
  }

  function drawRules() {
    lastRuns.clear();
    put(rulesBox, rules.length
      ? h("table", { class: "data", id: "automation-rules" },
        h("thead", {}, h("tr", {}, ["Rule", "When", "Then", "Webhook", "State", "Last run", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rules.map(ruleRow)))
      : h("p", { class: "muted", id: "no-automations" }, "No rule yet: make one below."));
    fillLastRuns();
    runs.drawFilters();
  }

  async function fillLastRuns() {
    await Promise.all([...lastRuns].map(async ([name, cell]) => {
      try {
        const r = await rpc("analysis", "ListAutomationRuns", { project, automation: name, page: { page_size: 1 } });
        const run = (r.runs || [])[0];
        if (cell !== lastRuns.get(name)) return;
        put(cell, run
          ? h("a", { href: href(base, { run: run.run_id }), class: "last-run-link" }, runPill(run),
            gatesText(run) ? ` ${gatesText(run)}` : "",
            sentText(run) ? h("div", { class: "last-run-sent" }, sentText(run)) : null,
            h("div", { class: "muted" }, time(run.create_time)))
          : h("span", { class: "muted" }, "never ran"));
        cell.dataset.state = run ? run.state : "";
      } catch (err) {
        put(cell, h("span", { class: "muted" }, "–"));
      }
    }));
  }

  // -- the form ---------------------------------------------------------------------------------------
  let editing = null; // the rule being changed, or null for a new one
  const form = h("form", { class: "card automation-form", id: "automation-form", novalidate: true,
    onsubmit: (e) => { e.preventDefault(); save(); } });
  const heading = h("h2", {});
  const formMessage = h("p", { id: "rule-form-message", role: "status" });
  const inputs = {
    name: h("input", { id: "rule-name", name: "name", autocomplete: "off", spellcheck: "false", maxlength: "63",
      pattern: "[a-z0-9][a-z0-9_.\\-]{0,62}", placeholder: "release-gates" }),
    description: h("input", { id: "rule-description", name: "description", autocomplete: "off" }),
    kind: h("select", { id: "rule-trigger-kind", name: "trigger_kind", onchange: () => drawTrigger() },
      TRIGGERS.map(([k, label]) => h("option", { value: k }, label))),
    dataset: h("select", { id: "rule-trigger-dataset", name: "trigger_dataset" },
      h("option", { value: "" }, "(any dataset)"), info.datasets.map((d) => h("option", { value: d.name }, d.name))),
    prefix: h("input", { id: "rule-trigger-prefix", name: "inference_set_prefix", autocomplete: "off", placeholder: "(every set)" }),
    minFrames: h("input", { id: "rule-trigger-min-frames", name: "min_labeled_frames", type: "number", min: "1", step: "1", value: "500" }),
    campaign: h("input", { id: "rule-trigger-campaign", name: "campaign", autocomplete: "off", spellcheck: "false", placeholder: "(any campaign)" }),
    url: h("input", { id: "rule-webhook-url", name: "webhook_url", type: "url", inputmode: "url", autocomplete: "off",
      spellcheck: "false", placeholder: "the receiver's http(s) URL" }),
    // write-only: typed here, sent once, never read back into the page
    secret: h("input", { id: "rule-webhook-secret", name: "webhook_secret", type: "password", autocomplete: "new-password",
      spellcheck: "false" }),
    always: h("input", { id: "rule-webhook-always", name: "webhook_always", type: "checkbox" }),
  };
  const secretKept = h("span", { class: "badge secret-kept", id: "secret-kept", hidden: true }, "secret kept");
  const secretHelp = h("span", { class: "muted help", id: "secret-help" });

  // A labelled field whose errors are shown beside it: `path` is the field as the service names it
  // (under the rule: "webhook.url", "actions[1].embedding_space").
  function field(label, input, path, extra) {
    return h("label", { class: "field", dataset: { field: path } }, h("span", {}, label), input, extra || null,
      h("span", { class: "field-error", role: "alert", hidden: true }));
  }

  const triggerParams = h("div", { class: "toolbar trigger-params" });
  const triggerBox = h("div", { class: "trigger-field", dataset: { field: "trigger" } }, triggerParams,
    h("span", { class: "field-error", role: "alert", hidden: true }));
  function drawTrigger() {
    const kind = inputs.kind.value;
    put(triggerParams,
      field("When", inputs.kind, "trigger.kind"),
      field("Dataset", inputs.dataset, "trigger.dataset"),
      kind === COMPLETE ? field("Inference sets named", inputs.prefix, "trigger.inference_set_prefix",
        h("span", { class: "muted help" }, "starting with; empty: every set")) : null,
      kind === LABELS ? field("Labels of at least (frames)", inputs.minFrames, "trigger.min_labeled_frames") : null,
      kind === CAMPAIGN_FULL ? field("Standing campaign", inputs.campaign, "trigger.campaign") : null);
    drawActions();
  }

  let actions = [];
  const actionsBox = h("ol", { class: "action-rows", id: "rule-actions" });
  const actionsField = h("div", { class: "actions-field", dataset: { field: "actions" } },
    h("span", { class: "field-label" }, "Then, in this order"), actionsBox,
    h("span", { class: "field-error", role: "alert", hidden: true }),
    h("p", {}, h("button", { type: "button", id: "add-action", onclick: () => {
      const used = new Set(actions.map((a) => a.kind));
      const next = ACTIONS.map(([k]) => k).find((k) => !used.has(k)) || METRICS;
      actions.push({ kind: next });
      drawActions();
    } }, "Add an action")));

  function drawActions() {
    const sets = info.inferenceSets;
    const spaces = info.project.embedding_spaces || [];
    // these triggers name no inference set: an action that reads one names it
    const labelsTrigger = inputs.kind.value === LABELS || inputs.kind.value === CAMPAIGN_FULL;
    const campaignTrigger = inputs.kind.value === CAMPAIGN_FULL;
    // a number input of an action's parameter, kept on the action as typed
    const number = (a, key, cls, attrs) => h("input", { class: cls, type: "number", value: a[key] ?? "",
      oninput: (e) => { a[key] = e.target.value; }, ...attrs });
    put(actionsBox, ...actions.map((a, i) => {
      const at = `actions[${i}]`;
      const kind = h("select", { class: "action-kind", "aria-label": `action ${i + 1}`, onchange: (e) => {
        actions[i] = { kind: e.target.value };
        drawActions();
      } }, ACTIONS.map(([k, label]) => h("option", { value: k, selected: k === a.kind ? true : null }, label)),
      // a kind this page does not know (a rule made elsewhere) stays as it is
      ACTIONS.some(([k]) => k === a.kind) ? null
        : h("option", { value: a.kind, selected: true }, enumName(a.kind, "AUTOMATION_ACTION_KIND_")));
      const params = [];
      if (ON_SETS.has(a.kind)) {
        const setSel = h("select", { class: "action-inference-set", onchange: (e) => { a.inference_set = e.target.value; } },
          h("option", { value: "" }, labelsTrigger ? "(choose one)" : "(the triggering set)"),
          sets.map((s) => h("option", { value: s.name, selected: s.name === a.inference_set ? true : null }, `${s.name} · ${s.dataset}`)));
        params.push(field("Inference set", setSel, `${at}.inference_set`));
      }
      if (a.kind === METRICS || a.kind === GATES) {
        const conf = h("input", { class: "action-confidence", type: "number", min: "0", max: "1", step: "0.05",
          placeholder: "default", value: a.confidence_threshold ?? "", oninput: (e) => { a.confidence_threshold = e.target.value; } });
        params.push(field("Confidence threshold", conf, `${at}.confidence_threshold`));
      }
      if (a.kind === GATES && info.detection) {
        const iou = h("input", { class: "action-iou", type: "number", min: "0", max: "1", step: "0.05", placeholder: "0.5",
          value: a.iou_threshold ?? "", oninput: (e) => { a.iou_threshold = e.target.value; } });
        params.push(field("IoU threshold", iou, `${at}.iou_threshold`));
      }
      if (a.kind === NEIGHBORS) {
        if (!a.embedding_space && spaces.length) a.embedding_space = spaces[0].name;
        const space = h("select", { class: "action-embedding-space", onchange: (e) => { a.embedding_space = e.target.value; } },
          spaces.length ? null : h("option", { value: "" }, "(the project has none)"),
          spaces.map((s) => h("option", { value: s.name, selected: s.name === a.embedding_space ? true : null }, s.name)));
        params.push(field("Embedding space", space, `${at}.embedding_space`));
      }
      if (a.kind === METRICS && inputs.kind.value === LABELS && !info.detection) {
        // the frames the trigger counted: a frame filter, which the metrics of box, mask and keypoint projects lack
        const changed = h("input", { class: "action-changed-frames", type: "checkbox", checked: a.changed_frames ? true : null,
          onchange: (e) => { a.changed_frames = e.target.checked; } });
        params.push(h("label", { class: "check", dataset: { field: `${at}.changed_frames` } }, changed,
          " only the frames whose labels changed", h("span", { class: "field-error", role: "alert", hidden: true })));
      }
      if (a.kind === SEND) {
        params.push(
          field("Frames per run", number(a, "max_frames", "action-max-frames", { min: "1", max: "5000", step: "1", placeholder: "1 to 5,000" }),
            `${at}.max_frames`),
          field("Daily budget (frames)", number(a, "daily_budget", "action-daily-budget", { min: "1", step: "1", placeholder: "at least 1" }),
            `${at}.daily_budget`));
        // a full campaign sends the frames it kept: the thresholds on label issues do not apply
        if (!campaignTrigger) {
          params.push(
            field("Min. flagged frames", number(a, "min_issues", "action-min-issues", { min: "0", step: "1", placeholder: "any" }),
              `${at}.min_issues`),
            field("Min. flagged share", number(a, "min_issue_share", "action-min-issue-share", { min: "0", max: "1", step: "0.05", placeholder: "any" }),
              `${at}.min_issue_share`));
        }
        const known = PLATFORMS.some(([k]) => k === (a.platform || ""));
        const platform = h("select", { class: "action-platform", onchange: (e) => { a.platform = e.target.value; } },
          PLATFORMS.map(([k, label]) => h("option", { value: k, selected: k === (a.platform || "") ? true : null }, label)),
          known ? null : h("option", { value: a.platform, selected: true }, a.platform));
        params.push(field("Platform", platform, `${at}.platform`),
          h("span", { class: "muted help send-help" }, campaignTrigger
            ? "sends the frames the campaign kept, each with why"
            : "sends the worst frames the label-issues action before it flags, each with its reason"));
      }
      const move = (to) => {
        const [x] = actions.splice(i, 1);
        actions.splice(to, 0, x);
        drawActions();
      };
      return h("li", { class: "action-row", dataset: { index: i, kind: a.kind } },
        h("div", { class: "toolbar" }, field("Action", kind, `${at}.kind`), params,
          h("span", { class: "action-buttons" },
            h("button", { type: "button", class: "move-up", "aria-label": `move action ${i + 1} up`, disabled: i === 0, onclick: () => move(i - 1) }, "↑"),
            h("button", { type: "button", class: "move-down", "aria-label": `move action ${i + 1} down`, disabled: i === actions.length - 1, onclick: () => move(i + 1) }, "↓"),
            h("button", { type: "button", class: "remove-action", "aria-label": `remove action ${i + 1}`, onclick: () => { actions.splice(i, 1); drawActions(); } }, "✕"))));
    }));
  }

  const cancelEdit = h("button", { type: "button", id: "cancel-edit", hidden: true, onclick: () => startNew() }, "Make a new rule instead");
  const submit = h("button", { type: "submit", class: "primary", id: "save-rule" });
  const nameField = field("Name", inputs.name, "name");
  form.append(heading,
    h("div", { class: "toolbar" }, nameField, field("Description", inputs.description, "description")),
    triggerBox,
    actionsField,
    h("fieldset", { class: "webhook", dataset: { field: "webhook" } }, h("legend", {}, "Webhook (optional)"),
      h("div", { class: "toolbar" },
        field("URL", inputs.url, "webhook.url"),
        field("Secret", inputs.secret, "webhook.secret", [" ", secretKept, secretHelp]),
        h("label", { class: "check", dataset: { field: "webhook.always" } }, inputs.always, " notify after every run, not only when a gate or the run failed",
          h("span", { class: "field-error", role: "alert", hidden: true }))),
      h("span", { class: "field-error", role: "alert", hidden: true })),
    h("p", {}, submit, " ", cancelEdit, " ", formMessage));

  const clearErrors = () => clearFieldErrors(form, formMessage);

  const fieldError = (err) => showFieldError(form, formMessage, err, { path: String(err.field || "").replace(/^automation\./, ""), notDone: "Not saved" });

  function ruleFromForm() {
    const kind = inputs.kind.value;
    return {
      trigger: {
        kind,
        dataset: inputs.dataset.value || undefined,
        inference_set_prefix: kind === COMPLETE ? inputs.prefix.value.trim() || undefined : undefined,
        min_labeled_frames: kind === LABELS ? numberOr(inputs.minFrames.value) : undefined,
        campaign: kind === CAMPAIGN_FULL ? inputs.campaign.value.trim() || undefined : undefined,
      },
      // an action keeps the parameters the form has no field for; one of a kind it does not know, all of them
      actions: actions.map((a) => {
        if (!ACTIONS.some(([k]) => k === a.kind)) return { ...a };
        const send = a.kind === SEND;
        const thresholds = send && kind !== CAMPAIGN_FULL; // a full campaign's rule takes none
        return {
          ...a,
          inference_set: ON_SETS.has(a.kind) ? a.inference_set || undefined : undefined,
          confidence_threshold: a.kind === METRICS || a.kind === GATES ? numberOr(a.confidence_threshold) : undefined,
          iou_threshold: a.kind === GATES ? numberOr(a.iou_threshold) : undefined,
          embedding_space: a.kind === NEIGHBORS ? a.embedding_space || undefined : undefined,
          changed_frames: a.kind === METRICS && kind === LABELS && !info.detection ? Boolean(a.changed_frames) || undefined : undefined,
          max_frames: send ? numberOr(a.max_frames) : undefined,
          daily_budget: send ? numberOr(a.daily_budget) : undefined,
          min_issues: thresholds ? numberOr(a.min_issues) : undefined,
          min_issue_share: thresholds ? numberOr(a.min_issue_share) : undefined,
          platform: send ? a.platform || undefined : undefined,
        };
      }),
    };
  }

  async function save() {
    clearErrors();
    submit.disabled = true;
    formMessage.textContent = "Saving…";
    formMessage.className = "muted";
    const url = inputs.url.value.trim();
    const secret = inputs.secret.value;
    const { trigger, actions: acts } = ruleFromForm();
    const wantsHook = Boolean(url || secret || inputs.always.checked);
    try {
      let saved;
      if (editing) {
        const request = { project, name: editing.name, description: inputs.description.value, trigger, actions: acts, replace_actions: true };
        // an empty secret keeps the one kept; no URL removes the webhook
        if (wantsHook) request.webhook = { url, secret: secret || undefined, always: inputs.always.checked };
        else if (editing.webhook) request.remove_webhook = true;
        saved = (await rpc("analysis", "UpdateAutomation", request)).automation;
      } else {
        const rule = { name: inputs.name.value.trim(), description: inputs.description.value.trim() || undefined, trigger, actions: acts };
        if (wantsHook) rule.webhook = { url, secret, always: inputs.always.checked };
        saved = (await rpc("analysis", "CreateAutomation", { project, automation: rule })).automation;
      }
      inputs.secret.value = "";
      replaceRule(saved);
      startNew();
      formMessage.textContent = `Saved ${saved.name}${saved.webhook && saved.webhook.has_secret ? " (its secret is kept, and never shown)" : ""}.`;
      formMessage.className = "ok";
    } catch (err) {
      fieldError(err);
    } finally {
      submit.disabled = false;
    }
  }

  function fill(rule) {
    const t = rule ? rule.trigger || {} : {};
    inputs.name.value = rule ? rule.name : "";
    inputs.name.readOnly = Boolean(rule);
    inputs.description.value = rule ? rule.description || "" : "";
    inputs.kind.value = t.kind || COMPLETE;
    inputs.dataset.value = t.dataset || "";
    inputs.prefix.value = t.inference_set_prefix || "";
    inputs.minFrames.value = t.min_labeled_frames ? String(t.min_labeled_frames) : "500";
    inputs.campaign.value = t.campaign || "";
    const w = rule && rule.webhook;
    inputs.url.value = w ? w.url || "" : "";
    inputs.secret.value = "";
    inputs.always.checked = Boolean(w && w.always);
    secretKept.hidden = !(w && w.has_secret);
    secretHelp.textContent = w && w.has_secret
      ? "write-only: leave empty to keep the one kept, or type a new one"
      : "16 to 256 characters; write-only: it signs each delivery and is never shown again";
    actions = rule ? (rule.actions || []).map((a) => ({ ...a })) : [{ kind: METRICS }, { kind: GATES }];
    heading.textContent = rule ? `Change ${rule.name}` : "New rule";
    submit.textContent = rule ? "Save the changes" : "Make the rule";
    cancelEdit.hidden = !rule;
    form.dataset.mode = rule ? "edit" : "new";
    drawTrigger();
  }
  function startNew() {
    editing = null;
    clearErrors();
    fill(null);
  }
  function startEdit(rule) {
    editing = rule;
    clearErrors();
    fill(rule);
    form.scrollIntoView({ block: "start" });
    inputs.description.focus();
  }

  // -- runs -------------------------------------------------------------------------------------------
  const runs = runsSection(ctx, info, base, knownRules, () => fillLastRuns());

  startNew();
  drawRules();
  put(main,
    h("h1", {}, "Automations"),
    h("p", { class: "muted" }, "Rules that run the loop by themselves: when an inference set's upload is complete, a dataset's labels change ",
      "or a standing campaign's sample is full, record the metrics, evaluate the regression gates, rerun jobs, send frames to labeling ",
      "(within a budget per run and per day), and tell a webhook. Each run is recorded below."),
    h("h2", {}, "Rules"), rulesBox,
    form,
    runs.element);
  await runs.reload();
  every(ctx, timers, () => runs.refresh());
}

// A run's SEND_TO_LABELING outcome in the runs table: frames sent (their reasons on hover), those over the
// day's budget, the request; "–" for a run without that step.
function labelingCell(run) {
  const s = labelingStep(run);
  if (!s) return h("span", { class: "muted" }, "–");
  const l = s.labeling;
  const frames = l.frames || [];
  const skipped = l.skipped_frame_ids || [];
  return [
    h("span", { class: "sent-count", dataset: { sent: frames.length, skipped: skipped.length },
      title: frames.map((f) => `${f.frame_id}: ${f.reason || ""}`).join("\n") || null },
    `${fmt(frames.length)} frame${frames.length === 1 ? "" : "s"} sent`),
    skipped.length ? h("span", { class: "sent-skipped" }, ` · ${fmt(skipped.length)} over the budget`) : null,
    l.request_id ? h("div", { class: "muted sent-request" }, `request ${l.request_id}`) : null,
    !frames.length && (l.note || s.message) ? h("div", { class: "muted sent-note" }, l.note || s.message) : null,
  ];
}

// The runs table with its filters (kept in the URL), a page at a time.
function runsSection(ctx, info, base, knownRules, onRefreshed) {
  const { project } = ctx;
  const q = ctx.query;
  const filters = { automation: q.get("automation") || "", state: q.get("state") || "", inference_set: q.get("inference_set") || "" };
  if (filters.automation) knownRules.add(filters.automation);
  const filterBox = h("form", { class: "toolbar", id: "run-filters", onsubmit: (e) => e.preventDefault() });
  const body = h("div", { id: "runs-box" });
  const more = h("button", { type: "button", id: "more-runs", hidden: true, onclick: () => load(false) }, "Show more runs");
  const status = h("span", { class: "muted", id: "runs-status", role: "status" });
  const refreshButton = h("button", { type: "button", id: "refresh-runs", onclick: () => reload() }, "Refresh");
  let token = "";
  let shown = [];
  let firstPage = "";
  let loading = null;
  let seq = 0; // the latest first-page read: an older answer arriving late is dropped

  function option(value, label, current) {
    return h("option", { value, selected: value === current ? true : null }, label);
  }
  function drawFilters() {
    const set = (k) => (e) => {
      filters[k] = e.target.value;
      history.replaceState(null, "", href(base, filters));
      reload();
    };
    put(filterBox,
      h("label", { class: "field" }, h("span", {}, "Rule"),
        h("select", { id: "runs-automation", onchange: set("automation") }, option("", "(every rule)", filters.automation),
          [...knownRules].sort().map((n) => option(n, n, filters.automation)))),
      h("label", { class: "field" }, h("span", {}, "State"),
        h("select", { id: "runs-state", onchange: set("state") }, option("", "(any)", filters.state),
          RUN_STATES.map((s) => option(s, enumName(s, "AUTOMATION_RUN_STATE_"), filters.state)))),
      h("label", { class: "field" }, h("span", {}, "Inference set"),
        h("select", { id: "runs-inference-set", onchange: set("inference_set") }, option("", "(any)", filters.inference_set),
          [...new Set([...info.inferenceSets.map((s) => s.name), filters.inference_set].filter(Boolean))]
            .map((n) => option(n, n, filters.inference_set)))),
      refreshButton, status);
  }

  function request(pageToken) {
    return {
      project,
      automation: filters.automation || undefined,
      states: filters.state ? [filters.state] : undefined,
      inference_set: filters.inference_set || undefined,
      page: { page_size: RUNS_PAGE, page_token: pageToken || undefined },
    };
  }

  function row(run) {
    const gates = gatesText(run);
    return h("tr", { dataset: { runId: run.run_id, state: run.state, automation: run.automation } },
      h("td", {}, h("a", { href: href(base, { run: run.run_id }), class: "run-link" }, run.run_id)),
      h("td", { class: "run-rule" }, run.automation),
      h("td", { class: "run-state" }, runPill(run), run.message && run.state === "AUTOMATION_RUN_STATE_FAILED"
        ? h("div", { class: "muted run-message" }, run.message) : null),
      h("td", { class: "run-trigger" }, describeRunTrigger(run.trigger)),
      h("td", { class: `run-gates${num(run.gates_failed) ? " failed" : ""}` }, gates || h("span", { class: "muted" }, "–")),
      h("td", { class: "run-labeling" }, labelingCell(run)),
      h("td", { class: "num run-attempts" }, String(num(run.attempts))),
      h("td", {}, time(run.create_time)),
      h("td", {}, run.finish_time ? time(run.finish_time) : h("span", { class: "muted" }, "–")));
  }

  function draw() {
    put(body, shown.length
      ? h("table", { class: "data", id: "automation-runs" },
        h("thead", {}, h("tr", {}, ["Run", "Rule", "State", "Trigger", "Gates", "Sent to labeling", "Attempts", "Started", "Finished"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, shown.map(row)))
      : h("p", { class: "muted", id: "no-runs" }, filters.automation || filters.state || filters.inference_set
        ? "No run matches these filters." : "No run yet: a rule runs when its trigger happens."));
    more.hidden = !token;
  }

  async function load(reset) {
    more.disabled = true;
    const mine = reset ? ++seq : seq;
    try {
      const r = await rpc("analysis", "ListAutomationRuns", request(reset ? "" : token));
      if (mine !== seq) return;
      const list = r.runs || [];
      if (reset) {
        shown = list;
        firstPage = JSON.stringify(list);
      } else shown = shown.concat(list);
      token = (r.page && r.page.next_page_token) || "";
      let grew = false;
      for (const run of list) {
        if (!knownRules.has(run.automation)) { knownRules.add(run.automation); grew = true; }
      }
      if (grew) drawFilters();
      status.textContent = "";
      draw();
    } catch (err) {
      if (mine !== seq) return;
      status.textContent = "";
      showError(body, err);
    } finally {
      more.disabled = false;
    }
  }

  function reload() {
    const p = load(true).then(() => onRefreshed());
    loading = p;
    return p.finally(() => { if (loading === p) loading = null; });
  }

  // Reads the first page again; draws it (and the rules' last runs) only when it changed. True when it did.
  async function refresh() {
    if (loading) return false;
    const r = await rpc("analysis", "ListAutomationRuns", request(""));
    const text = JSON.stringify(r.runs || []);
    if (text === firstPage) return false;
    await reload();
    return true;
  }

  drawFilters();
  const element = h("section", { id: "runs" }, h("h2", {}, "Runs"), filterBox, body, h("p", {}, more));
  return { element, reload, refresh, drawFilters };
}

// -- one run ---------------------------------------------------------------------------------------------
async function renderRun(main, ctx, info, runId, timers) {
  const { project } = ctx;
  const base = `/p/${enc(project)}`;
  const list = `${base}/automations`;
  let run = (await rpc("analysis", "GetAutomationRun", { project, run_id: runId })).run;
  const box = h("div", { id: "automation-run", dataset: { runId } });
  put(main, h("p", {}, h("a", { href: href(list) }, "← Automations")), h("h1", {}, `Run ${runId}`), box);

  function draw() {
    box.dataset.state = run.state || "";
    const t = run.trigger || {};
    const set = t.inference_set || "";
    const gates = gatesText(run);
    const facts = [
      ["Rule", h("a", { href: href(list, { automation: run.automation }), id: "run-rule" }, run.automation)],
      ["State", [runPill(run), run.message ? h("span", { class: "run-message" }, ` ${run.message}`) : ""]],
      ["Gates", gates ? h("span", { id: "run-gates-summary", class: num(run.gates_failed) ? "failed" : "passed" }, gates) : "–"],
      ["Attempts", String(num(run.attempts))],
      ["Trigger", t.kind === LABELS ? `labels of ${fmt(num(t.frames))} frames changed`
        : t.kind === CAMPAIGN_FULL ? `standing campaign ${t.campaign || "?"} is full (${fmt(num(t.frames))} frames kept)`
          : "an inference set's upload is complete"],
      ["Dataset", t.dataset || "–"],
    ];
    if (t.campaign) {
      // its kept frames are the segment of its name, in its pool
      facts.push(["Standing campaign", [
        h("a", { id: "run-campaign", href: href(`${base}/examples`, { dataset: t.dataset, segment: t.campaign }) }, t.campaign),
        t.similarity_threshold ? h("span", { class: "muted" }, ` (cosine similarity ≥ ${t.similarity_threshold})`) : null]]);
    }
    if (set) facts.push(["Inference set", h("a", { href: href(`${base}/performance`, { inference_set: set }), id: "run-inference-set" }, set)]);
    if (t.upload_id) facts.push(["Upload", `${t.upload_id} (${fmt(num(t.frames))} frames)`]);
    if (t.source) facts.push(["Event", t.source]);
    facts.push(["Started", time(run.create_time)], ["Updated", time(run.update_time)],
      ["Finished", run.finish_time ? time(run.finish_time) : "–"]);

    const steps = (run.steps || []).filter((s) => s.action && s.action !== "AUTOMATION_ACTION_KIND_UNSPECIFIED");
    const notice = (run.steps || []).find((s) => !s.action || s.action === "AUTOMATION_ACTION_KIND_UNSPECIFIED");
    const deliveries = run.deliveries || [];
    put(box,
      h("table", { class: "data run-facts", id: "run-facts" }, h("tbody", {},
        facts.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))))),
      h("h2", {}, "Actions"),
      h("div", { id: "run-steps" }, steps.length ? steps.map((s, i) => stepView(s, i, t)) : h("p", { class: "muted" }, "No action has run yet.")),
      h("h2", {}, "Webhook"),
      notice ? h("p", { id: "run-notice" }, pill(notice.state, "AUTOMATION_RUN_STATE_"), " ", notice.message || "") : null,
      deliveries.length
        ? h("table", { class: "data", id: "run-deliveries" },
          h("thead", {}, h("tr", {}, ["Delivery", "Attempt", "Event", "Status", "Error", "Time", "Took"].map((x) => h("th", { scope: "col" }, x)))),
          h("tbody", {}, deliveries.map((d) => h("tr", { dataset: { attempt: num(d.attempt), status: num(d.status_code) } },
            h("td", {}, d.delivery_id), h("td", { class: "num" }, String(num(d.attempt))), h("td", {}, d.event || "–"),
            h("td", { class: `num delivery-status ${num(d.status_code) >= 200 && num(d.status_code) < 300 ? "ok" : "bad"}` },
              num(d.status_code) ? String(d.status_code) : "no answer"),
            h("td", {}, d.error || "–"), h("td", {}, time(d.time)),
            h("td", { class: "num" }, `${fmt(num(d.duration_seconds), 2)} s`)))))
        : h("p", { class: "muted", id: "no-deliveries" }, "Nothing was sent: the rule has no webhook, or the run needed no notification."));
  }

  function stepView(s, i, t) {
    const label = (ACTIONS.find(([k]) => k === s.action) || [s.action, enumName(s.action, "AUTOMATION_ACTION_KIND_")])[1];
    const metrics = Object.entries(s.metrics || {}).sort(([a], [b]) => a.localeCompare(b));
    const gates = s.gates || [];
    const set = t.inference_set || "";
    return h("section", { class: "card run-step", dataset: { action: s.action, state: s.state || "" } },
      h("h3", {}, `${i + 1}. ${label} `, pill(s.state, "AUTOMATION_RUN_STATE_")),
      s.message ? h("p", { class: "muted step-message" }, s.message) : null,
      h("p", { class: "muted" }, `${time(s.start_time)} → ${s.finish_time ? time(s.finish_time) : "…"}`),
      metrics.length ? h("table", { class: "data run-metrics" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Figure"), h("th", { scope: "col", class: "num" }, "Value"))),
        h("tbody", {}, metrics.map(([k, v]) => h("tr", { dataset: { metric: k } }, h("td", {}, k), h("td", { class: "num" }, fmt(Number(v), 4)))))) : null,
      gates.length ? h("table", { class: "data run-gates" },
        h("thead", {}, h("tr", {}, ["Result", "Segment", "Metric", "Minimum", "Value", "Frames"].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, gates.map((g) => {
          const gate = g.gate || {};
          const metric = gate.class_id !== undefined ? `${gate.metric} of ${info.className(gate.class_id)}` : gate.metric;
          return h("tr", { class: g.passed ? "gate-pass" : "gate-fail", dataset: { segment: g.segment } },
            h("td", {}, h("span", { class: `verdict ${g.passed ? "pass" : "fail"}` }, g.passed ? "PASS" : "FAIL")),
            h("td", {}, h("a", { class: "segment-link", href: href(`${base}/examples`, { dataset: t.dataset, segment: g.segment, inference_set: set }) }, g.segment)),
            h("td", {}, metric || "–"), h("td", { class: "num" }, fmt(num(gate.minimum), 4)),
            h("td", { class: "num" }, fmt(num(g.value), 4)), h("td", { class: "num" }, fmt(num(g.frames))));
        }))) : null,
      s.job_id ? h("p", {}, "Started job ", h("a", { class: "job-link", href: href(`${base}/jobs`, { job: s.job_id }) }, s.job_id)) : null,
      s.labeling ? labelingView(s.labeling) : null);
  }

  // What a step that sends frames to labeling read and sent: each frame with its reason, those over the day's
  // budget, the request, and on a full campaign's run the campaign (its segment).
  function labelingView(l) {
    const frames = l.frames || [];
    const skipped = l.skipped_frame_ids || [];
    const sent = frames.length;
    const dataset = l.dataset || "";
    const frameLink = (fid) => h("a", { class: "frame-link", href: href(`${base}/frame/${enc(dataset)}/${enc(fid)}`) }, fid);
    const of = l.segment
      ? [`of the ${fmt(num(l.examined))} kept by standing campaign `,
        h("a", { class: "labeling-segment", href: href(`${base}/examples`, { dataset, segment: l.segment }) }, l.segment)]
      : `of the ${fmt(num(l.flagged))} flagged (${fmt(num(l.examined))} examined)`;
    const budget = l.day ? `the rule's earlier runs had sent ${fmt(num(l.budget_used_before))} on ${l.day} (UTC)` : null;
    return h("div", { class: "step-labeling", dataset: { sent, skipped: skipped.length, requestId: l.request_id || "" } },
      h("p", { class: "labeling-summary" }, `Sent ${fmt(sent)} frame${sent === 1 ? "" : "s"} `, of,
        l.request_id ? [" as labeling request ", h("code", { class: "labeling-request" }, l.request_id)] : " (no request: nothing sent)"),
      l.job_id ? h("p", { class: "muted" }, "Read the label-issues job ",
        h("a", { class: "labeling-job", href: href(`${base}/jobs`, { job: l.job_id }) }, l.job_id)) : null,
      budget || num(l.sent_before) ? h("p", { class: "muted labeling-counts" }, [budget,
        num(l.sent_before) ? `${fmt(num(l.sent_before))} passed over (sent for labeling before)` : null].filter(Boolean).join(" · ")) : null,
      l.note ? h("p", { class: "labeling-note" }, l.note) : null,
      sent ? h("table", { class: "data labeling-frames" },
        h("thead", {}, h("tr", {}, ["#", "Frame", "Why"].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, frames.map((f, i) => h("tr", { dataset: { frameId: f.frame_id } },
          h("td", { class: "num" }, String(i + 1)), h("td", {}, frameLink(f.frame_id)),
          h("td", { class: "labeling-reason" }, f.reason || "–"))))) : null,
      skipped.length ? h("p", { class: "labeling-skipped" },
        `${fmt(skipped.length)} over the daily budget, not sent: `,
        skipped.map((fid, i) => [i ? ", " : "", frameLink(fid)])) : null);
  }

  draw();
  if (run.state === RUNNING) {
    every(ctx, timers, async () => {
      const next = (await rpc("analysis", "GetAutomationRun", { project, run_id: runId })).run;
      const changed = JSON.stringify(next) !== JSON.stringify(run);
      run = next;
      if (changed) draw();
      return run.state !== RUNNING ? "done" : changed;
    });
  }
}
