"""MLP arms (``mlp``, ``epochs``): the MNIST-1D double-descent notebook as stacked ensembles.

Every cell of a group (same training settings; width, noise and seed free) is one member:
its own noisy labels (K, n), its own init (``build_model`` seeded by ``sub_seed(seed, "init")``)
and its own minibatch order (``sub_seed(seed, "batches")``): independent streams of the cell's
seed. Widths are trained in buckets (``buckets.plan``), each bucket one ``train_ensemble`` call
of zero-padded MLPs. A cell run alone is the same computation with K = 1 and no padding.
"""
from __future__ import annotations

import torch

from petridish.experiments.double_descent.buckets import padded_mlp, plan
from petridish.experiments.double_descent.mnist1d_task import noisy_mnist1d
from petridish.experiments.double_descent.sizes import mlp_params, mlp_threshold_width
from petridish import steps
from petridish.seeding import sub_seed
from petridish.train import train_ensemble


def train_width(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Train every cell (same training settings; width, noise, seed free) in width buckets."""
    p0 = params_list[0]
    n_train, n_test = int(p0["n_train"]), int(p0["n_test"])
    data = [noisy_mnist1d(n_train=n_train, n_test=n_test, noise=p["noise"], seed=s)
            for p, s in zip(params_list, seeds)]
    x, x_test, y_test = data[0][0], data[0][2], data[0][3]
    y = torch.stack([d[1] for d in data])                        # (K, n) per-member noisy labels
    counts: dict[int, int] = {}
    for p in params_list:
        counts[int(p["width"])] = counts.get(int(p["width"]), 0) + 1
    out: list[dict | None] = [None] * len(params_list)
    buckets = plan(counts)
    # the group's whole step count up front, so progress bars do not grow bucket by bucket
    steps.declare(len(buckets) * -(-n_train // int(p0["batch_size"])) * int(p0["epochs"]))
    for bucket in buckets:
        idx = [i for i, p in enumerate(params_list) if int(p["width"]) in bucket]
        for i, m in zip(idx, _train_bucket([params_list[i] for i in idx], [seeds[i] for i in idx],
                                           max(bucket), x, y[idx], x_test, y_test)):
            out[i] = m
    return out   # type: ignore[return-value]


def _train_bucket(cells: list[dict], seeds: list[int], pad: int, x, y, x_test, y_test) -> list[dict]:
    p0 = cells[0]
    steps_per_epoch = -(-x.shape[0] // int(p0["batch_size"]))
    total = steps_per_epoch * int(p0["epochs"])
    every = max(1, total // int(p0["curve_points"]))
    widths = [int(p["width"]) for p in cells]
    res = train_ensemble(
        lambda k: padded_mlp(widths[k], pad, sub_seed(seeds[k], "init"), d_in=x.shape[1]),
        x, y, seeds=list(range(len(cells))), data_seeds=[sub_seed(s, "batches") for s in seeds],
        lr=float(p0["lr"]),
        momentum=float(p0["momentum"]), batch_size=int(p0["batch_size"]), epochs=int(p0["epochs"]),
        loss="ce", eval_sets={"train": (x, y), "test": (x_test, y_test)}, eval_every=every)
    epochs_axis = [s / steps_per_epoch for s in res.eval_steps]
    n_train = x.shape[0]
    out = []
    for k, width in enumerate(widths):
        test_err = (1 - res.eval_history["test"]["accuracy"][k]).tolist()
        train_err = (1 - res.eval_history["train"]["accuracy"][k]).tolist()
        out.append({
            "test_error": test_err[-1], "train_error": train_err[-1],
            "test_loss": float(res.eval_history["test"]["loss"][k, -1]),
            "train_loss": float(res.eval_history["train"]["loss"][k, -1]),
            "size": width, "n_params": mlp_params(width),
            "threshold": mlp_threshold_width(n_train), "threshold_nk": mlp_threshold_width(n_train, per_class=True),
            "test_error_curve": test_err, "train_error_curve": train_err, "epoch_curve": epochs_axis,
            "diverged": bool(res.diverged[k]),
        })
    return out
