"""Magnitude-aware ε-sharpness and PAC-Bayes σ′ (Jiang et al. 2020) against closed forms on
an exact quadratic (a linear model under ½·mean MSE at its least-squares optimum)."""
import math

import pytest
import torch
from torch import nn

from petridish.errors import InvalidParameterError
from petridish.instruments import (magnitude_pac_bayes_sigma, magnitude_sharpness, magnitude_sharpness_alpha,
                                   pac_bayes_sigma)
from petridish.instruments.functional import flatten_params

pytestmark = pytest.mark.usefixtures("one_thread")


def _least_squares(d=1, n=25, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(n, d, dtype=torch.float64)
    y = x @ torch.linspace(0.5, 2.0, d, dtype=torch.float64)[:, None] + 0.3 * torch.randn(n, 1, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.linalg.lstsq(x, y).solution.T)
    return model, x, y


def test_magnitude_sharpness_is_half_h_times_the_box_half_width_squared():
    # One parameter w, H = mean x²: the worst increase over |δ| ≤ α′|w| + ε is ½H(α′|w| + ε)².
    model, x, y = _least_squares()
    w, H, eps = abs(float(model.weight)), float((x ** 2).mean()), 1e-3
    for alpha in (0.01, 0.1):
        got = magnitude_sharpness(model, x, y, alpha=alpha, epsilon=eps, loss="mse", steps=3)
        assert math.isclose(got, 0.5 * H * (alpha * w + eps) ** 2, rel_tol=1e-9)
    bound = 0.01
    res = magnitude_sharpness_alpha(model, x, y, bound=bound, epsilon=eps, loss="mse", steps=3, rtol=1e-3)
    want = (math.sqrt(2 * bound / H) - eps) / w
    assert want * (1 - 2e-3) <= res.alpha <= want * (1 + 1e-12)
    assert math.isclose(res.measure, 1 / res.alpha ** 2) and res.kind == "sharpness_mag"


def test_magnitude_pac_bayes_sigma_is_a_standard_deviation_on_the_quadratic():
    # δᵢ = √(σ′²wᵢ² + ε²)·zᵢ with the seeded draws z; increase = ½·mean_z δᵀHδ, H = XᵀX/n.
    model, x, y = _least_squares(d=3, seed=1)
    model.eval()
    before = flatten_params(model).clone()
    bound, eps, seed, n_draws = 0.05, 1e-2, 4, 6
    res = magnitude_pac_bayes_sigma(model, x, y, bound=bound, epsilon=eps, n_draws=n_draws, loss="mse",
                                    seed=seed, rtol=1e-3)
    H = x.T @ x / len(x)
    w2 = before.double() ** 2
    Z = torch.randn(n_draws, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def increase(s):
        D = Z * torch.sqrt(s ** 2 * w2 + eps ** 2)
        return float(0.5 * ((D @ H) * D).sum(1).mean())

    assert increase(res.alpha) <= bound * (1 + 1e-9) < increase(res.alpha * (1 + 2e-3))
    assert res.kind == "pac_bayes_mag" and res.metric == "loss" and res.epsilon == eps
    # σ′ is a standard-deviation factor: with ε = 0 the increase is σ′²·½·mean_z (w⊙z)ᵀH(w⊙z).
    res0 = magnitude_pac_bayes_sigma(model, x, y, bound=bound, epsilon=0.0, n_draws=n_draws, loss="mse",
                                     seed=seed, rtol=1e-3)
    D1 = Z * before.double().abs()
    c = float(0.5 * ((D1 @ H) * D1).sum(1).mean())
    assert math.isclose(res0.alpha, math.sqrt(bound / c), rel_tol=2e-3)
    assert res == magnitude_pac_bayes_sigma(model, x, y, bound=bound, epsilon=eps, n_draws=n_draws, loss="mse",
                                            seed=seed, rtol=1e-3)
    assert not model.training and torch.equal(flatten_params(model), before)


def test_magnitude_aware_sigma_is_invariant_to_a_relu_rescaling_the_plain_one_is_not():
    # (c·W1, W2/c) computes the same function. With ε = 0 the noise is multiplicative,
    # w ⊙ (1 + σ′z), so with the same draws z the perturbed networks are again c·W1′ and W2′/c:
    # the same function (ReLU is positively homogeneous), hence the same σ′. Plain σ is not.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8, bias=False), nn.ReLU(), nn.Linear(8, 2, bias=False)).double()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randint(0, 2, (20,))
    scaled = nn.Sequential(nn.Linear(3, 8, bias=False), nn.ReLU(), nn.Linear(8, 2, bias=False)).double()
    with torch.no_grad():
        scaled[0].weight.copy_(4 * net[0].weight)
        scaled[2].weight.copy_(net[2].weight / 4)
    kw = dict(bound=0.05, epsilon=0.0, n_draws=4, rtol=1e-3, seed=1)
    a, b = magnitude_pac_bayes_sigma(net, x, y, **kw), magnitude_pac_bayes_sigma(scaled, x, y, **kw)
    assert math.isclose(a.alpha, b.alpha, rel_tol=1e-9)
    plain = [pac_bayes_sigma(m, x, y, bound=0.05, n_draws=4, rtol=1e-3, seed=1) for m in (net, scaled)]
    assert not math.isclose(plain[0], plain[1], rel_tol=0.05)


def test_bad_input_is_one_line():
    model, x, y = _least_squares()
    with pytest.raises(InvalidParameterError, match="The 'alpha' parameter of magnitude_sharpness must be a float > 0"):
        magnitude_sharpness(model, x, y, alpha=0)
    with pytest.raises(InvalidParameterError, match="The 'metric' parameter of magnitude_pac_bayes_sigma"):
        magnitude_pac_bayes_sigma(model, x, y, metric="acc")
