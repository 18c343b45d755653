"""The scoring process: correct outputs, and hangs, memory blow-ups and crashes end as reasons."""
import os
import signal
import socket
import threading
import time

import numpy as np
import pytest

import ctf_models as cm
from petridish.ctf import sandbox
from petridish.ctf.sandbox import ScoringFailed, run_model
from petridish.ctf.validate import Signature


@pytest.fixture
def inputs(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return x, tmp_path / "x.npy"


def score(tmp_path, data, inputs_path, **kw):
    path = tmp_path / f"m{time.monotonic_ns()}.onnx"
    path.write_bytes(data)
    limits = dict(timeout_s=2.0, memory_mb=1024, cpu_s=20, batch_size=16, signature=Signature(5, 3))
    limits.update(kw)
    return run_model(path, inputs_path, work_dir=tmp_path / "w", **limits)


def test_outputs_match_numpy_and_hang_and_memory_fail(tmp_path, inputs):
    x, xp = inputs
    w = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(score(tmp_path, cm.linear(w), xp), x @ w, rtol=1e-5, atol=1e-5)
    t = time.monotonic()
    with pytest.raises(ScoringFailed, match="within 1 s of wall-clock"):
        score(tmp_path, cm.hanging(5, 3), xp, timeout_s=1.0)
    assert time.monotonic() - t < 8
    with pytest.raises(ScoringFailed, match="memory"):
        score(tmp_path, cm.memory_hog(5, 3, gib=16), xp)
    # the same helper still works after those
    np.testing.assert_allclose(score(tmp_path, cm.linear(w), xp), x @ w, rtol=1e-5, atol=1e-5)
    sandbox.close_helper()


def test_a_crashing_runtime_is_a_failed_submission(tmp_path, inputs):
    _, xp = inputs
    result = {}

    def run():
        try:
            score(tmp_path, cm.hanging(5, 3), xp, timeout_s=20.0)
        except ScoringFailed as exc:
            result["reason"] = str(exc)
    t = threading.Thread(target=run)
    t.start()
    try:   # find the helper's forked child and crash it with SIGSEGV, as a runtime bug would
        deadline = time.monotonic() + 15
        child = None
        while child is None and time.monotonic() < deadline:
            child = _grandchild_of_this_process("petridish.ctf.sandbox")
            time.sleep(0.05)
        assert child is not None, "no scoring child found"
        os.kill(child, signal.SIGSEGV)
    finally:
        t.join(30)
    assert "crashed" in result["reason"] and "SIGSEGV" in result["reason"]


def _grandchild_of_this_process(marker: str):
    """The pid of a process whose parent (a helper running `marker`) is a child of this process."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except (OSError, IndexError, ValueError):
            continue
        parents[int(pid)] = (ppid, marker.encode() in cmd)
    helpers = {pid for pid, (ppid, is_helper) in parents.items() if ppid == os.getpid() and is_helper}
    kids = [pid for pid, (ppid, _) in parents.items() if ppid in helpers]
    return kids[0] if kids else None


def test_child_has_no_network_when_namespaces_are_allowed():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # child: exactly what a scoring child does, then try the loopback server
        isolated = sandbox._no_network()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            code = b"C"
        except OSError:
            code = b"N"
        os.write(w, (b"I" if isolated else b"-") + code)
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    out = os.read(r, 2)
    srv.close()
    if out[:1] != b"I":
        pytest.skip("unshare(CLONE_NEWNET) is not permitted here (needs root/CAP_SYS_ADMIN); "
                    "the child then relies on never opening sockets")
    assert out == b"IN", out
