// Building the page. Every string that comes from a job or from the API becomes a text node
// (textContent) or an attribute value set with setAttribute: nothing here parses HTML, so a
// job whose body is markup shows as that markup, never as elements. Styles are classes from
// style.css (the Content-Security-Policy forbids inline styles and inline scripts).

const SVG_NS = "http://www.w3.org/2000/svg";

// An element: h("a", {href: "#/jobs", class: "x"}, "text", child, [more, children]).
// Attributes named on* are refused: handlers are attached with addEventListener.
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// An SVG element, the same way.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) throw new Error("event handler attribute " + k);
    el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// Replaces the children of `el`.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A link inside the console (a hash route); parts are URL-encoded.
export function link(text, ...parts) {
  return h("a", { href: route(...parts) }, text);
}

// `#/job/<id>`: each part encoded, so an id can never add a path segment or a query.
export function route(...parts) {
  return "#/" + parts.map(encodeURIComponent).join("/");
}

// A link out of the console, only to http(s) URLs.
export function outLink(text, url) {
  if (typeof url !== "string" || !/^https?:\/\//.test(url)) return h("span", { class: "muted" }, text);
  return h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, text);
}

// An instant as the browser's local time (the operator's), with the UTC instant in a tooltip.
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const d = new Date(iso);
  if (isNaN(d)) return h("span", {}, iso);
  return h("time", { datetime: iso, title: iso }, d.toLocaleString());
}

// "3 s ago", "in 2 min".
export function relative(iso, now = Date.now()) {
  if (!iso) return "";
  const secs = Math.round((new Date(iso).getTime() - now) / 1000);
  const abs = Math.abs(secs);
  const text = abs < 90 ? `${abs} s`
    : abs < 5400 ? `${Math.round(abs / 60)} min`
    : abs < 172800 ? `${Math.round(abs / 3600)} h`
    : `${Math.round(abs / 86400)} days`;
  return secs >= 0 ? `in ${text}` : `${text} ago`;
}

// A labelled value list: [[label, value], ...].
export function facts(rows) {
  return h("dl", { class: "facts" }, rows.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// A table: headings, then rows of cells.
export function table(heads, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, heads.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

// A status badge.
export function badge(text, kind) {
  return h("span", { class: "badge " + (kind || text) }, text);
}
