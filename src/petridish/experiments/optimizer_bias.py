"""Which interpolating solution does each optimizer pick? Wilson, Roelofs, Stern, Srebro & Recht (2017), §3.3.

Over-parameterized least-squares classification with spurious features (d = 6n > n). Example i has
label y_i (+1 with probability p > ½) and features

    x_i1 = y_i,   x_i2 = x_i3 = 1,   and "memorizing" features unique to example i:
    x_{i, 3+5(i−1)+1} = 1 if y_i = +1;   x_{i, 3+5(i−1)+1 … 3+5(i−1)+5} = 1 if y_i = −1;

all other entries 0. Every method minimizes ½·mean (xᵀw − y)² from w₀ = 0 (``petridish.train.train``,
loss "mse", float64):

* GD and SGD stay in the row space of X, so they converge to the minimum-norm interpolant
  w = X⁺y, which puts weight on x₁ = y and classifies every new point correctly: test error 0;
* AdaGrad, RMSProp and Adam converge towards w ∝ sign(Xᵀy) (Wilson et al., Lemma 3.1: here
  X·sign(Xᵀy) = 4y), which gives x₁, x₂, x₃ equal weights: a new point (its memorizing features
  are fresh, unseen coordinates) gets sign(w₁y + w₂ + w₃) = +1 whatever its label, so the test error
  is P(y = −1) = 1 − p, near ½ for p near ½.

Second arm, ``problem="mnist1d"``: the same five optimizers train an MLP (40→64→64→10, cross-entropy,
batch 128; GD full batch) on MNIST-1D from one shared initialization per seed; each is tuned with the
same budget, a grid of ``LR_GRID`` step sizes around its own centre trained as one ensemble on the
first 1,000 training examples, chosen on a fixed validation split (the last 800 of the 4,000). Measured: test error, the
norm of the solution, how far it moved from the initialization, and the distances between different
optimizers' solutions (estimated from a fixed 512-dimensional Gaussian sketch of θ − θ₀: relative
error about √(2/512) ≈ 6%, Johnson–Lindenstrauss).

A fresh point's prediction depends only on (w₁, w₂, w₃) (its memorizing features are new coordinates),
so ``test_error`` is measured on ``n_test`` fresh labels, and ``population_test_error`` is exact
(ties, a zero score, count as errors).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from petridish.lab import (Analysis, Experiment, Param, aggregate, family, from_difference, from_values,
                           not_measured, paired_difference)
from petridish.lab.paired import pair_by_seed
from petridish.seeding import rng, sub_seed
from petridish.threads import pin_threads
from petridish.train import train, train_ensemble

METHODS = ("gd", "sgd", "adagrad", "rmsprop", "adam")
ADAPTIVE = ("adagrad", "rmsprop", "adam")
# step sizes for the default problem (n = 50): GD/SGD at ~1/λ_max of the loss's Hessian XᵀX/n (≈ 3);
# the adaptive methods move every coordinate by ~lr per step towards |w_j| = 1/4
LR = {"gd": 0.3, "sgd": 0.3, "adagrad": 0.05, "rmsprop": 0.001, "adam": 0.001}
SGD_BATCH = 10
MIN_NORM_TOL = 1e-6          # "GD reaches X⁺y": relative distance below this
SIGN_COS = 0.99              # "towards sign(Xᵀy)": cosine above this
HALF_BAND = 0.1              # "test error near ½": within 0.5 ± 0.1
PROBLEMS = ("wilson", "mnist1d")
# mnist1d: each optimizer's step-size grid (same size for all: the same tuning budget)
LR_CENTRE = {"gd": 0.5, "sgd": 0.2, "adagrad": 0.03, "rmsprop": 1e-3, "adam": 2e-3}
LR_GRID = (0.25, 0.5, 1.0, 2.0)     # multiples of the centre
N_FIT = 1000                 # mnist1d examples trained on (the first 1,000 of the 4,000)
N_VAL = 800                  # validation: the last 800 of the 4,000
SKETCH = 512


def _problem(c) -> str:
    return c.params.get("problem", "wilson")


def make_data(n: int, p: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """X (n, 6n) float64 and y (n,) in {−1, +1}, y_i = +1 with probability p, redrawn until the
    positives are the majority (Wilson et al.'s condition, which makes sign(Xᵀy)₂,₃ = +1)."""
    g = rng(seed, "data")
    y = np.where(g.random(n) < p, 1.0, -1.0)
    while y.sum() <= 0:
        y = np.where(g.random(n) < p, 1.0, -1.0)
    x = np.zeros((n, 6 * n))
    x[:, 0] = y
    x[:, 1:3] = 1.0
    for i in range(n):
        start = 3 + 5 * i
        x[i, start:start + (1 if y[i] > 0 else 5)] = 1.0
    return x, y


def sampled_error(w: np.ndarray, p: float, n_test: int, seed: int) -> float:
    """Test error on n_test fresh points (labels +1 with probability p, memorizing features unseen)."""
    y = np.where(rng(seed, "probe").random(n_test) < p, 1.0, -1.0)
    score = w[0] * y + w[1] + w[2]
    return float(np.mean(np.where(score > 0, 1.0, -1.0) != y))


def population_error(w: np.ndarray, p: float) -> float:
    """Exact test error: a fresh point scores w₁y + w₂ + w₃ (its own memorizing features are unseen)."""
    pos = w[0] + w[1] + w[2]                 # score of a fresh y = +1 point
    neg = -w[0] + w[1] + w[2]                # score of a fresh y = −1 point
    return p * float(pos <= 0) + (1 - p) * float(neg >= 0)


def _mnist1d(prm: dict, seed: int) -> dict:
    from petridish.data import mnist1d
    method = prm["method"]
    ds = mnist1d(n_train=4000, n_test=1000)
    xtr, ytr = ds.x_train[:N_FIT], ds.y_train[:N_FIT]            # small enough to fit (and for full-batch GD)
    xva, yva = ds.x_train[-N_VAL:], ds.y_train[-N_VAL:]
    lrs = [LR_CENTRE[method] * m * prm["lr_scale"] for m in LR_GRID]
    init = sub_seed(seed, "init")
    with pin_threads(1):
        res = train_ensemble("mlp", xtr, ytr, seeds=[init] * len(lrs), lr=lrs, optimizer=method,
                             batch_size=None if method == "gd" else 128, steps=prm["mnist1d_steps"], loss="ce",
                             data_seeds=[sub_seed(seed, "batches")] * len(lrs), eps=1e-8,
                             model_kwargs={"width": 64, "depth": 2, "d_out": 10},
                             eval_sets={"val": (xva, yva), "test": (ds.x_test, ds.y_test)})
    val = [res.final_metrics(k)["val_error"] if not bool(res.diverged[k]) else math.inf for k in range(len(lrs))]
    k = int(np.argmin(val))
    if not math.isfinite(val[k]):
        return {"diverged": True}
    theta = torch.cat([res.params[n][k].reshape(-1).double() for n in sorted(res.params)])
    start = res._build(0)                                        # the shared initialization θ₀
    theta0 = torch.cat([dict(start.named_parameters())[n].detach().reshape(-1).double() for n in sorted(res.params)])
    delta = (theta - theta0).numpy()
    proj = np.random.default_rng(0).standard_normal((SKETCH, delta.size)) / math.sqrt(SKETCH)   # fixed sketch
    fm = res.final_metrics(k)
    return {"test_error": fm["test_error"], "val_error": fm["val_error"], "lr": lrs[k],
            "norm": float(theta.norm()), "dist_from_init": float(np.linalg.norm(delta)),
            "sketch": (proj @ delta).tolist()}


def run(prm: dict, seed: int) -> dict:
    if prm.get("problem", "wilson") == "mnist1d":
        return _mnist1d(prm, seed)
    method = prm["method"]
    x, y = make_data(prm["n"], prm["p"], seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model = torch.nn.Linear(x.shape[1], 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()                                   # w₀ = 0
    kind = "gd" if method == "gd" else method
    res = train(model, xt, yt, optimizer=kind, lr=LR[method] * prm["lr_scale"], steps=prm["steps"], loss="mse",
                batch_size=SGD_BATCH if method == "sgd" else None, seed=seed, eps=1e-10)
    if res.diverged:
        return {"diverged": True}
    w = res.params["weight"][0].numpy()
    w_mn = np.linalg.pinv(x) @ y                               # minimum-norm interpolant X⁺y
    s = np.sign(x.T @ y)                                       # Wilson et al.'s adaptive solution direction
    resid = x @ w - y
    return {
        "rel_dist_min_norm": float(np.linalg.norm(w - w_mn) / np.linalg.norm(w_mn)),
        "cosine_to_sign_solution": float(w @ s / (np.linalg.norm(w) * np.linalg.norm(s))),
        "cosine_to_min_norm": float(w @ w_mn / (np.linalg.norm(w) * np.linalg.norm(w_mn))),
        "test_error": sampled_error(w, prm["p"], prm["n_test"], seed),
        "population_test_error": population_error(w, prm["p"]),
        "test_error_min_norm": population_error(w_mn, prm["p"]),
        "train_loss": float(0.5 * np.mean(resid ** 2)),
        "train_error": float(np.mean(np.sign(x @ w) != y)),
        "norm": float(np.linalg.norm(w)), "norm_min_norm": float(np.linalg.norm(w_mn)),
        "w_label_feature": float(w[0]), "w_bias_features": float(w[1] + w[2]),
    }


# ------------------------------------------------------------------ analysis

def _by_seed(cells, method, metric) -> dict[int, float]:
    return {c.seed: float(c.metrics[metric]) for c in cells
            if c.status == "done" and c.params.get("method") == method and isinstance(c.metrics.get(metric), (int, float))}


def _mnist1d_analysis(cells) -> tuple[list, dict]:
    claims, values = [], {}
    present = [m for m in METHODS if any(c.params.get("method") == m for c in cells)]
    if "sgd" in present:
        for m in ADAPTIVE:
            if m in present:
                a, b = pair_by_seed(_by_seed(cells, m, "test_error"), _by_seed(cells, "sgd", "test_error"))
                claims.append(from_difference(
                    f"mnist1d MLP, each optimizer tuned with the same budget: {m} generalizes worse than SGD",
                    paired_difference(a, b) if a.size >= 2 else None, effect=f"test error of {m} minus SGD's",
                    direction="greater"))
    sk = {(c.params["method"], c.seed): np.array(c.metrics["sketch"]) for c in cells
          if c.status == "done" and "sketch" in c.metrics}
    dist = {}
    for i, a in enumerate(present):
        for b in present[i + 1:]:
            d = [float(np.linalg.norm(sk[(a, s)] - sk[(b, s)])) for (m, s) in sk if m == a and (b, s) in sk]
            if d:
                dist[f"{a}-{b}"] = float(np.mean(d))
    rows = aggregate(cells, by=["method"], metrics=["test_error", "norm", "dist_from_init", "lr"],
                     bounds={"test_error": (0.0, 1.0)})
    values["mnist1d"] = {"by_method": {r["params"]["method"]: r["metrics"] for r in rows},
                         "distance_between_solutions": dist}
    return claims, values


def analyze(cells) -> Analysis:
    digits = [c for c in cells if _problem(c) == "mnist1d"]
    cells = [c for c in cells if _problem(c) == "wilson"]
    claims, values = [], {}
    present = {c.params.get("method") for c in cells if c.status == "done"}
    for m in ("gd", "sgd"):
        if m in present:
            claims.append(from_values(
                f"{m.upper()} from zero reaches the minimum-norm interpolant X⁺y (relative distance below "
                f"{MIN_NORM_TOL:g})", _by_seed(cells, m, "rel_dist_min_norm").values(), null=MIN_NORM_TOL,
                effect="‖w − X⁺y‖ / ‖X⁺y‖", direction="less", subtract_null=False))
    if "gd" in present:
        claims.append(from_values("the minimum-norm solution GD finds has zero test error (below 0.01)",
                                  _by_seed(cells, "gd", "test_error").values(), null=0.01, effect="test error",
                                  direction="less", subtract_null=False, bounds=(0.0, 1.0)))
    for m in ADAPTIVE:
        if m not in present:
            continue
        claims.append(from_values(
            f"{m} converges towards w ∝ sign(Xᵀy) (cosine above {SIGN_COS:g})",
            _by_seed(cells, m, "cosine_to_sign_solution").values(), null=SIGN_COS, effect="cosine to sign(Xᵀy)",
            subtract_null=False, bounds=(-1.0, 1.0)))
        claims.append(from_values(
            f"{m}'s solution has test error near ½ (within 0.5 ± {HALF_BAND:g})",
            _by_seed(cells, m, "test_error").values(), null=0.5, effect="test error − 0.5", direction="within",
            margin=HALF_BAND, bounds=(0.0, 1.0)))
        if "gd" in present:
            a, b = pair_by_seed(_by_seed(cells, m, "test_error"), _by_seed(cells, "gd", "test_error"))
            claims.append(from_difference(f"{m} generalizes worse than GD on the same data",
                                          paired_difference(a, b) if a.size >= 2 else None,
                                          effect=f"test error of {m} minus GD's"))
    if not claims:
        claims.append(not_measured("each optimizer picks its own interpolating solution", "no finished cell"))
    rows = aggregate(cells, by=["method"], metrics=["test_error", "rel_dist_min_norm", "cosine_to_sign_solution",
                                                    "cosine_to_min_norm", "train_loss", "norm"],
                     bounds={"test_error": (0.0, 1.0)})
    values["by_method"] = {r["params"]["method"]: r["metrics"] for r in rows}
    if digits:
        more, extra = _mnist1d_analysis(digits)
        claims += more
        values.update(extra)
    return Analysis(values=values, claims=family(claims))


def plot(cells, fig) -> None:
    digits = [c for c in cells if _problem(c) == "mnist1d" and c.status == "done"]
    cells = [c for c in cells if _problem(c) == "wilson"]
    rows = aggregate(cells, by=["method"], metrics=["test_error", "cosine_to_sign_solution", "cosine_to_min_norm"],
                     bounds={"test_error": (0.0, 1.0)})
    order = [m for m in METHODS if any(r["params"]["method"] == m for r in rows)]
    rows = sorted(rows, key=lambda r: order.index(r["params"]["method"]))
    axes = fig.subplots(1, 3 if digits else 2)
    pos = np.arange(len(rows))
    names = [r["params"]["method"] for r in rows]
    for ax, metric, label in ((axes[0], "test_error", "test error (fresh points)"),):
        m = np.array([r["metrics"][metric]["mean"] for r in rows])
        lo = np.array([r["metrics"][metric]["lo"] for r in rows])
        hi = np.array([r["metrics"][metric]["hi"] for r in rows])
        ax.bar(pos, m, yerr=[m - lo, hi - m], capsize=3, color=["C0" if n in ("gd", "sgd") else "C3" for n in names])
        ax.axhline(0.5, color="grey", ls=":", lw=1, label="chance (½)")
        ax.set_xticks(pos, names)
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    w = 0.38
    for k, (metric, lab) in enumerate((("cosine_to_min_norm", "cosine to X⁺y (min norm)"),
                                       ("cosine_to_sign_solution", "cosine to sign(Xᵀy)"))):
        m = np.array([r["metrics"][metric]["mean"] for r in rows])
        lo = np.array([r["metrics"][metric]["lo"] for r in rows])
        hi = np.array([r["metrics"][metric]["hi"] for r in rows])
        axes[1].bar(pos + (k - 0.5) * w, m, w, yerr=[m - lo, hi - m], capsize=3, label=lab)
    axes[1].set_xticks(pos, names)
    axes[1].set_ylim(0, 1.05)
    axes[1].set_ylabel("cosine of the solution")
    axes[1].legend(fontsize=7)
    if digits:
        drows = aggregate(digits, by=["method"], metrics=["test_error"], bounds={"test_error": (0.0, 1.0)})
        drows = sorted(drows, key=lambda r: METHODS.index(r["params"]["method"]))
        m = np.array([r["metrics"]["test_error"]["mean"] for r in drows])
        lo = np.array([r["metrics"]["test_error"]["lo"] for r in drows])
        hi = np.array([r["metrics"]["test_error"]["hi"] for r in drows])
        dn = [r["params"]["method"] for r in drows]
        axes[2].bar(np.arange(len(drows)), m, yerr=[m - lo, hi - m], capsize=3,
                    color=["C0" if n in ("gd", "sgd") else "C3" for n in dn])
        axes[2].set_xticks(np.arange(len(drows)), dn)
        axes[2].set_ylabel("mnist1d MLP test error (each tuned on validation)")
    for ax in axes:
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("Which interpolant does each optimizer pick? (Wilson et al. 2017; 95% CI over seeds)")


EXPERIMENT = Experiment(
    name="optimizer-bias",
    question="On over-parameterized least squares with spurious features, do GD and SGD from zero reach the "
             "minimum-norm interpolant (zero test error) while AdaGrad, RMSProp and Adam go towards sign(Xᵀy) "
             "(test error near ½)?",
    reference="Wilson, Roelofs, Stern, Srebro & Recht (2017), The marginal value of adaptive gradient methods "
              "in machine learning, NeurIPS, arXiv:1705.08292",
    summary="GD/SGD → min-norm interpolant (test error 0); AdaGrad/RMSProp/Adam → sign(Xᵀy) (test error ≈ ½); "
            "the same optimizers, tuned, on an mnist1d MLP",
    params=(
        Param("problem", str, default=list(PROBLEMS), choices=PROBLEMS,
              help="wilson (least squares with spurious features) or mnist1d (MLP, tuned)"),
        Param("method", str, default=list(METHODS), choices=METHODS, help="optimizer"),
        Param("n", int, default=50, quick=30, low=4, high=5_000, help="training examples (d = 6n features)"),
        Param("p", float, default=0.55, low=0.5, high=1.0, help="probability of the positive class (> ½)"),
        Param("n_test", int, default=1000, low=1, high=10_000_000, help="fresh test points"),
        Param("steps", int, default=3_000, quick=1_500, low=1, high=10_000_000, help="updates"),
        Param("mnist1d_steps", int, default=1_000, quick=300, low=1, high=10_000_000,
              help="updates per mnist1d run"),
        Param("lr_scale", float, default=1.0, low=0.0, high=10.0, help="multiplies each method's step size"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=5, quick_seeds=3, runtime="~2.5 min (busy machine)",
    table_by=("method",),
    table_metrics=("test_error", "rel_dist_min_norm", "cosine_to_sign_solution", "cosine_to_min_norm", "train_loss",
                   "norm"),
    bounds={"test_error": (0.0, 1.0), "train_error": (0.0, 1.0)},
    tiny=dict(method=["gd", "adam"], n=10, n_test=50, steps=50, mnist1d_steps=10),  # petridish check (seconds)
)
