"""Finite MLPs in the parameterizations that the analytic kernels describe.

'ntk': every weight and bias ~ N(0, 1); a Dense layer computes
    h = w_std / sqrt(fan_in) * W x + b_std * b
'standard': W ~ N(0, w_std^2 / fan_in), b ~ N(0, b_std^2); h = W x + b.
Both have the NNGP of ``mlp_kernels``; their NTKs are those of the matching
``parameterization``. ``b_std=None`` builds no biases (as in ``mlp_kernels``).
Architecture: ``depth`` hidden layers of ``width`` units, ``Dense -> activation``, then a
Dense readout to ``d_out`` (the kernel of each output is the same).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from petridish.errors import check_choice, check_number
from petridish.kernels.activations import TRANSFORMS, torch_activation

_OWNER = "NTKMLP"


class _Dense(nn.Module):
    def __init__(self, d_in: int, d_out: int, *, w_std: float, b_std: float | None,
                 parameterization: str, generator: torch.Generator | None, dtype: torch.dtype):
        super().__init__()
        ntk = parameterization == "ntk"
        w = torch.randn(d_out, d_in, generator=generator, dtype=dtype)
        self.weight = nn.Parameter(w if ntk else w * (w_std / math.sqrt(d_in)))
        self.bias = None
        if b_std is not None:
            b = torch.randn(d_out, generator=generator, dtype=dtype)
            self.bias = nn.Parameter(b if ntk else b * b_std)
        self.w_scale = w_std / math.sqrt(d_in) if ntk else 1.0     # forward multipliers
        self.b_scale = (b_std or 0.0) if ntk else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:             # (n, d_in) -> (n, d_out)
        h = (x @ self.weight.T) * self.w_scale
        if self.bias is not None:
            h = h + self.b_scale * self.bias
        return h


class NTKMLP(nn.Module):
    """MLP ``d_in -> [width, activation] * depth -> d_out`` (see module docstring)."""

    def __init__(self, d_in: int, width: int, depth: int, d_out: int = 1, *, activation: str = "relu",
                 w_std: float = 1.0, b_std: float | None = None, parameterization: str = "ntk",
                 negative_slope: float = 0.01, seed: int | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        for name, v, low in (("d_in", d_in, 1), ("width", width, 1), ("depth", depth, 0), ("d_out", d_out, 1)):
            check_number(v, name, _OWNER, kind=int, low=low)
        check_choice(activation, "activation", _OWNER, tuple(TRANSFORMS))
        check_choice(parameterization, "parameterization", _OWNER, ("ntk", "standard"))
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        dims = [d_in] + [width] * depth + [d_out]
        self.layers = nn.ModuleList(
            _Dense(a, b, w_std=w_std, b_std=b_std, parameterization=parameterization, generator=gen, dtype=dtype)
            for a, b in zip(dims[:-1], dims[1:]))
        self.phi = torch_activation(activation, negative_slope=negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:             # (n, ...) -> (n, d_out)
        h = x.reshape(x.shape[0], -1)
        for layer in self.layers[:-1]:
            h = self.phi(layer(h))
        return self.layers[-1](h)
