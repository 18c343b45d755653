"""double-descent: the seed-paired peak claims per arm on the quick configuration, flip tests on
synthetic cells (no peak / a peak / a tie), and exactness of the batched path (zero-padded width
buckets) against single cells and closed forms."""
import itertools

import numpy as np
import pytest
import torch

from petridish.experiments.double_descent import report
from petridish.experiments.double_descent.arm_samples import run_samples, theory_risk
from petridish.experiments.double_descent.buckets import padded_mlp, plan, step_cost
from petridish.experiments.double_descent.sizes import (DEFAULT_WIDTHS, WIDTHS, mlp_params, mlp_threshold_width,
                                                        samples_n)
from petridish.experiments.double_descent import EXPERIMENT, analyze, run, run_group
from petridish.lab import Cell, aggregate
from petridish.lab.executors.local import InProcessExecutor
from petridish.lab.store import MemoryStore
from petridish.lab.sweep import run_sweep


def _sweep(**overrides):
    res = run_sweep(EXPERIMENT, quick=True, overrides=overrides, store=MemoryStore(), progress=False,
                    executor=InProcessExecutor())
    assert all(c.status == "done" for c in res.cells), [c.error for c in res.cells if c.status != "done"]
    return res


def test_widths_are_the_notebooks():
    assert WIDTHS == [2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 47, 61, 80, 104, 135, 177, 230, 300]
    assert mlp_params(300) == 40 * 300 + 300 + 300 * 300 + 300 + 300 * 10 + 10
    w = mlp_threshold_width(4000)
    assert w * w + 52 * w + 10 == pytest.approx(4000)


def test_default_sweep_affords_5_seeds_at_the_cost_of_3_seeds_of_the_notebooks_widths():
    def cost(widths, seeds):           # both noise levels; the bucket plan's modelled step cost
        counts = {w: 2 * seeds for w in widths}
        return sum(step_cost(b[-1], sum(counts[w] for w in b)) for b in plan(counts))
    assert EXPERIMENT.seeds == 5 and EXPERIMENT.param("width").default == DEFAULT_WIDTHS
    assert set(WIDTHS) - set(DEFAULT_WIDTHS) == {177, 230} and max(DEFAULT_WIDTHS) == 300
    assert cost(DEFAULT_WIDTHS, 5) <= 1.2 * cost(WIDTHS, 3)       # the runtime budget: +20%
    assert cost(WIDTHS, 4) > 1.2 * cost(WIDTHS, 3)                # why not simply more seeds


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


def test_quick_mlp_sweep_candidate_peak_sits_at_interpolation_and_the_largest_net_memorises():
    # n = 1000 (quick): the MLP's bump at the threshold is ~+0.015, below what 3 seeds resolve, so
    # its verdict is data-driven (inconclusive on this CPU's runs); the candidate's location is not
    res = _sweep(arm="mlp", noise=0.15)
    v = res.analysis.values
    curve = report.size_curves(res.cells, "mlp")[0.15]
    thr = curve["threshold"]                               # width with parameters = n (≈ 14.8)
    assert v["mlp_noise0.15_peak_verdict"] in ("supported", "inconclusive"), res.analysis.findings
    assert thr / 2 <= v["mlp_noise0.15_size"] <= 2 * thr
    # the candidate sits where the training error reaches 0 (interpolation), within a factor 2
    interp = report.interpolation_size(curve)
    assert interp / 2 <= v["mlp_noise0.15_size"] <= 2 * interp
    # epoch-wise: the largest net memorises the noise (train error -> 0)
    assert v["epochs_noise0.15_train_final"] < 0.01
    assert v["epochs_noise0.15_min_epoch"] < 500
    assert "nan" not in " ".join(res.analysis.findings).lower()


def test_random_features_peak_at_p_equals_n_and_tuned_ridge_removes_it():
    res = _sweep(arm=["rf", "ridge"], noise=[0.1, 0.2])
    v = res.analysis.values
    ridge = report.size_curves(res.cells, "ridge")
    for noise in (0.1, 0.2):
        assert v[f"rf_noise{noise:g}_peak_verdict"] == "supported", res.analysis.findings
        thr = v[f"rf_noise{noise:g}_threshold"]
        assert thr / 2 <= v[f"rf_noise{noise:g}_size"] <= 2 * thr                # p ≈ n = 500
        assert v[f"ridge_noise{noise:g}_peak_verdict"] != "supported", res.analysis.findings
        i = int(np.nonzero(ridge[noise]["size"] == v[f"rf_noise{noise:g}_size"])[0][0])
        assert ridge[noise]["mean"][i] < v[f"rf_noise{noise:g}_height"] - 0.03


def test_sample_wise_risk_matches_exact_value_and_more_data_hurts():
    # Monte Carlo mean of the min-norm excess risk vs the exact finite-n value, both sides of n = d
    for width in (16, 64):
        p = {"width": width, "noise": 0.5, "dim": 100}
        risks = [run_samples(p, s)["excess_risk"] for s in range(60)]
        se = np.std(risks, ddof=1) / np.sqrt(len(risks))
        assert abs(np.mean(risks) - theory_risk(samples_n(width), 100, 0.5)) < 4 * se + 0.02
    res = _sweep(arm="samples", noise=0.5)
    v = res.analysis.values
    assert v["samples_noise0.5_peak_verdict"] == "supported", res.analysis.findings
    # the peak is tested on log(1 + risk): +1 there is a risk (1 + r) e times that on the left
    assert 50 <= v["samples_noise0.5_size"] <= 200 and v["samples_noise0.5_minus_left"] > 1.0
    curve = report.size_curves(res.cells, "samples")[0.5]
    below = curve["mean"][curve["size"] < 100]
    assert below[-1] > 2 * below.min()                    # more data (up to n ≈ d) hurts


# ---------------------------------------------------------------- flip tests: synthetic cells

SYN_WIDTHS = [4, 8, 12, 16, 24, 32, 48, 64, 128]


def _cells(err_of, seeds=3, noise=0.15):
    """Synthetic mlp cells: err_of(width, seed) -> test error; the seed offsets are shared by every
    width (as the real cells share a label-noise draw), so seed-paired differences see through them."""
    out = []
    for w in SYN_WIDTHS:
        for s in range(seeds):
            p = {"arm": "mlp", "width": w, "noise": noise}
            e = err_of(w, s)
            out.append(Cell(f"{w}-{s}", EXPERIMENT.name, p, s, "done",
                            {"test_error": e, "train_error": max(0.0, 0.5 - w / 40), "size": w,
                             "threshold": 15.0, "test_error_curve": [0.7, e - 0.02, e],
                             "train_error_curve": [0.9, 0.1, 0.0], "epoch_curve": [1, 250, 500]}))
    return out


def _peak(cells):
    a = analyze(cells)
    c = next(c for c in a.claims if c.claim.startswith("[mlp] noise 0.15"))
    return c, a.values


def test_peak_claim_flips_between_a_monotone_curve_and_a_seed_consistent_bump():
    seed_offset = [0.0, 0.03, -0.02]
    jitter = lambda w, s: 0.003 * (((w * 7 + s * 3) % 5) - 2)                    # ±0.006, no structure
    mono = lambda w, s: 0.7 - 0.1 * np.log2(w) / 5 + seed_offset[s] + jitter(w, s)
    c, v = _peak(_cells(mono))
    assert c.verdict in ("refuted", "inconclusive") and v["mlp_noise0.15_peak_verdict"] == c.verdict
    bump = lambda w, s: mono(w, s) + (0.08 if w == 16 else 0.0)
    c, v = _peak(_cells(bump))
    assert c.verdict == "supported" and "at w = 16 " in c.claim, c.finding()
    assert v["mlp_noise0.15_size"] == 16 and v["mlp_noise0.15_tie_sizes"] == [16.0]
    # the same bump hidden in seed noise that is not shared between widths: not supported
    noisy = lambda w, s: bump(w, s) + 0.06 * (((w * 13 + s * 5) % 7) - 3) / 3
    c, _ = _peak(_cells(noisy))
    assert c.verdict != "supported", c.finding()


def test_indistinguishable_neighbours_are_reported_as_a_tie():
    seed_offset = [0.0, 0.03, -0.02]
    base = lambda w, s: 0.6 + seed_offset[s] + 0.002 * (((w + s) % 3) - 1)
    plateau = lambda w, s: base(w, s) + (0.08 if w in (16, 24) else 0.0)
    c, v = _peak(_cells(plateau))
    assert v["mlp_noise0.15_tie_sizes"] == [16.0, 24.0]
    assert "w ∈ {16, 24}" in c.claim and c.verdict == "supported", c.finding()


def test_epoch_claim_flips_and_train_error_ci_stays_in_bounds():
    def with_final(rise):
        cells = _cells(lambda w, s: 0.6 + 0.01 * s)
        for c in cells:
            e = c.metrics["test_error"]
            c.metrics["test_error_curve"] = [0.7, e, e + rise * (1 + 0.1 * c.seed)]
        return analyze(cells)
    flat = with_final(0.0)
    rise = with_final(0.05)
    pick = lambda a: next(c for c in a.claims if c.claim.startswith("[epochs]"))
    assert pick(flat).verdict != "supported" and pick(rise).verdict == "supported"
    rows = aggregate(_cells(lambda w, s: 0.6), by=["width"], metrics=["train_error"], bounds=EXPERIMENT.bounds)
    assert all(0.0 <= r["metrics"]["train_error"]["lo"] <= r["metrics"]["train_error"]["hi"] <= 1.0 for r in rows)
    assert EXPERIMENT.bounds["train_error"] == (0.0, 1.0) and EXPERIMENT.bounds["test_error"] == (0.0, 1.0)
