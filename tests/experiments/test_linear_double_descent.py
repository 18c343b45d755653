"""linear-double-descent against Hastie et al.'s closed form and the exact finite-n risk."""
import numpy as np
import pytest

from petridish.experiments.linear_double_descent import EXPERIMENT, analyze, mp_stieltjes, run, theory_risk
from petridish.lab import Cell
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
    verdicts = {c["claim"].split(" —")[0]: c["verdict"] for c in res.analysis.to_json()["claims"]}
    assert [k for k in verdicts if "matches the Hastie" in k] and all(
        verdicts[k] == "supported" for k in verdicts if "matches the Hastie" in k), verdicts
    assert v["none"]["peak_verdict"] == "supported" and v["optimal"]["peak_verdict"] != "supported"
    assert abs(v["none"]["theory_deviation"]) < 0.1 and abs(v["optimal"]["theory_deviation"]) < 0.1
    # optimal ridge is monotone in γ: no peak at all
    rows = sorted((c.params["gamma"], c.metrics["risk"]) for c in res.cells if c.params["ridge"] == "optimal")
    means = {}
    for g, r in rows:
        means.setdefault(g, []).append(r)
    m = [np.mean(means[g]) for g in sorted(means)]
    assert all(b >= a - 0.05 for a, b in zip(m, m[1:]))
    assert "nan" not in " ".join(res.analysis.findings).lower()


GAMMAS = [0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0]


def _cells(risk_of, seeds=6):
    """Synthetic cells of both arms: risk_of(gamma, ridge, theory, seed) -> measured risk."""
    out = []
    for ridge in ("none", "optimal"):
        for g in GAMMAS:
            th = theory_risk(g, 1.0, 0.25, ridge)
            for s in range(seeds):
                p = {"gamma": g, "n": 100, "r2": 1.0, "sigma2": 0.25, "ridge": ridge}
                out.append(Cell(f"{ridge}{g}{s}", EXPERIMENT.name, p, s, "done",
                                {"risk": risk_of(g, ridge, th, s), "theory_risk": th}))
    return out


def _verdicts(cells) -> dict[str, str]:
    return {c.claim.split(":")[0] + ("/theory" if "Hastie" in c.claim else "/peak" if "peaks" in c.claim
                                     else "/gain"): c.verdict for c in analyze(cells).claims}


def test_claims_flip_between_theory_and_no_theory_and_peak_and_no_peak():
    wiggle = lambda s: 0.02 * ((s % 3) - 1)                              # ±2% seed-to-seed
    # present: risk = theory (ridgeless peaks at the threshold, ridge does not)
    v = _verdicts(_cells(lambda g, r, th, s: th * (1 + wiggle(s))))
    assert v["ridgeless/theory"] == v["optimal ridge/theory"] == "supported"
    assert v["ridgeless/peak"] == "supported" and v["optimal ridge/peak"] != "supported"
    assert v["optimal ridge lowers the risk at the ridgeless arm's worst γ = 1.2/gain"] == "supported"
    # absent: the risk is flat at 1 in γ for both arms and twice the closed form's level
    v = _verdicts(_cells(lambda g, r, th, s: 1.0 + wiggle(s) + 0.01 * s))
    assert v["ridgeless/theory"] == "refuted" and v["ridgeless/peak"] != "supported"
    gain = [k for k in v if k.endswith("/gain")]
    assert len(gain) == 1 and v[gain[0]] != "supported"
