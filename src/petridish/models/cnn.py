"""The MNIST-1D paper's CNN (Greydanus & Kobak 2024): three strided convs and a linear head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from petridish.errors import check_number


def _conv_len(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


class CNN1D(nn.Module):
    """(batch, d_in) treated as a 1-channel sequence of length d_in.

    conv(1→C, k5, s2, p1) → ReLU → conv(C→C, k3, s2, p1) → ReLU → conv(C→C, k3, s2, p1)
    → ReLU → flatten → linear(d_out). With d_in = 40 and C = 25 the flattened size
    is 125, as in the paper's reference model (~94% test accuracy on MNIST-1D).
    ``dropout`` p > 0 zeroes activations with probability p after each ReLU (train mode
    only, scaled by 1/(1 − p)); p = 0, the default, leaves the forward pass untouched.
    """

    def __init__(self, d_in: int = 40, channels: int = 25, d_out: int = 10, *, dropout: float = 0.0):
        super().__init__()
        d_in = check_number(d_in, "d_in", "CNN1D", kind=int, low=8)
        channels = check_number(channels, "channels", "CNN1D", kind=int, low=1)
        d_out = check_number(d_out, "d_out", "CNN1D", kind=int, low=1)
        self.dropout = check_number(dropout, "dropout", "CNN1D", low=0, high=1, high_open=True)
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        n = _conv_len(_conv_len(_conv_len(d_in, 5, 2, 1), 3, 2, 1), 3, 2, 1)
        self.linear = nn.Linear(channels * n, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], 1, -1)                 # (batch, 1, d_in)
        for conv in (self.conv1, self.conv2, self.conv3):
            h = torch.relu(conv(h))
            if self.dropout > 0:
                h = F.dropout(h, self.dropout, self.training)
        return self.linear(h.flatten(1))
