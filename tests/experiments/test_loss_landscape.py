"""loss-landscape: the tiny run (metrics, figure with contours and a 3D view, claims, contract suite), the
skip switch shares initializations, and verdicts that flip with the phenomenon (synthetic cells)."""
import json
import math

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from petridish.experiments.loss_landscape import CURVE_MARGIN, EXPERIMENT, analyze, build, fit, plot
from petridish.lab import Cell
from petridish.lab.check import check_experiment
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return run_sweep("loss-landscape", overrides=EXPERIMENT.tiny, quick=True, store="memory", progress=False)


def test_tiny_run_has_surfaces_paths_traces_and_claims(tiny):
    assert len(tiny.cells) == 6 and all(c.status == "done" for c in tiny.cells)
    for c in tiny.cells:
        m = c.metrics
        r = m["surface_resolution"]
        assert r == 5 and len(m["surface_loss"]) == r * r
        # the grid's centre is θ_A itself: the same loss as the surface's centre point
        assert m["surface_loss"][(r * r) // 2] == pytest.approx(m["surface_center_loss"], rel=1e-5)
        assert len(m["path_t"]) == len(m["line_loss"]) == len(m["curve_loss"]) == len(m["init_line_loss"]) == 21
        # line and curve share their endpoints θ_A, θ_B (float32 forward passes: relative 1e-5)
        assert m["line_loss"][0] == pytest.approx(m["curve_loss"][0], rel=1e-5)
        assert m["line_loss"][-1] == pytest.approx(m["curve_loss"][-1], rel=1e-5)
        assert m["line_barrier"] >= 0 and m["curve_barrier"] >= 0 and m["lambda_max"] > 0
        assert m["lambda_steps"][0] == 0 and len(m["lambda_trace"]) == 3
    claims = tiny.analysis.claims
    assert len(claims) == 6 and {c.direction for c in claims} == {"greater", "within", "two-sided"}
    json.dumps(tiny.analysis.to_json())
    fig = Figure(figsize=(14, 6))
    plot(tiny.cells, fig)
    assert len(fig.axes) == 2 + 4 and any(ax.name == "3d" for ax in fig.axes)


def test_contract_suite_passes_on_the_tiny_configuration():
    report = check_experiment(EXPERIMENT)
    assert all(r.ok for r in report.results), [r.line() for r in report.results]


def test_skip_and_no_skip_start_from_one_initialization_and_checkpoints_span_training():
    a, b = build("cnn", True, 3), build("cnn", False, 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    x, y = torch.randn(50, 40), torch.randint(0, 10, (50,))
    steps, thetas = fit(a, x, y, lr=0.01, epochs=2, batch_size=16, seed=0, checkpoints=3)
    assert steps == [0, 4, 8] and torch.equal(thetas[0], torch.cat([p.reshape(-1) for p in b.parameters()]))
    assert not torch.equal(thetas[-1], thetas[0])


def _cells(line: float, curve: float, skip_shift: float):
    rng = np.random.default_rng(0)
    cells = []
    for s in range(4):
        for skip in (True, False):
            e = lambda sd=0.02: sd * rng.standard_normal()                       # noqa: E731
            lam = 2.0 - (skip_shift if skip else 0.0) + e()
            m = dict(line_barrier=line + e(), curve_barrier=abs(curve + e(0.01)), log_lambda_max=lam,
                     lambda_max=math.exp(lam), init_line_barrier=0.0, surface_rise=1.0, test_error=0.2,
                     train_error=0.05, endpoint_loss=0.1, line_test_error_rise=0.3, curve_test_error_rise=0.01)
            m["line_barrier"] -= skip_shift if skip else 0.0
            cells.append(Cell(key=f"{s}{skip}", experiment="loss-landscape", params={"arch": "cnn", "skip": skip},
                              seed=s, status="done", metrics=m))
    return cells


def test_verdicts_flip_with_the_phenomenon():
    on = [c.verdict for c in analyze(_cells(line=2.0, curve=0.02, skip_shift=0.5)).claims]
    assert on == ["supported"] * 6, on
    # no barrier on the line, a curve that rises well past the margin, skips change nothing
    off = analyze(_cells(line=0.0, curve=3 * CURVE_MARGIN, skip_shift=0.0))
    verdicts = [c.verdict for c in off.claims]
    assert verdicts[1] == verdicts[3] == "refuted" and verdicts[0] != "supported" and verdicts[2] != "supported"
    assert all(v == "inconclusive" for v in verdicts[4:]), verdicts
    few = analyze(_cells(2.0, 0.0, 0.5)[:2])
    assert {c.verdict for c in few.claims} == {"not measured"} and "nan" not in " ".join(few.findings).lower()
