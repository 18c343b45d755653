"""The model's output as a pure function of a flat parameter vector, safe for every torch.func
transform: ``pure_forward(model)(theta, x)``.

Unlike ``functional.flat_forward`` it gives ``functional_call`` fresh copies of the buffers on
every call, so a BatchNorm layer in train mode updates copies of its running statistics — never
the caller's — and ``grad``/``jvp``/``vjp`` accept it (they refuse in-place writes to a captured
tensor). ``vmap`` still refuses that write (batched statistics into an unbatched buffer); callers
fall back to a loop there. The module itself is never mutated.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from petridish.instruments.functional import param_shapes, unflatten


def pure_forward(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """g(theta (p,), x (n, ...)) -> the model's output at parameters ``theta``, on theta's device."""
    shapes = param_shapes(model)
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def g(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        bufs = {n: b.to(theta.device).clone() for n, b in buffers.items()}
        return functional_call(model, ({**unflatten(theta, shapes), **bufs}), (x.to(theta.device),))

    return g
