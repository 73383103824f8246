// Small building blocks shared by the pages: DOM, colours, thumbnails with boxes, errors.
import { all, mediaUrl, rpc } from "./api.js";

// h("div", {class: "x", onclick: fn}, child, "text", [children]) -> Element
export function h(tag, attrs = {}, ...children) {
  const el = tag === "svg" || SVG_TAGS.has(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}
const SVG_TAGS = new Set(["rect", "text", "g", "line", "path", "polygon", "title", "circle", "image"]);

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Okabe–Ito: distinguishable with the common colour-vision deficiencies.
export const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
  "#7a5195", "#8c6d31", "#2f4b7c", "#a05195"];
export const LABEL_COLOUR = "#0072B2";
export const PREDICTION_COLOUR = "#D55E00";
export function classColour(id) {
  if (id === undefined || id === null || id < 0) return "#999999";
  return PALETTE[id % PALETTE.length];
}

// Sequential scale (viridis stops), readable for colour-blind users; t in [0, 1].
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
export function sequential(t) {
  const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const c = VIRIDIS[i].map((v, j) => Math.round(v + (VIRIDIS[i + 1][j] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export function fmt(x, digits = 3) {
  if (x === undefined || x === null || Number.isNaN(x)) return "–";
  if (typeof x === "string") x = Number(x);
  if (Number.isInteger(x)) return x.toLocaleString("en");
  return x.toFixed(digits);
}

export function showError(root, err) {
  const box = h("div", { class: "error", role: "alert" },
    h("strong", {}, err.status === 403 ? "Not allowed. " : err.status === 404 ? "Not found. " : "Something went wrong. "),
    err.message || String(err),
    err.field ? h("span", { class: "muted" }, ` (field ${err.field})`) : null);
  root.replaceChildren(box);
  return box;
}

// A form's field errors: each field is an element with data-field="<the request field>" holding a
// .field-error span; a refused call's error names the field (err.field) it is about.
export function clearFieldErrors(form, message) {
  for (const el of form.querySelectorAll(".field-error")) { el.textContent = ""; el.hidden = true; }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  message.textContent = "";
  message.className = "";
}

// Shows a refused call's message beside the field it names, or the nearest enclosing one the form
// has (actions[1].daily_budget, then actions[1], ...); else in `message`. `path` is the field as the
// form names it (default err.field); `notDone` is said in `message` when a field is marked.
export function showFieldError(form, message, err, { path = String(err.field || ""), notDone = "Not saved" } = {}) {
  let text = String(err.message || err);
  if (err.field && text.startsWith(`${err.field}: `)) text = text.slice(err.field.length + 2);
  while (path) {
    const box = form.querySelector(`[data-field="${CSS.escape(path)}"]`);
    if (box) {
      const out = box.querySelector(":scope > .field-error");
      out.textContent = text;
      out.hidden = false;
      const input = box.querySelector("input, select");
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
      message.textContent = `${notDone}: see the field marked.`;
      message.className = "error-text";
      return;
    }
    const cut = path.search(/(\.[^.[\]]+|\[\d+\])$/);
    path = cut > 0 ? path.slice(0, cut) : "";
  }
  message.textContent = err.field ? `${err.field}: ${text}` : text;
  message.className = "error-text";
}

// A number input's value, undefined when empty.
export function numberOr(value) {
  const s = String(value ?? "").trim();
  return s === "" ? undefined : Number(s);
}

export function banner(message) {
  const el = document.getElementById("banner");
  if (!message) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.textContent = message;
  el.hidden = false;
}

const OBJECT_TASKS = new Set(["TASK_TYPE_OBJECT_DETECTION_2D", "TASK_TYPE_INSTANCE_SEGMENTATION", "TASK_TYPE_KEYPOINTS"]);

// What a page needs to know about its project, read once per navigation.
const projectCache = new Map();
export async function projectInfo(project) {
  if (projectCache.has(project)) return projectCache.get(project);
  const promise = (async () => {
    const [p, datasets, sets] = await Promise.all([
      rpc("ingest", "GetProject", { project }),
      all("ingest", "ListDatasets", { project }, "datasets"),
      all("ingest", "ListInferenceSets", { project }, "inference_sets"),
    ]);
    const proj = p.project;
    const names = new Map((proj.classes || []).map((c) => [c.id || 0, c.name]));
    const colours = new Map((proj.classes || []).filter((c) => c.color).map((c) => [c.id || 0, c.color]));
    const order = new Map((proj.classes || []).map((c, i) => [c.id || 0, i]));
    return {
      project: proj,
      datasets,
      inferenceSets: sets,
      // a project of objects: 2-D boxes, instance masks or keypoints
      detection: OBJECT_TASKS.has(proj.task_type),
      // any number of classes per frame, a score per class
      multiLabel: proj.task_type === "TASK_TYPE_MULTI_LABEL",
      // one class per pixel: label and predicted class maps, each class in its colour
      segmentation: proj.task_type === "TASK_TYPE_SEGMENTATION",
      // point clouds with 3-D cuboids: drawn from above, with the camera images beside
      cuboids: proj.task_type === "TASK_TYPE_CUBOIDS_3D",
      // audio clips with sound events: waveform, spectrogram, intervals and a player
      soundEvents: proj.task_type === "TASK_TYPE_SOUND_EVENTS",
      classColour: (id) => colours.get(id) || CLASS_PALETTE[Math.max(0, order.get(id) ?? 0) % CLASS_PALETTE.length],
      // keypoint classes: their keypoint names and skeleton, by class id
      keypoints: new Map((proj.classes || []).filter((c) => (c.keypoints || []).length)
        .map((c) => [c.id || 0, { names: c.keypoints, skeleton: (c.skeleton || []).map((e) => [e.a || 0, e.b || 0]) }])),
      className: (id) => (id === undefined || id === null ? "–" : id < 0 ? "(none)" : names.get(id) ?? `class ${id}`),
      classes: (proj.classes || []).map((c) => ({ id: c.id || 0, name: c.name })),
      // the class of position i of a probability (or score) vector: the ontology's i-th
      classAt: (i) => (proj.classes || [])[i] ? (proj.classes[i].id || 0) : i,
    };
  })();
  projectCache.set(project, promise);
  promise.catch(() => projectCache.delete(project));
  return promise;
}
export function forgetProjects() {
  projectCache.clear();
}

// Colours of classes that declare none (segmentation maps), told apart also by people with a colour vision deficiency.
const CLASS_PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000",
  "#882255", "#44aa99", "#999933", "#aa4499", "#332288", "#88ccee", "#117733", "#ddcc77"];

// COCO's compact run-length string as its run lengths (column-major, starting with unset pixels).
export function rleRuns(counts) {
  const runs = [];
  let p = 0;
  while (p < counts.length) {
    let x = 0, k = 0, more = true;
    while (more) {
      const c = counts.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k);
    }
    if (runs.length > 2) x += runs[runs.length - 2];
    runs.push(x);
  }
  return runs;
}

// A mask as a translucent image of the frame's size (drawn at most 320 pixels across, scaled up).
function maskImage(counts, width, height, colour, alpha = 120) {
  const scale = Math.max(1, Math.ceil(Math.max(width, height) / 320));
  const cw = Math.ceil(width / scale), ch = Math.ceil(height / scale);
  const canvas = document.createElement("canvas");
  canvas.width = cw;
  canvas.height = ch;
  const context = canvas.getContext("2d");
  const image = context.createImageData(cw, ch);
  const rgb = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
  let pos = 0;
  rleRuns(counts).forEach((n, i) => {
    if (i % 2) {
      for (let q = pos; q < pos + n; q++) {
        const x = Math.floor(q / height), y = q - x * height;
        const o = (Math.floor(y / scale) * cw + Math.floor(x / scale)) * 4;
        image.data[o] = rgb[0]; image.data[o + 1] = rgb[1]; image.data[o + 2] = rgb[2]; image.data[o + 3] = alpha;
      }
    }
    pos += n;
  });
  context.putImageData(image, 0, 0);
  return h("image", { href: canvas.toDataURL(), x: 0, y: 0, width, height, preserveAspectRatio: "none", class: "mask" });
}

// An object's keypoints: the skeleton's lines between points that are there, and the points.
function keypointMarks(points, skeleton, colour, stroke, predicted) {
  const there = (p) => p && (predicted || (p.visibility || 0) > 0);
  const g = h("g", { class: "keypoints" });
  for (const [a, b] of skeleton || []) {
    if (there(points[a]) && there(points[b])) {
      g.append(h("line", { x1: points[a].x || 0, y1: points[a].y || 0, x2: points[b].x || 0, y2: points[b].y || 0,
        stroke: colour, "stroke-width": stroke }));
    }
  }
  points.forEach((p, i) => {
    if (!there(p)) return;
    g.append(h("circle", { cx: p.x || 0, cy: p.y || 0, r: stroke * 1.8, fill: !predicted && (p.visibility || 0) === 1 ? "#fff" : colour,
      stroke: colour, "stroke-width": stroke, dataset: { keypoint: i } }));
  });
  return g;
}

// A thumbnail with its objects drawn over it: labels solid blue, predictions dashed vermilion; masks
// as translucent fills, keypoints as points joined by their class's skeleton (hidden points hollow).
// objects: {labels: [{class_id, box, object_id, mask, keypoints}], predictions: [{class_id, box, score, ...}]}
// keypoints: the project's keypoint classes (projectInfo().keypoints), for their skeletons.
// classColour: a segmentation project's colour of each class (projectInfo().classColour): objects are then class
// regions of a map, drawn as fills in their class's colour without a box.
export function thumbnail(project, dataset, frameId, opts = {}) {
  const { caption, href, objects, width, height, className, size = "thumb", selectable, keypoints, classColour } = opts;
  const img = h("img", { src: mediaUrl(project, dataset, frameId, size), alt: `frame ${frameId}`, loading: "lazy", decoding: "async" });
  const frame = h("div", { class: "thumb-image" }, img);
  // a full-size image's box takes the image's proportions, so the drawing over it lies where its pixels are
  if (size === "full" && width && height) frame.style.aspectRatio = `${width} / ${height}`;
  if (objects && width && height) {
    const svg = h("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "xMidYMid meet", class: "boxes", "aria-hidden": "true" });
    const stroke = Math.max(1, Math.round(Math.max(width, height) / 160));
    const font = Math.max(8, Math.round(Math.max(width, height) / 22));
    for (const [kind, list] of [["label", objects.labels || []], ["prediction", objects.predictions || []]]) {
      for (const o of list) {
        const b = o.box || {};
        const x = b.x || 0, y = b.y || 0, w = b.width || 0, hgt = b.height || 0;
        const colour = kind === "label" ? LABEL_COLOUR : PREDICTION_COLOUR;
        const g = h("g", { class: `box ${kind}` });
        if (classColour) {
          if (o.mask) g.append(maskImage(o.mask, width, height, classColour(o.class_id || 0), 150));
          g.dataset.classId = o.class_id || 0;
          svg.append(g);
          continue;
        }
        if (o.mask) g.append(maskImage(o.mask, width, height, colour));
        if ((o.keypoints || []).length) {
          const skeleton = keypoints?.get(o.class_id || 0)?.skeleton;
          g.append(keypointMarks(o.keypoints, skeleton, colour, stroke, kind === "prediction"));
        }
        g.append(h("rect", { x, y, width: w, height: hgt, fill: "none", stroke: colour, "stroke-width": stroke,
          "stroke-dasharray": kind === "prediction" ? `${stroke * 3} ${stroke * 2}` : null }));
        const text = `${className ? className(o.class_id ?? 0) : o.class_id}${o.score !== undefined ? " " + Number(o.score).toFixed(2) : ""}`;
        g.append(h("text", { x: x + stroke, y: kind === "label" ? Math.max(font, y - stroke) : y + hgt - stroke, fill: colour,
          "font-size": font, "paint-order": "stroke", stroke: "#fff", "stroke-width": Math.max(1, font / 6) }, text));
        svg.append(g);
      }
    }
    frame.append(svg);
  }
  const fig = h("figure", { class: "thumb", dataset: { frameId, dataset } }, frame, caption ? h("figcaption", {}, caption) : null);
  if (selectable) {
    const box = h("input", { type: "checkbox", class: "select", "aria-label": `select ${frameId}` });
    fig.prepend(box);
  }
  if (href) {
    const link = h("a", { href, class: "thumb-link" }, fig);
    return link;
  }
  return fig;
}

// Objects of a QueryDatapoints row (include_objects) in the shape thumbnail() draws.
export function objectsOf(dp) {
  if (!dp.label_objects && !dp.predicted_objects) return null;
  return { labels: dp.label_objects || [], predictions: dp.predicted_objects || [] };
}

export function link(href, text, attrs = {}) {
  return h("a", { href, ...attrs }, text);
}

export function time(ts) {
  if (!ts) return "–";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? ts : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function enumName(value, prefix) {
  if (!value) return "–";
  return String(value).replace(prefix, "").toLowerCase().replaceAll("_", " ");
}

// An <select> of options [{value, label}] with the current value chosen.
export function select(name, options, value, onchange, label) {
  const sel = h("select", { name, id: `sel-${name}`, onchange: (e) => onchange(e.target.value) },
    options.map((o) => h("option", { value: o.value, selected: o.value === value ? true : null }, o.label)));
  return label ? h("label", { class: "field" }, h("span", {}, label), sel) : sel;
}

// Builds a hash URL from a path and query parameters (empty ones dropped).
export function href(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return `#${path}${s ? "?" + s : ""}`;
}
