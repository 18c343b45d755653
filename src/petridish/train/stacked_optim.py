"""In-place SGD-momentum, Adam, AdaGrad and RMSProp updates on stacked (K, ...) parameters.

Same arithmetic as torch.optim.SGD (dampening 0, no Nesterov, coupled weight decay),
torch.optim.Adam (bias-corrected, coupled weight decay), torch.optim.Adagrad (lr_decay 0,
initial accumulator 0) and torch.optim.RMSprop (alpha = betas[1], not centered, optional
momentum), with per-member
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
        dtype, dev = params[0].dtype, params[0].device
        # (K, 1, ..., 1) views per parameter rank so that they broadcast over (K, ...)
        self._shape = lambda p: (k,) + (1,) * (p.dim() - 1)
        self.lr = lr.to(dev, dtype)
        self.wd = weight_decay.to(dev, dtype)
        self.use_wd = bool((weight_decay != 0).any())
        self.mom = momentum.to(dev, dtype)
        self.use_mom = kind in ("sgd", "gd", "rmsprop") and bool((momentum != 0).any())
        self.betas, self.eps, self.t = betas, eps, 0
        self.state1 = [torch.zeros_like(p) for p in params] if (self.use_mom or kind == "adam") else None
        self.state2 = [torch.zeros_like(p) for p in params] if kind in ("adam", "adagrad", "rmsprop") else None
        self._wd_views = [self.wd.view(self._shape(p)) for p in params]
        self._mom_views = [self.mom.view(self._shape(p)) for p in params]
        self._lr_mult, self._lr_views = None, []      # lr views cached per schedule multiplier

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], multiplier: float, active: torch.Tensor | None) -> None:
        """One update with lr·multiplier; ``active`` (K,) bool or None (= all active).

        foreach calls over all parameters (one dispatch per operation, not per tensor);
        ``grads`` are fresh tensors, so they are updated in place."""
        self.t += 1
        if active is not None:
            active = active.to(self.lr.device)
        lr_v = self._lr(multiplier, active)
        if active is not None:
            grads = [torch.where(active.view(self._shape(p)), g, 0.0) for p, g in zip(self.params, grads)]
        if self.use_wd:
            torch._foreach_addcmul_(grads, self._wd_views, self.params)
        if self.kind == "adam":
            b1, b2 = self.betas
            m, v = self.state1, self.state2
            torch._foreach_mul_(m, b1)
            torch._foreach_add_(m, grads, alpha=1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
            bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
            denom = torch._foreach_div(torch._foreach_sqrt(v), math.sqrt(bc2))
            torch._foreach_add_(denom, self.eps)
            step = torch._foreach_mul(m, [lr / bc1 for lr in lr_v])
            torch._foreach_addcdiv_(self.params, step, denom, value=-1.0)
            return
        if self.kind in ("adagrad", "rmsprop"):
            v = self.state2                                   # Σ g² (AdaGrad) or its EMA (RMSProp)
            if self.kind == "adagrad":
                torch._foreach_addcmul_(v, grads, grads)
            else:
                a = self.betas[1]
                torch._foreach_mul_(v, a)
                torch._foreach_addcmul_(v, grads, grads, value=1 - a)
            denom = torch._foreach_sqrt(v)
            torch._foreach_add_(denom, self.eps)
            if self.use_mom:                                  # RMSProp: buf = μ·buf + g/denom
                torch._foreach_mul_(self.state1, self._mom_views)
                torch._foreach_addcdiv_(self.state1, grads, denom)
                torch._foreach_addcmul_(self.params, self.state1, lr_v, value=-1.0)
            else:
                torch._foreach_addcmul_(self.params, torch._foreach_div(grads, denom), lr_v, value=-1.0)
            return
        if self.use_mom:
            torch._foreach_mul_(self.state1, self._mom_views)
            torch._foreach_add_(self.state1, grads)
            grads = self.state1
        torch._foreach_addcmul_(self.params, grads, lr_v, value=-1.0)

    def _lr(self, multiplier: float, active: torch.Tensor | None) -> list[torch.Tensor]:
        """Per-parameter (K, 1, ..., 1) views of lr·multiplier (zero for inactive members);
        cached while every member is active and the multiplier is unchanged."""
        if active is None and multiplier == self._lr_mult:
            return self._lr_views
        lr = self.lr * multiplier
        if active is not None:
            lr = lr * active.to(lr.dtype)
        views = [lr.view(self._shape(p)) for p in self.params]
        self._lr_mult, self._lr_views = (multiplier, views) if active is None else (None, [])
        return views
