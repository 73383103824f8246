// Sign in with an API key. The key goes to the console's server once and lives in an HttpOnly
// cookie from then on; this page never stores it.
import { session } from "../api.js";
import { forgetProjects, h } from "../ui.js";

export async function render(main, ctx) {
  const message = sessionStorage.getItem("shoal-signin-message");
  sessionStorage.removeItem("shoal-signin-message");
  const error = h("p", { class: "error", role: "alert", id: "signin-error", hidden: !message }, message || "");
  const input = h("input", { type: "password", id: "api-key", name: "api_key", autocomplete: "off", spellcheck: "false",
    placeholder: "shoal_…", required: true, "aria-describedby": "signin-help" });
  const form = h("form", { class: "card signin", id: "signin-form" },
    h("h1", {}, "Sign in"),
    h("label", { for: "api-key" }, "API key"),
    input,
    h("p", { id: "signin-help", class: "muted" }, "A key from `shoal keys create`. It is kept in a cookie this page cannot read, and sent only to this server."),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    try {
      const s = await session.signIn(input.value);
      input.value = "";
      forgetProjects();
      ctx.setSession(s);
      ctx.navigate("#/projects");
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      input.focus();
    }
  });
  main.replaceChildren(form);
  input.focus();
}
