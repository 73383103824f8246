// The projects the signed-in key may see.
import { all } from "../api.js";
import { enumName, h, time } from "../ui.js";

export async function render(main) {
  const projects = await all("ingest", "ListProjects", {}, "projects");
  const rows = projects.map((p) => h("tr", {},
    h("td", {}, h("a", { href: `#/p/${encodeURIComponent(p.name)}` }, p.display_name || p.name)),
    h("td", {}, p.name),
    h("td", {}, enumName(p.task_type, "TASK_TYPE_")),
    h("td", {}, String((p.classes || []).length)),
    h("td", {}, time(p.update_time || p.create_time))));
  main.replaceChildren(
    h("h1", {}, "Projects"),
    projects.length
      ? h("table", { class: "data", id: "projects" },
        h("thead", {}, h("tr", {}, ["Project", "Name", "Task", "Classes", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows))
      : h("p", { class: "muted", id: "no-projects" }, "This key may see no project yet. Create one with the SDK or `shoal` CLI, or ask for a key with access."));
}
