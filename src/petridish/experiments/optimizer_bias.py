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
from petridish.seeding import rng
from petridish.train import train

METHODS = ("gd", "sgd", "adagrad", "rmsprop", "adam")
ADAPTIVE = ("adagrad", "rmsprop", "adam")
# step sizes for the default problem (n = 50): GD/SGD at ~1/λ_max of the loss's Hessian XᵀX/n (≈ 3);
# the adaptive methods move every coordinate by ~lr per step towards |w_j| = 1/4
LR = {"gd": 0.3, "sgd": 0.3, "adagrad": 0.05, "rmsprop": 0.001, "adam": 0.001}
SGD_BATCH = 10
MIN_NORM_TOL = 1e-6          # "GD reaches X⁺y": relative distance below this
SIGN_COS = 0.99              # "towards sign(Xᵀy)": cosine above this
HALF_BAND = 0.1              # "test error near ½": within 0.5 ± 0.1


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


def run(prm: dict, seed: int) -> dict:
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


def analyze(cells) -> Analysis:
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
    return Analysis(values=values, claims=family(claims))


def plot(cells, fig) -> None:
    rows = aggregate(cells, by=["method"], metrics=["test_error", "cosine_to_sign_solution", "cosine_to_min_norm"],
                     bounds={"test_error": (0.0, 1.0)})
    order = [m for m in METHODS if any(r["params"]["method"] == m for r in rows)]
    rows = sorted(rows, key=lambda r: order.index(r["params"]["method"]))
    axes = fig.subplots(1, 2)
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
    fig.suptitle("Which interpolant does each optimizer pick? (Wilson et al. 2017; 95% CI over seeds)")


EXPERIMENT = Experiment(
    name="optimizer-bias",
    question="On over-parameterized least squares with spurious features, do GD and SGD from zero reach the "
             "minimum-norm interpolant (zero test error) while AdaGrad, RMSProp and Adam go towards sign(Xᵀy) "
             "(test error near ½)?",
    reference="Wilson, Roelofs, Stern, Srebro & Recht (2017), The marginal value of adaptive gradient methods "
              "in machine learning, NeurIPS, arXiv:1705.08292",
    summary="GD/SGD → min-norm interpolant (test error 0); AdaGrad/RMSProp/Adam → sign(Xᵀy) (test error ≈ ½)",
    params=(
        Param("method", str, default=list(METHODS), choices=METHODS, help="optimizer"),
        Param("n", int, default=50, quick=30, low=4, high=5_000, help="training examples (d = 6n features)"),
        Param("p", float, default=0.55, low=0.5, high=1.0, help="probability of the positive class (> ½)"),
        Param("n_test", int, default=1000, low=1, high=10_000_000, help="fresh test points"),
        Param("steps", int, default=3_000, quick=1_500, low=1, high=10_000_000, help="updates"),
        Param("lr_scale", float, default=1.0, low=0.0, high=10.0, help="multiplies each method's step size"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=5, quick_seeds=3, runtime="~2 min (busy machine)",
    table_by=("method",),
    table_metrics=("test_error", "rel_dist_min_norm", "cosine_to_sign_solution", "cosine_to_min_norm", "train_loss",
                   "norm"),
    bounds={"test_error": (0.0, 1.0), "train_error": (0.0, 1.0)},
)
