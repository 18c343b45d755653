"""The lab engine: experiments, cells, the results store, executors and sweeps."""
from petridish.lab.experiment import (Analysis, Cell, Experiment, Param, Pruned,
                                      report_intermediate)
from petridish.lab.stats import aggregate, curve_ci, mean_ci, row_means

__all__ = ["Analysis", "Cell", "Experiment", "Param", "Pruned", "report_intermediate",
           "aggregate", "curve_ci", "mean_ci", "row_means"]
