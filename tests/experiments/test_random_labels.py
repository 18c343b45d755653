"""random-labels: the memorization signature (Zhang et al. 2017) on a cheap MLP configuration."""
import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from petridish.experiments.random_labels import CHANCE, EXPERIMENT, _shuffle_each
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")

# the quick configuration restricted to the MLP, n = 1000 so that true labels carry structure
# worth exploiting (at n = 500 fitting random labels takes only ~1.2x as long), lr 0.05 to fit in 60 epochs
OVERRIDES = {"model": "mlp", "n_train": 1000, "n_test": 500, "lr": 0.05}


@pytest.fixture(scope="module")
def sweep():
    return run_sweep("random-labels", quick=True, overrides=OVERRIDES, seeds=2, store="memory", progress=False)


def _mean(cells, name, inputs="original", corruption=None):
    vals = [c.metrics[name] for c in cells if c.params["inputs"] == inputs
            and (corruption is None or c.params["corruption"] == corruption)]
    assert len(vals) == 2, (inputs, corruption)                   # 2 seeds (quick uses 3)
    return float(np.mean(vals))


def test_grid_is_label_sweep_plus_input_conditions(sweep):
    conds = sorted({(c.params["inputs"], c.params["corruption"]) for c in sweep.cells})
    assert conds == [("gaussian", 0.0), ("original", 0.0), ("original", 0.5), ("original", 1.0), ("shuffled", 0.0)]
    assert all(c.status == "done" for c in sweep.cells)
    # the drawn corruption matches p·(1 − 1/C) of the labels changed (binomial sd ~ 0.016 at n = 1000)
    for c in sweep.cells:
        expected = c.params["corruption"] * (1 - CHANCE)
        assert abs(c.metrics["corrupted_fraction"] - expected) < 0.06


def test_fits_everything_while_test_accuracy_falls_to_chance(sweep):
    cells = sweep.cells
    assert min(c.metrics["train_acc"] for c in cells) >= 0.95
    assert all(c.metrics["fitted"] for c in cells)
    te0, te_half, te1 = (_mean(cells, "test_acc", corruption=p) for p in (0.0, 0.5, 1.0))
    assert abs(te1 - CHANCE) < 0.06                               # random labels: nothing to generalize
    assert te0 > CHANCE + 0.2 and te0 > te_half > te1             # true labels: far above chance
    # Gaussian inputs carry no information about the labels
    assert abs(_mean(cells, "test_acc", inputs="gaussian", corruption=0.0) - CHANCE) < 0.06


def test_random_labels_take_longer_to_fit(sweep):
    s0 = _mean(sweep.cells, "steps_to_fit", corruption=0.0)
    s1 = _mean(sweep.cells, "steps_to_fit", corruption=1.0)
    assert s1 >= 1.25 * s0, (s0, s1)                              # measured ~1.8x
    v = sweep.analysis.values["mlp"]
    assert v["steps_ratio"] == pytest.approx(s1 / s0)
    assert v["min_train_acc"] >= 0.95 and v["test_acc_slope"] < -0.2
    assert len(sweep.analysis.findings) == 4 and "times as long" in sweep.analysis.findings[2]


def test_figure_draws(sweep):
    fig = Figure(figsize=(12, 4))
    EXPERIMENT.plot(sweep.cells, fig)
    assert len(fig.axes) == 3                                     # one model: accuracy, steps, curves


def test_group_equals_single_cell_run():
    p = dict(EXPERIMENT.config(quick=True), model="mlp", inputs="original", n_train=100, n_test=100,
             width=16, epochs=4, corruption=1.0)
    group = EXPERIMENT.run_group([dict(p, corruption=0.0), p], [3, 4])[1]
    solo = EXPERIMENT.run(p, 4)
    assert group["train_acc_curve"] == pytest.approx(solo["train_acc_curve"], abs=0.011)
    assert group["test_acc"] == pytest.approx(solo["test_acc"], abs=0.011)


def test_shuffle_each_permutes_every_row():
    x = torch.arange(12.0).reshape(3, 4).repeat(50, 1)            # (150, 4)
    y = _shuffle_each(x, torch.Generator().manual_seed(0))
    assert torch.equal(y.sort(dim=1).values, x.sort(dim=1).values)   # each row keeps its values
    assert len({tuple(r.argsort().tolist()) for r in y[::3]}) > 10    # rows get different permutations
