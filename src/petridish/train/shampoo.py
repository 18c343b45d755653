"""Shampoo: preconditioned stochastic tensor optimization (Gupta, Koren & Singer 2018), for matrices and vectors.

For a weight matrix W (m×n; a tensor of higher order is flattened to (shape[0], rest)) with gradient Gₜ:

    Lₜ = Lₜ₋₁ + Gₜ Gₜᵀ   (m×m),   Rₜ = Rₜ₋₁ + Gₜᵀ Gₜ   (n×n),
    W ← W − lr · (Lₜ + εI)^(−1/4) Gₜ (Rₜ + εI)^(−1/4)                          (the paper's Algorithm 1)

For a vector (a bias) the preconditioner is diagonal, AdaGrad's: h ← h + g², w ← w − lr · g / (h + ε)^(1/2).
The inverse fourth roots are recomputed every ``update_every`` steps (the first step included) from a
symmetric eigendecomposition in float64 (eigenvalues clamped at 0 before ε is added: L and R are PSD up to
rounding), and used as they are in between; the diagonal one is exact every step. ``beta2 < 1`` replaces the
sums by exponential moving averages (a common variant; 1 is the paper's sums). ``momentum`` is heavy-ball on
the preconditioned direction. Memory and time per refresh: m² + n² and ≈ 9(m³ + n³) FLOPs per matrix.
"""
from __future__ import annotations

import torch

from petridish.errors import check_number


def inverse_root(m: torch.Tensor, *, eps: float, power: int = 4) -> torch.Tensor:
    """(m + εI)^(−1/power) for a symmetric PSD m, by eigh in float64."""
    lam, q = torch.linalg.eigh(m.double())
    return (q * (lam.clamp(min=0.0) + eps).pow(-1.0 / power)) @ q.T


class Shampoo(torch.optim.Optimizer):
    """Shampoo with sums (or EMAs) of G Gᵀ and Gᵀ G per matrix, a diagonal preconditioner per vector."""

    def __init__(self, params, *, lr: float = 0.1, eps: float = 1e-4, update_every: int = 1,
                 momentum: float = 0.0, beta2: float = 1.0):
        defaults = {"lr": check_number(lr, "lr", "Shampoo", low=0, low_open=True),
                    "eps": check_number(eps, "eps", "Shampoo", low=0, low_open=True),
                    "update_every": check_number(update_every, "update_every", "Shampoo", kind=int, low=1),
                    "momentum": check_number(momentum, "momentum", "Shampoo", low=0, high=1, high_open=True),
                    "beta2": check_number(beta2, "beta2", "Shampoo", low=0, high=1, low_open=True)}
        super().__init__(params, defaults)
        self.refresh_flops = 0.0          # FLOPs of the inverse roots computed in the last step (≈ 9 d³ each)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.refresh_flops = 0.0
        for group in self.param_groups:
            lr, eps, every, mom, b2 = (group[k] for k in ("lr", "eps", "update_every", "momentum", "beta2"))
            keep, add = (b2, 1.0 - b2) if b2 < 1 else (1.0, 1.0)
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                st["step"] = st.get("step", 0) + 1
                if p.dim() >= 2:
                    g = p.grad.reshape(p.shape[0], -1).double()                  # (m, n)
                    if "L" not in st:
                        st["L"] = torch.zeros(g.shape[0], g.shape[0], dtype=torch.float64, device=g.device)
                        st["R"] = torch.zeros(g.shape[1], g.shape[1], dtype=torch.float64, device=g.device)
                    st["L"].mul_(keep).add_(g @ g.T, alpha=add)
                    st["R"].mul_(keep).add_(g.T @ g, alpha=add)
                    if (st["step"] - 1) % every == 0:
                        st["L_root"] = inverse_root(st["L"], eps=eps)
                        st["R_root"] = inverse_root(st["R"], eps=eps)
                        self.refresh_flops += 9.0 * (g.shape[0] ** 3 + g.shape[1] ** 3)
                    d = (st["L_root"] @ g @ st["R_root"]).reshape(p.shape).to(p.dtype)
                else:
                    g = p.grad.double()
                    if "h" not in st:
                        st["h"] = torch.zeros_like(g)
                    st["h"].mul_(keep).add_(g * g, alpha=add)
                    d = (g / (st["h"] + eps).sqrt()).to(p.dtype)
                if mom > 0:
                    buf = st.get("momentum_buffer")
                    d = d if buf is None else buf.mul_(mom).add_(d)
                    st["momentum_buffer"] = d
                p.sub_(lr * d)
        return loss
