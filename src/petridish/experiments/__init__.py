"""The catalogue. Every module here that defines ``EXPERIMENT`` is an experiment.

Adding an experiment means adding one module; nothing else needs editing. The lab finds the
catalogue through the ``petridish.experiments`` entry point (pyproject.toml), which names
``catalogue`` below; ``get`` is the lab registry's look-up.
"""
from __future__ import annotations

import importlib
import pkgutil

from petridish.lab.experiment import Experiment
from petridish.lab.registry import get

__all__ = ["catalogue", "get"]


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

