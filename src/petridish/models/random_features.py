"""Random-features model: a fixed random first layer, a trained linear readout."""
from __future__ import annotations

import math

import torch
from torch import nn

from petridish.errors import check_number
from petridish.models.activations import get_activation


class RandomFeatures(nn.Module):
    """x -> readout(σ(x Wᵀ / √d_in)), W ~ N(0, 1) fixed by ``seed``.

    W is a registered buffer (never trained, no gradient); only ``readout``
    (nn.Linear(n_features, d_out), default init) is a parameter.
    """

    def __init__(self, d_in: int, n_features: int, d_out: int, *, seed: int = 0,
                 activation: str = "relu", bias: bool = True):
        super().__init__()
        d_in = check_number(d_in, "d_in", "RandomFeatures", kind=int, low=1)
        n_features = check_number(n_features, "n_features", "RandomFeatures", kind=int, low=1)
        d_out = check_number(d_out, "d_out", "RandomFeatures", kind=int, low=1)
        seed = check_number(seed, "seed", "RandomFeatures", kind=int, low=0)
        self._act = get_activation(activation, "RandomFeatures")
        self.activation = activation
        g = torch.Generator().manual_seed(seed)
        # (n_features, d_in), scaled so pre-activations have unit variance for unit-variance x
        self.register_buffer("features", torch.randn(n_features, d_in, generator=g) / math.sqrt(d_in))
        self.readout = nn.Linear(n_features, d_out, bias=bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The random features σ(x Wᵀ / √d_in), (batch, n_features)."""
        return self._act(x.flatten(1) @ self.features.T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.embed(x))
