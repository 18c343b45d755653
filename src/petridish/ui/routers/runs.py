"""Runs: the filtered, paginated list (``/``), a run's page, its figure and its cells as CSV/Parquet.

The list costs two indexed queries per page (the page and its total) plus one GROUP BY for
the cell counts of the runs shown; no query per run, never all runs at once.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from petridish.lab.export import export, flat_rows
from petridish.lab.store import Store
from petridish.lab.sweep import analyze
from petridish.ui import views
from petridish.ui.deps import get_store, render
from petridish.ui.lookup import experiment_of, run_or_404

router = APIRouter(include_in_schema=False)


def _day(text: str, name: str) -> float | None:
    """Local midnight of a YYYY-MM-DD date, unix seconds; '' is no filter."""
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d").timestamp()
    except ValueError:
        raise HTTPException(422, f"The '{name}' filter must be a date YYYY-MM-DD. Got {text[:40]!r}.") from None


@router.get("/")
def runs_list(request: Request, store: Store = Depends(get_store),
              experiment: str = Query("", max_length=128), status: str = Query("", max_length=32),
              since: str = Query("", max_length=32), until: str = Query("", max_length=32),
              page: int = Query(1, ge=1, le=10**6)):
    if status and status not in views.STATUSES:
        raise HTTPException(422, f"The 'status' filter must be one of {', '.join(views.STATUSES)}. Got {status!r}.")
    lo, hi = _day(since, "since"), _day(until, "until")
    hi = hi + 86400 if hi is not None else None           # until is inclusive: the whole day
    size = request.app.state.settings.page_size
    runs, total = store.query_runs(experiment=experiment or None, status=status or None, since=lo, until=hi,
                                   limit=size, offset=(page - 1) * size)
    counts = store.cell_counts([r.id for r in runs])
    rows = [{"run": r, "counts": views.counts_of(r.n_cells, counts[r.id])} for r in runs]
    query = {k: v for k, v in (("experiment", experiment), ("status", status), ("since", since),
                               ("until", until)) if v}
    pages = max(1, math.ceil(total / size))
    link = lambda p: "/?" + urlencode({**query, "page": p})     # noqa: E731
    return render(request, "runs.html", title="Runs", rows=rows, total=total, page=page, pages=pages,
                  prev=link(page - 1) if page > 1 else None, next=link(page + 1) if page < pages else None,
                  experiments=store.experiment_names(), statuses=views.STATUSES, f=query)


@router.get("/runs/{run_id}")
def run_page(run_id: str, request: Request, store: Store = Depends(get_store)):
    run = run_or_404(store, run_id)
    cells = store.run_cells(run.id)
    exp = experiment_of(run)
    header, body = views.table(exp, run.config, cells)
    analysis, analysis_error = None, None
    if exp is not None:
        try:
            analysis = analyze(exp, cells)
        except Exception as e:                 # a partial sweep the analysis cannot handle yet
            analysis_error = f"{type(e).__name__}: {str(e)[:300]}"
    by_status = {}
    for c in cells:
        by_status[c.status] = by_status.get(c.status, 0) + 1
    return render(request, "run.html", title=f"{run.experiment} · {run.id}", run=run, exp=exp,
                  counts=views.counts_of(run.n_cells, by_status), header=header, body=body,
                  findings=views.other_findings(analysis) if analysis else [],
                  claims=views.claims(analysis) if analysis else [],
                  analysis_error=analysis_error, config=json.dumps(run.config, indent=1, sort_keys=True),
                  prov=views.provenance_rows(run), failed=[c for c in cells if c.status == "failed"][:20],
                  progress=views.progress(run, by_status), version=len(cells))


@router.get("/runs/{run_id}/figure.png")
def figure(run_id: str, request: Request, store: Store = Depends(get_store)):
    run = run_or_404(store, run_id)
    exp = experiment_of(run)
    if exp is None:
        raise HTTPException(404, f"The experiment {run.experiment!r} of run {run.id} is not installed here, "
                                 "so its figure cannot be drawn.")
    try:
        png = request.app.state.figures.png(exp, run, store.run_cells(run.id))
    except Exception as e:                     # the experiment's plot failed on these cells
        raise HTTPException(500, f"The figure of run {run.id} could not be drawn: the plot of {run.experiment!r} "
                                 f"raised {type(e).__name__}: {str(e)[:200]}") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.get("/runs/{run_id}/cells.csv")
def cells_csv(run_id: str, store: Store = Depends(get_store)):
    run = run_or_404(store, run_id)
    cols, rows = flat_rows(store.run_cells(run.id), run.id)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{run.id}.csv"'})


@router.get("/runs/{run_id}/cells.parquet")
def cells_parquet(run_id: str, store: Store = Depends(get_store)):
    run = run_or_404(store, run_id)
    buf = io.BytesIO()
    export(store.run_cells(run.id), run.id, buf, "parquet")     # pyarrow writes to a file object
    return Response(buf.getvalue(), media_type="application/vnd.apache.parquet",
                    headers={"Content-Disposition": f'attachment; filename="{run.id}.parquet"'})
