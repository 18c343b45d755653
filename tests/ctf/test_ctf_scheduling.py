"""The scoring queue: fair across competitors (issue 11, item 6), and a failure of the referee's
own machinery sends a submission back to the queue instead of failing it (item 9)."""
import os
import signal
import time

import numpy as np
import sqlalchemy as sa

import ctf_models as cm
from ctf_helpers import create_task, descendants, register, wait_scored
from petridish.ctf.db import Submission
from petridish.ctf.scoring import FairQueue

GOOD_W = np.array([[-1, 1], [0, 0], [0, 0], [0, 0], [0, 0]], np.float32)


def test_fair_queue_is_round_robin_with_a_cap_in_flight():
    q = FairQueue(cap=10)
    for sid, owner in [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "b"), (6, "c")]:
        q.put(sid, owner)
    assert [q.get()[0] for _ in range(6)] == [1, 4, 6, 2, 5, 3]
    q = FairQueue(cap=1)
    for sid in range(1, 7):
        q.put(sid, "bomber")
    q.put(7, "other")
    assert q.get() == (1, "bomber")
    assert q.get() == (7, "other")        # the bomber is at its cap: the other goes first
    q.done("bomber")
    assert q.get() == (2, "bomber")
    q.stop(1)
    assert q.get() is None


def test_loop_bombs_of_one_competitor_do_not_delay_another(make_client):
    """Issue 11, item 6: 6 loop bombs from one competitor delayed another's ordinary model by
    90 s (FIFO, 2 workers). Now the bomber holds one worker at a time and the other model is
    scored without waiting for any bomb (each runs to the 5 s limit; FIFO would make it wait
    three rounds, 15 s)."""
    client = make_client(scoring_workers=2, score_timeout_s=5)
    assert create_task(client, daily_limit=20).status_code == 201
    bomber, other = register(client, "bomber"), register(client, "other")
    r = client.post("/api/tasks/toy/submissions", headers=other, files={"file": ("m", cm.linear(GOOD_W))})
    wait_scored(client, other, 1)                       # scoring helpers started
    bombs = cm.hanging(5, 2)
    for _ in range(6):
        r = client.post("/api/tasks/toy/submissions", headers=bomber, files={"file": ("m", bombs)})
        assert r.status_code == 202, r.text
    time.sleep(0.5)                                     # the bombs are under way
    t0 = time.monotonic()
    r = client.post("/api/tasks/toy/submissions", headers=other, files={"file": ("m", cm.linear(GOOD_W))})
    assert r.status_code == 202, r.text
    subs = wait_scored(client, other, 2, timeout=30)
    waited = time.monotonic() - t0
    assert [s["status"] for s in subs] == ["scored", "scored"]
    print(f"the ordinary model was scored {waited:.2f} s after its upload, behind 6 bombs")
    assert waited < 5, f"the ordinary model waited {waited:.1f} s behind the bombs"
    running = [s["status"] for s in client.get("/api/submissions", headers=bomber).json()]
    assert running.count("queued") >= 4                 # the bombs themselves are still waiting


def test_a_dying_helper_is_the_referees_fault_and_the_model_is_retried(make_client):
    """Issue 11, item 9: a failure of the referee (here its scoring helper is killed mid-scoring)
    must not fail the submission: it goes back to the queue and is scored."""
    client = make_client(scoring_workers=1, score_timeout_s=30)
    assert create_task(client).status_code == 201
    alice = register(client, "alice")
    slow = cm.hanging(5, 2, trips=300_000)              # about a second per run on this machine
    r = client.post("/api/tasks/toy/submissions", headers=alice, files={"file": ("m", slow)})
    assert r.status_code == 202, r.text
    data_dir = str(client.app.state.settings.data_dir.resolve())
    deadline, child = time.monotonic() + 20, None
    while child is None and time.monotonic() < deadline:   # the child that maps this task's inputs
        for pid in descendants(os.getpid()):
            try:
                if data_dir in open(f"/proc/{pid}/maps").read():
                    child = pid
            except OSError:
                pass
        time.sleep(0.01)
    assert child is not None, "no scoring child found"
    helper = int(open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[1])
    os.kill(helper, signal.SIGKILL)
    [sub] = wait_scored(client, alice, 1, timeout=60)
    assert sub["status"] == "scored", sub
    with client.app.state.make_session() as s:
        row = s.scalar(sa.select(Submission))
        assert row.attempts == 2 and row.reason == ""
