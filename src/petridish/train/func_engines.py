"""Generic ensemble engines for any nn.Module.

* ``VmapEngine``: torch.func — ``vmap(grad_and_value(loss ∘ functional_call))`` over
  stacked parameters and buffers (one vectorized pass for all K members).
* ``LoopEngine``: for modules vmap cannot batch (recurrent layers): each member runs
  ``functional_call`` on its slice of the stacked parameters; one backward of the summed
  losses gives every member its own gradient (the sum never mixes members' gradients,
  so a NaN in one member stays there).

Both take explicit flags: ``x_stacked`` — inputs are (K, B, ...) per member rather than
(B, ...) shared; ``y_stacked`` — likewise for the labels.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from petridish.losses import loss_value


class _StackedModule:
    def __init__(self, models: list[nn.Module], loss: str, *, meta_base: bool):
        params, buffers = stack_module_state(models)
        trainable = {n for n, p in models[0].named_parameters() if p.requires_grad}
        self.fixed = {n: p.detach() for n, p in params.items() if n not in trainable}
        self.train_names = [n for n in params if n in trainable]
        self.params = [params[n].detach().clone().contiguous() for n in self.train_names]
        self.buffers = {n: b.detach() for n, b in buffers.items()}
        base = copy.deepcopy(models[0])
        self.base = base.to("meta") if meta_base else base   # only its structure is used
        self.loss = loss
        self.k = len(models)

    def _state(self, params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**dict(zip(self.train_names, params)), **self.fixed}

    def _member(self, params: list[torch.Tensor], k: int):
        state = {n: p[k] for n, p in zip(self.train_names, params)}
        state.update({n: p[k] for n, p in self.fixed.items()})
        return state, {n: b[k] for n, b in self.buffers.items()}

    def export(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        out = {n: p.detach().clone() for n, p in zip(self.train_names, self.params)}
        out.update({n: p.clone() for n, p in self.fixed.items()})
        return out, {n: b.clone() for n, b in self.buffers.items()}


class VmapEngine(_StackedModule):
    def __init__(self, models: list[nn.Module], loss: str):
        super().__init__(models, loss, meta_base=True)
        base, loss_name = self.base, loss

        def member_loss(params, buffers, x, y):
            return loss_value(functional_call(base, (params, buffers), (x,)), y, loss_name)

        def member_out(params, buffers, x):
            return functional_call(base, (params, buffers), (x,))

        self._member_loss = member_loss
        self._grad: dict = {}
        self._out = vmap(member_out, in_dims=(0, 0, None))

    def loss_and_grads(self, xb, yb, *, x_stacked: bool, y_stacked: bool):
        key = (0 if x_stacked else None, 0 if y_stacked else None)
        if key not in self._grad:
            self._grad[key] = vmap(grad_and_value(self._member_loss), in_dims=(0, 0) + key)
        trainable = dict(zip(self.train_names, self.params))
        # fixed (non-trainable) parameters travel with the buffers: no gradient is taken
        grads, loss = self._grad[key](trainable, {**self.buffers, **self.fixed}, xb, yb)
        return loss.detach(), [grads[n].detach() for n in self.train_names]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (c, ...) shared -> (K, c, d_out)."""
        return self._out(self._state(self.params), self.buffers, x)


class LoopEngine(_StackedModule):
    def __init__(self, models: list[nn.Module], loss: str):
        super().__init__(models, loss, meta_base=False)   # recurrent kernels need real tensors

    def loss_and_grads(self, xb, yb, *, x_stacked: bool, y_stacked: bool):
        leaves = [p.detach().requires_grad_(True) for p in self.params]
        with torch.enable_grad():
            losses = []
            for k in range(self.k):
                state, bufs = self._member(leaves, k)
                out = functional_call(self.base, (state, bufs), (xb[k] if x_stacked else xb,))
                losses.append(loss_value(out, yb[k] if y_stacked else yb, self.loss))
            loss = torch.stack(losses)
            grads = torch.autograd.grad(loss.sum(), leaves, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, self.params)]
        return loss.detach(), grads

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for k in range(self.k):
            state, bufs = self._member(self.params, k)
            outs.append(functional_call(self.base, (state, bufs), (x,)))
        return torch.stack(outs)
