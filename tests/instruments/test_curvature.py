"""GGN and Fisher operators against matrices built explicitly with torch.func (float64)."""
import pytest
import torch
from torch import nn
from torch.func import hessian, jacrev

from petridish.errors import InvalidParameterError
from petridish.instruments import curvature_eigenvalues, curvature_operator
from petridish.instruments.functional import flat_forward, flatten_params
from petridish.losses import loss_value, per_example

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(seed=0, n=7):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(n, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    return model, x, y


def _dense(op) -> torch.Tensor:
    """(p, p) by applying the operator to every basis vector."""
    eye = torch.eye(op.dim, dtype=torch.float64)
    return torch.stack([op(e) for e in eye], 1)


def _explicit_ggn(model, x, y, loss):
    fwd = flat_forward(model)
    theta = flatten_params(model)
    out = fwd(theta, x)                                                  # (n, k)
    J = jacrev(lambda th: fwd(th, x))(theta).reshape(out.numel(), -1)    # (n·k, p)
    H = hessian(lambda o: loss_value(o, y, loss))(out).reshape(out.numel(), out.numel())
    return J.T @ H @ J


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_ggn_equals_jt_hout_j(loss):
    model, x, y = _tiny()
    G = _dense(curvature_operator(model, x, y, kind="ggn", loss=loss, chunk=3))   # chunks: 3+3+1
    ref = _explicit_ggn(model, x, y, loss)
    assert torch.allclose(G, ref, atol=1e-10, rtol=0)
    assert torch.allclose(G, G.T, atol=1e-12)
    assert float(torch.linalg.eigvalsh(G)[0]) > -1e-10                   # PSD
    # The true Fisher (closed-form output Fisher) equals the GGN for these canonical-link losses.
    F = _dense(curvature_operator(model, x, y, kind="fisher", loss=loss))
    assert torch.allclose(F, ref, atol=1e-10, rtol=0)


def test_empirical_fisher_is_mean_of_gradient_outer_products():
    model, x, y = _tiny(1)
    fwd = flat_forward(model)
    theta = flatten_params(model)
    g = jacrev(lambda th: per_example(fwd(th, x), y, "cross_entropy"))(theta)   # (n, p)
    ref = g.T @ g / x.shape[0]
    E = _dense(curvature_operator(model, x, y, kind="empirical_fisher"))
    assert torch.allclose(E, ref, atol=1e-12, rtol=0)


def test_mini_batch_is_stated_seeded_and_exact_on_its_subset():
    model, x, y = _tiny(2, n=20)
    model.train()
    before = flatten_params(model).clone()
    full = curvature_operator(model, x, y)
    assert full.batch == "full batch (n=20)" and full.examples == 20
    mb = curvature_operator(model, x, y, batch_size=6, seed=3)
    assert mb.batch == "mini-batch of 6 of 20 (seed 3)" and mb.examples == 6
    idx = torch.randperm(20, generator=torch.Generator().manual_seed(3))[:6]
    assert torch.allclose(_dense(mb), _explicit_ggn(model, x[idx], y[idx], "cross_entropy"), atol=1e-10, rtol=0)
    spec = curvature_eigenvalues(model, x, y, k=3, batch_size=6, seed=3)
    exact = torch.linalg.eigvalsh(_dense(mb)).flip(0)[:3]
    assert torch.allclose(spec.eigenvalues, exact, rtol=1e-8, atol=1e-12)
    assert spec.batch == mb.batch and spec.kind == "ggn"
    again = curvature_eigenvalues(model, x, y, k=3, batch_size=6, seed=3)
    assert torch.equal(spec.eigenvalues, again.eigenvalues)
    assert model.training and torch.equal(flatten_params(model), before)


def test_bad_input_is_one_line():
    model, x, y = _tiny()
    with pytest.raises(InvalidParameterError, match="The 'kind' parameter of curvature_operator must be one of"):
        curvature_operator(model, x, y, kind="hessian2")
    with pytest.raises(InvalidParameterError, match="The 'batch_size' parameter of curvature_operator"):
        curvature_operator(model, x, y, batch_size=0)


def test_batchnorm_in_train_mode_keeps_its_running_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).double().train()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 3, (8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for kind in ("ggn", "fisher", "empirical_fisher"):
        op = curvature_operator(model, x, y, kind=kind)
        assert torch.isfinite(op(torch.ones(op.dim, dtype=torch.float64))).all()
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
