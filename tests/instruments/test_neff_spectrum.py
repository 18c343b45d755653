"""N_eff over the whole Hessian spectrum against the exact eigendecomposition (float64)."""
import math

import pytest
import torch
from torch import nn

from petridish.data import mnist1d
from petridish.experiments.effective_parameters import EXPERIMENT, LANCZOS_TOL, N_PROBES, SLQ_ITERS
from petridish.instruments.functional import flat_loss
from petridish.instruments.neff_spectrum import neff_full_spectrum, neff_terms
from petridish.models import MLP

DEFAULT_K = EXPERIMENT.param("k").default          # 40


@pytest.fixture(scope="module")
def trained():
    """A 40-32-10 MLP (p = 1,642) trained to zero training error on 200 MNIST-1D examples, in
    float64, with its exact Hessian spectrum (torch.func.hessian + eigvalsh)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    ds = mnist1d(n_train=200, n_test=10)
    torch.manual_seed(0)
    model = MLP(40, 32, 1, 10).double()
    x, y = ds.x_train.double(), ds.y_train
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    f, theta = flat_loss(model, x, y)
    lam = torch.linalg.eigvalsh(torch.func.hessian(f)(theta.detach()))      # (1642,) ascending
    yield model, x, y, lam
    torch.set_num_threads(n)


@pytest.mark.parametrize("z", [1.0, 0.1])
def test_full_spectrum_neff_matches_the_exact_one_within_10_percent(trained, z):
    model, x, y, lam = trained
    exact = float(neff_terms(lam, z).sum())
    top_exact = float(neff_terms(lam.flip(0)[:DEFAULT_K], z).sum())
    assert lam.numel() == 1642 and top_exact < 0.8 * exact                   # truncation would miss > 20%
    e = neff_full_spectrum(model, x, y, z=z, k=DEFAULT_K, n_probes=N_PROBES, iters=SLQ_ITERS, seed=0,
                           tol=LANCZOS_TOL)                              # the experiment's settings
    # measured: 6.50 vs 6.46 (z = 1), 40.9 vs 40.5 (z = 0.1); 10% is the acceptance tolerance
    assert e.neff == pytest.approx(exact, rel=0.10), (e.neff, exact)
    assert abs(e.neff - exact) < 4 * e.stderr + 1e-3 * exact                 # and inside its own error bar
    # the top-k part is the exact top-k sum; the trace of the same quadrature is Hutchinson-accurate
    assert e.top == pytest.approx(top_exact, rel=1e-4)        # Ritz values to ~ tol² relative
    assert e.trace == pytest.approx(float(lam.sum()), abs=4 * e.trace_stderr)


def test_k_equal_to_p_is_exact_and_one_probe_has_no_stderr(trained):
    model, x, y, lam = trained
    small = nn.Linear(40, 3).double()                                        # p = 123
    t = nn.functional.one_hot(y % 3, 3).double()
    f, theta = flat_loss(small, x, t, loss="mse")
    exact = float(neff_terms(torch.linalg.eigvalsh(torch.func.hessian(f)(theta.detach())), 0.5).sum())
    e = neff_full_spectrum(small, x, t, z=0.5, k=123, loss="mse")
    assert e.remainder == 0 and e.neff == pytest.approx(exact, rel=1e-8)
    one = neff_full_spectrum(small, x, t, z=0.5, k=5, n_probes=1, loss="mse")
    assert math.isnan(one.stderr) and math.isfinite(one.neff)


def test_neff_terms_are_undefined_below_minus_z():
    out = neff_terms(torch.tensor([3.0, 0.0, -0.5, -1.0]), 1.0)
    assert out[:3].tolist() == pytest.approx([0.75, 0.0, -1.0]) and math.isnan(out[3])
