"""Gaussian designs x ~ N(0, Σ) for benign overfitting: covariance spectra, their effective
ranks (Bartlett, Long, Lugosi & Tsigler 2020) and design matrices drawn from them.

A spectrum is a float64 vector of eigenvalues λ₁ ≥ λ₂ ≥ … ≥ λ_p > 0 of a diagonal Σ
(diagonal loses nothing: the Gaussian design is rotation invariant).
"""
from __future__ import annotations

import math

import torch

from petridish.errors import check_choice, check_number

SPECTRA = ("benign", "isotropic", "decay")


def spectrum(kind: str, n: int, *, strong: int = 3, tail_power: float = 1.5,
             iso_ratio: float = 2.0) -> torch.Tensor:
    """Eigenvalues (p,) float64 of the covariance for sample size ``n``.

    * ``benign``: ``strong`` eigenvalues 1 plus a flat tail of p_n − strong = ⌈n^tail_power⌉
      eigenvalues ε_n = √n / p_n (total tail variance √n = o(n), p_n = ω(n)): the
      "few strong + many weak" spectrum of Bartlett et al.'s Theorem 6.
    * ``isotropic``: Σ = I_p with p = ⌈iso_ratio·n⌉ (γ = p/n fixed, risk stays Θ(1)).
    * ``decay``: λ_i = i⁻² for i ≤ ⌈n^tail_power⌉ (fast decay: k* ≈ b·n, not benign).
    """
    owner = "spectrum"
    check_choice(kind, "kind", owner, SPECTRA)
    n = check_number(n, "n", owner, kind=int, low=1)
    if kind == "benign":
        tail = math.ceil(n ** tail_power)
        eps = math.sqrt(n) / tail
        return torch.cat([torch.ones(strong, dtype=torch.float64),
                          torch.full((tail,), eps, dtype=torch.float64)])
    if kind == "isotropic":
        return torch.ones(math.ceil(iso_ratio * n), dtype=torch.float64)
    p = math.ceil(n ** tail_power)
    return torch.arange(1, p + 1, dtype=torch.float64) ** -2.0


def effective_ranks(lam: torch.Tensor, n: int, *, b: float = 1.0) -> dict[str, float]:
    """r₀(Σ), k* = min{k ≥ 0: r_k(Σ) ≥ b·n}, R_{k*}(Σ), and the three ratios of the theorem.

    r_k = (Σ_{i>k} λ_i)/λ_{k+1},  R_k = (Σ_{i>k} λ_i)² / Σ_{i>k} λ_i²  (k is 0-based here:
    the tail after the first k eigenvalues). If no k < p qualifies, k* = p and R = 0.
    """
    lam = torch.sort(lam.to(torch.float64), descending=True).values
    # tail sums S1[k] = Σ_{i>k} λ_i and S2[k] = Σ_{i>k} λ_i², for k = 0 .. p-1
    s1 = torch.flip(torch.cumsum(torch.flip(lam, [0]), 0), [0])
    s2 = torch.flip(torch.cumsum(torch.flip(lam ** 2, [0]), 0), [0])
    r = s1 / lam
    ok = torch.nonzero(r >= b * n)
    kstar = int(ok[0]) if ok.numel() else lam.numel()
    big_r = float(s1[kstar] ** 2 / s2[kstar]) if kstar < lam.numel() else 0.0
    r0 = float(r[0])
    return {"r0": r0, "k_star": kstar, "R_kstar": big_r, "r0_over_n": r0 / n,
            "kstar_over_n": kstar / n, "n_over_R": (n / big_r) if big_r > 0 else math.inf}


def sample_design(lam: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """X (n, p) float64 with rows ~ N(0, diag(lam))."""
    z = torch.randn(n, lam.numel(), generator=gen, dtype=torch.float64)
    return z * lam.sqrt()
