// Model performance of one inference set: overall and per-class metrics, the confusion matrix as a
// heat map whose cells open the matching frames (detection: the matching boxes, shown below the
// matrix), the slices that fall furthest below the overall accuracy, and a comparison with another
// inference set of the same dataset. Every number comes from one aggregate call of the analysis
// service; the browser never walks frames.
import { mediaUrl, rpc } from "../api.js";
import { PALETTE, fmt, h, href, projectInfo, select, sequential, showError, thumbnail } from "../ui.js";

const enc = encodeURIComponent;
const SVG_NS = "http://www.w3.org/2000/svg";
// Above this many rows or columns the heat map is drawn on a canvas, with thinned labels.
const SVG_LIMIT = 60;
const MATCHES_PAGE = 24;
const BETTER = PALETTE[0]; // blue
const WORSE = PALETTE[5]; // vermilion

// Any SVG element (ui.js's h() knows only a few SVG tags).
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null && v !== false) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

// replaceChildren() without the children left out (null would be shown as text)
const fill = (el, ...children) => el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
const num = (v) => Number(v || 0);
const f3 = (x) => Number(x || 0).toFixed(3); // a metric in [0, 1]
const pct = (x) => (x === undefined || x === null || Number.isNaN(x) ? "–" : `${(100 * x).toFixed(1)}%`);
const clip = (text, n) => (text.length > n ? text.slice(0, n - 1) + "…" : text);
function param(q, name, fallback) {
  const v = q.get(name);
  if (v === null || v === "" || Number.isNaN(Number(v))) return fallback;
  return Number(v);
}

// -- the heat map ------------------------------------------------------------------------------

// A 256-step lookup of the sequential scale as [r, g, b], for canvases.
let LUT = null;
function lut() {
  if (!LUT) {
    LUT = [];
    for (let i = 0; i < 256; i++) LUT.push(sequential(i / 255).match(/\d+/g).map(Number));
  }
  return LUT;
}
const EMPTY = "#f1f3f5";
const EMPTY_RGB = [241, 243, 245];

// A matrix of counts as a heat map.
//   rows, cols: [{key, name}]; counts: row-major numbers (rows x cols)
//   normalise: colour (and show) each cell as its share of its row
//   open(r, c): what choosing a cell does; describe(r, c, count, share): its accessible name
//   inert(r, c): cells that mean nothing (drawn blank, not focusable)
export function heatMap(opts) {
  const { rows, cols, counts, normalise } = opts;
  const R = rows.length, C = cols.length;
  const rowSums = new Array(R).fill(0);
  let max = 0;
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      const v = counts[r * C + c];
      rowSums[r] += v;
      if (v > max) max = v;
    }
  }
  const share = (r, c) => (rowSums[r] ? counts[r * C + c] / rowSums[r] : 0);
  const level = (r, c) => (normalise ? share(r, c) : counts[r * C + c] / Math.max(1, max));
  const m = { ...opts, R, C, rowSums, max, share, level, inert: opts.inert || (() => false) };
  const plot = Math.max(R, C) <= SVG_LIMIT ? svgHeatMap(m) : canvasHeatMap(m);
  return h("div", { class: "heatmap-wrap" }, plot, legend(normalise ? 1 : max, normalise));
}

function legend(max, normalise) {
  const steps = 32;
  const bar = s("svg", { viewBox: `0 0 ${steps} 1`, preserveAspectRatio: "none", class: "legend-bar", "aria-hidden": "true" },
    Array.from({ length: steps }, (_, i) => s("rect", { x: i, y: 0, width: 1.05, height: 1, fill: sequential(i / (steps - 1)) })));
  const end = normalise ? "100% of the row" : fmt(max);
  return h("div", { class: "heatmap-legend", id: "heatmap-legend", role: "img",
    "aria-label": `colour scale from ${normalise ? "0%" : "1"} (dark) to ${end} (light); empty cells are grey` },
    h("span", { class: "swatch empty-cell" }), h("span", {}, "none"),
    h("span", {}, normalise ? "0%" : "1"), bar, h("span", {}, end));
}

function svgHeatMap(m) {
  const { R, C, rows, cols, counts } = m;
  const n = Math.max(R, C);
  const cell = n <= 6 ? 72 : n <= 12 ? 56 : n <= 24 ? 40 : n <= 40 ? 28 : 22;
  const longest = (list) => Math.min(18, Math.max(3, ...list.map((x) => x.name.length)));
  const left = Math.round(longest(rows) * 7) + 32;
  const top = Math.round(longest(cols) * 7 * 0.65) + 30; // column labels are turned by 40 degrees
  const width = left + C * cell + Math.round(longest(cols) * 5.5), height = top + R * cell + 4;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "heatmap", id: "heatmap", role: "grid",
    "aria-label": m.title, "aria-rowcount": R, "aria-colcount": C });
  svg.style.width = `${width / 15}rem`; // grows with the page's type on large screens
  svg.style.maxWidth = "100%";
  const font = Math.max(9, Math.min(15, cell * 0.3));
  svg.append(
    s("text", { x: left + (C * cell) / 2, y: 12, class: "axis-title", "text-anchor": "middle" }, m.colTitle),
    s("text", { x: 12, y: top + (R * cell) / 2, class: "axis-title", "text-anchor": "middle",
      transform: `rotate(-90 12 ${top + (R * cell) / 2})` }, m.rowTitle));
  cols.forEach((col, c) => {
    const x = left + c * cell + cell / 2, y = top - 6;
    svg.append(s("text", { x, y, class: "col-label", transform: `rotate(-40 ${x} ${y})` }, clip(col.name, 18), s("title", {}, col.name)));
  });
  let first = null;
  rows.forEach((row, r) => {
    svg.append(s("text", { x: left - 6, y: top + r * cell + cell / 2, class: "row-label", "text-anchor": "end",
      "dominant-baseline": "central" }, clip(row.name, 18), s("title", {}, row.name)));
    const tr = s("g", { role: "row" });
    cols.forEach((col, c) => {
      const v = counts[r * C + c];
      const x = left + c * cell, y = top + r * cell;
      const t = m.level(r, c);
      const fill = v > 0 ? sequential(t) : EMPTY;
      const rect = s("rect", { x: x + 0.5, y: y + 0.5, width: cell - 1, height: cell - 1, fill });
      if (m.inert(r, c)) {
        tr.append(s("g", { class: "inert", role: "gridcell", "aria-hidden": "true" }, rect));
        return;
      }
      const g = s("g", { class: "cell", id: `cell-${row.key}-${col.key}`, role: "gridcell", tabindex: -1,
        "aria-label": m.describe(r, c, v, m.share(r, c)), "data-count": v, "data-row": r, "data-col": c }, rect,
        s("title", {}, m.describe(r, c, v, m.share(r, c))));
      if (cell >= 22 && v > 0) {
        g.append(s("text", { x: x + cell / 2, y: y + cell / 2, "text-anchor": "middle", "dominant-baseline": "central",
          "font-size": font, class: t > 0.55 ? "on-light" : "on-dark" }, m.normalise ? `${Math.round(100 * m.share(r, c))}%` : fmt(v)));
      }
      if (r === c && !first) first = g;
      g.addEventListener("click", () => m.open(r, c));
      tr.append(g);
    });
    svg.append(tr);
  });
  // one cell at a time is in the tab order (the diagonal's first); arrow keys move between cells
  const start = first || svg.querySelector("g.cell[tabindex]");
  if (start) start.setAttribute("tabindex", "0");
  svg.addEventListener("keydown", (e) => {
    const g = e.target.closest && e.target.closest("g.cell");
    if (!g) return;
    let r = Number(g.dataset.row), c = Number(g.dataset.col);
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      m.open(r, c);
      return;
    }
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (e.key === "Home") c = 0;
    else if (e.key === "End") c = C - 1;
    else if (moves[e.key]) {
      r = Math.max(0, Math.min(R - 1, r + moves[e.key][0]));
      c = Math.max(0, Math.min(C - 1, c + moves[e.key][1]));
    } else return;
    e.preventDefault();
    const next = svg.querySelector(`g.cell[data-row="${r}"][data-col="${c}"]`);
    if (next) {
      g.setAttribute("tabindex", "-1");
      next.setAttribute("tabindex", "0");
      next.focus();
    }
  });
  return h("div", { class: "heatmap-scroll" }, svg);
}

// Many classes: one pixel per cell drawn into an image, scaled up without smoothing; one label in
// every few rows and columns; the pointer and the arrow keys pick a cell, named in a live region.
function canvasHeatMap(m) {
  const { R, C, rows, cols, counts } = m;
  const wrap = h("div", { class: "heatmap-canvas" });
  const canvas = h("canvas", { id: "heatmap", tabindex: "0", role: "img",
    "aria-label": `${m.title}: ${R} rows by ${C} columns; arrow keys move between cells, Enter opens one`,
    "aria-describedby": "heatmap-cell" });
  const tip = h("div", { class: "heatmap-tip", hidden: true });
  const live = h("p", { id: "heatmap-cell", class: "muted", "aria-live": "polite" }, "Point at a cell, or focus the matrix and use the arrow keys.");
  wrap.append(canvas, tip, live);

  const image = document.createElement("canvas");
  image.width = C;
  image.height = R;
  const ictx = image.getContext("2d");
  const data = ictx.createImageData(C, R);
  const colours = lut();
  const px = data.data;
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      const i = r * C + c;
      const rgb = counts[i] > 0 && !m.inert(r, c) ? colours[Math.round(255 * m.level(r, c))] : EMPTY_RGB;
      px[i * 4] = rgb[0];
      px[i * 4 + 1] = rgb[1];
      px[i * 4 + 2] = rgb[2];
      px[i * 4 + 3] = 255;
    }
  }
  ictx.putImageData(data, 0, 0);

  const margin = 150;
  let cursor = { r: 0, c: 0 };
  let geometry = null;
  const draw = () => {
    // the whole matrix in view: as wide as the page allows, no taller than the window
    const avail = Math.max(400, Math.min(1400, (wrap.clientWidth || 1000) - margin - 10, window.innerHeight - margin - 60));
    const cell = avail / Math.max(R, C);
    const width = margin + C * cell + 10, height = margin + R * cell + 10;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(image, margin, margin, C * cell, R * cell);
    ctx.fillStyle = "#1b1f24";
    ctx.font = "11px system-ui, sans-serif";
    const every = Math.max(1, Math.ceil(14 / cell)); // labels at least 14 px apart
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let r = 0; r < R; r += every) ctx.fillText(clip(rows[r].name, 20), margin - 4, margin + (r + 0.5) * cell);
    for (let c = 0; c < C; c += every) {
      ctx.save();
      ctx.translate(margin + (c + 0.5) * cell, margin - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      ctx.fillText(clip(cols[c].name, 20), 0, 0);
      ctx.restore();
    }
    if (document.activeElement === canvas) {
      ctx.strokeStyle = "#E69F00";
      ctx.lineWidth = 2;
      const side = Math.max(cell, 6);
      ctx.strokeRect(margin + (cursor.c + 0.5) * cell - side / 2, margin + (cursor.r + 0.5) * cell - side / 2, side, side);
    }
    geometry = { cell, width, height };
  };
  const at = (e) => {
    const box = canvas.getBoundingClientRect();
    const c = Math.floor((e.clientX - box.left - margin) / geometry.cell);
    const r = Math.floor((e.clientY - box.top - margin) / geometry.cell);
    return r >= 0 && r < R && c >= 0 && c < C && !m.inert(r, c) ? { r, c } : null;
  };
  const say = (p) => m.describe(p.r, p.c, counts[p.r * C + p.c], m.share(p.r, p.c));
  canvas.addEventListener("mousemove", (e) => {
    const p = at(e);
    tip.hidden = !p;
    if (!p) return;
    tip.textContent = say(p);
    tip.style.left = `${e.offsetX + 14}px`;
    tip.style.top = `${e.offsetY + 14}px`;
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  canvas.addEventListener("click", (e) => {
    const p = at(e);
    if (p) m.open(p.r, p.c);
  });
  canvas.addEventListener("focus", draw);
  canvas.addEventListener("blur", draw);
  canvas.addEventListener("keydown", (e) => {
    const step = e.shiftKey ? 10 : 1;
    const moves = { ArrowUp: [-step, 0], ArrowDown: [step, 0], ArrowLeft: [0, -step], ArrowRight: [0, step] };
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      if (!m.inert(cursor.r, cursor.c)) m.open(cursor.r, cursor.c);
      return;
    }
    if (!moves[e.key]) return;
    e.preventDefault();
    cursor = { r: Math.max(0, Math.min(R - 1, cursor.r + moves[e.key][0])), c: Math.max(0, Math.min(C - 1, cursor.c + moves[e.key][1])) };
    live.textContent = say(cursor);
    draw();
  });
  requestAnimationFrame(draw);
  return wrap;
}

// -- frames' sizes for drawing boxes -------------------------------------------------------------

// Image sizes of a page of frames, by one QueryDatapoints call (a frame uploaded without its size
// is measured from its full image, which its thumbnail then shows).
async function frameSizes(project, dataset, frameIds) {
  const ids = [...new Set(frameIds)];
  const out = new Map();
  if (!ids.length) return out;
  const resp = await rpc("analysis", "QueryDatapoints", {
    project, dataset,
    filter: { all: [{ field: "frame_id", in: { values: ids.map((v) => ({ string_value: v })) } }] },
    page: { page_size: Math.min(1000, ids.length) },
  });
  for (const dp of resp.datapoints || []) {
    if (dp.width && dp.height) out.set(dp.ref.frame_id, { width: dp.width, height: dp.height, size: "thumb" });
  }
  await Promise.all(ids.filter((id) => !out.has(id)).map(async (id) => {
    const img = new Image();
    img.src = mediaUrl(project, dataset, id, "full");
    try {
      await img.decode();
      if (img.naturalWidth) out.set(id, { width: img.naturalWidth, height: img.naturalHeight, size: "full" });
    } catch (err) { /* no image: the thumbnail shows the placeholder, without boxes */ }
  }));
  return out;
}

// -- the page ----------------------------------------------------------------------------------

export async function render(main, ctx) {
  const { project } = ctx;
  const base = `/p/${enc(project)}`;
  const info = await projectInfo(project);
  const q = ctx.query;
  const sets = info.inferenceSets;
  if (!sets.length) {
    main.replaceChildren(h("h1", {}, "Model performance"),
      h("p", { class: "muted", id: "no-inference-sets" }, "No inference set yet: upload a model's predictions to see how it performs."));
    return;
  }
  const setName = q.get("inference_set") || sets[0].name;
  const set = sets.find((x) => x.name === setName);
  if (!set) {
    main.replaceChildren(h("h1", {}, "Model performance"),
      h("p", { class: "error" }, `There is no inference set ${setName} in ${project}, or this key may not see it.`));
    return;
  }
  const dataset = set.dataset;
  const ds = info.datasets.find((d) => d.name === dataset) || {};
  const split = q.get("split") || "";
  const detection = info.detection;
  const conf = param(q, "conf", 0);
  const iou = param(q, "iou", 0.5);
  const normalise = q.get("norm") === "1";
  const filter = split ? { all: [{ field: "split", equals: { string_value: split } }] } : undefined;
  const state = () => Object.fromEntries(new URLSearchParams(location.hash.split("?")[1] || "").entries());
  const go = (changes) => ctx.navigate(href(`${base}/performance`, { ...state(), inference_set: setName, ...changes }));
  const examples = (params) => href(`${base}/examples`, {
    dataset, inference_set: setName, split, confidence_threshold: conf > 0 ? conf : "", ...params });

  const number = (name, label, value, attrs) => h("label", { class: "field" }, h("span", {}, label),
    h("input", { type: "number", name, id: `f-${name}`, value: String(value), onchange: (e) => go({ [name]: e.target.value }), ...attrs }));
  if (info.multiLabel) {
    const threshold = param(q, "threshold", 0.5);
    const frames = h("section", { id: "multilabel-frames", class: "card", hidden: true });
    const summary = h("section", { id: "summary", class: "cards" }, h("p", { class: "muted loading" }, "Loading metrics…"));
    const perClass = h("section", { id: "per-class" });
    main.replaceChildren(
      h("h1", {}, "Model performance ", h("span", { class: "muted" }, setName)),
      h("p", { class: "muted" }, `Model ${set.model_name || "–"} ${set.model_version || ""} on dataset `,
        h("a", { href: href(`${base}/examples`, { dataset, inference_set: setName }) }, dataset),
        ": every class judged on its own, a frame predicted to have a class when its score is at or above the threshold."),
      h("form", { class: "toolbar", id: "performance-filters", onsubmit: (e) => e.preventDefault() },
        select("inference_set", sets.map((x) => ({ value: x.name, label: `${x.name} · ${x.dataset}` })), setName,
          (v) => go({ inference_set: v }), "Inference set"),
        select("split", [{ value: "", label: "all" }, ...(ds.splits || []).map((x) => ({ value: x, label: x }))], split,
          (v) => go({ split: v }), "Split"),
        number("threshold", "Score threshold", threshold, { min: "0", max: "1", step: "0.05" })),
      summary, frames, h("h2", {}, "Per class"), perClass);
    const page = { project, info, setName, dataset, filter, threshold, frames };
    await multiLabel(page, summary, perClass);
    if (q.get("class")) await openClassFrames(page, Number(q.get("class")));
    return;
  }
  if (info.segmentation) {
    const summary = h("section", { id: "summary", class: "cards" }, h("p", { class: "muted loading" }, "Loading metrics…"));
    const confusion = h("section", { id: "confusion" });
    const frames = h("section", { id: "segmentation-frames", class: "card", hidden: true });
    const perClass = h("section", { id: "per-class" });
    main.replaceChildren(
      h("h1", {}, "Model performance ", h("span", { class: "muted" }, setName)),
      h("p", { class: "muted" }, `Model ${set.model_name || "–"} ${set.model_version || ""} on dataset `,
        h("a", { href: href(`${base}/examples`, { dataset, inference_set: setName }) }, dataset),
        ": every labeled pixel counted; pixels a label leaves without a class count nowhere."),
      h("form", { class: "toolbar", id: "performance-filters", onsubmit: (e) => e.preventDefault() },
        select("inference_set", sets.map((x) => ({ value: x.name, label: `${x.name} · ${x.dataset}` })), setName,
          (v) => go({ inference_set: v, cell: "", class: "" }), "Inference set"),
        select("split", [{ value: "", label: "all" }, ...(ds.splits || []).map((x) => ({ value: x, label: x }))], split,
          (v) => go({ split: v, cell: "", class: "" }), "Split")),
      summary,
      h("h2", {}, "Pixel confusion"),
      h("label", { class: "inline" }, h("input", { type: "checkbox", id: "normalise", checked: normalise || null,
        onchange: (e) => go({ norm: e.target.checked ? "1" : "" }) }), " Row-normalised (share of each labeled class)"),
      confusion, frames, h("h2", {}, "Per class"), perClass);
    const page = { ctx, project, base, info, setName, dataset, filter, normalise, frames };
    await segmentation(page, summary, confusion, perClass);
    if (q.get("cell") || q.get("class")) await openFrames(page, q.get("class") || "", q.get("cell") || "");
    return;
  }
  if (info.cuboids || info.soundEvents) {
    const summary = h("section", { id: "summary", class: "cards" }, h("p", { class: "muted loading" }, "Loading metrics…"));
    const confusion = h("section", { id: "confusion" }, h("p", { class: "muted loading" }, "Loading the confusion matrix…"));
    const matches = h("section", { id: "matches", class: "card", hidden: true });
    const perClass = h("section", { id: "per-class" });
    const more = h("section", { id: "iou-ap" });
    const tCollar = param(q, "collar", 0.2);
    const resolution = param(q, "resolution", 1);
    const maxDistance = param(q, "max_distance", 0);
    const common = [
      select("inference_set", sets.map((x) => ({ value: x.name, label: `${x.name} · ${x.dataset}` })), setName,
        (v) => go({ inference_set: v, cell: "" }), "Inference set"),
      select("split", [{ value: "", label: "all" }, ...(ds.splits || []).map((x) => ({ value: x, label: x }))], split,
        (v) => go({ split: v, cell: "" }), "Split"),
      number("conf", "Confidence threshold", conf, { min: "0", max: "1", step: "0.05" })];
    const own = info.cuboids
      ? [number("iou", "BEV IoU of the confusion", iou, { min: "0.05", max: "1", step: "0.05" }),
        number("max_distance", "Within (m, 0: any)", maxDistance, { min: "0", step: "5" })]
      : [number("collar", "Onset collar (s)", tCollar, { min: "0.01", step: "0.05" }),
        number("resolution", "Segment (s)", resolution, { min: "0.01", step: "0.1" })];
    main.replaceChildren(
      h("h1", {}, "Model performance ", h("span", { class: "muted" }, setName)),
      h("p", { class: "muted" }, `Model ${set.model_name || "–"} ${set.model_version || ""} on dataset `,
        h("a", { href: href(`${base}/examples`, { dataset, inference_set: setName }) }, dataset),
        info.cuboids ? ": nuScenes' detection metrics (centre distance matching) and AP over rotated IoU from above (BEV) and in 3-D."
          : ": segment-based and event-based metrics as sed_eval computes them."),
      h("form", { class: "toolbar", id: "performance-filters", onsubmit: (e) => e.preventDefault() }, ...common, ...own),
      summary,
      h("h2", {}, info.cuboids ? "Confusion (cuboids, matched from above)" : "Event confusion"),
      h("label", { class: "inline" }, h("input", { type: "checkbox", id: "normalise", checked: normalise || null,
        onchange: (e) => go({ norm: e.target.checked ? "1" : "" }) }), " Row-normalised (share of each labeled class)"),
      confusion, matches,
      h("h2", {}, info.cuboids ? "nuScenes, per class" : "Per class"), perClass,
      info.cuboids ? h("h2", {}, "AP over IoU, per class") : null, info.cuboids ? more : null);
    const page = { ctx, project, base, info, set, setName, dataset, split, conf, iou, normalise, filter, examples, go, matches,
      tCollar, resolution, maxDistance };
    if (info.cuboids) {
      await Promise.all([cuboidMetrics(page, summary, perClass, more), detectionConfusion(page, confusion)]);
      if (q.get("cell")) await openCell(page, { cell: q.get("cell"), order: q.get("order") || "" });
    } else {
      await soundEventMetrics(page, summary, confusion, perClass);
      if (q.get("cell")) await openSoundEvents(page, q.get("cell"));
    }
    return;
  }
  const toolbar = h("form", { class: "toolbar", id: "performance-filters", onsubmit: (e) => e.preventDefault() },
    select("inference_set", sets.map((x) => ({ value: x.name, label: `${x.name} · ${x.dataset}` })), setName,
      (v) => go({ inference_set: v, baseline: "", cell: "", change: "" }), "Inference set"),
    select("split", [{ value: "", label: "all" }, ...(ds.splits || []).map((x) => ({ value: x, label: x }))], split,
      (v) => go({ split: v, cell: "" }), "Split"),
    number("conf", "Confidence threshold", conf, { min: "0", max: "1", step: "0.05" }),
    detection ? number("iou", "IoU threshold", iou, { min: "0.05", max: "1", step: "0.05" }) : null);

  const summary = h("section", { id: "summary", class: "cards" }, h("p", { class: "muted loading" }, "Loading metrics…"));
  const confusion = h("section", { id: "confusion" }, h("p", { class: "muted loading" }, "Loading the confusion matrix…"));
  const matches = h("section", { id: "matches", class: "card", hidden: true });
  const perClass = h("section", { id: "per-class" });
  const slices = h("section", { id: "slices" });
  const compare = h("section", { id: "compare" });
  main.replaceChildren(
    h("h1", {}, "Model performance ", h("span", { class: "muted" }, setName)),
    h("p", { class: "muted" }, `Model ${set.model_name || "–"} ${set.model_version || ""} on dataset `,
      h("a", { href: href(`${base}/examples`, { dataset, inference_set: setName }) }, dataset), "."),
    toolbar, summary,
    h("h2", {}, detection ? "Confusion (objects)" : "Confusion matrix"),
    h("label", { class: "inline" }, h("input", { type: "checkbox", id: "normalise", checked: normalise || null,
      onchange: (e) => go({ norm: e.target.checked ? "1" : "" }) }), " Row-normalised (share of each labeled class)"),
    confusion, matches,
    h("h2", {}, "Per class"), perClass,
    h("h2", {}, "Worst slices"), slices,
    h("h2", {}, "Compared with another inference set"), compare);

  const page = { ctx, project, base, info, set, setName, dataset, split, conf, iou, normalise, filter, examples, go, matches };
  const sections = detection
    ? [detectionSummary(page, summary, perClass), detectionConfusion(page, confusion)]
    : [classification(page, summary, confusion, perClass)];
  sections.push(worstSlices(page, slices), comparison(page, compare));
  await Promise.all(sections);
  if (detection && (q.get("cell") || q.get("change"))) {
    await openCell(page, { cell: q.get("cell") || "", change: q.get("change") || "", order: q.get("order") || "" });
  }
}

// Changes the page's URL without drawing the page again (the router draws it on back/forward).
function setParams(changes, mode) {
  const [path, query] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  for (const [k, v] of Object.entries(changes)) {
    if (v) params.set(k, v); else params.delete(k);
  }
  const url = `#${path}${params.toString() ? "?" + params : ""}`;
  if (mode === "push") history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

function stat(label, value, id) {
  const long = String(value).length > 12;
  return h("div", { class: "card stat-card", id }, h("div", { class: "muted" }, label), h("div", { class: long ? "stat long" : "stat" }, value));
}

async function guarded(root, work) {
  try {
    await work();
  } catch (err) {
    showError(root, err);
  }
}

// -- classification ------------------------------------------------------------------------------

function classification(page, summary, confusion, perClass) {
  const { project, setName, info, conf, filter } = page;
  return guarded(summary, async () => {
    confusion.replaceChildren();
    const resp = await rpc("analysis", "GetClassificationMetrics", {
      project, inference_set: setName, confidence_threshold: conf || undefined, filter });
    const m = resp.metrics || {};
    fill(summary,
      stat("Accuracy", pct(m.accuracy || 0), "stat-accuracy"),
      stat(`Top-${m.top_k || 5} accuracy`, pct(m.top_k_accuracy || 0), "stat-top-k"),
      stat("Macro F1", f3(m.macro_f1 || 0), "stat-macro-f1"),
      stat("Weighted F1", f3(m.weighted_f1 || 0), "stat-weighted-f1"),
      stat("Calibration error", f3(m.expected_calibration_error || 0), "stat-ece"),
      stat("Frames", fmt(num(m.frames)), "stat-frames"),
      conf > 0 ? stat("Abstained", fmt(num(m.abstained)), "stat-abstained") : null);

    const cm = m.confusion || {};
    const ids = cm.class_ids || [];
    const K = ids.length;
    const all = (cm.counts || []).map(Number);
    const abstained = ids.map((_, r) => all[r * (K + 1) + K]);
    const withAbstained = conf > 0 || abstained.some((v) => v > 0);
    const C = withAbstained ? K + 1 : K;
    const counts = withAbstained ? all : ids.flatMap((_, r) => all.slice(r * (K + 1), r * (K + 1) + K));
    const rows = ids.map((id) => ({ key: String(id), id, name: info.className(id) }));
    const cols = withAbstained ? [...rows, { key: "abstained", id: -1, name: "(abstained)" }] : rows;
    const frames = (v) => `${fmt(v)} frame${v === 1 ? "" : "s"}`;
    const map = K ? heatMap({
      rows, cols, counts, normalise: page.normalise, title: "confusion matrix: labeled class by row, predicted class by column",
      rowTitle: "Labeled", colTitle: "Predicted",
      describe: (r, c, v, share) => `labeled ${rows[r].name}, predicted ${cols[c].name}: ${frames(v)} (${pct(share)} of the row)`,
      open: (r, c) => page.ctx.navigate(page.examples({ label_class: rows[r].id, predicted_class: cols[c].id })),
    }) : h("p", { class: "muted" }, "No labeled frame with a prediction.");
    fill(confusion, map,
      cm.omitted_classes ? h("p", { class: "muted" }, `${fmt(cm.omitted_classes)} classes without frames are left out.`) : null,
      h("p", { class: "muted" }, "Choose a cell to see its frames."));

    const link = (id, text) => h("a", { href: page.examples({ label_class: id }) }, text);
    classTable(perClass, ["Class", "Precision", "Recall", "F1", "Support", "Predicted"], m.per_class || [],
      (c) => [link(c.class_id || 0, c.class_name || info.className(c.class_id || 0)),
        f3(c.precision || 0), f3(c.recall || 0), f3(c.f1 || 0), fmt(num(c.support)), fmt(num(c.predicted))],
      (c) => (num(c.support) || num(c.predicted) ? c.f1 || 0 : 2));
  });
}

// -- multi-label --------------------------------------------------------------------------------

function multiLabel(page, summary, perClass) {
  const { project, setName, info, filter, threshold } = page;
  return guarded(summary, async () => {
    const resp = await rpc("analysis", "GetMultiLabelMetrics", { project, inference_set: setName, threshold, filter });
    const m = resp.metrics || {};
    fill(summary,
      stat("Mean AP", num(m.mean_average_precision) < 0 ? "–" : f3(m.mean_average_precision || 0), "stat-map"),
      stat("Micro F1", f3(m.micro_f1 || 0), "stat-micro-f1"),
      stat("Macro F1", f3(m.macro_f1 || 0), "stat-macro-f1"),
      stat("Subset accuracy", pct(m.subset_accuracy || 0), "stat-subset-accuracy"),
      stat("Hamming loss", f3(m.hamming_loss || 0), "stat-hamming-loss"),
      stat("Frames", fmt(num(m.frames)), "stat-frames"));
    const open = (c) => h("a", { href: "#", onclick: (e) => { e.preventDefault(); openClassFrames(page, c.class_id || 0, "push"); } },
      c.class_name || info.className(c.class_id || 0));
    classTable(perClass, ["Class", "AP", "Precision", "Recall", "F1", "Support", "Predicted"], m.per_class || [],
      (c) => [open(c), num(c.average_precision) < 0 ? "–" : f3(c.average_precision || 0),
        f3(c.precision || 0), f3(c.recall || 0), f3(c.f1 || 0), fmt(num(c.support)), fmt(num(c.predicted))],
      (c) => (num(c.support) ? c.f1 || 0 : 2));
  });
}

// -- semantic segmentation ------------------------------------------------------------------------

function segmentation(page, summary, confusion, perClass) {
  const { project, setName, info, filter } = page;
  return guarded(summary, async () => {
    const resp = await rpc("analysis", "GetSegmentationMetrics", { project, inference_set: setName, filter });
    const m = resp.metrics || {};
    fill(summary,
      stat("Mean IoU", f3(m.mean_iou || 0), "stat-miou"),
      stat("Pixel accuracy", pct(m.pixel_accuracy || 0), "stat-pixel-accuracy"),
      stat("Mean accuracy", pct(m.mean_accuracy || 0), "stat-mean-accuracy"),
      stat("Frequency-weighted IoU", f3(m.frequency_weighted_iou || 0), "stat-fwiou"),
      stat("Frames", fmt(num(m.frames)), "stat-frames"),
      stat("Labeled pixels", fmt(num(m.pixels)), "stat-pixels"));
    const ids = m.class_ids || [];
    const K = ids.length;
    const counts = (m.confusion || []).map(Number);
    const rows = ids.map((id) => ({ key: String(id), id, name: info.className(id) }));
    const pixels = (v) => `${fmt(v)} pixel${v === 1 ? "" : "s"}`;
    const map = counts.some((v) => v > 0) ? heatMap({
      rows, cols: rows, counts, normalise: page.normalise,
      title: "pixel confusion: labeled class by row, predicted class by column", rowTitle: "Labeled", colTitle: "Predicted",
      describe: (r, c, v, share) => `labeled ${rows[r].name}, predicted ${rows[c].name}: ${pixels(v)} (${pct(share)} of the row)`,
      open: (r, c) => openFrames(page, "", `${rows[r].key},${rows[c].key}`, "push"),
    }) : h("p", { class: "muted" }, "No labeled frame with a prediction yet.");
    fill(confusion, map, K ? h("p", { class: "muted" }, "Choose a cell to see the frames with the most such pixels.") : null);
    const metric = (x) => (x === undefined || x < 0 ? "–" : f3(x));
    classTable(perClass, ["Class", "IoU", "Accuracy", "Precision", "Labeled pixels", "Predicted pixels", "Frames"], m.per_class || [],
      (c) => [h("a", { href: "#", onclick: (e) => { e.preventDefault(); openFrames(page, String(c.class_id || 0), "", "push"); } },
        c.class_name || info.className(c.class_id || 0)), metric(c.iou ?? 0), metric(c.accuracy ?? 0), metric(c.precision ?? 0),
      fmt(num(c.label_pixels)), fmt(num(c.predicted_pixels)), fmt(num(c.frames))],
      (c) => (c.iou === undefined ? 0 : c.iou < 0 ? 2 : c.iou));
  });
}

// The frames behind a class (lowest IoU first) or a confusion cell ("labeled,predicted": most pixels first).
async function openFrames(page, classId, cell, mode) {
  const { project, setName, info, dataset, filter, frames } = page;
  setParams({ class: classId, cell }, mode);
  frames.hidden = false;
  frames.replaceChildren(h("p", { class: "muted loading" }, "Loading frames…"));
  await guarded(frames, async () => {
    const [t, p] = cell ? cell.split(",").map(Number) : [Number(classId), undefined];
    const resp = await rpc("analysis", "QuerySegmentationFrames", {
      project, inference_set: setName, filter, class_id: t, predicted_class: p, page: { page_size: 24 } });
    const list = resp.frames || [];
    const title = cell ? `Labeled ${info.className(t)}, predicted ${info.className(p)}: the frames with the most such pixels`
      : `${info.className(t)}: the frames with its lowest IoU`;
    const frameHref = (f) => href(`/p/${encodeURIComponent(project)}/frame/${encodeURIComponent(f.ref?.dataset || dataset)}/${encodeURIComponent(f.ref?.frame_id || "")}`,
      { inference_set: setName });
    fill(frames, h("h3", {}, title),
      h("p", { class: "muted" }, `${fmt(num(resp.page?.total_count))} frames.`),
      list.length ? h("div", { class: "grid", id: "segmentation-frame-grid" }, list.map((f) => thumbnail(project, f.ref?.dataset || dataset,
        f.ref?.frame_id || "", {
          href: frameHref(f),
          caption: cell ? `${f.ref?.frame_id} · ${fmt(num(f.cell_pixels))} px` : `${f.ref?.frame_id} · IoU ${f3(f.iou || 0)}`,
        }))) : h("p", { class: "muted" }, "No frame."));
  });
}

// A multi-label class's errors at the threshold: the frames labeled with it that the model misses (lowest score
// first), and those it predicts that are not labeled with it (highest score first).
async function openClassFrames(page, classId, mode) {
  const { project, setName, info, dataset, filter, threshold, frames } = page;
  setParams({ class: String(classId) }, mode);
  frames.hidden = false;
  frames.replaceChildren(h("p", { class: "muted loading" }, "Loading frames…"));
  await guarded(frames, async () => {
    const ask = (outcome) => rpc("analysis", "QueryMultiLabelFrames", {
      project, inference_set: setName, filter, class_id: classId, outcome, threshold, page: { page_size: 12 } });
    const [missed, extra] = await Promise.all([ask("MULTI_LABEL_OUTCOME_FALSE_NEGATIVE"), ask("MULTI_LABEL_OUTCOME_FALSE_POSITIVE")]);
    const name = info.className(classId);
    const grid = (id, resp) => (resp.frames || []).length
      ? h("div", { class: "grid", id }, resp.frames.map((f) => thumbnail(project, f.ref?.dataset || dataset, f.ref?.frame_id || "", {
        href: href(`/p/${encodeURIComponent(project)}/frame/${encodeURIComponent(f.ref?.dataset || dataset)}/${encodeURIComponent(f.ref?.frame_id || "")}`,
          { inference_set: setName }),
        caption: `${f.ref?.frame_id} · ${f3(f.score || 0)}` })))
      : h("p", { class: "muted" }, "None.");
    fill(frames,
      h("h3", {}, `${name}: labeled, not predicted (${fmt(num(missed.page?.total_count))}), the lowest scores first`), grid("multilabel-missed", missed),
      h("h3", {}, `${name}: predicted, not labeled (${fmt(num(extra.page?.total_count))}), the highest scores first`), grid("multilabel-extra", extra));
  });
}

// The per-class table; with many classes, the worst first (by `rank`) and the rest on demand.
const FEW_CLASSES = 40;
function classTable(root, headers, list, cells, rank) {
  const many = list.length > FEW_CLASSES;
  const ordered = many ? [...list].sort((a, b) => rank(a) - rank(b)) : list;
  const draw = (n) => fill(root,
    many ? h("p", { class: "muted" }, `${fmt(list.length)} classes, the worst first.`) : null,
    table("per-class-table", headers, ordered.slice(0, n).map(cells), ordered.slice(0, n).map((c) => `class-${c.class_id || 0}`)),
    n < ordered.length ? h("button", { type: "button", id: "per-class-all", onclick: () => draw(ordered.length) },
      `Show all ${fmt(ordered.length)} classes`) : null);
  draw(many ? FEW_CLASSES : list.length);
}

function table(id, headers, rows, rowIds = []) {
  return h("table", { class: "data", id },
    h("thead", {}, h("tr", {}, headers.map((t, i) => h("th", { scope: "col", class: i ? "num" : null }, t)))),
    h("tbody", {}, rows.map((cells, r) => h("tr", { id: rowIds[r] || null },
      cells.map((v, i) => h("td", { class: i ? "num" : null }, v))))));
}

// -- detection -----------------------------------------------------------------------------------

function detectionSummary(page, summary, perClass) {
  const { project, setName, info } = page;
  return guarded(summary, async () => {
    const resp = await rpc("analysis", "GetDetectionMetrics", { project, inference_set: setName });
    const m = resp.metrics || {};
    const ap = (x) => (x !== undefined && x < 0 ? "–" : f3(x));
    fill(summary,
      stat("AP @[.5:.95]", ap(m.ap), "stat-ap"), stat("AP50", ap(m.ap50), "stat-ap50"), stat("AP75", ap(m.ap75), "stat-ap75"),
      stat("AR@1 / 10 / 100", `${ap(m.ar1)} / ${ap(m.ar10)} / ${ap(m.ar100)}`, "stat-ar"),
      stat("AP small / medium / large", `${ap(m.ap_small)} / ${ap(m.ap_medium)} / ${ap(m.ap_large)}`, "stat-ap-area"),
      stat("Frames", fmt(num(m.frames)), "stat-frames"),
      stat("Labeled / predicted boxes", `${fmt(num(m.ground_truth_objects))} / ${fmt(num(m.predicted_objects))}`, "stat-objects"));
    classTable(perClass, ["Class", "AP", "AP50", "AP75", "AR@100", "Labeled boxes", "Predicted boxes"], m.per_class || [],
      (c) => [c.class_name || info.className(c.class_id || 0), ap(c.ap), ap(c.ap50), ap(c.ap75),
        ap(c.ar100), fmt(num(c.ground_truth)), fmt(num(c.predicted))],
      (c) => (c.ap === undefined ? 0 : c.ap < 0 ? 2 : c.ap));
  });
}

function detectionConfusion(page, root) {
  const { project, setName, info, iou, conf } = page;
  return guarded(root, async () => {
    const resp = await rpc("analysis", "GetDetectionConfusion", {
      project, inference_set: setName, iou_threshold: iou, confidence_threshold: conf || undefined });
    const cm = resp.confusion || {};
    const ids = cm.class_ids || [];
    const K = ids.length;
    const counts = (cm.counts || []).map(Number);
    const classes = ids.map((id) => ({ key: String(id), id, name: info.className(id) }));
    const rows = [...classes, { key: "fp", id: null, name: "(false positive)" }];
    const cols = [...classes, { key: "missed", id: null, name: "(missed)" }];
    const boxes = (v) => `${fmt(v)} box${v === 1 ? "" : "es"}`;
    const describe = (r, c, v, share) => {
      const what = r === K ? `false positives predicted as ${cols[c].name}`
        : c === K ? `missed ${rows[r].name} boxes` : `labeled ${rows[r].name}, predicted ${cols[c].name}`;
      return `${what}: ${boxes(v)}${r < K ? ` (${pct(share)} of the row)` : ""}`;
    };
    const map = K ? heatMap({
      rows, cols, counts, normalise: page.normalise, inert: (r, c) => r === K && c === K,
      title: "detection confusion: labeled class by row (last: false positives), predicted class by column (last: missed)",
      rowTitle: "Labeled", colTitle: "Predicted", describe,
      open: (r, c) => openCell(page, { cell: `${rows[r].key},${cols[c].key}` }, "push"),
    }) : h("p", { class: "muted" }, "No box yet.");
    fill(root, map,
      h("p", { class: "muted" }, `Matched at IoU ≥ ${Number(cm.iou_threshold || iou).toFixed(2)}`,
        (cm.confidence_threshold || 0) > 0 ? `, predictions scored ≥ ${Number(cm.confidence_threshold).toFixed(2)}` : "",
        num(cm.ignored_predictions) ? `; ${fmt(num(cm.ignored_predictions))} predictions on crowd regions ignored` : "",
        cm.omitted_classes ? `; ${fmt(cm.omitted_classes)} classes without boxes left out` : "",
        ". Choose a cell to see its boxes."));
  });
}

const ORDERS = [
  ["", "highest score first"], ["DETECTION_MATCH_ORDER_SCORE_ASCENDING", "lowest score first"],
  ["DETECTION_MATCH_ORDER_IOU_ASCENDING", "lowest IoU first"], ["DETECTION_MATCH_ORDER_IOU_DESCENDING", "highest IoU first"]];

// The boxes behind a detection confusion cell (or behind the improved/regressed counts of a
// comparison), a page at a time, as thumbnails with the matched boxes drawn. The selection is kept
// in the URL (cell=<row>,<column> with "fp" and "missed", or change=improved|regressed).
async function openCell(page, want, mode) {
  const { project, setName, info, dataset, iou, conf, split, matches } = page;
  const sel = { cell: "", change: "", order: "", ...want };
  sel.baseline = page.ctx.query.get("baseline") || "";
  if (mode) setParams({ cell: sel.cell, change: sel.change, order: sel.order }, mode);
  const request = { project, inference_set: setName, iou_threshold: iou, confidence_threshold: conf || undefined,
    frame_filter: page.filter, order: sel.order || undefined };
  let title;
  if (sel.change) {
    Object.assign(request, { baseline_inference_set: sel.baseline, change: sel.change, any_label_class: true, any_predicted_class: true });
    title = `Labeled boxes ${sel.change} against ${sel.baseline}`;
  } else {
    const [lab, pred] = sel.cell.split(",");
    if (lab !== "fp") request.label_class = Number(lab);
    if (pred !== "missed") request.predicted_class = Number(pred);
    title = lab === "fp" ? `False positives predicted as ${info.className(Number(pred))}`
      : pred === "missed" ? `Missed ${info.className(Number(lab))} boxes`
        : `Labeled ${info.className(Number(lab))}, predicted ${info.className(Number(pred))}`;
  }
  const count = h("span", { class: "muted", id: "matches-count" });
  const grid = h("div", { class: "grid", id: "matches-grid" });
  const status = h("p", { class: "muted", id: "matches-status" }, "Loading…");
  const more = h("button", { type: "button", id: "matches-more", hidden: true }, "More");
  const close = h("button", { type: "button", class: "link", id: "matches-close", onclick: () => {
    setParams({ cell: "", change: "", order: "" }, "push");
    matches.hidden = true;
    matches.replaceChildren();
  } }, "Close");
  fill(matches,
    h("h2", {}, title, " ", count), h("div", { class: "toolbar" },
      select("order", ORDERS.map(([value, label]) => ({ value, label })), sel.order,
        (v) => openCell(page, { cell: sel.cell, change: sel.change, order: v }, "replace"), "Order"), close),
    h("div", { class: "legend" }, h("span", {}, h("span", { class: "swatch label" }), "labeled box"),
      h("span", {}, h("span", { class: "swatch prediction" }), "predicted box")),
    grid, status, more);
  matches.hidden = false;
  matches.scrollIntoView({ block: "start" });
  const generation = (matches.dataset.generation = String(Number(matches.dataset.generation || 0) + 1));
  let token = "";
  const load = async () => {
    more.hidden = true;
    status.textContent = "Loading…";
    try {
      const resp = await rpc("analysis", "QueryDetectionMatches", { ...request, page: { page_size: MATCHES_PAGE, page_token: token } });
      const list = resp.matches || [];
      const sizes = await frameSizes(project, dataset, list.map((x) => x.frame_id));
      if (matches.dataset.generation !== generation) return;
      for (const x of list) {
        const size = sizes.get(x.frame_id);
        const objects = {
          labels: x.label_box ? [{ class_id: x.label_class ?? 0, box: x.label_box }] : [],
          predictions: x.predicted_box ? [{ class_id: x.predicted_class ?? 0, box: x.predicted_box, score: x.score }] : [],
        };
        const facts = [x.frame_id, x.score !== undefined ? `score ${Number(x.score).toFixed(2)}` : null,
          info.cuboids && x.distance !== undefined && !Number.isNaN(Number(x.distance)) ? `${Number(x.distance).toFixed(1)} m` : null,
          x.predicted_object_id && x.label_object_id ? `IoU ${Number(x.iou || 0).toFixed(2)}` : x.predicted_object_id ? `best IoU ${Number(x.iou || 0).toFixed(2)}` : null];
        grid.append(thumbnail(project, dataset, x.frame_id, {
          caption: facts.filter(Boolean).join(" · "),
          href: href(`/p/${enc(project)}/frame/${enc(dataset)}/${enc(x.frame_id)}`, { inference_set: setName }),
          objects, width: size?.width, height: size?.height, size: size?.size || "thumb", className: info.className,
        }));
      }
      const total = num(resp.page?.total_count);
      count.textContent = `${fmt(total)} box${total === 1 ? "" : "es"}`;
      token = resp.page?.next_page_token || "";
      more.hidden = !token;
      status.textContent = token ? "" : grid.children.length ? "End of results." : "No box in this cell.";
    } catch (err) {
      showError(status, err);
    }
  };
  more.onclick = load;
  if (split) status.textContent = `Split ${split} only.`;
  await load();
}

// -- slices --------------------------------------------------------------------------------------

async function metadataKeys(page) {
  const resp = await rpc("analysis", "QueryDatapoints", { project: page.project, dataset: page.dataset, page: { page_size: 50 } });
  const keys = new Map();
  for (const dp of resp.datapoints || []) {
    for (const [k, v] of Object.entries(dp.metadata || {})) if (!keys.has(k)) keys.set(k, Object.keys(v)[0]);
  }
  return [...keys.entries()].sort();
}

function worstSlices(page, root) {
  const { project, setName, conf, iou, filter, info, ctx } = page;
  const q = ctx.query;
  const groupBy = q.get("group") || "split";
  const bucket = q.get("bucket") || "day";
  return guarded(root, async () => {
    const keys = await metadataKeys(page).catch(() => []);
    const kinds = new Map(keys);
    const options = [{ value: "split", label: "split" }, { value: "capture_time", label: "capture time" },
      ...keys.map(([k]) => ({ value: `metadata.${k}`, label: k }))];
    if (!options.some((o) => o.value === groupBy)) options.push({ value: groupBy, label: groupBy.replace(/^metadata\./, "") });
    const controls = h("div", { class: "toolbar" },
      select("group", options, groupBy, (v) => page.go({ group: v }), "Group by"),
      groupBy === "capture_time" ? select("bucket", ["hour", "day", "week", "month"].map((b) => ({ value: b, label: b })),
        bucket, (v) => page.go({ bucket: v }), "Bucket") : null);
    fill(root, controls, h("p", { class: "muted loading" }, "Loading slices…"));
    const resp = await rpc("analysis", "GetSlices", {
      project, inference_set: setName, group_by: groupBy, time_bucket: groupBy === "capture_time" ? bucket : undefined,
      confidence_threshold: conf || undefined, filter, iou_threshold: info.detection ? iou : undefined });
    const worst = new Set((resp.worst || []).map((x) => x.value));
    const list = [...(resp.slices || [])].sort((a, b) => (a.accuracy || 0) - (b.accuracy || 0));
    const overall = resp.overall_accuracy || 0;
    const sliceLink = (x) => {
      if (x.value === "(none)") return null;
      if (groupBy === "split") return page.examples({ split: x.value });
      if (groupBy === "capture_time") {
        const from = new Date(x.value.replace(" ", "T") + "Z");
        if (Number.isNaN(from.getTime())) return null;
        const to = new Date(from);
        if (bucket === "hour") to.setUTCHours(to.getUTCHours() + 1);
        else if (bucket === "day") to.setUTCDate(to.getUTCDate() + 1);
        else if (bucket === "week") to.setUTCDate(to.getUTCDate() + 7);
        else to.setUTCMonth(to.getUTCMonth() + 1);
        to.setTime(to.getTime() - 1); // the grid's time range includes its end
        return page.examples({ from: from.toISOString(), to: to.toISOString() });
      }
      const key = groupBy.replace(/^metadata\./, "");
      const kind = kinds.get(key);
      if (kind === "timestamp_value") return null;
      return page.examples({ meta_key: key, meta_value: x.value, meta_type: kind === "string_value" ? "string" : "" });
    };
    const unit = info.detection ? "outcomes" : "frames";
    const bar = (x) => {
      const box = h("span", { class: "slice-bar", "aria-hidden": "true" });
      const fill = h("span", { class: "fill" });
      const ci = h("span", { class: "ci" });
      const mark = h("span", { class: "overall" });
      fill.style.width = `${100 * (x.accuracy || 0)}%`;
      fill.style.background = worst.has(x.value) ? WORSE : BETTER;
      ci.style.left = `${100 * (x.interval_lower || 0)}%`;
      ci.style.width = `${100 * ((x.interval_upper || 0) - (x.interval_lower || 0))}%`;
      mark.style.left = `${100 * overall}%`;
      box.append(fill, ci, mark);
      return box;
    };
    fill(root, controls,
      h("p", { id: "slices-summary" }, `Overall accuracy ${pct(overall)} over ${fmt(num(info.detection ? resp.objects : resp.frames))} ${unit}`,
        (resp.worst || []).length ? `; ${resp.worst.length} slice${resp.worst.length === 1 ? " falls" : "s fall"} clearly below it (flagged).`
          : "; no slice falls clearly below it."),
      list.length ? h("table", { class: "data", id: "slices-table" },
        h("thead", {}, h("tr", {}, ["Slice", info.detection ? "Outcomes" : "Frames", "Correct", "Accuracy", "95% interval", "Against overall", ""]
          .map((t, i) => h("th", { scope: "col", class: i && i < 6 ? "num" : null }, t)))),
        h("tbody", {}, list.map((x) => {
          const target = sliceLink(x);
          return h("tr", { class: worst.has(x.value) ? "worst" : null, dataset: { value: x.value } },
            h("td", {}, target ? h("a", { href: target }, x.value) : x.value, worst.has(x.value) ? h("span", { class: "pill worst-pill" }, "worst") : null),
            h("td", { class: "num" }, fmt(num(info.detection ? x.objects : x.frames))), h("td", { class: "num" }, fmt(num(x.correct))),
            h("td", { class: "num accuracy" }, pct(x.accuracy || 0)),
            h("td", { class: "num" }, `${pct(x.interval_lower || 0)} – ${pct(x.interval_upper || 0)}`),
            h("td", { class: "num drop" }, `${(x.drop || 0) > 0 ? "−" : "+"}${(100 * Math.abs(x.drop || 0)).toFixed(1)} pts`),
            h("td", { class: "bar-cell" }, bar(x)));
        }))) : h("p", { class: "muted" }, "No slice."));
  });
}

// -- comparison ----------------------------------------------------------------------------------

function comparison(page, root) {
  const { project, setName, set, conf, iou, filter, info, ctx } = page;
  const others = info.inferenceSets.filter((x) => x.dataset === set.dataset && x.name !== setName);
  if (!others.length) {
    fill(root, h("p", { class: "muted", id: "compare-none" },
      `No other inference set of ${set.dataset} to compare with: upload another model's predictions for it.`));
    return Promise.resolve();
  }
  const baseline = ctx.query.get("baseline") || "";
  const chooser = h("div", { class: "toolbar" }, select("baseline",
    [{ value: "", label: "(choose)" }, ...others.map((x) => ({ value: x.name, label: x.name }))], baseline,
    (v) => page.go({ baseline: v }), "Baseline"));
  if (!baseline) {
    fill(root, chooser, h("p", { class: "muted" }, `Choose a baseline to compare ${setName} with.`));
    return Promise.resolve();
  }
  fill(root, chooser, h("p", { class: "muted loading" }, "Comparing…"));
  return guarded(root, async () => {
    const resp = await rpc("analysis", "CompareInferenceSets", {
      project, baseline_inference_set: baseline, candidate_inference_set: setName,
      confidence_threshold: conf || undefined, filter, iou_threshold: info.detection ? iou : undefined });
    const delta = (d, digits = 3) => {
      const v = d || 0;
      const el = h("span", { class: v > 0 ? "delta up" : v < 0 ? "delta down" : "delta" },
        v > 0 ? `▲ +${v.toFixed(digits)}` : v < 0 ? `▼ ${v.toFixed(digits)}` : "= 0");
      if (v) el.style.color = v > 0 ? BETTER : WORSE;
      return el;
    };
    const changed = (kind, n) => {
      const text = `${fmt(n)} ${kind}`;
      if (!n) return h("span", { id: `compare-${kind}` }, text);
      if (info.detection) {
        return h("a", { href: "#", id: `compare-${kind}`, onclick: (e) => {
          e.preventDefault();
          openCell(page, { change: kind }, "push");
        } }, text);
      }
      // "change" and "baseline_inference_set" narrow the grid to exactly these frames; "correct" is
      // what they have in common
      return h("a", { id: `compare-${kind}`, href: page.examples({ baseline_inference_set: baseline, change: kind,
        correct: kind === "improved" ? "true" : "false" }) }, text);
    };
    const accB = resp.baseline_accuracy || 0, accC = resp.candidate_accuracy || 0;
    const unit = info.detection ? "labeled boxes" : "frames";
    fill(root, chooser,
      h("div", { class: "cards", id: "compare-summary" },
        stat(info.detection ? "Labeled boxes compared" : "Frames both predict", fmt(num(info.detection ? resp.objects : resp.frames)), "compare-frames"),
        h("div", { class: "card stat-card", id: "compare-accuracy" }, h("div", { class: "muted" }, "Accuracy"),
          h("div", { class: "stat" }, `${pct(accB)} → ${pct(accC)}`), delta(accC - accB)),
        h("div", { class: "card stat-card" }, h("div", { class: "muted" }, `Changed ${unit}`),
          h("div", {}, changed("improved", num(resp.improved))), h("div", {}, changed("regressed", num(resp.regressed))))),
      table("compare-table", ["Class", "Precision", "Δ", "Recall", "Δ", "F1", "Δ"],
        (resp.per_class || []).map((c) => [c.class_name || info.className(c.class_id || 0),
          `${f3(c.baseline?.precision || 0)} → ${f3(c.candidate?.precision || 0)}`, delta(c.precision_delta),
          `${f3(c.baseline?.recall || 0)} → ${f3(c.candidate?.recall || 0)}`, delta(c.recall_delta),
          `${f3(c.baseline?.f1 || 0)} → ${f3(c.candidate?.f1 || 0)}`, delta(c.f1_delta)]),
        (resp.per_class || []).map((c) => `compare-class-${c.class_id || 0}`)));
  });
}

// -- 3-D cuboids ---------------------------------------------------------------------------------

// A metric that may be absent: NaN (protobuf's JSON writes "NaN") or -1 (no labels) as "–".
function metric(x) {
  const v = Number(x ?? 0);
  return Number.isNaN(v) || v < 0 ? "–" : v.toFixed(3);
}

function cuboidMetrics(page, summary, perClass, more) {
  const { project, setName, info, conf, filter, maxDistance } = page;
  return guarded(summary, async () => {
    const resp = await rpc("analysis", "GetCuboidMetrics", {
      project, inference_set: setName, frame_filter: filter, confidence_threshold: conf || undefined,
      max_distance: maxDistance > 0 ? maxDistance : undefined });
    const m = resp.metrics || {};
    const n = m.nuscenes || {};
    const bev = m.bev || {}, iou3d = m.iou_3d || {};
    fill(summary,
      stat("nuScenes mAP", metric(n.map), "stat-nus-map"), stat("NDS", metric(n.nds), "stat-nds"),
      stat("mATE / mASE / mAOE", `${metric(n.mate)} / ${metric(n.mase)} / ${metric(n.maoe)}`, "stat-tp-errors"),
      stat("mAVE / mAAE", `${metric(n.mave)} / ${metric(n.maae)}`, "stat-tp-errors-2"),
      stat("BEV mAP", metric(bev.map), "stat-bev-map"), stat("3-D mAP", metric(iou3d.map), "stat-3d-map"),
      stat("Frames", fmt(num(m.frames)), "stat-frames"),
      stat("Labeled / predicted cuboids", `${fmt(num(m.ground_truth_objects))} / ${fmt(num(m.predicted_objects))}`, "stat-objects"));
    const dist = (n.distance_thresholds || []).map((d) => `AP@${Number(d)} m`);
    classTable(perClass, ["Class", "AP", ...dist, "ATE (m)", "ASE", "AOE (rad)", "AVE (m/s)", "AAE", "Labeled", "Predicted"],
      n.per_class || [], (c) => [c.class_name || info.className(c.class_id || 0), metric(c.ap), ...(c.ap_at || []).map(metric),
        metric(c.ate), metric(c.ase), metric(c.aoe), metric(c.ave), metric(c.aae), fmt(num(c.ground_truth)), fmt(num(c.predicted))],
      (c) => (Number.isNaN(Number(c.ap)) ? 2 : Number(c.ap || 0)));
    // BEV and 3-D AP side by side: one row per class, one column per threshold
    const thresholds = (x) => (x.iou_thresholds || []).map((t) => Number(t).toFixed(2));
    const byClass = new Map();
    for (const [kind, x] of [["bev", bev], ["3d", iou3d]]) {
      for (const c of x.per_class || []) {
        const row = byClass.get(c.class_id || 0) || { name: c.class_name || info.className(c.class_id || 0) };
        row[kind] = c;
        byClass.set(c.class_id || 0, row);
      }
    }
    const cells = (c, x) => [metric(c?.ap), ...thresholds(x).map((_, i) => metric((c?.ap_at || [])[i]))];
    fill(more, table("iou-ap-table",
      ["Class", "BEV AP", ...thresholds(bev).map((t) => `BEV AP@${t}`), "3-D AP", ...thresholds(iou3d).map((t) => `3-D AP@${t}`)],
      [...[...byClass.values()].map((r) => [r.name, ...cells(r.bev, bev), ...cells(r["3d"], iou3d)]),
        [h("strong", {}, "mean"), metric(bev.map), ...(bev.map_at || []).map(metric), metric(iou3d.map), ...(iou3d.map_at || []).map(metric)]],
      [...[...byClass.keys()].map((id) => `iou-ap-class-${id}`), "iou-ap-mean"]));
  });
}

// -- sound events --------------------------------------------------------------------------------

function soundEventMetrics(page, summary, confusion, perClass) {
  const { project, setName, info, conf, filter, tCollar, resolution } = page;
  return guarded(summary, async () => {
    const resp = await rpc("analysis", "GetSoundEventMetrics", {
      project, inference_set: setName, frame_filter: filter, confidence_threshold: conf || undefined,
      t_collar: tCollar, time_resolution: resolution });
    const m = resp.metrics || {};
    const seg = m.segment_based || {}, ev = m.event_based || {};
    fill(summary,
      stat("Segment F1", metric(seg.f1), "stat-segment-f1"), stat("Segment error rate", metric(seg.error_rate), "stat-segment-er"),
      stat("Event F1", metric(ev.f1), "stat-event-f1"), stat("Event error rate", metric(ev.error_rate), "stat-event-er"),
      stat("Class-average event F1", metric((m.event_based_class_average || {}).f1), "stat-event-class-f1"),
      stat("Clips", fmt(num(m.clips)), "stat-clips"),
      stat("Labeled / predicted events", `${fmt(num(m.reference_events))} / ${fmt(num(m.estimated_events))}`, "stat-events"));
    classTable(perClass, ["Class", "Segment F1", "Segment ER", "Event F1", "Event ER", "Event precision", "Event recall", "Labeled events", "Predicted events"],
      m.per_class || [], (c) => {
        const s = c.segment_based || {}, e = c.event_based || {};
        return [c.class_name || info.className(c.class_id || 0), metric(s.f1), metric(s.error_rate), metric(e.f1), metric(e.error_rate),
          metric(e.precision), metric(e.recall), fmt(num(e.reference)), fmt(num(e.estimated))];
      }, (c) => (Number.isNaN(Number(c.event_based?.f1)) ? 2 : Number(c.event_based?.f1 || 0)));
    const ids = (m.class_ids || []).map(Number);
    const K = ids.length;
    const counts = (m.confusion || []).map(Number);
    const classes = ids.map((id) => ({ key: String(id), id, name: info.className(id) }));
    const rows = [...classes, { key: "fp", id: null, name: "(false positive)" }];
    const cols = [...classes, { key: "missed", id: null, name: "(missed)" }];
    const events = (v) => `${fmt(v)} event${v === 1 ? "" : "s"}`;
    const describe = (r, c, v, share) => {
      const what = r === K ? `false positives predicted as ${cols[c].name}`
        : c === K ? `missed ${rows[r].name} events` : `labeled ${rows[r].name}, predicted ${cols[c].name}`;
      return `${what}: ${events(v)}${r < K ? ` (${pct(share)} of the row)` : ""}`;
    };
    fill(confusion, K && counts.some((v) => v > 0) ? heatMap({
      rows, cols, counts, normalise: page.normalise, inert: (r, c) => r === K && c === K,
      title: "event confusion: labeled class by row (last: false positives), predicted class by column (last: missed)",
      rowTitle: "Labeled", colTitle: "Predicted", describe,
      open: (r, c) => openSoundEvents(page, `${rows[r].key},${cols[c].key}`, "push"),
    }) : h("p", { class: "muted" }, "No event yet."),
    h("p", { class: "muted" }, `Events matched with onsets within ${Number(tCollar).toFixed(2)} s. Choose a cell to see its intervals.`));
  });
}

// The intervals behind a cell of the event confusion ("labeled,predicted" with "fp" and "missed"), each
// linking to its clip's frame view at the interval's onset.
async function openSoundEvents(page, cell, mode) {
  const { project, setName, info, dataset, conf, filter, tCollar, matches } = page;
  setParams({ cell }, mode);
  const [lab, pred] = cell.split(",");
  const request = { project, inference_set: setName, t_collar: tCollar, confidence_threshold: conf || undefined, frame_filter: filter };
  if (lab !== "fp") request.label_class = Number(lab);
  if (pred !== "missed") request.predicted_class = Number(pred);
  const title = lab === "fp" ? `False positives predicted as ${info.className(Number(pred))}`
    : pred === "missed" ? `Missed ${info.className(Number(lab))} events`
      : `Labeled ${info.className(Number(lab))}, predicted ${info.className(Number(pred))}`;
  const count = h("span", { class: "muted", id: "matches-count" });
  const body = h("tbody", {});
  const status = h("p", { class: "muted", id: "matches-status" }, "Loading…");
  const moreButton = h("button", { type: "button", id: "matches-more", hidden: true }, "More");
  fill(matches, h("h2", {}, title, " ", count),
    h("div", { class: "toolbar" }, h("button", { type: "button", class: "link", id: "matches-close", onclick: () => {
      setParams({ cell: "" }, "push");
      matches.hidden = true;
      matches.replaceChildren();
    } }, "Close")),
    h("table", { class: "data", id: "sound-events-table" }, h("thead", {}, h("tr", {},
      ["Clip", "Labeled", "Predicted", "Score", "IoU"].map((t, i) => h("th", { scope: "col", class: i > 2 ? "num" : null }, t)))), body),
    status, moreButton);
  matches.hidden = false;
  matches.scrollIntoView({ block: "start" });
  const interval = (e) => (e ? `${info.className(e.class_id || 0)} ${Number(e.onset || 0).toFixed(2)}–${Number(e.offset || 0).toFixed(2)} s` : "–");
  let token = "";
  const load = async () => {
    moreButton.hidden = true;
    try {
      const resp = await rpc("analysis", "QuerySoundEvents", { ...request, page: { page_size: MATCHES_PAGE, page_token: token } });
      for (const x of resp.matches || []) {
        const at = (x.label_event || x.predicted_event || {}).onset || 0;
        body.append(h("tr", { dataset: { frameId: x.frame_id } },
          h("td", {}, h("a", { href: href(`/p/${enc(project)}/frame/${enc(dataset)}/${enc(x.frame_id)}`,
            { inference_set: setName, t: Number(at).toFixed(2) }) }, x.frame_id)),
          h("td", {}, interval(x.label_event)), h("td", {}, interval(x.predicted_event)),
          h("td", { class: "num" }, x.predicted_event ? Number(x.predicted_event.score || 0).toFixed(2) : "–"),
          h("td", { class: "num" }, x.label_event && x.predicted_event ? Number(x.iou || 0).toFixed(2) : "–")));
      }
      const total = num(resp.page?.total_count);
      count.textContent = `${fmt(total)} interval${total === 1 ? "" : "s"}`;
      token = resp.page?.next_page_token || "";
      moreButton.hidden = !token;
      status.textContent = token ? "" : body.children.length ? "End of results." : "No interval in this cell.";
    } catch (err) {
      showError(status, err);
    }
  };
  moreButton.onclick = load;
  await load();
}
