"""Sample-wise arm: min-norm least squares on x ~ N(0, I_d), y = xᵀβ + σξ, ‖β‖ = 1, n swept.

More data hurts near n = d: the exact finite-n risk for Gaussian design is
σ²·d/(n − d − 1) for n > d + 1 and (1 − n/d) + σ²·n/(d − n − 1) for n < d − 1
(Hastie et al. 2022; Breiman & Freedman 1983), drawn as the theory curve.
"""
from __future__ import annotations

import math

import torch

from petridish.experiments.double_descent.lstsq_path import LeastSquaresPath
from petridish.experiments.double_descent.sizes import samples_n
from petridish.seeding import sub_seed


def theory_risk(n: int, d: int, sigma: float) -> float:
    """Expected excess risk E‖β̂ − β‖² of the min-norm solution (NaN within 1 of n = d)."""
    if n > d + 1:
        return sigma ** 2 * d / (n - d - 1)
    if n < d - 1:
        return (1 - n / d) + sigma ** 2 * n / (d - n - 1)
    return math.nan


def run_samples(p: dict, seed: int) -> dict:
    d, n, sigma = int(p["dim"]), samples_n(p["width"]), float(p["noise"])
    g = torch.Generator().manual_seed(sub_seed(seed * 7919 + n, "data"))     # one stream per (seed, n)
    beta = torch.randn(d, generator=g, dtype=torch.float64)
    beta /= beta.norm()
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ beta + sigma * torch.randn(n, generator=g, dtype=torch.float64)
    coef = LeastSquaresPath(x, y.unsqueeze(1)).coef(0.0).squeeze(1)
    risk = float(((coef - beta) ** 2).sum())       # Σ = I: excess risk is ‖β̂ − β‖²
    out = {"excess_risk": risk, "size": n, "threshold": d,     # a risk, not an error rate: no (0, 1) bound
           "train_mse": float(((x @ coef - y) ** 2).mean())}
    theory = theory_risk(n, d, sigma)
    if math.isfinite(theory):               # undefined at n ∈ {d-1, d, d+1}: left out
        out["theory_risk"] = theory
    return out
