// Collection campaigns: start one from a segment with a budget, follow the job, review the picks
// (accept or reject each frame: relevance feedback re-ranks the pool into the next batch), send the
// sample to labeling and follow the labeling request frame by frame. The standing campaigns, which keep
// frames as they arrive, are a tab of their own (standing.js).
import { all, followJob, rpc } from "../api.js";
import { enumName, fmt, h, href, projectInfo, select, showError, thumbnail, time } from "../ui.js";
import { renderStanding, renderStandingList } from "./standing.js";

const PAGE_SIZE = 60;
const ENDED = new Set(["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"]);
const ITEM_ENDED = new Set(["ITEM_STATE_SYNCED", "ITEM_STATE_CONFLICT", "ITEM_STATE_FAILED"]);
const num = (v) => (v === undefined || v === null ? 0 : Number(v));

function pill(state, prefix) {
  const name = enumName(state, prefix);
  return h("span", { class: `pill ${name}` }, name);
}

export async function render(main, ctx) {
  const stop = new AbortController();
  const timers = new Set();
  const cleanup = () => {
    stop.abort();
    for (const t of timers) clearTimeout(t);
    window.removeEventListener("hashchange", left);
  };
  // leaving the page while it still waits for its job stops following it
  const left = () => { if (!ctx.isCurrent()) cleanup(); };
  window.addEventListener("hashchange", left);
  const info = await projectInfo(ctx.project);
  const jobId = ctx.query.get("job");
  const standing = ctx.query.get("standing");
  if (jobId) await renderCampaign(main, ctx, info, jobId, stop, timers);
  else if (standing) await renderStanding(main, ctx, info, standing, timers);
  else if (ctx.query.get("view") === "standing") await renderStandingList(main, ctx, info, timers, pageHead(ctx.project, "standing"));
  else await renderStart(main, ctx, info);
  return cleanup;
}

// The page's title and its two tabs: campaigns over a pool uploaded first, and standing campaigns.
function pageHead(project, active) {
  const base = `/p/${encodeURIComponent(project)}/campaigns`;
  const tab = (view, label) => h("a", { href: href(base, { view }), class: view === active ? "active" : null,
    "aria-current": view === active ? "page" : null, id: `tab-${view}` }, label);
  return h("div", { class: "page-head" }, h("h1", {}, "Campaigns"),
    h("nav", { class: "tabs", "aria-label": "kinds of campaign" }, tab("pool", "Campaigns"), tab("standing", "Standing campaigns")));
}

// -- the list of campaigns and the form that starts one --------------------------------------------
async function renderStart(main, ctx, info) {
  const { project } = ctx;
  const q = ctx.query;
  const base = `/p/${encodeURIComponent(project)}/campaigns`;
  const [segments, jobs] = await Promise.all([
    all("analysis", "ListSegments", { project }, "segments", 2000),
    all("sampler", "ListJobs", { project }, "jobs", 1000),
  ]);
  const campaigns = jobs.filter((j) => j.kind === "campaign");
  const spaces = (info.project.embedding_spaces || [])
    .filter((s) => s.metric === "DISTANCE_METRIC_COSINE" && s.level !== "EMBEDDING_LEVEL_OBJECT");
  const pools = info.datasets.filter((d) => String(d.kind || "").includes("UNLABELED"));
  const wanted = q.get("seed_segment") || q.get("segment"); // links from the segments page and the map
  const seedSegment = segments.find((s) => s.name === wanted) || segments[0] || null;
  const state = {
    seed: seedSegment ? seedSegment.name : "",
    pool: q.get("pool") || (pools[0] || {}).name || (seedSegment || {}).dataset || (info.datasets[0] || {}).name || "",
    space: (spaces[0] || {}).name || "",
    inferenceSet: "",
  };

  const form = h("form", { class: "card campaign-form", id: "campaign-form", onsubmit: (e) => { e.preventDefault(); start(); } });
  const formMessage = h("p", { id: "campaign-form-message", role: "status" });
  const budget = h("input", { type: "number", id: "campaign-budget", name: "budget", min: "1", max: "100000", value: "24", required: true });
  const diversity = h("input", { type: "number", id: "campaign-diversity", name: "diversity", min: "0", step: "0.1", value: "0.5" });
  const name = h("input", { id: "campaign-name", name: "name", required: true, pattern: "[a-z0-9][a-z0-9_.\\-]{0,62}",
    value: q.get("name") || defaultName(state.seed) });
  const excludeLabeled = h("input", { type: "checkbox", id: "campaign-exclude-labeled", checked: true });
  const excludeSent = h("input", { type: "checkbox", id: "campaign-exclude-sent", checked: true });
  let method = "DIVERSITY_METHOD_MMR";
  const fields = h("div", { class: "toolbar" });

  function drawFields() {
    const sets = info.inferenceSets.filter((s) => s.dataset === state.pool);
    if (!sets.some((s) => s.name === state.inferenceSet)) state.inferenceSet = "";
    fields.replaceChildren(
      select("seed_segment", [{ value: "", label: "(none: active learning)" },
        ...segments.map((s) => ({ value: s.name, label: `${s.name} (${s.dataset}, ${fmt(num(s.size))} frames)` }))],
      state.seed, (v) => { state.seed = v; name.value = defaultName(v); }, "Seed segment"),
      select("pool_dataset", info.datasets.map((d) => ({ value: d.name, label: `${d.name}${String(d.kind || "").includes("UNLABELED") ? " (unlabeled)" : ""}` })),
        state.pool, (v) => { state.pool = v; drawFields(); }, "Pool"),
      select("embedding_space", spaces.map((s) => ({ value: s.name, label: `${s.name} (${s.model_name || "?"} ${s.model_version || ""})` })),
        state.space, (v) => { state.space = v; }, "Embedding space"),
      h("label", { class: "field" }, h("span", {}, "Budget (frames)"), budget),
      select("uncertainty_inference_set", [{ value: "", label: "(none)" }, ...sets.map((s) => ({ value: s.name, label: s.name }))],
        state.inferenceSet, (v) => { state.inferenceSet = v; }, "Uncertainty from"),
      h("label", { class: "field" }, h("span", {}, "Diversity"), diversity),
      select("diversity_method", [{ value: "DIVERSITY_METHOD_MMR", label: "maximal marginal relevance" }, { value: "DIVERSITY_METHOD_K_CENTER", label: "k-center greedy" }],
        method, (v) => { method = v; }, "Spread by"),
      h("label", { class: "field" }, h("span", {}, "Save the sample as"), name),
    );
  }
  drawFields();
  form.append(...[h("h2", {}, "New campaign"),
    spaces.length ? null : h("p", { class: "error" }, "This project has no frame-level cosine embedding space: campaigns compare frames by cosine."),
    fields,
    h("div", { class: "campaign-options" },
      h("label", {}, excludeLabeled, " leave out frames that have a label"),
      h("label", {}, excludeSent, " leave out frames already sent for labeling")),
    h("p", {}, h("button", { type: "submit", class: "primary", id: "start-campaign", disabled: !spaces.length }, "Start the campaign"), " ", formMessage),
  ].filter(Boolean));

  async function start() {
    formMessage.textContent = "Starting…";
    formMessage.className = "muted";
    try {
      const weights = { diversity: Number(diversity.value || 0) };
      const r = await rpc("sampler", "StartCampaign", {
        project, name: name.value.trim(), seed_segment: state.seed, pool_dataset: state.pool, embedding_space: state.space,
        budget: Number(budget.value), weights, diversity_method: method,
        uncertainty_inference_set: state.inferenceSet || undefined,
        exclude_labeled: excludeLabeled.checked, exclude_sent_for_labeling: excludeSent.checked,
      });
      ctx.navigate(href(base, { job: r.job.job_id }));
    } catch (err) {
      formMessage.textContent = err.message + (err.field ? ` (field ${err.field})` : "");
      formMessage.className = "error";
    }
  }

  const list = campaigns.length
    ? h("table", { class: "data", id: "campaign-list" },
      h("thead", {}, h("tr", {}, ["Sample", "Seed segment", "Pool", "Budget", "State", "Started"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, campaigns.map((j) => {
        const p = j.params || {};
        return h("tr", { dataset: { jobId: j.job_id } },
          h("td", {}, h("a", { href: href(base, { job: j.job_id }) }, p.name || j.job_id)),
          h("td", {}, p.seed_segment || "(active learning)"), h("td", {}, p.pool_dataset || ""),
          h("td", { class: "num" }, p.budget || ""), h("td", {}, pill(j.state, "JOB_STATE_")), h("td", {}, time(j.create_time)));
      })))
    : h("p", { class: "muted", id: "campaign-list-empty" }, "No campaign yet.");
  main.replaceChildren(pageHead(project, "pool"), form, h("h2", {}, "Campaigns of this project"), list);
}

function defaultName(seed) {
  const stamp = new Date().toISOString().slice(0, 16).replace(/[-:T]/g, "");
  return `${seed ? seed.slice(0, 40) + "-more" : "active"}-${stamp}`.toLowerCase().replace(/[^a-z0-9_.-]/g, "-");
}

// -- one campaign: progress, review, feedback rounds, labeling -------------------------------------
async function renderCampaign(main, ctx, info, jobId, stop, timers) {
  const { project } = ctx;
  const base = `/p/${encodeURIComponent(project)}/campaigns`;
  let job = (await rpc("sampler", "GetJob", { project, job_id: jobId })).job;
  const p = job.params || {};
  const pool = p.pool_dataset || "";
  const heading = h("h1", {}, `Campaign ${p.name || jobId}`);
  const bar = h("span", {});
  const progressText = h("span", { id: "campaign-job-state" });
  const progress = h("div", { class: "campaign-job", id: "campaign-progress" }, progressText,
    h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, bar));
  const showJob = (j) => {
    const pc = Math.round(num(j.progress) * 100);
    progressText.textContent = j.state === "JOB_STATE_FAILED" ? `The campaign failed: ${j.message || "see the sampler's log"}`
      : `${enumName(j.state, "JOB_STATE_")} · ${j.stage || ""} · ${pc}%`;
    progress.dataset.state = j.state || "";
    bar.style.width = `${pc}%`;
    bar.parentElement.setAttribute("aria-valuenow", String(pc));
  };
  const summary = h("div", { id: "campaign-summary" });
  const body = h("div", { id: "campaign-body" });
  main.replaceChildren(h("p", {}, h("a", { href: href(base) }, "← Campaigns")), heading, progress, summary, body);
  showJob(job);
  if (!ENDED.has(job.state)) {
    job = (await followJob("sampler", project, jobId, showJob, stop.signal)) || job;
    if (!ctx.isCurrent()) return;
  }
  if (job.state !== "JOB_STATE_SUCCEEDED") {
    body.replaceChildren(h("p", { class: "muted" }, `The campaign is ${enumName(job.state, "JOB_STATE_")}: it has no sample.`));
    return;
  }
  progress.hidden = true;

  // judgments: recorded by a submitted round, and pending (made since the last submission)
  const recorded = new Map();
  const pending = new Map();
  const tiles = new Map(); // frame id -> [tile elements]
  const frameHref = (fid) => href(`/p/${encodeURIComponent(project)}/frame/${encodeURIComponent(pool)}/${encodeURIComponent(fid)}`,
    { inference_set: p.inference_set || "" });

  function judgmentOf(fid) {
    return pending.has(fid) ? pending.get(fid) : recorded.get(fid);
  }
  function paint(fid) {
    const v = judgmentOf(fid);
    for (const t of tiles.get(fid) || []) {
      t.classList.toggle("accepted", v === true);
      t.classList.toggle("rejected", v === false);
      t.classList.toggle("recorded", recorded.has(fid) && !pending.has(fid));
      t.querySelector("button.accept").setAttribute("aria-pressed", String(v === true));
      t.querySelector("button.reject").setAttribute("aria-pressed", String(v === false));
    }
  }
  function judge(fid, value) {
    if (judgmentOf(fid) === value) {
      if (pending.has(fid)) pending.delete(fid); // a second press takes the judgment back
    } else if (recorded.get(fid) === value) {
      pending.delete(fid);
    } else {
      pending.set(fid, value);
    }
    paint(fid);
    showJudgments();
  }
  function tile(fid, caption, detail) {
    const t = h("div", { class: "pick", dataset: { frameId: fid } },
      thumbnail(project, pool, fid, { caption, href: frameHref(fid) }),
      detail ? h("p", { class: "pick-detail muted" }, detail) : null,
      h("div", { class: "judge", role: "group", "aria-label": `judge ${fid}` },
        h("button", { type: "button", class: "accept", "aria-pressed": "false", "aria-label": `accept ${fid}`, onclick: () => judge(fid, true) }, "✓ Accept"),
        h("button", { type: "button", class: "reject", "aria-pressed": "false", "aria-label": `reject ${fid}`, onclick: () => judge(fid, false) }, "✗ Reject")));
    if (!tiles.has(fid)) tiles.set(fid, []);
    tiles.get(fid).push(t);
    queueMicrotask(() => paint(fid));
    return t;
  }

  // -- the picks, a keyset page at a time --------------------------------------------------------
  const picks = h("div", { class: "grid campaign-grid", id: "picks" });
  const morePicks = h("button", { type: "button", id: "more-picks", hidden: true, onclick: () => loadPicks() }, "Show more picks");
  const pickIds = [];
  let token = "";
  async function loadPicks() {
    morePicks.disabled = true;
    try {
      const r = await rpc("sampler", "GetCampaign", { project, job_id: jobId, page: { page_size: PAGE_SIZE, page_token: token } });
      showSummary(r.summary || {});
      for (const it of r.items || []) {
        const fid = it.ref.frame_id;
        pickIds.push(fid);
        const bits = [];
        if (it.similarity !== undefined) bits.push(`sim ${num(it.similarity).toFixed(2)}`);
        if (it.uncertainty !== undefined) bits.push(`unc ${num(it.uncertainty).toFixed(2)}`);
        if (it.predicted_class !== undefined) bits.push(info.className(it.predicted_class));
        picks.append(tile(fid, `#${it.rank} ${fid}${bits.length ? " · " + bits.join(" · ") : ""}`, it.reason));
      }
      token = (r.page && r.page.next_page_token) || "";
      morePicks.hidden = !token;
      if (!pickIds.length) picks.replaceChildren(h("p", { class: "muted" }, "The campaign chose no frame: no candidate was left after the filter and exclusions."));
    } finally {
      morePicks.disabled = false;
    }
  }
  function showSummary(s) {
    const rows = [
      ["Sample segment", s.segment || p.name], ["Chosen", `${fmt(num(s.selected))} of a budget of ${fmt(num(s.budget))}`],
      ["Candidates", fmt(num(s.candidates))], ["Seeds", p.seed_segment ? `${fmt(num(s.seeds))} frames of ${p.seed_segment}` : "none (active learning)"],
      ["Pool", `${pool} in the ${p.embedding_space} space`],
      ["Near-duplicates skipped", `${fmt(num(s.skipped_duplicates_of_picked))} of picked, ${fmt(num(s.skipped_duplicates_of_labeled))} of labeled frames`],
      ["Strategy", s.strategy || ""],
    ];
    if ((s.classes || []).length) rows.push(["Predicted classes", s.classes.map((c) => `${c.class_name || info.className(c.class_id)} ${num(c.frames)}`).join(", ")]);
    summary.replaceChildren(h("table", { class: "data campaign-facts" }, h("tbody", {},
      rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))))));
  }

  // -- relevance feedback: submit the round, show the re-ranked batch ----------------------------
  const judgments = h("span", { id: "judgments" });
  const batchSize = h("input", { type: "number", id: "batch-size", min: "1", max: "1000", value: String(Math.min(24, Math.max(6, num(p.budget)))) });
  const submit = h("button", { type: "button", class: "primary", id: "submit-feedback", disabled: true, onclick: () => submitFeedback() }, "Submit and re-rank");
  const feedbackMessage = h("span", { id: "feedback-message", role: "status" });
  const rounds = h("div", { id: "rounds" });
  const batch = h("div", { class: "grid campaign-grid", id: "next-batch" });
  const batchHeading = h("h2", { hidden: true, id: "next-batch-heading" }, "Next batch");
  function showJudgments() {
    const acc = [...pending.values()].filter(Boolean).length;
    judgments.textContent = `${acc} accepted, ${pending.size - acc} rejected since the last round`;
    submit.disabled = pending.size === 0;
    showSendButtons();
  }
  async function submitFeedback() {
    submit.disabled = true;
    feedbackMessage.textContent = "Re-ranking…";
    feedbackMessage.className = "muted";
    const accepted = [...pending].filter(([, v]) => v).map(([f]) => f);
    const rejected = [...pending].filter(([, v]) => !v).map(([f]) => f);
    try {
      const r = await rpc("sampler", "SubmitFeedback", { project, job_id: jobId, accepted, rejected, next_batch_size: Number(batchSize.value) || 24 });
      for (const [f, v] of pending) recorded.set(f, v);
      const judged = [...pending.keys()];
      pending.clear();
      judged.forEach(paint);
      feedbackMessage.textContent = `Round ${r.round} recorded: ${num(r.accepted_total)} accepted and ${num(r.rejected_total)} rejected frames (seeds included) train the ranking.`;
      feedbackMessage.className = "ok";
      rounds.replaceChildren(h("table", { class: "data", id: "round-yields" },
        h("thead", {}, h("tr", {}, ["Round", "Judged", "Accepted", "Yield"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, (r.rounds || []).map((y) => h("tr", {}, h("td", { class: "num" }, num(y.round)), h("td", { class: "num" }, num(y.judged)),
          h("td", { class: "num" }, num(y.accepted)), h("td", { class: "num" }, `${Math.round(num(y.yield_rate) * 100)}%`))))));
      for (const [fid, list] of tiles) tiles.set(fid, list.filter((t) => !batch.contains(t)));
      batchHeading.hidden = false;
      batchHeading.textContent = `Next batch (round ${num(r.round) + 1}): the pool re-ranked by your judgments`;
      batch.dataset.round = String(num(r.round) + 1);
      batch.replaceChildren(...(r.next || []).map((c) => tile(c.ref.frame_id, `${c.ref.frame_id} · wanted ${num(c.score).toFixed(2)}`)));
      if (!(r.next || []).length) batch.replaceChildren(h("p", { class: "muted" }, "No frame is left to judge."));
    } catch (err) {
      feedbackMessage.textContent = err.message;
      feedbackMessage.className = "error";
    } finally {
      showJudgments();
    }
  }

  // -- labeling: send, then follow the request frame by frame --------------------------------------
  const sendAccepted = h("button", { type: "button", class: "primary", id: "send-accepted", disabled: true, onclick: () => send("accepted") });
  const sendSample = h("button", { type: "button", id: "send-sample", onclick: () => send("sample") }, "Send the whole sample");
  const sendMessage = h("span", { id: "send-message", role: "status" });
  const request = h("div", { id: "labeling-request" });
  function acceptedFrames() {
    const out = new Set();
    for (const [f, v] of recorded) if (v && !(pending.has(f) && !pending.get(f))) out.add(f);
    for (const [f, v] of pending) if (v) out.add(f);
    return [...out];
  }
  function showSendButtons() {
    const n = acceptedFrames().length;
    sendAccepted.textContent = `Send the ${n} accepted frame${n === 1 ? "" : "s"} to labeling`;
    sendAccepted.disabled = n === 0;
  }
  async function send(what) {
    sendMessage.textContent = "Sending…";
    sendMessage.className = "muted";
    try {
      const source = what === "accepted" ? { frames: { dataset: pool, frame_ids: acceptedFrames() } } : { campaign_job_id: jobId };
      const r = await rpc("sampler", "RequestLabeling", {
        project, ...source, requested_by: "console",
        reason: what === "accepted" ? `accepted in the review of campaign ${p.name || jobId}` : undefined,
      });
      sendMessage.textContent = `${fmt(num(r.frames))} frames sent as request ${r.request_id}${r.repeated_request ? " (sent before: the same request)" : ""}.`;
      sendMessage.className = "ok";
      history.replaceState(null, "", href(base, { job: jobId, request: r.request_id }));
      followRequest(r.request_id);
    } catch (err) {
      sendMessage.textContent = err.message;
      sendMessage.className = "error";
    }
  }
  let followed = "";
  function followRequest(requestId) {
    followed = requestId;
    let wait = 1000;
    const tick = async () => {
      if (!ctx.isCurrent() || followed !== requestId || stop.signal.aborted) return;
      let finished = false;
      try {
        finished = await showRequest(requestId);
      } catch (err) {
        request.replaceChildren(h("p", { class: "error" }, err.message));
      }
      if (finished || stop.signal.aborted) return;
      wait = Math.min(wait * 1.5, 15000);
      const t = setTimeout(() => { timers.delete(t); tick(); }, wait);
      timers.add(t);
    };
    tick();
  }
  // Shows the request; true when every frame has come back (or failed).
  async function showRequest(requestId) {
    let r;
    try {
      r = (await rpc("labeling_bridge", "GetLabelingRequest", { project, request_id: requestId })).request;
    } catch (err) {
      if (err.status !== 404) throw err;
      request.replaceChildren(h("p", { class: "muted", id: "labeling-waiting" }, `Request ${requestId} is on its way to the labeling bridge…`));
      return false;
    }
    const items = await all("labeling_bridge", "ListLabelingItems", { project, request_id: requestId }, "items", 1000);
    const c = r.counts || {};
    const counts = ["pending", "sent", "annotated", "synced", "conflict", "failed"].filter((k) => num(c[k])).map((k) => `${fmt(num(c[k]))} ${k}`);
    request.replaceChildren(
      h("p", { id: "labeling-summary" }, h("strong", {}, `Request ${r.request_id}`), " ", pill(r.state, "LABELING_REQUEST_STATE_"),
        ` · ${fmt(num(r.frames))} frames: ${counts.join(", ") || "none recorded yet"}`,
        r.last_error ? h("span", { class: "muted" }, ` · last attempt: ${r.last_error}`) : "",
        r.platform_project_url ? h("span", {}, " · ", h("a", { href: r.platform_project_url, rel: "noreferrer", target: "_blank" }, "open on the platform")) : ""),
      h("table", { class: "data", id: "labeling-items" },
        h("thead", {}, h("tr", {}, ["Frame", "State", "Task", "Annotator", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, items.map((it) => h("tr", { dataset: { frameId: it.ref.frame_id } },
          h("td", {}, h("a", { href: frameHref(it.ref.frame_id) }, it.ref.frame_id)),
          h("td", { class: "state" }, pill(it.state, "ITEM_STATE_"), it.error ? h("span", { class: "muted" }, ` ${it.error}`) : ""),
          h("td", {}, it.task_id || "–"), h("td", {}, it.annotator || "–"), h("td", {}, time(it.updated_time)))))));
    return items.length >= num(r.frames) && items.every((it) => ITEM_ENDED.has(it.state));
  }

  body.replaceChildren(
    h("h2", {}, "Picks"),
    h("p", { class: "muted" }, "Accept the frames you want more of and reject the others; submitting re-ranks the pool by your judgments."),
    picks, h("p", {}, morePicks),
    h("div", { class: "feedback-bar", id: "feedback-bar" }, judgments,
      h("label", {}, "next batch of ", batchSize, " frames"), submit, feedbackMessage),
    rounds, batchHeading, batch,
    h("h2", {}, "Labeling"),
    h("p", {}, sendAccepted, " ", sendSample, " ", sendMessage),
    request);
  showJudgments();
  try {
    await loadPicks();
  } catch (err) {
    showError(picks, err);
  }
  const wanted = ctx.query.get("request");
  if (wanted) followRequest(wanted);
  else {
    // a request sent from this campaign's sample before
    try {
      const reqs = await all("labeling_bridge", "ListLabelingRequests", { project }, "requests", 1000);
      const mine = reqs.find((x) => x.source === `campaign:${jobId}`);
      if (mine && ctx.isCurrent()) followRequest(mine.request_id);
    } catch (err) {
      request.replaceChildren(h("p", { class: "muted" }, `The labeling requests are unavailable: ${err.message}`));
    }
  }
}
