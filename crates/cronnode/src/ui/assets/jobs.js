// The Jobs page: one page of the API's paged list (`GET /v1/cronjobs`), searchable by id and
// app, filterable by state; Next follows the API's `next` cursor, Previous goes back through
// the cursors this tab has seen.

import { get, query } from "./api.js";
import { h, fill, link, table, when, relative, badge } from "./dom.js";

// Jobs per page of the console.
export const PAGE_SIZE = 50;
// A filtered page of the API may hold few jobs: at most this many requests fill one page.
const MAX_REQUESTS = 10;

// Cursors of the pages before this one (this tab only), and the filter they belong to.
let back = [];
let backFilter = "";

export async function render(main, ctx, params) {
  const filter = {
    id_contains: params.get("id_contains") || "",
    app: params.get("app") || "",
    state: params.get("state") || "",
  };
  const filterKey = JSON.stringify(filter);
  if (filterKey !== backFilter) {
    back = [];
    backFilter = filterKey;
  }
  const after = params.get("after") || "";
  let jobs = [];
  let invalid = [];
  let next = after || null;
  let requests = 0;
  do {
    const page = await get("/v1/cronjobs" + query({ ...filter, limit: PAGE_SIZE - jobs.length, after: next }));
    jobs = jobs.concat(page.jobs);
    invalid = invalid.concat(page.invalid);
    next = page.next;
    requests += 1;
  } while (next && jobs.length < PAGE_SIZE && filter.state !== "invalid" && requests < MAX_REQUESTS && hasFilter(filter));
  if (!ctx.current()) return;

  const form = filterForm(filter, ctx);
  const rows = jobs.map((j) => h("tr", { "data-job": j.id },
    h("td", {}, link(j.id, "job", j.id)),
    h("td", {}, j.function.app, h("span", { class: "muted" }, j.function.path)),
    h("td", {}, h("code", {}, j.frequency), " ", h("span", { class: "muted" }, j.timezone || "UTC")),
    h("td", {}, j.next_start ? [when(j.next_start), " ", h("span", { class: "muted" }, relative(j.next_start))] : "—"),
    h("td", {}, when(j.last_start)),
    h("td", {}, j.paused ? badge("paused", "warn") : badge("active", "ok"))));
  const pager = h("nav", { class: "pager" });
  if (after) {
    const prev = h("button", { type: "button", id: "prev-page" }, back.length ? "← Previous" : "← First page");
    prev.addEventListener("click", () => {
      const to = back.pop() || "";
      ctx.go("jobs", { ...filter, after: to });
    });
    pager.appendChild(prev);
  }
  if (next) {
    const more = h("button", { type: "button", id: "next-page" }, "Next →");
    more.addEventListener("click", () => {
      back.push(after);
      ctx.go("jobs", { ...filter, after: next });
    });
    pager.appendChild(more);
  }
  fill(main,
    h("h1", {}, "Jobs"),
    form,
    filter.state !== "invalid" && table(["id", "app / path", "schedule", "next start", "last start", "state"], rows, { id: "jobs" }),
    filter.state !== "invalid" && !jobs.length && h("p", { class: "muted", id: "no-jobs" },
      next ? "No match in this part of the store; Next goes on searching." : "No job matches."),
    invalid.length ? [
      h("h2", {}, "Invalid entries"),
      h("p", { class: "muted" }, "Entries under the jobs prefix that do not validate: they are ignored until fixed."),
      table(["key", "error"], invalid.map((i) => h("tr", {}, h("td", {}, h("code", {}, i.key)), h("td", {}, i.error))), { id: "invalid" }),
    ] : (filter.state === "invalid" ? h("p", { class: "muted", id: "no-jobs" }, next ? "None in this part of the store; Next goes on searching." : "No invalid entry.") : null),
    pager);
}

function hasFilter(f) {
  return Boolean(f.id_contains || f.app || f.state);
}

function filterForm(filter, ctx) {
  const id = h("input", { name: "id_contains", id: "search-id", type: "search", placeholder: "id contains", value: filter.id_contains });
  const app = h("input", { name: "app", id: "search-app", type: "search", placeholder: "app", value: filter.app });
  const state = h("select", { name: "state", id: "search-state" },
    [["", "every state"], ["active", "active"], ["paused", "paused"], ["invalid", "invalid"]].map(([v, t]) =>
      h("option", { value: v, selected: v === filter.state }, t)));
  const form = h("form", { class: "filters", id: "filters" },
    id, app, state, h("button", { type: "submit" }, "Search"),
    h("a", { href: "#/new", class: "button primary" }, "New job"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    ctx.go("jobs", { id_contains: id.value.trim(), app: app.value.trim(), state: state.value });
  });
  state.addEventListener("change", () => form.requestSubmit());
  return form;
}
