"""One way to pin thread pools: ``with pin_threads(1): ...``.

Inside the block torch's intra-op pool and the BLAS/OpenMP pools that NumPy and
SciPy load (through threadpoolctl) run ``n`` threads; on exit the old counts come
back. The lab runs every cell under ``pin_threads(1)`` (float reductions then split the
same way on every executor), and code made of many tiny ops uses it because an
OpenMP team per op costs more than the op.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from threadpoolctl import threadpool_limits


@contextmanager
def pin_threads(n: int = 1) -> Iterator[None]:
    import torch                       # here, not at module level: the CLI's start-up needs no torch
    n = max(1, int(n))
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(old)
