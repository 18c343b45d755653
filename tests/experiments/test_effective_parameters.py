"""effective-parameters: its instruments against exact oracles, and the phenomenon on a small quick run."""
import math

import matplotlib
import pytest
import torch
from torch import nn

from petridish.data import mnist1d
from petridish.experiments.effective_parameters import (EXPERIMENT, hessian_neff, random_features, ridge_fit,
                                                        rf_features_for)
from petridish.instruments import effective_dimension, ridge_dof
from petridish.instruments.functional import flat_loss
from petridish.lab.sweep import run_sweep
from petridish.models import MLP

matplotlib.use("Agg")


@pytest.fixture
def one_thread():
    # tiny tensors: threads only add overhead (and contention on a shared 2-core box)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def small():
    return mnist1d(n_train=120, n_test=10)


def test_lanczos_top_eigenvalues_match_exact_hessian(small, one_thread):
    # a briefly trained tiny MLP (p = 40·5 + 5 + 5·10 + 10 = 265) so the Hessian is not at init
    torch.manual_seed(0)
    model = MLP(40, 5, 1, 10).double()
    x, y = small.x_train.double(), small.y_train
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(50):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    f, theta = flat_loss(model, x, y)
    exact = torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, theta)).flip(0)   # descending
    m = hessian_neff(model, x, y, k=12, z=0.5, seed=3)
    top = torch.tensor(m["hessian_eigenvalues"], dtype=torch.float64)
    torch.testing.assert_close(top, exact[:12], rtol=1e-5, atol=1e-6 * float(exact[0]))
    # N_eff from the top k is the exact sum over those k, and a lower bound of the full-spectrum value
    lam = exact.clamp_min(0)
    assert math.isclose(m["neff"], float((lam[:12] / (lam[:12] + 0.5)).sum()), rel_tol=1e-6)
    assert m["neff"] <= float((lam / (lam + 0.5)).sum()) + 1e-9


def test_ridge_dof_matches_explicit_smoother_and_svd(small, one_thread):
    lam = 1e-2
    t = nn.functional.one_hot(small.y_train, 10).double()
    for n_features in (30, 400):                                   # p < n and p > n (n = 120)
        phi = random_features(small.x_train, n_features, seed=1)   # (120, F + 1)
        S = phi @ torch.linalg.solve(phi.T @ phi + lam * torch.eye(phi.shape[1], dtype=phi.dtype), phi.T)
        s = torch.linalg.svdvals(phi)
        closed = float((s ** 2 / (s ** 2 + lam)).sum())
        assert math.isclose(ridge_dof(phi, lam), float(torch.trace(S)), rel_tol=1e-8)
        assert math.isclose(ridge_dof(phi, lam), closed, rel_tol=1e-10)
        # the fitted model is the smoother whose trace is reported: ŷ = S y
        torch.testing.assert_close(phi @ ridge_fit(phi, small.y_train, lam), S @ t, rtol=1e-6, atol=1e-8)


def test_hessian_neff_of_linear_model_is_smoother_dof(small, one_thread):
    # squared loss, linear in θ: H = I_10 ⊗ ΦᵀΦ/n, so N_eff(z = λ/n) = 10·tr(S) (Maddox et al. §4).
    phi = random_features(small.x_train, 7, seed=2)[:, :-1]              # (120, 7), bias via nn.Linear
    lin = nn.Linear(7, 10).double()
    t = nn.functional.one_hot(small.y_train, 10).double()
    lam, n = 0.05, phi.shape[0]
    f, theta = flat_loss(lin, phi, t, loss="mse")
    eig = torch.linalg.eigvalsh(torch.func.hessian(f)(theta))           # (80,)
    ones = torch.cat([phi, torch.ones(n, 1, dtype=phi.dtype)], 1)
    assert math.isclose(effective_dimension(eig, lam / n), 10 * ridge_dof(ones, lam), rel_tol=1e-8)


def test_rf_parameter_count_matches_mlp():
    for w in (4, 64, 1024):
        mlp = 41 * w + (w + 1) * 10
        assert abs(10 * (rf_features_for(w) + 1) - mlp) <= 5


@pytest.fixture(scope="module")
def quick():
    n = torch.get_num_threads()
    torch.set_num_threads(min(n, 2))
    res = run_sweep("effective-parameters", quick=True, overrides={"width": [4, 16, 256], "n_train": 300},
                    store="memory", progress=False)
    torch.set_num_threads(n)
    return res


def test_neff_far_below_parameter_count_and_falls_past_interpolation(quick):
    assert all(c.status == "done" for c in quick.cells)
    v = quick.analysis.values
    assert v["params"] == [214, 826, 13066]
    assert v["train_error"][-1] <= 0.01 < v["train_error"][0]        # widest interpolates, narrowest cannot
    # the widest net determines < 1% of its parameters
    assert v["neff_at_largest"] < 0.01 * v["params"][-1], v["neff"]
    # N_eff is not monotone in the parameter count: it peaks before the widest net and drops >= 10%
    assert v["neff_peak_width"] != 256 and v["neff_at_largest"] <= 0.9 * v["neff_peak"], v["neff"]
    assert all(c.metrics["lanczos_converged"] for c in quick.cells)


def test_ridge_dof_saturates_below_n(quick):
    v = quick.analysis.values
    n = 300
    # random features: parameters per class grow past 4n while tr(S) stays below n (by >= 3%) and,
    # from the middle width on, grows by less than a quarter of the parameters added per class
    assert v["rf_params"][-1] / 10 > 4 * n and v["rf_dof_at_largest"] < 0.97 * n, v["rf_dof"]
    assert v["rf_dof"][-1] - v["rf_dof"][1] < 0.25 * (v["rf_params"][-1] - v["rf_params"][1]) / 10, v["rf_dof"]
    assert v["rf_dof"][0] == pytest.approx(v["rf_params"][0] / 10, rel=0.01)   # F << n: every feature counts
    assert 40 < v["linear_dof"] <= 41


def test_analysis_and_figure(quick):
    a = quick.analysis
    assert set(a.values["correlations"]) >= {"params", "neff", "rf_params", "rf_dof"}
    assert any("N_eff peaks at" in f for f in a.findings) and any("tr(S)" in f for f in a.findings)
    import matplotlib.pyplot as plt
    fig = plt.figure()
    EXPERIMENT.plot(quick.cells, fig)
    assert len(fig.axes) == 5          # four panels + the parameter-count twin axis
    plt.close(fig)
