// A small bar chart in SVG, built element by element (no library, nothing fetched).

import { h, s } from "./dom.js";

const H = 120;
const PAD_LEFT = 46;
const PAD_BOTTOM = 18;

// bars: [{value: number|null, tip: string, kind?: "warn"}]; opts: {unit, caption, first,
// last, width} (the width in SVG units, 600 by default: the text keeps its size when the
// chart is drawn about that wide). A bar of 0 is drawn as a mark on the axis, so that each
// value shows; null is no value.
export function barChart(bars, opts) {
  const W = opts.width || 600;
  const max = Math.max(0, ...bars.map((b) => b.value || 0));
  const top = niceCeil(max);
  const plotW = W - PAD_LEFT;
  const plotH = H - PAD_BOTTOM;
  const bw = bars.length ? plotW / bars.length : plotW;
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-label": opts.caption,
  });
  svg.appendChild(s("line", { x1: PAD_LEFT, y1: plotH, x2: W, y2: plotH, class: "axis" }));
  svg.appendChild(s("line", { x1: PAD_LEFT, y1: 0, x2: PAD_LEFT, y2: plotH, class: "axis" }));
  svg.appendChild(s("text", { x: PAD_LEFT - 4, y: 10, class: "tick end" }, fmt(top) + " " + opts.unit));
  svg.appendChild(s("text", { x: PAD_LEFT - 4, y: plotH, class: "tick end" }, "0"));
  bars.forEach((b, i) => {
    if (b.value === null || b.value === undefined) return;
    const bh = top > 0 ? (b.value / top) * plotH : 0;
    const rect = s("rect", {
      x: (PAD_LEFT + i * bw + bw * 0.1).toFixed(2),
      y: (plotH - bh).toFixed(2),
      width: Math.max(1, bw * 0.8).toFixed(2),
      height: Math.max(1, bh).toFixed(2),
      class: "bar" + (b.kind ? " " + b.kind : "") + (b.value === 0 ? " zero" : ""),
    }, s("title", {}, b.tip));
    svg.appendChild(rect);
  });
  if (opts.first) svg.appendChild(s("text", { x: PAD_LEFT, y: H - 4, class: "tick" }, opts.first));
  if (opts.last) svg.appendChild(s("text", { x: W, y: H - 4, class: "tick end" }, opts.last));
  if (!bars.some((b) => b.value !== null && b.value !== undefined)) {
    svg.appendChild(s("text", { x: (PAD_LEFT + W) / 2, y: plotH / 2, class: "tick middle" }, "no data yet"));
  }
  return h("figure", { class: "chart-box" }, svg, h("figcaption", {}, opts.caption));
}

function niceCeil(x) {
  if (x <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function fmt(x) {
  return x >= 100 ? x.toFixed(0) : x >= 1 ? String(+x.toFixed(1)) : String(+x.toFixed(3));
}
