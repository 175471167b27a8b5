// Line charts over the last minutes, drawn as SVG: no library, nothing fetched.
"use strict";

const Charts = (() => {
  const WINDOW = 300; // seconds shown
  const series = {};  // name -> [[t, value], ...]

  function add(name, t, value) {
    if (value === null || value === undefined || !isFinite(value)) return;
    const points = (series[name] = series[name] || []);
    points.push([t, value]);
    while (points.length && t - points[0][0] > WINDOW) points.shift();
  }

  function svg(name, title, unit) {
    const points = series[name] || [];
    const w = 320, h = 110, pad = 22;
    const now = Date.now() / 1000;
    const max = Math.max(1e-9, ...points.map((p) => p[1]));
    const xy = points.map(([t, v]) => {
      const x = pad + (w - pad - 4) * (1 - (now - t) / WINDOW);
      const y = h - pad - (h - 2 * pad) * (v / max);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    const last = points.length ? points[points.length - 1][1] : null;
    const shown = last === null ? "–" : format(last) + (unit ? " " + unit : "");
    return `<div class="card chart"><div class="label">${esc(title)}: <b>${esc(shown)}</b></div>
      <svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" data-chart="${esc(name)}">
        <line class="axis" x1="${pad}" y1="${h - pad}" x2="${w}" y2="${h - pad}"></line>
        <text x="0" y="${pad}">${esc(format(max))}</text><text x="0" y="${h - pad}">0</text>
        <text x="${pad}" y="${h - 6}">-5 min</text><text x="${w - 24}" y="${h - 6}">now</text>
        <polyline points="${xy.join(" ")}"></polyline>
      </svg></div>`;
  }

  function format(v) {
    if (Number.isInteger(v)) return String(v);
    if (Math.abs(v) >= 100) return v.toFixed(0);
    if (Math.abs(v) >= 1) return v.toFixed(1);
    return v.toFixed(3);
  }

  function esc(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  return { add, svg, format, esc };
})();
