// Every job of the project, from the three services that run jobs, with its live stage and
// progress; cancel a running one, rerun a finished one, open its result.
import { ApiError, all, followJob, rpc } from "../api.js";
import { enumName, h, href, showError, time } from "../ui.js";

const SERVICES = ["analysis", "sampler", "labeling_bridge"];
const ENDED = new Set(["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"]);

// How to start a kind again with the parameters it ran with (kinds without a filter parameter).
const RERUN = {
  label_issues: (p) => ["StartLabelIssues", { inference_set: p.inference_set, rerun: true }],
  detection_label_issues: (p) => ["StartLabelIssues", { inference_set: p.inference_set, rerun: true }],
  neighbors: (p) => ["StartNeighborAnalysis", { dataset: p.dataset, embedding_space: p.embedding_space, k: Number(p.k), duplicate_distance: Number(p.duplicate_distance), rerun: true }],
  embedding_map: (p) => ["StartEmbeddingMap", { dataset: p.dataset, embedding_space: p.embedding_space, sample_size: Number(p.sample_size), rerun: true }],
};

// Where a finished job's result is shown.
export function resultHref(project, job) {
  const base = `/p/${encodeURIComponent(project)}`;
  const p = job.params || {};
  switch (job.kind) {
    case "label_issues":
    case "detection_label_issues":
      return href(`${base}/issues`, { inference_set: p.inference_set, job: job.job_id });
    case "embedding_map":
      return href(`${base}/map`, { dataset: p.dataset, space: p.embedding_space, job: job.job_id });
    case "campaign":
      return href(`${base}/campaigns`, { job: job.job_id });
    case "neighbors":
    case "failure_clusters":
    case "drift":
      return href(`${base}/findings`, { job: job.job_id, kind: job.kind });
    default:
      return null;
  }
}

function pill(state) {
  const name = enumName(state, "JOB_STATE_");
  return h("span", { class: `pill ${name}` }, name);
}

export async function render(main, ctx) {
  const { project } = ctx;
  const lists = await Promise.all(SERVICES.map((s) =>
    all(s, "ListJobs", { project }, "jobs", 500).then((jobs) => jobs.map((j) => ({ ...j, service: s })))));
  const jobs = lists.flat().sort((a, b) => String(b.create_time || "").localeCompare(String(a.create_time || "")));
  // Browsers keep few connections per server open: follow the first running jobs live.
  const FOLLOW = 3;
  const stop = new AbortController();
  let followed = 0;
  const rows = jobs.map((job) => {
    const stateCell = h("td", { class: "state" }, pill(job.state));
    const stage = h("td", { class: "stage" }, job.stage || job.message || "");
    const bar = h("span", {});
    bar.style.width = `${Math.round((job.progress || 0) * 100)}%`;
    const progress = h("td", {}, h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round((job.progress || 0) * 100)) }, bar));
    const actions = h("td", { class: "actions" });
    const row = h("tr", { id: `job-${job.job_id}`, dataset: { kind: job.kind, service: job.service } },
      h("td", {}, job.job_id), h("td", {}, job.kind), h("td", {}, job.service.replace("_", " ")), stateCell, stage, progress,
      h("td", {}, time(job.create_time)), actions);
    const update = (j) => {
      Object.assign(job, j);
      stateCell.replaceChildren(pill(job.state));
      stage.textContent = job.state === "JOB_STATE_FAILED" ? job.message || "failed" : job.stage || "";
      bar.style.width = `${Math.round((job.progress || 0) * 100)}%`;
      bar.parentElement.setAttribute("aria-valuenow", String(Math.round((job.progress || 0) * 100)));
      actions.replaceChildren(...buttons(job));
    };
    const buttons = (j) => {
      const out = [];
      if (!ENDED.has(j.state)) {
        out.push(h("button", { type: "button", class: "danger cancel", onclick: async (e) => {
          e.target.disabled = true;
          try {
            const r = await rpc(j.service, "CancelJob", { project, job_id: j.job_id });
            update(r.job || {});
          } catch (err) { showError(actions, err); }
        } }, "Cancel"));
      }
      const rerun = RERUN[j.kind];
      if (ENDED.has(j.state) && rerun && !(j.params || {}).filter) {
        out.push(h("button", { type: "button", class: "rerun", onclick: async (e) => {
          e.target.disabled = true;
          try {
            const [method, req] = rerun(j.params || {});
            const r = await rpc("analysis", method, { project, ...req });
            ctx.navigate(href(`/p/${encodeURIComponent(project)}/jobs`, { started: r.job.job_id }));
          } catch (err) { showError(actions, err); }
        } }, "Rerun"));
      }
      const result = j.state === "JOB_STATE_SUCCEEDED" ? resultHref(project, j) : null;
      if (result) out.push(h("a", { href: result, class: "result" }, "Result"));
      return out;
    };
    actions.append(...buttons(job));
    if (!ENDED.has(job.state) && followed < FOLLOW) {
      followed += 1;
      followJob(job.service, project, job.job_id, update, stop.signal).catch((err) => {
        if (!(err instanceof ApiError)) throw err;
      });
    }
    return row;
  });
  main.replaceChildren(...[
    h("h1", {}, "Jobs"),
    jobs.length ? h("table", { class: "data", id: "jobs" },
      h("thead", {}, h("tr", {}, ["Job", "Kind", "Service", "State", "Stage", "Progress", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)) : h("p", { class: "muted", id: "no-jobs" }, "No job yet. Start one from the issues, map or findings pages."),
    jobs.filter((j) => !ENDED.has(j.state)).length > FOLLOW
      ? h("p", { class: "muted" }, "More jobs are running than are followed live; reload to follow the others.") : null,
  ].filter(Boolean));
  // a job linked from elsewhere (an automation run, a rerun): marked and scrolled to
  const wanted = ctx.query.get("job") || ctx.query.get("started");
  const mark = wanted ? document.getElementById(`job-${wanted}`) : null;
  if (mark) {
    mark.classList.add("highlight");
    mark.scrollIntoView({ block: "center" });
  }
  return () => stop.abort();
}
