"""Closed-form Gaussian expectations of activations, for the NNGP/NTK recursion.

For a pre-activation pair (u, v) ~ N(0, [[s11, s12], [s12, s22]]) each transform returns
    K    = E[phi(u) phi(v)]         (next NNGP, before the Dense layer)
    dot  = E[phi'(u) phi'(v)]       (multiplies the NTK: Theta~ = dot * Theta)
Conventions are neural-tangents' (stax.Relu, stax.LeakyRelu/ABRelu, stax.Erf).

Shapes: ``s12`` is a (b1, b2) block; ``s11`` is (b1, 1) and ``s22`` is (1, b2), so that
``s11 * s22`` broadcasts to the outer product. ``s12`` may be overwritten (it is a
scratch buffer owned by the caller), which keeps the 10k x 10k case within memory.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

Tensor = torch.Tensor
_INV_2PI = 1.0 / (2.0 * math.pi)


def _relu_parts(s12: Tensor, s11: Tensor, s22: Tensor, diagonal: bool) -> tuple[Tensor, Tensor]:
    """(sqrt(s11 s22 - s12^2), pi - theta) with theta = arctan2(that sqrt, s12).

    ``diagonal=True`` (self-pairs, s12 = s11 = s22) sets the sqrt to exactly 0."""
    if diagonal:
        root = torch.zeros_like(s12)
    else:
        root = torch.mul(s11, s22)                    # (b1, b2) outer product
        root.addcmul_(s12, s12, value=-1.0).clamp_(min=0.0).sqrt_()
    pmt = torch.atan2(root, s12)                     # theta in [0, pi]; stable where cos ~ +-1
    pmt.neg_().add_(math.pi)                          # pi - theta
    return root, pmt


def relu(s12: Tensor, s11: Tensor, s22: Tensor, *, need_dot: bool = True, diagonal: bool = False, **_) -> tuple[Tensor, Tensor | None]:
    """ReLU (arc-cosine kernel of degree 1, Cho & Saul 2009)."""
    root, pmt = _relu_parts(s12, s11, s22, diagonal)
    k = root.addcmul_(pmt, s12).mul_(_INV_2PI)        # [sqrt(.) + (pi - theta) s12] / 2pi
    dot = pmt.mul_(_INV_2PI) if need_dot else None     # (pi - theta) / 2pi
    return k, dot


def leaky_relu(s12: Tensor, s11: Tensor, s22: Tensor, *, need_dot: bool = True,
               negative_slope: float = 0.01, diagonal: bool = False, **_) -> tuple[Tensor, Tensor | None]:
    """phi(x) = a min(x, 0) + b max(x, 0) with a = negative_slope, b = 1 (neural-tangents' ABRelu).

    K = a b s12 + (b - a)^2 K_relu;  dot = (a^2 + b^2)(pi - theta)/2pi + a b theta/pi.
    """
    a, b = float(negative_slope), 1.0
    root, pmt = _relu_parts(s12, s11, s22, diagonal)
    k = root.addcmul_(pmt, s12).mul_((b - a) ** 2 * _INV_2PI).add_(s12, alpha=a * b)
    dot = None
    if need_dot:
        # (a^2+b^2)(pi-theta)/2pi + a b (pi - (pi-theta))/pi
        dot = pmt.mul_((a * a + b * b) * _INV_2PI - a * b / math.pi).add_(a * b)
    return k, dot


def erf(s12: Tensor, s11: Tensor, s22: Tensor, *, need_dot: bool = True, diagonal: bool = False, **_) -> tuple[Tensor, Tensor | None]:
    """erf (Williams 1997): K = 2/pi arcsin(2 s12 / sqrt((1+2 s11)(1+2 s22)))."""
    prod = torch.mul(s11.mul(2.0).add_(1.0), s22.mul(2.0).add_(1.0))    # (b1, b2)
    dot = None
    if need_dot:
        # 4/pi / sqrt(prod - 4 s12^2); the argument is > 0 for any PSD (s11, s12, s22)
        dot = torch.addcmul(prod, s12, s12, value=-4.0).clamp_(min=torch.finfo(s12.dtype).tiny)
        dot.rsqrt_().mul_(4.0 / math.pi)
    k = prod.rsqrt_().mul_(s12).mul_(2.0).clamp_(-1.0, 1.0).asin_().mul_(2.0 / math.pi)
    return k, dot


def linear(s12: Tensor, s11: Tensor, s22: Tensor, *, need_dot: bool = True, diagonal: bool = False, **_) -> tuple[Tensor, Tensor | None]:
    """Identity activation: K = s12, dot = 1 (a deep linear network)."""
    return s12, (torch.ones_like(s12) if need_dot else None)


TRANSFORMS: dict[str, Callable[..., tuple[Tensor, Tensor | None]]] = {
    "relu": relu, "leaky_relu": leaky_relu, "erf": erf, "linear": linear,
}


def torch_activation(name: str, *, negative_slope: float = 0.01) -> Callable[[Tensor], Tensor]:
    """The pointwise function whose kernel ``TRANSFORMS[name]`` computes (for finite networks)."""
    if name == "relu":
        return torch.relu
    if name == "leaky_relu":
        return lambda x: torch.nn.functional.leaky_relu(x, negative_slope)
    if name == "erf":
        return torch.erf
    return lambda x: x
