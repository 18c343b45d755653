"""The catalogue. Every module here that defines ``EXPERIMENT`` is an experiment.

Adding an experiment means adding one module; nothing else needs editing.
"""
from __future__ import annotations

import importlib
import pkgutil

from petridish.errors import PetridishError
from petridish.lab.experiment import Experiment


def catalogue() -> dict[str, Experiment]:
    found: dict[str, Experiment] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        exp = getattr(module, "EXPERIMENT", None)
        if isinstance(exp, Experiment):
            found[exp.name] = exp
    return found


def get(name: str) -> Experiment:
    cat = catalogue()
    if name not in cat:
        raise PetridishError(
            f"Unknown experiment '{name}'. Allowed: {', '.join(sorted(cat))}. Run 'petridish list' to see them.")
    return cat[name]
