"""A model's loss as a function of one flat parameter vector (the common ground of the
Hessian, sharpness and flatness instruments).

``flat_loss(model, x, y)`` returns ``(f, theta0)`` where ``theta0`` (p,) is the model's
parameters concatenated in ``named_parameters`` order and ``f(theta) -> scalar`` is the
mean loss over ``(x, y)`` computed with ``torch.func.functional_call`` — the module itself
is never mutated, so every instrument is side-effect free. ``theta0``, the data and the
buffers live on ``petridish.device.target_device`` (the CPU unless the caller put the
model or the data on a GPU, or runs inside ``use_device("cuda")``); every instrument
follows ``theta0``'s device and returns floats or CPU tensors.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from petridish.device import target_device
from petridish.errors import check_choice, invalid
from petridish.losses import NAMES, canonical, loss_value


def param_shapes(model: nn.Module) -> list[tuple[str, torch.Size]]:
    return [(name, p.shape) for name, p in model.named_parameters()]


def flatten_params(model: nn.Module) -> torch.Tensor:
    """(p,) detached copy of all parameters, in ``named_parameters`` order."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def unflatten(theta: torch.Tensor, shapes: list[tuple[str, torch.Size]]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`flatten_params`: name -> view of ``theta`` with the parameter's shape."""
    out, i = {}, 0
    for name, shape in shapes:
        n = shape.numel()
        out[name] = theta[i:i + n].view(shape)
        i += n
    return out


def flat_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss: str = "cross_entropy",
              owner: str = "flat_loss") -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """(f, theta0): the mean loss over (x, y) as a function of a flat parameter vector."""
    check_choice(loss, "loss", owner, NAMES)
    loss = canonical(loss)
    if x.shape[0] != y.shape[0]:
        raise invalid("y", owner, f"a tensor with {x.shape[0]} rows like x", tuple(y.shape))
    shapes = param_shapes(model)
    dev = target_device(x, next(model.parameters(), None))
    x, y = x.to(dev), y.to(dev)
    buffers = {n: b.to(dev) for n, b in model.named_buffers()}
    theta0 = flatten_params(model).to(dev)
    if theta0.numel() == 0:
        raise invalid("model", owner, "a module with parameters", type(model).__name__)

    def f(theta: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, ({**unflatten(theta, shapes), **buffers}), (x,))
        return loss_value(out, y, loss)

    return f, theta0


def flat_forward(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """g(theta, x) -> model output with parameters ``theta`` (flat)."""
    shapes = param_shapes(model)
    buffers = dict(model.named_buffers())

    def g(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:     # on theta's device
        bufs = {n: b.to(theta.device) for n, b in buffers.items()}
        return functional_call(model, ({**unflatten(theta, shapes), **bufs}), (x.to(theta.device),))

    return g
