"""Minibatch order, derived only from a seed (so solo and ensemble training agree).

For ``seed`` s: ``g = torch.Generator().manual_seed(s)``; every epoch draws
``torch.randperm(n, generator=g)`` and cuts it into consecutive batches of
``batch_size`` (the last one may be smaller). Full batch (batch_size None or >= n)
uses all examples in their stored order and draws nothing.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch


def steps_per_epoch(n: int, batch_size: int | None) -> int:
    return 1 if batch_size is None or batch_size >= n else math.ceil(n / batch_size)


def epoch_orders(n: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """One epoch's permutation per generator, stacked: int64 (K, n)."""
    return torch.stack([torch.randperm(n, generator=g) for g in generators])


def batch_slices(n: int, batch_size: int | None) -> list[slice]:
    """The batches of one epoch as slices into that epoch's order."""
    if batch_size is None or batch_size >= n:
        return [slice(0, n)]
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def batch_indices(n: int, batch_size: int | None, seed: int) -> Iterator[torch.Tensor | None]:
    """Endless stream of index tensors for one model (None = the full batch)."""
    if batch_size is None or batch_size >= n:
        while True:
            yield None
    g = torch.Generator().manual_seed(seed)
    slices = batch_slices(n, batch_size)
    while True:
        order = torch.randperm(n, generator=g)
        for s in slices:
            yield order[s]
