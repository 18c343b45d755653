"""How well a measure ranks models by generalization gap: Jiang et al.'s (2020) Kendall τ, granulated
Kendall Ψ, and PGDL's conditional-mutual-information score, each with a seeded bootstrap CI.

* ``kendall_tau``: τ = Σ_{i≠j} sign(μ_i − μ_j) sign(g_i − g_j) / (n(n − 1)) — the paper's eq. (3), the
  τ-a variant (a pair tied in μ or in g counts 0 and stays in the denominator). Values are ranked
  first, so ±inf (a vacuous measure) orders like any other value.
* ``granulated_kendall``: ψ_a = mean of τ over the groups of models that agree on every
  hyperparameter but a (and on the seed); Ψ = mean of ψ_a over the axes a that vary.
* ``cmi_score``: over ordered pairs of distinct models, V_g = sign(g_i − g_j) (pairs tied in g dropped),
  V_μ = sign(μ_i − μ_j) ∈ {−1, 0, +1}; for each pair S of hyperparameters, U_S = both models' values of
  S; score_S = I(V_μ; V_g | U_S) / H(V_g | U_S) (plug-in estimates, nats cancel); the score is
  min_S score_S. A measure that orders the pairs exactly as the gap scores 1, an independent one ≈ 0
  (upward-biased by the plug-in estimate: ≈ (#cells)/(2 n_pairs ln 2 · H)). Unsigned: a perfectly
  inverted measure also scores 1, so read it beside τ.
* CIs: percentile bootstrap (B resamples, seeded numpy); τ and CMI resample models (τ over the pairs of
  distinct models of a resample, so that a model drawn twice does not bias τ towards 0), Ψ resamples
  the groups of each axis. The CMI's resamples sit above its estimate (a resample's duplicated models
  leave fewer distinct pairs, which raises the plug-in bias), so its percentile interval is shifted down
  by the bootstrap bias, mean(resamples) − estimate, and clipped at 0.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.stats import rankdata

N_BOOT = 1000
N_BOOT_CMI = 200


@dataclass(frozen=True)
class Score:
    estimate: float
    ci: tuple[float, float]
    n: int               # models (τ, CMI) or groups (Ψ) behind it
    method: str          # how the CI was obtained
    boot: np.ndarray | None = field(default=None, repr=False, compare=False)   # (B,) resampled values; the
    # same seed and population give every measure the same resamples, so group means can be bootstrapped


def _ranks(v: np.ndarray) -> np.ndarray:
    return rankdata(v, axis=-1)


def _tau_rows(m: np.ndarray, g: np.ndarray, ids: np.ndarray | None = None, chunk: int = 64) -> np.ndarray:
    """τ-a of each row of (R, n) arrays over the ordered pairs of distinct models: i ≠ j, and, for a
    bootstrap resample, ``ids[r, i] ≠ ids[r, j]`` (a model drawn twice is not a pair with itself)."""
    out = np.empty(m.shape[0])
    n = m.shape[1]
    for a in range(0, m.shape[0], chunk):
        x, y = m[a:a + chunk], g[a:a + chunk]
        s = np.sign(x[:, :, None] - x[:, None, :]) * np.sign(y[:, :, None] - y[:, None, :])
        if ids is None:
            out[a:a + chunk] = s.sum((1, 2)) / (n * (n - 1))
        else:
            d = ids[a:a + chunk]
            distinct = d[:, :, None] != d[:, None, :]
            out[a:a + chunk] = (s * distinct).sum((1, 2)) / np.maximum(distinct.sum((1, 2)), 1)
    return out


def kendall_tau(measure: Sequence[float], gap: Sequence[float]) -> float:
    """Jiang et al.'s τ of a measure with the gap over n ≥ 2 models (NaN pairs must be removed first)."""
    m, g = _ranks(np.asarray(measure, float)), np.asarray(gap, float)
    return float(_tau_rows(m[None], g[None])[0])


def _percentile(boot: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    b = boot[np.isfinite(boot)]
    q = (1 - level) / 2
    return float(np.quantile(b, q)), float(np.quantile(b, 1 - q))


def tau_score(measure: Sequence[float], gap: Sequence[float], *, seed: int, n_boot: int = N_BOOT) -> Score:
    m, g = _ranks(np.asarray(measure, float)), np.asarray(gap, float)
    n = m.size
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = _tau_rows(m[idx], g[idx], idx)
    return Score(kendall_tau(m, g), _percentile(boot), n, f"percentile bootstrap over {n} models (B={n_boot})",
                 boot)


def groups_varying(hparams: Sequence[dict], axis: str) -> list[np.ndarray]:
    """Index arrays of the models that agree on every key of ``hparams`` but ``axis``, ≥ 2 each."""
    by: dict[tuple, list[int]] = {}
    for i, h in enumerate(hparams):
        by.setdefault(tuple(sorted((k, v) for k, v in h.items() if k != axis)), []).append(i)
    return [np.array(v) for v in by.values() if len(v) >= 2]


def _group_taus(m: np.ndarray, g: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """(G,) τ within each group; groups of one size are stacked into one vectorized call."""
    out = np.empty(len(groups))
    by_size: dict[int, list[int]] = {}
    for k, ix in enumerate(groups):
        by_size.setdefault(ix.size, []).append(k)
    for ks in by_size.values():
        ix = np.stack([groups[k] for k in ks])                                   # (G_s, size)
        out[ks] = _tau_rows(_ranks(m[ix]), g[ix])
    return out


def _psi(m: np.ndarray, g: np.ndarray, groups: list[np.ndarray]) -> float:
    return float(_group_taus(m, g, groups).mean()) if groups else np.nan


def granulated_kendall(measure, gap, hparams: Sequence[dict], axes: Sequence[str]) -> tuple[float, dict[str, float]]:
    """(Ψ, {axis: ψ_axis}) over the axes with at least one group; ``hparams`` hold the seed too."""
    m, g = np.asarray(measure, float), np.asarray(gap, float)
    psi = {a: _psi(m, g, groups_varying(hparams, a)) for a in axes}
    psi = {a: v for a, v in psi.items() if np.isfinite(v)}
    return (float(np.mean(list(psi.values()))) if psi else np.nan), psi


def psi_score(measure, gap, hparams: Sequence[dict], axes: Sequence[str], *, seed: int,
              n_boot: int = N_BOOT) -> Score:
    """Ψ with a bootstrap CI that resamples, for each axis, its groups with replacement."""
    m, g = np.asarray(measure, float), np.asarray(gap, float)
    est, _ = granulated_kendall(m, g, hparams, axes)
    per_axis = {}
    for a in axes:
        groups = groups_varying(hparams, a)
        if groups:
            per_axis[a] = _group_taus(m, g, groups)                     # (G_a,) τ per group
    gen = np.random.default_rng(seed)
    if not per_axis:
        return Score(np.nan, (np.nan, np.nan), 0, "no group varies one axis only")
    boot = np.zeros(n_boot)
    for taus in per_axis.values():
        boot += taus[gen.integers(0, taus.size, size=(n_boot, taus.size))].mean(1)
    boot /= len(per_axis)
    n = sum(t.size for t in per_axis.values())
    return Score(est, _percentile(boot), n, f"percentile bootstrap over the {n} one-axis groups (B={n_boot})",
                 boot)


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    return i, j


def _entropy(counts: np.ndarray) -> np.ndarray:
    """Plug-in entropy (nats) along the last axis of nonnegative counts."""
    tot = counts.sum(-1, keepdims=True)
    p = counts / np.where(tot > 0, tot, 1)
    return -(p * np.log(np.where(p > 0, p, 1))).sum(-1)


def _normalized_cmi(c: np.ndarray) -> np.ndarray:
    """I(V_μ; V_g | U) / H(V_g | U) from counts c (..., U, 3, 2) over (u, V_μ ∈ {−,0,+}, V_g ∈ {−,+})."""
    cu = c.sum((-1, -2))                                              # (..., U)
    pu = cu / np.maximum(cu.sum(-1, keepdims=True), 1)
    h_g = _entropy(c.sum(-2))                                         # (..., U) H(V_g | U = u)
    h_m = _entropy(c.sum(-1))
    h_mg = _entropy(c.reshape(*c.shape[:-2], 6))
    mi = (pu * (h_m + h_g - h_mg)).sum(-1)
    hg = (pu * h_g).sum(-1)
    return np.where(hg > 0, mi / np.where(hg > 0, hg, 1), np.nan)


def encode(hparams: Sequence[dict], axes: Sequence[str]) -> np.ndarray:
    """(n, A) integer codes of each model's value on each axis."""
    out = np.zeros((len(hparams), len(axes)), dtype=np.int64)
    for a, name in enumerate(axes):
        values = sorted({h[name] for h in hparams})
        out[:, a] = [values.index(h[name]) for h in hparams]
    return out


def _cmi_sample(ranked: dict[str, np.ndarray], g: np.ndarray, codes: np.ndarray, levels: np.ndarray,
                subsets: list[tuple[int, int]]) -> dict[str, float]:
    """min over hyperparameter pairs S of the normalized CMI, for every measure at once (one bincount
    over measures × subsets × pairs)."""
    i, j = _pairs(g.size)
    dg = np.sign(g[i] - g[j])
    keep = dg != 0                                 # pairs tied in the gap carry no sign
    i, j, vg = i[keep], j[keep], (dg[keep] > 0).astype(np.int64)
    if not subsets or i.size == 0:
        return {k: np.nan for k in ranked}
    n_u = int(max(levels[a] ** 2 * levels[b] ** 2 for a, b in subsets))
    us = []
    for a, b in subsets:                           # U_S = (θ_i,a, θ_j,a, θ_i,b, θ_j,b), coded in 0..n_u−1
        la, lb = int(levels[a]), int(levels[b])
        us.append(((codes[i, a] * la + codes[j, a]) * lb + codes[i, b]) * lb + codes[j, b])
    u = np.stack(us)                                                             # (S, P)
    m = np.stack(list(ranked.values()))                                          # (M, n)
    vm = (np.sign(m[:, i] - m[:, j]) + 1).astype(np.int64)                       # (M, P)
    n_m, n_s = m.shape[0], len(subsets)
    code = ((np.arange(n_m)[:, None, None] * n_s + np.arange(n_s)[None, :, None]) * n_u + u[None]) * 6 \
        + vm[:, None, :] * 2 + vg[None, None, :]                                 # (M, S, P)
    c = np.bincount(code.ravel(), minlength=n_m * n_s * n_u * 6).reshape(n_m, n_s, n_u, 3, 2).astype(float)
    score = _normalized_cmi(c).min(1)                                            # (M,) min over S
    return dict(zip(ranked, score.tolist()))


def cmi_scores(measures: dict[str, Sequence[float]], gap, hparams: Sequence[dict], axes: Sequence[str], *,
               seed: int, n_boot: int = N_BOOT_CMI) -> dict[str, Score]:
    """PGDL's score of each measure: min over pairs of hyperparameters of I(V_μ; V_g | U_S)/H(V_g | U_S);
    bootstrap over models, the same resamples for every measure (a resample's duplicated models form
    pairs tied in g, which are dropped). Axes that take one value are left out of S."""
    ranked = {k: _ranks(np.asarray(v, float)) for k, v in measures.items()}
    g = np.asarray(gap, float)
    varying = [a for a in axes if len({h[a] for h in hparams}) > 1]
    codes = encode(hparams, varying)
    levels = codes.max(0) + 1 if varying else np.zeros(0, np.int64)
    subsets = list(itertools.combinations(range(len(varying)), 2))
    if len(varying) == 1:
        subsets = [(0, 0)]
    est = _cmi_sample(ranked, g, codes, levels, subsets)
    gen = np.random.default_rng(seed)
    boots = [_cmi_sample({k: v[ix] for k, v in ranked.items()}, g[ix], codes[ix], levels, subsets)
             for ix in gen.integers(0, g.size, size=(n_boot, g.size))]
    how = (f"percentile bootstrap over {g.size} models (B={n_boot}); min over {len(subsets)} pairs of "
           f"hyperparameters")
    out = {}
    for k in ranked:
        b = np.array([r[k] for r in boots])
        bias = float(np.nanmean(b)) - est[k] if np.isfinite(b).any() else 0.0   # the resamples' extra plug-in bias
        lo, hi = _percentile(b)
        out[k] = Score(est[k], (max(lo - bias, 0.0), max(hi - bias, 0.0)), g.size, how + ", bias-shifted", b - bias)
    return out


def cmi_score(measure, gap, hparams: Sequence[dict], axes: Sequence[str], *, seed: int,
              n_boot: int = N_BOOT_CMI) -> Score:
    """:func:`cmi_scores` of one measure."""
    return cmi_scores({"m": measure}, gap, hparams, axes, seed=seed, n_boot=n_boot)["m"]
