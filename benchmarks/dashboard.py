"""The dashboard (`petridish ui`) over a big store: 10,000 runs and 1,000,000 cells.

    python benchmarks/dashboard.py [--runs 10000] [--requests 300] [--store DIR] [--json]

Fills a SQLite store (bulk inserts, one transaction; reused when DIR already holds one of this
size) with ``--runs`` runs of 100 cells each (10 widths x 2 noise levels x 5 seeds) spread over
5 experiments and a year: 1% still running (half their cells stored), 4% interrupted, the rest
finished; about 2% of cells failed and 1% diverged. Then starts the real server (`petridish ui
--store DIR` in a subprocess, uvicorn) and times requests from an httpx client on the same
machine over TCP, each route ``--requests`` times after 20 warm-up requests, random run ids:

  runs list          ``/``, ``/?page=P`` (random page, 50 runs each), ``/?experiment=E&status=finished``
  run page           ``/runs/ID`` (table with CIs, findings, config, provenance) and its progress JSON
  figure             ``/runs/ID/figure.png`` (matplotlib, first render of each run; then cached)
  comparison page    ``/compare?runs=A,B`` and the JSON its charts fetch, ``/api/compare?runs=A,B``

The bench's experiments are defined in this file (``EXPERIMENT_0`` .. ``EXPERIMENT_4``) and
recorded as each run's source, so the server finds them as it finds any user experiment.
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from petridish.lab import Experiment, Param
from petridish.lab.claims import Claim
from petridish.lab.experiment import Analysis
from petridish.cli.script_args import ScriptParser, number_arg

WIDTHS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
NOISES = [0.0, 0.1]
SEEDS = [0, 1, 2, 3, 4]
N_EXPERIMENTS = 5
HERE = Path(__file__).resolve()


def _error(width: int, noise: float, lr: float, seed: int) -> float:
    """A double-descent-looking test error with seed noise (deterministic)."""
    peak = math.exp(-((math.log2(width) - 5) ** 2) / 2)
    return min(1.0, 0.1 + noise + 0.3 * peak * (1 + noise) + 0.02 * ((seed * 7 + width) % 5) + lr)


def _run(p, seed):
    e = _error(p["width"], p["noise"], p["lr"], seed)
    return {"test_error": e, "train_error": e / 3}


def _analyze(cells):
    ok = [c.metrics["test_error"] for c in cells if c.status == "done" and c.params["width"] == 32]
    side = [c.metrics["test_error"] for c in cells if c.status == "done" and c.params["width"] == 1024]
    if not ok or not side:
        return Analysis(findings=["too few cells"])
    gap = sum(ok) / len(ok) - sum(side) / len(side)
    return Analysis(claims=[Claim("test error peaks near w = 32", gap, (gap * 0.8, gap * 1.2),
                                  test="bench", effect="peak minus w = 1024")])


def _experiment(i: int) -> Experiment:
    return Experiment(name=f"dash-bench-{i}", question="Does test error peak at the threshold?",
                      reference="benchmarks/dashboard.py",
                      params=(Param("width", int, default=WIDTHS), Param("noise", float, default=NOISES),
                              Param("lr", float, default=0.01)),
                      run=_run, seeds=len(SEEDS), analyze=_analyze, bounds={"test_error": (0, 1)})


for _i in range(N_EXPERIMENTS):
    globals()[f"EXPERIMENT_{_i}"] = _experiment(_i)
EXPERIMENT = globals()["EXPERIMENT_0"]


# ------------------------------------------------------------------------------------------- filling

def fill(store_dir: str, n_runs: int) -> dict:
    """Bulk-insert the runs, their keys and cells (raw sqlite3 executemany, one transaction)."""
    from petridish.lab.source import source_sha256
    from petridish.lab.store import SQLStore
    st = SQLStore(store_dir)                # creates the tables and indexes
    raw = st.engine.raw_connection()
    have = raw.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    if have == n_runs:
        raw.close()
        st.close()
        return {"filled_s": 0.0, "reused": True}
    if have:
        raise SystemExit(f"{store_dir} holds {have} runs, not {n_runs}: give another --store")
    t0 = time.perf_counter()
    now = time.time()
    rng = random.Random(0)
    src = {"module": HERE.stem, "file": str(HERE), "sha256": source_sha256(HERE)}
    prov = json.dumps({"source": src, "torch": "bench", "python": sys.version.split()[0], "git_commit": None,
                       "machine": "bench", "executor": "local", "workers": 2}, sort_keys=True)
    runs, keys, cells = [], [], []
    combos = [(w, nz) for w in WIDTHS for nz in NOISES]
    for i in range(n_runs):
        rid = f"{i:012x}"
        exp = f"dash-bench-{i % N_EXPERIMENTS}"
        lr = 0.001 * (i % 50)
        u = rng.random()
        status = "running" if u < 0.01 else ("interrupted" if u < 0.05 else "finished")
        cfg = json.dumps({"lr": lr, "noise": NOISES, "width": WIDTHS}, sort_keys=True)
        runs.append((rid, exp, cfg, json.dumps(SEEDS), prov, status, now - i * 3153.6,
                     0.0 if status == "running" else 50 + rng.random() * 100, len(combos) * len(SEEDS)))
        pos = 0
        for w, nz in combos:
            for s in SEEDS:
                key = f"{rid}-{pos:03d}"
                keys.append((rid, pos, key))
                if not (status == "running" and pos >= 50):
                    v = rng.random()
                    cst = "failed" if v < 0.02 else ("diverged" if v < 0.03 else "done")
                    e = _error(w, nz, lr, s)
                    metrics = {"test_error": e, "train_error": e / 3} if cst == "done" else (
                        {"test_error": None, "diverged": True} if cst == "diverged" else {})
                    cells.append((key, exp, json.dumps({"lr": lr, "noise": nz, "width": w}, sort_keys=True), s, cst,
                                  json.dumps(metrics, sort_keys=True), "bench failure" if cst == "failed" else None,
                                  0.5, 100.0, rid))
                pos += 1
        if len(cells) >= 200_000:
            _flush(raw, runs, keys, cells)
    _flush(raw, runs, keys, cells)
    raw.commit()
    raw.close()
    st.close()
    return {"filled_s": time.perf_counter() - t0, "reused": False}


def _flush(raw, runs, keys, cells) -> None:
    raw.executemany("INSERT INTO runs (id, experiment, config, seeds, provenance, status, created, wall_time, "
                    "n_cells) VALUES (?,?,?,?,?,?,?,?,?)", runs)
    raw.executemany("INSERT INTO run_keys (run_id, pos, key) VALUES (?,?,?)", keys)
    raw.executemany("INSERT INTO cells (key, experiment, params, seed, status, metrics, error, wall_time, "
                    "peak_mem_mb, run_id) VALUES (?,?,?,?,?,?,?,?,?,?)", cells)
    runs.clear(), keys.clear(), cells.clear()


# ------------------------------------------------------------------------------------------- timing

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(store_dir: str):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = str(HERE.parents[1] / "src")
    proc = subprocess.Popen([sys.executable, "-m", "petridish.cli.main", "ui", "--store", store_dir,
                             "--port", str(port)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def percentiles(ms: list[float]) -> dict:
    s = sorted(ms)
    pick = lambda q: s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)]    # noqa: E731
    return {"p50_ms": round(pick(0.50), 1), "p99_ms": round(pick(0.99), 1), "max_ms": round(s[-1], 1), "n": len(s)}


def time_route(client, make_url, n: int, warm: int = 20) -> dict:
    for _ in range(warm):
        r = client.get(make_url())
        assert r.status_code == 200, (r.status_code, r.text[:300])
    ms = []
    for _ in range(n):
        url = make_url()
        t0 = time.perf_counter()
        r = client.get(url)
        ms.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    return percentiles(ms)


def main(argv: list[str] | None = None) -> dict:
    ap = ScriptParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=number_arg(int, low=1), default=10_000)
    ap.add_argument("--requests", type=number_arg(int, low=1), default=300)
    ap.add_argument("--store", default=None, help="store directory (kept; reused when already filled)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import httpx
    tmp = None
    if args.store is None:
        tmp = tempfile.TemporaryDirectory(prefix="petridish-dash-")
        args.store = tmp.name
    load_before = os.getloadavg()
    filled = fill(args.store, args.runs)
    proc, url = serve(args.store)
    rng = random.Random(1)
    ids = [f"{i:012x}" for i in range(args.runs)]
    pages = math.ceil(args.runs / 50)
    same_exp_pair = lambda: (lambda i: f"{ids[i]},{ids[(i + N_EXPERIMENTS) % args.runs]}")(rng.randrange(args.runs))  # noqa: E731
    try:
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as c:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if c.get("/").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("petridish ui did not start")
                time.sleep(0.2)
            n = args.requests
            routes = {
                "runs list, page 1": lambda: "/",
                "runs list, random page": lambda: f"/?page={rng.randrange(1, pages + 1)}",
                "runs list, experiment + status filter": lambda: (
                    f"/?experiment=dash-bench-{rng.randrange(N_EXPERIMENTS)}&status=finished"
                    f"&page={rng.randrange(1, 20)}"),
                "run page": lambda: f"/runs/{rng.choice(ids)}",
                "run progress JSON": lambda: f"/api/runs/{rng.choice(ids)}/progress",
                "comparison page": lambda: f"/compare?runs={same_exp_pair()}",
                "comparison JSON (its charts)": lambda: f"/api/compare?runs={same_exp_pair()}",
                "figure PNG (first render)": lambda: f"/runs/{rng.choice(ids)}/figure.png",
            }
            results = {}
            for name, make in routes.items():
                k = min(n, 60) if name.startswith("figure") else n
                results[name] = time_route(c, make, k, warm=3 if name.startswith("figure") else 20)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    db = os.path.join(args.store, "petridish.db")
    import sqlite3
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        n_cells = con.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    out = {"runs": args.runs, "cells": n_cells, "store_mb": round(os.path.getsize(db) / 2**20),
           "fill": filled, "server": "petridish ui (uvicorn, subprocess); httpx client over TCP, same machine",
           "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
           "cpus": os.cpu_count(), "routes": results}
    if tmp is not None:
        tmp.cleanup()
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"{args.runs:,} runs, {n_cells:,} cells in a {out['store_mb']} MB SQLite store "
              f"(filled in {filled['filled_s']:.1f} s{' (reused)' if filled['reused'] else ''}); "
              f"load average before {out['load_before']}, after {out['load_after']} on {out['cpus']} CPUs")
        print(f"server: {out['server']}")
        for name, r in results.items():
            print(f"  {name:<40} p50 {r['p50_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms   max {r['max_ms']:7.1f} ms  (n={r['n']})")
    return out


if __name__ == "__main__":
    main()
