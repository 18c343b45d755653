"""Experiment names: the lab's registry, which catalogues register into.

The lab never imports a catalogue. A catalogue either calls ``register(exp)`` when it
is imported, or declares itself in the ``petridish.experiments`` entry-point group of
its package (petridish's own catalogue does, in pyproject.toml)::

    [project.entry-points."petridish.experiments"]
    petridish = "petridish.experiments:catalogue"

An entry point may name an ``Experiment`` or a function returning experiments (a dict
name -> Experiment or any iterable of them). Entry points are loaded once, on the first
look-up of a name that is not registered yet; a thread that looks a name up while another
loads them waits for it (two sweeps started from two threads at once both find their names).
"""
from __future__ import annotations

import threading
from importlib.metadata import entry_points
from typing import Iterable

from petridish.errors import PetridishError
from petridish.lab.experiment import Experiment

GROUP = "petridish.experiments"

_registered: dict[str, Experiment] = {}
_origins: dict[str, str] = {}        # name -> the distribution whose entry point declared it, or "register()"
_loaded = {"started": False, "done": False}
_lock = threading.RLock()            # re-entrant: a catalogue may look a name up while it loads


def register(exp: Experiment) -> Experiment:
    """Make ``exp`` findable by its name; returns it, so it can be used as a decorator-like call."""
    if not isinstance(exp, Experiment):
        raise TypeError(f"register() takes an Experiment. Got {type(exp).__name__}.")
    _registered[exp.name] = exp
    _origins[exp.name] = "register()"
    return exp


def _load_entry_points() -> None:
    if _loaded["done"]:
        return
    with _lock:                      # another thread's loading finishes before this one looks
        if _loaded["started"]:       # done, or under way in this very thread
            return
        _loaded["started"] = True
        try:
            for ep in entry_points(group=GROUP):
                obj = ep.load()
                found = obj() if callable(obj) and not isinstance(obj, Experiment) else obj
                items: Iterable = found.values() if isinstance(found, dict) else \
                    ([found] if isinstance(found, Experiment) else found)
                dist = f"{ep.dist.name} {ep.dist.version}" if getattr(ep, "dist", None) else ep.value
                for exp in items:
                    _registered.setdefault(exp.name, exp)    # explicit register() calls win
                    _origins.setdefault(exp.name, dist)
        finally:
            _loaded["done"] = True


def catalogue() -> dict[str, Experiment]:
    """Every known experiment, by name, sorted."""
    _load_entry_points()
    return dict(sorted(_registered.items()))


def origin(name: str) -> str:
    """Where a known experiment was declared: "<distribution> <version>" of its entry point
    (petridish's own catalogue: "petridish X.Y"), or "register()"."""
    _load_entry_points()
    return _origins.get(name, "register()")


def get(name: str) -> Experiment:
    """The experiment called ``name``, or the one-line error that lists the allowed names."""
    if name not in _registered:
        _load_entry_points()
    if name not in _registered:
        raise PetridishError(f"Unknown experiment '{name}'. Allowed: {', '.join(sorted(_registered))}. "
                             "Run 'petridish list' to see them.")
    return _registered[name]
