"""A Ray cluster's address, checked before anything heavy is imported: is something listening at
HOST:PORT, where this process would read its auth token from, and the one-line error that says
what to check. No Ray and no torch here, so the command line fails in half a second on a wrong
address instead of after importing both (6 s on a 2-core AMD EPYC); ``ray_connect`` uses the same.
"""
from __future__ import annotations

import os
import re
import socket
from importlib import metadata

from petridish.errors import PetridishError

_HOST_PORT = re.compile(r"^\[?(?P<host>[^\s\[\]/]+?)\]?:(?P<port>\d{1,5})$")


def token_source() -> str | None:
    """Where this process would read Ray's auth token from, or None if there is none."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), os.path.join(os.path.expanduser("~"), ".ray", "auth_token")):
        if path and os.path.isfile(path) and os.path.getsize(path) > 0:
            return path
    return None


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at HOST:PORT (Ray itself retries for minutes)."""
    m = _HOST_PORT.match(address.strip())
    if m is None:                        # "auto", ray://…: Ray resolves these itself
        return
    try:
        socket.create_connection((m["host"], int(m["port"])), timeout=timeout).close()
    except OSError as e:
        raise PetridishError(failure(address, token_source(), f"nothing answers there ({e.strerror or e})",
                                     "")) from None


def failure(address: str, token: str | None, cause: str, log: str) -> str:
    """The one line: what went wrong, and the three things to check."""
    if "InvalidAuthToken" in log or "Unauthenticated" in log:
        cause = "the cluster refused this driver's token"
    elif "ersion mismatch" in cause:
        cause = cause.splitlines()[0]
    have = f"this driver reads one from {token}" if token else "this driver has none"
    return (f"Could not connect to the Ray cluster at {address}: {cause.splitlines()[0]}. Check the address "
            f"(the head node's `ray start --head --port`), the token (the head node's ~/.ray/auth_token, "
            f"given to the driver as that file or as RAY_AUTH_TOKEN; {have}), and that the driver and the "
            f"cluster run the same Ray version (here {_ray_version()}; `ray --version` on the head node).")


def _ray_version() -> str:
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return "no Ray installed"
