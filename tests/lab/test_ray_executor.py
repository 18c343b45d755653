"""RayExecutor on a real local Ray instance, beyond the executor contract suite: resume of a
sweep, and a driver killed mid-sweep on an instance it joined by address."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "search"))
from ray_helpers import ray_session  # noqa: E402,F401
import lab_toys  # noqa: E402

from petridish.lab.executors.local import InProcessExecutor  # noqa: E402
from petridish.lab.store import MemoryStore, SQLStore  # noqa: E402
from petridish.lab.sweep import run_sweep  # noqa: E402

pytest.importorskip("ray")
from petridish.lab.executors.ray import RayExecutor  # noqa: E402


def test_ray_sweep_matches_local_cell_for_cell_and_resumes(ray_session):
    store = MemoryStore()
    over = {"gamma": [0.5, 2.0], "n": 40}
    with RayExecutor() as ex:
        got = run_sweep("linear-double-descent", overrides=over, quick=True, seeds=2, store=store,
                        executor=ex, progress=False)
    want = run_sweep("linear-double-descent", overrides=over, quick=True, seeds=2, store="memory",
                     executor=InProcessExecutor(), progress=False)
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


def test_bad_constructor_arguments_have_one_line_errors():
    with pytest.raises(ValueError, match="The 'max_retries' parameter of RayExecutor must be an int >= 0"):
        RayExecutor(max_retries=-1)
    with pytest.raises(ValueError, match="The 'workers' parameter of RayExecutor must be an int >= 1"):
        RayExecutor(workers=0)


_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import ray, ray.cloudpickle
    import lab_toys
    ray.cloudpickle.register_pickle_by_value(lab_toys)     # workers need not import the tests
    from petridish.lab.executors.ray import RayExecutor
    from petridish.lab.sweep import run_sweep
    run_sweep(lab_toys.TOY, overrides={{"x": list(range(20, 44)), "sleep": 0.1}}, seeds=1, store={store!r},
              executor=RayExecutor(address={address!r}), progress=False)
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
    with RayExecutor() as ex:
        res = run_sweep(lab_toys.TOY, overrides=over, seeds=1, store=store, executor=ex, progress=False)
    assert res.run_id == run.id and res.computed == 24 - len(before)
    assert {c.key: c.metrics["y"] for c in res.cells if c.key in before} == before
    assert sorted(c.metrics["y"] for c in res.cells) == [10 * x for x in range(20, 44)]
    assert s.get_run(run.id).status == "finished"
