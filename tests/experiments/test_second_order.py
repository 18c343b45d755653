"""second-order: every method reaches the quick target; L-BFGS and Hessian-free solve a convex quadratic to 1e-8
(K-FAC and Shampoo: tests/train/test_kfac.py, test_shampoo.py); verdicts flip with the phenomenon (synthetic cells)."""
import json

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from petridish.experiments.second_order import METHODS, SECOND, analyze, plot
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep
from petridish.train.hessian_free import HessianFree

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


def _quadratic(n=12, seed=0):
    g = np.random.default_rng(seed)
    q, _ = np.linalg.qr(g.standard_normal((n, n)))
    a = torch.from_numpy((q * np.geomspace(1, 1e3, n)) @ q.T)
    b = torch.from_numpy(g.standard_normal(n))
    return a, b, torch.linalg.solve(a, b)


def test_lbfgs_and_hessian_free_reach_the_minimizer_of_a_convex_quadratic():
    a, b, x = _quadratic()
    w = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=200, history_size=20, tolerance_grad=1e-15, tolerance_change=0,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        v = 0.5 * w @ (a @ w) - b @ w
        v.backward()
        return v
    opt.step(closure)
    assert float((w.detach() - x).norm() / x.norm()) < 1e-8
    v = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    hf = HessianFree([v], lambda: 0.5 * v @ (a @ v) - b @ v, damping=0.0, cg_iters=100, cg_tol=1e-15, adapt=False)
    hf.step()                                                   # Newton: one step
    assert float((v.detach() - x).norm() / x.norm()) < 1e-8


def test_quick_run_reaches_the_target_with_every_method():
    res = run_sweep("second-order", quick=True, store="memory", progress=False)
    assert all(c.status == "done" for c in res.cells)
    assert all(c.metrics["reached"] for c in res.cells), [(c.params["method"], c.metrics["final_loss"])
                                                          for c in res.cells]
    verdicts = [c.verdict for c in res.analysis.claims]
    assert len(verdicts) == 12 and all(v != "not measured" for v in verdicts), verdicts
    assert all(c.metrics["acc_reached"] and c.metrics["grad_evals_to_acc"] <= c.metrics["grad_evals_to_target"]
               for c in res.cells)
    assert {c.params["method"] for c in res.cells} == set(METHODS)
    json.dumps(res.analysis.to_json())
    fig = Figure(figsize=(10, 4))
    plot(res.cells, fig)
    assert len(fig.axes) == 2


def _cells(faster: bool):
    rng = np.random.default_rng(0)
    out = []
    for s in range(4):
        for m in METHODS:
            second = m in SECOND
            sec = (0.1 if (second and faster) else 1.0) * (1 + 0.05 * rng.standard_normal())
            ge = (30 if (second and faster) else 300) * (1 + 0.05 * rng.standard_normal())
            out.append(Cell(key=f"{m}{s}", experiment="second-order", params={"method": m}, seed=s, status="done",
                            metrics={"reached": True, "log10_seconds_to_target": float(np.log10(sec)),
                                     "log10_grad_evals_to_target": float(np.log10(ge)), "seconds_to_target": sec,
                                     "log10_grad_evals_to_acc": float(np.log10(ge / 2)),
                                     "grad_evals_to_target": ge, "steps_to_target": 10.0, "test_acc_at_target": 0.5}))
    return out


def test_verdicts_flip_with_the_phenomenon():
    on = [c.verdict for c in analyze(_cells(True)).claims]
    off = [c.verdict for c in analyze(_cells(False)).claims]
    assert on == ["supported"] * 12, on
    assert all(v == "inconclusive" for v in off), off
    assert "nan" not in " ".join(analyze(_cells(False)).findings).lower()
