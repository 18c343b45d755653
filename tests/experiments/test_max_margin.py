"""max-margin: GD's direction → the ℓ2 max-margin separator (quick run), coordinate/sign descent → their own
geometries, the 1/t and 1/log t laws, and verdicts that flip with the phenomenon (synthetic cells)."""
import json

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from petridish.experiments.max_margin import analyze, descend, make_data, plot
from petridish.instruments import max_margin_direction
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def quick():
    return run_sweep("max-margin", quick=True, store="memory", progress=False, workers=2)


def test_quick_gd_reaches_the_l2_direction_and_the_others_their_own(quick):
    assert all(c.status == "done" for c in quick.cells)
    gd = [c for c in quick.cells if c.params["method"] == "gd"]
    assert len(gd) >= 3 and all(c.metrics["final_cosine"] >= 0.99 for c in gd)
    for c in quick.cells:
        cos = c.metrics["cosine_to_max_margin"]
        assert len(cos) == len(c.metrics["step"]) and all(-1 <= v <= 1 + 1e-12 for v in cos)
    cd = [c for c in quick.cells if c.params["method"] == "coordinate"]
    assert all(c.metrics["final_cosine_l1"] > c.metrics["final_cosine"] + 0.2 for c in cd)
    sign = [c for c in quick.cells if c.params["method"] == "sign"]
    assert all(c.metrics["final_linf_margin_ratio"] > 0.9 for c in sign)
    assert all(v == "supported" for v in [c.verdict for c in quick.analysis.claims]), quick.analysis.findings
    doc = json.loads(json.dumps(gd[0].to_json()))
    assert isinstance(doc["metrics"]["cosine_to_max_margin"], list)
    fig = Figure(figsize=(13, 4))
    plot(quick.cells, fig)
    assert len(fig.axes) == 3


def test_gd_on_two_points_converges_to_the_known_direction():
    # x = (1, 0) (+1), (0, 1) (−1): both are support vectors, ŵ ∝ (1, −1) and GD's iterate stays on that line
    x, y = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, -1.0])
    _, ws, loss = descend(x, y, "gd", 2000, 1.0)
    np.testing.assert_allclose(ws[-1] / np.linalg.norm(ws[-1]), [2 ** -0.5, -(2 ** -0.5)], atol=1e-12)
    assert loss[-1] < loss[0]


def test_data_are_separable_with_the_stated_margin():
    x, y = make_data(30, 200, 3, 1.0, seed=0)
    u = max_margin_direction(x, y)
    w = np.zeros(200)
    w[:3] = 3 ** -0.5
    assert (y * (x @ w)).min() >= 1.0 - 1e-12 and (y * (x @ u)).min() >= (y * (x @ w)).min() - 1e-9


def _cell(method, seed, **metrics):
    return Cell(key=f"{method}{seed}", experiment="max-margin", params={"method": method}, seed=seed,
                status="done", metrics=metrics)


def _synthetic(present: bool):
    rng = np.random.default_rng(1)
    e = lambda s=0.002: s * rng.standard_normal()
    cells = []
    for s in range(4):
        base = dict(final_l2_margin_ratio=0.9, final_l1_margin_ratio=0.5, final_loss=1e-5)
        if present:
            gd = dict(final_cosine=0.997 + e(), loss_slope=-1 + e(), angle_fall=0.4 + e(), inv_angle_slope=1.0,
                      inv_angle_slope_ratio=1 + e(0.05), final_cosine_l1=0.6 + e(), final_cosine_linf=0.7,
                      final_linf_margin_ratio=0.3 + e())
            cd = dict(final_cosine=0.6 + e(), final_cosine_l1=0.99 + e(), final_cosine_linf=0.1)
            sg = dict(final_linf_margin_ratio=0.95 + e(), final_cosine=0.7, final_cosine_l1=0.2, final_cosine_linf=0.98)
        else:   # every method stalls at one common direction, far from the max-margin ones; the loss plateaus
            gd = dict(final_cosine=0.8 + e(), loss_slope=-0.05 + e(), angle_fall=1.0 + e(0.01), inv_angle_slope=0.0,
                      inv_angle_slope_ratio=3 + e(0.05), final_cosine_l1=0.8 + e(), final_cosine_linf=0.8,
                      final_linf_margin_ratio=0.5 + e())
            cd = dict(final_cosine=0.8 + e(), final_cosine_l1=0.8 + e(), final_cosine_linf=0.8)
            sg = dict(final_linf_margin_ratio=0.5 + e(), final_cosine=0.8, final_cosine_l1=0.8, final_cosine_linf=0.8)
        cells += [_cell("gd", s, **base, **gd), _cell("coordinate", s, **base, **cd, final_linf_margin_ratio=0.1),
                  _cell("sign", s, **base, **sg)]
    return cells


def test_verdicts_flip_with_the_phenomenon():
    on = [c.verdict for c in analyze(_synthetic(True)).claims]
    off = [c.verdict for c in analyze(_synthetic(False)).claims]
    assert on == ["supported"] * 7, on
    assert off[:4] == ["refuted", "refuted", "inconclusive", "refuted"], off
    assert all(v in ("inconclusive", "refuted") for v in off[4:]), off
    assert "nan" not in " ".join(analyze(_synthetic(False)).findings).lower()
    assert [c.verdict for c in analyze([]).claims] == ["not measured"]
