"""random-labels: the memorization signature (Zhang et al. 2017) on a cheap MLP configuration."""
import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from petridish.experiments.random_labels import CHANCE, EXPERIMENT, _crossing, _shuffle_each, analyze, streams
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep
from petridish.models import build_model

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
    claims = {c.claim: c for c in sweep.analysis.claims}
    slow = claims["the MLP takes longer to fit random labels than true labels"]
    pairs = {c.seed: {} for c in sweep.cells}
    for c in sweep.cells:
        if c.params["inputs"] == "original" and c.params["corruption"] in (0.0, 1.0):
            pairs[c.seed][c.params["corruption"]] = c.metrics["steps_to_fit"]
    ratio = np.exp(np.mean([np.log(v[1.0] / v[0.0]) for v in pairs.values()]))
    assert slow.estimate == pytest.approx(ratio) and slow.ci[0] < ratio < slow.ci[1]
    # time to fit is measured between epochs: it differs across seeds (no [290, 290] CIs)
    assert len({v[1.0] for v in pairs.values()}) == 2 and len({v[0.0] for v in pairs.values()}) == 2
    fits = [c for c in sweep.analysis.claims if "fits its training set" in c.claim]
    assert len(fits) == 5 and all(c.verdict == "supported" for c in fits), [c.finding() for c in fits]
    assert all("nan" not in f.lower() for f in sweep.analysis.findings)


def test_figure_draws(sweep):
    fig = Figure(figsize=(12, 4))
    EXPERIMENT.plot(sweep.cells, fig)
    acc, steps, curves = fig.axes                                 # one model: accuracy, steps, curves
    levels = (0.0, 0.5, 1.0)
    # the joined curves are the seed means at each label corruption
    test = next(c for c in acc.containers if c.get_label() == "test").lines[0]
    assert list(test.get_xdata()) == list(levels)
    np.testing.assert_allclose(test.get_ydata(), [_mean(sweep.cells, "test_acc", corruption=p) for p in levels])
    np.testing.assert_allclose(steps.containers[0].lines[0].get_ydata(),
                               [_mean(sweep.cells, "steps_to_fit", corruption=p) for p in levels])
    # one mean training-accuracy curve per condition, in axis order; p = 1's is the mean of its seeds' curves
    assert [line.get_label() for line in curves.lines] == ["p = 0", "p = 0.5", "p = 1", "shuffled inputs",
                                                           "gaussian inputs"]
    runs = [c.metrics["train_acc_curve"] for c in sweep.cells
            if c.params["inputs"] == "original" and c.params["corruption"] == 1.0]
    n = min(len(r) for r in runs)
    np.testing.assert_allclose(curves.lines[2].get_ydata(), np.mean([r[:n] for r in runs], axis=0))


def test_shuffle_each_permutes_every_row():
    x = torch.arange(12.0).reshape(3, 4).repeat(50, 1)            # (150, 4)
    y = _shuffle_each(x, torch.Generator().manual_seed(0))
    assert torch.equal(y.sort(dim=1).values, x.sort(dim=1).values)   # each row keeps its values
    assert len({tuple(r.argsort().tolist()) for r in y[::3]}) > 10    # rows get different permutations


def _first_weights(seed: int) -> torch.Tensor:
    model = build_model("mlp", d_in=40, d_out=10, seed=seed, width=128, depth=2)
    return next(m for m in model.modules() if isinstance(m, torch.nn.Linear)).weight.detach().reshape(-1)


def test_label_noise_mask_is_independent_of_the_initial_weights():
    # The old scheme seeded both from the cell seed: the first n uniforms were the same, so the
    # p = 0.15 corruption mask equalled "first-layer weight < -0.7 bound" (U(-b, b) = b(2u - 1)).
    n, p = 1000, 0.15
    for seed in range(3):
        s = streams(seed)
        assert len(set(s.values())) == 3
        w = _first_weights(s["init"])
        bound = 1 / 40 ** 0.5                                        # PyTorch's default U(-1/√fan_in, 1/√fan_in)
        low = w[:n] < -0.7 * bound
        mask = torch.rand(n, generator=torch.Generator().manual_seed(s["label_noise"])) < p
        old = torch.rand(n, generator=torch.Generator().manual_seed(seed)) < p
        assert torch.equal(old, _first_weights(seed)[:n] < -0.7 * bound)          # the defect the streams remove
        # independent: agreement ~ 0.85² + 0.15² = 0.745 (binomial sd 0.014)
        assert abs(float((mask == low).double().mean()) - 0.745) < 0.06


def test_crossing_interpolates_between_evaluations():
    steps, acc = np.array([4, 8, 12]), np.array([0.5, 0.9, 1.0])
    assert _crossing(steps, acc, 0.99) == pytest.approx(8 + 4 * 0.09 / 0.1)
    assert _crossing(steps, acc, 0.3) == pytest.approx(4 * 0.2 / 0.4)     # from chance at step 0
    assert np.isnan(_crossing(steps, np.array([0.5, 0.6, 0.7]), 0.99))


def _cells(random_train_acc: float, slowdown: float) -> list[Cell]:
    """Synthetic MLP cells, 4 seeds: true labels fitted at ~400 updates; random labels reach
    ``random_train_acc`` (fitted iff >= 0.99) after ``slowdown`` times as many updates."""
    base = {"model": "mlp", "fit_threshold": 0.99, "epochs": 60}
    jitter = [1.0, 1.07, 0.95, 1.03]
    out = []
    for seed, j in enumerate(jitter):
        for inputs, corr, acc, steps, test in (("original", 0.0, 1.0, 400 * j, 0.6 + 0.01 * j),
                                               ("original", 1.0, random_train_acc, 400 * j * slowdown * j, 0.1 + 0.01 * j),
                                               ("gaussian", 0.0, 1.0, 700 * j, 0.1)):
            fitted = acc >= 0.99
            out.append(Cell(f"{inputs}{corr}-{seed}", "random-labels", dict(base, inputs=inputs, corruption=corr), seed,
                            "done", {"train_acc": acc, "test_acc": test, "fitted": fitted,
                                     "steps_to_fit": steps if fitted else float("nan")}))
    return out


def test_flip_fitting_random_labels():
    no = {c.claim: c for c in analyze(_cells(0.62, 2.0)).claims}
    yes = {c.claim: c for c in analyze(_cells(1.0, 2.0)).claims}
    key = "the MLP fits its training set with random labels"
    assert no[key].verdict == "refuted" and yes[key].verdict == "supported"
    slow = "the MLP takes longer to fit random labels than true labels"
    # never fitted: its time to fit is reported as not measured, with the reason, never averaged
    assert no[slow].verdict == "not measured" and "4 of its random labels runs never reached 0.99" in no[slow].reason
    assert yes[slow].verdict == "supported" and yes[slow].estimate == pytest.approx(2.0, rel=0.05)
    assert all("nan" not in f.lower() for f in analyze(_cells(0.62, 2.0)).findings)


def test_flip_slowdown():
    same = {c.claim: c for c in analyze(_cells(1.0, 1.0)).claims}
    slower = {c.claim: c for c in analyze(_cells(1.0, 1.8)).claims}
    key = "the MLP takes longer to fit random labels than true labels"
    assert same[key].verdict == "inconclusive" and slower[key].verdict == "supported"
    assert "Holm-adjusted over 2 claims" in slower[key].test
