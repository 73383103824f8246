// The example grid: typed filters, sort, infinite scroll over keyset pages, selection saved as a
// segment. Every filter lives in the URL, so any cell, slice or cluster can link here.
import { rpc } from "../api.js";
import { h, href, objectsOf, projectInfo, select, showError, thumbnail } from "../ui.js";

const PAGE_SIZE = 60;

// URL parameter -> filter condition(s). Shared with the pages that link here.
export function filterFromQuery(q) {
  const all = [];
  const eq = (field, value, kind = "string_value") => all.push({ field, equals: { [kind]: value } });
  if (q.get("split")) eq("split", q.get("split"));
  if (q.get("label_class")) eq("label_class", Number(q.get("label_class")), "number_value");
  if (q.get("predicted_class")) eq("predicted_class", Number(q.get("predicted_class")), "number_value");
  if (q.get("correct")) eq("correct", q.get("correct") === "true", "bool_value");
  if (q.get("labeled")) eq("labeled", q.get("labeled") === "true", "bool_value");
  if (q.get("segment")) eq("segment", q.get("segment"));
  if (q.get("change") && q.get("baseline_inference_set")) eq("change", q.get("change"));
  const range = (field, lo, hi, kind = "number_value", conv = Number) => {
    if (!q.get(lo) && !q.get(hi)) return;
    const r = {};
    if (q.get(lo)) r.min = { [kind]: conv(q.get(lo)) };
    if (q.get(hi)) r.max = { [kind]: conv(q.get(hi)) };
    all.push({ field, range: r });
  };
  range("confidence", "conf_min", "conf_max");
  range("loss", "loss_min", "loss_max");
  range("capture_time", "from", "to", "timestamp_value", (v) => new Date(v).toISOString());
  if (q.get("meta_key") && q.get("meta_value") !== null && q.get("meta_value") !== "") {
    const raw = q.get("meta_value");
    const num = Number(raw);
    const value = raw === "true" || raw === "false" ? { bool_value: raw === "true" }
      : raw.trim() !== "" && !Number.isNaN(num) && q.get("meta_type") !== "string" ? { number_value: num } : { string_value: raw };
    all.push({ field: `metadata.${q.get("meta_key")}`, equals: value });
  }
  return { all };
}

export async function render(main, ctx) {
  const info = await projectInfo(ctx.project);
  const q = ctx.query;
  const labeled = info.datasets.filter((d) => d.kind !== "DATASET_KIND_UNLABELED_POOL");
  const dataset = q.get("dataset") || (labeled[0] || info.datasets[0] || {}).name || "";
  const sets = info.inferenceSets.filter((s) => s.dataset === dataset);
  const inferenceSet = q.has("inference_set") ? q.get("inference_set") : (sets[0] || {}).name || "";
  const sort = q.get("sort") || "frame_id";
  const descending = q.get("desc") === "true";

  const go = (changes) => {
    const params = Object.fromEntries(q.entries());
    Object.assign(params, { dataset, inference_set: inferenceSet }, changes);
    ctx.navigate(href(`/p/${encodeURIComponent(ctx.project)}/examples`, params));
  };
  // datetime-local inputs show local time without a zone; links may carry UTC instants ("...Z")
  const shown = (name, type) => {
    const v = q.get(name) || "";
    if (type !== "datetime-local" || !v || !/[zZ]|[+-]\d\d:\d\d$/.test(v)) return v;
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) return v;
    const local = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
    return local.toISOString().slice(0, 16);
  };
  const text = (name, label, type = "text", attrs = {}) => h("label", { class: "field" }, h("span", {}, label),
    h("input", { type, name, id: `f-${name}`, value: shown(name, type), onchange: (e) => go({ [name]: e.target.value }), ...attrs }));
  const classOptions = [{ value: "", label: "any" }, ...info.classes.map((c) => ({ value: String(c.id), label: c.name }))];
  const ds = info.datasets.find((d) => d.name === dataset) || {};

  const toolbar = h("form", { class: "toolbar", id: "filters", onsubmit: (e) => e.preventDefault() },
    select("dataset", info.datasets.map((d) => ({ value: d.name, label: d.name })), dataset, (v) => go({ dataset: v, inference_set: "" }), "Dataset"),
    select("inference_set", [{ value: "", label: "(none)" }, ...sets.map((s) => ({ value: s.name, label: s.name }))], inferenceSet, (v) => go({ inference_set: v }), "Inference set"),
    select("split", [{ value: "", label: "any" }, ...(ds.splits || []).map((s) => ({ value: s, label: s }))], q.get("split") || "", (v) => go({ split: v }), "Split"),
    select("label_class", classOptions, q.get("label_class") || "", (v) => go({ label_class: v }), "Labeled"),
    info.detection ? null : select("predicted_class", [...classOptions, { value: "-1", label: "(abstained)" }], q.get("predicted_class") || "", (v) => go({ predicted_class: v }), "Predicted"),
    info.detection ? null : select("correct", [{ value: "", label: "any" }, { value: "true", label: "correct" }, { value: "false", label: "wrong" }], q.get("correct") || "", (v) => go({ correct: v }), "Outcome"),
    info.detection ? null : text("conf_min", "Confidence ≥", "number", { step: "0.01", min: "0", max: "1" }),
    info.detection ? null : text("conf_max", "Confidence ≤", "number", { step: "0.01", min: "0", max: "1" }),
    info.detection ? null : text("loss_min", "Loss ≥", "number", { step: "0.1", min: "0" }),
    info.detection ? null : text("confidence_threshold", "Abstain below", "number", { step: "0.01", min: "0", max: "1" }),
    info.detection || !q.get("baseline_inference_set") ? null : select("change", [{ value: "", label: "any" },
      { value: "improved", label: "improved" }, { value: "regressed", label: "regressed" }, { value: "unchanged", label: "unchanged" }],
    q.get("change") || "", (v) => go({ change: v }), `Change vs ${q.get("baseline_inference_set")}`),
    text("segment", "Segment"),
    text("from", "Captured from", "datetime-local"),
    text("to", "Captured before", "datetime-local"),
    text("meta_key", "Metadata key"),
    text("meta_value", "equals"),
    select("sort", ["frame_id", "capture_time", "confidence", "loss", "margin", "label_class", "predicted_class"]
      .filter((f) => !info.detection || ["frame_id", "capture_time", "label_class"].includes(f))
      .map((f) => ({ value: f, label: f.replace("_", " ") })), sort, (v) => go({ sort: v }), "Sort by"),
    select("desc", [{ value: "false", label: "ascending" }, { value: "true", label: "descending" }], String(descending), (v) => go({ desc: v }), "Order"),
  );

  const count = h("span", { id: "result-count", class: "muted" }, "");
  const grid = h("div", { class: "grid", id: "grid" });
  const sentinel = h("div", { class: "sentinel", id: "sentinel" });
  const status = h("p", { class: "muted", id: "grid-status" });
  const selected = new Set();
  const selCount = h("span", { id: "selected-count" }, "0 selected");
  const segName = h("input", { id: "segment-name", placeholder: "segment-name", pattern: "[a-z0-9][a-z0-9_.-]{0,62}", "aria-label": "segment name" });
  const saveMsg = h("span", { id: "save-message", role: "status" });
  const save = h("button", { type: "button", id: "save-segment", class: "primary", disabled: true, onclick: async () => {
    saveMsg.textContent = "";
    try {
      const resp = await rpc("analysis", "CreateSegment", {
        project: ctx.project,
        segment: { name: segName.value.trim(), dataset, kind: "SEGMENT_KIND_OTHER", reason: "selected in the console" },
        frame_ids: [...selected],
      });
      saveMsg.textContent = `Saved ${resp.segment.name} (${resp.segment.size || selected.size} frames).`;
      saveMsg.className = "ok";
    } catch (err) {
      saveMsg.textContent = err.message;
      saveMsg.className = "error";
    }
  } }, "Save as segment");

  main.replaceChildren(
    h("h1", {}, "Examples ", count),
    toolbar,
    h("div", { class: "legend" }, h("span", {}, h("span", { class: "swatch label" }), "label"),
      h("span", {}, h("span", { class: "swatch prediction" }), "prediction"),
      h("span", { class: "selection" }, selCount, " ", segName, " ", save, " ", saveMsg)),
    grid, status, sentinel);
  if (!dataset) {
    status.textContent = "This project has no dataset yet.";
    return;
  }

  const request = {
    project: ctx.project,
    dataset,
    inference_set: inferenceSet,
    filter: filterFromQuery(q),
    sort: [{ field: sort, descending }],
    include_objects: info.detection ? true : undefined,
    confidence_threshold: q.get("confidence_threshold") ? Number(q.get("confidence_threshold")) : undefined,
    baseline_inference_set: q.get("baseline_inference_set") || undefined,
  };
  let token = "";
  let done = false;
  let loading = false;
  const caption = (dp) => {
    if (info.detection) return dp.ref.frame_id;
    const l = info.className(dp.label_class);
    const p = dp.predicted_class !== undefined ? info.className(dp.predicted_class) : null;
    return `${dp.ref.frame_id} · ${l}${p !== null ? " → " + p : ""}${dp.confidence !== undefined ? " (" + Number(dp.confidence).toFixed(2) + ")" : ""}`;
  };

  async function more() {
    if (loading || done || !ctx.isCurrent()) return;
    loading = true;
    status.textContent = "Loading…";
    try {
      const resp = await rpc("analysis", "QueryDatapoints", { ...request, page: { page_size: PAGE_SIZE, page_token: token } });
      for (const dp of resp.datapoints || []) {
        const fid = dp.ref.frame_id;
        const link = thumbnail(ctx.project, dataset, fid, {
          caption: caption(dp),
          href: href(`/p/${encodeURIComponent(ctx.project)}/frame/${encodeURIComponent(dataset)}/${encodeURIComponent(fid)}`, { inference_set: inferenceSet }),
          objects: objectsOf(dp), width: dp.width, height: dp.height, className: info.className, selectable: true,
          keypoints: info.keypoints,
        });
        const box = link.querySelector("input.select");
        box.addEventListener("click", (e) => {
          e.stopPropagation();
          if (box.checked) selected.add(fid); else selected.delete(fid);
          link.querySelector("figure").classList.toggle("selected", box.checked);
          selCount.textContent = `${selected.size} selected`;
          save.disabled = selected.size === 0;
        });
        grid.append(link);
      }
      count.textContent = `${Number(resp.page?.total_count || 0).toLocaleString("en")} frames`;
      token = resp.page?.next_page_token || "";
      done = !token;
      status.textContent = done ? (grid.children.length ? "End of results." : "No frame matches these filters.") : "";
    } catch (err) {
      done = true;
      showError(status, err);
    } finally {
      loading = false;
    }
    // keep filling while the sentinel is still on screen
    if (!done && sentinel.getBoundingClientRect().top < window.innerHeight + 400) more();
  }
  const observer = new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) more(); }, { rootMargin: "400px" });
  observer.observe(sentinel);
  await more();
  return () => observer.disconnect();
}
