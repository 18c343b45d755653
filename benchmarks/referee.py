"""Throughput and latency of the CTF referee on a live uvicorn server on loopback.

    python benchmarks/referee.py [--submissions 40] [--page-clients 50] [--client-processes 4]
                                 [--page-seconds 10] [--profile] [--json]

Starts `petridish ctf serve --demo` (the mnist1d task) in a temporary folder, registers
competitors, submits N valid ONNX models (petridish MLPs through petridish.ctf.export_onnx,
exported before the clock starts) and times until every one is scored: submissions scored per
minute. Then 50 keep-alive connections, driven by several client processes (a lean raw
HTTP/1.1 client, so that the server rather than a Python HTTP library is measured), fetch the
public leaderboard page (HTML) for a fixed time: p50 and p99 latency, requests per second and
errors; the same board from the JSON API beside it. The board is rendered once per change and
served from memory (petridish.ctf.board). `--profile` samples the server with py-spy during the
HTML run. Loopback on a shared machine, server and clients on the same cores: the numbers are noisy.
"""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import json
import multiprocessing as mp
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

from petridish.cli.script_args import ScriptParser, number_arg

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
               PETRIDISH_CTF_REGISTRATIONS_PER_HOUR="1000",
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


def _load(url: str, path: str, clients: int, procs: int, max_s: float) -> dict:
    """`clients` keep-alive connections, spread over `procs` client processes, GET `path` in a
    loop for max_s seconds; latencies of every 200 response, and the errors."""
    port = int(url.rsplit(":", 1)[1])
    shares = [clients // procs + (i < clients % procs) for i in range(procs)]
    ctx = mp.get_context("fork")
    start_at = time.time() + 1.0                    # every process starts together
    with ctx.Pool(procs) as pool:
        parts = pool.starmap(_client_process, [(port, path, n, start_at, max_s) for n in shares if n])
    latencies = np.concatenate([p[0] for p in parts]) if parts else np.array([])
    errors, wall = sum(p[1] for p in parts), max(p[2] for p in parts)
    lat = latencies if latencies.size else np.array([np.nan])
    return {"path": path, "clients": clients, "client_processes": procs, "requests": int(latencies.size),
            "errors": int(errors), "wall_s": wall, "per_s": latencies.size / wall,
            "p50_s": float(np.percentile(lat, 50)), "p99_s": float(np.percentile(lat, 99))}


def _client_process(port: int, path: str, n: int, start_at: float, max_s: float):
    return asyncio.run(_clients(port, path, n, start_at, max_s))


async def _clients(port: int, path: str, n: int, start_at: float, max_s: float):
    """n raw HTTP/1.1 keep-alive connections (a lean client: the server, not the client, is
    measured); returns (latencies, errors, wall seconds)."""
    await asyncio.sleep(max(0.0, start_at - time.time()))
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n".encode()
    latencies, errors = [], 0
    t0 = time.perf_counter()
    stop_at = t0 + max_s

    async def one():
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
                await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 200"):
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
            errors += 1
        finally:
            writer.close()
    await asyncio.gather(*(one() for _ in range(n)))
    return np.array(latencies), errors, time.perf_counter() - t0


def _profile(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    """py-spy sampling the server (if installed) while the load runs; collapsed stacks to `out`."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        return None
    return subprocess.Popen([str(exe), "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _top_frames(collapsed: Path, k: int = 12) -> list[tuple[str, float]]:
    """Where the server's samples end: the share of each package (the leaf frame's top-level
    module: h11, uvicorn, starlette, fastapi, asyncio, petridish, ...), largest first, then the
    k leaf functions with the most samples."""
    packages, leaves, total = {}, {}, 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        leaf, n = stack.rsplit(";", 1)[-1], int(n)
        total += n
        where = leaf.rpartition("(")[2]
        package = "<builtin/idle>" if "/" not in where else where.split("/", 1)[0]
        packages[package] = packages.get(package, 0) + n
        leaves[leaf] = leaves.get(leaf, 0) + n
    top = sorted(packages.items(), key=lambda kv: -kv[1]) + [("--", 0)] + \
        sorted(leaves.items(), key=lambda kv: -kv[1])[:k]
    return [(f, c / max(total, 1)) for f, c in top]


def main(argv: list[str] | None = None) -> dict:
    ap = ScriptParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submissions", type=number_arg(int, low=1), default=40, help="ONNX models to submit and score")
    ap.add_argument("--submit-clients", type=number_arg(int, low=1), default=4, help="competitors submitting at once")
    ap.add_argument("--scoring-workers", type=number_arg(int, low=1), default=2, help="the referee's scoring processes")
    ap.add_argument("--page-clients", type=number_arg(int, low=1), default=50, help="concurrent leaderboard connections")
    ap.add_argument("--client-processes", type=number_arg(int, low=1), default=4, help="processes driving those connections")
    ap.add_argument("--page-seconds", type=number_arg(float, low=0, low_open=True), default=10.0, help="how long each page run lasts")
    ap.add_argument("--profile", action="store_true", help="sample the server with py-spy during the "
                    "HTML run and print the frames where its time goes")
    ap.add_argument("--timeout", type=number_arg(float, low=0, low_open=True), default=600.0, help="give up scoring after this many s")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    for name in ("submissions", "submit_clients", "scoring_workers", "page_clients", "client_processes"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be an int >= 1. Got {getattr(args, name)}.")

    with tempfile.TemporaryDirectory(prefix="petridish-referee-bench-") as tmp:
        tmp = Path(tmp)
        models = _models(args.submissions, tmp)
        proc, url = _start_server(tmp / "ctf", workers=args.scoring_workers,
                                  daily_limit=args.submissions, timeout=180)
        try:
            scoring = _submit_all(url, models, min(args.submit_clients, args.submissions), args.timeout)
            spy = _profile(proc.pid, args.page_seconds, tmp / "html.stacks") if args.profile else None
            html = _load(url, f"/tasks/{TASK}/leaderboard", args.page_clients, args.client_processes, args.page_seconds)
            profile = _top_frames(tmp / "html.stacks") if spy is not None and spy.wait(60) == 0 else None
            api = _load(url, f"/api/tasks/{TASK}/leaderboard", args.page_clients, args.client_processes,
                        args.page_seconds)
        finally:
            _stop(proc)
    out = {"task": TASK, "scoring_workers": args.scoring_workers, "load_avg_1m": os.getloadavg()[0],
           "cpus": os.cpu_count(), "scoring": scoring, "leaderboard_html": html, "leaderboard_json": api,
           "html_over_json_p50": html["p50_s"] / api["p50_s"], "server_profile_html": profile}
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
              f"{'req/s':>7} {'errors':>7}   ({args.client_processes} client processes, "
              f"{args.page_seconds:g} s each, {out['cpus']} CPUs shared by server and clients)")
        for label, r in (("HTML page", html), ("JSON API", api)):
            print(f"{label:<28} {r['p50_s'] * 1e3:9.1f} {r['p99_s'] * 1e3:9.1f} {r['per_s']:7.0f} {r['errors']:7d}")
        print(f"submissions scored per minute: {s['scored_per_minute']:.0f}")
        print(f"HTML / JSON p50: {out['html_over_json_p50']:.2f}")
        if profile:
            print("server time during the HTML run (py-spy: share of samples by package, then by function):")
            for frame, share in profile:
                print(f"  {share * 100:5.1f}%  {frame[:110]}")
    return out


if __name__ == "__main__":
    main()
