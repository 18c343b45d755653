"""Infinite-width kernels: petridish's analytic NNGP+NTK against a straightforward NumPy
recursion (and neural-tangents, when it is importable), plus the empirical NTK of a finite MLP.

    python benchmarks/kernels.py [--n 4000] [--depth 3] [--json]

* analytic: the depth-``depth`` ReLU NNGP and NTK ('ntk' parameterization, float64) of the
  first ``n`` MNIST-1D training inputs (n x n, x2=None), by ``petridish.kernels.mlp_kernels``,
  by a plain NumPy float64 recursion over whole matrices (arccos form, the reference
  baseline), and by ``neural_tangents.stax`` (jit-compiled and warm, float64) if it imports.
  Agreement: the largest elementwise relative difference from NumPy (target <= 1e-6).
* empirical: the NTK of one width-``width`` NTKMLP (same depth, float32) on ``emp_n`` points
  by ``petridish.kernels.empirical_ntk`` (Jacobian contraction with torch.func), and its
  relative Frobenius distance to the analytic NTK (O(1/sqrt(width)), a sanity check).
Each time is the best of ``--repeat`` runs (NumPy and the empirical NTK: one run, after a
warm-up call, as neural-tangents is timed after its jit compilation).
"""
from __future__ import annotations

import json
import time

import numpy as np

from petridish.cli.script_args import ScriptParser, number_arg


def numpy_kernels(x: np.ndarray, depth: int, w_std: float, b_std: float) -> tuple[np.ndarray, np.ndarray]:
    """The textbook recursion on whole (n, n) matrices: theta = arccos(cos), float64."""
    k = x @ x.T / x.shape[1]                                       # (n, n) input kernel
    ntk = np.zeros_like(k)
    for layer in range(depth + 1):
        s = w_std ** 2 * k + b_std ** 2                            # Dense
        ntk = s + w_std ** 2 * ntk
        if layer == depth:
            return s, ntk
        d = np.sqrt(np.diag(s))
        norms = np.outer(d, d)
        cos = np.clip(s / norms, -1.0, 1.0)
        theta = np.arccos(cos)
        k = norms * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)   # ReLU arc-cosine
        ntk = ntk * (np.pi - theta) / (2 * np.pi)
    raise AssertionError("unreachable")


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _max_rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(a - ref) / np.abs(ref)))


def _neural_tangents(x: np.ndarray, depth: int, w_std: float, b_std: float, repeat: int):
    """(seconds, (nngp, ntk)) with neural-tangents, or None when it does not import."""
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        from neural_tangents import stax
    except Exception:                                              # optional: any import failure
        return None
    layers = [stax.Dense(512, W_std=w_std, b_std=b_std), stax.Relu()] * depth
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=w_std, b_std=b_std))
    kernel_fn = jax.jit(kernel_fn, static_argnames="get")
    xj = jnp.asarray(x, dtype=jnp.float64)

    def once():
        k = kernel_fn(xj, None, get=("nngp", "ntk"))
        return np.asarray(k.nngp.block_until_ready()), np.asarray(k.ntk.block_until_ready())

    once()                                                         # compile
    return _best(once, repeat)


def main(argv: list[str] | None = None) -> dict:
    ap = ScriptParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=number_arg(int, low=1), default=4000, help="points for the analytic kernel (n x n)")
    ap.add_argument("--depth", type=number_arg(int, low=1), default=3, help="hidden layers")
    ap.add_argument("--w-std", type=float, default=1.5)
    ap.add_argument("--b-std", type=float, default=0.05)
    ap.add_argument("--width", type=number_arg(int, low=1), default=512, help="width of the MLP for the empirical NTK")
    ap.add_argument("--emp-n", type=number_arg(int, low=0), default=500, help="points for the empirical NTK (0: skip)")
    ap.add_argument("--repeat", type=number_arg(int, low=1), default=3, help="best of this many runs (analytic kernels)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)

    import torch

    from petridish.data import mnist1d
    from petridish.kernels import NTKMLP, empirical_ntk, mlp_kernels

    ds = mnist1d() if args.n <= 4000 else mnist1d(n_train=args.n)     # the paper's 4000/1000 split
    x = ds.x_train[: args.n].double()
    opts = dict(depth=args.depth, w_std=args.w_std, b_std=args.b_std)
    t_pd, ours = _best(lambda: mlp_kernels(x, **opts), args.repeat)
    t_np, ref = _best(lambda: numpy_kernels(x.numpy(), args.depth, args.w_std, args.b_std), 1)
    rows = {"petridish (torch)": t_pd, "numpy recursion": t_np}
    err = {"petridish_vs_numpy": max(_max_rel(ours.nngp.numpy(), ref[0]), _max_rel(ours.ntk.numpy(), ref[1]))}
    nt = _neural_tangents(x.numpy(), args.depth, args.w_std, args.b_std, args.repeat)
    if nt is not None:
        rows["neural-tangents (jit, warm)"] = nt[0]
        err["neural_tangents_vs_numpy"] = max(_max_rel(nt[1][0], ref[0]), _max_rel(nt[1][1], ref[1]))
    out = {"n": args.n, "depth": args.depth, "w_std": args.w_std, "b_std": args.b_std,
           "torch_threads": torch.get_num_threads(), "neural_tangents": nt is not None,
           "analytic": {k: {"wall_s": v, "ratio_to_petridish": v / t_pd} for k, v in rows.items()},
           "max_rel_diff": err, "agree_1e-6": all(e <= 1e-6 for e in err.values())}
    if args.emp_n > 0:
        xe = x[: args.emp_n].float()
        net = NTKMLP(xe.shape[1], args.width, args.depth, w_std=args.w_std, b_std=args.b_std, seed=0)
        t0 = time.perf_counter()
        empirical_ntk(net, xe[:2])             # warm-up: torch.func's first call imports torch._dynamo
        t_cold = time.perf_counter() - t0
        t_emp, emp = _best(lambda: empirical_ntk(net, xe), 1)
        ana = ours.ntk[: args.emp_n, : args.emp_n]
        dist = float(torch.linalg.norm(emp.double() - ana) / torch.linalg.norm(ana))
        out["empirical"] = {"n": args.emp_n, "width": args.width,
                            "params": sum(p.numel() for p in net.parameters()), "wall_s": t_emp,
                            "first_call_2_points_s": t_cold,
                            "rel_frobenius_to_analytic": dist}
    if args.json:
        print(json.dumps(out))
    else:
        _print(out)
    return out


def _print(out: dict) -> None:
    n, d = out["n"], out["depth"]
    print(f"depth-{d} ReLU NNGP+NTK, {n} x {n}, float64 ({out['torch_threads']} torch threads)")
    print(f"{'implementation':<28} {'wall (s)':>9} {'÷ petridish':>12}")
    for k, v in out["analytic"].items():
        print(f"{k:<28} {v['wall_s']:9.2f} {v['ratio_to_petridish']:12.2f}")
    if not out["neural_tangents"]:
        print("(neural-tangents not importable: skipped)")
    for k, v in out["max_rel_diff"].items():
        print(f"max relative difference, {k.replace('_', ' ')}: {v:.2e}")
    if "empirical" in out:
        e = out["empirical"]
        print(f"empirical NTK, width-{e['width']} depth-{d} MLP ({e['params']} parameters), "
              f"{e['n']} x {e['n']}: {e['wall_s']:.2f} s warm (first call, 2 points: "
              f"{e['first_call_2_points_s']:.2f} s); relative distance to analytic {e['rel_frobenius_to_analytic']:.3f}")


if __name__ == "__main__":
    main()
