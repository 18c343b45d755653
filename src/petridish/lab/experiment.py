"""How an experiment declares itself to the lab.

An experiment is one module in ``petridish.experiments`` that defines a module-level
``EXPERIMENT = Experiment(...)``. The lab discovers it, validates parameters against
its declaration, expands the sweep grid, runs cells, stores them, and calls its
``analyze`` and ``plot`` hooks for reports.

Contract for ``run(params, seed) -> metrics``:
  * ``params`` holds one scalar value per declared parameter (sweep axes already expanded);
  * the function is deterministic given (params, seed) and must not touch the store;
  * ``metrics`` is a flat dict: str -> float | int | str | bool | list[float] (curves);
  * ``metrics["diverged"] = True`` marks the cell ``diverged`` (kept, not retried);
  * it may call ``report_intermediate(step, value)`` for pruning in adaptive search.

Optional batched path ``run_group(params_list, seeds) -> list[metrics]``: the lab
groups cells whose parameters agree on every name in ``group_by`` (seeds and the
other parameters may differ) and hands each group over in one call, so that an
experiment can train them as one vectorized ensemble. Results must equal what
``run`` would give for each cell, up to float rounding.
"""
from __future__ import annotations

import contextvars
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from petridish.errors import InvalidParameterError

Metrics = dict[str, Any]


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    ``default`` (and ``quick``) may be a scalar or a list; a list makes the parameter
    a sweep axis. ``low``/``high`` are inclusive bounds for numbers; ``choices``
    restricts any type. ``log`` tells adaptive search to sample on a log scale.
    """

    name: str
    kind: type
    default: Any
    quick: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    log: bool = False
    help: str = ""

    def describe(self) -> str:
        kind = {int: "an int", float: "a float", str: "a string", bool: "a bool"}[self.kind]
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        bounds = []
        if self.low is not None:
            bounds.append(f">= {self.low}")
        if self.high is not None:
            bounds.append(f"<= {self.high}")
        return kind + (" " + " and ".join(bounds) if bounds else "")

    def coerce(self, value: Any, owner: str) -> Any:
        """Return ``value`` as this parameter's type, or raise the one-line error."""
        v = value
        try:
            if isinstance(v, str) and self.kind is not str:
                v = _parse_scalar(v, self.kind)
            if self.kind is bool:
                if not isinstance(v, bool):
                    raise ValueError
            elif self.kind is int:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or float(v) != int(v):
                    raise ValueError
                v = int(v)
            elif self.kind is float:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError
                v = float(v)
            elif self.kind is str and not isinstance(v, str):
                raise ValueError
        except (ValueError, TypeError):
            raise InvalidParameterError(
                f"The '{self.name}' parameter of {owner} must be {self.describe()}. Got {value!r}.") from None
        if self.choices is not None and v not in self.choices:
            raise InvalidParameterError(
                f"The '{self.name}' parameter of {owner} must be {self.describe()}. Got {value!r}.")
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            raise InvalidParameterError(
                f"The '{self.name}' parameter of {owner} must be {self.describe()}. Got {value!r}.")
        return v


def _parse_scalar(text: str, kind: type) -> Any:
    t = text.strip()
    if kind is bool:
        low = t.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(text)
    if kind is int:
        f = float(t)
        if f != int(f):
            raise ValueError(text)
        return int(f)
    return float(t)


@dataclass(frozen=True)
class Analysis:
    """What ``analyze`` returns: findings as sentences with numbers from the run, any derived
    quantities (kept in JSON and the report), and optionally the claims behind the findings.

    When ``claims`` are given (``petridish.lab.claims``; every catalogue experiment does this),
    each claim's finding sentence is generated from its numbers and verdict and put first in
    ``findings``; free-text ``findings`` passed beside them are kept after those and should only
    describe, never conclude. User experiments may keep passing plain findings.
    """

    findings: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    claims: list[Any] = field(default_factory=list)

    def __post_init__(self):
        if self.claims:
            derived = [c.finding() for c in self.claims]
            object.__setattr__(self, "findings", derived + [f for f in self.findings if f not in derived])

    def to_json(self) -> dict[str, Any]:
        return {"findings": list(self.findings), "values": self.values,
                "claims": [c.to_json() for c in self.claims]}


@dataclass(frozen=True)
class Experiment:
    name: str
    question: str
    reference: str
    params: tuple[Param, ...]
    run: Callable[[dict[str, Any], int], Metrics]
    version: int = 1
    seeds: int = 3
    quick_seeds: int | None = None
    runtime: str = "?"          # measured default runtime on 2 CPU cores, for `list` and README
    summary: str = ""            # one line for `petridish list`
    run_group: Callable[[list[dict[str, Any]], list[int]], list[Metrics]] | None = None
    group_by: tuple[str, ...] = ()
    max_group: int = 64
    analyze: Callable[[list["Cell"]], Analysis] | None = None
    plot: Callable[[list["Cell"], Any], None] | None = None   # (cells, matplotlib Figure)
    table_by: tuple[str, ...] | None = None   # params that define a table row; default: all swept
    table_metrics: tuple[str, ...] | None = None  # scalar metrics shown in `show`; default: all
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)  # metric -> range, e.g. errors (0, 1)
    # The experiment contract suite (``petridish check``, ``lab.check``):
    tiny: dict[str, Any] = field(default_factory=dict)   # overrides for a seconds-long check run (on top of quick)
    group_rtol: float = 1e-4     # run_group vs run, relative, per metric (float32 paths differ in rounding)
    quick_budget_s: float = 90.0  # `--quick` wall-time budget on 2 cores (checked by `check --timing`)
    wall_metrics: tuple[str, ...] = ()  # metrics that measure wall time: type-checked, exempt from equality checks

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        allowed = ", ".join(p.name for p in self.params)
        raise InvalidParameterError(
            f"Unknown parameter '{name}' for experiment '{self.name}'. Allowed: {allowed}.")

    def config(self, overrides: dict[str, Any] | None = None, *, quick: bool = False) -> dict[str, Any]:
        """Validated configuration: name -> scalar or list of scalars (a sweep axis)."""
        overrides = dict(overrides or {})
        for key in overrides:
            self.param(key)
        cfg: dict[str, Any] = {}
        for p in self.params:
            if p.name in overrides:
                raw = overrides[p.name]
            elif quick and p.quick is not None:
                raw = p.quick
            else:
                raw = p.default
            if isinstance(raw, str) and p.kind is not str and "," in raw:
                raw = [s for s in raw.split(",") if s.strip()]
            if isinstance(raw, (list, tuple)):
                vals = [p.coerce(v, f"experiment '{self.name}'") for v in raw]
                cfg[p.name] = vals if len(vals) != 1 else vals[0]
            else:
                cfg[p.name] = p.coerce(raw, f"experiment '{self.name}'")
        return cfg

    def n_seeds(self, quick: bool = False) -> int:
        return (self.quick_seeds or self.seeds) if quick else self.seeds

    def grid(self, cfg: dict[str, Any], seeds: Sequence[int]) -> list[tuple[dict[str, Any], int]]:
        """Cartesian product of list-valued parameters, times seeds, in declaration order."""
        axes = [(k, v if isinstance(v, list) else [v]) for k, v in cfg.items()]
        cells = []
        for combo in itertools.product(*[vals for _, vals in axes]):
            params = {k: combo[i] for i, (k, _) in enumerate(axes)}
            for s in seeds:
                cells.append((params, int(s)))
        return cells

    def swept(self, cfg: dict[str, Any]) -> list[str]:
        return [k for k, v in cfg.items() if isinstance(v, list)]


@dataclass
class Cell:
    """One finished (or failed) cell as the store keeps it."""

    key: str
    experiment: str
    params: dict[str, Any]
    seed: int
    status: str                  # "done" | "diverged" | "failed"
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    wall_time: float = 0.0       # seconds
    peak_mem_mb: float = 0.0     # peak resident set of the process that ran it, MiB
    run_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"params": self.params, "seed": self.seed, "status": self.status, "metrics": self.metrics}
        if self.error:
            out["error"] = self.error
        return out


class Pruned(Exception):
    """Raised from ``report_intermediate`` when adaptive search prunes the cell."""


_reporter: contextvars.ContextVar[Callable[[int, float], None] | None] = contextvars.ContextVar(
    "petridish_reporter", default=None)


def report_intermediate(step: int, value: float, metric: str | None = None) -> None:
    """Report an intermediate value of ``metric`` (e.g. test error after epoch ``step``).

    A no-op outside adaptive search; under search it may raise :class:`Pruned`. A value
    tagged with a ``metric`` other than the one searched is ignored, so an experiment may
    report several metrics and the pruner only ever compares like with like.
    """
    fn = _reporter.get()
    if fn is not None:
        fn(int(step), float(value), metric)


def set_reporter(fn: Callable[[int, float], None] | None):
    """Install a reporter for the current context; returns a token for ``reset_reporter``."""
    return _reporter.set(fn)


def reset_reporter(token) -> None:
    _reporter.reset(token)
