"""nngp-vs-sgd: the quick run (kernels, SGD nets and NTK nets tuned with the same budget on the same
validation split), the reported kernel accuracy reproduced independently, and the flip test."""
import math

import matplotlib
import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge

from petridish.errors import InvalidParameterError
from petridish.experiments import nngp_vs_sgd
from petridish.experiments.nngp_vs_sgd import EXPERIMENT
from petridish.kernels import mlp_kernels
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CHANCE = {"mnist1d": 0.1, "digits": 0.1}
FLOOR = {"mnist1d": 0.2, "digits": 0.85}       # above chance at 320 fitting points


@pytest.fixture(scope="module")
def sweep():
    res = run_sweep(EXPERIMENT.name, quick=True, store="memory", progress=False, workers=2)
    assert all(c.status == "done" for c in res.cells)
    return res


def test_quick_run_tunes_every_model_equally_and_states_claims(sweep):
    v = sweep.analysis.values
    models = EXPERIMENT.config(quick=True)["model"]
    for ds in ("mnist1d", "digits"):
        for m in models:
            acc, (lo, hi) = v[f"acc_{ds}_{m}"], v[f"acc_{ds}_{m}_ci"]
            assert acc > FLOOR[ds] > CHANCE[ds] and 0 <= lo <= acc <= hi <= 1, (ds, m, acc)
        assert set(v[f"acc_by_depth_{ds}_nngp"]) == {1, 2}
    budgets = {c.metrics["configs"] for c in sweep.cells}
    assert budgets == {2 * 8}                       # the same 16 configurations on every side
    claims = sweep.analysis.claims
    assert len(claims) == 3 * 2                     # per dataset: NTK ≈ NTK net, NNGP ≥ SGD net, width
    within = [c for c in claims if c.direction == "within"]
    assert len(within) == 2 and all(c.margin == nngp_vs_sgd.MARGIN and "ntknet-512" in c.claim for c in within)
    for c in claims:
        assert c.verdict in ("supported", "refuted", "inconclusive"), c.finding()
    text = " ".join(sweep.analysis.findings)
    assert "nan" not in text.lower() and "Lee et al." not in text and "improving" not in text
    fig = plt.figure(figsize=(12, 4))
    EXPERIMENT.plot(sweep.cells, fig)
    assert len(fig.axes) == 2 and all(len(ax.patches) == len(models) for ax in fig.axes)
    plt.close(fig)


def test_reported_nngp_accuracy_is_reproduced_by_kernel_ridge(sweep):
    """Refit the chosen (depth, w_std, b_std, diag_reg) of one cell with scikit-learn's
    KernelRidge on the same fit split: kernel ridge with alpha = reg * mean diagonal is the GP mean."""
    cell = next(c for c in sweep.cells if c.params["model"] == "nngp" and c.params["dataset"] == "mnist1d")
    m = cell.metrics
    (xf, yf), _, (xt, yt) = nngp_vs_sgd.split(cell.params, cell.seed)
    k = mlp_kernels(np.concatenate([xf.numpy(), xt.numpy()]), depth=m["depth"], w_std=m["w_std"],
                    b_std=m["b_std"]).nngp.numpy()
    n = xf.shape[0]
    kxx = k[:n, :n]
    alpha = m["diag_reg"] * np.mean(np.diag(kxx))
    targets = np.eye(10)[yf.numpy()] - 0.1
    scores = KernelRidge(alpha=alpha, kernel="precomputed").fit(kxx, targets).predict(k[n:, :n])
    acc = float(np.mean(scores.argmax(1) == yt.numpy()))
    assert acc == pytest.approx(m["accuracy"], abs=1.0 / len(yt) + 1e-12)   # at most one tie flips


def _cells(acc: dict[str, list[float]]):
    return [Cell(f"{m}{s}", EXPERIMENT.name, {"dataset": "digits", "model": m}, s, "done",
                 {"accuracy": a, "configs": 16})
            for m, accs in acc.items() for s, a in enumerate(accs)]


def test_claims_flip_with_the_phenomenon():
    base = {"nngp": [0.90, 0.91, 0.89, 0.90, 0.91], "ntk": [0.95, 0.95, 0.94, 0.96, 0.95]}
    absent = dict(base, **{"ntknet-512": [0.80, 0.82, 0.79, 0.81, 0.80], "mlp-16": [0.99, 1.0, 0.99, 1.0, 1.0],
                           "mlp-512": [0.97, 0.96, 0.99, 0.96, 0.98]})
    present = dict(base, **{"ntknet-512": [0.951, 0.949, 0.941, 0.958, 0.952], "mlp-16": [0.80, 0.82, 0.79, 0.81, 0.80],
                            "mlp-512": [0.88, 0.89, 0.87, 0.89, 0.88]})
    a = {c.claim.split(": ")[1].split(" ")[0]: c for c in EXPERIMENT.analyze(_cells(absent)).claims}
    b = {c.claim.split(": ")[1].split(" ")[0]: c for c in EXPERIMENT.analyze(_cells(present)).claims}
    assert set(a) == set(b) == {"NTK", "NNGP", "SGD"}
    assert a["NTK"].verdict == "refuted" and b["NTK"].verdict == "supported"        # the NTK-net gap
    assert a["NNGP"].verdict == "refuted" and b["NNGP"].verdict == "supported"      # kernel vs best SGD net
    assert a["SGD"].verdict in ("inconclusive", "refuted") and b["SGD"].verdict == "supported"   # width
    assert b["NTK"].estimate == pytest.approx(np.mean(np.subtract(base["ntk"], present["ntknet-512"])))
    assert "mlp-512" in b["NNGP"].claim and "mlp-16" in a["NNGP"].claim           # the best SGD net by mean
    nm = EXPERIMENT.analyze(_cells({"ntk": [0.9], "ntknet-512": [0.9]})).claims[0]
    assert nm.verdict == "not measured" and not math.isnan(len(nm.finding()))


def test_unknown_model_is_a_one_line_error():
    with pytest.raises(InvalidParameterError, match="'model' parameter"):
        EXPERIMENT.config({"model": ["nngp", "mlp-7"]}, quick=True)
