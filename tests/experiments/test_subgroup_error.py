"""subgroup-error: the two-group population against its closed forms, the arms' training sets, a
small run, and verdicts that flip with the phenomenon (synthetic cells)."""
import json
import math

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from petridish.data import subsample
from petridish.data.groups import rules, two_groups
from petridish.experiments.subgroup_error import analyze, plot, training_set
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_population_has_exact_groups_and_each_groups_rule():
    ds = two_groups(n_train=1000, n_test=20_000, minority_share=0.05, angle=60.0, shift=3.0, seed=0)
    assert int(ds.groups_train.sum()) == 50 and int(ds.groups_test.sum()) == 10_000
    w = rules(10, 60.0).float()
    for x, y, g in ((ds.x_train, ds.y_train, ds.groups_train), (ds.x_test, ds.y_test, ds.groups_test)):
        assert torch.equal(y, ((x * w[g]).sum(1) > 0).long())                 # each group's own rule, no noise
    te_min = ds.groups_test == 1
    # the minority's inputs are shifted by 3 along the last axis only
    assert abs(ds.x_test[te_min, -1].mean().item() - 3.0) < 0.05 and abs(ds.x_test[~te_min, -1].mean().item()) < 0.05
    # the majority's rule costs the minority θ/π = 1/3 (s.e. 0.005 at 10,000 examples)
    err = ((ds.x_test[te_min] @ w[0] > 0).long() != ds.y_test[te_min]).double().mean().item()
    assert err == pytest.approx(1 / 3, abs=0.02) and ds.meta["majority_rule_error_on_minority"] == pytest.approx(1 / 3)


def test_arms_train_on_reweighted_and_balanced_sets():
    ds = two_groups(n_train=1000, n_test=10, minority_share=0.05, seed=1)
    x, y, g = ds.x_train, ds.y_train, ds.groups_train
    xr, yr, gr = training_set(x, y, g, "reweight", 0)
    assert int((gr == 0).sum()) == 950 and int((gr == 1).sum()) == 50 * 19                 # r = 950/50
    xs, ys, gs = training_set(x, y, g, "subsample", 0)
    assert int((gs == 0).sum()) == int((gs == 1).sum()) == 50
    assert training_set(x, y, g, "erm", 0)[0] is not x and torch.equal(training_set(x, y, g, "erm", 0)[0], x)
    # the group column follows a subsample of the training set
    sub = subsample(ds, 300, seed=0)
    w = rules(10, 60.0).float()
    assert sub.groups_train.shape == (300,) and torch.equal(sub.y_train, ((sub.x_train * w[sub.groups_train]).sum(1) > 0).long())


@pytest.fixture(scope="module")
def small():
    return run_sweep("subgroup-error", overrides={"minority_share": [0.02, 0.5], "n_train": 400, "n_test": 600,
                                                  "steps": 150, "claim_share": 0.02},
                     quick=True, store="memory", progress=False)


def test_small_run_shows_the_minority_gap_closing_with_its_share(small):
    assert len(small.cells) == 18 and all(c.status == "done" for c in small.cells)
    erm = lambda s, k: np.mean([c.metrics[k] for c in small.cells if c.params["arm"] == "erm"
                                and c.params["minority_share"] == s])
    assert erm(0.02, "error_g1") > erm(0.02, "error_g0") + 0.1
    assert erm(0.5, "worst_error") < erm(0.02, "worst_error") - 0.1
    claims = small.analysis.claims
    assert claims[0].verdict == "supported" and claims[0].estimate < -0.5, small.analysis.findings
    assert len(claims) == 6 and all(c.measured for c in claims)
    json.dumps(small.analysis.to_json())
    fig = Figure(figsize=(13, 4))
    plot(small.cells, fig)
    assert len(fig.axes) == 3


def _cells(present: bool):
    rng = np.random.default_rng(0)
    e = lambda: 0.005 * rng.standard_normal()
    cells = []
    for share in (0.01, 0.05, 0.2, 0.5):
        for arm in ("erm", "reweight", "subsample"):
            for s in range(4):
                if present:   # minority error falls with its share; the arms trade average error for the worst group
                    g1 = 0.35 - 0.5 * share if arm == "erm" else 0.2 - 0.2 * share
                    g0 = 0.03 if arm == "erm" else 0.08
                else:         # the reverse: the gap grows with the share and balancing hurts the minority
                    g1 = 0.02 + 0.3 * share if arm == "erm" else 0.9
                    g0 = 0.3 + 0.5 * share if arm == "erm" else 0.01
                g0, g1 = g0 + e(), g1 + e()
                m = {"error_g0": g0, "error_g1": g1, "worst_error": max(g0, g1),
                     "population_error": (1 - share) * g0 + share * g1}
                cells.append(Cell(key=f"{share}{arm}{s}", experiment="subgroup-error",
                                  params={"minority_share": share, "arm": arm, "claim_share": 0.05}, seed=s,
                                  status="done", metrics=m))
    return cells


def test_verdicts_flip_with_the_phenomenon():
    on = analyze(_cells(True)).claims
    off = analyze(_cells(False)).claims
    assert [c.verdict for c in on] == ["supported"] * 6, [c.finding() for c in on]
    assert [c.verdict for c in off] == ["refuted"] * 6, [c.finding() for c in off]
    assert "0.05" in on[1].claim
    assert [c.verdict for c in analyze([]).claims] == ["not measured"]
    assert "nan" not in " ".join(analyze(_cells(False)).findings).lower()
