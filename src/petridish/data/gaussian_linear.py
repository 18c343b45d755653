"""Gaussian linear model: x ~ N(0, Σ) with diagonal Σ, y = xᵀβ + ε, ε ~ N(0, σ²)."""
from __future__ import annotations

from typing import Sequence

import torch

from petridish.data.dataset import Dataset, make_meta
from petridish.errors import check_choice, check_number, invalid

OWNER = "gaussian_linear"
SPECTRA = ("isotropic", "spiked", "power", "custom")


def gaussian_linear(*, n_train: int, n_test: int, dim: int, spectrum: str = "isotropic",
                    eigenvalues: Sequence[float] | None = None, spike: float = 10.0,
                    n_spikes: int = 1, decay: float = 1.0, signal_norm: float = 1.0,
                    noise_std: float = 0.5, seed: int = 0) -> Dataset:
    """Regression data with a declared covariance spectrum.

    Spectra (eigenvalues λ_1..λ_dim of the diagonal Σ):
      * ``isotropic``: all 1;
      * ``spiked``: the first ``n_spikes`` are ``spike``, the rest 1;
      * ``power``: λ_i = i^(-decay), i = 1..dim;
      * ``custom``: ``eigenvalues`` as given (length dim, all > 0).
    β is a Gaussian direction scaled to ‖β‖ = ``signal_norm``. Targets y are float32 (n,);
    the test targets carry noise too (subtract σ² for the excess risk).
    ``meta["eigenvalues"]`` and ``meta["beta"]`` are lists of floats.
    """
    n_train = check_number(n_train, "n_train", OWNER, kind=int, low=1)
    n_test = check_number(n_test, "n_test", OWNER, kind=int, low=0)
    dim = check_number(dim, "dim", OWNER, kind=int, low=1)
    check_choice(spectrum, "spectrum", OWNER, SPECTRA)
    signal_norm = check_number(signal_norm, "signal_norm", OWNER, low=0)
    noise_std = check_number(noise_std, "noise_std", OWNER, low=0)
    seed = check_number(seed, "seed", OWNER, kind=int, low=0)
    lam = _spectrum(spectrum, dim, eigenvalues, spike, n_spikes, decay)   # (dim,) float64
    g = torch.Generator().manual_seed(seed)
    beta = torch.randn(dim, generator=g, dtype=torch.float64)
    beta = beta * (signal_norm / beta.norm().clamp_min(1e-300))

    def draw(n: int):
        x = torch.randn(n, dim, generator=g, dtype=torch.float64) * lam.sqrt()
        y = x @ beta + noise_std * torch.randn(n, generator=g, dtype=torch.float64)
        return x.float(), y.float()

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    params = {"n_train": n_train, "n_test": n_test, "dim": dim, "spectrum": spectrum,
              "spike": spike, "n_spikes": n_spikes, "decay": decay, "signal_norm": signal_norm,
              "noise_std": noise_std, "seed": seed}
    meta = make_meta("gaussian-linear", x_train=x_tr, x_test=x_te, classes=0, params=params,
                     eigenvalues=lam.tolist(), beta=beta.tolist(), noise_std=noise_std)
    return Dataset(x_tr, y_tr, x_te, y_te, meta)


def _spectrum(spectrum: str, dim: int, eigenvalues, spike, n_spikes, decay) -> torch.Tensor:
    if spectrum == "isotropic":
        return torch.ones(dim, dtype=torch.float64)
    if spectrum == "spiked":
        spike = check_number(spike, "spike", OWNER, low=0, low_open=True)
        n_spikes = check_number(n_spikes, "n_spikes", OWNER, kind=int, low=0, high=dim)
        lam = torch.ones(dim, dtype=torch.float64)
        lam[:n_spikes] = spike
        return lam
    if spectrum == "power":
        decay = check_number(decay, "decay", OWNER, low=0)
        return torch.arange(1, dim + 1, dtype=torch.float64) ** (-decay)
    if eigenvalues is None:
        raise invalid("eigenvalues", OWNER, f"a sequence of {dim} floats > 0 when spectrum='custom'", None)
    lam = torch.as_tensor(list(eigenvalues), dtype=torch.float64)
    if lam.shape != (dim,) or not bool((lam > 0).all()) or not bool(torch.isfinite(lam).all()):
        raise invalid("eigenvalues", OWNER, f"a sequence of {dim} finite floats > 0", list(eigenvalues)[:5])
    return lam
