"""Every API route, its success and its error paths (in-process app, real scoring processes)."""
import datetime as dt
import io

import numpy as np
import pytest

import ctf_models as cm
from ctf_helpers import ADMIN, create_task, register, toy_arrays, wait_scored

GOOD_W = np.array([[-1, 1], [0, 0], [0, 0], [0, 0], [0, 0]], np.float32)   # argmax = [x0 > 0]: perfect


def one_line(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 400, detail
    return detail


def test_tasks_routes(client):
    assert client.get("/api/tasks").json() == []
    r = create_task(client, description="Toy task", daily_limit=7, leaderboard="naive")
    assert r.status_code == 201, r.text
    t = r.json()
    assert (t["name"], t["metric"], t["leaderboard"], t["daily_limit"]) == ("toy", "accuracy", "naive", 7)
    assert (t["n_train"], t["n_test_public"], t["n_test_private"]) == (100, 100, 100)
    assert t["input_shape"] == ["batch", 5] and t["output_shape"] == ["batch", 2] and t["open"]
    assert [x["name"] for x in client.get("/api/tasks").json()] == ["toy"]
    assert client.get("/api/tasks/toy").json()["description"] == "Toy task"
    assert "'nope'" in one_line(client.get("/api/tasks/nope"), 404)
    r = client.get("/api/tasks/toy/train")
    z = np.load(io.BytesIO(r.content), allow_pickle=False)
    arrays = toy_arrays()
    assert sorted(z.files) == ["x_train", "y_train"]
    np.testing.assert_array_equal(z["x_train"], arrays["x_train"])
    one_line(client.get("/api/tasks/nope/train"), 404)


def test_admin_routes(client):
    one_line(create_task(client, admin="wrong-secret-wrong-secret"), 403)
    r = client.post("/api/admin/tasks", data={"name": "x"}, files={"arrays": ("a", b"x")})
    one_line(r, 403)
    assert create_task(client).status_code == 201
    assert "already exists" in one_line(create_task(client), 409)
    assert "'metric'" in one_line(create_task(client, name="t2", metric="f1"), 422)
    assert "'leaderboard'" in one_line(create_task(client, name="t2", leaderboard="best"), 422)
    assert "'name'" in one_line(create_task(client, name="../etc"), 422)
    bad = toy_arrays()
    bad["x_test"] = bad["x_test"][:, :3]
    assert "columns" in one_line(create_task(client, name="t2", arrays=bad), 422)
    r = client.post("/api/admin/tasks", headers={"X-Admin-Secret": ADMIN}, data={"name": "t3"},
                    files={"arrays": ("a.npz", b"not an npz")})
    assert ".npz" in one_line(r, 422)
    buf = io.BytesIO()   # an object array needs pickle: refused, never unpickled
    np.savez(buf, x_train=np.array([{"a": 1}], dtype=object), y_train=[0], x_test=[[0]], y_test=[0])
    r = client.post("/api/admin/tasks", headers={"X-Admin-Secret": ADMIN}, data={"name": "t3"},
                    files={"arrays": ("a.npz", buf.getvalue())})
    one_line(r, 422)
    r = client.post("/api/admin/tasks", headers={"X-Admin-Secret": ADMIN}, data={"name": "t4"})
    assert "'arrays'" in one_line(r, 422)
    # PATCH: times and limits
    h = {"X-Admin-Secret": ADMIN}
    r = client.patch("/api/admin/tasks/toy", headers=h, json={"daily_limit": 3, "description": "new"})
    assert r.status_code == 200 and r.json()["daily_limit"] == 3 and r.json()["description"] == "new"
    assert "closes_at" in one_line(client.patch("/api/admin/tasks/toy", headers=h,
                                                json={"closes_at": "2000-01-01T00:00:00"}), 422)
    one_line(client.patch("/api/admin/tasks/toy", headers=h, json={"daily_limit": 0}), 422)
    one_line(client.patch("/api/admin/tasks/none", headers=h, json={}), 404)
    one_line(client.patch("/api/admin/tasks/toy", json={}), 403)


def test_competitor_routes(client):
    r = client.post("/api/competitors", json={"name": "alice"})
    assert r.status_code == 201
    token = r.json()["token"]
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["name"] == "alice"
    assert "taken" in one_line(client.post("/api/competitors", json={"name": "alice"}), 409)
    one_line(client.post("/api/competitors", json={"name": "a b"}), 422)
    one_line(client.post("/api/competitors", json={"name": ""}), 422)
    one_line(client.post("/api/competitors", json={}), 422)
    one_line(client.post("/api/competitors", content=b"{not json", headers={"content-type": "application/json"}), 422)
    assert "Bearer" in one_line(client.get("/api/me"), 401)
    one_line(client.get("/api/me", headers={"Authorization": f"Bearer {token}x"}), 401)
    one_line(client.get("/api/me", headers={"Authorization": f"Basic {token}"}), 401)
    one_line(client.get("/api/me", headers={"Authorization": "Bearer " + token.split(".")[0] + ".AAAA"}), 401)


def test_submission_routes_and_leaderboards(make_client):
    client = make_client(score_timeout_s=1.5)
    assert create_task(client, daily_limit=3).status_code == 201
    alice, bob = register(client, "alice"), register(client, "bob")
    good, worse = cm.linear(GOOD_W), cm.linear(-GOOD_W)
    r = client.post("/api/tasks/toy/submissions", headers=alice, files={"file": ("m.onnx", good)})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    sid = r.json()["id"]
    assert client.post("/api/tasks/toy/submissions", headers=bob, files={"file": ("m.onnx", worse)}).status_code == 202
    hang = client.post("/api/tasks/toy/submissions", headers=bob, files={"file": ("h.onnx", cm.hanging(5, 2))})
    assert hang.status_code == 202
    subs = wait_scored(client, alice, 1)
    assert subs[0]["status"] == "scored" and subs[0]["public_score"] == 1.0 and subs[0]["private_score"] is None
    bsubs = wait_scored(client, bob, 2, timeout=60)
    assert [s["status"] for s in bsubs] == ["scored", "failed"]
    assert "wall-clock" in bsubs[1]["reason"]
    # a competitor sees only their own
    assert [s["id"] for s in client.get("/api/submissions", headers=alice).json()] == [sid]
    assert client.get(f"/api/submissions/{sid}", headers=alice).json()["id"] == sid
    one_line(client.get(f"/api/submissions/{sid}", headers=bob), 404)
    one_line(client.get("/api/submissions/999", headers=alice), 404)
    one_line(client.get("/api/submissions/abc", headers=alice), 422)
    one_line(client.get("/api/submissions"), 401)
    assert client.get("/api/submissions", headers=alice, params={"task": "other"}).json() == []
    # errors of POST
    one_line(client.post("/api/tasks/toy/submissions", files={"file": ("m", good)}), 401)
    one_line(client.post("/api/tasks/nope/submissions", headers=alice, files={"file": ("m", good)}), 404)
    assert "'file'" in one_line(client.post("/api/tasks/toy/submissions", headers=alice), 422)
    assert "(batch, 5)" in one_line(client.post("/api/tasks/toy/submissions", headers=alice,
                                                files={"file": ("m", cm.linear(np.ones((4, 2))))}), 422)
    # refused submissions do not count; the limit is per competitor per task per day
    client.post("/api/tasks/toy/submissions", headers=alice, files={"file": ("m", good)})
    client.post("/api/tasks/toy/submissions", headers=alice, files={"file": ("m", good)})
    assert "limited to 3" in one_line(client.post("/api/tasks/toy/submissions", headers=alice,
                                                  files={"file": ("m", good)}), 429)
    # public leaderboard: alice first (accuracy 1), bob second (accuracy 0)
    rows = client.get("/api/tasks/toy/leaderboard").json()["rows"]
    assert [(r["rank"], r["competitor"], r["score"]) for r in rows] == [(1, "alice", 1.0), (2, "bob", 0.0)]
    assert "after the task closes" in one_line(client.get("/api/tasks/toy/leaderboard/private"), 403)
    one_line(client.get("/api/tasks/nope/leaderboard"), 404)
    # close the task: submissions refused, private board revealed
    past = (dt.datetime.utcnow() - dt.timedelta(seconds=1)).isoformat()
    opened = (dt.datetime.utcnow() - dt.timedelta(days=1)).isoformat()
    client.patch("/api/admin/tasks/toy", headers={"X-Admin-Secret": ADMIN},
                 json={"opens_at": opened, "closes_at": past})
    assert "not open" in one_line(client.post("/api/tasks/toy/submissions", headers=bob,
                                              files={"file": ("m", good)}), 403)
    rows = client.get("/api/tasks/toy/leaderboard/private").json()["rows"]
    assert [(r["competitor"], r["score"]) for r in rows] == [("alice", 1.0), ("bob", 0.0)]
    assert client.get(f"/api/submissions/{sid}", headers=alice).json()["private_score"] == 1.0


def test_not_yet_open_and_unknown_routes(client):
    future = (dt.datetime.utcnow() + dt.timedelta(days=1)).isoformat()
    assert create_task(client, opens_at=future).status_code == 201
    alice = register(client, "alice")
    one_line(client.post("/api/tasks/toy/submissions", headers=alice, files={"file": ("m", cm.linear(GOOD_W))}), 403)
    one_line(client.get("/api/nothing"), 404)
    one_line(client.delete("/api/tasks"), 405)


def test_oversize_upload_is_413(make_client):
    client = make_client(max_model_bytes=1000)
    create_task(client)
    alice = register(client, "alice")
    assert "at most 1000 bytes" in one_line(client.post("/api/tasks/toy/submissions", headers=alice,
                                                        files={"file": ("m", b"\x08" * 5000)}), 413)


def test_pages(client):
    assert create_task(client, description="<script>alert(1)</script> Toy").status_code == 201
    alice = register(client, "alice")
    token = alice["Authorization"].split()[1]
    client.post("/api/tasks/toy/submissions", headers=alice, files={"file": ("m", cm.linear(GOOD_W))})
    wait_scored(client, alice, 1)
    home = client.get("/")
    assert home.status_code == 200 and 'href="/tasks/toy"' in home.text
    page = client.get("/tasks/toy").text
    assert "&lt;script&gt;" in page and "<script>alert" not in page      # autoescaped
    assert "/api/tasks/toy/train" in page and "accuracy" in page
    lb = client.get("/tasks/toy/leaderboard").text
    assert "alice" in lb and "1.00000" in lb
    assert client.get("/tasks/toy/private").status_code == 403
    assert client.get("/tasks/nope").status_code == 404
    assert client.get("/tasks/nope/leaderboard").status_code == 404
    assert client.get("/tasks/nope/private").status_code == 404
    assert client.get("/me").status_code == 401
    assert client.get("/login").status_code == 200
    assert client.post("/login", data={"token": "bad"}).status_code == 401
    r = client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
    me = client.get("/me")
    assert me.status_code == 200 and "scored" in me.text and "alice" in me.text
    client.post("/logout")
    client.cookies.clear()
    assert client.get("/me").status_code == 401
