// Standing campaigns, a tab of the campaigns page: the project's campaigns that watch an unlabeled pool and keep
// the arriving frames like their seeds (state, rule, kept of budget, what was judged and dropped, refreshed while
// one is filling), a form that starts one whose refused fields show the service's message beside them, and one
// campaign: its rule and counts, a Stop button while it fills, its kept frames a page at a time, its segment sent
// to labeling.
import { all, rpc, sendToLabeling } from "../api.js";
import { clearFieldErrors, enumName, fmt, h, href, numberOr, showError, showFieldError, thumbnail, time } from "../ui.js";

const FILLING = "STANDING_CAMPAIGN_STATE_FILLING";
const PAGE_SIZE = 60;
// how often a filling campaign is read again while the page shows it
const REFRESH_MS = 2500;
const RETENTION_UNITS = [["seconds", 1], ["minutes", 60], ["hours", 3600], ["days", 86400]];
const num = (v) => (v === undefined || v === null ? 0 : Number(v));
const enc = encodeURIComponent;

function pill(state) {
  const name = enumName(state, "STANDING_CAMPAIGN_STATE_");
  return h("span", { class: `pill ${name}` }, name);
}

// The rule in words: the threshold, and the diversity rule (negative: off).
function ruleText(c) {
  const d = num(c.min_distance);
  return `similarity ≥ ${num(c.similarity_threshold)}${d > 0 ? ` · min distance ${d}` : " · no min distance"}`;
}

function retentionText(c) {
  if (c.retention_seconds === undefined || c.retention_seconds === null) return "dropped frames keep their vectors";
  const s = num(c.retention_seconds);
  const [unit, size] = [...RETENTION_UNITS].reverse().find(([, n]) => s >= n && s % n === 0) || ["seconds", 1];
  return `vectors of dropped frames deleted after ${fmt(s / size)} ${s / size === 1 ? unit.slice(0, -1) : unit}`;
}

function valueText(v = {}) {
  if (v.string_value !== undefined) return `“${v.string_value}”`;
  if (v.number_value !== undefined) return String(v.number_value);
  if (v.bool_value !== undefined) return String(v.bool_value);
  if (v.timestamp_value !== undefined) return time(v.timestamp_value);
  return "–";
}

function filterText(f) {
  const conditions = (f && f.all) || [];
  if (!conditions.length) return "every frame";
  return conditions.map((c) => {
    let op;
    if (c.equals) op = `= ${valueText(c.equals)}`;
    else if (c.in) op = `in ${(c.in.values || []).map(valueText).join(", ")}`;
    else if (c.range) {
      const r = c.range;
      op = [r.min ? `${r.min_exclusive ? ">" : "≥"} ${valueText(r.min)}` : "", r.max ? `${r.max_exclusive ? "<" : "≤"} ${valueText(r.max)}` : ""]
        .filter(Boolean).join(" and ");
    } else op = c.exists === false ? "is absent" : "is present";
    return `${c.negate ? "not " : ""}${c.field} ${op}`;
  }).join("; ");
}

function keptBar(c) {
  const budget = num(c.budget);
  const pc = budget ? Math.min(100, Math.round((num(c.kept) / budget) * 100)) : 0;
  const bar = h("span", {});
  bar.style.width = `${pc}%`;
  return h("div", { class: "standing-kept" },
    h("span", { class: "kept-text" }, `${fmt(num(c.kept))} of ${fmt(budget)}`),
    h("div", { class: "progress", role: "progressbar", "aria-label": `${c.name}: kept of budget`, "aria-valuemin": "0",
      "aria-valuemax": "100", "aria-valuenow": String(pc) }, bar));
}

function droppedText(c) {
  return `${fmt(num(c.filtered))} filtered · ${fmt(num(c.below_threshold))} below threshold · ${fmt(num(c.near_kept))} near kept`;
}

// Calls fn every REFRESH_MS while the page is current and fn answers true (something still fills).
function refresher(ctx, timers, fn) {
  let pending = null;
  const tick = async () => {
    pending = null;
    if (!ctx.isCurrent()) return;
    let again = true;
    if (document.visibilityState !== "hidden") {
      try {
        again = await fn();
      } catch (err) {
        again = true; // a failed read is tried again at the next tick
      }
    }
    if (again && ctx.isCurrent()) schedule();
  };
  const schedule = () => {
    if (pending) return;
    pending = setTimeout(() => { timers.delete(pending); tick(); }, REFRESH_MS);
    timers.add(pending);
  };
  return schedule;
}

// -- the list and the form ------------------------------------------------------------------------------
export async function renderStandingList(main, ctx, info, timers, header) {
  const { project } = ctx;
  const base = `/p/${enc(project)}/campaigns`;
  const [segments, first] = await Promise.all([
    all("analysis", "ListSegments", { project }, "segments", 2000),
    all("sampler", "ListStandingCampaigns", { project }, "campaigns", 1000),
  ]);
  let campaigns = first;
  const pools = info.datasets.filter((d) => d.kind === "DATASET_KIND_UNLABELED_POOL");
  const spaces = (info.project.embedding_spaces || [])
    .filter((s) => s.metric === "DISTANCE_METRIC_COSINE" && s.level === "EMBEDDING_LEVEL_FRAME");
  const wanted = ctx.query.get("seed_segment") || ctx.query.get("segment");
  const seeds = segments.filter((s) => !campaigns.some((c) => c.name === s.name)); // a campaign's own segment grows

  // -- the list -------------------------------------------------------------------------------------------
  const listBox = h("div", { id: "standing-list-box" });
  function row(c) {
    return h("tr", { dataset: { name: c.name, state: c.state || "", kept: String(num(c.kept)), judged: String(num(c.judged)) } },
      h("td", {}, h("a", { href: href(base, { standing: c.name }), class: "standing-name" }, c.name),
        c.seed_segment ? h("div", { class: "muted" }, `seeds: ${c.seed_segment}`) : null),
      h("td", { class: "state" }, pill(c.state)),
      h("td", {}, c.pool_dataset, h("div", { class: "muted" }, c.embedding_space)),
      h("td", { class: "rule" }, ruleText(c)),
      h("td", { class: "kept" }, keptBar(c)),
      h("td", { class: "num judged" }, fmt(num(c.judged))),
      h("td", { class: "dropped" }, droppedText(c)),
      h("td", { class: "num vectors-deleted" }, fmt(num(c.vectors_deleted))),
      h("td", {}, time(c.start_time)));
  }
  function drawList() {
    listBox.replaceChildren(campaigns.length
      ? h("table", { class: "data", id: "standing-list" },
        h("thead", {}, h("tr", {}, ["Campaign", "State", "Pool / space", "Rule", "Kept", "Judged", "Dropped", "Vectors deleted", "Started"]
          .map((t) => h("th", { scope: "col", class: t === "Judged" || t === "Vectors deleted" ? "num" : null }, t)))),
        h("tbody", {}, campaigns.map(row)))
      : h("p", { class: "muted", id: "standing-list-empty" }, "No standing campaign yet: start one below."));
    listBox.dataset.filling = String(campaigns.filter((c) => c.state === FILLING).length);
  }
  const refresh = refresher(ctx, timers, async () => {
    campaigns = await all("sampler", "ListStandingCampaigns", { project }, "campaigns", 1000);
    if (!ctx.isCurrent()) return false;
    drawList();
    return campaigns.some((c) => c.state === FILLING);
  });

  // -- the form -------------------------------------------------------------------------------------------
  const form = h("form", { class: "card standing-form", id: "standing-form", novalidate: true,
    onsubmit: (e) => { e.preventDefault(); start(); } });
  const formMessage = h("p", { id: "standing-form-message", role: "status" });
  const options = (list, label) => list.map((x) => h("option", { value: x.name }, label(x)));
  const inputs = {
    name: h("input", { id: "standing-name", name: "name", autocomplete: "off", spellcheck: "false", maxlength: "63",
      pattern: "[a-z0-9][a-z0-9_.\\-]{0,62}", placeholder: "more-fog-dogs" }),
    pool: h("select", { id: "standing-pool", name: "pool_dataset" }, options(pools, (d) => d.name)),
    space: h("select", { id: "standing-space", name: "embedding_space" },
      options(spaces, (s) => `${s.name} (${s.model_name || "?"} ${s.model_version || ""})`)),
    seed: h("select", { id: "standing-seed", name: "seed_segment" },
      options(seeds, (s) => `${s.name} (${s.dataset}, ${fmt(num(s.size))} frames)`)),
    threshold: h("input", { id: "standing-threshold", name: "similarity_threshold", type: "number", step: "0.01", value: "0.85" }),
    minDistance: h("input", { id: "standing-min-distance", name: "min_distance", type: "number", step: "0.01", placeholder: "0.02" }),
    budget: h("input", { id: "standing-budget", name: "budget", type: "number", min: "1", step: "1", value: "500" }),
    retention: h("input", { id: "standing-retention", name: "retention", type: "number", min: "0", step: "any", placeholder: "keep" }),
    retentionUnit: h("select", { id: "standing-retention-unit", name: "retention_unit", "aria-label": "retention unit" },
      RETENTION_UNITS.map(([u]) => h("option", { value: u, selected: u === "days" ? true : null }, u))),
  };
  if (wanted && seeds.some((s) => s.name === wanted)) inputs.seed.value = wanted;
  inputs.name.value = defaultName(inputs.seed.value);
  inputs.seed.addEventListener("change", () => { inputs.name.value = defaultName(inputs.seed.value); });

  // A labelled field whose errors are shown beside it: `path` is the field as the service names it.
  function field(label, input, path, extra) {
    return h("label", { class: "field", dataset: { field: path } }, h("span", {}, label), input, extra || null,
      h("span", { class: "field-error", role: "alert", hidden: true }));
  }
  const submit = h("button", { type: "submit", class: "primary", id: "start-standing", disabled: !pools.length || !spaces.length },
    "Start the standing campaign");
  form.append(...[h("h2", {}, "New standing campaign"),
    h("p", { class: "muted" }, "Watches a pool as frames arrive and keeps each one as similar to a seed as the threshold asks, until the budget is kept."),
    pools.length ? null : h("p", { class: "error" }, "This project has no unlabeled pool: a standing campaign watches one."),
    spaces.length ? null : h("p", { class: "error" }, "This project has no frame-level cosine embedding space: standing campaigns compare frames by cosine."),
    h("div", { class: "toolbar" },
      field("Name (and segment)", inputs.name, "name"),
      field("Pool", inputs.pool, "pool_dataset"),
      field("Embedding space", inputs.space, "embedding_space"),
      field("Seed segment", inputs.seed, "seed_segment")),
    h("div", { class: "toolbar" },
      field("Similarity threshold", inputs.threshold, "similarity_threshold", h("span", { class: "muted help" }, "cosine, in (0, 1]")),
      field("Min distance", inputs.minDistance, "min_distance", h("span", { class: "muted help" }, "to kept frames; empty: 0.02, negative: off")),
      field("Budget (frames)", inputs.budget, "budget"),
      field("Retention of dropped vectors", h("span", { class: "retention" }, inputs.retention, " ", inputs.retentionUnit), "retention_seconds",
        h("span", { class: "muted help" }, "empty: keep them"))),
    h("p", {}, submit, " ", formMessage),
  ].filter(Boolean));

  const clearErrors = () => clearFieldErrors(form, formMessage);

  const fieldError = (err) => showFieldError(form, formMessage, err, { path: String(err.field || "").replace(/^seed_frames\b.*/, "seed_segment"), notDone: "Not started" });

  async function start() {
    clearErrors();
    formMessage.textContent = "Starting…";
    formMessage.className = "muted";
    submit.disabled = true;
    const retention = numberOr(inputs.retention.value);
    const unit = (RETENTION_UNITS.find(([u]) => u === inputs.retentionUnit.value) || RETENTION_UNITS[0])[1];
    try {
      const r = await rpc("sampler", "StartStandingCampaign", {
        project, name: inputs.name.value.trim(), pool_dataset: inputs.pool.value, embedding_space: inputs.space.value,
        seed_segment: inputs.seed.value, similarity_threshold: numberOr(inputs.threshold.value),
        min_distance: numberOr(inputs.minDistance.value), budget: numberOr(inputs.budget.value),
        retention_seconds: retention === undefined ? undefined : retention * unit,
      });
      const c = r.campaign;
      campaigns = [...campaigns.filter((x) => x.name !== c.name), c].sort((a, b) => a.name.localeCompare(b.name));
      drawList();
      formMessage.replaceChildren(`Started `, h("a", { href: href(base, { standing: c.name }) }, c.name),
        `: it keeps what arrives in ${c.pool_dataset} from now on.`);
      formMessage.className = "ok";
      inputs.name.value = defaultName(inputs.seed.value);
      if (c.state === FILLING) refresh();
    } catch (err) {
      fieldError(err);
    } finally {
      submit.disabled = !pools.length || !spaces.length;
    }
  }

  drawList();
  main.replaceChildren(header,
    h("p", { class: "muted" }, "A standing campaign judges each frame that arrives in its pool once, keeps it when it is like a seed and unlike what it kept, and adds it to a segment of its name."),
    h("h2", {}, "Standing campaigns of this project"), listBox, form);
  if (campaigns.some((c) => c.state === FILLING)) refresh();
}

function defaultName(seed) {
  const stamp = new Date().toISOString().slice(0, 16).replace(/[-:T]/g, "");
  return `${seed ? seed.slice(0, 40) + "-standing" : "standing"}-${stamp}`.toLowerCase().replace(/[^a-z0-9_.-]/g, "-");
}

// -- one campaign -----------------------------------------------------------------------------------------
export async function renderStanding(main, ctx, info, name, timers) {
  const { project } = ctx;
  const base = `/p/${enc(project)}/campaigns`;
  const tokens = [""]; // the page tokens of the pages seen, the first page's empty
  let at = 0;
  let r = await read();
  let c = r.campaign;

  function read() {
    return rpc("sampler", "GetStandingCampaign", { project, name, page: { page_size: PAGE_SIZE, page_token: tokens[at] } });
  }
  const frameHref = (dataset, fid) => href(`/p/${enc(project)}/frame/${enc(dataset)}/${enc(fid)}`);

  const heading = h("h1", {}, `Standing campaign ${name}`);
  const facts = h("div", { id: "standing-facts" });
  const controls = h("div", { class: "standing-controls", id: "standing-controls" });
  const gallery = h("div", { class: "grid campaign-grid", id: "standing-kept" });
  const pager = h("div", { class: "standing-pager", id: "standing-pager" });
  const sendMessage = h("span", { id: "standing-send-message", role: "status" });

  function drawFacts() {
    const segmentLink = h("a", { href: href(`/p/${enc(project)}/examples`, { dataset: c.pool_dataset, segment: c.segment }) }, c.segment);
    const rows = [
      ["State", h("span", { id: "standing-state", dataset: { state: c.state || "" } }, pill(c.state))],
      ["Kept", keptBar(c)],
      ["Judged", h("span", { id: "standing-judged" }, fmt(num(c.judged)))],
      ["Dropped", h("span", { id: "standing-dropped" }, droppedText(c))],
      ["Vectors deleted", h("span", { id: "standing-vectors-deleted" }, fmt(num(c.vectors_deleted)))],
      ["Pool", `${c.pool_dataset} in the ${c.embedding_space} space`],
      ["Seeds", `${fmt(num(c.seeds))} frames${c.seed_segment ? ` of ${c.seed_segment}` : ""}` +
        (c.seed_embedding_space && c.seed_embedding_space !== c.embedding_space ? ` (vectors of ${c.seed_embedding_space})` : "")],
      ["Rule", ruleText(c)],
      ["Filter", filterText(c.filter)],
      ["Retention", retentionText(c)],
      ["Sample segment", segmentLink],
      ["Started", time(c.start_time)],
      ["Updated", time(c.update_time)],
    ];
    Object.assign(facts.dataset, { state: c.state || "", kept: String(num(c.kept)), judged: String(num(c.judged)) });
    facts.replaceChildren(h("table", { class: "data campaign-facts standing-facts" }, h("tbody", {},
      rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))))));
  }

  function drawControls() {
    const send = h("button", { type: "button", id: "standing-send", disabled: !num(c.kept), onclick: async () => {
      send.disabled = true;
      sendMessage.textContent = "Sending…";
      sendMessage.className = "muted";
      try {
        const req = await sendToLabeling(project, { segment: c.segment }, { reason: `kept by standing campaign ${c.name}` });
        sendMessage.textContent = `request ${req.request_id} recorded (${fmt(req.frames)} frames)`;
        sendMessage.className = "ok";
      } catch (err) {
        sendMessage.textContent = err.message;
        sendMessage.className = "error-text";
      } finally {
        send.disabled = false;
      }
    } }, `Send the ${fmt(num(c.kept))} kept frame${num(c.kept) === 1 ? "" : "s"} to labeling`);
    const parts = [send, " ", sendMessage];
    if (c.state === FILLING) parts.unshift(h("button", { type: "button", class: "danger", id: "standing-stop", onclick: confirmStop }, "Stop"), " ");
    controls.replaceChildren(...parts);
  }

  function confirmStop() {
    const message = h("span", { class: "error-text", role: "status" });
    const yes = h("button", { type: "button", class: "danger", id: "standing-stop-confirm", onclick: async () => {
      yes.disabled = true;
      try {
        c = (await rpc("sampler", "StopStandingCampaign", { project, name })).campaign;
        drawFacts();
        drawControls();
      } catch (err) {
        yes.disabled = false;
        message.textContent = err.message;
      }
    } }, "Stop it");
    const no = h("button", { type: "button", id: "standing-stop-cancel", onclick: drawControls }, "Keep filling");
    controls.replaceChildren(h("div", { class: "confirm", role: "group", "aria-label": `stop ${name}?` },
      h("span", {}, `Stop ${name}? It judges nothing more and keeps the ${fmt(num(c.kept))} frames it kept.`), " ", yes, " ", no, " ", message));
    yes.focus();
  }

  let shown = ""; // the ids the gallery shows, to redraw it only when they change
  function drawItems() {
    const items = r.items || [];
    const ids = items.map((it) => it.ref.frame_id).join("\n");
    if (ids !== shown || !items.length) {
      shown = ids;
      gallery.replaceChildren(...items.map((it) => {
        const fid = it.ref.frame_id;
        const seed = it.nearest_seed || {};
        return h("div", { class: "pick standing-item", dataset: { frameId: fid, rank: String(it.rank) } },
          thumbnail(project, it.ref.dataset || c.pool_dataset, fid, { caption: `#${it.rank} ${fid}`, href: frameHref(it.ref.dataset || c.pool_dataset, fid) }),
          h("p", { class: "pick-detail muted" }, `sim ${num(it.similarity).toFixed(3)} to seed `,
            seed.frame_id ? h("a", { href: frameHref(seed.dataset, seed.frame_id), class: "nearest-seed" }, seed.frame_id) : "?",
            num(c.min_distance) > 0 && num(it.kept_distance) < 2 ? ` · ${num(it.kept_distance).toFixed(3)} from kept` : ""));
      }));
      if (!items.length) {
        gallery.replaceChildren(h("p", { class: "muted", id: "standing-kept-empty" },
          c.state === FILLING ? "No frame kept yet: frames arriving in the pool are judged as they come." : "The campaign kept no frame."));
      }
    }
    const total = num((r.page || {}).total_count) || num(c.kept);
    const next = (r.page && r.page.next_page_token) || "";
    const from = at * PAGE_SIZE + 1;
    const prev = h("button", { type: "button", id: "standing-prev", disabled: at === 0, onclick: () => go(at - 1) }, "← Previous");
    const more = h("button", { type: "button", id: "standing-next", disabled: !next, onclick: () => { tokens[at + 1] = next; go(at + 1); } }, "Next →");
    pager.hidden = at === 0 && !next;
    pager.replaceChildren(prev, " ",
      h("span", { id: "standing-page" }, items.length ? `kept frames ${fmt(from)}–${fmt(from + items.length - 1)} of ${fmt(total)}` : ""), " ", more);
  }

  async function go(page) {
    at = page;
    tokens.length = at + 1;
    try {
      r = await read();
      c = r.campaign;
      drawItems();
    } catch (err) {
      showError(gallery, err);
    }
  }

  main.replaceChildren(
    h("p", {}, h("a", { href: href(base, { view: "standing" }) }, "← Standing campaigns")),
    heading, facts, controls,
    h("h2", {}, "Kept frames"),
    h("p", { class: "muted" }, "In the order they were kept, each with its similarity to its nearest seed."),
    gallery, pager);
  drawFacts();
  drawControls();
  drawItems();

  const refresh = refresher(ctx, timers, async () => {
    const fresh = await read();
    if (!ctx.isCurrent()) return false;
    const changed = fresh.campaign.state !== c.state || num(fresh.campaign.kept) !== num(c.kept) || num(fresh.campaign.judged) !== num(c.judged)
      || num(fresh.campaign.vectors_deleted) !== num(c.vectors_deleted);
    r = fresh;
    c = r.campaign;
    if (changed) {
      drawFacts();
      drawItems();
      // a confirmation asked stays until it is answered, unless the campaign stopped filling meanwhile
      if (!controls.querySelector(".confirm") || c.state !== FILLING) drawControls();
    }
    return c.state === FILLING;
  });
  if (c.state === FILLING) refresh();
}
