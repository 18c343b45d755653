"""MLP arms (``mlp``, ``epochs``): the MNIST-1D double-descent notebook, as one ensemble per width.

All cells of one width (noise levels × seeds) are trained together by
``train_ensemble`` (stacked-weights fast path), each member with its own noisy labels
(K, n), its own init (``build_model`` seeded by the cell's seed) and its own minibatch
order (the cell's seed). A cell run alone is the same computation with K = 1.
"""
from __future__ import annotations

import torch

from petridish.experiments._dd.mnist1d_task import noisy_mnist1d
from petridish.experiments._dd.sizes import mlp_params, mlp_threshold_width
from petridish.models.registry import build_model
from petridish.train import train_ensemble

EVAL_POINTS = 25      # test/train error recorded this many times over training (the epoch curve)


def train_width(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Train every cell (same width and training settings; noise/seed free) in one ensemble."""
    p0 = params_list[0]
    width, n_train, n_test = int(p0["width"]), int(p0["n_train"]), int(p0["n_test"])
    data = [noisy_mnist1d(n_train=n_train, n_test=n_test, noise=p["noise"], seed=s)
            for p, s in zip(params_list, seeds)]
    x, x_test, y_test = data[0][0], data[0][2], data[0][3]
    y = torch.stack([d[1] for d in data])                        # (K, n) per-member noisy labels
    steps_per_epoch = -(-n_train // int(p0["batch_size"]))
    total = steps_per_epoch * int(p0["epochs"])
    every = max(1, total // EVAL_POINTS)
    res = train_ensemble(
        lambda s: build_model("mlp", d_in=x.shape[1], d_out=10, seed=s, width=width, depth=2),
        x, y, seeds=list(seeds), lr=float(p0["lr"]), momentum=float(p0["momentum"]),
        batch_size=int(p0["batch_size"]), epochs=int(p0["epochs"]), loss="ce",
        eval_sets={"train": (x, y), "test": (x_test, y_test)}, eval_every=every)
    epochs_axis = [s / steps_per_epoch for s in res.eval_steps]
    n_par = mlp_params(width)
    out = []
    for k in range(len(seeds)):
        test_err = (1 - res.eval_history["test"]["accuracy"][k]).tolist()
        train_err = (1 - res.eval_history["train"]["accuracy"][k]).tolist()
        out.append({
            "test_error": test_err[-1], "train_error": train_err[-1],
            "test_loss": float(res.eval_history["test"]["loss"][k, -1]),
            "train_loss": float(res.eval_history["train"]["loss"][k, -1]),
            "size": width, "n_params": n_par, "threshold": mlp_threshold_width(n_train),
            "test_error_curve": test_err, "train_error_curve": train_err, "epoch_curve": epochs_axis,
            "diverged": bool(res.diverged[k]),
        })
    return out
