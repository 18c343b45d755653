"""What the templates show, computed from the store: counts, the CI table, findings, provenance.
Plain data in, plain data out; routers stay thin."""
from __future__ import annotations

import datetime as dt
import json
import math
import time
from typing import Any

from petridish.lab.experiment import Cell, Experiment
from petridish.lab.stats import aggregate
from petridish.lab.store import FINISHED, RunRecord
from petridish.lab.table import fmt, fmt_ci, table_rows
from petridish.ui.series import axes

STATUSES = ("running", "finished", "interrupted")


def counts_of(n_cells: int, by_status: dict[str, int]) -> dict[str, int]:
    """done/diverged/failed/pending out of the sweep's ``n_cells``."""
    done, div, fail = by_status.get("done", 0), by_status.get("diverged", 0), by_status.get("failed", 0)
    return {"done": done, "diverged": div, "failed": fail, "total": n_cells,
            "pending": max(0, n_cells - done - div)}


def table(exp: Experiment | None, cfg: dict[str, Any], cells: list[Cell]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table: mean [95% CI] over seeds per parameter combination."""
    if exp is not None:
        by, names, rows = table_rows(exp, cfg, cells)
    else:
        by = axes(cfg, None)
        rows = aggregate(cells, by=by)
        names = sorted({m for r in rows for m in r["metrics"]})
    body = [[fmt(r["params"][k]) if isinstance(r["params"][k], float) else str(r["params"][k]) for k in by]
            + [str(r["n"])] + [fmt_ci(r["metrics"].get(m)) for m in names] for r in rows]
    return by + ["seeds"] + names, body


def claims(analysis) -> list[dict[str, Any]]:
    out = []
    for c in analysis.claims:
        j = c.to_json()
        j["estimate_s"] = fmt(j["estimate"]) if j["estimate"] is not None else "not measured"
        j["ci_s"] = f"[{fmt(j['ci'][0])}, {fmt(j['ci'][1])}]" if j["ci"] else "—"
        j["p_s"] = f"{j['p']:.2g}" if j["p"] is not None else "—"
        out.append(j)
    return out


def other_findings(analysis) -> list[str]:
    """The findings that are not a claim's own sentence (those are the claims table's rows);
    all of them when the experiment states no claims."""
    own = {c.finding() for c in analysis.claims}
    return [f for f in analysis.findings if f not in own]


def provenance_rows(run: RunRecord) -> list[tuple[str, str]]:
    return [(k, v if isinstance(v, str) else json.dumps(v, sort_keys=True)) for k, v in sorted(run.provenance.items())]


def progress(run: RunRecord, cells_by_status: dict[str, int], now: float | None = None) -> dict[str, Any]:
    """Counts, fraction done and an ETA. The fraction is in training steps when the sweep reports
    them (``provenance["progress"]``, written every few seconds by the driver), else in finished
    cells. ETA: the sweep's own (its session's rate) less the time since it was written; else
    elapsed × (1 − f) / f since the run was created. The page refines it with the rate it observes."""
    now = time.time() if now is None else now
    c = counts_of(run.n_cells, cells_by_status)
    p = run.provenance.get("progress") if isinstance(run.provenance.get("progress"), dict) else None
    steps = None
    if p and p.get("steps_total"):
        steps = {"done": int(p.get("steps_done", 0)), "total": int(p["steps_total"])}
        frac = steps["done"] / steps["total"]
    else:
        frac = (c["done"] + c["diverged"]) / run.n_cells if run.n_cells else 1.0
    frac = min(max(frac, 0.0), 1.0)
    elapsed = max(0.0, now - run.created)
    running = run.status == "running"
    updated = p.get("updated") if p and isinstance(p.get("updated"), (int, float)) else None
    since = max(0.0, now - updated) if updated is not None else None
    eta, source = None, None
    if running and p and isinstance(p.get("eta_s"), (int, float)):
        eta, source = max(0.0, p["eta_s"] - (since or 0.0)), "sweep"
    elif running and 0 < frac < 1:
        eta, source = elapsed * (1 - frac) / frac, "elapsed"
    return {"run": run.id, "status": run.status, "counts": c, "fraction": frac, "steps": steps,
            "elapsed_s": elapsed, "eta_s": eta, "eta_from": source, "wall_time_s": run.wall_time,
            "updated": updated, "silent_s": since if running else None, "now": now}


def finished(cells: list[Cell]) -> int:
    return sum(c.status in FINISHED for c in cells)


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else (f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{seconds:.1f} s")


def when(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M")


def filters() -> dict[str, Any]:
    return {"duration": duration, "when": when}
