"""Live progress of a run as small JSON, polled by static/run.js (no page reload): status,
counts, fraction and ETA, and the chart series that fill in as cells land."""
from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from petridish.lab.store import Store
from petridish.ui import views
from petridish.ui.deps import get_store
from petridish.ui.lookup import check_run_id, experiment_of, run_or_404
from petridish.ui.series import series

router = APIRouter(prefix="/api", include_in_schema=False)
MAX_LIVE = 50        # running runs one runs-list page may follow at once


@router.get("/runs/live")
def live_rows(ids: str = Query(..., max_length=MAX_LIVE * 65), store: Store = Depends(get_store)):
    """Status and cell counts of the running runs a runs-list page shows (static/runs.js):
    ``{"runs": {id: {"status", "counts"}}, "missing": [ids]}``; one GROUP BY for the counts."""
    wanted = list(dict.fromkeys(i for i in ids.split(",") if i))
    if not 1 <= len(wanted) <= MAX_LIVE:
        raise HTTPException(422, f"The 'ids' parameter must name 1 to {MAX_LIVE} runs, comma-separated. Got {len(wanted)}.")
    runs = {i: store.get_run(check_run_id(i)) for i in wanted}
    found = {i: r for i, r in runs.items() if r is not None and r.id == i}     # exact ids only
    counts = store.cell_counts(list(found))
    return {"runs": {i: {"status": r.status, "counts": views.counts_of(r.n_cells, counts[i])} for i, r in found.items()},
            "missing": [i for i in wanted if i not in found]}


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
