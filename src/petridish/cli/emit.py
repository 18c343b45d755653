"""The one JSON emitter of the command line: one document on stdout, NaN/inf as null."""
from __future__ import annotations

import json
import math
import sys
from typing import Any


def strict(obj: Any) -> Any:
    """JSON without NaN/inf (as null), so any JSON parser reads our output."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(strict(obj), allow_nan=False) + "\n")
    sys.stdout.flush()
