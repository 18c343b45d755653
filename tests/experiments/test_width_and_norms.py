"""width-and-norms on its quick configuration: the phenomenon's signature, not just that it runs."""
import math

import matplotlib
import numpy as np
import pytest
import torch

from petridish.lab.experiment import Cell
from petridish.experiments.width_and_norms import EXPERIMENT, MEASURES, rank_correlations, _rows

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def quick_cells():
    n = torch.get_num_threads()
    torch.set_num_threads(min(n, 2))
    cfg = EXPERIMENT.config(quick=True)
    seeds = list(range(EXPERIMENT.n_seeds(quick=True)))
    cells = []
    for width in cfg["width"]:
        p = dict(cfg, width=width)
        for s, m in zip(seeds, EXPERIMENT.run_group([p] * len(seeds), seeds)):
            cells.append(Cell(f"{width}-{s}", EXPERIMENT.name, p, s, "done", m))
    torch.set_num_threads(n)
    return cells


def test_test_error_does_not_rise_past_interpolation(quick_cells):
    rows = _rows(quick_cells)
    widths = [r["params"]["width"] for r in rows]
    tr = [r["metrics"]["train_error"]["mean"] for r in rows]
    te = [r["metrics"]["test_error"]["mean"] for r in rows]
    fit = [i for i, e in enumerate(tr) if e <= 0.01]
    assert fit and fit[0] < len(widths) - 1, (widths, tr)       # interpolation happens, with wider nets after it
    assert all(tr[i] <= 0.01 for i in range(fit[0], len(tr)))
    assert tr[0] > 0.2                                             # the narrowest net cannot fit
    # far past the interpolation width the test error is no higher (1 point tolerance)
    assert te[-1] <= te[fit[0]] + 0.01, te
    a = EXPERIMENT.analyze(quick_cells)
    assert a.values["interpolation_width"] == widths[fit[0]]
    assert any("parameter count" in f for f in a.findings)


def test_parameter_count_does_not_track_test_error(quick_cells):
    corr = rank_correlations(quick_cells)
    assert set(corr) >= {"params", "path_norm", "spectral_complexity", "spectral_complexity_normalized"}
    assert corr["params"].n == len(quick_cells) == 15              # seeds × widths pooled: the test has power
    assert corr["params"].estimate < 0.5                          # not strongly positive: the phenomenon
    assert corr["path_norm"].ci[0] <= corr["path_norm"].estimate <= corr["path_norm"].ci[1]
    claims = {c.claim: c for c in EXPERIMENT.analyze(quick_cells).claims}
    assert claims["parameter count tracks test error"].verdict != "supported"
    assert "Holm-adjusted over 7 claims" in claims["ℓ2 path norm tracks test error"].test


def test_measures_are_consistent(quick_cells):
    for c in quick_cells:
        m = c.metrics
        w, d_in, d_out = c.params["width"], 40, 10
        assert m["params"] == d_in * w + w + w * d_out + d_out
        assert math.isfinite(m["spectral_complexity"]) and m["spectral_complexity"] > 0
        assert m["path_norm"] > 0 and m["frobenius_product"] > 0 and m["spectral_product"] > 0
        # Π||W||_σ <= Π||W||_F (spectral <= Frobenius, layer by layer)
        assert m["spectral_product"] <= m["frobenius_product"] * (1 + 1e-12)
        if m["margin"] > 0:
            assert math.isfinite(m["spectral_complexity_normalized"]) and m["spectral_complexity_normalized"] > 0
        else:
            assert m["spectral_complexity_normalized"] == math.inf
        assert 0 <= m["train_error"] <= 1 and 0 <= m["test_error"] <= 1


def test_run_equals_run_group_member_and_plot(quick_cells):
    c = next(c for c in quick_cells if c.params["width"] == min(x.params["width"] for x in quick_cells)
             and c.seed == 1)
    single = EXPERIMENT.run(c.params, 1)
    for k in ("test_error", "train_error", "path_norm", "spectral_complexity"):
        assert math.isclose(single[k], c.metrics[k], rel_tol=1e-3, abs_tol=1e-6), k
    import matplotlib.pyplot as plt
    fig = plt.figure()
    EXPERIMENT.plot(quick_cells, fig)
    assert len(fig.axes) == 3 and len(fig.axes[1].lines) == 7
    plt.close(fig)


def _synthetic(tracks: bool) -> list[Cell]:
    """5 widths × 3 seeds; test error falls with width. With ``tracks`` every measure is a noisy
    increasing function of test error; without, the measures are independent draws."""
    g = np.random.default_rng(0)
    cells = []
    for i, w in enumerate([4, 8, 16, 32, 64]):
        for s in range(3):
            te = 0.5 - 0.05 * i + 0.01 * g.standard_normal()
            m = {"train_error": max(0.0, 0.3 - 0.1 * i), "test_error": te,
                 **{n: float(np.exp(5 * te + 0.02 * g.standard_normal()) if tracks else g.lognormal())
                    for n in MEASURES}}
            cells.append(Cell(f"{w}-{s}", EXPERIMENT.name, {"width": w}, s, "done", m))
    return cells


def test_flip_measures_track_test_error_only_when_they_do():
    absent = {c.claim: c for c in EXPERIMENT.analyze(_synthetic(False)).claims}
    present = {c.claim: c for c in EXPERIMENT.analyze(_synthetic(True)).claims}
    for label in MEASURES.values():
        assert absent[f"{label} tracks test error"].verdict in ("inconclusive", "refuted")
        assert present[f"{label} tracks test error"].verdict == "supported"
    # test error falls past interpolation (width 32 -> 64) in both; 2 interpolating widths -> 6 cells
    assert present["test error falls from the interpolation width 32 to width 64"].verdict == "supported"
    inter = [c for c in present.values() if "among the interpolating widths (32, 64)" in c.claim]
    assert len(inter) == 7 and all(c.verdict != "not measured" for c in inter)
    for f in EXPERIMENT.analyze(_synthetic(True)).findings:
        assert "nan" not in f.lower()
