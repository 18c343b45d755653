"""The generalization measures of one trained model (Jiang et al. 2020), each from an existing instrument.

Every measure is oriented as a *complexity*: a larger value predicts a larger generalization gap, so
a measure that ranks models correctly has Kendall τ > 0 with the gap (the paper's convention; e.g.
the margin enters as 1/γ², PAC-Bayes flatness as 1/σ²). Curvature, flatness and gradient noise are
measured on a fixed subset of the training set (``n_measure`` examples) to keep each cheap.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from petridish.instruments import (effective_dimension, epsilon_sharpness, frobenius_norms, hessian_trace,
                                   magnitude_pac_bayes_sigma, margins, pac_bayes_sigma, path_norm,
                                   spectral_complexity, spectral_norms, top_eigenvalues)
from petridish.instruments.functional import flatten_params

# name -> (label, family). Families: the paper's groups, used by the claims.
MEASURES = {
    "params": ("parameter count", "size"),
    "frobenius_product": ("Π ‖W‖_F²", "norm"),
    "frobenius_sum": ("Σ ‖W‖_F²", "norm"),
    "spectral_product": ("Π ‖W‖_σ²", "spectral"),
    "spectral_sum": ("Σ ‖W‖_σ²", "spectral"),
    "path_norm": ("ℓ2 path norm", "norm"),
    "spectral_complexity": ("spectral complexity R/γ", "spectral"),
    "dist_from_init": ("‖θ − θ₀‖₂", "norm"),
    "inverse_margin": ("1/γ² (10th-percentile margin)", "margin"),
    "sharpness": ("ε-sharpness (loss increase)", "flatness"),
    "pac_bayes": ("PAC-Bayes flatness 1/σ²", "flatness"),
    "pac_bayes_mag": ("magnitude-aware PAC-Bayes 1/σ′²", "flatness"),
    "hessian_trace": ("Hessian trace", "curvature"),
    "lambda_max": ("top Hessian eigenvalue", "curvature"),
    "neff": ("N_eff (z = 1)", "curvature"),
    "gradient_noise": ("minibatch gradient variance", "optimization"),
    "steps": ("steps to the target loss", "optimization"),
}
FLATNESS = tuple(n for n, (_, f) in MEASURES.items() if f == "flatness")
NORMS = tuple(n for n, (_, f) in MEASURES.items() if f in ("norm", "spectral"))
MARGIN_QUANTILE = 0.1     # Bartlett et al.'s γ: the 10th percentile of the training margins
SHARPNESS_EPS = 1e-3      # Keskar's box |δ_i| ≤ ε(|θ_i| + 1)
PAC_BOUND = 0.1           # σ keeps the mean training-error increase ≤ 0.1 (Jiang et al.'s deviation)
NEFF_Z = 1.0
N_EIGS = 10               # top-k Hessian eigenvalues for λ_max and N_eff (Lanczos)
TRACE_PROBES = 10         # Hutchinson probes


def _inv_sq(v: float) -> float:
    return 1.0 / v ** 2 if v > 0 else math.inf


def norm_based(model: nn.Module, init: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Size, norm, spectral and margin measures (float64 model and data): the squared forms of
    Jiang et al.'s Table (Π ‖W‖², Σ ‖W‖²), and the spectral complexity divided by the margin γ."""
    fro, spec = frobenius_norms(model), spectral_norms(model)
    gamma = float(torch.quantile(margins(model, x, y).double(), MARGIN_QUANTILE))
    r = spectral_complexity(model, reference=init)
    theta, theta0 = flatten_params(model).double(), flatten_params(init).double()
    return {
        "params": float(theta.numel()),
        "frobenius_product": math.prod(f * f for f in fro),
        "frobenius_sum": sum(f * f for f in fro),
        "spectral_product": math.prod(s * s for s in spec),
        "spectral_sum": sum(s * s for s in spec),
        "path_norm": path_norm(model),
        "spectral_complexity_r": r,
        "dist_from_init": float((theta - theta0).norm()),
        "margin": gamma,
    }


def flatness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> dict[str, float]:
    """ε-sharpness (10 ascent steps) and both PAC-Bayes σ (8 seeded draws, error deviation ≤ 0.1)."""
    s = pac_bayes_sigma(model, x, y, bound=PAC_BOUND, metric="error", n_draws=8, seed=seed, rtol=0.05)
    mag = magnitude_pac_bayes_sigma(model, x, y, bound=PAC_BOUND, metric="error", n_draws=8, seed=seed, rtol=0.05)
    return {"sharpness": epsilon_sharpness(model, x, y, epsilon=SHARPNESS_EPS, steps=10, seed=seed),
            "sigma": s, "sigma_mag": mag.alpha}


def curvature(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> dict[str, float]:
    """λ_max and N_eff(z) from the top-10 Lanczos eigenvalues; Hutchinson's trace with 10 probes."""
    eig = top_eigenvalues(model, x, y, k=N_EIGS, tol=1e-3, max_iters=60, seed=seed).eigenvalues
    tr = hessian_trace(model, x, y, n_samples=TRACE_PROBES, seed=seed)
    return {"lambda_max": float(eig[0]), "neff": effective_dimension(eig, NEFF_Z), "hessian_trace": tr.trace}


def gradient_noise(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int) -> float:
    """E‖g_B − g‖² for a minibatch of ``batch_size`` drawn with replacement: tr(Σ)/B, with Σ the
    covariance of the per-example gradients on (x, y) (torch.func per-example gradients)."""
    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss_one(p, xi, yi):
        out = functional_call(model, p, (xi[None],))
        return torch.nn.functional.cross_entropy(out, yi[None])

    g = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)        # name -> (n, *shape)
    flat = torch.cat([v.reshape(x.shape[0], -1) for v in g.values()], dim=1).double()   # (n, p)
    var = float(((flat - flat.mean(0)) ** 2).sum(1).mean())             # tr(Σ), per example
    return var / batch_size


def oriented(metrics: dict) -> dict[str, float]:
    """Every measure of MEASURES as a complexity (larger predicts a larger gap) from a cell's stored,
    finite raw metrics: R/γ, 1/γ², 1/σ², 1/σ′² (inf where γ ≤ 0 or σ = 0). Missing ones are left out."""
    raw = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out = {k: raw[k] for k in MEASURES if k in raw}
    if "margin" in raw:
        g = raw["margin"]
        out["inverse_margin"] = _inv_sq(g)
        if "spectral_complexity_r" in raw:
            out["spectral_complexity"] = raw["spectral_complexity_r"] / g if g > 0 else math.inf
    for name, sigma in (("pac_bayes", "sigma"), ("pac_bayes_mag", "sigma_mag")):
        if sigma in raw:
            out[name] = _inv_sq(raw[sigma])
    return out


def all_measures(model: nn.Module, init: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int,
                 seed: int) -> dict[str, float]:
    """The raw (finite) quantities behind every measure of MEASURES except ``steps`` (which training
    gives; see :func:`oriented`); model in eval mode, float32 for curvature/flatness, float64 for norms."""
    model, init = model.eval(), init.eval()
    out = norm_based(model.double(), init.double(), x.double(), y)
    model = model.float()
    out.update(flatness(model, x, y, seed=seed))
    out.update(curvature(model, x, y, seed=seed))
    out["gradient_noise"] = gradient_noise(model, x, y, batch_size=batch_size)
    return out
