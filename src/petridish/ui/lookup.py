"""Find what a page needs from the store: a run by id (or 404), and the experiment that made it.

The experiment is found by ``petridish.lab.source.experiment_for(record)`` where that module
exists (it also finds user experiments loaded from a file), else by name in the registry. A run
whose experiment cannot be found is still shown, without figure, analysis or custom table.
"""
from __future__ import annotations

import importlib
import re

from fastapi import HTTPException

from petridish.lab import registry
from petridish.lab.experiment import Experiment
from petridish.lab.store import RunRecord, Store

RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")     # what a run id may look like in a URL


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise HTTPException(422, f"A run id is 1 to 64 letters, digits, '_', '.' or '-'. Got {run_id[:80]!r}.")
    return run_id


def run_or_404(store: Store, run_id: str) -> RunRecord:
    rec = store.get_run(check_run_id(run_id))
    if rec is None:
        raise HTTPException(404, f"There is no run {run_id!r} in this store (a unique prefix of at least "
                                 "4 characters also works).")
    return rec


def experiment_of(record: RunRecord) -> Experiment | None:
    """The run's experiment, or None when neither the source finder nor the registry knows it."""
    try:
        source = importlib.import_module("petridish.lab.source")
    except ImportError:
        source = None
    finders = ([source.experiment_for] if source is not None and hasattr(source, "experiment_for") else [])
    finders.append(lambda r: registry.get(r.experiment))
    for find in finders:
        try:
            exp = find(record)
        except Exception:        # an unknown name, a moved or broken user file: show the run without it
            continue
        if isinstance(exp, Experiment):
            return exp
    return None
