"""Learning curves: test error against training-set size n, with fitted power laws.

Model: random ReLU features of MNIST-1D (``petridish.models.RandomFeatures``, p features,
scaled by 1/√p) with a least-squares readout on one-hot targets, solved in closed form
(float64) through one eigendecomposition per fit (``_fit.spectral``). Model size = p.
Three arms share that decomposition:

  * ``none``: the minimum-norm least-squares readout (what gradient descent from zero
    converges to: no explicit or implicit regularization left);
  * ``ridge``: ridge with λ chosen on a validation split carved out of the n training
    points (20% by default), then refitted on all n;
  * ``early-stopping``: gradient flow from zero, stopped at the time t chosen on the
    same validation split, then refitted on all n with that t.

So every arm sees exactly n labelled points. Per (p, arm) a power law err ≈ a·n^(−α)
is fitted to the per-n mean test error (Hestness et al. 2017) with a 95% bootstrap
interval over seeds (``_fit.power_law``). Data savings: for a target error, the n at
which each arm's fitted curve reaches it, and the ratio to the unregularized arm's n.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from petridish.data import mnist1d, subsample
from petridish.errors import invalid
from petridish.experiments._fit.power_law import bootstrap_power_law
from petridish.experiments._fit.spectral import Spectral, decompose
from petridish.lab import Analysis, Experiment, Param, aggregate
from petridish.models import RandomFeatures

ARMS = ("none", "ridge", "early-stopping")
N_GRID = [32, 64, 128, 256, 512, 1024, 2048]
QUICK_N = [32, 64, 128, 256, 512, 1024]
# λ (per-sample ridge) and t (gradient-flow time) grids, relative to tr(ΦᵀΦ/n)
RIDGE_GRID = np.geomspace(1e-8, 10.0, 28)
FLOW_GRID = np.geomspace(1e-1, 1e9, 31)
DATA_SEED = 42            # the MNIST-1D generator's seed: one fixed pool; cells subsample it


def _pool(pool: int, n_test: int):
    return mnist1d(n_train=pool, n_test=n_test, seed=DATA_SEED)


def _error(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred.argmax(1) != y).double().mean())


def _choose(spec: Spectral, kind: str, grid: np.ndarray, y_val: torch.Tensor) -> float:
    """The grid value (λ or t) with the lowest validation error (ties: lower validation MSE)."""
    onehot = torch.nn.functional.one_hot(y_val, 10).double()
    best, best_key = grid[0], (math.inf, math.inf)
    for v in grid:
        pred = spec.predict("val", spec.filter(kind, float(v)))
        key = (_error(pred, y_val), float(((pred - onehot) ** 2).mean()))
        if key < best_key:
            best, best_key = float(v), key
    return best


def _features(p: int, seed: int, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    rf = RandomFeatures(40, p, 10, seed=seed)
    with torch.no_grad():
        return [rf.embed(x).double() / math.sqrt(p) for x in xs]


def _cells_for_seed(p: dict, seed: int, arms: list[str]) -> dict[str, dict]:
    """Every requested arm for one (features, n, seed): one decomposition on all n, one on the split."""
    n = p["n"]
    if n > p["pool"]:
        raise invalid("n", "experiment 'learning-curves'", f"an int <= pool ({p['pool']})", n)
    ds = subsample(_pool(p["pool"], p["n_test"]), n, seed=seed)
    phi, phi_test = _features(p["features"], seed, [ds.x_train, ds.x_test])
    y, y_test = ds.y_train, ds.y_test
    full = decompose(phi, torch.nn.functional.one_hot(y, 10), {"train": phi, "test": phi_test})
    scale = float(full.d.sum()) / n                      # tr(ΦᵀΦ/n): sets the λ and t scales
    out: dict[str, dict] = {}
    split = None
    for arm in arms:
        value = math.nan
        if arm == "none":
            f = full.filter("none")
        else:
            if split is None:
                g = torch.Generator().manual_seed(10_000 + seed)
                perm = torch.randperm(n, generator=g)
                n_val = max(1, int(round(p["val_fraction"] * n)))
                val, fit = perm[:n_val], perm[n_val:]
                split = (decompose(phi[fit], torch.nn.functional.one_hot(y[fit], 10), {"val": phi[val]}), y[val])
            spec, y_val = split
            if arm == "ridge":
                value = _choose(spec, "ridge", RIDGE_GRID * scale, y_val)
                f = full.filter("ridge", value)
            else:
                value = _choose(spec, "flow", FLOW_GRID / scale, y_val)
                f = full.filter("flow", value)
        out[arm] = {"test_error": _error(full.predict("test", f), y_test),
                    "train_error": _error(full.predict("train", f), y),
                    "n": n, "features": p["features"], "ratio_n_over_p": n / p["features"],
                    "chosen_lambda" if arm == "ridge" else "chosen_time": value}
        if arm == "none":
            out[arm].pop("chosen_time")
    return out


def run(p: dict, seed: int) -> dict:
    return _cells_for_seed(p, seed, [p["arm"]])[p["arm"]]


def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Cells sharing (features, n): one pair of decompositions per seed serves every arm."""
    by_seed: dict[tuple, list[int]] = {}
    for i, (p, s) in enumerate(zip(params_list, seeds)):
        rest = tuple(sorted((k, v) for k, v in p.items() if k != "arm"))
        by_seed.setdefault((rest, s), []).append(i)
    results: list[dict] = [{} for _ in params_list]
    for (_, s), idx in by_seed.items():
        arms = [params_list[i]["arm"] for i in idx]
        got = _cells_for_seed(params_list[idx[0]], s, sorted(set(arms), key=ARMS.index))
        for i in idx:
            results[i] = dict(got[params_list[i]["arm"]])
    return results


# ---------------------------------------------------------------- analysis

def _curves(cells, features: int, arm: str) -> tuple[np.ndarray, np.ndarray]:
    """(n (N,), err (S, N)) over the seeds present at every n; errors clipped at 1e-4."""
    mine = [c for c in cells if c.status == "done" and c.params["features"] == features
            and c.params["arm"] == arm and "test_error" in c.metrics]
    ns = sorted({c.params["n"] for c in mine})
    seeds = sorted(set.intersection(*[{c.seed for c in mine if c.params["n"] == n} for n in ns])) if ns else []
    table = {(c.params["n"], c.seed): c.metrics["test_error"] for c in mine}
    err = np.array([[max(table[(n, s)], 1e-4) for n in ns] for s in seeds], dtype=float)
    return np.array(ns, dtype=float), err.reshape(len(seeds), len(ns))


def fits(cells, *, n_boot: int = 1000) -> dict[tuple[int, str], object]:
    """(features, arm) -> PowerLawFit (needs >= 2 seeds and >= 3 sizes)."""
    out = {}
    for features in sorted({c.params["features"] for c in cells}):
        for arm in ARMS:
            n, err = _curves(cells, features, arm)
            if err.shape[0] >= 2 and n.size >= 3:
                out[(features, arm)] = bootstrap_power_law(n, err, n_boot=n_boot, seed=features)
    return out


def _target(cells, fitted) -> float:
    explicit = next((c.params.get("target_error", 0.0) for c in cells), 0.0)
    if explicit:
        return float(explicit)
    big = max(f for f, _ in fitted)
    n, err = _curves(cells, big, "none")
    return float(err.mean(axis=0)[-1]) if err.size else math.nan


def analyze(cells) -> Analysis:
    fitted = fits(cells)
    if not fitted:
        return Analysis(["Not enough cells (need >= 2 seeds and >= 3 sizes per arm) to fit power laws."], {})
    findings, values = [], {"fits": {}, "savings": {}}
    for (features, arm), fit in fitted.items():
        n, err = _curves(cells, features, arm)
        mean = err.mean(axis=0)
        key = f"p={features}/{arm}"
        values["fits"][key] = {"alpha": fit.alpha, "alpha_lo": fit.alpha_lo, "alpha_hi": fit.alpha_hi,
                               "a": fit.law.a, "err_small_n": float(mean[0]), "err_large_n": float(mean[-1]),
                               "peak_n": float(n[int(np.argmax(mean))])}
        findings.append(
            f"p = {features}, {arm}: test error falls from {mean[0]:.3f} at n = {n[0]:.0f} to {mean[-1]:.3f} at "
            f"n = {n[-1]:.0f}; fitted exponent α = {fit.alpha:.3f} (95% bootstrap CI {fit.alpha_lo:.3f} to "
            f"{fit.alpha_hi:.3f}).")
        inner = mean[1:-1]
        if inner.size and inner.max() > max(mean[0], mean[-1]) * 1.0 or (inner.size and np.any(np.diff(mean) > 0.02)):
            i = int(np.argmax(np.diff(mean) > 0.02)) + 1 if np.any(np.diff(mean) > 0.02) else int(np.argmax(mean))
            findings.append(f"p = {features}, {arm}: the curve is not monotone (error rises to {mean[i]:.3f} at "
                            f"n = {n[i]:.0f}, n/p = {n[i] / features:.2f}): sample-wise double descent near n ≈ p, "
                            f"so a single power law describes it poorly.")
    target = _target(cells, fitted)
    values["target_error"] = target
    for features in sorted({f for f, _ in fitted}):
        if (features, "none") not in fitted:
            continue
        base = fitted[(features, "none")]
        n0, lo0, hi0 = base.n_at_ci(target)
        for arm in ARMS[1:]:
            if (features, arm) not in fitted:
                continue
            n1, lo1, hi1 = fitted[(features, arm)].n_at_ci(target)
            ratio = n0 / n1 if n1 > 0 else math.nan
            values["savings"][f"p={features}/{arm}"] = {"n_none": n0, "n_arm": n1, "ratio": ratio,
                                                       "n_arm_lo": lo1, "n_arm_hi": hi1}
            findings.append(
                f"p = {features}: to reach test error {target:.3f}, the unregularized fit needs n ≈ {n0:.0f} "
                f"(95% CI {lo0:.0f}–{hi0:.0f}) and {arm} needs n ≈ {n1:.0f} ({lo1:.0f}–{hi1:.0f}): "
                f"regularization saves a factor {ratio:.2f} in data.")
    return Analysis(findings, values)


def plot(cells, fig) -> None:
    fitted = fits(cells, n_boot=200)
    feats = sorted({c.params["features"] for c in cells})
    styles = {"none": "-", "ridge": "--", "early-stopping": ":"}
    axes = fig.subplots(1, len(ARMS), sharey=True) if len(ARMS) > 1 else [fig.subplots()]
    for ax, arm in zip(np.atleast_1d(axes), ARMS):
        for j, features in enumerate(feats):
            rows = aggregate([c for c in cells if c.params["features"] == features and c.params["arm"] == arm],
                             by=["n"], metrics=["test_error"])
            rows = [r for r in rows if "test_error" in r["metrics"]]
            if not rows:
                continue
            n = np.array([r["params"]["n"] for r in rows], dtype=float)
            m = np.array([r["metrics"]["test_error"]["mean"] for r in rows])
            lo = np.array([r["metrics"]["test_error"]["lo"] for r in rows])
            hi = np.array([r["metrics"]["test_error"]["hi"] for r in rows])
            color = f"C{j}"
            ax.plot(n, m, "o", color=color, ms=4, label=f"p = {features}")
            ax.fill_between(n, np.clip(lo, 1e-4, None), hi, color=color, alpha=0.2)
            fit = fitted.get((features, arm))
            if fit is not None:
                nn = np.geomspace(n.min(), n.max(), 100)
                ax.plot(nn, fit.law(nn), styles[arm], color=color, lw=1,
                        label=f"fit α = {fit.alpha:.2f} [{fit.alpha_lo:.2f}, {fit.alpha_hi:.2f}]")
            ax.axvline(features, color=color, ls=":", lw=0.8, alpha=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training examples n")
        ax.set_title(f"{arm} (95% CI over seeds)", fontsize=9)
        ax.legend(fontsize=6)
    np.atleast_1d(axes)[0].set_ylabel("test error")
    fig.suptitle("Learning curves of random-features regression on MNIST-1D: err ≈ a·n^(−α) "
                 "(dotted verticals: n = p)", fontsize=9)


EXPERIMENT = Experiment(
    name="learning-curves",
    question="Does test error fall as a power law in the number of training examples, with what exponent per "
             "model size, and how much data does (validated) regularization save?",
    reference="Hestness et al. (2017), Deep Learning Scaling is Predictable, Empirically, arXiv:1712.00409; "
              "Donoho (2017), 50 Years of Data Science; Nakkiran et al. (2020), Optimal regularization can "
              "mitigate double descent, arXiv:2003.01897",
    summary="test error vs n for random-features models, power-law exponents with bootstrap CIs, data saved by ridge/early stopping",
    params=(
        Param("features", int, default=[128, 512, 2048], quick=[128, 2048], low=1, high=8192,
              help="random ReLU features p (model size; a list sweeps it)"),
        Param("n", int, default=N_GRID, quick=QUICK_N, low=8, high=8000,
              help="training examples (geometric grid; <= pool)"),
        Param("arm", str, default=list(ARMS), quick=list(ARMS), choices=ARMS,
              help="none = min-norm least squares; ridge / early-stopping chosen on a validation split of the n"),
        Param("val_fraction", float, default=0.2, low=0.05, high=0.5,
              help="share of the n points held out to choose λ or the stopping time"),
        Param("pool", int, default=4000, low=8, high=20000,
              help="MNIST-1D training pool (generator seed 42) that cells subsample"),
        Param("n_test", int, default=2000, quick=1000, low=100, high=20000, help="test examples"),
        Param("target_error", float, default=0.0, low=0.0, high=1.0,
              help="error level for the data-savings comparison; 0 = the unregularized arm's error at the "
                   "largest n for the largest p"),
    ),
    run=run, run_group=run_group, group_by=("features", "n"), analyze=analyze, plot=plot,
    seeds=5, quick_seeds=3, version=1, runtime="~35 s",
    table_by=("features", "arm", "n"), table_metrics=("test_error", "train_error"),
)
