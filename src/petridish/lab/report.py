"""A run's figure (PNG) and a self-contained HTML report (figure inlined, table, provenance)."""
from __future__ import annotations

import base64
import html
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from jinja2 import Environment  # noqa: E402

from petridish.lab.experiment import Cell, Experiment  # noqa: E402
from petridish.lab.stats import aggregate  # noqa: E402
from petridish.lab.store import RunRecord  # noqa: E402
from petridish.lab.sweep import analyze  # noqa: E402
from petridish.lab.table import fmt, fmt_ci, table_rows  # noqa: E402

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ exp.name }} — petridish report</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
 table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
 th { background: #f3f3f3; } .v-supported { color: #176117; } .v-refuted { color: #a11; }
 .v-inconclusive, .v-not-measured { color: #777; } img { max-width: 100%; } .muted { color: #666; } code { background: #f5f5f5; }
</style></head><body>
<h1>{{ exp.name }}</h1>
<p><b>Question.</b> {{ exp.question }}</p>
<p><b>Reference.</b> {{ exp.reference }}</p>
<p class="muted">Run <code>{{ run.id }}</code> · {{ n_done }} of {{ run.n_cells }} cells finished
 ({{ n_div }} diverged, {{ n_fail }} failed) · wall time {{ "%.1f"|format(run.wall_time) }} s</p>
<h2>Findings</h2>
{% if claims %}<table><tr><th>verdict</th><th>claim</th><th>estimate</th><th>95% CI</th><th>test</th><th>p</th></tr>
{% for c in claims %}<tr><td class="v-{{ c.verdict|replace(' ', '-') }}"><b>{{ c.verdict }}</b></td><td>{{ c.claim }}</td>
<td>{{ c.estimate_s }}</td><td>{{ c.ci_s }}</td><td>{{ c.test or c.reason or "" }}</td><td>{{ c.p_s }}</td></tr>{% endfor %}</table>{% endif %}
<ul>{% for f in findings %}<li>{{ f }}</li>{% else %}<li>No analysis for this run.</li>{% endfor %}</ul>
<h2>Figure</h2>
<img alt="figure" src="data:image/png;base64,{{ png }}">
<h2>Table (mean [95% CI] over seeds)</h2>
<table><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in body %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if failed %}<h2>Failed cells</h2><ul>{% for c in failed %}<li>{{ c.params }} seed {{ c.seed }}: {{ c.error }}</li>{% endfor %}</ul>{% endif %}
<h2>Configuration</h2><pre>{{ config }}</pre>
<h2>Provenance</h2><table>{% for k, v in prov %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}
<tr><th>peak memory per cell (max)</th><td>{{ "%.0f"|format(peak) }} MiB</td></tr></table>
</body></html>"""


def draw(exp: Experiment, cfg: dict[str, Any], cells: list[Cell]):
    fig = plt.figure(figsize=(11, 6.5), dpi=110)
    if exp.plot is not None:
        exp.plot(cells, fig)
    else:
        _default_plot(cfg, cells, fig)
    fig.tight_layout()
    return fig


def _default_plot(cfg: dict[str, Any], cells: list[Cell], fig) -> None:
    swept = [k for k, v in cfg.items() if isinstance(v, list)]
    ax = fig.add_subplot(1, 1, 1)
    if not swept or not cells:
        ax.text(0.5, 0.5, "nothing swept", ha="center")
        return
    x = swept[0]
    rows = aggregate(cells, by=[x])
    metric = next(iter(rows[0]["metrics"]), None) if rows else None
    if metric is None:
        return
    xs = [r["params"][x] for r in rows]
    m = [r["metrics"][metric]["mean"] for r in rows]
    lo = [r["metrics"][metric]["lo"] for r in rows]
    hi = [r["metrics"][metric]["hi"] for r in rows]
    ax.plot(xs, m, "o-")
    ax.fill_between(xs, lo, hi, alpha=0.3)
    ax.set_xlabel(x)
    ax.set_ylabel(metric)


def write_report(exp: Experiment, run: RunRecord, cells: list[Cell], out_dir: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"{exp.name}-{run.id}")
    fig = draw(exp, run.config, cells)
    png_path = stem + ".png"
    fig.savefig(png_path)
    plt.close(fig)
    with open(png_path, "rb") as f:
        png = base64.b64encode(f.read()).decode()
    by, names, rows = table_rows(exp, run.config, cells)
    body = [[fmt(r["params"][k]) if isinstance(r["params"][k], float) else r["params"][k] for k in by]
            + [r["n"]] + [fmt_ci(r["metrics"].get(m)) for m in names] for r in rows]
    analysis = analyze(exp, cells)
    import json
    page = Environment(autoescape=True).from_string(_TEMPLATE).render(
        exp=exp, run=run, findings=analysis.findings, claims=[_claim_row(c) for c in analysis.claims], png=png, header=by + ["seeds"] + names, body=body,
        failed=[c for c in cells if c.status == "failed"][:50],
        n_done=sum(c.status == "done" for c in cells), n_div=sum(c.status == "diverged" for c in cells),
        n_fail=sum(c.status == "failed" for c in cells),
        config=json.dumps(run.config, indent=1), prov=sorted(run.provenance.items()),
        peak=max([c.peak_mem_mb for c in cells] or [0.0]))
    html_path = stem + ".html"
    with open(html_path, "w") as f:
        f.write(page)
    return png_path, html_path


def _claim_row(c) -> dict[str, Any]:
    j = c.to_json()
    j["estimate_s"] = fmt(j["estimate"]) if j["estimate"] is not None else "not measured"
    j["ci_s"] = f"[{fmt(j['ci'][0])}, {fmt(j['ci'][1])}]" if j["ci"] else "—"
    j["p_s"] = f"{j['p']:.2g}" if j["p"] is not None else "—"
    return j


_ = html
