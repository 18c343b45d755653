"""K-FAC against exact answers: Newton in one step where the Fisher is exactly Kronecker (linear least squares),
Kronecker factors against ones built from per-example activations and gradients (torch.func oracle), the
sampled-label factor against its closed-form expectation within its Monte Carlo error, and the one-line errors."""
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from petridish.errors import PetridishError
from petridish.train.kfac import KFAC

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64


def _lsq(n=200, d=6, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=F64) * torch.tensor([1, 2, 3, .5, .1, 4.], dtype=F64) + 1.0
    y = torch.randn(n, k, generator=g, dtype=F64)
    return x, y


@pytest.mark.parametrize("bias", [True, False])
def test_one_undamped_step_is_newton_on_linear_least_squares(bias):
    # ½ mean‖Wx + b − y‖²: Hessian = A ⊗ I = the Fisher (Gaussian noise), exactly Kronecker; K-FAC's
    # step ∇A⁻¹ with lr 1 is Newton's and lands on the least-squares solution from any start
    x, y = _lsq()
    torch.manual_seed(1)
    m = nn.Linear(6, 3, bias=bias).double()
    xa = torch.cat([x, torch.ones(200, 1, dtype=F64)], 1) if bias else x
    sol = torch.linalg.lstsq(xa, y).solution.T                      # (3, 7) or (3, 6)
    KFAC(m, loss="mse", lr=1.0, damping=0.0, fisher="exact").step(x, y)
    w = torch.cat([m.weight, m.bias[:, None]], 1) if bias else m.weight
    # condition number of A ≈ 2e3 (the 0.1-scaled, offset column): the solve loses ≈ 1e-13 relative
    assert float((w.detach() - sol).norm() / sol.norm()) < 1e-8


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def _oracle(model, x, y, fisher):
    """A and G per Linear layer from per-example quantities (torch.func), independent of K-FAC's hooks."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    h1 = torch.tanh(x @ params["0.weight"].T + params["0.bias"])
    ones = torch.ones(x.shape[0], 1, dtype=F64)
    acts = [torch.cat([x, ones], 1), torch.cat([h1, ones], 1)]
    A = [a.T @ a / x.shape[0] for a in acts]
    # gᵢ = ∂ℓᵢ/∂sᵢ is the per-example gradient of the layer's bias (∂s/∂b = I)
    bias_names = ["0.bias", "2.bias"]
    if fisher == "empirical":
        def li(p, xi, yi):
            return nn.functional.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])
        g = vmap(grad(li), in_dims=(None, 0, 0))(params, x, y)
        G = [g[b].T @ g[b] / x.shape[0] for b in bias_names]
    else:                                                          # exact: E_i[Jᵢᵀ (diag p − ppᵀ) Jᵢ]
        def fi(p, xi):
            return functional_call(model, p, (xi[None],))[0]
        J = vmap(jacrev(fi), in_dims=(None, 0))(params, x)            # J[b]: (n, 3, out_b)
        p = torch.softmax(model(x), 1).detach()
        lam = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]    # (n, 3, 3)
        G = [torch.einsum("nko,nkl,nlq->oq", J[b], lam, J[b]) / x.shape[0] for b in bias_names]
    return A, G


@pytest.mark.parametrize("fisher", ["empirical", "exact"])
def test_kronecker_factors_equal_the_per_example_oracle(fisher):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 4, generator=g, dtype=F64)
    y = torch.randint(0, 3, (64,), generator=g)
    model = _mlp()
    A, G = _oracle(model, x, y, fisher)                           # before the step changes the weights
    opt = KFAC(model, lr=0.1, damping=1e-3, fisher=fisher)
    opt.step(x, y)                                                # first update: the batch estimate itself
    for i in range(2):
        # float64 sums of 64 products: agreement to rounding, 1e-12 relative is ~1e3 ulps of headroom
        torch.testing.assert_close(opt.A[i], A[i], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(opt.G[i], G[i], rtol=1e-12, atol=1e-14)


def test_sampled_factor_matches_its_expectation_within_monte_carlo_error():
    # one label per example from softmax(f): G_sampled is an unbiased estimate of the exact G; the
    # per-example variance is enumerated exactly over the 3 labels, so the tolerance is 5 standard errors
    g = torch.Generator().manual_seed(4)
    n = 2000
    x = torch.randn(n, 4, generator=g, dtype=F64)
    y = torch.zeros(n, dtype=torch.long)
    model = _mlp(1)
    params = {k: v.detach() for k, v in model.named_parameters()}
    J = vmap(jacrev(lambda p, xi: functional_call(model, p, (xi[None],))[0]), in_dims=(None, 0))(params, x)
    p = torch.softmax(model(x), 1).detach()
    for i, b in enumerate(["0.bias", "2.bias"]):
        gc = torch.einsum("nko,nkc->nco", J[b], p[:, :, None] - torch.eye(3, dtype=F64)[None])  # g for label c
        outer = gc[:, :, :, None] * gc[:, :, None, :]                     # (n, c, o, o)
        mean_i = (p[:, :, None, None] * outer).sum(1)                     # E_c per example
        var_i = (p[:, :, None, None] * (outer - mean_i[:, None]) ** 2).sum(1)
        se = var_i.sum(0).sqrt() / n
        opt = KFAC(model, lr=1e-9, damping=1e-3, fisher="sampled", seed=7)
        opt.step(x, y)
        diff = (opt.G[i] - mean_i.mean(0)).abs()
        assert bool((diff <= 5 * se + 1e-15).all()), float((diff / se).max())
        # and the sampled estimate is not the exact one (it is random): a test that could not fail otherwise
        assert float(diff.max()) > 0


def test_inverses_refresh_every_T_steps_and_damped_kfac_trains():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(128, 4, generator=g, dtype=F64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    model = _mlp(2)
    opt = KFAC(model, lr=0.5, damping=1e-2, inverse_every=3, seed=0)
    seen, losses = [], []
    for _ in range(30):
        losses.append(opt.step(x, y))
        seen.append(id(opt._inv[0][0]))
    changes = [t for t in range(1, 30) if seen[t] != seen[t - 1]]
    assert changes == list(range(3, 30, 3))
    assert losses[-1] < 0.5 * losses[0]


class _WithNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x):
        return self.bn(self.fc(x))


@pytest.mark.parametrize("make,match", [
    (lambda: KFAC(_WithNorm()), "BatchNorm1d"),
    (lambda: KFAC(nn.Conv1d(1, 2, 3)), "Conv1d"),
    (lambda: KFAC(nn.Tanh()), "at least one nn.Linear"),
    (lambda: KFAC(_mlp(), damping=-1.0), "'damping' parameter of KFAC must be a float >= 0"),
    (lambda: KFAC(_mlp(), fisher="true"), "'fisher' parameter of KFAC"),
    (lambda: KFAC(_mlp(), inverse_every=0), "'inverse_every'"),
])
def test_bad_input_gives_a_one_line_error(make, match):
    with pytest.raises(PetridishError, match=match) as e:
        make()
    assert "\n" not in str(e.value)


def test_a_layer_fed_3d_input_is_refused_at_step():
    opt = KFAC(nn.Linear(4, 3).double(), loss="mse")
    with pytest.raises(PetridishError, match="2-D"):
        opt.step(torch.zeros(2, 5, 4, dtype=F64), torch.zeros(2, 5, 3, dtype=F64))
