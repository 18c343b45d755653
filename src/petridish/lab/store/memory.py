"""An in-memory store: the reference backend for the contract tests and for notebooks."""
from __future__ import annotations

import copy
from typing import Iterable

from petridish.lab.experiment import Cell
from petridish.lab.store.base import RunRecord, Store


class MemoryStore(Store):
    def __init__(self):
        self._runs: dict[str, RunRecord] = {}
        self._keys: dict[str, list[str]] = {}
        self._cells: dict[str, Cell] = {}

    def create_run(self, run: RunRecord, keys: list[str]) -> None:
        if run.id in self._runs:
            self._runs[run.id].status = run.status
            self._runs[run.id].provenance = copy.deepcopy(run.provenance)
            return
        rec = copy.deepcopy(run)
        rec.n_cells = len(keys)
        self._runs[run.id] = rec
        self._keys[run.id] = list(keys)

    def add_run_keys(self, run_id: str, keys: list[str]) -> None:
        have = self._keys[run_id]
        for k in dict.fromkeys(keys):
            if k not in have:
                have.append(k)
        self._runs[run_id].n_cells = len(have)

    def update_run(self, run_id, *, status=None, wall_time=None, provenance=None) -> None:
        r = self._runs[run_id]
        if status is not None:
            r.status = status
        if wall_time is not None:
            r.wall_time = float(wall_time)
        if provenance is not None:
            r.provenance = copy.deepcopy(provenance)

    def get_run(self, run_id: str) -> RunRecord | None:
        if run_id in self._runs:
            return copy.deepcopy(self._runs[run_id])
        hits = [r for k, r in self._runs.items() if len(run_id) >= 4 and k.startswith(run_id)]
        return copy.deepcopy(hits[0]) if len(hits) == 1 else None

    def list_runs(self, experiment: str | None = None) -> list[RunRecord]:
        runs = [r for r in self._runs.values() if experiment in (None, r.experiment)]
        return [copy.deepcopy(r) for r in sorted(runs, key=lambda r: -r.created)]

    def run_keys(self, run_id: str) -> list[str]:
        return list(self._keys.get(run_id, []))

    def put_cells(self, cells: Iterable[Cell]) -> None:
        for c in cells:
            self._cells[c.key] = copy.deepcopy(c)

    def get_cells(self, keys: Iterable[str]) -> dict[str, Cell]:
        return {k: copy.deepcopy(self._cells[k]) for k in keys if k in self._cells}
