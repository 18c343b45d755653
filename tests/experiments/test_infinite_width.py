"""infinite-width on a reduced quick config: the signatures of the NTK limit, the Monte Carlo noise
levels of the ensemble gaps, and the flip test of its claims."""
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from petridish.experiments import infinite_width as iw  # noqa: E402
from petridish.experiments.infinite_width import EXPERIMENT  # noqa: E402
from petridish.lab.experiment import Cell  # noqa: E402


def _by_claim(analysis):
    return {c.claim: c for c in analysis.claims}


def test_wide_networks_approach_their_ntk():
    cfg = EXPERIMENT.config({"width": [16, 128, 1024]}, quick=True)
    cells = [Cell(f"k{i}", EXPERIMENT.name, p, s, "done", EXPERIMENT.run(p, s))
             for i, (p, s) in enumerate(EXPERIMENT.grid(cfg, seeds=range(2)))]
    analysis = EXPERIMENT.analyze(cells)
    v = analysis.values
    # (a) empirical NTK at init -> analytic NTK like width^-1/2, a within claim on the per-seed slope
    assert -0.8 < v["ntk_dist_slope"] < -0.3, v["ntk_dist_slope"]
    assert v["ntk_dist_by_width"][1024] < v["ntk_dist_by_width"][16] / 4
    rate = next(c for c in analysis.claims if c.claim.startswith(iw.RATE_TEXT["ntk_dist"]))
    assert rate.direction == "within" and rate.null == -0.5 and rate.ci[0] <= rate.estimate <= rate.ci[1]
    assert rate.verdict in ("supported", "inconclusive")
    # (b) the NTK moves less during training
    assert v["ntk_change_slope"] < -0.3 and v["ntk_change_by_width"][1024] < 0.05
    # (c) the ensemble gaps shrink, and each comes with its Monte Carlo noise level
    assert v["mean_gap_by_width"][1024] < v["mean_gap_by_width"][16] / 3
    assert v["var_gap_by_width"][1024] < v["var_gap_by_width"][16] / 3
    for c in cells:
        assert c.metrics["mean_gap_se"] > 0 and c.metrics["var_gap_se"] > 0
        assert c.metrics["train_loss"] < 0.05                  # training worked like the linear model
    noise = [c for c in analysis.claims if "Monte Carlo noise at width" in c.claim]
    assert len(noise) == 2 * 3 and all(c.verdict != "not measured" for c in noise)
    assert "nan" not in " ".join(analysis.findings).lower()
    fig = plt.figure(figsize=(12, 3))
    EXPERIMENT.plot(cells, fig)
    labels = [[ln.get_label() for ln in ax.lines] for ax in fig.axes]
    assert len(fig.axes) == 4
    for ax_labels in labels[2:]:                               # the gap panels: 1/width and the noise floor
        assert "1/width" in ax_labels and "Monte Carlo noise level" in ax_labels
    assert all("width^-1/2" in ax_labels for ax_labels in labels[:2])
    plt.close(fig)


def test_leave_one_out_variances_match_a_direct_computation():
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = torch.stack([torch.cat([x[:e], x[e + 1:]]).var(0) for e in range(7)])
    torch.testing.assert_close(iw._loo_var(x), want, rtol=1e-12, atol=1e-12)


def _cells(gap, se, ntk_slope, seeds=4):
    """Synthetic cells: gap(width, seed), its noise level se(width), ntk_dist ∝ width^ntk_slope."""
    out = []
    rng = np.random.default_rng(0)
    for w in (16, 64, 256, 1024, 4096):
        for s in range(seeds):
            jitter = 1 + 0.05 * rng.standard_normal()
            m = {"ntk_dist": jitter * w ** ntk_slope, "ntk_change": jitter * w ** -0.75}
            for g in iw.GAPS:
                m[g], m[g + "_se"] = gap(w, s), se(w)
            out.append(Cell(f"{w}-{s}", EXPERIMENT.name, {"width": w}, s, "done", m))
    return out


def test_rate_claims_flip_between_noise_and_a_resolved_finite_width_effect():
    noise_only = _cells(lambda w, s: (1.0 + 0.3 * (-1) ** s) * 0.5 * w ** -0.5, lambda w: 0.5 * w ** -0.5, 0.0)
    absent = _by_claim(EXPERIMENT.analyze(noise_only))
    resolved = _cells(lambda w, s: (1 + 0.02 * s) * 3.0 / w, lambda w: 0.01 / w, -0.5)
    present = _by_claim(EXPERIMENT.analyze(resolved))
    mean_rate = next(k for k in absent if k.startswith(iw.RATE_TEXT["mean_gap"]))
    assert absent[mean_rate].verdict == "not measured" and "noise" in absent[mean_rate].reason
    assert present[mean_rate].verdict == "supported" and present[mean_rate].estimate == pytest.approx(-1.0, abs=0.01)
    w1024 = next(k for k in absent if k.endswith("Monte Carlo noise at width 1024") and "E f_T" in k)
    assert absent[w1024].verdict != "supported" and present[w1024].verdict == "supported"
    ntk = next(k for k in absent if k.startswith(iw.RATE_TEXT["ntk_dist"]))
    assert absent[ntk].verdict == "refuted" and present[ntk].verdict == "supported"
    assert not any(math.isnan(len(f)) or "nan" in f.lower() for f in EXPERIMENT.analyze(noise_only).findings)
