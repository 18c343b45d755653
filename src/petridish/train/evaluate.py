"""Chunked, gradient-free evaluation of loss and accuracy."""
from __future__ import annotations

from typing import Callable

import torch

from petridish.losses import per_example

CHUNK = 4096   # rows per forward pass: bounds memory for 12k-example test sets


@torch.no_grad()
def evaluate(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             loss: str, *, members: int | None = None) -> dict[str, torch.Tensor]:
    """Mean loss (and accuracy, for integer labels) of ``forward`` on (x, y).

    ``forward`` maps a chunk (c, ...) to (c, k) or, for an ensemble of ``members`` K,
    to (K, c, k). ``y`` is (n,)/(n, k) shared, or (K, n)/(K, n, k) per member.
    Returns float64 scalars, or (K,) tensors for an ensemble. Sums are taken per member,
    so a diverged member's NaN never touches another member's numbers.
    """
    n = x.shape[0]
    per_member = members is not None and y.shape[:2] == (members, n) and (y.dim() >= 2)
    loss_sum = acc_sum = None
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        out = forward(x[start:stop])                       # (c, k) or (K, c, k)
        yb = y[:, start:stop] if per_member else y[start:stop]
        if members is not None and not per_member:
            yb = yb.unsqueeze(0).expand(out.shape[0], *yb.shape)
        l, a = _sums(out, yb, loss)
        loss_sum = l if loss_sum is None else loss_sum + l
        if a is not None:
            acc_sum = a if acc_sum is None else acc_sum + a
    res = {"loss": loss_sum / n}
    if acc_sum is not None:
        res["accuracy"] = acc_sum / n
    return res


def _sums(out: torch.Tensor, y: torch.Tensor, loss: str):
    """Per-model sums over the chunk of the loss and of correct predictions."""
    out = out.to(torch.float64)
    l = per_example(out, y, loss).sum(-1)                 # () or (K,)
    a = None
    if not y.is_floating_point():
        a = (out.argmax(-1) == y).to(torch.float64).sum(-1)
    return l, a
