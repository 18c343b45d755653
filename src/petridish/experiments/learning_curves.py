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

So every arm sees exactly n labelled points. Per (p, arm) Hestness et al.'s (2017) form
err ≈ c + a·n^(−α), with the irreducible error c, is fitted to the per-n mean test error, and
compared with the pure power law (c = 0). The n of one seed are nested prefixes of one
subsample, so the 95% bootstrap intervals resample whole seed curves (``_fit.power_law``),
never points. Claims: α > 0, c > 0 (the offset fit is needed), the seed-paired peak test of
the unregularized curve near n ≈ p, and data savings: for a target error, the ratio of the n
at which the unregularized and the regularized fits reach it (paired bootstrap replicates).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from petridish.data import mnist1d, subsample
from petridish.data.mnist1d import DATA_SEED      # one fixed pool; cells subsample it
from petridish.data.mnist1d import DATA_SEED     # one fixed pool; cells subsample it
from petridish.errors import invalid
from petridish.experiments._fit.peaks import find_peak, location, peak_claim
from petridish.experiments._fit.power_law import bootstrap_power_law
from petridish.experiments._fit.spectral import Spectral, decompose
from petridish.lab import Analysis, Claim, Experiment, Param, aggregate, family, not_measured
from petridish.models import RandomFeatures
from petridish.seeding import sub_seed

ARMS = ("none", "ridge", "early-stopping")
N_GRID = [32, 64, 128, 256, 512, 1024, 2048]
QUICK_N = [32, 64, 128, 256, 512, 1024]
# λ (per-sample ridge) and t (gradient-flow time) grids, relative to tr(ΦᵀΦ/n)
RIDGE_GRID = np.geomspace(1e-8, 10.0, 28)
FLOW_GRID = np.geomspace(1e-1, 1e9, 31)


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
    ds = subsample(_pool(p["pool"], p["n_test"]), n, seed=sub_seed(seed, "data"))
    phi, phi_test = _features(p["features"], sub_seed(seed, "features"), [ds.x_train, ds.x_test])
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
                g = torch.Generator().manual_seed(sub_seed(seed, "validation_split"))
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
    """(n (N,), err (S, N)) over the seeds present at every n (rows in ``_seeds`` order); errors
    clipped at 1e-4 (a power law needs logarithms)."""
    mine = [c for c in cells if c.status == "done" and c.params["features"] == features
            and c.params["arm"] == arm and "test_error" in c.metrics]
    ns = sorted({c.params["n"] for c in mine})
    seeds = _seeds(cells, features, arm)
    table = {(c.params["n"], c.seed): c.metrics["test_error"] for c in mine}
    err = np.array([[max(table[(n, s)], 1e-4) for n in ns] for s in seeds], dtype=float)
    return np.array(ns, dtype=float), err.reshape(len(seeds), len(ns))


def fits(cells, *, n_boot: int = 1000, offset: bool = True) -> dict[tuple[int, str], object]:
    """(features, arm) -> PowerLawFit of err ≈ c + a·n^(−α) (c = 0 when not ``offset``); needs >= 2
    seeds and >= 3 sizes. The bootstrap resamples whole seed curves: the n of one seed are nested
    prefixes of one subsample, so its errors along n are not independent. Every arm uses the same
    bootstrap seed and draws, so replicates are paired across arms (same seeds resampled)."""
    out = {}
    for features in sorted({c.params["features"] for c in cells}):
        for arm in ARMS:
            n, err = _curves(cells, features, arm)
            if err.shape[0] >= 2 and n.size >= 3:
                out[(features, arm)] = bootstrap_power_law(n, err, offset=offset, n_boot=n_boot, seed=features,
                                                           resample="curves")
    return out


def _target(cells, fitted) -> float:
    explicit = next((c.params.get("target_error", 0.0) for c in cells), 0.0)
    if explicit:
        return float(explicit)
    big = max(f for f, _ in fitted)
    n, err = _curves(cells, big, "none")
    return float(err.mean(axis=0)[-1]) if err.size else math.nan


def _log_rmse(law, n: np.ndarray, err: np.ndarray) -> float:
    """Root mean squared log-error of a fitted law against the per-n mean curve."""
    return float(np.sqrt(np.mean((np.log(law(n)) - np.log(err.mean(axis=0))) ** 2)))


OFFSET_MARGIN = 0.01     # an offset whose CI lies within 1 point of error: the pure power law suffices


def _boot_test(fit, s: int) -> str:
    distinct = math.comb(2 * s - 1, s)
    return (f"percentile bootstrap over whole seed curves (S={s}, {distinct} distinct resamples, "
            f"B={fit.alphas.size}; draws re-inflated by √(S/(S−1)))")


def _fit_claims(label: str, fit, pure, n, err) -> tuple[list[Claim], dict]:
    s = err.shape[0]
    cs = np.array([law.c for law in fit.laws])
    q = (1 - fit.level) / 2
    c_lo, c_hi = (float(v) for v in np.quantile(cs, [q, 1 - q]))
    claims = [
        Claim(f"{label}: test error falls as a power law in n (offset fit c + a·n^(−α))", fit.alpha,
              (fit.alpha_lo, fit.alpha_hi), test=_boot_test(fit, s), direction="greater", effect="exponent α"),
        Claim(f"{label}: test error levels off at an irreducible error c > 0 (the offset fit, not a pure power "
              f"law; log-RMSE {_log_rmse(fit.law, n, err):.3g} vs {_log_rmse(pure.law, n, err):.3g})",
              fit.law.c, (c_lo, c_hi), test=_boot_test(fit, s), direction="greater", margin=OFFSET_MARGIN,
              effect="offset c"),
    ]
    values = {"alpha": fit.alpha, "alpha_lo": fit.alpha_lo, "alpha_hi": fit.alpha_hi, "a": fit.law.a,
              "c": fit.law.c, "c_lo": c_lo, "c_hi": c_hi, "alpha_pure": pure.alpha,
              "alpha_pure_lo": pure.alpha_lo, "alpha_pure_hi": pure.alpha_hi,
              "log_rmse_offset": _log_rmse(fit.law, n, err), "log_rmse_pure": _log_rmse(pure.law, n, err),
              "err_small_n": float(err.mean(axis=0)[0]), "err_large_n": float(err.mean(axis=0)[-1]),
              "peak_n": float(n[int(np.argmax(err.mean(axis=0)))])}
    return claims, values


def _saving_claim(features: int, arm: str, base, fit, target: float) -> tuple[Claim, dict]:
    """n_none / n_arm at ``target`` with a percentile CI over the paired bootstrap replicates."""
    text = f"p = {features}: {arm} reaches test error {target:.3f} with fewer examples than the unregularized fit"
    n0, n1 = base.law.n_at(target), fit.law.n_at(target)
    ratios = np.array([a.n_at(target) / b.n_at(target) for a, b in zip(base.laws, fit.laws)])
    ok = np.isfinite(ratios)
    vals = {"n_none": n0, "n_arm": n1, "ratio": n0 / n1 if math.isfinite(n0 / n1) else None}
    if not (math.isfinite(n0) and math.isfinite(n1)) or ok.mean() < 0.95:
        return not_measured(text, "a fitted curve never reaches the target error (it levels off above it) in "
                            f"{100 * (1 - ok.mean()):.0f}% of the bootstrap replicates", effect="data ratio"), vals
    q = (1 - fit.level) / 2
    lo, hi = (float(v) for v in np.quantile(ratios[ok], [q, 1 - q]))
    vals.update(ratio_lo=lo, ratio_hi=hi)
    return Claim(text, n0 / n1, (lo, hi), null=1.0, direction="greater",
                 test="paired percentile bootstrap over whole seed curves (same resamples for both arms)",
                 effect="n without regularization / n with it"), vals


def analyze(cells) -> Analysis:
    fitted = fits(cells)
    if not fitted:
        return Analysis(claims=[not_measured("test error falls as a power law in n",
                                             "fewer than 2 seeds or 3 sizes per arm: no power law to fit")])
    pure = fits(cells, offset=False)
    claims, values = [], {"fits": {}, "savings": {}}
    for (features, arm), fit in fitted.items():
        n, err = _curves(cells, features, arm)
        label = f"p = {features}, {arm}"
        cs, vals = _fit_claims(label, fit, pure[(features, arm)], n, err)
        claims += cs
        values["fits"][f"p={features}/{arm}"] = vals
        if arm == "none":
            # sample-wise double descent near n ≈ p: the seed-paired peak test of the curve
            per_seed = [{s: float(err[k, i]) for k, s in enumerate(_seeds(cells, features, arm))}
                        for i in range(n.size)]
            pk = find_peak(per_seed)
            where = "" if pk is None else f" at {location(pk, n, 'n')}"
            claims.append(peak_claim(f"{label}: test error peaks{where} (sample-wise double descent near n ≈ p "
                                     f"= {features})", pk, n, "n", margin=0.01))
            vals["peak_verdict"] = claims[-1].verdict
    target = _target(cells, fitted)
    values["target_error"] = target
    for features in sorted({f for f, _ in fitted}):
        if (features, "none") not in fitted or not math.isfinite(target):
            continue
        for arm in ARMS[1:]:
            if (features, arm) in fitted:
                c, vals = _saving_claim(features, arm, fitted[(features, "none")], fitted[(features, arm)], target)
                claims.append(c)
                values["savings"][f"p={features}/{arm}"] = vals
    return Analysis(values=values, claims=family(claims, "holm"))


def _seeds(cells, features: int, arm: str) -> list[int]:
    """The seeds present at every n of (features, arm), in the row order of ``_curves``."""
    mine = [c for c in cells if c.status == "done" and c.params["features"] == features
            and c.params["arm"] == arm and "test_error" in c.metrics]
    ns = sorted({c.params["n"] for c in mine})
    return sorted(set.intersection(*[{c.seed for c in mine if c.params["n"] == n} for n in ns])) if ns else []


def plot(cells, fig) -> None:
    fitted = fits(cells, n_boot=200)
    pure_fits = fits(cells, n_boot=200, offset=False)
    feats = sorted({c.params["features"] for c in cells})
    styles = {"none": "-", "ridge": "--", "early-stopping": ":"}
    axes = fig.subplots(1, len(ARMS), sharey=True) if len(ARMS) > 1 else [fig.subplots()]
    for ax, arm in zip(np.atleast_1d(axes), ARMS):
        for j, features in enumerate(feats):
            rows = aggregate([c for c in cells if c.params["features"] == features and c.params["arm"] == arm],
                             by=["n"], metrics=["test_error"], bounds={"test_error": (0.0, 1.0)})
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
                        label=f"c + a·n^−α: α = {fit.alpha:.2f} [{fit.alpha_lo:.2f}, {fit.alpha_hi:.2f}], "
                              f"c = {fit.law.c:.2f}")
                pure = pure_fits.get((features, arm))
                if pure is not None:
                    ax.plot(nn, pure.law(nn), "-", color=color, lw=0.6, alpha=0.5,
                            label=f"pure a·n^−α: α = {pure.alpha:.2f}")
            ax.axvline(features, color=color, ls=":", lw=0.8, alpha=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training examples n")
        ax.set_title(f"{arm} (95% CI over seeds)", fontsize=9)
        ax.legend(fontsize=6)
    np.atleast_1d(axes)[0].set_ylabel("test error")
    fig.suptitle("Learning curves of random-features regression on MNIST-1D: err ≈ c + a·n^(−α), and the pure "
                 "power law (thin); bootstrap CIs over whole seed curves (dotted verticals: n = p)", fontsize=9)


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
    seeds=5, quick_seeds=3, version=2, runtime="~35 s",
    bounds={"test_error": (0.0, 1.0), "train_error": (0.0, 1.0)},
    table_by=("features", "arm", "n"), table_metrics=("test_error", "train_error"),
    tiny=dict(features=128, n=[32, 64], pool=200, n_test=100),  # petridish check (seconds)
)
