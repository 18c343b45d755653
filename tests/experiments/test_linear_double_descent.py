"""linear-double-descent against Hastie et al.'s closed form and the exact finite-n risk."""
import numpy as np
import pytest

from petridish.experiments.linear_double_descent import EXPERIMENT, mp_stieltjes, run, theory_risk
from petridish.lab.store import MemoryStore
from petridish.lab.sweep import run_sweep


def test_theory_formula_matches_the_papers_table():
    # REFERENCES.md: n = 200, r² = 1, σ² = 0.25 -> formula 0.250, 0.750, 0.911
    assert theory_risk(0.5, 1.0, 0.25, "none") == pytest.approx(0.25)
    assert theory_risk(2.0, 1.0, 0.25, "none") == pytest.approx(0.75)
    assert theory_risk(8.0, 1.0, 0.25, "none") == pytest.approx(0.9107, abs=1e-3)


def test_stieltjes_transform_against_a_sampled_marchenko_pastur_spectrum():
    rng = np.random.default_rng(0)
    n, p = 800, 400
    x = rng.standard_normal((n, p))
    eig = np.linalg.eigvalsh(x.T @ x / n)        # MP with ratio γ = p/n = 0.5
    z = -0.3
    assert mp_stieltjes(z, 0.5) == pytest.approx(np.mean(1 / (eig - z)), rel=2e-2)


@pytest.mark.parametrize("gamma, expected", [(0.5, 0.241), (2.0, 0.743), (8.0, 0.914)])
def test_monte_carlo_risk_matches_the_published_check(gamma, expected):
    risks = [run({"gamma": gamma, "n": 200, "r2": 1.0, "sigma2": 0.25, "ridge": "none"}, s)["risk"]
             for s in range(20)]
    se = np.std(risks, ddof=1) / np.sqrt(len(risks))
    # 4 standard errors of Monte Carlo noise plus 3% for the finite-n bias of the asymptotics
    tol = 4 * se + 0.03 * expected
    assert abs(np.mean(risks) - theory_risk(gamma, 1, 0.25, "none")) < tol
    assert abs(np.mean(risks) - expected) < tol


def test_underparameterized_risk_matches_the_exact_finite_n_value():
    p = {"gamma": 0.25, "n": 200, "r2": 1.0, "sigma2": 1.0, "ridge": "none"}
    risks = [run(p, s)["risk"] for s in range(200)]
    exact = run(p, 0)["exact_risk"]                # σ² p / (n − p − 1)
    assert np.mean(risks) == pytest.approx(exact, rel=0.05)


def test_quick_sweep_shows_the_peak_and_ridge_removes_it():
    res = run_sweep(EXPERIMENT, quick=True, store=MemoryStore(), progress=False)
    v = res.analysis.values
    assert 0.8 <= v["none"]["peak_gamma"] <= 1.25          # the peak sits at the threshold γ = 1
    assert v["none"]["peak_risk"] > 1.5 * v["optimal"]["peak_risk"]
    assert v["none"]["median_rel_error_vs_theory"] < 0.1
    assert v["optimal"]["median_rel_error_vs_theory"] < 0.1
    # optimal ridge is monotone in γ: no peak at all
    rows = sorted((c.params["gamma"], c.metrics["risk"]) for c in res.cells if c.params["ridge"] == "optimal")
    means = {}
    for g, r in rows:
        means.setdefault(g, []).append(r)
    m = [np.mean(means[g]) for g in sorted(means)]
    assert all(b >= a - 0.05 for a, b in zip(m, m[1:]))
