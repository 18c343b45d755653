"""Curve fitting and curve tests (seed-paired peaks) shared by experiments (underscore: not an experiment)."""
from petridish.experiments._fit.power_law import PowerLaw, PowerLawFit, bootstrap_power_law, fit_power_law

__all__ = ["PowerLaw", "PowerLawFit", "bootstrap_power_law", "fit_power_law"]
