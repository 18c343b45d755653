"""One contract suite, run against every store backend."""
import time

import pytest

from petridish.lab.experiment import Cell
from petridish.lab.store import MemoryStore, RunRecord, SQLStore


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
def store(request, tmp_path):
    """SQLite and memory always; PostgreSQL when PETRIDISH_TEST_STORE_URL names a server
    (`.ci/run` starts one): each test gets a fresh database on it."""
    if request.param == "postgresql":
        s = SQLStore(request.getfixturevalue("pg_url"))    # a fresh database per test
        yield s
        s.close()
    elif request.param == "sqlite":
        s = SQLStore(str(tmp_path / "runs"))
        yield s
        s.close()
    else:
        yield MemoryStore()


def _cell(key, status="done", **metrics):
    return Cell(key, "exp", {"a": 1, "key": key}, 0, status, metrics or {"m": 1.0})


def test_run_roundtrip_and_prefix_lookup(store):
    store.create_run(RunRecord("abcdef123456", "exp", {"a": [1, 2]}, [0, 1], {"x": 1}, "running", time.time()),
                     ["k1", "k2", "k3"])
    r = store.get_run("abcdef123456")
    assert (r.experiment, r.config, r.seeds, r.n_cells, r.status) == ("exp", {"a": [1, 2]}, [0, 1], 3, "running")
    assert store.get_run("abcd").id == "abcdef123456"
    assert store.get_run("abc") is None          # prefixes shorter than 4 are not accepted
    assert store.get_run("zzzz") is None
    assert store.run_keys("abcdef123456") == ["k1", "k2", "k3"]


def test_update_and_list_newest_first(store):
    store.create_run(RunRecord("r1", "e1", {}, [0], {}, "running", 1.0), [])
    store.create_run(RunRecord("r2", "e2", {}, [0], {}, "running", 2.0), [])
    store.update_run("r1", status="finished", wall_time=3.5, provenance={"torch": "x"})
    r1 = store.get_run("r1")
    assert (r1.status, r1.wall_time, r1.provenance) == ("finished", 3.5, {"torch": "x"})
    assert [r.id for r in store.list_runs()] == ["r2", "r1"]
    assert [r.id for r in store.list_runs("e1")] == ["r1"]


def test_create_existing_run_keeps_its_keys(store):
    store.create_run(RunRecord("r", "e", {}, [0], {}, "running", 1.0), ["a", "b"])
    store.create_run(RunRecord("r", "e", {}, [0], {"p": 2}, "running", 5.0), ["a", "b"])
    assert store.run_keys("r") == ["a", "b"] and store.get_run("r").provenance == {"p": 2}


def test_add_run_keys_appends_new_keys_only(store):
    store.create_run(RunRecord("r", "e", {}, [0], {}, "running", 1.0), ["a"])
    store.add_run_keys("r", ["a", "b", "c", "b"])
    assert store.run_keys("r") == ["a", "b", "c"] and store.get_run("r").n_cells == 3


def test_cells_roundtrip_upsert_and_finished(store):
    store.create_run(RunRecord("r", "e", {}, [0], {}, "running", 1.0), ["a", "b", "c", "d"])
    store.put_cells([_cell("a", m=0.5, curve=[1.0, 2.0]), _cell("b", "failed"), _cell("c", "diverged")])
    got = store.get_cells(["a", "b", "c", "d"])
    assert set(got) == {"a", "b", "c"}
    assert got["a"].metrics == {"m": 0.5, "curve": [1.0, 2.0]} and got["a"].params == {"a": 1, "key": "a"}
    assert store.finished_keys(["a", "b", "c", "d"]) == {"a", "c"}     # failed cells are redone
    store.put_cells([_cell("b", "done", m=2.0)])
    assert store.get_cells(["b"])["b"].status == "done"
    assert [c.key for c in store.run_cells("r")] == ["a", "b", "c"]


def test_nan_and_inf_metrics_roundtrip(store):
    store.put_cells([_cell("n", "diverged", loss=float("nan"), big=float("inf"))])
    m = store.get_cells(["n"])["n"].metrics
    assert m["loss"] != m["loss"] and m["big"] == float("inf")


def test_many_keys(store):
    keys = [f"k{i}" for i in range(1200)]            # more than SQLite's bound-parameter limit per query
    store.put_cells([_cell(k) for k in keys])
    assert len(store.get_cells(keys)) == 1200


def test_sqlite_is_in_wal_mode(tmp_path):
    s = SQLStore(str(tmp_path / "w"))
    with s.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
