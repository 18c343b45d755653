"""The lab engine: experiments, cells, the results store, executors and sweeps."""
from petridish.lab.experiment import (Analysis, Cell, Experiment, Param, Pruned,
                                      report_intermediate)
from petridish.lab.check import CheckReport, CheckResult, check_experiment
from petridish.lab.claims import Claim, family, from_correlation, from_difference, from_values, not_measured
from petridish.lab.paired import paired_difference
from petridish.lab.ranks import rank_correlation
from petridish.lab.stats import aggregate, curve_ci, mean_ci, row_means, wilson_ci

__all__ = ["Analysis", "Cell", "Experiment", "Param", "Pruned", "report_intermediate",
           "CheckReport", "CheckResult", "check_experiment",
           "aggregate", "curve_ci", "mean_ci", "row_means", "wilson_ci",
           "Claim", "family", "from_correlation", "from_difference", "from_values", "not_measured",
           "paired_difference", "rank_correlation"]
