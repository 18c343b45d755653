"""One run's life in the store, owned in one place for sweeps and searches alike.

``with RunSession(store, record, keys) as s:`` opens the store (unless given one),
creates the run record or picks up the one already there (a resume), and hands out
``s.commit(cells)``, which stamps the cells with the run id and commits them in one
transaction. On leaving the block the run is marked ``finished`` (or ``interrupted``
if an exception, Ctrl-C included, left it), its wall time is added to what earlier
sessions of the same run spent, and a store this session opened is closed.
"""
from __future__ import annotations

import time
from typing import Any, Iterable

from petridish.lab.experiment import Cell
from petridish.lab.store import RunRecord, Store, open_store


class RunSession:
    def __init__(self, store: str | Store | None, record: RunRecord, keys: list[str]):
        self._target = store
        self.record = record
        self.keys = list(keys)
        self.store: Store | None = None
        self._prior_wall = 0.0
        self._t0 = 0.0

    @property
    def run_id(self) -> str:
        return self.record.id

    @property
    def provenance(self) -> dict[str, Any]:
        return self.record.provenance

    def __enter__(self) -> "RunSession":
        self.store = open_store(self._target)
        prev = self.store.get_run(self.run_id)
        self._prior_wall = prev.wall_time if prev else 0.0
        self.store.create_run(self.record, self.keys)
        self._t0 = time.perf_counter()
        return self

    def commit(self, cells: Iterable[Cell]) -> None:
        cells = list(cells)
        for c in cells:
            c.run_id = self.run_id
        self.store.put_cells(cells)

    def add_keys(self, keys: list[str]) -> None:
        self.store.add_run_keys(self.run_id, keys)

    def __exit__(self, exc_type, *_exc) -> None:
        wall = self._prior_wall + time.perf_counter() - self._t0
        self.provenance["wall_time_s"] = wall
        try:
            self.store.update_run(self.run_id, status="finished" if exc_type is None else "interrupted",
                                  wall_time=wall, provenance=self.provenance)
        finally:
            if not isinstance(self._target, Store):
                self.store.close()
