// Label-issue review: the ranked issues of a label-issues job, one at a time or as a grid, with the
// given and the suggested label and why (the probabilities, the neighbours' labels). Accept sends
// the frame to labeling with the reason; dismiss is remembered by the analysis service, so the
// issue does not come back in the next run. Keyboard: a accept, d dismiss, j/k or arrows next and
// previous, u undo the last dismissal, g switch between one at a time and the grid.
import { all, followJob, rpc, sendToLabeling } from "../api.js";
import { LABEL_COLOUR, PREDICTION_COLOUR, enumName, fmt, h, href, projectInfo, select, showError, thumbnail, time } from "../ui.js";
import { sceneView } from "../scene.js";
import { soundView } from "../sound.js";

const PAGE_SIZE = 48;
const ISSUE_KINDS = new Set(["label_issues", "detection_label_issues", "multilabel_label_issues", "segmentation_label_issues",
  "sound_event_label_issues"]);
// where a segmentation frame's flagged pixels are drawn
const FLAGGED_COLOUR = "#d55e00";
const ENDED = new Set(["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"]);
// labeling items read to show which issue frames are in labeling (a project sends far fewer)
const MAX_LABELING_ITEMS = 5000;
const ORDERS = [
  { value: "", label: "lowest confidence in the label" },
  { value: "LABEL_ISSUE_ORDER_MARGIN", label: "largest margin for another class" },
  { value: "LABEL_ISSUE_ORDER_WEIGHTED_ENTROPY", label: "highest weighted entropy" },
];

const num = (v) => (v === undefined || v === null ? 0 : Number(v));
const pct = (p) => `${Math.round(num(p) * 100)}%`;

function pill(text, kind) {
  return h("span", { class: `pill ${kind || text.replaceAll(" ", "-")}` }, text);
}

// Why a frame is an issue, in the words the annotator reads with it.
function reasonOf(item, info) {
  const name = (c) => info.className(c);
  const keypointName = (c, k) => info.keypoints?.get(c || 0)?.names?.[k || 0] ?? `keypoint ${k || 0}`;
  if (item.kind === "classification") {
    return `label issue: labeled ${name(item.given)}, the model suggests ${name(item.suggested)} (p ${num(item.pSuggested).toFixed(2)})`;
  }
  if (item.kind === "segmentation") {
    return `label issue: ${fmt(item.flagged)} pixels likely mislabeled${item.given >= 0
      ? `, mostly labeled ${name(item.given)} where the model sees ${name(item.suggested)}` : ""} (label quality ${item.score.toFixed(2)})`;
  }
  if (item.kind === "sound") {
    const span = (e) => `${Number(e?.onset || 0).toFixed(2)}–${Number(e?.offset || 0).toFixed(2)} s`;
    const parts = item.intervals.map((x) => {
      const given = name(x.label_event?.class_id || 0);
      switch (x.issue_type) {
        case "SOUND_EVENT_ISSUE_TYPE_MISSING":
          return `a ${name(x.predicted_event?.class_id || 0)} event at ${span(x.predicted_event)} is not labeled (p ${num(x.predicted_event?.score).toFixed(2)})`;
        case "SOUND_EVENT_ISSUE_TYPE_SPURIOUS": return `nothing is heard of the ${given} event at ${span(x.label_event)}`;
        case "SOUND_EVENT_ISSUE_TYPE_BADLY_BOUNDED": return `the ${given} event at ${span(x.label_event)} is badly bounded`;
        case "SOUND_EVENT_ISSUE_TYPE_WRONG_CLASS":
          return `labeled ${given} at ${span(x.label_event)}, it sounds like ${name(x.suggested_class ?? x.predicted_event?.class_id ?? 0)}`;
        default: return enumName(x.issue_type, "SOUND_EVENT_ISSUE_TYPE_");
      }
    });
    return `label issue: ${parts.join("; ")}`.slice(0, 2000);
  }
  if (item.kind === "multilabel") {
    const list = (ids) => ids.map((c) => name(c)).join(", ");
    return `label issue: ${[item.missing.length ? `missing ${list(item.missing)}` : "", item.extra.length ? `extra ${list(item.extra)}` : ""]
      .filter(Boolean).join("; ")} (label quality ${item.score.toFixed(2)})`;
  }
  const thing = info.cuboids ? "cuboid" : "box";
  const parts = item.objects.map((o) => {
    const conf = num(o.confidence).toFixed(2);
    switch (o.issue_type) {
      case "DETECTION_ISSUE_TYPE_MISSING_LABEL": return `a ${name(o.suggested_class)} ${thing} is missing (p ${conf})`;
      case "DETECTION_ISSUE_TYPE_SPURIOUS_LABEL": return `no prediction supports the ${name(o.given_class)} ${thing}`;
      case "DETECTION_ISSUE_TYPE_MISLOCALIZED":
        return o.label_cuboid ? `the ${name(o.given_class)} cuboid is mislocalized${o.mislocalization ? `: its ${o.mislocalization} is off` : ""} (BEV IoU ${num(o.iou).toFixed(2)})`
          : `the ${name(o.given_class)} box is mislocalized (IoU ${num(o.iou).toFixed(2)})`;
      case "DETECTION_ISSUE_TYPE_CLASS_SWAP": return `labeled ${name(o.given_class)}, the model suggests ${name(o.suggested_class)} (p ${conf})`;
      case "DETECTION_ISSUE_TYPE_MISPLACED_KEYPOINT":
        return `the ${name(o.given_class)}'s ${keypointName(o.given_class, (o.keypoints || [])[0])} is misplaced (p ${conf})`;
      case "DETECTION_ISSUE_TYPE_SWAPPED_KEYPOINTS":
        return `the ${name(o.given_class)}'s ${(o.keypoints || []).map((k) => keypointName(o.given_class, k)).join(" and ")} are swapped (p ${conf})`;
      default: return enumName(o.issue_type, "DETECTION_ISSUE_TYPE_");
    }
  });
  return `label issue: ${parts.join("; ")}`.slice(0, 2000);
}

export async function render(main, ctx) {
  const { project } = ctx;
  const info = await projectInfo(project);
  const q = ctx.query;
  const base = `/p/${encodeURIComponent(project)}/issues`;
  const labeledSets = new Set(info.datasets.filter((d) => !String(d.kind || "").includes("UNLABELED")).map((d) => d.name));
  const sets = info.inferenceSets.filter((s) => labeledSets.has(s.dataset));
  const inferenceSet = q.get("inference_set") || (sets[0] || {}).name || "";
  const dataset = (info.inferenceSets.find((s) => s.name === inferenceSet) || {}).dataset || "";
  // classification alone has orders and neighbour labels
  const plain = !(info.detection || info.cuboids || info.soundEvents || info.multiLabel || info.segmentation);
  const order = plain ? q.get("order") || "" : "";
  let view = q.get("view") === "grid" ? "grid" : "one";
  const stop = new AbortController();
  const cleanups = [() => stop.abort()];
  const cleanup = () => cleanups.forEach((f) => f());
  // leaving the page while it still waits for its job stops following it
  const left = () => { if (!ctx.isCurrent()) cleanup(); };
  window.addEventListener("hashchange", left);
  cleanups.push(() => window.removeEventListener("hashchange", left));

  const go = (changes) => ctx.navigate(href(base, { inference_set: inferenceSet, order, view, ...changes }));
  const heading = h("h1", {}, "Label issues");
  if (!sets.length) {
    main.replaceChildren(heading, h("p", { class: "muted", id: "issue-empty" },
      "This project has no inference set of a labeled dataset: upload a model's predictions first."));
    return cleanup;
  }

  const jobs = await all("analysis", "ListJobs", { project }, "jobs", 1000);
  const issueJobs = jobs.filter((j) => ISSUE_KINDS.has(j.kind) && (j.params || {}).inference_set === inferenceSet);
  let job = issueJobs.find((j) => j.job_id === q.get("job"))
    || (q.get("job") ? (await rpc("analysis", "GetJob", { project, job_id: q.get("job") })).job : null)
    || issueJobs.find((j) => j.state === "JOB_STATE_SUCCEEDED") || issueJobs[0] || null;
  const neighbourJob = jobs.find((j) => j.kind === "neighbors" && j.state === "JOB_STATE_SUCCEEDED" && (j.params || {}).dataset === dataset);

  // -- the toolbar: inference set, job, start or rerun -------------------------------------------
  // with a neighbour job of the dataset, a classification job may also weigh the neighbours' labels;
  // a rerun keeps the setting of the job shown unless it is changed here
  const blended = Boolean(job && (job.params || {}).neighbor_job_id);
  const useNeighbours = plain && neighbourJob
    ? h("input", { type: "checkbox", id: "use-neighbours", checked: blended ? true : null })
    : null;
  const startButton = h("button", { type: "button", class: "primary", id: job ? "rerun-job" : "start-job", onclick: async (e) => {
    e.target.disabled = true;
    try {
      const request = { project, inference_set: inferenceSet };
      if (useNeighbours && useNeighbours.checked) request.neighbor_job_id = neighbourJob.job_id;
      // the same setting as the job shown is its rerun; another setting is another job
      request.rerun = Boolean(job) && Boolean(request.neighbor_job_id) === blended;
      const r = await rpc("analysis", "StartLabelIssues", request);
      go({ job: r.job.job_id });
    } catch (err) {
      e.target.disabled = false;
      message(err.message, "error");
    }
  } }, job ? "Rerun" : "Find label issues");
  const jobOptions = issueJobs.map((j) => ({ value: j.job_id, label: `${j.job_id.split("-").pop().slice(0, 8)} · ${enumName(j.state, "JOB_STATE_")} · ${time(j.create_time)}${(j.params || {}).neighbor_job_id ? " · with neighbours" : ""}` }));
  const toolbar = h("div", { class: "toolbar", id: "issue-toolbar" },
    select("inference_set", sets.map((s) => ({ value: s.name, label: `${s.name} (${s.dataset})` })), inferenceSet, (v) => go({ inference_set: v, job: "" }), "Inference set"),
    jobOptions.length > 1 ? select("job", jobOptions, job ? job.job_id : "", (v) => go({ job: v }), "Job") : null,
    !plain ? null : select("order", ORDERS, order, (v) => go({ job: job ? job.job_id : "", order: v }), "Order"),
    useNeighbours ? h("label", { class: "field", title: "Blend the model's probabilities half and half with the labels of each frame's nearest neighbours (the dataset's neighbour job): fewer false alarms, more errors found" },
      h("span", {}, "Neighbours' labels"), h("span", {}, useNeighbours, " weigh them")) : null,
    h("div", { class: "field" }, h("span", {}, "\u00a0"), startButton));

  const jobBar = h("span", {});
  const jobText = h("span", { id: "job-state" });
  const jobPanel = h("div", { class: "issue-job", id: "job-progress", hidden: true },
    jobText, h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, jobBar));
  const showJob = (j) => {
    jobPanel.hidden = false;
    const p = Math.round(num(j.progress) * 100);
    jobText.textContent = j.state === "JOB_STATE_FAILED"
      ? `The job failed: ${j.message || "see the service's log"}`
      : `${enumName(j.state, "JOB_STATE_")} · ${j.stage || ""} · ${p}%`;
    jobPanel.dataset.state = j.state || "";
    jobBar.style.width = `${p}%`;
    jobBar.parentElement.setAttribute("aria-valuenow", String(p));
  };

  const status = h("p", { id: "issue-status", role: "status", class: "muted" });
  function message(text, kind = "") {
    status.textContent = text;
    status.className = kind || "muted";
  }
  const summary = h("p", { id: "issue-summary" });
  const body = h("div", { id: "issue-body" });
  const accepted = h("div", { id: "accepted" });
  const viewButtons = h("div", { class: "issue-views", role: "group", "aria-label": "view" },
    h("button", { type: "button", id: "view-one", "aria-pressed": String(view === "one"), onclick: () => setView("one") }, "One at a time"),
    h("button", { type: "button", id: "view-grid", "aria-pressed": String(view === "grid"), onclick: () => setView("grid") }, "Grid"));
  const keys = h("p", { class: "issue-keys muted", id: "shortcuts" },
    [["a", "accept: send to labeling"], ["d", "dismiss"], ["j / →", "next"], ["k / ←", "previous"], ["u", "undo the last dismissal"], ["g", "grid or one at a time"]]
      .map(([k, what]) => h("span", {}, h("kbd", {}, k), " ", what)));

  const controls = h("div", { class: "issue-controls", hidden: true }, viewButtons, keys);
  main.replaceChildren(heading, toolbar, jobPanel, summary, controls, status, body,
    h("h2", {}, "Sent to labeling"), accepted);

  if (!job) {
    summary.textContent = `No label-issue job for ${inferenceSet} yet: “Find label issues” starts one.`;
    return cleanup;
  }
  showJob(job);
  if (!ENDED.has(job.state)) {
    summary.textContent = "Waiting for the job to finish…";
    try {
      job = (await followJob("analysis", project, job.job_id, showJob, stop.signal)) || job;
    } catch (err) {
      if (!ctx.isCurrent()) return cleanup;
      throw err;
    }
    if (!ctx.isCurrent()) return cleanup;
  }
  if (job.state !== "JOB_STATE_SUCCEEDED") {
    summary.textContent = job.state === "JOB_STATE_FAILED" ? "" : `The job is ${enumName(job.state, "JOB_STATE_")}; rerun it to see issues.`;
    return cleanup;
  }
  jobPanel.hidden = true;
  controls.hidden = false;
  const detection = job.kind === "detection_label_issues";
  // a multi-label job: its frames with their missing and extra classes; they are read here, and sent or
  // dismissed from the frame view and the labeling platform (the bridge and dismissals take no multi-label job yet)
  const multi = job.kind === "multilabel_label_issues";
  // a segmentation job: its frames with their flagged pixels
  const seg = job.kind === "segmentation_label_issues";
  // a sound-event job: its flagged intervals, by clip
  const sound = job.kind === "sound_event_label_issues";
  const thing = info.cuboids ? "cuboid" : "box";

  // -- the issues, one keyset page at a time -----------------------------------------------------
  const items = [];
  let token = "";
  let done = false;
  let loading = null;
  let current = 0;
  let busy = false;
  const undo = []; // dismissed items, the last one first to come back
  const labeling = new Map(); // frame id -> labeling item

  async function fetchPage() {
    if (done) return;
    if (loading) return loading;
    loading = (async () => {
      const page = { page_size: PAGE_SIZE, page_token: token };
      if (seg) {
        const r = await rpc("analysis", "QuerySegmentationIssues", { project, job_id: job.job_id, page });
        showSummary(r.summary, r.page, r.dismissed_count);
        for (const it of r.issues || []) {
          items.push({ kind: "segmentation", frameId: it.ref.frame_id, dataset: it.ref.dataset || dataset, score: num(it.score),
            flagged: num(it.flagged_pixels), core: num(it.core_pixels), labeled: num(it.labeled_pixels),
            given: it.worst_class ?? -1, suggested: it.suggested_class ?? -1, mask: it.flagged_mask || "", status: "open" });
        }
      } else if (multi) {
        const r = await rpc("analysis", "QueryMultiLabelIssues", { project, job_id: job.job_id, page });
        showSummary(r.summary, r.page, r.dismissed_count);
        for (const it of r.issues || []) {
          items.push({ kind: "multilabel", frameId: it.ref.frame_id, dataset: it.ref.dataset || dataset, score: num(it.score),
            missing: it.missing_class_ids || [], extra: it.extra_class_ids || [], status: "open" });
        }
      } else if (sound) {
        const r = await rpc("analysis", "QuerySoundEventIssues", { project, job_id: job.job_id, level: "SOUND_EVENT_ISSUE_LEVEL_INTERVAL", page });
        showSummary(r.summary, r.page, r.dismissed_count);
        for (const x of r.intervals || []) {
          const existing = items.find((it) => it.frameId === x.frame_id);
          if (existing) existing.intervals.push(x);
          else items.push({ kind: "sound", frameId: x.frame_id, dataset, intervals: [x], score: num(x.score), status: "open" });
        }
      } else if (detection) {
        const r = await rpc("analysis", "QueryDetectionLabelIssues", { project, job_id: job.job_id, level: "DETECTION_ISSUE_LEVEL_OBJECT", page });
        showSummary(r.summary, r.page, r.dismissed_count);
        for (const o of r.objects || []) {
          const fid = o.ref.frame_id;
          const last = items[items.length - 1];
          const existing = last && last.frameId === fid ? last : items.find((it) => it.frameId === fid);
          if (existing) existing.objects.push(o);
          else items.push({ kind: "detection", frameId: fid, dataset: o.ref.dataset || dataset, objects: [o], score: num(o.score), status: "open" });
        }
      } else {
        const r = await rpc("analysis", "QueryLabelIssues", {
          project, job_id: job.job_id, order: order || undefined, neighbor_job_id: neighbourJob ? neighbourJob.job_id : undefined, page,
        });
        showSummary(r.summary, r.page, r.dismissed_count);
        for (const it of r.issues || []) {
          items.push({
            kind: "classification", frameId: it.ref.frame_id, dataset: it.ref.dataset || dataset,
            given: num(it.given_label), suggested: num(it.suggested_label),
            pGiven: num(it.self_confidence), pSuggested: num(it.suggested_probability), margin: num(it.normalized_margin),
            neighbourLabel: it.neighbor_label, neighbourDisagreement: it.neighbor_disagreement, status: "open",
          });
        }
      }
      for (const it of items) markLabeling(it);
      return null;
    })().then(() => null, (err) => { done = true; throw err; });
    try {
      await loading;
    } finally {
      loading = null;
    }
  }
  // The summary of the job and where the next keyset page starts.
  function showSummary(s, page, dismissed) {
    token = (page && page.next_page_token) || "";
    done = !token;
    s = s || {};
    const total = num(page && page.total_count);
    const examined = num(s.frames);
    const what = seg
      ? `${fmt(total)} frames with mislabeled regions among ${fmt(examined)} frames (${fmt(num(s.flagged_pixels))} pixels flagged)`
      : multi
      ? `${fmt(total)} frames with a class likely missing or extra among ${fmt(examined)} frames`
      : sound
        ? `${fmt(total)} flagged intervals in ${fmt(num(s.flagged_clips))} of ${fmt(num(s.clips))} clips (${fmt(num(s.missing))} missing, `
          + `${fmt(num(s.spurious))} spurious, ${fmt(num(s.badly_bounded))} badly bounded, ${fmt(num(s.wrong_class))} of the wrong class)`
      : detection
        ? `${fmt(total)} flagged ${thing === "box" ? "boxes" : "cuboids"} on ${fmt(num(s.flagged_frames))} of ${fmt(examined)} frames`
        : `${fmt(total)} likely label errors among ${fmt(examined)} frames`;
    summary.replaceChildren(h("strong", {}, what), " · job ", h("code", {}, job.job_id), ` finished ${time(job.finish_time)}`,
      num(dismissed) ? ` · ${fmt(num(dismissed))} dismissed before, left out` : "",
      seg && (num(s.without_probabilities) || num(s.unreadable))
        ? h("span", { id: "issue-left-out" }, ` · ${fmt(num(s.without_probabilities) + num(s.unreadable))} frames left out without readable probabilities`) : "",
      !detection && !multi && !seg && !sound ? (neighbourJob ? ` · neighbour labels from the ${neighbourJob.params.embedding_space} space` : " · no neighbour job for this dataset") : "",
      blended ? h("span", { id: "issue-blended" }, " · flagged on the model's probabilities and the neighbours' labels") : "",
    );
  }

  function markLabeling(it) {
    const li = labeling.get(it.frameId);
    if (li && it.status === "open") it.status = "accepted";
    it.labeling = li || it.labeling || null;
  }

  // -- labeling state of accepted frames ---------------------------------------------------------
  async function loadLabeling(requestId, attempt = 0) {
    try {
      const got = await all("labeling_bridge", "ListLabelingItems", { project, request_id: requestId || undefined }, "items", MAX_LABELING_ITEMS);
      for (const li of got) if ((li.ref || {}).dataset === dataset) labeling.set(li.ref.frame_id, li);
    } catch (err) {
      // a request handed over by the sampler reaches the bridge a moment later
      if (requestId && err.status === 404 && attempt < 8 && !stop.signal.aborted) {
        const t = setTimeout(() => loadLabeling(requestId, attempt + 1), 300 * 2 ** Math.min(attempt, 4));
        cleanups.push(() => clearTimeout(t));
        return;
      }
      accepted.replaceChildren(h("p", { class: "muted" }, `The labeling state is unavailable: ${err.message}`));
      return;
    }
    if (!ctx.isCurrent()) return;
    for (const it of items) markLabeling(it);
    showAccepted();
  }
  function showAccepted() {
    const rows = [...labeling.values()].filter((li) => String(li.reason || "").startsWith("label issue"));
    if (!rows.length) {
      accepted.replaceChildren(h("p", { class: "muted", id: "accepted-none" }, "No frame of this dataset was sent to labeling as a label issue yet."));
      return;
    }
    accepted.replaceChildren(h("table", { class: "data", id: "accepted-list" },
      h("thead", {}, h("tr", {}, ["Frame", "Reason", "Request", "State", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((li) => h("tr", { dataset: { frameId: li.ref.frame_id } },
        h("td", {}, h("a", { href: frameHref(li.ref.frame_id) }, li.ref.frame_id)),
        h("td", {}, li.reason || ""),
        h("td", {}, h("code", {}, li.request_id)),
        h("td", { class: "state" }, pill(enumName(li.state, "ITEM_STATE_"))),
        h("td", {}, time(li.updated_time)))))),
      h("p", {}, h("button", { type: "button", id: "refresh-labeling", onclick: () => loadLabeling() }, "Refresh")));
  }
  const frameHref = (fid) => href(`/p/${encodeURIComponent(project)}/frame/${encodeURIComponent(dataset)}/${encodeURIComponent(fid)}`, { inference_set: inferenceSet });

  // -- actions -----------------------------------------------------------------------------------
  async function accept() {
    const it = items[current];
    if (!it || busy) return;
    if (it.status === "accepted") return message(`${it.frameId} is in labeling already.`);
    busy = true;
    const reason = reasonOf(it, info);
    message(`Sending ${it.frameId} to labeling…`);
    try {
      const { request_id: requestId } = await sendToLabeling(project, { frames: { dataset: it.dataset, frame_ids: [it.frameId] } }, { reason });
      it.status = "accepted";
      it.labeling = { request_id: requestId, state: "ITEM_STATE_PENDING", reason };
      message(`Sent ${it.frameId} to labeling (request ${requestId}): ${reason}`, "ok");
      loadLabeling(requestId);
      advance(1);
    } catch (err) {
      message(`Could not send ${it.frameId} to labeling: ${err.message}`, "error");
    } finally {
      busy = false;
      draw();
    }
  }

  async function dismiss() {
    const it = items[current];
    if (!it || busy) return;
    if (it.status === "dismissed") return message(`${it.frameId} is dismissed already; u brings it back.`);
    busy = true;
    message(`Dismissing ${it.frameId}…`);
    try {
      await rpc("analysis", "DismissLabelIssues", {
        project, job_id: job.job_id, frame_ids: [it.frameId],
        reason: `dismissed in the console: ${reasonOf(it, info)}`.slice(0, 2000), dismissed_by: "console",
      });
      it.status = "dismissed";
      undo.push(current);
      message(`Dismissed ${it.frameId}: it will not come back in later runs. Press u to undo.`, "ok");
      advance(1);
    } catch (err) {
      message(`Could not dismiss ${it.frameId}: ${err.message}`, "error");
    } finally {
      busy = false;
      draw();
    }
  }

  async function restore() {
    if (busy || !undo.length) return message(undo.length ? "" : "No dismissal to undo.");
    const index = undo[undo.length - 1];
    const it = items[index];
    busy = true;
    try {
      await rpc("analysis", "DismissLabelIssues", { project, job_id: job.job_id, frame_ids: [it.frameId], restore: true, dismissed_by: "console" });
      undo.pop();
      it.status = "open";
      current = index;
      message(`Restored ${it.frameId}: it is an open issue again.`, "ok");
    } catch (err) {
      message(`Could not restore ${it.frameId}: ${err.message}`, "error");
    } finally {
      busy = false;
      draw();
    }
  }

  function advance(step) {
    const next = current + step;
    if (next < 0) return;
    if (next >= items.length) {
      if (done) return message("That was the last issue.");
      fetchPage().then(() => { if (next < items.length) { current = next; draw(); } }, (err) => message(err.message, "error"));
      return;
    }
    current = next;
    if (!done && items.length - current < 5) fetchPage().then(draw, (err) => message(err.message, "error"));
  }

  function setView(v) {
    view = v;
    history.replaceState(null, "", href(base, { inference_set: inferenceSet, order, view, job: job.job_id }));
    viewButtons.querySelector("#view-one").setAttribute("aria-pressed", String(view === "one"));
    viewButtons.querySelector("#view-grid").setAttribute("aria-pressed", String(view === "grid"));
    draw();
  }

  const onKey = (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || !ctx.isCurrent()) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(t.tagName))) return;
    const actions = {
      a: accept, d: dismiss, u: restore,
      j: () => { advance(1); draw(); }, ArrowRight: () => { advance(1); draw(); },
      k: () => { advance(-1); draw(); }, ArrowLeft: () => { advance(-1); draw(); },
      g: () => setView(view === "grid" ? "one" : "grid"),
    };
    const f = actions[e.key];
    if (!f) return;
    e.preventDefault();
    f();
  };
  document.addEventListener("keydown", onKey);
  cleanups.push(() => document.removeEventListener("keydown", onKey));

  // -- drawing -----------------------------------------------------------------------------------
  let observer = null;
  let oneToken = 0;
  function draw() {
    if (!ctx.isCurrent()) return;
    if (!items.length) {
      body.replaceChildren(h("p", { class: "muted", id: "no-issues" }, "No open label issue in this job."));
      return;
    }
    current = Math.max(0, Math.min(current, items.length - 1));
    if (view === "grid") drawGrid();
    else drawOne();
  }

  function statusPill(it) {
    if (it.status === "dismissed") return pill("dismissed");
    if (it.status === "accepted") {
      const st = it.labeling ? enumName(it.labeling.state, "ITEM_STATE_") : "pending";
      return pill(`in labeling: ${st}`, "accepted");
    }
    return pill("open");
  }

  function caption(it) {
    if (it.kind === "segmentation") {
      return `${it.frameId} · ${fmt(it.flagged)} px${it.given >= 0 ? ` ${info.className(it.given)} → ${info.className(it.suggested)}` : ""}`;
    }
    if (it.kind === "multilabel") {
      return `${it.frameId} · ${[...it.missing.map((c) => `+${info.className(c)}`), ...it.extra.map((c) => `−${info.className(c)}`)].join(" ")}`;
    }
    if (it.kind === "classification") {
      return `${it.frameId} · ${info.className(it.given)} → ${info.className(it.suggested)} (${num(it.pSuggested).toFixed(2)})`;
    }
    if (it.kind === "sound") {
      return `${it.frameId} · ${it.intervals.length} interval issue${it.intervals.length === 1 ? "" : "s"} (score ${it.score.toFixed(2)})`;
    }
    return `${it.frameId} · ${it.objects.length} ${thing} issue${it.objects.length === 1 ? "" : "s"} (score ${it.score.toFixed(2)})`;
  }

  function drawGrid() {
    if (observer) observer.disconnect();
    const grid = h("div", { class: "grid issue-grid", id: "issue-grid" }, items.map((it, i) => {
      const tile = h("div", {
        class: `issue-tile ${it.status}${i === current ? " current" : ""}`, tabindex: "0", role: "button",
        "aria-label": `open issue ${i + 1}: ${caption(it)}`, dataset: { frameId: it.frameId, index: String(i) },
        onclick: () => { current = i; setView("one"); },
        onkeydown: (e) => { if (e.key === "Enter") { current = i; setView("one"); } },
      }, thumbnail(project, it.dataset, it.frameId, { caption: caption(it) }), h("div", { class: "issue-tile-state" }, statusPill(it)));
      return tile;
    }));
    const sentinel = done ? null : h("div", { class: "sentinel", id: "issue-sentinel" });
    body.replaceChildren(grid, done ? h("p", { class: "muted", id: "issue-end" }, "End of the issues.") : sentinel);
    const tile = grid.children[current];
    if (tile && document.activeElement && document.activeElement.closest && document.activeElement.closest("#issue-grid")) tile.focus();
    if (!done) {
      observer = new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) fetchPage().then(draw, (err) => message(err.message, "error"));
      }, { rootMargin: "400px" });
      observer.observe(sentinel);
    }
  }

  function drawOne() {
    if (observer) observer.disconnect();
    const it = items[current];
    const mine = ++oneToken;
    const image = h("div", { class: "issue-image" }, thumbnail(project, it.dataset, it.frameId, { size: "full" }));
    const facts = h("div", { class: "issue-facts", id: "issue-facts" });
    const total = done ? String(items.length) : `${items.length}+`;
    const nav = h("div", { class: "issue-actions" },
      h("button", { type: "button", id: "issue-prev", disabled: current === 0, onclick: () => { advance(-1); draw(); } }, "← Previous (k)"),
      h("span", { id: "issue-position" }, `Issue ${current + 1} of ${total}`),
      h("button", { type: "button", id: "issue-next", onclick: () => { advance(1); draw(); } }, "Next (j) →"),
      h("button", { type: "button", class: "primary", id: "issue-accept", disabled: it.status !== "open", onclick: accept },
        "Accept: send to labeling (a)"),
      h("button", { type: "button", class: "danger", id: "issue-dismiss", disabled: it.status !== "open", onclick: dismiss }, "Dismiss (d)"),
      h("button", { type: "button", id: "issue-undo", disabled: !undo.length, onclick: restore }, "Undo dismissal (u)"));
    const card = h("section", { class: `issue-one ${it.status}`, id: "issue-one", dataset: { frameId: it.frameId, index: String(current) } },
      h("h2", {}, h("a", { href: frameHref(it.frameId) }, it.frameId), " ", statusPill(it)),
      nav, h("div", { class: "issue-layout" }, image, facts));
    body.replaceChildren(card);
    facts.append(...factsOf(it));
    // the frame's own record: its size and boxes (detection), every class probability (classification)
    rpc("analysis", "QueryDatapoints", {
      project, dataset: it.dataset, inference_set: inferenceSet,
      filter: { all: [{ field: "frame_id", equals: { string_value: it.frameId } }] },
      include_objects: detection || sound ? true : undefined, page: { page_size: 1 },
    }).then((r) => {
      const dp = (r.datapoints || [])[0];
      if (!dp || mine !== oneToken || !ctx.isCurrent()) return;
      if (info.cuboids || sound) {
        const opts = { project, dataset: it.dataset, frame: it.frameId, dp, info, inferenceSet };
        image.replaceChildren(sound ? soundView(opts) : sceneView(opts));
        return;
      }
      const objects = detection ? { labels: dp.label_objects || [], predictions: dp.predicted_objects || [] }
        : seg && it.mask ? { predictions: [{ class_id: it.given, mask: it.mask }] } : null;
      const fig = thumbnail(project, it.dataset, it.frameId, { size: "full", objects, width: dp.width, height: dp.height, className: info.className,
        keypoints: info.keypoints, classColour: seg ? () => FLAGGED_COLOUR : undefined });
      if (dp.width && dp.height) fig.querySelector(".thumb-image").style.aspectRatio = `${dp.width} / ${dp.height}`;
      image.replaceChildren(fig);
      if (!detection && !seg && dp.class_probabilities) facts.append(probabilities(it, dp.class_probabilities));
    }, () => { /* the issue's own numbers are shown already */ });
  }

  function factsOf(it) {
    const out = [];
    if (it.kind === "segmentation") {
      out.push(h("table", { class: "data issue-labels", id: "issue-segmentation" }, h("tbody", {},
        h("tr", {}, h("th", { scope: "row" }, "Flagged pixels"), h("td", { class: "num", id: "issue-flagged" }, `${fmt(it.flagged)} of ${fmt(it.labeled)}`)),
        h("tr", {}, h("th", { scope: "row" }, "Inside flagged areas"), h("td", { class: "num", id: "issue-core" }, fmt(it.core))),
        h("tr", {}, h("th", { scope: "row" }, "Mostly labeled"), h("td", { id: "issue-given" }, it.given >= 0 ? info.className(it.given) : "–")),
        h("tr", {}, h("th", { scope: "row" }, "Model suggests"), h("td", { id: "issue-suggested" }, it.suggested >= 0 ? info.className(it.suggested) : "–")),
        h("tr", {}, h("th", { scope: "row" }, "Label quality"), h("td", { class: "num" }, it.score.toFixed(2))))),
      h("p", { class: "legend" }, h("span", {}, swatchOf(FLAGGED_COLOUR), "pixels the model says are mislabeled")));
    } else if (it.kind === "sound") {
      const span = (e) => (e ? `${info.className(e.class_id || 0)} ${Number(e.onset || 0).toFixed(2)}–${Number(e.offset || 0).toFixed(2)} s` : "–");
      const play = (e) => () => {
        const player = image.querySelector("#player");
        if (!player || !e) return;
        player.currentTime = Number(e.onset || 0);
        player.play().catch(() => { /* refused without a gesture */ });
      };
      out.push(h("table", { class: "data", id: "issue-intervals" },
        h("thead", {}, h("tr", {}, ["Issue", "Labeled", "Predicted", "Suggested", "Score", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, it.intervals.map((x) => h("tr", { dataset: { issueType: x.issue_type || "" } },
          h("td", {}, enumName(x.issue_type, "SOUND_EVENT_ISSUE_TYPE_")),
          h("td", {}, span(x.label_event)),
          h("td", {}, x.predicted_event ? `${span(x.predicted_event)} (p ${num(x.predicted_event.score).toFixed(2)})` : "–"),
          h("td", {}, x.suggested_class !== undefined ? info.className(x.suggested_class)
            : x.issue_type === "SOUND_EVENT_ISSUE_TYPE_SPURIOUS" ? "(remove the event)"
              : x.issue_type === "SOUND_EVENT_ISSUE_TYPE_MISSING" ? "(add the event)" : "–"),
          h("td", { class: "num" }, num(x.score).toFixed(2)),
          h("td", {}, h("button", { type: "button", class: "link", onclick: play(x.label_event || x.predicted_event) }, "Play")))))));
    } else if (it.kind === "multilabel") {
      const names = (ids) => ids.map((c) => info.className(c)).join(", ") || "–";
      out.push(h("table", { class: "data issue-labels", id: "issue-multilabel" }, h("tbody", {},
        h("tr", {}, h("th", { scope: "row" }, "Likely missing"), h("td", { id: "issue-missing" }, names(it.missing))),
        h("tr", {}, h("th", { scope: "row" }, "Likely extra"), h("td", { id: "issue-extra" }, names(it.extra))),
        h("tr", {}, h("th", { scope: "row" }, "Label quality"), h("td", { class: "num" }, it.score.toFixed(2))))));
    } else if (it.kind === "classification") {
      out.push(h("table", { class: "data issue-labels" }, h("tbody", {},
        h("tr", {}, h("th", { scope: "row" }, "Labeled"), h("td", { id: "issue-given" }, h("span", { class: "swatch label" }), info.className(it.given)), h("td", { class: "num" }, `p ${it.pGiven.toFixed(2)}`)),
        h("tr", {}, h("th", { scope: "row" }, "Suggested"), h("td", { id: "issue-suggested" }, h("span", { class: "swatch prediction" }), info.className(it.suggested)), h("td", { class: "num" }, `p ${it.pSuggested.toFixed(2)}`)))));
      const why = [`The model gives the label ${pct(it.pGiven)} and ${info.className(it.suggested)} ${pct(it.pSuggested)}.`];
      if (it.neighbourLabel !== undefined && it.neighbourLabel !== null) {
        const side = num(it.neighbourLabel) === it.suggested ? ": they side with the model"
          : num(it.neighbourLabel) === it.given ? ": they side with the label" : "";
        why.push(`Its nearest neighbours are mostly labeled ${info.className(num(it.neighbourLabel))}; ${pct(it.neighbourDisagreement)} of them disagree with its label${side}.`);
      } else if (neighbourJob) {
        why.push("No neighbour label for this frame.");
      } else {
        why.push("Run a neighbour analysis of this dataset (Findings) to see its neighbours' labels here.");
      }
      out.push(h("h3", {}, "Why"), h("ul", { id: "issue-why" }, why.map((w) => h("li", {}, w))));
    } else {
      out.push(h("table", { class: "data", id: "issue-objects" },
        h("thead", {}, h("tr", {}, ["Issue", "Labeled", "Suggested", "Score", info.cuboids ? "BEV IoU" : "IoU", "p"]
          .concat(info.cuboids ? ["What is off"] : []).map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, it.objects.map((o) => h("tr", {},
          h("td", {}, enumName(o.issue_type, "DETECTION_ISSUE_TYPE_")),
          h("td", {}, o.given_class !== undefined ? info.className(o.given_class) : "–"),
          h("td", {}, o.suggested_class !== undefined ? info.className(o.suggested_class) : `(remove the ${thing})`),
          h("td", { class: "num" }, num(o.score).toFixed(2)),
          h("td", { class: "num" }, o.partner_object_id ? num(o.iou).toFixed(2) : "–"),
          h("td", { class: "num" }, num(o.confidence) ? num(o.confidence).toFixed(2) : "–"),
          info.cuboids ? h("td", { class: "mislocalization" }, o.mislocalization || "–") : null)))));
      out.push(h("p", { class: "legend" }, h("span", {}, h("span", { class: "swatch label" }), "label"), h("span", {}, h("span", { class: "swatch prediction" }), "prediction")));
    }
    out.push(h("p", { class: "muted issue-reason" }, reasonOf(it, info)));
    if (it.labeling) {
      out.push(h("p", { id: "issue-labeling" }, `In labeling request ${it.labeling.request_id}: ${enumName(it.labeling.state, "ITEM_STATE_")}.`));
    }
    return out;
  }

  function swatchOf(colour) {
    const el = h("span", { class: "swatch" });
    el.style.backgroundColor = colour;
    return el;
  }

  function probabilities(it, probs) {
    const rows = probs.map((p, i) => [info.classAt(i), num(p)]).sort((a, b) => b[1] - a[1]).slice(0, 8);
    return h("div", { class: "issue-probs", id: "issue-probs" }, h("h3", {}, it.kind === "multilabel" ? "Class scores" : "Class probabilities"),
      rows.map(([c, p]) => {
        const fill = h("span", { class: "bar-fill" });
        fill.style.width = `${Math.round(p * 100)}%`;
        fill.style.background = c === it.given ? LABEL_COLOUR : c === it.suggested ? PREDICTION_COLOUR : "#8a939c";
        return h("div", { class: "bar-row" }, h("span", { class: "bar-label" }, info.className(c), c === it.given ? " (label)" : ""),
          h("span", { class: "bar" }, fill), h("span", { class: "num" }, p.toFixed(2)));
      }));
  }

  try {
    await fetchPage();
  } catch (err) {
    showError(body, err);
    return cleanup;
  }
  draw();
  loadLabeling();
  cleanups.push(() => observer && observer.disconnect());
  return cleanup;
}
