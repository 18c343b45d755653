"""Throughput and latency of the CTF referee on a live uvicorn server on loopback.

    python benchmarks/referee.py [--submissions 40] [--page-clients 50] [--json]

Starts `petridish ctf serve --demo` (the mnist1d task) in a temporary folder, registers
competitors, submits N valid ONNX models (petridish MLPs through petridish.ctf.export_onnx,
exported before the clock starts) and times until every one is scored: submissions scored per
minute. Then 50 concurrent clients fetch the public leaderboard page (HTML), bounded in count
and time, for its p50 and p99 latency; the same board from the JSON API is measured beside it,
and the report gives the ratio HTML / JSON. Loopback on a shared machine: the numbers are noisy.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TASK = "mnist1d"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(data_dir: Path, *, workers: int, daily_limit: int, timeout: float):
    """(process, url, admin secret): `petridish ctf serve --demo` in its own process group."""
    import httpx
    port, secret = _free_port(), secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(PETRIDISH_CTF_ADMIN_SECRET=secret, PETRIDISH_CTF_DAILY_LIMIT=str(daily_limit),
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    log = open(data_dir.parent / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "petridish.cli.main", "ctf", "serve", "--demo",
                             "--port", str(port), "--data-dir", str(data_dir), "--scoring-workers",
                             str(workers), "--log-level", "warning"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the referee exited with {proc.returncode}; see {log.name}")
        try:
            if httpx.get(f"{url}/api/tasks/{TASK}", timeout=2, trust_env=False).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    _stop(proc)
    raise RuntimeError(f"the referee did not start within {timeout:g} s")


def _stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _models(n: int, folder: Path) -> list[bytes]:
    """n distinct mnist1d MLPs (40 -> 32 -> 32 -> 10, seeds 0..n-1) as ONNX bytes."""
    import torch

    from petridish.ctf import export_onnx
    from petridish.models import MLP
    out = []
    for i in range(n):
        torch.manual_seed(i)
        out.append(export_onnx(MLP(40, 32, 2, 10), folder / f"m{i}.onnx", input_dim=40).read_bytes())
    return out


def _submit_all(url: str, models: list[bytes], clients: int, timeout: float) -> dict:
    """Submit from `clients` competitors at once; time until every submission is finished."""
    import httpx

    def register(i):
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as h:
            r = h.post("/api/competitors", json={"name": f"bench{i:02d}-{secrets.token_hex(3)}"})
            r.raise_for_status()
            return {"Authorization": "Bearer " + r.json()["token"]}

    def submit(auth, mine):
        lat = []
        with httpx.Client(base_url=url, timeout=120, trust_env=False) as h:
            for data in mine:
                t = time.perf_counter()
                r = h.post(f"/api/tasks/{TASK}/submissions", headers=auth, files={"file": ("m.onnx", data)})
                lat.append(time.perf_counter() - t)
                r.raise_for_status()
        return lat

    auths = [register(i) for i in range(clients)]
    shares = [models[i::clients] for i in range(clients)]
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        latencies = [x for part in pool.map(submit, auths, shares) for x in part]
    t_sub = time.perf_counter() - t0
    statuses = _wait_finished(url, auths, len(models), t0 + timeout)
    elapsed = time.perf_counter() - t0
    return {"n": len(models), "clients": clients, "submit_s": t_sub, "all_finished_s": elapsed,
            "scored": statuses.count("scored"), "failed": statuses.count("failed"),
            "scored_per_minute": 60 * statuses.count("scored") / elapsed,
            "submit_latency_p50_s": float(np.median(latencies)), "submit_latency_max_s": max(latencies)}


def _wait_finished(url: str, auths: list[dict], n: int, deadline: float) -> list[str]:
    import httpx
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as h:
        while True:
            statuses = [s["status"] for a in auths for s in h.get("/api/submissions", headers=a).json()]
            if len(statuses) == n and all(s in ("scored", "failed") for s in statuses):
                return statuses
            if time.perf_counter() > deadline:
                raise RuntimeError(f"only {sum(s in ('scored', 'failed') for s in statuses)} of {n} "
                                   "submissions finished in time")
            time.sleep(0.05)


async def _hammer(url: str, path: str, clients: int, max_requests: int, max_s: float) -> dict:
    """`clients` concurrent loops GET `path` until max_requests are done or max_s has passed."""
    import httpx
    latencies, errors, issued = [], 0, 0
    stop_at = time.perf_counter() + max_s

    async def loop(h):
        nonlocal errors, issued
        while issued < max_requests and time.perf_counter() < stop_at:
            issued += 1
            t = time.perf_counter()
            try:
                r = await h.get(path)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - t)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, trust_env=False) as h:
        await asyncio.gather(*(loop(h) for _ in range(clients)))
    wall = time.perf_counter() - t0
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"path": path, "clients": clients, "requests": len(latencies), "errors": errors,
            "wall_s": wall, "per_s": len(latencies) / wall,
            "p50_s": float(np.percentile(lat, 50)), "p99_s": float(np.percentile(lat, 99))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submissions", type=int, default=40, help="ONNX models to submit and score")
    ap.add_argument("--submit-clients", type=int, default=4, help="competitors submitting at once")
    ap.add_argument("--scoring-workers", type=int, default=2, help="the referee's scoring processes")
    ap.add_argument("--page-clients", type=int, default=50, help="concurrent leaderboard clients")
    ap.add_argument("--page-requests", type=int, default=1000, help="at most this many page requests")
    ap.add_argument("--page-seconds", type=float, default=30.0, help="at most this long per page run")
    ap.add_argument("--timeout", type=float, default=600.0, help="give up scoring after this many s")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    for name in ("submissions", "submit_clients", "scoring_workers", "page_clients", "page_requests"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be an int >= 1. Got {getattr(args, name)}.")

    with tempfile.TemporaryDirectory(prefix="petridish-referee-bench-") as tmp:
        tmp = Path(tmp)
        models = _models(args.submissions, tmp)
        proc, url = _start_server(tmp / "ctf", workers=args.scoring_workers,
                                  daily_limit=args.submissions, timeout=180)
        try:
            scoring = _submit_all(url, models, min(args.submit_clients, args.submissions), args.timeout)
            html, api = (asyncio.run(_hammer(url, path, args.page_clients, args.page_requests, args.page_seconds))
                         for path in (f"/tasks/{TASK}/leaderboard", f"/api/tasks/{TASK}/leaderboard"))
        finally:
            _stop(proc)
    out = {"task": TASK, "scoring_workers": args.scoring_workers, "load_avg_1m": os.getloadavg()[0],
           "scoring": scoring, "leaderboard_html": html, "leaderboard_json": api,
           "html_over_json_p50": html["p50_s"] / api["p50_s"]}
    if args.json:
        print(json.dumps(out))
    else:
        s = scoring
        print(f"referee on loopback, task {TASK}, {args.scoring_workers} scoring workers "
              f"(1-min load {out['load_avg_1m']:.1f})")
        print(f"scoring: {s['scored']}/{s['n']} scored ({s['failed']} failed) in {s['all_finished_s']:.1f} s "
              f"= {s['scored_per_minute']:.0f} per minute; submit latency p50 {s['submit_latency_p50_s'] * 1e3:.0f} ms, "
              f"max {s['submit_latency_max_s'] * 1e3:.0f} ms ({s['clients']} clients)")
        print(f"{'leaderboard, ' + str(args.page_clients) + ' clients':<28} {'p50 (ms)':>9} {'p99 (ms)':>9} "
              f"{'req/s':>7} {'errors':>7}")
        for label, r in (("HTML page", html), ("JSON API", api)):
            print(f"{label:<28} {r['p50_s'] * 1e3:9.1f} {r['p99_s'] * 1e3:9.1f} {r['per_s']:7.0f} {r['errors']:7d}")
        print(f"HTML / JSON p50: {out['html_over_json_p50']:.2f}")
    return out


if __name__ == "__main__":
    main()
