import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from lab_toys import TOY, TOY_GROUPED
from petridish.errors import InvalidParameterError, PetridishError
from petridish.lab.cellkey import cell_key
from petridish.lab.store import MemoryStore, SQLStore
from petridish.lab.sweep import run_sweep


def test_grid_is_params_times_seeds_and_keys_are_content_hashes():
    store = MemoryStore()
    res = run_sweep(TOY, store=store, progress=False)
    assert len(res.cells) == 3 * 2 and res.computed == 6
    assert [(c.params["x"], c.seed) for c in res.cells] == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]
    assert all(c.metrics["y"] == c.params["x"] * 10 + c.seed for c in res.cells)
    assert res.cells[0].key == cell_key("toy", TOY.version, {"x": 1, "sleep": 0.0}, 0)
    assert res.cells[0].key != cell_key("toy", TOY.version + 1, {"x": 1, "sleep": 0.0}, 0)


def test_rerun_recomputes_nothing_and_keeps_the_run_id():
    store = MemoryStore()
    a = run_sweep(TOY, store=store, progress=False)
    b = run_sweep(TOY, store=store, progress=False)
    assert b.computed == 0 and a.run_id == b.run_id
    c = run_sweep(TOY, overrides={"x": [1, 2, 3, 4]}, store=store, progress=False)
    assert c.computed == 2 and c.run_id != a.run_id       # only the new x=4 cells run


def test_failed_cell_fails_alone_and_diverged_is_marked():
    store = MemoryStore()
    res = run_sweep(TOY, overrides={"x": [1, 13, 666]}, seeds=1, store=store, progress=False)
    status = {c.params["x"]: c.status for c in res.cells}
    assert status == {1: "done", 13: "failed", 666: "diverged"}
    err = next(c.error for c in res.cells if c.status == "failed")
    assert "unlucky cell" in err
    again = run_sweep(TOY, overrides={"x": [1, 13, 666]}, seeds=1, store=store, progress=False)
    assert again.computed == 1                              # the failed cell is retried, nothing else


def test_grouped_cells_share_one_call_per_group():
    res = run_sweep(TOY_GROUPED, store=MemoryStore(), progress=False)
    assert len(res.cells) == 12
    assert all(c.metrics["grouped"] == 6 for c in res.cells)   # 3 x values x 2 seeds per tag


def test_process_pool_gives_identical_results(tmp_path):
    over = {"sleep": 0.3}                  # cells long enough for both workers to take some
    one = run_sweep(TOY, overrides=over, store=MemoryStore(), progress=False)
    two = run_sweep(TOY, overrides=over, store=SQLStore(str(tmp_path / "s")), workers=2, progress=False)
    assert [(c.key, c.metrics["y"]) for c in one.cells] == [(c.key, c.metrics["y"]) for c in two.cells]
    assert {c.metrics["pid"] for c in one.cells} == {os.getpid()}            # in process
    pids = {c.metrics["pid"] for c in two.cells}
    assert len(pids) == 2 and os.getpid() not in pids                        # two worker processes


def test_bad_input_is_one_line():
    with pytest.raises(InvalidParameterError, match=r"^Unknown parameter 'nope' for experiment 'toy'. Allowed: x, sleep.$"):
        run_sweep(TOY, overrides={"nope": 1}, store=MemoryStore())
    with pytest.raises(InvalidParameterError, match=r"The 'x' parameter of experiment 'toy' must be an int >= 0. Got -1."):
        run_sweep(TOY, overrides={"x": -1}, store=MemoryStore())
    with pytest.raises(PetridishError, match="Unknown experiment 'nope'"):
        run_sweep("nope", store=MemoryStore())
    with pytest.raises(InvalidParameterError, match="'workers'"):
        run_sweep(TOY, workers=0, store=MemoryStore())


_KILL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from lab_toys import TOY
    from petridish.lab.sweep import run_sweep
    run_sweep(TOY, overrides={{"x": list(range(40)), "sleep": 0.05}}, seeds=1, store={store!r}, progress=False)
""")


@pytest.fixture(params=["sqlite", "postgresql"])
def kill_store(request, tmp_path):
    """The SQLite store always; a fresh PostgreSQL database when PETRIDISH_TEST_STORE_URL names a server."""
    return str(tmp_path / "runs") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_sigkill_loses_no_finished_cell_and_resume_finishes(tmp_path, kill_store):
    store = kill_store
    script = tmp_path / "drive.py"
    script.write_text(_KILL_SCRIPT.format(tests=os.path.dirname(__file__), store=store))
    proc = subprocess.Popen([sys.executable, str(script)])
    s = SQLStore(store)
    deadline = time.time() + 60
    stored = 0
    while time.time() < deadline:
        runs = s.list_runs()
        if runs:
            stored = len(s.run_cells(runs[0].id))
            if stored >= 8:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = s.list_runs()[0]
    before = {c.key: c.metrics["y"] for c in s.run_cells(run.id)}
    assert 8 <= len(before) < 40 and run.status == "running"
    res = run_sweep(TOY, overrides={"x": list(range(40)), "sleep": 0.05}, seeds=1, store=store, progress=False)
    assert res.run_id == run.id and res.computed == 40 - len(before)
    assert {c.key: c.metrics.get("y") for c in res.cells if c.key in before} == before
    assert s.get_run(run.id).status == "finished"
