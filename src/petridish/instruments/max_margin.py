"""The hard-margin separator through the origin: the direction that GD (ℓ2), coordinate descent (ℓ1)
and sign descent (ℓ∞) pick on separable data (Soudry et al. 2018; Gunasekar et al. 2018).

    maximize over ‖w‖ ≤ 1:  min_i y_i x_iᵀw     ⇔     minimize ‖w‖  subject to  y_i x_iᵀw ≥ 1

* ``norm=2``: a least-distance program, solved exactly by Lawson & Hanson's reduction to
  non-negative least squares (1974, ch. 23): with G = diag(y) X and E = [Gᵀ; 1ᵀ] (d+1, n),
  solve min_{u ≥ 0} ‖Eu − e_{d+1}‖; the residual r is zero iff the data are not separable,
  and otherwise w = −r[:d] / r[d].
* ``norm=1``: a linear program in w = p − q (p, q ≥ 0), minimize 1ᵀ(p + q);
* ``norm="inf"``: a linear program, minimize t subject to −t ≤ w_j ≤ t;
  both by ``scipy.optimize.linprog`` (HiGHS). When the ℓ1/ℓ∞ optimum is not unique, one
  optimal vertex is returned.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linprog, nnls

from petridish.errors import PetridishError, invalid

OWNER = "max_margin_direction"
NORMS = (1, 2, "inf")


class NotSeparableError(PetridishError, ValueError):
    """The data admit no separator through the origin."""


def max_margin_direction(X, y, *, norm=2) -> np.ndarray:
    """Unit (ℓ2) vector (d,) along the ``norm``-max-margin separator through the origin.

    ``X`` (n, d); ``y`` (n,) in {−1, +1}. Raises a one-line error when not separable.
    """
    x = np.asarray(X, dtype=np.float64)
    lab = np.asarray(y, dtype=np.float64)
    if isinstance(norm, bool) or norm not in NORMS:
        raise invalid("norm", OWNER, "1, 2 or 'inf'", norm)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise invalid("X", OWNER, "a 2-D array (n, d) with n, d >= 1", f"shape {x.shape}")
    if lab.shape != (x.shape[0],) or not np.isin(lab, (-1.0, 1.0)).all():
        raise invalid("y", OWNER, f"an array of shape ({x.shape[0]},) with values in {{-1, +1}}",
                      f"shape {lab.shape}" if lab.shape != (x.shape[0],) else "other values")
    if not np.isfinite(x).all():
        raise invalid("X", OWNER, "finite", "a non-finite entry")
    g = lab[:, None] * x                                   # (n, d): rows y_i x_i
    w = _l2(g) if norm == 2 else _lp(g, norm)
    return w / np.linalg.norm(w)


def _not_separable(n: int) -> NotSeparableError:
    return NotSeparableError(f"The data given to {OWNER} are not linearly separable through the origin "
                             f"(no w with y_i x_iᵀw > 0 for all {n} points).")


def _l2(g: np.ndarray) -> np.ndarray:
    n, d = g.shape
    s = float(np.abs(g).max()) or 1.0
    e = np.vstack([g.T / s, np.ones((1, n))])              # (d+1, n), scaled for conditioning
    f = np.zeros(d + 1)
    f[d] = 1.0
    u, _ = nnls(e, f, maxiter=50 * (n + d + 1))
    r = e @ u - f                                          # (d+1,)
    if abs(r[d]) < 1e-10 or np.linalg.norm(r[:d]) < 1e-12:
        raise _not_separable(n)
    w = -r[:d] / r[d]
    if (g @ w).min() <= 0:
        raise _not_separable(n)
    return w


def _lp(g: np.ndarray, norm) -> np.ndarray:
    n, d = g.shape
    if norm == 1:                                          # variables (p, q), w = p − q
        c = np.ones(2 * d)
        a_ub = np.hstack([-g, g])                          # −g(p − q) ≤ −1
        res = linprog(c, A_ub=a_ub, b_ub=-np.ones(n), bounds=[(0, None)] * (2 * d), method="highs")
        if res.status == 2:
            raise _not_separable(n)
        if res.status != 0:
            raise PetridishError(f"{OWNER}: the linear program failed ({res.message}).")
        return res.x[:d] - res.x[d:]
    # variables (w, t): minimize t, −t ≤ w_j ≤ t, g w ≥ 1
    c = np.zeros(d + 1)
    c[d] = 1.0
    eye = np.eye(d)
    a_ub = np.vstack([np.hstack([-g, np.zeros((n, 1))]),
                      np.hstack([eye, -np.ones((d, 1))]),
                      np.hstack([-eye, -np.ones((d, 1))])])
    b_ub = np.concatenate([-np.ones(n), np.zeros(2 * d)])
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * d + [(0, None)], method="highs")
    if res.status == 2:
        raise _not_separable(n)
    if res.status != 0:
        raise PetridishError(f"{OWNER}: the linear program failed ({res.message}).")
    return res.x[:d]


def normalized_margin(X, y, w, *, norm=2) -> float:
    """min_i y_i x_iᵀw / ‖w‖_norm: the margin of ``w`` measured in ``norm`` (dual geometry)."""
    if isinstance(norm, bool) or norm not in NORMS:
        raise invalid("norm", "normalized_margin", "1, 2 or 'inf'", norm)
    w = np.asarray(w, dtype=np.float64)
    g = np.asarray(y, dtype=np.float64)[:, None] * np.asarray(X, dtype=np.float64)
    size = np.linalg.norm(w, ord=np.inf if norm == "inf" else norm)
    return float((g @ w).min() / size)
