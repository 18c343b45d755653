"""In-place SGD-momentum and Adam updates on stacked (K, ...) parameters.

Same arithmetic as torch.optim.SGD (dampening 0, no Nesterov, coupled weight decay)
and torch.optim.Adam (bias-corrected, coupled weight decay), with per-member
hyperparameters given as (K,) tensors. Members whose ``active`` flag is False get a
zero update and their (possibly NaN) gradients are zeroed first, so a diverged member
never changes and never leaks into another.
"""
from __future__ import annotations

import math

import torch


class StackedOptimizer:
    def __init__(self, params: list[torch.Tensor], *, kind: str, lr: torch.Tensor,
                 momentum: torch.Tensor, weight_decay: torch.Tensor, betas: tuple[float, float],
                 eps: float):
        self.params = params
        self.kind = kind
        k = lr.shape[0]
        dtype = params[0].dtype
        # (K, 1, ..., 1) views per parameter rank so that they broadcast over (K, ...)
        self._shape = lambda p: (k,) + (1,) * (p.dim() - 1)
        self.lr = lr.to(dtype)
        self.wd = weight_decay.to(dtype)
        self.use_wd = bool((weight_decay != 0).any())
        self.mom = momentum.to(dtype)
        self.use_mom = kind != "adam" and bool((momentum != 0).any())
        self.betas, self.eps, self.t = betas, eps, 0
        self.state1 = [torch.zeros_like(p) for p in params] if (self.use_mom or kind == "adam") else None
        self.state2 = [torch.zeros_like(p) for p in params] if kind == "adam" else None
        self._wd_views = [self.wd.view(self._shape(p)) for p in params]
        self._mom_views = [self.mom.view(self._shape(p)) for p in params]
        self._lr_mult, self._lr_views = None, []      # lr views cached per schedule multiplier

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], multiplier: float, active: torch.Tensor | None) -> None:
        """One update with lr·multiplier; ``active`` (K,) bool or None (= all active)."""
        if active is None and self.kind != "adam":
            self.t += 1
            self._sgd_all_active(grads, multiplier)
            return
        lr = self.lr * multiplier
        if active is not None:
            lr = lr * active.to(lr.dtype)
        self.t += 1
        for i, (p, g) in enumerate(zip(self.params, grads)):
            shape = self._shape(p)
            if active is not None:
                g = torch.where(active.view(shape), g, 0.0)
            if self.use_wd:
                g = g.addcmul_(self._wd_views[i], p)   # grads are fresh tensors: safe in place
            lr_v = lr.view(shape)
            if self.kind == "adam":
                b1, b2 = self.betas
                m, v = self.state1[i], self.state2[i]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
                denom = (v.sqrt() / math.sqrt(bc2)).add_(self.eps)
                p.addcdiv_(m * (lr_v / bc1), denom, value=-1.0)
            elif self.use_mom:
                buf = self.state1[i]
                buf.mul_(self._mom_views[i]).add_(g)
                p.addcmul_(buf, lr_v, value=-1.0)
            else:
                p.addcmul_(g, lr_v, value=-1.0)

    def _sgd_all_active(self, grads: list[torch.Tensor], multiplier: float) -> None:
        """The common case in a handful of foreach calls: same arithmetic, in the same order,
        as the per-parameter loop, without its ~3 dispatches per tensor per step."""
        if multiplier != self._lr_mult:
            lr = self.lr * multiplier
            self._lr_views = [lr.view(self._shape(p)) for p in self.params]
            self._lr_mult = multiplier
        if self.use_wd:
            torch._foreach_addcmul_(grads, self._wd_views, self.params)
        if self.use_mom:
            torch._foreach_mul_(self.state1, self._mom_views)
            torch._foreach_add_(self.state1, grads)
            grads = self.state1
        torch._foreach_addcmul_(self.params, grads, self._lr_views, value=-1.0)

