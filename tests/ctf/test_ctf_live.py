"""A live uvicorn server on loopback: 200 submissions from 20 concurrent clients, and a crash
(SIGKILL while scoring) followed by a restart that finishes every accepted submission."""
import concurrent.futures as cf
import time

import numpy as np
import sqlalchemy as sa

import ctf_models as cm
from ctf_helpers import ADMIN, LiveServer, npz, toy_arrays
from petridish.ctf.ladder import replay
from petridish.ctf.metrics import per_example_loss


def _db(server):
    return sa.create_engine(f"sqlite:///{server.data_dir / 'ctf.sqlite'}")


def _create(server, name, **fields):
    with server.http(headers={"X-Admin-Secret": ADMIN}) as h:
        r = h.post("/api/admin/tasks", data={"name": name, **{k: str(v) for k, v in fields.items()}},
                   files={"arrays": ("a.npz", npz(toy_arrays()))})
        assert r.status_code == 201, r.text


def _wait_all(server, name, n, timeout):
    deadline = time.monotonic() + timeout
    with _db(server).connect() as c:
        while time.monotonic() < deadline:
            done = c.execute(sa.text(
                "SELECT count(*) FROM submissions s JOIN tasks t ON t.id = s.task_id "
                "WHERE t.name = :n AND s.status IN ('scored', 'failed')"), {"n": name}).scalar()
            if done == n:
                return
            time.sleep(0.1)
    raise AssertionError(f"only {done} of {n} finished within {timeout} s")


def test_200_submissions_from_20_concurrent_clients(live_server):
    _create(live_server, "conc", daily_limit=10)
    arrays = toy_arrays()
    weights = {}

    latencies = []

    def client(i):
        with live_server.http() as h:
            r = h.post("/api/competitors", json={"name": f"c{i:02d}"})
            assert r.status_code == 201, r.text
            auth = {"Authorization": "Bearer " + r.json()["token"]}
            rng = np.random.default_rng(i)
            ids = []
            for j in range(10):
                w = rng.normal(size=(5, 2)).astype(np.float32)
                t0 = time.monotonic()
                r = h.post("/api/tasks/conc/submissions", headers=auth, files={"file": ("m", cm.linear(w))})
                latencies.append(time.monotonic() - t0)
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
                weights[r.json()["id"]] = w
            over = h.post("/api/tasks/conc/submissions", headers=auth, files={"file": ("m", cm.linear(w))})
            assert over.status_code == 429          # the daily limit holds under concurrency
            return ids

    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(20) as pool:
        ids = [sid for part in pool.map(client, range(20)) for sid in part]
    t1 = time.monotonic()
    assert len(ids) == 200 and len(set(ids)) == 200
    print(f"submit latency: p50 {np.median(latencies):.3f} s, max {max(latencies):.3f} s")
    _wait_all(live_server, "conc", 200, timeout=90)
    print(f"submitted in {t1 - t0:.1f} s, all scored {time.monotonic() - t1:.1f} s later")
    with _db(live_server).connect() as c:
        rows = c.execute(sa.text(
            "SELECT s.id, c.name, s.status, s.ladder_seq, s.released FROM submissions s "
            "JOIN competitors c ON c.id = s.competitor_id JOIN tasks t ON t.id = s.task_id "
            "WHERE t.name = 'conc' ORDER BY c.name, s.ladder_seq")).all()
    assert sorted(r.id for r in rows) == sorted(ids)               # none lost, none extra
    assert all(r.status == "scored" for r in rows)
    with live_server.http() as h:
        board = {r["competitor"]: r for r in h.get("/api/tasks/conc/leaderboard").json()["rows"]}
    assert len(board) == 20
    n_pub = 100
    y_pub = arrays["y_test"]  # the server shuffled the test set: recompute losses from its own split
    x = arrays["x_test"]
    perm = np.random.default_rng(0).permutation(len(x))
    x, y = x[perm][:n_pub], y_pub[perm][:n_pub]
    for name in board:
        mine = [r for r in rows if r.name == name]
        assert [r.ladder_seq for r in mine] == list(range(1, 11))  # each counted exactly once
        losses = [per_example_loss("accuracy", x @ weights[r.id], y) for r in mine]
        steps = replay("ladder", losses)
        assert [round(s.released, 9) for s in steps] == [round(r.released, 9) for r in mine]
        assert board[name]["submissions"] == 10
        assert board[name]["score"] == round(1 - steps[-1].best_loss, 5)


def test_crash_while_scoring_then_restart_finishes_everything(tmp_path):
    server = LiveServer(tmp_path / "ctf", workers=1).start()
    try:
        _create(server, "crash", daily_limit=50)
        with server.http() as h:
            auth = {"Authorization": "Bearer " + h.post("/api/competitors", json={"name": "z"}).json()["token"]}
            slow = cm.hanging(5, 2, trips=60_000)           # about 0.3 s each
            ids = [h.post("/api/tasks/crash/submissions", headers=auth, files={"file": ("m", slow)}).json()["id"]
                   for _ in range(12)]
        with _db(server).connect() as c:      # wait until scoring is under way, then crash
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                n = c.execute(sa.text("SELECT count(*) FROM submissions WHERE status = 'scored'")).scalar()
                if n >= 1:
                    break
                time.sleep(0.02)
        server.kill()
        with _db(server).connect() as c:
            states = dict(c.execute(sa.text("SELECT id, status FROM submissions")).all())
        assert sorted(states) == sorted(ids)                 # all accepted ones were stored
        unfinished = [s for s in states.values() if s in ("queued", "running")]
        assert unfinished, "the crash came too late to test anything"
        server.start()
        _wait_all(server, "crash", 12, timeout=60)
        with _db(server).connect() as c:
            rows = c.execute(sa.text("SELECT status, ladder_seq FROM submissions ORDER BY ladder_seq")).all()
        assert [r.status for r in rows] == ["scored"] * 12
        assert [r.ladder_seq for r in rows] == list(range(1, 13))   # none double-counted
        with server.http() as h:
            assert h.get("/api/tasks/crash/leaderboard").json()["rows"][0]["submissions"] == 12
    finally:
        server.stop()
