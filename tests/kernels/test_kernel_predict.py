"""GP posterior and gradient-flow ensemble predictions against independent oracles:
scikit-learn kernel ridge, scipy's matrix exponential, and simulated gradient descent."""
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.kernel_ridge import KernelRidge

from petridish.errors import InvalidParameterError
from petridish.kernels import mlp_kernels, nngp_predict, ntk_predict


def _problem(n=20, m=7, d=4, seed=0):
    g = np.random.default_rng(seed)
    x, z = g.normal(size=(n, d)), g.normal(size=(m, d))
    y = np.sin(x[:, 0]) + 0.1 * g.normal(size=n)
    kxx, kzx, kzz = (mlp_kernels(a, b, depth=2, b_std=0.1) for a, b in ((x, x), (z, x), (z, z)))
    return kxx, kzx, kzz, y


def test_nngp_mean_is_kernel_ridge_and_cov_is_schur_complement():
    kxx, kzx, kzz, y = _problem()
    pred = nngp_predict(kxx.nngp, kzx.nngp, y, kzz.nngp, diag_reg=1e-3, diag_reg_absolute_scale=True)
    kr = KernelRidge(alpha=1e-3, kernel="precomputed").fit(kxx.nngp.numpy(), y)
    np.testing.assert_allclose(pred.mean.numpy(), kr.predict(kzx.nngp.numpy()), rtol=1e-8, atol=1e-10)
    k = kxx.nngp.numpy() + 1e-3 * np.eye(20)
    cov = kzz.nngp.numpy() - kzx.nngp.numpy() @ np.linalg.solve(k, kzx.nngp.numpy().T)
    np.testing.assert_allclose(pred.cov.numpy(), cov, rtol=1e-8, atol=1e-10)
    var = nngp_predict(kxx.nngp, kzx.nngp, y, kzz.nngp.diagonal(), diag_reg=1e-3, diag_reg_absolute_scale=True)
    np.testing.assert_allclose(var.cov.numpy(), np.diag(cov), rtol=1e-8, atol=1e-10)


def test_ntk_infinite_time_is_kernel_regression_and_zero_time_is_prior():
    kxx, kzx, kzz, y = _problem()
    blocks = dict(nngp_train_train=kxx.nngp, nngp_test_train=kzx.nngp, nngp_test_test=kzz.nngp)
    inf = ntk_predict(kxx.ntk, kzx.ntk, y, t=None, **blocks)
    reg = kzx.ntk.numpy() @ np.linalg.solve(kxx.ntk.numpy(), y)
    np.testing.assert_allclose(inf.mean.numpy(), reg, rtol=1e-7, atol=1e-9)
    late = ntk_predict(kxx.ntk, kzx.ntk, y, t=1e9, **blocks)
    np.testing.assert_allclose(late.mean.numpy(), reg, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(late.cov.numpy(), inf.cov.numpy(), rtol=1e-5, atol=1e-8)
    zero = ntk_predict(kxx.ntk, kzx.ntk, y, t=0.0, **blocks)
    assert torch.all(zero.mean == 0)
    np.testing.assert_allclose(zero.cov.numpy(), kzz.nngp.numpy(), rtol=1e-12)


def test_ntk_finite_time_matches_scipy_expm():
    kxx, kzx, kzz, y = _problem()
    t, lr, n = 3.0, 0.5, 20
    pred = ntk_predict(kxx.ntk, kzx.ntk, y, t=[t, 2 * t], learning_rate=lr, nngp_train_train=kxx.nngp,
                       nngp_test_train=kzx.nngp, nngp_test_test=kzz.nngp)
    th, tz, k, kz, kzzn = (a.numpy() for a in (kxx.ntk, kzx.ntk, kxx.nngp, kzx.nngp, kzz.nngp))
    a = tz @ np.linalg.solve(th, np.eye(n) - scipy.linalg.expm(-lr * th * t / n))
    np.testing.assert_allclose(pred.mean[0].numpy(), a @ y, rtol=1e-7, atol=1e-9)
    cov = kzzn - a @ kz.T - kz @ a.T + a @ k @ a.T
    np.testing.assert_allclose(pred.cov[0].numpy(), cov, rtol=1e-7, atol=1e-9)
    assert pred.mean.shape == (2, 7)


def test_discrete_gd_on_linear_model_matches_monte_carlo():
    """A random-features linear model f = phi^T w (NNGP = NTK = Phi Phi^T), w0 ~ N(0, I),
    trained by full-batch GD on 1/(2n)|f - y|^2: mean and variance over 4000 inits."""
    g = np.random.default_rng(1)
    n, m, p, steps, lr = 12, 5, 30, 40, 0.9
    phi_x, phi_z = g.normal(size=(n, p)) / np.sqrt(p), g.normal(size=(m, p)) / np.sqrt(p)
    y = g.normal(size=n)
    th, tz, tzz = phi_x @ phi_x.T, phi_z @ phi_x.T, phi_z @ phi_z.T
    lr = lr * n / np.linalg.eigvalsh(th)[-1]             # 0.9 of the largest stable step / 2
    w = torch.randn(4000, p, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    px, pz, yt = torch.tensor(phi_x), torch.tensor(phi_z), torch.tensor(y)
    for _ in range(steps):
        w -= lr * ((w @ px.T - yt) @ px) / n
    out = w @ pz.T                                       # (4000, m)
    pred = ntk_predict(th, tz, y, t=steps, learning_rate=lr, discrete=True, nngp_train_train=th,
                       nngp_test_train=tz, nngp_test_test=tzz)
    sd = out.std(0)
    assert torch.all((out.mean(0) - pred.mean).abs() < 4 * sd / np.sqrt(4000) + 1e-12)
    np.testing.assert_allclose(out.var(0).numpy(), pred.cov.diagonal().numpy(), rtol=0.12)
    # the deterministic part (w0 = 0) is the mean exactly
    w0 = torch.zeros(p, dtype=torch.float64)
    for _ in range(steps):
        w0 -= lr * ((px @ w0 - yt) @ px) / n
    np.testing.assert_allclose((pz @ w0).numpy(), pred.mean.numpy(), rtol=1e-10, atol=1e-12)


def test_ill_conditioned_kernel_warns_and_stays_finite():
    x = np.repeat(np.random.default_rng(0).normal(size=(5, 3)), 2, axis=0)   # duplicated rows
    k = mlp_kernels(x, depth=1).nngp
    y = np.arange(10.0)
    with pytest.warns(RuntimeWarning, match="condition number.*diag_reg"):
        pred = nngp_predict(k, k, y)
    assert torch.isfinite(pred.mean).all()
    with pytest.warns(RuntimeWarning, match="diag_reg"):
        pred = ntk_predict(k, k, y, t=5.0)
    assert torch.isfinite(pred.mean).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nngp_predict(k, k, y, diag_reg=1e-3)             # regularized: no warning


def test_bad_inputs_one_line_errors():
    k = np.eye(3)
    with pytest.raises(InvalidParameterError, match="diag_reg"):
        nngp_predict(k, k, np.ones(3), diag_reg=-1.0)
    with pytest.raises(InvalidParameterError, match="k_test_train"):
        nngp_predict(k, np.ones((2, 4)), np.ones(3))
    with pytest.raises(InvalidParameterError, match="learning_rate"):
        ntk_predict(k, k, np.ones(3), t=1, learning_rate=10.0, discrete=True)
