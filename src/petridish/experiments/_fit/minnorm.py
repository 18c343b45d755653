"""The minimum-norm interpolator of Gaussian linear regression and its exact excess risk.

Design x ~ N(0, Σ) with Σ = diag(λ) (p,) (drawn by ``petridish.data.gaussian_design``),
response y = xᵀβ + σ·ξ, ξ ~ N(0, 1), p > n.
β̂ = Xᵀ(XXᵀ)⁻¹y interpolates the n training points with the smallest ‖β̂‖₂.
Excess risk E_x[(xᵀ(β̂ − β))²] = (β̂ − β)ᵀΣ(β̂ − β) is exact given Σ (no test sample).
"""
from __future__ import annotations

import torch


def gram_cholesky(x: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor (n, n) of XXᵀ, positive definite a.s. when p > n."""
    return torch.linalg.cholesky(x @ x.T)


def min_norm_fit(x: torch.Tensor, y: torch.Tensor, chol: torch.Tensor | None = None) -> torch.Tensor:
    """β̂ = Xᵀ(XXᵀ)⁻¹y for X (n, p) with p > n and full row rank; returns (p,)."""
    chol = gram_cholesky(x) if chol is None else chol
    alpha = torch.cholesky_solve(y.reshape(-1, 1), chol).reshape(-1)
    return x.T @ alpha


def excess_risk(lam: torch.Tensor, beta_hat: torch.Tensor, beta: torch.Tensor) -> float:
    """(β̂ − β)ᵀ diag(λ) (β̂ − β)."""
    d = beta_hat - beta
    return float((lam * d * d).sum())


def bias_variance(x: torch.Tensor, lam: torch.Tensor, beta: torch.Tensor, sigma: float,
                  chol: torch.Tensor | None = None) -> tuple[float, float]:
    """Expected excess risk over the label noise, given X: (bias, variance).

    bias = ‖Σ^½ (P − I) β‖² with P = Xᵀ(XXᵀ)⁻¹X the projection onto the row space;
    variance = σ² tr((XXᵀ)⁻¹ XΣXᵀ (XXᵀ)⁻¹).
    """
    chol = gram_cholesky(x) if chol is None else chol
    proj_beta = x.T @ torch.cholesky_solve((x @ beta).reshape(-1, 1), chol).reshape(-1)
    d = proj_beta - beta
    bias = float((lam * d * d).sum())
    xsx = (x * lam) @ x.T                                     # (n, n) = XΣXᵀ
    g_inv = torch.cholesky_inverse(chol)
    variance = sigma ** 2 * float(torch.trace(g_inv @ xsx @ g_inv))
    return bias, variance
