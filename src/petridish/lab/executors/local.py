"""Local execution: in-process for one worker, a process pool for several."""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable, Iterator

from petridish.lab.executors.base import Executor, failed_cells
from petridish.lab.experiment import Cell
from petridish.lab.worker import Task, run_task


class InProcessExecutor(Executor):
    """Runs tasks one after another in this process (``--workers 1``)."""

    name = "local"

    def __init__(self, threads: int | None = None):
        self.threads = threads or max(1, os.cpu_count() or 1)

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, list[Cell]]]:
        for t in tasks:
            t = Task(t.experiment, t.cells, self.threads, t.source)
            yield t, run_task(t)


class ProcessPoolExecutorLab(Executor):
    """A pool of ``workers`` spawned processes, each with cpu_count // workers threads.

    A worker that dies breaks the pool; the pool is rebuilt and the tasks that were
    in flight are retried, each at most ``max_retries`` times.
    """

    name = "local"

    def __init__(self, workers: int, max_retries: int = 2):
        self.workers = workers
        self.max_retries = max_retries
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, list[Cell]]]:
        queue = [Task(t.experiment, t.cells, self.threads, t.source) for t in tasks]
        attempts: dict[int, int] = {}
        self._pool = self._new_pool()
        inflight: dict[Future, tuple[int, Task]] = {}
        nxt = 0
        while nxt < len(queue) or inflight:
            while nxt < len(queue) and len(inflight) < 2 * self.workers:
                inflight[self._pool.submit(run_task, queue[nxt])] = (nxt, queue[nxt])
                nxt += 1
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                idx, task = inflight.pop(fut)
                try:
                    yield task, fut.result()
                except BrokenProcessPool as e:
                    broken = True
                    attempts[idx] = attempts.get(idx, 0) + 1
                    if attempts[idx] > self.max_retries:
                        yield task, failed_cells(task, f"worker died {attempts[idx]} times: {e}")
                    else:
                        queue.append(task)
                        attempts[len(queue) - 1] = attempts[idx]
                except Exception as e:   # pickling errors and the like
                    yield task, failed_cells(task, f"{type(e).__name__}: {e}")
            if broken:
                for fut, (idx, task) in list(inflight.items()):
                    inflight.pop(fut)
                    queue.append(task)
                    attempts[len(queue) - 1] = attempts.get(idx, 0)
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def local_executor(workers: int = 1) -> Executor:
    return InProcessExecutor() if workers <= 1 else ProcessPoolExecutorLab(workers)
