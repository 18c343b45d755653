"""The same cells, bit for bit, on every executor and worker count (one machine).

Every task runs on one thread (torch and BLAS), so float reductions split the same way
in this process, in a spawned worker and in a Ray worker. Compared with ``==`` on the
float metrics, never a tolerance: these are catalogue experiments on reduced quick
configurations (a min-norm least-squares solve; NNGP/NTK kernel regression and a
trained MLP, whose tensors are large enough for torch to go parallel if it could).
"""
from __future__ import annotations

import os
import sys

import pytest

from petridish.lab.executors import InProcessExecutor, ProcessPoolExecutorLab
from petridish.lab.sweep import run_sweep

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "search"))
from ray_helpers import ray_session  # noqa: E402,F401

SWEEPS = {
    "linear-double-descent": dict(overrides={"gamma": [0.5, 1.5, 4.0]}, seeds=2),
    "nngp-vs-sgd": dict(overrides={"model": ["nngp", "ntk", "mlp-64"], "epochs": 3, "n_train": 200,
                                   "n_test": 100, "max_depth": 2}, seeds=1),
}


def _cells(name, executor):
    res = run_sweep(name, quick=True, store="memory", executor=executor, progress=False, **SWEEPS[name])
    assert all(c.status == "done" for c in res.cells), [c.error for c in res.cells if c.status != "done"]
    return [(c.key, c.metrics) for c in res.cells]


@pytest.mark.parametrize("name", list(SWEEPS))
def test_in_process_pool_and_ray_give_bitwise_identical_cells(name, ray_session):
    from petridish.lab.executors.ray import RayExecutor
    inproc = _cells(name, InProcessExecutor())
    pool = _cells(name, ProcessPoolExecutorLab(2))
    on_ray = _cells(name, RayExecutor())
    assert len(inproc) >= 6
    assert pool == inproc                  # dicts of floats (and float lists) compared with ==
    assert on_ray == inproc
