"""learning-curves: the power-law fit against synthetic curves with a known exponent (Monte Carlo
oracle), then the experiment's signature on a reduced quick configuration."""
import math

import matplotlib
import numpy as np
import pytest

from petridish.errors import InvalidParameterError
from petridish.experiments._fit.power_law import bootstrap_power_law, fit_power_law
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")

N = np.geomspace(32, 2048, 7)
A, B = 2.0, 0.4


def _synthetic(rng, seeds=5, sigma=0.05, c=0.0):
    """(S, N) errors c + a·n^(−b), each cell times an independent log-normal factor."""
    return (c + A * N ** -B) * np.exp(sigma * rng.standard_normal((seeds, N.size)))


def test_fit_recovers_exponent_and_prefactor():
    err = _synthetic(np.random.default_rng(0))
    law = fit_power_law(N, err)
    assert law.alpha == pytest.approx(B, abs=0.02)
    assert law.a == pytest.approx(A, rel=0.1)
    # exact data: least squares in log space is exact
    exact = fit_power_law(N, A * N ** -B)
    assert exact.alpha == pytest.approx(B, abs=1e-10) and exact.a == pytest.approx(A, rel=1e-10)
    assert exact.n_at(A * 100.0 ** -B) == pytest.approx(100.0, rel=1e-8)


def test_offset_fit_recovers_irreducible_error():
    c = 0.05
    law = fit_power_law(N, c + A * N ** -B, offset=True)
    assert law.c == pytest.approx(c, abs=0.003)
    assert law.alpha == pytest.approx(B, abs=0.03)


def test_bootstrap_interval_covers_true_exponent():
    """Over 60 synthetic data sets the 95% interval must cover b = 0.4 in >= 85% of them
    (P(fewer than 51 of 60 | coverage 0.95) ~ 0.002) and be no wider than needed."""
    rng = np.random.default_rng(1)
    hits, widths = 0, []
    for r in range(60):
        fit = bootstrap_power_law(N, _synthetic(rng), n_boot=400, seed=r)
        assert fit.alpha_lo <= fit.alpha <= fit.alpha_hi
        hits += fit.alpha_lo <= B <= fit.alpha_hi
        widths.append(fit.alpha_hi - fit.alpha_lo)
    assert hits >= 51, hits
    # the exponent's sd from log-space OLS with per-n means of 5 seeds: 0.05/sqrt(5)/sd(log n)
    sd = 0.05 / math.sqrt(5) / math.sqrt(((np.log(N) - np.log(N).mean()) ** 2).sum())
    assert 2 * 1.96 * sd * 0.6 < np.median(widths) < 2 * 1.96 * sd * 1.6, (np.median(widths), sd)


def test_bad_input_is_one_line_error():
    with pytest.raises(InvalidParameterError, match="The 'err' parameter of fit_power_law"):
        fit_power_law(N, np.zeros(N.size))
    with pytest.raises(InvalidParameterError, match="The 'err' parameter of bootstrap_power_law"):
        bootstrap_power_law(N, A * N ** -B)          # one seed: no interval


@pytest.fixture(scope="module")
def sweep():
    # the quick configuration, shrunk: n <= 512 and p = 1024 > n (no interpolation peak)
    return run_sweep("learning-curves", quick=True, store="memory", progress=False,
                     overrides={"features": [128, 1024], "n": [32, 64, 128, 256, 512], "n_test": 500})


def test_fitted_exponents_are_positive_with_intervals(sweep):
    fits = sweep.analysis.values["fits"]
    assert set(fits) == {f"p={p}/{a}" for p in (128, 1024) for a in ("none", "ridge", "early-stopping")}
    for key, f in fits.items():
        assert f["alpha_lo"] <= f["alpha"] <= f["alpha_hi"], key
        assert f["c_lo"] <= f["c"] <= f["c_hi"] and f["c"] >= 0, key
        assert f["log_rmse_offset"] <= f["log_rmse_pure"] + 1e-9, key     # the offset model nests c = 0
        if key.startswith("p=1024") or not key.endswith("none"):
            # error falls with n (negative slope in log-log), CI away from 0
            assert f["alpha_lo"] > 0 and f["err_large_n"] < f["err_small_n"] - 0.03, (key, f)
    # min-norm p = 128 passes its interpolation peak at n = p: a seed-paired peak claim, not hidden
    assert fits["p=128/none"]["peak_n"] in (64, 128, 256)
    assert any("p = 128, none: test error peaks" in s for s in sweep.analysis.findings)


def test_regularization_saves_data_and_findings_present(sweep):
    values = sweep.analysis.values
    for arm in ("ridge", "early-stopping"):
        s = values["savings"][f"p=1024/{arm}"]
        assert s["ratio"] > 1.2, s                      # tuned regularization reaches the target with less data
        assert s["ratio_lo"] <= s["ratio"] <= s["ratio_hi"]
    claims = sweep.analysis.to_json()["claims"]
    assert sum("falls as a power law" in c["claim"] for c in claims) == 6
    assert sum("with fewer examples" in c["claim"] for c in claims) == 4
    assert "nan" not in " ".join(sweep.analysis.findings).lower()
    for c in sweep.cells:
        assert c.status == "done" and 0 <= c.metrics["test_error"] <= 1


def _cells(err_of, seeds=4, ns=(32, 64, 128, 256, 512, 1024)):
    """Synthetic cells of one model size, every arm: err_of(n, arm) times a ±3% seed factor."""
    out = []
    for arm in ("none", "ridge", "early-stopping"):
        for n in ns:
            for s in range(seeds):
                p = {"features": 256, "n": n, "arm": arm, "target_error": 0.0}
                e = err_of(n, arm) * (1 + 0.03 * ((s % 3) - 1))
                out.append(Cell(f"{arm}{n}{s}", "learning-curves", p, s, "done", {"test_error": e}))
    return out


def _verdicts(cells) -> dict[str, str]:
    from petridish.experiments.learning_curves import analyze
    return {c.claim.split(" (")[0].split(" —")[0]: c.verdict for c in analyze(cells).claims}


def test_exponent_offset_and_savings_claims_flip():
    flat = _verdicts(_cells(lambda n, arm: 0.5))
    assert flat["p = 256, none: test error falls as a power law in n"] != "supported"
    assert flat["p = 256, none: test error levels off at an irreducible error c > 0"] != "supported"
    law = _verdicts(_cells(lambda n, arm: 0.3 + 2.0 * n ** -0.5 if arm == "none" else 0.3 + 1.0 * n ** -0.5))
    assert law["p = 256, none: test error falls as a power law in n"] == "supported"
    assert law["p = 256, none: test error levels off at an irreducible error c > 0"] == "supported"
    pure = _verdicts(_cells(lambda n, arm: 2.0 * n ** -0.5))
    assert pure["p = 256, none: test error levels off at an irreducible error c > 0"] == "refuted"
    saving = [k for k in law if "ridge reaches" in k]
    assert len(saving) == 1 and law[saving[0]] == "supported"
    assert [v for k, v in flat.items() if "ridge reaches" in k] != ["supported"]
