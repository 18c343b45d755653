"""What runs on a worker: one task (a group of cells) -> finished Cell records.

Workers never touch the store; the driver commits what they return. This function
is top-level and its inputs are plain data, so process pools and Ray can ship it.
"""
from __future__ import annotations

import math
import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

import torch

from petridish.lab.experiment import Cell, Experiment, Pruned


@dataclass(frozen=True)
class Task:
    """A group of cells run in one call (one cell unless the experiment batches)."""

    experiment: str
    cells: tuple[tuple[str, dict[str, Any], int], ...]   # (key, params, seed)
    threads: int = 1                                     # torch intra-op threads for this task
    source: str | None = None    # module defining the experiment, for ones outside the catalogue


def resolve_task_experiment(task: Task) -> Experiment:
    """The catalogue's experiment of that name, else the one defined in ``task.source``."""
    from petridish.experiments import catalogue
    cat = catalogue()
    if task.experiment in cat:
        return cat[task.experiment]
    if task.source:
        import importlib
        mod = importlib.import_module(task.source)
        for v in vars(mod).values():
            if isinstance(v, Experiment) and v.name == task.experiment:
                return v
    from petridish.experiments import get
    return get(task.experiment)


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def _status(metrics: dict[str, Any]) -> str:
    if metrics.get("diverged"):
        return "diverged"
    for v in metrics.values():
        if isinstance(v, float) and not math.isfinite(v) and metrics.get("diverged") is None:
            return "done"   # non-finite metrics are the experiment's call, not the lab's
    return "done"


def run_task(task: Task, experiment: Experiment | None = None) -> list[Cell]:
    """Run every cell of ``task``; an exception fails only the cells it belongs to."""
    if experiment is None:
        experiment = resolve_task_experiment(task)
    torch.set_num_threads(max(1, int(task.threads)))
    t0 = time.perf_counter()
    out: list[Cell] = []
    keys = [c[0] for c in task.cells]
    params = [c[1] for c in task.cells]
    seeds = [c[2] for c in task.cells]
    if experiment.run_group is not None and len(task.cells) > 1:
        try:
            results = experiment.run_group(params, seeds)
            wall = (time.perf_counter() - t0) / len(task.cells)
            for k, p, s, m in zip(keys, params, seeds, results):
                out.append(Cell(k, experiment.name, p, s, _status(m), dict(m), None, wall, _peak_rss_mb()))
            return out
        except Exception:   # fall back to one cell at a time so one bad cell fails alone
            pass
    for k, p, s in zip(keys, params, seeds):
        t1 = time.perf_counter()
        try:
            m = experiment.run(dict(p), s)
            out.append(Cell(k, experiment.name, p, s, _status(m), dict(m), None,
                            time.perf_counter() - t1, _peak_rss_mb()))
        except Pruned as e:
            out.append(Cell(k, experiment.name, p, s, "pruned", {}, str(e) or "pruned",
                            time.perf_counter() - t1, _peak_rss_mb()))
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
            if os.environ.get("PETRIDISH_DEBUG"):
                msg += "\n" + traceback.format_exc()
            out.append(Cell(k, experiment.name, p, s, "failed", {}, msg,
                            time.perf_counter() - t1, _peak_rss_mb()))
    return out
