// One frame: the image with every label and prediction drawn, every label version with its
// provenance, the metadata, and the frame's nearest neighbours.
import { all, rpc } from "../api.js";
import { fmt, h, href, objectsOf, projectInfo, thumbnail, time } from "../ui.js";

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
      include_objects: info.detection || info.segmentation ? true : undefined,
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
      : v.class_id !== undefined ? info.className(v.class_id) : count((v.objects || []).length, "object")),
    h("td", {}, v.provenance?.source || "–"),
    h("td", {}, v.provenance?.author || "–"),
    h("td", {}, v.provenance?.reason || "–"),
    h("td", {}, time(v.provenance?.time))));

  const neighbours = h("div", { class: "grid", id: "neighbours" }, h("p", { class: "muted" }, "Looking for neighbours…"));
  const image = info.segmentation ? classMaps(project, dataset, frame, dp, info, inferenceSet)
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
    h("div", { class: "frame-view" },
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
