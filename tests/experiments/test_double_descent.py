"""double-descent: the peak's signature per arm on the quick configuration, and exactness of
the batched path (zero-padded width buckets) against single cells and closed forms."""
import itertools

import numpy as np
import pytest
import torch

from petridish.experiments._dd import report
from petridish.experiments._dd.arm_samples import run_samples, theory_risk
from petridish.experiments._dd.buckets import padded_mlp, plan, step_cost
from petridish.experiments._dd.sizes import WIDTHS, mlp_params, mlp_threshold_width, samples_n
from petridish.experiments.double_descent import EXPERIMENT, run, run_group
from petridish.lab.executors.local import InProcessExecutor
from petridish.lab.store import MemoryStore
from petridish.lab.sweep import run_sweep

MARGIN = 0.015       # test-error points by which a peak must exceed the minimum on each side


def _sweep(**overrides):
    # one thread: the same BLAS summation order (so the same SGD trajectories) on every machine
    threads = torch.get_num_threads()
    try:
        res = run_sweep(EXPERIMENT, quick=True, overrides=overrides, store=MemoryStore(), progress=False,
                        executor=InProcessExecutor())
    finally:
        torch.set_num_threads(threads)
    assert all(c.status == "done" for c in res.cells), [c.error for c in res.cells if c.status != "done"]
    return res


def _peak_gap(curve) -> tuple[float, float]:
    """(size of the most prominent interior bump, min(peak − left min, peak − right min)); 0 if none."""
    pk = report.peak(curve)
    if pk is None:
        return float("nan"), 0.0
    m = curve["mean"]
    i = int(np.nonzero(curve["size"] == pk["size"])[0][0])
    gap = min(m[i] - m[:i].min(), m[i] - m[i + 1:].min())      # recomputed here, not trusted from report
    assert gap == pytest.approx(pk["gap"])
    return pk["size"], gap


def test_widths_are_the_notebooks():
    assert WIDTHS == [2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 47, 61, 80, 104, 135, 177, 230, 300]
    assert mlp_params(300) == 40 * 300 + 300 + 300 * 300 + 300 + 300 * 10 + 10
    w = mlp_threshold_width(4000)
    assert w * w + 52 * w + 10 == pytest.approx(4000)


def test_bucket_plan_is_optimal_against_brute_force():
    counts = {3: 6, 9: 6, 20: 3, 50: 6, 120: 6, 300: 2}
    ws = sorted(counts)
    best = min(
        sum(step_cost(ws[j - 1], sum(counts[w] for w in ws[i:j])) for i, j in zip((0,) + cuts, cuts + (len(ws),)))
        for r in range(len(ws)) for cuts in itertools.combinations(range(1, len(ws)), r))
    got = plan(counts)
    assert [w for b in got for w in b] == ws
    assert sum(step_cost(b[-1], sum(counts[w] for w in b)) for b in got) == pytest.approx(best)


def test_zero_padding_is_exact_for_forward_and_training():
    small, big = padded_mlp(7, 7, seed=3), padded_mlp(7, 20, seed=3)
    x = torch.randn(50, 40)
    assert torch.allclose(small(x), big(x), atol=1e-6)
    # one SGD-momentum run of each: the padded units stay exactly zero, the rest agree
    y = torch.randint(0, 10, (50,))
    for m in (small, big):
        opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        for _ in range(20):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
    assert big.layers[0].weight[7:].abs().max() == 0 and big.layers[1].weight[7:].abs().max() == 0
    assert big.layers[1].weight[:, 7:].abs().max() == 0 and big.layers[2].weight[:, 7:].abs().max() == 0
    assert torch.allclose(small(x), big(x), atol=1e-5)


def test_run_equals_its_run_group_member():
    base = {p.name: p.default for p in EXPERIMENT.params}
    base.update(arm="mlp", n_train=300, n_test=300, epochs=3, curve_points=3)
    cells = [dict(base, width=w, noise=nz) for w in (4, 12) for nz in (0.0, 0.15)]
    seeds = [0, 1, 2, 3]
    group = run_group(cells, seeds)
    assert plan({4: 2, 12: 2}) == [[4, 12]]             # the group really trains width 4 padded to 12
    for i in (0, 3):
        solo = run(cells[i], seeds[i])
        assert solo["test_loss"] == pytest.approx(group[i]["test_loss"], rel=1e-4)
        np.testing.assert_allclose(solo["test_error_curve"], group[i]["test_error_curve"], atol=2 / 300)
        assert solo["size"] == group[i]["size"] == cells[i]["width"]


def test_noisy_mlp_width_sweep_peaks_near_the_threshold_and_epoch_curve_rises():
    res = _sweep(arm="mlp", noise=0.15, n_test=2000)
    curve = report.size_curves(res.cells, "mlp")[0.15]
    size, gap = _peak_gap(curve)
    thr = curve["threshold"]                               # width with parameters = n (≈ 14.8)
    assert gap > MARGIN, curve["mean"]
    assert thr / 2 <= size <= 2 * thr
    # the peak sits where the training error reaches 0 (interpolation), within a factor 2
    interp = report.interpolation_size(curve)
    assert interp / 2 <= size <= 2 * interp
    # epoch-wise: the largest net memorises the noise (train error -> 0) and its test error
    # rises from its minimum by more than MARGIN / 2 meanwhile
    v = res.analysis.values
    assert v["epochs_noise0.15_train_final"] < 0.01
    assert v["epochs_noise0.15_final"] - v["epochs_noise0.15_min"] > MARGIN / 2
    assert v["epochs_noise0.15_min_epoch"] < 500


def test_random_features_peak_at_p_equals_n_and_tuned_ridge_removes_it():
    res = _sweep(arm=["rf", "ridge"], noise=[0.1, 0.2])
    rf, ridge = report.size_curves(res.cells, "rf"), report.size_curves(res.cells, "ridge")
    for noise in (0.1, 0.2):
        size, gap = _peak_gap(rf[noise])
        assert gap > 2 * MARGIN, rf[noise]["mean"]
        assert rf[noise]["threshold"] / 2 <= size <= 2 * rf[noise]["threshold"]    # p ≈ n = 500
        _, ridge_gap = _peak_gap(ridge[noise])
        assert ridge_gap < MARGIN, ridge[noise]["mean"]
        i = int(np.argmax(rf[noise]["mean"]))
        assert ridge[noise]["mean"][i] < rf[noise]["mean"][i] - 2 * MARGIN


def test_sample_wise_risk_matches_exact_value_and_more_data_hurts():
    # Monte Carlo mean of the min-norm excess risk vs the exact finite-n value, both sides of n = d
    for width in (16, 64):
        p = {"width": width, "noise": 0.5, "dim": 100}
        risks = [run_samples(p, s)["excess_risk"] for s in range(60)]
        se = np.std(risks, ddof=1) / np.sqrt(len(risks))
        assert abs(np.mean(risks) - theory_risk(samples_n(width), 100, 0.5)) < 4 * se + 0.02
    res = _sweep(arm="samples", noise=0.5)
    curve = report.size_curves(res.cells, "samples")[0.5]
    size, gap = _peak_gap(curve)
    assert 50 <= size <= 200 and gap > 1.0                 # threshold n = d = 100; risk jumps by > 1
    below = curve["mean"][curve["size"] < 100]
    assert below[-1] > 2 * below.min()                    # more data (up to n ≈ d) hurts
