"""The results-store contract. One contract test suite runs against every backend.

Cells are stored once, under their content key (see ``cellkey``), and shared by every
run whose sweep contains them: re-running a sweep finds its finished cells by key and
recomputes nothing. ``put_cells`` is atomic and durable when it returns (one
transaction), and idempotent: putting a key again replaces that cell's record.
Only ``done`` and ``diverged`` cells count as finished; ``failed`` and ``pruned``
cells are stored for the record and recomputed by a later run.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from collections import Counter
from typing import Any, Iterable

from petridish.lab.experiment import Cell

FINISHED = ("done", "diverged")


@dataclass
class RunRecord:
    id: str
    experiment: str
    config: dict[str, Any]            # validated config (scalars and sweep lists)
    seeds: list[int]
    provenance: dict[str, Any] = field(default_factory=dict)
    status: str = "running"           # "running" | "finished" | "interrupted"
    created: float = 0.0              # unix seconds
    wall_time: float = 0.0            # seconds
    n_cells: int = 0                  # cells in the sweep


class Store(ABC):
    @abstractmethod
    def create_run(self, run: RunRecord, keys: list[str]) -> None:
        """Record a run and the keys of every cell in its sweep."""

    @abstractmethod
    def add_run_keys(self, run_id: str, keys: list[str]) -> None:
        """Append keys to a run's sweep (adaptive search grows its run as trials arrive);
        keys already in the run are ignored."""

    @abstractmethod
    def update_run(self, run_id: str, *, status: str | None = None, wall_time: float | None = None,
                   provenance: dict[str, Any] | None = None) -> None: ...

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None:
        """A run by id, or by a unique prefix of at least 4 characters; None if absent."""

    @abstractmethod
    def list_runs(self, experiment: str | None = None) -> list[RunRecord]:
        """Runs, newest first."""

    @abstractmethod
    def put_cells(self, cells: Iterable[Cell]) -> None: ...

    @abstractmethod
    def get_cells(self, keys: Iterable[str]) -> dict[str, Cell]:
        """Stored cells among ``keys`` (any status)."""

    @abstractmethod
    def run_keys(self, run_id: str) -> list[str]:
        """Keys of the run's sweep, in sweep order."""

    def run_cells(self, run_id: str) -> list[Cell]:
        """The run's stored cells, in sweep order (cells not yet computed are absent)."""
        keys = self.run_keys(run_id)
        got = self.get_cells(keys)
        return [got[k] for k in keys if k in got]

    def finished_keys(self, keys: Iterable[str]) -> set[str]:
        return {k for k, c in self.get_cells(keys).items() if c.status in FINISHED}

    # read side of the dashboard (petridish.ui): paginated, filtered, counted without a query per run
    def query_runs(self, *, experiment: str | None = None, status: str | None = None,
                   since: float | None = None, until: float | None = None,
                   limit: int = 50, offset: int = 0) -> tuple[list[RunRecord], int]:
        """One page of the runs that match, newest first (ties by id), and how many match in all.
        ``since <= created < until`` (unix seconds); ``None`` leaves a filter off."""
        runs = [r for r in self.list_runs(experiment) if _matches(r, status, since, until)]
        runs.sort(key=lambda r: (-r.created, r.id))
        return runs[offset:offset + limit], len(runs)

    def cell_counts(self, run_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """Stored cells per run and status, e.g. ``{"r1": {"done": 98, "failed": 2}}``; a run
        without stored cells maps to ``{}``. Cells not yet computed are not counted."""
        return {rid: dict(Counter(c.status for c in self.run_cells(rid))) for rid in dict.fromkeys(run_ids)}

    def experiment_names(self) -> list[str]:
        """The distinct experiment names of the stored runs, sorted."""
        return sorted({r.experiment for r in self.list_runs()})

    def close(self) -> None: ...


def _matches(r: RunRecord, status: str | None, since: float | None, until: float | None) -> bool:
    return ((status is None or r.status == status) and (since is None or r.created >= since)
            and (until is None or r.created < until))
