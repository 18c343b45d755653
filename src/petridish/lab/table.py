"""The summary table of a run: one row per parameter combination, mean and 95% CI over seeds."""
from __future__ import annotations

import math
from typing import Any

from petridish.lab.experiment import Cell, Experiment
from petridish.lab.stats import aggregate


def table_rows(exp: Experiment, cfg: dict[str, Any], cells: list[Cell]) -> tuple[list[str], list[str], list[dict]]:
    by = list(exp.table_by) if exp.table_by else [k for k, v in cfg.items() if isinstance(v, list)]
    rows = aggregate(cells, by=by, metrics=list(exp.table_metrics) if exp.table_metrics else None,
                     bounds=exp.bounds)
    names = list(exp.table_metrics) if exp.table_metrics else sorted({m for r in rows for m in r["metrics"]})
    return by, names, rows


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    a = abs(x)
    if a != 0 and (a >= 1e4 or a < 1e-3):
        return f"{x:.3e}"
    return f"{x:.4g}"


def fmt_ci(m: dict | None) -> str:
    if not m:
        return "—"
    if abs(m["hi"] - m["lo"]) <= 1e-9 * max(1.0, abs(m["mean"])):
        return fmt(m["mean"])
    return f"{fmt(m['mean'])} [{fmt(m['lo'])}, {fmt(m['hi'])}]"


def render_text(exp: Experiment, cfg: dict[str, Any], cells: list[Cell]) -> str:
    by, names, rows = table_rows(exp, cfg, cells)
    header = by + ["seeds"] + names
    body = [[fmt(r["params"][k]) if isinstance(r["params"][k], float) else str(r["params"][k]) for k in by]
            + [str(r["n"])] + [fmt_ci(r["metrics"].get(m)) for m in names] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(out)
