"""The SQLAlchemy store: SQLite (WAL) by default, any SQLAlchemy URL accepted."""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Iterable

from sqlalchemy import (Column, Float, Index, Integer, MetaData, String, Table, Text, create_engine,
                        event, func, inspect, select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from petridish.errors import PetridishError, one_line, shown_url
from petridish.lab.experiment import Cell
from petridish.lab.store.base import RunRecord, Store

_meta = MetaData()
runs_t = Table(
    "runs", _meta,
    Column("id", String(64), primary_key=True),
    Column("experiment", String(128), nullable=False, index=True),
    Column("config", Text, nullable=False),
    Column("seeds", Text, nullable=False),
    Column("provenance", Text, nullable=False),
    Column("status", String(32), nullable=False),
    Column("created", Float, nullable=False),
    Column("wall_time", Float, nullable=False),
    Column("n_cells", Integer, nullable=False),
)
run_keys_t = Table(
    "run_keys", _meta,
    Column("run_id", String(64), primary_key=True),
    Column("pos", Integer, primary_key=True),
    Column("key", String(64), nullable=False, index=True),
)
cells_t = Table(
    "cells", _meta,
    Column("key", String(64), primary_key=True),
    Column("experiment", String(128), nullable=False),
    Column("params", Text, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("metrics", Text, nullable=False),
    Column("error", Text),
    Column("wall_time", Float, nullable=False),
    Column("peak_mem_mb", Float, nullable=False),
    Column("run_id", String(64)),
)
# the dashboard's runs list: newest first, optionally within one experiment or status (created
# once on open of a writable store, so older stores get them too)
INDEXES = (Index("ix_runs_created", runs_t.c.created),
           Index("ix_runs_experiment_created", runs_t.c.experiment, runs_t.c.created),
           Index("ix_runs_status_created", runs_t.c.status, runs_t.c.created))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, allow_nan=True)


def store_url(target: str | None) -> str:
    """A SQLAlchemy URL from ``--store``: a URL as is; a directory or *.db path as SQLite."""
    if target is None or target == "":
        target = os.environ.get("PETRIDISH_STORE", "petridish-runs")
    if "://" in target:
        return target
    path = target if target.endswith((".db", ".sqlite", ".sqlite3")) else os.path.join(target, "petridish.db")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    return "sqlite:///" + os.path.abspath(path)


def readonly_url(target: str | None) -> tuple[str, dict[str, Any]]:
    """(URL, connect_args) that open an existing store read-only: SQLite with ``mode=ro``,
    PostgreSQL with read-only transactions; other backends as they are."""
    if target is None or target == "":
        target = os.environ.get("PETRIDISH_STORE", "petridish-runs")
    if "://" not in target:
        path = target if target.endswith((".db", ".sqlite", ".sqlite3")) else os.path.join(target, "petridish.db")
        if not os.path.isfile(path):
            raise PetridishError(f"There is no results store at {os.path.abspath(path)}: run an experiment "
                                 "first (`petridish run NAME`) or pass --store DIR|URL.")
        return "sqlite:///file:" + os.path.abspath(path) + "?mode=ro&uri=true", {}
    if target.startswith(("postgresql", "postgres")):
        return target, {"options": "-c default_transaction_read_only=on"}
    return target, {}


class SQLStore(Store):
    def __init__(self, url: str | None = None, *, read_only: bool = False):
        """``read_only``: open an existing store for reading only (the dashboard); the database
        itself refuses writes (SQLite ``mode=ro``, PostgreSQL read-only transactions)."""
        self.read_only = read_only
        self.url, connect_args = readonly_url(url) if read_only else (store_url(url), {})
        try:
            self.engine: Engine = create_engine(self.url, future=True, connect_args=connect_args)
        except Exception as e:
            raise PetridishError(
                f"The '--store' option must be a SQLAlchemy URL or a directory. Got {url!r} ({e}).") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_readonly_pragmas if read_only else _sqlite_pragmas)
        try:
            if read_only:
                if not inspect(self.engine).has_table("runs"):
                    raise PetridishError("it holds no runs table")
            else:
                _create_schema(self.engine)
        except Exception as e:
            raise PetridishError(f"Could not open the results store at {shown_url(self.url)}: {one_line(e)}") from None

    # runs -------------------------------------------------------------------------------
    def create_run(self, run: RunRecord, keys: list[str]) -> None:
        with self.engine.begin() as c:
            exists = c.execute(select(runs_t.c.id).where(runs_t.c.id == run.id)).first()
            if exists:
                c.execute(update(runs_t).where(runs_t.c.id == run.id).values(
                    status=run.status, provenance=_dumps(run.provenance)))
                return
            c.execute(runs_t.insert().values(
                id=run.id, experiment=run.experiment, config=_dumps(run.config), seeds=_dumps(run.seeds),
                provenance=_dumps(run.provenance), status=run.status, created=run.created,
                wall_time=run.wall_time, n_cells=len(keys)))
            if keys:
                c.execute(run_keys_t.insert(), [{"run_id": run.id, "pos": i, "key": k} for i, k in enumerate(keys)])

    def add_run_keys(self, run_id: str, keys: list[str]) -> None:
        with self.engine.begin() as c:
            have = {r[0] for r in c.execute(select(run_keys_t.c.key).where(run_keys_t.c.run_id == run_id))}
            n = len(have)
            new = [k for k in dict.fromkeys(keys) if k not in have]
            if new:
                c.execute(run_keys_t.insert(),
                          [{"run_id": run_id, "pos": n + i, "key": k} for i, k in enumerate(new)])
                c.execute(update(runs_t).where(runs_t.c.id == run_id).values(n_cells=n + len(new)))

    def update_run(self, run_id, *, status=None, wall_time=None, provenance=None) -> None:
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status
        if wall_time is not None:
            values["wall_time"] = float(wall_time)
        if provenance is not None:
            values["provenance"] = _dumps(provenance)
        if values:
            with self.engine.begin() as c:
                c.execute(update(runs_t).where(runs_t.c.id == run_id).values(**values))

    def get_run(self, run_id: str) -> RunRecord | None:
        with self.engine.connect() as c:
            row = c.execute(select(runs_t).where(runs_t.c.id == run_id)).first()
            if row is None and len(run_id) >= 4:
                rows = c.execute(select(runs_t).where(runs_t.c.id.startswith(run_id, autoescape=True))).all()
                row = rows[0] if len(rows) == 1 else None
        return _run(row) if row is not None else None

    def list_runs(self, experiment: str | None = None) -> list[RunRecord]:
        q = select(runs_t).order_by(runs_t.c.created.desc())
        if experiment:
            q = q.where(runs_t.c.experiment == experiment)
        with self.engine.connect() as c:
            return [_run(r) for r in c.execute(q)]

    def query_runs(self, *, experiment=None, status=None, since=None, until=None, limit=50, offset=0):
        conds = [c for c in (runs_t.c.experiment == experiment if experiment is not None else None,
                             runs_t.c.status == status if status is not None else None,
                             runs_t.c.created >= since if since is not None else None,
                             runs_t.c.created < until if until is not None else None) if c is not None]
        q = select(runs_t).where(*conds).order_by(runs_t.c.created.desc(), runs_t.c.id)
        with self.engine.connect() as c:
            total = c.execute(select(func.count()).select_from(runs_t).where(*conds)).scalar_one()
            rows = c.execute(q.limit(max(0, int(limit))).offset(max(0, int(offset)))).all()
        return [_run(r) for r in rows], int(total)

    def cell_counts(self, run_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        ids = list(dict.fromkeys(run_ids))
        out: dict[str, dict[str, int]] = {i: {} for i in ids}
        # one GROUP BY per 500 runs: run_keys' primary key (run_id, pos) finds a run's keys,
        # cells' primary key finds each cell; no query per run
        q = (select(run_keys_t.c.run_id, cells_t.c.status, func.count())
             .select_from(run_keys_t.join(cells_t, cells_t.c.key == run_keys_t.c.key)))
        with self.engine.connect() as c:
            for i in range(0, len(ids), 500):
                chunk = q.where(run_keys_t.c.run_id.in_(ids[i:i + 500])).group_by(run_keys_t.c.run_id,
                                                                                 cells_t.c.status)
                for run_id, status, n in c.execute(chunk):
                    out[run_id][status] = int(n)
        return out

    def experiment_names(self) -> list[str]:
        with self.engine.connect() as c:    # DISTINCT over the experiment index
            return [r[0] for r in c.execute(select(runs_t.c.experiment).distinct().order_by(runs_t.c.experiment))]

    def run_keys(self, run_id: str) -> list[str]:
        with self.engine.connect() as c:
            rows = c.execute(select(run_keys_t.c.key).where(run_keys_t.c.run_id == run_id)
                             .order_by(run_keys_t.c.pos))
            return [r[0] for r in rows]

    # cells ------------------------------------------------------------------------------
    def put_cells(self, cells: Iterable[Cell]) -> None:
        cells = list(cells)
        if not cells:
            return
        with self.engine.begin() as c:
            keys = [x.key for x in cells]
            c.execute(cells_t.delete().where(cells_t.c.key.in_(keys)))
            c.execute(cells_t.insert(), [{
                "key": x.key, "experiment": x.experiment, "params": _dumps(x.params), "seed": int(x.seed),
                "status": x.status, "metrics": _dumps(x.metrics), "error": x.error,
                "wall_time": float(x.wall_time), "peak_mem_mb": float(x.peak_mem_mb), "run_id": x.run_id,
            } for x in cells])

    def get_cells(self, keys: Iterable[str]) -> dict[str, Cell]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, Cell] = {}
        with self.engine.connect() as c:
            for i in range(0, len(keys), 500):       # stay under SQLite's bound-parameter limit
                for r in c.execute(select(cells_t).where(cells_t.c.key.in_(keys[i:i + 500]))):
                    out[r.key] = Cell(r.key, r.experiment, json.loads(r.params), r.seed, r.status,
                                      json.loads(r.metrics), r.error, r.wall_time, r.peak_mem_mb, r.run_id)
        return out

    def close(self) -> None:
        self.engine.dispose()


def _run(r) -> RunRecord:
    return RunRecord(r.id, r.experiment, json.loads(r.config), json.loads(r.seeds), json.loads(r.provenance),
                     r.status, r.created, r.wall_time, r.n_cells)


def _create_schema(engine: Engine, attempts: int = 5) -> None:
    """Tables and indexes, if absent. Two processes opening a new store at once (a sweep and the
    dashboard, two workers) both see no table and both create it: the loser's CREATE fails
    ("table runs already exists", or a duplicate pg_type row on PostgreSQL). Looking again
    then finds the winner's tables, so a failed attempt is retried."""
    for attempt in range(attempts):
        try:
            _meta.create_all(engine)
            for ix in INDEXES:
                ix.create(engine, checkfirst=True)
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")   # WAL + NORMAL survives a killed process
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_readonly_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")   # a writer's checkpoint may hold the lock briefly
    cur.execute("PRAGMA query_only=ON")        # belt and braces over mode=ro
    cur.close()


_ = math  # NaN/inf metrics round-trip through json with allow_nan

