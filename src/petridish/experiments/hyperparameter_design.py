"""Experimental design vs exhaustive grids: how much compute does each search strategy
spend to find (nearly) the best hyperparameters of a fixed task?

The task: a ReLU MLP on MNIST-1D, five hyperparameters (learning rate, weight decay,
width, depth, batch size), SGD with momentum 0.9 for a fixed number of epochs; the
objective is the test error at the end. Every configuration of a grid over the five
is trained once (all learning rates × weight decays of one architecture and batch size
as one stacked ensemble), recording the test error after every epoch: a tabular
benchmark (as in NAS-Bench / HPOBench). The search strategies then run against that
table, so a repetition costs no training, and their compute is charged honestly:

  * compute = SGD steps = epochs trained × ceil(n_train / batch) for every trial;
  * a pruned trial pays only for the epochs it trained before it was stopped;
  * a configuration already trained to the end is free when proposed again (the lab
    reuses finished cells by content key); a pruned one is retrained from scratch.

Strategies: the exhaustive grid in a random order, random search, TPE, and TPE with
Hyperband pruning (Optuna; random/TPE search the grid's index lattice, ordinal per
axis). Each (strategy, seed) cell is one repetition; it stops once it has found the
grid's best configuration (its curve is flat from then on) or spent ``budget`` × the
grid's total compute. Reported: best-found test error against compute, and the compute
each strategy needs to get within ``tol`` of the grid's best.
"""
from __future__ import annotations

import functools
import itertools
import math
import warnings
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from petridish.lab import Analysis, Experiment, Param, curve_ci, mean_ci

STRATEGIES = ("grid", "random", "tpe", "tpe-hyperband")
COLORS = {"grid": "tab:grey", "random": "tab:blue", "tpe": "tab:orange", "tpe-hyperband": "tab:green"}
AXES = ("lr", "weight_decay", "width", "depth", "batch")
GRIDS = {   # the five hyperparameter axes; "small" is the --quick grid (80 configs), "full" 180
    "small": {"lr": [0.01, 0.03, 0.1, 0.3, 1.0], "weight_decay": [1e-4, 3e-3], "width": [32, 128],
              "depth": [1, 2], "batch": [32, 128]},
    "full": {"lr": [0.01, 0.03, 0.1, 0.3, 1.0], "weight_decay": [1e-4, 3e-3], "width": [32, 64, 128],
             "depth": [1, 2], "batch": [32, 64, 128]},
}
N_POINTS = 40          # compute axis: geometric grid of fractions of the grid's total cost
CHANCE = 0.9           # test error of a diverged model (10 classes)


# ---------------------------------------------------------------- the tabular benchmark
def _init_stack(k: int, sizes: list[int], gen: torch.Generator) -> list[torch.Tensor]:
    """nn.Linear's default init for k stacked models: W (k, in, out), b (k, 1, out)."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        params.append((torch.rand(k, fan_in, fan_out, generator=gen) * 2 - 1) * bound)
        params.append((torch.rand(k, 1, fan_out, generator=gen) * 2 - 1) * bound)
    return [p.requires_grad_() for p in params]


def _forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """x (B, d) shared by all models -> logits (k, B, classes)."""
    h = x.unsqueeze(0).expand(params[0].shape[0], -1, -1)
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
        if i < n_layers - 1:
            h = torch.relu(h)
    return h


def _train_group(data, *, width: int, depth: int, batch: int, lrs: torch.Tensor, wds: torch.Tensor,
                 epochs: int, seed: int) -> np.ndarray:
    """Train k = len(lrs) MLPs (one per (lr, wd)) as one stack; test error per epoch, (k, epochs)."""
    x_tr, y_tr, x_te, y_te = data
    k, n = len(lrs), x_tr.shape[0]
    gen = torch.Generator().manual_seed(seed)
    params = _init_stack(k, [x_tr.shape[1]] + [width] * depth + [10], gen)
    bufs = [torch.zeros_like(p) for p in params]
    lr_v, wd_v = lrs.view(k, 1, 1), wds.view(k, 1, 1)
    alive = torch.ones(k, dtype=torch.bool)
    errors = np.empty((k, epochs))
    for e in range(epochs):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            logits = _forward(params, x_tr[idx])                       # (k, B, 10)
            loss = F.cross_entropy(logits.reshape(-1, 10), y_tr[idx].repeat(k), reduction="none")
            loss = loss.view(k, -1).mean(1)                             # each model's own mean loss
            grads = torch.autograd.grad(torch.where(alive, loss, 0.0).sum(), params)
            with torch.no_grad():
                for p, g, b in zip(params, grads, bufs):               # SGD, momentum 0.9, L2 decay
                    b.mul_(0.9).add_(g + wd_v * p)
                    p.sub_(lr_v * b)
            alive &= torch.isfinite(loss.detach())
        with torch.no_grad():
            pred = _forward(params, x_te).argmax(-1)                    # (k, n_test)
            err = (pred != y_te).float().mean(1)
        errors[:, e] = torch.where(alive, err, CHANCE).numpy()
    return errors


@functools.lru_cache(maxsize=4)
def benchmark(grid_name: str, epochs: int, n_train: int, task_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every grid config's test-error curve (n_configs, epochs) and SGD steps per epoch.

    Configs are ordered as ``itertools.product`` over AXES (batch varies fastest).
    Deterministic given the arguments; cached per process, so the cells of one sweep
    that land on the same worker (all of them with one worker) train the grid once.
    """
    from petridish.data import mnist1d
    grid = GRIDS[grid_name]
    ds = mnist1d(n_train=n_train, n_test=1000, seed=42)
    data = (ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    shape = [len(grid[a]) for a in AXES]
    curves = np.empty(shape + [epochs])
    steps = np.empty(shape)
    lw = list(itertools.product(range(shape[0]), range(shape[1])))
    lrs = torch.tensor([grid["lr"][i] for i, _ in lw])
    wds = torch.tensor([grid["weight_decay"][j] for _, j in lw])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # tiny matmuls: a second thread only adds synchronisation (3× slower here)
    try:
        for a, width in enumerate(grid["width"]):
            for b, depth in enumerate(grid["depth"]):
                for c, batch in enumerate(grid["batch"]):
                    seed = task_seed * 1_000_003 + zlib.crc32(f"{width}:{depth}:{batch}".encode())
                    err = _train_group(data, width=width, depth=depth, batch=batch, lrs=lrs, wds=wds,
                                       epochs=epochs, seed=seed)
                    for r, (i, j) in enumerate(lw):
                        curves[i, j, a, b, c] = err[r]
                        steps[i, j, a, b, c] = math.ceil(n_train / batch)
    finally:
        torch.set_num_threads(threads)
    return curves.reshape(-1, epochs), steps.reshape(-1)


# ---------------------------------------------------------------- the strategies
def _search(strategy: str, curves: np.ndarray, steps: np.ndarray, shape: list[int], *, seed: int,
            budget: float) -> tuple[list[float], list[float], int]:
    """One repetition: (compute after each completed trial, best-found after it, trials)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_cfg, epochs = curves.shape
    final = curves[:, -1]
    target, cap = float(final.min()), budget * float((steps * epochs).sum())
    finished: set[int] = set()
    spent, best, xs, ys, trials = 0.0, math.inf, [], [], 0

    def record(c: int) -> None:
        nonlocal best
        best = min(best, float(final[c]))
        xs.append(spent)
        ys.append(best)

    if strategy == "grid":          # every config once, in a random order
        for c in np.random.default_rng(seed).permutation(n_cfg):
            spent += epochs * steps[c]
            trials += 1
            record(int(c))
            if best <= target or spent >= cap:
                break
        return xs, ys, trials
    sampler = (optuna.samplers.RandomSampler(seed=seed) if strategy == "random"
               else optuna.samplers.TPESampler(seed=seed))
    pruner = (optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
              if strategy == "tpe-hyperband" else optuna.pruners.NopPruner())
    # a fixed name: Hyperband assigns trials to brackets by a hash of the study name (random by default)
    study = optuna.create_study(study_name=f"{strategy}-{seed}", sampler=sampler, pruner=pruner,
                                direction="minimize")
    dists = {a: optuna.distributions.IntDistribution(0, n - 1) for a, n in zip(AXES, shape)}
    while best > target and spent < cap and trials < 4 * n_cfg:
        trial = study.ask(dists)
        trials += 1
        c = int(np.ravel_multi_index([trial.params[a] for a in AXES], shape))
        pruned_at = None
        for e in range(epochs):
            trial.report(float(curves[c, e]), e + 1)
            if c not in finished and trial.should_prune():
                pruned_at = e + 1
                break
        if pruned_at is not None:
            spent += pruned_at * steps[c]
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        if c not in finished:
            spent += epochs * steps[c]
            finished.add(c)
        study.tell(trial, float(final[c]))
        record(c)
    return xs, ys, trials


def _on_axis(xs: list[float], ys: list[float], axis: np.ndarray) -> list[float]:
    """Best-found at each compute level (NaN before the first completed trial)."""
    out, j, cur = [], 0, math.nan
    for x in axis:
        while j < len(xs) and xs[j] <= x:
            cur = ys[j]
            j += 1
        out.append(float(cur))
    return out


def run(p: dict, seed: int) -> dict:
    grid = GRIDS[p["grid"]]
    shape = [len(grid[a]) for a in AXES]
    curves, steps = benchmark(p["grid"], p["epochs"], p["n_train"], p["task_seed"])
    epochs = curves.shape[1]
    total = float((steps * epochs).sum())
    final = curves[:, -1]
    xs, ys, trials = _search(p["strategy"], curves, steps, shape, seed=seed, budget=p["budget"])
    target = float(final.min()) + p["tol"]
    hit = next((x for x, y in zip(xs, ys) if y <= target), math.nan)
    axis = np.geomspace(1e-3, 1.0, N_POINTS) * total
    best_cfg = np.unravel_index(int(final.argmin()), shape)
    return {
        "best_found": float(ys[-1]) if ys else math.nan,
        "grid_best": float(final.min()),
        "grid_median": float(np.median(final)),
        "grid_cost_steps": total,
        "steps_to_tol": float(hit),
        "fraction_to_tol": float(hit / total),
        "reached_tol": bool(hit == hit),
        "trials": int(trials),
        "spent_steps": float(xs[-1]) if xs else 0.0,
        "n_configs": int(final.size),
        "grid_best_config": ", ".join(f"{a}={grid[a][i]}" for a, i in zip(AXES, best_cfg)),
        "compute_fraction": [float(v) for v in axis / total],
        "best_curve": _on_axis(xs, ys, axis),
    }


# ---------------------------------------------------------------- analysis and figure
def _by_strategy(cells) -> dict[str, list]:
    out: dict[str, list] = {}
    for c in cells:
        if c.status == "done":
            out.setdefault(c.params["strategy"], []).append(c)
    return {s: out[s] for s in STRATEGIES if s in out} | {s: v for s, v in out.items() if s not in STRATEGIES}


def analyze(cells) -> Analysis:
    groups = _by_strategy(cells)
    if not groups:
        return Analysis()
    any_cell = next(iter(groups.values()))[0]
    m0, tol = any_cell.metrics, any_cell.params["tol"]
    findings = [f"The {m0['n_configs']}-configuration grid's best test error is {m0['grid_best']:.3f} "
                f"({m0['grid_best_config']}); its median configuration reaches {m0['grid_median']:.3f}. "
                f"Training the whole grid costs {m0['grid_cost_steps']:.0f} SGD steps."]
    values: dict = {"grid_best": m0["grid_best"], "grid_cost_steps": m0["grid_cost_steps"], "tol": tol}
    grid_mean = None
    for s, cs in groups.items():
        # compute fractions are positive and skewed: geometric mean, t-interval on the log scale
        fr = [math.log(c.metrics["fraction_to_tol"]) for c in cs if c.metrics["reached_tol"]]
        reached = len(fr)
        m, lo, hi = (math.exp(v) for v in mean_ci(fr)) if fr else (math.nan,) * 3
        values[s] = {"fraction_to_tol": {"geomean": m, "lo": lo, "hi": hi}, "reached": reached, "reps": len(cs),
                     "trials": float(np.mean([c.metrics["trials"] for c in cs]))}
        if s == "grid":
            grid_mean = m
        findings.append(
            f"{s}: within {tol:.3f} of the grid's best after {100 * m:.1f}% of the grid's compute "
            f"(geometric mean, 95% CI {100 * lo:.1f}–{100 * hi:.1f}%; {reached}/{len(cs)} repetitions reached it"
            + ("" if reached == len(cs) else " and the mean is over those") + ").")
    if grid_mean and grid_mean == grid_mean:
        ratios = {s: values[s]["fraction_to_tol"]["geomean"] / grid_mean for s in groups if s != "grid"}
        values["saving_vs_grid"] = ratios
        if ratios:
            best_s = min(ratios, key=lambda s: ratios[s] if ratios[s] == ratios[s] else math.inf)
            findings.append(f"The cheapest strategy is {best_s}: it needs {ratios[best_s]:.2f}× the compute of the "
                            f"randomly ordered grid to get within {tol:.3f} of its best (an exhaustive grid needs "
                            f"all of it to know it has).")
    return Analysis(findings=findings, values=values)


def plot(cells, fig) -> None:
    groups = _by_strategy(cells)
    ax = fig.add_subplot(1, 1, 1)
    best = None
    for s, cs in groups.items():
        x = np.asarray(cs[0].metrics["compute_fraction"])
        with warnings.catch_warnings():   # columns before any trial finished are all NaN: left blank
            warnings.simplefilter("ignore", RuntimeWarning)
            m, lo, hi = curve_ci([c.metrics["best_curve"] for c in cs])
        ax.plot(x, m, color=COLORS.get(s), label=f"{s} ({len(cs)} reps)")
        ax.fill_between(x, lo, hi, color=COLORS.get(s), alpha=0.2)
        best = cs[0].metrics["grid_best"]
    if best is not None:
        tol = next(iter(groups.values()))[0].params["tol"]
        ax.axhline(best, color="k", ls=":", lw=1, label="grid's best")
        ax.axhline(best + tol, color="k", ls="--", lw=0.8, label=f"grid's best + {tol:g}")
    ax.set_xscale("log")
    ax.set_xlabel("compute spent (fraction of the exhaustive grid's SGD steps)")
    ax.set_ylabel("best test error found so far")
    ax.set_title("Search strategies on an MNIST-1D MLP (mean, 95% CI over repetitions)")
    ax.legend(fontsize=8)


EXPERIMENT = Experiment(
    name="hyperparameter-design",
    question="How much compute do random search, TPE and TPE with Hyperband pruning need, compared with an "
             "exhaustive grid, to find hyperparameters within a tolerance of the grid's best?",
    reference="Bergstra & Bengio 2012 (JMLR, random search); Bergstra et al. 2011 (NeurIPS, TPE); "
              "Li et al. 2018 (JMLR, Hyperband); Akiba et al. 2019 (KDD, Optuna); "
              "Donoho 2023, 'Data science at the singularity'",
    summary="grid vs random vs TPE vs TPE+Hyperband: compute to reach the grid's best on an MNIST-1D MLP",
    params=(
        Param("strategy", str, default=list(STRATEGIES), choices=STRATEGIES, help="search strategy"),
        Param("grid", str, default="full", quick="small", choices=tuple(GRIDS),
              help="the hyperparameter grid (small: 80 configs, full: 180)"),
        Param("epochs", int, default=10, quick=6, low=1, high=200, help="training budget per config"),
        Param("n_train", int, default=4000, quick=2000, low=100, high=4000, help="MNIST-1D training samples"),
        Param("tol", float, default=0.01, low=0.0, high=1.0, help="tolerance on the test error"),
        Param("budget", float, default=1.0, low=0.01, high=10.0,
              help="compute cap per repetition, as a multiple of the grid's total"),
        Param("task_seed", int, default=0, low=0, help="seed of the tabulated task (inits, data order)"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=5, quick_seeds=5, version=2, runtime="~30 s",
    table_by=("strategy",), table_metrics=("fraction_to_tol", "trials", "best_found"),
)
