"""The experiment contract suite (``petridish.lab.check_experiment``) over the whole catalogue, one
test per experiment on its ``tiny`` configuration: run is deterministic, its metrics are of the
contract's types, run_group equals run within the experiment's group_rtol, the parameter
declarations refuse bad values with the one-line error, analyze and plot survive a partial sweep.
A new experiment gets this for free; it only has to declare ``tiny=``."""
from __future__ import annotations

import time

import pytest

from petridish.lab import check_experiment
from petridish.lab.registry import catalogue

CATALOGUE = catalogue()


@pytest.mark.parametrize("name", sorted(CATALOGUE), ids=str)
def test_experiment_honours_the_contract(name):
    exp = CATALOGUE[name]
    assert exp.tiny, (f"{name}: declare tiny= on its Experiment: parameter overrides on top of --quick that "
                      "make the contract suite run it in seconds (tiny widths, few steps, small n; 2 seeds "
                      "run, and >= 2 values of one swept parameter give the partial sweep a finished cell)")
    t0 = time.perf_counter()
    report = check_experiment(exp)
    wall = time.perf_counter() - t0
    assert report.ok, f"{name}: " + " | ".join(report.failures)
    partial = report.get("partial").message
    assert "(0 done" not in partial, f"{name}: sweep a parameter in tiny= so a partial sweep keeps a finished cell"
    print(f"{name}: contract ok in {wall:.1f} s")   # shown with -s; the durations list shows it too
