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


def _runs_for_queries(store):
    """r0..r5: created 0..5, experiments a/b alternating, r4 and r5 still running."""
    for i in range(6):
        store.create_run(RunRecord(f"r{i}", "ab"[i % 2], {}, [0], {}, "running", float(i)), [f"k{i}", "shared"])
        if i < 4:
            store.update_run(f"r{i}", status="finished")


def test_query_runs_filters_paginates_and_counts(store):
    _runs_for_queries(store)
    page, total = store.query_runs(limit=2)
    assert [r.id for r in page] == ["r5", "r4"] and total == 6
    page, total = store.query_runs(limit=2, offset=4)
    assert [r.id for r in page] == ["r1", "r0"] and total == 6
    assert store.query_runs(limit=2, offset=6) == ([], 6)
    page, total = store.query_runs(experiment="a")
    assert [r.id for r in page] == ["r4", "r2", "r0"] and total == 3
    page, total = store.query_runs(status="running")
    assert [r.id for r in page] == ["r5", "r4"] and total == 2
    page, total = store.query_runs(since=1.0, until=3.0)          # since <= created < until
    assert [r.id for r in page] == ["r2", "r1"] and total == 2
    page, total = store.query_runs(experiment="b", status="finished", since=2.0)
    assert [r.id for r in page] == ["r3"] and total == 1
    assert store.query_runs(experiment="nope") == ([], 0)


def test_cell_counts_group_by_run_and_status(store):
    _runs_for_queries(store)
    store.put_cells([_cell("k0"), _cell("k1", "failed"), _cell("k2", "diverged"), _cell("shared"),
                     _cell("unrelated")])
    got = store.cell_counts(["r0", "r1", "r2", "r3", "missing"])
    assert got == {"r0": {"done": 2}, "r1": {"failed": 1, "done": 1}, "r2": {"diverged": 1, "done": 1},
                   "r3": {"done": 1}, "missing": {}}       # a cell shared by runs counts in each
    assert store.cell_counts([]) == {}


def test_experiment_names_are_distinct_and_sorted(store):
    assert store.experiment_names() == []
    _runs_for_queries(store)
    assert store.experiment_names() == ["a", "b"]


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_target(request, tmp_path):
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else str(tmp_path / "runs")


def test_read_only_store_reads_and_refuses_writes(sql_target):
    rw = SQLStore(sql_target)
    rw.create_run(RunRecord("r", "e", {}, [0], {}, "running", 1.0), ["a"])
    rw.put_cells([_cell("a")])
    ro = SQLStore(sql_target, read_only=True)
    try:
        assert ro.get_run("r").id == "r" and ro.cell_counts(["r"]) == {"r": {"done": 1}}
        with pytest.raises(Exception, match="(?i)read-only|readonly|read only"):
            ro.put_cells([_cell("b")])
        with pytest.raises(Exception, match="(?i)read-only|readonly|read only"):
            ro.update_run("r", status="finished")
        rw.put_cells([_cell("c")])                        # a writer beside the reader is unaffected
        assert set(ro.get_cells(["a", "c"])) == {"a", "c"}
    finally:
        ro.close()
        rw.close()


def test_read_only_store_must_exist(tmp_path):
    from petridish.errors import PetridishError
    with pytest.raises(PetridishError, match="There is no results store at .*petridish.db: run an experiment"):
        SQLStore(str(tmp_path / "nothing"), read_only=True)
    assert not (tmp_path / "nothing").exists()           # opening read-only creates nothing


def test_sqlite_runs_list_uses_an_index(tmp_path):
    s = SQLStore(str(tmp_path / "w"))
    with s.engine.connect() as c:
        plan = " ".join(str(r[-1]) for r in c.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE experiment = 'x' ORDER BY created DESC LIMIT 50"))
    assert "ix_runs_experiment_created" in plan and "TEMP B-TREE" not in plan


def _open_and_close(path: str) -> None:
    from petridish.lab.store import open_store
    open_store(path).close()


def test_processes_opening_a_new_sqlite_store_at_once_all_succeed(tmp_path):
    """A sweep, its workers and the dashboard may create the same new store together: no
    'table runs already exists' for the loser of the race."""
    import multiprocessing as mp
    for trial in range(3):
        path = str(tmp_path / f"race{trial}.db")
        ctx = mp.get_context("fork")
        procs = [ctx.Process(target=_open_and_close, args=(path,)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 6
