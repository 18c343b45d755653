"""The cluster path, for real: a one-node Ray cluster started with `ray start --head`, token
authentication on, and `petridish` drivers that join it through `--address` with nothing in
their environment but the head node's token file (~/.ray/auth_token).

The cluster is stopped by terminating its `ray start --block` process, not by `ray stop`,
which would stop every Ray on the machine (the session's local instance, other test runs).
With PETRIDISH_TEST_STORE_URL set (`.ci/run` starts a PostgreSQL server), the drivers write
to PostgreSQL.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from petridish.lab.store import SQLStore  # noqa: E402
from petridish.lab.sweep import run_sweep  # noqa: E402

pytestmark = pytest.mark.cluster

BIN = Path(sys.executable).parent
RAY_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS", "PETRIDISH_DEBUG")


@dataclass
class Cluster:
    address: str
    home: Path        # the head node's HOME: its token is home/.ray/auth_token
    proc: subprocess.Popen

    def env(self, **extra: str) -> dict[str, str]:
        """A driver's environment: the head node's HOME and no Ray variable at all."""
        env = {k: v for k, v in os.environ.items() if k not in RAY_ENV}
        return {**env, "HOME": str(self.home), **extra}

    def busy_workers(self) -> list[psutil.Process]:
        """This cluster's worker processes that are running a task (Ray retitles them ray::<task>)."""
        out = []
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                title = " ".join(p.cmdline()).strip()
            except psutil.Error:
                continue
            if title.startswith("ray::") and title != "ray::IDLE" and not title.endswith("Agent"):
                out.append(p)
        return out


def _free_port() -> int:
    """A free port outside 10002-19999, the range Ray keeps for its worker processes."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not 10002 <= port <= 19999:
            return port


def _say(config, line: str) -> None:
    """Print past pytest's capture, so that CI's log shows the cluster in use."""
    with config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\n{line}", flush=True)


@pytest.fixture(scope="module")
def cluster(request):
    if not (BIN / "ray").exists():
        pytest.skip(f"no `ray` command beside {sys.executable}")
    home, temp = Path(tempfile.mkdtemp(prefix="pd-rayhome-")), tempfile.mkdtemp(prefix="pd-ray-")  # short socket paths
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))     # as `ray get-auth-token --generate`
    port, log = _free_port(), open(home / "head.log", "w+")
    env = {**{k: v for k, v in os.environ.items() if k not in RAY_ENV}, "HOME": str(home), "RAY_AUTH_MODE": "token"}
    # ports that Ray fixes by default (10001, 52365) would collide with another Ray on this machine
    fixed = [f"--{opt}={_free_port()}" for opt in ("ray-client-server-port", "dashboard-agent-listen-port")]
    proc = subprocess.Popen([str(BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2", *fixed,
                             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}", "--block"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    c = Cluster(f"127.0.0.1:{port}", home, proc)
    try:
        deadline = time.time() + 120
        while "Ray runtime started" not in (home / "head.log").read_text():
            assert proc.poll() is None and time.time() < deadline, (home / "head.log").read_text()[-3000:]
            time.sleep(0.2)
        _say(request.config, f"ray cluster: `ray start --head --port={port}` up (Ray {ray.__version__}, "
                             f"RAY_AUTH_MODE=token, token in {home}/.ray/auth_token); drivers join it via --address")
        yield c
    finally:
        proc.send_signal(signal.SIGTERM)            # `ray start --block` stops its node's processes
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        _say(request.config, "ray cluster: stopped")
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def store(request, tmp_path):
    """PostgreSQL when a server is given (PETRIDISH_TEST_STORE_URL), else SQLite."""
    if os.environ.get("PETRIDISH_TEST_STORE_URL"):
        return request.getfixturevalue("pg_url")
    return str(tmp_path / "runs")


def petridish(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "petridish"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def _canon(cells) -> list[str]:
    """Cells as exact strings (floats by repr, NaN kept), in sweep order."""
    return [json.dumps([c.key, c.params, c.seed, c.status, c.metrics], sort_keys=True) for c in cells]


def _stored(store: str, run_id: str) -> list[str]:
    s = SQLStore(store)
    try:
        return _canon(s.run_cells(run_id))
    finally:
        s.close()


def _local(*, overrides: dict | None = None, seeds: int | None = None) -> list[str]:
    return _canon(run_sweep("linear-double-descent", overrides=overrides or {}, quick=True, seeds=seeds,
                            store="memory", progress=False).cells)


def test_sweep_through_address_needs_only_the_token_file_and_matches_local(cluster, store):
    r = petridish("run", "linear-double-descent", "--quick", "--executor", "ray", "--address", cluster.address,
                  "--store", store, "--json", env=cluster.env())
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert len(out["cells"]) == 120 and {c["status"] for c in out["cells"]} == {"done"}
    assert _stored(store, out["run"]) == _local()                 # bitwise, cell for cell


def test_search_through_address_matches_local(cluster, store):
    args = ("search", "linear-double-descent", "--quick", "--metric", "risk", "--budget", "6",
            "--sampler", "random", "--json")                  # random: the same trials in any order
    r = petridish(*args, "--workers", "2", "--executor", "ray", "--address", cluster.address, "--store", store,
                  env=cluster.env())
    assert r.returncode == 0, r.stderr[-3000:]
    local = petridish(*args, "--store", "memory", env=cluster.env())    # in-process, one trial at a time
    assert local.returncode == 0, local.stderr[-3000:]
    got, want = json.loads(r.stdout), json.loads(local.stdout)
    assert len(got["cells"]) == 6 and {c["status"] for c in got["cells"]} == {"done"}
    canon = lambda d: sorted(json.dumps(c, sort_keys=True) for c in d["cells"])   # noqa: E731
    assert canon(got) == canon(want)
    assert (got["best_params"], got["best_value"]) == (want["best_params"], want["best_value"])


def test_a_worker_killed_mid_sweep_is_retried_and_the_cells_match_local(cluster, store):
    sets = ("--set", "n=1200", "--set", "gamma=3", "--seeds", "3")        # 6 cells of ~0.5 s each
    proc = subprocess.Popen([str(BIN / "petridish"), "run", "linear-double-descent", "--quick", *sets, "--executor",
                             "ray", "--address", cluster.address, "--store", store, "--json"],
                            env=cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, deadline = None, time.time() + 180
    while killed is None and proc.poll() is None and time.time() < deadline:
        busy = cluster.busy_workers()
        if busy:
            killed = busy[0]
            killed.send_signal(signal.SIGKILL)                   # a worker dies while it runs a task
        time.sleep(0.02)
    out, err = proc.communicate(timeout=300)
    assert killed is not None, "no worker was seen running a task: the sweep ended first"
    assert not killed.is_running()
    assert proc.returncode == 0, err[-3000:]
    res = json.loads(out)
    assert len(res["cells"]) == 6 and {c["status"] for c in res["cells"]} == {"done"}
    assert _stored(store, res["run"]) == _local(overrides={"n": 1200, "gamma": 3.0}, seeds=3)


def test_connection_failures_are_one_line_that_says_what_to_check(cluster, tmp_path):
    run = ("run", "linear-double-descent", "--quick", "--executor", "ray", "--store", str(tmp_path / "runs"))
    closed = f"127.0.0.1:{_free_port()}"
    r = petridish(*run, "--address", closed, env=cluster.env(), timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line, = r.stderr.strip().splitlines()
    assert line.startswith(f"error: Could not connect to the Ray cluster at {closed}: nothing answers there")
    for what in ("Check the address", "auth_token", "RAY_AUTH_TOKEN", f"here {ray.__version__}"):
        assert what in line
    # a wrong token: Ray's own retries are cut to 2 (about 2 s) to keep the test short
    r = petridish(*run, "--address", cluster.address, env=cluster.env(RAY_AUTH_TOKEN="0" * 64,
                                                                      RAY_NUM_REDIS_GET_RETRIES="2"), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line, = r.stderr.strip().splitlines()
    assert "the cluster refused this driver's token" in line and "reads one from RAY_AUTH_TOKEN" in line
    # --debug shows the traceback (the address is checked before Ray loads: 0.6 s, not 6)
    r = petridish("--debug", *run, "--address", closed, env=cluster.env(), timeout=60)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_the_token_is_found_where_ray_looks_for_it_and_an_explicit_mode_is_kept(tmp_path, monkeypatch):
    from petridish.lab.executors.ray_connect import enable_token_auth, token_source
    for k in RAY_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert token_source() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("a" * 64)
    assert token_source() == str(tmp_path / ".ray" / "auth_token")
    (tmp_path / "other").write_text("b" * 64)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "other"))
    assert token_source() == str(tmp_path / "other")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "c" * 64)
    assert token_source() == "RAY_AUTH_TOKEN"                   # Ray's order: variable, path, ~/.ray file
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert enable_token_auth() == "RAY_AUTH_TOKEN" and os.environ["RAY_AUTH_MODE"] == "disabled"
