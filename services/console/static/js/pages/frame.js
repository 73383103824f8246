// One frame: the image with every label and prediction drawn, every label version with its
// provenance, the metadata, and the frame's nearest neighbours.
import { all, rpc } from "../api.js";
import { fmt, h, href, objectsOf, projectInfo, thumbnail, time } from "../ui.js";
import { sceneView } from "../scene.js";
import { soundView } from "../sound.js";

const count = (n, what) => `${n} ${what}${n === 1 ? "" : "s"}`;

export async function render(main, ctx) {
  const { project } = ctx;
  const { dataset, frame } = ctx.params;
  const info = await projectInfo(project);
  const inferenceSet = ctx.query.get("inference_set") || "";
  const [found, versions] = await Promise.all([
    rpc("analysis", "QueryDatapoints", {
      project, dataset, inference_set: inferenceSet,
      filter: { all: [{ field: "frame_id", equals: { string_value: frame } }] },
      include_objects: info.detection || info.segmentation || info.cuboids || info.soundEvents ? true : undefined,
      page: { page_size: 1 },
    }),
    all("ingest", "ListLabelVersions", { project, dataset, frame_id: frame }, "versions", 200),
  ]);
  const dp = (found.datapoints || [])[0];
  if (!dp) {
    main.replaceChildren(h("h1", {}, frame), h("p", { class: "error" }, `There is no frame ${frame} in ${dataset}, or this key may not see it.`));
    return;
  }
  const facts = [
    ["Dataset", dataset], ["Split", dp.split || "–"], ["Media", dp.media_uri || "–"],
  ];
  const classSet = (ids) => (ids || []).map((c) => info.className(c)).join(", ") || "no class";
  if (info.multiLabel) {
    facts.push(["Classes", versions.length ? classSet(versions[0].class_ids) : "unlabeled"]);
  } else if (info.segmentation) {
    const present = new Set((dp.label_objects || []).map((o) => o.class_id || 0));
    facts.push(["Classes", [...present].map((c) => info.className(c)).join(", ") || "unlabeled"]);
  } else if (info.cuboids) {
    facts.push(["Coordinate frame", (dp.coordinate_frame || "COORDINATE_FRAME_EGO").replace("COORDINATE_FRAME_", "").toLowerCase()],
      ["Labeled cuboids", fmt((dp.label_objects || []).length)]);
    if (inferenceSet) facts.push(["Predicted cuboids", fmt((dp.predicted_objects || []).length)]);
  } else if (info.soundEvents) {
    facts.push(["Duration", dp.duration_seconds ? `${Number(dp.duration_seconds).toFixed(2)} s` : "–"],
      ["Sample rate", dp.sample_rate ? `${fmt(dp.sample_rate)} Hz` : "–"],
      ["Labeled events", fmt((dp.label_events || []).length)]);
    if (inferenceSet) facts.push(["Predicted events", fmt((dp.predicted_events || []).length)]);
  } else if (!info.detection) {
    facts.push(["Label", info.className(dp.label_class)]);
    if (inferenceSet) {
      facts.push(["Prediction", info.className(dp.predicted_class)], ["Confidence", fmt(dp.confidence)],
        ["Loss", fmt(dp.loss)], ["Margin", fmt(dp.margin)]);
    }
  }
  const meta = Object.entries(dp.metadata || {}).map(([k, v]) => [k, Object.values(v)[0]]);
  const probs = (dp.class_probabilities || []).map((p, i) => [info.classAt(i), p]).sort((a, b) => b[1] - a[1]).slice(0, 5);

  const versionRows = versions.map((v, i) => h("tr", {},
    h("td", {}, i === 0 ? h("strong", {}, "current") : ""),
    h("td", {}, info.multiLabel ? classSet(v.class_ids) : info.segmentation ? "class map"
      : info.soundEvents ? count((v.events || []).length, "event")
        : v.class_id !== undefined ? info.className(v.class_id) : count((v.objects || []).length, info.cuboids ? "cuboid" : "object")),
    h("td", {}, v.provenance?.source || "–"),
    h("td", {}, v.provenance?.author || "–"),
    h("td", {}, v.provenance?.reason || "–"),
    h("td", {}, time(v.provenance?.time))));

  const neighbours = h("div", { class: "grid", id: "neighbours" }, h("p", { class: "muted" }, "Looking for neighbours…"));
  const image = info.segmentation ? classMaps(project, dataset, frame, dp, info, inferenceSet)
    : info.cuboids ? sceneView({ project, dataset, frame, dp, info, inferenceSet })
    : info.soundEvents ? soundView({ project, dataset, frame, dp, info, inferenceSet, start: Number(ctx.query.get("t") || 0) })
    : thumbnail(project, dataset, frame, { size: "full", objects: objectsOf(dp), width: dp.width, height: dp.height,
      className: info.className, keypoints: info.keypoints });
  // labels and predictions are shown or hidden each on their own
  const shown = (kind, text) => h("label", {}, h("input", { type: "checkbox", checked: true, id: `show-${kind}s`,
    onchange: (e) => image.classList.toggle(`hide-${kind}s`, !e.target.checked) }), ` ${text}`);
  const toggles = info.detection ? h("p", { class: "object-toggles", id: "object-toggles" },
    shown("label", "Labels"), " ", inferenceSet ? shown("prediction", "Predictions") : null) : null;
  main.replaceChildren(...[
    h("p", {}, h("a", { href: href(`/p/${encodeURIComponent(project)}/examples`, { dataset, inference_set: inferenceSet }) }, "← Examples")),
    h("h1", {}, `Frame ${frame}`),
    h("div", { class: info.cuboids || info.soundEvents ? "frame-view wide" : "frame-view" },
      h("div", {}, image, toggles),
      h("div", {},
        h("table", { class: "data", id: "frame-facts" }, h("tbody", {}, facts.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))))),
        probs.length ? h("h2", {}, info.multiLabel ? "Top scores" : "Top probabilities") : null,
        probs.length ? h("table", { class: "data" }, h("tbody", {}, probs.map(([c, p]) => h("tr", {}, h("td", {}, info.className(c)), h("td", { class: "num" }, fmt(p)))))) : null,
        h("h2", {}, "Metadata"),
        meta.length ? h("table", { class: "data", id: "frame-metadata" }, h("tbody", {}, meta.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v)))))) : h("p", { class: "muted" }, "None."))),
    h("h2", {}, "Label versions"),
    versions.length
      ? h("table", { class: "data", id: "label-versions" },
        h("thead", {}, h("tr", {}, ["", "Label", "Source", "Author", "Reason", "Time"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, versionRows))
      : h("p", { class: "muted" }, "Unlabeled."),
    info.detection && dp.predicted_objects?.length ? h("h2", {}, "Predictions") : null,
    info.detection && dp.predicted_objects?.length ? h("table", { class: "data", id: "predictions" }, h("tbody", {},
      dp.predicted_objects.map((o) => h("tr", {}, h("td", {}, info.className(o.class_id)), h("td", { class: "num" }, fmt(o.score)),
        h("td", {}, `${fmt(o.box?.x, 1)}, ${fmt(o.box?.y, 1)}, ${fmt(o.box?.width, 1)} × ${fmt(o.box?.height, 1)}`))))) : null,
    info.cuboids ? cuboidTable(dp, info, inferenceSet) : null,
    info.soundEvents ? eventTable(dp, info, inferenceSet, image) : null,
    h("h2", {}, "Nearest neighbours"),
    neighbours,
  ].filter((x) => x !== null && x !== undefined && x !== false));
  loadNeighbours(project, dataset, frame, info, neighbours);
}

// A segmentation frame: its label map and its predicted map side by side, each class in its colour, with the key.
function classMaps(project, dataset, frame, dp, info, inferenceSet) {
  const one = (kind, list) => h("div", { class: "class-map", id: `map-${kind}` },
    h("h2", {}, kind === "labels" ? "Labels" : "Prediction"),
    thumbnail(project, dataset, frame, { size: "full", width: dp.width, height: dp.height, classColour: info.classColour,
      objects: kind === "labels" ? { labels: list } : { predictions: list } }));
  const present = new Set([...(dp.label_objects || []), ...(dp.predicted_objects || [])].map((o) => o.class_id || 0));
  const key = h("ul", { class: "class-key", id: "class-key" }, info.classes.filter((c) => present.has(c.id)).map((c) =>
    h("li", {}, swatch(info.classColour(c.id)), ` ${c.name}`)));
  return h("div", { class: "class-maps" }, one("labels", dp.label_objects || []),
    inferenceSet ? one("prediction", dp.predicted_objects || []) : null, key);
}

// The frame's cuboids, labeled then predicted: class, centre, size, heading and the rest.
function cuboidTable(dp, info, inferenceSet) {
  const rows = [...(dp.label_objects || []).map((o) => ["label", o]), ...(inferenceSet ? (dp.predicted_objects || []).map((o) => ["prediction", o]) : [])]
    .filter(([, o]) => o.cuboid);
  if (!rows.length) return null;
  const f = (v, d = 2) => Number(v || 0).toFixed(d);
  return h("section", {}, h("h2", {}, "Cuboids"), h("table", { class: "data", id: "cuboids" },
    h("thead", {}, h("tr", {}, ["", "Class", "Centre x, y, z (m)", "Width × length × height (m)", "Yaw (°)", "Score", "Points", "Attribute"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map(([kind, o]) => {
      const c = o.cuboid;
      return h("tr", { dataset: { kind, objectId: o.object_id || "" } },
        h("td", {}, h("span", { class: `swatch ${kind}` }), kind === "label" ? "labeled" : "predicted"),
        h("td", {}, swatch(info.classColour(o.class_id || 0)), ` ${info.className(o.class_id || 0)}`),
        h("td", { class: "num" }, `${f(c.x)}, ${f(c.y)}, ${f(c.z)}`),
        h("td", { class: "num" }, `${f(c.width)} × ${f(c.length)} × ${f(c.height)}`),
        h("td", { class: "num" }, f(((c.yaw || 0) * 180) / Math.PI, 1)),
        h("td", { class: "num" }, o.score !== undefined ? f(o.score) : "–"),
        h("td", { class: "num" }, c.num_points !== undefined ? fmt(c.num_points) : "–"),
        h("td", {}, c.attribute || "–"));
    }))));
}

// The clip's events, labeled then predicted; choosing one plays it.
function eventTable(dp, info, inferenceSet, view) {
  const rows = [...(dp.label_events || []).map((e, i) => ["label", e, i]),
    ...(inferenceSet ? (dp.predicted_events || []).map((e, i) => ["prediction", e, i]) : [])];
  if (!rows.length) return null;
  return h("section", {}, h("h2", {}, "Events"), h("table", { class: "data", id: "events" },
    h("thead", {}, h("tr", {}, ["", "Class", "Onset (s)", "Offset (s)", "Score", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map(([kind, e, i]) => h("tr", { dataset: { kind } },
      h("td", {}, h("span", { class: `swatch ${kind}` }), kind === "label" ? "labeled" : "predicted"),
      h("td", {}, swatch(info.classColour(e.class_id || 0)), ` ${info.className(e.class_id || 0)}`),
      h("td", { class: "num" }, Number(e.onset || 0).toFixed(2)), h("td", { class: "num" }, Number(e.offset || 0).toFixed(2)),
      h("td", { class: "num" }, kind === "prediction" ? Number(e.score || 0).toFixed(2) : "–"),
      h("td", {}, h("button", { type: "button", class: "link", onclick: () => view.querySelector(`#${kind}-event-${i}`)?.click() }, "Play")))))));
}

// A square of a colour (set through the style object: the console's content policy refuses inline style attributes).
function swatch(colour) {
  const el = h("span", { class: "swatch", dataset: { colour } });
  el.style.backgroundColor = colour;
  return el;
}

// Neighbours come from the similarity search of the project's first frame-level embedding space.
async function loadNeighbours(project, dataset, frame, info, root) {
  const space = (info.project.embedding_spaces || []).find((s) => s.level !== "EMBEDDING_LEVEL_OBJECT");
  if (!space) {
    root.replaceChildren(h("p", { class: "muted" }, "The project has no frame embedding space."));
    return;
  }
  try {
    const resp = await rpc("sampler", "SearchSimilar", {
      project, embedding_space: space.name, pool_dataset: dataset,
      seeds: [{ ref: { dataset, frame_id: frame } }], k: 13,
    });
    const items = (resp.items || []).filter((r) => (r.ref?.frame_id || r.frame_id) !== frame).slice(0, 12);
    root.replaceChildren(...items.map((r) => {
      const fid = r.ref?.frame_id || r.frame_id;
      const ds = r.ref?.dataset || dataset;
      return thumbnail(project, ds, fid, {
        caption: `${fid} · distance ${Number(r.distance || 0).toFixed(3)}`,
        href: href(`/p/${encodeURIComponent(project)}/frame/${encodeURIComponent(ds)}/${encodeURIComponent(fid)}`),
      });
    }));
    if (!items.length) root.replaceChildren(h("p", { class: "muted" }, "No neighbour found."));
  } catch (err) {
    root.replaceChildren(h("p", { class: "muted" }, `Neighbours unavailable: ${err.message}`));
  }
}
