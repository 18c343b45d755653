"""Rank correlations (Spearman ρ, Kendall τ) with a CI and a permutation p-value.

* **p-value**: a permutation test of independence, exact (all n! orderings) for n ≤ 7 and
  Monte Carlo with 10,000 permutations beyond (with the +1 correction, so p is never 0).
* **CI**: on Fisher's z scale, z = atanh(r), then back-transformed. For n ≥ 20 the standard
  error of z is the **bootstrap** standard error over points (B = 2,000 resamples of pairs);
  for 5 ≤ n < 20 it is the analytic one: Bonett & Wright (2000), (1 + ρ²/2)/(n − 3), for
  Spearman; Fieller, Hartley & Pearson (1957), 0.437/(n − 4), for Kendall. Both reach
  95% ± 2% coverage on bivariate normal data at n = 20–50 (tests/lab/test_ranks.py).
* **Too few points**: a permutation test on n points cannot give p below 1/n! (one-sided) or
  2/n! (two-sided). With fewer points than the test needs to reach α, no trend can be called:
  ``rank_correlation`` returns a result whose ``reason`` says so, and the claim built on it
  reads "not measured". (Any monotone triple has ρ = ±1, so 3 points prove nothing.)
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from petridish.lab.stats import scipy_stats

EXACT_MAX_N = 7
N_PERM = 10_000
N_BOOT = 2_000
BOOTSTRAP_MIN_N = 20


@dataclass(frozen=True)
class RankCorrelation:
    method: str                              # "spearman" | "kendall"
    estimate: float | None
    ci: tuple[float, float] | None
    p: float | None                          # permutation p in the requested alternative
    n: int
    test: str                                # how the CI and p were obtained, for the claim
    reason: str | None = None                # why nothing was measured


def min_points(alternative: str = "two-sided", alpha: float = 0.05) -> int:
    """Smallest n at which a permutation test can reach p ≤ alpha."""
    n = 2
    while (1 if alternative != "two-sided" else 2) / math.factorial(n) > alpha:
        n += 1
    return n


def _stat(method: str, x: np.ndarray, y: np.ndarray) -> float:
    if method == "spearman":
        return float(scipy_stats().spearmanr(x, y).statistic)
    return float(scipy_stats().kendalltau(x, y).statistic)


def _null_stats(method: str, x: np.ndarray, y: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """The statistic under each row of ``perms`` (P, n) applied to y; vectorized for Spearman."""
    if method == "spearman":
        rank = scipy_stats().rankdata
        rx = rank(x) - (x.size + 1) / 2
        ry = (rank(y) - (y.size + 1) / 2)[perms]                                # (P, n)
        return (ry @ rx) / np.sqrt((rx ** 2).sum() * (ry ** 2).sum(axis=1))
    return _kendall_rows(np.broadcast_to(x, perms.shape), y[perms])


def _kendall_rows(xs: np.ndarray, ys: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Kendall τ-b of each row pair of (R, n) arrays, in chunks of (chunk, n, n) sign matrices.
    The signs are int8 and the counts integers (exact; 1.7x faster than float64 signs)."""
    out = np.empty(xs.shape[0])
    for a in range(0, xs.shape[0], chunk):
        sx, sy = _signs(xs[a:a + chunk]), _signs(ys[a:a + chunk])          # (c, n, n) in {-1, 0, 1}
        num = (sx * sy).sum((1, 2), dtype=np.int64)                         # concordant − discordant, ×2
        den = np.sqrt(np.count_nonzero(sx, axis=(1, 2)).astype(float) * np.count_nonzero(sy, axis=(1, 2)))
        out[a:a + chunk] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out


def _signs(v: np.ndarray) -> np.ndarray:
    """sign(v_i − v_j) of each row of (c, n), as (c, n, n) int8."""
    return (v[:, :, None] > v[:, None, :]).view(np.int8) - (v[:, :, None] < v[:, None, :]).view(np.int8)


def _permutation_p(method: str, x, y, r: float, alternative: str, seed: int, n_perm: int) -> tuple[float, str]:
    n = x.size
    exact = n <= EXACT_MAX_N
    if exact:
        perms = np.array(list(itertools.permutations(range(n))))
        how = f"exact permutation test over {len(perms)} orderings"
    else:
        g = np.random.default_rng(seed)
        perms = np.argsort(g.random((n_perm, n)), axis=1)
        how = f"permutation test ({n_perm} permutations)"
    null = _null_stats(method, x, y, perms)
    eps = 1e-12
    if alternative == "greater":
        k = np.sum(null >= r - eps)
    elif alternative == "less":
        k = np.sum(null <= r + eps)
    else:
        k = np.sum(np.abs(null) >= abs(r) - eps)
    if exact:
        return float(k / null.size), how
    return float((k + 1) / (null.size + 1)), how


def _ranks_rows(a: np.ndarray) -> np.ndarray:
    return scipy_stats().rankdata(a, axis=1)


def _bootstrap_z_se(method: str, x, y, seed: int) -> float:
    g = np.random.default_rng(seed)
    n = x.size
    idx = g.integers(0, n, size=(N_BOOT, n))
    if method == "spearman":
        rx, ry = _ranks_rows(x[idx]), _ranks_rows(y[idx])
        rx -= rx.mean(1, keepdims=True)
        ry -= ry.mean(1, keepdims=True)
        den = np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum(1))
        r = np.where(den > 0, (rx * ry).sum(1) / np.where(den > 0, den, 1), np.nan)
    else:
        r = _kendall_rows(x[idx], y[idx])
    z = np.arctanh(np.clip(r[np.isfinite(r)], -0.9999, 0.9999))
    return float(z.std(ddof=1))


def rank_correlation(x: Sequence[float], y: Sequence[float], *, method: str = "spearman",
                     alternative: str = "two-sided", level: float = 0.95, seed: int = 0,
                     n_perm: int = N_PERM) -> RankCorrelation:
    """Rank correlation of paired points (x_i, y_i); non-finite pairs are dropped.

    ``n_perm`` = 0 skips the permutation test (p is None): for coverage studies of the CI alone.
    """
    if method not in ("spearman", "kendall"):
        raise ValueError(f"The 'method' parameter of rank_correlation must be 'spearman' or 'kendall'. Got {method!r}.")
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    n = int(xa.size)
    need = max(min_points(alternative, 1 - level), 5)
    symbol = "ρ" if method == "spearman" else "τ"
    if n < need:
        return RankCorrelation(method, None, None, None, n, "", reason=(
            f"{n} points; a {method} {symbol} needs at least {need} for a {alternative} permutation test at "
            f"{1 - level:g} (the smallest attainable p with {n} points is "
            f"{(2 if alternative == 'two-sided' else 1) / math.factorial(max(n, 1)):.2g})"))
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return RankCorrelation(method, None, None, None, n, "", reason=f"one variable is constant over the {n} points")
    r = _stat(method, xa, ya)
    p, how = _permutation_p(method, xa, ya, r, alternative, seed, n_perm) if n_perm else (None, "no test")
    z = math.atanh(max(min(r, 0.9999), -0.9999))
    if n >= BOOTSTRAP_MIN_N:
        se = _bootstrap_z_se(method, xa, ya, seed)
        ci_how = f"bootstrap over points (B={N_BOOT}) on Fisher's z"
    else:
        se = math.sqrt((1 + r * r / 2) / (n - 3)) if method == "spearman" else math.sqrt(0.437 / (n - 4))
        ci_how = "Fisher's z with " + ("Bonett–Wright" if method == "spearman" else "Fieller") + " variance"
    q = float(scipy_stats().norm.ppf(0.5 + level / 2))
    ci = (math.tanh(z - q * se), math.tanh(z + q * se))
    return RankCorrelation(method, r, ci, p, n, f"{method} {symbol} over {n} points; {how}; CI: {ci_how}")
