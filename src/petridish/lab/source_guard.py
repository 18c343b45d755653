"""A run never mixes cells computed by different code without saying so.

Every run records the hash of its experiment's source (``provenance["source"]``, see
``lab.source``). Before computing, the driver looks at the finished cells it would reuse:
if any was computed by a run whose recorded source hash differs from the current one, it
stops with one line, unless the caller chose

  * ``"new-version"``: the source hash is folded into the run id and into the name the cell
    keys are computed from (``pin``), so the new code starts a new run with its own cells.
    Later runs of the same code find that run again (it exists in the store) and resume it;
  * ``"continue"``: the old cells are kept, and the change is appended to the run's
    ``provenance["source_changes"]`` as ``{"from": old sha256, "to": new, "at": unix s}``.

Code shipped inside the petridish package (the catalogue) is not checked: its developers
edit it constantly, and its way to new cells is bumping ``Experiment.version``, which
changes every cell key. A user's code may bump ``version`` the same way.
"""
from __future__ import annotations

import time
from typing import Any

from petridish.errors import PetridishError, check_choice
from petridish.lab.source import is_builtin
from petridish.lab.store import FINISHED, Store

MODES = ("stop", "new-version", "continue")
PIN_CHARS = 12                        # hex digits of the source hash in a pinned run id / key name


class SourceChanged(PetridishError):
    """The experiment's source differs from the one that computed the cells a run would reuse."""


def tracked(info: dict[str, Any]) -> bool:
    return bool(info.get("sha256")) and not is_builtin(info)


def short(info: dict[str, Any]) -> str | None:
    return info["sha256"][:PIN_CHARS] if tracked(info) else None


def use_pin(store: Store, info: dict[str, Any], pinned_run_id: str, mode: str) -> bool:
    """Whether this run is the source-pinned one: asked for, or already in the store."""
    check_choice(mode, "source_changed", "run_sweep", MODES)
    return tracked(info) and (mode == "new-version" or store.get_run(pinned_run_id) is not None)


def key_name(name: str, pin: str | None) -> str:
    """The experiment name cell keys are computed from: ``name`` or ``name@<source hash>``."""
    return name if pin is None else f"{name}@{pin}"


def changes(store: Store, name: str, info: dict[str, Any], run_id: str, keys: list[str],
            mode: str) -> list[dict[str, Any]]:
    """Source changes to record (mode "continue"), or ``SourceChanged`` (mode "stop")."""
    if not tracked(info):
        return []
    owners = sorted({c.run_id for c in store.get_cells(keys).values() if c.status in FINISHED and c.run_id})
    old: dict[str, str] = {}          # old sha256 -> the first run that computed cells with it
    for rid in owners:
        rec = store.get_run(rid)
        sha = ((rec.provenance or {}).get("source") or {}).get("sha256") if rec else None
        if sha and sha != info["sha256"]:
            old.setdefault(sha, rid)
    if not old:
        return []
    if mode == "continue":
        return [{"from": sha, "to": info["sha256"], "at": time.time(), "cells_of": rid} for sha, rid in old.items()]
    rid = next(iter(old.values()))
    where = info.get("file") or info.get("module")
    raise SourceChanged(
        f"The source of experiment '{name}' ({where}) changed since run {rid} computed its cells. "
        "Pass --new-version to start a new run, or --continue-changed to keep going with the change recorded "
        "in the run's provenance (run_sweep: source_changed='new-version' or 'continue').")
