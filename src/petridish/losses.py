"""The one loss module: training (``petridish.train``, every ensemble engine), evaluation and
the instruments (Hessian, sharpness, flatness) all compute their losses here.

* ``cross_entropy`` (alias ``ce``): the mean over examples of softmax cross-entropy; integer
  class labels (n,).
* ``mse``: ½·(1/n)·Σᵢ‖f(xᵢ) − yᵢ‖², half the squared error summed over outputs, averaged over
  examples. This is the convention of the NTK theory and of ``petridish.kernels.ntk_predict``
  (gradient flow df/dt = −Θ(f − y)/n), so the Hessian of a linear model is XᵀX/n ⊗ I and a
  2/η edge-of-stability check applies as written. Integer labels become one-hot targets;
  float targets (n,) or (n, k) are compared with the output as they are.

The gradient of ``mse`` with respect to the outputs is (f − y)/n: the hand-written backward of
``train/fast_mlp.py`` uses exactly that (``mse_output_grad``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("cross_entropy", "mse")
ALIASES = {"ce": "cross_entropy"}
NAMES = LOSSES + tuple(ALIASES)           # what a ``loss=`` argument accepts


def canonical(loss: str) -> str:
    """The loss's canonical name ("ce" -> "cross_entropy")."""
    return ALIASES.get(loss, loss)


def mse_target(y: torch.Tensor, out_dim: int) -> torch.Tensor:
    """Float target shaped like the model output (batch, out_dim).

    Integer class labels become one-hot vectors; (n,) regression targets become (n, 1).
    """
    if not y.is_floating_point():
        # == against arange rather than F.one_hot, which calls .item() (not vmap-able)
        return (y.unsqueeze(-1) == torch.arange(out_dim, device=y.device)).to(torch.float32)
    return y.reshape(y.shape[0], -1)


def per_example(out: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The loss of each example: out (..., B, k), y (..., B) labels or (..., B[, k]) targets
    -> (..., B). Leading dimensions (ensemble members) are kept."""
    loss = canonical(loss)
    lead, b, k = out.shape[:-2], out.shape[-2], out.shape[-1]
    flat_out = out.reshape(-1, k)
    if loss == "cross_entropy":
        return F.cross_entropy(flat_out, y.reshape(-1), reduction="none").reshape(*lead, b)
    flat_y = y.reshape(-1, *y.shape[len(lead) + 1:])
    target = mse_target(flat_y, k).to(out.dtype).reshape(flat_out.shape)
    return 0.5 * (flat_out - target).pow(2).sum(-1).reshape(*lead, b)


def loss_value(out: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss over the batch. out (batch, k); y int64 (batch,) or float (batch,) / (batch, k)."""
    return per_example(out, y, loss).mean()


def mse_output_grad(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """d mse / d out for a batch of B examples, out and target (..., B, k): (out − target)/B."""
    return (out - target) / out.shape[-2]
