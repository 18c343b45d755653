"""Closed-form predictions of infinitely wide networks.

``nngp_predict``: the exact GP posterior (Bayesian inference with the NNGP prior).
``ntk_predict``: the distribution of an infinite ensemble of networks (NTK parameterization)
trained by gradient flow / gradient descent on MSE, Lee et al. 2019 ("Wide neural networks
of any depth evolve as linear models under gradient descent", eqs. 15-16):

    A_t   = Theta_*X Theta^-1 (I - exp(-eta Theta t / n))               (n x m -> m)
    mu_t  = A_t y
    Sig_t = K_** - A_t K_X* - K_*X A_t^T + A_t K_XX A_t^T

Time convention: loss = 1/(2n) sum_i |f(x_i) - y_i|^2 (mean over training points, summed over
outputs: ``loss_scale='mean'``; for ``'sum'``, as in the paper's/neural-tangents' summed
loss 1/2 |f - y|^2, n is replaced by 1); ``t`` counts steps of size ``learning_rate``
(continuous time = learning_rate * t). ``discrete=True`` gives full-batch gradient *descent*
with that step: exp(-eta lambda t / n) becomes (1 - eta lambda / n)^t, exact for the
linearized network. ``t=None`` means t = infinity (kernel regression with the NTK).

Diagonal regularizer (neural-tangents' convention): ``diag_reg`` is added to the train-train
kernel's diagonal times its mean diagonal (or as is with ``diag_reg_absolute_scale=True``).
Ill-conditioned systems raise a ``warnings.warn`` naming the condition number; they are
solved by eigendecomposition with tiny eigenvalues clipped, never returning silent NaNs.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from petridish.device import CPU, target_device
from petridish.errors import check_choice, check_number, invalid

Tensor = torch.Tensor
_COND_WARN = 1e12       # float64: beyond this, solutions lose > 4 of 16 digits


class Prediction(NamedTuple):
    """mean: (m,) or (m, k); cov: (m, m) covariance, (m,) variances, or None
    (the same for every output column). With several times, a leading (T,) axis."""

    mean: Tensor
    cov: Tensor | None


def _t64(a: Any, name: str, owner: str, ndim: tuple[int, ...]) -> Tensor:
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a).detach()
    t = t.to(target_device(t), torch.float64)          # computed on the current device, returned on the CPU
    if t.ndim not in ndim:
        raise invalid(name, owner, f"an array with {' or '.join(map(str, ndim))} dimensions",
                      f"shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise invalid(name, owner, "finite (no NaN or inf)", "non-finite values")
    return t


def _regularize(k: Tensor, diag_reg: float, absolute: bool) -> Tensor:
    k = 0.5 * (k + k.T)                                # symmetrize rounding noise
    if diag_reg:
        scale = 1.0 if absolute else float(k.diagonal().mean())
        k = k + diag_reg * scale * torch.eye(k.shape[0], dtype=k.dtype, device=k.device)
    return k


def _warn_cond(cond: float, owner: str) -> None:
    warnings.warn(f"{owner}: the train-train kernel is ill-conditioned (condition number "
                  f"{cond:.3g}); results may be inaccurate. Raise diag_reg (e.g. 1e-6 to 1e-2).",
                  RuntimeWarning, stacklevel=3)


def _eigh(k: Tensor, owner: str) -> tuple[Tensor, Tensor]:
    """Eigendecomposition with non-positive / tiny eigenvalues reported and clipped."""
    evals, evecs = torch.linalg.eigh(k)
    top = float(evals[-1].clamp(min=0.0))
    low = float(evals[0])
    if top <= 0.0:
        raise invalid("k_train_train", owner, "a positive semi-definite kernel with a positive eigenvalue",
                      f"largest eigenvalue {top}")
    floor = top * torch.finfo(k.dtype).eps * k.shape[0]
    if low <= floor or top / low > _COND_WARN:
        _warn_cond(top / low if low > 0 else math.inf, owner)
    return evals.clamp(min=floor), evecs


def _solve(k: Tensor, rhs: Tensor, owner: str) -> Tensor:
    """k^-1 rhs for symmetric PSD k: Cholesky, else (warned) clipped eigendecomposition."""
    chol, info = torch.linalg.cholesky_ex(k)
    if int(info) == 0:
        d = chol.diagonal()
        cond_est = float((d.max() / d.min()) ** 2)       # a lower bound on cond(k)
        if cond_est > _COND_WARN:
            _warn_cond(cond_est, owner)
        return torch.cholesky_solve(rhs, chol)
    evals, evecs = _eigh(k, owner)                        # warns
    return evecs @ ((evecs.T @ rhs) / evals[:, None])


def nngp_predict(k_train_train: Any, k_test_train: Any, y_train: Any, k_test_test: Any = None, *,
                 diag_reg: float = 0.0, diag_reg_absolute_scale: bool = False) -> Prediction:
    """Exact GP posterior with prior covariance K.

    Shapes: k_train_train (n, n), k_test_train (m, n), y_train (n,) or (n, k),
    k_test_test (m, m) for the posterior covariance, (m,) for variances only, None for the
    mean only. Returns ``Prediction(mean, cov)`` in float64:
    mean = K_*X (K + reg I)^-1 y,  cov = K_** - K_*X (K + reg I)^-1 K_X*.
    """
    owner = "nngp_predict"
    kxx, kzx, y = _inputs(k_train_train, k_test_train, y_train, owner)
    diag_reg = check_number(diag_reg, "diag_reg", owner, low=0.0)
    kxx = _regularize(kxx, diag_reg, diag_reg_absolute_scale)
    y2 = y if y.ndim == 2 else y[:, None]
    rhs = torch.cat([y2, kzx.T], dim=1) if k_test_test is not None else y2
    sol = _solve(kxx, rhs, owner)
    mean = kzx @ sol[:, : y2.shape[1]]
    mean = mean if y.ndim == 2 else mean[:, 0]
    cov = None
    if k_test_test is not None:
        kzz = _t64(k_test_test, "k_test_test", owner, (1, 2))
        proj = sol[:, y2.shape[1]:]                        # (K + reg)^-1 K_X*, (n, m)
        cov = kzz - (kzx * proj.T).sum(1) if kzz.ndim == 1 else kzz - kzx @ proj
    return _on_cpu(mean, cov)


def _inputs(kxx: Any, kzx: Any, y: Any, owner: str) -> tuple[Tensor, Tensor, Tensor]:
    kxx = _t64(kxx, "k_train_train", owner, (2,))
    kzx = _t64(kzx, "k_test_train", owner, (2,))
    y = _t64(y, "y_train", owner, (1, 2))
    n = kxx.shape[0]
    if kxx.shape != (n, n) or kzx.shape[1] != n or y.shape[0] != n:
        raise invalid("k_test_train", owner, f"consistent with n = {n} training points "
                      "(k_train_train (n, n), k_test_train (m, n), y_train (n, ...))",
                      f"shapes {tuple(kxx.shape)}, {tuple(kzx.shape)}, {tuple(y.shape)}")
    return kxx, kzx, y


def ntk_predict(ntk_train_train: Any, ntk_test_train: Any, y_train: Any, *,
                t: float | Sequence[float] | None = None, learning_rate: float = 1.0,
                nngp_train_train: Any = None, nngp_test_train: Any = None, nngp_test_test: Any = None,
                diag_reg: float = 0.0, diag_reg_absolute_scale: bool = False,
                loss_scale: str = "mean", discrete: bool = False) -> Prediction:
    """Mean (and covariance, if the three NNGP blocks are given) of an infinite ensemble
    trained on MSE for time ``t`` (see the module docstring for the conventions).

    Shapes as in :func:`nngp_predict`; ``nngp_test_test`` (m, m) or (m,) for variances.
    ``t`` may be a number, None (infinity) or a sequence (then a leading time axis).
    At t = 0 the mean is 0 and the covariance is the prior K_**; at t = None the mean is
    kernel regression with the NTK.
    """
    owner = "ntk_predict"
    txx, tzx, y = _inputs(ntk_train_train, ntk_test_train, y_train, owner)
    learning_rate = check_number(learning_rate, "learning_rate", owner, low=0.0, low_open=True)
    check_choice(loss_scale, "loss_scale", owner, ("mean", "sum"))
    diag_reg = check_number(diag_reg, "diag_reg", owner, low=0.0)
    times = list(t) if isinstance(t, (list, tuple, np.ndarray, Tensor)) else [t]
    for s in times:
        if s is not None:
            check_number(float(s), "t", owner, kind=int if discrete else float, low=0.0)
    with_cov = nngp_test_test is not None
    if with_cov and (nngp_train_train is None or nngp_test_train is None):
        raise invalid("nngp_train_train", owner, "given together with nngp_test_train and nngp_test_test",
                      None)
    txx = _regularize(txx, diag_reg, diag_reg_absolute_scale)
    n = txx.shape[0]
    rate = learning_rate / (n if loss_scale == "mean" else 1)     # d f/dt = -rate Theta (f - y)
    if discrete:
        top = float(torch.linalg.eigvalsh(txx)[-1])
        if rate * top >= 2.0:
            raise invalid("learning_rate", owner, f"< {2.0 / (top * rate / learning_rate):.4g} "
                          "(gradient descent diverges above 2 / largest NTK eigenvalue)", learning_rate)
    finite = [s for s in times if s is not None]
    evals = evecs = None
    if finite:
        evals, evecs = _eigh(txx, owner)
    results = []
    for s in times:
        if s is None:                                  # A = Theta_*X Theta^-1
            a = _solve(txx, tzx.T, owner).T
        else:
            if discrete:
                base = 1.0 - rate * evals                      # in (-1, 1]; 1 - base^t, accurately
                steps = float(s)
                pos = -torch.expm1(steps * torch.log1p(-(rate * evals).clamp(max=1.0 - 1e-300)))
                factor = torch.where(base > 0, pos, 1.0 - base.pow(steps))
            else:
                factor = -torch.expm1(-rate * float(s) * evals)                # 1 - exp(-r lam t)
            a = ((tzx @ evecs) * (factor / evals)) @ evecs.T                   # (m, n)
        mean = a @ y
        cov = _ensemble_cov(a, nngp_train_train, nngp_test_train, nngp_test_test, owner) if with_cov else None
        results.append((mean, cov))
    if len(times) == 1 and not isinstance(t, (list, tuple, np.ndarray, Tensor)):
        return _on_cpu(*results[0])
    return _on_cpu(torch.stack([r[0] for r in results]),
                   None if not with_cov else torch.stack([r[1] for r in results]))


def _on_cpu(mean: Tensor, cov: Tensor | None) -> Prediction:
    return Prediction(mean.to(CPU), None if cov is None else cov.to(CPU))


def _ensemble_cov(a: Tensor, kxx: Any, kzx: Any, kzz: Any, owner: str) -> Tensor:
    """K_** - A K_X* - K_*X A^T + A K_XX A^T (full (m, m), or its diagonal if kzz is (m,))."""
    kxx = _t64(kxx, "nngp_train_train", owner, (2,))
    kzx = _t64(kzx, "nngp_test_train", owner, (2,))
    kzz = _t64(kzz, "nngp_test_test", owner, (1, 2))
    if kzz.ndim == 1:
        cross = (a * kzx).sum(1)
        return kzz - 2 * cross + ((a @ kxx) * a).sum(1)
    cross = a @ kzx.T
    return kzz - cross - cross.T + a @ kxx @ a.T
