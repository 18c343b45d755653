"""Multiple-comparison control for findings that scan many points or measures.

``holm`` controls the family-wise error rate (the chance of any false "supported") under any
dependence; ``bh`` (Benjamini–Hochberg) controls the false discovery rate under independence
or positive dependence. Both return adjusted p-values in the input order, so that "adjusted
p < α" is the decision rule; ``bonferroni_level`` gives the matching per-claim CI level for
intervals reported beside Holm-adjusted tests.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def holm(p: Sequence[float]) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values."""
    a = np.asarray(p, dtype=float)
    m = a.size
    order = np.argsort(a, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * a[i]))
        adj[i] = running
    return adj.tolist()


def bh(p: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg step-up adjusted p-values (q-values)."""
    a = np.asarray(p, dtype=float)
    m = a.size
    order = np.argsort(a, kind="stable")
    adj = np.empty(m)
    running = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, a[i] * m / (rank + 1))
        adj[i] = min(1.0, running)
    return adj.tolist()


def bonferroni_level(m: int, level: float = 0.95) -> float:
    """Per-interval confidence level so that m intervals hold simultaneously at ``level``."""
    return 1 - (1 - level) / max(1, m)
