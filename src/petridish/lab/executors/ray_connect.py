"""Connecting the driver to Ray: a private local instance, or a running cluster by address.

Clusters started with ``ray start --head`` use Ray's token authentication (on by default
for new clusters since Ray 2.59; ``RAY_AUTH_MODE=token`` turns it on in any version that
has it). The head node keeps its token in ``~/.ray/auth_token``; every other process that
talks to the cluster (worker nodes, drivers) needs the same token, from that file,
from the file named by ``RAY_AUTH_TOKEN_PATH``, or from ``RAY_AUTH_TOKEN``.

Ray 2.60 switches token mode on by itself only for a cluster it finds without an address
(``"auto"``); a driver given ``HOST:PORT`` connects without a token unless
``RAY_AUTH_MODE=token`` is set, and the cluster refuses it. ``connect`` does what
``"auto"`` does for every address: when ``RAY_AUTH_MODE`` is unset and a token is present,
token mode is switched on for this process. An explicit ``RAY_AUTH_MODE`` is respected.

A cluster that cannot be reached, refuses the token or runs another Ray version gives
one ``PetridishError`` line that says what to check, instead of Ray's log lines and
traceback (``--debug`` shows Ray's own output).
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from typing import Any, Iterator

import ray

from petridish.errors import PetridishError

_HOST_PORT = re.compile(r"^\[?(?P<host>[^\s\[\]/]+?)\]?:(?P<port>\d{1,5})$")


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Initialise Ray unless it already is; True if this call started it.

    ``address=None`` starts a local instance with ``num_cpus`` CPUs (default: all);
    any other address (``HOST:PORT``, ``"auto"``, ``ray://…``) joins that cluster.
    """
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    if address is None:
        ray.init(address="local", num_cpus=num_cpus, **kwargs)     # never a cluster found running here
    else:
        _check_reachable(address)
        token = enable_token_auth()
        with _quiet_stderr() as log:
            try:
                ray.init(address=address, **kwargs)
            except Exception as e:   # ConnectionError, AuthenticationError, version mismatch (RuntimeError)
                raise PetridishError(_failure(address, token, f"{type(e).__name__}: {e}", log())) from None
    _cluster_errors_to_stderr()
    return True


def _cluster_errors_to_stderr() -> None:
    """Ray prints the cluster's error messages ("A worker died or was killed ...") on the driver's
    stdout; they are diagnostics, and stdout belongs to `--json`. Send them to stderr."""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    show = getattr(worker, "print_to_stdstream", None)
    if show is None or getattr(show, "to_stderr", False):
        return

    def to_stderr(data: dict, *args: Any, **kwargs: Any) -> None:
        show({**data, "is_err": True} if data.get("pid") == "raylet" else data, *args, **kwargs)
    to_stderr.to_stderr = True          # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def token_source() -> str | None:
    """Where this process would read Ray's auth token from, or None if there is none."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), os.path.join(os.path.expanduser("~"), ".ray", "auth_token")):
        if path and os.path.isfile(path) and os.path.getsize(path) > 0:
            return path
    return None


def enable_token_auth() -> str | None:
    """Switch Ray to token mode when RAY_AUTH_MODE is unset and a token is present; the token's source."""
    source = token_source()
    if source is None or "RAY_AUTH_MODE" in os.environ:
        return source
    try:
        from ray._raylet import Config   # Ray >= 2.52 (token authentication); older Rays have no tokens
    except ImportError:
        return source
    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")                # refresh Ray's cached config, as Ray itself does for "auto"
    return source


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at HOST:PORT (Ray itself retries for minutes)."""
    m = _HOST_PORT.match(address.strip())
    if m is None:                        # "auto", ray://…: Ray resolves these itself
        return
    try:
        socket.create_connection((m["host"], int(m["port"])), timeout=timeout).close()
    except OSError as e:
        raise PetridishError(_failure(address, token_source(), f"nothing answers there ({e.strerror or e})",
                                      "")) from None


def _failure(address: str, token: str | None, cause: str, log: str) -> str:
    """The one line: what went wrong, and the three things to check."""
    if "InvalidAuthToken" in log or "Unauthenticated" in log:
        cause = "the cluster refused this driver's token"
    elif "ersion mismatch" in cause:
        cause = cause.splitlines()[0]
    have = f"this driver reads one from {token}" if token else "this driver has none"
    return (f"Could not connect to the Ray cluster at {address}: {cause.splitlines()[0]}. Check the address "
            f"(the head node's `ray start --head --port`), the token (the head node's ~/.ray/auth_token, "
            f"given to the driver as that file or as RAY_AUTH_TOKEN; {have}), and that the driver and the "
            f"cluster run the same Ray version (here {ray.__version__}; `ray --version` on the head node).")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[Any]:
    """Send file descriptor 2 (Ray's C++ logs write there directly) to a temp file while connecting;
    yields a function that returns what was written. With PETRIDISH_DEBUG set, nothing is hidden."""
    if os.environ.get("PETRIDISH_DEBUG"):
        yield lambda: ""
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)

        def read() -> str:
            tmp.seek(0)
            return tmp.read().decode(errors="replace")
        try:
            yield read
        finally:
            os.dup2(saved, 2)
            os.close(saved)
