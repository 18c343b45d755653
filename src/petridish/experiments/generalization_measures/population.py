"""Train one architecture's share of the population as one ensemble, then measure every member.

A group is one (width, depth, batch size): its members differ in learning rate, weight decay and seed
(``train_ensemble`` with per-member lr / weight decay / seeds). Each member stops when its minibatch
cross-entropy first reaches ``target_loss`` (Jiang et al. train to 0.01 on the full training set; here
the minibatch loss is the stopping signal, so the full training loss at the stop is recorded as
``train_loss`` and lies near, not at, the target). Members that never reach it within ``steps`` are
kept with ``reached = False`` and no measures; the analysis leaves them out, as the paper does.
"""
from __future__ import annotations

from petridish.data import mnist1d
from petridish.experiments.generalization_measures.measures import all_measures
from petridish.models.registry import build_model
from petridish.train import train_ensemble


def _data(p: dict):
    return mnist1d(n_train=p["n_train"], n_test=p["n_test"])


def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Cells sharing width, depth, batch size and the data/training settings, trained as one ensemble."""
    p = params_list[0]
    ds = _data(p)
    arch = {"width": p["width"], "depth": p["depth"], "d_out": 10}
    res = train_ensemble("mlp", ds.x_train, ds.y_train, seeds=list(seeds), lr=[q["lr"] for q in params_list],
                         weight_decay=[q["weight_decay"] for q in params_list], momentum=p["momentum"],
                         batch_size=p["batch_size"], steps=p["steps"], target_loss=p["target_loss"],
                         model_kwargs=arch,
                         eval_sets={"train": (ds.x_train, ds.y_train), "test": (ds.x_test, ds.y_test)})
    n = min(p["n_measure"], ds.x_train.shape[0])
    xm, ym = ds.x_train[:n], ds.y_train[:n]          # the measures' fixed training subset
    out = []
    for k, (q, s) in enumerate(zip(params_list, seeds)):
        if bool(res.diverged[k]):
            out.append({"diverged": True})
            continue
        m = res.final_metrics(k)
        m.update(gap=m["test_error"] - m["train_error"], loss_gap=m["test_loss"] - m["train_loss"],
                 reached=bool(res.reached_target[k]), steps=int(res.steps[k]))
        if m["reached"]:
            init = build_model("mlp", d_in=ds.x_train.shape[1], seed=s, **arch)
            m.update(all_measures(res.member(k), init, xm, ym, batch_size=q["batch_size"], seed=s))
        out.append(m)
    return out


def run(p: dict, seed: int) -> dict:
    return run_group([p], [seed])[0]
