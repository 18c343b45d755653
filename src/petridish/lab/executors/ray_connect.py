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
import tempfile
from typing import Any, Iterator

import ray

from petridish.errors import PetridishError
from petridish.lab.ray_address import check_reachable, failure, token_source

__all__ = ["connect", "enable_token_auth", "token_source"]


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
        check_reachable(address)
        token = enable_token_auth()
        with _quiet_stderr() as log:
            try:
                ray.init(address=address, **kwargs)
            except Exception as e:   # ConnectionError, AuthenticationError, version mismatch (RuntimeError)
                raise PetridishError(failure(address, token, f"{type(e).__name__}: {e}", log())) from None
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
