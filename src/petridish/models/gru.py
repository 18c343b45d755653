"""The MNIST-1D paper's GRU: the input read as a length-d_in sequence of scalars."""
from __future__ import annotations

import torch
from torch import nn

from petridish.errors import check_number


class GRUClassifier(nn.Module):
    """Bidirectional GRU over (batch, d_in, 1); all hidden states flattened into a linear head.

    As the paper's reference model (hidden size 6, bidirectional, ~91% on MNIST-1D).
    """

    def __init__(self, d_in: int = 40, hidden: int = 6, d_out: int = 10, *, bidirectional: bool = True):
        super().__init__()
        d_in = check_number(d_in, "d_in", "GRUClassifier", kind=int, low=1)
        hidden = check_number(hidden, "hidden", "GRUClassifier", kind=int, low=1)
        d_out = check_number(d_out, "d_out", "GRUClassifier", kind=int, low=1)
        self.gru = nn.GRU(1, hidden, batch_first=True, bidirectional=bidirectional)
        self.linear = nn.Linear(d_in * hidden * (2 if bidirectional else 1), d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.reshape(x.shape[0], -1, 1))  # (batch, d_in, hidden·dirs)
        return self.linear(out.flatten(1))
