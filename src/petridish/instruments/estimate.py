"""A point estimate with its confidence interval and how it was obtained (typed instrument results)."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    estimate: float
    ci: tuple[float, float]          # (low, high) at ``level``
    method: str                      # e.g. "DeLong", "stratified bootstrap (B = 1000), percentile"
    level: float = 0.95

    @property
    def lo(self) -> float:
        return self.ci[0]

    @property
    def hi(self) -> float:
        return self.ci[1]

    def contains(self, value: float) -> bool:
        return self.ci[0] <= value <= self.ci[1]

    def as_dict(self, name: str) -> dict[str, float]:
        """Flat metrics for a cell: {name, name_lo, name_hi}; non-finite values become NaN."""
        f = lambda v: float(v) if math.isfinite(v) else math.nan
        return {name: f(self.estimate), f"{name}_lo": f(self.ci[0]), f"{name}_hi": f(self.ci[1])}
