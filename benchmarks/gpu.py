"""The GPU path beside the CPU: ensembles and kernels, one prepared script of a few minutes.

    pip install --no-deps -e .          # on top of the machine's own (CUDA) torch; no network needed
    python benchmarks/gpu.py [--json] [--out results.json] [--quick]

Every workload runs on the CPU and on CUDA in the same process, through the public API
(``petridish.device.use_device``), and prints its time on each side and their ratio:

* ensemble: ``benchmarks/ensemble.py``'s workload (32 MLPs 40->64->64->10, 300 SGD steps at
  batch 128 on MNIST-1D), then a GPU-sized one (256 MLPs of width 256). GFLOP/s count the
  matmul FLOPs of forward and backward (6·batch·Σ fan_in·fan_out per model per step), against
  a float32 matmul peak measured on each device (square matmuls; TF32 off, torch's default).
  The largest relative parameter difference between the CPU and CUDA ensembles (same init,
  same batches) shows that they train the same models up to float32 rounding.
* kernels: the depth-3 ReLU NNGP+NTK of n MNIST-1D inputs (float64, ``mlp_kernels``),
  ``ntk_predict`` at t = infinity and one finite t, and the empirical NTK of a width-256 MLP on
  128 points (float32); each with its largest relative CPU-vs-CUDA difference.

Times are the best of ``--repeat`` runs after a warm-up (CUDA context, cuBLAS handles and
kernel caches are created by the warm-up, not timed). Without CUDA it says so and exits 2.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch

from petridish.cli.script_args import ScriptParser, number_arg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # benchmarks/ensemble.py's helpers


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _best(fn, repeat: int):
    fn()                                                           # warm-up
    best, out = float("inf"), None
    for _ in range(repeat):
        _sync()
        t0 = time.perf_counter()
        out = fn()
        _sync()
        best = min(best, time.perf_counter() - t0)
    return best, out


def matmul_peak(device: str, n: int, repeat: int = 5) -> float:
    """Best float32 GFLOP/s of an (n, n) @ (n, n) matmul on ``device``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t, _ = _best(lambda: a @ b, repeat)
    return 2 * n ** 3 / t / 1e9


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def ensemble_side_by_side(x, y, models: int, width: int, steps: int, batch: int, repeat: int,
                          peaks: dict[str, float]) -> dict:
    from ensemble import flops_per_model_step
    from petridish.device import use_device
    from petridish.train import train_ensemble
    sizes = [x.shape[1], width, width, 10]
    kw = dict(seeds=list(range(models)), lr=0.1, batch_size=batch, steps=steps,
              model_kwargs={"width": width, "depth": 2, "d_out": 10})
    out: dict = {"models": models, "sizes": sizes, "steps": steps, "batch": batch}
    res = {}
    for dev in ("cpu", "cuda"):
        with use_device(dev):
            t, res[dev] = _best(lambda: train_ensemble("mlp", x, y, **kw), repeat)
        gflops = flops_per_model_step(sizes, batch) * models * steps / t / 1e9
        out[dev] = {"s": t, "gflops": gflops, "fraction_of_peak": gflops / peaks[dev], "path": res[dev].path}
    out["speedup"] = out["cpu"]["s"] / out["cuda"]["s"]
    out["max_rel_param_diff"] = max(_rel(res["cuda"].params[n], p) for n, p in res["cpu"].params.items())
    return out


def kernels_side_by_side(x: torch.Tensor, n: int, repeat: int) -> dict:
    from petridish.device import use_device
    from petridish.kernels import NTKMLP, empirical_ntk, mlp_kernels, ntk_predict
    xs, xt = x[:n].double(), x[n:n + n // 4].double()                # train (n, 40), test (n/4, 40)
    y = torch.nn.functional.one_hot(torch.arange(n) % 10, 10).double()
    kxx, kzx = mlp_kernels(xs, depth=3, b_std=0.1).ntk, mlp_kernels(xt, xs, depth=3, b_std=0.1).ntk
    model, pts = NTKMLP(x.shape[1], 256, 3, 10, seed=0), x[:128].float()     # Jacobians ~0.7 GB
    jobs = {
        "mlp_kernels": lambda: mlp_kernels(xs, depth=3, b_std=0.1).ntk,
        "ntk_predict": lambda: ntk_predict(kxx, kzx, y, t=[10.0, None]).mean,
        "empirical_ntk": lambda: empirical_ntk(model, pts),
    }
    out: dict = {"n": n}
    for name, fn in jobs.items():
        row, got = {}, {}
        for dev in ("cpu", "cuda"):
            with use_device(dev):
                row[dev], got[dev] = _best(fn, repeat)
        row["max_rel_diff"] = _rel(got["cuda"], got["cpu"])
        row["speedup"] = row["cpu"] / row["cuda"]
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = ScriptParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller workloads (under a minute)")
    ap.add_argument("--repeat", type=number_arg(int, low=1), default=2)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--out", default=None, help="also write the JSON document to this file")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"error: this torch ({torch.__version__}) sees no CUDA device; run this script on a GPU machine.",
              file=sys.stderr)
        raise SystemExit(2)
    from petridish.data import mnist1d
    ds = mnist1d()
    x, y = ds.x_train, ds.y_train
    peaks = {"cpu": matmul_peak("cpu", 1536, 3), "cuda": matmul_peak("cuda", 8192)}
    steps = 100 if args.quick else 300
    out = {
        "machine": {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0),
                    "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "cpu_threads": torch.get_num_threads(), "load_avg_1min": os.getloadavg()[0]},
        "matmul_peak_gflops": peaks,
        "ensemble": [ensemble_side_by_side(x, y, 32, 64, steps, 128, args.repeat, peaks),
                     ensemble_side_by_side(x, y, 64 if args.quick else 256, 256, steps, 128, args.repeat, peaks)],
        "kernels": kernels_side_by_side(x, 1000 if args.quick else 3000, args.repeat),
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    if args.json:
        print(json.dumps(out))
        return out
    m = out["machine"]
    print(f"{m['gpu']} (CUDA {m['cuda']}, torch {m['torch']}) beside {m['cpu_count']} CPUs "
          f"({m['cpu_threads']} torch threads, load {m['load_avg_1min']:.1f})")
    print(f"float32 matmul peak: cpu {peaks['cpu']:.0f} GFLOP/s, cuda {peaks['cuda']:.0f} GFLOP/s")
    print(f"{'ensemble':<34} {'cpu s':>8} {'cuda s':>8} {'speed-up':>9} {'cpu %pk':>8} {'cuda %pk':>9} {'max rel':>8}")
    for e in out["ensemble"]:
        label = f"{e['models']} MLPs {'->'.join(map(str, e['sizes']))}"
        print(f"{label:<34} {e['cpu']['s']:8.2f} {e['cuda']['s']:8.2f} {e['speedup']:8.1f}x "
              f"{100 * e['cpu']['fraction_of_peak']:7.0f}% {100 * e['cuda']['fraction_of_peak']:8.1f}% "
              f"{e['max_rel_param_diff']:8.1e}")
    kr = out["kernels"]
    print(f"{'kernels (n = ' + str(kr['n']) + ')':<34} {'cpu s':>8} {'cuda s':>8} {'speed-up':>9} {'max rel':>8}")
    for name in ("mlp_kernels", "ntk_predict", "empirical_ntk"):
        r = kr[name]
        print(f"{name:<34} {r['cpu']:8.2f} {r['cuda']:8.2f} {r['speedup']:8.1f}x {r['max_rel_diff']:8.1e}")
    return out


if __name__ == "__main__":
    main()
