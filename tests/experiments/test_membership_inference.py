"""membership-inference: a small run (leakage rises with overfitting; ensemble = per-cell), and
verdicts that flip with the phenomenon (synthetic cells)."""
import json

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from petridish.experiments.membership_inference import EXPERIMENT, analyze, plot, run, run_group
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"width": [8, 128], "epochs": [2, 40], "weight_decay": [0.0, 0.01], "n_train": 100, "shadows": 1,
         "batch_size": 25}


@pytest.fixture(scope="module")
def small():
    return run_sweep("membership-inference", overrides=SMALL, quick=True, store="memory", progress=False)


def test_small_run_leaks_more_when_it_overfits(small):
    assert len(small.cells) == 24 and all(c.status == "done" for c in small.cells)
    cell = lambda w, e: [c.metrics for c in small.cells if c.params["width"] == w and c.params["epochs"] == e
                         and c.params["weight_decay"] == 0.0]
    over, under = cell(128, 40), cell(8, 2)
    assert all(m["train_error"] == 0.0 and m["loss_auc"] > 0.6 and m["loss_auc_lo"] > 0.5 for m in over)
    assert np.mean([m["loss_auc"] for m in under]) < np.mean([m["loss_auc"] for m in over]) - 0.15
    for m in over:
        assert m["loss_auc_lo"] <= m["loss_auc"] <= m["loss_auc_hi"] and 0 <= m["lira_tpr_at_1pct"] <= 1
    claims = small.analysis.claims
    assert claims[0].verdict == "supported" and claims[0].estimate > 0.5, small.analysis.findings
    assert len(claims) == 5 and all(c.measured for c in claims)
    json.dumps(small.analysis.to_json())
    fig = Figure(figsize=(14, 4))
    plot(small.cells, fig)
    assert len(fig.axes) == 3


def test_run_group_equals_run():
    p = EXPERIMENT.config(overrides={**SMALL, "width": 16, "epochs": 3, "weight_decay": 0.0}, quick=True)
    together = run_group([p, p], [4, 5])
    alone = run(p, 5)
    for k, v in alone.items():
        assert together[1][k] == pytest.approx(v, rel=EXPERIMENT.group_rtol, abs=1e-9), k


def _cells(present: bool):
    rng = np.random.default_rng(0)
    e = lambda: 0.01 * rng.standard_normal()
    cells = []
    for w in (16, 256):
        for ep in (4, 64):
            for wd in (0.0, 0.01):
                for s in range(4):
                    gap = (0.1 + 0.5 * (ep == 64) + 0.1 * (w == 256) - 0.1 * (wd > 0)) + e()
                    if present:   # AUC rises with the gap; weight decay lowers it; LiRA beats loss at 1% FPR
                        auc, lira, loss = 0.5 + 0.5 * gap + e(), 0.1 + e(), 0.02 + e()
                    else:         # the reverse: AUC falls as the gap grows; LiRA below the loss threshold
                        auc, lira, loss = 0.9 - 0.5 * gap + e(), 0.01 + e(), 0.1 + e()
                    cells.append(Cell(key=f"{w}{ep}{wd}{s}", experiment="membership-inference",
                                      params={"width": w, "epochs": ep, "weight_decay": wd}, seed=s, status="done",
                                      metrics={"gap": gap, "loss_gap": gap, "loss_auc": auc, "shadow_auc": auc,
                                               "lira_auc": auc, "loss_tpr_at_1pct": loss,
                                               "lira_tpr_at_1pct": lira}))
    return cells


def test_verdicts_flip_with_the_phenomenon():
    on = analyze(_cells(True)).claims
    off = analyze(_cells(False)).claims
    assert [c.verdict for c in on] == ["supported"] * 5, [c.finding() for c in on]
    assert [c.verdict for c in off] == ["refuted"] * 5, [c.finding() for c in off]
    assert [c.verdict for c in analyze([]).claims] == ["not measured"]
    assert "nan" not in " ".join(analyze(_cells(False)).findings).lower()
