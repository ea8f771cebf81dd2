// The editor, for a new job and for a replacement. As one types, the spec is checked by the
// API (`POST /v1/validate`: the 422 names the field, shown next to it) and the schedule is
// previewed (`GET /v1/schedule`). A replacement sends the version it was opened at, so the
// API refuses it (409) when someone saved the job in between.

import { call, get, jobPath, query, ApiError } from "./api.js";
import { h, fill, route } from "./dom.js";
import { slotsTable } from "./job.js";

// Quiet time after the last keystroke before the spec is checked.
const DEBOUNCE_MS = 250;
// Slots the editor previews.
const PREVIEW = 5;

// The form's fields: [name in the spec (the API's error names), label, input kind, help].
const FIELDS = [
  ["id", "id", "text", "A-Z a-z 0-9 _ . - (1-128)"],
  ["function.app", "app", "text", "the IronFunctions app"],
  ["function.path", "path", "text", "the route, starting with /"],
  ["function.image", "image", "text", "empty: the node's --default-image"],
  ["frequency", "schedule", "text", "crontab (5 or 6 fields), @daily, @every 90s"],
  ["timezone", "time zone", "text", "IANA name; empty is UTC"],
  ["catchup.policy", "catch-up", "select:all,latest,skip", "missed slots a new leader or a resume enqueues"],
  ["catchup.window", "catch-up window", "text", "how far back, at most 168h"],
  ["function.priority", "priority", "select:0,1,2", "2 is served first"],
  ["function.timeout", "timeout (s)", "number", "1-3600; empty: the platform's"],
  ["function.delay", "delay (s)", "number", "0-86400"],
  ["function.headers", "headers", "textarea", "one `Name: value` per line"],
  ["function.body", "body", "textarea", "the request body (at most 256 KiB)"],
  ["description", "description", "text", ""],
  ["tags", "tags", "text", "comma-separated"],
  ["paused", "paused", "checkbox", "create it paused"],
];

export async function render(main, ctx, params, id) {
  const editing = id !== undefined;
  const job = editing ? await get(jobPath(id)) : null;
  if (!ctx.current()) return;
  const inputs = {};
  const errors = {};
  const rows = FIELDS.map(([name, label, kind, help]) => {
    const input = makeInput(name, kind);
    inputs[name] = input;
    errors[name] = h("div", { class: "field-error", id: "err-" + name.replace(".", "-") });
    return h("div", { class: "field" },
      h("label", { for: input.id }, label),
      input,
      help ? h("small", { class: "muted" }, help) : null,
      errors[name]);
  });
  if (job) load(inputs, job);
  else inputs["catchup.window"].value = "1h";
  if (editing) inputs.id.readOnly = true;

  const general = h("div", { id: "form-error" });
  const slots = h("div", { id: "preview" });
  const submit = h("button", { type: "submit", class: "primary", id: "save" }, editing ? "Save" : "Create");
  const form = h("form", { id: "editor", class: "editor", novalidate: true },
    rows, general, h("div", { class: "actions" }, submit,
      h("a", { href: editing ? route("job", id) : "#/jobs", class: "button" }, "Cancel")));
  fill(main,
    h("h1", {}, editing ? ["Edit ", h("span", {}, id)] : "New job"),
    editing ? h("p", { class: "muted" }, `Opened at version ${job.version}; saving checks that nobody saved it since.`) : null,
    h("section", { class: "two" }, form, h("div", {}, h("h2", {}, "Schedule preview"), slots)));

  let timer = null;
  let checkNo = 0;
  const check = async () => {
    const mine = ++checkNo;
    const spec = collect(inputs);
    const [valid, preview] = await Promise.all([
      call("POST", "/v1/validate", spec).then(() => null, (e) => e),
      spec.frequency
        ? get("/v1/schedule" + query({ frequency: spec.frequency, tz: spec.timezone, n: PREVIEW })).catch((e) => ({ error: e }))
        : Promise.resolve(null),
    ]);
    if (mine !== checkNo || !ctx.current()) return;
    showError(valid, errors, general);
    fill(slots, preview ? slotsTable(preview, spec.timezone || "UTC") : h("p", { class: "muted" }, "Type a schedule."));
    form.dataset.checked = String(mine);
  };
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(check, DEBOUNCE_MS);
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    // A check still in flight would answer for the form as it was and wipe what the save shows.
    clearTimeout(timer);
    checkNo++;
    const spec = collect(inputs);
    try {
      const saved = editing
        ? await call("PUT", jobPath(id), { ...spec, version: job.version })
        : await call("POST", "/v1/cronjobs", spec);
      ctx.go("job", {}, saved.id);
    } catch (err) {
      if (err instanceof ApiError && err.status === 409 && editing) {
        const reload = h("a", { href: route("edit", id), class: "button", id: "reload-job" }, "Open the saved version");
        reload.addEventListener("click", (ev) => { ev.preventDefault(); ctx.reload(); });
        fill(general, h("div", { class: "banner danger", id: "conflict" },
          h("strong", {}, "This job changed since you opened it. "),
          "Someone saved it after you opened the editor, so your change was not saved (it is still in the form). ",
          reload));
      } else {
        showError(err, errors, general);
      }
    } finally {
      submit.disabled = false;
    }
  });
  check();
}

function makeInput(name, kind) {
  const id = "f-" + name.replace(".", "-");
  if (kind === "textarea") return h("textarea", { id, name, rows: 3 });
  if (kind === "checkbox") return h("input", { id, name, type: "checkbox" });
  if (kind.startsWith("select:")) {
    return h("select", { id, name }, kind.slice(7).split(",").map((v) => h("option", { value: v }, v)));
  }
  return h("input", { id, name, type: kind, autocomplete: "off", spellcheck: "false" });
}

// Fills the form from a job as the API gives it.
function load(inputs, job) {
  const f = job.function;
  const values = {
    id: job.id, "function.app": f.app, "function.path": f.path, "function.image": f.image,
    frequency: job.frequency, timezone: job.timezone, "catchup.policy": job.catchup.policy,
    "catchup.window": job.catchup.window, "function.priority": f.priority, "function.timeout": f.timeout,
    "function.delay": f.delay, "function.headers": (f.headers || []).join("\n"), "function.body": f.body,
    description: job.description, tags: (job.tags || []).join(", "),
  };
  for (const [k, v] of Object.entries(values)) inputs[k].value = v === undefined || v === null ? "" : String(v);
  inputs.paused.checked = Boolean(job.paused);
}

// The spec the form says; empty optional fields are left out.
function collect(inputs) {
  const v = (k) => inputs[k].value;
  const num = (k) => (v(k).trim() === "" ? undefined : Number(v(k)));
  const opt = (k) => (v(k).trim() === "" ? undefined : v(k).trim());
  const spec = {
    id: v("id").trim(),
    function: {
      app: v("function.app").trim(),
      path: v("function.path").trim(),
      image: opt("function.image"),
      priority: Number(v("function.priority")),
      timeout: num("function.timeout"),
      delay: num("function.delay"),
      headers: v("function.headers").split("\n").map((l) => l.trim()).filter(Boolean),
      body: v("function.body"),
    },
    frequency: v("frequency").trim(),
    timezone: opt("timezone"),
    paused: inputs.paused.checked,
    catchup: { policy: v("catchup.policy"), window: v("catchup.window").trim() || "1h" },
    description: opt("description"),
    tags: v("tags").split(",").map((t) => t.trim()).filter(Boolean),
  };
  return JSON.parse(JSON.stringify(spec));
}

// Which field an error message names: the API's 422 starts with the field's path
// (`frequency: ...`), or names it (`function.image is required`, "missing field `app`").
export function fieldOf(message) {
  const names = FIELDS.map(([n]) => n);
  const head = /^([a-z_.]+):/.exec(message);
  if (head && names.includes(head[1])) return head[1];
  const named = names.filter((n) => n.includes(".")).find((n) => message.includes(n));
  if (named) return named;
  const missing = /missing field `([a-z_]+)`/.exec(message);
  if (missing) return names.find((n) => n === missing[1] || n.endsWith("." + missing[1])) || null;
  return null;
}

function showError(err, errors, general) {
  for (const e of Object.values(errors)) {
    e.replaceChildren();
    e.parentElement.classList.remove("has-error");
  }
  general.replaceChildren();
  if (!err) return;
  const field = err instanceof ApiError && err.status !== 409 ? fieldOf(err.message) : null;
  if (field) {
    fill(errors[field], err.message);
    errors[field].parentElement.classList.add("has-error");
  } else {
    fill(general, h("div", { class: "banner danger", id: "general-error" }, err.message));
  }
}
