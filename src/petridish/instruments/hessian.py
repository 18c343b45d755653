"""The loss Hessian of a model w.r.t. its parameters, without ever forming it.

* :func:`hvp_operator` — Hessian-vector products by forward-over-reverse autodiff
  (``torch.func.jvp`` of ``torch.func.grad``): one HVP costs about two backward passes.
* :func:`top_eigenvalues` — top-k eigenvalues by Lanczos with full reorthogonalization (single-vector
  on a kept graph by default; block Lanczos on batched products with ``block`` > 1).
* :func:`hessian_trace` — Hutchinson's estimator with seeded Rademacher probes.
* :func:`spectral_density` — stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019;
  Lin, Saad & Yang 2016), Gaussian-smoothed on a grid.

All randomness comes from seeded ``torch.Generator`` objects: same seed, same numbers.
The loss is the MEAN over the examples given (so eigenvalues do not scale with n).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.func import grad, jvp, vmap

from petridish.errors import check_number, invalid
from petridish.instruments.functional import flat_loss
from petridish.instruments.lanczos import EigResult, block_eigsh, eigsh, gauss_quadrature, lanczos_batched


@dataclass
class HVP:
    """The Hessian of the mean loss at the model's current parameters, as an operator."""

    matvec: Callable[[torch.Tensor], torch.Tensor]   # (p,) -> (p,)
    dim: int                                          # p, the number of parameters
    dtype: torch.dtype
    device: torch.device
    loss_at: Callable[[torch.Tensor], torch.Tensor]   # flat theta (p,) -> mean loss (scalar)
    theta: torch.Tensor                               # (p,) the point the Hessian is taken at

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """(m, p) -> (m, p): a batch of HVPs (vmap; one by one if vmap is unsupported)."""
        try:
            return vmap(self.matvec)(V)
        except Exception:   # some modules (in-place ops, data-dependent control flow) refuse vmap
            return torch.stack([self.matvec(v) for v in V])


def hvp_operator(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss: str = "cross_entropy",
                 batch_size: int | None = None, cache_graph: bool = False) -> HVP:
    """HVP operator of the mean loss over (x, y). ``batch_size`` splits the data into chunks
    (weighted by their size) to bound memory; the result equals the full-batch HVP.

    ``cache_graph=False``: forward-over-reverse (``jvp`` of ``grad``), which recomputes the forward and
    backward pass at θ in every product. ``cache_graph=True``: reverse-over-reverse on a kept graph —
    one forward and one differentiable backward at construction, then each product is one backward
    through that graph (≈ 0.5× the time of the other on an MLP); the graph of every chunk stays in
    memory (≈ 2–3× a training step's activations), so it suits data that fits in one batch."""
    owner = "hvp_operator"
    n = x.shape[0]
    if n == 0:
        raise invalid("x", owner, "a non-empty batch", tuple(x.shape))
    if batch_size is None:
        batch_size = n
    batch_size = check_number(batch_size, "batch_size", owner, kind=int, low=1)
    chunks = [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]
    parts = []
    for xc, yc in chunks:
        f, theta0 = flat_loss(model, xc, yc, loss=loss, owner=owner)
        parts.append((f, grad(f), xc.shape[0] / n))
    theta0 = theta0.to(next(model.parameters()).dtype)
    if cache_graph:
        return _cached_hvp(parts, theta0)

    def matvec(v: torch.Tensor) -> torch.Tensor:
        out = None
        for _, g, w in parts:
            hv = jvp(g, (theta0,), (v.to(theta0.dtype),))[1]
            out = hv * w if out is None else out + hv * w
        return out

    def loss_at(theta: torch.Tensor) -> torch.Tensor:
        return sum(f(theta) * w for f, _, w in parts)

    return HVP(matvec, theta0.numel(), theta0.dtype, theta0.device, loss_at, theta0)


def _cached_hvp(parts, theta0: torch.Tensor) -> HVP:
    """Reverse-over-reverse HVPs on kept graphs: g(θ) = Σ wᶜ ∇fᶜ(θ) built once, differentiable;
    H v = ∂(gᵀv)/∂θ by one backward each (``retain_graph``). θ is a detached copy: the model is untouched."""
    theta = theta0.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        g = sum(torch.autograd.grad(f(theta) * w, theta, create_graph=True)[0] for f, _, w in parts)

    def matvec(v: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(g, theta, grad_outputs=v.to(theta.dtype), retain_graph=True)[0].detach()

    def loss_at(th: torch.Tensor) -> torch.Tensor:
        return sum(f(th) * w for f, _, w in parts)

    op = HVP(matvec, theta0.numel(), theta0.dtype, theta0.device, loss_at, theta0)
    op.matmat = lambda V: torch.stack([matvec(v) for v in V])        # (m, p); vmap cannot enter autograd.grad
    return op


def top_eigenvalues(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, k: int = 5,
                    loss: str = "cross_entropy", tol: float | None = None, max_iters: int | None = None,
                    seed: int = 0, which: str = "LA", batch_size: int | None = None,
                    vectors: bool = False, block: int = 1, cache_graph: bool | None = None) -> EigResult:
    """Top-k Hessian eigenvalues (descending) by Lanczos with full reorthogonalization.

    Returns an :class:`EigResult` (``.eigenvalues`` (k,) float64, ``.residuals``,
    ``.iterations`` (Hessian-vector products), ``.converged``; ``.eigenvectors`` (k, p) when
    ``vectors=True``).

    Stopping: with ``vectors=False`` the Lanczos run stops, checked after every step, once each
    eigenvalue's error estimate min(r, r²/gap) is ≤ tol·λ_max (``lanczos.ritz_error``; tol defaults to
    1e-5 in float32, 1e-10 in float64); with ``vectors=True`` once each residual r ≤ tol·λ_max (1e-4,
    1e-8), which the eigenvectors need. ``block`` > 1: block Lanczos (``lanczos.block_eigsh``) with
    ``block`` Hessian-vector products per step, batched by ``vmap`` into wider GEMMs (forward-over-
    reverse products). ``cache_graph`` (default: True when the data is one batch, ``batch_size=None``,
    and ``block`` is 1): the products reuse one kept autograd graph (``hvp_operator(cache_graph=True)``).
    """
    block = check_number(block, "block", "top_eigenvalues", kind=int, low=1)
    if cache_graph is None:
        cache_graph = batch_size is None and block == 1
    op = hvp_operator(model, x, y, loss=loss, batch_size=batch_size, cache_graph=bool(cache_graph))
    if block > 1:
        return block_eigsh(op.matmat, op.dim, k=k, block=block, which=which, tol=tol, max_iters=max_iters,
                           seed=seed, dtype=op.dtype, device=op.device, vectors=vectors)
    return eigsh(op.matvec, op.dim, k=k, which=which, tol=tol, max_iters=max_iters, seed=seed,
                 dtype=op.dtype, device=op.device, vectors=vectors, check_every=1,
                 bound="residual" if vectors else "value")


def _rademacher(m: int, dim: int, *, seed: int, dtype, device) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    V = torch.randint(0, 2, (m, dim), generator=gen).to(torch.float64) * 2 - 1
    return V.to(dtype=dtype, device=device)


@dataclass
class TraceEstimate:
    trace: float        # Hutchinson estimate of tr(H)
    stderr: float       # standard error of the mean over probes
    samples: list[float]


def hessian_trace(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n_samples: int = 100,
                  loss: str = "cross_entropy", seed: int = 0, batch_size: int | None = None,
                  chunk: int = 16) -> TraceEstimate:
    """Hutchinson: tr(H) ~ mean_v vᵀHv over seeded Rademacher probes v (unbiased; the
    variance is 2 Σ_{i≠j} H_ij², so the estimate is exact for a diagonal H)."""
    n_samples = check_number(n_samples, "n_samples", "hessian_trace", kind=int, low=1)
    op = hvp_operator(model, x, y, loss=loss, batch_size=batch_size)
    V = _rademacher(n_samples, op.dim, seed=seed, dtype=op.dtype, device=op.device)
    vals = []
    for i in range(0, n_samples, chunk):
        block = V[i:i + chunk]
        vals.append((block * op.matmat(block)).sum(1).double())
    s = torch.cat(vals)
    se = float(s.std(unbiased=True) / math.sqrt(n_samples)) if n_samples > 1 else float("nan")
    return TraceEstimate(float(s.mean()), se, s.tolist())


@dataclass
class SpectralDensity:
    nodes: torch.Tensor     # (n_vectors, m) Ritz values per probe (float64)
    weights: torch.Tensor   # (n_vectors, m) quadrature weights per probe; each row sums to 1
    grid: torch.Tensor      # (g,) eigenvalue grid
    density: torch.Tensor   # (g,) Gaussian-smoothed density on the grid; integrates to ~1
    sigma: float            # smoothing width (same units as eigenvalues)

    def mean(self) -> float:
        """∫ t φ(t) dt of the quadrature = estimate of tr(H)/p."""
        return float((self.nodes * self.weights).sum(1).mean())


def spectral_density(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n_vectors: int = 5,
                     iters: int = 60, loss: str = "cross_entropy", seed: int = 0, grid_size: int = 1000,
                     sigma: float | None = None, batch_size: int | None = None) -> SpectralDensity:
    """Stochastic Lanczos quadrature: for each seeded Rademacher probe v, run ``iters``
    Lanczos steps from v/|v|, take the Ritz values θ and weights τ = (first components of
    T's eigenvectors)²; the density is the average of Σ τ_i N(t; θ_i, σ²).

    ``sigma`` defaults to 1% of the spectral range. The grid spans the range ± 5σ.
    """
    owner = "spectral_density"
    n_vectors = check_number(n_vectors, "n_vectors", owner, kind=int, low=1)
    iters = check_number(iters, "iters", owner, kind=int, low=1)
    grid_size = check_number(grid_size, "grid_size", owner, kind=int, low=2)
    op = hvp_operator(model, x, y, loss=loss, batch_size=batch_size)
    V = _rademacher(n_vectors, op.dim, seed=seed, dtype=op.dtype, device=op.device)
    iters = min(iters, op.dim)
    alpha, beta, steps = lanczos_batched(op.matmat, V, iters=iters)
    nodes_t, weights_t = gauss_quadrature(alpha, beta, steps)                   # (nv, m) each
    lo, hi = float(nodes_t.min()), float(nodes_t.max())
    span = max(hi - lo, 1e-12 * max(abs(hi), 1.0))
    if sigma is None:
        sigma = 0.01 * span
    sigma = check_number(sigma, "sigma", owner, low=0, low_open=True)
    grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_size, dtype=torch.float64)
    z = (grid[None, None, :] - nodes_t[:, :, None]) / sigma                     # (nv, m, g)
    dens = (weights_t[:, :, None] * torch.exp(-0.5 * z ** 2)).sum(1).mean(0) / (sigma * math.sqrt(2 * math.pi))
    return SpectralDensity(nodes_t, weights_t, grid, dens, float(sigma))
