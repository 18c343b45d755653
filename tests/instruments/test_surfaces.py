"""Loss surfaces, filter normalization, interpolation and Bézier mode connectivity against
closed forms (a linear model under ½·mean MSE is an exact quadratic in its parameters)."""
import math

import pytest
import torch
from torch import nn

from petridish.errors import InvalidParameterError
from petridish.instruments import (bezier_curve, filter_normalized_directions, interpolate, loss_at_points,
                                   loss_surface)
from petridish.instruments.functional import flatten_params, unflatten, param_shapes

pytestmark = pytest.mark.usefixtures("one_thread")


def _linear(seed=0, n=30, d=4, k=2):
    torch.manual_seed(seed)
    model = nn.Linear(d, k).double()
    x = torch.randn(n, d, dtype=torch.float64)
    y = torch.randn(n, k, dtype=torch.float64)
    return model, x, y


def _quadratic_loss(model, x, y, theta):
    """½·mean‖x Wᵀ + b − y‖² written out by hand for a flat (W, b)."""
    k, d = model.weight.shape
    W, b = theta[:k * d].reshape(k, d), theta[k * d:]
    return 0.5 * ((x @ W.T + b - y) ** 2).sum(1).mean()


def test_2d_surface_is_the_closed_form_quadratic():
    model, x, y = _linear()
    s = loss_surface(model, x, y, loss="mse", resolution=7, span=2.0, seed=3)
    assert s.vectorized and s.kind == "filter" and s.loss.shape == (7, 7)
    theta = flatten_params(model)
    W = model.weight.detach()
    r = x @ W.T + model.bias.detach() - y                                  # (n, k) residuals at θ₀
    dW = [d[:W.numel()].reshape(W.shape) for d in s.directions]           # bias entries are zero
    Dl = [x @ w.T for w in dW]                                             # (n, k) output change per unit step
    g = [float((r * D).sum(1).mean()) for D in Dl]
    h = [[float((Di * Dj).sum(1).mean()) for Dj in Dl] for Di in Dl]
    L0 = float(_quadratic_loss(model, x, y, theta))
    for i, a in enumerate(s.coords[0].tolist()):
        for j, b in enumerate(s.coords[1].tolist()):
            want = L0 + a * g[0] + b * g[1] + 0.5 * (a * a * h[0][0] + 2 * a * b * h[0][1] + b * b * h[1][1])
            assert abs(float(s.loss[i, j]) - want) <= 1e-12 * max(1.0, abs(want))
    assert abs(s.center_loss - L0) <= 1e-14


def test_1d_hessian_slice_at_the_minimum_is_half_lambda_max_a_squared():
    model, x, y = _linear(1)
    with torch.no_grad():                                                  # least squares with bias
        X1 = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
        sol = torch.linalg.lstsq(X1, y).solution                           # (d+1, k)
        model.weight.copy_(sol[:-1].T)
        model.bias.copy_(sol[-1])
    lam = float(torch.linalg.eigvalsh(X1.T @ X1 / len(x))[-1])             # H = I_k ⊗ X̃ᵀX̃/n
    s = loss_surface(model, x, y, directions="hessian", ndim=1, loss="mse", resolution=5, span=0.5)
    a = s.coords[0]
    assert torch.allclose(s.loss - s.center_loss, 0.5 * lam * a ** 2, rtol=1e-7, atol=1e-12)


def _conv_bn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 3, 5), nn.BatchNorm1d(3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 8, 4)).double()


def test_filter_normalization_matches_filter_norms_and_zeroes_bias_and_batchnorm():
    model = _conv_bn()
    D = filter_normalized_directions(model, n=2, seed=5)
    assert D.shape == (2, flatten_params(model).numel())
    shapes = param_shapes(model)
    weights = dict(model.named_parameters())
    for d in D:
        parts = unflatten(d, shapes)
        for name, shape in shapes:
            if len(shape) == 1:                                            # conv/linear bias, BN γ and β
                assert torch.count_nonzero(parts[name]) == 0, name
            else:                                                          # conv: output channel; linear: row
                got = parts[name].reshape(shape[0], -1).norm(dim=1)
                want = weights[name].detach().reshape(shape[0], -1).norm(dim=1)
                assert torch.allclose(got, want, rtol=1e-12), name
    assert torch.equal(D, filter_normalized_directions(model, n=2, seed=5))
    assert not torch.equal(D, filter_normalized_directions(model, n=2, seed=6))
    assert not torch.allclose(D[0], D[1])


def test_vmapped_surface_equals_point_loop_and_leaves_the_model_alone():
    model = _conv_bn()
    torch.manual_seed(1)
    x, y = torch.randn(16, 1, 12, dtype=torch.float64), torch.randint(0, 4, (16,))
    model.eval()
    with torch.no_grad():
        model[1].running_mean.add_(0.3)                                    # nontrivial BN statistics
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = loss_surface(model, x, y, resolution=6, seed=2, chunk=7)        # chunks of 7 over 36 points
    slow = loss_surface(model, x, y, resolution=6, seed=2, vectorized=False)
    assert fast.vectorized and not slow.vectorized
    assert torch.allclose(fast.loss, slow.loss, rtol=1e-13, atol=0)
    assert torch.equal(fast.error, slow.error)
    assert not model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    model.train()
    loss_surface(model, x, y, resolution=2, seed=2)
    assert model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_interpolation_is_the_exact_parabola_with_zero_barrier_on_a_convex_loss():
    model, x, y = _linear(2)
    a = flatten_params(model)
    b = a + torch.randn(a.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    it = interpolate(model, x, y, a, b, points=11, t_min=-0.5, t_max=1.5, loss="mse")
    La, Lb = (float(_quadratic_loss(model, x, y, t)) for t in (a, b))
    dm = nn.Linear(4, 2).double()
    with torch.no_grad():
        dm.weight.copy_((b - a)[:8].reshape(2, 4))
        dm.bias.copy_((b - a)[8:])
    curv = float((dm(x) ** 2).sum(1).mean())                               # (b−a)ᵀH(b−a)
    want = (1 - it.ts) * La + it.ts * Lb - 0.5 * it.ts * (1 - it.ts) * curv
    assert torch.allclose(it.loss, want, rtol=1e-12, atol=1e-12)
    assert abs(it.barrier) <= 1e-12
    assert it.ts[0] == -0.5 and it.ts[-1] == 1.5 and (it.ts == 0).any() and (it.ts == 1).any()


class Ring(nn.Module):
    """f(x) = ‖θ‖²·x: with x = y = 1 the MSE is ½(‖θ‖² − 1)², zero on the unit circle."""

    def __init__(self, theta):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(theta, dtype=torch.float64))

    def forward(self, x):
        return (self.theta ** 2).sum() * x


def test_bezier_curve_between_two_minima_has_a_lower_barrier_than_the_line():
    model = Ring([1.0, 0.0]).eval()
    x = y = torch.ones(1, 1, dtype=torch.float64)
    a, b = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-0.6, 0.8], dtype=torch.float64)
    c = bezier_curve(model, x, y, a, b, steps=300, lr=0.05, loss="mse", seed=0)
    # The chord's closest point to the origin has ‖θ‖² = cos²(half the 126.87° angle) = 0.2.
    assert math.isclose(c.line_barrier, 0.5 * 0.8 ** 2, rel_tol=1e-9)
    assert c.barrier < 0.05 * c.line_barrier, (c.barrier, c.line_barrier)
    assert abs(float(c.loss[0])) < 1e-15 and abs(float(c.loss[-1])) < 1e-15   # endpoints fixed
    again = bezier_curve(model, x, y, a, b, steps=300, lr=0.05, loss="mse", seed=0)
    assert torch.equal(c.bend, again.bend)
    assert torch.equal(model.theta.detach(), torch.tensor([1.0, 0.0], dtype=torch.float64)) and not model.training


def test_bad_input_is_one_line():
    model, x, y = _linear()
    with pytest.raises(InvalidParameterError, match="The 'directions' parameter of loss_surface must be one of"):
        loss_surface(model, x, y, directions="uniform")
    with pytest.raises(InvalidParameterError, match=r"The 'points' parameter of loss_at_points must be a tensor"):
        loss_at_points(model, x, y, torch.zeros(3, 5))
    with pytest.raises(InvalidParameterError, match="The 'theta_b' parameter of interpolate"):
        interpolate(model, x, y, flatten_params(model), torch.zeros(3))
