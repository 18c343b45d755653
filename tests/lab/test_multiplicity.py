"""Holm and Benjamini–Hochberg against hand-computed and scipy's adjusted p-values."""
import numpy as np
import pytest
from scipy import stats

from petridish.lab.multiplicity import bh, bonferroni_level, holm
from petridish.lab.stats import mean_ci, wilson_ci


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 -> 3*0.01, max(0.03, 2*0.02), max(0.04, 1*0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_bh_equals_scipys_false_discovery_control():
    p = np.random.default_rng(0).uniform(size=30) ** 2
    assert bh(p) == pytest.approx(stats.false_discovery_control(p, method="bh").tolist(), abs=1e-12)
    assert bonferroni_level(5) == pytest.approx(0.99)


def test_wilson_is_scipys_and_bounded_means_stay_in_range():
    for k, n in [(0, 20), (3, 50), (50, 50)]:
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_ci(k, n)[1:] == pytest.approx((ref.low, ref.high), abs=1e-12)
    m, lo, hi = mean_ci([0.0, 0.0, 0.02], bounds=(0.0, 1.0))
    assert lo == 0.0 and 0 < hi < 1 and mean_ci([0.0, 0.0, 0.02])[1] < 0
