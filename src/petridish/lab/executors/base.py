"""Executors: the abstract class, whose docstring is the contract every backend keeps."""
from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections import deque
from typing import Callable, Iterable, Iterator

from petridish.lab.experiment import Cell
from petridish.lab.worker import Task, failed_cells


class WorkerDied(Exception):
    """What ``_collect`` returns for a task whose worker process or node was lost."""


class Executor(ABC):
    """The executor contract, written once; every backend (in-process, process pool, Ray) keeps it.

    ``submit(task) -> ticket`` hands a task over and returns a ticket (an int, unique per
    executor); pools return at once, the in-process executor runs the task first. ``wait() -> [(ticket, cells)]`` blocks until at least one
    submitted task is finished and returns every finished one, each with its list of
    ``Cell`` records (one per cell of the task, in the task's order); it returns ``[]``
    when nothing is in flight. ``run(tasks)`` feeds tasks through ``submit``/``wait``,
    keeping at most ``2 × workers`` in flight, and yields ``(task, cells)`` as each lands.

    * An executor never writes the store: the driver commits each returned list before
      it waits again, so a crash loses at most the tasks in flight.
    * Each task runs with one thread (``run_task``), so a cell's bits do not depend on the
      executor or on how many workers share the machine.
    * An exception raised by the experiment is not retried: ``run_task`` turns it into
      ``failed`` cells. An error outside the experiment (a task that cannot be pickled)
      gives ``failed`` cells at once.
    * A task whose worker dies (killed process, lost node) is run again, at most
      ``max_retries`` times (2 by default); then its cells come back ``failed`` with
      "worker died N times". A process pool loses every task in flight when one worker
      dies: each of them counts one attempt.
    * ``close()`` cancels what is in flight and releases the workers; it is safe to call
      twice, and executors are context managers.

    * Progress: if ``progress`` is set (``progress(task, done, total)``), each running task's
      training steps (``petridish.steps``) reach it a few times a second, on the driver's
      thread, while ``submit`` (in-process) or ``wait`` (pools) runs. ``done`` never goes down
      for a task, retries included; messages of a task that has ended are dropped. Progress
      never changes what a task computes.

    Backends implement two hooks: ``_start(ticket, task)`` and ``_collect()``, which blocks
    until at least one started task ends and returns ``[(ticket, cells or WorkerDied)]``;
    backends with workers elsewhere forward their progress to ``_report`` while they wait.
    Retries live here, once.
    """

    name: str = "?"
    workers: int = 1
    max_retries: int = 2
    progress: Callable[[Task, int, int], None] | None = None   # (task, steps done, steps expected)

    def __init__(self) -> None:
        self._tickets = itertools.count()
        self._pending: dict[int, tuple[Task, int]] = {}       # ticket -> (task, attempts so far)
        self._steps: dict[int, tuple[int, int]] = {}           # ticket -> highest (done, total) so far

    def _report(self, ticket: int, done: int, total: int) -> None:
        """A worker's ``(done, total)`` for ``ticket``: passed on, never going down, if the task still runs."""
        if self.progress is None or ticket not in self._pending:
            return
        d0, t0 = self._steps.get(ticket, (0, 0))
        if done < d0 or (done == d0 and total <= t0):    # a retry starting over, or nothing new
            return
        self._steps[ticket] = (done, max(total, t0))
        self.progress(self._pending[ticket][0], done, max(total, t0))

    @abstractmethod
    def _start(self, ticket: int, task: Task) -> None:
        """Begin running ``task`` (may run it right away)."""

    @abstractmethod
    def _collect(self) -> list[tuple[int, list[Cell] | WorkerDied]]:
        """Block until at least one started task ends; return the ones that did."""

    def submit(self, task: Task) -> int:
        ticket = next(self._tickets)
        self._pending[ticket] = (task, 0)
        self._start(ticket, task)
        return ticket

    def wait(self) -> list[tuple[int, list[Cell]]]:
        out: list[tuple[int, list[Cell]]] = []
        while self._pending and not out:
            for ticket, result in self._collect():
                task, attempts = self._pending[ticket]
                if isinstance(result, WorkerDied):
                    if attempts < self.max_retries:
                        self._pending[ticket] = (task, attempts + 1)
                        self._start(ticket, task)
                        continue
                    result = failed_cells(task, f"worker died {attempts + 1} times: {result}")
                del self._pending[ticket]
                self._steps.pop(ticket, None)
                out.append((ticket, result))
        return out

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, list[Cell]]]:
        queue = deque(tasks)
        mine: dict[int, Task] = {}
        while queue or mine:
            while queue and len(self._pending) < 2 * self.workers:
                task = queue.popleft()
                mine[self.submit(task)] = task
            for ticket, cells in self.wait():
                yield mine.pop(ticket), cells

    def in_flight(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Cancel what is in flight and release the workers. Safe to call twice."""
        self._pending.clear()
        self._steps.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
