"""Means and 95% confidence intervals over seeds (Student t), for tables and figures."""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats as _st


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the t-interval; with one value the interval is the point."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    m = float(v.mean())
    if v.size == 1:
        return (m, m, m)
    half = float(_st.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return (m, m - half, m + half)


def curve_ci(curves: Sequence[Sequence[float]], level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Element-wise mean and CI of equal-length curves (one per seed)."""
    a = np.asarray(curves, dtype=float)            # (seeds, T)
    m = np.nanmean(a, axis=0)
    if a.shape[0] < 2:
        return m, m.copy(), m.copy()
    half = _st.t.ppf(0.5 + level / 2, a.shape[0] - 1) * np.nanstd(a, axis=0, ddof=1) / math.sqrt(a.shape[0])
    return m, m - half, m + half


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def aggregate(cells, by: Sequence[str], metrics: Sequence[str] | None = None,
              statuses: tuple[str, ...] = ("done",)) -> list[dict[str, Any]]:
    """Group cells by the parameters in ``by`` and summarize scalar metrics over seeds.

    Returns rows ``{"params": {...}, "n": k, "metrics": {name: {"mean", "lo", "hi"}}}``
    in first-seen order of the groups.
    """
    groups: dict[tuple, list] = {}
    for c in cells:
        if c.status not in statuses:
            continue
        key = tuple((k, c.params.get(k)) for k in by)
        groups.setdefault(key, []).append(c)
    rows = []
    for key, members in groups.items():
        names = metrics or sorted({k for c in members for k, v in c.metrics.items() if _is_scalar(v)})
        row = {"params": dict(key), "n": len(members), "metrics": {}}
        for name in names:
            vals = [c.metrics.get(name) for c in members if _is_scalar(c.metrics.get(name))]
            if vals:
                m, lo, hi = mean_ci(vals)
                row["metrics"][name] = {"mean": m, "lo": lo, "hi": hi}
        rows.append(row)
    return rows


def row_means(rows: Sequence[dict[str, Any]], name: str) -> np.ndarray:
    """(len(rows),) mean of metric ``name`` per ``aggregate`` row; NaN where a row lacks it."""
    return np.array([r["metrics"].get(name, {}).get("mean", np.nan) for r in rows], dtype=float)
