"""Progress in training steps: from ``petridish.steps`` inside a task, through every executor's
channel, to the driver's bar (stderr) and the store's run record; never changing a computed bit."""
from __future__ import annotations

import json
import os
import sys
import threading
import time

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "search"))
from ray_helpers import ray_session  # noqa: E402,F401
import progress_toys  # noqa: E402

from petridish import steps  # noqa: E402
from petridish.cli.main import main  # noqa: E402
from petridish.lab import progress as progress_mod  # noqa: E402
from petridish.lab.cellkey import cell_key  # noqa: E402
from petridish.lab.executors import InProcessExecutor, ProcessPoolExecutorLab  # noqa: E402
from petridish.lab.progress import Progress  # noqa: E402
from petridish.lab.store import SQLStore  # noqa: E402
from petridish.lab.sweep import make_tasks, run_sweep  # noqa: E402
from petridish.lab.worker import run_task  # noqa: E402
from petridish.train import train_ensemble  # noqa: E402

EXP = progress_toys.STEPPY


def _tasks(steps_per_cell=30, pause=0.02):
    p = {"steps": steps_per_cell, "pause": pause}
    cells = [(cell_key(EXP.name, EXP.version, dict(p, x=x, tag=t), 0), dict(p, x=x, tag=t), 0)
             for t in ("a", "b") for x in (1, 2)]
    return make_tasks(EXP, cells)                # two groups (tag a, tag b) of two cells each


def test_steps_is_silent_without_a_listener_and_throttled_with_one():
    steps.expect(5)                              # nobody listens: nothing happens, nothing fails
    steps.advance()
    assert steps.counts() is None
    got = []
    with steps.listen(lambda d, t: got.append((d, t)), interval=3600.0):
        steps.expect(10)
        for _ in range(10):
            steps.advance()
        assert steps.counts() == (10, 10)
    assert got == [(0, 10), (10, 10)]            # the first report at once, the last on leaving
    got.clear()
    with steps.listen(lambda d, t: got.append((d, t)), interval=0.0):
        steps.declare(6)                         # a group of two 3-step loops, declared up front
        for _ in range(2):
            steps.expect(3)                      # ignored: the total is declared
            for _ in range(3):
                steps.advance()
    assert got[0] == (0, 6) and got[-1] == (6, 6) and all(t == 6 for _, t in got)


def _channel(ex):
    """Run the toy's two groups on ``ex``; every progress message with its arrival time, per task."""
    seen: dict[int, list[tuple[int, int, float]]] = {}
    ex.progress = lambda task, d, t: seen.setdefault(id(task), []).append((d, t, time.time()))
    ended = {}
    with ex:
        for task, cells in ex.run(_tasks()):
            assert [c.status for c in cells] == ["done", "done"] and cells[0].metrics["grouped"] == 2
            ended[id(task)] = cells[0].metrics["end"]
    assert set(seen) == set(ended) and len(ended) == 2
    for tid, msgs in seen.items():
        done = [d for d, _, _ in msgs]
        assert done == sorted(done) and msgs[-1][:2] == (30, 30)           # monotone, ends at the total
        assert all(t == 30 for _, t, _ in msgs)
        assert any(0 < d < 30 and at < ended[tid] for d, _, at in msgs), msgs   # heard while training


def test_in_process_progress_reaches_the_sink_while_the_group_trains():
    _channel(InProcessExecutor())


def test_process_pool_progress_reaches_the_driver_while_the_group_trains():
    _channel(ProcessPoolExecutorLab(2))


def test_ray_progress_reaches_the_driver_while_the_group_trains(ray_session):
    import ray.cloudpickle
    ray.cloudpickle.register_pickle_by_value(progress_toys)
    from petridish.lab.executors.ray import RayExecutor
    _channel(RayExecutor())


def test_driver_counts_steps_estimates_unreported_tasks_and_cells_without_steps():
    p = Progress(10, 2, label="t", enabled=False)         # 8 cells to compute, 2 from the store
    assert p.snapshot()["steps_total"] == 0               # nothing reported: cells only
    p.task_steps(1, 2, 5, 100)                            # a 2-cell task: 50 steps per cell
    assert p.steps() == (5, 400)                          # 6 cells not heard from: 300 estimated
    p.task_steps(1, 2, 3, 100)                            # an older message: never goes down
    assert p.steps() == (5, 400)
    p.task_ended(1, 2, 1)
    p.task_ended(2, 3, 0)                                 # never reported: counted at the estimate
    snap = p.snapshot()
    assert (snap["steps_done"], snap["steps_total"]) == (250, 400)
    p.task_steps(3, 2, 10, 20)                            # still running, 20 steps heard of so far:
    assert p.steps() == (260, 400)                        # the ended tasks' 50/cell is its floor
    assert (snap["cells_done"], snap["cells_failed"], snap["cells_total"]) == (2 + 1 + 3, 1, 10)
    p.close()


def test_json_stdout_stays_one_document_while_stderr_has_the_bar(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PETRIDISH_PROGRESS", "1")         # force the bar although stderr is no TTY
    rc = main(["run", "linear-double-descent", "--quick", "--json", "--store", str(tmp_path),
               "--set", "gamma=0.5,2", "--set", "n=40", "--seeds", "1", "--workers", "1"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert len(json.loads(out)["cells"]) == 2 * 2         # all of stdout is the one document
    assert "linear-double-descent" in err and "100%" in err and "cells 4/4" in err


def test_the_run_record_carries_growing_progress_during_a_sweep(tmp_path, monkeypatch):
    monkeypatch.setattr(progress_mod, "PUBLISH_EVERY_S", 0.2)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    over = {"steps": 40, "pause": 0.025}                  # two groups of 1 s each, one after the other
    store, seen = SQLStore(url), []                       # the tables exist before the sweep opens it
    worker = threading.Thread(target=run_sweep, args=(EXP,),
                              kwargs=dict(overrides=over, store=url, progress=False), daemon=True)
    worker.start()
    while worker.is_alive():
        runs = store.list_runs()
        prog = runs[0].provenance.get("progress") if runs else None
        if prog is not None and prog["steps_done"] not in [s["steps_done"] for s in seen]:
            seen.append(prog)
        time.sleep(0.05)
    worker.join()
    final = store.list_runs()[0].provenance["progress"]
    store.close()
    mid = [s for s in seen if 0 < s["steps_done"] < s["steps_total"]]
    assert len(mid) >= 2, seen                            # heard at least twice while training
    assert [s["steps_done"] for s in seen] == sorted(s["steps_done"] for s in seen)
    assert (final["steps_done"], final["steps_total"]) == (80, 80)
    assert (final["cells_done"], final["cells_failed"], final["cells_total"]) == (4, 0, 4)
    assert set(final) >= {"steps_done", "steps_total", "cells_done", "cells_failed", "cells_total", "updated"}


def test_listening_changes_no_bit_of_training():
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    kw = dict(seeds=[0, 1, 2], lr=0.1, steps=25, batch_size=16, model_kwargs={"width": 8, "depth": 1})
    plain = train_ensemble("mlp", x, y, **kw)
    heard = []
    with steps.listen(lambda d, t: heard.append((d, t)), interval=0.0):
        loud = train_ensemble("mlp", x, y, **kw)
    assert heard[0] == (0, 25) and heard[-1] == (25, 25) and len(heard) == 27
    for name in plain.params:
        assert torch.equal(plain.params[name], loud.params[name])
    assert torch.equal(plain.loss_history, loud.loss_history)



def test_a_catalogue_group_computes_the_same_bits_with_progress_as_without():
    from petridish.lab.registry import get
    exp = get("width-and-norms")
    cfg = exp.config({"width": 6, "n_train": 60, "n_test": 40, "epochs": 2, "batch_size": 20}, quick=True)
    todo = [(cell_key(exp.name, exp.version, p, s), p, s) for p, s in exp.grid(cfg, [0, 1, 2])]
    task, = make_tasks(exp, todo)                                           # one group: a 3-member ensemble
    heard = []
    quiet, told = run_task(task), run_task(task, lambda d, t: heard.append((d, t)))
    assert heard and heard[-1][0] == heard[-1][1] > 0                       # it did report steps
    assert [c.status for c in quiet] == ["done"] * len(todo)
    assert [c.metrics for c in quiet] == [c.metrics for c in told]          # exact, not approximate
