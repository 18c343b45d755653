"""Magnitude-aware flatness (Jiang, Neyshabur, Mobahi, Krishnan & Bengio 2020, §C: the 1/α′ measures).

The plain measures perturb every weight by the same amount; these scale each weight's
perturbation with its magnitude, so a rescaling that leaves the function unchanged (ReLU layers
multiplied by c and 1/c) moves them far less:

* :func:`magnitude_sharpness` — the worst loss increase over the box |δᵢ| ≤ α′|wᵢ| + ε.
* :func:`magnitude_sharpness_alpha` — the largest α′ whose box keeps the worst increase ≤ ``bound``;
  Jiang et al.'s measure is 1/α′².
* :func:`magnitude_pac_bayes_sigma` — the largest σ′ such that Gaussian noise δᵢ ~ N(0, σ′²wᵢ² + ε²)
  keeps the Monte-Carlo mean increase ≤ ``bound``; σ′ is a STANDARD DEVIATION factor (not a
  variance; see REFERENCES.md) and the measure is 1/σ′².

Both REUSE ``sharpness.epsilon_sharpness`` and ``sharpness.noise_increase`` through a change of
variables: a wrapper module with one parameter u (p,) = 0 computes the model at θ = w + s ⊙ u.
Keskar's box |δuᵢ| ≤ α′(|uᵢ| + 1) = α′ at u = 0 then is |δθᵢ| ≤ α′sᵢ, which is α′|wᵢ| + ε for
sᵢ = |wᵢ| + ε/α′; isotropic noise σ′z in u is noise of standard deviation σ′sᵢ in θ, which is
√(σ′²wᵢ² + ε²) for sᵢ = √(wᵢ² + ε²/σ′²). The same seed gives the same draws at every α′ or σ′
(common random numbers), so the searched function is deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from petridish.errors import check_choice, check_number
from petridish.instruments.functional import flatten_params
from petridish.instruments.pure_forward import pure_forward
from petridish.instruments.sharpness import epsilon_sharpness, largest_ok, noise_increase


class _Reparametrized(nn.Module):
    """The model at θ = w + scale ⊙ u, with u (p,) its only parameter (initialized to 0)."""

    def __init__(self, model: nn.Module, scale: torch.Tensor):
        super().__init__()
        w = flatten_params(model)
        self.u = nn.Parameter(torch.zeros_like(w))
        self._fwd, self._w, self._scale = pure_forward(model), w, scale.to(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fwd(self._w + self._scale * self.u, x)


@dataclass
class MagnitudeFlatness:
    alpha: float      # the largest α′ (sharpness) or σ′ (PAC-Bayes) that keeps the bound
    measure: float    # Jiang et al.'s 1/α′² (inf when alpha is 0)
    kind: str         # "sharpness_mag" | "pac_bayes_mag"
    bound: float      # the allowed increase of the metric
    metric: str       # "loss" | "error"
    epsilon: float    # ε, the magnitude-independent floor of the perturbation
    seed: int


def magnitude_sharpness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, alpha: float = 1e-3,
                        epsilon: float = 1e-3, steps: int = 10, loss: str = "cross_entropy", seed: int = 0) -> float:
    """The worst loss increase over |δᵢ| ≤ α′|wᵢ| + ε (conditional-gradient ascent, as
    ``epsilon_sharpness``; the best iterate, ≥ 0)."""
    owner = "magnitude_sharpness"
    alpha = check_number(alpha, "alpha", owner, low=0, low_open=True)
    epsilon = check_number(epsilon, "epsilon", owner, low=0)
    w = flatten_params(model)
    wrapped = _Reparametrized(model, w.abs() + epsilon / alpha)
    return epsilon_sharpness(wrapped, x, y, epsilon=alpha, steps=steps, shape="box", loss=loss, seed=seed)


def magnitude_sharpness_alpha(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, bound: float = 0.1,
                              epsilon: float = 1e-3, steps: int = 10, loss: str = "cross_entropy", seed: int = 0,
                              alpha_max: float = 10.0, rtol: float = 0.02, max_iters: int = 60) -> MagnitudeFlatness:
    """The largest α′ in (0, alpha_max] whose box keeps the worst loss increase ≤ ``bound``."""
    owner = "magnitude_sharpness_alpha"
    bound = check_number(bound, "bound", owner, low=0, low_open=True)
    alpha_max = check_number(alpha_max, "alpha_max", owner, low=0, low_open=True)
    rtol = check_number(rtol, "rtol", owner, low=0, low_open=True, high=1)
    epsilon = check_number(epsilon, "epsilon", owner, low=0)
    ok = lambda a: magnitude_sharpness(model, x, y, alpha=a, epsilon=epsilon, steps=steps, loss=loss,  # noqa: E731
                                       seed=seed) <= bound
    a = largest_ok(ok, alpha_max, rtol, max_iters)
    return MagnitudeFlatness(a, 1 / a ** 2 if a > 0 else float("inf"), "sharpness_mag", bound, "loss",
                             epsilon, int(seed))


def magnitude_pac_bayes_sigma(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, bound: float = 0.1,
                              metric: str = "loss", epsilon: float = 1e-3, n_draws: int = 8,
                              loss: str = "cross_entropy", seed: int = 0, sigma_max: float = 10.0,
                              rtol: float = 0.02, max_iters: int = 60) -> MagnitudeFlatness:
    """The largest σ′ in (0, sigma_max] with mean increase of ``metric`` ≤ ``bound`` under
    δᵢ ~ N(0, σ′²wᵢ² + ε²) (``n_draws`` seeded draws, reused for every σ′)."""
    owner = "magnitude_pac_bayes_sigma"
    bound = check_number(bound, "bound", owner, low=0, low_open=True)
    sigma_max = check_number(sigma_max, "sigma_max", owner, low=0, low_open=True)
    rtol = check_number(rtol, "rtol", owner, low=0, low_open=True, high=1)
    epsilon = check_number(epsilon, "epsilon", owner, low=0)
    check_choice(metric, "metric", owner, ("loss", "error"))
    w2 = flatten_params(model).double() ** 2

    def ok(s: float) -> bool:
        wrapped = _Reparametrized(model, torch.sqrt(w2 + (epsilon / s) ** 2))
        return noise_increase(wrapped, x, y, s, n_draws=n_draws, metric=metric, loss=loss, seed=seed) <= bound

    s = largest_ok(ok, sigma_max, rtol, max_iters)
    return MagnitudeFlatness(s, 1 / s ** 2 if s > 0 else float("inf"), "pac_bayes_mag", bound, metric,
                             epsilon, int(seed))
