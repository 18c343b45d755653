"""Attacks of issue 11 against a live server on loopback: a validation bomb (item 1), and a
kill -9 while scoring (items 9 and 11): no scoring process outlives the server, scratch is
emptied at restart, and the interrupted submission is scored, not failed."""
import os
import signal
import threading
import time

import numpy as np
import sqlalchemy as sa

import ctf_models as cm
from ctf_helpers import ADMIN, LiveServer, alive, descendants, npz, toy_arrays


def _setup(server, name, daily_limit=20):
    with server.http(headers={"X-Admin-Secret": ADMIN}) as h:
        r = h.post("/api/admin/tasks", data={"name": name, "daily_limit": str(daily_limit)},
                   files={"arrays": ("a.npz", npz(toy_arrays()))})
        assert r.status_code == 201, r.text
    with server.http() as h:
        r = h.post("/api/competitors", json={"name": f"{name}-player"})
        assert r.status_code == 201, r.text
        return {"Authorization": "Bearer " + r.json()["token"]}


def _rss_mb(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024


def test_validation_bomb_leaves_the_server_small_and_responsive(tmp_path):
    """Item 1: Constant [1]*200000 -> ConstantOfShape -> 400 Relu -> Gemm (0.4 MB) took the
    server to 5.8 GB and blocked every request for 21 s. Now: a one-line 422 from the limited
    child, the server's peak RSS grows by less than 200 MB over its peak before the bomb (≈ 340 MB on
    its own; up to ≈ 410 MB measured inside the full suite on 2 busy cores), and other requests keep
    answering."""
    server = LiveServer(tmp_path / "ctf", workers=1,
                        extra_env={"PETRIDISH_CTF_SCORE_MEMORY_MB": "512"}).start()
    try:
        auth = _setup(server, "bomb")
        before = _rss_mb(server.proc.pid, "VmHWM:")  # imports and a first request: the baseline (MB)
        bomb = cm.shape_bomb(5, 2, rank=200_000, relus=400)
        result, latencies = {}, []

        def attack():
            with server.http() as h:
                t0 = time.monotonic()
                result["r"] = h.post("/api/tasks/bomb/submissions", headers=auth, files={"file": ("m", bomb)})
                result["s"] = time.monotonic() - t0
        t = threading.Thread(target=attack)
        with server.http() as h:
            h.get("/api/tasks")                       # connection open before the clock starts
            t.start()
            while t.is_alive():
                t0 = time.monotonic()
                assert h.get("/api/tasks").status_code == 200
                latencies.append(time.monotonic() - t0)
                time.sleep(0.02)
        t.join()
        r = result["r"]
        assert r.status_code == 422, r.text
        # Refused by one of the sandbox's limits: memory on an idle machine; on a loaded one the
        # CPU-time or wall-clock limit may be reached first. Either way a fixed one-line reason.
        detail = r.json()["detail"]
        assert ("memory limit" in detail or "was stopped" in detail) and "\n" not in detail, detail
        peak = _rss_mb(server.proc.pid, "VmHWM:")
        lat = np.array(latencies) * 1000
        print(f"bomb refused in {result['s']:.1f} s; server peak RSS {before:.0f} -> {peak:.0f} MB; "
              f"{len(lat)} other requests meanwhile: p50 {np.median(lat):.0f} ms, "
              f"p90 {np.percentile(lat, 90):.0f} ms, max {lat.max():.0f} ms")
        assert peak - before < 200, f"server peak RSS {before:.0f} -> {peak:.0f} MB"
        assert len(lat) >= 5 and np.median(lat) < 100, lat     # shared CPUs: the median, not the max
    finally:
        server.stop()


def test_kill_9_mid_scoring_leaves_no_orphans_and_the_model_is_rescored(tmp_path):
    """Items 11 and 9: after a kill -9 of the server, orphaned scoring processes ran on for 26 s,
    .out.npy files stayed in scratch for good, and a model interrupted by three kills ended
    'failed ... after repeated attempts', using up a daily slot."""
    server = LiveServer(tmp_path / "ctf", workers=1, extra_env={"PETRIDISH_CTF_SCORE_TIMEOUT_S": "60"}).start()
    try:
        auth = _setup(server, "kill")
        with server.http() as h:
            r = h.post("/api/tasks/kill/submissions", headers=auth,
                       files={"file": ("m", cm.hanging(5, 2, trips=500_000))})   # seconds
            assert r.status_code == 202, r.text
        pid = server.proc.pid
        deadline, tree = time.monotonic() + 30, set()
        while time.monotonic() < deadline:        # wait for the scoring child (a grandchild)
            tree = descendants(pid)
            if any(descendants(p) for p in tree):
                break
            time.sleep(0.02)
        assert any(descendants(p) for p in tree), "scoring never started"
        scratch = server.data_dir / "scratch"
        (scratch / "0123.out.npy").write_bytes(b"left over by a crash")
        os.kill(pid, signal.SIGKILL)              # the server alone, not its process group
        server.proc.wait(10)
        t0 = time.monotonic()
        while alive(tree) and time.monotonic() - t0 < 10:
            time.sleep(0.02)
        gone_after = time.monotonic() - t0
        survivors = alive(tree)
        for p in survivors:                       # never leave them running, even on failure
            os.kill(p, signal.SIGKILL)
        print(f"{len(tree)} scoring processes gone {gone_after:.2f} s after kill -9")
        assert not survivors and gone_after < 2, (survivors, gone_after)
        server.kill()                             # closes the log; the process is already gone
        engine = sa.create_engine(f"sqlite:///{server.data_dir / 'ctf.sqlite'}")
        with engine.begin() as c:                 # as if this had been the third kill in a row
            assert c.execute(sa.text("SELECT status FROM submissions")).scalar() == "running"
            c.execute(sa.text("UPDATE submissions SET attempts = 3"))
        server.start()
        assert not (scratch / "0123.out.npy").exists()      # start-up emptied scratch
        deadline = time.monotonic() + 60
        with engine.connect() as c:
            while time.monotonic() < deadline:
                row = c.execute(sa.text("SELECT status, reason, attempts FROM submissions")).one()
                if row.status in ("scored", "failed"):
                    break
                time.sleep(0.1)
        assert (row.status, row.reason, row.attempts) == ("scored", "", 4), row
        assert not list(scratch.iterdir())
    finally:
        server.stop()
