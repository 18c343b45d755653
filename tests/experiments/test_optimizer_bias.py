"""optimizer-bias: GD/SGD from zero reach X⁺y, AdaGrad/RMSProp/Adam go towards sign(Xᵀy) (Wilson et al. 2017),
GD matches the pseudo-inverse on generic under-determined least squares, and verdicts flip (synthetic cells)."""
import json

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from petridish.experiments.optimizer_bias import analyze, make_data, plot, population_error
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep
from petridish.train import train

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def quick():
    return run_sweep("optimizer-bias", quick=True, store="memory", progress=False, workers=2)


def test_gd_from_zero_matches_the_pseudo_inverse_on_generic_underdetermined_least_squares():
    g = np.random.default_rng(0)
    x, y = g.standard_normal((20, 60)), g.standard_normal(20)          # d > n: infinitely many interpolants
    model = torch.nn.Linear(60, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    # ½·mean loss: Hessian XᵀX/n, λ_max ≈ (1 + √3)² ≈ 7.5; lr 0.2 is stable, κ ≈ 50 → 2000 steps ≫ 50·ln(1e8)
    train(model, torch.from_numpy(x), torch.from_numpy(y), optimizer="gd", lr=0.2, steps=2000, loss="mse")
    w = model.weight.detach()[0].numpy()
    w_pinv = np.linalg.pinv(x) @ y
    assert np.linalg.norm(w - w_pinv) / np.linalg.norm(w_pinv) < 1e-6
    w_lstsq = np.linalg.lstsq(x, y, rcond=None)[0]                     # an independent min-norm solver (SVD)
    assert np.linalg.norm(w_lstsq - w_pinv) / np.linalg.norm(w_pinv) < 1e-10


def test_wilson_construction_has_the_sign_solution_as_an_interpolant():
    x, y = make_data(40, 0.55, seed=3)
    s = np.sign(x.T @ y)
    np.testing.assert_array_equal(x @ s, 4 * y)                         # Lemma 3.1's condition: X·sign(Xᵀy) = 4y
    assert y.sum() > 0 and x.shape == (40, 240)
    assert population_error(s / 4, 0.55) == pytest.approx(0.45)        # always predicts +1
    assert population_error(np.linalg.pinv(x) @ y, 0.55) == 0.0


def test_quick_run_separates_the_optimizers(quick):
    assert all(c.status == "done" for c in quick.cells)
    by = {}
    for c in quick.cells:
        if c.params["problem"] == "wilson":
            by.setdefault(c.params["method"], []).append(c.metrics)
    for m in ("gd", "sgd"):
        assert all(r["rel_dist_min_norm"] < 1e-6 and r["test_error"] == 0.0 for r in by[m])
    for m in ("adagrad", "rmsprop", "adam"):
        assert all(r["cosine_to_sign_solution"] > 0.99 and 0.35 < r["test_error"] < 0.6 and r["train_loss"] < 1e-6
                   for r in by[m])
    wilson = [c for c in quick.analysis.claims if not c.claim.startswith("mnist1d")]
    assert len(wilson) == 12 and all(c.verdict == "supported" for c in wilson), quick.analysis.findings
    json.dumps(quick.analysis.to_json())
    fig = Figure(figsize=(14, 4))
    plot(quick.cells, fig)
    assert len(fig.axes) == 3


def test_quick_mnist1d_arm_tunes_each_optimizer_and_sketches_its_solution(quick):
    digits = [c for c in quick.cells if c.params["problem"] == "mnist1d"]
    assert {c.params["method"] for c in digits} == {"gd", "sgd", "adagrad", "rmsprop", "adam"}
    for c in digits:
        m = c.metrics
        assert 0.0 <= m["test_error"] < 0.8 and len(m["sketch"]) == 512     # better than chance (0.9)
        # the Gaussian sketch preserves the length of θ − θ₀ to ~√(2/512) ≈ 6% (4 sd: 25%)
        assert abs(np.linalg.norm(m["sketch"]) / m["dist_from_init"] - 1) < 0.25
    claims = [c for c in quick.analysis.claims if c.claim.startswith("mnist1d")]
    assert len(claims) == 3 and all(c.verdict != "not measured" for c in claims)
    assert len(quick.analysis.values["mnist1d"]["distance_between_solutions"]) == 10


def _synthetic(present: bool):
    rng = np.random.default_rng(0)
    cells = []
    for s in range(4):
        for m in ("gd", "sgd", "adagrad", "rmsprop", "adam"):
            adaptive = m in ("adagrad", "rmsprop", "adam") and present
            met = {"rel_dist_min_norm": 2.7 if adaptive else 1e-9 * (1 + rng.random()),
                   "cosine_to_sign_solution": 1 - 1e-4 * rng.random() if adaptive else 0.35 + 0.01 * rng.random(),
                   "test_error": 0.46 + 0.02 * rng.standard_normal() if adaptive else 0.002 * rng.random(),
                   "cosine_to_min_norm": 0.35, "train_loss": 1e-20, "norm": 1.0}
            cells.append(Cell(key=f"{m}{s}", experiment="optimizer-bias", params={"method": m}, seed=s,
                              status="done", metrics=met))
    return cells


def test_verdicts_flip_with_the_phenomenon():
    on = [c.verdict for c in analyze(_synthetic(True)).claims]
    off = [c.verdict for c in analyze(_synthetic(False)).claims]
    assert on == ["supported"] * 12, on
    assert off[:3] == ["supported"] * 3                       # GD/SGD claims hold either way
    assert off[3:] == ["refuted", "refuted", "inconclusive"] * 3, off
    assert "nan" not in " ".join(analyze(_synthetic(False)).findings).lower()
    assert [c.verdict for c in analyze([]).claims] == ["not measured"]
