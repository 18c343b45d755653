"""Power-law learning curves err(n) ≈ a·n^(−α) (+ c), with bootstrap intervals.

The fit is least squares in log error (errors span decades, and multiplicative noise
is the natural model for them): without an offset it is ordinary least squares of
log err on log n; with an offset c ∈ [0, min err) the objective is profiled over c on
a grid (linear fit of log(err − c) for each c), then refined on a finer grid around
the best c. Everything is vectorized over bootstrap replicates with NumPy.

The bootstrap (Hestness et al. 2017 report exponents; we add intervals) is stratified
by n: at every n the seeds' errors are resampled with replacement, the resampled
errors are averaged, and the curve of averages is refitted. With few seeds (3 is
typical) the plain bootstrap underestimates the spread by a factor √((S−1)/S), so
draws are re-inflated around the per-n mean by √(S/(S−1)) before averaging.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from petridish.errors import check_number, invalid

OWNER = "fit_power_law"


@dataclass(frozen=True)
class PowerLaw:
    """err(n) = c + a·n^(−alpha)."""

    a: float
    alpha: float
    c: float = 0.0

    def __call__(self, n) -> np.ndarray:
        return self.c + self.a * np.asarray(n, dtype=float) ** (-self.alpha)

    def n_at(self, target: float) -> float:
        """The n at which the fitted curve reaches ``target`` (inf if it never does)."""
        if not (target > self.c) or not (self.alpha > 0) or not (self.a > 0):
            return math.inf
        return float((self.a / (target - self.c)) ** (1.0 / self.alpha))


@dataclass(frozen=True)
class PowerLawFit:
    """A point fit plus percentile bootstrap intervals for alpha and n_at(target)."""

    law: PowerLaw
    alpha_lo: float
    alpha_hi: float
    alphas: np.ndarray          # (n_boot,) bootstrap exponents
    laws: list[PowerLaw]        # (n_boot,) bootstrap fits (for CIs of derived quantities)
    level: float

    @property
    def alpha(self) -> float:
        return self.law.alpha

    def n_at_ci(self, target: float) -> tuple[float, float, float]:
        """(point, lo, hi) of the n at which the curve reaches ``target``."""
        vals = np.array([l.n_at(target) for l in self.laws])
        q = (1 - self.level) / 2
        lo, hi = np.quantile(vals, [q, 1 - q]) if vals.size else (math.nan, math.nan)
        return self.law.n_at(target), float(lo), float(hi)


def _check_curve(n, err) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n, dtype=float)
    err = np.asarray(err, dtype=float)
    if n.ndim != 1 or n.size < 2:
        raise invalid("n", OWNER, "a 1-d sequence of at least 2 sample sizes", n.tolist())
    if err.shape[-1] != n.size:
        raise invalid("err", OWNER, f"an array whose last axis has length {n.size}", list(err.shape))
    if not np.all(n > 0):
        raise invalid("n", OWNER, "positive sample sizes", n.tolist())
    if not np.all(np.isfinite(err)) or not np.all(err > 0):
        raise invalid("err", OWNER, "finite errors > 0 (a zero error has no logarithm)", err.tolist())
    return n, err


def _loglinear(logn: np.ndarray, logy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched OLS of logy (..., N) on logn (N,): returns (log a, alpha, residual SS)."""
    xm = logn.mean()
    xc = logn - xm
    ym = logy.mean(axis=-1, keepdims=True)
    slope = ((logy - ym) * xc).sum(axis=-1) / (xc * xc).sum()
    loga = ym[..., 0] - slope * xm
    return loga, -slope, None


def _fit_batch(n: np.ndarray, err: np.ndarray, offset: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit every row of err (B, N); returns arrays a, alpha, c of shape (B,)."""
    logn, loge = np.log(n), np.log(err)
    if not offset:
        loga, alpha, _ = _loglinear(logn, loge)
        return np.exp(loga), alpha, np.zeros(err.shape[0])
    emin = err.min(axis=-1, keepdims=True)                    # (B, 1)
    frac = np.linspace(0.0, 0.98, 50)                          # c / min err
    best = None
    for _ in range(2):                                         # coarse grid, then a finer one
        c = emin * frac[None, :] if best is None else emin * frac                           # (B, F)
        shifted = np.log(np.clip(err[:, None, :] - c[..., None], 1e-300, None))             # (B, F, N)
        loga, alpha, _ = _loglinear(logn, shifted)
        model = np.log(c[..., None] + np.exp(loga)[..., None] * n ** (-alpha[..., None]))
        sse = ((loge[:, None, :] - model) ** 2).sum(-1)                                      # (B, F)
        k = sse.argmin(axis=1)
        rows = np.arange(err.shape[0])
        best = (np.exp(loga[rows, k]), alpha[rows, k], c[rows, k])
        step = 0.98 / 49
        centre = best[2][:, None] / emin                                                     # (B, 1)
        frac = np.clip(centre + np.linspace(-step, step, 41)[None, :], 0.0, 0.995)
    return best


def fit_power_law(n, err, *, offset: bool = False) -> PowerLaw:
    """Least-squares fit (in log error) of err ≈ a·n^(−α) (+ c when ``offset``).

    ``err`` is (N,) or (S, N); with several rows (seeds) the per-n mean is fitted.
    """
    n, err = _check_curve(n, err)
    if not isinstance(offset, bool):
        raise invalid("offset", OWNER, "a bool", offset)
    curve = err.reshape(-1, n.size).mean(axis=0)
    a, alpha, c = _fit_batch(n, curve[None, :], offset)
    return PowerLaw(float(a[0]), float(alpha[0]), float(c[0]))


def bootstrap_power_law(n, err, *, offset: bool = False, n_boot: int = 1000, level: float = 0.95,
                        resample: str = "seeds-per-n", seed: int = 0) -> PowerLawFit:
    """Fit a power law to err (S seeds, N sizes) and a percentile bootstrap interval for α.

    ``resample``: "seeds-per-n" resamples the S seeds independently at each n (each
    cell is an independent run); "curves" resamples whole seed curves (keeps any
    correlation along n; with S = 3 there are only 10 distinct resamples). Both
    re-inflate draws by √(S/(S−1)) around the per-n mean (small-S bias correction).
    """
    n, err = _check_curve(n, err)
    err = err.reshape(-1, n.size)
    n_boot = check_number(n_boot, "n_boot", "bootstrap_power_law", kind=int, low=10)
    level = check_number(level, "level", "bootstrap_power_law", low=0, high=1, low_open=True, high_open=True)
    if resample not in ("seeds-per-n", "curves"):
        raise invalid("resample", "bootstrap_power_law", "one of 'seeds-per-n', 'curves'", resample)
    law = fit_power_law(n, err, offset=offset)
    s = err.shape[0]
    if s < 2:
        raise invalid("err", "bootstrap_power_law", "an (S, N) array with S >= 2 seeds", list(err.shape))
    rng = np.random.default_rng(seed)
    if resample == "seeds-per-n":
        idx = rng.integers(0, s, size=(n_boot, s, n.size))                  # (B, S, N)
        draws = np.take_along_axis(np.broadcast_to(err, (n_boot, s, n.size)), idx, axis=1)
    else:
        idx = rng.integers(0, s, size=(n_boot, s))
        draws = err[idx]                                                     # (B, S, N)
    # work in log space (errors are positive, noise multiplicative): inflate log deviations
    logm = np.log(err).mean(axis=0)
    logd = logm + math.sqrt(s / (s - 1)) * (np.log(draws) - logm)
    curves = np.exp(logd).mean(axis=1)                                        # (B, N)
    a, alpha, c = _fit_batch(n, curves, offset)
    q = (1 - level) / 2
    lo, hi = np.quantile(alpha, [q, 1 - q])
    laws = [PowerLaw(float(x), float(y), float(z)) for x, y, z in zip(a, alpha, c)]
    return PowerLawFit(law, float(lo), float(hi), alpha, laws, level)
