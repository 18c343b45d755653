"""scikit-learn's 8x8 handwritten digits (1,797 images, 64 features scaled to [0, 1])."""
from __future__ import annotations

import torch

from petridish.data.dataset import Dataset, as_float, as_long, make_meta
from petridish.errors import check_number

OWNER = "digits"


def digits(*, test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Random split (fixed by ``seed``) of ``sklearn.datasets.load_digits``; pixels / 16."""
    test_fraction = check_number(test_fraction, "test_fraction", OWNER, low=0, high=1,
                                 low_open=True, high_open=True)
    seed = check_number(seed, "seed", OWNER, kind=int, low=0)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = as_float(bunch.data) / 16.0                    # (1797, 64) in [0, 1]
    y = as_long(bunch.target)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    n_test = int(round(test_fraction * len(y)))
    te, tr = perm[:n_test], perm[n_test:]
    meta = make_meta("digits", x_train=x[tr], x_test=x[te], classes=10,
                     params={"test_fraction": test_fraction, "seed": seed})
    return Dataset(x[tr].contiguous(), y[tr].contiguous(), x[te].contiguous(), y[te].contiguous(), meta)
