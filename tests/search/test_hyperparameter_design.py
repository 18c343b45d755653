"""hyperparameter-design: the tabulated task is trained correctly (oracle: one model with
torch.optim.SGD), compute is charged correctly, and the strategies show the phenomenon."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from petridish.experiments import hyperparameter_design as hd  # noqa: E402
from petridish.lab.executors.local import InProcessExecutor  # noqa: E402
from petridish.lab.sweep import run_sweep  # noqa: E402

SMALL = {"grid": "small", "epochs": 2, "n_train": 400}


def test_each_tabulated_config_is_what_solo_training_gives():
    """The tabular benchmark trains through ``train_ensemble``; oracle: each configuration
    trained alone with ``petridish.train.train`` (torch.optim.SGD), same init and batch order,
    evaluated on the validation and test sets after every epoch."""
    from petridish.models import build_model
    from petridish.train import train
    data = hd._data(400)
    (x, y), val, test = data
    lrs, wds = [0.05, 0.2], [1e-3, 1e-2]
    got = hd.group_curves(data, width=16, depth=2, batch=50, lrs=lrs, wds=wds, epochs=3, seeds=[7, 8],
                          data_seeds=[17, 18])
    assert got["val"].shape == got["test"].shape == (2, 3) and val[0].shape[0] == hd.N_VAL
    for r in range(2):
        model = build_model("mlp", d_in=40, d_out=10, seed=7 + r, width=16, depth=2)
        res = train(model, x, y, optimizer="sgd", lr=lrs[r], momentum=0.9, weight_decay=wds[r], batch_size=50,
                    epochs=3, loss="ce", seed=17 + r, eval_sets={"val": val, "test": test}, eval_every=8)
        for name in ("val", "test"):
            want = 1 - res.eval_history[name]["accuracy"].numpy()
            np.testing.assert_allclose(got[name][r], want, atol=3e-3)      # ≤ 3 of 1,000 predictions
    assert hd.tolerance(0.3, 2.0) == pytest.approx(2 * math.sqrt(0.21 / 1000))


def test_strategies_on_a_tiny_tabulated_task():
    res = run_sweep(hd.EXPERIMENT, overrides=SMALL, seeds=3, store="memory", progress=False,
                    executor=InProcessExecutor())
    by = {}
    for c in res.cells:
        assert c.status == "done", c.error
        by.setdefault(c.params["strategy"], []).append(c.metrics)
    assert set(by) == set(hd.STRATEGIES)
    bench = hd.benchmark("small", 2, 400, 0)
    curves, steps = bench["val"], bench["steps"]
    final = curves[:, -1]
    total = float((steps * 2).sum())
    for s, ms in by.items():
        for m in ms:
            assert m["grid_best"] == float(final.min()) and m["grid_cost_steps"] == total
            y = np.asarray(m["best_curve"])
            y = y[np.isfinite(y)]
            assert np.all(np.diff(y) <= 0) and np.all(y >= final.min())   # best-so-far never rises or beats the grid
            assert m["best_found"] >= m["grid_best"]
    # the exhaustive grid always gets there within its own cost, and its cost is charged exactly:
    # replay its random order and add up epochs × steps per epoch until a config is within tol
    for seed, m in enumerate(by["grid"]):
        order = np.random.default_rng(seed).permutation(final.size)
        spent = np.cumsum(2 * steps[order])
        tol = hd.tolerance(float(final.min()), 2.0)                     # 2 binomial SEs, as in run()
        assert m["tol"] == pytest.approx(tol) and tol > 0.02                # above the ≈ 0.015 noise floor
        first = int(np.argmax(final[order] <= final.min() + tol))
        assert m["reached_tol"] and m["steps_to_tol"] == spent[first] and m["fraction_to_tol"] <= 1.0
    # the phenomenon: hyperparameters matter on this task, and pruning makes trials cheaper
    assert by["grid"][0]["grid_median"] - by["grid"][0]["grid_best"] > 0.05
    per_trial = {s: np.mean([m["spent_steps"] / m["trials"] for m in by[s]]) for s in ("tpe", "tpe-hyperband")}
    assert per_trial["tpe-hyperband"] < per_trial["tpe"]
    a = res.analysis
    assert any("grid's best validation error" in f for f in a.findings)
    assert len(a.claims) == 4 and all(c.verdict in ("supported", "refuted", "inconclusive") for c in a.claims)
    assert set(hd.STRATEGIES) <= set(a.values) and 0 < a.values["grid"]["fraction_to_tol"]["geomean"] <= 1
    fig = plt.figure()
    hd.plot(res.cells, fig)
    ax = fig.axes[0]
    assert len(ax.lines) == 4 + 2 and len(ax.collections) == 4       # a curve and a CI band per strategy
    assert ax.lines[-1].get_ydata()[0] == pytest.approx(final.min() + by["grid"][0]["tol"])   # the tolerance line
    plt.close(fig)
