"""Membership inference: does a model's leakage of its training set track how much it overfits?

Yeom, Giacomelli, Fredrikson & Jha (2018) tie the loss-threshold attack's advantage to the
generalization gap; Shokri et al. (2017) attack with shadow models; Carlini et al. (2022, LiRA)
calibrate per example and measure TPR at low FPR.

Data: one fixed MNIST-1D pool of 4n examples (generated locally), split into the target's
training set (the members, n), held-out non-members (n), and the shadows' training set (n) and
held-out set (n). Per cell (width, epochs, weight decay, seed): a 40 → width → width → 10 ReLU MLP
trained with SGD + momentum on the members (the target), and ``shadows`` MLPs trained the same way on
the shadow set (the attacker knows the recipe, not the members). Seeds of one configuration train as
one ensemble (targets), their shadows as another; init and batch order are sub-seeds of the seed.
An ensemble shares its inputs, so all shadows train on the same shadow set and differ only in init and
batch order (Shokri et al. and Carlini et al. draw a fresh subset per shadow): the per-example "out"
spread that LiRA fits is the training noise alone, which is why its variance is pooled over examples.

Attacks on members against non-members (``petridish.instruments.membership``): the loss threshold
(score −loss), the shadow-model classifier, and offline LiRA (per-example Gaussian fits of the
shadows' logit confidence; every shadow is "out" for every candidate). Metrics: AUC, advantage
(max TPR − FPR), TPR at FPR 1% and 0.1%, each with a CI over examples in the cell; the
generalization gap in error and in loss.

Claims: (1) leakage tracks overfitting: Spearman ρ of the loss attack's AUC with the error gap,
one point per trained target (all cells pooled); at the largest width: (2) longer training raises the
AUC, (3) weight decay lowers it (longest training), (4) the largest width leaks more than the
smallest (longest training, no weight decay), (5) LiRA's TPR at FPR 1% beats the loss threshold's
(most overfit configuration). (2)–(5): seed-paired t, Holm-adjusted together.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from petridish.data import mnist1d
from petridish.instruments.membership import (attack_metrics, lira_attack, logit_confidence, losses_from_logits,
                                               model_logits, shadow_attack)
from petridish.lab import Analysis, Experiment, Param, aggregate, curve_ci, mean_ci
from petridish.lab.claims import family, from_correlation, from_difference, not_measured
from petridish.lab.paired import pair_by_seed, paired_difference
from petridish.lab.ranks import rank_correlation
from petridish.seeding import sub_seed
from petridish.train import train_ensemble

N_BOOT = 200            # bootstrap resamples per attack and cell (the claims use seeds, not these CIs)
ATTACKS = ("loss", "shadow", "lira")


def _pool(n: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The fixed split of 4n MNIST-1D examples: target in/out, shadow in/out, (n, 40) and (n,) each."""
    ds = mnist1d(n_train=4 * n, n_test=0)
    x, y = ds.x_train, ds.y_train
    part = lambda i: (x[i * n:(i + 1) * n], y[i * n:(i + 1) * n])
    return {"target_in": part(0), "target_out": part(1), "shadow_in": part(2), "shadow_out": part(3)}


def _train(p: dict, x: torch.Tensor, y: torch.Tensor, seeds: list[int], evals=None):
    return train_ensemble("mlp", x, y, seeds=[sub_seed(s, "init") for s in seeds],
                          data_seeds=[sub_seed(s, "batches") for s in seeds], lr=p["lr"], momentum=p["momentum"],
                          weight_decay=p["weight_decay"], batch_size=p["batch_size"], epochs=p["epochs"],
                          model_kwargs={"width": p["width"], "depth": 2, "d_out": 10}, eval_sets=evals)


def _logits(res, i: int, x: torch.Tensor) -> torch.Tensor:
    return model_logits(res.member(i), x)


def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Cells that differ only in their seed: targets as one ensemble, all their shadows as another."""
    p = params_list[0]
    d = _pool(p["n_train"])
    (xi, yi), (xo, yo) = d["target_in"], d["target_out"]
    (si, syi), (so, syo) = d["shadow_in"], d["shadow_out"]
    s_n = p["shadows"]
    tgt = _train(p, xi, yi, list(seeds), {"train": (xi, yi), "test": (xo, yo)})
    shadow_seeds = [sub_seed(s, f"shadow{j}") for s in seeds for j in range(s_n)]
    sh = _train(p, si, syi, shadow_seeds)
    cand = torch.cat([xi, xo])                                    # (2n, 40): members first
    ycand = torch.cat([yi, yo])
    member = np.arange(2 * p["n_train"]) < p["n_train"]
    out = []
    for k, seed in enumerate(seeds):
        idx = [k * s_n + j for j in range(s_n)]
        if bool(tgt.diverged[k]) or bool(sh.diverged[idx].any()):
            out.append({"diverged": True})
            continue
        kw = dict(n_boot=N_BOOT, seed=sub_seed(seed, "bootstrap"))
        m = tgt.final_metrics(k)
        m["gap"] = m["test_error"] - m["train_error"]
        m["loss_gap"] = m["test_loss"] - m["train_loss"]
        z = _logits(tgt, k, cand)                                  # (2n, 10)
        m.update(attack_metrics(-losses_from_logits(z, ycand).numpy(), member, attack="loss-threshold", **kw)
                 .metrics("loss"))
        z_in = torch.stack([_logits(sh, i, si) for i in idx])      # (S, n, 10)
        z_out = torch.stack([_logits(sh, i, so) for i in idx])
        z_cand = torch.stack([_logits(sh, i, cand) for i in idx])  # (S, 2n, 10)
        m.update(shadow_attack(shadow_in=(z_in, syi), shadow_out=(z_out, syo), members=(z[:p["n_train"]], yi),
                               nonmembers=(z[p["n_train"]:], yo), **kw).metrics("shadow"))
        m.update(lira_attack(target_phi=logit_confidence(z, ycand).numpy(),
                             shadow_phi=logit_confidence(z_cand, ycand).numpy(), is_member=member, **kw)
                 .metrics("lira"))
        out.append(m)
    return out


def run(p: dict, seed: int) -> dict:
    return run_group([p], [seed])[0]


# ------------------------------------------------------------------ analysis

def _done(cells):
    return [c for c in cells if c.status == "done" and "loss_auc" in c.metrics]


def _by_seed(cells, metric: str, **where) -> dict[int, float]:
    return {c.seed: float(c.metrics[metric]) for c in _done(cells)
            if all(c.params.get(k) == v for k, v in where.items()) and math.isfinite(c.metrics.get(metric, math.nan))}


def _diff(claim: str, a: dict, b: dict, effect: str, direction: str):
    x, y = pair_by_seed(a, b)
    return from_difference(claim, paired_difference(x, y) if x.size >= 2 else None, effect=effect,
                           direction=direction)


def _levels(cells, name: str) -> list:
    return sorted({c.params[name] for c in _done(cells)})


def analyze(cells) -> Analysis:
    done = _done(cells)
    if not done:
        return Analysis(claims=[not_measured("membership leakage tracks overfitting", "no finished cell")])
    gap = np.array([c.metrics["gap"] for c in done])
    auc = np.array([c.metrics["loss_auc"] for c in done])
    rc = rank_correlation(gap, auc, method="spearman", alternative="greater")
    claims = [from_correlation("membership leakage tracks overfitting: the loss attack's AUC rises with the "
                               "generalization gap (test minus train error)", rc, direction="greater",
                               effect="Spearman ρ over trained targets (all cells pooled)")]
    widths, epochs, wds = _levels(cells, "width"), _levels(cells, "epochs"), _levels(cells, "weight_decay")
    w1, e0, e1, wd0 = widths[-1], epochs[0], epochs[-1], wds[0]
    pair = []
    if len(epochs) > 1:
        pair.append(_diff(f"longer training leaks more: loss-attack AUC at {e1} epochs exceeds that at {e0} "
                          f"(width {w1}, weight decay {wd0:g})",
                          _by_seed(cells, "loss_auc", width=w1, epochs=e1, weight_decay=wd0),
                          _by_seed(cells, "loss_auc", width=w1, epochs=e0, weight_decay=wd0),
                          f"AUC at {e1} minus at {e0} epochs", "greater"))
    if len(wds) > 1:
        pair.append(_diff(f"weight decay {wds[-1]:g} lowers the loss-attack AUC (width {w1}, {e1} epochs)",
                          _by_seed(cells, "loss_auc", width=w1, epochs=e1, weight_decay=wds[-1]),
                          _by_seed(cells, "loss_auc", width=w1, epochs=e1, weight_decay=wd0),
                          f"AUC with minus without weight decay", "less"))
    if len(widths) > 1:
        pair.append(_diff(f"wider models leak more: loss-attack AUC at width {w1} exceeds that at width "
                          f"{widths[0]} ({e1} epochs, weight decay {wd0:g})",
                          _by_seed(cells, "loss_auc", width=w1, epochs=e1, weight_decay=wd0),
                          _by_seed(cells, "loss_auc", width=widths[0], epochs=e1, weight_decay=wd0),
                          f"AUC at width {w1} minus at width {widths[0]}", "greater"))
    pair.append(_diff(f"per-example calibration (offline LiRA) finds more members than the loss threshold at "
                      f"FPR 1% (width {w1}, {e1} epochs, weight decay {wd0:g})",
                      _by_seed(cells, "lira_tpr_at_1pct", width=w1, epochs=e1, weight_decay=wd0),
                      _by_seed(cells, "loss_tpr_at_1pct", width=w1, epochs=e1, weight_decay=wd0),
                      "TPR at FPR 1%: LiRA minus loss threshold", "greater"))
    claims += family(pair)
    rows = aggregate(done, by=["width", "epochs", "weight_decay"],
                     metrics=["gap", "loss_gap", "loss_auc", "shadow_auc", "lira_auc", "loss_tpr_at_1pct",
                              "lira_tpr_at_1pct"])
    values = {"spearman_gap_auc": rc.estimate, "n_points": rc.n,
              "configs": [{**r["params"], **{k: v["mean"] for k, v in r["metrics"].items()}} for r in rows]}
    return Analysis(values=values, claims=claims)


def plot(cells, fig) -> None:
    done = _done(cells)
    axes = fig.subplots(1, 3)
    if not done:
        return
    widths, epochs, wds = _levels(cells, "width"), _levels(cells, "epochs"), _levels(cells, "weight_decay")
    marks = ["o", "s", "^", "D"]
    for i, w in enumerate(widths):
        for j, wd in enumerate(wds):
            sel = [c for c in done if c.params["width"] == w and c.params["weight_decay"] == wd]
            axes[0].scatter([c.metrics["gap"] for c in sel], [c.metrics["loss_auc"] for c in sel], s=14,
                            color=f"C{i}", marker=marks[j % 4], alpha=0.7, label=f"width {w}, wd {wd:g}")
            rows = [[c.metrics["loss_auc"] for c in done if c.params["width"] == w and c.params["weight_decay"] == wd
                     and c.params["epochs"] == e] for e in epochs]
            if all(len(r) == len(rows[0]) and r for r in rows):
                m, lo, hi = curve_ci(np.array(rows).T, bounds=(0.0, 1.0))
                axes[1].plot(epochs, m, marks[j % 4] + ("-" if j == 0 else "--"), color=f"C{i}",
                             label=f"width {w}, wd {wd:g}")
                axes[1].fill_between(epochs, lo, hi, color=f"C{i}", alpha=0.15)
    axes[0].axhline(0.5, color="grey", ls=":", lw=1)
    axes[0].set_xlabel("generalization gap (test − train error)")
    axes[0].set_ylabel("loss-threshold attack AUC")
    axes[0].legend(fontsize=6)
    axes[1].axhline(0.5, color="grey", ls=":", lw=1)
    axes[1].set_xscale("log", base=2)
    axes[1].set_xticks(epochs, [str(e) for e in epochs])
    axes[1].minorticks_off()
    axes[1].set_xlabel("epochs")
    axes[1].set_ylabel("loss-threshold attack AUC (mean, 95% CI)")
    axes[1].legend(fontsize=6)
    w1, e1, wd0 = widths[-1], epochs[-1], wds[0]
    sel = [c for c in done if c.params["width"] == w1 and c.params["epochs"] == e1 and c.params["weight_decay"] == wd0]
    names = [("auc", "AUC"), ("advantage", "advantage"), ("tpr_at_1pct", "TPR@1%"), ("tpr_at_0.1pct", "TPR@0.1%")]
    for a, attack in enumerate(ATTACKS):
        vals = [[c.metrics.get(f"{attack}_{k}", math.nan) for c in sel] for k, _ in names]
        ci = [mean_ci_or_nan(v) for v in vals]
        xs = np.arange(len(names)) + (a - 1) * 0.27
        axes[2].bar(xs, [m for m, _, _ in ci], width=0.27, color=f"C{a}", label=attack,
                    yerr=np.array([[m - lo for m, lo, _ in ci], [hi - m for m, _, hi in ci]]), capsize=2)
    axes[2].set_xticks(np.arange(len(names)), [n for _, n in names], fontsize=7)
    axes[2].set_ylabel("attack metric (mean over seeds, 95% CI)")
    axes[2].set_title(f"width {w1}, {e1} epochs, wd {wd0:g}", fontsize=9)
    axes[2].legend(fontsize=7)
    fig.suptitle("Membership inference against overfitting (MNIST-1D MLPs; 95% CIs over seeds)")


def mean_ci_or_nan(v) -> tuple[float, float, float]:
    m, lo, hi = mean_ci(v, bounds=(0.0, 1.0))
    return (m, lo, hi) if math.isfinite(m) else (0.0, 0.0, 0.0)


_BOUNDED = ("train_error", "test_error") + tuple(f"{a}_{k}{s}" for a in ATTACKS
                                                  for k in ("auc", "advantage", "tpr_at_1pct", "tpr_at_0.1pct")
                                                  for s in ("", "_lo", "_hi"))

EXPERIMENT = Experiment(
    name="membership-inference",
    question="Does a model's membership leakage (attack AUC, advantage, TPR at low FPR) track its generalization "
             "gap across model size and training length, and does weight decay reduce it?",
    reference="Yeom, Giacomelli, Fredrikson & Jha (2018), Privacy risk in machine learning, CSF, arXiv:1709.01604; "
              "Shokri, Stronati, Song & Shmatikov (2017), Membership inference attacks against machine learning "
              "models, IEEE S&P; Carlini, Chien, Nasr, Song, Terzis & Tramèr (2022), Membership inference attacks "
              "from first principles, IEEE S&P, arXiv:2112.03570",
    summary="loss-threshold, shadow and LiRA attacks on MNIST-1D MLPs: leakage tracks the generalization gap",
    params=(
        Param("width", int, default=[16, 64, 256], quick=[16, 256], low=1, high=4096, help="hidden width (2 layers)"),
        Param("epochs", int, default=[4, 16, 64, 256], quick=[4, 64], low=1, high=100_000, help="training epochs"),
        Param("weight_decay", float, default=[0.0, 0.02], quick=[0.0, 0.02], low=0.0, high=1.0,
              help="coupled L2 weight decay"),
        Param("n_train", int, default=500, low=20, high=5000, help="members (= non-members = each shadow set)"),
        Param("shadows", int, default=2, low=1, high=64, help="shadow models per target"),
        Param("lr", float, default=0.05, low=0.0, high=10.0, help="SGD learning rate"),
        Param("momentum", float, default=0.9, low=0.0, high=0.999, help="heavy-ball momentum"),
        Param("batch_size", int, default=50, low=1, high=100_000, help="minibatch size"),
    ),
    run=run, run_group=run_group, group_by=("width", "epochs", "weight_decay", "n_train", "shadows", "lr",
                                            "momentum", "batch_size"),
    analyze=analyze, plot=plot, seeds=5, quick_seeds=3, runtime="28 s",
    table_by=("width", "epochs", "weight_decay"),
    table_metrics=("train_error", "test_error", "gap", "loss_auc", "shadow_auc", "lira_auc", "loss_advantage",
                   "loss_tpr_at_1pct", "lira_tpr_at_1pct"),
    bounds={k: (0.0, 1.0) for k in _BOUNDED},
    tiny={"width": 16, "epochs": 2, "weight_decay": 0.0, "n_train": 60, "shadows": 1},
    group_rtol=1e-3, quick_budget_s=90.0,
)
