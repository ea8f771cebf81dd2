// The node's HTTP API, as the console calls it: same origin, the bearer token from the login
// form. The token lives in this tab's sessionStorage only: it is gone when the tab closes,
// and no other tab or site sees it.

const TOKEN_KEY = "cronnode.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// An error answer of the API: {"error": {"code", "message"}} and the status.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Sends a request; resolves to the JSON answer of a 2xx, rejects with an ApiError otherwise.
// A 401 also tells the app (the `cronnode:unauthorized` event) so it can ask for the token.
export async function call(method, path, body, tokenOverride) {
  const headers = {};
  const t = tokenOverride === undefined ? token() : tokenOverride;
  if (t) headers["Authorization"] = "Bearer " + t;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (e) {
    throw new ApiError(0, "network", "the node does not answer: " + e.message);
  }
  let json = null;
  try {
    json = await resp.json();
  } catch (_) {
    json = null;
  }
  if (resp.ok) return json;
  const err = (json && json.error) || {};
  const e = new ApiError(resp.status, err.code || "http_" + resp.status, err.message || resp.statusText);
  if (resp.status === 401 && tokenOverride === undefined) {
    window.dispatchEvent(new CustomEvent("cronnode:unauthorized"));
  }
  throw e;
}

export const get = (path) => call("GET", path);

// A query string of the non-empty values of `params`.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const text = q.toString();
  return text ? "?" + text : "";
}

export function jobPath(id, action) {
  return "/v1/cronjobs/" + encodeURIComponent(id) + (action ? "/" + action : "");
}
