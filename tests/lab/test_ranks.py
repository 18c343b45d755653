"""Rank correlations: estimates and p-values against scipy, CIs by Monte Carlo coverage."""
import math

import numpy as np
import pytest
from scipy import stats

from petridish.lab.ranks import min_points, rank_correlation


def test_estimates_match_scipy_and_exact_permutation_p_on_a_monotone_five():
    r = rank_correlation([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    assert r.estimate == pytest.approx(1.0) and r.p == pytest.approx(2 / 120)      # exact, two-sided
    g = rank_correlation([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], alternative="greater")
    assert g.p == pytest.approx(1 / 120)
    x, y = np.arange(15.0), np.array([1, 0, 3, 2, 5, 7, 4, 6, 9, 8, 12, 10, 11, 14, 13.0])
    assert rank_correlation(x, y).estimate == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    k = rank_correlation(x, y, method="kendall")
    assert k.estimate == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert k.p == pytest.approx(stats.kendalltau(x, y).pvalue, abs=0.01)         # Monte Carlo vs exact


def test_too_few_points_are_refused_with_the_reason():
    assert min_points("two-sided") == 5 and min_points("greater") == 4
    r = rank_correlation([1, 2, 3], [3, 2, 1])
    assert r.estimate is None and "needs at least 5" in r.reason
    assert rank_correlation([1, 2, 3, 4, 5], [1, 1, 1, 1, 1]).reason.startswith("one variable is constant")
    with pytest.raises(ValueError, match="'method' parameter of rank_correlation"):
        rank_correlation([1, 2], [1, 2], method="pearson")


COVERAGE = [("spearman", 24, 0.0), ("spearman", 24, 0.6), ("kendall", 24, 0.0), ("kendall", 24, 0.6)]


def _coverage(case) -> tuple[int, str]:
    """(hits of 600, the test's name) for one (method, n, ρ): 600 bivariate-normal samples, seeded."""
    method, n, rho = case
    truth = 6 / math.pi * math.asin(rho / 2) if method == "spearman" else 2 / math.pi * math.asin(rho)
    rng = np.random.default_rng(int(rho * 10) + n)
    cov = [[1, rho], [rho, 1]]
    hits = 0
    for i in range(600):
        d = rng.multivariate_normal([0, 0], cov, size=n)
        r = rank_correlation(d[:, 0], d[:, 1], method=method, seed=i, n_perm=0)
        hits += r.ci[0] <= truth <= r.ci[1]
    return hits, r.test


@pytest.fixture(scope="module")
def coverage(pmap):
    """The four cases' Monte Carlo loops (~7 s each, one thread) over one process per core."""
    return dict(zip(COVERAGE, pmap(_coverage, COVERAGE)))


@pytest.mark.parametrize("method,n,rho", COVERAGE)
def test_ci_covers_the_population_value_95_percent(method, n, rho, coverage):
    """600 bivariate-normal samples each; the population ρ_S = (6/π)·asin(ρ/2), τ = (2/π)·asin(ρ).
    The coverage's binomial sd is 0.0089; ±0.025 is ~2.8 sd (seeded, so deterministic)."""
    hits, test = coverage[(method, n, rho)]
    assert "bootstrap" in test
    assert hits / 600 == pytest.approx(0.95, abs=0.025)
