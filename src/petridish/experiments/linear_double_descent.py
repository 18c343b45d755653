"""Ridgeless least squares on isotropic Gaussian features, against Hastie et al.'s curve.

y = xᵀβ + ε with x ~ N(0, I_p), ‖β‖² = r², Var ε = σ², n fixed and γ = p/n swept.
Because x is isotropic, the test risk E[(xᵀβ̂ − xᵀβ)²] is exactly ‖β̂ − β‖²: no test set.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from petridish.experiments._fit.peaks import find_peak, location, peak_claim
from petridish.lab import (Analysis, Claim, Experiment, Param, aggregate, family, from_difference, from_values,
                           not_measured, paired_difference)
from petridish.lab.paired import pair_by_seed

GAMMAS = [round(float(g), 4) for g in np.geomspace(0.1, 10, 31) if abs(g - 1) > 0.02]
QUICK_GAMMAS = [0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0]


def mp_stieltjes(z: float, gamma: float) -> float:
    """Stieltjes transform m(z) of the Marchenko–Pastur law (ratio γ, unit variance), z < 0."""
    a = 1 - gamma - z
    return (a - math.sqrt(a * a - 4 * gamma * z)) / (2 * gamma * z)


def theory_risk(gamma: float, r2: float, sigma2: float, ridge: str) -> float:
    """Asymptotic risk (Hastie, Montanari, Rosset & Tibshirani 2022, Thm 1 and Thm 5)."""
    if ridge == "none":
        if gamma < 1:
            return sigma2 * gamma / (1 - gamma)
        if gamma > 1:
            return r2 * (1 - 1 / gamma) + sigma2 / (gamma - 1)
        return math.inf
    # optimally tuned ridge, λ* = σ²γ/r² (penalty nλ‖b‖²): R = σ²γ·m(−λ*)
    lam = sigma2 * gamma / r2
    return sigma2 * gamma * mp_stieltjes(-lam, gamma)


def run(p: dict, seed: int) -> dict:
    n, gamma = p["n"], p["gamma"]
    dim = max(1, int(round(gamma * n)))
    g = torch.Generator().manual_seed(seed)
    beta = torch.randn(dim, generator=g, dtype=torch.float64)
    beta *= math.sqrt(p["r2"]) / beta.norm()
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = x @ beta + math.sqrt(p["sigma2"]) * torch.randn(n, generator=g, dtype=torch.float64)
    if p["ridge"] == "none":
        # minimum-norm least squares (the limit λ → 0+ of ridge); normal equations on the
        # smaller side are exact here (p ≠ n) and ~10x cheaper than an SVD-based lstsq
        if dim < n:
            bhat = torch.linalg.solve(x.T @ x, x.T @ y)
        elif dim > n:
            bhat = x.T @ torch.linalg.solve(x @ x.T, y)
        else:
            bhat = torch.linalg.lstsq(x, y.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    else:
        # Bayes-optimal ridge for β uniform on the sphere of radius r: λ_total = σ²p/r²
        lam = p["sigma2"] * dim / p["r2"]
        if dim <= n:
            bhat = torch.linalg.solve(x.T @ x + lam * torch.eye(dim, dtype=x.dtype), x.T @ y)
        else:
            bhat = x.T @ torch.linalg.solve(x @ x.T + lam * torch.eye(n, dtype=x.dtype), y)
    risk = float(((bhat - beta) ** 2).sum())
    exact = p["sigma2"] * dim / (n - dim - 1) if (p["ridge"] == "none" and dim < n - 1) else None
    out = {"p": dim, "gamma_eff": dim / n, "risk": risk,
           "theory_risk": theory_risk(dim / n, p["r2"], p["sigma2"], p["ridge"]),
           "norm_bhat": float(bhat.norm())}
    if exact is not None:
        out["exact_risk"] = exact
    return out


THEORY_MARGIN = 0.10    # |mean relative deviation from the closed form| a "match" allows (finite-n bias ~ 3%)
FAR_FROM_ONE = 0.3       # the asymptotic formula is compared with the run where |γ − 1| > 0.3
LABEL = {"none": "ridgeless", "optimal": "optimal ridge"}


def _per_seed(cells, ridge: str) -> tuple[np.ndarray, list[dict[int, float]], list[dict[int, float]]]:
    """(γ (G,) sorted, [{seed: risk}] per γ, [{seed: theory}] per γ) of one ridge arm."""
    mine = [c for c in cells if c.status == "done" and c.params["ridge"] == ridge and "risk" in c.metrics]
    gammas = np.array(sorted({c.params["gamma"] for c in mine}), dtype=float)
    risk = [{c.seed: c.metrics["risk"] for c in mine if c.params["gamma"] == g} for g in gammas]
    theory = [{c.seed: c.metrics["theory_risk"] for c in mine if c.params["gamma"] == g} for g in gammas]
    return gammas, risk, theory


def _theory_claim(label: str, gammas, risk, theory) -> Claim:
    """Per seed, the mean over γ far from 1 of (risk − theory)/theory; a t-interval over seeds
    must lie inside ±THEORY_MARGIN ("within")."""
    text = (f"{label}: the measured risk matches the Hastie et al. closed form away from the threshold "
            f"(|γ − 1| > {FAR_FROM_ONE:g})")
    far = [i for i, g in enumerate(gammas) if abs(g - 1) > FAR_FROM_ONE]
    seeds = sorted(set.intersection(*[set(risk[i]) for i in far])) if far else []
    dev = [float(np.mean([(risk[i][s] - theory[i][s]) / theory[i][s] for i in far])) for s in seeds]
    return from_values(text, dev, null=0.0, direction="within", margin=THEORY_MARGIN,
                       effect="mean relative deviation (risk − theory)/theory")


def analyze(cells) -> Analysis:
    claims, values = [], {}
    arms = {}
    for ridge in ("none", "optimal"):
        gammas, risk, theory = _per_seed(cells, ridge)
        if gammas.size == 0:
            continue
        arms[ridge] = (gammas, risk)
        claims.append(_theory_claim(LABEL[ridge], gammas, risk, theory))
        pk = find_peak(risk)
        where = "" if pk is None else f" at {location(pk, gammas, 'γ')}"
        claims.append(peak_claim(f"{LABEL[ridge]}: the risk peaks{where}", pk, gammas, "γ"))
        mean = np.array([np.mean(list(r.values())) for r in risk])
        values[ridge] = {"peak_gamma": float(gammas[np.argmax(mean)]), "peak_risk": float(mean.max()),
                         "risk_at_max_gamma": float(mean[-1]), "theory_deviation": claims[-2].estimate,
                         "theory_verdict": claims[-2].verdict, "peak_verdict": claims[-1].verdict,
                         "peak_ties": None if pk is None else [float(gammas[t]) for t in pk.ties]}
    if len(arms) == 2:
        # at the ridgeless arm's worst γ, seed-paired: ridgeless minus optimal ridge
        g0, r0 = arms["none"]
        g1, r1 = arms["optimal"]
        i = int(np.argmax([np.mean(list(r.values())) for r in r0]))
        j = [k for k, g in enumerate(g1) if g == g0[i]]
        text = f"optimal ridge lowers the risk at the ridgeless arm's worst γ = {g0[i]:.3g}"
        c = (from_difference(text, paired_difference(*pair_by_seed(r0[i], r1[j[0]])),
                             effect="ridgeless minus optimal-ridge risk") if j
             else not_measured(text, f"the optimal-ridge arm has no cells at γ = {g0[i]:.3g}"))
        claims.append(c)
        values["ridge_gain_at_peak"] = c.estimate
    claims = family(claims, "holm")
    return Analysis(values=values, claims=claims)


def plot(cells, fig) -> None:
    ax = fig.add_subplot(1, 1, 1)
    colors = {"none": "C0", "optimal": "C2"}
    for ridge in sorted({c.params["ridge"] for c in cells}):
        rows = aggregate([c for c in cells if c.params["ridge"] == ridge], by=["gamma"])
        rows = [r for r in rows if "risk" in r["metrics"]]
        g = np.array([r["params"]["gamma"] for r in rows])
        m = np.array([r["metrics"]["risk"]["mean"] for r in rows])
        lo = np.array([r["metrics"]["risk"]["lo"] for r in rows])
        hi = np.array([r["metrics"]["risk"]["hi"] for r in rows])
        label = "ridgeless (measured)" if ridge == "none" else "optimal ridge (measured)"
        ax.errorbar(g, m, yerr=[m - lo, hi - m], fmt="o", ms=4, capsize=2, color=colors.get(ridge), label=label)
        p0 = next(c.params for c in cells if c.params["ridge"] == ridge)
        gg = np.geomspace(g.min(), g.max(), 400)
        gg = gg[np.abs(gg - 1) > 1e-3]
        th = [theory_risk(x, p0["r2"], p0["sigma2"], ridge) for x in gg]
        ax.plot(gg, th, "-", color=colors.get(ridge), alpha=0.8,
                label="Hastie et al. theory" + ("" if ridge == "none" else " (optimal ridge)"))
    ax.axvline(1.0, color="grey", ls=":", lw=1, label="interpolation threshold p = n")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("γ = p / n")
    ax.set_ylabel("test risk  E[(xᵀβ̂ − xᵀβ)²]")
    ax.set_title("Ridgeless least squares: double descent (95% CI over seeds)")
    ax.legend(fontsize=8)


EXPERIMENT = Experiment(
    name="linear-double-descent",
    question="Does the test risk of minimum-norm least squares follow the closed-form double-descent curve "
             "as the number of parameters p crosses the number of samples n?",
    reference="Hastie, Montanari, Rosset & Tibshirani (2022), Surprises in high-dimensional ridgeless "
              "least squares interpolation, Ann. Statist., arXiv:1903.08560",
    summary="min-norm least squares vs p/n, measured against the Hastie et al. closed form",
    params=(
        Param("gamma", float, default=GAMMAS, quick=QUICK_GAMMAS, low=1e-3, high=100,
              help="p / n (a list sweeps it)"),
        Param("n", int, default=200, quick=100, low=2, high=100_000, help="training samples"),
        Param("r2", float, default=1.0, low=0.0, help="signal energy ‖β‖²"),
        Param("sigma2", float, default=0.25, low=0.0, help="noise variance σ²"),
        Param("ridge", str, default=["none", "optimal"], quick=["none", "optimal"], choices=("none", "optimal"),
              help="ridgeless, or Bayes-optimal ridge λ = σ²p/r²"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=20, quick_seeds=5, runtime="~15 s",
    table_by=("ridge", "gamma"), table_metrics=("risk", "theory_risk"),
    tiny=dict(gamma=[0.5, 2.0], n=20),  # petridish check (seconds)
)
