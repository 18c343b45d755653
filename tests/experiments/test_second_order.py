"""second-order: on the MLP every method reaches the quick target, on the CNN every method but Hessian-free (slower
there: it trains well below chance but not to the target within its step cap) and K-FAC (refused: Linear layers only, so not measured); L-BFGS and Hessian-free solve
a convex quadratic to 1e-8 (K-FAC and Shampoo: tests/train/test_kfac.py, test_shampoo.py); verdicts flip with the
phenomenon (synthetic cells)."""
import json
import math

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from petridish.experiments.second_order import ARCHS, METHODS, SECOND, analyze, plot
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
    # the same quadratic as a zero-residual least-squares problem, ½‖R w − R x*‖² with RᵀR = A: the strong-Wolfe
    # line search compares loss values, and in the form ½wᵀAw − bᵀw (value ≈ −0.5 at the minimum) float64
    # resolves a change only down to ‖w − x*‖ ≈ √ε ≈ 1e-8, so where it stops is the CPU's rounding
    # (5.8e-9 with AVX-512, 3.6e-8 with ATEN_CPU_CAPABILITY=default); here the value falls to ~1e-30
    r = torch.linalg.cholesky(a).T
    c = r @ x
    w = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=200, history_size=20, tolerance_grad=1e-15, tolerance_change=0,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        v = 0.5 * (r @ w - c).pow(2).sum()
        v.backward()
        return v
    opt.step(closure)
    assert float((w.detach() - x).norm() / x.norm()) < 1e-8
    v = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    hf = HessianFree([v], lambda: 0.5 * v @ (a @ v) - b @ v, damping=0.0, cg_iters=100, cg_tol=1e-15, adapt=False)
    hf.step()                                                   # Newton: one step
    assert float((v.detach() - x).norm() / x.norm()) < 1e-8


def test_quick_run_reaches_the_target_with_every_supported_method_on_both_architectures():
    # The quick configuration stops each setting after 6 wall-clock seconds, so how far a method gets there
    # depends on the CPU: on a 2-core AMD EPYC (AVX2) Shampoo's CNN seed 2 needed 6.2 s (503 steps) and missed
    # the target. The test caps steps instead, under a wall budget that never binds, so it checks the
    # optimizers, not the machine: every method within 800 steps, and Hessian-free (0.2-0.3 s a step on the
    # CNN) within 40 at its first damping setting only, in a sweep of its own.
    never = {"time_budget": 1e6}
    others = [m for m in METHODS if m != "hessian-free"]
    res = run_sweep("second-order", quick=True, store="memory", progress=False,
                    overrides={**never, "max_steps": 800, "method": others}, workers=2)
    res_hf = run_sweep("second-order", quick=True, store="memory", progress=False,
                       overrides={**never, "max_steps": 40, "method": "hessian-free", "tuning": 1}, workers=2)
    cells = res.cells + res_hf.cells
    analysis = analyze(cells)
    assert all(c.status == "done" for c in cells), [(c.params, c.error) for c in cells if c.status != "done"]
    assert {(c.params["arch"], c.params["method"]) for c in cells} == {(a, m) for a in ARCHS for m in METHODS}
    sel = lambda a, m: [c for c in cells if c.params["arch"] == a and c.params["method"] == m]
    # K-FAC refuses the CNN's Conv1d with its one-line error: recorded, nothing trained
    for c in sel("cnn", "kfac"):
        assert c.metrics["supported"] is False and not c.metrics["reached"]
        assert "Linear layers only" in c.metrics["unsupported_reason"] and "Conv1d" in c.metrics["unsupported_reason"]
    # Hessian-free on the ReLU CNN: CG often stops on its first direction (negative curvature along −g), the
    # step is zero, and HessianFree raises λ until its steps descend. Before that rule two of the three seeds
    # sat at a fixed point at chance level (loss ≈ 2.25 ≈ ln 10); now every seed trains well below it within its
    # 40 steps (0.94-1.20 at λ = 0.1 on the AMD EPYC)
    hf = sel("cnn", "hessian-free")
    assert all(c.metrics["final_loss"] < 0.6 * math.log(10) for c in hf), [c.metrics["final_loss"] for c in hf]
    assert any(c.metrics["stalled_settings"] > 0 for c in hf)      # the zero steps did occur, and were left behind
    # every other (architecture, method) reaches the loss target, and the accuracy target no later
    rest = [c for c in cells if not (c.params["arch"] == "cnn" and c.params["method"] in ("kfac", "hessian-free"))]
    assert all(c.metrics["reached"] for c in rest), [(c.params["arch"], c.params["method"], c.metrics["final_loss"])
                                                     for c in rest if not c.metrics["reached"]]
    assert all(c.metrics["acc_reached"] and c.metrics["grad_evals_to_acc"] <= c.metrics["grad_evals_to_target"]
               for c in rest)
    claims = analysis.claims
    assert len(claims) == 24
    mlp = [c for c in claims if c.claim.startswith("MLP: ")]
    cnn = [c for c in claims if c.claim.startswith("CNN: ")]
    assert len(mlp) == len(cnn) == 12 and all(c.verdict != "not measured" for c in mlp), [c.verdict for c in mlp]
    for c in cnn:
        if "kfac" in c.claim:
            assert c.verdict == "not measured" and "Linear layers only" in c.reason, c.reason
        elif "hessian-free" in c.claim:     # measured where ≥ 2 seeds reached the claim's target, from the cells
            key = "acc_reached" if "test accuracy" in c.claim else "reached"
            if sum(bool(h.metrics[key]) for h in hf) < 2:
                assert c.verdict == "not measured" and "fewer than 2 seeds" in c.reason, c.reason
            else:
                assert c.verdict != "not measured", c.finding()
        else:
            assert c.verdict != "not measured", c.finding()
    assert set(analysis.values["unsupported"]["cnn"]) == {"kfac"} and not analysis.values["unsupported"]["mlp"]
    json.dumps(analysis.to_json())
    fig = Figure(figsize=(10, 8))
    plot(cells, fig)
    assert len(fig.axes) == 4


def test_a_blown_up_setting_is_diverged_and_stops_at_once():
    # Shampoo on the CNN, seed 1: lr 0.03 (the second setting) goes from 2.3 to 365 nats in 7 steps; before the
    # BLOW_UP rule it then sat at 2.7e13 for the rest of its budget. lr 0.01 trains on, to the step cap.
    from petridish.experiments.second_order import BLOW_UP, EXPERIMENT, run
    p = {**EXPERIMENT.config({"method": "shampoo", "arch": "cnn", "max_steps": 30, "time_budget": 1e6},
                             quick=True), "tuning": 2}
    out = run(p, 1)
    assert out["diverged_settings"] == 1 and out["knob"] == 0.01 and out["steps_run"] == 30
    assert math.isfinite(out["final_loss"]) and out["final_loss"] < BLOW_UP * math.log(10)


def _cells(faster: bool, archs=ARCHS):
    rng = np.random.default_rng(0)
    out = []
    for a in archs:
        for s in range(4):
            for m in METHODS:
                if a == "cnn" and m == "kfac":
                    out.append(Cell(key=f"{a}{m}{s}", experiment="second-order", params={"arch": a, "method": m},
                                    seed=s, status="done", metrics={"supported": False, "reached": False,
                                                                    "unsupported_reason": "Conv1d refused"}))
                    continue
                second = m in SECOND
                sec = (0.1 if (second and faster) else 1.0) * (1 + 0.05 * rng.standard_normal())
                ge = (30 if (second and faster) else 300) * (1 + 0.05 * rng.standard_normal())
                out.append(Cell(key=f"{a}{m}{s}", experiment="second-order", params={"arch": a, "method": m},
                                seed=s, status="done",
                                metrics={"reached": True, "log10_seconds_to_target": float(np.log10(sec)),
                                         "log10_grad_evals_to_target": float(np.log10(ge)), "seconds_to_target": sec,
                                         "log10_grad_evals_to_acc": float(np.log10(ge / 2)),
                                         "grad_evals_to_target": ge, "steps_to_target": 10.0,
                                         "test_acc_at_target": 0.5}))
    return out


def test_verdicts_flip_with_the_phenomenon():
    on = analyze(_cells(True)).claims
    off = analyze(_cells(False)).claims
    kfac_cnn = [i for i, c in enumerate(on) if c.claim.startswith("CNN: kfac")]
    assert len(on) == 24 and len(kfac_cnn) == 3
    assert all(on[i].verdict == off[i].verdict == "not measured" and "Conv1d refused" in on[i].reason
               for i in kfac_cnn)
    assert [c.verdict for i, c in enumerate(on) if i not in kfac_cnn] == ["supported"] * 21, [c.verdict for c in on]
    # no speed-up: nothing supported (the seed noise of 5% refutes a claim now and then, at the 5% level)
    off_v = [c.verdict for i, c in enumerate(off) if i not in kfac_cnn]
    assert all(v in ("inconclusive", "refuted") for v in off_v) and off_v.count("inconclusive") >= 18, off_v
    assert "nan" not in " ".join(analyze(_cells(False)).findings).lower()


def test_cells_without_an_arch_are_the_mlp_and_a_partial_sweep_plots():
    legacy = [Cell(key=c.key, experiment=c.experiment, params={"method": c.params["method"]}, seed=c.seed,
                   status=c.status, metrics=c.metrics) for c in _cells(True, archs=("mlp",))]
    claims = analyze(legacy).claims
    assert len(claims) == 12 and all(c.claim.startswith("MLP: ") and c.verdict == "supported" for c in claims)
    fig = Figure(figsize=(10, 4))
    plot([c for c in _cells(True) if c.params["arch"] == "cnn"], fig)
    assert len(fig.axes) == 2
