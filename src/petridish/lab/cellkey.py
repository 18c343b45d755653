"""Content hash of a cell: experiment name and version, parameters, seed."""
from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=float)


def cell_key(experiment: str, version: int, params: dict[str, Any], seed: int) -> str:
    blob = canonical({"e": experiment, "v": int(version), "p": params, "s": int(seed)})
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
