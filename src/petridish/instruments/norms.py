"""Norm-based capacity measures of feed-forward networks, and the margin distribution.

Layers are the module's ``nn.Linear`` (and ``nn.Conv*``, flattened to (out, in·k)) in
registration order, which for ``nn.Sequential``-style MLPs is forward order.

* Frobenius norms per layer, their product and sum of squares;
* spectral norms per layer: exact (largest singular value) for small matrices, seeded
  power iteration on WᵀW for large ones;
* the ℓ2 path norm of a ReLU network (Neyshabur, Tomioka & Srebro 2015): sqrt of the sum
  over input→output paths of the product of squared weights, computed as one forward pass
  of the network with squared parameters on an all-ones input (biases count as paths
  that start at a bias unit);
* the spectral complexity of Bartlett, Foster & Telgarsky 2017,
  R = (Π_i ||W_i||_σ) · (Σ_i ||W_iᵀ − M_iᵀ||_{2,1}^{2/3} / ||W_i||_σ^{2/3})^{3/2},
  and its margin-normalized form R · ||X||_F / (γ n), γ a low quantile of the margins;
* ``margins(model, x, y)`` = f(x)_y − max_{j≠y} f(x)_j.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call

from petridish.errors import check_number, invalid

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def weight_matrices(model: nn.Module) -> list[torch.Tensor]:
    """Detached weight matrices (out, in) of the model's linear/conv layers, in order."""
    mats = [m.weight.detach().reshape(m.weight.shape[0], -1) for m in model.modules()
            if isinstance(m, _LAYERS)]
    if not mats:
        raise invalid("model", "weight_matrices", "a module with nn.Linear or nn.Conv layers",
                      type(model).__name__)
    return mats


def frobenius_norms(model: nn.Module) -> list[float]:
    return [float(torch.linalg.matrix_norm(W.double(), ord="fro")) for W in weight_matrices(model)]


def spectral_norm(W: torch.Tensor, *, exact_max_dim: int = 2048, iters: int = 500, tol: float = 1e-10,
                  seed: int = 0) -> float:
    """Largest singular value of W (2-D). Exact (``matrix_norm(ord=2)``) when the smaller side
    is <= ``exact_max_dim``; else power iteration on WᵀW from a seeded start, until the
    relative change is below ``tol``."""
    if W.ndim != 2:
        raise invalid("W", "spectral_norm", "a 2-D tensor", tuple(W.shape))
    W = W.detach().double()
    if min(W.shape) <= exact_max_dim:
        return float(torch.linalg.matrix_norm(W, ord=2))
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    v = torch.randn(W.shape[1], generator=gen, dtype=torch.float64).to(W.device)
    v = v / v.norm()
    s_old = 0.0
    for _ in range(iters):
        u = W @ v
        s = float(u.norm())
        if s == 0.0:
            return 0.0
        v = W.T @ (u / s)
        v = v / v.norm()
        if abs(s - s_old) <= tol * s:
            break
        s_old = s
    return float((W @ v).norm())


def spectral_norms(model: nn.Module, **kw) -> list[float]:
    return [spectral_norm(W, **kw) for W in weight_matrices(model)]


def path_norm(model: nn.Module, *, input_shape: Sequence[int] | None = None) -> float:
    """ℓ2 path norm sqrt(Σ_paths Π w²) of a ReLU network (bias paths included).

    With every parameter squared (so non-negative) and an all-ones input, every ReLU is
    in its identity regime and the summed output is exactly Σ_paths Π w². ``input_shape``
    (without batch) defaults to the first layer's ``in_features``.
    """
    if input_shape is None:
        first = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
        if first is None:
            raise invalid("input_shape", "path_norm", "given for a model without nn.Linear", None)
        input_shape = (first.in_features,)
    params = {k: p.detach().double() ** 2 for k, p in model.named_parameters()}
    buffers = {k: b.double() if b.is_floating_point() else b for k, b in model.named_buffers()}
    first_p = next(model.parameters())
    ones = torch.ones(1, *input_shape, dtype=torch.float64, device=first_p.device)
    # every parameter and floating buffer is replaced by a float64 copy: the module is untouched.
    out = functional_call(model, {**params, **buffers}, (ones,))
    return math.sqrt(float(out.sum()))


def margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(n,) f(x)_y − max_{j≠y} f(x)_j: positive iff correctly classified, no grad."""
    with torch.no_grad():
        out = model(x)
    if out.ndim != 2 or out.shape[1] < 2:
        raise invalid("model", "margins", "a classifier with outputs (n, classes >= 2)", tuple(out.shape))
    y = y.reshape(-1).long()
    true = out.gather(1, y[:, None])[:, 0]
    other = out.scatter(1, y[:, None], float("-inf")).max(1).values
    return true - other


def spectral_complexity(model: nn.Module, *, reference: Sequence[torch.Tensor] | nn.Module | None = None,
                        **spectral_kw) -> float:
    """R = (Π_i ||W_i||_σ) (Σ_i (||W_iᵀ − M_iᵀ||_{2,1} / ||W_i||_σ)^{2/3})^{3/2}
    (Bartlett, Foster & Telgarsky 2017, with ReLU Lipschitz constants 1).

    ||Aᵀ||_{2,1} is the sum of the ℓ2 norms of the ROWS of A (out, in). ``reference`` are
    the matrices M_i (e.g. the initialization, as a module or list); default 0.
    """
    mats = weight_matrices(model)
    if reference is None:
        refs = [torch.zeros_like(W) for W in mats]
    else:
        refs = weight_matrices(reference) if isinstance(reference, nn.Module) else [r.detach().reshape(r.shape[0], -1) for r in reference]
        if len(refs) != len(mats) or any(r.shape != W.shape for r, W in zip(refs, mats)):
            raise invalid("reference", "spectral_complexity", "matrices shaped like the model's layers",
                          [tuple(r.shape) for r in refs])
    sig = [spectral_norm(W, **spectral_kw) for W in mats]
    if any(s == 0 for s in sig):
        return 0.0
    l21 = [float((W.double() - M.double()).norm(dim=1).sum()) for W, M in zip(mats, refs)]
    # log-space product: Π σ_i over many layers can overflow float64.
    log_prod = sum(math.log(s) for s in sig)
    inner = sum((a / s) ** (2.0 / 3.0) for a, s in zip(l21, sig))
    if inner == 0:
        return 0.0
    return math.exp(log_prod + 1.5 * math.log(inner))


def margin_normalized_complexity(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                                 quantile: float = 0.1, complexity: float | None = None,
                                 reference=None) -> float:
    """R · ||X||_F / (γ n), γ = ``quantile`` of the margins on (x, y) (Bartlett et al. use a
    low percentile). Returns ``inf`` when γ <= 0 (the bound is vacuous)."""
    quantile = check_number(quantile, "quantile", "margin_normalized_complexity", low=0, high=1)
    if complexity is None:
        complexity = spectral_complexity(model, reference=reference)
    gamma = float(torch.quantile(margins(model, x, y).double(), quantile))
    if gamma <= 0:
        return math.inf
    n = x.shape[0]
    return complexity * float(x.double().norm()) / (gamma * n)


def norm_measures(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, quantile: float = 0.1,
                  reference=None) -> dict[str, float]:
    """All norm-based measures at once (floats), for an experiment's metrics:
    frobenius_product, frobenius_sum (Σ ||W||_F²), spectral_product, path_norm,
    spectral_complexity (R), margin (the γ quantile), spectral_complexity_normalized."""
    fro = frobenius_norms(model)
    spec = spectral_norms(model)
    R = spectral_complexity(model, reference=reference)
    gamma = float(torch.quantile(margins(model, x, y).double(), quantile))
    return {
        "frobenius_product": math.prod(fro),
        "frobenius_sum": sum(f * f for f in fro),
        "spectral_product": math.prod(spec),
        "path_norm": path_norm(model),
        "spectral_complexity": R,
        "margin": gamma,
        "spectral_complexity_normalized": (R * float(x.double().norm()) / (gamma * x.shape[0])
                                           if gamma > 0 else math.inf),
    }
