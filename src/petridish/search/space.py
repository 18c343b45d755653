"""The search space of an experiment, derived from its declared parameters.

Which parameters are searched: by default the experiment's sweep axes in the chosen
configuration (``--quick`` or full), minus those the user fixes with ``--set``; or
exactly the names given. Each searched parameter becomes an Optuna distribution:

  * str / bool with ``choices`` (bool: False/True) -> categorical;
  * int / float -> a range: the declared ``low``/``high`` when both are given, else the
    min/max of the declared sweep list (clipped to the declared bounds); ``log=True``
    samples on a log scale (the lower end is then raised to the smallest positive value);
  * ``sampler="grid"``: the declared sweep list itself (categorical), the grid to walk.

Everything else is fixed at its configured value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

from petridish.errors import PetridishError
from petridish.lab.experiment import Experiment, Param


@dataclass(frozen=True)
class SearchSpace:
    distributions: dict[str, BaseDistribution]   # searched name -> Optuna distribution
    fixed: dict[str, Any]                        # every other parameter -> its scalar value
    grid: dict[str, list] | None = None          # name -> values, for the grid sampler

    def describe(self) -> dict[str, str]:
        return {k: _describe(d) for k, d in self.distributions.items()}

    def size(self) -> int | None:
        """Number of points for a grid, else None (continuous)."""
        if self.grid is None:
            return None
        n = 1
        for v in self.grid.values():
            n *= len(v)
        return n


def _describe(d: BaseDistribution) -> str:
    if isinstance(d, CategoricalDistribution):
        return "one of " + ", ".join(repr(c) for c in d.choices)
    scale = " (log)" if getattr(d, "log", False) else ""
    return f"[{d.low}, {d.high}]{scale}"


def derive_space(exp: Experiment, cfg: dict[str, Any], *, fixed_by_user: set[str] = frozenset(),
                 names: list[str] | None = None, sampler: str = "tpe") -> SearchSpace:
    """Split ``cfg`` (a validated config) into searched distributions and fixed values."""
    swept = [k for k, v in cfg.items() if isinstance(v, list) and k not in fixed_by_user]
    if names is None:
        names = swept
    for n in names:
        exp.param(n)                                    # unknown names: the standard error
        if n in fixed_by_user:
            raise PetridishError(f"The parameter '{n}' is both fixed with --set and searched; pick one.")
    leftover = [k for k in swept if k not in names]
    if leftover:
        raise PetridishError(
            f"The parameters {', '.join(leftover)} of '{exp.name}' are sweep axes but not searched: "
            f"fix them with --set NAME=VALUE or search them too.")
    if not names:
        raise PetridishError(f"Nothing to search in '{exp.name}': every parameter is fixed. "
                             f"Name parameters to search with --search.")
    dists: dict[str, BaseDistribution] = {}
    grid: dict[str, list] | None = {} if sampler == "grid" else None
    for n in names:
        p = exp.param(n)
        values = cfg[n] if isinstance(cfg[n], list) else [cfg[n]]
        if grid is not None:
            if len(values) < 2 and p.choices is None and p.kind is not bool:
                raise PetridishError(f"The grid sampler needs a list of values for '{n}' "
                                     f"(e.g. --set {n}=1,2,3); it has only {values!r}.")
            grid[n] = values if len(values) >= 2 else list(p.choices or (False, True))
            dists[n] = CategoricalDistribution(grid[n])
        else:
            dists[n] = _distribution(p, values, exp.name)
    fixed = {k: v for k, v in cfg.items() if k not in dists}
    for k, v in fixed.items():
        if isinstance(v, list):
            raise PetridishError(f"The parameter '{k}' must have one value when it is not searched; got {v!r}.")
    return SearchSpace(dists, fixed, grid)


def _distribution(p: Param, values: list, owner: str) -> BaseDistribution:
    if p.choices is not None:
        return CategoricalDistribution(list(p.choices))
    if p.kind is bool:
        return CategoricalDistribution([False, True])
    if p.kind is str:
        if len(values) < 2:
            raise PetridishError(f"The string parameter '{p.name}' of '{owner}' has no declared choices; "
                                 f"give its values as a list (--set {p.name}=a,b) or fix it.")
        return CategoricalDistribution(list(values))
    if p.low is not None and p.high is not None:
        lo, hi = float(p.low), float(p.high)
    else:
        lo, hi = float(min(values)), float(max(values))
        lo = max(lo, float(p.low)) if p.low is not None else lo
        hi = min(hi, float(p.high)) if p.high is not None else hi
    if p.log and lo <= 0:
        pos = [float(v) for v in values if v > 0]
        lo = min(pos) if pos else (1.0 if p.kind is int else 1e-8)
    if not hi > lo:
        raise PetridishError(f"Cannot search '{p.name}' of '{owner}': its range [{lo}, {hi}] is empty; "
                             f"give a sweep list (--set {p.name}=LOW,HIGH).")
    if p.kind is int:
        return IntDistribution(int(round(lo)), int(round(hi)), log=p.log)
    return FloatDistribution(lo, hi, log=p.log)
