"""Means and 95% confidence intervals over seeds (Student t), for tables and figures.

Bounded quantities (error rates, accuracies) pass ``bounds=(0, 1)``: the t-interval is then
intersected with the range. Truncation never lowers coverage, since the true mean lies in the
range, and it removes impossible values such as a train-error CI of [-0.025, 0.044].
A proportion measured as k successes out of n trials uses ``wilson_ci`` instead.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np


def scipy_stats():
    """scipy.stats, imported on first use: it takes about a second to import, which a worker
    process (it only trains) and a command that prints no interval never need to pay."""
    from scipy import stats
    return stats


def mean_ci(values: Iterable[float], level: float = 0.95,
            bounds: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """(mean, low, high) of the t-interval, clipped to ``bounds`` when given; with one value
    the interval is the point."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    m = float(v.mean())
    if v.size == 1:
        return (m, m, m)
    half = float(scipy_stats().t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    lo, hi = m - half, m + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return (m, lo, hi)


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """(k/n, low, high): the Wilson score interval of a binomial proportion, inside [0, 1]."""
    if n <= 0:
        return (math.nan, math.nan, math.nan)
    z = float(scipy_stats().norm.ppf(0.5 + level / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (p, max(0.0, centre - half), min(1.0, centre + half))


def curve_ci(curves: Sequence[Sequence[float]], level: float = 0.95,
             bounds: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Element-wise mean and CI of equal-length curves (one per seed), clipped to ``bounds``."""
    a = np.asarray(curves, dtype=float)            # (seeds, T)
    m = np.nanmean(a, axis=0)
    if a.shape[0] < 2:
        return m, m.copy(), m.copy()
    half = scipy_stats().t.ppf(0.5 + level / 2, a.shape[0] - 1) * np.nanstd(a, axis=0, ddof=1) / math.sqrt(a.shape[0])
    lo, hi = m - half, m + half
    if bounds is not None:
        lo, hi = np.maximum(lo, bounds[0]), np.minimum(hi, bounds[1])
    return m, lo, hi


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def aggregate(cells, by: Sequence[str], metrics: Sequence[str] | None = None,
              statuses: tuple[str, ...] = ("done",),
              bounds: dict[str, tuple[float, float]] | None = None) -> list[dict[str, Any]]:
    """Group cells by the parameters in ``by`` and summarize scalar metrics over seeds.

    Returns rows ``{"params": {...}, "n": k, "metrics": {name: {"mean", "lo", "hi"}}}``
    in first-seen order of the groups. ``bounds`` maps a metric to its range (see ``mean_ci``).
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
                m, lo, hi = mean_ci(vals, bounds=(bounds or {}).get(name))
                row["metrics"][name] = {"mean": m, "lo": lo, "hi": hi}
        rows.append(row)
    return rows


def row_means(rows: Sequence[dict[str, Any]], name: str) -> np.ndarray:
    """(len(rows),) mean of metric ``name`` per ``aggregate`` row; NaN where a row lacks it."""
    return np.array([r["metrics"].get(name, {}).get("mean", np.nan) for r in rows], dtype=float)
