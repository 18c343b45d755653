// The comparison page: fetch the overlaid series of the runs and draw one chart per metric.
"use strict";
(function () {
  const main = document.getElementById("compare-page");
  if (!main) return;
  let started = false;
  async function load() {
    if (started) return;
    started = true;
    const r = await fetch("/api/compare?runs=" + encodeURIComponent(main.dataset.runs), {cache: "no-store"});
    const j = await r.json();
    if (!r.ok) {
      document.getElementById("charts").textContent = j.detail;
      return;
    }
    window.petriChart.draw(document.getElementById("charts"), j.series);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load, {once: true});
  else load();
})();
