"""Export a run's cells as a flat table (CSV or Parquet): one row per cell."""
from __future__ import annotations

import csv
import json
from typing import Any

from petridish.lab.experiment import Cell


def flat_rows(cells: list[Cell], run_id: str) -> tuple[list[str], list[dict[str, Any]]]:
    pnames = list(dict.fromkeys(k for c in cells for k in c.params))
    mnames = list(dict.fromkeys(k for c in cells for k in c.metrics))
    cols = ["run", "key", "seed", "status"] + pnames + [f"metric.{m}" for m in mnames] + ["wall_time_s", "peak_mem_mb", "error"]
    rows = []
    for c in cells:
        r: dict[str, Any] = {"run": run_id, "key": c.key, "seed": c.seed, "status": c.status}
        r.update({k: c.params.get(k) for k in pnames})
        for m in mnames:
            v = c.metrics.get(m)
            r[f"metric.{m}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
        r.update({"wall_time_s": c.wall_time, "peak_mem_mb": c.peak_mem_mb, "error": c.error})
        rows.append(r)
    return cols, rows


def export(cells: list[Cell], run_id: str, path: str, fmt: str) -> None:
    cols, rows = flat_rows(cells, run_id)
    if fmt == "csv":
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.Table.from_pylist([{k: (str(v) if isinstance(v, bool) is False and k.startswith("metric.")
                                       and isinstance(v, str) else v) for k, v in r.items()} for r in rows])
    pq.write_table(table, path)
