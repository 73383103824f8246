// The console's shell: hash routes to page modules, the project navigation, the signed-in key.
import { ApiError, session } from "./api.js";
import { banner, forgetProjects, h, showError } from "./ui.js";

// [pattern, module, title, in the project navigation]
const ROUTES = [
  ["/signin", "signin", "Sign in"],
  ["/projects", "projects", "Projects"],
  ["/p/:project", "overview", "Overview", true],
  ["/p/:project/performance", "performance", "Performance", true],
  ["/p/:project/examples", "examples", "Examples", true],
  ["/p/:project/frame/:dataset/:frame", "frame", "Frame"],
  ["/p/:project/issues", "issues", "Label issues", true],
  ["/p/:project/map", "map", "Map", true],
  ["/p/:project/findings", "findings", "Findings", true],
  ["/p/:project/campaigns", "campaigns", "Campaigns", true],
  ["/p/:project/automations", "automations", "Automations", true],
  ["/p/:project/segments", "segments", "Segments", true],
  ["/p/:project/jobs", "jobs", "Jobs", true],
];

function match(path) {
  const parts = path.split("/").filter(Boolean);
  for (const [pattern, module, title] of ROUTES) {
    const want = pattern.split("/").filter(Boolean);
    if (want.length !== parts.length) continue;
    const params = {};
    let ok = true;
    want.forEach((w, i) => {
      if (w.startsWith(":")) params[w.slice(1)] = decodeURIComponent(parts[i]);
      else if (w !== parts[i]) ok = false;
    });
    if (ok) return { module, title, params };
  }
  return null;
}

let signedIn = null; // {key_id, projects}
let cleanup = null;
let renderCount = 0;

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function renderNav(project, active) {
  const nav = document.getElementById("nav");
  nav.replaceChildren();
  if (project) {
    nav.append(h("span", { class: "project-name" }, project));
    for (const [pattern, module, title, inNav] of ROUTES) {
      if (!inNav) continue;
      const target = "#" + pattern.replace(":project", encodeURIComponent(project));
      nav.append(h("a", { href: target, class: module === active ? "active" : null, "aria-current": module === active ? "page" : null }, title));
    }
  }
  const who = document.getElementById("who");
  who.replaceChildren();
  if (signedIn) {
    who.append(
      h("span", { class: "muted" }, `key ${signedIn.key_id || "(dev)"}`),
      h("button", { type: "button", class: "link", id: "sign-out", onclick: signOut }, "Sign out"),
    );
  }
}

async function signOut() {
  try {
    await session.signOut();
  } finally {
    signedIn = null;
    forgetProjects();
    navigate("#/signin");
  }
}

async function route() {
  const count = ++renderCount;
  const raw = location.hash.replace(/^#/, "") || "/projects";
  const [path, queryString] = raw.split("?");
  const main = document.getElementById("main");
  banner("");
  if (cleanup) {
    try { cleanup(); } catch (err) { /* a page's cleanup must not stop the next page */ }
    cleanup = null;
  }
  if (signedIn === null && path !== "/signin") {
    try {
      const s = await session.get();
      if (s.signed_in) signedIn = s;
      else {
        if (s.error) sessionStorage.setItem("shoal-signin-message", s.error);
        return navigate("#/signin");
      }
    } catch (err) {
      renderNav(null);
      return showError(main, err);
    }
  }
  const found = match(path);
  if (!found) {
    renderNav(null);
    return showError(main, new ApiError(404, { error: `there is no page ${path}` }));
  }
  const project = found.params.project;
  renderNav(project, found.module);
  document.title = `${found.title}${project ? " · " + project : ""} · Shoal`;
  main.replaceChildren(h("p", { class: "muted loading" }, "Loading…"));
  try {
    const page = await import(`./pages/${found.module}.js`);
    if (count !== renderCount) return;
    const ctx = {
      project,
      params: found.params,
      query: new URLSearchParams(queryString || ""),
      navigate,
      session: signedIn,
      setSession: (s) => { signedIn = s; renderNav(project, found.module); },
      isCurrent: () => count === renderCount,
    };
    const result = await page.render(main, ctx);
    if (typeof result === "function") cleanup = result;
  } catch (err) {
    if (count !== renderCount) return;
    if (err instanceof ApiError && err.status === 401) return;
    showError(main, err);
  }
}

window.addEventListener("shoal:signed-out", (ev) => {
  signedIn = null;
  forgetProjects();
  sessionStorage.setItem("shoal-signin-message", ev.detail || "your session ended; sign in again");
  navigate("#/signin");
});
window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
