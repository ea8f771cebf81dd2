// The Cluster page: the nodes, the leader and its fence, the job counts, the queues, the
// leader's fires per second and lateness, and the Consul UI's links.

import { get } from "./api.js";
import { barChart } from "./chart.js";
import { h, facts, table, when, relative, badge, outLink, fill, link } from "./dom.js";

export async function render(main, ctx) {
  const [status, activity] = await Promise.all([
    get("/v1/status"),
    get("/v1/leader/activity").catch((e) => ({ error: e })),
  ]);
  if (!ctx.current()) return;
  const leader = status.leader;
  const fence = status.fence || {};
  const apiUrl = location.origin;
  fill(main,
    h("h1", {}, "Cluster"),
    fence.blocked && h("div", { class: "banner danger", id: "fence-banner" },
      h("strong", {}, "Fence blocked: nothing is enqueued. "),
      fence.message || "",
      h("p", {}, "After making sure no node of the old cluster still runs, reset it:"),
      h("pre", {}, `cronnode fence reset --yes --api ${apiUrl}`)),
    !leader && h("div", { class: "banner warn" }, "No node holds the leader lock right now: nothing is scheduled until one does."),
    h("section", { class: "cards" },
      h("div", { class: "card", id: "leader-card" },
        h("h2", {}, "Leader"),
        leader ? facts([
          ["node", h("strong", { id: "leader-node" }, leader.node)],
          ["since", [when(leader.since), " ", h("span", { class: "muted" }, relative(leader.since))]],
          ["token", String(leader.token)],
          ["fence", [String(fence.value ?? "—"), " ", fence.blocked ? badge("blocked", "danger") : badge("ok", "ok")]],
          ["API", leader.api_addr],
          ["version", leader.version],
        ]) : h("p", { class: "muted" }, "none")),
      h("div", { class: "card" },
        h("h2", {}, "Jobs"),
        facts([
          ["jobs", link(String(status.jobs.count), "jobs")],
          ["paused", String(status.jobs.paused)],
          ["invalid", status.jobs.invalid ? h("a", { href: "#/jobs?state=invalid" }, String(status.jobs.invalid)) : "0"],
        ])),
      h("div", { class: "card" },
        h("h2", {}, "Queues"),
        facts(Object.entries(status.queues).map(([k, v]) => [k, String(v)]))),
      h("div", { class: "card" },
        h("h2", {}, "Consul UI"),
        status.consul_ui ? h("ul", { class: "plain" },
          h("li", {}, outLink("the lock key", status.consul_ui.lock_key)),
          h("li", {}, outLink("the service", status.consul_ui.service)),
          h("li", {}, outLink("the job store", status.consul_ui.jobs)))
          : h("p", { class: "muted" }, "no node registered yet"))),
    h("h2", {}, "Nodes"),
    table(["node", "address", "version", "check", "datacenter", ""],
      status.nodes.map((n) => h("tr", { "data-node": n.node },
        h("td", {}, n.node),
        h("td", {}, n.api_addr),
        h("td", {}, n.version),
        h("td", {}, badge(n.status)),
        h("td", {}, n.datacenter || ""),
        h("td", {}, n.leader ? badge("leader", "ok") : ""))),
      { id: "nodes" }),
    h("p", { class: "muted" }, `This console is served by ${status.this_node.node} (${status.this_node.role}).`),
    activitySection(activity));
}

function activitySection(activity) {
  if (activity.error) {
    return h("section", { id: "activity" }, h("h2", {}, "Fires and lateness"),
      h("p", { class: "muted" }, "The leader's activity is not available: " + activity.error.message));
  }
  const pts = activity.points || [];
  const label = (p) => new Date(p.at).toLocaleTimeString();
  const first = pts.length ? label(pts[0]) : "";
  const last = pts.length ? label(pts[pts.length - 1]) : "";
  const fires = pts.map((p) => ({
    value: p.fires_per_sec,
    tip: `${label(p)}: ${p.fires_per_sec.toFixed(2)} fires/s (${p.enqueued} enqueued, ${p.fenced} fenced, ${p.error} errors)`,
    kind: p.fenced || p.error ? "warn" : undefined,
  }));
  const late = pts.map((p) => ({
    value: p.lateness_p99_ms,
    tip: p.late_count ? `${label(p)}: ${p.late_count} fires, mean ${p.lateness_mean_ms.toFixed(1)} ms, p99 ≤ ${p.lateness_p99_ms} ms` : `${label(p)}: no scheduled fire`,
  }));
  const total = pts.reduce((n, p) => n + p.enqueued, 0);
  return h("section", { id: "activity" },
    h("h2", {}, "Fires and lateness"),
    h("p", { class: "muted" },
      `As measured by the leader ${activity.node}, every ${activity.step_secs} s over the last ${Math.round(activity.window_secs / 60)} min: `,
      h("span", { id: "activity-total" }, String(total)), " fires enqueued."),
    h("div", { class: "charts" },
      barChart(fires, { unit: "/s", caption: "fires per second", first, last }),
      barChart(late, { unit: "ms", caption: "lateness, 99th percentile (bucket bound)", first, last })));
}
