"""Effective dimension: how many parameters (or degrees of freedom) a fit actually uses.

* Hessian effective dimension (MacKay 1992; Maddox, Benton & Wilson 2020):
  N_eff(H, z) = Σ_i λ_i / (λ_i + z). ``hessian_effective_dimension`` sums the top-k Hessian
  eigenvalues (Lanczos) only: each term is in [0, 1), so that sum is <= k by construction, and
  the many small eigenvalues below λ_k, each adding ≈ λ/z, can hold most of N_eff (a trained
  width-256 MLP: 8.7 in the top 20 of 36). For N_eff over the whole spectrum use
  :func:`petridish.instruments.neff_spectrum.neff_full_spectrum` (top k + quadrature of the rest).
  Here negative eigenvalues (non-convex points) are clipped to 0.
* Effective degrees of freedom of a linear smoother ŷ = S y (Hastie, Tibshirani &
  Friedman §7.6): ridge on features X (n, p) has S = X(XᵀX + λI)⁻¹Xᵀ and
  tr(S) = Σ_i d_i² / (d_i² + λ), d_i the singular values of X; the min-norm interpolator
  (λ → 0) has tr(S) = rank(X) = min(n, p) for generic X.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from petridish.errors import check_number, invalid
from petridish.instruments.hessian import top_eigenvalues


def effective_dimension(eigenvalues: torch.Tensor | Sequence[float], z: float) -> float:
    """Σ max(λ,0) / (max(λ,0) + z) for z > 0."""
    z = check_number(z, "z", "effective_dimension", low=0, low_open=True)
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64).clamp_min(0.0)
    return float((lam / (lam + z)).sum())


def hessian_effective_dimension(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, z: float = 1.0,
                                k: int = 50, loss: str = "cross_entropy", seed: int = 0,
                                tol: float | None = None, max_iters: int | None = None
                                ) -> tuple[float, torch.Tensor]:
    """(N_eff, top-k eigenvalues) of the loss Hessian at the model's parameters."""
    p = sum(q.numel() for q in model.parameters())
    k = check_number(k, "k", "hessian_effective_dimension", kind=int, low=1)
    res = top_eigenvalues(model, x, y, k=min(k, p), loss=loss, seed=seed, tol=tol, max_iters=max_iters)
    return effective_dimension(res.eigenvalues, z), res.eigenvalues


def ridge_dof(X: torch.Tensor, lam: float | Sequence[float] | torch.Tensor) -> torch.Tensor | float:
    """tr(X (XᵀX + λI)⁻¹ Xᵀ) = Σ d_i²/(d_i²+λ) for λ >= 0 (scalar in, float out; sequence in,
    (m,) float64 tensor out). λ = 0 gives the min-norm interpolator's rank(X)."""
    if X.ndim != 2:
        raise invalid("X", "ridge_dof", "a 2-D (n, p) tensor", tuple(X.shape))
    scalar = isinstance(lam, (int, float))
    lam_t = torch.as_tensor(lam, dtype=torch.float64).reshape(-1)
    if bool((lam_t < 0).any()) or not bool(torch.isfinite(lam_t).all()):
        raise invalid("lam", "ridge_dof", "a float >= 0 (or a sequence of them)", lam)
    d2 = torch.linalg.svdvals(X.double()) ** 2                       # (min(n, p),)
    tol = d2.max().clamp_min(1e-300) * max(X.shape) * torch.finfo(torch.float64).eps
    d2 = d2[d2 > tol]                                                 # numerical rank
    out = torch.where(lam_t[:, None] == 0, torch.ones(1, dtype=torch.float64),
                      d2[None, :] / (d2[None, :] + lam_t[:, None])).sum(1)
    return float(out[0]) if scalar else out


def min_norm_dof(X: torch.Tensor) -> int:
    """Degrees of freedom of min-norm least squares (S = X X⁺): the rank of X."""
    return int(torch.linalg.matrix_rank(X.double()))
