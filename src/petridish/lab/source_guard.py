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

A search (``search.study``) cannot know its cells in advance: it checks its run's cells (the
study's earlier trials) before it starts, and each finished cell a trial would take from the
store before taking it; "new-version" pins its study name, run id and cell keys.

Code shipped inside the petridish package (the catalogue) is not checked against its own
earlier hashes: its developers edit it constantly, and its way to new cells is bumping
``Experiment.version``, which changes every cell key (a user's code may do the same). A
catalogue run does stop if the cells it would reuse were computed by code from outside
petridish under the same name (a user's edited copy).
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


def mode_for(new_version: bool, continue_changed: bool) -> str:
    """The mode the CLI flags ``--new-version`` / ``--continue-changed`` choose (at most one)."""
    if new_version and continue_changed:
        raise PetridishError("The '--new-version' and '--continue-changed' options exclude each other. Pass one.")
    return "new-version" if new_version else "continue" if continue_changed else "stop"


def use_pin(store: Store, info: dict[str, Any], pinned_run_id: str, mode: str, api: str = "run_sweep") -> bool:
    """Whether this run is the source-pinned one: asked for, or already in the store."""
    check_choice(mode, "source_changed", api, MODES)
    return tracked(info) and (mode == "new-version" or store.get_run(pinned_run_id) is not None)


def key_name(name: str, pin: str | None) -> str:
    """The experiment name cell keys are computed from: ``name`` or ``name@<source hash>``."""
    return name if pin is None else f"{name}@{pin}"


def changes(store: Store, name: str, info: dict[str, Any], run_id: str, keys: list[str],
            mode: str, api: str = "run_sweep") -> list[dict[str, Any]]:
    """Source changes to record (mode "continue"), or ``SourceChanged`` (mode "stop")."""
    owners = sorted({c.run_id for c in store.get_cells(keys).values() if c.status in FINISHED and c.run_id})
    old: dict[str, tuple[str, dict]] = {}   # other sha256 -> (the first run that computed cells with it, its source)
    for rid in owners:
        rec = store.get_run(rid)
        theirs = ((rec.provenance or {}).get("source") or {}) if rec else {}
        if _differs(info, theirs):
            old.setdefault(theirs["sha256"], (rid, theirs))
    if not old:
        return []
    if mode == "continue":
        return [{"from": sha, "to": info.get("sha256"), "at": time.time(), "cells_of": rid}
                for sha, (rid, _) in old.items()]
    rid, theirs = next(iter(old.values()))
    if not tracked(info):             # a catalogue name whose cells came from a user's copy of it
        raise SourceChanged(
            f"The cells of experiment '{name}' that this run would reuse were computed in run {rid} by other code "
            f"({theirs.get('file') or theirs.get('module')}). Give that experiment its own name, "
            "or use another --store.")
    where = info.get("file") or info.get("module")
    raise SourceChanged(
        f"The source of experiment '{name}' ({where}) changed since run {rid} computed its cells. "
        "Pass --new-version to start a new run, or --continue-changed to keep going with the change recorded "
        f"in the run's provenance ({api}: source_changed='new-version' or 'continue').")


def merge(logged: list[dict[str, Any]], found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``logged`` plus the changes in ``found`` it does not hold yet (same from, to and cells_of)."""
    seen = {(c.get("from"), c.get("to"), c.get("cells_of")) for c in logged}
    return logged + [c for c in found if (c["from"], c["to"], c["cells_of"]) not in seen]


def _differs(mine: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Whether cells recorded with source ``theirs`` were computed by other code than ``mine``:
    another hash of a user's experiment, or, for a catalogue experiment, code from outside petridish."""
    if not theirs.get("sha256"):
        return False                  # a run recorded before sources were: nothing to compare
    return theirs["sha256"] != mine.get("sha256") if tracked(mine) else tracked(theirs)
