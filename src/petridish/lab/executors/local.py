"""Local execution: in this process (one worker), or a pool of spawned processes."""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from petridish.errors import check_number
from petridish.lab.executors.base import Executor, WorkerDied
from petridish.lab.experiment import Cell
from petridish.lab.worker import Task, failed_cells, run_task


class InProcessExecutor(Executor):
    """Runs each task in this process as it is submitted (``--workers 1``)."""

    name = "local"

    def __init__(self) -> None:
        super().__init__()
        self._done: list[tuple[int, list[Cell]]] = []

    def _start(self, ticket: int, task: Task) -> None:
        self._done.append((ticket, run_task(task)))

    def _collect(self) -> list[tuple[int, list[Cell] | WorkerDied]]:
        out, self._done = self._done, []
        return out

    def close(self) -> None:
        super().close()
        self._done = []


class ProcessPoolExecutorLab(Executor):
    """A pool of ``workers`` spawned processes, one task (and one thread) each at a time.

    A worker that dies breaks the pool: every task in flight is reported as lost
    (and retried by the base class), and a fresh pool is started for what follows.
    """

    name = "local"

    def __init__(self, workers: int, max_retries: int = 2):
        super().__init__()
        self.workers = check_number(workers, "workers", "ProcessPoolExecutorLab", kind=int, low=1)
        self.max_retries = check_number(max_retries, "max_retries", "ProcessPoolExecutorLab", kind=int, low=0)
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Future, int] = {}

    def _start(self, ticket: int, task: Task) -> None:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))
        self._futures[self._pool.submit(run_task, task)] = ticket

    def _collect(self) -> list[tuple[int, list[Cell] | WorkerDied]]:
        done, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
        out: list[tuple[int, list[Cell] | WorkerDied]] = []
        broken = False
        for fut in done:
            ticket = self._futures.pop(fut)
            try:
                out.append((ticket, fut.result()))
            except BrokenProcessPool as e:
                broken = True
                out.append((ticket, WorkerDied(f"{type(e).__name__}: {e}")))
            except Exception as e:      # the task or its result could not be pickled, and the like
                task, _ = self._pending[ticket]
                out.append((ticket, failed_cells(task, f"{type(e).__name__}: {e}")))
        if broken:                      # every task in flight went down with the pool
            out += [(t, WorkerDied("the worker pool broke while this task ran")) for t in self._futures.values()]
            self._futures.clear()
            self._shutdown()
        return out

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        super().close()
        self._futures.clear()
        self._shutdown()
