"""Closed-form least squares on fixed features through one eigendecomposition.

For features Φ (n, p) and one-hot targets Y (n, C), every estimator used by the
learning-curve experiment is a spectral filter of the same decomposition:

    w = Φᵀ U diag(f(d)) Uᵀ Y = V diag(f(d)) Vᵀ Φᵀ Y,   ΦΦᵀ = U diag(d) Uᵀ, ΦᵀΦ = V diag(d) Vᵀ

  * minimum-norm least squares (ridgeless):  f(d) = 1/d on the numerical range, else 0;
  * ridge on the per-sample loss (1/2n)‖Φw − Y‖² + (λ/2)‖w‖²:  f(d) = 1/(d + nλ);
  * gradient flow on (1/2n)‖Φw − Y‖² from w = 0 for time t:  f(d) = (1 − e^(−t·d/n))/d.

Predictions on an evaluation set are (Φ_eval V) diag(f) (Vᵀ Φᵀ Y): two small matrices
precomputed once, so scanning a grid of λ or t costs one (m, r)·(r, C) product each.
The smaller Gram matrix is decomposed (dual when n ≤ p), in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Spectral:
    d: torch.Tensor                     # (r,) eigenvalues of the smaller Gram matrix, >= 0
    n: int                              # training points
    coef: torch.Tensor                  # (r, C): Uᵀ Y (dual) or Vᵀ Φᵀ Y (primal)
    evals: dict[str, torch.Tensor]      # name -> (m, r): Φ_eval Φᵀ U (dual) or Φ_eval V (primal)

    def filter(self, kind: str, value: float = 0.0) -> torch.Tensor:
        """f(d) for kind "none" (min-norm), "ridge" (value = λ) or "flow" (value = t)."""
        d = self.d
        if kind == "none":
            tol = d.max().clamp_min(1e-300) * max(self.n, self.coef.shape[0]) * torch.finfo(d.dtype).eps
            return torch.where(d > tol, 1.0 / d.clamp_min(tol), torch.zeros_like(d))
        if kind == "ridge":
            return 1.0 / (d + self.n * value)
        if kind == "flow":
            safe = d.clamp_min(1e-300)
            # (1 − e^(−t d/n))/d, which tends to t/n as d → 0
            return torch.where(d > 1e-12, -torch.expm1(-value * safe / self.n) / safe,
                               torch.full_like(d, value / self.n))
        raise ValueError(kind)

    def predict(self, name: str, f: torch.Tensor) -> torch.Tensor:
        """(m, C) predictions on evaluation set ``name`` for filter values f (r,)."""
        return self.evals[name] @ (f[:, None] * self.coef)


def decompose(phi: torch.Tensor, y_onehot: torch.Tensor, evals: dict[str, torch.Tensor]) -> Spectral:
    """Eigendecomposition of the smaller Gram matrix of phi (n, p), float64."""
    phi = phi.double()
    y = y_onehot.double()
    n, p = phi.shape
    if n <= p:
        d, u = torch.linalg.eigh(phi @ phi.T)                       # (n,), (n, n)
        coef = u.T @ y                                               # (n, C)
        # predictions Φ_eval Φᵀ U diag(f) Uᵀ Y (Φᵀ g(ΦΦᵀ) = g(ΦᵀΦ) Φᵀ for any filter g)
        phi_u = phi.T @ u                                            # (p, n)
        out = {k: e.double() @ phi_u for k, e in evals.items()}
    else:
        d, v = torch.linalg.eigh(phi.T @ phi)                        # (p,), (p, p)
        coef = v.T @ (phi.T @ y)
        out = {k: e.double() @ v for k, e in evals.items()}
    return Spectral(d.clamp_min(0.0), n, coef, out)
