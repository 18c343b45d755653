"""MNIST-1D with label noise for the double-descent arms."""
from __future__ import annotations

import torch

from petridish.data import label_noise, mnist1d
from petridish.data.mnist1d import DATA_SEED
from petridish.seeding import sub_seed


def noisy_mnist1d(*, n_train: int, n_test: int, noise: float, seed: int):
    """(x_train (n, 40) f32, y_train (n,) noisy, x_test, y_test clean) with this seed's noise draw.

    The dataset itself is fixed (``DATA_SEED``, as in the notebook); the cell's seed drives the
    label-noise mask through its own stream (``sub_seed(seed, "label_noise")``), independent of
    the initialization and minibatch streams.
    """
    ds = mnist1d(n_train=n_train, n_test=n_test, seed=DATA_SEED)
    if noise > 0:
        ds = label_noise(ds, noise, seed=sub_seed(seed, "label_noise"))
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


def one_hot(y: torch.Tensor, classes: int = 10) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, classes).to(torch.float64)
