"""``train``: against closed forms, torch.optim semantics and its own contract."""
import math

import pytest
import torch

import petridish.data as D
from petridish.errors import InvalidParameterError
from petridish.models import Linear, build_model
from petridish.train import lr_multiplier, train
from petridish.train.batches import batch_indices

pytestmark = pytest.mark.usefixtures("one_thread")


def test_full_batch_gd_on_least_squares_reaches_the_lstsq_solution():
    ds = D.gaussian_linear(n_train=200, n_test=10, dim=5, spectrum="power", decay=0.5, seed=0)
    torch.manual_seed(0)
    model = Linear(5, 1, bias=False)
    # mse = ½ mean (w·x − y)²: Hessian XᵀX/n, λ_max ≈ 1; lr 0.6 contracts every mode as 0.3 did under
    # the old mean (w·x − y)² (lr_new = lr_old·2/k, k = 1 output)
    res = train(model, ds.x_train, ds.y_train, optimizer="gd", lr=0.6, steps=3000, loss="mse")
    oracle = torch.linalg.lstsq(ds.x_train.double(), ds.y_train.double().unsqueeze(1)).solution.squeeze(1)
    torch.testing.assert_close(model.layers[0].weight.detach().double().squeeze(0), oracle, atol=1e-4, rtol=0)
    assert res.steps == 3000 and not res.diverged and res.loss_history.shape == (3000,)
    assert res.loss_history[-1] <= res.loss_history[0]


def test_one_sgd_momentum_step_by_hand():
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    y = torch.tensor([0.5, -1.0])
    model = Linear(2, 1, bias=False)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([[0.2, -0.1]]))
    w0 = torch.tensor([0.2, -0.1])
    lr, wd, mom = 0.1, 0.01, 0.9
    train(model, x, y, optimizer="gd", lr=lr, weight_decay=wd, momentum=mom, steps=2, loss="mse")
    w, buf = w0.clone(), torch.zeros(2)
    for _ in range(2):
        g = x.T @ (x @ w - y) / 2 + wd * w            # d/dw ½ mean (xw − y)² (n = 2) + coupled L2
        buf = mom * buf + g
        w = w - lr * buf
    torch.testing.assert_close(model.layers[0].weight.detach().squeeze(0), w)


def test_minibatch_order_comes_only_from_the_seed():
    a = batch_indices(10, 4, seed=3)
    first = [next(a) for _ in range(3)]
    g = torch.Generator().manual_seed(3)
    perm = torch.randperm(10, generator=g)
    assert [t.tolist() for t in first] == [perm[:4].tolist(), perm[4:8].tolist(), perm[8:].tolist()]
    assert next(batch_indices(10, None, seed=0)) is None


def test_target_loss_divergence_and_eval_history():
    ds = D.gaussian_mixture(n_train=300, n_test=200, dim=40, classes=10, separation=6.0, seed=0)
    model = build_model("mlp", d_in=40, d_out=10, seed=0, width=32, depth=1)
    res = train(model, ds.x_train, ds.y_train, optimizer="adam", lr=1e-2, batch_size=50, steps=400,
                target_loss=0.05, eval_sets={"test": (ds.x_test, ds.y_test)}, eval_every=20)
    assert res.reached_target and res.steps_to_target == res.steps < 400
    assert float(res.loss_history[-1]) <= 0.05 and float(res.loss_history[:-1].min()) > 0.05
    acc = res.eval_history["test"]["accuracy"]
    assert res.eval_steps[-1] == res.steps and acc.shape == (len(res.eval_steps),)
    with torch.no_grad():
        direct = (model(ds.x_test).argmax(1) == ds.y_test).double().mean()
    assert math.isclose(float(acc[-1]), float(direct), abs_tol=1e-12)
    bad = train(build_model("mlp", d_in=40, d_out=10, seed=0, width=32, depth=1), ds.x_train, ds.y_train,
                lr=1e5, momentum=0.9, batch_size=50, steps=100)
    assert bad.diverged and bad.steps < 100 and not math.isfinite(float(bad.loss_history[-1]))


def test_schedules():
    assert lr_multiplier("constant", 7, 10) == 1.0
    assert lr_multiplier("cosine", 0, 10) == 1.0 and abs(lr_multiplier("cosine", 5, 10) - 0.5) < 1e-12
    assert [lr_multiplier("step", s, 8) for s in (0, 3, 4, 5, 6, 7)] == [1, 1, 0.1, 0.1, 0.01, 0.01]
    assert [lr_multiplier("linear-warmup", s, 100, warmup_fraction=0.04) for s in (0, 1, 3, 50)] == \
        [0.25, 0.5, 1.0, 1.0]


@pytest.mark.parametrize("kwargs,match", [
    ({"lr": -0.1, "steps": 1}, "The 'lr' parameter of train must be a float > 0. Got -0.1."),
    ({"lr": 0.1}, "The 'steps' parameter of train must be given exactly when 'epochs' is not"),
    ({"lr": 0.1, "steps": 1, "optimizer": "lbfgs"}, "The 'optimizer' parameter of train must be one of"),
    ({"lr": 0.1, "steps": 1, "momentum": 1.0}, "The 'momentum' parameter of train must be a float >= 0 and < 1"),
    ({"lr": 0.1, "steps": 1, "optimizer": "gd", "batch_size": 2}, "'batch_size' parameter of train must be None"),
    ({"lr": 0.1, "steps": 1, "schedule": "exp"}, "The 'schedule' parameter of train must be one of"),
])
def test_bad_arguments_give_the_one_line_error(kwargs, match):
    x, y = torch.randn(6, 3), torch.randint(2, (6,))
    with pytest.raises(InvalidParameterError, match=match):
        train(Linear(3, 2), x, y, **kwargs)
