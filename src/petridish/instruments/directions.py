"""Directions in parameter space for loss-surface slices.

* :func:`filter_normalized_directions` (Li, Xu, Taylor, Studer & Goldstein 2018): Gaussian
  directions d ~ N(0, I), then each FILTER of d — dimension 0 of every parameter with ≥ 2
  dimensions: a row of a Linear weight (out, in), an output channel of a conv weight
  (out, in, *kernel) — is rescaled to the norm of the same filter of the weights:
  d_f ← d_f / ‖d_f‖ · ‖w_f‖. Entries of 1-dimensional parameters (biases, BatchNorm weights
  and biases) are set to zero, the paper's default ("ignore biasbn"). A zero filter of the
  weights gives a zero filter of the direction.
* :func:`hessian_directions`: the top Hessian eigenvectors (unit norm), from ``top_eigenvalues``.

Directions are flat (p,) tensors in ``named_parameters`` order (``functional.flatten_params``),
drawn in float64 from a seeded generator and returned in the parameters' dtype.
"""
from __future__ import annotations

import torch
from torch import nn

from petridish.errors import check_number
from petridish.instruments.functional import flatten_params, param_shapes, unflatten
from petridish.instruments.hessian import top_eigenvalues


def filter_normalize(direction: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Filter-normalize a flat direction (p,) against the model's weights (new tensor)."""
    d = direction.detach().to(torch.float64).clone()
    theta = flatten_params(model).to(dtype=torch.float64, device=d.device)
    shapes = param_shapes(model)
    dv, wv = unflatten(d, shapes), unflatten(theta, shapes)
    for name, shape in shapes:
        if len(shape) <= 1:
            dv[name].zero_()                                 # bias / BatchNorm entry
            continue
        df = dv[name].reshape(shape[0], -1)                  # (filters, fan-in·kernel)
        wf = wv[name].reshape(shape[0], -1)
        dn = df.norm(dim=1, keepdim=True)
        df.mul_(wf.norm(dim=1, keepdim=True) / dn.clamp_min(1e-300))
    return d


def filter_normalized_directions(model: nn.Module, *, n: int = 2, seed: int = 0) -> torch.Tensor:
    """(n, p) seeded Gaussian directions, filter-normalized; the parameters' dtype."""
    n = check_number(n, "n", "filter_normalized_directions", kind=int, low=1)
    theta = flatten_params(model)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    raw = torch.randn(n, theta.numel(), generator=gen, dtype=torch.float64)
    return torch.stack([filter_normalize(r, model) for r in raw]).to(theta.dtype)


def hessian_directions(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n: int = 2,
                       loss: str = "cross_entropy", seed: int = 0, tol: float | None = None) -> torch.Tensor:
    """(n, p) top-n Hessian eigenvectors (unit norm, descending eigenvalue), on the CPU."""
    n = check_number(n, "n", "hessian_directions", kind=int, low=1)
    res = top_eigenvalues(model, x, y, k=n, loss=loss, seed=seed, tol=tol, vectors=True)
    return res.eigenvectors / res.eigenvectors.norm(dim=1, keepdim=True)
