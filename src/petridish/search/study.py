"""The search driver: ask Optuna for parameters, run each trial as a cell, tell the result.

Trials are cells: each trial's parameters (searched + fixed) and ``seed`` give the
cell's content key, the driver alone commits the cell to the petridish store, and the
key is added to the search's run, so ``show``/``report``/``export`` work on a search
exactly as on a sweep. A trial whose cell is already finished in the store (from a
sweep or an earlier search) is told to Optuna without recomputing it.

Resume: the study name and the run id are content hashes of the search (experiment,
version, metric, direction, sampler, pruner, space, fixed values, seed), and the study
lives in an Optuna journal beside the store, so running the same search again continues
it: ``budget`` is the total number of trials, finished ones included. Trials left
``RUNNING`` by a killed driver are marked failed and their parameters re-enqueued.

Source changes (``lab.source_guard``, as for ``run_sweep``): before it starts, a search
checks the cells of its run (the study's earlier trials), and before a trial takes a
finished cell from the store, that cell; cells computed by other code of the experiment
stop it unless ``source_changed`` is "new-version" (the source hash goes into the study
name, the run id and the cell keys) or "continue" (recorded in ``source_changes``).
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import optuna

from petridish.device import resolve_device
from petridish.errors import PetridishError, check_choice, check_number
from petridish.lab.cellkey import canonical, cell_key
from petridish.lab.executors import Executor, make_executor
from petridish.lab.experiment import Analysis, Cell, Experiment
from petridish.lab.provenance import provenance
from petridish.lab.session import RunSession
from petridish.lab.source import source_info
from petridish.lab.source_guard import MODES, changes, key_name, merge, short, use_pin
from petridish.lab.store import FINISHED, RunRecord, Store, open_store
from petridish.lab.sweep import analyze, resolve
from petridish.lab.worker import Task
from petridish.search.samplers import PRUNERS, SAMPLERS, make_pruner, make_sampler
from petridish.search.space import SearchSpace, derive_space
from petridish.search.storage import journal_path_for, journal_storage
from petridish.search.trial import TrialReporter

State = optuna.trial.TrialState


@dataclass
class SearchResult:
    run_id: str
    experiment: str
    study_name: str
    metric: str
    direction: str
    best_params: dict[str, Any] | None
    best_value: float | None
    trials: list[dict[str, Any]]               # number, state, params, value, key
    cells: list[Cell]
    analysis: Analysis = field(default_factory=Analysis)
    computed: int = 0                           # trials run by this call (others: store or earlier calls)

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run_id, "experiment": self.experiment, "study": self.study_name,
                "metric": self.metric, "direction": self.direction, "best_params": self.best_params,
                "best_value": self.best_value, "trials": self.trials, "computed": self.computed,
                "cells": [c.to_json() for c in self.cells],
                "analysis": self.analysis.to_json()}


def study_name_for(exp: Experiment, space: SearchSpace, *, metric: str, direction: str, sampler: str,
                   pruner: str, seed: int, pin: str | None = None) -> str:
    """Content hash of the search; ``pin``: a source hash (a new version of changed code, ``lab.source_guard``)."""
    spec = {"e": exp.name, "v": exp.version, "m": metric, "d": direction, "s": sampler,
            "p": pruner, "space": space.describe(), "fixed": space.fixed, "seed": seed}
    blob = canonical(spec if pin is None else {**spec, "src": pin})
    return f"{key_name(exp.name, pin)}:{metric}:{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def search_run_id(study_name: str) -> str:
    return hashlib.sha256(("search:" + study_name).encode()).hexdigest()[:12]


def run_search(experiment: str | Experiment, *, metric: str, direction: str = "minimize", budget: int = 20,
               sampler: str = "tpe", pruner: str = "none", overrides: dict[str, Any] | None = None,
               search: list[str] | None = None, quick: bool = False, seed: int = 0, sampler_seed: int = 0,
               store: Any = None, workers: int = 1, executor: str | Executor = "local", address: str | None = None,
               journal: str | None = None, device: str = "cpu", source_changed: str = "stop") -> SearchResult:
    """Adaptive search of ``metric`` over the experiment's declared parameters.

    ``overrides`` fix parameters (``--set``); ``search`` names the searched ones (default:
    the sweep axes of the chosen config); ``seed`` is every trial's cell seed;
    ``sampler_seed`` seeds the sampler; ``journal`` overrides where the study lives;
    ``device`` and ``source_changed`` ("stop", "new-version" or "continue": what to do when
    reused cells were computed by other source code, ``lab.source_guard``) as in ``run_sweep``.
    """
    exp = resolve(experiment)
    device = resolve_device(device, "search")
    check_choice(direction, "direction", "search", ("minimize", "maximize"))
    budget = check_number(budget, "budget", "search", kind=int, low=1)
    workers = check_number(workers, "workers", "search", kind=int, low=1)
    check_choice(sampler, "sampler", "search", SAMPLERS)
    check_choice(pruner, "pruner", "search", PRUNERS)
    if not isinstance(executor, Executor):
        check_choice(executor, "executor", "search", ("local", "ray"))
    check_choice(source_changed, "source_changed", "search", MODES)
    cfg = exp.config(overrides, quick=quick)
    fixed_by_user = {k for k in (overrides or {}) if not isinstance(cfg[k], list)}   # a list set by hand is searched
    space = derive_space(exp, cfg, fixed_by_user=fixed_by_user, names=search, sampler=sampler)
    if space.size() is not None:
        budget = min(budget, space.size())
    st = open_store(store)               # the session below shares it and closes it
    named = dict(metric=metric, direction=direction, sampler=sampler, pruner=pruner, seed=seed)
    src = source_info(exp)               # show/report find a file experiment again (lab.source)
    try:
        pinned = search_run_id(study_name_for(exp, space, pin=short(src), **named))
        pin = short(src) if use_pin(st, src, pinned, source_changed, "search") else None
        name = study_name_for(exp, space, pin=pin, **named)
        rid = search_run_id(name)
        prev = st.get_run(rid)
        logged = list((prev.provenance or {}).get("source_changes", [])) if prev else []
        logged += changes(st, exp.name, src, rid, st.run_keys(rid) if prev else [], source_changed, "search")
    except BaseException:
        if not isinstance(store, Store):
            st.close()
        raise
    jpath = journal or journal_path_for(st)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=journal_storage(jpath), direction=direction,
                                sampler=make_sampler(sampler, seed=sampler_seed, grid=space.grid),
                                pruner=make_pruner(pruner), load_if_exists=True)
    _requeue_zombies(study)
    n_old = len(study.get_trials(deepcopy=False))
    if n_old:   # resumed: a fresh sampler with the same seed would re-propose the first trials' points
        study.sampler = make_sampler(sampler, seed=sampler_seed + n_old, grid=space.grid)
    prov = provenance(seeds=[seed], executor=executor if isinstance(executor, str) else executor.name,
                      workers=workers, device=device)
    prov["search"] = {"study": name, "journal": jpath, "metric": metric, "direction": direction,
                      "sampler": sampler, "pruner": pruner, "budget": budget, "space": space.describe(),
                      "fixed": space.fixed}
    prov["source"] = src
    if pin:
        prov["source_version"] = pin          # cell keys are computed from "name@pin"
    if logged:
        prov["source_changes"] = logged
    with RunSession(st, RunRecord(rid, exp.name, cfg, [seed], prov, "running", time.time()), []) as session:

        def reusable(key: str) -> None:       # a finished cell from the store: computed by this code?
            found = changes(session.store, exp.name, src, rid, [key], source_changed, "search")
            if found:
                session.provenance["source_changes"] = merge(session.provenance.get("source_changes", []), found)
                session.store.update_run(rid, provenance=session.provenance)

        with make_executor(executor, workers, address, owner="search") as ex:
            computed = _loop(study, exp, space, session, metric=metric, budget=budget, seed=seed,
                             pruner=pruner, journal=jpath, executor=ex, parallel=workers, device=device,
                             pin=pin, reusable=reusable)
    try:
        return _result(study, exp, st, rid, metric, direction, computed)
    finally:
        if not isinstance(store, Store):
            st.close()


def _counted(study: optuna.Study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (State.COMPLETE, State.PRUNED)
               or (t.state == State.FAIL and not t.user_attrs.get("zombie")))


def _requeue_zombies(study: optuna.Study) -> None:
    for t in study.get_trials(deepcopy=False, states=(State.RUNNING, State.WAITING)):
        if t.state == State.RUNNING:
            study.enqueue_trial(t.params, skip_if_exists=False)
            optuna.trial.Trial(study, t._trial_id).set_user_attr("zombie", True)
            study.tell(t.number, state=State.FAIL)


def _loop(study, exp, space, session: RunSession, *, metric, budget, seed, pruner, journal,
          executor: Executor, parallel: int, device: str = "cpu", pin: str | None = None,
          reusable=lambda key: None) -> int:
    """Ask, run and tell until the budget is spent, with at most ``parallel`` trials in flight.
    ``pin``: the source hash cell keys are computed with (``lab.source_guard.key_name``);
    ``reusable(key)`` raises (or records) when a finished cell was computed by other code."""
    computed = 0
    remaining = budget - _counted(study)
    inflight: dict[int, optuna.Trial] = {}
    while remaining > 0 or inflight:
        while remaining > 0 and len(inflight) < parallel:
            trial = study.ask(space.distributions)
            remaining -= 1
            params = {**space.fixed, **trial.params}
            params = {p.name: params[p.name] for p in exp.params}   # declaration order
            key = cell_key(key_name(exp.name, pin), exp.version, params, seed)
            trial.set_user_attr("cell", key)
            old = session.store.get_cells([key]).get(key)
            if old is not None and old.status in FINISHED:          # shared with a sweep: no recompute
                reusable(key)                                       # stops before the run holds the key
                session.add_keys([key])
                _tell(study, trial, old, metric)
                continue
            session.add_keys([key])
            reporter = (TrialReporter(study.study_name, trial._trial_id, journal, pruner, metric)
                        if pruner != "none" else None)
            inflight[executor.submit(Task(exp, ((key, params, seed),), reporter, device))] = trial
        for ticket, cells in executor.wait():
            trial = inflight.pop(ticket)
            session.commit(cells)                                   # committed before telling Optuna
            computed += 1
            _tell(study, trial, cells[0], metric)
    return computed


def _tell(study: optuna.Study, trial: optuna.Trial, cell: Cell, metric: str) -> None:
    if cell.status == "pruned":
        study.tell(trial, state=State.PRUNED)
        return
    if cell.status not in FINISHED:
        trial.set_user_attr("error", (cell.error or "")[:500])
        study.tell(trial, state=State.FAIL)
        return
    if metric not in cell.metrics:
        study.tell(trial, state=State.FAIL)
        scalars = sorted(k for k, v in cell.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise PetridishError(f"The 'metric' parameter of search must be a scalar metric of '{cell.experiment}', "
                             f"one of {', '.join(scalars)}. Got {metric!r}.")
    value = cell.metrics[metric]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        study.tell(trial, state=State.FAIL)
    else:
        study.tell(trial, float(value))


def _result(study, exp, st, rid, metric, direction, computed) -> SearchResult:
    trials = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("zombie"):
            continue
        trials.append({"number": t.number, "state": t.state.name.lower(), "params": t.params,
                       "value": t.value, "key": t.user_attrs.get("cell"),
                       "steps": len(t.intermediate_values)})
    done = [t for t in study.get_trials(deepcopy=False, states=(State.COMPLETE,))]
    best = (min if direction == "minimize" else max)(done, key=lambda t: t.value) if done else None
    cells = st.run_cells(rid)
    try:
        analysis = analyze(exp, cells)
    except Exception:   # an experiment's analysis may assume a full sweep grid
        analysis = Analysis()
    findings = ([f"Best {metric} {best.value:.4g} at {canonical(best.params)} after {len(trials)} trials."]
                if best else [f"No trial finished with a value of {metric}."])
    analysis = Analysis(findings + list(analysis.findings), dict(analysis.values))
    return SearchResult(rid, exp.name, study.study_name, metric, direction,
                        dict(best.params) if best else None, float(best.value) if best else None,
                        trials, cells, analysis, computed)
