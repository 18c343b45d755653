"""Subgroup error: what an average error hides, and how much of the worst group's error balancing wins back.

Buolamwini & Gebru (2018) measured error rates of 1% on one subgroup and 35% on another. Here a
synthetic population (``petridish.data.groups.two_groups``) has a majority and a minority whose
inputs differ (a shift along one axis) and whose labelling rules differ by an angle θ, so the
majority's rule costs the minority θ/π (⅓ at 60°). Per cell: the minority's share of n training
examples, an arm, a seed (which draws the population, the initialization and the subsample):

* ``erm``: the sample as drawn;
* ``reweight``: each minority example repeated r = round(n_majority / n_minority) times. Training is
  full batch, so this is exactly the importance-weighted loss with group weights 1 and r (the
  weighted mean over n_maj + r·n_min examples), the reweighting of Shimodaira (2000) / Byrd &
  Lipton (2019), done at the data level;
* ``subsample``: the majority subsampled to the minority's size, a group-balanced training set
  (Idrissi, Arjovsky, Pezeshki & Lopez-Paz 2022, "SUBG").

A 10 → 64 → 64 → 2 ReLU MLP trained by full-batch GD with momentum and weight decay 0.01 (without
it an interpolating network forgets the weights: Byrd & Lipton 2019; Sagawa et al. 2020 need strong ℓ2
for group-balanced objectives to help; ``--set weight_decay=0`` shows it); errors on a large group-balanced
test set, per group with Wilson CIs, worst-group error and disparity with bootstrap CIs
(``petridish.instruments.subgroups``). "Population error" weighs the groups by their training
shares: the average error a user drawn like the training data would see, the cost of balancing.
Each seed draws its own population, so the cells train one model each (no shared-data ensemble).

Claims: (1) ERM's worst-group error falls as the minority share grows (Spearman ρ over the ERM cells,
pooled); at ``claim_share`` (default 5%), (2) ERM's minority error exceeds its majority error, (3) reweighting
and (4) subsampling lower the worst-group error relative to ERM, (5) reweighting and (6)
subsampling raise the population error (the cost); (2)–(6) seed-paired t, Holm-adjusted together.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from petridish.data.groups import two_groups
from petridish.instruments.membership import model_logits
from petridish.instruments.subgroups import subgroup_errors
from petridish.lab import Analysis, Experiment, Param, curve_ci
from petridish.lab.claims import family, from_correlation, from_difference, not_measured
from petridish.lab.paired import pair_by_seed, paired_difference
from petridish.lab.ranks import rank_correlation
from petridish.seeding import sub_seed
from petridish.train import train_ensemble

ARMS = ("erm", "reweight", "subsample")
N_BOOT = 1000


def training_set(x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, arm: str, seed: int):
    """(x, y, g) the arm trains on: as drawn, minority repeated, or majority subsampled."""
    maj, mino = torch.where(g == 0)[0], torch.where(g == 1)[0]
    if arm == "reweight":
        r = max(1, round(maj.numel() / mino.numel()))
        idx = torch.cat([maj, mino.repeat(r)])
    elif arm == "subsample":
        gen = torch.Generator().manual_seed(sub_seed(seed, "subsample"))
        idx = torch.cat([maj[torch.randperm(maj.numel(), generator=gen)[:mino.numel()]], mino])
    else:
        idx = torch.arange(y.numel())
    return x[idx], y[idx], g[idx]


def run(p: dict, seed: int) -> dict:
    ds = two_groups(n_train=p["n_train"], n_test=p["n_test"], minority_share=p["minority_share"], dim=p["dim"],
                    shift=p["shift"], angle=p["angle"], seed=sub_seed(seed, "data"))
    x, y, g = training_set(ds.x_train, ds.y_train, ds.groups_train, p["arm"], seed)
    res = train_ensemble("mlp", x, y, seeds=[sub_seed(seed, "init")], lr=p["lr"], momentum=p["momentum"],
                         weight_decay=p["weight_decay"], steps=p["steps"],
                         model_kwargs={"width": p["width"], "depth": 2, "d_out": 2})
    if bool(res.diverged[0]):
        return {"diverged": True}
    model = res.member(0)
    pred = model_logits(model, ds.x_test).argmax(1)
    rep = subgroup_errors(groups=ds.groups_test, y_pred=pred, y_true=ds.y_test, n_boot=N_BOOT,
                          seed=sub_seed(seed, "bootstrap"))
    train_pred = model_logits(model, ds.x_train).argmax(1)
    share = ds.meta["n_minority_train"] / ds.n_train
    e0, e1 = rep.error_of(0).error.estimate, rep.error_of(1).error.estimate
    m = rep.metrics()
    m.update(train_error=float((train_pred != ds.y_train).double().mean()), population_error=(1 - share) * e0 + share * e1,
             minority_share_actual=share, n_trained_on=int(y.numel()), n_minority_train=ds.meta["n_minority_train"],
             majority_rule_error_on_minority=ds.meta["majority_rule_error_on_minority"])
    return m


# ------------------------------------------------------------------ analysis

def _done(cells):
    return [c for c in cells if c.status == "done" and "worst_error" in c.metrics]


def _by_seed(cells, metric: str, **where) -> dict[int, float]:
    return {c.seed: float(c.metrics[metric]) for c in _done(cells)
            if all(c.params.get(k) == v for k, v in where.items()) and math.isfinite(c.metrics.get(metric, math.nan))}


def _diff(claim, a, b, effect, direction):
    x, y = pair_by_seed(a, b)
    return from_difference(claim, paired_difference(x, y) if x.size >= 2 else None, effect=effect,
                           direction=direction)


def analyze(cells) -> Analysis:
    done = _done(cells)
    erm = [c for c in done if c.params.get("arm") == "erm"]
    if not erm:
        return Analysis(claims=[not_measured("ERM's worst-group error falls as the minority share grows",
                                             "no finished ERM cell")])
    rc = rank_correlation([c.params["minority_share"] for c in erm], [c.metrics["worst_error"] for c in erm],
                          method="spearman", alternative="less")
    claims = [from_correlation("ERM's worst-group error falls as the minority's share of the training data grows",
                               rc, direction="less", effect="Spearman ρ of worst-group error with the share "
                                                            "(ERM cells pooled)")]
    shares = sorted({c.params["minority_share"] for c in done})
    wanted = done[0].params.get("claim_share")
    s0 = wanted if wanted in shares else shares[0]
    arms = {c.params["arm"] for c in done}
    pair = [_diff(f"at minority share {s0:g}, ERM errs more on the minority than on the majority",
                  _by_seed(cells, "error_g1", arm="erm", minority_share=s0),
                  _by_seed(cells, "error_g0", arm="erm", minority_share=s0),
                  "minority minus majority error", "greater")]
    values: dict = {"spearman_share_worst": rc.estimate}
    for arm, verb in (("reweight", "reweighting"), ("subsample", "group-balanced subsampling")):
        if arm not in arms:
            continue
        pair.append(_diff(f"at minority share {s0:g}, {verb} lowers the worst-group error relative to ERM",
                          _by_seed(cells, "worst_error", arm=arm, minority_share=s0),
                          _by_seed(cells, "worst_error", arm="erm", minority_share=s0),
                          f"worst-group error, {arm} minus ERM", "less"))
        pair.append(_diff(f"at minority share {s0:g}, {verb} costs average error on the training population",
                          _by_seed(cells, "population_error", arm=arm, minority_share=s0),
                          _by_seed(cells, "population_error", arm="erm", minority_share=s0),
                          f"share-weighted error, {arm} minus ERM", "greater"))
        w_arm = np.mean(list(_by_seed(cells, "worst_error", arm=arm, minority_share=s0).values()) or [math.nan])
        w_erm = np.mean(list(_by_seed(cells, "worst_error", arm="erm", minority_share=s0).values()) or [math.nan])
        w_bal = np.mean(list(_by_seed(cells, "worst_error", arm="erm", minority_share=shares[-1]).values())
                        or [math.nan])
        # share of the worst-group gap (ERM at the smallest share vs ERM at the largest) that the arm closes
        values[f"{arm}_gap_closed"] = float((w_erm - w_arm) / (w_erm - w_bal)) if w_erm != w_bal else math.nan
    claims += family(pair)
    for arm in sorted(arms):
        values[arm] = {s: {k: float(np.mean([c.metrics[k] for c in done if c.params["arm"] == arm
                                             and c.params["minority_share"] == s]))
                           for k in ("error_g0", "error_g1", "worst_error", "population_error")}
                       for s in shares if any(c.params["arm"] == arm and c.params["minority_share"] == s for c in done)}
    return Analysis(values=values, claims=claims)


def plot(cells, fig) -> None:
    done = _done(cells)
    axes = fig.subplots(1, 3)
    shares = sorted({c.params["minority_share"] for c in done})
    for i, arm in enumerate(ARMS):
        for ax, metric, label in ((axes[0], "worst_error", "worst-group error"),
                                  (axes[2], "population_error", "population (share-weighted) error")):
            rows = [[c.metrics[metric] for c in done if c.params["arm"] == arm and c.params["minority_share"] == s]
                    for s in shares]
            if not rows or not all(rows) or len({len(r) for r in rows}) != 1:
                continue
            m, lo, hi = curve_ci(np.array(rows).T, bounds=(0.0, 1.0))
            ax.plot(shares, m, "o-", color=f"C{i}", label=arm)
            ax.fill_between(shares, lo, hi, color=f"C{i}", alpha=0.2)
            ax.set_ylabel(f"{label} (mean, 95% CI)")
        for g, ls in ((0, ":"), (1, "-")):
            rows = [[c.metrics[f"error_g{g}"] for c in done if c.params["arm"] == arm
                     and c.params["minority_share"] == s] for s in shares]
            if rows and all(rows) and len({len(r) for r in rows}) == 1:
                m, lo, hi = curve_ci(np.array(rows).T, bounds=(0.0, 1.0))
                axes[1].plot(shares, m, ls, marker="o", ms=3, color=f"C{i}",
                             label=f"{arm}: {'minority' if g else 'majority'}")
                axes[1].fill_between(shares, lo, hi, color=f"C{i}", alpha=0.12)
    theta = next((c.metrics.get("majority_rule_error_on_minority") for c in done), None)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("minority share of the training data")
        ax.legend(fontsize=6)
    if theta is not None:
        axes[1].axhline(theta, color="grey", ls="--", lw=1)
        axes[1].text(shares[0] if shares else 0.01, theta, " majority's rule on the minority (θ/π)", fontsize=6,
                     va="bottom")
    axes[1].set_ylabel("per-group error (mean, 95% CI)")
    fig.suptitle("Subgroup error against the minority's share (two-group population; 95% CIs over seeds)")


_BOUNDED = tuple(f"{k}{s}" for k in ("error_g0", "error_g1", "average_error", "worst_error", "disparity")
                 for s in ("", "_lo", "_hi")) + ("population_error", "train_error")

EXPERIMENT = Experiment(
    name="subgroup-error",
    question="How does the worst-group error fall as the minority's share of the training data grows, and how "
             "much of the gap do reweighting and group-balanced subsampling close, at what cost in average error?",
    reference="Buolamwini & Gebru (2018), Gender shades, FAT*; Sagawa, Koh, Hashimoto & Liang (2020), "
              "Distributionally robust neural networks, ICLR, arXiv:1911.08731; Byrd & Lipton (2019), What is the "
              "effect of importance weighting in deep learning?, ICML; Idrissi, Arjovsky, Pezeshki & Lopez-Paz "
              "(2022), Simple data balancing achieves competitive worst-group-accuracy, CLeaR",
    summary="worst-group error against the minority's share; reweighting and group-balanced subsampling arms",
    params=(
        Param("minority_share", float, default=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5], quick=[0.01, 0.05, 0.2, 0.5],
              low=0.001, high=0.5, help="the minority's share of the training set"),
        Param("arm", str, default=list(ARMS), choices=ARMS, help="erm, reweight (minority repeated) or subsample "
                                                                 "(majority subsampled: group-balanced)"),
        Param("n_train", int, default=1000, low=10, high=100_000, help="training examples (before the arm)"),
        Param("n_test", int, default=4000, low=10, high=1_000_000, help="test examples, half per group"),
        Param("dim", int, default=10, low=3, high=1000, help="input dimension"),
        Param("shift", float, default=3.0, low=-100.0, high=100.0, help="the minority's input shift (along e_d)"),
        Param("angle", float, default=60.0, low=0.0, high=180.0, help="angle between the groups' rules (degrees)"),
        Param("width", int, default=64, low=1, high=4096, help="hidden width (2 layers)"),
        Param("steps", int, default=500, quick=400, low=1, high=1_000_000, help="full-batch GD steps"),
        Param("lr", float, default=0.1, low=0.0, high=10.0, help="learning rate"),
        Param("momentum", float, default=0.9, low=0.0, high=0.999, help="heavy-ball momentum"),
        Param("weight_decay", float, default=0.01, low=0.0, high=1.0,
              help="coupled L2 weight decay (reweighting needs it: Byrd & Lipton 2019; Sagawa et al. 2020)"),
        Param("claim_share", float, default=0.05, low=0.001, high=0.5,
              help="the small share at which the arms are compared (the smallest swept share if not swept)"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=5, quick_seeds=3, runtime="15 s",
    table_by=("minority_share", "arm"),
    table_metrics=("error_g0", "error_g1", "worst_error", "disparity", "ratio", "average_error", "population_error",
                   "train_error"),
    bounds={k: (0.0, 1.0) for k in _BOUNDED},
    tiny={"minority_share": [0.05, 0.5], "n_train": 200, "n_test": 400, "steps": 30},
    quick_budget_s=90.0,
)
