"""edge-of-stability: GD's stability threshold on quadratics (the oracle), the crossing detector against a
closed-form Hessian along the same iterates, the tiny run (metrics, figure, claims, contract suite), and
verdicts that flip with the phenomenon (synthetic cells)."""
import json
import math

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from petridish.experiments.edge_of_stability import (EXPERIMENT, analyze, descend, first_crossing, plot,
                                                     summarize)
from petridish.lab import Cell
from petridish.lab.check import check_experiment
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


def _quadratic():
    # Linear model + ½·mean squared error: the Hessian is I ⊗ XᵀX/n, constant, with λ_max known in closed form.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 3, generator=g, dtype=torch.float64), torch.randn(30, 2, generator=g, dtype=torch.float64)
    return x, y, float(torch.linalg.eigvalsh(x.T @ x / 30)[-1])


@pytest.mark.parametrize("factor,diverges", [(0.98, False), (1.02, True)])
def test_gd_on_a_quadratic_is_stable_exactly_below_two_over_lambda_max(factor, diverges):
    x, y, lam = _quadratic()
    model = nn.Linear(3, 2, bias=False).double()
    eta = factor * 2 / lam
    tr = descend(model, x, y, eta=eta, steps=400, every=100, loss="mse", tol=1e-10)
    assert tr["step"] == [0, 100, 200, 300, 400]
    assert np.allclose(tr["sharpness"], lam, rtol=1e-8)          # the tracker sees the constant curvature
    # the detector: crossing at the first measurement when η > 2/λ_max, never when η < 2/λ_max
    assert first_crossing(tr["sharpness"], eta) == (0 if diverges else None)
    # the top mode's error is multiplied by |1 − ηλ| = 1.02 or 0.98 per step: 400 steps grow it by
    # 1.02^800 ≈ 8e6 in loss, or shrink it
    grew = tr["loss"][-1] / tr["loss"][0]
    assert (grew > 1e3) if diverges else (grew < 1.0), grew


class _Product(nn.Module):
    """f(x) = a·b·x: with x = 1, y = 1 and MSE the loss is ½(ab − 1)², whose Hessian is
    [[b², 2ab − 1], [2ab − 1, a²]] in closed form."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor([a], dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor([b], dtype=torch.float64))

    def forward(self, x):
        return self.a * self.b * x


def test_crossing_detector_finds_the_step_the_closed_form_hessian_says():
    eta, steps = 0.45, 60
    model = _Product(2.0, 0.01)
    x = y = torch.ones(1, 1, dtype=torch.float64)
    tr = descend(model, x, y, eta=eta, steps=steps, every=1, loss="mse", tol=1e-12)
    # the same GD iterates by hand, and λ_max of the closed-form Hessian at each
    a, b, lams = 2.0, 0.01, []
    for _ in range(steps + 1):
        lams.append(float(np.linalg.eigvalsh([[b * b, 2 * a * b - 1], [2 * a * b - 1, a * a]])[-1]))
        r = a * b - 1
        a, b = a - eta * r * b, b - eta * r * a
    np.testing.assert_allclose(tr["sharpness"], lams, rtol=1e-9)
    expected = next(i for i, lam in enumerate(lams) if lam >= 2 / eta)
    assert 0 < expected < steps and lams[0] < 2 / eta             # sharpening from below, then a crossing
    assert first_crossing(tr["sharpness"], eta) == expected
    assert summarize(tr["step"], tr["sharpness"], tr["loss"], eta)["cross_step"] == tr["step"][expected]


def test_summarize_on_a_hand_made_trajectory():
    eta = 0.5                                                     # threshold 2/η = 4
    step = [0, 10, 20, 30, 40, 50]
    sharp = [1.0, 2.0, 4.2, 4.4, 4.0, 4.8]                        # crosses at step 20
    loss = list(np.linspace(1.0, 0.5, 51))
    loss[35] = 0.9                                                # one rise after the crossing (and one fall)
    s = summarize(step, sharp, loss, eta)
    assert s["cross_step"] == 20 and s["sharpening"] == pytest.approx(4.2)
    assert s["eos_median_ratio"] == pytest.approx(np.median([4.4, 4.0, 4.8]) * eta / 2)
    assert s["loss_fall"] == pytest.approx(0.5 / loss[20])
    assert s["loss_rises_after_cross"] == pytest.approx(1 / 30)
    assert math.isnan(summarize(step, [1.0] * 6, loss, eta)["cross_step"])
    assert math.isnan(summarize(step[:4], sharp[:4], loss, eta)["eos_median_ratio"])   # 1 point after the crossing


@pytest.fixture(scope="module")
def tiny():
    return run_sweep("edge-of-stability", overrides=EXPERIMENT.tiny, quick=True, store="memory", progress=False)


def test_tiny_run_has_curves_figure_and_claims(tiny):
    assert len(tiny.cells) == 3 and all(c.status == "done" for c in tiny.cells)
    for c in tiny.cells:
        m = c.metrics
        assert len(m["step"]) == len(m["sharpness"]) == len(m["loss"]) == len(m["sharpness_ratio"]) >= 2
        assert m["step"][0] == 0 and all(v > 0 for v in m["sharpness"])
        assert m["sharpness_ratio"][0] == pytest.approx(m["sharpness"][0] * 0.8 / 2)
    claims = tiny.analysis.claims
    assert len(claims) == 3 and all(c.verdict in ("supported", "refuted", "inconclusive", "not measured")
                                    for c in claims)
    assert claims[0].direction == "within" and claims[0].margin == pytest.approx(0.15)
    json.dumps(tiny.analysis.to_json())
    fig = Figure(figsize=(6, 6))
    plot(tiny.cells, fig)
    assert len(fig.axes) == 2


def test_contract_suite_passes_on_the_tiny_configuration():
    report = check_experiment(EXPERIMENT)
    assert all(r.ok for r in report.results), [r.line() for r in report.results]


def _cell(act, loss, eta, seed, **metrics):
    return Cell(key=f"{act}{loss}{eta}{seed}", experiment="edge-of-stability",
                params={"activation": act, "loss": loss, "eta": eta}, seed=seed, status="done", metrics=metrics)


def _synthetic(mode: str):
    rng = np.random.default_rng(0)
    cells = []
    for s in range(4):
        e = lambda sd=0.01: sd * rng.standard_normal()                      # noqa: E731
        if mode == "eos":          # sharpen, cross, hover just above 2/η, loss falls
            m = dict(cross_step=100 + s, sharpening=3 + e(0.1), eos_median_ratio=1.05 + e(), loss_fall=0.4 + e())
        elif mode == "flat":       # no sharpening: sharp from the start, hovering far above the band, loss stuck
            m = dict(cross_step=0, sharpening=1 + e(0.001), eos_median_ratio=1.6 + e(), loss_fall=1.2 + e())
        else:                      # never reaches 2/η
            m = dict(cross_step=math.nan, sharpening=math.nan, eos_median_ratio=math.nan, loss_fall=math.nan)
        cells.append(_cell("tanh", "mse", 0.2, s, **m))
    return cells


def test_verdicts_flip_with_the_phenomenon():
    assert [c.verdict for c in analyze(_synthetic("eos")).claims] == ["supported"] * 3
    off = [c.verdict for c in analyze(_synthetic("flat")).claims]
    assert off[0] == "refuted" and off[1] in ("inconclusive", "refuted") and off[2] == "refuted", off
    never = analyze(_synthetic("never"))
    assert [c.verdict for c in never.claims] == ["not measured"] * 2
    assert "nan" not in " ".join(never.findings).lower() and "0 of 4 runs" in never.findings[0]
