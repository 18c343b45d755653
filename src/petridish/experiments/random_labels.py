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
accuracy (the whole corrupted training set evaluated twice per epoch, the crossing
interpolated linearly between evaluations, so that it varies across seeds). A seed drives
label noise, initialization and batch order through independent ``sub_seed`` streams.

Claims, per model: it fits each condition's training set (final training accuracy minus the
threshold, Holm over conditions); each condition takes longer to fit than the true labels
(seed-paired ratio of updates, Holm); corruption lowers test accuracy; random labels give
chance test accuracy (within ± 5 points). A run that never fits is counted, and a time-to-fit
claim that would need it is "not measured" with the reason, never averaged without it.

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
from petridish.lab import Analysis, Experiment, Param, aggregate, curve_ci, mean_ci
from petridish.lab.claims import Claim, family, from_difference, from_values, not_measured
from petridish.lab.paired import pair_by_seed, paired_difference
from petridish.seeding import sub_seed
from petridish.train import evaluate, train_ensemble
from petridish.train.batches import steps_per_epoch

MODELS = ("mlp", "cnn")
INPUTS = ("original", "shuffled", "gaussian")
CORRUPTIONS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
QUICK_CORRUPTIONS = [0.0, 0.5, 1.0]
CHANCE = 0.1            # 10 balanced classes
INPUT_SEED = 0          # the one draw of shuffled / Gaussian inputs
EXTRA_X = {"shuffled": 1.25, "gaussian": 1.5}   # where the input conditions sit on the corruption axis
MODEL_LABELS = {"mlp": "MLP", "cnn": "CNN"}
FIT_EVALS_PER_EPOCH = 2   # training-set evaluations per epoch for the updates-to-fit crossing (5 would
                          # double the run time: an evaluation of the whole set costs 1/3 of an epoch)
CHANCE_MARGIN = 0.05      # "at chance" = the CI of test accuracy lies within chance ± 5 points


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

def _crossing(steps: np.ndarray, acc: np.ndarray, threshold: float) -> float:
    """Updates at which training accuracy first reaches ``threshold``, linearly interpolated
    between the two evaluations around the crossing (steps (T,), acc (T,)); NaN if never.
    Accuracy at step 0 is taken as chance."""
    hit = np.flatnonzero(acc >= threshold)
    if not hit.size:
        return math.nan
    i = int(hit[0])
    s0, a0 = (0.0, CHANCE) if i == 0 else (float(steps[i - 1]), float(acc[i - 1]))
    s1, a1 = float(steps[i]), float(acc[i])
    return s1 if a1 <= a0 else s0 + (threshold - a0) / (a1 - a0) * (s1 - s0)


def streams(seed: int) -> dict[str, int]:
    """The cell seed's independent sub-seeds: label noise, initialization, minibatch order."""
    return {purpose: sub_seed(seed, purpose) for purpose in ("label_noise", "init", "batches")}


def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Cells sharing model, inputs and training settings; members differ in corruption and seed.

    Each seed drives three independent streams (``sub_seed``): label noise, initialization and
    minibatch order, so that which examples get corrupted is unrelated to the initial weights.
    """
    p = params_list[0]
    ds = _dataset(p)
    noisy = [label_noise(ds, q["corruption"], seed=streams(s)["label_noise"]) for q, s in zip(params_list, seeds)]
    ys = torch.stack([d.y_train for d in noisy])                                    # (K, n)
    kw = {"width": p["width"], "depth": 2} if p["model"] == "mlp" else {"channels": p["channels"]}
    per_epoch = steps_per_epoch(p["n_train"], p["batch_size"])
    every = max(1, per_epoch // FIT_EVALS_PER_EPOCH)
    res = train_ensemble(p["model"], ds.x_train, ys, seeds=[streams(s)["init"] for s in seeds],
                         data_seeds=[streams(s)["batches"] for s in seeds], lr=p["lr"], momentum=p["momentum"],
                         batch_size=p["batch_size"], epochs=p["epochs"], model_kwargs=dict(kw, d_out=10),
                         eval_sets={"train": (ds.x_train, ys)}, eval_every=every)
    acc = res.eval_history["train"]["accuracy"]                                     # (K, T) every `every` updates
    steps = np.asarray(res.eval_steps)                                              # (T,)
    at_epoch = np.flatnonzero(steps % per_epoch == 0)                               # the per-epoch curve
    out = []
    for k, (q, d) in enumerate(zip(params_list, noisy)):
        if bool(res.diverged[k]):
            out.append({"diverged": True})
            continue
        curve = acc[k].numpy()
        to_fit = _crossing(steps, curve, q["fit_threshold"])
        test = evaluate(res.member(k).eval(), ds.x_test, ds.y_test, "ce")
        out.append({
            "train_acc": float(curve[-1]),
            "test_acc": float(test["accuracy"]),
            "test_loss": float(test["loss"]),
            "steps_to_fit": to_fit,
            "epochs_to_fit": to_fit / per_epoch,
            "fitted": bool(math.isfinite(to_fit)),
            "max_train_acc": float(curve.max()),
            "corrupted_fraction": float(d.corrupted.double().mean()),
            "train_acc_curve": [float(a) for a in curve[at_epoch]],
        })
    return out


def run(p: dict, seed: int) -> dict:
    return run_group([p], [seed])[0]


# ---------------------------------------------------------------- analysis

def _rows(cells, model: str) -> list[dict]:
    """Aggregated rows of one model: label corruptions in increasing order, then shuffled, gaussian."""
    mine = [c for c in cells if c.params["model"] == model]
    rows = [r for r in aggregate(mine, by=["inputs", "corruption"], bounds=EXPERIMENT.bounds)
            if "train_acc" in r["metrics"]]
    for r in rows:
        q = r["params"]
        r["x"] = q["corruption"] if q["inputs"] == "original" else EXTRA_X[q["inputs"]]
        r["label"] = f"p = {q['corruption']:g}" if q["inputs"] == "original" else f"{q['inputs']} inputs"
    return sorted(rows, key=lambda r: r["x"])


def _stat(row: dict, name: str) -> tuple[float, float, float]:
    m = row["metrics"].get(name)
    return (m["mean"], m["lo"], m["hi"]) if m else (math.nan, math.nan, math.nan)


def _condition(params: dict) -> tuple:
    return (params["inputs"], params["corruption"])


def _name(cond: tuple) -> str:
    inputs, p = cond
    if inputs != "original":
        return {"shuffled": "shuffled inputs", "gaussian": "Gaussian-noise inputs"}[inputs] + " (true labels)"
    return "true labels" if p == 0 else "random labels" if p == 1 else f"{100 * p:g}% of labels corrupted"


def _by_seed(cells, model: str, cond: tuple, name: str) -> dict[int, float]:
    return {c.seed: float(c.metrics[name]) for c in cells if c.params["model"] == model
            and _condition(c.params) == cond and isinstance(c.metrics.get(name), (int, float))}


def _unfitted(cells, model: str, cond: tuple) -> list:
    return [c for c in cells if c.params["model"] == model and _condition(c.params) == cond
            and not c.metrics.get("fitted", False)]


def _slowdown(cells, model: str, cond: tuple, base: tuple, threshold: float, epochs: int) -> Claim:
    """Seed-paired geometric-mean ratio of updates to fit, ``cond`` over ``base`` (t on log ratios)."""
    label = MODEL_LABELS[model]
    claim = f"the {label} takes longer to fit {_name(cond)} than {_name(base)}"
    effect = f"ratio of updates to reach {threshold:g} training accuracy (seed-paired geometric mean)"
    missing = [(_name(c), len(_unfitted(cells, model, c))) for c in (cond, base)]
    missing = [f"{k} of its {_name(c)} runs" for c, (_, k) in zip((cond, base), missing) if k]
    if missing:
        return not_measured(claim, f"updates to fit not measured: {' and '.join(missing)} never reached "
                                   f"{threshold:g} training accuracy within {epochs} epochs", effect=effect, null=1.0)
    a, b = pair_by_seed(_by_seed(cells, model, cond, "steps_to_fit"), _by_seed(cells, model, base, "steps_to_fit"))
    d = paired_difference(np.log(a), np.log(b)) if a.size else None
    if d is None:
        return not_measured(claim, "fewer than 2 seeds with both runs", effect=effect, null=1.0)
    return Claim(claim, math.exp(d.estimate), (math.exp(d.ci[0]), math.exp(d.ci[1])), test=d.method + " on log updates",
                 p=d.p_greater, null=1.0, direction="greater", effect=effect)


def _model_claims(cells, model: str, threshold: float, epochs: int, values: dict) -> list[Claim]:
    label = MODEL_LABELS[model]
    conds = sorted({_condition(c.params) for c in cells if c.params["model"] == model},
                   key=lambda c: c[1] if c[0] == "original" else EXTRA_X[c[0]])
    labels = [c for c in conds if c[0] == "original"]
    base = labels[0] if labels else conds[0]
    fits = [from_values(f"the {label} fits its training set with {_name(c)}",
                        _by_seed(cells, model, c, "train_acc").values(), null=threshold, bounds=(0.0, 1.0),
                        effect=f"final training accuracy minus {threshold:g}") for c in conds]
    slow = [_slowdown(cells, model, c, base, threshold, epochs) for c in conds if c != base]
    out = family(fits, "holm") + family(slow, "holm")
    if len(labels) >= 2:
        hi = labels[-1]
        d = paired_difference(*pair_by_seed(_by_seed(cells, model, base, "test_acc"),
                                            _by_seed(cells, model, hi, "test_acc")))
        out.append(from_difference(f"the {label}'s test accuracy is lower when trained on {_name(hi)} than on "
                                   f"{_name(base)}", d, effect="test accuracy difference (base minus corrupted)"))
    if ("original", 1.0) in conds:
        out.append(from_values(f"the {label} trained on random labels is at chance ({CHANCE:g}) on the test set",
                               _by_seed(cells, model, ("original", 1.0), "test_acc").values(), null=CHANCE,
                               direction="within", margin=CHANCE_MARGIN, bounds=(0.0, 1.0),
                               effect="test accuracy minus chance"))
    values[model] = {
        "conditions": [_name(c) for c in conds],
        "unfitted_cells": {_name(c): len(_unfitted(cells, model, c)) for c in conds},
        "steps_to_fit": {_name(c): mean_ci(_by_seed(cells, model, c, "steps_to_fit").values())[0] for c in conds},
        "train_acc": {_name(c): mean_ci(_by_seed(cells, model, c, "train_acc").values())[0] for c in conds},
        "test_acc": {_name(c): mean_ci(_by_seed(cells, model, c, "test_acc").values())[0] for c in conds},
    }
    return out


def analyze(cells) -> Analysis:
    done = [c for c in cells if c.status == "done" and "train_acc" in c.metrics]
    if not done:
        return Analysis(["No finished cells."], {})
    threshold, epochs = done[0].params["fit_threshold"], done[0].params["epochs"]
    values = {"chance": CHANCE, "fit_threshold": threshold}
    claims = []
    for model in [m for m in MODELS if any(c.params["model"] == m for c in done)]:
        claims += _model_claims(done, model, threshold, epochs, values)
    setup = [f"Updates to fit: first crossing of {threshold:g} training accuracy, evaluated on the whole training set "
             f"{FIT_EVALS_PER_EPOCH} times per epoch and interpolated linearly between evaluations; runs that never "
             f"cross within {epochs} epochs are counted per condition (values: unfitted_cells), not averaged."]
    return Analysis(setup, values, claims)


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
        m, lo, hi = curve_ci([v[:length] for v in curves], bounds=(0.0, 1.0))
        ep = np.arange(1, length + 1)
        ax.plot(ep, m, color=f"C{j}", lw=1.2, label=r["label"])
        ax.fill_between(ep, lo, hi, color=f"C{j}", alpha=0.2)
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
        for r in rows:                     # runs that never fitted are not in the mean: say how many
            k = len(_unfitted(done, model, _condition(r["params"])))
            if k:
                steps.annotate(f"{k}/{r['n']} never\nfitted", (r["x"], 0), textcoords="offset points", xytext=(0, 4),
                               ha="center", fontsize=6, color="C3")
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
    analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=2, runtime="~2.5 min",
    bounds={"train_acc": (0.0, 1.0), "test_acc": (0.0, 1.0), "max_train_acc": (0.0, 1.0)},
    table_by=("model", "inputs", "corruption"),
    table_metrics=("train_acc", "test_acc", "steps_to_fit", "epochs_to_fit"),
    tiny=dict(inputs="original", corruption=[0.0, 1.0], n_train=100, n_test=100, width=16, channels=4,
              epochs=3),  # petridish check (seconds)
)
