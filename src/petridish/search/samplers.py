"""Optuna samplers and pruners by name (the CLI's --sampler / --pruner)."""
from __future__ import annotations

from typing import Any

import optuna

from petridish.errors import PetridishError, check_choice

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("none", "median", "hyperband")


def make_sampler(name: str, *, seed: int, grid: dict[str, list] | None = None) -> optuna.samplers.BaseSampler:
    check_choice(name, "sampler", "search", SAMPLERS)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)   # liar: parallel trials differ
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return _AskTellGrid(grid or {}, seed=seed)
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise PetridishError("The cmaes sampler needs the 'cmaes' package: pip install cmaes.") from None
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


class _AskTellGrid(optuna.samplers.GridSampler):
    """GridSampler calls ``study.stop()`` once the grid is exhausted, which Optuna refuses
    outside ``study.optimize``; the driver caps the budget at the grid size instead."""

    def after_trial(self, study, trial, state, values) -> None:
        try:
            super().after_trial(study, trial, state, values)
        except RuntimeError:
            pass


def make_pruner(name: str, **kw: Any) -> optuna.pruners.BasePruner:
    check_choice(name, "pruner", "search", PRUNERS)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=kw.get("n_startup_trials", 5), n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=kw.get("max_resource", "auto"),
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()
