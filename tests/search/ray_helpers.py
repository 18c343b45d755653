"""Test-only helpers shared by the Ray tests: one Ray instance per session, and tiny
experiments whose cells can kill their own worker process."""
from __future__ import annotations

import os
import sys

import pytest

from petridish.lab import Experiment, Param


def _crashy_run(p: dict, seed: int) -> dict:
    marker = os.path.join(p["marker_dir"], f"x{p['x']}-s{seed}")
    if p["mode"] == "always" or (p["mode"] == "once" and not os.path.exists(marker)):
        open(marker, "w").close()
        os._exit(1)                       # the worker process dies mid-task
    return {"y": float(p["x"] ** 2 + seed), "pid": os.getpid()}


CRASHY = Experiment(
    name="test-crashy", question="?", reference="test", run=_crashy_run,
    params=(Param("x", int, default=[1, 2, 3]),
            Param("mode", str, default="never", choices=("never", "once", "always")),
            Param("marker_dir", str, default="/tmp")),
    seeds=2)


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray instance with 2 CPUs, started once per test session."""
    ray = pytest.importorskip("ray")
    import ray.cloudpickle
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers need not import tests
    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        started = True
    yield ray
    if started and ray.is_initialized():
        ray.shutdown()


def echo_source(task, experiment=None) -> list:
    """A stand-in for the executor's remote function: one cell whose metric is the task's source."""
    from petridish.lab.experiment import Cell
    return [Cell(k, task.experiment, p, s, "done", {"source": str(task.source)}) for k, p, s in task.cells]


def _prunable_run(p: dict, seed: int) -> dict:
    """A learning curve that ends at x: loss_t = x + 1/t; reports it at every step."""
    from petridish.lab import report_intermediate
    for t in range(1, p["steps"] + 1):
        report_intermediate(t, p["x"] + 1.0 / t)
    return {"loss": float(p["x"] + 1.0 / p["steps"]), "pid": os.getpid()}


PRUNABLE = Experiment(
    name="test-prunable", question="?", reference="test", run=_prunable_run,
    params=(Param("x", float, default=[0.0, 1.0], low=0.0, high=1.0),
            Param("steps", int, default=8, low=1)),
    seeds=1)
