"""Confidence intervals over seeds: checked against scipy's t-interval and by Monte Carlo coverage."""
import math

import numpy as np
import pytest
from scipy import stats

from petridish.lab import Cell, aggregate, curve_ci, mean_ci, row_means


def test_mean_ci_is_scipys_t_interval():
    v = [0.31, 0.29, 0.35, 0.40, 0.27]
    m, lo, hi = mean_ci(v)
    ref_lo, ref_hi = stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
    assert m == pytest.approx(np.mean(v), abs=1e-12)
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), abs=1e-12)


def test_mean_ci_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    draws = rng.normal(loc=2.0, scale=3.0, size=(4000, 4))      # 4000 experiments of 4 seeds each
    covered = [lo <= 2.0 <= hi for lo, hi in (mean_ci(d)[1:] for d in draws)]
    # binomial sd of the coverage over 4000 trials is 0.0034; 0.015 is > 4 sd
    assert np.mean(covered) == pytest.approx(0.95, abs=0.015)


def test_mean_ci_drops_non_finite_values_and_degenerates_to_a_point():
    assert mean_ci([1.0, math.nan, None, math.inf]) == (1.0, 1.0, 1.0)
    assert all(math.isnan(x) for x in mean_ci([]))


def test_curve_ci_matches_mean_ci_pointwise():
    curves = np.random.default_rng(1).normal(size=(5, 7))
    m, lo, hi = curve_ci(curves)
    for t in range(7):
        assert (m[t], lo[t], hi[t]) == pytest.approx(mean_ci(curves[:, t]), abs=1e-12)


def _cell(width, seed, **metrics):
    return Cell(key=f"{width}-{seed}", experiment="toy", params={"width": width}, seed=seed,
                status="done", metrics=metrics)


def test_aggregate_groups_seeds_and_row_means_reads_the_means():
    cells = [_cell(8, 0, err=0.2), _cell(8, 1, err=0.4), _cell(16, 0, err=0.1, extra=3.0),
             Cell(key="x", experiment="toy", params={"width": 8}, seed=2, status="failed")]
    rows = aggregate(cells, by=["width"])
    assert [r["params"]["width"] for r in rows] == [8, 16]
    assert [r["n"] for r in rows] == [2, 1]                    # the failed cell is not counted
    assert row_means(rows, "err") == pytest.approx([0.3, 0.1])
    extra = row_means(rows, "extra")
    assert math.isnan(extra[0]) and extra[1] == 3.0
