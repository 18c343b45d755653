"""Gaussian mixture classification: x = μ_y + N(0, I), balanced random labels."""
from __future__ import annotations

import math

import torch

from petridish.data.dataset import Dataset, make_meta
from petridish.errors import check_number

OWNER = "gaussian_mixture"


def gaussian_mixture(*, n_train: int, n_test: int, dim: int, classes: int = 2,
                     separation: float = 2.0, seed: int = 0) -> Dataset:
    """``classes`` isotropic unit-variance Gaussians in R^dim.

    The class means are random directions of norm ``separation / √2``, so two means are
    ``separation`` apart on average (exactly, in expectation of the squared distance, when
    the directions are orthogonal — as they nearly are for dim ≫ classes). Labels are
    uniform over classes; ``meta["means"]`` is the (classes, dim) list of means.
    """
    n_train = check_number(n_train, "n_train", OWNER, kind=int, low=1)
    n_test = check_number(n_test, "n_test", OWNER, kind=int, low=0)
    dim = check_number(dim, "dim", OWNER, kind=int, low=1)
    classes = check_number(classes, "classes", OWNER, kind=int, low=2)
    separation = check_number(separation, "separation", OWNER, low=0)
    seed = check_number(seed, "seed", OWNER, kind=int, low=0)
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(classes, dim, generator=g, dtype=torch.float64)
    means = dirs / dirs.norm(dim=1, keepdim=True) * (separation / math.sqrt(2))

    def draw(n: int):
        y = torch.randint(classes, (n,), generator=g)
        x = means[y] + torch.randn(n, dim, generator=g, dtype=torch.float64)
        return x.float(), y

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    params = {"n_train": n_train, "n_test": n_test, "dim": dim, "classes": classes,
              "separation": separation, "seed": seed}
    meta = make_meta("gaussian-mixture", x_train=x_tr, x_test=x_te, classes=classes,
                     params=params, means=means.tolist())
    return Dataset(x_tr, y_tr, x_te, y_te, meta)
