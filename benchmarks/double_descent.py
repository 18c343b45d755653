"""The flagship double-descent sweep, one model at a time (the MNIST-1D notebook) vs petridish.

    python benchmarks/double_descent.py [--epochs 10] [--seeds 3] [--widths 19] [--json]
    python benchmarks/double_descent.py --flagship [--json]

Both ways train the same cells: the notebook's widths of a 40→w→w→10 ReLU MLP, label noise
0 and 0.15, ``--seeds`` seeds, SGD lr 0.01 momentum 0.9 batch 100 on 4,000 MNIST-1D examples,
then measure train and test error (12,000 test examples). The notebook way is its own loop:
nn.Sequential, DataLoader(shuffle=True), torch.optim.SGD, CrossEntropyLoss, one model after
another. The petridish way is ``run_sweep("double-descent", ...)`` (stacked-weights ensembles,
in process, fresh in-memory store). Same torch thread count for both. Wall-clock times on a
shared machine are noisy: run it 2-3 times and keep the best.

Share of peak: the useful matmul FLOPs of the sweep (training: 6·batch·Σ fan_in·fan_out per
model per step; evaluation: 2·n·Σ fan_in·fan_out on the train and test sets; padding and
everything else uncounted) divided by the wall time, as a fraction of the float32 matmul peak
of all the machine's cores (square matmuls, ``benchmarks/ensemble.py``'s measure, with torch
using every core), since petridish runs one worker process per core.

The 10-epoch comparison is dominated, on the petridish side, by fixed costs: starting one
worker process per core (each imports torch: 2-3 s) and building the data. ``--flagship``
measures the flagship itself, end to end: ``run_sweep("double-descent")`` with the experiment's
own defaults (what ``make demo`` and ``petridish run double-descent`` train: 17 widths x 2 noise
levels x 5 seeds, 500 epochs, train and test error at 25 points), worker start-up, data and
every evaluation included, against the same peak. It takes minutes (4 on the AVX-512 CI machine),
and has no one-at-a-time counterpart (that would take about half an hour).
"""
from __future__ import annotations

import json
import os
import sys
import time

from petridish.cli.script_args import ScriptParser, number_arg


def _notebook_model(width: int):
    from torch import nn
    return nn.Sequential(nn.Linear(40, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))


def _notebook_fit(model, x, y, x_test, y_test, epochs: int) -> tuple[float, float]:
    """The notebook's ``fit_model``: returns (train error, test error) as fractions."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(TensorDataset(x, y), batch_size=100, shuffle=True)
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    with torch.no_grad():
        train_err = float((model(x).argmax(1) != y).float().mean())
        test_err = float((model(x_test).argmax(1) != y_test).float().mean())
    return train_err, test_err


def _one_at_a_time(widths, noises, seeds, epochs) -> tuple[float, int]:
    import torch
    from petridish.experiments.double_descent.mnist1d_task import noisy_mnist1d
    t0 = time.perf_counter()
    n = 0
    for noise in noises:
        for seed in seeds:
            x, y, x_test, y_test = noisy_mnist1d(n_train=4000, n_test=12000, noise=noise, seed=seed)
            for w in widths:
                torch.manual_seed(seed)
                _notebook_fit(_notebook_model(w), x, y, x_test, y_test, epochs)
                n += 1
    return time.perf_counter() - t0, n


def sweep_flops(widths, n_models_per_width: int, epochs: int, n_train: int = 4000, n_test: int = 12000,
                batch: int = 100, evaluations: int = 1) -> float:
    """Useful matmul FLOPs of training and ``evaluations`` evaluations (train and test sets) of
    every 40->w->w->10 model."""
    steps = epochs * -(-n_train // batch)
    macs = [40 * w + w * w + 10 * w for w in widths]                   # multiply-adds per example
    return n_models_per_width * sum(6 * batch * steps * m + 2 * evaluations * (n_train + n_test) * m
                                    for m in macs)


def _petridish(widths, noises, seeds, epochs) -> tuple[float, int]:
    from petridish.lab.sweep import run_sweep
    t0 = time.perf_counter()
    res = run_sweep("double-descent", overrides={"arm": "mlp", "width": widths, "noise": noises,
                                                 "epochs": epochs, "n_train": 4000, "n_test": 12000,
                                                 "curve_points": 1},   # one final evaluation, as the notebook
                    seeds=seeds, store="memory", progress=False,
                    workers=None)       # as `petridish run`: one worker process per core, one thread each
    bad = [c for c in res.cells if c.status != "done"]
    if bad:
        raise RuntimeError(f"{len(bad)} petridish cells did not finish: {bad[0].error}")
    return time.perf_counter() - t0, len(res.cells)


def flagship() -> dict:
    """The default double-descent sweep end to end; returns its wall time and useful FLOPs."""
    from petridish.lab.sweep import resolve, run_sweep
    from petridish.train.config import eval_points
    exp = resolve("double-descent")
    d = {p.name: p.default for p in exp.params}
    t0 = time.perf_counter()
    res = run_sweep(exp.name, store="memory", progress=False, workers=None)   # as `petridish run`
    wall = time.perf_counter() - t0
    bad = [c for c in res.cells if c.status != "done"]
    if bad:
        raise RuntimeError(f"{len(bad)} petridish cells did not finish: {bad[0].error}")
    steps = d["epochs"] * -(-d["n_train"] // d["batch_size"])
    evaluations = len(eval_points(steps, max(1, steps // d["curve_points"])))
    flops = sweep_flops(d["width"], len(d["noise"]) * exp.seeds, d["epochs"], d["n_train"], d["n_test"],
                        d["batch_size"], evaluations)
    return {"cells": len(res.cells), "widths": d["width"], "seeds": exp.seeds, "epochs": d["epochs"],
            "evaluations": evaluations, "wall_s": wall, "useful_tflop": flops / 1e12}


def _peak(threads: int) -> float:
    """Float32 matmul peak of every core (``benchmarks/ensemble.py``'s measure)."""
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from ensemble import matmul_peak_gflops
    peak = matmul_peak_gflops()
    torch.set_num_threads(threads)
    return peak


def main_flagship(as_json: bool) -> dict:
    import torch
    threads = torch.get_num_threads()
    before = _peak(threads)
    f = flagship()
    peak = max(before, _peak(threads))       # the clock drifts over minutes: the higher (stricter) one
    gflops = f["useful_tflop"] * 1e3 / f["wall_s"]
    out = {"benchmark": "double_descent_flagship", **f, "load_avg_1min": os.getloadavg()[0],
           "matmul_peak_gflops": peak, "gflops": gflops, "fraction_of_peak": gflops / peak}
    if as_json:
        print(json.dumps(out))
    else:
        print(f"double-descent flagship end to end (the experiment's defaults: {f['cells']} cells, "
              f"{len(f['widths'])} widths x 2 noise x {f['seeds']} seeds, {f['epochs']} epochs, "
              f"{f['evaluations']} evaluations), load {out['load_avg_1min']:.1f}")
        print(f"petridish {f['wall_s']:.1f} s, {gflops:.1f} GFLOP/s = {100 * out['fraction_of_peak']:.0f}% of the "
              f"float32 matmul peak {peak:.1f} GFLOP/s ({os.cpu_count()} cores; {f['useful_tflop']:.2f} TFLOP useful)")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = ScriptParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=number_arg(int, low=1), default=10, help="epochs per model (the default sweep has 500)")
    ap.add_argument("--seeds", type=number_arg(int, low=1), default=3)
    ap.add_argument("--widths", type=number_arg(int, low=1), default=19, help="use the first N of the 19 notebook widths")
    ap.add_argument("--threads", type=number_arg(int, low=1), default=None, help="torch threads (default: torch's)")
    ap.add_argument("--flagship", action="store_true",
                    help="time the default double-descent sweep end to end instead (minutes)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    if args.flagship:
        return main_flagship(args.json)

    import torch
    from petridish.experiments.double_descent.sizes import WIDTHS
    if args.threads:
        torch.set_num_threads(args.threads)
    widths, noises, seeds = WIDTHS[:args.widths], [0.0, 0.15], list(range(args.seeds))
    t_pd, cells = _petridish(widths, noises, seeds, args.epochs)
    t_nb, models = _one_at_a_time(widths, noises, seeds, args.epochs)
    peak = _peak(torch.get_num_threads())                             # the peak of every core
    flops = sweep_flops(widths, len(noises) * len(seeds), args.epochs)
    out = {"benchmark": "double_descent", "epochs": args.epochs, "widths": widths, "noises": noises,
           "seeds": len(seeds), "models": models, "threads": torch.get_num_threads(),
           "load_avg_1min": os.getloadavg()[0],
           "one_at_a_time_s": t_nb, "petridish_s": t_pd, "speedup": t_nb / t_pd,
           "default_500_epochs_estimate_s": t_pd * 500 / args.epochs,
           "matmul_peak_gflops": peak, "useful_tflop": flops / 1e12,
           "petridish_fraction_of_peak": flops / t_pd / 1e9 / peak,
           "one_at_a_time_fraction_of_peak": flops / t_nb / 1e9 / peak}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"double-descent flagship, {models} models ({len(widths)} widths x 2 noise x {len(seeds)} seeds), "
              f"{args.epochs} epochs, {out['threads']} threads, load {out['load_avg_1min']:.1f}")
        print(f"{'way':<28} {'wall (s)':>9}")
        print(f"{'one model at a time':<28} {t_nb:9.1f}")
        print(f"{'petridish (ensembles)':<28} {t_pd:9.1f}")
        print(f"speed-up {out['speedup']:.1f}x; the default sweep (500 epochs) would take about "
              f"{out['default_500_epochs_estimate_s'] / 60:.1f} min of petridish training at this pace")
        print(f"petridish {flops / t_pd / 1e9:.1f} GFLOP/s = {100 * out['petridish_fraction_of_peak']:.0f}% of the "
              f"float32 matmul peak {peak:.1f} GFLOP/s ({os.cpu_count()} cores; {flops / 1e12:.2f} TFLOP useful); "
              f"one at a time {100 * out['one_at_a_time_fraction_of_peak']:.0f}%")
    return out


if __name__ == "__main__":
    main()
