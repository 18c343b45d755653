"""Mode connectivity: a trained quadratic Bézier curve between two solutions (Garipov, Izmailov,
Podoprikhin, Vetrov & Wilson 2018; Draxler et al. 2018 find the same low paths by another method).

The curve φ(t) = (1 − t)² θ_a + 2t(1 − t) θ_bend + t² θ_b, t ∈ [0, 1], has fixed endpoints; only
the bend θ_bend (p,) is trained, from the midpoint (θ_a + θ_b)/2, to minimize E_{t~U(0,1)} L(φ(t))
by Adam. Each step draws ``t_per_step`` seeded values of t and evaluates L at all of them as one
``vmap`` batch. The result reports the loss along the curve and along the straight line at the
same t, and both barrier heights (``surface.barrier_height``): a trained curve between two
minima of one basin family has a barrier near 0 where the line's is positive.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import vmap

from petridish.errors import check_choice, check_number
from petridish.instruments.surface import as_flat, barrier_height, interpolate, loss_at_points, point_function
from petridish.losses import NAMES, canonical


def bezier_points(theta_a: torch.Tensor, bend: torch.Tensor, theta_b: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """φ(t) for each t: ts (m,) -> (m, p)."""
    ts = ts.to(theta_a.dtype)[:, None]
    return (1 - ts) ** 2 * theta_a[None] + 2 * ts * (1 - ts) * bend[None] + ts ** 2 * theta_b[None]


@dataclass
class ModeCurve:
    bend: torch.Tensor         # (p,) float64, the trained control point θ_bend
    ts: torch.Tensor           # (m,) float64 evaluation grid on [0, 1]
    loss: torch.Tensor         # (m,) L(φ(t))
    error: torch.Tensor        # (m,) classification error along the curve (NaN for float targets)
    barrier: float             # barrier height of the curve
    line_loss: torch.Tensor    # (m,) L((1 − t) θ_a + t θ_b) at the same t
    line_barrier: float        # barrier height of the straight line
    steps: int
    seed: int


def bezier_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, theta_a: torch.Tensor | nn.Module,
                 theta_b: torch.Tensor | nn.Module, *, steps: int = 300, lr: float = 0.01, t_per_step: int = 8,
                 points: int = 21, loss: str = "cross_entropy", seed: int = 0, chunk: int = 64) -> ModeCurve:
    """Train the bend of a quadratic Bézier curve from θ_a to θ_b (flat (p,) tensors or modules
    shaped like ``model``, which supplies the architecture) on the mean loss over (x, y)."""
    owner = "bezier_curve"
    check_choice(loss, "loss", owner, NAMES)
    steps = check_number(steps, "steps", owner, kind=int, low=0)
    lr = check_number(lr, "lr", owner, low=0, low_open=True)
    t_per_step = check_number(t_per_step, "t_per_step", owner, kind=int, low=1)
    points = check_number(points, "points", owner, kind=int, low=2)
    dtype = next(model.parameters()).dtype
    a = as_flat(theta_a, model, "theta_a", owner).to(dtype)
    b = as_flat(theta_b, model, "theta_b", owner).to(dtype)
    f = point_function(model, x, y, canonical(loss))
    loss_of = lambda th: f(th)[0]                                          # noqa: E731
    bend = (0.5 * (a + b)).clone().requires_grad_(True)
    opt = torch.optim.Adam([bend], lr=lr)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    for _ in range(steps):
        # stratified t: one uniform draw in each of t_per_step equal bins (lower variance than iid)
        ts = (torch.arange(t_per_step, dtype=torch.float64)
              + torch.rand(t_per_step, generator=gen, dtype=torch.float64)) / t_per_step
        opt.zero_grad()
        vmap(loss_of)(bezier_points(a, bend, b, ts)).mean().backward()
        opt.step()
    bend = bend.detach().double()
    grid = torch.linspace(0, 1, points, dtype=torch.float64)
    lo, er, _ = loss_at_points(model, x, y, bezier_points(a.double(), bend, b.double(), grid),
                               loss=loss, chunk=chunk)
    line = interpolate(model, x, y, a, b, points=points, loss=loss, chunk=chunk)
    return ModeCurve(bend, grid, lo, er, barrier_height(grid, lo), line.loss, line.barrier, steps, int(seed))
