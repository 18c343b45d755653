"""The driver: expand a sweep, skip finished cells, run the rest, commit each as it lands.

The driver is the only writer of the store. Each finished task is committed before the
next result is read, so a crash, a SIGKILL or Ctrl-C loses at most the tasks in flight,
and running the same sweep again resumes it: its run id is a content hash of the sweep,
and cells are found by their own content keys.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from petridish.errors import PetridishError, invalid
from petridish.lab.cellkey import canonical, cell_key
from petridish.lab.executors.base import Executor
from petridish.lab.experiment import Analysis, Cell, Experiment
from petridish.lab.progress import Progress
from petridish.lab.provenance import provenance
from petridish.lab.store import FINISHED, RunRecord, Store, open_store
from petridish.lab.worker import Task


@dataclass
class SweepResult:
    run_id: str
    experiment: str
    cells: list[Cell]
    analysis: Analysis = field(default_factory=Analysis)
    computed: int = 0          # cells computed by this call (the rest came from the store)

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run_id, "experiment": self.experiment,
                "cells": [c.to_json() for c in self.cells],
                "analysis": {"findings": self.analysis.findings, "values": self.analysis.values}}


def resolve(experiment: str | Experiment) -> Experiment:
    if isinstance(experiment, Experiment):
        return experiment
    from petridish.experiments import get
    return get(experiment)


def seed_list(seeds: int | Sequence[int] | None, exp: Experiment, quick: bool) -> list[int]:
    if seeds is None:
        return list(range(exp.n_seeds(quick)))
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise invalid("seeds", "run", "an int >= 1", seeds)
        return list(range(seeds))
    return [int(s) for s in seeds]


def run_id_for(exp: Experiment, cfg: dict[str, Any], seeds: list[int]) -> str:
    blob = canonical({"e": exp.name, "v": exp.version, "c": cfg, "s": seeds})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def make_tasks(exp: Experiment, todo: list[tuple[str, dict, int]]) -> list[Task]:
    """One task per cell, or groups of cells that share ``group_by`` values."""
    src = getattr(exp.run, "__module__", None)
    if exp.run_group is None:
        return [Task(exp.name, (c,), source=src) for c in todo]
    groups: dict[str, list] = {}
    for c in todo:
        gk = canonical([c[1].get(k) for k in exp.group_by])
        groups.setdefault(gk, []).append(c)
    tasks = []
    for members in groups.values():
        for i in range(0, len(members), exp.max_group):
            tasks.append(Task(exp.name, tuple(members[i:i + exp.max_group]), source=src))
    return tasks


def make_executor(executor: str | Executor, workers: int, address: str | None) -> Executor:
    if isinstance(executor, Executor):
        return executor
    if executor == "local":
        from petridish.lab.executors.local import local_executor
        return local_executor(workers)
    if executor == "ray":
        try:
            from petridish.lab.executors.ray import RayExecutor
        except ImportError as e:
            raise PetridishError(f"The ray executor needs Ray: pip install 'petridish[ray]' ({e}).") from None
        return RayExecutor(address=address, num_cpus=None, max_retries=2)
    raise invalid("executor", "run", "one of 'local', 'ray'", executor)


def run_sweep(experiment: str | Experiment, *, overrides: dict[str, Any] | None = None,
              seeds: int | Sequence[int] | None = None, quick: bool = False,
              store: str | Store | None = None, workers: int = 1, executor: str | Executor = "local",
              address: str | None = None, progress: bool | None = None) -> SweepResult:
    exp = resolve(experiment)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise invalid("workers", "run", "an int >= 1", workers)
    cfg = exp.config(overrides, quick=quick)
    seed_ids = seed_list(seeds, exp, quick)
    grid = exp.grid(cfg, seed_ids)
    cells = [(cell_key(exp.name, exp.version, p, s), p, s) for p, s in grid]
    keys = [c[0] for c in cells]
    st = open_store(store)
    rid = run_id_for(exp, cfg, seed_ids)
    ex_name = executor if isinstance(executor, str) else getattr(executor, "name", "custom")
    prov = provenance(seeds=seed_ids, executor=ex_name, workers=workers)
    prev = st.get_run(rid)
    st.create_run(RunRecord(rid, exp.name, cfg, seed_ids, prov, "running", time.time()), keys)
    done = st.finished_keys(keys)
    todo = [c for c in cells if c[0] not in done]
    t0 = time.perf_counter()
    bar = Progress(len(cells), len(cells) - len(todo), label=exp.name, enabled=progress)
    status = "interrupted"
    try:
        if todo:
            ex = make_executor(executor, workers, address)
            try:
                for _task, finished in ex.run(make_tasks(exp, todo)):
                    for c in finished:
                        c.run_id = rid
                    st.put_cells(finished)          # committed before the next result is read
                    bar.advance(len(finished))
            finally:
                ex.close()
        status = "finished"
    finally:
        bar.close()
        wall = (prev.wall_time if prev else 0.0) + time.perf_counter() - t0
        prov["wall_time_s"] = wall
        st.update_run(rid, status=status, wall_time=wall, provenance=prov)
    got = st.get_cells(keys)
    out = [got[k] for k in keys if k in got]
    analysis = analyze(exp, out)
    return SweepResult(rid, exp.name, out, analysis, computed=len(todo))


def analyze(exp: Experiment, cells: list[Cell]) -> Analysis:
    ok = [c for c in cells if c.status in FINISHED]
    if exp.analyze is None or not ok:
        return Analysis()
    return exp.analyze(cells)
