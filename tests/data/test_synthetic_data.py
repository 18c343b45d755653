"""Synthetic families and transformations, checked against their declared laws."""
import math

import pytest
import torch

import petridish.data as D
from petridish.errors import InvalidParameterError


@pytest.mark.parametrize("spectrum,kw", [("power", {"decay": 1.0}), ("spiked", {"spike": 5.0, "n_spikes": 2}),
                                         ("custom", {"eigenvalues": [3.0, 0.5, 1.0, 2.0]})])
def test_gaussian_linear_empirical_covariance_matches_the_declared_spectrum(spectrum, kw):
    ds = D.gaussian_linear(n_train=40000, n_test=10, dim=4, spectrum=spectrum, noise_std=0.3, seed=1, **kw)
    lam = torch.tensor(ds.meta["eigenvalues"], dtype=torch.float64)
    x = ds.x_train.double()
    cov = x.T @ x / x.shape[0]
    # sample variance of a N(0, λ) coordinate has relative sd √(2/n) ≈ 0.7%: allow 4%
    torch.testing.assert_close(cov.diagonal(), lam, rtol=0.04, atol=0)
    off = cov - torch.diag(cov.diagonal())
    assert float(off.abs().max()) < 0.04 * float(lam.max())
    beta = torch.tensor(ds.meta["beta"], dtype=torch.float64)
    assert abs(float(beta.norm()) - 1.0) < 1e-9
    resid = ds.y_train.double() - x @ beta
    assert abs(float(resid.std()) - 0.3) < 0.01        # ε ~ N(0, 0.3²)


def test_gaussian_linear_isotropic_and_errors():
    ds = D.gaussian_linear(n_train=5, n_test=3, dim=7, seed=0)
    assert ds.meta["eigenvalues"] == [1.0] * 7 and ds.meta["classes"] == 0
    assert ds.y_train.shape == (5,) and ds.y_train.dtype == torch.float32
    with pytest.raises(InvalidParameterError, match="The 'spectrum' parameter of gaussian_linear must be one of"):
        D.gaussian_linear(n_train=5, n_test=3, dim=7, spectrum="flat")
    with pytest.raises(InvalidParameterError, match="'eigenvalues'"):
        D.gaussian_linear(n_train=5, n_test=3, dim=2, spectrum="custom", eigenvalues=[1.0, -1.0])


def test_teacher_student_is_deterministic_and_labels_are_the_teachers_argmax():
    a = D.teacher_student(n_train=200, n_test=50, dim=6, teacher_width=8, teacher_depth=2, classes=3, seed=5)
    b = D.teacher_student(n_train=200, n_test=50, dim=6, teacher_width=8, teacher_depth=2, classes=3, seed=5)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    w = [torch.tensor(m, dtype=torch.float64) for m in a.meta["teacher"]]
    h = a.x_train.double()
    for m in w[:-1]:
        h = torch.relu(h @ m.T)
    assert torch.equal((h @ w[-1].T).argmax(1), a.y_train)     # noise_std = 0: exact
    reg = D.teacher_student(n_train=20, n_test=5, dim=3, noise_std=0.1, seed=0)
    assert reg.y_train.dtype == torch.float32 and reg.meta["classes"] == 0


def test_gaussian_mixture_means_and_balance():
    ds = D.gaussian_mixture(n_train=30000, n_test=10, dim=20, classes=3, separation=4.0, seed=2)
    means = torch.tensor(ds.meta["means"])
    assert torch.allclose(means.norm(dim=1), torch.full((3,), 4 / math.sqrt(2)), atol=1e-5)
    for c in range(3):
        xc = ds.x_train[ds.y_train == c].double()
        assert abs(xc.shape[0] / 30000 - 1 / 3) < 0.02
        assert float((xc.mean(0) - means[c].double()).abs().max()) < 0.06   # sd/√10⁴ = 0.01


def test_matrix_completion_partitions_entries_and_observes_the_truth():
    ds = D.matrix_completion(rows=12, cols=9, rank=2, observed_fraction=0.4, noise_std=0.0, seed=0)
    m = torch.tensor(ds.meta["matrix"], dtype=torch.float64)
    assert ds.x_train.dtype == torch.int64 and ds.x_train.shape[1] == 2
    assert ds.n_train == round(0.4 * 108) and ds.n_train + ds.n_test == 108
    flat = torch.cat([ds.x_train[:, 0] * 9 + ds.x_train[:, 1], ds.x_test[:, 0] * 9 + ds.x_test[:, 1]])
    assert torch.equal(flat.sort().values, torch.arange(108))
    torch.testing.assert_close(ds.y_train, m[ds.x_train[:, 0], ds.x_train[:, 1]].float())
    sv = torch.linalg.svdvals(m)
    assert float(sv[1]) > 0.1 and float(sv[2]) < 1e-10 * float(sv[0])    # exactly rank 2


def test_psd_matrix_completion_has_a_symmetric_mask_and_a_psd_truth():
    d = 20
    ds = D.matrix_completion(rows=d, cols=d, rank=3, observed_fraction=0.3, noise_std=0.1, seed=1, psd=True)
    m = torch.tensor(ds.meta["matrix"], dtype=torch.float64)
    torch.testing.assert_close(m, m.T)
    ev = torch.linalg.eigvalsh(m)
    assert float(ev[-3]) > 0.1 and float(ev[:-3].abs().max()) < 1e-10 * float(ev[-1])   # PSD, rank 3
    seen = torch.zeros(d, d, dtype=torch.bool)
    seen[ds.x_train[:, 0], ds.x_train[:, 1]] = True
    assert torch.equal(seen, seen.T) and int(seen.triu().sum()) == round(0.3 * d * (d + 1) / 2)
    assert ds.n_train + ds.n_test == d * d
    y = torch.zeros(d, d)
    y[ds.x_train[:, 0], ds.x_train[:, 1]] = ds.y_train
    torch.testing.assert_close(y, y.T)                      # one noisy value per mirrored pair
    assert 0.05 < float((y - m.float())[seen].std()) < 0.15
    with pytest.raises(ValueError, match="'cols' parameter of matrix_completion must be equal to rows"):
        D.matrix_completion(rows=4, cols=5, rank=1, observed_fraction=0.5, psd=True)


def test_label_noise_fraction_and_exact_corruption_mask():
    base = D.gaussian_mixture(n_train=8000, n_test=10, dim=2, classes=10, seed=0)
    noisy = D.label_noise(base, 0.3, seed=7)
    assert torch.equal(noisy.corrupted, noisy.y_train != base.y_train)
    frac = float(noisy.corrupted.float().mean())
    expect = 0.3 * (1 - 1 / 10)                        # the redraw may hit the true class
    assert abs(frac - expect) < 4 * math.sqrt(expect * (1 - expect) / 8000)
    assert noisy.meta["label_noise"] == 0.3 and torch.equal(noisy.y_test, base.y_test)
    assert base.corrupted is None and "label_noise" not in base.meta          # input untouched
    again = D.label_noise(base, 0.3, seed=7)
    assert torch.equal(again.y_train, noisy.y_train)
    with pytest.raises(InvalidParameterError, match="The 'p' parameter of label_noise must be a float >= 0 and <= 1"):
        D.label_noise(base, 1.5, seed=0)
    with pytest.raises(InvalidParameterError, match="classification"):
        D.label_noise(D.gaussian_linear(n_train=5, n_test=2, dim=2), 0.1, seed=0)


def test_subsample_shuffle_features_and_gaussian_inputs():
    base = D.label_noise(D.gaussian_mixture(n_train=500, n_test=40, dim=6, classes=3, seed=0), 0.5, seed=1)
    sub = D.subsample(base, 100, seed=3)
    assert sub.n_train == 100 and sub.meta["n_train"] == 100 and sub.corrupted.shape == (100,)
    rows = {tuple(r.tolist()) for r in base.x_train}
    assert all(tuple(r.tolist()) in rows for r in sub.x_train)
    sh = D.shuffle_features(base, seed=4)
    perm = sh.meta["feature_permutation"]
    assert sorted(perm) == list(range(6))
    assert torch.equal(sh.x_train, base.x_train[:, perm]) and torch.equal(sh.x_test, base.x_test[:, perm])
    big = D.gaussian_mixture(n_train=20000, n_test=5, dim=3, classes=2, separation=6.0, seed=0)
    g = D.gaussian_inputs(big, seed=0)
    assert torch.equal(g.y_train, big.y_train)
    torch.testing.assert_close(g.x_train.mean(0), big.x_train.mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(g.x_train.std(0), big.x_train.std(0), atol=0, rtol=0.03)


def test_load_dispatches_and_rejects_unknown_names():
    assert D.load("digits").x_train.shape[1] == 64
    assert float(D.load("digits").x_train.max()) <= 1.0
    assert D.load("gaussian-mixture", n_train=5, n_test=5, dim=2).meta["name"] == "gaussian-mixture"
    with pytest.raises(InvalidParameterError) as e:
        D.load("cifar")
    msg = str(e.value)
    assert "\n" not in msg and "'mnist1d'" in msg and "'matrix-completion'" in msg and "Got 'cifar'" in msg
