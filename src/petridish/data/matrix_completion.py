"""Low-rank matrix completion: observe a random subset of entries of M = U Vᵀ / √rank."""
from __future__ import annotations

import math

import torch

from petridish.data.dataset import Dataset, make_meta
from petridish.errors import check_number, invalid

OWNER = "matrix_completion"


def matrix_completion(*, rows: int, cols: int, rank: int, observed_fraction: float,
                      noise_std: float = 0.0, seed: int = 0, psd: bool = False) -> Dataset:
    """x are int64 (n, 2) (row, col) indices, y float32 (n,) entry values.

    M = U Vᵀ / √rank with U (rows, rank), V (cols, rank) standard normal, so entries
    have unit variance. ``round(observed_fraction · rows · cols)`` distinct entries are
    observed (train, with N(0, noise_std²) noise); the test set is every unobserved
    entry, noise-free. ``meta["matrix"]`` is the ground truth as a list of rows.

    ``psd=True`` (square only): M = U Uᵀ / √rank is PSD of rank ``rank``, and the mask is
    symmetric: ``round(observed_fraction · d(d+1)/2)`` entries of the upper triangle (diagonal
    included) are observed together with their mirror images, both listed in x (the same noisy
    value for both), as for gradient descent on X = UUᵀ (Gunasekar et al. 2017).
    """
    rows = check_number(rows, "rows", OWNER, kind=int, low=1)
    cols = check_number(cols, "cols", OWNER, kind=int, low=1)
    rank = check_number(rank, "rank", OWNER, kind=int, low=1, high=min(rows, cols))
    observed_fraction = check_number(observed_fraction, "observed_fraction", OWNER, low=0, high=1,
                                     low_open=True)
    noise_std = check_number(noise_std, "noise_std", OWNER, low=0)
    seed = check_number(seed, "seed", OWNER, kind=int, low=0)
    if not isinstance(psd, bool):
        raise invalid("psd", OWNER, "a bool", psd)
    if psd and rows != cols:
        raise invalid("cols", OWNER, f"equal to rows ({rows}) when psd=True", cols)
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(rows, rank, generator=g, dtype=torch.float64)
    v = u if psd else torch.randn(cols, rank, generator=g, dtype=torch.float64)
    m = u @ v.T / math.sqrt(rank)                       # (rows, cols)
    if psd:
        iu, ju = torch.triu_indices(rows, cols)         # the d(d+1)/2 upper-triangle entries
        n_up = max(1, int(round(observed_fraction * iu.numel())))
        pick = torch.randperm(iu.numel(), generator=g)[:n_up]
        noise = noise_std * torch.randn(n_up, generator=g, dtype=torch.float64)
        val = torch.zeros(rows, cols, dtype=torch.float64)
        val[iu[pick], ju[pick]] = noise
        val[ju[pick], iu[pick]] = noise                 # mirror: one noisy value per pair
        seen = torch.zeros(rows, cols, dtype=torch.bool)
        seen[iu[pick], ju[pick]] = True
        seen[ju[pick], iu[pick]] = True
        flat_seen = seen.reshape(-1)
        obs = flat_seen.nonzero().squeeze(1)
        rest = (~flat_seen).nonzero().squeeze(1)
        n_obs = obs.numel()
        y_noise = val.reshape(-1)[obs]
    else:
        n_obs = max(1, int(round(observed_fraction * rows * cols)))
        flat = torch.randperm(rows * cols, generator=g)
        obs, rest = flat[:n_obs].sort().values, flat[n_obs:].sort().values
        y_noise = None
    idx = lambda f: torch.stack([f // cols, f % cols], dim=1)     # (n, 2) int64
    x_tr, x_te = idx(obs), idx(rest)
    if y_noise is None:
        y_noise = noise_std * torch.randn(n_obs, generator=g, dtype=torch.float64)
    y_tr = (m.reshape(-1)[obs] + y_noise).float()
    y_te = m.reshape(-1)[rest].float()
    params = {"rows": rows, "cols": cols, "rank": rank, "observed_fraction": observed_fraction,
              "noise_std": noise_std, "seed": seed}
    if psd:
        params["psd"] = True                            # absent when False: old caches keep their keys
    meta = make_meta("matrix-completion", x_train=x_tr, x_test=x_te, classes=0, params=params,
                     shape=[rows, cols], rank=rank, matrix=m.tolist())
    return Dataset(x_tr, y_tr, x_te, y_te, meta)
