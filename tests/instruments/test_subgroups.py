"""Subgroup metrics on hand-built data (exact counts), the binomial bootstrap against an explicit
resampling of examples, and one-line errors."""
import math

import numpy as np
import pytest
import torch

from petridish.errors import InvalidParameterError
from petridish.instruments.subgroups import subgroup_errors
from petridish.lab.stats import wilson_ci


def _hand_built():
    # group 0: 1 error in 10; group 1: 2 in 5; group 2: 0 in 4 (ids deliberately interleaved)
    groups = np.array([0] * 10 + [1] * 5 + [2] * 4)
    errors = np.zeros(19, bool)
    errors[[3, 11, 13]] = True
    perm = np.random.default_rng(0).permutation(19)
    return groups[perm], errors[perm]


def test_per_group_worst_and_disparity_on_hand_built_data():
    g, e = _hand_built()
    r = subgroup_errors(groups=g, errors=e, n_boot=500)
    assert [(x.group, x.n, x.errors) for x in r.groups] == [(0, 10, 1), (1, 5, 2), (2, 4, 0)]
    assert [x.error.estimate for x in r.groups] == [0.1, 0.4, 0.0]
    for x in r.groups:
        assert x.error.ci == pytest.approx(wilson_ci(x.errors, x.n)[1:], abs=1e-15) and x.error.method == "Wilson"
    assert r.average.estimate == pytest.approx(3 / 19) and r.average.ci == pytest.approx(wilson_ci(3, 19)[1:])
    assert (r.worst_group, r.worst.estimate, r.disparity.estimate) == (1, 0.4, 0.4)
    assert r.ratio.estimate == math.inf                      # the best group made no error
    assert r.worst.lo <= 0.4 <= r.worst.hi and r.disparity.lo >= 0
    # predictions and labels give the same report as the error mask
    y = torch.randint(0, 3, (19,), generator=torch.Generator().manual_seed(1))
    pred = torch.where(torch.as_tensor(e), (y + 1) % 3, y)
    r2 = subgroup_errors(groups=torch.as_tensor(g), y_pred=pred, y_true=y, n_boot=500)
    assert r2 == r
    m = r.metrics()
    assert m["error_g1"] == 0.4 and m["worst_error"] == 0.4 and math.isnan(m["ratio"])   # inf is not a metric


def test_ratio_and_a_group_without_disparity():
    g = np.array([0] * 10 + [1] * 4)
    e = np.zeros(14, bool)
    e[[0, 10]] = True                                        # 1/10 and 1/4
    r = subgroup_errors(groups=g, errors=e, n_boot=200)
    assert r.ratio.estimate == pytest.approx(2.5) and r.disparity.estimate == pytest.approx(0.15)
    r = subgroup_errors(groups=g, errors=np.zeros(14, bool), n_boot=200)
    assert (r.worst.estimate, r.disparity.estimate, r.ratio.estimate) == (0.0, 0.0, 1.0)
    assert r.worst.ci == (0.0, 0.0)


def test_binomial_bootstrap_matches_resampling_examples():
    # worst-group error over 3 small groups: its bootstrap quantiles, drawn as binomials, equal those of
    # an explicit within-group resampling of the examples (B = 4000 each; Monte Carlo tolerance 0.02)
    rng = np.random.default_rng(2)
    sizes, rates = (30, 40, 25), (0.2, 0.3, 0.25)
    g = np.concatenate([np.full(n, i) for i, n in enumerate(sizes)])
    e = np.concatenate([rng.random(n) < p for n, p in zip(sizes, rates)])
    r = subgroup_errors(groups=g, errors=e, n_boot=4000, seed=3)
    worst = np.empty(4000)
    for b in range(4000):
        worst[b] = max(e[g == i][rng.integers(0, n, n)].mean() for i, n in enumerate(sizes))
    lo, hi = np.quantile(worst, (0.025, 0.975))
    assert r.worst.lo == pytest.approx(lo, abs=0.02) and r.worst.hi == pytest.approx(hi, abs=0.02)


def test_wilson_per_group_coverage():
    # cheap sanity: per-group intervals of a 3% and a 30% group cover their true rates ≈ 95% of the time
    rng = np.random.default_rng(4)
    g = np.array([0] * 200 + [1] * 50)
    hits = np.zeros(2)
    for _ in range(400):
        e = np.r_[rng.random(200) < 0.03, rng.random(50) < 0.3]
        r = subgroup_errors(groups=g, errors=e, n_boot=10)
        hits += [r.groups[0].error.contains(0.03), r.groups[1].error.contains(0.3)]
    assert np.all((hits / 400 >= 0.91) & (hits / 400 <= 0.99)), hits / 400


def test_bad_input_is_one_line():
    with pytest.raises(InvalidParameterError, match=r"^The 'groups' parameter of subgroup_errors must be an integer "
                                                    r"array of group ids\. Got 'dtype float64'\.$"):
        subgroup_errors(groups=np.array([0.0, 1.0]), errors=np.array([True, False]))
    with pytest.raises(InvalidParameterError, match="'groups' parameter of subgroup_errors must be of shape"):
        subgroup_errors(groups=np.array([0, 1, 1]), errors=np.array([True, False]))
    with pytest.raises(InvalidParameterError, match="'errors' parameter of subgroup_errors must be given alone"):
        subgroup_errors(groups=np.array([0, 1]), errors=np.array([True, False]), y_pred=np.array([0, 1]))
    with pytest.raises(InvalidParameterError, match="'level' parameter of subgroup_errors must be a float > 0"):
        subgroup_errors(groups=np.array([0, 1]), errors=np.array([True, False]), level=1.5)
