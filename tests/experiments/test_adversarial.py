"""adversarial: a small real sweep (the metrics' invariants) and verdicts that flip with the phenomenon
(synthetic cells): the gain of PGD training, its cost, PGD vs FGSM, transfer, and the two-sided width claim."""
import json

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from petridish.experiments.adversarial import EPS_MULT, EXPERIMENT, QUANTILES, analyze, plot
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small():
    return run_sweep("adversarial", quick=True, store="memory", progress=False,
                     overrides={"dataset": "digits", "arch": ["mlp-16", "mlp-64"], "epochs": 3, "train_steps": 2,
                                "attack_steps": 5, "n_eval": 80})


def test_a_small_sweep_measures_consistent_numbers(small):
    assert len(small.cells) == 12 and all(c.status == "done" for c in small.cells)
    for c in small.cells:
        m = c.metrics
        assert m["eps_grid"] == pytest.approx([e * 0.1 for e in EPS_MULT])
        # ε = 0: both attacks return the inputs, so both curves start at the clean accuracy, exactly
        assert m["pgd_curve"][0] == m["fgsm_curve"][0] == m["clean_acc"]
        assert m["robust_acc"] == m["pgd_curve"][EPS_MULT.index(1.0)] <= m["clean_acc"]
        assert m["pgd_curve"][-1] <= m["pgd_curve"][1]        # 3ε* is no weaker than ε*/4
        assert m["fgsm_minus_pgd"] == pytest.approx(m["fgsm_acc"] - m["robust_acc"])
        assert 0 <= m["transfer_success"] <= 1 and 0 <= m["white_box_success"] <= 1
        q = m["deepfool_quantiles"]
        assert len(q) == len(QUANTILES) and all(a <= b for a, b in zip(q, q[1:])) and q[0] > 0
    # (3 epochs are too few for PGD training's gain to stand out here, 0.39 vs 0.37 measured: that gain is
    # tested in tests/train/test_adversarial_training.py and claimed by the default run)
    claims = small.analysis.claims
    assert len(claims) == 8 and all(c.verdict != "not measured" for c in claims), small.analysis.findings
    doc = json.loads(json.dumps(small.analysis.to_json()))
    assert [c["verdict"] for c in doc["claims"]] == [c.verdict for c in claims]
    fig = Figure(figsize=(15, 8))
    plot(small.cells, fig)
    assert len(fig.axes) == 6


def _cells(gain=0.3, cost=0.05, fgsm_gap=0.03, transfer_gap=0.2, width=0.1, seeds=4):
    rng = np.random.default_rng(0)
    e = lambda: 0.005 * rng.standard_normal()
    cells = []
    for s in range(seeds):
        for a, w in (("mlp-16", 0.0), ("mlp-256", 1.0)):
            for t in ("standard", "adversarial"):
                adv = t == "adversarial"
                robust = 0.4 + (gain if adv else 0.0) + w * width + e()
                clean = 0.9 - (cost if adv else 0.0) + e()
                white = 0.5 + e()
                m = dict(robust_acc=robust, clean_acc=clean, fgsm_acc=robust + fgsm_gap + e(),
                         white_box_success=white, transfer_success=white - transfer_gap + e())
                m["fgsm_minus_pgd"] = m["fgsm_acc"] - robust
                cells.append(Cell(key=f"{a}{t}{s}", experiment="adversarial", seed=s, status="done", metrics=m,
                                  params={"dataset": "digits", "arch": a, "training": t, "eps": 0.1}))
    return cells


def test_verdicts_flip_with_the_phenomenon():
    on = analyze(_cells()).claims
    assert [c.verdict for c in on] == ["supported"] * 8, [c.finding() for c in on]
    assert "wider standard MLPs are more robust" in on[6].claim
    off = analyze(_cells(gain=-0.1, cost=-0.05, fgsm_gap=-0.03, transfer_gap=-0.1, width=-0.1)).claims
    assert [c.verdict for c in off[:6]] == ["refuted"] * 6, [c.finding() for c in off]
    # the width claim is two-sided: a clear negative effect is supported, stated the other way round
    assert off[6].verdict == "supported" and "wider standard MLPs are less robust" in off[6].claim
    none = analyze(_cells(width=0.0)).claims
    assert none[6].verdict == "refuted" and none[6].ci[0] > -0.02 and none[6].ci[1] < 0.02   # inside ± 2 points
    noisy = analyze(_cells(width=0.01, seeds=2)).claims
    assert noisy[6].verdict in ("inconclusive", "refuted")
    assert "nan" not in " ".join(analyze(_cells(gain=-0.1)).findings).lower()


def test_no_cells_is_not_measured():
    assert [c.verdict for c in analyze([]).claims] == ["not measured"]


def test_declaration():
    assert EXPERIMENT.seeds >= 3 and EXPERIMENT.tiny and EXPERIMENT.quick_budget_s > 0
    assert EXPERIMENT.bounds["robust_acc"] == (0.0, 1.0)
