"""Benign overfitting: when does the minimum-norm interpolator of noisy data still generalize?

Bartlett, Long, Lugosi & Tsigler (PNAS 2020): in Gaussian linear regression with p > n,
the minimum-norm interpolator β̂ = Xᵀ(XXᵀ)⁻¹y fits the noise exactly, yet its excess
risk → 0 iff r₀(Σ)/n, k*/n and n/R_{k*}(Σ) all → 0: a few strong directions carry the
signal and a long flat tail of weak directions (many more than n) soaks up the noise.
We sweep n for three spectra (see ``_dd/spectra.py``) and compute the excess risk
(β̂ − β)ᵀΣ(β̂ − β) exactly (Σ is known, no test sample needed).
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import torch

from petridish.experiments._dd.minnorm import (bias_variance, excess_risk, gram_cholesky,
                                               min_norm_fit, sample_design)
from petridish.experiments._dd.spectra import SPECTRA, effective_ranks, spectrum
from petridish.lab import Analysis, Experiment, Param, aggregate

COLORS = {"benign": "tab:green", "isotropic": "tab:red", "decay": "tab:purple"}


def _generator(seed: int, kind: str, n: int) -> torch.Generator:
    # independent, reproducible stream per (seed, spectrum, n)
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(f"{kind}:{n}".encode()))


def run(p: dict, seed: int) -> dict:
    n = int(p["n"])
    lam = spectrum(p["spectrum"], n, strong=p["strong"], tail_power=p["tail_power"],
                   iso_ratio=p["iso_ratio"])                      # (p,)
    gen = _generator(seed, p["spectrum"], n)
    x = sample_design(lam, n, gen)                                # (n, p)
    beta = torch.zeros(lam.numel(), dtype=torch.float64)
    beta[0] = 1.0                                                 # ‖β‖ = 1 along the top direction
    y = x @ beta + p["sigma"] * torch.randn(n, generator=gen, dtype=torch.float64)
    chol = gram_cholesky(x)
    beta_hat = min_norm_fit(x, y, chol)
    bias, variance = bias_variance(x, lam, beta, p["sigma"], chol)
    ranks = effective_ranks(lam, n, b=p["b"])
    return {"excess_risk": excess_risk(lam, beta_hat, beta), "bias": bias, "variance": variance,
            "train_residual": float((x @ beta_hat - y).abs().max()), "p": int(lam.numel()),
            **{k: float(v) for k, v in ranks.items()}}


def _curves(cells) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """spectrum -> (n, mean, lo, hi) of the excess risk, sorted by n."""
    out = {}
    for kind in SPECTRA:
        rows = [r for r in aggregate(cells, by=["spectrum", "n"], metrics=["excess_risk"])
                if r["params"]["spectrum"] == kind and "excess_risk" in r["metrics"]]
        if not rows:
            continue
        rows.sort(key=lambda r: r["params"]["n"])
        m = [r["metrics"]["excess_risk"] for r in rows]
        out[kind] = (np.array([r["params"]["n"] for r in rows]), np.array([v["mean"] for v in m]),
                     np.array([v["lo"] for v in m]), np.array([v["hi"] for v in m]))
    return out


def _at(cells, kind: str, n: int, name: str) -> float:
    vals = [c.metrics[name] for c in cells if c.status == "done" and c.params["spectrum"] == kind
            and c.params["n"] == n and name in c.metrics]
    return float(np.mean(vals)) if vals else math.nan


def analyze(cells) -> Analysis:
    findings, values = [], {}
    for kind, (ns, mean, lo, hi) in _curves(cells).items():
        if len(ns) < 2:
            continue
        ratio = float(mean[-1] / mean[0])
        n_max = int(ns[-1])
        values[f"ratio_{kind}"] = ratio
        values[f"risk_{kind}_n{int(ns[0])}"] = float(mean[0])
        values[f"risk_{kind}_n{n_max}"] = float(mean[-1])
        r0n, ksn, nr = (_at(cells, kind, n_max, k) for k in ("r0_over_n", "kstar_over_n", "n_over_R"))
        verdict = "falls towards 0 (benign)" if ratio < 0.5 else "does not vanish (not benign)"
        findings.append(
            f"{kind}: excess risk of the min-norm interpolator goes from {mean[0]:.3g} at n={int(ns[0])} "
            f"to {mean[-1]:.3g} (95% CI {lo[-1]:.3g}–{hi[-1]:.3g}) at n={n_max}, ratio {ratio:.2f}: it "
            f"{verdict}. At n={n_max}: r0/n={r0n:.3g}, k*/n={ksn:.3g}, n/R_k*={nr:.3g}.")
    return Analysis(findings=findings, values=values)


def plot(cells, fig) -> None:
    ax_risk, ax_spec = fig.subplots(1, 2)
    curves = _curves(cells)
    for kind, (ns, mean, lo, hi) in curves.items():
        ax_risk.plot(ns, mean, "o-", color=COLORS[kind], label=kind)
        ax_risk.fill_between(ns, np.maximum(lo, 1e-12), hi, color=COLORS[kind], alpha=0.25)
    ax_risk.set(xscale="log", yscale="log", xlabel="training samples n",
                ylabel="excess risk (β̂−β)ᵀΣ(β̂−β)", title="Min-norm interpolator: risk vs n (95% CI)")
    ax_risk.legend()
    p0 = next((c.params for c in cells if c.status == "done"), None)
    for kind, (ns, *_rest) in curves.items():
        if p0 is None:
            break
        lam = spectrum(kind, int(ns[-1]), strong=p0["strong"], tail_power=p0["tail_power"],
                       iso_ratio=p0["iso_ratio"]).numpy()
        ax_spec.plot(np.arange(1, lam.size + 1), lam, color=COLORS[kind], label=f"{kind} (n={int(ns[-1])})")
    ax_spec.set(xscale="log", yscale="log", xlabel="index i", ylabel="eigenvalue λ_i",
                title="Covariance spectra")
    ax_spec.legend()


EXPERIMENT = Experiment(
    name="benign-overfitting",
    question="When does interpolating noisy data still give vanishing excess risk?",
    reference="Bartlett, Long, Lugosi & Tsigler 2020 (PNAS), 'Benign overfitting in linear regression'",
    summary="Min-norm interpolation: risk -> 0 for a long flat tail, not for isotropic or fast-decay spectra",
    params=(
        Param("spectrum", str, default=list(SPECTRA), choices=SPECTRA,
              help="covariance spectrum: benign (3 strong + n^1.5 weak), isotropic (p=2n), decay (i^-2)"),
        Param("n", int, default=[25, 50, 100, 200, 400, 800], quick=[25, 50, 100, 200, 400], low=2,
              help="training samples"),
        Param("sigma", float, default=1.0, low=0.0, help="label noise standard deviation"),
        Param("b", float, default=1.0, low=1e-6, help="constant b in k* = min{k: r_k(Σ) >= b n}"),
        Param("strong", int, default=3, low=1, help="number of unit eigenvalues in the benign spectrum"),
        Param("tail_power", float, default=1.5, low=1.01, high=2.0,
              help="tail length p_n = n^tail_power (benign and decay spectra)"),
        Param("iso_ratio", float, default=2.0, low=1.05, help="p/n of the isotropic spectrum"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=5, quick_seeds=3, version=1, runtime="~25 s",
    table_metrics=("excess_risk", "bias", "variance", "r0_over_n", "kstar_over_n", "n_over_R"),
)
