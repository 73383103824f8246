// The console's calls to its server: the gRPC API as JSON, the session, job events.

export class ApiError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || "";
    this.field = body.field || "";
    this.service = body.service || "";
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

// Every request but GET carries the CSRF token of the cookie (double submit). An AbortSignal
// cancels the request (a stale viewport, a page left).
async function send(method, url, body, signal) {
  const headers = { "X-CSRF-Token": cookie("shoal_csrf") };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { error: "the console's server cannot be reached; check your connection", code: "UNAVAILABLE" });
  }
  let data = {};
  try {
    data = await resp.json();
  } catch (err) {
    data = { error: `the console's server answered HTTP ${resp.status}` };
  }
  if (!resp.ok) {
    const error = new ApiError(resp.status, data);
    if (resp.status === 401 && url !== "/api/session") {
      window.dispatchEvent(new CustomEvent("shoal:signed-out", { detail: error.message }));
    }
    throw error;
  }
  return data;
}

export function rpc(service, method, request = {}, options = {}) {
  return send("POST", `/api/rpc/${service}/${method}`, request, options.signal);
}

export const session = {
  get: () => send("GET", "/api/session"),
  signIn: (apiKey) => send("POST", "/api/session", { api_key: apiKey }),
  signOut: () => send("DELETE", "/api/session"),
};

// Follows a job until it finishes: onJob(job) on every change; resolves with the last state.
// An AbortSignal stops following (the page was left); the promise then resolves with the last state.
export function followJob(service, project, jobId, onJob, signal) {
  return new Promise((resolve, reject) => {
    const url = `/api/jobs/${service}/${encodeURIComponent(project)}/${encodeURIComponent(jobId)}/events`;
    const source = new EventSource(url);
    let last = null;
    if (signal) signal.addEventListener("abort", () => { source.close(); resolve(last); });
    source.addEventListener("job", (ev) => {
      last = JSON.parse(ev.data);
      if (onJob) onJob(last);
    });
    source.addEventListener("end", () => {
      source.close();
      resolve(last);
    });
    source.addEventListener("error", (ev) => {
      source.close();
      if (ev.data) reject(new ApiError(500, JSON.parse(ev.data)));
      else if (last && ["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"].includes(last.state)) resolve(last);
      else reject(new ApiError(0, { error: "lost the job's progress stream; reload to follow it again" }));
    });
  });
}

export function mediaUrl(project, dataset, frameId, size = "thumb") {
  const enc = encodeURIComponent;
  return `/media/${enc(project)}/${enc(dataset)}/${enc(frameId)}?size=${size}`;
}

// Reads every page of a List*/Query* call (for small lists: projects, datasets, sets).
export async function all(service, method, request, field, maxItems = 5000) {
  const out = [];
  let token = "";
  do {
    const resp = await rpc(service, method, { ...request, page: { page_size: 1000, page_token: token } });
    out.push(...(resp[field] || []));
    token = (resp.page && resp.page.next_page_token) || "";
  } while (token && out.length < maxItems);
  return out;
}

// Sends frames to labeling (source: {segment} or {frames: {dataset, frame_ids}}): through the labeling
// bridge, or, when no labeling platform is set up (the bridge refuses direct sends), through the
// sampler's hand-off, which is recorded and waits for one. Resolves with {request_id, frames}.
export async function sendToLabeling(project, source, fields = {}) {
  try {
    const r = await rpc("labeling_bridge", "SendForLabeling", { project, ...source, requested_by: "console", ...fields });
    return { request_id: r.request.request_id, frames: Number(r.request.frames || 0) };
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 409 && err.field === "platform")) throw err;
    const r = await rpc("sampler", "RequestLabeling", { project, ...source, requested_by: "console", ...fields });
    return { request_id: r.request_id, frames: Number(r.frames || 0) };
  }
}
