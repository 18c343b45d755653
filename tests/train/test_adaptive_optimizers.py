"""AdaGrad and RMSProp: ``train`` drives torch.optim's implementations, and the stacked ensemble's
own updates (StackedOptimizer) must reproduce them member by member, in float64 to 1e-10."""
import pytest
import torch

import petridish.data as D
from petridish.errors import InvalidParameterError
from petridish.models import build_model
from petridish.train import scale_weights, train, train_ensemble

from float_tolerance import assert_member_matches_solo

DS = D.gaussian_mixture(n_train=300, n_test=10, dim=40, classes=10, separation=3.0, seed=0)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("path", ["fast", "vmap"])
@pytest.mark.parametrize("optimizer,momentum,betas", [("adagrad", 0.0, (0.9, 0.999)),
                                                       ("rmsprop", 0.0, (0.9, 0.99)),
                                                       ("rmsprop", 0.5, (0.9, 0.9))])
def test_stacked_adaptive_updates_match_torch_optim(path, optimizer, momentum, betas):
    fn = lambda s: build_model("mlp", d_in=40, d_out=10, seed=s, width=20, depth=2).double()
    lrs, wds, scales = [1e-3, 3e-3, 1e-2], [0.0, 1e-3, 0.0], [1.0, 0.5, 1.0]
    common = dict(optimizer=optimizer, momentum=momentum, betas=betas, eps=1e-8, batch_size=64, steps=80,
                  loss="ce")
    x = DS.x_train.double()
    ens = train_ensemble(fn, x, DS.y_train, seeds=[0, 1, 2], lr=lrs, weight_decay=wds, init_scale=scales,
                         path=path, **common)
    assert ens.path == path
    for k in range(3):
        model = scale_weights(fn(ens.seeds[k]), scales[k])
        assert_member_matches_solo(ens, k, model, x, DS.y_train, lr=lrs[k], weight_decay=wds[k],
                                   seed=ens.seeds[k], **common)


@pytest.mark.parametrize("optimizer", ["adagrad", "rmsprop"])
def test_train_uses_the_textbook_update(optimizer):
    """One full-batch step by hand: AdaGrad's first step is lr·g/(|g| + eps) = lr·sign(g);
    RMSProp's is lr·g/(√(1−α)|g| + eps)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 1, bias=False).double()
    w0 = model.weight.detach().clone()
    x, y = torch.randn(20, 5, dtype=torch.float64), torch.randn(20, dtype=torch.float64)
    g = ((x @ w0[0] - y)[:, None] * x).mean(0)                     # ∇ of ½·mean (xᵀw − y)²
    train(model, x, y, optimizer=optimizer, lr=0.1, steps=1, loss="mse", betas=(0.9, 0.95), eps=1e-12)
    scale = 1.0 if optimizer == "adagrad" else (1 - 0.95) ** 0.5
    torch.testing.assert_close(model.weight.detach()[0], w0[0] - 0.1 * g / (scale * g.abs() + 1e-12),
                               rtol=1e-12, atol=1e-12)


def test_unknown_optimizer_names_the_new_choices():
    with pytest.raises(InvalidParameterError, match="'adam', 'adagrad', 'rmsprop'"):
        train(torch.nn.Linear(2, 1), torch.zeros(3, 2), torch.zeros(3), optimizer="lbfgs", lr=0.1, steps=1)
