"""Executors: where tasks run. The contract is written once, in ``executors.base``."""
from __future__ import annotations

import os

from petridish.errors import PetridishError, check_choice
from petridish.lab.executors.base import Executor, WorkerDied
from petridish.lab.executors.local import InProcessExecutor, ProcessPoolExecutorLab

__all__ = ["Executor", "InProcessExecutor", "ProcessPoolExecutorLab", "WorkerDied", "default_workers",
           "make_executor"]


def default_workers(n_tasks: int) -> int:
    """One worker per core (each task runs one thread), never more than there are tasks."""
    return max(1, min(os.cpu_count() or 1, n_tasks))


def make_executor(executor: str | Executor, workers: int | None = None, address: str | None = None, *,
                  n_tasks: int = 1, owner: str = "run") -> Executor:
    """``local``: in this process for 1 worker, else a process pool (``workers=None``: one per core,
    at most ``n_tasks``). ``ray``: Ray tasks, as many at once as the cluster has CPUs."""
    if isinstance(executor, Executor):
        return executor
    check_choice(executor, "executor", owner, ("local", "ray"))
    if executor == "ray":
        try:
            from petridish.lab.executors.ray import RayExecutor
        except ImportError as e:
            raise PetridishError(f"The ray executor needs Ray: pip install 'petridish[ray]' ({e}).") from None
        return RayExecutor(address=address)     # as many in flight as the cluster has CPUs
    workers = default_workers(n_tasks) if workers is None else workers
    return InProcessExecutor() if workers <= 1 else ProcessPoolExecutorLab(workers)
