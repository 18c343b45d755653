"""MNIST-1D with label noise for the double-descent arms."""
from __future__ import annotations

import torch

from petridish.data import label_noise, mnist1d

DATA_SEED = 42   # the dataset itself is fixed (as in the notebook); seeds vary noise, init, order


def noisy_mnist1d(*, n_train: int, n_test: int, noise: float, seed: int):
    """(x_train (n, 40) f32, y_train (n,) noisy, x_test, y_test clean) with this seed's noise draw."""
    ds = mnist1d(n_train=n_train, n_test=n_test, seed=DATA_SEED)
    if noise > 0:
        ds = label_noise(ds, noise, seed=seed)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


def one_hot(y: torch.Tensor, classes: int = 10) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, classes).to(torch.float64)
