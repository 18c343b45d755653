"""Fully connected ReLU network: d_in -> width x depth -> d_out."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from petridish.errors import check_number
from petridish.models.activations import get_activation


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units (depth 0 = a linear model).

    PyTorch's default nn.Linear init, then every weight matrix (not the biases) is
    multiplied by ``init_scale``. ``layers`` is an nn.ModuleList of nn.Linear, the
    activation is applied after every layer but the last. ``dropout`` p > 0 zeroes each
    hidden unit with probability p after its activation (inverted dropout, scaled by 1/(1 − p))
    in train mode only; p = 0 (the default) leaves the forward pass untouched. A model with
    dropout has no ensemble fast path (``fast_layers`` is for deterministic forwards).
    """

    def __init__(self, d_in: int, width: int, depth: int, d_out: int, *, activation: str = "relu",
                 bias: bool = True, init_scale: float = 1.0, dropout: float = 0.0):
        super().__init__()
        d_in = check_number(d_in, "d_in", "MLP", kind=int, low=1)
        width = check_number(width, "width", "MLP", kind=int, low=1)
        depth = check_number(depth, "depth", "MLP", kind=int, low=0)
        d_out = check_number(d_out, "d_out", "MLP", kind=int, low=1)
        init_scale = check_number(init_scale, "init_scale", "MLP", low=0)
        self.dropout = check_number(dropout, "dropout", "MLP", low=0, high=1, high_open=True)
        self._act = get_activation(activation, "MLP")
        self.activation = activation
        sizes = [d_in] + [width] * depth + [d_out]
        self.layers = nn.ModuleList([nn.Linear(i, o, bias=bias) for i, o in zip(sizes[:-1], sizes[1:])])
        if init_scale != 1.0:
            with torch.no_grad():
                for layer in self.layers:
                    layer.weight.mul_(init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for layer in self.layers[:-1]:
            h = self._act(layer(h))
            if self.dropout > 0:
                h = F.dropout(h, self.dropout, self.training)
        return self.layers[-1](h)

    def fast_layers(self) -> tuple[list[nn.Linear], str]:
        """The layers and activation for the stacked-weights ensemble fast path."""
        return list(self.layers), self.activation
