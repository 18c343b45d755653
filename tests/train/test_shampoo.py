"""Shampoo against exact answers: convergence to the minimizer of a convex quadratic to 1e-8, each update
against the paper's formula built with scipy's fractional matrix power, and the one-line errors."""
import numpy as np
import pytest
import scipy.linalg
import torch

from petridish.errors import PetridishError
from petridish.train.shampoo import Shampoo

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64


def test_shampoo_reaches_the_minimizer_of_an_ill_conditioned_quadratic():
    # ½ mean‖x Wᵀ + b − y‖² with centred inputs of scales 0.3…4 (condition number of the Hessian ≈ 180):
    # with summed statistics the preconditioners freeze as the gradients vanish, so Shampoo becomes
    # preconditioned GD with a fixed matrix and converges linearly
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=g, dtype=F64) * torch.tensor([1, 2, 3, .5, .3, 4.], dtype=F64)
    x = x - x.mean(0)
    y = torch.randn(200, 3, generator=g, dtype=F64)
    xa = torch.cat([x, torch.ones(200, 1, dtype=F64)], 1)
    sol = torch.linalg.lstsq(xa, y).solution.T                                    # (3, 7)
    w = torch.zeros(3, 6, dtype=F64, requires_grad=True)
    b = torch.zeros(3, dtype=F64, requires_grad=True)
    opt = Shampoo([w, b], lr=1.0, eps=1e-12, update_every=1)
    for step in range(400):
        opt.zero_grad()
        (0.5 * (x @ w.T + b - y).pow(2).sum(1).mean()).backward()
        opt.step()
        err = float((torch.cat([w, b[:, None]], 1).detach() - sol).norm() / sol.norm())
        if err < 1e-8:
            break
    assert err < 1e-8, err
    # and plain GD at its best constant step (1/λ_max) is still far away after as many steps
    h = (xa.T @ xa / 200).numpy()
    rate = 1 - np.linalg.eigvalsh(h)[0] / np.linalg.eigvalsh(h)[-1]
    assert rate ** step > 1e-3


@pytest.mark.parametrize("every", [1, 2])
def test_each_update_is_the_papers_formula(every):
    # W ← W − lr (L + εI)^(−1/4) G (R + εI)^(−1/4), L = Σ G Gᵀ, R = Σ GᵀG, roots refreshed every `every` steps;
    # a vector: w ← w − lr g/√(Σg² + ε). Oracle: scipy.linalg.fractional_matrix_power in float64.
    torch.manual_seed(0)
    w = torch.randn(4, 2, 3, dtype=F64, requires_grad=True)                      # order 3: seen as (4, 6)
    b = torch.randn(5, dtype=F64, requires_grad=True)
    lr, eps = 0.3, 1e-3
    opt = Shampoo([w, b], lr=lr, eps=eps, update_every=every)
    L, R, h = np.zeros((4, 4)), np.zeros((6, 6)), np.zeros(5)
    for t in range(1, 5):
        opt.zero_grad()
        (torch.sin(w).pow(2).sum() * (1 + t) + torch.cos(b * t).sum() + (w.sum() * b.sum()) ** 2).backward()
        G = w.grad.reshape(4, 6).numpy().copy()
        gb = b.grad.numpy().copy()
        w0, b0 = w.detach().numpy().copy(), b.detach().numpy().copy()
        L, R, h = L + G @ G.T, R + G.T @ G, h + gb ** 2
        if (t - 1) % every == 0:
            Lr = scipy.linalg.fractional_matrix_power(L + eps * np.eye(4), -0.25).real
            Rr = scipy.linalg.fractional_matrix_power(R + eps * np.eye(6), -0.25).real
        opt.step()
        # scipy's Schur–Padé root is accurate to ≈1e-11 relative, amplified ≈ ε^(−1/4) ≈ 6 on the ε-floor
        # of the rank-deficient L, R: 1e-8 absolute on O(1) entries (measured ≤ 1.1e-10)
        np.testing.assert_allclose(w.detach().numpy(), w0 - lr * (Lr @ G @ Rr).reshape(4, 2, 3), rtol=0, atol=1e-8)
        np.testing.assert_allclose(b.detach().numpy(), b0 - lr * gb / np.sqrt(h + eps), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kw,match", [
    ({"lr": 0.0}, "'lr' parameter of Shampoo must be a float > 0"),
    ({"eps": -1e-4}, "'eps' parameter of Shampoo"),
    ({"update_every": 0}, "'update_every' parameter of Shampoo must be an int >= 1"),
    ({"beta2": 1.5}, "'beta2'"),
])
def test_bad_input_gives_a_one_line_error(kw, match):
    with pytest.raises(PetridishError, match=match) as e:
        Shampoo([torch.zeros(2, requires_grad=True)], **kw)
    assert "\n" not in str(e.value)
