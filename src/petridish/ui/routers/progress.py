"""Live progress of a run as small JSON, polled by static/run.js (no page reload): status,
counts, fraction and ETA, and the chart series that fill in as cells land."""
from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Depends, Request

from petridish.lab.store import Store
from petridish.ui import views
from petridish.ui.deps import get_store
from petridish.ui.lookup import experiment_of, run_or_404
from petridish.ui.series import series

router = APIRouter(prefix="/api", include_in_schema=False)


@router.get("/runs/{run_id}/progress")
def run_progress(run_id: str, request: Request, store: Store = Depends(get_store)):
    run = run_or_404(store, run_id)
    cells = store.run_cells(run.id)
    out = views.progress(run, dict(Counter(c.status for c in cells)))
    exp = experiment_of(run)
    out["series"] = series(run.config, cells, exp, max_lines=request.app.state.settings.max_series)
    header, body = views.table(exp, run.config, cells)
    out["table"] = {"header": header, "body": body}
    out["version"] = len(cells)                  # the figure's cache key changes with it
    return out
