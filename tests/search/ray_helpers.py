"""Test-only helpers shared by the Ray tests: one Ray instance per session, and a prunable toy."""
from __future__ import annotations

import os
import sys

import pytest

from petridish.lab import Experiment, Param


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray instance with 2 CPUs, started once per test session."""
    ray = pytest.importorskip("ray")
    import ray.cloudpickle
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers need not import tests
    started = False
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",   # never a
                 log_to_driver=False)                                                    # cluster found running
        started = True
    yield ray
    if started and ray.is_initialized():
        ray.shutdown()


def _prunable_run(p: dict, seed: int) -> dict:
    """A learning curve that ends at x: loss_t = x + 1/t; reports it at every step (``pause`` s apart)."""
    import time

    from petridish.lab import report_intermediate
    start = time.time()
    for t in range(1, p["steps"] + 1):
        time.sleep(p["pause"])
        report_intermediate(t, p["x"] + 1.0 / t)
    return {"loss": float(p["x"] + 1.0 / p["steps"]), "pid": os.getpid(), "start": start, "end": time.time()}


def ran_in_parallel(cells) -> bool:
    """True if two cells ran at the same time in two processes other than this one."""
    spans = [(c.metrics["start"], c.metrics["end"], c.metrics["pid"]) for c in cells if "pid" in c.metrics]
    return any(a[2] != b[2] and os.getpid() not in (a[2], b[2]) and a[0] < b[1] and b[0] < a[1]
               for i, a in enumerate(spans) for b in spans[i + 1:])


PRUNABLE = Experiment(
    name="test-prunable", question="?", reference="test", run=_prunable_run,
    params=(Param("x", float, default=[0.0, 1.0], low=0.0, high=1.0),
            Param("steps", int, default=8, low=1),
            Param("pause", float, default=0.0, low=0.0)),
    seeds=1)
