"""Security: bad tokens, other people's data, path traversal, hostile files, SQL injection, and
no route that reveals the sequestered test inputs or labels."""
import io
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import ctf_models as cm
from ctf_helpers import ADMIN, create_task, register, toy_arrays, wait_scored

INJECTIONS = ["'; DROP TABLE submissions; --", "\" OR 1=1 --", "alice' OR '1'='1", "1; SELECT * FROM tasks",
              "Robert'); DROP TABLE competitors;--"]
GOOD_W = np.array([[-1, 1], [0, 0], [0, 0], [0, 0], [0, 0]], np.float32)


def detail(r):
    d = r.json()["detail"]
    assert isinstance(d, str) and "\n" not in d
    return d


def test_hostile_files_are_refused_with_4xx(make_client):
    client = make_client(max_model_bytes=20_000)
    create_task(client)
    alice = register(client, "alice")
    good = cm.linear(GOOD_W)
    cases = {
        "oversize": (b"\x00" * 30_000, 413, "at most 20000 bytes"),
        "truncated": (good[:-25], 422, "ONNX"),
        "garbage": (os.urandom(3000), 422, "ONNX"),
        "external data": (cm.external_data(5, 2), 422, "external data"),
        "custom domain": (cm.custom_domain(5, 2), 422, "'com.example'"),
        "wrong input shape": (cm.linear(np.ones((6, 2))), 422, "(batch, 5)"),
        "wrong output shape": (cm.linear(np.ones((5, 4))), 422, "(batch, 2)"),
    }
    for name, (data, status, text) in cases.items():
        r = client.post("/api/tasks/toy/submissions", headers=alice, files={"file": ("m.onnx", data)})
        assert r.status_code == status, (name, r.text)
        assert text in detail(r), (name, detail(r))
    assert client.get("/api/submissions", headers=alice).json() == []     # nothing stored


def test_path_traversal_in_names(client, tmp_path):
    create_task(client)
    alice = register(client, "alice")
    for name in ["../../etc/passwd", "..", "toy/../../x", "%2e%2e%2fetc", "/etc/passwd"]:
        assert create_task(client, name=name).status_code == 422
    for path in ["/api/tasks/..%2F..%2Fetc%2Fpasswd/train", "/api/tasks/%2e%2e/train",
                 "/api/tasks/..%2Ftoy/train", "/tasks/..%2F..%2Fetc", "/api/tasks/toy%00/train"]:
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert b"root:" not in r.content
    # the client's file name is never used on disk
    r = client.post("/api/tasks/toy/submissions", headers=alice,
                    files={"file": ("../../../../tmp/evil.onnx", cm.linear(GOOD_W))})
    assert r.status_code == 202
    wait_scored(client, alice, 1)
    root = tmp_path / "ctf"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert all(f.startswith(("tasks/toy/", "submissions/", "ctf.sqlite")) for f in files), files
    assert not any("evil" in f for f in files)
    assert not (tmp_path / "evil.onnx").exists()


def test_sql_injection_strings_in_every_text_field(client):
    assert create_task(client).status_code == 201
    alice = register(client, "alice")
    for s in INJECTIONS:
        assert client.post("/api/competitors", json={"name": s}).status_code == 422
        assert create_task(client, name=s).status_code == 422
        assert create_task(client, name="t-inj", metric=s).status_code == 422
        assert create_task(client, name="t-inj", leaderboard=s).status_code == 422
        assert client.get(f"/api/tasks/{s}").status_code == 404
        assert client.get(f"/tasks/{s}/leaderboard").status_code == 404
        assert client.get("/api/submissions", headers=alice, params={"task": s}).json() == []
        assert client.get("/api/me", headers={"Authorization": f"Bearer {s}"}).status_code == 401
        assert client.post("/login", data={"token": s}).status_code == 401
        assert client.get("/me", cookies={"ctf_session": s}).status_code == 401
        assert client.patch("/api/admin/tasks/toy", headers={"X-Admin-Secret": s}, json={}).status_code == 403
    # free text is stored verbatim (bound parameters), and shown escaped
    desc = " ".join(INJECTIONS)
    r = client.patch("/api/admin/tasks/toy", headers={"X-Admin-Secret": ADMIN}, json={"description": desc})
    assert r.status_code == 200 and client.get("/api/tasks/toy").json()["description"] == desc
    assert create_task(client, name="t2", description=desc).json()["description"] == desc
    # everything is still there
    assert [t["name"] for t in client.get("/api/tasks").json()] == ["toy", "t2"]
    assert client.get("/api/me", headers=alice).json()["name"] == "alice"


def leaky_model(input_dim: int) -> bytes:
    """Gathers from a 2-row table at an index computed from the input: an out-of-range index
    makes onnxruntime's error message contain a test-derived number."""
    nodes = [helper.make_node("Mul", ["input", "k"], ["scaled"]),
             helper.make_node("Cast", ["scaled"], ["idx"], to=TensorProto.INT64),
             helper.make_node("Gather", ["table", "idx"], ["g"], axis=0),        # (b, d, 2)
             helper.make_node("ReduceSum", ["g", "ax"], ["output"], keepdims=0)]
    inits = [numpy_helper.from_array(np.array(1e6, np.float32), "k"),
             numpy_helper.from_array(np.zeros((2, 2), np.float32), "table"),
             numpy_helper.from_array(np.array([1], np.int64), "ax")]
    g = helper.make_graph(nodes, "leak", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", input_dim])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 2])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def _needles(arrays):
    """Text and byte fragments that would betray the test set if any response contained them."""
    x, y = arrays["x_test"], arrays["y_test"]
    texts = {f"{v:.6f}"[:8] for v in x[:20, :].ravel()} | {f"{int(v * 1e6)}" for v in x[:20].ravel()}
    texts = {t for t in texts if len(t.strip("-0.")) >= 5}
    blobs = [x.tobytes()[:64], x[5:].tobytes()[:64], y.astype(np.int64).tobytes()[:64]]
    return texts, blobs


def _all_routes(app):
    for r in app.routes:   # FastAPI >= 0.16x keeps included routers as one entry each
        sub = getattr(r, "original_router", None)
        yield from (sub.routes if sub is not None else [r])


def test_no_route_reveals_test_inputs_or_labels(client):
    arrays = toy_arrays()
    create_task(client)
    alice = register(client, "alice")
    token = alice["Authorization"].split()[1]
    for model in (cm.linear(GOOD_W), leaky_model(5), cm.linear(-GOOD_W)):
        client.post("/api/tasks/toy/submissions", headers=alice, files={"file": ("m", model)})
    subs = wait_scored(client, alice, 3)
    assert subs[1]["status"] == "failed" and "withheld" in subs[1]["reason"]
    client.post("/login", data={"token": token})
    texts, blobs = _needles(arrays)
    assert texts and blobs
    # every GET route of the app, with the real task and submission filled in
    fill = {"name": "toy", "sid": str(subs[0]["id"])}
    bodies = []
    for route in _all_routes(client.app):
        if "GET" not in getattr(route, "methods", ()) or route.path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            continue
        path = route.path.format(**fill)
        for extra in ("", "?task=toy"):
            r = client.get(path + extra, headers=alice)
            assert r.status_code in (200, 403), (path, r.status_code)
            bodies.append((path, r.content))
    assert any(p == "/api/tasks/{name}/train".format(**fill) for p, _ in bodies)
    for path, body in bodies:
        text = body.decode("latin-1")
        for t in texts:
            assert t not in text, (path, t)
        for b in blobs:
            assert b not in body, path
    # and the training download holds exactly the public arrays
    z = np.load(io.BytesIO(client.get("/api/tasks/toy/train").content), allow_pickle=False)
    assert sorted(z.files) == ["x_train", "y_train"]
