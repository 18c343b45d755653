"""Hessian eigenvalues and loss surfaces of an MNIST-1D MLP: petridish against scipy's ARPACK,
a PyHessian-style power iteration, and a per-point loop.

    python benchmarks/hessian.py [--n 1000] [--k 5] [--repeat 3] [--resolution 51] [--json]

* eigenvalues: the top-``k`` Hessian eigenvalues of the mean cross-entropy of a 40→256→256→10
  ReLU MLP (78,858 parameters; seed 0, then ``--train-steps`` full-batch Adam steps so the
  spectrum is a trained one) on the first ``n`` MNIST-1D training examples. The reference is
  ARPACK (``scipy.sparse.linalg.eigsh``, tol 1e-9) on float64 torch.func HVPs. Timed, side by side
  on float32 HVPs, interleaved over ``--repeat`` rounds:
  - ``petridish``: ``top_eigenvalues`` with its default settings (single-vector Lanczos, checked every
    step, stopping when each eigenvalue's error estimate min(r, r²/gap) ≤ 1e-5·λ_max, on
    ``hvp_operator(cache_graph=True)``: reverse-over-reverse products on one kept autograd graph);
  - ``petridish_jvp``: the same Lanczos on the forward-over-reverse torch.func HVPs that scipy gets
    (the algorithm alone); ``petridish_block5``: block Lanczos, k products per step batched by vmap;
  - ``scipy``: ``scipy.sparse.linalg.eigsh`` at tol 1e-6 (seeded start vector) on the torch.func
    HVPs (``hvp_operator``), the issue's baseline; ``scipy_cached``: the same on the kept-graph HVPs
    that petridish's default uses (the engine alone);
  - PyHessian's algorithm: power iteration with deflation against the eigenvectors found so
    far, stopping when the relative change of the Rayleigh quotient is < 1e-3 (its default),
    at most 100 iterations per eigenvalue.
  Error: max over i of |λᵢ − λᵢ_ref| / |λᵢ_ref|, eigenvalues taken in the order RETURNED
  (PyHessian's may come out of order; ``in_order`` says whether they are descending).
* surface: a ``resolution``² filter-normalized 2D loss surface (span ±1) of the same model on
  the same examples, ``loss_surface`` (vmapped, chunks of ``--chunk`` points) against the same
  points evaluated one by one; both times and the largest difference. Again for a toy model
  (40→32→32→10 on 100 examples), where a forward pass is too small to keep the CPU busy and
  batching the points pays; on the big model one forward already runs at the matmul's speed.

The machine may be shared: the load average is printed, and ratios to scipy on the same run
are the comparable numbers. Each time is the best over the rounds.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from petridish.cli.script_args import ScriptParser, number_arg


def power_iteration_deflation(matvec, dim: int, k: int, *, tol: float = 1e-3, max_iter: int = 100,
                              seed: int = 0):
    """PyHessian's ``eigenvalues()``: for each of k eigenvalues, power iteration on H with the
    vector orthogonalized against the eigenvectors found so far; stop when the Rayleigh
    quotient's relative change < tol. Returns (eigenvalues as found, matvec count)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    vals, vecs, count = [], [], 0
    for _ in range(k):
        v = torch.randn(dim, generator=gen).to(torch.float32)
        v = v / v.norm()
        eig = None
        for _ in range(max_iter):
            for u in vecs:                                   # deflation (Gram-Schmidt)
                v = v - torch.dot(u, v) * u
            v = v / v.norm()
            hv = matvec(v)
            count += 1
            new = float(torch.dot(hv, v))
            v = hv / hv.norm()
            if eig is not None and abs(eig - new) / (abs(eig) + 1e-6) < tol:
                eig = new
                break
            eig = new
        vals.append(eig)
        vecs.append(v)
    return np.array(vals), count


def _scipy_eigsh(matvec, dim: int, k: int, tol: float, seed: int):
    import torch
    from scipy.sparse.linalg import LinearOperator, eigsh
    count = [0]

    def mv(v):
        count[0] += 1
        return matvec(torch.from_numpy(np.ascontiguousarray(v).ravel())).double().numpy()

    op = LinearOperator((dim, dim), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(dim)
    vals = eigsh(op, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return np.sort(vals)[::-1], count[0]


def _surface(loss_surface, model, x, y, resolution: int, chunk: int) -> dict:
    """A resolution² filter-normalized surface, vmapped (chunks of ``chunk``) and point by point."""
    kw = dict(resolution=resolution, span=1.0, seed=0, chunk=chunk)
    loss_surface(model, x, y, resolution=2)                   # warm-up
    t0 = time.perf_counter()
    fast = loss_surface(model, x, y, **kw)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = loss_surface(model, x, y, vectorized=False, **kw)
    t_slow = time.perf_counter() - t0
    return {"grid": f"{resolution}x{resolution}", "points": resolution ** 2, "n": x.shape[0],
            "params": sum(q.numel() for q in model.parameters()),
            "vmapped_s": t_fast, "loop_s": t_slow, "speedup": t_slow / t_fast, "vectorized": fast.vectorized,
            "chunk": chunk, "max_abs_diff": float((fast.loss - slow.loss).abs().max()),
            "center_loss": fast.center_loss, "max_loss": float(fast.loss.max())}


def _pd(res):
    return res.eigenvalues.numpy(), res.iterations


def _rel_err(vals, ref) -> float:
    return float(np.max(np.abs(np.asarray(vals, dtype=np.float64) - ref) / np.abs(ref)))


def main(argv: list[str] | None = None) -> dict:
    ap = ScriptParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=number_arg(int, low=1), default=1000, help="examples (the first n of MNIST-1D's training set)")
    ap.add_argument("--k", type=number_arg(int, low=1), default=5, help="top eigenvalues")
    ap.add_argument("--width", type=number_arg(int, low=1), default=256)
    ap.add_argument("--train-steps", type=number_arg(int, low=0), default=200, help="full-batch Adam steps before measuring")
    ap.add_argument("--repeat", type=number_arg(int, low=1), default=3, help="interleaved rounds; each time is the best")
    ap.add_argument("--resolution", type=number_arg(int, low=0), default=51, help="surface grid side (0: skip the surface)")
    ap.add_argument("--chunk", type=number_arg(int, low=1), default=16, help="surface points per vmapped batch")
    ap.add_argument("--threads", type=number_arg(int, low=1), default=1,
                    help="torch threads (1: on a busy 2-core machine two threads oversubscribe and run ~20x slower)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)

    import torch

    from petridish.data import mnist1d
    from petridish.instruments import hvp_operator, loss_surface, top_eigenvalues
    from petridish.models.mlp import MLP
    from petridish.threads import pin_threads

    load_before = os.getloadavg()
    with pin_threads(args.threads):
        ds = mnist1d()
        x, y = ds.x_train[: args.n].float(), ds.y_train[: args.n]
        torch.manual_seed(0)
        model = MLP(40, args.width, 2, 10)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(args.train_steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        model.eval()
        p = sum(q.numel() for q in model.parameters())
        with torch.no_grad():
            train_loss = float(torch.nn.functional.cross_entropy(model(x), y))

        import copy
        m64 = copy.deepcopy(model).double()
        t0 = time.perf_counter()
        ref, ref_count = _scipy_eigsh(hvp_operator(m64, x.double(), y).matvec, p, args.k, 1e-9, seed=1)
        t_ref = time.perf_counter() - t0

        op = hvp_operator(model, x, y)                       # float32 HVPs shared by the timed methods
        op.matvec(torch.zeros(p))                            # warm-up (torch.func's first call)
        op.matmat(torch.zeros(args.k, p))                    # and vmap's
        runs = {   # name -> () -> (eigenvalues, HVP count); each is timed including its operator's set-up
            "petridish": lambda: _pd(top_eigenvalues(model, x, y, k=args.k)),
            "petridish_jvp": lambda: _pd(top_eigenvalues(model, x, y, k=args.k, cache_graph=False)),
            f"petridish_block{args.k}": lambda: _pd(top_eigenvalues(model, x, y, k=args.k, block=args.k)),
            "scipy": lambda: _scipy_eigsh(op.matvec, p, args.k, 1e-6, seed=2),
            "scipy_cached": lambda: _scipy_eigsh(hvp_operator(model, x, y, cache_graph=True).matvec, p, args.k,
                                                 1e-6, seed=2),
            "pyhessian": lambda: power_iteration_deflation(op.matvec, p, args.k),
        }
        best = {name: float("inf") for name in runs}
        ratios, out_vals, counts = [], {}, {}
        for _ in range(args.repeat):
            times = {}
            for name, fn in runs.items():
                t0 = time.perf_counter()
                out_vals[name], counts[name] = fn()
                times[name] = time.perf_counter() - t0
                best[name] = min(best[name], times[name])
            ratios.append(times["petridish"] / times["scipy"])
        eig = {name: {"wall_s": best[name], "ratio_to_scipy": best[name] / best["scipy"],
                      "ratio_to_scipy_cached": best[name] / best["scipy_cached"],
                      "rel_error": _rel_err(out_vals[name], ref), "matvecs": counts[name],
                      "in_order": bool(np.all(np.diff(out_vals[name]) <= 0)),
                      "eigenvalues": [float(v) for v in out_vals[name]]} for name in best}
        out = {"params": p, "n": args.n, "k": args.k, "train_steps": args.train_steps, "train_loss": train_loss,
               "torch_threads": torch.get_num_threads(),
               "reference": {"eigenvalues": [float(v) for v in ref], "wall_s": t_ref, "matvecs": ref_count,
                             "method": "ARPACK tol 1e-9, float64 HVPs"},
               "eigenvalues": eig, "petridish_over_scipy_per_round": ratios,
               "targets": {"petridish_error_le_1e-4": eig["petridish"]["rel_error"] <= 1e-4,
                           "petridish_time_le_0.7_scipy": eig["petridish"]["ratio_to_scipy"] <= 0.7}}

        if args.resolution > 0:
            out["surface"] = _surface(loss_surface, model, x, y, args.resolution, args.chunk)
            torch.manual_seed(0)                              # the toy regime: 40→32→32→10 on 100 examples
            small = MLP(40, 32, 2, 10).eval()
            out["surface_small"] = _surface(loss_surface, small, x[:100], y[:100], args.resolution, args.chunk)
    out["load_average_before"] = list(load_before)
    out["load_average_after"] = list(os.getloadavg())
    out["cpus"] = os.cpu_count()
    if args.json:
        print(json.dumps(out))
    else:
        _print(out)
    return out


def _print(out: dict) -> None:
    lb, la = out["load_average_before"], out["load_average_after"]
    print(f"Top-{out['k']} Hessian eigenvalues: MNIST-1D MLP, {out['params']:,} parameters, {out['n']} examples, "
          f"train loss {out['train_loss']:.3f}; {out['torch_threads']} torch threads, {out['cpus']} CPUs, "
          f"load average {lb[0]:.1f} before / {la[0]:.1f} after")
    r = out["reference"]
    print(f"reference ({r['method']}): {', '.join(f'{v:.5f}' for v in r['eigenvalues'])} "
          f"({r['wall_s']:.1f} s, {r['matvecs']} HVPs)")
    print(f"{'method':<17} {'wall (s)':>9} {'÷ scipy':>8} {'÷ scipy_cached':>15} {'HVPs':>6} {'rel. error':>11} "
          f"{'in order':>9}")
    for name, e in out["eigenvalues"].items():
        print(f"{name:<17} {e['wall_s']:9.2f} {e['ratio_to_scipy']:8.2f} {e['ratio_to_scipy_cached']:15.2f} "
              f"{e['matvecs']:6d} {e['rel_error']:11.1e} {str(e['in_order']):>9}")
    print("petridish ÷ scipy per round: " + ", ".join(f"{v:.2f}" for v in out["petridish_over_scipy_per_round"]))
    print("targets: " + ", ".join(f"{k} {v}" for k, v in out["targets"].items()))
    for key in ("surface", "surface_small"):
        if key in out:
            s = out[key]
            print(f"surface {s['grid']} filter-normalized, {s['params']:,} parameters on {s['n']} examples: "
                  f"vmapped {s['vmapped_s']:.2f} s (chunks of {s['chunk']}), per-point loop {s['loop_s']:.2f} s, "
                  f"speedup {s['speedup']:.2f}x, max |difference| {s['max_abs_diff']:.1e}")


if __name__ == "__main__":
    main()
