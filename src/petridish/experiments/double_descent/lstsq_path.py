"""Least squares through one eigendecomposition: the min-norm solution and a ridge path.

For features Φ (n, p) and targets Y (n, k), all in float64:
  ridge(λ):  β_λ = Φᵀ(ΦΦᵀ + λI)⁻¹Y = (ΦᵀΦ + λI)⁻¹ΦᵀY,
  min-norm:  β_0 = Φ⁺Y (pseudo-inverse; eigenvalues below rcond·max are dropped).
The smaller Gram matrix (min(n, p) square) is decomposed once, so a whole λ path costs
one eigh. Near p = n the smallest eigenvalues make ‖β_0‖ explode: that is the peak.
"""
from __future__ import annotations

import torch


class LeastSquaresPath:
    def __init__(self, phi: torch.Tensor, y: torch.Tensor, *, rcond: float | None = None):
        phi, y = phi.to(torch.float64), y.to(torch.float64)
        n, p = phi.shape
        self.dual = p >= n                      # decompose ΦΦᵀ (n, n) when p ≥ n, else ΦᵀΦ (p, p)
        gram = phi @ phi.T if self.dual else phi.T @ phi
        evals, evecs = torch.linalg.eigh(gram)
        rcond = max(n, p) * torch.finfo(torch.float64).eps if rcond is None else rcond
        self.keep = evals > rcond * evals.max().clamp(min=1e-300)
        self.evals = evals.clamp(min=0.0)
        self.evecs = evecs
        self.phi = phi
        # projections of the targets onto the eigenbasis, (m, k)
        self.proj = evecs.T @ y if self.dual else evecs.T @ (phi.T @ y)

    def coef(self, lam: float = 0.0) -> torch.Tensor:
        """β_λ (p, k); λ = 0 is the min-norm least-squares solution."""
        if lam > 0:
            inv = 1.0 / (self.evals + lam)
        else:
            inv = torch.where(self.keep, 1.0 / torch.where(self.keep, self.evals, 1.0), 0.0)
        z = self.evecs @ (inv.unsqueeze(1) * self.proj)          # (m, k)
        return self.phi.T @ z if self.dual else z

    def scale(self) -> float:
        """Mean eigenvalue of the Gram matrix: the natural unit for λ."""
        return float(self.evals.mean())
