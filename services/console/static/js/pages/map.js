// The embedding map: a dataset's frames in one frame-level embedding space, laid out in 2-D by
// the analysis service's embedding-map job and drawn on a canvas. The page never holds more
// points than one viewport ships (GetMapViewport's level of detail): the whole map first, then
// the points of each viewport it pans or zooms to. A lasso selects a region of the whole map (the
// server finds every frame inside it, drawn or not), saved as a segment or used as the seeds of a
// collection campaign.
//
// Coordinates: the server's map has y pointing up; the canvas's y points down. view = {cx, cy, k}
// is the map point at the canvas's centre and the CSS pixels per map unit; toScreen / toMap convert.
import { all, followJob, rpc } from "../api.js";
import { PALETTE, classColour, fmt, h, href, projectInfo, select, sequential, showError, thumbnail } from "../ui.js";

const KIND = "embedding_map";
// Points per viewport the page asks for, and the most it ever holds.
const MAX_POINTS = 20_000;
// Frame ids per CreateSegment / UpdateSegment call.
const SEGMENT_BATCH = 10_000;
// Seed frames a campaign takes (sampler: campaign.MAX_SEEDS).
const MAX_SEEDS = 1_000;
// Lasso vertices sent to the server; a longer outline is thinned.
const MAX_VERTICES = 1_000;
const DEBOUNCE_MS = 120;
const TAU = Math.PI * 2;
const NO_VALUE = "#999999";
const COLOUR_MODES = ["class", "split", "correct", "issue", "metadata"];
// blue and vermilion (Okabe–Ito): apart for every common colour-vision deficiency
const CORRECT = "#0072B2";
const WRONG = "#D55E00";
const ISSUE = "#D55E00";
const NOT_ISSUE = "#56B4E9";

// A typed metadata value (shoal.common.v1.Value in JSON) as a plain one.
function metaValue(v) {
  if ("number_value" in v) return Number(v.number_value);
  if ("bool_value" in v) return Boolean(v.bool_value);
  if ("timestamp_value" in v) return v.timestamp_value;
  return v.string_value ?? "";
}

const enc = encodeURIComponent;

export async function render(main, ctx) {
  const { project } = ctx;
  const info = await projectInfo(project);
  const q = ctx.query;
  const spaces = (info.project.embedding_spaces || []).filter((s) => s.level !== "EMBEDDING_LEVEL_OBJECT");
  let job = null;
  if (q.get("job")) {
    job = (await rpc("analysis", "GetJob", { project, job_id: q.get("job") })).job;
    if (job.kind !== KIND) {
      main.replaceChildren(h("h1", {}, "Embedding map"),
        h("p", { class: "error" }, `Job ${job.job_id} is a ${job.kind} job, not an embedding map; pick a dataset and a space instead.`));
      return;
    }
  }
  const params = (job && job.params) || {};
  const labeled = info.datasets.filter((d) => d.kind !== "DATASET_KIND_UNLABELED_POOL");
  const dataset = params.dataset || q.get("dataset") || (labeled[0] || info.datasets[0] || {}).name || "";
  const space = params.embedding_space || q.get("space") || (spaces[0] || {}).name || "";
  const colourBy = COLOUR_MODES.includes(q.get("colour")) ? q.get("colour") : "class";
  const maxPoints = Math.max(1, Math.min(MAX_POINTS, Number(q.get("points")) || MAX_POINTS));
  const ds = info.datasets.find((d) => d.name === dataset) || { splits: [] };
  const path = `/p/${enc(project)}/map`;
  // what the colours of "correct", "issue" and "metadata" are read from
  const sets = info.inferenceSets.filter((s) => s.dataset === dataset);
  const inferenceSet = q.get("inference_set") || (sets[0] || {}).name || "";
  const metaKey = (q.get("meta_key") || "").trim();
  const urlParams = (changes = {}) => ({ dataset, space, colour: colourBy === "class" ? "" : colourBy, points: q.get("points") || "",
    inference_set: q.get("inference_set") || "", meta_key: metaKey,
    job: job && job.state === "JOB_STATE_SUCCEEDED" ? job.job_id : "", ...changes });
  const go = (changes) => ctx.navigate(href(path, urlParams(changes)));

  const jobBox = h("div", { id: "map-job", class: "map-job", role: "status" });
  const toolbar = h("form", { class: "toolbar", id: "map-controls", onsubmit: (e) => e.preventDefault() },
    select("dataset", info.datasets.map((d) => ({ value: d.name, label: d.name })), dataset, (v) => go({ dataset: v, job: "" }), "Dataset"),
    select("space", spaces.map((s) => ({ value: s.name, label: `${s.name} (${s.model_name || "?"}, ${s.dimension}-d)` })), space,
      (v) => go({ space: v, job: "" }), "Embedding space"),
    select("colour", [{ value: "class", label: "class" }, { value: "split", label: "split" },
      { value: "correct", label: "correct or not" }, { value: "issue", label: "label issue" },
      { value: "metadata", label: "metadata key" }], colourBy, (v) => go({ colour: v }), "Colour by"),
    ["correct", "issue"].includes(colourBy)
      ? select("inference_set", sets.map((s) => ({ value: s.name, label: s.name })), inferenceSet, (v) => go({ inference_set: v }), "Inference set")
      : null,
    colourBy === "metadata" ? h("label", { class: "field" }, h("span", {}, "Metadata key"),
      h("input", { id: "map-meta-key", name: "meta_key", value: metaKey, placeholder: "camera",
        onchange: (e) => go({ meta_key: e.target.value.trim() }) })) : null,
  );
  const host = h("div", { id: "map-host" });
  main.replaceChildren(h("h1", {}, "Embedding map"), toolbar, jobBox, host);
  if (!dataset || !space) {
    jobBox.append(h("p", { class: "muted" }, !dataset ? "This project has no dataset yet."
      : "This project has no frame-level embedding space: upload frame embeddings to see a map."));
    return;
  }

  // The finished map of (dataset, space), else start one and follow it.
  let stop = false;
  const cleanups = [() => { stop = true; }];
  const cleanup = () => cleanups.forEach((f) => { try { f(); } catch (err) { /* keep cleaning */ } });
  if (!job) {
    const done = await all("analysis", "ListJobs", { project, states: ["JOB_STATE_SUCCEEDED"] }, "jobs");
    job = done.filter((j) => j.kind === KIND && j.params && j.params.dataset === dataset && j.params.embedding_space === space)
      .sort((a, b) => String(b.finish_time || "").localeCompare(String(a.finish_time || "")))[0] || null;
  }
  if (!ctx.isCurrent()) return cleanup;
  let closeMap = null;
  const dropMap = () => {
    if (closeMap) closeMap();
    closeMap = null;
    host.replaceChildren();
  };
  cleanups.push(() => { if (closeMap) closeMap(); });
  const startJob = async (rerun) => {
    if (rerun) dropMap(); // a rerun replaces the points the map shows
    jobBox.replaceChildren(h("p", { class: "muted" }, "Starting the map…"));
    try {
      job = (await rpc("analysis", "StartEmbeddingMap", { project, dataset, embedding_space: space, rerun })).job;
    } catch (err) {
      showError(jobBox, err);
      return;
    }
    await follow();
  };
  const follow = async () => {
    const bar = h("span", {});
    const stage = h("span", { id: "map-job-stage" }, "queued");
    const pct = h("span", { id: "map-job-progress", class: "muted" }, "");
    jobBox.replaceChildren(h("p", {}, `Computing the map of ${dataset} in ${space} (job `,
      h("a", { href: href(`/p/${enc(project)}/jobs`, { job: job.job_id }) }, job.job_id), "): ", stage, " ", pct),
    h("div", { class: "progress", role: "progressbar", "aria-label": "map job progress" }, bar));
    const show = (j) => {
      job = j;
      stage.textContent = j.stage || j.state.replace("JOB_STATE_", "").toLowerCase();
      pct.textContent = `${Math.round((j.progress || 0) * 100)}%`;
      bar.style.width = `${Math.round((j.progress || 0) * 100)}%`;
    };
    show(job);
    if (job.state !== "JOB_STATE_SUCCEEDED") {
      try {
        const last = await followJob("analysis", project, job.job_id, (j) => { if (!stop) show(j); });
        if (last) job = last;
      } catch (err) {
        if (!stop) showError(jobBox, err);
        return;
      }
    }
    if (stop || !ctx.isCurrent()) return;
    if (job.state !== "JOB_STATE_SUCCEEDED") {
      jobBox.replaceChildren(h("p", { class: "error" }, `The map job ${job.state.replace("JOB_STATE_", "").toLowerCase()}`,
        job.message ? `: ${job.message}` : "."), h("button", { type: "button", id: "map-retry", onclick: () => startJob(false) }, "Try again"));
      return;
    }
    history.replaceState(null, "", href(path, urlParams({ job: job.job_id })));
    showMap();
  };
  // The extra fields each viewport asks for, to colour by them (the points are the same either way).
  const colouring = async () => {
    if (colourBy === "correct") {
      if (!inferenceSet) return { note: "The dataset has no inference set: nothing to be correct about." };
      return { request: { inference_set: inferenceSet } };
    }
    if (colourBy === "issue") {
      const jobs = await all("analysis", "ListJobs", { project, states: ["JOB_STATE_SUCCEEDED"] }, "jobs");
      const issues = jobs.filter((j) => ["label_issues", "detection_label_issues"].includes(j.kind) && j.params?.inference_set === inferenceSet)
        .sort((a, b) => String(b.finish_time || "").localeCompare(String(a.finish_time || "")))[0];
      if (!issues) {
        return { note: h("span", {}, `No finished label-issue job for ${inferenceSet || "this dataset"}: `,
          h("a", { href: href(`/p/${enc(project)}/issues`, { inference_set: inferenceSet }) }, "find label issues"), " first.") };
      }
      return { request: { label_issue_job_id: issues.job_id } };
    }
    if (colourBy === "metadata") {
      if (!metaKey) return { note: "Enter a metadata key to colour by." };
      return { request: { metadata_key: metaKey } };
    }
    return { request: {} };
  };
  const showMap = async () => {
    jobBox.replaceChildren();
    dropMap();
    let colours;
    try {
      colours = await colouring();
    } catch (err) {
      showError(jobBox, err);
      return;
    }
    if (!ctx.isCurrent()) return;
    if (colours.note) jobBox.replaceChildren(h("p", { class: "muted", id: "map-colour-note" }, colours.note));
    closeMap = mapView(host, ctx, { info, dataset, space, ds, job, colourBy: colours.request ? colourBy : "class",
      extra: colours.request || {}, maxPoints, rerun: () => startJob(true) });
  };
  if (job && job.state === "JOB_STATE_SUCCEEDED") showMap();
  else if (job) follow();
  else startJob(false);
  return cleanup;
}

// Lasso, buttons, canvas, legend, tooltip; returns the cleanup.
function mapView(host, ctx, opts) {
  const { info, dataset, space, ds, job, colourBy, maxPoints, extra = {} } = opts;
  const { project } = ctx;
  const splitIndex = new Map((ds.splits || []).map((s, i) => [s, i]));
  // metadata: text and booleans as categories in order of appearance, numbers on the sequential scale
  const metaIndex = new Map();
  let metaRange = [Infinity, -Infinity];
  const metaColour = (v) => {
    if (v === undefined || v === null) return NO_VALUE;
    if (typeof v === "number") {
      const [lo, hi] = metaRange;
      return sequential(hi > lo ? (v - lo) / (hi - lo) : 0.5);
    }
    const key = String(v);
    if (!metaIndex.has(key)) metaIndex.set(key, metaIndex.size);
    return PALETTE[metaIndex.get(key) % PALETTE.length];
  };
  const colourOf = {
    split: (p) => (splitIndex.has(p.split) ? PALETTE[splitIndex.get(p.split) % PALETTE.length] : NO_VALUE),
    correct: (p) => (p.correct === undefined ? NO_VALUE : p.correct ? CORRECT : WRONG),
    issue: (p) => (p.issue ? ISSUE : p.issue === false ? NOT_ISSUE : NO_VALUE),
    metadata: (p) => metaColour(p.meta),
  }[colourBy] || ((p) => (p.label < 0 ? NO_VALUE : classColour(p.label)));

  const canvas = h("canvas", { id: "map-canvas", tabindex: "0", role: "img",
    "aria-label": "Embedding map. Drag or arrow keys pan, wheel or + and - zoom, 0 resets, l toggles the lasso, Escape clears it." });
  const tooltip = h("div", { id: "map-tooltip", class: "map-tooltip", hidden: true });
  const wrap = h("div", { class: "map-wrap", id: "map-wrap" }, canvas, tooltip);
  const status = h("span", { id: "map-status", class: "muted", role: "status" }, "Loading the map…");
  const legend = h("div", { id: "map-legend", class: "legend map-legend", "aria-label": "legend" });
  const lassoButton = h("button", { type: "button", id: "map-lasso", "aria-pressed": "false", title: "Lasso (l)",
    onclick: () => setLasso(!lassoMode) }, "Lasso");
  const tools = h("div", { class: "map-tools", role: "toolbar", "aria-label": "map tools" },
    h("button", { type: "button", id: "map-zoom-in", title: "Zoom in (+)", "aria-label": "zoom in", onclick: () => zoomAt(W / 2, H / 2, 1.5) }, "+"),
    h("button", { type: "button", id: "map-zoom-out", title: "Zoom out (-)", "aria-label": "zoom out", onclick: () => zoomAt(W / 2, H / 2, 1 / 1.5) }, "−"),
    h("button", { type: "button", id: "map-reset", title: "Whole map (0)", onclick: () => reset() }, "Whole map"),
    lassoButton,
    h("button", { type: "button", id: "map-rerun", class: "link", title: "Compute the map again from the current vectors", onclick: opts.rerun }, "Recompute"),
    status);
  const region = h("div", { id: "map-region", class: "map-region card", hidden: true });
  host.append(h("div", { class: "map-layout" }, h("div", { class: "map-main" }, tools, wrap), h("aside", { class: "map-side" }, legend, region)));

  // -- state --------------------------------------------------------------------------------------
  let W = 1, H = 1, dpr = window.devicePixelRatio || 1;
  let summary = null;
  const view = { cx: 0, cy: 0, k: 1 };
  let fitK = 1;
  let points = []; // [{id, x, y, label, split}]
  let groups = []; // [{colour, key, xs, ys}]
  let hovered = null;
  let lassoMode = false;
  let lasso = null; // {points: [{x, y}] in map units, open}
  let regionState = null; // {polygon, count, segment}
  const stats = { drawn: 0, requests: 0, answers: 0, lastDrawMs: 0, lastAnswerMs: 0, draws: 0, inView: 0, viewport: null };
  const drawTimes = []; // the last 240 draws' durations (ms), for tests and the benchmark
  const g = canvas.getContext("2d");

  const toScreen = (x, y) => ({ x: W / 2 + (x - view.cx) * view.k, y: H / 2 - (y - view.cy) * view.k });
  const toMap = (sx, sy) => ({ x: view.cx + (sx - W / 2) / view.k, y: view.cy - (sy - H / 2) / view.k });
  const bounds = () => ({ min_x: view.cx - W / 2 / view.k, max_x: view.cx + W / 2 / view.k,
    min_y: view.cy - H / 2 / view.k, max_y: view.cy + H / 2 / view.k });
  const local = (e) => {
    const r = canvas.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  };

  // -- drawing ------------------------------------------------------------------------------------
  let frameAsked = false;
  const redraw = () => {
    if (frameAsked) return;
    frameAsked = true;
    requestAnimationFrame(draw);
  };
  function radius() {
    const n = points.length;
    return n > 10_000 ? 1.6 : n > 2_000 ? 2.2 : 3;
  }
  function draw() {
    frameAsked = false;
    const t0 = performance.now();
    if ((window.devicePixelRatio || 1) !== dpr) resize(); // moved to a screen of another density
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const r = radius();
    const ox = W / 2 - view.cx * view.k, oy = H / 2 + view.cy * view.k, k = view.k;
    let drawn = 0;
    // One path per colour: the cost of a frame is one fill per colour, not one per point.
    for (const grp of groups) {
      const { xs, ys } = grp;
      g.beginPath();
      for (let i = 0; i < xs.length; i++) {
        const sx = ox + xs[i] * k, sy = oy - ys[i] * k;
        if (sx < -r || sx > W + r || sy < -r || sy > H + r) continue;
        g.moveTo(sx + r, sy);
        g.arc(sx, sy, r, 0, TAU);
        drawn++;
      }
      g.fillStyle = grp.colour;
      g.fill();
    }
    if (hovered) {
      const s = toScreen(hovered.x, hovered.y);
      g.beginPath();
      g.arc(s.x, s.y, r + 3, 0, TAU);
      g.lineWidth = 2;
      g.strokeStyle = "#000";
      g.stroke();
    }
    const poly = lasso ? lasso.points : regionState ? regionState.polygon : null;
    if (poly && poly.length > 1) {
      g.beginPath();
      poly.forEach((p, i) => {
        const s = toScreen(p.x, p.y);
        if (i === 0) g.moveTo(s.x, s.y); else g.lineTo(s.x, s.y);
      });
      if (!lasso || !lasso.open) g.closePath();
      g.fillStyle = "rgba(230, 159, 0, 0.12)";
      g.fill();
      g.setLineDash([6, 4]);
      g.lineWidth = 2;
      g.strokeStyle = "#fff";
      g.stroke();
      g.setLineDash([6, 4]);
      g.lineDashOffset = 5;
      g.strokeStyle = "#1b1f24";
      g.stroke();
      g.setLineDash([]);
      g.lineDashOffset = 0;
    }
    stats.drawn = drawn;
    stats.draws++;
    stats.lastDrawMs = performance.now() - t0;
    drawTimes.push(stats.lastDrawMs);
    if (drawTimes.length > 240) drawTimes.shift();
    canvas.dataset.drawn = String(drawn);
  }

  function regroup() {
    if (colourBy === "metadata") {
      const nums = points.map((p) => p.meta).filter((v) => typeof v === "number");
      metaRange = nums.length ? [Math.min(...nums), Math.max(...nums)] : [Infinity, -Infinity];
    }
    const byColour = new Map();
    for (const p of points) {
      const c = colourOf(p);
      if (!byColour.has(c)) byColour.set(c, []);
      byColour.get(c).push(p);
    }
    groups = [...byColour.entries()].map(([colour, list]) => ({
      colour,
      xs: Float64Array.from(list, (p) => p.x),
      ys: Float64Array.from(list, (p) => p.y),
    }));
    renderLegend();
  }

  function renderLegend() {
    const counts = new Map();
    const keyOf = {
      split: (p) => p.split || "",
      correct: (p) => (p.correct === undefined ? "none" : String(p.correct)),
      issue: (p) => (p.issue === undefined ? "none" : String(p.issue)),
      metadata: (p) => (p.meta === undefined ? "\u0000none" : typeof p.meta === "number" ? "\u0000number" : String(p.meta)),
    }[colourBy] || ((p) => p.label);
    for (const p of points) {
      const key = keyOf(p);
      counts.set(key, (counts.get(key) || 0) + 1);
    }
    const n = (k) => counts.get(k) || 0;
    let rows;
    if (colourBy === "split") {
      rows = (ds.splits || []).map((s, i) => [PALETTE[i % PALETTE.length], s || "(none)", n(s)])
        .concat(counts.has("") ? [[NO_VALUE, "(no split)", n("")]] : []);
    } else if (colourBy === "correct") {
      rows = [[CORRECT, "correct", n("true")], [WRONG, "wrong", n("false")], [NO_VALUE, "(no label or prediction)", n("none")]];
    } else if (colourBy === "issue") {
      rows = [[ISSUE, "label issue", n("true")], [NOT_ISSUE, "no issue", n("false")], [NO_VALUE, "(not examined)", n("none")]];
    } else if (colourBy === "metadata") {
      rows = [...metaIndex.entries()].map(([k, i]) => [PALETTE[i % PALETTE.length], k, n(k)]);
      if (counts.has("\u0000number")) {
        rows.push([sequential(0), `${fmt(metaRange[0])} (low)`, ""], [sequential(1), `${fmt(metaRange[1])} (high)`, n("\u0000number")]);
      }
      rows.push([NO_VALUE, "(no value)", n("\u0000none")]);
    } else {
      rows = info.classes.map((c) => [classColour(c.id), c.name, n(c.id)])
        .concat(counts.has(-1) ? [[NO_VALUE, "(unlabeled)", n(-1)]] : []);
    }
    const titles = { split: "Split", correct: "Correct", issue: "Label issue", metadata: `Metadata: ${extra.metadata_key || ""}` };
    legend.replaceChildren(h("h2", {}, titles[colourBy] || "Class"),
      h("ul", { class: "map-legend-list" }, rows.map(([colour, name, count]) => {
        const sw = h("span", { class: "swatch" });
        sw.style.background = colour;
        return h("li", {}, sw, h("span", { class: "name" }, name), h("span", { class: "muted num" }, count === "" ? "" : fmt(count)));
      })),
      h("p", { class: "muted map-note" }, "Counts of the points shown."));
  }

  // -- viewports ----------------------------------------------------------------------------------
  let timer = null;
  let seq = 0;
  let controller = null;
  const scheduleViewport = () => {
    clearTimeout(timer);
    timer = setTimeout(() => fetchViewport(false), DEBOUNCE_MS);
  };
  async function fetchViewport(whole) {
    const mine = ++seq;
    if (controller) controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    const box = whole ? null : bounds();
    stats.requests++;
    canvas.dataset.requests = String(stats.requests);
    let resp;
    try {
      // A stale answer is dropped: a newer viewport was asked for meanwhile.
      resp = await rpc("analysis", "GetMapViewport", { project, job_id: job.job_id, max_points: maxPoints, arrow: true, ...extra, ...(box || {}) }, { signal });
    } catch (err) {
      if (signal.aborted || mine !== seq || !ctx.isCurrent()) return;
      status.textContent = err.message;
      status.className = "error";
      return;
    }
    if (mine !== seq || !ctx.isCurrent()) return;
    const t0 = performance.now();
    summary = resp.summary || {};
    const fresh = new Map();
    const got = viewportPoints(resp);
    for (const p of got) {
      fresh.set(p.frame_id, { id: p.frame_id, x: p.x || 0, y: p.y || 0, label: p.label_class == null ? -1 : p.label_class, split: p.split || "",
        correct: p.correct == null ? undefined : p.correct, issue: extra.label_issue_job_id ? Boolean(p.label_issue) : undefined,
        meta: p.metadata_value ? metaValue(p.metadata_value) : undefined });
    }
    // Points outside the asked box stay (they are invisible now, and shown again at once when the
    // view comes back), as long as the page holds no more than one viewport's worth.
    if (box) {
      for (const p of points) {
        if (fresh.size >= maxPoints) break;
        if (!fresh.has(p.id) && (p.x < box.min_x || p.x > box.max_x || p.y < box.min_y || p.y > box.max_y)) fresh.set(p.id, p);
      }
    }
    points = [...fresh.values()];
    if (hovered && !fresh.has(hovered.id)) hideTooltip();
    stats.answers++;
    stats.inView = Number(resp.total_in_viewport || 0);
    stats.viewport = box || { min_x: summary.min_x || 0, max_x: summary.max_x || 0, min_y: summary.min_y || 0, max_y: summary.max_y || 0 };
    canvas.dataset.answers = String(stats.answers);
    canvas.dataset.viewport = [stats.viewport.min_x, stats.viewport.min_y, stats.viewport.max_x, stats.viewport.max_y].join(",");
    canvas.dataset.inView = String(stats.inView);
    const total = Number(summary.frames || 0);
    status.className = "muted";
    status.textContent = total === 0
      ? `The map is empty: no frame of ${dataset} has a vector in ${space}.`
      : `${fmt(got.length)} of ${fmt(stats.inView)} frames in view shown · ${fmt(total)} in the map`;
    regroup();
    stats.lastAnswerMs = performance.now() - t0;
    redraw();
  }

  function fit() {
    const s = summary || {};
    const x0 = s.min_x || 0, x1 = s.max_x || 0, y0 = s.min_y || 0, y1 = s.max_y || 0;
    const dx = Math.max(x1 - x0, 1e-9), dy = Math.max(y1 - y0, 1e-9);
    fitK = Math.min(W / (dx * 1.08), H / (dy * 1.08));
    if (!Number.isFinite(fitK) || fitK <= 0) fitK = 1;
    view.cx = (x0 + x1) / 2;
    view.cy = (y0 + y1) / 2;
    view.k = fitK;
  }
  function reset() {
    fit();
    redraw();
    fetchViewport(true);
  }
  function zoomAt(sx, sy, factor) {
    const m = toMap(sx, sy);
    const k = Math.min(fitK * 1e5, Math.max(fitK / 8, view.k * factor));
    view.k = k;
    view.cx = m.x - (sx - W / 2) / k;
    view.cy = m.y + (sy - H / 2) / k;
    redraw();
    scheduleViewport();
  }
  function panBy(dxScreen, dyScreen) {
    view.cx -= dxScreen / view.k;
    view.cy += dyScreen / view.k;
    redraw();
    scheduleViewport();
  }

  function resize() {
    const rect = wrap.getBoundingClientRect();
    const w = Math.max(1, Math.round(rect.width)), hgt = Math.max(1, Math.round(rect.height));
    const d = window.devicePixelRatio || 1;
    if (w === W && hgt === H && d === dpr) return false;
    const before = { x: W, y: H };
    W = w;
    H = hgt;
    dpr = d;
    canvas.width = Math.round(W * dpr);
    canvas.height = Math.round(H * dpr);
    canvas.style.width = `${W}px`;
    canvas.style.height = `${H}px`;
    if (summary && before.x > 1) fitK *= Math.min(W / before.x, H / before.y);
    return true;
  }

  // -- hover, tooltip -----------------------------------------------------------------------------
  function nearest(sx, sy) {
    const r = Math.max(6, radius() + 3);
    let best = null, bestD = r * r;
    for (const p of points) {
      const s = toScreen(p.x, p.y);
      const d = (s.x - sx) ** 2 + (s.y - sy) ** 2;
      if (d <= bestD) { bestD = d; best = p; }
    }
    return best;
  }
  function showTooltip(p, at) {
    if (hovered !== p) {
      hovered = p;
      const label = info.className(p.label < 0 ? -1 : p.label);
      tooltip.replaceChildren(thumbnail(project, dataset, p.id, { caption: `${p.id} · ${label}${p.split ? " · " + p.split : ""}` }));
      tooltip.dataset.frameId = p.id;
      redraw();
    }
    tooltip.hidden = false;
    const left = at.x + 16 + 180 > W ? at.x - 16 - 180 : at.x + 16;
    tooltip.style.left = `${Math.max(0, left)}px`;
    tooltip.style.top = `${Math.max(0, Math.min(H - 200, at.y + 12))}px`;
    canvas.style.cursor = lassoMode ? "crosshair" : "pointer";
  }
  function hideTooltip() {
    if (!hovered && tooltip.hidden) return;
    hovered = null;
    tooltip.hidden = true;
    delete tooltip.dataset.frameId;
    canvas.style.cursor = lassoMode ? "crosshair" : "grab";
    redraw();
  }
  const openFrame = (p) => ctx.navigate(href(`/p/${enc(project)}/frame/${enc(dataset)}/${enc(p.id)}`));

  // -- pointer ------------------------------------------------------------------------------------
  let drag = null;
  function setLasso(on) {
    lassoMode = on;
    lassoButton.setAttribute("aria-pressed", String(on));
    lassoButton.classList.toggle("active", on);
    canvas.style.cursor = on ? "crosshair" : "grab";
    if (!on && lasso && lasso.open) { lasso = null; redraw(); }
  }
  function onPointerDown(e) {
    if (e.button !== 0) return;
    canvas.focus();
    canvas.setPointerCapture(e.pointerId);
    const at = local(e);
    if (lassoMode) {
      lasso = { points: [toMap(at.x, at.y)], screen: [at], open: true };
      hideTooltip();
      redraw();
      return;
    }
    drag = { x: at.x, y: at.y, moved: false };
  }
  function onPointerMove(e) {
    const at = local(e);
    if (lasso && lasso.open) {
      const last = lasso.screen[lasso.screen.length - 1];
      if ((at.x - last.x) ** 2 + (at.y - last.y) ** 2 >= 9) {
        lasso.points.push(toMap(at.x, at.y));
        lasso.screen.push(at);
        redraw();
      }
      return;
    }
    if (drag) {
      const dx = at.x - drag.x, dy = at.y - drag.y;
      if (!drag.moved && dx * dx + dy * dy < 16) return;
      drag.moved = true;
      drag.x = at.x;
      drag.y = at.y;
      hideTooltip();
      canvas.style.cursor = "grabbing";
      panBy(dx, dy);
      return;
    }
    const p = nearest(at.x, at.y);
    if (p) showTooltip(p, at); else hideTooltip();
  }
  function onPointerUp(e) {
    if (lasso && lasso.open) {
      lasso.open = false;
      const polygon = untangle(thin(lasso.points));
      lasso = null;
      if (polygon.length >= 3) queryRegion(polygon);
      else redraw();
      return;
    }
    if (drag) {
      const wasClick = !drag.moved;
      drag = null;
      canvas.style.cursor = "grab";
      if (wasClick) {
        const at = local(e);
        const p = nearest(at.x, at.y);
        if (p) openFrame(p);
      }
    }
  }
  function onWheel(e) {
    e.preventDefault();
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? H : 1;
    const at = local(e);
    zoomAt(at.x, at.y, Math.exp(-e.deltaY * unit * 0.0015));
  }
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const step = 0.1;
    const keys = {
      ArrowLeft: () => panBy(W * step, 0),
      ArrowRight: () => panBy(-W * step, 0),
      ArrowUp: () => panBy(0, H * step),
      ArrowDown: () => panBy(0, -H * step),
      "+": () => zoomAt(W / 2, H / 2, 1.5),
      "=": () => zoomAt(W / 2, H / 2, 1.5),
      "-": () => zoomAt(W / 2, H / 2, 1 / 1.5),
      _: () => zoomAt(W / 2, H / 2, 1 / 1.5),
      0: () => reset(),
      l: () => setLasso(!lassoMode),
      L: () => setLasso(!lassoMode),
      Escape: () => { if (regionState) clearRegion(); else setLasso(false); },
      Enter: () => { if (hovered) openFrame(hovered); },
    };
    const f = keys[e.key];
    if (!f) return;
    e.preventDefault();
    f();
  }
  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", () => { drag = null; lasso = null; redraw(); });
  canvas.addEventListener("pointerleave", () => { if (!drag && !(lasso && lasso.open)) hideTooltip(); });
  canvas.addEventListener("wheel", onWheel, { passive: false });
  canvas.addEventListener("keydown", onKey);
  canvas.style.cursor = "grab";

  // -- lasso region -------------------------------------------------------------------------------
  function clearRegion() {
    regionState = null;
    region.hidden = true;
    region.replaceChildren();
    redraw();
  }
  async function queryRegion(polygon) {
    regionState = { polygon, count: null, segment: "" };
    redraw();
    const count = h("strong", { id: "region-count" }, "…");
    region.hidden = false;
    region.replaceChildren(h("h2", {}, "Lasso"), h("p", {}, "Counting the frames inside…"));
    let resp;
    try {
      resp = await rpc("analysis", "QueryMapRegion", { project, job_id: job.job_id, polygon, page: { page_size: 1 } });
    } catch (err) {
      if (regionState && regionState.polygon === polygon) showError(region, err);
      return;
    }
    if (!regionState || regionState.polygon !== polygon || !ctx.isCurrent()) return;
    const n = Number((resp.page && resp.page.total_count) || 0);
    regionState.count = n;
    count.textContent = fmt(n);
    count.dataset.count = String(n);
    renderRegion(count);
  }

  function renderRegion(count) {
    const n = regionState.count;
    const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
    const name = h("input", { id: "segment-name", value: `map-${dataset}-${stamp}`.slice(0, 63), pattern: "[a-z0-9][a-z0-9_.-]{0,62}",
      "aria-label": "segment name", required: true });
    const message = h("p", { id: "save-message", role: "status" });
    const save = h("button", { type: "button", id: "save-segment", class: "primary", disabled: n === 0 ? true : null,
      onclick: () => saveSegment(name.value.trim(), message, save) }, "Save as segment");
    const campaign = h("button", { type: "button", id: "start-campaign", disabled: n === 0 || n > MAX_SEEDS ? true : null,
      title: n > MAX_SEEDS ? `a campaign takes at most ${fmt(MAX_SEEDS)} seed frames` : null,
      onclick: () => campaignForm(name, message, form) }, "Start campaign");
    const form = h("div", { id: "campaign-panel" });
    name.addEventListener("input", () => { save.disabled = n === 0; });
    region.replaceChildren(...[
      h("h2", {}, "Lasso"),
      h("p", {}, count, n === 1 ? " frame inside (the whole map, drawn or not)." : " frames inside (the whole map, drawn or not)."),
      h("label", { class: "field" }, h("span", {}, "Segment name"), name),
      h("div", { class: "map-region-actions" }, save, campaign,
        h("button", { type: "button", id: "clear-lasso", class: "link", onclick: clearRegion }, "Clear")),
      n > MAX_SEEDS ? h("p", { class: "muted map-note" }, `A campaign takes at most ${fmt(MAX_SEEDS)} seed frames: lasso a smaller region to start one.`) : null,
      message, form].filter(Boolean));
  }

  // Saves every frame inside the polygon, page by page (the server's pages are small): the first
  // batch creates the segment, the others are added to it.
  async function saveSegment(name, message, button) {
    if (regionState.segment === name) return name;
    message.className = "";
    message.textContent = "Saving…";
    if (button) button.disabled = true;
    const polygon = regionState.polygon;
    let saved = 0;
    let created = false;
    let pending = [];
    const flush = async () => {
      const batch = pending;
      pending = [];
      if (!created) {
        await rpc("analysis", "CreateSegment", { project, frame_ids: batch, segment: { name, dataset, kind: "SEGMENT_KIND_OTHER",
          reason: `lasso on the embedding map of ${dataset} in ${space} (job ${job.job_id})` } });
        created = true;
      } else if (batch.length) {
        await rpc("analysis", "UpdateSegment", { project, name, add_frame_ids: batch });
      }
      saved += batch.length;
      message.textContent = `Saving… ${fmt(saved)} of ${fmt(regionState.count)} frames`;
    };
    try {
      let token = "";
      do {
        const resp = await rpc("analysis", "QueryMapRegion", { project, job_id: job.job_id, polygon, page: { page_size: 1000, page_token: token } });
        pending.push(...(resp.frame_ids || []));
        if (pending.length >= SEGMENT_BATCH) await flush();
        token = (resp.page && resp.page.next_page_token) || "";
      } while (token);
      if (pending.length || !created) await flush();
    } catch (err) {
      message.className = "error";
      message.textContent = created
        ? `${err.message} (segment ${name} holds the first ${fmt(saved)} frames; delete it or add the rest)`
        : err.message;
      if (button) button.disabled = false;
      return null;
    }
    regionState.segment = name;
    message.className = "ok";
    message.replaceChildren(`Saved segment ${name} (${fmt(saved)} frames). `,
      h("a", { href: href(`/p/${enc(project)}/examples`, { dataset, segment: name }) }, "See its frames"));
    return name;
  }

  function campaignForm(nameInput, message, panel) {
    const cosine = (info.project.embedding_spaces || []).filter((s) => s.level !== "EMBEDDING_LEVEL_OBJECT" && s.metric === "DISTANCE_METRIC_COSINE");
    if (!cosine.length) {
      panel.replaceChildren(h("p", { class: "error", id: "campaign-message" },
        "Campaigns compare frame-level vectors by cosine: this project has no frame-level COSINE embedding space."));
      return;
    }
    const mapSpace = (info.project.embedding_spaces || []).find((s) => s.name === space) || {};
    const same = cosine.find((s) => s.name === space)
      || cosine.find((s) => s.model_name === mapSpace.model_name && s.model_version === mapSpace.model_version) || cosine[0];
    const unlabeled = info.datasets.find((d) => d.kind === "DATASET_KIND_UNLABELED_POOL");
    const campaignName = h("input", { id: "campaign-name", value: `${nameInput.value.trim()}-picks`.slice(0, 63), required: true,
      pattern: "[a-z0-9][a-z0-9_.-]{0,62}" });
    const pool = select("campaign-pool", info.datasets.map((d) => ({ value: d.name, label: d.name })), (unlabeled || { name: dataset }).name, () => {}, "Pool dataset");
    const spaceSel = select("campaign-space", cosine.map((s) => ({ value: s.name, label: s.name })), same.name, () => {}, "Embedding space");
    const budget = h("input", { id: "campaign-budget", type: "number", min: "1", max: "100000", value: "100", required: true });
    const note = h("p", { id: "campaign-message", role: "status" });
    const go = h("button", { type: "submit", id: "campaign-submit", class: "primary" }, "Start");
    const form = h("form", { class: "map-campaign", onsubmit: async (e) => {
      e.preventDefault();
      go.disabled = true;
      note.className = "";
      note.textContent = "Saving the seeds…";
      const seeds = await saveSegment(nameInput.value.trim(), message, null);
      if (!seeds) {
        note.textContent = "";
        go.disabled = false;
        return;
      }
      const chosen = spaceSel.querySelector("select").value;
      note.textContent = "Starting the campaign…";
      try {
        const resp = await rpc("sampler", "StartCampaign", {
          project, name: campaignName.value.trim(), seed_segment: seeds, pool_dataset: pool.querySelector("select").value,
          embedding_space: chosen, seed_embedding_space: chosen === space ? "" : space, budget: Number(budget.value),
        });
        ctx.navigate(href(`/p/${enc(project)}/campaigns`, { job: resp.job.job_id }));
      } catch (err) {
        note.className = "error";
        note.textContent = err.message;
        go.disabled = false;
      }
    } },
    h("h3", {}, "Campaign seeded by this region"),
    h("label", { class: "field" }, h("span", {}, "Sample saved as segment"), campaignName),
    pool, spaceSel,
    h("label", { class: "field" }, h("span", {}, "Budget (frames)"), budget),
    go, note);
    panel.replaceChildren(form);
    campaignName.focus();
  }

  // -- start --------------------------------------------------------------------------------------
  const observer = new ResizeObserver(() => {
    if (resize() && summary) {
      redraw();
      scheduleViewport();
    }
  });
  observer.observe(wrap);
  resize();
  (async () => {
    await fetchViewport(true);
    if (!summary) return;
    fit();
    redraw();
  })();

  // For tests and the benchmark: the transform and the counters.
  window.shoalMap = {
    toScreen: (x, y) => {
      const s = toScreen(x, y);
      const r = canvas.getBoundingClientRect();
      return { x: r.left + s.x, y: r.top + s.y };
    },
    toMap: (clientX, clientY) => {
      const r = canvas.getBoundingClientRect();
      return toMap(clientX - r.left, clientY - r.top);
    },
    view: () => ({ ...view, width: W, height: H, dpr }),
    bounds,
    stats: () => ({ ...stats, held: points.length, drawTimes: [...drawTimes] }),
    held: () => points.map((p) => ({ id: p.id, x: p.x, y: p.y })),
    region: () => (regionState ? { polygon: regionState.polygon, count: regionState.count, segment: regionState.segment } : null),
    panBy,
    jobId: job.job_id,
  };

  return () => {
    clearTimeout(timer);
    if (controller) controller.abort();
    observer.disconnect();
    if (window.shoalMap && window.shoalMap.jobId === job.job_id) delete window.shoalMap;
  };
}

// At most MAX_VERTICES vertices, evenly kept along the outline.
function thin(polygon) {
  if (polygon.length <= MAX_VERTICES) return polygon.map((p) => ({ x: p.x, y: p.y }));
  const step = polygon.length / MAX_VERTICES;
  const out = [];
  for (let i = 0; i < MAX_VERTICES; i++) {
    const p = polygon[Math.floor(i * step)];
    out.push({ x: p.x, y: p.y });
  }
  return out;
}

// A hand-drawn outline often crosses itself (the end overshoots the start); the server takes
// only simple polygons. At each crossing the outline splits into two loops and the larger is kept.
export function untangle(polygon) {
  let p = dedupe(polygon);
  for (let round = 0; round < MAX_VERTICES && p.length >= 3; round++) {
    const hit = firstCrossing(p);
    if (!hit) return p;
    const { i, j, at } = hit;
    const a = dedupe([at, ...p.slice(i + 1, j + 1)]);
    const b = dedupe([...p.slice(0, i + 1), at, ...p.slice(j + 1)]);
    if (a.length < 3 && b.length < 3) return [];
    p = b.length < 3 || (a.length >= 3 && Math.abs(area(a)) >= Math.abs(area(b))) ? a : b;
  }
  return p.length >= 3 ? p : [];
}

// Without repeated vertices and spikes (a vertex where the outline turns straight back).
function dedupe(p) {
  let out = [];
  for (const v of p) {
    const last = out[out.length - 1];
    if (!last || last.x !== v.x || last.y !== v.y) out.push(v);
  }
  while (out.length > 1 && out[0].x === out[out.length - 1].x && out[0].y === out[out.length - 1].y) out.pop();
  for (let changed = true; changed && out.length >= 3;) {
    changed = false;
    const n = out.length;
    for (let i = 0; i < n; i++) {
      const u = out[(i + n - 1) % n], v = out[i], w = out[(i + 1) % n];
      const ax = v.x - u.x, ay = v.y - u.y, bx = w.x - v.x, by = w.y - v.y;
      if (ax * by - ay * bx === 0 && ax * bx + ay * by < 0) {
        out = dedupe(out.slice(0, i).concat(out.slice(i + 1)));
        changed = true;
        break;
      }
    }
  }
  return out;
}

function area(p) {
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    const a = p[i], b = p[(i + 1) % p.length];
    s += a.x * b.y - b.x * a.y;
  }
  return s / 2;
}

// The first pair of non-adjacent edges (i < j) that cross or touch, and where.
function firstCrossing(p) {
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const a = p[i], b = p[(i + 1) % n];
    for (let j = i + 2; j < n; j++) {
      if (i === 0 && j === n - 1) continue; // the closing edge shares vertex 0 with edge 0
      const c = p[j], d = p[(j + 1) % n];
      const at = meet(a, b, c, d);
      if (at) return { i, j, at };
    }
  }
  return null;
}

function orient(a, b, c) {
  const v = (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x);
  return v > 0 ? 1 : v < 0 ? -1 : 0;
}

function within(a, b, c) {
  return Math.min(a.x, b.x) <= c.x && c.x <= Math.max(a.x, b.x) && Math.min(a.y, b.y) <= c.y && c.y <= Math.max(a.y, b.y);
}

// Where segments ab and cd meet (a crossing or a touch), else null.
function meet(a, b, c, d) {
  if (Math.max(a.x, b.x) < Math.min(c.x, d.x) || Math.max(c.x, d.x) < Math.min(a.x, b.x)
    || Math.max(a.y, b.y) < Math.min(c.y, d.y) || Math.max(c.y, d.y) < Math.min(a.y, b.y)) return null;
  const o1 = orient(a, b, c), o2 = orient(a, b, d), o3 = orient(c, d, a), o4 = orient(c, d, b);
  if (o1 !== o2 && o3 !== o4) {
    const den = (b.x - a.x) * (d.y - c.y) - (b.y - a.y) * (d.x - c.x);
    if (den === 0) return { x: c.x, y: c.y };
    const t = ((c.x - a.x) * (d.y - c.y) - (c.y - a.y) * (d.x - c.x)) / den;
    return { x: a.x + t * (b.x - a.x), y: a.y + t * (b.y - a.y) };
  }
  if (o1 === 0 && within(a, b, c)) return { x: c.x, y: c.y };
  if (o2 === 0 && within(a, b, d)) return { x: d.x, y: d.y };
  if (o3 === 0 && within(c, d, a)) return { x: a.x, y: a.y };
  if (o4 === 0 && within(c, d, b)) return { x: b.x, y: b.y };
  return null;
}

// A viewport's points from the console's answer: its ``point_columns`` (one list per field, the
// coordinates as base64 float32; see services/console/backend.py), or protobuf JSON's ``points``.
export function viewportPoints(resp) {
  const c = resp.point_columns;
  if (!c) return resp.points || [];
  const floats = (text) => {
    const raw = atob(text || "");
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  };
  const xs = floats(c.x), ys = floats(c.y);
  const at = (name, i) => (c[name] ? c[name][i] : undefined);
  return (c.frame_id || []).map((id, i) => ({
    frame_id: id, x: xs[i], y: ys[i], split: at("split", i), label_class: at("label_class", i),
    predicted_class: at("predicted_class", i), correct: at("correct", i), label_issue: at("label_issue", i),
    self_confidence: at("self_confidence", i), metadata_value: at("metadata_value", i),
  }));
}
