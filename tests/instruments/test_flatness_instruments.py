"""Sharpness, PAC-Bayes flatness and effective dimension against exact oracles."""
import math

import pytest
import torch
from torch import nn

from petridish.errors import InvalidParameterError
from petridish.instruments import (effective_dimension, epsilon_sharpness, hessian_effective_dimension,
                                   min_norm_dof, noise_increase, pac_bayes_sigma, ridge_dof,
                                   top_eigenvalues)


pytestmark = pytest.mark.usefixtures("one_thread")


def _trained(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).double()
    x = torch.randn(60, 6, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x, y


def test_epsilon_sharpness_nonnegative_and_monotone():
    model, x, y = _trained()
    for shape in ("box", "ball"):
        vals = [epsilon_sharpness(model, x, y, epsilon=e, steps=8, shape=shape, seed=1)
                for e in (0.0, 1e-3, 1e-2, 5e-2)]
        assert vals[0] == 0.0
        assert all(v >= 0 for v in vals)
        assert all(b >= a for a, b in zip(vals, vals[1:])), (shape, vals)
        assert vals[-1] > 0
    # deterministic given the seed; normalized form = 100·Δ/(1+L)
    a = epsilon_sharpness(model, x, y, epsilon=1e-2, seed=4)
    assert a == epsilon_sharpness(model, x, y, epsilon=1e-2, seed=4)
    with pytest.raises(InvalidParameterError, match="The 'shape' parameter of epsilon_sharpness"):
        epsilon_sharpness(model, x, y, shape="cube")


def test_epsilon_sharpness_on_a_quadratic_matches_closed_form():
    # Linear model + MSE: L(θ+δ) − L(θ) = gᵀδ + δᵀHδ/2 with H = XᵀX/n. At the least-squares
    # optimum g = 0, so over the ball the max increase is ε² λ_max / 2.
    torch.manual_seed(0)
    x = torch.randn(40, 4, dtype=torch.float64)
    y = torch.randn(40, 1, dtype=torch.float64)
    model = nn.Linear(4, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.linalg.lstsq(x, y).solution.T)
    lam = float(torch.linalg.eigvalsh(x.T @ x / 40)[-1])
    eps = 0.1
    got = epsilon_sharpness(model, x, y, epsilon=eps, steps=50, shape="ball", loss="mse")
    assert got <= eps ** 2 * lam / 2 * (1 + 1e-9)
    assert got >= 0.95 * eps ** 2 * lam / 2


def test_pac_bayes_sigma_bisection_brackets_the_bound():
    model, x, y = _trained()
    bound = 0.05
    sigma = pac_bayes_sigma(model, x, y, bound=bound, n_draws=8, seed=2, rtol=0.01)
    assert 0 < sigma < 10
    at = noise_increase(model, x, y, sigma, n_draws=8, seed=2)
    above = noise_increase(model, x, y, 1.1 * sigma, n_draws=8, seed=2)
    assert at <= bound < above
    # σ is a standard deviation: for a quadratic, the mean increase is σ² tr(H)/2, so the
    # bound's σ scales like sqrt(bound) — quadrupling the bound roughly doubles σ.
    sigma4 = pac_bayes_sigma(model, x, y, bound=4 * bound, n_draws=8, seed=2, rtol=0.01)
    assert 1.3 < sigma4 / sigma < 2.7


def test_hessian_effective_dimension_bounds_and_formula():
    model, x, y = _trained()
    p = sum(q.numel() for q in model.parameters())
    n_eff, lam = hessian_effective_dimension(model, x, y, z=0.01, k=10, seed=0)
    assert lam.shape == (10,)
    assert math.isclose(n_eff, float((lam.clamp_min(0) / (lam.clamp_min(0) + 0.01)).sum()), rel_tol=1e-12)
    assert 0 < n_eff <= 10 and n_eff <= p
    assert effective_dimension([1.0, 3.0, -2.0], z=1.0) == pytest.approx(0.5 + 0.75)
    # N_eff decreases with z
    assert effective_dimension(lam, 1.0) < effective_dimension(lam, 0.01)
    assert torch.equal(lam, top_eigenvalues(model, x, y, k=10, seed=0).eigenvalues)


def test_ridge_dof_matches_explicit_hat_matrix_trace():
    g = torch.Generator().manual_seed(0)
    for n, p in ((30, 10), (10, 30)):
        X = torch.randn(n, p, generator=g, dtype=torch.float64)
        lams = [1e-3, 0.1, 1.0, 10.0, 100.0]
        got = ridge_dof(X, lams)
        for lam, v in zip(lams, got):
            S = X @ torch.linalg.solve(X.T @ X + lam * torch.eye(p, dtype=torch.float64), X.T)
            assert math.isclose(float(v), float(S.trace()), rel_tol=1e-9)
        assert torch.all(got[1:] < got[:-1])                    # decreasing in λ
        assert ridge_dof(X, 0.0) == pytest.approx(min(n, p), abs=1e-12) == min_norm_dof(X)
        assert ridge_dof(X, 1e-10) == pytest.approx(min(n, p), rel=1e-6)
    with pytest.raises(InvalidParameterError, match="The 'lam' parameter of ridge_dof"):
        ridge_dof(X, -1.0)
