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

from petridish.device import resolve_device
from petridish.errors import invalid
from petridish.lab.cellkey import canonical, cell_key
from petridish.lab.executors import Executor, make_executor
from petridish.lab.experiment import Analysis, Cell, Experiment
from petridish.lab.progress import Progress
from petridish.lab.provenance import provenance
from petridish.lab.session import RunSession
from petridish.lab.source import load_experiment, source_info
from petridish.lab.source_guard import changes, key_name, short, use_pin
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
                "analysis": self.analysis.to_json()}


def resolve(experiment: str | Experiment) -> Experiment:
    """An Experiment as given, or the one a spec names (``lab.source.load_experiment``): a
    registered name, a path to a .py file or package directory, or ``package.module:ATTR``."""
    return experiment if isinstance(experiment, Experiment) else load_experiment(experiment)


def seed_list(seeds: int | Sequence[int] | None, exp: Experiment, quick: bool) -> list[int]:
    if seeds is None:
        return list(range(exp.n_seeds(quick)))
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise invalid("seeds", "run", "an int >= 1", seeds)
        return list(range(seeds))
    return [int(s) for s in seeds]


def run_id_for(exp: Experiment, cfg: dict[str, Any], seeds: list[int], pin: str | None = None) -> str:
    """Content hash of the sweep; ``pin``: a source hash (a new version of changed code, ``lab.source_guard``)."""
    spec = {"e": exp.name, "v": exp.version, "c": cfg, "s": seeds}
    blob = canonical(spec if pin is None else {**spec, "src": pin})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def source_plan(store: str | Store | None, exp: Experiment, cfg: dict[str, Any], seeds: list[int],
                mode: str = "stop") -> tuple[list[tuple[str, dict, int]], str, dict[str, Any]]:
    """The sweep's (key, params, seed) cells, its run id and its provenance about the source,
    after checking that no reused cell was computed by other code (``lab.source_guard``)."""
    src = source_info(exp)
    st = store if isinstance(store, Store) else open_store(store)
    try:
        pin = short(src) if use_pin(st, src, run_id_for(exp, cfg, seeds, short(src)), mode) else None
        cells = [(cell_key(key_name(exp.name, pin), exp.version, p, s), p, s) for p, s in exp.grid(cfg, seeds)]
        rid = run_id_for(exp, cfg, seeds, pin)
        prev = st.get_run(rid)
        logged = list((prev.provenance or {}).get("source_changes", [])) if prev else []
        logged += changes(st, exp.name, src, rid, [c[0] for c in cells], mode)
    finally:
        if st is not store:
            st.close()
    prov: dict[str, Any] = {"source": src}
    if pin:
        prov["source_version"] = pin          # cell keys are computed from "name@pin"
    if logged:
        prov["source_changes"] = logged
    return cells, rid, prov


def make_tasks(exp: Experiment, todo: list[tuple[str, dict, int]], device: str = "cpu") -> list[Task]:
    """One task per cell, or groups of cells that share ``group_by`` values."""
    if exp.run_group is None:
        return [Task(exp, (c,), device=device) for c in todo]
    groups: dict[str, list] = {}
    for c in todo:
        gk = canonical([c[1].get(k) for k in exp.group_by])
        groups.setdefault(gk, []).append(c)
    return [Task(exp, tuple(members[i:i + exp.max_group]), device=device)
            for members in groups.values() for i in range(0, len(members), exp.max_group)]


def run_sweep(experiment: str | Experiment, *, overrides: dict[str, Any] | None = None,
              seeds: int | Sequence[int] | None = None, quick: bool = False,
              store: str | Store | None = None, workers: int | None = 1, executor: str | Executor = "local",
              address: str | None = None, progress: bool | None = None, device: str = "cpu",
              source_changed: str = "stop") -> SweepResult:
    """Run (or resume) a sweep. ``workers=None``: one worker process per core (``local``, as the
    CLI does; a script then needs the ``if __name__ == "__main__":`` guard of spawned processes)
    or one per cluster CPU (``ray``). Every cell runs on one thread whatever the executor and
    worker count, so the cells' bits do not depend on either. ``device``: "cpu" (default),
    "cuda" or "auto" (CUDA when there is one); recorded in the run's provenance. ``experiment``:
    an Experiment, a registered name, a .py file or package directory, or ``package.module:ATTR``.
    ``source_changed``: what to do when reused cells were computed by other source code
    (``lab.source_guard``): "stop" (raise), "new-version" or "continue"."""
    exp = resolve(experiment)
    device = resolve_device(device, "run")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise invalid("workers", "run", "an int >= 1", workers)
    cfg = exp.config(overrides, quick=quick)
    seed_ids = seed_list(seeds, exp, quick)
    cells, rid, source_prov = source_plan(store, exp, cfg, seed_ids, source_changed)
    keys = [c[0] for c in cells]
    ex_name = executor if isinstance(executor, str) else getattr(executor, "name", "custom")
    prov = {**provenance(seeds=seed_ids, executor=ex_name, workers=workers, device=device), **source_prov}
    record = RunRecord(rid, exp.name, cfg, seed_ids, prov, "running", time.time())
    with RunSession(store, record, keys) as session:
        done = session.store.finished_keys(keys)
        todo = [c for c in cells if c[0] not in done]
        bar = Progress(len(cells), len(cells) - len(todo), label=exp.name, enabled=progress,
                       publish=lambda snap: _publish_progress(session, snap))
        try:
            if todo:
                tasks = make_tasks(exp, todo, device)
                with make_executor(executor, workers, address, n_tasks=len(tasks)) as ex:
                    session.provenance["workers"] = ex.workers
                    ex.progress = lambda task, d, t: bar.task_steps(id(task), len(task.cells), d, t)
                    for task, finished in ex.run(tasks):
                        session.commit(finished)           # committed before the next result is read
                        bar.task_ended(id(task), len(finished), sum(c.status == "failed" for c in finished))
                    ex.progress = None
        finally:
            bar.close()
        got = session.store.get_cells(keys)
    out = [got[k] for k in keys if k in got]
    return SweepResult(record.id, exp.name, out, analyze(exp, out), computed=len(todo))


def _publish_progress(session: RunSession, snapshot: dict[str, Any]) -> None:
    """The run record carries the sweep's progress (``Progress.snapshot``) for the dashboard."""
    session.provenance["progress"] = snapshot
    session.store.update_run(session.run_id, provenance=session.provenance)


def analyze(exp: Experiment, cells: list[Cell]) -> Analysis:
    ok = [c for c in cells if c.status in FINISHED]
    if exp.analyze is None or not ok:
        return Analysis()
    return exp.analyze(cells)
