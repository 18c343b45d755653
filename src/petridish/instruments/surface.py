"""Loss surfaces: the loss at many parameter points, evaluated as ONE vectorized batch.

* :func:`loss_at_points` — the mean loss (and classification error) at m flat parameter
  vectors (m, p): ``torch.func.vmap`` over ``functional_call``, so the m forward passes become
  batched matrix products; ``chunk`` points at a time bound the memory (about
  chunk × n × the widest layer's activations).
* :func:`loss_surface` — 1D or 2D slices θ₀ + Σᵢ aᵢ dᵢ on a grid of coefficients, along
  filter-normalized Gaussian directions (Li et al. 2018), top Hessian eigenvectors, or given ones.
* :func:`interpolate` — the loss on the line (1 − t) θ_a + t θ_b between any two parameter
  vectors (Goodfellow, Vinyals & Saxe 2015), t possibly outside [0, 1], and its barrier.

The barrier of a path φ(t), t ∈ [0, 1], is max_t [L(φ(t)) − ((1 − t) L(φ(0)) + t L(φ(1)))]:
the largest rise above the straight interpolation of the endpoint losses (0 for a convex loss
on a line). Buffers (BatchNorm statistics) are copied, never written; the model's train/eval
mode is used as it is and not changed — so call ``model.eval()`` first for a model with dropout
(in train mode dropout draws from the global RNG, which vmap refuses: the points are then
evaluated one by one and the surface is random) or to use BatchNorm's running statistics.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import vmap

from petridish.device import target_device
from petridish.errors import check_choice, check_number, invalid
from petridish.instruments.directions import filter_normalized_directions, hessian_directions
from petridish.instruments.functional import flatten_params, param_shapes
from petridish.instruments.pure_forward import pure_forward
from petridish.losses import NAMES, canonical, loss_value


def point_function(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str):
    """theta (p,) -> (mean loss, error) with buffers copied (never written)."""
    g = pure_forward(model)
    classify = not y.is_floating_point()

    def f(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = g(theta, x)
        err = (out.argmax(-1) != y).to(out.dtype).mean() if classify else torch.full((), float("nan"), dtype=out.dtype)
        return loss_value(out, y, loss), err

    return f


def loss_at_points(model: nn.Module, x: torch.Tensor, y: torch.Tensor, points: torch.Tensor, *,
                   loss: str = "cross_entropy", chunk: int = 64,
                   vectorized: bool = True) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(loss (m,), error (m,), vectorized) at the m parameter vectors ``points`` (m, p), float64
    on the CPU. ``error`` is NaN for float targets. ``vectorized=False`` (or a module that refuses
    vmap) evaluates point by point; the third value says which path ran."""
    owner = "loss_at_points"
    check_choice(loss, "loss", owner, NAMES)
    chunk = check_number(chunk, "chunk", owner, kind=int, low=1)
    p = sum(s.numel() for _, s in param_shapes(model))
    if points.dim() != 2 or points.shape[1] != p:
        raise invalid("points", owner, f"a tensor of shape (m, {p})", tuple(points.shape))
    if x.shape[0] != y.shape[0]:
        raise invalid("y", owner, f"a tensor with {x.shape[0]} rows like x", tuple(y.shape))
    dev = target_device(x, points, next(model.parameters()))
    dtype = next(model.parameters()).dtype
    x, y = x.to(dev), y.to(dev)
    f = point_function(model, x, y, canonical(loss))
    losses, errors = [], []
    with torch.no_grad():
        for i in range(0, points.shape[0], chunk):
            block = points[i:i + chunk].to(device=dev, dtype=dtype)            # (c, p)
            if vectorized:
                try:
                    lo, er = vmap(f)(block)
                except RuntimeError:   # modules that refuse vmap (in-place ops, .item())
                    vectorized = False
            if not vectorized:
                pairs = [f(t) for t in block]
                lo, er = torch.stack([a for a, _ in pairs]), torch.stack([b for _, b in pairs])
            losses.append(lo.double().cpu())
            errors.append(er.double().cpu())
    return torch.cat(losses), torch.cat(errors), vectorized


def barrier_height(ts: torch.Tensor, losses: torch.Tensor) -> float:
    """max over t in [0, 1] of L(t) − ((1 − t) L(0) + t L(1)); ``ts`` (m,) must contain 0 and 1."""
    ts, losses = ts.double(), losses.double()
    i0, i1 = (ts == 0).nonzero(), (ts == 1).nonzero()
    if i0.numel() == 0 or i1.numel() == 0:
        raise invalid("ts", "barrier_height", "a grid that contains t = 0 and t = 1", ts.tolist())
    l0, l1 = losses[i0[0, 0]], losses[i1[0, 0]]
    inside = (ts >= 0) & (ts <= 1)
    rise = losses[inside] - ((1 - ts[inside]) * l0 + ts[inside] * l1)
    return float(rise.max())


@dataclass
class Surface:
    coords: tuple[torch.Tensor, ...]   # one (r,) float64 grid of coefficients per direction
    loss: torch.Tensor                 # (r,) or (r, r) float64; loss[i, j] at coords[0][i], coords[1][j]
    error: torch.Tensor                # same shape: classification error (NaN for float targets)
    directions: torch.Tensor           # (ndim, p) the directions d_i (CPU)
    center_loss: float                 # L(θ₀)
    kind: str                          # "filter" | "hessian" | "given"
    seed: int
    vectorized: bool                   # True: one vmapped batch per chunk; False: point by point


def loss_surface(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, directions: str | torch.Tensor = "filter",
                 ndim: int = 2, span: float = 1.0, resolution: int = 21, loss: str = "cross_entropy",
                 seed: int = 0, chunk: int = 64, vectorized: bool = True) -> Surface:
    """The loss on the grid θ₀ + Σᵢ aᵢ dᵢ, aᵢ in linspace(−span, span, resolution).

    ``directions``: "filter" (seeded filter-normalized Gaussian), "hessian" (top eigenvectors),
    or a tensor (ndim, p) of given directions (then ``ndim`` is its row count).
    """
    owner = "loss_surface"
    span = check_number(span, "span", owner, low=0, low_open=True)
    resolution = check_number(resolution, "resolution", owner, kind=int, low=2)
    theta = flatten_params(model)
    if isinstance(directions, torch.Tensor):
        if directions.dim() != 2 or directions.shape[0] not in (1, 2) or directions.shape[1] != theta.numel():
            raise invalid("directions", owner, f"a tensor of shape (1 or 2, {theta.numel()})",
                          tuple(directions.shape))
        D, kind = directions.detach(), "given"
    else:
        check_choice(directions, "directions", owner, ("filter", "hessian"))
        ndim = check_number(ndim, "ndim", owner, kind=int, low=1, high=2)
        kind = directions
        D = (filter_normalized_directions(model, n=ndim, seed=seed) if kind == "filter"
             else hessian_directions(model, x, y, n=ndim, loss=loss, seed=seed))
    D = D.to(torch.float64).cpu()
    ndim = D.shape[0]
    a = torch.linspace(-span, span, resolution, dtype=torch.float64)
    grids = torch.meshgrid(*([a] * ndim), indexing="ij")
    coef = torch.stack([g.reshape(-1) for g in grids], 1)                 # (r^ndim, ndim)
    points = theta.to(torch.float64).cpu()[None] + coef @ D               # (r^ndim, p), float64
    lo, er, vec = loss_at_points(model, x, y, points, loss=loss, chunk=chunk, vectorized=vectorized)
    center, _, _ = loss_at_points(model, x, y, theta.cpu()[None], loss=loss)
    shape = (resolution,) * ndim
    return Surface(tuple([a] * ndim), lo.reshape(shape), er.reshape(shape), D, float(center[0]), kind,
                   int(seed), vec)


@dataclass
class Interpolation:
    ts: torch.Tensor       # (m,) float64 path coordinates t
    loss: torch.Tensor     # (m,) float64 L((1 − t) θ_a + t θ_b)
    error: torch.Tensor    # (m,) classification error (NaN for float targets)
    barrier: float         # barrier_height over t in [0, 1]


def as_flat(theta: torch.Tensor | nn.Module, model: nn.Module, name: str, owner: str) -> torch.Tensor:
    """A parameter vector given as a flat tensor (p,) or as a module shaped like ``model``."""
    p = flatten_params(model).numel()
    if isinstance(theta, nn.Module):
        if param_shapes(theta) != param_shapes(model):
            raise invalid(name, owner, "a module with the same parameters as model", type(theta).__name__)
        theta = flatten_params(theta)
    if not isinstance(theta, torch.Tensor) or theta.shape != (p,):
        raise invalid(name, owner, f"a flat tensor of shape ({p},) or a module like model",
                      tuple(theta.shape) if isinstance(theta, torch.Tensor) else type(theta).__name__)
    return theta.detach().to(torch.float64).cpu()


def interpolate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, theta_a: torch.Tensor | nn.Module,
                theta_b: torch.Tensor | nn.Module, *, points: int = 21, t_min: float = 0.0, t_max: float = 1.0,
                loss: str = "cross_entropy", chunk: int = 64) -> Interpolation:
    """The loss along (1 − t) θ_a + t θ_b for ``points`` values of t in [t_min, t_max] (the grid
    always contains 0 and 1, so the barrier is defined). ``model`` supplies the architecture."""
    owner = "interpolate"
    points = check_number(points, "points", owner, kind=int, low=2)
    t_min = check_number(t_min, "t_min", owner, high=0)
    t_max = check_number(t_max, "t_max", owner, low=1)
    a, b = as_flat(theta_a, model, "theta_a", owner), as_flat(theta_b, model, "theta_b", owner)
    ts = torch.unique(torch.cat([torch.linspace(t_min, t_max, points, dtype=torch.float64),
                                 torch.tensor([0.0, 1.0], dtype=torch.float64)]))
    path = (1 - ts)[:, None] * a[None] + ts[:, None] * b[None]            # (m, p)
    lo, er, _ = loss_at_points(model, x, y, path, loss=loss, chunk=chunk)
    return Interpolation(ts, lo, er, barrier_height(ts, lo))
