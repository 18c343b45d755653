"""Analytic NNGP and NTK of a fully connected network (infinite width).

The architecture is neural-tangents'
``stax.serial(*[Dense(width, W_std=w_std, b_std=b_std, parameterization=p), Act()] * depth,
Dense(1, W_std=w_std, b_std=b_std, parameterization=p))``:

* input kernel      K0 = x x'^T / d0,  Theta0 = 0
* Dense             Sigma = w_std^2 K + b_std^2          (b_std=None: no bias, no b_std^2 term)
  - 'ntk'           Theta = Sigma + w_std^2 Theta~
  - 'standard'      Theta = fan_in K + w_std^2 Theta~ (+ 1 if a bias exists, b_std=0.0 included)
                    fan_in = d0 for the first layer, ``width`` afterwards
* activation        K = E[phi(u) phi(v)], Theta~ = E[phi'(u) phi'(v)] Theta  (see activations.py)

The NNGP does not depend on the parameterization; the 'standard' NTK depends on width.
Everything runs in float64 by default, tile by tile (128 x 128: cache-resident, a few MiB of
scratch per thread, so a 10,000 x 10,000 pair of kernels needs only its 1.6 GB of output);
with ``x2=None`` only the upper tile triangle is computed and mirrored.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import torch

from petridish.device import CPU, target_device
from petridish.errors import check_choice, check_number, invalid
from petridish.kernels.activations import TRANSFORMS
from petridish.threads import pin_threads

Tensor = torch.Tensor
_OWNER = "mlp_kernels"


class Kernels(NamedTuple):
    """NNGP (output covariance at init) and NTK, each (n1, n2)."""

    nngp: Tensor
    ntk: Tensor


def mlp_kernels(x1: Any, x2: Any = None, *, depth: int, activation: str = "relu",
                w_std: float = 1.0, b_std: float | None = None, parameterization: str = "ntk",
                width: int | None = None, negative_slope: float = 0.01,
                dtype: torch.dtype = torch.float64, tile: int = 128, threads: int | None = None,
                get: tuple[str, ...] = ("nngp", "ntk")) -> Kernels:
    """NNGP and NTK between the rows of ``x1`` (n1, ...) and ``x2`` (n2, ...; default x1).

    ``depth`` hidden layers (0 = a linear model), each ``Dense -> activation``, then a Dense
    readout. ``activation``: 'relu', 'erf', 'leaky_relu' (slope ``negative_slope``), 'linear'.
    ``b_std=None`` means no bias. ``parameterization='standard'`` needs ``width`` (hidden
    width) for its NTK. Inputs are flattened to (n, d0). Returns float64 tensors by default;
    ``get=("nngp",)`` skips the NTK (returned as None) and saves about a third of the time.
    """
    depth = check_number(depth, "depth", _OWNER, kind=int, low=0)
    check_choice(activation, "activation", _OWNER, tuple(TRANSFORMS))
    check_choice(parameterization, "parameterization", _OWNER, ("ntk", "standard"))
    w_std = check_number(w_std, "w_std", _OWNER, low=0.0)
    if b_std is not None:
        b_std = check_number(b_std, "b_std", _OWNER, low=0.0)
    if parameterization == "standard" and "ntk" in get:
        if width is None:
            raise invalid("width", _OWNER, "an int >= 1 when parameterization='standard' "
                          "(the standard-parameterization NTK depends on the hidden width)", width)
        width = check_number(width, "width", _OWNER, kind=int, low=1)
    tile = check_number(tile, "tile", _OWNER, kind=int, low=1)
    dev = target_device(x1, x2)
    a1 = _as_matrix(x1, "x1", dtype, dev)
    symmetric = x2 is None
    a2 = a1 if symmetric else _as_matrix(x2, "x2", dtype, dev)
    if a2.shape[1] != a1.shape[1]:
        raise invalid("x2", _OWNER, f"an array with {a1.shape[1]} features per row like x1",
                      f"shape {tuple(a2.shape)}")
    cfg = _Config(depth=depth, act=TRANSFORMS[activation], w2=w_std ** 2,
                  b2=None if b_std is None else b_std ** 2, standard=parameterization == "standard",
                  width=width, d0=a1.shape[1], slope=negative_slope, need_ntk="ntk" in get)
    diag1, dg1 = _diagonals(a1, cfg)
    diag2 = diag1 if symmetric else _diagonals(a2, cfg)[0]
    n1, n2 = a1.shape[0], a2.shape[0]
    nngp = torch.mm(a1, a2.T).div_(cfg.d0)            # K0 = x x'^T / d0, one BLAS call
    ntk = torch.empty(n1, n2, dtype=dtype, device=dev) if cfg.need_ntk else None
    if dev.type != "cpu":                               # one tile: a GPU wants few large ops
        tile = max(n1, n2)
    tiles = [(i, j) for i in range(0, n1, tile) for j in range(i if symmetric else 0, n2, tile)]

    def work(ij: tuple[int, int]) -> None:
        r = slice(ij[0], min(ij[0] + tile, n1))
        c = slice(ij[1], min(ij[1] + tile, n2))
        k, t = _tile(nngp[r, c].clone(), [d[r, None] for d in diag1], [d[None, c] for d in diag2], cfg)
        if symmetric and r == c:                        # BLAS need not give an exactly symmetric x x^T
            k, t = _mirror_upper(k), (None if t is None else _mirror_upper(t))
        nngp[r, c] = k
        if t is not None:
            ntk[r, c] = t
        if symmetric and r != c:                        # mirror into the lower block triangle
            nngp[c, r] = k.T
            if t is not None:
                ntk[c, r] = t.T

    # Tiles stay cache-resident and below torch's intra-op grain size, so each op runs on
    # one thread; the tiles are spread over `threads` Python threads (torch frees the GIL).
    n_threads = threads or torch.get_num_threads()
    with pin_threads(1):          # tiny ops: an OpenMP team per op costs more than the op
        if n_threads <= 1 or len(tiles) == 1:
            for ij in tiles:
                work(ij)
        else:
            with ThreadPoolExecutor(max_workers=n_threads) as pool:
                list(pool.map(work, tiles))
    if symmetric:                 # exact self-pairs (theta = 0), as the diagonal recursion gives
        nngp.diagonal().copy_(dg1[0])
        if ntk is not None:
            ntk.diagonal().copy_(dg1[1])
    return Kernels(nngp.to(CPU), None if ntk is None else ntk.to(CPU))


class _Config(NamedTuple):
    depth: int
    act: Any
    w2: float
    b2: float | None
    standard: bool
    width: int | None
    d0: int
    slope: float
    need_ntk: bool


def _as_matrix(x: Any, name: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    if t.ndim < 2 or t.shape[0] == 0 or t.numel() == 0:
        raise invalid(name, _OWNER, "an array of shape (n, d) with n, d >= 1", f"shape {tuple(t.shape)}")
    t = t.detach().to(dtype=dtype, device=device).reshape(t.shape[0], -1)
    if not torch.isfinite(t).all():
        raise invalid(name, _OWNER, "finite (no NaN or inf)", "non-finite values")
    return t


def _mirror_upper(a: Tensor) -> Tensor:
    """The symmetric matrix with a's upper triangle."""
    return a.triu() + a.triu(1).T


def _affine(k: Tensor, cfg: _Config) -> Tensor:
    """Dense layer on an NNGP block, in place: w^2 K + b^2."""
    k.mul_(cfg.w2)
    if cfg.b2 is not None and cfg.b2 != 0.0:
        k.add_(cfg.b2)
    return k


def _diagonals(x: Tensor, cfg: _Config) -> tuple[list[Tensor], tuple[Tensor, Tensor | None]]:
    """Pre-activation variances Sigma^l(x, x) for l = 1..depth, each (n,), and the output
    (NNGP, NTK) diagonals, computed with theta = 0 exactly (no sqrt of a rounding error)."""
    k = x.pow(2).sum(1).div_(cfg.d0)[:, None]      # (n, 1)
    out = []
    theta = None
    for layer in range(cfg.depth + 1):
        fan_in = cfg.d0 if layer == 0 else cfg.width
        if cfg.need_ntk:
            theta = _ntk_dense(theta, k, fan_in, cfg)
        s = _affine(k, cfg)
        if layer == cfg.depth:
            return out, (s[:, 0], None if theta is None else theta[:, 0])
        out.append(s[:, 0].clone())
        k, dot = cfg.act(s.clone(), s, s, need_dot=cfg.need_ntk, negative_slope=cfg.slope, diagonal=True)
        if theta is not None:
            theta = theta * dot
    raise AssertionError("unreachable")


def _tile(k: Tensor, da: list[Tensor], db: list[Tensor], cfg: _Config):
    """NNGP and NTK of one (ba, bb) tile from its input kernel K0 (overwritten);
    da[l] is (ba, 1) and db[l] is (1, bb): the pre-activation variances of layer l."""
    theta = None                                      # NTK of the last Dense layer
    dot = None                                        # E[phi' phi'] of the last activation
    for layer in range(cfg.depth + 1):
        if cfg.need_ntk and cfg.standard:
            if dot is not None:
                theta.mul_(dot)
            theta = _ntk_dense(theta, k, cfg.d0 if layer == 0 else cfg.width, cfg)
        s = _affine(k, cfg)                            # Sigma^{layer+1}, in place
        if cfg.need_ntk and not cfg.standard:          # Theta = Sigma + w^2 dot Theta, one pass
            theta = s.clone() if theta is None else torch.addcmul(s, theta, dot, value=cfg.w2, out=theta)
        if layer == cfg.depth:
            return s, theta
        k, dot = cfg.act(s, da[layer], db[layer], need_dot=cfg.need_ntk, negative_slope=cfg.slope)
    raise AssertionError("unreachable")


def _ntk_dense(theta: Tensor | None, k: Tensor, fan_in: int | None, cfg: _Config) -> Tensor:
    """Theta after a Dense layer, given the post-activation K (before the affine map)."""
    if cfg.standard:
        out = k.mul(float(fan_in))                    # fan_in K
        if theta is not None:
            out.add_(theta, alpha=cfg.w2)
        if cfg.b2 is not None:                         # a bias exists (b_std = 0.0 included)
            out.add_(1.0)
        return out
    out = k.mul(cfg.w2)                               # Sigma = w^2 K + b^2
    if cfg.b2 is not None and cfg.b2 != 0.0:
        out.add_(cfg.b2)
    if theta is not None:
        out.add_(theta, alpha=cfg.w2)
    return out
