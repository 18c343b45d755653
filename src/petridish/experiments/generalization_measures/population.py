"""Train one architecture's share of the population as one ensemble, then measure every member.

A group is one (width, depth, batch size, dropout): its members differ in learning rate, weight decay and
seed (``train_ensemble`` with per-member lr / weight decay / seeds). Each member stops when its minibatch
cross-entropy first reaches ``target_loss`` (Jiang et al. train to 0.01 on the full training set; here
the minibatch loss is the stopping signal, so the full training loss at the stop is recorded as
``train_loss`` and lies near, not at, the target). Members that never reach it within ``steps`` are
kept with ``reached = False`` and no measures; the analysis leaves them out, as the paper does.

Dropout: the ensemble engines cannot draw per-member dropout masks (vmap refuses random operations), so a
member with dropout > 0 trains alone on the loop engine, its masks drawn from the global torch RNG seeded
with ``sub_seed(seed, "dropout")`` inside a forked RNG (so ``run`` and ``run_group`` agree). Errors and
losses are evaluated here with the model in eval mode (dropout off), for every member alike.
"""
from __future__ import annotations

import torch
from torch import nn

from petridish.data import mnist1d
from petridish.experiments.generalization_measures.measures import all_measures
from petridish.models.registry import build_model
from petridish.seeding import sub_seed
from petridish.train import train_ensemble


def _data(p: dict):
    return mnist1d(n_train=p["n_train"], n_test=p["n_test"])


@torch.no_grad()
def _errors(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, error rate) of the model in eval mode."""
    out = model.eval()(x)
    return float(nn.functional.cross_entropy(out, y)), float((out.argmax(1) != y).double().mean())


def _train(p: dict, ds, params_list: list[dict], seeds: list[int]) -> list[tuple[nn.Module, bool, bool, int]]:
    """(trained model, diverged, reached the target, steps) per member."""
    arch = {"width": p["width"], "depth": p["depth"], "d_out": 10, "dropout": p["dropout"]}
    kw = dict(momentum=p["momentum"], batch_size=p["batch_size"], steps=p["steps"], target_loss=p["target_loss"],
              model_kwargs=arch)
    if p["dropout"] == 0:
        res = train_ensemble("mlp", ds.x_train, ds.y_train, seeds=list(seeds), lr=[q["lr"] for q in params_list],
                             weight_decay=[q["weight_decay"] for q in params_list], **kw)
        return [(res.member(k), bool(res.diverged[k]), bool(res.reached_target[k]), int(res.steps[k]))
                for k in range(len(seeds))]
    out = []
    for q, s in zip(params_list, seeds):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sub_seed(s, "dropout"))
            res = train_ensemble("mlp", ds.x_train, ds.y_train, seeds=[s], lr=q["lr"],
                                 weight_decay=q["weight_decay"], path="loop", **kw)
        out.append((res.member(0), bool(res.diverged[0]), bool(res.reached_target[0]), int(res.steps[0])))
    return out


def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Cells sharing width, depth, batch size, dropout and the data/training settings, trained together."""
    p = params_list[0]
    ds = _data(p)
    n = min(p["n_measure"], ds.x_train.shape[0])
    xm, ym = ds.x_train[:n], ds.y_train[:n]          # the measures' fixed training subset
    out = []
    for (model, diverged, reached, steps), q, s in zip(_train(p, ds, params_list, seeds), params_list, seeds):
        if diverged:
            out.append({"diverged": True})
            continue
        train_loss, train_error = _errors(model, ds.x_train, ds.y_train)
        test_loss, test_error = _errors(model, ds.x_test, ds.y_test)
        m = {"train_loss": train_loss, "train_error": train_error, "test_loss": test_loss, "test_error": test_error,
             "gap": test_error - train_error, "loss_gap": test_loss - train_loss, "reached": reached, "steps": steps}
        if reached:
            init = build_model("mlp", d_in=ds.x_train.shape[1], d_out=10, seed=s, width=p["width"], depth=p["depth"])
            m.update(all_measures(model, init, xm, ym, batch_size=q["batch_size"], seed=s))
        out.append(m)
    return out


def run(p: dict, seed: int) -> dict:
    return run_group([p], [seed])[0]
