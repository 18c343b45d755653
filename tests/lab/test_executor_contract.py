"""One contract suite, run against every executor (the contract: petridish.lab.executors.base).

In-process, a pool of 2 spawned processes, and Ray on a real local instance. The toy
experiments are registered nowhere, so a worker can only run them from the task itself.
"""
from __future__ import annotations

import os
import sys

import pytest

import lab_toys
from lab_toys import CRASHY, PRUNABLE, THREADS, TOY, TOY_GROUPED, PruneAt, attempts
from petridish.lab.cellkey import cell_key
from petridish.lab.executors import InProcessExecutor, ProcessPoolExecutorLab
from petridish.lab.worker import Task, run_task

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "search"))
from ray_helpers import ray_session  # noqa: E402,F401

EXECUTORS = ["in-process", "process-pool", "ray"]


@pytest.fixture(params=EXECUTORS)
def make(request):
    """A factory of fresh executors of one kind: make(max_retries=2)."""
    made = []

    def factory(max_retries: int = 2):
        if request.param == "in-process":
            ex = InProcessExecutor()
            ex.max_retries = max_retries
        elif request.param == "process-pool":
            ex = ProcessPoolExecutorLab(2, max_retries=max_retries)
        else:
            ray = request.getfixturevalue("ray_session")
            import ray.cloudpickle
            ray.cloudpickle.register_pickle_by_value(lab_toys)     # Ray workers need not import the tests
            from petridish.lab.executors.ray import RayExecutor
            ex = RayExecutor(max_retries=max_retries)
        made.append(ex)
        return ex

    factory.kind = request.param
    yield factory
    for ex in made:
        ex.close()


def tasks_of(exp, overrides=None, seeds=(0, 1), per_task=1) -> list[Task]:
    cells = [(cell_key(exp.name, exp.version, p, s), p, s)
             for p, s in exp.grid(exp.config(overrides), list(seeds))]
    return [Task(exp, tuple(cells[i:i + per_task])) for i in range(0, len(cells), per_task)]


def _plain(cells):
    return [(c.key, c.experiment, c.params, c.seed, c.status, {k: v for k, v in c.metrics.items() if k != "pid"},
             c.error) for c in cells]


def test_run_yields_every_task_once_with_the_cells_run_task_gives(make):
    tasks = tasks_of(TOY) + tasks_of(TOY_GROUPED, per_task=3)
    with make() as ex:
        got = list(ex.run(tasks))
    assert sorted(id(t) for t, _ in got) == sorted(id(t) for t in tasks)          # each task exactly once
    for task, cells in got:
        assert [c.key for c in cells] == [k for k, _, _ in task.cells]             # in the task's order
        assert _plain(cells) == _plain(run_task(task))                             # what the worker computes
    assert {c.metrics["grouped"] for t, cs in got if t.experiment is TOY_GROUPED for c in cs} == {3}


def test_submit_gives_a_ticket_and_wait_returns_each_finished_ticket_once(make):
    tasks = tasks_of(TOY)
    ex = make()
    tickets = {ex.submit(t): t for t in tasks}
    assert len(tickets) == len(tasks)
    seen = {}
    while ex.in_flight():
        for ticket, cells in ex.wait():
            assert ticket not in seen
            seen[ticket] = cells
    assert set(seen) == set(tickets)
    for ticket, cells in seen.items():
        (key, p, s), = tickets[ticket].cells
        assert cells[0].key == key and cells[0].metrics["y"] == p["x"] * 10 + s
    assert ex.wait() == []                      # nothing in flight: returns at once
    ex.close()
    ex.close()                                  # safe twice


def test_each_task_runs_on_one_thread(make):
    with make() as ex:
        cells = [c for _, cs in ex.run(tasks_of(THREADS, seeds=(0,))) for c in cs]
    assert len(cells) == 2
    assert all(c.metrics == {"torch_threads": 1, "blas_threads": 1} for c in cells), [c.metrics for c in cells]


def test_an_error_in_the_experiment_fails_its_cell_once_and_is_not_retried(make, tmp_path):
    bad = tasks_of(CRASHY, {"mode": "raise", "marker_dir": str(tmp_path), "x": 1}, seeds=(0,))
    good = tasks_of(TOY, {"x": 2}, seeds=(0,))
    with make() as ex:
        out = {t.name: cells for t, cells in ex.run(bad + good)}
    (failed,), (ok,) = out["test-crashy"], out["toy"]
    assert failed.status == "failed" and "RuntimeError: an error inside the experiment" in failed.error
    assert attempts(str(tmp_path), 1, 0) == 1
    assert ok.status == "done" and ok.metrics["y"] == 20


def test_the_reporter_travels_with_the_task(make):
    task = Task(PRUNABLE, tasks_of(PRUNABLE, {"x": 1}, seeds=(0,))[0].cells, reporter=PruneAt(3))
    with make() as ex:
        (_, (cell,)), = list(ex.run([task]))
    assert cell.status == "pruned" and cell.error == "pruned at step 3"


def test_a_task_whose_worker_dies_is_retried_twice_then_failed(make, tmp_path):
    if make.kind == "in-process":
        pytest.skip("the in-process executor's worker is the driver itself")
    once = tasks_of(CRASHY, {"mode": "once", "marker_dir": str(tmp_path), "x": 1}, seeds=(0,))
    always = tasks_of(CRASHY, {"mode": "always", "marker_dir": str(tmp_path), "x": 2}, seeds=(0,))
    with make() as ex:                          # default policy: 2 retries
        (_, (a,)), = list(ex.run(once))         # one task at a time: a dying pool takes only it down
        (_, (b,)), = list(ex.run(always))
    assert a.status == "done" and a.metrics["y"] == 1.0 and attempts(str(tmp_path), 1, 0) == 2
    assert b.status == "failed" and "worker died 3 times" in b.error and attempts(str(tmp_path), 2, 0) == 3
    with make(max_retries=0) as ex:
        (_, (c,)), = list(ex.run(tasks_of(CRASHY, {"mode": "always", "marker_dir": str(tmp_path), "x": 3},
                                          seeds=(0,))))
    assert c.status == "failed" and "worker died 1 times" in c.error and attempts(str(tmp_path), 3, 0) == 1
