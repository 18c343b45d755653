"""Run a submitted ONNX model on the test inputs in a separate, limited process.

Each scoring thread owns one helper process (``python -m petridish.ctf.sandbox``, started
with a clean environment, numpy and onnxruntime preloaded). For every job the helper forks a
fresh child, which before loading the model:
- caps its address space (RLIMIT_AS, memory) and CPU seconds (RLIMIT_CPU), disables core dumps;
- runs onnxruntime with intra_op_num_threads = inter_op_num_threads = 1;
- has no proxy variables and, where permitted (root with CAP_SYS_ADMIN), moves into a new,
  empty network namespace (unshare(CLONE_NEWNET)); otherwise there is simply no code path that
  opens a socket: the child runs only ONNX operators, none of which does I/O.
The helper kills the child at the wall-clock limit; the web server only talks to the helper
over a pipe, so a model that hangs or crashes onnxruntime takes down a child, never the server.
The child sees test INPUTS only, never the labels; it writes its outputs as a plain .npy
file, read back with allow_pickle=False. Runtime error messages are not passed on verbatim,
because a crafted model can make them depend on test inputs (e.g. an out-of-range Gather
index); load errors, which depend on the model only, are.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

CLONE_NEWNET = 0x40000000
_local = threading.local()


class ScoringFailed(Exception):
    """The model could not be scored; the message is the reason shown to its owner."""


class _Helper:
    """One helper process; jobs are sent one at a time as JSON lines."""

    def __init__(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen([sys.executable, "-m", "petridish.ctf.sandbox"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, close_fds=True)

    def run(self, job: dict, wait_s: float) -> dict | None:
        """The helper's report, or None if it died or did not answer within wait_s."""
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], wait_s)
            line = self.proc.stdout.readline() if ready else b""
            return json.loads(line) if line else None
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def _helper() -> _Helper:
    h = getattr(_local, "helper", None)
    if h is None or h.proc.poll() is not None:
        h = _local.helper = _Helper()
    return h


def close_helper() -> None:
    """Stop this thread's helper process (the scorer's workers call it when they stop)."""
    h = getattr(_local, "helper", None)
    if h is not None:
        h.close()
        _local.helper = None


def run_model(model_path: Path, inputs_path: Path, *, work_dir: Path, timeout_s: float,
              memory_mb: int, cpu_s: int, batch_size: int) -> np.ndarray:
    """Outputs (n, k) of the model on the inputs; raises ScoringFailed with a reason."""
    work_dir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex
    out_path, err_path = work_dir / f"{tag}.out.npy", work_dir / f"{tag}.err.txt"
    job = {"model_path": str(model_path), "inputs_path": str(inputs_path), "out_path": str(out_path),
           "err_path": str(err_path), "memory_mb": memory_mb, "cpu_s": cpu_s,
           "batch_size": batch_size, "timeout_s": timeout_s}
    try:
        helper = _helper()
        report = helper.run(job, wait_s=timeout_s + 60)   # the helper's own start-up included
        if report is None:                                   # helper died or stuck: replace it
            helper.close()
            _local.helper = None
            raise ScoringFailed("The scoring process failed unexpectedly.")
        if report["timeout"]:
            raise ScoringFailed(f"The model must finish on the test inputs within {timeout_s:g} s of "
                                "wall-clock time. It did not and was stopped.")
        if report["exitcode"] != 0:
            raise ScoringFailed(_exit_reason(report["exitcode"], err_path, cpu_s, memory_mb))
        try:
            return np.load(out_path, allow_pickle=False)
        except Exception:
            raise ScoringFailed("The scoring process ended without writing outputs.") from None
    finally:
        for p in (out_path, err_path):
            p.unlink(missing_ok=True)


def _exit_reason(code: int, err_path: Path, cpu_s: int, memory_mb: int) -> str:
    if code is not None and code < 0:
        sig = -code
        if sig == signal.SIGXCPU or sig == signal.SIGKILL:
            return (f"The model must finish within {cpu_s} s of CPU time and {memory_mb} MB of memory. "
                    f"The scoring process was killed ({signal.Signals(sig).name}).")
        return f"The ONNX runtime crashed while running the model ({signal.Signals(sig).name})."
    try:
        text = err_path.read_text()[:400].strip()
    except OSError:
        text = ""
    return text or f"The scoring process failed (exit code {code})."


def _limit(memory_mb: int, cpu_s: int) -> None:
    mem = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 2))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _no_network() -> bool:
    """Drop proxy settings; try to enter an empty network namespace. True if that worked."""
    for key in list(os.environ):
        if key.lower().endswith("_proxy"):
            del os.environ[key]
    try:   # opportunistic: works as root with CAP_SYS_ADMIN; harmless failure otherwise
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(CLONE_NEWNET) == 0
    except Exception:
        return False


def _child(model_path: str, inputs_path: str, out_path: str, err_path: str,
           memory_mb: int, cpu_s: int, batch_size: int, **_ignored) -> None:
    def fail(msg: str, code: int) -> None:
        Path(err_path).write_text(msg)
        os._exit(code)

    try:
        os.environ["OMP_NUM_THREADS"] = "1"
        _no_network()
        _limit(memory_mb, cpu_s)
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
    except BaseException as exc:
        fail(f"The scoring process could not start: {type(exc).__name__}.", 4)
    try:
        sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
        in_name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    except MemoryError:
        fail("The model must load within the memory limit. It did not.", 5)
    except BaseException as exc:   # depends on the model only: safe to show, shortened
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        first = first.replace(model_path, "<model>")[:300]
        fail(f"The ONNX runtime could not load the model: {first}", 5)
    try:
        x = np.load(inputs_path, allow_pickle=False, mmap_mode="r")
        parts = []
        for i in range(0, x.shape[0], batch_size):
            parts.append(np.asarray(sess.run([out_name], {in_name: np.ascontiguousarray(x[i:i + batch_size])})[0]))
        out = np.concatenate(parts, axis=0) if parts else np.zeros((0, 0), np.float32)
    except MemoryError:
        fail("The model must run within the memory limit of the referee. It did not.", 6)
    except BaseException as exc:  # message withheld: it may depend on test inputs
        if "alloc" in str(exc).lower():
            fail(f"The model must run within the referee's memory limit ({memory_mb} MB). "
                 "An allocation failed.", 6)
        fail("The ONNX runtime raised an error while running the model on the test inputs "
             "(details withheld, since they can depend on the hidden test data).", 6)
    try:
        tmp = out_path + ".tmp.npy"
        np.save(tmp, np.asarray(out))
        os.replace(tmp, out_path)
    except BaseException:
        fail("The model's outputs could not be saved (they must be a numeric tensor).", 7)
    os._exit(0)


def _serve() -> None:
    """Helper loop: one JSON job per stdin line -> fork a child, enforce the wall clock, report."""
    import onnxruntime  # noqa: F401  (preloaded so that each forked child starts fast)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)    # stdout is the report pipe: the child must not write to it
                _child(**job)
            finally:
                os._exit(9)
        deadline, timed_out = time.monotonic() + float(job["timeout_s"]), False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                timed_out = True
                break
            time.sleep(0.003)
        report = {"timeout": timed_out, "exitcode": os.waitstatus_to_exitcode(status)}
        sys.stdout.write(json.dumps(report) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
