// A run's page: draw its charts, and while the run is running poll its progress JSON every
// data-poll seconds and update counts, bar, ETA, charts and figure in place (no reload).
"use strict";
(function () {
  const main = document.getElementById("run-page");
  if (!main) return;
  const id = main.dataset.run, pollMs = 1000 * parseFloat(main.dataset.poll || "2");
  const $ = s => document.getElementById(s);
  const STALE_S = 120;                 // the driver writes progress every 2 s while a sweep runs
  let first = null, version = null, figureBusy = false;

  function duration(s) {
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = s % 60;
    return h ? `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}` : m ? `${m}:${String(r).padStart(2, "0")}` : `${s} s`;
  }

  function eta(p) {                    // the sweep's own estimate, else the rate observed between polls
    if (p.status !== "running") return "wall time " + duration(p.wall_time_s);
    if (p.silent_s != null && p.silent_s > STALE_S)
      return `no progress report for ${duration(p.silent_s)}: the sweep may have stopped`;
    if (p.eta_from !== "sweep" && first && p.fraction > first.fraction && p.fraction < 1) {
      const rate = (p.fraction - first.fraction) / ((p.now - first.now) || 1e-9);
      return "ETA ≈ " + duration((1 - p.fraction) / rate);
    }
    return p.eta_s == null ? "ETA: measuring…" : "ETA ≈ " + duration(p.eta_s);
  }

  function show(p) {
    for (const k of ["done", "diverged", "failed", "total"]) $("n-" + k).textContent = p.counts[k];
    $("bar").value = p.fraction;
    $("status").textContent = p.status;
    $("status").className = "badge s-" + p.status;
    main.dataset.status = p.status;
    $("eta").textContent = eta(p);
    if (p.steps) $("steps").textContent = `${p.steps.done} / ${p.steps.total} training steps`;
    window.petriChart.draw($("charts"), p.series);
    table(p.table);
    const img = $("figure");
    if (img && version !== null && p.version !== version && !figureBusy) {
      figureBusy = true;               // at most one figure render in flight
      img.addEventListener("load", () => { figureBusy = false; }, {once: true});
      img.addEventListener("error", () => { figureBusy = false; }, {once: true});
      img.src = `/runs/${encodeURIComponent(id)}/figure.png?v=${p.version}`;
    }
    version = p.version;
  }

  function row(cells, tag) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement(tag);
      td.textContent = c;
      tr.appendChild(td);
    }
    return tr;
  }

  function table(t) {                  // the CI table, rebuilt as cells land
    const el = $("table");
    if (!el || !t || !t.body.length) return;
    el.tHead.replaceChildren(row(t.header, "th"));
    el.tBodies[0].replaceChildren(...t.body.map(r => row(r, "td")));
  }

  async function findings() {          // once the run ends: its findings, from the page itself (same document)
    const r = await fetch(location.pathname, {cache: "no-store"});
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.getElementById("findings-section");
    if (fresh) $("findings-section").replaceWith(document.adoptNode(fresh));
  }

  async function tick() {
    let p;
    try {
      const r = await fetch(`/api/runs/${encodeURIComponent(id)}/progress`, {cache: "no-store"});
      if (!r.ok) throw new Error(String(r.status));
      p = await r.json();
    } catch (e) {
      $("eta").textContent = "progress unavailable (" + e.message + "); retrying";
      setTimeout(tick, pollMs * 2);
      return;
    }
    if (!first && p.status === "running") first = p;
    show(p);
    if (p.status === "running") setTimeout(tick, pollMs);
    else if (first) findings();       // it was running when the page opened
  }

  // deferred scripts run once the document is parsed: start the one polling loop now
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", tick, {once: true});
  else tick();
})();
