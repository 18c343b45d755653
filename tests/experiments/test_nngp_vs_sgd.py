"""nngp-vs-sgd on its quick configuration (widths 16 and 512 only): kernels match or beat the
SGD networks (Lee et al. 2018), and the reported kernel accuracy is reproduced independently."""
import matplotlib
import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge

from petridish.errors import InvalidParameterError
from petridish.experiments import nngp_vs_sgd
from petridish.experiments.nngp_vs_sgd import EXPERIMENT
from petridish.kernels import mlp_kernels
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODELS = ["nngp", "ntk", "mlp-16", "mlp-512"]
CHANCE = {"mnist1d": 0.1, "digits": 0.1}
FLOOR = {"mnist1d": 0.3, "digits": 0.85}       # far above chance at 400 training points


@pytest.fixture(scope="module")
def sweep():
    res = run_sweep(EXPERIMENT.name, quick=True, overrides={"model": MODELS}, store="memory", progress=False)
    assert all(c.status == "done" for c in res.cells)
    return res


def test_kernels_match_or_beat_the_widest_sgd_network(sweep):
    v = sweep.analysis.values
    for ds in ("mnist1d", "digits"):
        for k in ("nngp", "ntk"):
            acc, (lo, hi) = v[f"acc_{ds}_{k}"], v[f"acc_{ds}_{k}_ci"]
            assert acc > FLOOR[ds] > CHANCE[ds] and lo <= acc <= hi, (ds, k, acc)
            # Lee et al. 2018: the infinite-width kernel is at least as good as the trained net (2-point margin)
            assert acc >= v[f"acc_{ds}_mlp-512"] - 0.02, (ds, k, acc, v[f"acc_{ds}_mlp-512"])
        # SGD networks do not get worse with width: the widest is within the narrowest's CI or above
        lo16 = v[f"acc_{ds}_mlp-16_ci"][0]
        assert v[f"acc_{ds}_mlp-512"] >= lo16, (ds, v[f"acc_{ds}_mlp-512"], lo16)
        assert v[f"mlp_width_trend_{ds}"] == pytest.approx(v[f"acc_{ds}_mlp-512"] - v[f"acc_{ds}_mlp-16"])
        assert set(v[f"acc_by_depth_{ds}_nngp"]) == {1, 2, 3}
    assert any("Lee et al. 2018" in f for f in sweep.analysis.findings)
    fig = plt.figure(figsize=(12, 4))
    EXPERIMENT.plot(sweep.cells, fig)
    assert len(fig.axes) == 2
    plt.close(fig)


def test_reported_nngp_accuracy_is_reproduced_by_kernel_ridge(sweep):
    """Refit the chosen (depth, w_std, b_std, diag_reg) of one cell with scikit-learn's
    KernelRidge on the same split: kernel ridge with alpha = reg * mean diagonal is the GP mean."""
    cell = next(c for c in sweep.cells if c.params["model"] == "nngp" and c.params["dataset"] == "mnist1d")
    m = cell.metrics
    xtr, ytr, xte, yte = nngp_vs_sgd._data(cell.params, cell.seed)
    k = mlp_kernels(np.concatenate([xtr.numpy(), xte.numpy()]), depth=m["depth"], w_std=m["w_std"],
                    b_std=m["b_std"]).nngp.numpy()
    n = xtr.shape[0]
    kxx = k[:n, :n]
    alpha = m["diag_reg"] * np.mean(np.diag(kxx))
    targets = np.eye(10)[ytr.numpy()] - 0.1
    scores = KernelRidge(alpha=alpha, kernel="precomputed").fit(kxx, targets).predict(k[n:, :n])
    acc = float(np.mean(scores.argmax(1) == yte.numpy()))
    assert acc == pytest.approx(m["accuracy"], abs=1.0 / len(yte) + 1e-12)   # at most one tie flips


def test_unknown_model_is_a_one_line_error():
    with pytest.raises(InvalidParameterError, match="'model' parameter"):
        EXPERIMENT.config({"model": ["nngp", "mlp-7"]}, quick=True)
