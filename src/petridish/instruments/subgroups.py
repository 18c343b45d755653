"""Subgroup metrics: what an average error hides (Buolamwini & Gebru 2018: 1% against 35%).

Given which examples a model got wrong and a group label per example:

* **per-group error** k_g / n_g, with the Wilson score interval (``petridish.lab.stats.wilson_ci``);
* **average error** over all examples (Wilson), and the **worst-group error** max_g e_g;
* **disparity**: the difference max_g e_g − min_g e_g and the ratio max_g e_g / min_g e_g
  (infinite when the best group makes no error).

The worst-group error and the disparities get a percentile bootstrap CI that resamples within each
group (group sizes fixed). For a per-group error rate that resample is exactly a Binomial(n_g, ê_g)
draw divided by n_g, so the bootstrap is drawn as binomials, seeded. The plug-in worst-group error
is biased upward when groups are small (the max of noisy estimates); its bootstrap shows that bias
as an interval that sits above the point estimate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from petridish.errors import check_number, invalid
from petridish.instruments.estimate import Estimate
from petridish.lab.stats import wilson_ci

OWNER = "subgroup_errors"


@dataclass(frozen=True)
class GroupError:
    group: int
    n: int                       # examples of the group
    errors: int                  # of which misclassified
    error: Estimate              # errors / n with its Wilson interval


@dataclass(frozen=True)
class SubgroupReport:
    groups: tuple[GroupError, ...]           # sorted by group id
    average: Estimate                        # error over all examples (Wilson)
    worst_group: int                         # id of the group with the largest error
    worst: Estimate                          # the worst-group error (bootstrap CI)
    disparity: Estimate                      # max − min group error (bootstrap CI)
    ratio: Estimate                          # max / min group error (bootstrap CI; inf when min is 0)

    def error_of(self, group: int) -> GroupError:
        for g in self.groups:
            if g.group == group:
                return g
        raise invalid("group", "SubgroupReport.error_of", "one of " + ", ".join(str(g.group) for g in self.groups),
                      group)

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat cell metrics: {prefix}error_g{id}(_lo/_hi) per group, average, worst, disparity, ratio."""
        out = {}
        for g in self.groups:
            out.update(g.error.as_dict(f"{prefix}error_g{g.group}"))
        for name in ("average", "worst", "disparity", "ratio"):
            out.update(getattr(self, name).as_dict(f"{prefix}{name}_error" if name in ("average", "worst")
                                                   else f"{prefix}{name}"))
        return out


def _array(a, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim != 1:
        raise invalid(name, OWNER, "a 1-d array (n,)", f"shape {a.shape}")
    return a


def subgroup_errors(*, groups, errors=None, y_pred=None, y_true=None, level: float = 0.95,
                    n_boot: int = 2000, seed: int = 0) -> SubgroupReport:
    """Per-group, average and worst-group error and the disparities of one model.

    Give ``errors`` (n,) bool (True = misclassified), or ``y_pred`` and ``y_true`` (n,) labels;
    ``groups`` (n,) integer group ids. Every group present gets a row; a CI level, bootstrap size
    and seed may be set."""
    g = _array(groups, "groups")
    if g.size == 0:
        raise invalid("groups", OWNER, "a non-empty 1-d array of group ids", "an empty array")
    if not np.issubdtype(g.dtype, np.integer):
        raise invalid("groups", OWNER, "an integer array of group ids", f"dtype {g.dtype}")
    if errors is not None:
        if y_pred is not None or y_true is not None:
            raise invalid("errors", OWNER, "given alone, or y_pred and y_true instead", "errors and labels")
        e = _array(errors, "errors")
        if not np.isin(e, (0, 1)).all():
            raise invalid("errors", OWNER, "a bool array (True = misclassified)", f"values {np.unique(e)[:5]}")
        e = e.astype(bool)
    else:
        if y_pred is None or y_true is None:
            raise invalid("errors", OWNER, "given, or both y_pred and y_true", None)
        yp, yt = _array(y_pred, "y_pred"), _array(y_true, "y_true")
        if yp.shape != yt.shape:
            raise invalid("y_pred", OWNER, f"of shape {yt.shape} like y_true", f"shape {yp.shape}")
        e = yp != yt
    if e.shape != g.shape:
        raise invalid("groups", OWNER, f"of shape {e.shape} (one id per example)", f"shape {g.shape}")
    level = check_number(level, "level", OWNER, low=0, high=1, low_open=True, high_open=True)
    n_boot = check_number(n_boot, "n_boot", OWNER, kind=int, low=10)
    seed = check_number(seed, "seed", OWNER, kind=int, low=0)

    ids = np.unique(g)
    n = np.array([(g == i).sum() for i in ids])                   # (G,)
    k = np.array([e[g == i].sum() for i in ids])                  # (G,)
    rows = []
    for i, ni, ki in zip(ids, n, k):
        p, lo, hi = wilson_ci(int(ki), int(ni), level)
        rows.append(GroupError(int(i), int(ni), int(ki), Estimate(p, (lo, hi), "Wilson", level)))
    p, lo, hi = wilson_ci(int(k.sum()), int(n.sum()), level)
    average = Estimate(p, (lo, hi), "Wilson", level)

    rate = k / n                                                  # (G,)
    boot = np.random.default_rng(seed).binomial(n, rate, size=(n_boot, ids.size)) / n     # (B, G)
    how = f"bootstrap within groups (B = {n_boot}, binomial), percentile"
    q = ((1 - level) / 2, (1 + level) / 2)

    def est(point: float, dist: np.ndarray) -> Estimate:
        lo_, hi_ = np.quantile(dist, q, method="inverted_cdf")   # no interpolation: inf stays inf
        return Estimate(float(point), (float(lo_), float(hi_)), how, level)

    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = lambda r: np.where(r.min(-1) > 0, r.max(-1) / np.where(r.min(-1) > 0, r.min(-1), 1),
                                   np.where(r.max(-1) > 0, math.inf, 1.0))
        worst = est(rate.max(), boot.max(1))
        disparity = est(rate.max() - rate.min(), boot.max(1) - boot.min(1))
        rat = est(float(ratio(rate)), ratio(boot))
    return SubgroupReport(groups=tuple(rows), average=average, worst_group=int(ids[int(np.argmax(rate))]),
                          worst=worst, disparity=disparity, ratio=rat)
