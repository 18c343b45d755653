"""Conjugate gradients and Hessian-free Newton on convex quadratics, where the answer is known exactly."""
import numpy as np
import pytest
import torch

from petridish.errors import PetridishError
from petridish.train.hessian_free import HessianFree, conjugate_gradient


def _spd(n, seed, eigs=None):
    g = np.random.default_rng(seed)
    q, _ = np.linalg.qr(g.standard_normal((n, n)))
    lam = np.geomspace(1.0, 100.0, n) if eigs is None else np.asarray(eigs, float)
    return torch.from_numpy((q * lam) @ q.T), torch.from_numpy(g.standard_normal(n))


def test_cg_solves_an_spd_system_in_n_steps():
    a, b = _spd(20, 0, eigs=np.linspace(1.0, 4.0, 20))
    res = conjugate_gradient(lambda v: a @ v, b, tol=0.0, max_iter=20)      # exactly n = 20 steps
    x = torch.linalg.solve(a, b)
    assert res.iterations == 20
    # exact in n steps up to rounding (kept small by the modest condition number, 4: with 100, the
    # lost orthogonality of float CG delays convergence by a few steps)
    assert float((res.x - x).norm() / x.norm()) < 1e-8


def test_cg_needs_only_as_many_steps_as_distinct_eigenvalues():
    a, b = _spd(30, 1, eigs=[1.0] * 10 + [5.0] * 10 + [20.0] * 10)
    res = conjugate_gradient(lambda v: a @ v, b, tol=1e-12)
    assert res.converged and res.iterations == 3


def test_hessian_free_is_newton_on_a_quadratic_one_step_to_the_minimizer():
    a, b = _spd(15, 2)
    w = torch.zeros(15, dtype=torch.float64, requires_grad=True)
    f = lambda: 0.5 * w @ (a @ w) - b @ w                     # minimizer A⁻¹b
    opt = HessianFree([w], f, damping=0.0, cg_iters=100, cg_tol=1e-14, adapt=False)
    opt.step()
    x = torch.linalg.solve(a, b)
    assert float((w.detach() - x).norm() / x.norm()) < 1e-8


def test_damped_hessian_free_converges_on_logistic_regression_like_lbfgs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 1.0], dtype=torch.float64) + torch.randn(200, generator=g,
                                                                                           dtype=torch.float64) > 0)
    y = y.double() * 2 - 1
    loss = lambda w: torch.nn.functional.softplus(-y * (x @ w)).mean() + 1e-3 * (w @ w)   # strongly convex
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = HessianFree([w], lambda: loss(w), damping=1.0, cg_iters=20)
    for _ in range(30):
        opt.step()
    v = torch.zeros(5, dtype=torch.float64, requires_grad=True)      # reference: torch's L-BFGS, strong Wolfe
    lb = torch.optim.LBFGS([v], lr=1, max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16,
                           line_search_fn="strong_wolfe")

    def closure():
        lb.zero_grad()
        val = loss(v)
        val.backward()
        return val
    lb.step(closure)
    assert float((w.detach() - v.detach()).norm() / v.detach().norm()) < 1e-6
    grad = torch.autograd.grad(loss(w), w)[0]
    assert float(grad.norm()) < 1e-8


def test_negative_curvature_at_the_start_raises_damping_until_steps_descend():
    """f(w) = w⁴/4 − w²/2 from w = 0.1: f'' = −0.97 < 0, so with λ = 0.5 CG meets negative curvature on its
    first direction and returns d = 0. λ must grow past 0.97 (then H + λI > 0 and d descends); a rule driven
    by the reduction ratio alone would leave w at 0.1 forever. The minimizer is w = 1."""
    w = torch.tensor([0.1], dtype=torch.float64, requires_grad=True)
    hf = HessianFree([w], lambda: (w ** 4 / 4 - w ** 2 / 2).sum(), damping=0.5, cg_iters=5)
    hf.step()
    assert hf.last_cg.iterations == 0 and float(w) == 0.1 and hf.damping == 0.75
    for _ in range(60):
        hf.step()
    assert abs(float(w) - 1.0) < 1e-8


def test_bad_input_is_one_line():
    with pytest.raises(PetridishError, match="'params' parameter of HessianFree"):
        HessianFree([torch.zeros(2)], lambda: torch.zeros(()))
