"""The minimum-nuclear-norm completion of a partially observed matrix (the oracle for implicit bias).

    minimize ‖X‖_*  subject to  X_ij = values_ij for every observed (i, j)          (psd=False)
    minimize tr X   subject to  X ⪰ 0 and X_ij = values_ij for every observed (i, j)  (psd=True)

The PSD form is the right oracle for gradient descent on X = UUᵀ, whose iterates are PSD
(Gunasekar et al. 2017). Method: ADMM on the split X = Z (Boyd et al. 2011, §5),

    X ← the projection of Z − W onto {X : X_Ω = b}         (overwrite the observed entries)
    X̂ = a·X + (1 − a)·Z                                     (over-relaxation, a = 1.6)
    Z ← prox_{‖·‖_*/ρ}(X̂ + W)                               (singular-value thresholding by 1/ρ;
                                                             for psd, eigenvalues λ − 1/ρ clipped at 0)
    W ← W + X̂ − Z,

with ρ rebalanced between the primal and dual residuals. It stops when both residuals are below
``tol`` relative to the scale of the observations; the returned matrix is the last Z with its
observed entries overwritten, so it agrees with the observations exactly, and its nuclear norm is
within O(tol) of the minimum (checked against cvxpy's interior-point SDP in the tests). ADMM is
fast (~100 iterations) when the minimizer is unique and well conditioned, as in recoverable
completion; on degenerate instances it can need many thousands: check ``converged``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from petridish.errors import check_number, invalid

OWNER = "min_nuclear_norm"
RELAX = 1.6          # ADMM over-relaxation (Boyd et al. 2011, §3.4.3): ~1.5x fewer iterations here


@dataclass(frozen=True)
class NuclearNormResult:
    matrix: np.ndarray          # (d1, d2) float64, equal to ``values`` on the mask
    nuclear_norm: float         # ‖matrix‖_* (= its trace when psd)
    iterations: int
    converged: bool             # both ADMM residuals reached ``tol`` within ``max_iter``
    residual: float             # the larger relative residual at the end


def min_nuclear_norm(values, mask, *, psd: bool = False, tol: float = 1e-7,
                     max_iter: int = 20_000) -> NuclearNormResult:
    """The minimum-nuclear-norm (or, with ``psd``, minimum-trace PSD) matrix agreeing with the
    observations.

    * ``values`` (d1, d2) array-like, read only where ``mask`` is True;
    * ``mask`` (d1, d2) bool array; with ``psd`` the matrix must be square and an observation
      of (i, j) also fixes (j, i), so a pair observed twice must agree;
    * ``tol``: relative ADMM residual at which to stop (1e-7 gives ~1e-6 relative in the norm).
    """
    b = np.asarray(values, dtype=np.float64)
    m = np.asarray(mask)
    if b.ndim != 2:
        raise invalid("values", OWNER, "a 2-D array (d1, d2)", f"shape {b.shape}")
    if m.shape != b.shape or m.dtype != np.bool_:
        raise invalid("mask", OWNER, f"a bool array of shape {b.shape}", f"{m.dtype} array of shape {m.shape}")
    if not m.any():
        raise invalid("mask", OWNER, "a bool array with at least one True entry", "no observed entry")
    if not np.isfinite(b[m]).all():
        raise invalid("values", OWNER, "finite wherever mask is True", "a non-finite observed value")
    tol = check_number(tol, "tol", OWNER, low=0, low_open=True)
    max_iter = check_number(max_iter, "max_iter", OWNER, kind=int, low=1)
    b = np.where(m, b, 0.0)
    if psd:
        if b.shape[0] != b.shape[1]:
            raise invalid("values", OWNER, "a square array when psd=True", f"shape {b.shape}")
        both = m & m.T
        if np.abs(np.where(both, b - b.T, 0.0)).max() > 1e-12 * max(1.0, np.abs(b).max()):
            raise invalid("values", OWNER, "symmetric on entries observed as both (i, j) and (j, i) when psd=True",
                          "an asymmetric pair")
        b = np.where(m, b, b.T)              # an observation of (i, j) fixes (j, i)
        m = m | m.T
    return _admm(b, m, psd, tol, max_iter)


def _prox(a: np.ndarray, thresh: float, psd: bool) -> np.ndarray:
    if psd:
        lam, q = np.linalg.eigh((a + a.T) / 2)
        lam = np.maximum(lam - thresh, 0.0)
        return (q * lam) @ q.T
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    s = np.maximum(s - thresh, 0.0)
    return (u * s) @ vt


def _norm(x: np.ndarray, psd: bool) -> float:
    if psd:
        return float(np.abs(np.linalg.eigvalsh((x + x.T) / 2)).sum())
    return float(np.linalg.svd(x, compute_uv=False).sum())


def _admm(b: np.ndarray, m: np.ndarray, psd: bool, tol: float, max_iter: int) -> NuclearNormResult:
    scale = max(float(np.linalg.norm(b)), 1e-300)
    z = b.copy()
    w = np.zeros_like(b)                 # scaled dual variable
    rho = 1.0 / max(float(np.abs(b[m]).max()), 1e-300) if m.any() else 1.0
    res, it, ok = np.inf, 0, False
    for it in range(1, max_iter + 1):
        x = np.where(m, b, z - w)        # projection onto {X_Ω = b}
        z_old = z
        xh = RELAX * x + (1 - RELAX) * z
        z = _prox(xh + w, 1.0 / rho, psd)
        w += xh - z
        r = float(np.linalg.norm(x - z)) / scale                  # primal residual
        s = float(np.linalg.norm(z - z_old)) / scale               # dual residual / ρ
        res = max(r, s)
        if res < tol:
            ok = True
            break
        if it % 10 == 0:                 # residual balancing (Boyd et al. 2011, §3.4.1)
            if r > 10 * s:
                rho *= 2.0
                w /= 2.0
            elif s > 10 * r:
                rho /= 2.0
                w *= 2.0
    out = np.where(m, b, z)
    if psd:
        out = (out + out.T) / 2
    return NuclearNormResult(out, _norm(out, psd), it, ok, res)
