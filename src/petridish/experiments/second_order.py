"""Can curvature-aware methods train faster? (Donoho's "speed up training"), first version.

Full-batch training of an MLP (40→32→32→10, tanh, cross-entropy) on the first ``n_train`` MNIST-1D
examples, from one initialization per seed, until the training loss reaches ``target_loss``:

* ``sgd-momentum`` (heavy ball 0.9) and ``adam``: first-order, one gradient per step;
* ``lbfgs``: ``torch.optim.LBFGS`` with a strong-Wolfe line search (one parameter group, a closure);
* ``hessian-free``: damped Newton–CG with Hessian-vector products (``petridish.train.hessian_free``).

Each method gets the same tuning budget: ``len(GRID[method])`` settings of its main knob, the best
(fastest to the target in wall time) reported. Costs: steps, wall seconds, and gradient-equivalents
(one gradient = 1; one Hessian-vector product by double backward ≈ 2), a machine-independent FLOP
proxy; the wall time of every method includes one extra full-batch forward per step (the recorded
loss). L-BFGS counts its own iterations as steps; its target check comes after each ``step()`` call of
up to 10 iterations, so it may overshoot the target. The Hessian-free steps use Hessian-vector
products (CG stops at negative curvature), not Gauss–Newton ones. K-FAC and Shampoo are not in this
version; their claims read "not measured".
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from petridish.data import mnist1d
from petridish.lab import (Analysis, Experiment, Param, aggregate, family, from_difference, not_measured,
                           paired_difference)
from petridish.lab.paired import pair_by_seed
from petridish.models import build_model
from petridish.seeding import sub_seed
from petridish.train.hessian_free import HessianFree

METHODS = ("sgd-momentum", "adam", "lbfgs", "hessian-free")
SECOND = ("lbfgs", "hessian-free")
GRID = {"sgd-momentum": (0.03, 0.1, 0.3),          # lr
        "adam": (1e-3, 3e-3, 1e-2),                # lr
        "lbfgs": (5, 10, 20),                      # history size (lr 1, strong Wolfe)
        "hessian-free": (0.1, 1.0, 10.0)}          # initial damping λ
HVP_COST = 2.0                                     # gradient-equivalents per Hessian-vector product


def _data(n_train: int):
    ds = mnist1d(n_train=4000, n_test=1000)
    return ds.x_train[:n_train].double(), ds.y_train[:n_train], ds.x_test.double(), ds.y_test


def _attempt(method: str, knob: float, p: dict, seed: int, data) -> dict:
    """One tuning setting: train until the target or the budget; the cost at which the target was hit."""
    x, y, xt, yt = data
    model = build_model("mlp", d_in=40, d_out=10, seed=sub_seed(seed, "init"), width=32, depth=2,
                        activation="tanh").double()
    params = [q for q in model.parameters()]
    loss_fn = lambda: torch.nn.functional.cross_entropy(model(x), y)
    cost, steps, t0 = 0.0, 0, time.perf_counter()
    curve_t, curve_l = [], []
    hit = None
    if method in ("sgd-momentum", "adam"):
        opt = (torch.optim.SGD(params, lr=knob, momentum=0.9) if method == "sgd-momentum"
               else torch.optim.Adam(params, lr=knob))
        step = lambda: (opt.zero_grad(), loss_fn().backward(), opt.step())
        per = 1.0
    elif method == "lbfgs":
        # max_iter=1 per step() stalls at the initial loss here (torch 2.13), so one step() = up to 10
        # L-BFGS iterations; steps are counted as iterations (the optimizer's own n_iter)
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=10, history_size=int(knob), line_search_fn="strong_wolfe",
                                tolerance_grad=0.0, tolerance_change=0.0)
        evals = [0]

        def closure():
            evals[0] += 1
            opt.zero_grad()
            v = loss_fn()
            v.backward()
            return v
        step = lambda: opt.step(closure)
        per = None                                  # counted through the closure
    else:
        hf = HessianFree(params, loss_fn, damping=knob, cg_iters=p["cg_iters"], cg_tol=1e-6)
        step = hf.step
        per = None
    while steps < p["max_steps"] and time.perf_counter() - t0 < p["time_budget"]:
        step()
        steps += 1
        if method == "lbfgs":
            cost = float(evals[0])
            steps = int(opt.state[params[0]].get("n_iter", steps))
        elif method == "hessian-free":
            cost += 2.0 + HVP_COST * (hf.last_cg.iterations + 1)     # gradient + loss eval, CG products
        else:
            cost += per
        with torch.no_grad():
            lv = float(loss_fn())
        curve_t.append(time.perf_counter() - t0)
        curve_l.append(lv)
        if not math.isfinite(lv):
            break
        if lv <= p["target_loss"]:
            with torch.no_grad():
                acc = float((model(xt).argmax(1) == yt).double().mean())
            hit = {"steps": steps, "seconds": curve_t[-1], "grad_evals": cost, "test_acc": acc}
            break
    return {"hit": hit, "final_loss": curve_l[-1] if curve_l else math.nan, "knob": knob,
            "curve_t": curve_t, "curve_l": curve_l}


def run(p: dict, seed: int) -> dict:
    method = p["method"]
    data = _data(p["n_train"])
    tries = [_attempt(method, k, p, seed, data) for k in GRID[method][:p["tuning"]]]
    reached = [t for t in tries if t["hit"] is not None]
    best = min(reached, key=lambda t: t["hit"]["seconds"]) if reached else min(
        tries, key=lambda t: t["final_loss"] if math.isfinite(t["final_loss"]) else math.inf)
    out = {"reached": bool(reached), "knob": best["knob"], "final_loss": best["final_loss"],
           "curve_seconds": best["curve_t"][:: max(1, len(best["curve_t"]) // 100)],
           "curve_loss": best["curve_l"][:: max(1, len(best["curve_l"]) // 100)]}
    if reached:
        h = best["hit"]
        out.update(steps_to_target=float(h["steps"]), seconds_to_target=h["seconds"],
                   grad_evals_to_target=h["grad_evals"], test_acc_at_target=h["test_acc"],
                   log10_seconds_to_target=math.log10(h["seconds"]),
                   log10_grad_evals_to_target=math.log10(h["grad_evals"]))
    return out


def _by_seed(cells, method, metric):
    return {c.seed: float(c.metrics[metric]) for c in cells if c.status == "done"
            and c.params.get("method") == method and isinstance(c.metrics.get(metric), (int, float))}


def analyze(cells) -> Analysis:
    claims = []
    for m in SECOND:
        for metric, what in (("log10_seconds_to_target", "wall time"),
                             ("log10_grad_evals_to_target", "gradient-equivalents")):
            a, b = pair_by_seed(_by_seed(cells, "adam", metric), _by_seed(cells, m, metric))
            claims.append(from_difference(
                f"{m} reaches the target training loss with less {what} than tuned Adam",
                paired_difference(a, b) if a.size >= 2 else None,
                effect=f"log10 {what} of Adam minus {m}",
                reason="fewer than 2 seeds where both reached the target"))
    for m in ("K-FAC", "Shampoo"):
        claims.append(not_measured(f"{m} reaches the target training loss faster than tuned Adam",
                                   "not implemented in this version of the experiment"))
    rows = aggregate(cells, by=["method"], metrics=["steps_to_target", "seconds_to_target", "grad_evals_to_target",
                                                    "test_acc_at_target"], bounds={"test_acc_at_target": (0, 1)})
    values = {"by_method": {r["params"]["method"]: r["metrics"] for r in rows},
              "reached": {m: int(sum(bool(c.metrics.get("reached")) for c in cells if c.params.get("method") == m))
                          for m in METHODS}}
    return Analysis(values=values, claims=family(claims))


def plot(cells, fig) -> None:
    axes = fig.subplots(1, 2)
    for i, m in enumerate(METHODS):
        sel = [c for c in cells if c.status == "done" and c.params["method"] == m]
        for j, c in enumerate(sel):
            axes[0].plot(c.metrics["curve_seconds"], c.metrics["curve_loss"], color=f"C{i}", lw=1,
                         label=m if j == 0 else None)
    if cells:
        axes[0].axhline(cells[0].params["target_loss"], color="grey", ls=":", lw=1, label="target")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("wall seconds (busy 2-core CPU)")
    axes[0].set_ylabel("training loss (full batch)")
    axes[0].legend(fontsize=7)
    rows = aggregate(cells, by=["method"], metrics=["grad_evals_to_target"])
    names = [r["params"]["method"] for r in rows if "grad_evals_to_target" in r["metrics"]]
    mt = [r["metrics"]["grad_evals_to_target"] for r in rows if "grad_evals_to_target" in r["metrics"]]
    if mt:
        m = np.array([v["mean"] for v in mt])
        axes[1].bar(np.arange(len(m)), m, yerr=[m - np.array([v["lo"] for v in mt]),
                                                np.array([v["hi"] for v in mt]) - m], capsize=3)
        axes[1].set_xticks(np.arange(len(m)), names)
        axes[1].tick_params(axis="x", labelsize=7)
        axes[1].set_yscale("log")
    axes[1].set_ylabel("gradient-equivalents to the target (95% CI)")
    fig.suptitle("First- vs second-order full-batch training, mnist1d MLP")


EXPERIMENT = Experiment(
    name="second-order",
    question="Do curvature-aware methods (L-BFGS with strong Wolfe, Hessian-free Newton–CG) reach a target "
             "training loss faster than tuned first-order methods (SGD with momentum, Adam) on an mnist1d MLP?",
    reference="Donoho (2023), Data science at the singularity; Martens (2010), Deep learning via Hessian-free "
              "optimization, ICML; Nocedal (1980) L-BFGS",
    summary="steps, wall time and gradient-equivalents to a target train loss: SGD-momentum, Adam, L-BFGS, HF",
    params=(
        Param("method", str, default=list(METHODS), choices=METHODS, help="optimizer"),
        Param("n_train", int, default=1000, quick=500, low=10, high=4000, help="mnist1d training examples"),
        Param("target_loss", float, default=0.5, quick=0.8, low=0.0, help="training cross-entropy to reach"),
        Param("max_steps", int, default=5000, quick=2000, low=1, high=10_000_000, help="step cap per setting"),
        Param("time_budget", float, default=10.0, quick=4.0, low=0.1, help="wall seconds per setting"),
        Param("tuning", int, default=3, quick=2, low=1, high=3, help="settings tried per method (same for all)"),
        Param("cg_iters", int, default=30, low=1, high=10_000, help="CG iterations per Hessian-free step"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=3, quick_seeds=3, runtime="~1.5 min (busy machine)",
    table_by=("method",),
    table_metrics=("steps_to_target", "seconds_to_target", "grad_evals_to_target", "test_acc_at_target", "knob"),
    bounds={"test_acc_at_target": (0.0, 1.0)},
)
