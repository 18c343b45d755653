"""Linear model (logistic / linear regression): one nn.Linear layer."""
from __future__ import annotations

import torch
from torch import nn

from petridish.errors import check_number


class Linear(nn.Module):
    """x (batch, d_in) -> x Wᵀ + b (batch, d_out). PyTorch default init."""

    activation = "identity"

    def __init__(self, d_in: int, d_out: int, *, bias: bool = True):
        super().__init__()
        d_in = check_number(d_in, "d_in", "Linear", kind=int, low=1)
        d_out = check_number(d_out, "d_out", "Linear", kind=int, low=1)
        self.layers = nn.ModuleList([nn.Linear(d_in, d_out, bias=bias)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[0](x.flatten(1))

    def fast_layers(self) -> tuple[list[nn.Linear], str]:
        """The layers and activation for the stacked-weights ensemble fast path."""
        return list(self.layers), self.activation
