"""Helpers of the CTF referee tests: toy data, API shortcuts and a live uvicorn server."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest

ADMIN = "test-admin-secret-0123456789"
SRC = str(Path(__file__).resolve().parents[2] / "src")


def toy_arrays(n_train=100, n_test=200, dim=5, seed=0):
    """A 2-class problem with labels y = [x0 > 0]; arrays keyed x_train, y_train, x_test, y_test."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_train + n_test, dim)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:], "y_test": y[n_train:]}


def npz(arrays: dict) -> bytes:
    from petridish.ctf.storage import npz_bytes
    return npz_bytes(**arrays)


def create_task(client, name="toy", arrays=None, admin=ADMIN, **fields):
    arrays = toy_arrays() if arrays is None else arrays
    return client.post("/api/admin/tasks", headers={"X-Admin-Secret": admin},
                       data={"name": name, **{k: str(v) for k, v in fields.items()}},
                       files={"arrays": ("a.npz", npz(arrays))})


def register(client, name):
    r = client.post("/api/competitors", json={"name": name})
    assert r.status_code == 201, r.text
    return {"Authorization": "Bearer " + r.json()["token"]}


def wait_scored(client, headers, n_expected, timeout=60.0):
    """Poll (bounded) until n_expected of the competitor's submissions are finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        subs = client.get("/api/submissions", headers=headers).json()
        if len(subs) >= n_expected and all(s["status"] in ("scored", "failed") for s in subs):
            return subs
        time.sleep(0.05)
    raise AssertionError(f"not scored within {timeout} s: {subs}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`petridish ctf serve` in a subprocess (own process group) on 127.0.0.1:<free port>."""

    def __init__(self, data_dir: Path, *, workers: int = 2, extra_env=None, nofile: int | None = None):
        self.data_dir, self.workers, self.extra_env, self.nofile = data_dir, workers, extra_env or {}, nofile
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout=60.0):
        env = {**os.environ, "PETRIDISH_CTF_ADMIN_SECRET": ADMIN, "PYTHONPATH": SRC,
               "PETRIDISH_CTF_SCORE_TIMEOUT_S": "10", "PETRIDISH_CTF_REGISTRATIONS_PER_HOUR": "1000",
               **self.extra_env}
        for k in [k for k in env if k.lower().endswith("_proxy")]:
            env.pop(k)
        self.log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "petridish.cli.main", "ctf", "serve", "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--scoring-workers", str(self.workers), "--log-level", "warning"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=None if self.nofile is None else self._limit_files)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/api/tasks", timeout=1, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not start in time")

    def _limit_files(self):
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def kill(self):
        """SIGKILL the whole process group (server and its scoring helpers): a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def http(self, **kw):
        return httpx.Client(base_url=self.url, timeout=120, trust_env=False, **kw)




def process_table() -> dict[int, tuple[int, str, bytes]]:
    """pid -> (parent pid, state letter, command line) of every process now, from /proc."""
    table = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except (OSError, IndexError):
            continue
        table[int(pid)] = (int(stat[1]), stat[0], cmd)
    return table


def descendants(root: int) -> set[int]:
    """Every living (not zombie) process below `root`."""
    table, found, frontier = process_table(), set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, state, _) in table.items() if ppid in frontier and state != "Z"}
        found |= frontier
    return found


def alive(pids) -> set[int]:
    """Those of `pids` that still exist and are not zombies."""
    table = process_table()
    return {pid for pid in pids if pid in table and table[pid][1] != "Z"}
