// The project's segments: what each holds and why, its frames in the grid, a campaign from it,
// or all of it sent to labeling.
import { all, sendToLabeling } from "../api.js";
import { enumName, fmt, h, href, time } from "../ui.js";

export async function render(main, ctx) {
  const { project } = ctx;
  const segments = await all("analysis", "ListSegments", { project }, "segments", 2000);
  const base = `/p/${encodeURIComponent(project)}`;
  const rows = segments.map((s) => {
    const status = h("span", { class: "send-status", role: "status" });
    const send = h("button", { type: "button", class: "send", onclick: async () => {
      send.disabled = true;
      status.textContent = "";
      try {
        const req = await sendToLabeling(project, { segment: s.name });
        status.textContent = `request ${req.request_id} recorded (${fmt(req.frames)} frames)`;
        status.className = "ok send-status";
      } catch (err) {
        status.textContent = err.message;
        status.className = "error send-status";
        send.disabled = false;
      }
    } }, "Send to labeling");
    return h("tr", { id: `segment-${s.name}` },
      h("td", {}, h("a", { href: href(`${base}/examples`, { dataset: s.dataset, segment: s.name }) }, s.name)),
      h("td", {}, s.dataset), h("td", {}, enumName(s.kind, "SEGMENT_KIND_")), h("td", { class: "num" }, fmt(Number(s.size || 0))),
      h("td", {}, s.reason || ""), h("td", {}, s.author || ""), h("td", {}, time(s.update_time || s.create_time)),
      h("td", {}, h("a", { href: href(`${base}/campaigns`, { segment: s.name }) }, "Campaign"), " ", send, " ", status));
  });
  main.replaceChildren(
    h("h1", {}, "Segments"),
    segments.length ? h("table", { class: "data", id: "segments" },
      h("thead", {}, h("tr", {}, ["Segment", "Dataset", "Kind", "Frames", "Reason", "Author", "Updated", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows))
      : h("p", { class: "muted", id: "no-segments" }, "No segment yet: select frames in the grid or lasso a region of the map, and save them."));
}
