"""Training losses: softmax cross-entropy ("ce") and mean squared error ("mse")."""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "mse")


def mse_target(y: torch.Tensor, out_dim: int) -> torch.Tensor:
    """Float target shaped like the model output (batch, out_dim).

    Integer class labels become one-hot vectors; (n,) regression targets become (n, 1).
    """
    if not y.is_floating_point():
        # == against arange rather than F.one_hot, which calls .item() (not vmap-able)
        return (y.unsqueeze(-1) == torch.arange(out_dim, device=y.device)).to(torch.float32)
    return y.reshape(y.shape[0], -1)


def loss_value(out: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss over the batch. out (batch, k); y int64 (batch,) or float (batch,) / (batch, k).

    ``mse`` is ``F.mse_loss`` (mean over batch *and* outputs) against :func:`mse_target`.
    """
    if loss == "ce":
        return F.cross_entropy(out, y)
    return F.mse_loss(out, mse_target(y, out.shape[-1]))
