"""Seed-paired differences: the t-interval against scipy, the bootstrap-t by Monte Carlo coverage."""
import numpy as np
import pytest
from scipy import stats

from petridish.lab.paired import pair_by_seed, paired_difference


def test_few_seeds_use_scipys_paired_t_interval_and_test():
    a, b = np.array([0.55, 0.56, 0.53, 0.58]), np.array([0.48, 0.47, 0.52, 0.50])
    r = paired_difference(a, b)
    lo, hi = stats.t.interval(0.95, 3, loc=(a - b).mean(), scale=stats.sem(a - b))
    assert r.ci == pytest.approx((lo, hi), abs=1e-12) and r.n == 4 and "seed-paired t" in r.method
    assert r.p_greater == pytest.approx(stats.ttest_rel(a, b, alternative="greater").pvalue, abs=1e-12)
    assert r.p_less == pytest.approx(stats.ttest_rel(a, b, alternative="less").pvalue, abs=1e-12)


def test_pairing_by_seed_drops_missing_and_non_finite():
    a, b = pair_by_seed({0: 1.0, 1: 2.0, 2: float("nan"), 3: 4.0}, {0: 0.5, 2: 1.0, 3: 3.0, 4: 9.0})
    assert a.tolist() == [1.0, 4.0] and b.tolist() == [0.5, 3.0]
    assert paired_difference([1.0], [0.0]) is None


@pytest.mark.parametrize("n,dist", [(20, "normal"), (20, "exponential"), (30, "normal"), (30, "exponential")])
def test_bootstrap_t_covers_95_percent_at_20_or_more_seeds(n, dist):
    """1,000 experiments each; the coverage's binomial sd is 0.0069, so ±0.02 is ~3 sd."""
    rng = np.random.default_rng(n)
    hits = 0
    for i in range(1000):
        d = rng.normal(0.3, 1.0, n) if dist == "normal" else rng.exponential(1.0, n) - 0.7
        r = paired_difference(d, np.zeros(n), n_boot=1000, seed=i)
        hits += r.ci[0] <= 0.3 <= r.ci[1]
    assert "bootstrap-t" in r.method
    assert hits / 1000 == pytest.approx(0.95, abs=0.02)


def test_three_seed_t_interval_covers_95_percent():
    rng = np.random.default_rng(3)
    d = rng.normal(1.0, 2.0, size=(4000, 3))
    hits = sum(r.ci[0] <= 1.0 <= r.ci[1] for r in (paired_difference(x, np.zeros(3)) for x in d))
    assert hits / 4000 == pytest.approx(0.95, abs=0.015)
