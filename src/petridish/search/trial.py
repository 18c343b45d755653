"""A trial's reporter: the cell's ``report_intermediate`` calls, routed to Optuna.

A ``TrialReporter`` travels inside the trial's task (``Task.reporter``) to whichever
worker runs it. There it reports each value of the searched metric to the Optuna trial
(``trial.report``) and raises ``Pruned`` when ``trial.should_prune()`` says so; the
cell then ends with status ``pruned``. The worker reaches the study through its Optuna
storage (a journal file beside the petridish store, which Optuna locks for concurrent
writers). It never touches the petridish store: the driver commits the returned cells.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from petridish.lab.experiment import Pruned


@dataclass
class TrialReporter:
    study_name: str
    trial_id: int                 # Optuna's storage-wide trial id (not the number)
    journal: str                  # Optuna journal file
    pruner: str
    metric: str | None = None     # the searched metric: intermediate values of others are ignored
    _trial: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_trial": None}      # the loaded study stays where it was loaded

    def _load(self) -> Any:
        import optuna

        from petridish.search.samplers import make_pruner
        from petridish.search.storage import journal_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=self.study_name, storage=journal_storage(self.journal),
                                  pruner=make_pruner(self.pruner), sampler=optuna.samplers.RandomSampler())
        return optuna.trial.Trial(study, self.trial_id)

    def __call__(self, step: int, value: float, metric: str | None = None) -> None:
        if metric is not None and self.metric is not None and metric != self.metric:
            return
        if self._trial is None:
            self._trial = self._load()
        self._trial.report(value, step)
        if self._trial.should_prune():
            raise Pruned(f"pruned at step {step} (value {value:.4g})")
