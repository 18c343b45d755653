"""distribution-shift: the regenerated test sets (the generator replica reproduces mnist1d bit for bit, each
knob changes what it says, shifted sets keep the training statistics), the probit fit against numpy.polyfit,
a small real sweep, and verdicts that flip with the phenomenon (synthetic cells)."""
import json
import math

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats

from petridish.data import mnist1d
from petridish.experiments.distribution_shift import (SETS, SHIFTS, analyze, effective_robustness,
                                                      evaluation_sets, line_fit, plot, probit, probit_fit, raw_draw,
                                                      shifted_set, train_statistics, widened_difference)
from petridish.errors import InvalidParameterError
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_raw_draw_standardized_is_exactly_mnist1d():
    ds = mnist1d(n_train=200, n_test=100)
    x, y = raw_draw(n=300, seed=42)
    mean, std = train_statistics(n_train=200, n_test=100)
    assert (mean, std) == (float(x.mean()), float(x.std()))
    z = ((x - mean) / std).astype(np.float32)
    np.testing.assert_array_equal(z[:200], ds.x_train.numpy())
    np.testing.assert_array_equal(z[200:], ds.x_test.numpy())
    np.testing.assert_array_equal(y, np.concatenate([ds.y_train.numpy(), ds.y_test.numpy()]))


@pytest.mark.parametrize("knob", ["scale", "shear", "corr_noise"])
def test_scale_shear_and_noise_knobs_act_linearly_on_the_same_draw(knob):
    # each knob multiplies one uniform/Gaussian draw that the generator consumes whatever its value, so
    # with one seed x(3k) − x(0) = 3·(x(k) − x(0)) exactly, and nothing else moves
    x0, y0 = raw_draw(n=100, seed=3, knobs={knob: 0.0})
    x1, y1 = raw_draw(n=100, seed=3, knobs={knob: 0.25})
    x3, y3 = raw_draw(n=100, seed=3, knobs={knob: 0.75})
    assert (y0 == y1).all() and (y0 == y3).all()
    assert np.abs(x1 - x0).max() > 0.05
    np.testing.assert_allclose(x3 - x0, 3 * (x1 - x0), atol=1e-12)


def test_max_translation_bounds_where_the_signal_starts():
    # noise off: the template is the only non-zero stretch; rolled by k < max_translation on the 72-long
    # padded grid, it starts at index ≤ ceil((max_translation − 1)·39/71) of the 40-long output
    off = dict(corr_noise=0.0, iid_noise=0.0, shear=0.0)

    def starts(mt):
        nz = raw_draw(n=300, seed=3, knobs=dict(off, max_translation=mt))[0] != 0
        return np.array([np.flatnonzero(r & ~np.roll(r, 1))[0] for r in nz])

    s48, s72 = starts(48), starts(72)
    assert s48.max() <= math.ceil(47 * 39 / 71) < s72.max()
    assert s72.mean() - s48.mean() == pytest.approx((72 - 48) / 2 * 39 / 71, abs=2.5)


def test_shifted_sets_keep_the_training_statistics():
    stats_ = train_statistics(n_train=200, n_test=100)
    fresh, _ = shifted_set("fresh", value=None, n=500, seed=1, stats=stats_)
    noise, _ = shifted_set("noise", value=0.75, n=500, seed=1, stats=stats_)
    assert abs(float(fresh.mean())) < 0.1 and abs(float(fresh.std()) - 1) < 0.1     # same distribution: ≈ (0, 1)
    assert float(noise.std()) > 1.5        # not re-standardized: the extra noise stays in the inputs
    with pytest.raises(InvalidParameterError, match="test_seed"):   # the training draw's seed would couple them
        evaluation_sets({"test_seed": 42}, None)


def _cell(arch, epochs, seed, n_test=4000, **acc):
    return Cell(key=f"{arch}-{epochs}-{seed}", experiment="distribution-shift", seed=seed, status="done",
                params={"arch": arch, "epochs": epochs, "n_test": n_test, "test_seed": 1, "shift_translation": 72,
                        "shift_scale": 1.2, "shift_shear": 2.25, "shift_noise": 0.5},
                metrics={f"acc_{k}": v for k, v in acc.items()})


def test_probit_fit_equals_polyfit():
    g = np.random.default_rng(0)
    x, y = g.normal(size=30), g.normal(size=30)
    slope, intercept, r2 = line_fit(x, y)
    np.testing.assert_allclose([slope, intercept], np.polyfit(x, y, 1), rtol=1e-12)
    assert r2 == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-12)
    ida = g.uniform(0.3, 0.95, size=12)
    sha = np.clip(ida - 0.1 + 0.02 * g.normal(size=12), 0.05, 0.99)
    cells = [_cell("mlp-16" if i < 6 else "cnn-8", 1 + (i // 3) % 2, i % 3, id=float(a), shear=float(b), fresh=float(a))
             for i, (a, b) in enumerate(zip(ida, sha))]
    fit = probit_fit(cells, "shear", n_boot=300)
    px, py = stats.norm.ppf(ida), stats.norm.ppf(sha)
    np.testing.assert_allclose([fit["slope"], fit["intercept"]], np.polyfit(px, py, 1), rtol=1e-10)
    assert fit["slope_ci"][0] <= fit["slope"] <= fit["slope_ci"][1] and fit["runs"] == 6 and fit["models"] == 12
    assert probit(np.array([0.0, 1.0]), 100) == pytest.approx(stats.norm.ppf([0.005, 0.995]))


def test_widened_interval_adds_the_test_sets_binomial_error():
    a, b = {0: 0.8, 1: 0.81, 2: 0.79}, {0: 0.7, 1: 0.7, 2: 0.7}
    w = widened_difference(a, b, n_a=1000, n_b=1000)
    seed_only = stats.t.ppf(0.975, 2) * np.std([0.1, 0.11, 0.09], ddof=1) / math.sqrt(3)
    binom = 1.96 * math.sqrt(0.8 * 0.2 / 1000 + 0.7 * 0.3 / 1000)
    half = (w["ci"][1] - w["ci"][0]) / 2
    assert w["estimate"] == pytest.approx(0.1) and half > binom and half > seed_only / 3
    assert half == pytest.approx(w["se"] * stats.t.ppf(0.975, w["df"]))


@pytest.fixture(scope="module")
def small():
    return run_sweep("distribution-shift", quick=True, store="memory", progress=False,
                     overrides={"arch": ["mlp-16", "cnn-4"], "epochs": [1, 3], "n_train": 400, "n_test": 200})


def test_a_small_sweep_measures_every_test_set(small):
    assert len(small.cells) == 12 and all(c.status == "done" for c in small.cells)
    for c in small.cells:
        assert all(0 <= c.metrics[f"acc_{s}"] <= 1 for s in ("id",) + SETS)
    claims = small.analysis.claims
    assert len(claims) == 2 * len(SHIFTS) + 1 + 2 * len(SETS) and all(c.verdict != "not measured" for c in claims)
    doc = json.loads(json.dumps(small.analysis.to_json()))
    assert [c["verdict"] for c in doc["claims"]] == [c.verdict for c in claims]
    assert set(small.analysis.values["probit_fit"]) == set(SETS)
    fig = Figure(figsize=(14, 8))
    plot(small.cells, fig)
    assert sum(ax.get_visible() for ax in fig.axes) == len(SETS) + 1


def _synthetic(present: bool, seeds=4, cnn_offset=0.0):
    """A population of 4 archs × 3 lengths; present: every shift costs accuracy along a probit line (the
    CNNs' shifted by ``cnn_offset`` probit units) and a fresh draw costs nothing; absent: shifted accuracies
    are unrelated to in-distribution ones and higher on average, and the fresh draw costs 15 points."""
    g = np.random.default_rng(1)
    cells = []
    for s in range(seeds):
        for i, arch in enumerate(("mlp-16", "mlp-64", "cnn-8", "cnn-25")):
            for j, e in enumerate((2, 6, 18)):
                acc = 0.35 + 0.15 * i + 0.08 * j + 0.005 * g.normal()
                p = stats.norm.ppf(acc)
                if present:
                    off = cnn_offset if arch.startswith("cnn") else 0.0
                    shifted = {sh: float(stats.norm.cdf(0.8 * p - 0.3 + off + 0.02 * g.normal())) for sh in SHIFTS}
                    fresh = acc + 0.003 * g.normal()
                else:
                    shifted = {sh: float(g.uniform(0.5, 0.99)) for sh in SHIFTS}
                    fresh = acc - 0.15
                cells.append(_cell(arch, e, s, id=acc, fresh=fresh, **shifted))
    return cells


def test_verdicts_flip_with_the_phenomenon():
    on = [c.verdict for c in analyze(_synthetic(True)).claims]
    off = [c.verdict for c in analyze(_synthetic(False)).claims]
    assert on == ["supported"] * 14 + ["refuted"] * 5, on        # …and the CNNs lie on the MLPs' line
    # absent: no drop (shifted higher), the fresh draw costs more than every shift and more than the bound
    assert off[:9] == ["refuted"] * 9, off
    assert off[9] == "supported" and off[10:14] == ["refuted"] * 4, off     # the fresh line stays a line
    assert off[15:] == ["inconclusive"] * 4, off     # unrelated accuracies: no line to be on or off
    assert "nan" not in " ".join(analyze(_synthetic(False)).findings).lower()
    assert [c.verdict for c in analyze([]).claims] == ["not measured"]


def test_effective_robustness_flips_with_an_offset_of_the_cnns():
    cells = _synthetic(True, cnn_offset=0.4)
    claims = analyze(cells).claims
    assert [c.verdict for c in claims[14:]] == ["refuted"] + ["supported"] * 4, analyze(cells).findings
    assert all(c.estimate > 0.05 for c in claims[15:])
    assert analyze(_synthetic(True, cnn_offset=-0.4)).claims[15].estimate < -0.05


def test_effective_robustness_ci_carries_the_test_sets_binomial_error():
    cells = _synthetic(True)
    er = effective_robustness(cells, "shear", n_boot=300)
    acc = lambda fam, m: np.mean([c.metrics[m] for c in cells if c.params["arch"].startswith(fam)])
    floor = sum(acc(f, "acc_shear") * (1 - acc(f, "acc_shear")) for f in ("mlp", "cnn")) / 4000
    half = (er["ci"][1] - er["ci"][0]) / 2
    assert half >= stats.norm.ppf(0.975) * math.sqrt(floor) and er["se"] > er["boot_se"]
    assert er["ci"][0] < er["estimate"] < er["ci"][1] and abs(er["estimate"]) < 0.01   # the CNNs are on the line
