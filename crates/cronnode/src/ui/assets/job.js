// A job's page: its spec, its next ten slots in its zone and in UTC (daylight-saving changes
// marked), its fire history with lateness and a chart, and the actions (pause or resume, run
// now, edit, delete), each confirmed before it is sent.

import { call, get, jobPath, query } from "./api.js";
import { barChart } from "./chart.js";
import { h, fill, facts, table, when, relative, badge, route } from "./dom.js";

// Slots previewed on the page.
const SLOTS = 10;

export async function render(main, ctx, params, id) {
  const [job, fires] = await Promise.all([get(jobPath(id)), get(jobPath(id, "fires"))]);
  if (!ctx.current()) return;
  const preview = await get("/v1/schedule" + query({ frequency: job.frequency, tz: job.timezone, n: SLOTS }))
    .catch((e) => ({ error: e }));
  if (!ctx.current()) return;
  const f = job.function;
  const notice = h("div", { id: "job-notice" });
  fill(main,
    h("h1", {}, h("span", { id: "job-id" }, job.id), " ",
      h("span", { id: "job-state" }, job.paused ? badge("paused", "warn") : badge("active", "ok"))),
    job.description ? h("p", { id: "job-description" }, job.description) : null,
    actions(job, ctx, notice),
    notice,
    h("section", { class: "two" },
      h("div", {},
        h("h2", {}, "Spec"),
        facts([
          ["app", h("span", { id: "job-app" }, f.app)],
          ["path", h("span", { id: "job-path" }, f.path)],
          ["image", f.image || h("span", { class: "muted" }, "the node's default")],
          ["schedule", [h("code", { id: "job-frequency" }, job.frequency), " in ", job.timezone || "UTC"]],
          ["catch-up", `${job.catchup.policy} within ${job.catchup.window}`],
          ["priority", String(f.priority)],
          f.timeout !== undefined && ["timeout", `${f.timeout} s`],
          f.delay !== undefined && ["delay", `${f.delay} s`],
          ["headers", f.headers && f.headers.length ? h("ul", { class: "plain", id: "job-headers" }, f.headers.map((x) => h("li", {}, h("code", {}, x)))) : "—"],
          ["body", h("pre", { id: "job-body" }, f.body)],
          job.tags && job.tags.length && ["tags", job.tags.join(", ")],
          ["next start", job.next_start ? [when(job.next_start), " ", h("span", { class: "muted" }, relative(job.next_start))] : "—"],
          ["last start", when(job.last_start)],
          ["created", when(job.created_at)],
          ["updated", when(job.updated_at)],
          ["version", h("span", { id: "job-version" }, String(job.version))],
        ])),
      h("div", {},
        h("h2", {}, `Next ${SLOTS} slots`),
        job.paused && h("p", { class: "muted" }, "Paused: these slots will not fire unless the job is resumed."),
        slotsTable(preview, job.timezone || "UTC"))),
    h("section", { id: "history" }, historySection(fires)));
  ctx.every(3000, async () => {
    const latest = await get(jobPath(id, "fires"));
    if (ctx.current()) fill(document.getElementById("history"), historySection(latest));
  });
}

// The next slots as the zone and as UTC, with a mark where the zone's offset changed.
export function slotsTable(preview, zone) {
  if (preview.error) return h("p", { class: "error" }, preview.error.message);
  const rows = preview.slots.map((utc, i) => {
    const local = preview.local[i];
    const changed = preview.offset_changed[i];
    return h("tr", { class: changed ? "dst" : null },
      h("td", {}, local.replace("T", " ")),
      h("td", {}, utc.replace("T", " ")),
      h("td", {}, changed ? badge(`offset now ${offsetOf(local)}`, "warn") : ""));
  });
  return table([`in ${zone}`, "in UTC", ""], rows, { id: "slots" });
}

function offsetOf(rfc3339) {
  const m = /([+-]\d\d:\d\d|Z)$/.exec(rfc3339);
  return m ? (m[1] === "Z" ? "+00:00" : m[1]) : "";
}

function historySection(fires) {
  const list = fires.fires || [];
  const chronological = list.slice().reverse();
  const bars = chronological.map((x) => ({
    value: x.lateness_ms,
    tip: `${x.slot}: ${x.lateness_ms} ms late (${x.kind})`,
    kind: x.kind === "scheduled" ? undefined : "other",
  }));
  return [
    h("h2", {}, "Fire history ", h("span", { class: "muted", id: "fire-count" }, `(${list.length})`)),
    list.length ? barChart(bars, {
      unit: "ms",
      width: 1200,
      caption: "lateness of each fire (recorded enqueue − slot), oldest left; a fire staged ahead is recorded at its slot (0 ms): the Cluster page shows the leader's measure of when it reached the queue",
      first: chronological.length ? new Date(chronological[0].slot).toLocaleTimeString() : "",
      last: chronological.length ? new Date(chronological[chronological.length - 1].slot).toLocaleTimeString() : "",
    }) : null,
    table(["slot", "enqueued", "lateness", "kind", "leader", "token", "fire id"],
      list.map((x) => h("tr", { "data-slot": x.slot },
        h("td", {}, when(x.slot)),
        h("td", {}, x.enqueued_at.replace("T", " ")),
        h("td", { class: "num" }, `${x.lateness_ms} ms`),
        h("td", {}, x.kind),
        h("td", {}, x.leader_node),
        h("td", { class: "num" }, String(x.token)),
        h("td", {}, h("code", {}, x.fire_id)))),
      { id: "fires" }),
    list.length ? null : h("p", { class: "muted", id: "no-fires" }, "No fire yet."),
  ];
}

// The buttons; each asks for a confirmation in place before it calls the API.
function actions(job, ctx, notice) {
  const bar = h("div", { class: "actions" });
  const run = async (what, doIt) => {
    try {
      const answer = await doIt();
      return answer;
    } catch (e) {
      fill(notice, h("div", { class: "banner danger" }, `${what} failed: ${e.message}`));
      return null;
    }
  };
  const confirmThen = (button, question, label, onYes) => {
    button.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "danger", id: "confirm-yes" }, label);
      const no = h("button", { type: "button", id: "confirm-no" }, "Cancel");
      fill(notice, h("div", { class: "banner confirm", id: "confirm" }, question, " ", yes, no));
      no.addEventListener("click", () => notice.replaceChildren());
      yes.addEventListener("click", async () => {
        yes.disabled = true;
        await onYes();
      });
    });
  };
  const pause = h("button", { type: "button", id: job.paused ? "resume" : "pause" }, job.paused ? "Resume" : "Pause");
  confirmThen(pause, job.paused ? `Resume ${job.id}? Missed slots follow its catch-up policy (${job.catchup.policy}).` : `Pause ${job.id}? It makes no call until resumed.`,
    job.paused ? "Yes, resume" : "Yes, pause", async () => {
      if (await run(job.paused ? "Resume" : "Pause", () => call("POST", jobPath(job.id, job.paused ? "resume" : "pause")))) ctx.reload();
    });
  const runNow = h("button", { type: "button", id: "run-now" }, "Run now");
  confirmThen(runNow, `Call ${job.function.app}${job.function.path} once now?`, "Yes, run it", async () => {
    const r = await run("Run", () => call("POST", jobPath(job.id, "run")));
    if (r) fill(notice, h("div", { class: "banner ok", id: "run-result" }, `Enqueued by ${r.leader_node} (${r.outcome}), fire ${r.fire_id}.`));
  });
  const edit = h("a", { href: route("edit", job.id), class: "button", id: "edit" }, "Edit");
  const del = h("button", { type: "button", class: "danger", id: "delete" }, "Delete");
  confirmThen(del, `Delete ${job.id}? This cannot be undone.`, "Yes, delete", async () => {
    if (await run("Delete", () => call("DELETE", jobPath(job.id)))) ctx.go("jobs", {});
  });
  bar.append(pause, runNow, edit, del);
  return bar;
}
