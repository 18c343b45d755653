"""RayExecutor on a real local Ray instance: same cells as local, resume, worker death."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "search"))
from ray_helpers import CRASHY, echo_source, ray_session  # noqa: E402,F401
import lab_toys  # noqa: E402

from petridish.lab.cellkey import cell_key  # noqa: E402
from petridish.lab.executors.local import InProcessExecutor  # noqa: E402
from petridish.lab.store import MemoryStore, SQLStore  # noqa: E402
from petridish.lab.sweep import run_sweep  # noqa: E402
from petridish.lab.worker import Task  # noqa: E402

pytest.importorskip("ray")
from petridish.lab.executors.ray import RayExecutor  # noqa: E402


def _tasks(mode: str, marker_dir: str) -> list[Task]:
    cfg = CRASHY.config({"mode": mode, "marker_dir": marker_dir})
    return [Task(CRASHY.name, ((cell_key(CRASHY.name, 1, p, s), p, s),))
            for p, s in CRASHY.grid(cfg, [0, 1])]


def test_ray_sweep_matches_local_cell_for_cell_and_resumes(ray_session):
    store = MemoryStore()
    over = {"gamma": [0.5, 2.0], "n": 40}
    with RayExecutor() as ex:
        got = run_sweep("linear-double-descent", overrides=over, quick=True, seeds=2, store=store,
                        executor=ex, progress=False)
    want = run_sweep("linear-double-descent", overrides=over, quick=True, seeds=2, store="memory",
                     executor=InProcessExecutor(threads=1), progress=False)
    assert got.computed == len(got.cells) == 2 * 2 * 2          # gamma × ridge × seeds
    assert [c.key for c in got.cells] == [c.key for c in want.cells]
    for a, b in zip(got.cells, want.cells):
        assert a.status == b.status == "done"
        assert a.metrics == b.metrics                              # bit-identical, not approximately
    assert ray_session.is_initialized()                            # a borrowed instance is left running
    # resume: a sweep whose cells are already in the store computes nothing
    again = run_sweep("linear-double-descent", overrides=over, quick=True, seeds=2, store=store,
                      executor=RayExecutor(), progress=False)
    assert again.computed == 0 and again.run_id == got.run_id


def test_killed_worker_is_retried_then_failed_after_the_retry_limit(ray_session, tmp_path):
    # one cell kills its worker on its first attempt only, the other on every attempt
    once, always = _tasks("once", str(tmp_path))[0], _tasks("always", str(tmp_path))[1]
    with RayExecutor(max_retries=1, experiment=CRASHY) as ex:
        out = {c.params["mode"]: c for _, cells in ex.run([once, always]) for c in cells}
    assert out["once"].status == "done", out["once"].error
    assert out["once"].metrics["y"] == 1.0                        # x=1, seed=0, computed on the retry
    assert os.path.exists(tmp_path / "x1-s0")                     # ... after the first worker really died
    assert out["always"].status == "failed"
    assert "worker died 2 times" in out["always"].error           # 1 try + 1 retry, then given up


def test_bad_constructor_arguments_have_one_line_errors():
    with pytest.raises(ValueError, match="The 'max_retries' parameter of RayExecutor must be an int >= 0"):
        RayExecutor(max_retries=-1)


def test_tasks_keep_their_source_module_on_the_way_to_the_worker(ray_session, monkeypatch):
    import petridish.lab.executors.ray as ray_executor
    monkeypatch.setattr(ray_executor, "_run_remote", echo_source)   # the worker echoes what it got
    task = Task("not-in-the-catalogue", (("k", {"x": 1}, 0),), threads=4, source="some.module")
    with RayExecutor() as ex:
        (_, cells), = list(ex.run([task]))
    assert cells[0].metrics["source"] == "some.module"


_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import ray, ray.cloudpickle
    import lab_toys
    ray.cloudpickle.register_pickle_by_value(lab_toys)     # workers need not import the tests
    from petridish.lab.executors.ray import RayExecutor
    from petridish.lab.sweep import run_sweep
    run_sweep(lab_toys.TOY, overrides={{"x": list(range(20, 44)), "sleep": 0.1}}, seeds=1, store={store!r},
              executor=RayExecutor(address={address!r}, experiment=lab_toys.TOY), progress=False)
""")


def test_driver_killed_mid_sweep_then_resumed_on_the_cluster(ray_session, tmp_path):
    """A driver joins the running instance by address, is SIGKILLed mid-sweep; a resume
    computes exactly the missing cells, and the stored ones are untouched."""
    import ray.cloudpickle
    ray.cloudpickle.register_pickle_by_value(lab_toys)
    store, over = str(tmp_path / "runs"), {"x": list(range(20, 44)), "sleep": 0.1}   # no x=13
    script = tmp_path / "drive.py"
    script.write_text(_DRIVER.format(tests=os.path.dirname(__file__), store=store,
                                     address=ray_session.get_runtime_context().gcs_address))
    proc = subprocess.Popen([sys.executable, str(script)])
    s, stored, deadline = SQLStore(store), 0, time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            runs = s.list_runs()
            stored = len(s.run_cells(runs[0].id)) if runs else 0
            if stored >= 6:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run = s.list_runs()[0]
    before = {c.key: c.metrics["y"] for c in s.run_cells(run.id)}
    assert 6 <= len(before) < 24 and run.status == "running"
    with RayExecutor(experiment=lab_toys.TOY) as ex:
        res = run_sweep(lab_toys.TOY, overrides=over, seeds=1, store=store, executor=ex, progress=False)
    assert res.run_id == run.id and res.computed == 24 - len(before)
    assert {c.key: c.metrics["y"] for c in res.cells if c.key in before} == before
    assert sorted(c.metrics["y"] for c in res.cells) == [10 * x for x in range(20, 44)]
    assert s.get_run(run.id).status == "finished"
