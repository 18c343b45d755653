"""Flatness of the loss around the trained parameters.

* :func:`epsilon_sharpness` (Keskar et al. 2017): the largest loss increase
  max_{δ ∈ C_ε} L(θ+δ) − L(θ), found by a few steps of seeded conditional-gradient ascent
  from a random point of the set.
  C_ε is Keskar's box |δ_i| <= ε(|θ_i| + 1) (``shape="box"``) or the ℓ2 ball ||δ|| <= ε
  (``shape="ball"``). The returned value is the best iterate seen (and at least 0, since
  δ = 0 is in the set). ``normalize=True`` gives Keskar's 100·Δ/(1 + L(θ)).
* :func:`pac_bayes_sigma` (Jiang et al. 2020, "PAC-Bayes flatness"): the largest σ — a
  STANDARD DEVIATION — such that the Monte-Carlo mean of L(θ + σ z) − L(θ), z ~ N(0, I),
  stays <= ``bound``. The draws z are fixed by ``seed`` and reused for every σ (common
  random numbers), so the estimate is a deterministic function of σ and bisection is exact
  for it: the bound holds at the returned σ and fails just above it.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import grad, vmap

from petridish.errors import check_choice, check_number
from petridish.instruments.functional import flat_forward, flat_loss


def epsilon_sharpness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epsilon: float = 1e-3,
                      steps: int = 10, shape: str = "box", loss: str = "cross_entropy", seed: int = 0,
                      normalize: bool = False) -> float:
    owner = "epsilon_sharpness"
    epsilon = check_number(epsilon, "epsilon", owner, low=0)
    steps = check_number(steps, "steps", owner, kind=int, low=0)
    check_choice(shape, "shape", owner, ("box", "ball"))
    f, theta = flat_loss(model, x, y, loss=loss, owner=owner)
    g = grad(f)
    with torch.no_grad():
        base = float(f(theta))
    if epsilon == 0:
        return 0.0
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    if shape == "box":
        scale = epsilon * (theta.abs() + 1)                       # (p,) half-widths of the box
        delta = (torch.rand(theta.shape, generator=gen, dtype=torch.float64) * 2 - 1).to(theta) * scale
    else:
        delta = torch.randn(theta.shape, generator=gen, dtype=torch.float64).to(theta)
        delta = delta * (0.5 * epsilon / delta.norm())
    # Conditional-gradient (Frank-Wolfe, full step) ascent: jump to the maximizer of the
    # loss's linearization over the set — a corner of the box (iterated FGSM) or ε·g/|g| on
    # the ball, which at a minimum of a quadratic is power iteration on the Hessian. The best
    # iterate is kept, so more steps never lower the result.
    best = 0.0
    for i in range(steps + 1):
        with torch.no_grad():
            best = max(best, float(f(theta + delta)) - base)
        if i == steps:
            break
        gr = g(theta + delta)
        if shape == "box":
            delta = scale * torch.sign(gr)
        else:
            gn = gr.norm()
            if gn == 0:
                break
            delta = gr * (epsilon / gn)
    return 100.0 * best / (1.0 + base) if normalize else best


def _error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(-1) != y.to(out.device)).to(out.dtype).mean()


def noise_increase(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, *, n_draws: int = 8,
                   metric: str = "loss", loss: str = "cross_entropy", seed: int = 0) -> float:
    """Monte-Carlo mean over ``n_draws`` seeded z of m(θ + σ z) − m(θ), m the mean loss or the error."""
    check_choice(metric, "metric", "noise_increase", ("loss", "error"))
    f, theta = flat_loss(model, x, y, loss=loss, owner="noise_increase")
    fwd = flat_forward(model)
    m = (lambda th: _error(fwd(th, x), y)) if metric == "error" else f
    Z = _draws(n_draws, theta, seed)
    with torch.no_grad():
        return _mean_increase(m, theta, Z, sigma)


def _draws(n_draws: int, theta: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(n_draws, theta.numel(), generator=gen, dtype=torch.float64).to(theta)


def _mean_increase(m, theta: torch.Tensor, Z: torch.Tensor, sigma: float) -> float:
    base = m(theta)
    try:
        vals = vmap(m)(theta[None] + sigma * Z)
    except Exception:   # modules that refuse vmap
        vals = torch.stack([m(theta + sigma * z) for z in Z])
    return float((vals - base).double().mean())


def pac_bayes_sigma(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, bound: float = 0.1,
                    metric: str = "loss", n_draws: int = 8, loss: str = "cross_entropy", seed: int = 0,
                    sigma_max: float = 10.0, rtol: float = 0.02, max_iters: int = 60) -> float:
    """Largest σ in (0, sigma_max] with mean increase <= ``bound`` (bisection to relative
    width ``rtol``; the lower end, which satisfies the bound, is returned). ``sigma_max``
    is returned if even it keeps the bound. Jiang et al.'s measure is 1/σ²."""
    owner = "pac_bayes_sigma"
    bound = check_number(bound, "bound", owner, low=0, low_open=True)
    n_draws = check_number(n_draws, "n_draws", owner, kind=int, low=1)
    sigma_max = check_number(sigma_max, "sigma_max", owner, low=0, low_open=True)
    rtol = check_number(rtol, "rtol", owner, low=0, low_open=True, high=1)
    check_choice(metric, "metric", owner, ("loss", "error"))
    f, theta = flat_loss(model, x, y, loss=loss, owner=owner)
    fwd = flat_forward(model)
    m = (lambda th: _error(fwd(th, x), y)) if metric == "error" else f
    Z = _draws(n_draws, theta, seed)
    with torch.no_grad():
        ok = lambda s: _mean_increase(m, theta, Z, s) <= bound   # noqa: E731
        return float(largest_ok(ok, sigma_max, rtol, max_iters))


def largest_ok(ok, hi: float, rtol: float, max_iters: int) -> float:
    """The largest a in (0, hi] with ok(a), to relative width rtol, for ok true at small a and
    false at large: ``hi`` if ok(hi); else halve from hi until ok, then bisect on [lo, hi] and
    return the lower end (which satisfies ok); 0.0 if ok fails down to hi / 2**max_iters."""
    if ok(hi):
        return hi
    lo = hi
    for _ in range(max_iters):
        lo = lo / 2
        if ok(lo):
            break
        hi = lo
    else:
        return 0.0
    for _ in range(max_iters):
        if hi - lo <= rtol * lo:
            break
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo
