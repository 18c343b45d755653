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
CPU_BUDGET_S = 15.0   # CPU seconds per experiment (cells run on one thread: ≈ idle wall time; the largest is ~5)


def _check(name: str):
    """(report, wall s, CPU s) of one experiment's contract suite, timed in the process that ran it."""
    t0, c0 = time.perf_counter(), time.process_time()
    report = check_experiment(CATALOGUE[name])
    return report, time.perf_counter() - t0, time.process_time() - c0


@pytest.fixture(scope="module")
def reports(pmap):
    """Every experiment's suite, over one process per core: each check runs on one thread, so run one
    after another they leave a core idle (59 s in a row, 38 s over two processes on a 2-core AMD EPYC)."""
    names = sorted(n for n, e in CATALOGUE.items() if e.tiny)
    return dict(zip(names, pmap(_check, names)))


@pytest.mark.parametrize("name", sorted(CATALOGUE), ids=str)
def test_experiment_honours_the_contract(name, reports):
    exp = CATALOGUE[name]
    assert exp.tiny, (f"{name}: declare tiny= on its Experiment: parameter overrides on top of --quick that "
                      "make the contract suite run it in seconds (tiny widths, few steps, small n; it runs "
                      "2 seeds of every swept value, so sweep 2 values of one parameter at most)")
    report, wall, cpu = reports[name]
    assert report.ok, f"{name}: " + " | ".join(report.failures)
    assert cpu <= CPU_BUDGET_S, (f"{name}: the contract suite took {cpu:.0f} s of CPU on its tiny= configuration; "
                                 f"make tiny= smaller (the whole catalogue should take ~2 minutes)")
    print(f"{name}: contract ok in {wall:.1f} s ({cpu:.1f} s CPU)")   # shown with -s
