"""matrix-completion: GD on UUᵀ approaches the minimum-nuclear-norm completion as α → 0 (quick run),
the Razin–Cohen 2×2 keeps its norms growing, and the verdicts flip with the phenomenon (synthetic cells)."""
import json

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from petridish.experiments.matrix_completion import EXPERIMENT, analyze, effective_rank, plot, run
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def quick():
    return run_sweep("matrix-completion", quick=True, store="memory", progress=False, workers=2)


def _ratios(cells):
    out = {}
    for c in cells:
        if c.params["arm"] == "psd-factorization":
            out.setdefault(c.params["alpha"], []).append(c.metrics["nuclear_norm_ratio"])
    return out


def test_quick_ratio_reaches_one_and_falls_monotonically_within_its_ci(quick):
    assert all(c.status == "done" for c in quick.cells)
    r = _ratios(quick.cells)
    alphas = sorted(r, reverse=True)                         # α falling
    assert min(alphas) <= 1e-4 and len(r[min(alphas)]) >= 3
    assert np.mean(r[min(alphas)]) <= 1.05
    by = quick.analysis.values["by_alpha"]
    for a, b in zip(alphas, alphas[1:]):                      # mean at the smaller α ≤ the larger's upper CI
        assert by[str(b)]["nuclear_norm_ratio"]["mean"] <= by[str(a)]["nuclear_norm_ratio"]["hi"] + 1e-12
    assert np.mean(r[max(alphas)]) > 1.2                      # α = 1: a far-from-minimal global minimum
    verdicts = {c.claim.split(" — ")[0]: c.verdict for c in quick.analysis.claims}
    assert all(v == "supported" for v in verdicts.values()), verdicts


def test_quick_json_carries_the_figure_numbers(quick):
    doc = json.loads(json.dumps([c.to_json() for c in quick.cells]))
    main = [c for c in doc if c["params"]["arm"] == "psd-factorization"]
    assert main and all({"nuclear_norm_gd", "nuclear_norm_min", "unobserved_rel_error"} <= set(c["metrics"])
                         and "alpha" in c["params"] for c in main)
    for c in main:        # GD's X nearly fits Ω: never below the minimum by more than its residual allows
        m = c["metrics"]
        assert m["nuclear_norm_gd"] >= m["nuclear_norm_min"] * (1 - 10 * m["train_rel_residual"])
    rc = [c for c in doc if c["params"]["arm"] == "razin-cohen"]
    assert rc and all("nuclear_norm_gd" not in c["metrics"] and len(c["metrics"]["rc_nuclear_norm"])
                      == len(c["metrics"]["rc_step"]) for c in rc)
    fig = Figure(figsize=(13, 4))
    plot(quick.cells, fig)
    assert len(fig.axes) == 3


def test_razin_cohen_norms_diverge_while_the_fit_improves():
    m = run({"arm": "razin-cohen", "alpha": 0.01, "rc_depth": 3, "rc_lr": 0.02, "rc_steps": 20_000}, 0)
    w22, loss = np.array(m["rc_abs_w22"]), np.array(m["rc_loss"])
    late = len(w22) // 2
    assert np.all(np.diff(w22[late:]) > 0) and np.all(np.diff(loss[late:]) < 0)
    # any exact fit would need det W = −1; the loss ~ W₁₁² ~ 1/W₂₂²: W₂₂·√(2·loss) stays of order 1
    assert 0.3 < w22[-1] * np.sqrt(2 * loss[-1]) < 3
    assert m["rc_final_effective_rank"] < 1.001
    assert effective_rank(np.eye(2)) == pytest.approx(2.0) and effective_rank(np.diag([1.0, 0.0])) == 1.0


def _cell(arm, alpha, seed, **metrics):
    params = {"arm": arm, "alpha": alpha}
    return Cell(key=f"{arm}{alpha}{seed}", experiment="matrix-completion", params=params, seed=seed,
                status="done", metrics=metrics)


def _synthetic(present: bool):
    rng = np.random.default_rng(0)
    cells = []
    for a in (1.0, 0.1, 0.01, 1e-3, 1e-4):
        for s in range(3):
            ratio = (1 + 0.6 * a ** 0.5 if present else 1.3) + 0.01 * rng.standard_normal()
            err = (0.05 + 0.4 * a ** 0.5 if present else 0.3) + 0.01 * rng.standard_normal()
            cells.append(_cell("psd-factorization", a, s, nuclear_norm_ratio=ratio, unobserved_rel_error=err,
                               train_rel_residual=1e-3))
            g = rng.uniform(0.5, 0.7) if present else 0.01 * rng.standard_normal()
            er = 1 + 1e-5 if present else 1.4 + 0.05 * rng.standard_normal()
            cells.append(_cell("razin-cohen", a, s, rc_min_log_norm_growth=g, rc_final_effective_rank=er,
                               rc_final_loss=1e-3, rc_final_nuclear_norm=17.0))
    return cells


def test_verdicts_flip_with_the_phenomenon():
    on = {c.claim.split(" — ")[0][:40]: c.verdict for c in analyze(_synthetic(True)).claims}
    off = {c.claim.split(" — ")[0][:40]: c.verdict for c in analyze(_synthetic(False)).claims}
    assert set(on.values()) == {"supported"}, on
    assert list(off.values()) == ["refuted", "inconclusive", "inconclusive", "supported", "refuted",
                                  "refuted", "supported"], off
    text = " ".join(analyze(_synthetic(False)).findings)
    assert "nan" not in text.lower()
    empty = analyze([])
    assert [c.verdict for c in empty.claims] == ["not measured"]
