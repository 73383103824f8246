// An audio clip: its waveform and spectrogram (computed by the console's server from the decoded clip),
// its labeled events (solid, above) and predicted events (dashed, below, with their scores) as intervals in
// their class's colour, shaded over the waveform and the spectrogram too, and a player whose position is
// the moving line. Choosing an interval (or a point of the waveform or spectrogram) plays from there.
import { h } from "./ui.js";

const enc = encodeURIComponent;
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function decode(b64, Type) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Type(bytes.buffer);
}

const seconds = (t) => `${Number(t || 0).toFixed(2)} s`;

// opts: {project, dataset, frame, dp, info, inferenceSet, start}: start, seconds, where the player begins
export function soundView(opts) {
  const { project, dataset, frame, dp, info, inferenceSet } = opts;
  const path = `${enc(project)}/${enc(dataset)}/${enc(frame)}`;
  const player = h("audio", { id: "player", controls: true, preload: "auto", src: `/clip/${path}` });
  const status = h("span", { class: "muted", id: "sound-status" }, "Loading the clip…");
  const root = h("div", { class: "sound-view", id: "sound-view" });
  const shown = { labels: true, predictions: Boolean(inferenceSet) };
  const toggle = (kind, text) => h("label", {}, h("input", { type: "checkbox", checked: shown[kind] ? true : null, id: `show-${kind}`,
    onchange: (e) => { shown[kind] = e.target.checked; root.classList.toggle(`hide-${kind}`, !e.target.checked); } }), ` ${text}`);
  if (!shown.predictions) root.classList.add("hide-predictions");
  const waveform = h("canvas", { id: "waveform", class: "waveform", role: "img", "aria-label": "waveform; choose a point to play from there" });
  const spectrogram = h("canvas", { id: "spectrogram", class: "spectrogram", role: "img",
    "aria-label": "spectrogram: time to the right, frequency up; choose a point to play from there" });
  const labelLane = h("div", { class: "event-lane labels", id: "label-lane", "aria-label": "labeled events" });
  const predictionLane = h("div", { class: "event-lane predictions", id: "prediction-lane", "aria-label": "predicted events" });
  const shades = h("div", { class: "event-shades", "aria-hidden": "true" });
  const playhead = h("div", { class: "playhead", id: "playhead", "aria-hidden": "true" });
  const tracks = h("div", { class: "sound-tracks", id: "sound-tracks" },
    labelLane, h("div", { class: "sound-canvases" }, waveform, spectrogram, shades), predictionLane, playhead);
  const time = h("span", { id: "player-time", class: "muted" }, "0.00 s");
  const axis = h("p", { class: "muted sound-axis", id: "sound-axis" });
  root.append(
    h("div", { class: "object-toggles scene-tools", id: "object-toggles" }, toggle("labels", "Labels"),
      inferenceSet ? toggle("predictions", "Predictions") : null, status),
    tracks, axis, h("div", { class: "player-row" }, player, time),
    h("p", { class: "legend" }, h("span", {}, h("span", { class: "swatch label" }), "labeled event (above)"),
      inferenceSet ? h("span", {}, h("span", { class: "swatch prediction" }), "predicted event (below, dashed)") : null,
      h("span", { class: "muted" }, "Choose an interval to play it.")));

  let duration = Number(dp.duration_seconds || 0);
  let sound = null;

  const seek = (t, play = true) => {
    player.currentTime = Math.max(0, Math.min(duration || t, t));
    moveHead();
    if (play) player.play().catch(() => { /* the browser may refuse to play without a gesture */ });
  };
  const place = (el, onset, offset) => {
    el.style.left = `${(100 * onset) / duration}%`;
    el.style.width = `${Math.max(0, (100 * (offset - onset)) / duration)}%`;
  };
  function intervals() {
    const lane = (root, list, kind) => root.replaceChildren(...list.map((e, i) => {
      const colour = info.classColour(e.class_id || 0);
      const name = info.className(e.class_id || 0);
      const text = kind === "prediction" ? `${name} ${Number(e.score || 0).toFixed(2)}` : name;
      const el = h("button", { type: "button", class: `event ${kind}`, id: `${kind}-event-${i}`,
        title: `${text}: ${seconds(e.onset)} – ${seconds(e.offset)}`,
        "aria-label": `${kind === "label" ? "labeled" : "predicted"} ${text} from ${seconds(e.onset)} to ${seconds(e.offset)}; play it`,
        dataset: { onset: String(e.onset || 0), offset: String(e.offset || 0), classId: String(e.class_id || 0) },
        onclick: () => seek(Number(e.onset || 0)) }, h("span", {}, text));
      el.style.borderColor = colour;
      el.style.setProperty("--event-colour", colour);
      place(el, Number(e.onset || 0), Number(e.offset || 0));
      const shade = h("div", { class: `shade ${kind}` });
      shade.style.backgroundColor = colour;
      place(shade, Number(e.onset || 0), Number(e.offset || 0));
      shades.append(shade);
      return el;
    }));
    shades.replaceChildren();
    lane(labelLane, dp.label_events || [], "label");
    lane(predictionLane, dp.predicted_events || [], "prediction");
  }

  function drawWaveform() {
    const dpr = window.devicePixelRatio || 1;
    const w = waveform.clientWidth, hgt = waveform.clientHeight;
    if (!w || !hgt || !sound) return;
    waveform.width = Math.round(w * dpr);
    waveform.height = Math.round(hgt * dpr);
    const ctx = waveform.getContext("2d");
    const W = waveform.width, H = waveform.height;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, W, H);
    ctx.fillStyle = "#c9ced4";
    ctx.fillRect(0, Math.floor(H / 2), W, 1);
    const lo = sound.wmin, hi = sound.wmax, n = lo.length;
    ctx.fillStyle = "#3d4752";
    for (let x = 0; x < W; x++) {
      const a = Math.floor((x * n) / W), b = Math.max(a + 1, Math.floor(((x + 1) * n) / W));
      let mn = 1, mx = -1;
      for (let i = a; i < b && i < n; i++) { if (lo[i] < mn) mn = lo[i]; if (hi[i] > mx) mx = hi[i]; }
      if (mx < mn) continue;
      const y0 = Math.round((1 - Math.min(1, mx)) * H / 2), y1 = Math.round((1 - Math.max(-1, mn)) * H / 2);
      ctx.fillRect(x, y0, 1, Math.max(1, y1 - y0));
    }
    waveform.dataset.drawn = "1";
  }

  function drawSpectrogram() {
    const dpr = window.devicePixelRatio || 1;
    const w = spectrogram.clientWidth, hgt = spectrogram.clientHeight;
    if (!w || !hgt || !sound) return;
    spectrogram.width = Math.round(w * dpr);
    spectrogram.height = Math.round(hgt * dpr);
    const { frames, bins, values } = sound.spec;
    const image = document.createElement("canvas");
    image.width = frames;
    image.height = bins;
    const ictx = image.getContext("2d");
    const data = ictx.createImageData(frames, bins);
    const px = data.data;
    const lut = [];
    for (let i = 0; i < 256; i++) {
      const x = (i / 255) * (VIRIDIS.length - 1);
      const k = Math.min(VIRIDIS.length - 2, Math.floor(x));
      lut.push(VIRIDIS[k].map((v, j) => Math.round(v + (VIRIDIS[k + 1][j] - v) * (x - k))));
    }
    for (let f = 0; f < frames; f++) {
      for (let b = 0; b < bins; b++) {
        const c = lut[values[f * bins + b]];
        const p = ((bins - 1 - b) * frames + f) * 4; // the highest frequency on top
        px[p] = c[0]; px[p + 1] = c[1]; px[p + 2] = c[2]; px[p + 3] = 255;
      }
    }
    ictx.putImageData(data, 0, 0);
    const ctx = spectrogram.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(image, 0, 0, spectrogram.width, spectrogram.height);
    spectrogram.dataset.drawn = "1";
  }

  function moveHead() {
    if (!duration) return;
    const t = player.currentTime || 0;
    playhead.style.left = `${(100 * Math.min(t, duration)) / duration}%`;
    playhead.dataset.time = String(t);
    time.textContent = `${seconds(t)} of ${seconds(duration)}`;
  }
  const follow = () => {
    moveHead();
    if (!player.paused && player.isConnected) requestAnimationFrame(follow);
  };
  player.addEventListener("play", () => requestAnimationFrame(follow));
  for (const ev of ["timeupdate", "seeked", "pause", "loadedmetadata"]) player.addEventListener(ev, moveHead);
  for (const canvas of [waveform, spectrogram]) {
    canvas.addEventListener("click", (e) => {
      if (!duration) return;
      const box = canvas.getBoundingClientRect();
      seek(((e.clientX - box.left) / box.width) * duration);
    });
  }
  new ResizeObserver(() => { drawWaveform(); drawSpectrogram(); }).observe(waveform);

  (async () => {
    try {
      const resp = await fetch(`/api/sound/${path}`, { credentials: "same-origin" });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) throw new Error(body.error || `HTTP ${resp.status}`);
      sound = {
        wmin: decode(body.waveform.min, Float32Array), wmax: decode(body.waveform.max, Float32Array),
        spec: { ...body.spectrogram, values: decode(body.spectrogram.values, Uint8Array) },
      };
      duration = Number(body.duration_seconds) || duration;
      status.textContent = `${seconds(duration)} at ${Number(body.sample_rate).toLocaleString("en")} Hz`;
      axis.textContent = `Time 0 – ${seconds(duration)} across; spectrogram 0 – ${(body.spectrogram.max_frequency / 1000).toFixed(1)} kHz up, ` +
        `${body.spectrogram.db_range} dB below its peak.`;
      tracks.dataset.duration = String(duration);
    } catch (err) {
      status.textContent = `The clip cannot be drawn: ${err.message}`;
      status.classList.add("error");
    }
    if (duration) {
      intervals();
      if (opts.start > 0) player.currentTime = Math.min(duration, opts.start); // opened at an interval
      moveHead();
    }
    drawWaveform();
    drawSpectrogram();
    root.dataset.ready = "1";
  })();
  return root;
}
