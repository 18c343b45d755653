"""Compare two or more runs of one experiment: charts overlaid with their CIs, and the
parameters that differ highlighted. ``/compare?runs=a,b`` (or ``runs=a&runs=b``)."""
from __future__ import annotations

import json
from collections import Counter

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from petridish.lab.store import RunRecord, Store
from petridish.ui import views
from petridish.ui.deps import get_store, render
from petridish.ui.lookup import check_run_id, experiment_of
from petridish.ui.series import merge, series

router = APIRouter(include_in_schema=False)
MAX_RUNS = 8


def _runs(store: Store, raw: list[str]) -> list[RunRecord]:
    ids = list(dict.fromkeys(i.strip() for part in raw for i in part.split(",") if i.strip()))
    if not 2 <= len(ids) <= MAX_RUNS:
        raise HTTPException(422, f"The 'runs' parameter must name 2 to {MAX_RUNS} runs, comma-separated "
                                 f"(e.g. /compare?runs=abc123,def456). Got {len(ids)}.")
    found = {i: store.get_run(check_run_id(i)) for i in ids}
    missing = [i for i, r in found.items() if r is None]
    if missing:
        raise HTTPException(404, f"There is no run {', '.join(repr(m) for m in missing)} in this store.")
    runs = list({r.id: r for r in found.values()}.values())     # two prefixes of one run count once
    kinds = {r.experiment for r in runs}
    if len(kinds) > 1:
        raise HTTPException(422, "Only runs of the same experiment can be compared. Got "
                                 + ", ".join(f"{r.id} ({r.experiment})" for r in runs) + ".")
    return runs


def _params(runs: list[RunRecord], exp) -> list[dict]:
    """One row per parameter (and the seeds): its value in each run, and whether they differ;
    in declaration order when the experiment is known (stored configs have sorted keys)."""
    names = list(dict.fromkeys([p.name for p in exp.params] if exp is not None else []))
    names = [k for k in names if any(k in r.config for r in runs)]
    names += [k for k in dict.fromkeys(k for r in runs for k in r.config) if k not in names]
    rows = []
    for k in names + ["seeds"]:
        vals = [json.dumps(r.seeds if k == "seeds" else r.config.get(k)) for r in runs]
        rows.append({"name": k, "vals": vals, "differs": len(set(vals)) > 1})
    return rows


@router.get("/compare")
def compare_page(request: Request, runs: list[str] = Query(...),
                 store: Store = Depends(get_store)):
    chosen = _runs(store, runs)
    counts = store.cell_counts([r.id for r in chosen])
    return render(request, "compare.html", title=f"Compare · {chosen[0].experiment}", runs=chosen,
                  counts={r.id: views.counts_of(r.n_cells, counts[r.id]) for r in chosen},
                  params=_params(chosen, experiment_of(chosen[0])), ids=",".join(r.id for r in chosen))


@router.get("/api/compare")
def compare_data(request: Request, runs: list[str] = Query(...),
                 store: Store = Depends(get_store)):
    chosen = _runs(store, runs)
    exp = experiment_of(chosen[0])
    n = request.app.state.settings.max_series
    cells = {r.id: store.run_cells(r.id) for r in chosen}
    parts = [series(r.config, cells[r.id], exp, label=r.id, max_lines=n) for r in chosen]
    return {"runs": [r.id for r in chosen], "experiment": chosen[0].experiment, "series": merge(parts),
            "counts": {r.id: dict(Counter(c.status for c in cells[r.id])) for r in chosen}}
