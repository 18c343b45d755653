"""The lab's name registry: entry points load once, and a thread that looks a name up while another
thread loads them waits for it instead of seeing an empty catalogue."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from petridish.errors import PetridishError
from petridish.lab import registry
from lab_toys import TOY


@pytest.fixture
def empty_registry(monkeypatch):
    """A registry that has loaded nothing yet, and one slow entry point (0.3 s) that declares TOY."""
    loads = []

    def slow_load():
        loads.append(threading.get_ident())
        time.sleep(0.3)                  # e.g. importing a catalogue that imports torch
        return TOY
    ep = SimpleNamespace(load=slow_load, dist=SimpleNamespace(name="toys", version="1.0"), value="lab_toys:TOY")
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_origins", {})
    monkeypatch.setattr(registry, "_loaded", {"started": False, "done": False})
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep] if group == registry.GROUP else [])
    return loads


def test_two_threads_that_look_up_a_name_at_once_both_find_it(empty_registry):
    found, errors = [], []

    def look_up():
        try:
            found.append(registry.get("toy"))
        except PetridishError as e:      # before the lock: "Unknown experiment 'toy'. Allowed: ."
            errors.append(str(e))
    threads = [threading.Thread(target=look_up) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == [] and found == [TOY] * 4
    assert len(empty_registry) == 1                          # the entry points were loaded once
    assert registry.origin("toy") == "toys 1.0"


def test_an_unknown_name_lists_the_known_ones_after_loading(empty_registry):
    with pytest.raises(PetridishError, match=r"Unknown experiment 'nope'\. Allowed: toy\."):
        registry.get("nope")
