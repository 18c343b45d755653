"""The implicit bias of gradient descent on separable data: the max-margin direction, in its own geometry.

Data: n points x ~ N(0, I_d) labelled by a k-sparse teacher, y = sign(x·w*), then pushed apart by
``margin`` along y·w*/‖w*‖ (separable through the origin). With d > n the ℓ2, ℓ1 and ℓ∞
max-margin directions differ (``max_margin_direction``).

From w₀ = 0 on the mean logistic loss L(w) = mean log(1 + exp(−y xᵀw)), with β = λ_max(GᵀG)/(4n)
the ℓ2 smoothness bound (G = diag(y)X) and η = lr/β:

* ``gd``:          w ← w − η∇L  (Soudry, Hoffer, Nacson, Gunasekar & Srebro 2018: w/‖w‖ → the ℓ2
                   max-margin direction, the angle like 1/log t, the loss like 1/t);
* ``coordinate``:  w_j ← w_j − η ∂_jL for the coordinate j of largest |∂_jL| (steepest descent in ℓ1;
                   Gunasekar, Lee, Soudry & Srebro 2018: → the ℓ1 max-margin direction);
* ``sign``:        w ← w − (η/d)‖∇L‖₁ sign(∇L) (steepest descent in ℓ∞, whose smoothness constant is
                   up to d·β: → the ℓ∞ max-margin separator).

Recorded at log-spaced steps: the cosine to each max-margin direction, the loss, and each normalized
margin relative to its maximum. The angle's 1/log t law is tested through 1/angle, which must grow
linearly in log t (the slope over the later half of the log-t window equals that over the earlier
half), since angle ≈ a/(log t + b) at finite t (Soudry et al., Thm 3: w(t) = ŵ log t + ρ(t), ρ bounded).
"""
from __future__ import annotations

import math

import numpy as np

from petridish.instruments import max_margin_direction, normalized_margin
from petridish.lab import (Analysis, Experiment, Param, curve_ci, family, from_difference, from_values,
                           not_measured, paired_difference)
from petridish.lab.paired import pair_by_seed
from petridish.seeding import rng

METHODS = ("gd", "coordinate", "sign")
NORM_OF = {"gd": 2, "coordinate": 1, "sign": "inf"}
CHECKPOINTS = 40
T_MIN = 100                  # the asymptotic fits use steps ≥ 100 (past the initial transient)
COS_TARGET = 0.99
LOSS_BAND = 0.1              # loss slope within −1 ± 0.1
LINEAR_BAND = 0.25           # ratio of late to early 1/angle-vs-log-t slopes within 1 ± 0.25


def make_data(n: int, d: int, k: int, margin: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x (n, d) float64, y (n,) in {−1, +1}, separable through the origin with ℓ2 margin ≥ ``margin``."""
    g = rng(seed, "data")
    w = np.zeros(d)
    w[:k] = 1 / math.sqrt(k)
    x = g.standard_normal((n, d))
    y = np.where(x @ w >= 0, 1.0, -1.0)
    return x + margin * y[:, None] * w, y


def descend(x: np.ndarray, y: np.ndarray, method: str, steps: int, lr: float):
    """(steps (m,), iterates (m, d), losses (m,)) at log-spaced checkpoints."""
    n, d = x.shape
    gm = y[:, None] * x                                       # (n, d) rows y_i x_i
    beta = float(np.linalg.eigvalsh(gm.T @ gm / n)[-1]) / 4   # ℓ2 smoothness of the mean logistic loss
    eta = lr / beta
    marks = np.unique(np.geomspace(1, steps, CHECKPOINTS).astype(int))
    want = set(marks.tolist())
    w = np.zeros(d)
    ws, losses = [], []
    for t in range(1, steps + 1):
        z = gm @ w                                            # (n,) margins y_i x_iᵀw
        g = gm.T @ (-0.5 * (1 - np.tanh(z / 2))) / n          # ∇L; −σ(−z) = −(1 − tanh(z/2))/2, overflow-free
        if method == "gd":
            w -= eta * g
        elif method == "coordinate":
            j = int(np.argmax(np.abs(g)))
            w[j] -= eta * g[j]
        else:
            w -= (eta / d) * np.abs(g).sum() * np.sign(g)
        if t in want:
            ws.append(w.copy())
            losses.append(float(np.mean(np.logaddexp(0.0, -(gm @ w)))))
    return marks.astype(float), np.array(ws), np.array(losses)


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0]) if x.size >= 2 else math.nan


def run(p: dict, seed: int) -> dict:
    x, y = make_data(p["n"], p["d"], p["k"], p["margin"], seed)
    u = {q: max_margin_direction(x, y, norm=q) for q in (2, 1, "inf")}
    best = {q: normalized_margin(x, y, u[q], norm=q) for q in u}
    t, ws, loss = descend(x, y, p["method"], p["steps"], p["lr"])
    unit = ws / np.maximum(np.linalg.norm(ws, axis=1, keepdims=True), 1e-300)
    cos = {q: unit @ u[q] for q in u}                                          # (m,) each
    ratio = {q: np.array([normalized_margin(x, y, w, norm=q) / best[q] for w in ws]) for q in u}
    angle = np.arccos(np.clip(cos[2], -1.0, 1.0))
    late = t >= T_MIN
    out = {"step": t.tolist(), "cosine_to_max_margin": cos[2].tolist(),
           "cosine_to_l1_max_margin": cos[1].tolist(), "cosine_to_linf_max_margin": cos["inf"].tolist(),
           "loss": loss.tolist(), "angle": angle.tolist(),
           "l2_margin_ratio": ratio[2].tolist(), "l1_margin_ratio": ratio[1].tolist(),
           "linf_margin_ratio": ratio["inf"].tolist(),
           "final_cosine": float(cos[2][-1]), "final_cosine_l1": float(cos[1][-1]),
           "final_cosine_linf": float(cos["inf"][-1]), "final_loss": float(loss[-1]),
           "final_l2_margin_ratio": float(ratio[2][-1]), "final_l1_margin_ratio": float(ratio[1][-1]),
           "final_linf_margin_ratio": float(ratio["inf"][-1]),
           "cos_l1_l2_directions": float(u[1] @ u[2]), "cos_linf_l2_directions": float(u["inf"] @ u[2])}
    if late.sum() >= 4:
        lt = np.log(t[late])
        out["loss_slope"] = _slope(lt, np.log(loss[late]))                    # log L vs log t: −1 for 1/t
        inv = 1 / np.maximum(angle[late], 1e-300)
        half = lt <= (lt[0] + lt[-1]) / 2
        s_early, s_late = _slope(lt[half], inv[half]), _slope(lt[~half], inv[~half])
        out["inv_angle_slope"] = s_late                                        # d(1/angle)/d log t
        out["angle_fall"] = float(angle[-1] / angle[late][0])                  # angle(T) / angle(100)
        out["inv_angle_slope_ratio"] = s_late / s_early if s_early > 0 else math.nan
    return out


# ------------------------------------------------------------------ analysis

def _final(cells, method, metric) -> dict[int, float]:
    return {c.seed: float(c.metrics[metric]) for c in cells
            if c.status == "done" and c.params.get("method") == method and isinstance(c.metrics.get(metric), (int, float))}


def _diff(claim, a, b, effect):
    x, y = pair_by_seed(a, b)
    return from_difference(claim, paired_difference(x, y) if x.size >= 2 else None, effect=effect)


def analyze(cells) -> Analysis:
    claims, values = [], {}
    gd = [c for c in cells if c.params.get("method") == "gd" and c.status == "done"]
    if gd:
        vals = lambda k: [c.metrics.get(k, math.nan) for c in gd]
        claims.append(from_values(
            f"GD's direction converges to the ℓ2 max-margin direction (final cosine above {COS_TARGET:g})",
            vals("final_cosine"), null=COS_TARGET, effect="final cosine", subtract_null=False,
            bounds=(-1.0, 1.0)))
        claims.append(from_values(
            f"GD's logistic loss decays like 1/t (log-log slope within −1 ± {LOSS_BAND:g})", vals("loss_slope"),
            null=-1.0, effect="slope of log loss against log t", direction="within", margin=LOSS_BAND,
            subtract_null=False))
        claims.append(from_values(
            f"GD's angle to the ℓ2 max-margin direction keeps falling (angle at the last step below that at step "
            f"{T_MIN})", vals("angle_fall"), null=1.0, effect=f"angle(T) / angle({T_MIN})", direction="less",
            subtract_null=False))
        claims.append(from_values(
            f"GD's angle decays like 1/log t: 1/angle is linear in log t (late-half slope over early-half slope "
            f"within 1 ± {LINEAR_BAND:g}; a power law in t would make it grow)", vals("inv_angle_slope_ratio"),
            null=1.0, effect="slope ratio", direction="within", margin=LINEAR_BAND, subtract_null=False))
        values["gd"] = {k: float(np.nanmean(vals(k))) for k in ("final_cosine", "loss_slope", "angle_fall",
                                                                 "inv_angle_slope", "inv_angle_slope_ratio")}
    else:
        claims.append(not_measured("GD's direction converges to the ℓ2 max-margin direction",
                                   "no finished gd cell"))
    if {c.params.get("method") for c in cells} >= {"gd", "coordinate"}:
        claims.append(_diff("coordinate descent goes to the ℓ1 max-margin direction rather than the ℓ2 one",
                            _final(cells, "coordinate", "final_cosine_l1"), _final(cells, "coordinate", "final_cosine"),
                            "cosine to the ℓ1 direction minus cosine to the ℓ2 direction"))
        claims.append(_diff("GD goes to the ℓ2 max-margin direction rather than the ℓ1 one",
                            _final(cells, "gd", "final_cosine"), _final(cells, "gd", "final_cosine_l1"),
                            "cosine to the ℓ2 direction minus cosine to the ℓ1 direction"))
    if {c.params.get("method") for c in cells} >= {"gd", "sign"}:
        claims.append(_diff("sign descent (steepest descent in ℓ∞) reaches a larger ℓ∞ margin than GD",
                            _final(cells, "sign", "final_linf_margin_ratio"),
                            _final(cells, "gd", "final_linf_margin_ratio"),
                            "ℓ∞-margin ratio of sign descent minus that of GD"))
    for m in METHODS:
        sel = [c for c in cells if c.params.get("method") == m and c.status == "done"]
        if sel:
            values[m] = {k: float(np.mean([c.metrics[k] for c in sel]))
                         for k in ("final_cosine", "final_cosine_l1", "final_cosine_linf", "final_l2_margin_ratio",
                                   "final_l1_margin_ratio", "final_linf_margin_ratio", "final_loss")}
    return Analysis(values=values, claims=family(claims))


def plot(cells, fig) -> None:
    done = [c for c in cells if c.status == "done"]
    axes = fig.subplots(1, 3)
    own = {"gd": ("cosine_to_max_margin", "ℓ2"), "coordinate": ("cosine_to_l1_max_margin", "ℓ1"),
           "sign": ("cosine_to_linf_max_margin", "ℓ∞")}
    for i, m in enumerate(METHODS):
        sel = [c for c in done if c.params["method"] == m]
        if not sel:
            continue
        t = np.array(sel[0].metrics["step"])
        key, geo = own[m]
        for k, ls, lab in ((key, "-", f"{m}: to its own ({geo}) direction"),
                           ("cosine_to_max_margin", ":", f"{m}: to the ℓ2 direction")):
            if ls == ":" and m == "gd":
                continue
            # CI of log10(1 − cos) over seeds: a geometric-mean band that stays positive on the log axis
            mean, lo, hi = curve_ci([np.log10(np.maximum(1 - np.array(c.metrics[k]), 1e-16)) for c in sel])
            axes[0].plot(t, 10 ** mean, ls, color=f"C{i}", label=lab)
            axes[0].fill_between(t, 10 ** lo, 10 ** hi, color=f"C{i}", alpha=0.2)
        mean, lo, hi = curve_ci([c.metrics["loss"] for c in sel])
        axes[1].plot(t, mean, color=f"C{i}", label=m)
        axes[1].fill_between(t, lo, hi, color=f"C{i}", alpha=0.2)
        if m == "gd":
            axes[1].plot(t, mean[-1] * t[-1] / t, "k--", lw=1, label="∝ 1/t")
            mean, lo, hi = curve_ci([1 / np.array(c.metrics["angle"]) for c in sel])
            axes[2].plot(np.log(t), mean, "o-", ms=3, color="C0", label="GD")
            axes[2].fill_between(np.log(t), lo, hi, color="C0", alpha=0.2)
    axes[0].axhline(1 - COS_TARGET, color="grey", ls=":", lw=1)
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step t")
    axes[0].set_ylabel("1 − cosine to the max-margin direction (geometric mean, 95% CI)")
    axes[0].legend(fontsize=6)
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("step t")
    axes[1].set_ylabel("logistic loss")
    axes[1].legend(fontsize=7)
    axes[2].set_xlabel("log t")
    axes[2].set_ylabel("1 / angle to the ℓ2 direction (rad⁻¹)")
    axes[2].set_title("angle ∝ 1/log t ⇔ a straight line", fontsize=9)
    axes[2].legend(fontsize=7)
    fig.suptitle("Max-margin implicit bias on separable data (95% CI over seeds)")


EXPERIMENT = Experiment(
    name="max-margin",
    question="On linearly separable data, does gradient descent on the logistic loss converge in direction to the "
             "ℓ2 max-margin separator (angle ~ 1/log t, loss ~ 1/t), and do coordinate and sign descent reach the "
             "max-margin separators of their own geometries instead?",
    reference="Soudry, Hoffer, Nacson, Gunasekar & Srebro (2018), The implicit bias of gradient descent on "
              "separable data, JMLR, arXiv:1710.10345; Gunasekar, Lee, Soudry & Srebro (2018), Characterizing "
              "implicit bias in terms of optimization geometry, ICML, arXiv:1802.08246",
    summary="GD → ℓ2 max-margin (angle ~ 1/log t, loss ~ 1/t); coordinate → ℓ1, sign → ℓ∞",
    params=(
        Param("method", str, default=list(METHODS), choices=METHODS,
              help="gd, coordinate (ℓ1 steepest descent) or sign (ℓ∞ steepest descent)"),
        Param("n", int, default=30, low=1, high=100_000, help="training points"),
        Param("d", int, default=200, low=1, high=100_000, help="dimension"),
        Param("k", int, default=3, low=1, high=100_000, help="non-zeros of the teacher"),
        Param("margin", float, default=1.0, low=0.0, help="push along y·w*/‖w*‖ (ℓ2 margin ≥ this)"),
        Param("lr", float, default=1.0, low=0.0, high=8.0, help="step as a fraction of 1/β (β: ℓ2 smoothness)"),
        Param("steps", int, default=300_000, quick=100_000, low=10, high=100_000_000, help="steps"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=5, quick_seeds=3, runtime="~3 min (busy machine)",
    table_by=("method",),
    table_metrics=("final_cosine", "final_cosine_l1", "final_cosine_linf", "final_l2_margin_ratio",
                   "final_l1_margin_ratio", "final_linf_margin_ratio", "final_loss", "loss_slope"),
    bounds={"final_cosine": (-1.0, 1.0), "final_cosine_l1": (-1.0, 1.0), "final_cosine_linf": (-1.0, 1.0)},
    tiny=dict(n=10, d=20, steps=200),  # petridish check (seconds)
)
