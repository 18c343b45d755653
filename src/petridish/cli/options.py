"""Option values shared by the commands: ``--set key=value`` (``key=a,b,c`` for a list)."""
from __future__ import annotations

from typing import Any

import typer

from petridish.errors import PetridishError


def device_option() -> Any:
    """``--device auto|cpu|cuda`` (run and search): where cells compute; checked by the API."""
    return typer.Option("cpu", "--device", help="cpu, cuda, or auto (cuda when there is one) [cpu].")


def parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise PetridishError(f"The '--set' option must be key=value (a list as key=a,b,c). Got {item!r}.")
        k, v = item.split("=", 1)
        out[k.strip()] = [s.strip() for s in v.split(",")] if "," in v else v.strip()
    return out
