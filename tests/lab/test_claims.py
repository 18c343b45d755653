"""Claims: verdicts computed from the numbers (each rule flips), findings generated from them."""
import math

import pytest

from petridish.lab import Analysis
from petridish.lab.claims import Claim, family, from_correlation, from_difference, from_values, not_measured
from petridish.lab.paired import paired_difference
from petridish.lab.ranks import rank_correlation


@pytest.mark.parametrize("direction,ci,verdict", [
    ("greater", (0.01, 0.05), "supported"), ("greater", (-0.05, -0.01), "refuted"),
    ("greater", (-0.01, 0.05), "inconclusive"),
    ("less", (-0.05, -0.01), "supported"), ("less", (0.01, 0.05), "refuted"),
    ("two-sided", (-0.05, -0.01), "supported"), ("two-sided", (-0.01, 0.01), "inconclusive"),
])
def test_verdict_follows_the_ci_and_the_direction(direction, ci, verdict):
    assert Claim("x", sum(ci) / 2, ci, direction=direction).verdict == verdict


def test_equivalence_margin_refutes_and_within_supports():
    assert Claim("peak", 0.001, (-0.004, 0.006), margin=0.01).verdict == "refuted"
    assert Claim("peak", 0.001, (-0.004, 0.016), margin=0.01).verdict == "inconclusive"
    # significant but negligible: the margin is the smallest effect that counts
    assert Claim("peak", 0.003, (0.001, 0.005), margin=0.01).verdict == "refuted"
    assert Claim("peak", 0.003, (0.001, 0.005)).verdict == "supported"
    band = dict(null=1.0, direction="within", margin=0.1)
    assert Claim("λ/(2/η) hovers at 1", 1.02, (0.97, 1.06), **band).verdict == "supported"
    assert Claim("λ/(2/η) hovers at 1", 1.5, (1.3, 1.7), **band).verdict == "refuted"
    assert Claim("λ/(2/η) hovers at 1", 1.05, (0.95, 1.2), **band).verdict == "inconclusive"
    with pytest.raises(ValueError, match="'margin' parameter of Claim"):
        Claim("x", 1.0, (0.0, 2.0), direction="within")


def test_a_p_value_above_alpha_keeps_a_claim_inconclusive():
    assert Claim("x", 0.03, (0.01, 0.05), p=0.2).verdict == "inconclusive"
    assert Claim("x", 0.03, (0.01, 0.05), p=0.01).verdict == "supported"


def test_not_measured_never_prints_nan():
    c = Claim("the MLP fits", math.nan, (math.nan, math.nan))
    assert c.verdict == "not measured" and "nan" not in c.finding().lower()
    d = not_measured("steps to fit grows", "no run fitted the training set within 300 epochs")
    assert d.finding() == ("Not measured: steps to fit grows — no run fitted the training set within 300 epochs.")
    assert d.to_json()["estimate"] is None and d.to_json()["ci"] is None


def test_finding_states_verdict_estimate_ci_test_and_p():
    c = from_difference("test error peaks at w = 47", paired_difference([0.55, 0.56, 0.53], [0.48, 0.47, 0.49]),
                        effect="peak minus left minimum")
    f = c.finding()
    assert f.startswith("Supported: test error peaks at w = 47 — peak minus left minimum +0.0667 (95% CI [")
    assert "seed-paired t (n=3" in f and "p = 0.022" in f
    j = c.to_json()
    assert set(j) >= {"claim", "verdict", "estimate", "ci", "test", "p"} and j["verdict"] == "supported"


def test_difference_claim_flips_between_no_effect_and_effect():
    flat = paired_difference([0.50, 0.52, 0.49, 0.51], [0.51, 0.50, 0.50, 0.52])
    peak = paired_difference([0.60, 0.62, 0.59, 0.61], [0.51, 0.50, 0.50, 0.52])
    assert from_difference("peak", flat, effect="d").verdict == "inconclusive"
    assert from_difference("peak", peak, effect="d").verdict == "supported"
    assert from_difference("peak", None, effect="d").verdict == "not measured"


def test_trend_claim_flips_between_independent_and_monotone():
    x = list(range(10))
    assert from_correlation("y tracks x", rank_correlation(x, [3, 7, 1, 9, 0, 5, 2, 8, 6, 4])).verdict == "inconclusive"
    assert from_correlation("y tracks x", rank_correlation(x, [0, 2, 1, 3, 5, 4, 6, 7, 9, 8])).verdict == "supported"
    assert from_correlation("y tracks x", rank_correlation(x[:3], [1, 2, 3])).verdict == "not measured"


def test_values_claim_against_a_threshold_with_bounds():
    fit = from_values("fits", [1.0, 0.999, 1.0], null=0.99, effect="acc − threshold", bounds=(0, 1))
    assert fit.verdict == "supported" and fit.ci[1] <= 0.01 + 1e-12
    nofit = from_values("fits", [0.6, 0.62, 0.58], null=0.99, effect="acc − threshold", bounds=(0, 1))
    assert nofit.verdict == "refuted"
    assert from_values("fits", [1.0], null=0.99, effect="e").verdict == "not measured"


def test_family_adjusts_p_values_with_holm_and_can_flip_a_verdict():
    cs = [Claim("a", 0.1, (0.01, 0.2), p=0.02), Claim("b", 0.1, (0.01, 0.2), p=0.03),
          Claim("c", 0.1, (0.01, 0.2), p=0.04)]
    adj = family(cs)
    assert [c.p for c in adj] == pytest.approx([0.06, 0.06, 0.06])
    assert all(c.verdict == "inconclusive" for c in adj) and all(c.verdict == "supported" for c in cs)
    assert "Holm-adjusted over 3 claims" in adj[0].test


def test_analysis_derives_findings_from_claims_and_keeps_plain_findings():
    c = Claim("x rises", 0.2, (0.1, 0.3))
    a = Analysis(findings=["n = 400 training examples."], values={"k": 1}, claims=[c])
    assert a.findings == [c.finding(), "n = 400 training examples."]
    j = a.to_json()
    assert j["claims"][0]["verdict"] == "supported" and j["values"] == {"k": 1}
    assert Analysis(["plain"]).to_json() == {"findings": ["plain"], "values": {}, "claims": []}
