"""What runs on a worker: one task (a group of cells) -> finished Cell records.

A task carries its experiment itself (pickled by reference to the module that defines
its functions), so a worker never looks a name up. Workers never touch the store; the
driver commits what they return. ``run_task`` is top-level and its input is plain
data, so process pools and Ray can ship it.

Every task runs with one thread (``petridish.threads.pin_threads(1)``) on every executor:
float reductions are then split the same way everywhere, and cells come out bitwise
identical whichever executor and worker count ran them. It runs inside
``petridish.device.use_device(task.device)``, so training, kernels and instruments
compute on that device ("cpu" unless the run asked for CUDA).

Progress: ``run_task(task, progress)`` listens to the training steps the task reports
through ``petridish.steps`` and hands ``progress(done, total)`` a few times a second.
Process-pool workers get a queue (anything with ``put``) once, when they start
(``set_queue``), and ``run_queued(task, ticket)`` puts ``(ticket, done, total)`` on it.
"""
from __future__ import annotations

import os
import resource
import sys
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

from petridish import steps
from petridish.device import use_device
from petridish.lab.experiment import Cell, Experiment, Pruned, reset_reporter, set_reporter
from petridish.threads import pin_threads


@dataclass(frozen=True)
class Task:
    """A group of cells run in one call (one cell unless the experiment batches).

    ``reporter``, if given, receives the cells' ``report_intermediate`` calls (adaptive
    search's pruning); it must be picklable.
    """

    experiment: Experiment
    cells: tuple[tuple[str, dict[str, Any], int], ...]   # (key, params, seed)
    reporter: Callable[[int, float, str | None], None] | None = None
    device: str = "cpu"                                  # "cpu" or "cuda", resolved by the driver

    @property
    def name(self) -> str:
        return self.experiment.name


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def _status(metrics: dict[str, Any]) -> str:
    return "diverged" if metrics.get("diverged") else "done"


def failed_cells(task: Task, error: str) -> list[Cell]:
    return [Cell(k, task.name, p, s, "failed", {}, error) for k, p, s in task.cells]


def run_task(task: Task, progress: steps.Sink | None = None) -> list[Cell]:
    """Run every cell of ``task`` on one thread; an exception fails only the cells it belongs to.
    ``progress(done, total)`` receives the task's training steps, cumulative, ~4 times a second."""
    token = set_reporter(task.reporter) if task.reporter is not None else None
    try:
        with pin_threads(1), use_device(task.device), \
                (steps.listen(progress) if progress is not None else nullcontext()):
            return _run_cells(task)
    finally:
        if token is not None:
            reset_reporter(token)


_QUEUE: Any = None     # this worker process's channel to the driver (set_queue): has put(item)


def set_queue(queue: Any) -> None:
    """Process-pool initializer: remember the channel to the driver (``local.PipeWriter``)."""
    global _QUEUE
    _QUEUE = queue


class QueueSink:
    """``(done, total)`` -> ``queue.put((ticket, done, total))``; picklable (Ray ships it in the task call)."""

    def __init__(self, queue: Any, ticket: int):
        self.queue, self.ticket = queue, ticket

    def __call__(self, done: int, total: int) -> None:
        try:
            self.queue.put((self.ticket, done, total))   # local.PipeWriter or ray.util.queue.Queue
        except Exception:       # a closed queue or a lost queue actor loses a message, never the task
            pass


def run_queued(task: Task, ticket: int) -> list[Cell]:
    """``run_task`` in a process-pool worker, its progress sent through the queue from ``set_queue``."""
    return run_task(task, QueueSink(_QUEUE, ticket) if _QUEUE is not None else None)


def _run_cells(task: Task) -> list[Cell]:
    exp = task.experiment
    keys = [c[0] for c in task.cells]
    params = [c[1] for c in task.cells]
    seeds = [c[2] for c in task.cells]
    if exp.run_group is not None and len(task.cells) > 1:
        t0 = time.perf_counter()
        try:
            results = exp.run_group(params, seeds)
        except Exception:   # fall back to one cell at a time so one bad cell fails alone
            results = None
        if results is not None:
            wall = (time.perf_counter() - t0) / len(task.cells)
            return [Cell(k, exp.name, p, s, _status(m), dict(m), None, wall, _peak_rss_mb())
                    for k, p, s, m in zip(keys, params, seeds, results)]
    return [_run_cell(exp, k, p, s) for k, p, s in zip(keys, params, seeds)]


def _run_cell(exp: Experiment, key: str, params: dict[str, Any], seed: int) -> Cell:
    t1 = time.perf_counter()
    try:
        m = exp.run(dict(params), seed)
        return Cell(key, exp.name, params, seed, _status(m), dict(m), None, time.perf_counter() - t1, _peak_rss_mb())
    except Pruned as e:
        return Cell(key, exp.name, params, seed, "pruned", {}, str(e) or "pruned",
                    time.perf_counter() - t1, _peak_rss_mb())
    except Exception as e:
        msg = f"{type(e).__name__}: {e}"
        if os.environ.get("PETRIDISH_DEBUG"):
            msg += "\n" + traceback.format_exc()
        return Cell(key, exp.name, params, seed, "failed", {}, msg, time.perf_counter() - t1, _peak_rss_mb())
