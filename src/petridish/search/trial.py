"""What a worker runs for one trial: the trial's cell, with pruning wired in.

The experiment's ``report_intermediate(step, value)`` is routed to Optuna's
``trial.report`` and ``trial.should_prune``; when the pruner says so the cell stops
with status ``pruned``. The worker reaches the study through its Optuna storage (a
journal file beside the petridish store, which Optuna locks for concurrent writers).
It never touches the petridish store: the driver commits the returned cells.
Top-level and plain-data arguments, so process pools and Ray can ship it.
"""
from __future__ import annotations

from dataclasses import dataclass

from petridish.lab.experiment import Cell, Experiment, Pruned, reset_reporter, set_reporter
from petridish.lab.worker import Task, run_task


@dataclass(frozen=True)
class TrialSpec:
    study_name: str
    trial_id: int                 # Optuna's storage-wide trial id (not the number)
    journal: str | None           # Optuna journal file; None: no pruning
    pruner: str = "none"
    metric: str | None = None     # the searched metric: intermediate values of others are ignored


def run_trial(task: Task, spec: TrialSpec, experiment: Experiment | None = None) -> list[Cell]:
    if spec.pruner == "none" or spec.journal is None:
        return run_task(task, experiment)
    import optuna

    from petridish.search.samplers import make_pruner
    from petridish.search.storage import journal_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=spec.study_name, storage=journal_storage(spec.journal),
                              pruner=make_pruner(spec.pruner), sampler=optuna.samplers.RandomSampler())
    trial = optuna.trial.Trial(study, spec.trial_id)

    def reporter(step: int, value: float, metric: str | None = None) -> None:
        if metric is not None and spec.metric is not None and metric != spec.metric:
            return
        trial.report(value, step)
        if trial.should_prune():
            raise Pruned(f"pruned at step {step} (value {value:.4g})")

    token = set_reporter(reporter)
    try:
        return run_task(task, experiment)
    finally:
        reset_reporter(token)
