"""Warm-started sharpness tracking against exact Hessians (torch.func.hessian + eigvalsh)."""
import pytest
import torch
from torch import nn
from torch.func import hessian

from petridish.errors import InvalidParameterError
from petridish.instruments import SharpnessTracker, sharpness_trajectory
from petridish.instruments.functional import flat_loss, flatten_params

pytestmark = pytest.mark.usefixtures("one_thread")


def _trajectory(n_ck=5, every=3):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 4)).double()
    x, y = torch.randn(40, 5, dtype=torch.float64), torch.randint(0, 4, (40,))
    start = flatten_params(model).clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    cks = []
    for i in range(n_ck * every):
        if i % every == 0:
            cks.append(flatten_params(model).clone())
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    torch.nn.utils.vector_to_parameters(start, model.parameters())
    return model, x, y, cks


def _exact_top(model, x, y, theta, k):
    f, _ = flat_loss(model, x, y)
    return torch.linalg.eigvalsh(hessian(f)(theta)).flip(0)[:k]


def test_warm_started_trace_matches_exact_hessians_in_fewer_iterations():
    model, x, y, cks = _trajectory()
    model.train()
    before = flatten_params(model).clone()
    warm = sharpness_trajectory(model, x, y, cks, steps=[3 * i for i in range(len(cks))], k=3, tol=1e-7)
    cold = sharpness_trajectory(model, x, y, cks, k=3, tol=1e-7, warm=False)
    assert warm.steps == [0, 3, 6, 9, 12] and warm.eigenvalues.shape == (5, 3)
    assert warm.warm == [False, True, True, True, True] and not any(cold.warm)
    for i, th in enumerate(cks):
        exact = _exact_top(model, x, y, th, 3)
        assert torch.allclose(warm.eigenvalues[i], exact, rtol=1e-9), (i, warm.eigenvalues[i], exact)
        assert torch.allclose(cold.eigenvalues[i], exact, rtol=1e-9)
    assert all(warm.converged) and all(cold.converged)
    assert sum(warm.iterations[1:]) < sum(cold.iterations[1:]), (warm.iterations, cold.iterations)
    assert torch.equal(warm.lambda_max, warm.eigenvalues[:, 0])
    again = sharpness_trajectory(model, x, y, cks, k=3, tol=1e-7)
    assert torch.equal(again.eigenvalues, warm.eigenvalues)
    assert model.training and torch.equal(flatten_params(model), before)


def test_tracker_on_a_quadratic_gd_diverges_exactly_past_two_over_lambda_max():
    # Linear model + ½·mean MSE: H = I ⊗ XᵀX/n, constant; GD on the quadratic contracts the top
    # mode iff |1 − ηλ_max| < 1, i.e. η < 2/λ_max.
    torch.manual_seed(1)
    x, y = torch.randn(30, 3, dtype=torch.float64), torch.randn(30, 2, dtype=torch.float64)
    lam = float(torch.linalg.eigvalsh(x.T @ x / 30)[-1])
    for factor, diverges in ((0.98, False), (1.02, True)):
        model = nn.Linear(3, 2, bias=False).double()
        tracker = SharpnessTracker(x, y, k=1, every=50, loss="mse", tol=1e-10)
        eta = factor * 2 / lam
        opt = torch.optim.SGD(model.parameters(), lr=eta)
        losses = []
        for step in range(301):
            got = tracker.observe(step, model)
            if got is not None:
                assert abs(float(got[0]) - lam) <= 1e-8 * lam
            opt.zero_grad()
            loss = 0.5 * ((model(x) - y) ** 2).sum(1).mean()
            losses.append(float(loss.detach()))
            loss.backward()
            opt.step()
        t = tracker.trace()
        assert t.steps == [0, 50, 100, 150, 200, 250, 300]
        assert bool(((t.lambda_max * eta > 2) == diverges).all())
        assert (losses[-1] > 10 * losses[0]) == diverges, (factor, losses[0], losses[-1])


def test_bad_input_is_one_line():
    model, x, y, cks = _trajectory(n_ck=2)
    with pytest.raises(InvalidParameterError, match="The 'every' parameter of SharpnessTracker must be an int >= 1"):
        SharpnessTracker(x, y, every=0)
    with pytest.raises(InvalidParameterError, match="The 'steps' parameter of sharpness_trajectory"):
        sharpness_trajectory(model, x, y, cks, steps=[0])
