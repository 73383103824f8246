// A point-cloud frame seen from above (bird's-eye view): its points coloured by height or intensity, its
// labeled cuboids (solid) and predicted ones (dashed) as rotated rectangles in their class's colour with a
// tick from the centre to the front, and the camera images taken with it beside. Drawn in the ego frame
// (x forward, up on the screen; y left): cuboids given in a world frame are moved into it with the frame's
// ego pose. The wheel zooms about the pointer, dragging pans, a double click (or 0) resets the view.
import { mediaUrl } from "./api.js";
import { h } from "./ui.js";

const enc = encodeURIComponent;
const BACKGROUND = [16, 20, 24];
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
let LUT = null;
function lut() {
  if (LUT) return LUT;
  LUT = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (VIRIDIS.length - 1);
    const k = Math.min(VIRIDIS.length - 2, Math.floor(x));
    const f = x - k;
    for (let j = 0; j < 3; j++) LUT[i * 3 + j] = Math.round(VIRIDIS[k][j] + (VIRIDIS[k + 1][j] - VIRIDIS[k][j]) * f);
  }
  return LUT;
}

// The value at quantile q of a sample of a column of the points (4 floats a point).
function quantile(points, column, q) {
  const n = points.length / 4;
  if (!n) return 0;
  const step = Math.max(1, Math.floor(n / 20000));
  const sample = [];
  for (let i = 0; i < n; i += step) sample.push(points[i * 4 + column]);
  sample.sort((a, b) => a - b);
  return sample[Math.min(sample.length - 1, Math.max(0, Math.round(q * (sample.length - 1))))];
}

// Rotation matrix (row-major 3x3) of a unit quaternion.
function rotation(q) {
  const w = q.w || 0, x = q.x || 0, y = q.y || 0, z = q.z || 0;
  return [
    1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
    2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
    2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
  ];
}

// A cuboid in the ego frame: world cuboids are moved by the inverse of the ego pose (p_ego = Rᵀ (p − t)),
// their heading turned with it.
export function toEgo(c, dp) {
  const box = { x: c.x || 0, y: c.y || 0, z: c.z || 0, width: c.width || 0, length: c.length || 0, height: c.height || 0, yaw: c.yaw || 0 };
  if (dp.coordinate_frame !== "COORDINATE_FRAME_WORLD" || !dp.ego_pose) return box;
  const p = dp.ego_pose;
  const R = rotation(p.rotation || { w: 1 });
  const d = [box.x - (p.x || 0), box.y - (p.y || 0), box.z - (p.z || 0)];
  const inv = (v) => [R[0] * v[0] + R[3] * v[1] + R[6] * v[2], R[1] * v[0] + R[4] * v[1] + R[7] * v[2], R[2] * v[0] + R[5] * v[1] + R[8] * v[2]];
  const [x, y, z] = inv(d);
  const hd = inv([Math.cos(box.yaw), Math.sin(box.yaw), 0]);
  return { ...box, x, y, z, yaw: Math.atan2(hd[1], hd[0]) };
}

// The view: opts {project, dataset, frame, dp, info, inferenceSet}
export function sceneView(opts) {
  const { project, dataset, frame, dp, info, inferenceSet } = opts;
  const canvas = h("canvas", { id: "bev", class: "bev", tabindex: "0", role: "img",
    "aria-label": `point cloud of ${frame} seen from above, x forward (up); the wheel zooms, dragging pans, 0 resets` });
  const status = h("span", { class: "muted", id: "scene-status" }, "Loading the point cloud…");
  const state = { labels: true, predictions: Boolean(inferenceSet), colour: "height" };
  const toggle = (kind, text) => h("label", {}, h("input", { type: "checkbox", checked: state[kind] ? true : null, id: `show-${kind}`,
    onchange: (e) => { state[kind] = e.target.checked; schedule(); } }), ` ${text}`);
  const colourBy = h("select", { id: "colour-by", onchange: (e) => { state.colour = e.target.value; order = null; schedule(); } },
    h("option", { value: "height" }, "height"), h("option", { value: "intensity" }, "intensity"));
  const tools = h("div", { class: "scene-tools object-toggles", id: "object-toggles" },
    toggle("labels", "Labels"), inferenceSet ? toggle("predictions", "Predictions") : null,
    h("label", {}, "Colour by ", colourBy),
    h("button", { type: "button", id: "reset-view", onclick: () => { reset(); schedule(); } }, "Reset view"), status);
  const cameras = (dp.cameras || []).length ? h("div", { class: "scene-cameras", id: "scene-cameras" }, dp.cameras.map((c) => {
    const src = `${mediaUrl(project, dataset, frame, "full")}&camera=${enc(c.name)}`;
    return h("figure", { class: "camera", dataset: { camera: c.name } },
      h("a", { href: src, target: "_blank", rel: "noopener" }, h("img", { src, alt: `camera ${c.name}`, loading: "lazy", decoding: "async" })),
      h("figcaption", {}, c.name));
  })) : null;
  const legend = h("p", { class: "legend" }, h("span", {}, h("span", { class: "swatch label" }), "labeled cuboid"),
    inferenceSet ? h("span", {}, h("span", { class: "swatch prediction" }), "predicted cuboid (dashed)") : null,
    h("span", { class: "muted" }, dp.coordinate_frame === "COORDINATE_FRAME_WORLD"
      ? "Ego frame: world cuboids moved by the ego pose." : "Ego frame: x forward (up), y left."));
  const root = h("div", { class: "scene-view", id: "scene-view" }, tools, h("div", { class: "bev-wrap" }, canvas), legend, cameras);

  const boxes = [
    ...(dp.label_objects || []).filter((o) => o.cuboid).map((o) => ({ kind: "label", o, c: toEgo(o.cuboid, dp) })),
    ...(dp.predicted_objects || []).filter((o) => o.cuboid).map((o) => ({ kind: "prediction", o, c: toEgo(o.cuboid, dp) })),
  ];
  let points = new Float32Array(0);
  let order = null; // point indices by colour value, so the highest is drawn last
  let range = [0, 1];
  const view = { cx: 0, cy: 0, scale: 10 };
  let extent = 20;
  let pending = false;

  function reset() {
    view.cx = 0;
    view.cy = 0;
    const w = canvas.clientWidth || 600, hgt = canvas.clientHeight || 500;
    view.scale = Math.min(w, hgt) / (2 * extent);
  }
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }
  function prepare() {
    const column = state.colour === "intensity" ? 3 : 2;
    range = [quantile(points, column, 0.02), quantile(points, column, 0.98)];
    if (!(range[1] > range[0])) range = [range[0], range[0] + 1];
    const n = points.length / 4;
    const keys = new Float32Array(n);
    for (let i = 0; i < n; i++) keys[i] = points[i * 4 + column];
    order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => keys[a] - keys[b]);
  }
  function draw() {
    if (!canvas.isConnected) return;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, hgt = canvas.clientHeight;
    if (!w || !hgt) return;
    const W = Math.round(w * dpr), H = Math.round(hgt * dpr);
    if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(W, H);
    const px = image.data;
    for (let i = 0; i < px.length; i += 4) { px[i] = BACKGROUND[0]; px[i + 1] = BACKGROUND[1]; px[i + 2] = BACKGROUND[2]; px[i + 3] = 255; }
    if (points.length) {
      if (!order) prepare();
      const colours = lut();
      const column = state.colour === "intensity" ? 3 : 2;
      const s = view.scale * dpr, ox = W / 2, oy = H / 2;
      const dot = view.scale * dpr >= 24 ? 2 : 1; // bigger points when zoomed in far
      const lo = range[0], span = range[1] - range[0];
      for (let k = 0; k < order.length; k++) {
        const i = order[k] * 4;
        const col = Math.floor(ox - (points[i + 1] - view.cy) * s);
        const row = Math.floor(oy - (points[i] - view.cx) * s);
        if (col < 0 || row < 0 || col >= W || row >= H) continue;
        // the bright end of the scale: its darkest blues vanish on the dark background
        const t = 64 + Math.max(0, Math.min(191, Math.round(((points[i + column] - lo) / span) * 191)));
        for (let dy = 0; dy < dot && row + dy < H; dy++) {
          for (let dx = 0; dx < dot && col + dx < W; dx++) {
            const p = ((row + dy) * W + col + dx) * 4;
            px[p] = colours[t * 3]; px[p + 1] = colours[t * 3 + 1]; px[p + 2] = colours[t * 3 + 2];
          }
        }
      }
    }
    ctx.putImageData(image, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const screen = (x, y) => [w / 2 - (y - view.cy) * view.scale, hgt / 2 - (x - view.cx) * view.scale];
    for (const b of boxes) {
      if (!state[b.kind === "label" ? "labels" : "predictions"]) continue;
      const { x, y, width, length, yaw } = b.c;
      const f = [Math.cos(yaw), Math.sin(yaw)], l = [-Math.sin(yaw), Math.cos(yaw)];
      const corner = (a, c) => screen(x + f[0] * a * length / 2 + l[0] * c * width / 2, y + f[1] * a * length / 2 + l[1] * c * width / 2);
      const colour = info.classColour(b.o.class_id || 0);
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
      ctx.setLineDash(b.kind === "prediction" ? [6, 4] : []);
      ctx.beginPath();
      [corner(1, 1), corner(1, -1), corner(-1, -1), corner(-1, 1)].forEach(([sx, sy], i) => (i ? ctx.lineTo(sx, sy) : ctx.moveTo(sx, sy)));
      ctx.closePath();
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.beginPath(); // the heading: centre to the middle of the front face
      ctx.moveTo(...screen(x, y));
      ctx.lineTo(...screen(x + f[0] * length / 2, y + f[1] * length / 2));
      ctx.stroke();
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    canvas.dataset.view = JSON.stringify({ cx: view.cx, cy: view.cy, scale: view.scale, width: w, height: hgt, dpr });
    canvas.dataset.shown = [state.labels && "labels", state.predictions && "predictions"].filter(Boolean).join(",");
  }

  // -- pan and zoom --------------------------------------------------------------------------
  let drag = null;
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const box = canvas.getBoundingClientRect();
    const mx = e.clientX - box.left, my = e.clientY - box.top;
    const wx = view.cx + (canvas.clientHeight / 2 - my) / view.scale, wy = view.cy + (canvas.clientWidth / 2 - mx) / view.scale;
    view.scale = Math.max(0.2, Math.min(2000, view.scale * Math.exp(-e.deltaY * 0.0015)));
    view.cx = wx - (canvas.clientHeight / 2 - my) / view.scale; // the point under the pointer stays there
    view.cy = wy - (canvas.clientWidth / 2 - mx) / view.scale;
    schedule();
  }, { passive: false });
  canvas.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, cx: view.cx, cy: view.cy }; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    view.cx = drag.cx + (e.clientY - drag.y) / view.scale;
    view.cy = drag.cy + (e.clientX - drag.x) / view.scale;
    schedule();
  });
  canvas.addEventListener("pointerup", () => { drag = null; });
  canvas.addEventListener("dblclick", () => { reset(); schedule(); });
  canvas.addEventListener("keydown", (e) => {
    const step = 40 / view.scale;
    const moves = { ArrowUp: [step, 0], ArrowDown: [-step, 0], ArrowLeft: [0, step], ArrowRight: [0, -step] };
    if (moves[e.key]) { view.cx += moves[e.key][0]; view.cy += moves[e.key][1]; }
    else if (e.key === "+" || e.key === "=") view.scale *= 1.25;
    else if (e.key === "-") view.scale /= 1.25;
    else if (e.key === "0") reset();
    else return;
    e.preventDefault();
    schedule();
  });
  new ResizeObserver(() => schedule()).observe(canvas);

  (async () => {
    try {
      const resp = await fetch(`/api/points/${enc(project)}/${enc(dataset)}/${enc(frame)}`, { credentials: "same-origin" });
      if (!resp.ok) {
        let message = `HTTP ${resp.status}`;
        try { message = (await resp.json()).error || message; } catch (err) { /* not JSON */ }
        throw new Error(message);
      }
      points = new Float32Array(await resp.arrayBuffer());
      const total = Number(resp.headers.get("X-Shoal-Points-Total") || points.length / 4);
      const shown = points.length / 4;
      status.textContent = shown < total ? `${shown.toLocaleString("en")} of ${total.toLocaleString("en")} points (sampled)`
        : `${total.toLocaleString("en")} points`;
    } catch (err) {
      status.textContent = `The point cloud cannot be shown: ${err.message}`;
      status.classList.add("error");
    }
    // the view takes in most points and every cuboid
    let far = 1;
    const n = points.length / 4;
    if (n) {
      const r = new Float32Array(n);
      for (let i = 0; i < n; i++) r[i] = Math.hypot(points[i * 4], points[i * 4 + 1]);
      r.sort();
      far = r[Math.floor(0.98 * (n - 1))];
    }
    for (const b of boxes) far = Math.max(far, Math.hypot(b.c.x, b.c.y) + Math.max(b.c.length, b.c.width));
    extent = Math.max(5, far * 1.05);
    reset();
    draw();
    canvas.dataset.ready = "1";
  })();
  return root;
}
