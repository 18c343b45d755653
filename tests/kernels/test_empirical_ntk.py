"""Empirical NTK against explicit Jacobian products, and finite networks against the
analytic kernels (Monte Carlo over inits, error shrinking with width)."""
import numpy as np
import pytest
import torch
from torch.func import functional_call

from petridish.errors import InvalidParameterError
from petridish.kernels import NTKMLP, empirical_ntk, mlp_kernels


def _explicit(model, x1, x2):
    """Theta via torch.autograd.functional.jacobian of the flat parameter vector."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(vec, x):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            params[n] = vec[i:i + s.numel()].reshape(s); i += s.numel()
        return functional_call(model, params, (x,)).reshape(-1)

    j1 = torch.autograd.functional.jacobian(lambda v: f(v, x1), flat)      # (n1*out, P)
    j2 = torch.autograd.functional.jacobian(lambda v: f(v, x2), flat)
    out = j1.shape[0] // x1.shape[0]
    return (j1 @ j2.T).reshape(x1.shape[0], out, x2.shape[0], out).permute(0, 2, 1, 3)


@pytest.mark.parametrize("mode", ["jacobian", "ntk-vp", "auto"])
def test_matches_explicit_jacobian_product(mode):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()
    x1, x2 = torch.randn(5, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    ref = _explicit(model, x1, x2)
    full = empirical_ntk(model, x1, x2, mode=mode, output="full")
    assert full.shape == (5, 3, 3, 3)
    torch.testing.assert_close(full, ref, rtol=1e-10, atol=1e-12)
    mean = empirical_ntk(model, x1, x2, mode=mode)
    torch.testing.assert_close(mean, ref.diagonal(dim1=2, dim2=3).mean(-1), rtol=1e-10, atol=1e-12)
    sym = empirical_ntk(model, x1, mode=mode)
    torch.testing.assert_close(sym, sym.T)


def test_wide_ntk_converges_to_analytic_with_width():
    x = torch.randn(8, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for param in ("ntk", "standard"):
        errs = {}
        for width in (16, 512):
            ana = mlp_kernels(x, depth=2, b_std=0.2, w_std=1.2, parameterization=param, width=width).ntk
            e = []
            for seed in range(3):
                net = NTKMLP(6, width, 2, w_std=1.2, b_std=0.2, parameterization=param, seed=seed,
                             dtype=torch.float64)
                emp = empirical_ntk(net, x, mode="jacobian")
                e.append(float(torch.linalg.norm(emp - ana) / torch.linalg.norm(ana)))
            errs[width] = np.mean(e)
        # relative error ~ c / sqrt(width): a 32x wider net should be ~5.7x closer
        assert errs[512] < 0.25, errs
        assert errs[512] < errs[16] / 2.5, errs


def test_output_covariance_over_inits_is_the_nngp():
    """Monte Carlo NNGP: the covariance of f(x) over 4000 random inits of an NTK-parameterized
    erf network (written out with stacked weights, independently of NTKMLP)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, dtype=torch.float64, generator=g)
    m, w, ws, bs = 4000, 64, 1.5, 0.3
    r = lambda *shape: torch.randn(*shape, dtype=torch.float64, generator=g)
    h = torch.erf(ws / np.sqrt(3) * torch.einsum("mwd,nd->mnw", r(m, w, 3), x) + bs * r(m, 1, w))
    h = torch.erf(ws / np.sqrt(w) * torch.einsum("mvw,mnw->mnv", r(m, w, w), h) + bs * r(m, 1, w))
    out = ws / np.sqrt(w) * torch.einsum("mw,mnw->mn", r(m, w), h) + bs * r(m, 1)        # (m, 5)
    emp = out.T @ out / m                                                                # E f = 0
    ana = mlp_kernels(x, depth=2, activation="erf", w_std=ws, b_std=bs).nngp
    # standard error of a second moment ~ sqrt((K_ii K_jj + K_ij^2) / m); 5 sigma plus O(1/width)
    se = torch.sqrt((ana.diagonal()[:, None] * ana.diagonal()[None, :] + ana ** 2) / m)
    assert torch.all((emp - ana).abs() < 5 * se + 0.03 * ana.diagonal().max())
    assert torch.linalg.norm(emp - ana) < 0.1 * torch.linalg.norm(ana)


def test_bad_mode_is_one_line_error():
    with pytest.raises(InvalidParameterError, match="'mode' parameter of empirical_ntk"):
        empirical_ntk(torch.nn.Linear(2, 1), torch.zeros(3, 2), mode="fast")


def test_one_wide_network_has_the_nngp_within_a_tolerance_shrinking_like_one_over_sqrt_width():
    """Given the hidden layers, the readout makes f Gaussian with covariance
    w^2 phi(h) phi(h')^T / width + b^2; as width grows this concentrates on the NNGP
    (law of large numbers over units), with relative error ~ c / sqrt(width)."""
    x = torch.randn(10, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ana = mlp_kernels(x, depth=2, w_std=1.3, b_std=0.2).nngp
    errs = {}
    for width in (32, 2048):
        e = []
        for seed in range(3):
            with torch.no_grad():
                net = NTKMLP(5, width, 2, w_std=1.3, b_std=0.2, seed=seed, dtype=torch.float64)
                h = x
                for layer in net.layers[:-1]:
                    h = net.phi(layer(h))                               # (10, width) last hidden layer
            emp = 1.3 ** 2 * h @ h.T / width + 0.2 ** 2
            e.append(float(torch.linalg.norm(emp - ana) / torch.linalg.norm(ana)))
        errs[width] = np.mean(e)
    for width, err in errs.items():        # measured c = err * sqrt(width) is 2-4 here; tolerance 6 / sqrt(width)
        assert err < 6.0 / np.sqrt(width), errs
    assert errs[2048] < errs[32] / 3, errs                              # sqrt(64) = 8x in theory


@pytest.mark.parametrize("b_std", [0.0, None])
def test_standard_parameterization_bias_and_fan_in_conventions(b_std):
    """Depth 0 (f = W x + b, standard parameterization) has the exact NTK x x'^T + 1 (bias
    present, b_std=0.0 included) or x x'^T (b_std=None): fan_in * K0 = x x'^T for the first
    layer; no randomness, so the empirical NTK of any net equals it. Deeper nets converge."""
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    bias = 0.0 if b_std is None else 1.0
    net = NTKMLP(4, 1, 0, b_std=b_std, parameterization="standard", seed=0, dtype=torch.float64)
    assert (net.layers[0].bias is None) == (b_std is None)
    torch.testing.assert_close(empirical_ntk(net, x), x @ x.T + bias, rtol=1e-12, atol=1e-12)
    ana = mlp_kernels(x, depth=0, b_std=b_std, parameterization="standard", width=7).ntk
    torch.testing.assert_close(ana, x @ x.T + bias, rtol=1e-12, atol=1e-12)
    width = 2048
    ana = mlp_kernels(x, depth=1, w_std=1.2, b_std=b_std, parameterization="standard", width=width).ntk
    net = NTKMLP(4, width, 1, w_std=1.2, b_std=b_std, parameterization="standard", seed=0, dtype=torch.float64)
    emp = empirical_ntk(net, x)
    # the fan_in * K term of the readout is O(width): the relative error is O(1/sqrt(width))
    assert float(torch.linalg.norm(emp - ana) / torch.linalg.norm(ana)) < 3.0 / np.sqrt(width)
