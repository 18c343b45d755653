"""Validated training settings shared by ``train`` and ``train_ensemble``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from petridish.errors import check_choice, check_number, invalid
from petridish.train.batches import steps_per_epoch
from petridish.losses import NAMES as LOSSES, canonical
from petridish.train.schedules import SCHEDULES

OPTIMIZERS = ("sgd", "gd", "adam", "adagrad", "rmsprop")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str
    loss: str
    batch_size: int | None                  # None = full batch
    steps: int
    schedule: str
    warmup_fraction: float
    target_loss: float | None
    eval_every: int | None
    betas: tuple[float, float]
    eps: float


def check_data(x: torch.Tensor, y: torch.Tensor, owner: str, *, per_member: int | None = None) -> None:
    """x (n, ...) tensor; y (n,)/(n, k) or, when per_member=K, also (K, n)/(K, n, k)."""
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] < 1:
        raise invalid("x", owner, "a tensor with at least one example (n, ...)", type(x).__name__)
    if not isinstance(y, torch.Tensor):
        raise invalid("y", owner, f"a tensor with {x.shape[0]} rows", type(y).__name__)
    n = x.shape[0]
    ok = y.shape[:1] == (n,)
    if per_member is not None and not ok:
        ok = y.dim() >= 2 and y.shape[:2] == (per_member, n)
    if not ok:
        shape = f"({n},) or ({per_member}, {n})" if per_member is not None else f"({n}, ...)"
        raise invalid("y", owner, f"a tensor of shape {shape}", tuple(y.shape))


def make_config(owner: str, *, n: int, optimizer: str, loss: str, batch_size: Any, steps: Any,
                epochs: Any, schedule: str, warmup_fraction: Any, target_loss: Any, eval_every: Any,
                betas: Sequence[float], eps: Any) -> TrainConfig:
    check_choice(optimizer, "optimizer", owner, OPTIMIZERS)
    check_choice(loss, "loss", owner, LOSSES)
    check_choice(schedule, "schedule", owner, SCHEDULES)
    if batch_size is not None:
        batch_size = check_number(batch_size, "batch_size", owner, kind=int, low=1)
        if batch_size >= n:
            batch_size = None
    if optimizer == "gd" and batch_size is not None:
        raise invalid("batch_size", owner, "None (full batch) when optimizer='gd'", batch_size)
    if (steps is None) == (epochs is None):
        raise invalid("steps", owner, "given exactly when 'epochs' is not (one of them, not both)", steps)
    if steps is not None:
        steps = check_number(steps, "steps", owner, kind=int, low=1)
    else:
        epochs = check_number(epochs, "epochs", owner, kind=int, low=1)
        steps = epochs * steps_per_epoch(n, batch_size)
    warmup_fraction = check_number(warmup_fraction, "warmup_fraction", owner, low=0, high=1)
    if target_loss is not None:
        target_loss = check_number(target_loss, "target_loss", owner, low=0)
    if eval_every is not None:
        eval_every = check_number(eval_every, "eval_every", owner, kind=int, low=1)
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise invalid("betas", owner, "a pair of floats in [0, 1)", betas)
    b1 = check_number(betas[0], "betas", owner, low=0, high=1, high_open=True)
    b2 = check_number(betas[1], "betas", owner, low=0, high=1, high_open=True)
    eps = check_number(eps, "eps", owner, low=0, low_open=True)
    return TrainConfig(optimizer, canonical(loss), batch_size, steps, schedule, warmup_fraction, target_loss,
                       eval_every, (b1, b2), eps)


def per_member(value: Any, name: str, owner: str, k: int, *, low: float, low_open: bool = False,
               high: float | None = None, high_open: bool = False) -> torch.Tensor:
    """A scalar or length-K sequence -> float64 tensor (K,), each entry validated."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        if len(value) != k:
            raise invalid(name, owner, f"a float or a sequence of {k} floats (one per member)", value)
        vals = [check_number(v, name, owner, low=low, low_open=low_open, high=high, high_open=high_open)
                for v in value]
    else:
        vals = [check_number(value, name, owner, low=low, low_open=low_open, high=high,
                             high_open=high_open)] * k
    return torch.tensor(vals, dtype=torch.float64)


def eval_points(steps: int, eval_every: int | None) -> list[int]:
    """Update counts after which eval sets are measured: every ``eval_every`` and the end."""
    if eval_every is None:
        return [steps]
    pts = list(range(eval_every, steps + 1, eval_every))
    return pts if pts and pts[-1] == steps else pts + [steps]
