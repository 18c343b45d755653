"""Wall time of the same quick sweep on three executors, and each one's ratio to local.

    python benchmarks/executors.py [--experiment nngp-vs-sgd] [--json]

The default sweep, ``nngp-vs-sgd --quick`` (24 cells, ~15 s), has cells heavy enough
(kernel solves, SGD-trained MLPs) for process start-up not to dominate; with
``linear-double-descent`` (120 cells of ~3 ms) the overheads are all one measures.

Executors: local with 1 worker (in process), local with 2 worker processes, and Ray on a
local instance with 2 CPUs (its start-up is timed separately and not counted: a cluster
is started once and reused). Every sweep writes to a fresh in-memory store, so nothing is
reused between executors. Every executor runs each cell on one thread (torch and BLAS), so
the three executors' cells are checked to be bitwise identical; the largest relative
difference to local-1 is reported as well (0 when they are).
Timings are wall-clock on whatever machine runs this; on a shared machine they are noisy.
"""
from __future__ import annotations

import json
import time

from petridish.cli.script_args import ScriptParser


def _timed_sweep(experiment: str, executor, workers: int) -> tuple[float, list]:
    from petridish.lab.sweep import run_sweep
    t0 = time.perf_counter()
    res = run_sweep(experiment, quick=True, store="memory", workers=workers, executor=executor, progress=False)
    return time.perf_counter() - t0, res.cells


def _max_rel_diff(cells_a: list, cells_b: list, floor: float = 1e-10) -> float:
    """Largest |a - b| / max(|a|, |b|) over the float metrics of matching cells, skipping pairs
    that are both below ``floor`` in magnitude (residuals at rounding level, ~1e-14, whose
    relative difference says nothing)."""
    worst = 0.0
    for a, b in zip(cells_a, cells_b):
        for k, v in a.metrics.items():
            w = b.metrics.get(k)
            if isinstance(v, float) and isinstance(w, float) and v != w and max(abs(v), abs(w)) >= floor:
                worst = max(worst, abs(v - w) / max(abs(v), abs(w)))
    return worst


def main(argv: list[str] | None = None) -> dict:
    ap = ScriptParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="nngp-vs-sgd")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)

    import ray

    from petridish.lab.executors.ray import RayExecutor

    rows = {}
    rows["local, 1 worker"], ref = _timed_sweep(args.experiment, "local", 1)
    rows["local, 2 workers"], cells2 = _timed_sweep(args.experiment, "local", 2)
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray_start = time.perf_counter() - t0
    try:
        rows["ray local, 2 CPUs"], cells3 = _timed_sweep(args.experiment, RayExecutor(), 1)
    finally:
        ray.shutdown()
    # every executor runs each cell on one thread: the same float reductions, the same bits
    same = ([a.key for a in ref] == [b.key for b in cells3]
            and [a.metrics for a in ref] == [a.metrics for a in cells2] == [b.metrics for b in cells3])
    base = rows["local, 1 worker"]
    out = {"experiment": args.experiment, "cells": len(ref), "identical_cells": same,
           "max_rel_diff_to_local_1": _max_rel_diff(ref, cells3),
           "ray_startup_s": ray_start,
           "executors": {k: {"wall_s": v, "ratio_to_local": v / base} for k, v in rows.items()}}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.experiment} --quick: {len(ref)} cells; bitwise identical on all three executors: {same}; "
              f"max relative difference to local-1: {out['max_rel_diff_to_local_1']:.1e}")
        print(f"{'executor':<20} {'wall (s)':>9} {'÷ local':>8}")
        for k, v in rows.items():
            print(f"{k:<20} {v:9.2f} {v / base:8.2f}")
        print(f"(Ray start-up, not counted: {ray_start:.1f} s)")
    return out


if __name__ == "__main__":
    main()
