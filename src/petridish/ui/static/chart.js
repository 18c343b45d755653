// Line charts with 95% CI bands as inline SVG, drawn from the dashboard's series JSON:
// {"x": name, "metrics": {metric: [{"label": str, "points": [[x, mean, lo, hi], ...]}]}}.
// No library, no network: petridish serves this file itself.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                  "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
  const W = 380, H = 240, M = {l: 54, r: 12, t: 10, b: 34};

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function ticks(lo, hi, n) {            // "nice" ticks: steps of 1, 2 or 5 times a power of ten
    if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
    const raw = (hi - lo) / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map(s => s * p).find(s => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function fmt(v) {
    const a = Math.abs(v);
    return (a !== 0 && (a >= 1e4 || a < 1e-3)) ? v.toExponential(1) : String(+v.toPrecision(4));
  }

  function xScale(lines) {                // numeric (log when positive and spanning a factor of 20 or more) or categorical
    const xs = lines.flatMap(l => l.points.map(p => p[0]));
    const numeric = xs.every(v => typeof v === "number");
    if (!numeric) {
      const cats = [...new Set(xs.map(String))];
      return {f: v => cats.indexOf(String(v)), lo: -0.5, hi: cats.length - 0.5, labels: cats, log: false};
    }
    let lo = Math.min(...xs), hi = Math.max(...xs);
    const log = lo > 0 && hi / lo >= 20;
    const f = log ? v => Math.log10(v) : v => v;
    lo = f(lo); hi = f(hi);
    if (hi === lo) { lo -= 0.5; hi += 0.5; }
    return {f, lo, hi, labels: null, log};
  }

  function one(metric, lines, xname) {
    const fig = document.createElement("figure");
    fig.className = "chart";
    fig.dataset.metric = metric;
    const cap = document.createElement("figcaption");
    cap.textContent = metric;
    fig.appendChild(cap);
    const svg = el("svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
                           "aria-label": `${metric} against ${xname}`});
    fig.appendChild(svg);
    const xs = xScale(lines);
    const ys = lines.flatMap(l => l.points.flatMap(p => [p[2], p[3]])).filter(Number.isFinite);
    let ylo = Math.min(...ys), yhi = Math.max(...ys);
    if (!(yhi > ylo)) { ylo -= Math.abs(ylo) * 0.1 + 0.5; yhi += Math.abs(yhi) * 0.1 + 0.5; }
    const pad = (yhi - ylo) * 0.05; ylo -= pad; yhi += pad;
    const X = v => M.l + (xs.f(v) - xs.lo) / (xs.hi - xs.lo) * (W - M.l - M.r);
    const Y = v => H - M.b - (v - ylo) / (yhi - ylo) * (H - M.t - M.b);
    const axis = el("g", {class: "axes"}, svg);
    for (const t of ticks(ylo, yhi, 5)) {
      el("line", {x1: M.l, x2: W - M.r, y1: Y(t), y2: Y(t), stroke: "#eceff1"}, axis);
      el("text", {x: M.l - 4, y: Y(t) + 3, "text-anchor": "end"}, axis).textContent = fmt(t);
    }
    const xt = xs.labels ? xs.labels.map((c, i) => [i, c])
      : (xs.log ? ticks(xs.lo, xs.hi, 5).filter(Number.isInteger).map(t => [Math.pow(10, t), fmt(Math.pow(10, t))])
                : ticks(xs.lo, xs.hi, 5).map(t => [t, fmt(t)]));
    for (const [v, label] of xt) {
      const px = xs.labels ? M.l + (v - xs.lo) / (xs.hi - xs.lo) * (W - M.l - M.r) : X(v);
      el("text", {x: px, y: H - M.b + 13, "text-anchor": "middle"}, axis).textContent = label;
    }
    el("rect", {x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, fill: "none", stroke: "#b0bac1"}, axis);
    el("text", {x: (W + M.l) / 2, y: H - 4, "text-anchor": "middle"}, axis).textContent = xname + (xs.log ? " (log)" : "");
    const legend = document.createElement("div");
    legend.className = "legend";
    lines.forEach((line, i) => {
      const c = COLORS[i % COLORS.length];
      const g = el("g", {class: "series", "data-label": line.label}, svg);
      const pts = line.points;
      const band = pts.map(p => `${X(p[0])},${Y(p[3])}`).concat(pts.slice().reverse().map(p => `${X(p[0])},${Y(p[2])}`));
      el("polygon", {points: band.join(" "), fill: c, "fill-opacity": 0.18, stroke: "none", class: "ci"}, g);
      el("polyline", {points: pts.map(p => `${X(p[0])},${Y(p[1])}`).join(" "), fill: "none", stroke: c,
                      "stroke-width": 1.8, class: "mean"}, g);
      for (const p of pts) {
        const dot = el("circle", {cx: X(p[0]), cy: Y(p[1]), r: 2.6, fill: c}, g);
        el("title", {}, dot).textContent = `${line.label}: ${xname}=${p[0]} mean ${fmt(p[1])} [${fmt(p[2])}, ${fmt(p[3])}]`;
      }
      const item = document.createElement("span");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = c;             // CSSOM, not an inline style attribute: allowed by the CSP
      item.appendChild(sw);
      item.appendChild(document.createTextNode(line.label));
      legend.appendChild(item);
    });
    fig.appendChild(legend);
    return fig;
  }

  // Replace the charts inside `container` with one chart per metric of `series`.
  function draw(container, series) {
    const figs = Object.entries(series.metrics || {}).map(([m, lines]) => one(m, lines, series.x || "x"));
    container.replaceChildren(...figs);
    if (!figs.length) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "No finished cells with numeric metrics yet.";
      container.appendChild(p);
    }
    container.dataset.points = String(Object.values(series.metrics || {})
      .flatMap(ls => ls.map(l => l.points.length)).reduce((a, b) => a + b, 0));
  }

  window.petriChart = {draw};
})();
