"""The executor contract.

An executor takes tasks and yields, for each, the list of finished ``Cell`` records
as soon as that task completes (any order). It never writes the store: the driver
commits each yielded list before asking for the next, so a crash loses at most the
tasks in flight.

If a task's worker dies (killed process, lost node), the executor retries it up to
``max_retries`` times and then yields its cells with status ``failed`` and the error.
Exceptions raised by the experiment are not retried: ``run_task`` already turns them
into ``failed`` cells.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable, Iterator

from petridish.lab.experiment import Cell
from petridish.lab.worker import Task


class Executor(ABC):
    name: str = "?"
    max_retries: int = 2

    @abstractmethod
    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, list[Cell]]]:
        """Yield (task, cells) as tasks finish."""

    def close(self) -> None:
        """Release workers. Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def failed_cells(task: Task, error: str) -> list[Cell]:
    return [Cell(k, task.experiment, p, s, "failed", {}, error) for k, p, s in task.cells]
