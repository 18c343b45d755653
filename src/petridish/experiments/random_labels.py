"""Random labels: a network that fits its training set perfectly whatever the labels are.

Zhang, Bengio, Hardt, Recht & Vinyals (ICLR 2017) "Understanding deep learning requires
rethinking generalization".

An MLP (40 → width → width → 10) and the MNIST-1D paper's CNN (``channels`` per conv)
train with SGD + momentum at a constant learning rate on MNIST-1D whose training labels
are corrupted: each one, with probability ``corruption``, is replaced by a uniform random
class (p = 1: labels independent of the inputs). Two more conditions keep the labels and
destroy the inputs: ``shuffled`` (each example's 40 positions permuted at random, test
inputs too) and ``gaussian`` (every input replaced by Gaussian noise with the training
set's per-feature mean and std). Per cell: final train and test accuracy (test labels are
always the true ones) and the updates needed to first reach ``fit_threshold`` training
accuracy (evaluated once per epoch on the whole corrupted training set).

Cells that share model and inputs train as one vectorized ensemble: every corruption
level and seed is one member with its own labels (``train_ensemble`` takes (K, n) labels).
A seed's corruptions are nested (the labels corrupted at p = 0.2 are also corrupted at
0.4); the shuffled / Gaussian inputs are one fixed draw shared by all seeds, since the
members of an ensemble share their inputs.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from petridish.data import gaussian_inputs, label_noise, mnist1d
from petridish.lab import Analysis, Experiment, Param, aggregate, curve_ci
from petridish.train import evaluate, train_ensemble
from petridish.train.batches import steps_per_epoch

MODELS = ("mlp", "cnn")
INPUTS = ("original", "shuffled", "gaussian")
CORRUPTIONS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
QUICK_CORRUPTIONS = [0.0, 0.5, 1.0]
CHANCE = 0.1            # 10 balanced classes
INPUT_SEED = 0          # the one draw of shuffled / Gaussian inputs
EXTRA_X = {"shuffled": 1.25, "gaussian": 1.5}   # where the input conditions sit on the corruption axis


# ---------------------------------------------------------------- data

def _shuffle_each(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Every row of x (n, d) under its own random permutation of the d positions."""
    perm = torch.rand(x.shape, generator=g).argsort(dim=1)
    return x.gather(1, perm)


def _dataset(p: dict):
    ds = mnist1d(n_train=p["n_train"], n_test=p["n_test"])
    if p["inputs"] == "shuffled":
        g = torch.Generator().manual_seed(INPUT_SEED)
        return ds.with_(x_train=_shuffle_each(ds.x_train, g), x_test=_shuffle_each(ds.x_test, g))
    if p["inputs"] == "gaussian":
        return gaussian_inputs(ds, seed=INPUT_SEED)
    return ds


# ---------------------------------------------------------------- training

def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Cells sharing model, inputs and training settings; members differ in corruption and seed."""
    p = params_list[0]
    ds = _dataset(p)
    noisy = [label_noise(ds, q["corruption"], seed=s) for q, s in zip(params_list, seeds)]
    ys = torch.stack([d.y_train for d in noisy])                                    # (K, n)
    kw = {"width": p["width"], "depth": 2} if p["model"] == "mlp" else {"channels": p["channels"]}
    per_epoch = steps_per_epoch(p["n_train"], p["batch_size"])
    res = train_ensemble(p["model"], ds.x_train, ys, seeds=list(seeds), lr=p["lr"], momentum=p["momentum"],
                         batch_size=p["batch_size"], epochs=p["epochs"], model_kwargs=dict(kw, d_out=10),
                         eval_sets={"train": (ds.x_train, ys)}, eval_every=per_epoch)
    acc = res.eval_history["train"]["accuracy"]                                     # (K, epochs)
    steps = np.asarray(res.eval_steps)
    out = []
    for k, (q, d) in enumerate(zip(params_list, noisy)):
        if bool(res.diverged[k]):
            out.append({"diverged": True})
            continue
        curve = acc[k].numpy()
        hit = np.flatnonzero(curve >= q["fit_threshold"])
        to_fit = float(steps[hit[0]]) if hit.size else math.nan
        test = evaluate(res.member(k).eval(), ds.x_test, ds.y_test, "ce")
        out.append({
            "train_acc": float(curve[-1]),
            "test_acc": float(test["accuracy"]),
            "test_loss": float(test["loss"]),
            "steps_to_fit": to_fit,
            "epochs_to_fit": to_fit / per_epoch,
            "fitted": bool(hit.size),
            "corrupted_fraction": float(d.corrupted.double().mean()),
            "train_acc_curve": [float(a) for a in curve],
        })
    return out


def run(p: dict, seed: int) -> dict:
    return run_group([p], [seed])[0]


# ---------------------------------------------------------------- analysis

def _rows(cells, model: str) -> list[dict]:
    """Aggregated rows of one model: label corruptions in increasing order, then shuffled, gaussian."""
    mine = [c for c in cells if c.params["model"] == model]
    rows = [r for r in aggregate(mine, by=["inputs", "corruption"]) if "train_acc" in r["metrics"]]
    for r in rows:
        q = r["params"]
        r["x"] = q["corruption"] if q["inputs"] == "original" else EXTRA_X[q["inputs"]]
        r["label"] = f"p = {q['corruption']:g}" if q["inputs"] == "original" else f"{q['inputs']} inputs"
    return sorted(rows, key=lambda r: r["x"])


def _stat(row: dict, name: str) -> tuple[float, float, float]:
    m = row["metrics"].get(name)
    return (m["mean"], m["lo"], m["hi"]) if m else (math.nan, math.nan, math.nan)


def _summary(cells, model: str) -> dict:
    rows = _rows(cells, model)
    labels = [r for r in rows if r["params"]["inputs"] == "original"]
    out = {"conditions": [r["label"] for r in rows],
           "train_acc": [_stat(r, "train_acc")[0] for r in rows],
           "test_acc": [_stat(r, "test_acc")[0] for r in rows],
           "steps_to_fit": [_stat(r, "steps_to_fit")[0] for r in rows],
           "unfitted_cells": sum(1 for c in cells if c.params["model"] == model and c.status == "done"
                                 and not c.metrics.get("fitted", False)),
           "min_train_acc": float(np.nanmin([_stat(r, "train_acc")[0] for r in rows]))}
    if len(labels) >= 2:
        lo, hi = labels[0], labels[-1]
        p = np.array([r["params"]["corruption"] for r in labels])
        te = np.array([_stat(r, "test_acc")[0] for r in labels])
        out.update(p_low=lo["params"]["corruption"], p_high=hi["params"]["corruption"],
                   test_acc_low=_stat(lo, "test_acc"), test_acc_high=_stat(hi, "test_acc"),
                   steps_low=_stat(lo, "steps_to_fit"), steps_high=_stat(hi, "steps_to_fit"),
                   steps_ratio=_stat(hi, "steps_to_fit")[0] / _stat(lo, "steps_to_fit")[0],
                   test_acc_slope=float(np.polyfit(p, te, 1)[0]))
    for r in rows:
        if r["params"]["inputs"] != "original":
            out[r["params"]["inputs"]] = {"train_acc": _stat(r, "train_acc")[0], "test_acc": _stat(r, "test_acc")[0],
                                          "steps_to_fit": _stat(r, "steps_to_fit")[0]}
    return out


def _findings(model: str, s: dict, threshold: float, epochs: int) -> list[str]:
    f = [f"{model}: after {epochs} epochs the lowest training accuracy over the {len(s['conditions'])} conditions "
         f"is {s['min_train_acc']:.3f} ({s['unfitted_cells']} cells never reached {threshold:g}): it fits "
         f"corrupted, random and noise-input training sets alike."]
    if "steps_ratio" in s:
        (a, alo, ahi), (b, blo, bhi) = s["test_acc_low"], s["test_acc_high"]
        f.append(f"{model}: test accuracy falls from {a:.3f} [{alo:.3f}, {ahi:.3f}] at corruption {s['p_low']:g} "
                 f"to {b:.3f} [{blo:.3f}, {bhi:.3f}] at {s['p_high']:g} (chance {CHANCE:.3f}); a linear fit "
                 f"over corruption has slope {s['test_acc_slope']:.3f} per unit of corruption.")
        (u, ulo, uhi), (v, vlo, vhi) = s["steps_low"], s["steps_high"]
        f.append(f"{model}: reaching {threshold:g} training accuracy takes {u:.0f} [{ulo:.0f}, {uhi:.0f}] updates "
                 f"at corruption {s['p_low']:g} and {v:.0f} [{vlo:.0f}, {vhi:.0f}] at {s['p_high']:g}: "
                 f"{s['steps_ratio']:.2f} times as long, a small constant factor.")
    extra = [f"{k} inputs: train {s[k]['train_acc']:.3f}, test {s[k]['test_acc']:.3f}, "
             f"{s[k]['steps_to_fit']:.0f} updates to fit" for k in INPUTS[1:] if k in s]
    if extra:
        f.append(f"{model}: " + "; ".join(extra) + ".")
    return f


def analyze(cells) -> Analysis:
    done = [c for c in cells if c.status == "done" and "train_acc" in c.metrics]
    if not done:
        return Analysis(["No finished cells."], {})
    threshold, epochs = done[0].params["fit_threshold"], done[0].params["epochs"]
    findings, values = [], {"chance": CHANCE, "fit_threshold": threshold}
    for model in [m for m in MODELS if any(c.params["model"] == m for c in done)]:
        s = _summary(done, model)
        values[model] = s
        findings += _findings(model, s, threshold, epochs)
    return Analysis(findings, values)


# ---------------------------------------------------------------- figure

def _ticks(ax, rows) -> None:
    xs = sorted({r["x"] for r in rows})
    ax.set_xticks(xs, [f"{x:g}" if x <= 1 else ("shuf." if x == EXTRA_X["shuffled"] else "gauss.") for x in xs],
                  fontsize=7)
    ax.set_xlabel("label corruption p  |  input conditions (true labels)", fontsize=8)


def _errorbars(ax, rows, name: str, **kw) -> None:
    for group in (True, False):          # the corruption curve joined, the input conditions as points
        sel = [r for r in rows if (r["params"]["inputs"] == "original") == group]
        if not sel:
            continue
        x = np.array([r["x"] for r in sel])
        m, lo, hi = (np.array(v) for v in zip(*[_stat(r, name) for r in sel]))
        ax.errorbar(x, m, yerr=[m - lo, hi - m], fmt="o-" if group else "s", capsize=3, ms=4,
                    **(kw if group else {k: v for k, v in kw.items() if k != "label"}))


def _curves(ax, cells, model: str) -> None:
    for j, r in enumerate(_rows(cells, model)):
        q = r["params"]
        curves = [c.metrics["train_acc_curve"] for c in cells if c.status == "done" and c.params["model"] == model
                  and c.params["inputs"] == q["inputs"] and c.params["corruption"] == q["corruption"]
                  and "train_acc_curve" in c.metrics]
        length = min(len(v) for v in curves)
        m, lo, hi = curve_ci([v[:length] for v in curves])
        ep = np.arange(1, length + 1)
        ax.plot(ep, m, color=f"C{j}", lw=1.2, label=r["label"])
        ax.fill_between(ep, np.clip(lo, 0, 1), np.clip(hi, 0, 1), color=f"C{j}", alpha=0.2)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel("training accuracy", fontsize=8)
    ax.legend(fontsize=6, ncol=2)


def plot(cells, fig) -> None:
    done = [c for c in cells if c.status == "done" and "train_acc" in c.metrics]
    models = [m for m in MODELS if any(c.params["model"] == m for c in done)]
    if not models:
        return
    threshold = done[0].params["fit_threshold"]
    axes = fig.subplots(len(models), 3, squeeze=False)
    for row, model in zip(axes, models):
        rows = _rows(done, model)
        acc, steps, curves = row
        _errorbars(acc, rows, "train_acc", color="C0", label="train")
        _errorbars(acc, rows, "test_acc", color="C3", label="test")
        acc.axhline(CHANCE, color="gray", ls=":", lw=1, label="chance")
        acc.set_ylim(0, 1.05)
        acc.set_ylabel(f"{model}: accuracy", fontsize=9)
        acc.legend(fontsize=7)
        _ticks(acc, rows)
        _errorbars(steps, rows, "steps_to_fit", color="C2")
        steps.set_ylim(bottom=0)
        steps.set_ylabel(f"updates to {threshold:g} train accuracy", fontsize=8)
        _ticks(steps, rows)
        _curves(curves, done, model)
    fig.suptitle("Fitting random labels (Zhang et al. 2017) on MNIST-1D: mean and 95% CI over seeds", fontsize=10)


class _RandomLabels(Experiment):
    """Shuffled and Gaussian inputs run at the smallest corruption level only (normally the true
    labels), not across the whole label axis: the grid is the label sweep plus those conditions."""

    def grid(self, cfg, seeds):
        levels = cfg["corruption"] if isinstance(cfg["corruption"], list) else [cfg["corruption"]]
        return [(p, s) for p, s in super().grid(cfg, seeds)
                if p["inputs"] == "original" or p["corruption"] == min(levels)]


EXPERIMENT = _RandomLabels(
    name="random-labels",
    question="Can a network that generalizes also fit randomly labelled data and noise inputs, and how much "
             "longer does it take?",
    reference="Zhang, Bengio, Hardt, Recht & Vinyals (2017), Understanding deep learning requires rethinking "
              "generalization, ICLR, arXiv:1611.03530",
    summary="MLP and CNN fit MNIST-1D with 0-100% random labels, shuffled or Gaussian inputs; test accuracy -> chance",
    params=(
        Param("model", str, default=list(MODELS), choices=MODELS, help="mlp (40-w-w-10 ReLU) or cnn (MNIST-1D paper's)"),
        Param("corruption", float, default=CORRUPTIONS, quick=QUICK_CORRUPTIONS, low=0.0, high=1.0,
              help="probability that a training label is replaced by a uniform random class"),
        Param("inputs", str, default=list(INPUTS), choices=INPUTS,
              help="original | shuffled (per-example random permutation) | gaussian; the last two only at the "
                   "smallest corruption"),
        Param("n_train", int, default=1000, quick=500, low=50, high=4000, help="MNIST-1D training examples"),
        Param("n_test", int, default=1000, quick=500, low=100, high=12000, help="MNIST-1D test examples"),
        Param("width", int, default=128, low=8, high=2048, help="MLP hidden width (2 hidden layers)"),
        Param("channels", int, default=64, low=4, high=256, help="CNN channels per conv layer"),
        Param("epochs", int, default=100, quick=60, low=1, high=2000, help="training epochs"),
        Param("lr", float, default=0.03, low=1e-5, high=1.0, log=True, help="SGD learning rate (constant)"),
        Param("momentum", float, default=0.9, low=0.0, high=0.99, help="SGD momentum"),
        Param("batch_size", int, default=50, low=1, high=4000, help="minibatch size"),
        Param("fit_threshold", float, default=0.99, low=0.1, high=1.0,
              help="training accuracy that counts as fitted (steps_to_fit)"),
    ),
    run=run, run_group=run_group,
    group_by=("model", "inputs", "n_train", "n_test", "width", "channels", "epochs", "lr", "momentum",
              "batch_size"),
    analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=1, runtime="~2 min",
    table_by=("model", "inputs", "corruption"),
    table_metrics=("train_acc", "test_acc", "steps_to_fit", "epochs_to_fit"),
)
