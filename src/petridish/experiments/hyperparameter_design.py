"""Experimental design vs exhaustive grids: how much compute does each search strategy
spend to find (nearly) the best hyperparameters of a fixed task?

The task: a ReLU MLP on MNIST-1D, five hyperparameters (learning rate, weight decay,
width, depth, batch size), SGD with momentum 0.9 for a fixed number of epochs. Every
configuration of a grid over the five is trained once through ``petridish.train``
(all learning rates × weight decays of one architecture and batch size as one
``train_ensemble``, each configuration its own initialization and minibatch order),
recording its **validation** error (1,000 held-out training examples) and its **test**
error (1,000 further examples) after every epoch: a tabular benchmark (as in NAS-Bench /
HPOBench). The search strategies run against the validation table only (they select and
prune on it); test errors are reported beside, never searched. A repetition costs no
training, and compute is charged honestly:

  * compute = SGD steps = epochs trained × ceil(n_train / batch) for every trial;
  * a pruned trial pays only for the epochs it trained before it was stopped;
  * a configuration already trained to the end is free when proposed again (the lab
    reuses finished cells by content key); a pruned one is retrained from scratch.

**The tolerance sits above the noise floor.** Each configuration is trained once, so its
validation error carries binomial noise: SE = √(p(1 − p)/n_val) ≈ 0.015 at p ≈ 0.3 on 1,000
examples. Two configurations whose true errors are equal differ by about √2·SE, so a
tolerance of 0.01 would ask the strategies to resolve differences the measurement cannot.
The tolerance is ``tol_se`` (default 2) binomial standard errors of the grid's best
validation error, computed from the run and stated in its findings.

Strategies: the exhaustive grid in a random order, random search, TPE, and TPE with
Hyperband pruning (Optuna; random/TPE search the grid's index lattice, ordinal per
axis). Each (strategy, seed) cell is one repetition; it stops once it has found the
grid's best configuration (its curve is flat from then on) or spent ``budget`` × the
grid's total compute. Reported: best-found validation error against compute, the compute
each strategy needs to get within the tolerance of the grid's best, and claims comparing
that compute with the grid's (seed-paired t over repetitions, on the log scale; Holm).
"""
from __future__ import annotations

import functools
import itertools
import math
import warnings

import numpy as np

from petridish.lab import (Analysis, Experiment, Param, curve_ci, family, from_difference, mean_ci,
                           paired_difference, wilson_ci)
from petridish.seeding import sub_seed

STRATEGIES = ("grid", "random", "tpe", "tpe-hyperband")
COLORS = {"grid": "tab:grey", "random": "tab:blue", "tpe": "tab:orange", "tpe-hyperband": "tab:green"}
AXES = ("lr", "weight_decay", "width", "depth", "batch")
GRIDS = {   # the five hyperparameter axes; "small" is the --quick grid (80 configs), "full" 180
    "small": {"lr": [0.01, 0.03, 0.1, 0.3, 1.0], "weight_decay": [1e-4, 3e-3], "width": [32, 128],
              "depth": [1, 2], "batch": [32, 128]},
    "full": {"lr": [0.01, 0.03, 0.1, 0.3, 1.0], "weight_decay": [1e-4, 3e-3], "width": [32, 64, 128],
             "depth": [1, 2], "batch": [32, 64, 128]},
}
N_VAL = 1000           # validation examples (held out from MNIST-1D's training set)
N_TEST = 1000
N_POINTS = 40          # compute axis: geometric grid of fractions of the grid's total cost
CHANCE = 0.9           # error of a diverged model (10 classes)


# ---------------------------------------------------------------- the tabular benchmark
def _data(n_train: int):
    """MNIST-1D: (x_train, y_train), (x_val, y_val), (x_test, y_test); the validation set is the
    ``N_VAL`` generated training examples after the first ``n_train``."""
    from petridish.data import mnist1d
    ds = mnist1d(n_train=n_train + N_VAL, n_test=N_TEST)
    return ((ds.x_train[:n_train], ds.y_train[:n_train]), (ds.x_train[n_train:], ds.y_train[n_train:]),
            (ds.x_test, ds.y_test))


def group_curves(data, *, width: int, depth: int, batch: int, lrs: list[float], wds: list[float],
                 epochs: int, seeds: list[int], data_seeds: list[int]) -> dict[str, np.ndarray]:
    """Train one MLP per (lrs[r], wds[r]) as one ``train_ensemble`` (SGD, momentum 0.9, coupled
    L2); {"val", "test"}: error after every epoch, (k, epochs); a diverged member counts as
    chance from the epoch it diverged in."""
    from petridish.train import train_ensemble
    from petridish.train.batches import steps_per_epoch
    (x, y), val, test = data
    spe = steps_per_epoch(x.shape[0], batch if batch < x.shape[0] else None)
    res = train_ensemble("mlp", x, y, seeds=seeds, data_seeds=data_seeds, lr=lrs, weight_decay=wds,
                         momentum=0.9, batch_size=batch, epochs=epochs, loss="cross_entropy",
                         model_kwargs={"width": width, "depth": depth, "d_out": 10},
                         eval_sets={"val": val, "test": test}, eval_every=spe)
    k = len(lrs)
    at = np.array(res.eval_steps[:epochs], dtype=float)
    dead = res.diverged.numpy()[:, None] & (at[None, :] > res.steps.numpy()[:, None])
    out = {}
    for name in ("val", "test"):
        err = np.full((k, epochs), CHANCE)
        got = 1.0 - res.eval_history[name]["accuracy"].numpy()[:, :epochs]
        err[:, :got.shape[1]] = np.where(np.isfinite(got) & ~dead, got, CHANCE)
        out[name] = err
    return out


@functools.lru_cache(maxsize=4)
def benchmark(grid_name: str, epochs: int, n_train: int, task_seed: int) -> dict[str, np.ndarray]:
    """Every grid config's validation and test error curves, {"val", "test"}: (n_configs, epochs),
    and "steps": SGD steps per epoch, (n_configs,).

    Configs are ordered as ``itertools.product`` over AXES (batch varies fastest).
    Deterministic given the arguments; cached per process, so the cells of one sweep
    that land on the same worker (all of them with one worker) train the grid once.
    """
    from petridish.threads import pin_threads
    grid = GRIDS[grid_name]
    data = _data(n_train)
    shape = [len(grid[a]) for a in AXES]
    curves = {name: np.empty(shape + [epochs]) for name in ("val", "test")}
    steps = np.empty(shape)
    lw = list(itertools.product(range(shape[0]), range(shape[1])))
    with pin_threads(1):      # tiny matmuls: a second thread only adds synchronisation
        for a, width in enumerate(grid["width"]):
            for b, depth in enumerate(grid["depth"]):
                for c, batch in enumerate(grid["batch"]):
                    tags = [f"{grid['lr'][i]}:{grid['weight_decay'][j]}:{width}:{depth}:{batch}" for i, j in lw]
                    err = group_curves(data, width=width, depth=depth, batch=batch,
                                       lrs=[grid["lr"][i] for i, _ in lw], wds=[grid["weight_decay"][j] for _, j in lw],
                                       epochs=epochs, seeds=[sub_seed(task_seed, "init:" + t) for t in tags],
                                       data_seeds=[sub_seed(task_seed, "batches:" + t) for t in tags])
                    for r, (i, j) in enumerate(lw):
                        for name in curves:
                            curves[name][i, j, a, b, c] = err[name][r]
                        steps[i, j, a, b, c] = math.ceil(n_train / batch)
    return {"val": curves["val"].reshape(-1, epochs), "test": curves["test"].reshape(-1, epochs),
            "steps": steps.reshape(-1)}


def tolerance(best_val: float, tol_se: float, n_val: int = N_VAL) -> float:
    """``tol_se`` binomial standard errors of a validation error ``best_val`` on ``n_val`` examples."""
    return tol_se * math.sqrt(best_val * (1 - best_val) / n_val)


# ---------------------------------------------------------------- the strategies
def _search(strategy: str, curves: np.ndarray, steps: np.ndarray, shape: list[int], *, seed: int,
            budget: float) -> tuple[list[float], list[float], int, int]:
    """One repetition on the validation table: (compute after each completed trial, best-found
    validation error after it, trials, the index of the configuration finally selected)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_cfg, epochs = curves.shape
    final = curves[:, -1]
    target, cap = float(final.min()), budget * float((steps * epochs).sum())
    finished: set[int] = set()
    spent, best, chosen, xs, ys, trials = 0.0, math.inf, -1, [], [], 0

    def record(c: int) -> None:
        nonlocal best, chosen
        if float(final[c]) < best:
            best, chosen = float(final[c]), c
        xs.append(spent)
        ys.append(best)

    if strategy == "grid":          # every config once, in a random order
        for c in np.random.default_rng(seed).permutation(n_cfg):
            spent += epochs * steps[c]
            trials += 1
            record(int(c))
            if best <= target or spent >= cap:
                break
        return xs, ys, trials, chosen
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
    return xs, ys, trials, chosen


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
    bench = benchmark(p["grid"], p["epochs"], p["n_train"], p["task_seed"])
    curves, steps = bench["val"], bench["steps"]
    epochs = curves.shape[1]
    total = float((steps * epochs).sum())
    final, final_test = curves[:, -1], bench["test"][:, -1]
    xs, ys, trials, chosen = _search(p["strategy"], curves, steps, shape, seed=seed, budget=p["budget"])
    best_cfg = int(final.argmin())
    tol = tolerance(float(final[best_cfg]), p["tol_se"])
    hit = next((x for x, y in zip(xs, ys) if y <= float(final.min()) + tol), math.nan)
    axis = np.geomspace(1e-3, 1.0, N_POINTS) * total
    return {
        "best_found": float(ys[-1]) if ys else math.nan,          # validation error of the selected config
        "selected_test_error": float(final_test[chosen]) if chosen >= 0 else math.nan,
        "grid_best": float(final[best_cfg]),                      # validation error
        "grid_best_test": float(final_test[best_cfg]),            # test error of the same config
        "grid_median": float(np.median(final)),
        "tol": tol, "n_val": N_VAL, "n_test": N_TEST,
        "grid_cost_steps": total,
        "steps_to_tol": float(hit),
        "fraction_to_tol": float(hit / total),
        "reached_tol": bool(hit == hit),
        "trials": int(trials),
        "spent_steps": float(xs[-1]) if xs else 0.0,
        "n_configs": int(final.size),
        "grid_best_config": ", ".join(f"{a}={grid[a][i]}" for a, i in zip(AXES, np.unravel_index(best_cfg, shape))),
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


def _log_compute(cs, budget: float) -> dict[int, float]:
    """seed -> log(compute fraction to reach tol); a repetition that never reached it is
    counted at its cap (``budget``), a lower bound on what it would have needed."""
    return {c.seed: math.log(c.metrics["fraction_to_tol"] if c.metrics["reached_tol"] else budget) for c in cs}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def analyze(cells) -> Analysis:
    from petridish.lab.paired import pair_by_seed
    groups = _by_strategy(cells)
    if not groups:
        return Analysis()
    any_cell = next(iter(groups.values()))[0]
    m0, budget = any_cell.metrics, any_cell.params["budget"]
    tol, n_val = m0["tol"], m0["n_val"]
    _, vlo, vhi = wilson_ci(round(m0["grid_best"] * n_val), n_val)
    _, tlo, thi = wilson_ci(round(m0["grid_best_test"] * m0["n_test"]), m0["n_test"])
    findings = [
        f"The {m0['n_configs']}-configuration grid's best validation error is {m0['grid_best']:.3f} "
        f"(Wilson 95% CI {vlo:.3f}–{vhi:.3f} on {n_val} validation examples; {m0['grid_best_config']}); the same "
        f"configuration's test error is {m0['grid_best_test']:.3f} ({tlo:.3f}–{thi:.3f} on {m0['n_test']} test "
        f"examples); the median configuration's validation error is {m0['grid_median']:.3f}. Training the whole "
        f"grid costs {m0['grid_cost_steps']:.0f} SGD steps.",
        f"Tolerance: {tol:.3f} = {any_cell.params['tol_se']:g} binomial standard errors of the best validation "
        f"error (SE = √(p(1−p)/{n_val}) = {math.sqrt(m0['grid_best'] * (1 - m0['grid_best']) / n_val):.4f}); "
        f"each configuration is trained once, so differences below this are measurement noise."]
    values: dict = {"grid_best": m0["grid_best"], "grid_best_test": m0["grid_best_test"],
                    "grid_cost_steps": m0["grid_cost_steps"], "tol": tol}
    logs = {s: _log_compute(cs, budget) for s, cs in groups.items()}
    for s, cs in groups.items():
        # compute fractions are positive and skewed: geometric mean, t-interval on the log scale
        fr = [math.log(c.metrics["fraction_to_tol"]) for c in cs if c.metrics["reached_tol"]]
        m, lo, hi = (math.exp(v) for v in mean_ci(fr)) if fr else (math.nan,) * 3
        sel = [c.metrics["selected_test_error"] for c in cs if math.isfinite(c.metrics.get("selected_test_error", math.nan))]
        values[s] = {"fraction_to_tol": {"geomean": m, "lo": lo, "hi": hi}, "reached": len(fr), "reps": len(cs),
                     "trials": float(np.mean([c.metrics["trials"] for c in cs])),
                     "selected_test_error": float(np.mean(sel)) if sel else None}
        if fr:
            findings.append(f"{s}: within {tol:.3f} of the grid's best validation error after {_pct(m)} of the "
                            f"grid's compute (geometric mean, 95% CI {_pct(lo)}–{_pct(hi)}; {len(fr)}/{len(cs)} "
                            f"repetitions reached it); mean test error of its selected configuration "
                            f"{values[s]['selected_test_error']:.3f}.")
    claims = []
    if "grid" in logs:
        ratios = {}
        for s in groups:
            if s == "grid":
                continue
            a, b = pair_by_seed(logs[s], logs["grid"])
            d = paired_difference(a, b)
            if d is not None:
                ratios[s] = math.exp(d.estimate)
            claims.append(from_difference(
                f"{s} needs less compute than the randomly ordered exhaustive grid to get within {tol:.3f} of the "
                f"grid's best validation error", d, direction="less",
                effect=f"mean log compute ratio ({s} / grid; never-reached repetitions at the {budget:g}× cap)"))
        values["saving_vs_grid"] = ratios
    if "tpe" in logs and "tpe-hyperband" in logs:
        a, b = pair_by_seed(logs["tpe-hyperband"], logs["tpe"])
        claims.append(from_difference(
            "Hyperband pruning lets TPE get within the tolerance with less compute", paired_difference(a, b),
            direction="less", effect="mean log compute ratio (tpe-hyperband / tpe)"))
    return Analysis(findings=findings, values=values, claims=family(claims, "holm"))


def plot(cells, fig) -> None:
    groups = _by_strategy(cells)
    ax = fig.add_subplot(1, 1, 1)
    m0 = None
    for s, cs in groups.items():
        x = np.asarray(cs[0].metrics["compute_fraction"])
        with warnings.catch_warnings():   # columns before any trial finished are all NaN: left blank
            warnings.simplefilter("ignore", RuntimeWarning)
            m, lo, hi = curve_ci([c.metrics["best_curve"] for c in cs], bounds=(0, 1))
        ax.plot(x, m, color=COLORS.get(s), label=f"{s} ({len(cs)} reps)")
        ax.fill_between(x, lo, hi, color=COLORS.get(s), alpha=0.2)
        m0 = cs[0].metrics
    if m0 is not None:
        ax.axhline(m0["grid_best"], color="k", ls=":", lw=1, label="grid's best (validation)")
        ax.axhline(m0["grid_best"] + m0["tol"], color="k", ls="--", lw=0.8,
                   label=f"grid's best + tolerance {m0['tol']:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("compute spent (fraction of the exhaustive grid's SGD steps)")
    ax.set_ylabel("best validation error found so far")
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
        Param("tol_se", float, default=2.0, low=0.0, high=20.0,
              help="tolerance, in binomial standard errors of the grid's best validation error"),
        Param("budget", float, default=1.0, low=0.01, high=10.0,
              help="compute cap per repetition, as a multiple of the grid's total"),
        Param("task_seed", int, default=0, low=0, help="seed of the tabulated task (inits, data order)"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=20, quick_seeds=10, version=3, runtime="~1.5 min",
    table_by=("strategy",), table_metrics=("fraction_to_tol", "trials", "best_found", "selected_test_error"),
    bounds={"best_found": (0, 1), "selected_test_error": (0, 1), "fraction_to_tol": (0, math.inf)},
    tiny=dict(grid="small", epochs=1, n_train=100, budget=0.1),  # petridish check (seconds)
)
