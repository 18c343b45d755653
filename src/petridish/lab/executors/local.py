"""Local execution: in this process (one worker), or a pool of spawned processes."""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any

from petridish.errors import check_number
from petridish.lab.executors.base import Executor, WorkerDied
from petridish.lab.experiment import Cell
from petridish.lab.worker import Task, failed_cells, run_queued, run_task, set_queue

POLL_S = 0.25     # how often the driver drains progress messages while it waits for results


class PipeWriter:
    """The workers' end of the progress pipe, with the ``put`` that ``worker.QueueSink`` calls."""

    def __init__(self, conn: Any):
        self.conn = conn

    def put(self, item: Any) -> None:
        self.conn.send(item)          # (ticket, done, total): one write of < 100 bytes


class InProcessExecutor(Executor):
    """Runs each task in this process as it is submitted (``--workers 1``)."""

    name = "local"

    def __init__(self) -> None:
        super().__init__()
        self._done: list[tuple[int, list[Cell]]] = []

    def _start(self, ticket: int, task: Task) -> None:
        sink = partial(self._report, ticket) if self.progress is not None else None
        self._done.append((ticket, run_task(task, sink)))

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

    Progress travels through one pipe per pool, whose writing end each worker gets when it
    starts; the driver drains it every ``POLL_S`` seconds while it waits, and once more
    when a result lands. A worker's message is one synchronous write of a few dozen bytes
    (atomic below PIPE_BUF, so the workers share the pipe without a lock that a killed
    worker could leave held), so a task's last message is in the pipe before its result.
    """

    name = "local"

    def __init__(self, workers: int, max_retries: int = 2):
        super().__init__()
        self.workers = check_number(workers, "workers", "ProcessPoolExecutorLab", kind=int, low=1)
        self.max_retries = check_number(max_retries, "max_retries", "ProcessPoolExecutorLab", kind=int, low=0)
        self._pool: ProcessPoolExecutor | None = None
        self._pipe: Any = None                       # progress (ticket, done, total): (reader, writer)
        self._futures: dict[Future, int] = {}

    def _start(self, ticket: int, task: Task) -> None:
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._pipe = ctx.Pipe(duplex=False) if self.progress is not None else None  # nobody listens: none
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                             initializer=set_queue if self._pipe is not None else None,
                                             initargs=(PipeWriter(self._pipe[1]),) if self._pipe else ())
        self._futures[self._pool.submit(run_queued, task, ticket)] = ticket

    def _drain(self) -> None:
        """Pass on every progress message waiting in the pipe."""
        while self._pipe is not None:
            try:
                if not self._pipe[0].poll():
                    return
                ticket, done, total = self._pipe[0].recv()
            except (OSError, ValueError, EOFError):     # a closed or broken pipe: progress stops
                return
            self._report(ticket, done, total)

    def _collect(self) -> list[tuple[int, list[Cell] | WorkerDied]]:
        done: set[Future] = set()
        while not done and self._futures:
            done, _ = wait(list(self._futures), timeout=POLL_S, return_when=FIRST_COMPLETED)
            self._drain()
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
        if self._pipe is not None:           # a fresh pool gets a fresh pipe
            for conn in self._pipe:
                conn.close()
            self._pipe = None

    def close(self) -> None:
        super().close()
        self._futures.clear()
        self._shutdown()
