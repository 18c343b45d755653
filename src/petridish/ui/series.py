"""Chart data: per metric, one line per combination of the other swept parameters, each point the
mean and 95% CI over seeds (``lab.stats.aggregate``), x the first swept parameter.

Drawn by static/chart.js as inline SVG, on run pages (live, as cells land) and on comparisons.
Shape: ``{"x": name, "metrics": {metric: [{"label": str, "points": [[x, mean, lo, hi], ...]}]}}``.
"""
from __future__ import annotations

import math
from typing import Any

from petridish.lab.experiment import Cell, Experiment
from petridish.lab.stats import aggregate


def axes(cfg: dict[str, Any], exp: Experiment | None) -> list[str]:
    """The swept parameters that define a row: the experiment's ``table_by``, else every list in the
    config (in declaration order when the experiment is known: stored configs have sorted keys)."""
    if exp is not None and exp.table_by:
        return [k for k in exp.table_by if k in cfg]
    order = [p.name for p in exp.params if p.name in cfg] if exp is not None else list(cfg)
    return [k for k in order if isinstance(cfg[k], list)]


def x_first(cfg: dict[str, Any], by: list[str]) -> list[str]:
    """``by`` with the chart's x axis first: the numeric sweep with the most values (ties: first)."""
    if not by:
        return by
    def score(k):
        vals = cfg.get(k) if isinstance(cfg.get(k), list) else []
        return (all(_num(v) is not None for v in vals) and len(vals) > 0, len(vals))
    x = max(by, key=score)
    return [x] + [k for k in by if k != x]


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def series(cfg: dict[str, Any], cells: list[Cell], exp: Experiment | None = None, *,
           label: str = "", max_lines: int = 12) -> dict[str, Any]:
    by = x_first(cfg, axes(cfg, exp))
    metrics = list(exp.table_metrics) if exp is not None and exp.table_metrics else None
    rows = aggregate(cells, by=by, metrics=metrics, bounds=exp.bounds if exp is not None else None)
    x = by[0] if by else None
    rest = by[1:]
    lines: dict[str, dict[str, list]] = {}            # metric -> line label -> points
    for r in rows:
        xv = r["params"].get(x) if x else 0
        name = ", ".join(f"{k}={r['params'][k]}" for k in rest)
        name = " · ".join(s for s in (label, name) if s) or "mean"
        for m, v in r["metrics"].items():
            if _num(v["mean"]) is None:
                continue
            pts = lines.setdefault(m, {}).setdefault(name, [])
            lo, hi = _num(v["lo"]), _num(v["hi"])
            pts.append([xv, v["mean"], v["mean"] if lo is None else lo, v["mean"] if hi is None else hi])
    out = {}
    for m in sorted(lines) if metrics is None else [m for m in metrics if m in lines]:
        got = list(lines[m].items())[:max_lines]
        out[m] = [{"label": k, "points": sorted(p, key=_order)} for k, p in got]
    return {"x": x or "", "metrics": out}


def _order(p: list) -> tuple:
    return (0, p[0], "") if _num(p[0]) is not None else (1, 0.0, str(p[0]))


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Overlay several runs' series: the metrics of all, lines of each run after the other."""
    metrics: dict[str, list] = {}
    for part in parts:
        for m, ls in part["metrics"].items():
            metrics.setdefault(m, []).extend(ls)
    return {"x": next((p["x"] for p in parts if p["x"]), ""), "metrics": dict(sorted(metrics.items()))}
