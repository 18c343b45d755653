"""Width buckets: train MLPs of several widths as one stacked ensemble by zero-padding.

A hidden unit whose incoming weights, bias and outgoing weights are all 0 outputs
ReLU(0) = 0 and gets zero gradients (its input and output are both 0), so under SGD with
momentum it stays exactly 0: an MLP of width w padded to width W > w computes the same
function and follows the same trajectory, up to float rounding of sums with extra zeros.
Padding trades arithmetic for fewer, larger steps; ``plan`` picks the buckets.
"""
from __future__ import annotations

import torch

from petridish.models.registry import build_model

# Fixed cost of one training step, in multiply-adds of one member of width w per example
# (w² + (d_in + classes)·w): measured ~0.45 ms step overhead vs ~2.3e-5 ms per unit on one core.
STEP_OVERHEAD = 20_000


def step_cost(width: int, members: int, *, d_in: int = 40, classes: int = 10) -> float:
    """Relative cost of one step of ``members`` MLPs of ``width`` (two hidden layers)."""
    return STEP_OVERHEAD + members * (width * width + (d_in + classes) * width)


def plan(counts: dict[int, int]) -> list[list[int]]:
    """Partition the sorted widths into contiguous buckets minimizing Σ step_cost(max, members).

    ``counts`` maps width -> members of that width; exact O(m²) dynamic programme.
    """
    ws = sorted(counts)
    best = [0.0] + [float("inf")] * len(ws)           # best[j]: cost of the first j widths
    cut = [0] * (len(ws) + 1)
    for j in range(1, len(ws) + 1):
        members = 0
        for i in range(j - 1, -1, -1):                 # bucket ws[i:j], padded to ws[j-1]
            members += counts[ws[i]]
            c = best[i] + step_cost(ws[j - 1], members)
            if c < best[j]:
                best[j], cut[j] = c, i
    out, j = [], len(ws)
    while j > 0:
        out.append(ws[cut[j]:j])
        j = cut[j]
    return out[::-1]


@torch.no_grad()
def padded_mlp(width: int, pad: int, seed: int, *, d_in: int = 40, classes: int = 10) -> torch.nn.Module:
    """The seeded d_in→width→width→classes ReLU MLP embedded in one of width ``pad`` (zeros elsewhere)."""
    small = build_model("mlp", d_in=d_in, d_out=classes, seed=seed, width=width, depth=2)
    if pad == width:
        return small
    big = build_model("mlp", d_in=d_in, d_out=classes, seed=seed, width=pad, depth=2)
    for src, dst in zip(small.layers, big.layers):
        dst.weight.zero_()
        dst.bias.zero_()
        out_dim, in_dim = src.weight.shape
        dst.weight[:out_dim, :in_dim] = src.weight
        dst.bias[:out_dim] = src.bias
    return big
