// A project at a glance: datasets with their counts per split and class, the class balance,
// inference sets (with their latest automation verdict) and embedding spaces with their model lineage,
// and the upload history.
import { rpc } from "../api.js";
import { classColour, enumName, fmt, h, href, projectInfo, time } from "../ui.js";
import { gatesText, runPill } from "./automations.js";

export async function render(main, ctx) {
  const { project } = ctx;
  const info = await projectInfo(project);
  const p = info.project;
  const stats = await Promise.all(info.datasets.map((d) =>
    rpc("ingest", "GetDataset", { project, dataset: d.name, include_stats: true }).then((r) => r.stats || {}, () => ({}))));
  const link = (path, params) => href(`/p/${encodeURIComponent(project)}${path}`, params);

  const datasetCards = info.datasets.map((d, i) => {
    const s = stats[i];
    const perSplit = Object.entries(s.frames_per_split || {}).sort();
    // detection: boxes per class; classification: frames per class
    const perClass = Object.entries(info.detection ? s.labeled_objects_per_class || {} : s.labeled_frames_per_class || {})
      .map(([k, v]) => [Number(k), Number(v)]).sort((a, b) => a[0] - b[0]);
    const most = Math.max(1, ...perClass.map(([, v]) => v));
    return h("section", { class: "card dataset", dataset: { dataset: d.name } },
      h("h2", {}, h("a", { href: link("/examples", { dataset: d.name }) }, d.name), " ",
        h("span", { class: "pill" }, enumName(d.kind, "DATASET_KIND_"))),
      d.description ? h("p", { class: "muted" }, d.description) : null,
      h("p", {}, h("span", { class: "stat" }, fmt(Number(s.frames || 0))), " frames · ",
        fmt(Number(s.labeled_frames || 0)), " labeled · ", fmt(Number(s.inferences || 0)), " inferences"),
      perSplit.length ? h("table", { class: "data splits" }, h("tbody", {}, perSplit.map(([k, v]) =>
        h("tr", {}, h("th", { scope: "row" }, h("a", { href: link("/examples", { dataset: d.name, split: k }) }, k || "(none)")),
          h("td", { class: "num" }, fmt(Number(v))))))) : null,
      perClass.length ? h("div", { class: "balance", role: "img", "aria-label": "class balance" },
        perClass.map(([k, v]) => h("a", { class: "bar-row", href: link("/examples", { dataset: d.name, label_class: k }) },
          h("span", { class: "bar-label" }, info.className(k)),
          h("span", { class: "bar" }, h("span", { style: null, class: "bar-fill", dataset: { w: String(v / most) } })),
          h("span", { class: "num" }, fmt(v))))) : null,
      Object.keys(s.embeddings || {}).length ? h("p", { class: "muted" }, "Vectors: ",
        Object.entries(s.embeddings).map(([k, v]) => `${k} ${fmt(Number(v))}`).join(", ")) : null);
  });

  const uploads = h("div", { id: "uploads" }, h("p", { class: "muted" }, "Loading uploads…"));
  main.replaceChildren(...[
    h("h1", {}, p.display_name || p.name, " ", h("span", { class: "pill" }, enumName(p.task_type, "TASK_TYPE_"))),
    p.description ? h("p", {}, p.description) : null,
    h("div", { class: "cards", id: "datasets" }, datasetCards.length ? datasetCards : h("p", { class: "muted" }, "No dataset yet.")),
    h("h2", {}, "Inference sets"),
    info.inferenceSets.length ? h("table", { class: "data", id: "inference-sets" },
      h("thead", {}, h("tr", {}, ["Inference set", "Dataset", "Model", "Version", "Created", "Automation verdict", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, info.inferenceSets.map((s) => h("tr", { dataset: { inferenceSet: s.name } },
        h("td", {}, s.name), h("td", {}, s.dataset), h("td", {}, s.model_name || "–"), h("td", {}, s.model_version || "–"),
        h("td", {}, time(s.create_time)),
        h("td", { class: "automation-verdict", dataset: { inferenceSet: s.name } }, "–"),
        h("td", {}, h("a", { href: link("/performance", { inference_set: s.name }) }, "performance")))))) : h("p", { class: "muted" }, "None yet."),
    h("h2", {}, "Embedding spaces"),
    (p.embedding_spaces || []).length ? h("table", { class: "data", id: "spaces" },
      h("thead", {}, h("tr", {}, ["Space", "Dimension", "Metric", "Level", "Model", "Version"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, p.embedding_spaces.map((s) => h("tr", {}, h("td", {}, s.name), h("td", { class: "num" }, String(s.dimension)),
        h("td", {}, enumName(s.metric, "DISTANCE_METRIC_")), h("td", {}, enumName(s.level, "EMBEDDING_LEVEL_")),
        h("td", {}, s.model_name || "–"), h("td", {}, s.model_version || "–"))))) : h("p", { class: "muted" }, "None."),
    h("h2", {}, "Classes"),
    h("p", { class: "legend" }, info.classes.map((c) => h("span", {}, h("span", { class: "swatch", dataset: { colour: classColour(c.id) } }), c.name))),
    h("h2", {}, "Uploads"),
    uploads,
  ].filter((x) => x !== null && x !== undefined && x !== false));
  // widths and colours set from script (the page's policy allows no inline styles in markup)
  for (const el of main.querySelectorAll(".bar-fill")) el.style.width = `${Math.round(Number(el.dataset.w) * 100)}%`;
  for (const el of main.querySelectorAll(".swatch[data-colour]")) el.style.background = el.dataset.colour;
  loadUploads(project, uploads);
  loadVerdicts(project, main);
}

// Each inference set's latest automation run (one small read per set, for the first sets listed): its
// gates passed, or its state, linking to the run.
const VERDICTS = 50;
async function loadVerdicts(project, root) {
  const cells = [...root.querySelectorAll("td.automation-verdict")].slice(0, VERDICTS);
  await Promise.all(cells.map(async (cell) => {
    try {
      const r = await rpc("analysis", "ListAutomationRuns", { project, inference_set: cell.dataset.inferenceSet, page: { page_size: 1 } });
      const run = (r.runs || [])[0];
      if (!run) return;
      const gates = gatesText(run);
      cell.dataset.state = run.state;
      cell.replaceChildren(h("a", { href: href(`/p/${encodeURIComponent(project)}/automations`, { run: run.run_id }),
        class: Number(run.gates_failed || 0) ? "failed" : null }, runPill(run), gates ? ` ${gates}` : ""));
    } catch (err) {
      // no verdict to show (no right to read the runs, the analysis service away): the cell keeps its dash
    }
  }));
}

async function loadUploads(project, root) {
  try {
    const resp = await rpc("ingest", "ListUploads", { project, page: { page_size: 50 } });
    const list = resp.uploads || [];
    if (!list.length) {
      root.replaceChildren(h("p", { class: "muted" }, "No upload yet."));
      return;
    }
    root.replaceChildren(h("table", { class: "data", id: "upload-history" },
      h("thead", {}, h("tr", {}, ["Upload", "Dataset", "State", "Chunks", "Rows written", "Rejected", "First rejected rows", "Created"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, list.map((u) => h("tr", {},
        h("td", {}, u.upload_id), h("td", {}, u.dataset), h("td", {}, enumName(u.state, "UPLOAD_STATE_")),
        h("td", { class: "num" }, `${fmt(Number(u.chunks_processed || 0))}/${fmt(Number(u.chunks_total || 0))}`),
        h("td", { class: "num" }, fmt(Object.values(u.written || {}).reduce((a, b) => a + Number(b), 0))),
        h("td", { class: "num" }, fmt(Object.values(u.rejected || {}).reduce((a, b) => a + Number(b), 0))),
        h("td", {}, (u.errors || []).slice(0, 3).map((e) => {
          const d = e.detail || {};
          return h("div", { class: "error-row" }, `${d.datapoint?.frame_id || ""} ${d.field || ""}: ${d.message || ""}`);
        })),
        h("td", {}, time(u.create_time)))))));
  } catch (err) {
    root.replaceChildren(h("p", { class: "muted" }, `Upload history unavailable: ${err.message}`));
  }
}
