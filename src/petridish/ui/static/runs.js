// The runs list: the rows of running runs follow their sweeps (status, counts, bar) by polling
// one small JSON endpoint for all of them, every data-poll seconds, until none is running.
"use strict";
(function () {
  const main = document.getElementById("runs-page");
  if (!main) return;
  const pollMs = 1000 * parseFloat(main.dataset.poll || "2");

  function running() {
    return [...document.querySelectorAll('#runs tbody tr[data-status="running"]')];
  }

  function update(tr, r) {
    for (const k of ["done", "diverged", "failed"]) tr.querySelector(".c-" + k).textContent = r.counts[k];
    tr.querySelector("progress").value = r.counts.done + r.counts.diverged;
    const badge = tr.querySelector(".badge");
    badge.textContent = r.status;
    badge.className = "badge s-" + r.status;
    tr.dataset.status = r.status;
  }

  async function tick() {
    const rows = running();
    if (!rows.length) return;
    try {
      const ids = rows.map(tr => tr.dataset.run).join(",");
      const res = await fetch("/api/runs/live?ids=" + encodeURIComponent(ids), {cache: "no-store"});
      if (res.ok) {
        const j = await res.json();
        for (const tr of rows) if (j.runs[tr.dataset.run]) update(tr, j.runs[tr.dataset.run]);
      }
    } catch (e) { /* the server may be restarting: try again at the next tick */ }
    setTimeout(tick, pollMs);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", tick, {once: true});
  else tick();
})();
