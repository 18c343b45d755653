"""Curvature operators beside the Hessian: the Gauss–Newton (GGN) matrix and the Fisher.

For the mean loss L(θ) = (1/n) Σᵢ ℓ(f(xᵢ; θ), yᵢ) with outputs f (n, k):

* ``ggn``: G = Jᵀ H_out J, J = ∂f/∂θ (n·k, p) and H_out = ∂²L/∂f² (block diagonal,
  1/n·(diag(pᵢ) − pᵢpᵢᵀ) per example for cross-entropy, I/n for ½·mean MSE). It is the
  Hessian without the term Σ (∂L/∂f)·∂²f/∂θ², so it is positive semi-definite. A matvec is one
  forward-mode JVP (Jv), one HVP of the loss in the OUTPUTS (cheap) and one VJP (Jᵀu).
* ``fisher`` (the "true" Fisher): (1/n) Σᵢ E_{ŷ~p(·|xᵢ)} ∇ℓ(ŷ)∇ℓ(ŷ)ᵀ = Jᵀ F_out J with the
  expectation taken exactly in closed form: F_out = diag(p) − ppᵀ for softmax cross-entropy and
  I for MSE (unit-variance Gaussian likelihood). For these canonical-link losses it equals
  the GGN (Martens 2020, §9.2) — a tested identity, computed here independently.
* ``empirical_fisher``: (1/n) Σᵢ ∇ℓᵢ∇ℓᵢᵀ at the OBSERVED labels = (1/n) Gᵀ G with G (n, p) the
  per-example gradients; a matvec is one JVP of the per-example losses and one VJP.

``batch_size=None`` evaluates on all n examples (full batch); an int m < n draws a seeded
mini-batch of m examples without replacement, and the result says so (``CurvatureOperator.batch``).
``chunk`` splits the examples used into pieces (weighted by size) to bound memory; it does not
change the operator. Nothing mutates the model (``torch.func.functional_call``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.func import grad, jvp, vjp

from petridish.errors import check_choice, check_number, invalid
from petridish.instruments.functional import flat_loss
from petridish.instruments.lanczos import EigResult, eigsh
from petridish.instruments.pure_forward import pure_forward
from petridish.losses import canonical, loss_value, per_example

KINDS = ("ggn", "fisher", "empirical_fisher")


@dataclass
class CurvatureOperator:
    """A curvature matrix (p, p) of the mean loss at the model's parameters, as an operator."""

    matvec: Callable[[torch.Tensor], torch.Tensor]   # (p,) -> (p,)
    kind: str                                         # "ggn" | "fisher" | "empirical_fisher"
    dim: int                                          # p
    dtype: torch.dtype
    device: torch.device
    theta: torch.Tensor                               # (p,) the point it is taken at
    examples: int                                     # examples the operator averages over
    n: int                                            # examples given
    batch: str                                        # "full batch (n=…)" or "mini-batch of m of n (seed s)"

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v)


@dataclass
class CurvatureSpectrum:
    eigenvalues: torch.Tensor    # (k,) float64, descending
    eigenvectors: torch.Tensor   # (k, p) when vectors=True, else (0, p)
    kind: str
    batch: str                   # how many examples the operator used (see CurvatureOperator)
    converged: bool
    iterations: int              # Lanczos steps = operator applications


def _subset(x: torch.Tensor, y: torch.Tensor, batch_size: int | None, seed: int, owner: str):
    n = x.shape[0]
    if n == 0:
        raise invalid("x", owner, "a non-empty batch", tuple(x.shape))
    if x.shape[0] != y.shape[0]:
        raise invalid("y", owner, f"a tensor with {n} rows like x", tuple(y.shape))
    if batch_size is None or batch_size >= n:
        return x, y, f"full batch (n={n})"
    batch_size = check_number(batch_size, "batch_size", owner, kind=int, low=1)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    idx = torch.randperm(n, generator=gen)[:batch_size].to(x.device)
    return x[idx], y[idx], f"mini-batch of {batch_size} of {n} (seed {seed})"


def _output_fisher(out: torch.Tensor, u: torch.Tensor, loss: str, n_total: int) -> torch.Tensor:
    """F_out u per example, scaled by 1/n_total: out, u (m, k) -> (m, k).
    CE: (diag(p) − ppᵀ) u = p ⊙ u − p (pᵀu); MSE: u."""
    if loss == "cross_entropy":
        p = torch.softmax(out, dim=-1)
        fu = p * u - p * (p * u).sum(-1, keepdim=True)
    else:
        fu = u
    return fu / n_total


def curvature_operator(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, kind: str = "ggn",
                       loss: str = "cross_entropy", batch_size: int | None = None, seed: int = 0,
                       chunk: int | None = None) -> CurvatureOperator:
    """The GGN, true Fisher or empirical Fisher of the mean loss over (x, y) as an operator."""
    owner = "curvature_operator"
    check_choice(kind, "kind", owner, KINDS)
    xs, ys, batch = _subset(x, y, batch_size, seed, owner)
    m = xs.shape[0]
    chunk = m if chunk is None else check_number(chunk, "chunk", owner, kind=int, low=1)
    _, theta0 = flat_loss(model, xs[:1], ys[:1], loss=loss, owner=owner)     # validates, gives θ0
    loss = canonical(loss)
    fwd = pure_forward(model)                                                # buffers copied per call
    dev = theta0.device
    pieces = [(xs[i:i + chunk].to(dev), ys[i:i + chunk].to(dev)) for i in range(0, m, chunk)]

    def ggn_piece(v, xc, yc):
        fx = lambda th: fwd(th, xc)                                           # noqa: E731
        out, jv = jvp(fx, (theta0,), (v,))                                   # (c, k), (c, k)
        if kind == "ggn":
            # H_out (Jv): HVP of the mean loss in the outputs; × c/m turns the chunk mean into
            # its share of the mean over the m examples.
            g_out = grad(lambda o: loss_value(o, yc, loss))
            hu = jvp(g_out, (out,), (jv,))[1] * (xc.shape[0] / m)
        else:
            hu = _output_fisher(out, jv, loss, m)
        return vjp(fx, theta0)[1](hu)[0]

    def emp_fisher_piece(v, xc, yc):
        per = lambda th: per_example(fwd(th, xc), yc, loss)                   # (c,)
        _, gv = jvp(per, (theta0,), (v,))                                    # (c,) = G v
        return vjp(per, theta0)[1](gv / m)[0]                                # Gᵀ(G v)/m

    piece = emp_fisher_piece if kind == "empirical_fisher" else ggn_piece

    def matvec(v: torch.Tensor) -> torch.Tensor:
        v = v.to(dtype=theta0.dtype, device=dev)
        out = None
        for xc, yc in pieces:
            r = piece(v, xc, yc)
            out = r if out is None else out + r
        return out

    return CurvatureOperator(matvec, kind, theta0.numel(), theta0.dtype, dev, theta0, m, x.shape[0], batch)


def curvature_eigenvalues(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, kind: str = "ggn",
                          k: int = 5, loss: str = "cross_entropy", batch_size: int | None = None,
                          seed: int = 0, tol: float | None = None, max_iters: int | None = None,
                          chunk: int | None = None, vectors: bool = False) -> CurvatureSpectrum:
    """Top-k eigenvalues of the GGN or a Fisher (Lanczos with full reorthogonalization; the
    mini-batch, if any, and the Lanczos start vector both come from ``seed``)."""
    op = curvature_operator(model, x, y, kind=kind, loss=loss, batch_size=batch_size, seed=seed, chunk=chunk)
    res: EigResult = eigsh(op.matvec, op.dim, k=k, which="LA", tol=tol, max_iters=max_iters, seed=seed,
                           dtype=op.dtype, device=op.device, vectors=vectors)
    return CurvatureSpectrum(res.eigenvalues, res.eigenvectors, kind, op.batch, res.converged, res.iterations)
