"""The one loss module (``petridish.losses``): MSE is ½·(1/n)·Σᵢ‖f(xᵢ) − yᵢ‖², the NTK
convention, and training, evaluation and the instruments compute the same number."""
import pytest
import torch
from torch.func import hessian

from petridish.instruments.functional import flat_loss
from petridish.losses import loss_value, mse_output_grad, per_example
from petridish.models import Linear
from petridish.train import evaluate, train


def test_mse_is_half_the_summed_squared_error_averaged_over_examples():
    g = torch.Generator().manual_seed(0)
    out, y = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    want = sum(0.5 * float(((out[i] - y[i]) ** 2).sum()) for i in range(7)) / 7       # the definition, by hand
    assert float(loss_value(out, y, "mse")) == pytest.approx(want, rel=1e-14)
    # F.mse_loss averages over outputs too: ours is k/2 times it (k = 3)
    assert float(loss_value(out, y, "mse")) == pytest.approx(1.5 * float(torch.nn.functional.mse_loss(out, y)), rel=1e-14)
    labels = torch.tensor([0, 2, 1, 1, 0, 2, 2])                 # integer labels: one-hot targets
    onehot = torch.nn.functional.one_hot(labels, 3).double()
    assert float(loss_value(out, labels, "mse")) == pytest.approx(float(loss_value(out, onehot, "mse")), rel=1e-14)
    # the output gradient the fast path writes by hand equals autograd's
    o = out.clone().requires_grad_()
    loss_value(o, y, "mse").backward()
    torch.testing.assert_close(o.grad, mse_output_grad(out, y), rtol=1e-14, atol=0)


def test_ce_is_an_alias_of_cross_entropy_and_per_example_keeps_members():
    g = torch.Generator().manual_seed(1)
    out, y = torch.randn(2, 5, 4, generator=g, dtype=torch.float64), torch.randint(0, 4, (2, 5), generator=g)
    pe = per_example(out, y, "ce")
    assert pe.shape == (2, 5)
    for k in range(2):
        torch.testing.assert_close(pe[k].mean(), torch.nn.functional.cross_entropy(out[k], y[k]))
        torch.testing.assert_close(loss_value(out[k], y[k], "cross_entropy"), pe[k].mean())


def test_hessian_of_a_linear_model_is_the_ntk_convention():
    """½·mean‖Wx − y‖² on k outputs: the Hessian is I_k ⊗ XᵀX/n (not 2/(k)·that, as with F.mse_loss)."""
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(20, 4, generator=g, dtype=torch.float64), torch.randn(20, 3, generator=g, dtype=torch.float64)
    model = Linear(4, 3, bias=False).double()
    f, theta = flat_loss(model, x, y, loss="mse")
    h = hessian(f)(theta)
    torch.testing.assert_close(h, torch.kron(torch.eye(3, dtype=torch.float64), x.T @ x / 20), rtol=1e-12, atol=1e-12)


def test_training_evaluation_and_instruments_report_the_same_loss():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(30, 4, generator=g), torch.randn(30, 2, generator=g)
    torch.manual_seed(0)
    model = Linear(4, 2)
    f, theta = flat_loss(model, x, y, loss="mse")
    instrument = float(f(theta))
    evaluated = float(evaluate(model, x, y, "mse")["loss"])
    res = train(model, x, y, optimizer="gd", lr=1e-9, steps=1, loss="mse")
    assert evaluated == pytest.approx(instrument, rel=1e-6)
    assert float(res.loss_history[0]) == pytest.approx(instrument, rel=1e-6)
