"""Issue 11, the web half: throwaway accounts (2), bodies read only after auth (4), slow clients
(5), names (8), huge integers (10), sessions and headers (12), the demo's secret test set (13)
and the board cache. In-process app (TestClient) or a live uvicorn server on loopback."""
import datetime as dt
import socket
import time

import httpx
import numpy as np
import pytest
from onnx import helper, numpy_helper

import ctf_models as cm
from ctf_helpers import ADMIN, LiveServer, create_task, npz, register, toy_arrays, wait_scored
from petridish.ctf.ladder import release_grid

ADMIN_H = {"X-Admin-Secret": ADMIN}
HUGE = 1180591620717411303424          # 2**70


def one_line(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 400, detail
    return detail


# --- item 8: names ----------------------------------------------------------------------------

def test_names_with_a_trailing_newline_are_refused(client):
    assert "'alice\\n'" in one_line(client.post("/api/competitors", json={"name": "alice\n"}), 422)
    assert "'name'" in one_line(create_task(client, name="toy\n"), 422)
    assert client.post("/api/competitors", json={"name": "alice"}).status_code == 201
    assert create_task(client, name="toy").status_code == 201
    assert client.get("/api/tasks/toy%0A").status_code == 404
    assert client.get("/tasks/toy%0A/leaderboard").status_code == 404
    assert client.post("/api/admin/competitors", headers=ADMIN_H, json={"name": "bob\n"}).status_code == 422


# --- item 10: bounded integers ----------------------------------------------------------------

def test_huge_integers_are_one_line_422s(client):
    create_task(client)
    alice = register(client, "alice")
    assert "less than or equal" in one_line(client.get(f"/api/submissions/{HUGE}", headers=alice), 422)
    one_line(client.get("/api/submissions/0", headers=alice), 422)
    one_line(client.get(f"/api/submissions/-{HUGE}", headers=alice), 422)
    assert "daily_limit" in one_line(client.patch("/api/admin/tasks/toy", headers=ADMIN_H,
                                                  json={"daily_limit": 2**70}), 422)
    one_line(client.patch("/api/admin/tasks/toy", headers=ADMIN_H, json={"closes_at": "9999-12-31T00:00:00"}), 422)
    for field, value in (("daily_limit", HUGE), ("decimals", 10**30), ("split_seed", HUGE),
                         ("eta", "inf"), ("opens_at", "9999-12-31T23:59:59")):
        assert field in one_line(create_task(client, name="t2", **{field: value}), 422), field
    one_line(client.post("/api/admin/invitations", headers=ADMIN_H, json={"count": HUGE}), 422)
    one_line(client.post("/api/admin/invitations", headers=ADMIN_H, json={"days": 1e300}), 422)
    assert client.get("/api/tasks/toy").json()["daily_limit"] == 20        # nothing changed


# --- item 2: throwaway accounts ---------------------------------------------------------------

def probe(weight: np.ndarray, row: np.ndarray, label: int) -> bytes:
    """input @ weight, plus +100 on class `label` for inputs within ~1e-2 of `row`: a model that
    changes its prediction on exactly one test example."""
    k = weight.shape[1]
    bump = np.zeros((1, k), np.float32)
    bump[0, label] = 100.0
    nodes = [helper.make_node("MatMul", ["input", "W"], ["h"]),
             helper.make_node("Sub", ["input", "row"], ["d"]),
             helper.make_node("Mul", ["d", "d"], ["d2"]),
             helper.make_node("ReduceSum", ["d2", "axes"], ["dist"], keepdims=1),
             helper.make_node("Mul", ["dist", "sharp"], ["neg"]),
             helper.make_node("Exp", ["neg"], ["near"]),
             helper.make_node("Mul", ["near", "bump"], ["lift"]),
             helper.make_node("Add", ["h", "lift"], ["output"])]
    inits = [numpy_helper.from_array(weight.astype(np.float32), "W"),
             numpy_helper.from_array(row.reshape(1, -1).astype(np.float32), "row"),
             numpy_helper.from_array(np.array([1], np.int64), "axes"),
             numpy_helper.from_array(np.array(-1e4, np.float32), "sharp"),
             numpy_helper.from_array(bump, "bump")]
    return cm._model(nodes, inits, input_dim=weight.shape[0], out_dim=k).SerializeToString()


def test_thirty_throwaway_accounts_no_longer_recover_test_labels(make_client):
    """The attack of issue 11: one account per single-example probe, read its first (exact)
    release. Now registration is throttled (10 of 30 get in) and every first release is
    rounded to the Ladder's grid, so the probe pairs recover (almost) nothing."""
    client = make_client(registrations_per_hour=10, scoring_workers=2)
    arrays = toy_arrays()
    create_task(client, arrays=arrays)
    codes = [client.post("/api/competitors", json={"name": f"throw{i:02d}"}) for i in range(30)]
    assert [r.status_code for r in codes] == [201] * 10 + [429] * 20
    assert "10 per client address per hour" in one_line(codes[10], 429) and codes[10].headers["retry-after"]
    accounts = [{"Authorization": "Bearer " + r.json()["token"]} for r in codes[:10]]
    # the server's public rows: its split permutes the test set with split_seed 0
    perm = np.random.default_rng(0).permutation(len(arrays["x_test"]))
    x_pub, y_pub = arrays["x_test"][perm][:100], arrays["y_test"][perm][:100]
    weak = np.zeros((5, 2), np.float32)
    weak[1] = [-1, 1]                                  # predicts from x1: about half right
    rows = range(5)
    for i in rows:
        for label in (0, 1):
            r = client.post("/api/tasks/toy/submissions", headers=accounts[2 * i + label],
                            files={"file": ("m", probe(weak, x_pub[i], label))})
            assert r.status_code == 202, r.text
    shown = {}
    for i in rows:
        for label in (0, 1):
            [sub] = wait_scored(client, accounts[2 * i + label], 1)
            shown[i, label] = sub["public_score"]
    grid = release_grid(np.zeros(100))
    assert grid == 0.05
    exact = {}
    for (i, label), score in shown.items():
        pred = (x_pub @ weak).argmax(1)
        pred[i] = label
        exact[i, label] = float((pred == y_pub).mean())
        assert abs(score / grid - round(score / grid)) < 1e-9, score           # on the grid
        assert abs(score - exact[i, label]) <= grid / 2 + 1e-9
    # exact releases would give every label away; the rounded ones give away at most one
    assert all((exact[i, 1] > exact[i, 0]) == (y_pub[i] == 1) for i in rows)
    recovered = [i for i in rows if shown[i, 0] != shown[i, 1]]
    assert len(recovered) <= 1, (recovered, shown)


def test_admin_closes_registration_then_invitations_and_issued_tokens_only(make_client):
    client = make_client(registrations_per_hour=2)
    assert client.get("/api/registration").json()["open"] is True
    one_line(client.put("/api/admin/registration", json={"open": False}), 403)
    assert client.put("/api/admin/registration", headers=ADMIN_H, json={"open": False}).json()["open"] is False
    assert "invitation" in one_line(client.post("/api/competitors", json={"name": "eve"}), 403)
    codes = client.post("/api/admin/invitations", headers=ADMIN_H, json={"count": 3}).json()["invitations"]
    assert len(set(codes)) == 3
    for i, code in enumerate(codes):               # invitations are not throttled (limit 2 here)
        assert client.post("/api/competitors", json={"name": f"inv{i}", "invitation": code}).status_code == 201
    assert "used" in one_line(client.post("/api/competitors", json={"name": "again", "invitation": codes[0]}), 403)
    one_line(client.post("/api/competitors", json={"name": "x", "invitation": "forged"}), 403)
    one_line(client.post("/api/admin/competitors", json={"name": "carol"}), 403)
    r = client.post("/api/admin/competitors", headers=ADMIN_H, json={"name": "carol"})
    assert r.status_code == 201
    assert client.get("/api/me", headers={"Authorization": "Bearer " + r.json()["token"]}).json()["name"] == "carol"
    assert "taken" in one_line(client.post("/api/admin/competitors", headers=ADMIN_H, json={"name": "carol"}), 409)
    client.put("/api/admin/registration", headers=ADMIN_H, json={"open": True})
    assert client.post("/api/competitors", json={"name": "dave"}).status_code == 201


def test_a_task_admits_at_most_max_competitors(make_client):
    client = make_client(max_competitors_per_task=2)
    create_task(client)
    good = cm.linear(np.array([[-1, 1], [0, 0], [0, 0], [0, 0], [0, 0]], np.float32))
    a, b, c = (register(client, n) for n in ("a", "b", "c"))
    for who in (a, b, a):
        assert client.post("/api/tasks/toy/submissions", headers=who, files={"file": ("m", good)}).status_code == 202
    assert "at most 2 competitors" in one_line(
        client.post("/api/tasks/toy/submissions", headers=c, files={"file": ("m", good)}), 403)


# --- item 12: sessions, cookies, Origin, headers ----------------------------------------------

def test_sessions_are_server_side_and_logout_revokes_them(client):
    create_task(client)
    alice = register(client, "alice")
    token = alice["Authorization"].split()[1]
    r = client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    sid = client.cookies.get("ctf_session")
    assert sid and token not in cookie and sid != token and len(sid) >= 40
    assert all(flag in cookie.lower() for flag in ("httponly", "samesite=strict", "path=/"))
    assert "secure" not in cookie.lower()                       # plain HTTP here
    assert client.get("/me").status_code == 200
    client.cookies.clear()
    assert client.get("/me", cookies={"ctf_token": token}).status_code == 401     # the token is no cookie
    assert client.get("/me", cookies={"ctf_session": token}).status_code == 401
    assert client.get("/me", cookies={"ctf_session": sid}).status_code == 200
    client.post("/logout", cookies={"ctf_session": sid})
    assert client.get("/me", cookies={"ctf_session": sid}).status_code == 401       # revoked on the server
    r = client.post("https://testserver/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
    assert r.headers["strict-transport-security"]


def test_cross_origin_posts_are_refused(client):
    create_task(client)
    token = register(client, "alice")["Authorization"].split()[1]
    for path, kw in (("/login", {"data": {"token": token}}), ("/logout", {}),
                     ("/api/competitors", {"json": {"name": "mallory"}})):
        r = client.post(path, headers={"Origin": "https://evil.example"}, follow_redirects=False, **kw)
        assert "Origin" in one_line(r, 403), path
    r = client.post("/login", data={"token": token}, headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert r.status_code == 303
    assert client.post("/api/competitors", json={"name": "m"}, headers={"Origin": "null"}).status_code == 403


def test_security_headers_on_every_response(client):
    create_task(client)
    for method, path in (("GET", "/"), ("GET", "/tasks/toy/leaderboard"), ("GET", "/api/tasks/toy/leaderboard"),
                         ("GET", "/api/tasks"), ("GET", "/nope"), ("GET", "/api/submissions/x"),
                         ("POST", "/api/competitors"), ("GET", "/static/ctf.css"), ("GET", "/login")):
        r = client.request(method, path)
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["x-content-type-options"] == "nosniff", path
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp, path
    assert "<style>" not in client.get("/").text and "/static/ctf.css" in client.get("/").text


# --- item 13: the demo's test set is secret ---------------------------------------------------

def test_demo_test_set_is_not_the_public_split(make_client, tmp_path):
    from petridish.cli.ctf import _create_demo
    from petridish.ctf import storage
    from petridish.data import mnist1d
    client = make_client()
    _create_demo(client.app)
    x_demo = np.load(storage.test_inputs_path(tmp_path / "ctf", "mnist1d"))
    y_demo = np.load(storage.task_dir(tmp_path / "ctf", "mnist1d") / "test_y.npy")
    public = mnist1d(n_train=4000, n_test=1000, seed=42)
    x_pub = np.concatenate([public.x_train.numpy(), public.x_test.numpy()])
    y_pub = np.concatenate([public.y_train.numpy(), public.y_test.numpy()])
    d2 = (x_demo ** 2).sum(1)[:, None] - 2 * x_demo @ x_pub.T + (x_pub ** 2).sum(1)[None, :]
    assert d2.min() > 1e-3                                   # no demo test row is a public row
    nn_acc = float((y_pub[d2.argmin(1)] == y_demo).mean())   # the lookup scored 1.000
    assert nn_acc < 0.9, nn_acc
    # and the training set is not the public one either (so it cannot reveal a seed)
    z = np.load(storage.train_path(tmp_path / "ctf", "mnist1d"))
    assert not np.allclose(z["x_train"][:10], public.x_train.numpy()[:10])


# --- the board cache --------------------------------------------------------------------------

def test_board_cache_is_invalidated_by_releases_and_task_changes(client):
    create_task(client, opens_at=(dt.datetime.utcnow() + dt.timedelta(seconds=2)).isoformat())
    assert client.get("/api/tasks/toy/leaderboard").json()["task"]["open"] is False
    html = client.get("/tasks/toy/leaderboard").text
    assert "No scored submissions yet" in html
    time.sleep(2.1)                                          # the opening time passes: re-rendered
    assert client.get("/api/tasks/toy/leaderboard").json()["task"]["open"] is True
    alice = register(client, "alice")
    good = cm.linear(np.array([[-1, 1], [0, 0], [0, 0], [0, 0], [0, 0]], np.float32))
    client.post("/api/tasks/toy/submissions", headers=alice, files={"file": ("m", good)})
    wait_scored(client, alice, 1)
    rows = client.get("/api/tasks/toy/leaderboard").json()["rows"]
    assert [(r["competitor"], r["score"]) for r in rows] == [("alice", 1.0)]
    rendered = client.app.state.boards.get(("json", "toy"))
    for _ in range(20):                                      # rendered once per change
        client.get("/api/tasks/toy/leaderboard")
    assert client.app.state.boards.get(("json", "toy")) is rendered
    assert "alice" in client.get("/tasks/toy/leaderboard").text
    client.patch("/api/admin/tasks/toy", headers=ADMIN_H, json={"description": "changed"})
    assert client.get("/api/tasks/toy/leaderboard").json()["task"]["description"] == "changed"
    one_line(client.get("/api/tasks/nope/leaderboard"), 404)


# --- items 4, 5 and 10 on a live server -------------------------------------------------------

def _raw(port: int, head: bytes, timeout: float = 10.0) -> bytes:
    """Send `head` (request line and headers, no body) and return the response's first bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        return s.recv(4096)


@pytest.fixture
def hardened_server(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    server = LiveServer(tmp_path / "ctf", workers=1, nofile=256, extra_env={
        "PETRIDISH_CTF_HEADER_TIMEOUT_S": "2", "PETRIDISH_CTF_BODY_TIMEOUT_S": "3", "TMPDIR": str(spool)})
    server.spool = spool
    yield server.start()
    server.stop()


def test_upload_bodies_are_not_read_before_auth_and_limits(hardened_server):
    srv = hardened_server
    with srv.http(headers=ADMIN_H) as h:
        assert h.post("/api/admin/tasks", data={"name": "up", "daily_limit": "1"},
                      files={"arrays": ("a.npz", npz(toy_arrays()))}).status_code == 201
        token = h.post("/api/competitors", json={"name": "alice"}).json()["token"]
        good = cm.linear(np.array([[-1, 1], [0, 0], [0, 0], [0, 0], [0, 0]], np.float32))
        assert h.post("/api/tasks/up/submissions", headers={"Authorization": f"Bearer {token}"},
                      files={"file": ("m", good)}).status_code == 202
    head = ("POST /api/tasks/up/submissions HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {n}\r\n{auth}\r\n")
    t0 = time.monotonic()
    # no token, 4 MB declared but never sent: the 401 comes at once (the body was not awaited)
    assert _raw(srv.port, head.format(n=4_000_000, auth="").encode()).startswith(b"HTTP/1.1 401")
    # 300 MB declared: 413 on the header alone
    assert _raw(srv.port, head.format(n=300_000_000, auth="").encode()).startswith(b"HTTP/1.1 413")
    # a valid token at its daily limit (1): 429 before the body
    auth = f"Authorization: Bearer {token}\r\n"
    assert _raw(srv.port, head.format(n=4_000_000, auth=auth).encode()).startswith(b"HTTP/1.1 429")
    assert time.monotonic() - t0 < 3          # none waited for the body deadline (3 s)
    # and a body that is actually sent without a token is never spooled to disk
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(head.format(n=4_000_000, auth="").encode())
        try:
            for _ in range(60):
                s.sendall(b"x" * 65536)
        except OSError:
            pass                               # the server answered and closed
        assert s.recv(4096).startswith(b"HTTP/1.1 401")
    assert sum(p.stat().st_size for p in srv.spool.rglob("*") if p.is_file()) == 0
    # with a token and no declared length (chunked), the body is cut off at the cap as it streams
    with srv.http() as h:
        bob = h.post("/api/competitors", json={"name": "bob"}).json()["token"]
    preamble = b'--b\r\nContent-Disposition: form-data; name="file"; filename="m"\r\n\r\n'
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"POST /api/tasks/up/submissions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: multipart/form-data; boundary=b\r\n"
                  + f"Authorization: Bearer {bob}\r\n\r\n".encode())
        try:
            for chunk in [preamble] + [b"x" * 65536] * 200:     # up to 12.5 MiB; the cap is 5 MiB + 64 KiB
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except OSError:
            pass                               # the server answered and closed
        assert s.recv(4096).startswith(b"HTTP/1.1 413")
    assert len(list((srv.data_dir / "submissions").iterdir())) == 1
    assert len(list((srv.data_dir / "submissions").iterdir())) == 1


def test_slow_clients_do_not_lock_out_a_normal_client(hardened_server):
    srv = hardened_server
    slow = []
    try:
        for i in range(300):                   # more than the server's 256 file descriptors
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"GET /api/tasks HTTP/1.1\r\nHost: x\r\nX-Slow: ")      # headers never finish
            slow.append(s)
        t0 = time.monotonic()
        with httpx.Client(base_url=srv.url, timeout=5, trust_env=False) as h:
            assert h.get("/api/tasks").status_code == 200
            assert time.monotonic() - t0 < 2
            # item 10 on a keep-alive connection: a 422, and the connection still serves
            token = h.post("/api/competitors", json={"name": "normal"}).json()["token"]
            r = h.get(f"/api/submissions/{HUGE}", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 422 and "\n" not in r.json()["detail"]
            r = h.post("/api/admin/invitations", headers=ADMIN_H, json={"count": 2**70})
            assert r.status_code == 422 and "\n" not in r.json()["detail"]
            assert h.get("/api/tasks").status_code == 200
        # a slow body: refused when the body deadline (3 s) passes
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"POST /api/competitors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{\"name\"")
            t1 = time.monotonic()
            assert s.recv(4096).startswith(b"HTTP/1.1 408")
            assert 2.5 < time.monotonic() - t1 < 8
        # every slow-header connection is closed by the server (evicted or timed out, 2 s)
        time.sleep(3)
        closed = 0
        for s in slow:
            s.settimeout(0.5)
            try:
                closed += s.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except socket.timeout:
                pass
        assert closed == len(slow)
    finally:
        for s in slow:
            s.close()
    srv.log.flush()
    log = (srv.data_dir.parent / f"server-{srv.port}.log").read_bytes()
    assert log.count(b"Too many open files") <= 1 and len(log) < 100_000, log[-2000:]
