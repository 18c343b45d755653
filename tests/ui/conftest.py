"""Fixtures of the dashboard tests: a SQLite store with real runs, and a TestClient over the
read-only app (Host 127.0.0.1, as a browser on this machine sends it)."""
from __future__ import annotations

import time
import warnings

import pytest

from petridish.lab.experiment import Cell
from petridish.lab.store import RunRecord, SQLStore
from petridish.lab.sweep import run_sweep
from ui_toys import UI_TOY

GHOST = "ghost<b>x</b>"        # an experiment installed nowhere, with markup in its name


@pytest.fixture(scope="session")
def toy_store(tmp_path_factory):
    """{"dir", "a", "b", "ghost"}: run a = ui-toy defaults (12 cells done); run b = lr 0.5 and
    width 13, whose 3 cells fail (9 done); run ghost = 2 cells of an experiment installed nowhere."""
    d = str(tmp_path_factory.mktemp("ui") / "runs")
    a = run_sweep(UI_TOY, store=d, progress=False)
    b = run_sweep(UI_TOY, overrides={"lr": 0.5, "width": [2, 8, 13, 32]}, store=d, progress=False)
    st = SQLStore(d)
    st.create_run(RunRecord("9h0st0000000", GHOST, {"k": [1, 2]}, [0], {"torch": "x"}, "interrupted",
                            time.time() - 86400 * 3), ["g1", "g2", "g3"])
    st.put_cells([Cell("g1", GHOST, {"k": 1}, 0, "done", {"m": 1.0}),
                  Cell("g2", GHOST, {"k": 2}, 0, "diverged", {"m": float("inf"), "diverged": True})])
    st.close()
    return {"dir": d, "a": a.run_id, "b": b.run_id, "ghost": "9h0st0000000"}


@pytest.fixture
def make_client(toy_store):
    """make_client(store=..., **settings) -> a TestClient of a fresh app (read-only store)."""
    from petridish.ui import create_app, load_settings
    opened = []

    def make(**settings):
        settings.setdefault("store", toy_store["dir"])
        with warnings.catch_warnings():       # starlette's note about httpx2; irrelevant here
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient
        app = create_app(load_settings(**settings))
        c = TestClient(app, base_url="http://127.0.0.1")
        opened.append(app)
        return c
    yield make
    for app in opened:
        app.state.store.close()


@pytest.fixture
def client(make_client):
    return make_client()
