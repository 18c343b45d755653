"""Validate and run a submitted ONNX model in a separate, limited process.

Helper processes (``python -m petridish.ctf.sandbox``, started with a clean environment, numpy,
onnx and onnxruntime preloaded) take one job at a time as a JSON line: each scoring thread owns
one, and uploads borrow one from a small pool. For every job the helper forks a fresh child,
which before touching the model:
- caps its address space (RLIMIT_AS, memory) and CPU seconds (RLIMIT_CPU), disables core dumps;
- asks for SIGKILL when the helper dies (PR_SET_PDEATHSIG); the helper itself exits, killing
  its child, as soon as the web server is gone (its parent changes or its pipe closes), so a
  kill -9 of the server leaves no scoring process behind;
- runs onnxruntime with intra_op_num_threads = inter_op_num_threads = 1;
- has no proxy variables and, where permitted (root with CAP_SYS_ADMIN), moves into a new,
  empty network namespace (unshare(CLONE_NEWNET)); otherwise there is simply no code path that
  opens a socket: the child runs only ONNX operators, none of which does I/O.
The helper kills the child at the wall-clock limit; the web server only talks to the helper
over a pipe, so a model that hangs or crashes onnxruntime (or the checker) takes down a child,
never the server. A helper that dies or stops answering is the referee's fault (RefereeFault),
never the model's.

Validation (``check_upload``): the child parses the file and runs validate.validate_model
(the checker with full_check, shape inference); the web process only compares the length.
Scoring (``run_model``): the child sees test INPUTS only, never the labels. It first runs a
probe batch of zeros, whose output shape may be reported; on the test inputs every failure is
one of a few fixed reasons (time limit, memory limit, runtime error, wrong output shape,
non-finite output), so that no reason carries information about the test data. It checks
each batch's output shape before keeping it and hands over only the scored output, as a
float32 (n, k) .npy file, which the server checks by its header before reading.
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
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from petridish.ctf.validate import Refused, Signature

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PROBE_ROWS = 3          # rows of zeros in the probe batch (3: unlike the usual fixed batch sizes 1, 2)
VALIDATION_SLOTS = 4    # uploads validated at once; more wait for a slot
_local = threading.local()

# the only reasons a failure on the test inputs can give (besides the time and memory limits)
WRONG_SHAPE = ("The model's scored output must have shape (batch, {k}) on every batch of the test "
               "inputs, as it had on the probe batch. It did not (details withheld, since they can "
               "depend on the hidden test data).")
RUNTIME_ERROR = ("The ONNX runtime raised an error while running the model on the test inputs "
                 "(details withheld, since they can depend on the hidden test data).")
NON_FINITE = "The model's outputs must be finite numbers. Got NaN or Inf values."


class ScoringFailed(Exception):
    """The model could not be scored; the message is the reason shown to its owner."""


class RefereeFault(Exception):
    """The referee's own machinery failed (a helper died or hung): not the model's fault."""


class _Helper:
    """One helper process; jobs are sent one at a time as JSON lines."""

    def __init__(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
               "PETRIDISH_SANDBOX_PARENT": str(os.getpid())}
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


def start_helpers() -> None:
    """Start this thread's helper and one for validation now, so the first jobs need not wait
    for their start-up (a second or two on a busy machine)."""
    _helper()
    _pool.prewarm()


def close_helper() -> None:
    """Stop this thread's helper process (the scorer's workers call it when they stop)."""
    h = getattr(_local, "helper", None)
    if h is not None:
        h.close()
        _local.helper = None


class _Pool:
    """Helpers shared by the request threads that validate uploads, at most `slots` busy at once."""

    def __init__(self, slots: int):
        self._idle: list[_Helper] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(slots)

    def prewarm(self) -> None:
        with self._lock:
            if not self._idle:
                self._idle.append(_Helper())

    @contextmanager
    def helper(self):
        with self._slots:
            with self._lock:
                h = self._idle.pop() if self._idle else None
            if h is None or h.proc.poll() is not None:
                h = _Helper()
            try:
                yield h
            finally:
                if h.proc.poll() is None:
                    with self._lock:
                        self._idle.append(h)


_pool = _Pool(VALIDATION_SLOTS)


def _run_job(helper: _Helper, job: dict) -> dict:
    """The helper's report; a helper that died or hung is replaced and RefereeFault raised."""
    report = helper.run(job, wait_s=float(job["timeout_s"]) + 60)   # the helper's start-up included
    if report is None:
        helper.close()
        raise RefereeFault("The scoring helper process died or stopped answering.")
    return report


def _read_reason(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read(4096)).get("reason", "")[:500]
    except (OSError, ValueError, AttributeError):
        return ""


def check_upload(data: bytes, signature: Signature, *, work_dir: Path, max_bytes: int,
                 opset_min: int, opset_max: int, timeout_s: float, memory_mb: int, cpu_s: int) -> None:
    """Validate an uploaded model in a limited child; raises validate.Refused with one line."""
    if len(data) > max_bytes:
        raise Refused(f"The model file must be at most {max_bytes} bytes. Got {len(data)} bytes.")
    if len(data) == 0:
        raise Refused("The model file must be a non-empty ONNX model. Got an empty file.")
    work_dir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex
    model_path, result_path = work_dir / f"{tag}.upload.onnx", work_dir / f"{tag}.result.json"
    job = {"kind": "validate", "model_path": str(model_path), "result_path": str(result_path),
           "input_dim": signature.input_dim, "n_outputs": signature.n_outputs, "max_bytes": max_bytes,
           "opset_min": opset_min, "opset_max": opset_max, "timeout_s": timeout_s,
           "memory_mb": memory_mb, "cpu_s": cpu_s}
    try:
        model_path.write_bytes(data)
        for attempt in (1, 2):     # a helper that died is replaced once
            try:
                with _pool.helper() as helper:
                    report = _run_job(helper, job)
                break
            except RefereeFault:
                if attempt == 2:
                    raise
        if report["timeout"]:
            raise Refused(f"The model must pass validation (onnx.checker with full_check and shape "
                          f"inference) within {timeout_s:g} s. It did not and was stopped.")
        if report["exitcode"] != 0:
            code = report["exitcode"]
            if code < 0:      # killed, or crashed in C++ code that ran out of memory (SIGSEGV seen)
                raise Refused(f"The model must pass validation within the referee's memory limit "
                              f"({memory_mb} MB) and {cpu_s} s of CPU time. The validating process "
                              f"ended with {signal.Signals(-code).name}.")
            raise Refused(_read_reason(result_path)
                          or f"The model must pass validation. The validating process failed "
                             f"(exit code {report['exitcode']}).")
    finally:
        for p in (model_path, result_path):
            p.unlink(missing_ok=True)


def run_model(model_path: Path, inputs_path: Path, *, signature: Signature, work_dir: Path,
              timeout_s: float, memory_mb: int, cpu_s: int, batch_size: int) -> np.ndarray:
    """Scored outputs (n, k) float32 of the model on the inputs (n, d); raises ScoringFailed
    with a reason (or RefereeFault when the referee itself failed)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    n = int(np.load(inputs_path, mmap_mode="r", allow_pickle=False).shape[0])   # header only
    k = signature.n_outputs
    tag = uuid.uuid4().hex
    out_path, result_path = work_dir / f"{tag}.out.npy", work_dir / f"{tag}.result.json"
    job = {"kind": "score", "model_path": str(model_path), "inputs_path": str(inputs_path),
           "out_path": str(out_path), "result_path": str(result_path), "memory_mb": memory_mb,
           "cpu_s": cpu_s, "batch_size": batch_size, "timeout_s": timeout_s,
           "input_dim": signature.input_dim, "n_outputs": k}
    try:
        report = _run_job(_helper(), job)
        if report["timeout"]:
            raise ScoringFailed(f"The model must finish on the test inputs within {timeout_s:g} s of "
                                "wall-clock time. It did not and was stopped.")
        if report["exitcode"] != 0:
            code = report["exitcode"]
            raise ScoringFailed(_limit_reason(code, cpu_s, memory_mb)
                                or _read_reason(result_path)
                                or f"The scoring process failed (exit code {code}).")
        return _read_outputs(out_path, n, k)
    finally:
        for p in (out_path, result_path, Path(str(out_path) + ".tmp.npy")):
            p.unlink(missing_ok=True)


def _read_outputs(path: Path, n: int, k: int) -> np.ndarray:
    """The child's (n, k) float32 file, its header checked before any data is read."""
    try:
        out = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception:
        raise ScoringFailed("The scoring process ended without writing outputs.") from None
    if out.shape != (n, k) or out.dtype != np.float32:
        raise ScoringFailed(WRONG_SHAPE.format(k=k))
    out = np.array(out)
    if not np.isfinite(out).all():
        raise ScoringFailed(NON_FINITE)
    return out


def _limit_reason(code: int, cpu_s: int, memory_mb: int) -> str:
    """The reason for a child killed by a signal; '' for a normal exit."""
    if code is None or code >= 0:
        return ""
    sig = -code
    if sig == signal.SIGXCPU or sig == signal.SIGKILL:
        return (f"The model must finish within {cpu_s} s of CPU time and {memory_mb} MB of memory. "
                f"The process was killed ({signal.Signals(sig).name}).")
    return f"The ONNX runtime crashed on the model ({signal.Signals(sig).name})."


# ----------------------------------------------------------------------------- in the child

def _limit(memory_mb: int, cpu_s: int) -> None:
    mem = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 2))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when `parent` (the helper) dies; exit now if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass
    if os.getppid() != parent:
        os._exit(9)


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


def _fail(result_path: str, reason: str, code: int) -> None:
    with open(result_path, "w") as fh:
        json.dump({"reason": reason}, fh)
    os._exit(code)


def _child_validate(model_path: str, result_path: str, input_dim: int, n_outputs: int,
                    max_bytes: int, opset_min: int, opset_max: int, memory_mb: int, **_ignored) -> None:
    from petridish.ctf.validate import validate_model
    try:
        data = Path(model_path).read_bytes()
        validate_model(data, signature=Signature(input_dim, n_outputs), max_bytes=max_bytes,
                       opset_min=opset_min, opset_max=opset_max)
    except Refused as exc:
        _fail(result_path, str(exc), 3)
    except MemoryError:
        _fail(result_path, "The model must pass validation (onnx.checker with full_check and shape "
                           f"inference) within the referee's memory limit ({memory_mb} MB). It did not.", 6)
    os._exit(0)


def _child_score(model_path: str, inputs_path: str, out_path: str, result_path: str,
                 input_dim: int, n_outputs: int, batch_size: int, memory_mb: int, **_ignored) -> None:
    import onnx
    import onnxruntime as ort
    from petridish.ctf.validate import scored_output
    k = n_outputs
    try:
        spec = scored_output(onnx.load_model_from_string(Path(model_path).read_bytes()),
                             Signature(input_dim, n_outputs))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
        in_name = sess.get_inputs()[0].name
    except Refused as exc:
        _fail(result_path, str(exc), 5)
    except MemoryError:
        _fail(result_path, "The model must load within the memory limit. It did not.", 5)
    except BaseException as exc:   # depends on the model only: safe to show, shortened
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        _fail(result_path, f"The ONNX runtime could not load the model: {first.replace(model_path, '<model>')[:300]}", 5)
    # the probe batch: zeros, so whatever it reports depends on the model alone
    try:
        raw = sess.run([spec.name], {in_name: np.zeros((PROBE_ROWS, input_dim), np.float32)})[0]
    except BaseException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        _fail(result_path, f"The model must run on a probe batch of {PROBE_ROWS} rows of zeros. "
                           f"The ONNX runtime raised: {first}", 6)
    if _scores(raw, spec, PROBE_ROWS, k) is None:
        _fail(result_path, f"The model's output {spec.name[:64]!r} must have shape (batch, {k}) "
                           f"(or be a ZipMap of {k} classes). On a probe batch of {PROBE_ROWS} rows of "
                           f"zeros it had {_describe(raw)}.", 6)
    # the test inputs: from here on only fixed reasons
    try:
        x = np.load(inputs_path, allow_pickle=False, mmap_mode="r")
        out = np.empty((x.shape[0], k), np.float32)
        for i in range(0, x.shape[0], batch_size):
            xb = np.ascontiguousarray(x[i:i + batch_size])
            part = _scores(sess.run([spec.name], {in_name: xb})[0], spec, len(xb), k)
            if part is None:
                _fail(result_path, WRONG_SHAPE.format(k=k), 6)
            out[i:i + len(xb)] = part
    except MemoryError:
        _fail(result_path, f"The model must run within the referee's memory limit ({memory_mb} MB). "
                           "It did not.", 6)
    except BaseException as exc:  # message withheld: it may depend on test inputs
        if "alloc" in str(exc).lower():
            _fail(result_path, f"The model must run within the referee's memory limit ({memory_mb} MB). "
                               "An allocation failed.", 6)
        _fail(result_path, RUNTIME_ERROR, 6)
    try:
        tmp = out_path + ".tmp.npy"
        np.save(tmp, out, allow_pickle=False)
        os.replace(tmp, out_path)
    except BaseException:
        _fail(result_path, "The model's outputs could not be saved.", 7)
    os._exit(0)


def _scores(raw, spec, b: int, k: int) -> np.ndarray | None:
    """The scored output of one batch of b rows as float32 (b, k), or None if its shape is wrong."""
    if spec.zipmap:   # a list of b dicts class -> probability
        if not isinstance(raw, list) or len(raw) != b or \
                not all(isinstance(d, dict) and len(d) == k for d in raw):
            return None
        try:
            a = np.array([[d[c] for c in range(k)] for d in raw], np.float32)
        except (KeyError, TypeError, ValueError):
            return None
    else:
        if not isinstance(raw, np.ndarray) or raw.dtype != np.float32:
            return None
        a = raw.reshape(b, 1) if spec.vector and raw.shape == (b,) else raw
        if a.shape != (b, k):
            return None
    if spec.probabilities:   # log-probabilities: cross-entropy = -log p[y]; argmax unchanged
        a = np.log(np.maximum(a, np.finfo(np.float32).tiny))
    return a


def _describe(raw) -> str:
    if isinstance(raw, np.ndarray):
        return f"dtype {raw.dtype} and shape {tuple(raw.shape)}"
    return f"a {type(raw).__name__}" + (f" of {len(raw)} items" if isinstance(raw, list) else "")


def _serve() -> None:
    """Helper loop: one JSON job per stdin line -> fork a child, enforce the wall clock, report.
    Exits (killing a running child) as soon as its parent, the web server, is gone."""
    import onnx  # noqa: F401  (preloaded so that each forked child starts fast)
    import onnxruntime  # noqa: F401
    import petridish.ctf.validate  # noqa: F401
    parent = int(os.environ.get("PETRIDISH_SANDBOX_PARENT", os.getppid()))
    me = os.getpid()
    while True:
        if os.getppid() != parent:
            return
        ready, _, _ = select.select([sys.stdin], [], [], 0.5)
        if not ready:
            continue
        line = sys.stdin.readline()
        if not line:                  # the server closed the pipe or died
            return
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                _die_with_parent(me)
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)    # stdout is the report pipe: the child must not write to it
                os.environ["OMP_NUM_THREADS"] = "1"
                _no_network()
                _limit(int(job["memory_mb"]), int(job["cpu_s"]))
                (_child_validate if job["kind"] == "validate" else _child_score)(**job)
            finally:
                os._exit(9)
        deadline, timed_out = time.monotonic() + float(job["timeout_s"]), False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline or os.getppid() != parent:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                timed_out = True
                break
            time.sleep(0.003)
        if os.getppid() != parent:
            return
        report = {"timeout": timed_out, "exitcode": os.waitstatus_to_exitcode(status)}
        sys.stdout.write(json.dumps(report) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
