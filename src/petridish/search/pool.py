"""Where trials run: in this process, in a process pool, or as Ray tasks.

Adaptive search asks for a new trial only when one finishes (the sampler learns from
every result), so it needs a pool it can feed one trial at a time; the sweep executors
take their whole task list up front. ``submit`` returns a handle; ``wait`` blocks until
at least one trial finishes and returns ``[(handle, cells)]``. A trial whose worker dies
comes back as ``failed`` cells (the study marks it failed; the budget moves on).
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from typing import Any

from petridish.errors import PetridishError, check_choice
from petridish.lab.executors.base import failed_cells
from petridish.lab.experiment import Cell, Experiment
from petridish.lab.worker import Task
from petridish.search.trial import TrialSpec, run_trial


class InlinePool:
    """One trial at a time, in this process (``--workers 1``)."""

    def __init__(self, experiment: Experiment | None = None):
        self.experiment = experiment
        self.threads = max(1, os.cpu_count() or 1)
        self._done: deque = deque()
        self._n = 0

    def submit(self, task: Task, spec: TrialSpec) -> Any:
        self._n += 1
        self._done.append((self._n, run_trial(replace(task, threads=self.threads), spec,
                                              self.experiment)))
        return self._n

    def wait(self) -> list[tuple[Any, list[Cell]]]:
        out = list(self._done)
        self._done.clear()
        return out

    def close(self) -> None: ...


class ProcessPool:
    """``workers`` spawned processes, each with cpu_count // workers torch threads."""

    def __init__(self, workers: int, experiment: Experiment | None = None):
        self.workers = workers
        self.experiment = experiment
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
        self._inflight: dict[Future, Task] = {}

    def submit(self, task: Task, spec: TrialSpec) -> Any:
        t = replace(task, threads=self.threads)   # keeps .source
        fut = self._pool.submit(run_trial, t, spec, self.experiment)
        self._inflight[fut] = t
        return fut

    def wait(self) -> list[tuple[Any, list[Cell]]]:
        done, _ = wait(list(self._inflight), return_when=FIRST_COMPLETED)
        out, broken = [], False
        for fut in done:
            task = self._inflight.pop(fut)
            try:
                out.append((fut, fut.result()))
            except Exception as e:   # BrokenProcessPool (a worker died), pickling errors
                broken = broken or "BrokenProcessPool" in type(e).__name__
                out.append((fut, failed_cells(task, f"{type(e).__name__}: {e}")))
        if broken:                   # every trial in flight is lost with the pool
            for fut, task in list(self._inflight.items()):
                self._inflight.pop(fut)
                out.append((fut, failed_cells(task, "worker pool broke while this trial ran")))
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class RayPool:
    """Trials as Ray tasks (one CPU each) on a local instance or a cluster."""

    def __init__(self, workers: int, address: str | None = None, experiment: Experiment | None = None):
        import ray

        from petridish.lab.executors.ray import connect
        self._ray = ray
        self._started = connect(address, None)
        self.workers = workers
        self._remote = ray.remote(num_cpus=1, max_retries=0)(run_trial)
        self._exp = ray.put(experiment)
        self._inflight: dict[Any, Task] = {}

    def submit(self, task: Task, spec: TrialSpec) -> Any:
        t = replace(task, threads=1)
        ref = self._remote.remote(t, spec, self._exp)
        self._inflight[ref] = t
        return ref

    def wait(self) -> list[tuple[Any, list[Cell]]]:
        ready, _ = self._ray.wait(list(self._inflight), num_returns=1)
        out = []
        for ref in ready:
            task = self._inflight.pop(ref)
            try:
                out.append((ref, self._ray.get(ref)))
            except Exception as e:   # worker died, node lost
                first = (str(e).strip().splitlines() or [""])[0]
                out.append((ref, failed_cells(task, f"{type(e).__name__}: {first}")))
        return out

    def close(self) -> None:
        for ref in list(self._inflight):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:
                pass
        self._inflight.clear()
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()


def make_pool(executor: str, workers: int, address: str | None, experiment: Experiment | None):
    check_choice(executor, "executor", "search", ("local", "ray"))
    if executor == "ray":
        try:
            return RayPool(workers, address, experiment)
        except ImportError as e:
            raise PetridishError(f"The ray executor needs Ray: pip install 'petridish[ray]' ({e}).") from None
    return InlinePool(experiment) if workers <= 1 else ProcessPool(workers, experiment)
