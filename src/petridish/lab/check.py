"""The experiment contract suite, as scikit-learn's ``check_estimator`` is for estimators.

``check_experiment(exp)`` runs ``exp`` on its tiny configuration (``exp.tiny`` on top of the quick
one, 2 seeds, or 3 when it sweeps nothing) and checks the contract that ``lab.experiment`` states:

* ``deterministic``: ``run`` twice on one cell, on one thread, gives identical metrics;
* ``metrics``: every cell's metrics are a flat dict str -> float | int | str | bool | list of
  numbers, and ``json.dumps`` takes them. NaN and ±inf are allowed (a diverged loss, a vacuous
  bound): the store keeps them and ``--json`` writes them as null. numpy and torch scalars,
  nested dicts and lists holding anything but numbers are violations;
* ``run_group``: on a group of >= 2 cells with different seeds (and different non-grouped
  parameters where the tiny grid has them), ``run_group`` equals ``run`` cell by cell: ints,
  strings and bools exactly; floats within ``exp.group_rtol`` relative to the metric's magnitude
  (``|a - b| <= rtol * max(|a|, |b|)``; a curve's points against the curve's largest |value|);
  non-finite values must agree exactly;
* ``params``: the default and quick configurations are valid, and each declaration refuses a wrong type, a value outside [low, high] and one not in
  ``choices`` with the one-line InvalidParameterError ("The 'x' parameter of ... must be ...
  Got ..."), and a number without any declared range or choices is reported (it accepts any);
* ``partial``: ``analyze`` and ``plot`` (as ``petridish report`` draws it, Agg backend), and the
  summary table, work on the complete tiny sweep and on a partial one: the first cell diverged
  (metrics ``{"diverged": True}``, what most experiments return), the second failed (empty
  metrics), the last missing (from 4 cells on), the rest done;
* ``timing`` (opt-in): the ``--quick`` sweep, run as the CLI runs it (one worker per core),
  ends within ``exp.quick_budget_s`` seconds.

Each check gives one line: "ok" with what was checked, or the first violation found.
"""
from __future__ import annotations

import io
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from petridish.errors import InvalidParameterError, PetridishError
from petridish.lab.cellkey import canonical
from petridish.lab.experiment import Cell, Experiment, Metrics
from petridish.threads import pin_threads

SEEDS = (0, 1)            # the tiny grid's seeds (a third when the tiny config sweeps nothing)
GROUP_CELLS = 4           # at most this many cells in the run_group comparison (each also costs a run)
INJECTED = "RuntimeError: a failed cell injected by petridish check"


@dataclass(frozen=True)
class CheckResult:
    name: str              # deterministic | metrics | run_group | params | partial | timing
    ok: bool
    message: str           # one line: what was checked, or the first violation
    seconds: float = 0.0
    skipped: bool = False

    def line(self) -> str:
        status = "skip" if self.skipped else ("ok" if self.ok else "FAIL")
        return f"{status:<4} {self.name:<13} {self.message} [{self.seconds:.1f} s]"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "skipped": self.skipped, "message": self.message,
                "seconds": self.seconds}


@dataclass
class CheckReport:
    experiment: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> list[str]:
        """One line per failed check: its reason."""
        return [r.message for r in self.results if not r.ok]

    def get(self, name: str) -> CheckResult:
        return next(r for r in self.results if r.name == name)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "ok": self.ok, "seconds": self.seconds,
                "checks": [r.to_json() for r in self.results]}


class Violation(Exception):
    """A broken contract; its message is the check's one line."""


# --------------------------------------------------------------------------- the driver


def check_experiment(exp: Experiment | str, *, timing: bool = False) -> CheckReport:
    """Run the contract checks on ``exp`` (its ``tiny`` overrides on top of ``--quick``, 2 seeds).
    ``exp``: an Experiment, or a spec ``lab.sweep.resolve`` takes (a name, a PATH.py, module:ATTR)."""
    if isinstance(exp, str):
        from petridish.lab.sweep import resolve
        exp = resolve(exp)
    if not isinstance(exp, Experiment):
        raise PetridishError(f"check_experiment takes an Experiment or its name. Got {type(exp).__name__}.")
    report = CheckReport(exp.name)
    try:
        cfg = exp.config(exp.tiny, quick=True)
    except InvalidParameterError as e:
        report.results.append(CheckResult("tiny", False, f"the tiny configuration is invalid: {e}"))
        return report
    lab = _Bench(exp, cfg)
    steps: list[tuple[str, Callable[[], str]]] = [
        ("deterministic", lab.deterministic), ("run_group", lab.group), ("metrics", lab.metrics_types),
        ("params", lambda: check_params(exp)), ("partial", lab.partial)]
    for name, fn in steps:
        report.results.append(_timed(name, fn))
    if timing:
        report.results.append(_timed("timing", lambda: check_timing(exp)))
    else:
        report.results.append(CheckResult("timing", True, "not run (opt-in: --timing)", skipped=True))
    return report


def _timed(name: str, fn: Callable[[], str]) -> CheckResult:
    t0 = time.perf_counter()
    try:
        msg, ok = fn(), True
    except Violation as e:
        msg, ok = str(e), False
    except Exception as e:       # a crash inside the experiment's code is a violation too
        msg, ok = f"{name} raised {type(e).__name__}: {_one_line(str(e))}", False
    return CheckResult(name, ok, msg, time.perf_counter() - t0)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


class _Bench:
    """The tiny grid and the metrics computed on it, shared by the checks (each cell runs once
    per purpose: the determinism pair, the run_group comparison, the rest for the partial sweep)."""

    def __init__(self, exp: Experiment, cfg: dict[str, Any]):
        self.exp, self.cfg = exp, cfg
        # 2 seeds; 3 when nothing is swept, so that the partial sweep keeps a finished cell
        seeds = list(SEEDS) if len(exp.grid(cfg, [0])) > 1 else list(SEEDS) + [len(SEEDS)]
        self.grid = exp.grid(cfg, seeds)                # [(params, seed)] in declaration order
        self.swept = exp.swept(cfg)
        self.solo: dict[str, Metrics] = {}              # cell id -> metrics from run
        self.batch: dict[str, Metrics] = {}             # cell id -> metrics from run_group (or the lab's task)

    def label(self, params: dict[str, Any], seed: int) -> str:
        shown = {k: params[k] for k in self.swept} if self.swept else {}
        return f"cell {shown} seed {seed}"

    def run(self, params: dict[str, Any], seed: int) -> Metrics:
        try:
            with pin_threads(1):
                m = self.exp.run(dict(params), seed)
        except Exception as e:
            raise Violation(f"run raised on {self.label(params, seed)}: "
                            f"{type(e).__name__}: {_one_line(str(e))}") from None
        if not isinstance(m, dict):
            raise Violation(f"run returned a {type(m).__name__} for {self.label(params, seed)}; "
                            "the contract wants a dict of metrics")
        self.solo.setdefault(_cid(params, seed), m)
        return m

    # -- checks ------------------------------------------------------------------------

    def deterministic(self) -> str:
        params, seed = self.grid[0]
        first, second = self.run(params, seed), self.run(params, seed)
        diff = compare(first, second, rtol=0.0, skip=self.exp.wall_metrics)
        if diff:
            raise Violation(f"run is not deterministic for {self.label(params, seed)}: {diff} "
                            "(two runs, one thread)")
        return f"run twice on {self.label(params, seed)}: identical ({len(first)} metrics)"

    def metrics_types(self) -> str:
        self.compute_rest()
        for source, found in (("run", self.solo), ("run_group", self.batch)):
            for cid, m in found.items():
                problem = metrics_problem(m)
                if problem:
                    params, seed = _uncid(cid)
                    raise Violation(f"metrics from {source} on {self.label(params, seed)}: {problem}")
        return (f"{len(self.grid)} cells ({len(self.solo)} from run, {len(self.batch)} from run_group): flat, "
                "JSON-serializable, of the contract's types")

    def group(self) -> str:
        exp = self.exp
        if exp.run_group is None:
            return "no run_group declared"
        members = pick_group(exp, self.grid)
        if len(members) < 2:
            raise Violation(f"max_group={exp.max_group} leaves no group of 2 cells to compare")
        plist, seeds = [dict(p) for p, _ in members], [s for _, s in members]
        try:
            with pin_threads(1):
                got = exp.run_group(plist, seeds)
        except Exception as e:
            raise Violation(f"run_group raised on a group of {len(members)} cells: "
                            f"{type(e).__name__}: {_one_line(str(e))}") from None
        if not isinstance(got, (list, tuple)) or len(got) != len(members):
            n = len(got) if isinstance(got, (list, tuple)) else type(got).__name__
            raise Violation(f"run_group returned {n} results for a group of {len(members)} cells")
        worst = 0.0                                      # largest relative difference seen
        for (params, seed), g in zip(members, got):
            if not isinstance(g, dict):
                raise Violation(f"run_group returned a {type(g).__name__} for {self.label(params, seed)}")
            solo = self.solo.get(_cid(params, seed))
            if solo is None:
                solo = self.run(params, seed)
            diff = compare(solo, g, rtol=exp.group_rtol, names=("run", "run_group"), skip=exp.wall_metrics)
            if diff:
                raise Violation(f"run_group differs from run for {self.label(params, seed)}: {diff} "
                                f"(rtol {exp.group_rtol:g})")
            self.batch.setdefault(_cid(params, seed), g)
            worst = max(worst, max_rel_diff(solo, g, skip=exp.wall_metrics))
        n_sets = len({canonical(p) for p, _ in members})
        return (f"equals run on a group of {len(members)} cells ({len(set(seeds))} seeds, "
                f"{n_sets} parameter sets): largest relative difference {worst:.1e}, rtol {exp.group_rtol:g}")

    def partial(self) -> str:
        cells = self.all_cells()
        n = len(cells)
        _sweep_views(self.exp, self.cfg, cells, f"the complete tiny sweep ({n} cells)")
        roles = partial_roles(n)
        part = []
        for c, role in zip(cells, roles):
            if role == "diverged":
                part.append(_cell(self.exp, c.params, c.seed, "diverged", {"diverged": True}))
            elif role == "failed":
                part.append(_cell(self.exp, c.params, c.seed, "failed", {}, INJECTED))
            elif role == "done":
                part.append(c)
        counts = ", ".join(f"{roles.count(r)} {r}" for r in ("done", "diverged", "failed", "missing"))
        _sweep_views(self.exp, self.cfg, part, f"a partial sweep ({counts})")
        return f"analyze, plot and table work on the complete tiny sweep ({n} cells) and a partial one ({counts})"

    def compute_rest(self) -> None:
        """Run the cells of the tiny grid that no check has computed yet, as the lab runs them
        (groups through run_group, one thread)."""
        from petridish.lab.sweep import make_tasks
        from petridish.lab.worker import run_task
        todo = [(_cid(p, s), p, s) for p, s in self.grid if self.get(p, s) is None]
        for task in make_tasks(self.exp, todo):
            for c in run_task(task):
                if c.status == "failed":
                    raise Violation(f"the lab's task failed on {self.label(c.params, c.seed)}: "
                                    f"{_one_line(c.error or '')}")
                (self.batch if len(task.cells) > 1 else self.solo)[c.key] = c.metrics

    def get(self, params: dict[str, Any], seed: int) -> Metrics | None:
        cid = _cid(params, seed)
        return self.solo.get(cid, self.batch.get(cid))

    def all_cells(self) -> list[Cell]:
        """Every cell of the tiny grid, finished."""
        self.compute_rest()
        out = []
        for p, s in self.grid:
            m = dict(self.get(p, s))
            out.append(_cell(self.exp, p, s, "diverged" if m.get("diverged") else "done", m))
        return out


def _cid(params: dict[str, Any], seed: int) -> str:
    return canonical([params, seed])


def _uncid(cid: str) -> tuple[dict[str, Any], int]:
    params, seed = json.loads(cid)
    return params, seed


def _cell(exp: Experiment, params: dict[str, Any], seed: int, status: str, metrics: Metrics,
          error: str | None = None) -> Cell:
    return Cell(_cid(params, seed), exp.name, dict(params), seed, status, dict(metrics), error)


# --------------------------------------------------------------------------- metrics


def metrics_problem(m: Any) -> str | None:
    """Why ``m`` breaks the metrics contract, or None."""
    if not isinstance(m, dict):
        return f"a {type(m).__name__}, not a dict"
    for k, v in m.items():
        if not isinstance(k, str):
            return f"key {k!r} is a {type(k).__name__}, not a str"
        if k == "diverged" and not isinstance(v, bool):
            return f"'diverged' is a {_tname(v)}; it must be a bool"
        if isinstance(v, (bool, int, float, str)):
            continue
        if isinstance(v, list):
            bad = next((x for x in v if isinstance(x, bool) or not isinstance(x, (int, float))), _NONE)
            if bad is _NONE:
                continue
            return f"metric '{k}' is a list holding a {_tname(bad)}; a curve holds only numbers"
        return (f"metric '{k}' is a {_tname(v)}; the contract allows float, int, str, bool "
                "or a list of numbers")
    try:
        json.dumps(m, allow_nan=True)
    except (TypeError, ValueError) as e:
        return f"not JSON-serializable: {e}"
    return None


_NONE = object()


def _tname(v: Any) -> str:
    t = type(v)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def compare(a: Metrics, b: Metrics, *, rtol: float, names: tuple[str, str] = ("first run", "second run"),
            skip: tuple[str, ...] = ()) -> str | None:
    """The first difference between two metric dicts (one phrase), or None. ``rtol=0``: exact.
    Metrics named in ``skip`` (wall times) need only be present in both."""
    for k in a:
        if k not in b:
            return f"metric '{k}' from {names[0]} is missing from {names[1]}"
    for k in b:
        if k not in a:
            return f"metric '{k}' from {names[1]} is missing from {names[0]}"
    for k in a:
        if k in skip:
            continue
        diff = _differs(a[k], b[k], rtol)
        if diff:
            return f"metric '{k}'{diff}"
    return None


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _fmt(x: Any) -> str:
    return f"{x:.6g}" if isinstance(x, float) else repr(x)


def _differs(x: Any, y: Any, rtol: float) -> str | None:
    if isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y):
            return f" has {len(x)} points vs {len(y)}"
        nums = [v for v in x + y if _is_num(v) and math.isfinite(v)]
        scale = max((abs(v) for v in nums), default=0.0)     # the curve's magnitude
        for i, (u, v) in enumerate(zip(x, y)):
            if _is_num(u) and _is_num(v):
                if not _num_close(u, v, rtol, scale):
                    return f"[{i}] {_fmt(u)} vs {_fmt(v)}"
            elif u != v:
                return f"[{i}] {_fmt(u)} vs {_fmt(v)}"
        return None
    if _is_num(x) and _is_num(y):
        if isinstance(x, int) and isinstance(y, int):
            return None if x == y else f" {x} vs {y}"
        return None if _num_close(x, y, rtol, max(abs(x), abs(y))) else f" {_fmt(x)} vs {_fmt(y)}"
    if type(x) is not type(y) or x != y:
        return f" {_fmt(x)} vs {_fmt(y)}"
    return None


def max_rel_diff(a: Metrics, b: Metrics, *, skip: tuple[str, ...] = ()) -> float:
    """The largest |a - b| / magnitude over the finite numbers of the metrics both have (the
    measure ``rtol`` bounds: a number's own magnitude, a curve's largest |value|)."""
    worst = 0.0
    for k in a.keys() & b.keys() - set(skip):
        x, y = a[k], b[k]
        if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            pairs = [(u, v) for u, v in zip(x, y) if _is_num(u) and _is_num(v) and math.isfinite(u) and math.isfinite(v)]
            scale = max((max(abs(u), abs(v)) for u, v in pairs), default=0.0)
        elif _is_num(x) and _is_num(y) and math.isfinite(x) and math.isfinite(y):
            pairs, scale = [(x, y)], max(abs(x), abs(y))
        else:
            continue
        if scale > 0:
            worst = max([worst] + [abs(u - v) / scale for u, v in pairs])
    return worst


def _num_close(u: float, v: float, rtol: float, scale: float) -> bool:
    if not (math.isfinite(u) and math.isfinite(v)):
        return (math.isnan(u) and math.isnan(v)) or u == v
    return u == v or abs(u - v) <= rtol * scale


# --------------------------------------------------------------------------- run_group


def pick_group(exp: Experiment, grid: list[tuple[dict[str, Any], int]]) -> list[tuple[dict[str, Any], int]]:
    """Cells of one ``group_by`` group, as the lab would batch them: the group with the most
    parameter sets, up to GROUP_CELLS (and max_group) cells, seeds alternating so that the
    members differ in seed and, where the grid allows, in their non-grouped parameters."""
    groups: dict[str, list] = {}
    for p, s in grid:
        groups.setdefault(canonical([p.get(k) for k in exp.group_by]), []).append((p, s))
    best = max(groups.values(), key=lambda g: (len({canonical(p) for p, _ in g}), len(g)))
    by_params: dict[str, list] = {}
    for p, s in best:
        by_params.setdefault(canonical(p), []).append((p, s))
    order = []                      # parameter set i with seed i mod 2 first, then the others
    sets = list(by_params.values())
    for i, cells in enumerate(sets):
        order.append(cells[i % len(cells)])
    order += [c for cells in sets for c in cells if c not in order]
    if len({s for _, s in order[:2]}) < 2:        # make the first two differ in seed
        j = next((i for i, c in enumerate(order) if c[1] != order[0][1]), None)
        if j is not None:
            order.insert(1, order.pop(j))
    return order[:max(0, min(GROUP_CELLS, exp.max_group))]


# --------------------------------------------------------------------------- params

_TEMPLATE = r"The '{name}' parameter of .+ must be .+\. Got .+\.$"


def bad_values(p) -> list[tuple[Any, str]]:
    """(value, why it is bad) for one declaration: a wrong type, outside [low, high], not in choices."""
    wrong = {int: [("abc", "not a number"), (1.5, "not an integer"), (True, "a bool")],
             float: [("abc", "not a number"), (True, "a bool")],
             bool: [("maybe", "not a bool"), (2, "an int")],
             str: [(3, "an int"), (1.5, "a float")]}.get(p.kind, [])
    out = list(wrong)
    if p.kind in (int, float):
        if p.low is not None:
            out.append((p.kind(p.low - max(1, abs(p.low))), f"below low={p.low}"))
        if p.high is not None:
            out.append((p.kind(p.high + max(1, abs(p.high))), f"above high={p.high}"))
    if p.choices is not None:
        if p.kind is str:
            out.append(("not-one-of-the-choices", "not in choices"))
        elif p.kind is bool:
            out += [(b, "not in choices") for b in (True, False) if b not in p.choices]
        elif p.kind in (int, float):
            out.append((p.kind(max(p.choices) + 1), "not in choices"))
    return out


def check_params(exp: Experiment) -> str:
    """The default and quick configurations are valid, and every declaration refuses its bad values
    with the one-line error."""
    for quick, which in ((False, "default"), (True, "--quick")):
        try:
            exp.config(quick=quick)
        except InvalidParameterError as e:
            raise Violation(f"the {which} configuration is invalid: {e}") from None
    probes = 0
    for p in exp.params:
        if p.kind not in (int, float, str, bool):
            raise Violation(f"parameter '{p.name}' has kind {_tname(p.kind)}; a parameter is an int, float, "
                            "str or bool")
        if p.kind in (int, float) and p.low is None and p.high is None and p.choices is None:
            raise Violation(f"parameter '{p.name}' declares no low, high or choices, so it accepts any number; "
                            "declare its valid range")
        pattern = re.compile(_TEMPLATE.format(name=re.escape(p.name)))
        for value, why in bad_values(p):
            probes += 1
            try:
                exp.config({p.name: value})
            except InvalidParameterError as e:
                msg = str(e)
                if "\n" in msg or not pattern.match(msg):
                    raise Violation(f"parameter '{p.name}' refuses {value!r} ({why}) with a message off the "
                                    f"template \"The '{p.name}' parameter of ... must be ... Got ...\": "
                                    f"{_one_line(msg)}") from None
                continue
            except Exception as e:
                raise Violation(f"parameter '{p.name}' refuses {value!r} ({why}) with {type(e).__name__}, not "
                                f"InvalidParameterError: {_one_line(str(e))}") from None
            raise Violation(f"parameter '{p.name}' accepts the bad value {value!r} ({why})")
    return f"{len(exp.params)} parameters refuse {probes} bad values with the one-line error"


# --------------------------------------------------------------------------- partial sweeps


def partial_roles(n: int) -> list[str]:
    """The fate of each of ``n`` cells (grid order) in the partial sweep: the first diverged,
    the second failed, the last missing (from 4 cells on), the rest done."""
    roles = ["done"] * n
    if n >= 1:
        roles[0] = "diverged"
    if n >= 2:
        roles[1] = "failed"
    if n >= 4:
        roles[-1] = "missing"
    return roles


def _sweep_views(exp: Experiment, cfg: dict[str, Any], cells: list[Cell], what: str) -> None:
    """What `show`, `run --json` and `report` do with a run's cells: analyze (its result must be an
    Analysis that json.dumps takes), the summary table, and the figure: ``plot`` into a fresh
    matplotlib Figure on an Agg canvas (not pyplot's, so nothing leaks), laid out and rendered."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from petridish.lab.experiment import Analysis
    from petridish.lab.sweep import analyze
    from petridish.lab.table import render_text
    step = "analyze"
    try:
        a = analyze(exp, cells)
        if not isinstance(a, Analysis):
            raise Violation(f"analyze returned a {_tname(a)} on {what}, not an Analysis")
        try:
            json.dumps(a.to_json(), allow_nan=True)
        except (TypeError, ValueError) as e:
            raise Violation(f"analyze's result on {what} is not JSON-serializable: {e}") from None
        step = "the summary table"
        render_text(exp, cfg, cells)
        if exp.plot is not None:
            step = "plot"
            fig = Figure(figsize=(11, 6.5), dpi=110)      # the report's size
            FigureCanvasAgg(fig)
            exp.plot(cells, fig)
            fig.tight_layout()
            fig.savefig(io.BytesIO(), format="png")
    except Violation:
        raise
    except Exception as e:
        raise Violation(f"{step} raised on {what}: {type(e).__name__}: {_one_line(str(e))}") from None


# --------------------------------------------------------------------------- timing


def check_timing(exp: Experiment) -> str:
    """The ``--quick`` sweep as the CLI runs it (one worker per core, a fresh in-memory store)."""
    from petridish.lab.store import MemoryStore
    from petridish.lab.sweep import run_sweep
    t0 = time.perf_counter()
    res = run_sweep(exp, quick=True, store=MemoryStore(), workers=None, progress=False)
    wall = time.perf_counter() - t0
    failed = [c for c in res.cells if c.status == "failed"]
    if failed:
        raise Violation(f"the --quick sweep has {len(failed)} failed cells; first: {_one_line(failed[0].error or '')}")
    if wall > exp.quick_budget_s:
        raise Violation(f"the --quick sweep took {wall:.1f} s, over its budget quick_budget_s={exp.quick_budget_s:g} s "
                        f"({len(res.cells)} cells)")
    return f"the --quick sweep ({len(res.cells)} cells) took {wall:.1f} s, within {exp.quick_budget_s:g} s"
