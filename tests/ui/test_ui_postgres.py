"""The dashboard over a PostgreSQL store (CI starts a server; skipped without one): the list,
a run page, progress and a comparison read through read-only transactions."""
from __future__ import annotations

import re

import pytest

from petridish.lab.sweep import run_sweep
from ui_toys import UI_TOY


def test_dashboard_over_postgresql(pg_url, make_client):
    a = run_sweep(UI_TOY, store=pg_url, progress=False)
    b = run_sweep(UI_TOY, overrides={"lr": 0.5}, store=pg_url, progress=False)
    c = make_client(store=pg_url)
    assert re.findall(r'<tr data-run="([^"]+)" data-status="[a-z]+">', c.get("/").text) == [b.run_id, a.run_id]
    assert '<b id="n-done">12</b>' in c.get(f"/runs/{a.run_id}").text
    assert c.get(f"/api/runs/{a.run_id}/progress").json()["counts"]["done"] == 12
    rows = re.findall(r'<tr class="(differs|same)"><th>(\w+)</th>', c.get(f"/compare?runs={a.run_id},{b.run_id}").text)
    assert ("differs", "lr") in rows and ("same", "width") in rows
    with pytest.raises(Exception, match="(?i)read-only transaction"):
        c.app.state.store.update_run(a.run_id, status="interrupted")
