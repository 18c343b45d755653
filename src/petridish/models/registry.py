"""``build_model(name, d_in=, d_out=, seed=, **kwargs)``: every model by its name, seeded."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from petridish.errors import check_choice, check_number
from petridish.models.attention import AttentionClassifier
from petridish.models.cnn import CNN1D
from petridish.models.gru import GRUClassifier
from petridish.models.linear import Linear
from petridish.models.mlp import MLP
from petridish.models.random_features import RandomFeatures
from petridish.models.residual import ResidualCNN1D, ResidualMLP

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "linear": lambda d_in, d_out, seed, **kw: Linear(d_in, d_out, **kw),
    "random-features": lambda d_in, d_out, seed, n_features=256, **kw:
        RandomFeatures(d_in, n_features, d_out, seed=seed, **kw),
    "mlp": lambda d_in, d_out, seed, width=100, depth=2, **kw: MLP(d_in, width, depth, d_out, **kw),
    "cnn": lambda d_in, d_out, seed, **kw: CNN1D(d_in=d_in, d_out=d_out, **kw),
    "gru": lambda d_in, d_out, seed, **kw: GRUClassifier(d_in=d_in, d_out=d_out, **kw),
    "attention": lambda d_in, d_out, seed, **kw: AttentionClassifier(d_in=d_in, d_out=d_out, **kw),
    "resmlp": lambda d_in, d_out, seed, width=64, blocks=2, **kw: ResidualMLP(d_in, width, blocks, d_out, **kw),
    "rescnn": lambda d_in, d_out, seed, **kw: ResidualCNN1D(d_in=d_in, d_out=d_out, **kw),
}


def build_model(name: str, *, d_in: int, d_out: int, seed: int, **kwargs: Any) -> nn.Module:
    """Build a model with its initialization fixed by ``seed``.

    The global torch RNG is forked, so building a model never disturbs the caller's
    random stream. Defaults: mlp width 100 depth 2; random-features 256 features
    (its fixed first layer is also drawn from ``seed``); resmlp width 64, 2 blocks.
    """
    check_choice(name, "name", "build_model", tuple(BUILDERS))
    seed = check_number(seed, "seed", "build_model", kind=int, low=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BUILDERS[name](d_in, d_out, seed, **kwargs)
