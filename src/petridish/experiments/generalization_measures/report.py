"""Analysis over the whole population (all cells of the run) and the figure.

The unit is the trained model that reached the target loss. For each measure: Kendall τ with the gap
(test error − training error), granulated Ψ over the swept axes, PGDL's CMI score, each with a seeded
bootstrap CI (``ranking``). Claims (the paper's qualitative result, verdicts from the CIs):

* each flatness measure (ε-sharpness, PAC-Bayes 1/σ², magnitude-aware 1/σ′²) has τ > 0;
* flatness measures rank better than norm and spectral ones: mean τ(flatness) − mean τ(norm, spectral)
  > 0, bootstrapped on shared resamples;
* norm and spectral measures correlate negatively: their mean τ < 0;
* flatness measures rank within one-axis groups too: their mean Ψ > 0.
"""
from __future__ import annotations

import math

import numpy as np

from petridish.experiments.generalization_measures.measures import FLATNESS, MEASURES, NORMS, oriented
from petridish.experiments.generalization_measures.ranking import (Score, cmi_scores, granulated_kendall, psi_score,
                                                                    tau_score)
from petridish.lab import Analysis, Claim, not_measured

AXES = ("width", "depth", "lr", "batch_size", "weight_decay", "dropout")
MIN_MODELS = 8          # fewer reached models: nothing is measured
ANALYSIS_SEED = 0       # the bootstrap's seed
FAMILY_COLOR = {"size": "C7", "norm": "C0", "spectral": "C1", "margin": "C4", "flatness": "C2",
                "curvature": "C3", "optimization": "C5"}


def population(cells) -> tuple[list[dict], np.ndarray, dict[str, np.ndarray]]:
    """(hyperparameters + seed of each reached model, gaps (n,), {measure: (n,) complexity}). Measures
    missing or NaN on any model are left out."""
    done = [c for c in cells if c.status == "done" and c.metrics.get("reached") is True
            and isinstance(c.metrics.get("gap"), (int, float))]
    hp = [{**{a: c.params.get(a) for a in AXES}, "seed": c.seed} for c in done]
    gap = np.array([float(c.metrics["gap"]) for c in done])
    vals = [oriented(c.metrics) for c in done]
    out = {}
    for name in MEASURES:
        v = np.array([d.get(name, math.nan) for d in vals], dtype=float)
        if v.size and not np.isnan(v).any():
            out[name] = v
    return hp, gap, out


def varying_axes(hp: list[dict]) -> list[str]:
    return [a for a in AXES if len({h[a] for h in hp}) > 1]


def scores(cells, seed: int = ANALYSIS_SEED) -> dict[str, dict[str, Score]]:
    """{"tau" | "psi" | "cmi": {measure: Score}}; empty dicts below MIN_MODELS reached models."""
    hp, gap, ms = population(cells)
    if gap.size < MIN_MODELS or np.ptp(gap) == 0:
        return {"tau": {}, "psi": {}, "cmi": {}}
    axes = varying_axes(hp)
    tau = {k: tau_score(v, gap, seed=seed) for k, v in ms.items()}
    psi = {k: psi_score(v, gap, hp, axes, seed=seed) for k, v in ms.items()} if axes else {}
    cmi = cmi_scores(ms, gap, hp, axes, seed=seed) if axes else {}
    return {"tau": tau, "psi": psi, "cmi": cmi}


def _group_claim(claim: str, sc: dict[str, Score], plus, minus, *, effect: str, direction: str, what: str) -> Claim:
    plus, minus = [k for k in plus if k in sc], [k for k in minus if k in sc]
    if not plus or any(sc[k].boot is None for k in plus + minus) or not np.isfinite(sc[plus[0]].estimate):
        return not_measured(claim, f"no {what} measured on at least {MIN_MODELS} models that reached the target",
                            effect=effect, direction=direction)
    est = np.mean([sc[k].estimate for k in plus]) - (np.mean([sc[k].estimate for k in minus]) if minus else 0)
    boot = np.mean([sc[k].boot for k in plus], 0) - (np.mean([sc[k].boot for k in minus], 0) if minus else 0)
    boot = boot[np.isfinite(boot)]
    ci = (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975)))
    return Claim(claim, float(est), ci, test=sc[plus[0]].method + ", resamples shared by the measures",
                 direction=direction, effect=effect)


def claims_of(sc: dict[str, dict[str, Score]]) -> list[Claim]:
    tau, psi = sc["tau"], sc["psi"]
    out = []
    for name in FLATNESS:
        label = MEASURES[name][0]
        claim = f"{label} ranks models by their generalization gap (Kendall τ > 0)"
        s = tau.get(name)
        out.append(Claim(claim, s.estimate, s.ci, test=s.method, effect="Kendall τ with the gap") if s else
                   not_measured(claim, f"fewer than {MIN_MODELS} models reached the target loss",
                                effect="Kendall τ with the gap"))
    out.append(_group_claim("flatness measures rank models better than norm and spectral measures", tau, FLATNESS,
                            NORMS, effect="mean τ of the flatness measures minus that of the norm/spectral ones",
                            direction="greater", what="flatness measure"))
    out.append(_group_claim("norm and spectral measures correlate negatively with the generalization gap", tau,
                            NORMS, (), effect=f"mean τ of the {len(NORMS)} norm/spectral measures",
                            direction="less", what="norm measure"))
    out.append(_group_claim("flatness measures rank models within one-hyperparameter groups (granulated Ψ > 0)",
                            psi, FLATNESS, (), effect="mean granulated Kendall Ψ of the flatness measures",
                            direction="greater", what="one-axis group"))
    return out


def _json(s: Score | None) -> dict | None:
    if s is None:
        return None
    fin = lambda x: float(x) if np.isfinite(x) else None   # noqa: E731
    return {"estimate": fin(s.estimate), "ci": [fin(s.ci[0]), fin(s.ci[1])], "n": s.n}


def analyze(cells) -> Analysis:
    sc = scores(cells)
    hp, gap, ms = population(cells)
    done = [c for c in cells if c.status == "done"]
    values = {"models": len(done), "reached_target": len(hp), "measures": list(ms), "axes": varying_axes(hp)}
    notes = [f"{len(hp)} of {len(done)} trained models reached the target loss and enter the ranking."]
    if hp:
        tl = [c.metrics["train_loss"] for c in done if c.metrics.get("reached") is True]
        values["median_train_loss_at_stop"] = float(np.median(tl))
        values["gap_range"] = [float(gap.min()), float(gap.max())]
    if sc["tau"]:
        hp_axes = varying_axes(hp)
        values["per_measure"] = {
            k: {"label": MEASURES[k][0], "family": MEASURES[k][1], "tau": _json(sc["tau"].get(k)),
                "psi": _json(sc["psi"].get(k)), "cmi": _json(sc["cmi"].get(k)),
                "psi_by_axis": {a: float(v) for a, v in granulated_kendall(ms[k], gap, hp, hp_axes)[1].items()}}
            for k in ms}
        order = sorted(sc["tau"], key=lambda k: -sc["tau"][k].estimate)
        notes.append("Kendall τ with the gap, best first: " + ", ".join(
            f"{MEASURES[k][0]} {sc['tau'][k].estimate:+.2f}" for k in order) + ".")
        if sc["cmi"]:
            best = max(sc["cmi"], key=lambda k: np.nan_to_num(sc["cmi"][k].estimate, nan=-1))
            notes.append(f"Highest CMI score: {MEASURES[best][0]} ({sc['cmi'][best].estimate:.3f}).")
    return Analysis(notes, values, claims_of(sc))


def plot(cells, fig) -> None:
    sc = scores(cells)
    hp, gap, ms = population(cells)
    axes = fig.subplots(1, 4)
    names = list(MEASURES)
    for ax, key, title in zip(axes[:3], ("tau", "psi", "cmi"),
                              ("Kendall τ with the gap", "granulated Kendall Ψ", "CMI score (PGDL)")):
        for i, k in enumerate(names):
            s = sc[key].get(k)
            if s is None or not np.isfinite(s.estimate):
                continue
            lo, hi = s.ci
            ax.errorbar(s.estimate, i, xerr=[[max(s.estimate - lo, 0)], [max(hi - s.estimate, 0)]], fmt="o",
                        capsize=3, ms=4, color=FAMILY_COLOR[MEASURES[k][1]])
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(names)), [MEASURES[k][0] for k in names] if key == "tau" else [], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(f"{title} (95% bootstrap CI)", fontsize=8)
    axes[0].set_title("colour: family (green = flatness, blue/orange = norm/spectral)", fontsize=7)
    ax = axes[3]
    if "pac_bayes_mag" in ms and gap.size:
        for j, d in enumerate(sorted({h["depth"] for h in hp})):
            sel = np.array([h["depth"] == d for h in hp])
            ax.scatter(ms["pac_bayes_mag"][sel], gap[sel], s=10, color=f"C{j}", label=f"depth {d}")
        ax.set_xscale("log")
        ax.legend(fontsize=7)
    ax.set_xlabel("magnitude-aware PAC-Bayes 1/σ′²")
    ax.set_ylabel("generalization gap (test − train error)")
    fig.suptitle(f"Which measure predicts generalization? {gap.size} mnist1d MLPs trained to a fixed training "
                 f"cross-entropy")
