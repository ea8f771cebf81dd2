// The console's entry point: the login form, the header, and the router. Pages live in the
// URL's fragment (#/cluster, #/jobs?state=paused, #/job/<id>, #/new, #/edit/<id>), so the
// node serves one page and every link is a plain link.

import { call, setToken, token, ApiError } from "./api.js";
import { h, fill } from "./dom.js";
import * as cluster from "./cluster.js";
import * as jobs from "./jobs.js";
import * as job from "./job.js";
import * as editor from "./editor.js";

// Seconds between refreshes of the Cluster page.
const CLUSTER_REFRESH_MS = 5000;

// Every Content-Security-Policy violation is counted on <html data-csp-violations>: the
// console itself must cause none (the browser test reads it).
document.documentElement.dataset.cspViolations = "0";
document.addEventListener("securitypolicyviolation", () => {
  const n = Number(document.documentElement.dataset.cspViolations) + 1;
  document.documentElement.dataset.cspViolations = String(n);
});

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let generation = 0;
let timers = [];
// Whether the node answers without a token (no --api-token): then there is no login.
let open = false;

// What a page is given: whether it is still the page shown, navigation, and refreshes that
// stop when the page changes.
function context(gen) {
  return {
    current: () => gen === generation,
    go: (page, params, ...segments) => navigate(page, params, ...segments),
    reload: () => show(),
    every: (ms, fn) => {
      const t = setInterval(async () => {
        if (gen !== generation) return clearInterval(t);
        try {
          await fn();
        } catch (e) {
          if (gen === generation) showFailure(e);
        }
      }, ms);
      timers.push(t);
    },
  };
}

function navigate(page, params = {}, ...segments) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const path = [page, ...segments].map(encodeURIComponent).join("/");
  const hash = "#/" + path + (q.toString() ? "?" + q : "");
  if (location.hash === hash) show();
  else location.hash = hash;
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, q] = raw.split("?", 2);
  const parts = path.split("/").filter((p) => p !== "").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch (_) {
      return p;
    }
  });
  return { parts, params: new URLSearchParams(q || "") };
}

async function show() {
  generation += 1;
  const gen = generation;
  timers.forEach(clearInterval);
  timers = [];
  const { parts, params } = parseHash();
  const [page, id] = parts;
  if (!token() && !open && page !== "login") return navigate("login");
  markNav(page || "cluster");
  const ctx = context(gen);
  main.setAttribute("aria-busy", "true");
  try {
    switch (page || "cluster") {
      case "login":
        renderLogin();
        break;
      case "cluster":
        await cluster.render(main, ctx);
        ctx.every(CLUSTER_REFRESH_MS, () => cluster.render(main, ctx));
        break;
      case "jobs":
        await jobs.render(main, ctx, params);
        break;
      case "job":
        await job.render(main, ctx, params, id);
        break;
      case "new":
        await editor.render(main, ctx, params);
        break;
      case "edit":
        await editor.render(main, ctx, params, id);
        break;
      default:
        fill(main, h("h1", {}, "Not found"), h("p", {}, "No page here. "), h("a", { href: "#/cluster" }, "Cluster"));
    }
  } catch (e) {
    if (gen === generation) showFailure(e);
  } finally {
    if (gen === generation) main.removeAttribute("aria-busy");
  }
}

function showFailure(e) {
  if (e instanceof ApiError && e.status === 401) return;
  fill(main, h("div", { class: "banner danger", id: "page-error" },
    e instanceof ApiError && e.status === 404 ? "Not found: " : "Error: ", e.message));
}

function markNav(page) {
  for (const a of nav.querySelectorAll("a[data-page]")) {
    a.classList.toggle("active", a.dataset.page === page || (page === "job" && a.dataset.page === "jobs"));
  }
  document.getElementById("logout").hidden = open || !token();
}

function renderLogin() {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "current-password", required: true, autofocus: true });
  const message = h("p", { id: "login-error", class: "error" });
  const form = h("form", { id: "login", class: "login" },
    h("h1", {}, "cronnode"),
    h("p", {}, "This node's API token (its --api-token). It is kept in this browser tab only."),
    h("label", { for: "token" }, "API token"), input, message,
    h("button", { type: "submit", class: "primary" }, "Log in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    message.replaceChildren();
    try {
      await call("GET", "/v1/status", undefined, input.value.trim());
      setToken(input.value.trim());
      navigate("cluster");
    } catch (err) {
      fill(message, err.status === 401 ? "Wrong token: " + err.message : err.message);
    }
  });
  fill(main, form);
  input.focus();
}

window.addEventListener("cronnode:unauthorized", () => {
  setToken(null);
  open = false;
  navigate("login");
});
window.addEventListener("hashchange", () => {
  window.scrollTo(0, 0);
  show();
});
document.getElementById("logout").addEventListener("click", () => {
  setToken(null);
  navigate("login");
});

// A node without --api-token answers without one: no login then.
(async () => {
  if (!token()) {
    try {
      await call("GET", "/v1/status", undefined, null);
      open = true;
    } catch (_) {
      open = false;
    }
  }
  show();
})();
