"""Adversarial fragility: robust accuracy against ε for standard and PGD-trained MLPs and CNNs.

Networks that classify well are fragile to small perturbations chosen against them (Szegedy et al.
2014; Goodfellow, Shlens & Szegedy 2015); training on PGD examples buys robustness (Madry et al.
2018), at a price in clean accuracy on some problems (Tsipras et al. 2019). One cell = one data set
(mnist1d: standardized and unbounded; digits: pixels in [0, 1], attacks clamped there), one
architecture (``mlp-W``: two hidden layers of W ReLU units; ``cnn-C``: the MNIST-1D paper's CNN with
C channels), one training (``standard``, or ``adversarial``: PGD-L∞ at ε* with ``train_steps``
steps, random start), one seed. Adam (lr 3e-3, batch 128). The seeds of one configuration train as
one vectorized ensemble (``run_group``).

Measured on ``n_eval`` test examples, all L∞:

* robust accuracy against ε = ε*·(0, ¼, ½, 1, 1½, 2, 3) under PGD (``attack_steps`` steps, step
  2.5ε/steps, random start, ``restarts``) and under FGSM; ε* is the training ε;
* transfer: PGD examples at ε* crafted on an independently trained standard MLP (width 64, its own
  seed) and shown to the cell's model — their success rate against the white-box one;
* DeepFool (L2, overshoot 0.02): the distribution of minimal perturbation norms (quantiles).

Claims (seed-paired; Holm within each question, over its data sets and architectures): adversarial
training raises robust accuracy at ε*, per data set and architecture; it costs clean accuracy (the trade-off; may well be refuted where
adversarial training regularizes); PGD is stronger than FGSM; transferred attacks succeed less
often than white-box ones; and the width effect at ε*, two-sided (widest minus narrowest MLP),
stated in the direction the data take and refuted inside ± ``WIDTH_MARGIN``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from petridish.data import digits, mnist1d
from petridish.instruments import deepfool_norms, fgsm, pgd, success_rate
from petridish.instruments.attacks import predict
from petridish.lab import Analysis, Experiment, Param, curve_ci, family, from_difference, from_values, mean_ci
from petridish.lab.claims import Claim, not_measured
from petridish.lab.paired import pair_by_seed, paired_difference
from petridish.seeding import sub_seed
from petridish.threads import pin_threads
from petridish.train import train_ensemble

DATASETS = ("mnist1d", "digits")
ARCHS = ("mlp-16", "mlp-32", "mlp-64", "mlp-128", "mlp-256", "mlp-512", "mlp-1024",
         "cnn-8", "cnn-16", "cnn-25", "cnn-32", "cnn-64")
TRAININGS = ("standard", "adversarial")
EPS_MULT = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)     # the curve's ε in units of ε*
STAR = EPS_MULT.index(1.0)
SURROGATE = ("mlp", {"width": 64, "depth": 2})      # the transfer source: a standard MLP, its own seed
QUANTILES = tuple(round(q, 2) for q in np.linspace(0.05, 0.95, 19))
LR, BATCH = 3e-3, 128
DEEPFOOL_ITERS = 20    # DeepFool converges in 1-3 iterations; examples the bounds pin down never flip
WIDTH_MARGIN = 0.02     # a width effect on robust accuracy under 2 points counts as none


def arch(name: str) -> tuple[str, dict[str, Any]]:
    """'mlp-128' -> ('mlp', {'width': 128, 'depth': 2}); 'cnn-25' -> ('cnn', {'channels': 25})."""
    kind, size = name.split("-")
    return (kind, {"width": int(size), "depth": 2}) if kind == "mlp" else (kind, {"channels": int(size)})


def load(p: dict):
    """(dataset, lower, upper): digits is bounded to [0, 1], the standardized mnist1d is not."""
    if p["dataset"] == "digits":
        return digits(), 0.0, 1.0
    return mnist1d(n_train=p["n_train"], n_test=max(p["n_eval"], 10)), None, None


def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Seeds of one (dataset, arch, training) configuration, trained as one ensemble."""
    p = params_list[0]
    ds, lower, upper = load(p)
    name, kw = arch(p["arch"])
    adv = None
    if p["training"] == "adversarial":
        adv = {"eps": p["eps"], "steps": p["train_steps"], "lower": lower, "upper": upper}
    common = dict(optimizer="adam", lr=LR, batch_size=BATCH, epochs=p["epochs"])
    with pin_threads(1):
        res = train_ensemble(name, ds.x_train, ds.y_train, seeds=list(seeds), model_kwargs={**kw, "d_out": 10},
                             adversarial=adv, **common)
        sur = train_ensemble(SURROGATE[0], ds.x_train, ds.y_train, seeds=[sub_seed(s, "surrogate") for s in seeds],
                             model_kwargs={**SURROGATE[1], "d_out": 10}, **common)
        x, y = ds.x_test[:p["n_eval"]], ds.y_test[:p["n_eval"]]
        return [_measure(res.member(k), sur.member(k), x, y, p, s, lower, upper) if not bool(res.diverged[k])
                else {"diverged": True} for k, s in enumerate(seeds)]


def run(p: dict, seed: int) -> dict:
    return run_group([p], [seed])[0]


def _acc(model, x, y) -> float:
    return float((predict(model, x) == y).double().mean())


def _measure(model, surrogate, x, y, p, seed, lower, upper) -> dict:
    model.eval()
    surrogate.eval()
    bounds = dict(lower=lower, upper=upper)
    attack = dict(steps=p["attack_steps"], restarts=p["restarts"], seed=sub_seed(seed, "attack"), **bounds)
    eps = [m * p["eps"] for m in EPS_MULT]
    pgd_x = [pgd(model, x, y, eps=e, **attack) for e in eps]
    fgsm_x = [fgsm(model, x, y, eps=e, **bounds) for e in eps]
    transfer = pgd(surrogate, x, y, eps=p["eps"], **attack)
    df = deepfool_norms(model, x, **bounds, max_iter=DEEPFOOL_ITERS, quantiles=QUANTILES)
    pgd_curve = [_acc(model, xa, y) for xa in pgd_x]
    fgsm_curve = [_acc(model, xa, y) for xa in fgsm_x]
    return {
        "clean_acc": pgd_curve[0], "robust_acc": pgd_curve[STAR], "fgsm_acc": fgsm_curve[STAR],
        "fgsm_minus_pgd": fgsm_curve[STAR] - pgd_curve[STAR],
        "white_box_success": success_rate(model, x, pgd_x[STAR], y),
        "transfer_success": success_rate(model, x, transfer, y), "transfer_acc": _acc(model, transfer, y),
        "surrogate_clean_acc": _acc(surrogate, x, y),
        "deepfool_median": df.median, "deepfool_success": df.success_rate,
        "deepfool_quantiles": [df.quantiles[q] for q in QUANTILES],
        "eps_grid": eps, "pgd_curve": pgd_curve, "fgsm_curve": fgsm_curve,
        "n_params": int(sum(t.numel() for t in model.parameters())),
    }


# ------------------------------------------------------------------ analysis

def _done(cells, **match) -> list:
    return [c for c in cells if c.status == "done" and "robust_acc" in c.metrics
            and all(c.params.get(k) == v for k, v in match.items())]


def _by_seed(cells, metric: str, **match) -> dict[int, float]:
    return {c.seed: float(c.metrics[metric]) for c in _done(cells, **match)}


def _seed_means(cells, value) -> list[float]:
    """Per seed, the mean of ``value(metrics)`` (or of a metric by name) over the given cells: one
    value per seed, so that the t-interval is over independent seeds."""
    fn = (lambda m: m[value]) if isinstance(value, str) else value
    by: dict[int, list[float]] = {}
    for c in cells:
        by.setdefault(c.seed, []).append(float(fn(c.metrics)))
    return [float(np.mean(v)) for _, v in sorted(by.items())]


def _diff(claim: str, a: dict, b: dict, effect: str, direction: str = "greater", margin=None) -> Claim:
    xa, xb = pair_by_seed(a, b)
    return from_difference(claim, paired_difference(xa, xb) if xa.size >= 2 else None, effect=effect,
                           direction=direction, margin=margin)


def _archs(cells, ds) -> list[str]:
    return [a for a in ARCHS if _done(cells, dataset=ds, arch=a)]


def _width_claim(cells, ds: str, training: str, eps: float) -> Claim | None:
    widths = sorted({arch(a)[1]["width"] for a in _archs(cells, ds) if a.startswith("mlp")
                     and _done(cells, dataset=ds, arch=a, training=training)})
    if len(widths) < 2:
        return None
    lo, hi = f"mlp-{widths[0]}", f"mlp-{widths[-1]}"
    a = _by_seed(cells, "robust_acc", dataset=ds, arch=hi, training=training)
    b = _by_seed(cells, "robust_acc", dataset=ds, arch=lo, training=training)
    xa, xb = pair_by_seed(a, b)
    est = float(np.mean(xa - xb)) if xa.size else 0.0
    word = "more" if est >= 0 else "less"
    who = "standard" if training == "standard" else "PGD-trained"
    return _diff(f"on {ds}, wider {who} MLPs are {word} robust at ε = {eps:g} (width {widths[-1]} "
                 f"vs {widths[0]}; two-sided)",
                 a, b, "robust accuracy, widest minus narrowest", direction="two-sided", margin=WIDTH_MARGIN)


def analyze(cells) -> Analysis:
    done = _done(cells)
    if not done:
        return Analysis(["No finished cells."], {},
                        [not_measured("adversarial training raises robust accuracy", "no finished cell")])
    eps = float(done[0].params["eps"])
    raise_, cost, strength, transfer, width = [], [], [], [], []
    values: dict[str, Any] = {"eps_star": eps, "robust_acc": {}, "clean_acc": {}}
    for ds in DATASETS:
        for a in _archs(cells, ds):
            for t in TRAININGS:
                sel = _done(cells, dataset=ds, arch=a, training=t)
                if sel:
                    key = f"{ds}/{a}/{t}"
                    values["robust_acc"][key] = mean_ci([c.metrics["robust_acc"] for c in sel], bounds=(0.0, 1.0))[0]
                    values["clean_acc"][key] = mean_ci([c.metrics["clean_acc"] for c in sel], bounds=(0.0, 1.0))[0]
            std, adv = (dict(dataset=ds, arch=a, training=t) for t in TRAININGS)
            if _done(cells, **std) and _done(cells, **adv):
                raise_.append(_diff(f"PGD training raises the robust accuracy at ε = {eps:g} of the {a} on {ds}",
                                    _by_seed(cells, "robust_acc", **adv), _by_seed(cells, "robust_acc", **std),
                                    "adversarial minus standard robust accuracy"))
                cost.append(_diff(f"PGD training costs the {a} clean accuracy on {ds} (the trade-off)",
                                  _by_seed(cells, "clean_acc", **std), _by_seed(cells, "clean_acc", **adv),
                                  "standard minus adversarial clean accuracy"))
        sel = _done(cells, dataset=ds)
        if sel:
            strength.append(from_values(
                f"on {ds}, PGD is a stronger attack than FGSM at ε = {eps:g} (lower robust accuracy)",
                _seed_means(sel, "fgsm_minus_pgd"), null=0.0,
                effect="FGSM minus PGD accuracy, per seed averaged over models"))
        std = _done(cells, dataset=ds, training="standard")
        if std:
            transfer.append(from_values(
                f"on {ds}, PGD examples transferred from an independent MLP fool standard models less often "
                f"than white-box ones at ε = {eps:g}",
                _seed_means(std, lambda m: m["white_box_success"] - m["transfer_success"]), null=0.0,
                effect="white-box minus transfer success rate, per seed averaged over models"))
        for t in TRAININGS:
            w = _width_claim(cells, ds, t, eps)
            if w is not None:
                width.append(w)
    # Holm within each question (its data sets and architectures), not across the five questions
    claims = [c for group in (raise_, cost, strength, transfer, width) for c in family(group)]
    return Analysis([], values, claims)


# ------------------------------------------------------------------ figure

def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)


def plot(cells, fig) -> None:
    done = _done(cells)
    if not done:
        return
    axes = fig.subplots(2, 3).ravel()
    datasets = [d for d in DATASETS if _done(cells, dataset=d)]
    for i, ds in enumerate(datasets[:2]):
        ax = axes[i]
        for j, a in enumerate(_archs(cells, ds)):
            for t, ls in zip(TRAININGS, ("-", "--")):
                sel = _done(cells, dataset=ds, arch=a, training=t)
                if not sel:
                    continue
                e = np.array(sel[0].metrics["eps_grid"])
                m, lo, hi = curve_ci([c.metrics["pgd_curve"] for c in sel], bounds=(0.0, 1.0))
                ax.plot(e, m, ls, color=f"C{j}", label=f"{a} {t}")
                ax.fill_between(e, lo, hi, color=f"C{j}", alpha=0.15)
        ax.axvline(done[0].params["eps"], color="grey", lw=0.8, ls=":")
        ax.set_xlabel("ε (L∞)")
        ax.set_ylabel("PGD robust accuracy")
        ax.set_title(f"{ds}: solid standard, dashed PGD-trained", fontsize=9)
        _legend(ax)
    ax = axes[2]                                    # the trade-off: clean vs robust accuracy
    for i, ds in enumerate(datasets):
        for j, a in enumerate(_archs(cells, ds)):
            for t, mk in zip(TRAININGS, ("o", "s")):
                sel = _done(cells, dataset=ds, arch=a, training=t)
                if sel:
                    cx = mean_ci([c.metrics["clean_acc"] for c in sel], bounds=(0.0, 1.0))
                    ry = mean_ci([c.metrics["robust_acc"] for c in sel], bounds=(0.0, 1.0))
                    ax.errorbar(cx[0], ry[0], xerr=[[cx[0] - cx[1]], [cx[2] - cx[0]]],
                                yerr=[[ry[0] - ry[1]], [ry[2] - ry[0]]], fmt=mk, color=f"C{j}",
                                mfc="none" if i else f"C{j}", ms=5)
    ax.set_xlabel("clean accuracy")
    ax.set_ylabel("robust accuracy at ε*")
    ax.set_title("trade-off (○ standard, □ PGD-trained; filled: mnist1d)", fontsize=8)
    ax = axes[3]                                    # width at ε*
    ticks: set[int] = set()
    for i, ds in enumerate(datasets):
        for t, ls in zip(TRAININGS, ("-", "--")):
            pts = [(arch(a)[1]["width"],
                    [c.metrics["robust_acc"] for c in _done(cells, dataset=ds, arch=a, training=t)])
                   for a in _archs(cells, ds) if a.startswith("mlp")]
            pts = [(w, v) for w, v in pts if v]
            if pts:
                ci = [mean_ci(v, bounds=(0.0, 1.0)) for _, v in pts]
                w = [q for q, _ in pts]
                ticks.update(w)
                ax.errorbar(w, [c[0] for c in ci], yerr=[[c[0] - c[1] for c in ci], [c[2] - c[0] for c in ci]],
                            fmt="o" + ls, color=f"C{i}", label=f"{ds} {t}", capsize=2)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sorted(ticks), [str(t) for t in sorted(ticks)])
    ax.set_xlabel("MLP width")
    ax.set_ylabel("robust accuracy at ε*")
    ax.set_title("robustness against width", fontsize=9)
    _legend(ax)
    ax = axes[4]                                    # white-box vs transfer success
    labels, white, trans = [], [], []
    for ds in datasets:
        for a in _archs(cells, ds):
            sel = _done(cells, dataset=ds, arch=a, training="standard")
            if sel:
                labels.append(f"{ds[:5]}\n{a}")
                white.append(mean_ci([c.metrics["white_box_success"] for c in sel], bounds=(0.0, 1.0)))
                trans.append(mean_ci([c.metrics["transfer_success"] for c in sel], bounds=(0.0, 1.0)))
    xs = np.arange(len(labels))
    for off, vals, lab in ((-0.2, white, "white-box PGD"), (0.2, trans, "transferred from MLP-64")):
        if vals:
            m = np.array([v[0] for v in vals])
            ax.bar(xs + off, m, 0.38, label=lab, yerr=[m - [v[1] for v in vals], [v[2] for v in vals] - m], capsize=2)
    ax.set_xticks(xs, labels, fontsize=6)
    ax.set_ylabel("success rate at ε* (standard models)")
    _legend(ax)
    ax = axes[5]                                    # DeepFool minimal-norm distributions
    for i, ds in enumerate(datasets):
        for t, ls in zip(TRAININGS, ("-", "--")):
            sel = _done(cells, dataset=ds, training=t)
            if sel:
                q = np.nanmedian(np.array([c.metrics["deepfool_quantiles"] for c in sel], dtype=float), axis=0)
                ax.plot(q, QUANTILES, ls, color=f"C{i}", label=f"{ds} {t}")
    ax.set_xlabel("DeepFool minimal ‖r‖₂")
    ax.set_ylabel("fraction of examples (CDF)")
    ax.set_title("DeepFool norms (median over models)", fontsize=9)
    _legend(ax)
    fig.suptitle("Adversarial robustness: robust accuracy vs ε, trade-off, width, transfer (95% CI over seeds)")


EXPERIMENT = Experiment(
    name="adversarial",
    question="How fragile are MLPs and CNNs to small worst-case (L∞) perturbations on mnist1d and digits; how much "
             "robustness does PGD adversarial training buy and at what cost in clean accuracy; do attacks transfer "
             "between independently trained models; and are wider MLPs more or less robust at a fixed ε?",
    reference="Szegedy et al. (2014) arXiv:1312.6199; Goodfellow, Shlens & Szegedy (2015) arXiv:1412.6572; "
              "Moosavi-Dezfooli, Fawzi & Frossard (2016) arXiv:1511.04599; Madry et al. (2018) arXiv:1706.06083; "
              "Tsipras et al. (2019) arXiv:1805.12152",
    summary="robust accuracy vs ε (PGD, FGSM), PGD training's gain and cost, transfer, width, DeepFool norms",
    params=(
        Param("dataset", str, default=list(DATASETS), choices=DATASETS, help="mnist1d (unbounded) or digits ([0, 1])"),
        Param("arch", str, default=["mlp-16", "mlp-64", "mlp-256", "cnn-16"], quick=["mlp-32", "mlp-256", "cnn-16"],
              choices=ARCHS, help="mlp-W (2 hidden layers of W) or cnn-C (C channels)"),
        Param("training", str, default=list(TRAININGS), choices=TRAININGS, help="standard or PGD adversarial training"),
        Param("eps", float, default=0.1, low=0.0, high=10.0, help="ε* (L∞): training ε and headline attack ε"),
        Param("epochs", int, default=40, quick=10, low=1, high=10_000, help="training epochs"),
        Param("train_steps", int, default=5, quick=3, low=1, high=100, help="PGD steps in adversarial training"),
        Param("attack_steps", int, default=10, low=1, high=1000, help="PGD steps of the evaluation attack"),
        Param("restarts", int, default=1, low=1, high=100, help="PGD random restarts of the evaluation attack"),
        Param("n_train", int, default=4000, quick=2000, low=100, high=50_000, help="mnist1d training examples"),
        Param("n_eval", int, default=500, quick=200, low=10, high=10_000, help="test examples attacked"),
    ),
    run=run, run_group=run_group,
    group_by=("dataset", "arch", "training", "eps", "epochs", "train_steps", "attack_steps", "restarts", "n_train",
              "n_eval"),
    analyze=analyze, plot=plot, seeds=4, quick_seeds=3,
    runtime="1 min 22 s",
    table_by=("dataset", "arch", "training"),
    table_metrics=("clean_acc", "robust_acc", "fgsm_acc", "white_box_success", "transfer_success", "deepfool_median"),
    bounds={k: (0.0, 1.0) for k in ("clean_acc", "robust_acc", "fgsm_acc", "white_box_success", "transfer_success",
                                    "transfer_acc", "surrogate_clean_acc", "deepfool_success")},
    tiny={"dataset": ["digits"], "arch": ["mlp-16"], "epochs": 1, "train_steps": 1, "attack_steps": 2, "n_eval": 40},
    # run_group and run agreed bitwise here (tiny and quick digits configurations); the metrics are counts
    # over n_eval examples, so a last-bit difference on another CPU that flips one of the tiny run's 40
    # examples moves an accuracy near ½ by 5%
    group_rtol=0.05, quick_budget_s=90.0,
)
