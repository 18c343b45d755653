"""Residual networks for MNIST-1D, with a switch that removes the identity paths.

``skip=False`` keeps every parameter (same names, shapes and initialization) and only drops the
``+ h`` of each block, so "with and without skip connections" compare one architecture — the
comparison of Li et al. (2018), whose ResNet-56 surfaces turn chaotic without skips.

* :class:`ResidualMLP`: stem Linear(d_in → width), ``blocks`` pre-activation blocks
  h ← h + W₂ σ(W₁ σ(h)) (He et al. 2016, "Identity mappings"), head Linear(width → d_out) on σ(h).
* :class:`ResidualCNN1D`: stem Conv1d(1 → C, k5, s2, p1) (length 40 → 19), ``blocks`` blocks
  h ← h + conv₂(relu(conv₁(relu(h)))) with k3, s1, p1 convs (length kept), head Linear on
  the flattened relu(h) (C · 19 features for d_in = 40).

``dropout`` p > 0 zeroes each hidden unit of a residual branch after its activation, in train
mode only (inverted dropout); p = 0, the default, leaves the forward pass untouched.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from petridish.errors import check_number, invalid
from petridish.models.activations import get_activation


def _check_common(owner: str, blocks: int, skip: bool, dropout: float) -> tuple[int, float]:
    blocks = check_number(blocks, "blocks", owner, kind=int, low=0)
    if not isinstance(skip, bool):
        raise invalid("skip", owner, "a bool", skip)
    return blocks, check_number(dropout, "dropout", owner, low=0, high=1, high_open=True)


class ResidualMLP(nn.Module):
    """(batch, d_in) -> (batch, d_out); 2·blocks + 2 Linear layers of ``width`` units."""

    def __init__(self, d_in: int, width: int, blocks: int, d_out: int, *, activation: str = "relu",
                 skip: bool = True, dropout: float = 0.0):
        super().__init__()
        owner = "ResidualMLP"
        d_in = check_number(d_in, "d_in", owner, kind=int, low=1)
        width = check_number(width, "width", owner, kind=int, low=1)
        d_out = check_number(d_out, "d_out", owner, kind=int, low=1)
        blocks, self.dropout = _check_common(owner, blocks, skip, dropout)
        self._act = get_activation(activation, owner)
        self.activation, self.skip = activation, skip
        self.stem = nn.Linear(d_in, width)
        self.branches = nn.ModuleList([nn.Sequential(nn.Linear(width, width), nn.Linear(width, width))
                                       for _ in range(blocks)])
        self.head = nn.Linear(width, d_out)

    def branch(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Block i's residual branch W₂ σ(W₁ σ(h)), (batch, width) -> (batch, width)."""
        fc1, fc2 = self.branches[i]
        u = self._act(fc1(self._act(h)))
        if self.dropout > 0:
            u = F.dropout(u, self.dropout, self.training)
        return fc2(u)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x.flatten(1))
        for i in range(len(self.branches)):
            h = h + self.branch(i, h) if self.skip else self.branch(i, h)
        return self.head(self._act(h))


class ResidualCNN1D(nn.Module):
    """(batch, d_in) read as one channel of length d_in -> (batch, d_out)."""

    def __init__(self, d_in: int = 40, channels: int = 16, blocks: int = 2, d_out: int = 10, *,
                 skip: bool = True, dropout: float = 0.0):
        super().__init__()
        owner = "ResidualCNN1D"
        d_in = check_number(d_in, "d_in", owner, kind=int, low=8)
        channels = check_number(channels, "channels", owner, kind=int, low=1)
        d_out = check_number(d_out, "d_out", owner, kind=int, low=1)
        blocks, self.dropout = _check_common(owner, blocks, skip, dropout)
        self.skip = skip
        self.stem = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.branches = nn.ModuleList([nn.Sequential(nn.Conv1d(channels, channels, 3, padding=1),
                                                     nn.Conv1d(channels, channels, 3, padding=1))
                                       for _ in range(blocks)])
        length = (d_in + 2 - 5) // 2 + 1                       # the stem's output length (19 for 40)
        self.head = nn.Linear(channels * length, d_out)

    def branch(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Block i's residual branch conv₂(relu(conv₁(relu(h)))), (batch, C, L) -> (batch, C, L)."""
        c1, c2 = self.branches[i]
        u = torch.relu(c1(torch.relu(h)))
        if self.dropout > 0:
            u = F.dropout(u, self.dropout, self.training)
        return c2(u)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x.reshape(x.shape[0], 1, -1))            # (batch, C, L)
        for i in range(len(self.branches)):
            h = h + self.branch(i, h) if self.skip else self.branch(i, h)
        return self.head(torch.relu(h).flatten(1))
