"""On-disk cache of generated arrays (npz), keyed by a content hash of the arguments."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$PETRIDISH_CACHE``, else ``~/.cache/petridish``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("PETRIDISH_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "petridish"


def content_key(kind: str, args: dict[str, Any]) -> str:
    """Stable hex digest of (kind, args); args must be JSON-serializable."""
    text = json.dumps({"kind": kind, "args": args}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_arrays(kind: str, args: dict[str, Any], make: Callable[[], dict[str, np.ndarray]], *,
                  cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Return ``make()``'s arrays, reading them from the cache when present.

    The file is written atomically (temp file + rename) so parallel processes never
    read a half-written cache; an unreadable cache file is regenerated.
    """
    root = cache_root(cache_dir)
    path = root / f"{kind}-{content_key(kind, args)}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except Exception:  # corrupt or truncated: regenerate below
            pass
    arrays = make()
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:  # a read-only home is not an error: just no cache
        pass
    return arrays
