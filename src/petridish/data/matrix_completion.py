"""Low-rank matrix completion: observe a random subset of entries of M = U Vᵀ / √rank."""
from __future__ import annotations

import math

import torch

from petridish.data.dataset import Dataset, make_meta
from petridish.errors import check_number

OWNER = "matrix_completion"


def matrix_completion(*, rows: int, cols: int, rank: int, observed_fraction: float,
                      noise_std: float = 0.0, seed: int = 0) -> Dataset:
    """x are int64 (n, 2) (row, col) indices, y float32 (n,) entry values.

    M = U Vᵀ / √rank with U (rows, rank), V (cols, rank) standard normal, so entries
    have unit variance. ``round(observed_fraction · rows · cols)`` distinct entries are
    observed (train, with N(0, noise_std²) noise); the test set is every unobserved
    entry, noise-free. ``meta["matrix"]`` is the ground truth as a list of rows.
    """
    rows = check_number(rows, "rows", OWNER, kind=int, low=1)
    cols = check_number(cols, "cols", OWNER, kind=int, low=1)
    rank = check_number(rank, "rank", OWNER, kind=int, low=1, high=min(rows, cols))
    observed_fraction = check_number(observed_fraction, "observed_fraction", OWNER, low=0, high=1,
                                     low_open=True)
    noise_std = check_number(noise_std, "noise_std", OWNER, low=0)
    seed = check_number(seed, "seed", OWNER, kind=int, low=0)
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(rows, rank, generator=g, dtype=torch.float64)
    v = torch.randn(cols, rank, generator=g, dtype=torch.float64)
    m = u @ v.T / math.sqrt(rank)                       # (rows, cols)
    n_obs = max(1, int(round(observed_fraction * rows * cols)))
    flat = torch.randperm(rows * cols, generator=g)
    obs, rest = flat[:n_obs].sort().values, flat[n_obs:].sort().values
    idx = lambda f: torch.stack([f // cols, f % cols], dim=1)     # (n, 2) int64
    x_tr, x_te = idx(obs), idx(rest)
    y_tr = (m.reshape(-1)[obs] + noise_std * torch.randn(n_obs, generator=g, dtype=torch.float64)).float()
    y_te = m.reshape(-1)[rest].float()
    params = {"rows": rows, "cols": cols, "rank": rank, "observed_fraction": observed_fraction,
              "noise_std": noise_std, "seed": seed}
    meta = make_meta("matrix-completion", x_train=x_tr, x_test=x_te, classes=0, params=params,
                     shape=[rows, cols], rank=rank, matrix=m.tolist())
    return Dataset(x_tr, y_tr, x_te, y_te, meta)
