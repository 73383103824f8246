// What the jobs that look at the data as a whole found: outliers, duplicates and leaks between
// splits (the neighbour job of a dataset in an embedding space), failure clusters of an inference
// set, and drift between two sides. Each job runs from here and is followed live; its frames open
// in the frame view, and a failure cluster can be saved as a segment.
import { all, followJob, rpc } from "../api.js";
import { enumName, fmt, h, href, projectInfo, select, showError, thumbnail } from "../ui.js";

const enc = encodeURIComponent;
const ENDED = new Set(["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"]);
const PAGE = 24;
const KINDS = { neighbors: "neighbors", failure_clusters: "clusters", drift: "drift" };

const fill = (el, ...children) => el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
const num = (v) => Number(v || 0);
const f3 = (x) => Number(x || 0).toFixed(3);
const pct = (x) => `${(100 * (x || 0)).toFixed(1)}%`;

// Records a started job in the URL without drawing the page again.
function setParams(changes) {
  const [path, query] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  for (const [k, v] of Object.entries(changes)) {
    if (v) params.set(k, v); else params.delete(k);
  }
  history.replaceState(null, "", `#${path}${params.toString() ? "?" + params : ""}`);
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

function input(id, attrs) {
  return h("input", { id, name: id, ...attrs });
}

// datetime-local values are read and shown as UTC
function toTimestamp(value) {
  if (!value) return undefined;
  const d = new Date(`${value}Z`);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}
function fromMillis(ms) {
  return ms ? new Date(Number(ms)).toISOString().slice(0, 16) : "";
}

// A job's state, stage and progress, kept current while it runs; each new stage is listed.
function jobPanel(id, project, stop) {
  const pill = h("span", { class: "pill" });
  const stage = h("span", { class: "stage" });
  const bar = h("span", {});
  const progress = h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": "0", "aria-label": "progress" }, bar);
  const stages = h("ol", { class: "stages", id: `${id}-stages` });
  const cancel = h("button", { type: "button", class: "danger", id: `${id}-cancel`, hidden: true }, "Cancel");
  const el = h("div", { class: "job-panel", id, hidden: true, "aria-live": "polite" },
    h("div", { class: "job-line" }, h("span", { class: "job-id muted" }), pill, stage, progress, cancel), stages);
  let current = null;
  const update = (job) => {
    current = job;
    el.hidden = false;
    const state = enumName(job.state, "JOB_STATE_");
    pill.textContent = state;
    pill.className = `pill ${state}`;
    el.dataset.state = state;
    el.querySelector(".job-id").textContent = `job ${job.job_id}`;
    stage.textContent = job.state === "JOB_STATE_FAILED" ? job.message || "failed" : job.stage || "";
    const p = Math.round(100 * (job.progress || 0));
    bar.style.width = `${p}%`;
    progress.setAttribute("aria-valuenow", String(p));
    const step = `${state}${job.stage ? ": " + job.stage : ""}`;
    if (stages.lastChild?.textContent !== step) stages.append(h("li", {}, step));
    cancel.hidden = ENDED.has(job.state);
  };
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const r = await rpc("analysis", "CancelJob", { project, job_id: current.job_id });
      update(r.job || current);
    } catch (err) {
      stage.textContent = err.message;
    } finally {
      cancel.disabled = false;
    }
  });
  // Shows the job and follows it until it ends; resolves with its last state.
  const follow = async (job) => {
    stages.replaceChildren();
    update(job);
    if (ENDED.has(job.state)) return job;
    const last = await followJob("analysis", project, job.job_id, update, stop.signal);
    return last || job;
  };
  return { el, follow };
}

// One section: a form that starts a job, the job's panel, and its result.
function section(page, { id, title, help, form, start, show, job }) {
  const result = h("div", { id: `${id}-result` });
  const panel = jobPanel(`${id}-job`, page.project, page.stop);
  const message = h("p", { class: "muted", id: `${id}-message`, role: "status" });
  const run = async (rerun) => {
    message.textContent = "";
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const started = await start(rerun);
      setParams({ [KINDS[started.kind] || id]: started.job_id });
      await finish(started);
    } catch (err) {
      showError(message, err);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  };
  const finish = async (j) => {
    result.replaceChildren();
    const last = await panel.follow(j);
    if (!page.ctx.isCurrent()) return;
    if (last.state === "JOB_STATE_SUCCEEDED") {
      try {
        await show(last, result);
      } catch (err) {
        showError(result, err);
      }
    } else if (last.state === "JOB_STATE_FAILED") {
      fill(result, h("p", { class: "error" }, `The job failed: ${last.message || "no reason given"}`));
    }
  };
  const buttons = [
    h("button", { type: "submit", class: "primary", id: `${id}-run` }, "Run"),
    h("button", { type: "button", id: `${id}-rerun`, title: "compute again, after new data", onclick: () => run(true) }, "Run again"),
  ];
  const el = h("section", { class: "card finding", id },
    h("h2", {}, title), help ? h("p", { class: "muted" }, help) : null,
    h("form", { class: "toolbar", id: `${id}-form`, onsubmit: (e) => { e.preventDefault(); run(false); } }, form, buttons),
    message, panel.el, result);
  if (job) finish(job).catch((err) => showError(message, err));
  return el;
}

export async function render(main, ctx) {
  const { project } = ctx;
  const q = ctx.query;
  const info = await projectInfo(project);
  const spaces = (info.project.embedding_spaces || []).filter((x) => x.level !== "EMBEDDING_LEVEL_OBJECT");
  const jobs = await all("analysis", "ListJobs", { project }, "jobs", 500);
  // The job of each kind to show: the one the URL names, else the newest.
  const wanted = {};
  if (q.get("job") && q.get("kind")) wanted[q.get("kind")] = q.get("job");
  for (const [kind, name] of Object.entries(KINDS)) if (q.get(name)) wanted[kind] = q.get(name);
  const shown = {};
  await Promise.all(Object.keys(KINDS).map(async (kind) => {
    if (wanted[kind]) {
      shown[kind] = jobs.find((j) => j.job_id === wanted[kind])
        || await rpc("analysis", "GetJob", { project, job_id: wanted[kind] }).then((r) => r.job, () => null);
    }
    if (!shown[kind]) shown[kind] = jobs.find((j) => j.kind === kind && j.state !== "JOB_STATE_CANCELLED") || null;
  }));
  const stop = new AbortController();
  const page = { ctx, project, info, spaces, stop };
  const frameHref = (dataset, frameId, params = {}) => href(`/p/${enc(project)}/frame/${enc(dataset)}/${enc(frameId)}`, params);
  page.frameHref = frameHref;

  if (!spaces.length) {
    main.replaceChildren(h("h1", {}, "Findings"), h("p", { class: "muted", id: "no-spaces" },
      "The project has no frame-level embedding space: upload frame embeddings to find outliers, duplicates, failure clusters and drift."));
    return () => stop.abort();
  }
  main.replaceChildren(
    h("h1", {}, "Findings"),
    h("nav", { class: "toolbar findings-nav", "aria-label": "Findings" },
      h("a", { href: "#", onclick: jump("neighbors") }, "Outliers, duplicates and leaks"),
      h("a", { href: "#", onclick: jump("clusters") }, "Failure clusters"),
      h("a", { href: "#", onclick: jump("drift") }, "Drift")),
    neighbours(page, shown.neighbors),
    clusters(page, shown.failure_clusters),
    drift(page, shown.drift));
  return () => stop.abort();
}

function jump(id) {
  return (e) => {
    e.preventDefault();
    document.getElementById(id)?.scrollIntoView({ block: "start" });
  };
}

const spaceOptions = (spaces) => spaces.map((x) => ({ value: x.name, label: `${x.name} (${x.dimension}-d)` }));

// -- outliers, duplicates and leaks -------------------------------------------------------------

function neighbours(page, job) {
  const { project, info, spaces } = page;
  const p = job?.params || {};
  const datasets = info.datasets.map((d) => ({ value: d.name, label: d.name }));
  const ds = select("nb-dataset", datasets, p.dataset || datasets[0]?.value || "", () => {});
  const space = select("nb-space", spaceOptions(spaces), p.embedding_space || spaces[0].name, () => {});
  const k = input("nb-k", { type: "number", min: "0", max: "100", value: p.k || "10" });
  return section(page, {
    id: "neighbors", title: "Outliers, duplicates and leaks", job,
    help: "Each frame's nearest neighbours in an embedding space: the frames furthest from the rest, and pairs close enough to be duplicates (across splits: leaks).",
    form: [field("Dataset", ds), field("Embedding space", space), field("Neighbours", k)],
    start: async (rerun) => (await rpc("analysis", "StartNeighborAnalysis", {
      project, dataset: ds.value, embedding_space: space.value, k: Number(k.value) || 0, rerun })).job,
    show: (j, root) => showNeighbours(page, j, root),
  });
}

async function showNeighbours(page, job, root) {
  const { project, info } = page;
  const order = h("select", { id: "outlier-order", "aria-label": "order" },
    [["OUTLIER_ORDER_UNSPECIFIED", "most outlying first"], ["OUTLIER_ORDER_LABEL_DISAGREEMENT", "most disagreeing with their neighbours' labels"],
      ["OUTLIER_ORDER_CLASS_OUTLIER", "most unlike their own class"]].map(([v, l]) => h("option", { value: v }, l)));
  const summary = h("p", { id: "neighbors-summary" });
  const gallery = h("div", { class: "grid", id: "outliers" });
  const more = h("button", { type: "button", id: "outliers-more", hidden: true }, "More");
  const leaksOnly = h("input", { type: "checkbox", id: "leaks-only" });
  const pairs = h("div", { id: "duplicates-wrap" });
  fill(root, summary,
    h("h3", {}, "Outliers"), h("div", { class: "toolbar" }, field("Order", order)), gallery, more,
    h("h3", {}, "Duplicates"), h("label", { class: "inline" }, leaksOnly, " Only leaks (pairs across splits)"), pairs);

  let token = "";
  const loadOutliers = async (reset) => {
    if (reset) {
      token = "";
      gallery.replaceChildren();
    }
    more.hidden = true;
    const resp = await rpc("analysis", "QueryOutliers", { project, job_id: job.job_id, order: order.value, page: { page_size: PAGE, page_token: token } });
    const s = resp.summary || {};
    fill(summary, `${fmt(num(s.frames))} frames, ${s.k || "–"} neighbours each (${s.metric || "–"} distance, ${s.exact_search ? "exact" : "approximate"} search). `,
      `Duplicates: ${fmt(num(s.exact_duplicate_pairs))} exact and ${fmt(num(s.near_duplicate_pairs))} near pairs (closer than ${f3(s.duplicate_distance)}), `,
      h("strong", { class: num(s.cross_split_pairs) ? "leak-count" : null }, `${fmt(num(s.cross_split_pairs))} across splits`), ".");
    for (const f of resp.frames || []) {
      const ds = f.ref?.dataset || job.params?.dataset;
      const fid = f.ref?.frame_id;
      const parts = [fid, `score ${f3(f.outlier_score)}`];
      if (f.label_class !== undefined) {
        parts.push(info.className(f.label_class));
        if (f.neighbor_label !== undefined && f.neighbor_label !== f.label_class) parts.push(`neighbours: ${info.className(f.neighbor_label)}`);
      }
      gallery.append(thumbnail(project, ds, fid, { caption: parts.join(" · "), href: page.frameHref(ds, fid) }));
    }
    token = resp.page?.next_page_token || "";
    more.hidden = !token;
    if (!gallery.children.length) gallery.append(h("p", { class: "muted" }, "No frame."));
  };
  more.onclick = () => loadOutliers(false).catch((err) => showError(gallery, err));
  order.onchange = () => loadOutliers(true).catch((err) => showError(gallery, err));

  let pairToken = "";
  const loadPairs = async (reset) => {
    if (reset) pairToken = "";
    const resp = await rpc("analysis", "QueryDuplicates", { project, job_id: job.job_id, cross_split_only: leaksOnly.checked || undefined,
      page: { page_size: PAGE, page_token: pairToken } });
    const list = resp.pairs || [];
    const thumb = (ref) => thumbnail(project, ref.dataset, ref.frame_id, { caption: ref.frame_id, href: page.frameHref(ref.dataset, ref.frame_id) });
    const rows = list.map((x) => {
      const leak = (x.split_a || "") !== (x.split_b || "");
      return h("tr", { class: leak ? "leak" : null, dataset: { a: x.a?.frame_id, b: x.b?.frame_id } },
        h("td", { class: "pair-thumb" }, thumb(x.a || {})), h("td", { class: "pair-thumb" }, thumb(x.b || {})),
        h("td", { class: "num" }, f3(x.distance)), h("td", {}, x.exact ? "exact" : "near"),
        h("td", {}, `${x.split_a || "(none)"} / ${x.split_b || "(none)"}`, leak ? h("span", { class: "pill leak-pill" }, "leak") : null));
    });
    const total = num(resp.page?.total_count);
    let tbody = pairs.querySelector("tbody");
    if (reset || !tbody) {
      if (!list.length) {
        fill(pairs, h("p", { class: "muted", id: "no-duplicates" }, leaksOnly.checked ? "No duplicate pair across splits." : "No duplicate pair."));
        return;
      }
      tbody = h("tbody", {});
      fill(pairs, h("p", { class: "muted" }, `${fmt(total)} pairs, closest first.`),
        h("table", { class: "data", id: "duplicates" },
          h("thead", {}, h("tr", {}, ["Frame", "Duplicate", "Distance", "Kind", "Splits"].map((t) => h("th", { scope: "col" }, t)))), tbody));
    }
    tbody.append(...rows);
    pairToken = resp.page?.next_page_token || "";
    pairs.querySelector("#duplicates-more")?.remove();
    if (pairToken) {
      pairs.append(h("button", { type: "button", id: "duplicates-more",
        onclick: () => loadPairs(false).catch((err) => showError(pairs, err)) }, "More pairs"));
    }
  };
  leaksOnly.onchange = () => loadPairs(true).catch((err) => showError(pairs, err));
  await Promise.all([loadOutliers(true), loadPairs(true)]);
}

// -- failure clusters ----------------------------------------------------------------------------

function clusters(page, job) {
  const { project, info, spaces } = page;
  const p = job?.params || {};
  const sets = info.inferenceSets;
  if (!sets.length) {
    return h("section", { class: "card finding", id: "clusters" }, h("h2", {}, "Failure clusters"),
      h("p", { class: "muted" }, "No inference set yet: failure clusters group a model's errors."));
  }
  const set = select("fc-set", sets.map((x) => ({ value: x.name, label: `${x.name} · ${x.dataset}` })), p.inference_set || sets[0].name, () => {});
  const space = select("fc-space", spaceOptions(spaces), p.embedding_space || spaces[0].name, () => {});
  const conf = input("fc-conf", { type: "number", min: "0", max: "1", step: "0.05", value: p.confidence_threshold ? String(Number(p.confidence_threshold)) : "0" });
  const iou = input("fc-iou", { type: "number", min: "0", max: "1", step: "0.05", value: p.iou_threshold && Number(p.iou_threshold) ? String(Number(p.iou_threshold)) : "0.5" });
  const maxClusters = input("fc-max", { type: "number", min: "0", max: "100", value: p.max_clusters || "20" });
  const minSize = input("fc-min", { type: "number", min: "0", value: p.min_cluster_size || "5" });
  return section(page, {
    id: "clusters", title: "Failure clusters", job,
    help: "A model's errors grouped where they gather in an embedding space, each with the class pairs and metadata values it holds more of than the rest.",
    form: [field("Inference set", set), field("Embedding space", space), field("Confidence threshold", conf),
      info.detection ? field("IoU threshold", iou) : null, field("At most", maxClusters), field("Smallest", minSize)],
    start: async (rerun) => (await rpc("analysis", "StartFailureClusters", {
      project, inference_set: set.value, embedding_space: space.value, confidence_threshold: Number(conf.value) || undefined,
      iou_threshold: info.detection ? Number(iou.value) || undefined : undefined,
      max_clusters: Number(maxClusters.value) || undefined, min_cluster_size: Number(minSize.value) || undefined, rerun })).job,
    show: (j, root) => showClusters(page, j, root),
  });
}

function segmentPrefix(text) {
  const s = text.toLowerCase().replace(/[^a-z0-9_.-]+/g, "-").replace(/^[^a-z0-9]+/, "");
  return (s || "cluster").slice(0, 50);
}

async function showClusters(page, job, root) {
  const { project, info } = page;
  const resp = await rpc("analysis", "GetFailureClusters", { project, job_id: job.job_id });
  const s = resp.summary || {};
  const setName = job.params?.inference_set || "";
  const dataset = (info.inferenceSets.find((x) => x.name === setName) || {}).dataset || "";
  const list = resp.clusters || [];
  const cards = list.map((c) => {
    const n = c.cluster || 0;
    const prefix = input(`cluster-${n}-prefix`, { value: segmentPrefix(`${setName}-cluster-`), "aria-label": "segment name prefix", size: 24 });
    const withCorrect = h("input", { type: "checkbox", id: `cluster-${n}-correct` });
    const saved = h("span", { id: `cluster-${n}-saved`, role: "status" });
    const save = h("button", { type: "button", class: "primary", id: `cluster-${n}-save`, onclick: async () => {
      save.disabled = true;
      saved.textContent = "";
      try {
        const r = await rpc("analysis", "SaveFailureClusters", { project, job_id: job.job_id, clusters: [n],
          name_prefix: prefix.value.trim(), include_correct: withCorrect.checked || undefined, author: "console" });
        const seg = (r.segments || [])[0] || {};
        fill(saved, "Saved as ", h("a", { href: href(`/p/${enc(project)}/examples`, { dataset, inference_set: setName, segment: seg.name }) }, seg.name),
          ` (${fmt(num(seg.size))} frames).`);
        saved.className = "ok";
      } catch (err) {
        saved.textContent = err.message;
        saved.className = "error";
        save.disabled = false;
      }
    } }, "Save as segment");
    const pairs = (c.class_pairs || []).map((x) => h("li", {},
      `${info.className(x.label_class ?? 0)} → ${(x.predicted_class ?? 0) < 0 ? "(nothing)" : info.className(x.predicted_class ?? 0)}: `,
      `${fmt(num(x.errors))} (${pct(x.share)})`));
    const values = (c.values || []).map((v) => h("tr", {},
      h("td", {}, `${v.field} = ${v.value}`), h("td", { class: "num" }, fmt(num(v.errors))),
      h("td", { class: "num" }, pct(v.share)), h("td", { class: "num" }, pct(v.overall_share)), h("td", { class: "num" }, `${Number(v.lift || 0).toFixed(1)}×`)));
    const examples = (c.example_frame_ids || []).slice(0, 12).map((fid) =>
      thumbnail(project, dataset, fid, { caption: fid, href: page.frameHref(dataset, fid, { inference_set: setName }) }));
    return h("article", { class: "cluster", id: `cluster-${n}` },
      h("h3", {}, `Cluster ${n}`),
      h("p", { class: "description" }, c.description || ""),
      h("p", { class: "muted" }, `${fmt(num(c.errors))} errors among ${fmt(num(c.frames))} frames in its region; error rate ${pct(c.error_rate)}`,
        ` (${Number(c.lift || 0).toFixed(1)}× the overall), ${Number(c.score || 0).toFixed(1)} standard errors, p = ${Number(c.p_value || 0).toExponential(1)}.`),
      h("div", { class: "cluster-facts" },
        pairs.length ? h("div", {}, h("h4", {}, "Label → prediction"), h("ul", {}, pairs)) : null,
        values.length ? h("div", {}, h("h4", {}, "Over-represented values"), h("table", { class: "data" },
          h("thead", {}, h("tr", {}, ["Value", "Errors", "Share", "Overall", "Lift"].map((t, i) => h("th", { scope: "col", class: i ? "num" : null }, t)))),
          h("tbody", {}, values))) : null),
      h("div", { class: "grid small" }, examples),
      h("div", { class: "toolbar save-cluster" }, field("Segment name prefix", prefix),
        h("label", { class: "inline" }, withCorrect, " with the correct frames of its region"), save, saved));
  });
  fill(root,
    h("p", { id: "clusters-summary" }, `${fmt(num(s.frames))} frames, ${fmt(num(s.errors))} errors (${pct(s.error_rate)}); `,
      `${fmt(list.length)} cluster${list.length === 1 ? " holds" : "s hold"} ${fmt(num(s.clustered_errors))} of the errors.`,
      num(s.frames_without_vectors) ? ` ${fmt(num(s.frames_without_vectors))} frames had no vector and were left out.` : ""),
    cards.length ? cards : h("p", { class: "muted", id: "no-clusters" }, "No cluster: the errors gather nowhere more than chance would."));
}

// -- drift ---------------------------------------------------------------------------------------

function drift(page, job) {
  const { project, info, spaces } = page;
  const p = job?.params || {};
  const datasets = info.datasets.map((d) => ({ value: d.name, label: d.name }));
  const side = (name, fallback) => {
    const ds = select(`drift-${name}-dataset`, datasets, p[`${name}.dataset`] || fallback, () => {});
    const since = input(`drift-${name}-since`, { type: "datetime-local", value: fromMillis(p[`${name}.since`]) });
    const until = input(`drift-${name}-until`, { type: "datetime-local", value: fromMillis(p[`${name}.until`]) });
    const el = h("fieldset", { class: "drift-side" }, h("legend", {}, `Side ${name.toUpperCase()}`),
      field("Dataset", ds), field("Captured from (UTC)", since), field("Captured before (UTC)", until));
    const value = () => ({ dataset: ds.value, since: toTimestamp(since.value), until: toTimestamp(until.value) });
    return { el, value };
  };
  const a = side("a", datasets[0]?.value || "");
  const b = side("b", (datasets[1] || datasets[0])?.value || "");
  const space = select("drift-space", spaceOptions(spaces), p.embedding_space || spaces[0].name, () => {});
  return section(page, {
    id: "drift", title: "Drift", job,
    help: "Two sets of frames (two datasets, or two capture-time windows) compared in an embedding space: whether they differ, and the regions that changed most.",
    form: [a.el, b.el, field("Embedding space", space)],
    start: async (rerun) => (await rpc("analysis", "StartDrift", {
      project, a: a.value(), b: b.value(), embedding_space: space.value, rerun })).job,
    show: (j, root) => showDrift(page, j, root),
  });
}

function sideName(params, name) {
  const ds = params[`${name}.dataset`] || "";
  const since = params[`${name}.since`], until = params[`${name}.until`];
  const when = since || until ? ` ${since ? fromMillis(since).replace("T", " ") : "…"} – ${until ? fromMillis(until).replace("T", " ") : "…"}` : "";
  return `${ds}${when}`;
}

async function showDrift(page, job, root) {
  const { project } = page;
  const r = await rpc("analysis", "GetDrift", { project, job_id: job.job_id });
  const params = job.params || {};
  const significant = (r.p_value || 0) < 0.05;
  const thumbs = (dataset, ids) => h("div", { class: "region-examples" }, (ids || []).slice(0, 6).map((fid) =>
    thumbnail(project, dataset, fid, { caption: fid, href: page.frameHref(dataset, fid) })));
  const regions = r.regions || [];
  const FIRST = 10;
  const row = (x) => h("tr", { dataset: { region: String(x.region || 0) } },
    h("td", {}, String(x.region || 0)), h("td", { class: "num" }, fmt(num(x.frames_a))), h("td", { class: "num" }, fmt(num(x.frames_b))),
    h("td", { class: "num" }, `${(x.shift || 0) > 0 ? "+" : ""}${(100 * (x.shift || 0)).toFixed(1)} pts`),
    h("td", { class: "num" }, Number(x.score || 0).toFixed(1)),
    h("td", {}, thumbs(params["a.dataset"], x.examples_a)), h("td", {}, thumbs(params["b.dataset"], x.examples_b)));
  const body = h("tbody", {}, regions.slice(0, FIRST).map(row));
  const rest = regions.length > FIRST ? h("button", { type: "button", id: "drift-all", onclick: () => {
    body.append(...regions.slice(FIRST).map(row));
    rest.remove();
  } }, `Show all ${fmt(regions.length)} regions`) : null;
  fill(root,
    h("p", { id: "drift-summary" },
      h("strong", { class: significant ? "drifted" : null }, significant ? "The two sides differ. " : "No significant drift. "),
      `A: ${sideName(params, "a")} (${fmt(num(r.frames_a))} frames); B: ${sideName(params, "b")} (${fmt(num(r.frames_b))} frames). `,
      `Share of neighbours from a frame's own side ${f3(r.statistic)} against ${f3(r.expected)} expected; `,
      `z = ${Number(r.z_score || 0).toFixed(2)}, p = ${Number(r.p_value || 0).toPrecision(2)} (${r.k || "–"} neighbours, ${r.metric || "–"}).`),
    regions.length ? h("table", { class: "data", id: "drift-regions" },
      h("thead", {}, h("tr", {}, ["Region", "Frames A", "Frames B", "Shift to B", "Score", "Examples of A", "Examples of B"]
        .map((t, i) => h("th", { scope: "col", class: i && i < 5 ? "num" : null }, t)))),
      body)
      : h("p", { class: "muted" }, "No region."),
    rest);
}
