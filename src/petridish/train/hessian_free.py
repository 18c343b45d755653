"""Curvature-aware steps for any PyTorch loss: conjugate gradients and Hessian-free Newton (Martens 2010).

* ``conjugate_gradient(matvec, b)`` solves A x = b for a symmetric positive-definite operator given
  only as x ↦ A x (Hestenes & Stiefel 1952). In exact arithmetic it terminates in at most n steps,
  and in at most k steps when A has k distinct eigenvalues.
* ``HessianFree(params, loss_fn)``: each ``step()`` solves (H + λI) d = −g by CG with
  Hessian-vector products (double backward; no Hessian is ever formed) and applies w ← w + d.
  On a convex quadratic with λ = 0 and enough CG iterations this is Newton's method: one step
  lands on the minimizer. λ is adapted by Levenberg–Marquardt's rule on the ratio ρ of the actual
  to the predicted reduction (×2/3 when ρ > 3/4, ×3/2 when ρ < 1/4), and a step that raises the
  loss is rejected. When CG finds no descent at all (negative curvature along its first direction,
  so d = 0 and nothing is predicted), λ is raised too (×3/2, at least to ``MIN_DAMPING``): H + λI
  is then positive definite after a few steps, where a rule driven by ρ alone would stay at
  d = 0 forever (the ReLU CNN of ``second-order`` did).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from petridish.errors import check_number, invalid

Vec = torch.Tensor
MIN_DAMPING = 1e-3      # the λ a no-descent step raises a zero damping to (loss units per parameter²)


@dataclass(frozen=True)
class CGResult:
    x: Vec
    iterations: int
    residual: float          # ‖b − A x‖ / ‖b‖ at the end
    converged: bool


def conjugate_gradient(matvec: Callable[[Vec], Vec], b: Vec, *, x0: Vec | None = None, tol: float = 1e-10,
                       max_iter: int | None = None) -> CGResult:
    """Solve A x = b, A symmetric positive definite given as ``matvec``; stop at ‖r‖ ≤ tol·‖b‖."""
    tol = check_number(tol, "tol", "conjugate_gradient", low=0)
    n = b.numel()
    max_iter = n if max_iter is None else check_number(max_iter, "max_iter", "conjugate_gradient", kind=int, low=0)
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = float(r @ r)
    bnorm = max(float(b.norm()), 1e-300)
    k = 0
    while k < max_iter and rr ** 0.5 > tol * bnorm:
        ap = matvec(p)
        pap = float(p @ ap)
        if pap <= 0:                         # not positive definite along p: stop with what we have
            break
        a = rr / pap
        x = x + a * p
        r = r - a * ap
        rr_new = float(r @ r)
        p = r + (rr_new / rr) * p
        rr = rr_new
        k += 1
    res = rr ** 0.5 / bnorm
    return CGResult(x, k, res, res <= tol)


class HessianFree:
    """Damped Newton–CG on ``loss_fn()`` over ``params`` (a list of tensors with requires_grad)."""

    def __init__(self, params: Sequence[torch.Tensor], loss_fn: Callable[[], torch.Tensor], *,
                 damping: float = 1.0, cg_iters: int = 50, cg_tol: float = 1e-10, adapt: bool = True):
        self.params = list(params)
        if not self.params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in self.params):
            raise invalid("params", "HessianFree", "a non-empty list of tensors with requires_grad=True", params)
        self.loss_fn = loss_fn
        self.damping = check_number(damping, "damping", "HessianFree", low=0)
        self.cg_iters = check_number(cg_iters, "cg_iters", "HessianFree", kind=int, low=1)
        self.cg_tol = check_number(cg_tol, "cg_tol", "HessianFree", low=0)
        self.adapt = adapt
        self.last_cg: CGResult | None = None

    def _flat(self, ts) -> Vec:
        return torch.cat([t.reshape(-1) for t in ts])

    def _assign(self, flat: Vec) -> None:
        i = 0
        with torch.no_grad():
            for p in self.params:
                p.copy_(flat[i:i + p.numel()].view_as(p))
                i += p.numel()

    def step(self) -> float:
        """One damped Newton step; returns the loss after it."""
        loss = self.loss_fn()
        grads = torch.autograd.grad(loss, self.params, create_graph=True)
        g = self._flat(grads)
        lam = self.damping

        def hvp(v: Vec) -> Vec:              # (H + λI) v by double backward
            hv = torch.autograd.grad(g, self.params, grad_outputs=v, retain_graph=True)
            return self._flat(hv).detach() + lam * v

        gd = g.detach()
        cg = conjugate_gradient(hvp, -gd, tol=self.cg_tol, max_iter=self.cg_iters)
        self.last_cg = cg
        d = cg.x
        predicted = float(gd @ d + 0.5 * (d @ (hvp(d) - lam * d)))    # quadratic model change (undamped)
        w0 = self._flat([p.detach() for p in self.params]).clone()
        self._assign(w0 + d)
        with torch.no_grad():
            new = float(self.loss_fn())
        actual = new - float(loss.detach())
        if actual > 0 or new != new:          # reject a step that does not reduce the loss
            self._assign(w0)
            new = float(loss.detach())
        if self.adapt and predicted < 0:
            rho = actual / predicted
            if rho > 0.75:
                self.damping *= 2 / 3
            elif rho < 0.25:
                self.damping *= 1.5
        elif self.adapt:                      # no predicted decrease: CG met negative curvature first
            self.damping = max(self.damping * 1.5, MIN_DAMPING)
        return new
