"""Implicit regularization in matrix factorization: which of the infinitely many completions does GD pick?

Main arm (Gunasekar, Woodworth, Bhojanapalli, Neyshabur & Srebro 2017): observe a symmetric random
subset Ω of the entries of a rank-r PSD d×d matrix M and run gradient descent on

    L(U) = ½ ‖P_Ω(UUᵀ − M)‖²_F,   U ∈ R^{d×d} (full dimension: no rank constraint),  U₀ = α·I.

Every X = UUᵀ that agrees with M on Ω is a global minimum; GD's X is compared with the
minimum-trace PSD completion (``min_nuclear_norm(..., psd=True)``). Expected: the ratio
‖X_GD‖_* / min ‖X‖_* goes to 1 as α → 0.

Second arm (Razin & Cohen 2020): the 2×2 completion that observes W₁₁ = 0 and W₁₂ = W₂₁ = 1 (W₂₂
unobserved), fit by a deep asymmetric factorization W = W_L ⋯ W₁ (L = 3) from balanced
W_l = α^{1/L}·(a random rotation), so that W₀ has scale α and det W₀ > 0. (At L = 2 from αI the
factors stay equal and symmetric, W = S² stays PSD, and the 2×2 is just the PSD case.) Gradient flow keeps det W > 0, while any exact fit has
det W = −1, so as the loss goes to 0 |W₂₂| and every norm diverge and the effective rank goes
to 1: the implicit bias is towards low rank, not towards a small norm.
"""
from __future__ import annotations

import math

import numpy as np

from petridish.data.matrix_completion import matrix_completion
from petridish.instruments import min_nuclear_norm
from petridish.lab import (Analysis, Experiment, Param, aggregate, curve_ci, family, from_correlation,
                           from_difference, from_values, not_measured, paired_difference, rank_correlation)
from petridish.lab.paired import pair_by_seed
from petridish.seeding import rng, sub_seed

ARMS = ("psd-factorization", "razin-cohen")
ALPHAS = [1.0, 0.3, 0.1, 0.03, 0.01, 1e-3, 1e-4, 1e-5]
QUICK_ALPHAS = [1.0, 0.1, 0.01, 1e-3, 1e-4]
RATIO_BAND = 0.05              # "GD finds the minimum": ratio within 1 ± 0.05
FIT = 1e-2                     # "GD fits Ω": relative residual ‖P_Ω(X − M)‖ / ‖P_Ω M‖ below this
ERANK_BAND = 0.05              # "effective rank goes to 1": final erank below 1.05
BOUNDS = {"rc_final_effective_rank": (1.0, 2.0), "unobserved_rel_error": (0.0, math.inf),
          "min_unobserved_rel_error": (0.0, math.inf), "nuclear_norm_gd": (0.0, math.inf),
          "nuclear_norm_min": (0.0, math.inf)}
RC_CHECKPOINTS = 30            # log-spaced steps at which the Razin–Cohen curves are recorded


# ------------------------------------------------------------------ main arm: GD on UUᵀ

def _psd_arm(p: dict, seed: int) -> dict:
    d = p["d"]
    ds = matrix_completion(rows=d, cols=d, rank=p["rank"], observed_fraction=p["observed_fraction"],
                           seed=sub_seed(seed, "data"), psd=True)
    m = np.asarray(ds.meta["matrix"], dtype=np.float64)                    # (d, d) ground truth
    mask = np.zeros((d, d), dtype=bool)
    mask[ds.x_train[:, 0].numpy(), ds.x_train[:, 1].numpy()] = True         # symmetric Ω
    obs = np.where(mask, m, 0.0)                                            # P_Ω(M)
    # step: lr / λ_max(P_Ω(M)/f), the learner's estimate of M's scale (f = observed fraction)
    frac = mask.mean()
    eta = p["lr"] / float(np.linalg.eigvalsh(obs / frac)[-1])
    u = p["alpha"] * np.eye(d)
    for _ in range(p["steps"]):
        r = mask * (u @ u.T) - obs                                          # P_Ω(UUᵀ − M), symmetric
        if not np.isfinite(r).all():
            return {"diverged": True}
        u -= (2 * eta) * (r @ u)                                            # ∇L = 2 P_Ω(UUᵀ − M) U
    x = u @ u.T
    oracle = min_nuclear_norm(m, mask, psd=True)
    un = ~mask
    rel = lambda a: float(np.linalg.norm(a[un] - m[un]) / np.linalg.norm(m[un]))
    nn_gd = float(np.trace(x))                                              # X ⪰ 0: ‖X‖_* = tr X
    return {
        "nuclear_norm_gd": nn_gd,
        "nuclear_norm_min": oracle.nuclear_norm,
        "nuclear_norm_ratio": nn_gd / oracle.nuclear_norm,
        "nuclear_norm_truth": float(np.trace(m)),
        "unobserved_rel_error": rel(x),
        "min_unobserved_rel_error": rel(oracle.matrix),
        "train_rel_residual": float(np.linalg.norm(mask * x - obs) / np.linalg.norm(obs)),
        "min_converged": bool(oracle.converged),
        "step_size": eta,
        "observed": int(mask.sum()),
    }


# ------------------------------------------------------------------ second arm: Razin & Cohen's 2×2

RC_MASK = np.array([[1.0, 1.0], [1.0, 0.0]])      # W₂₂ unobserved
RC_TARGET = np.array([[0.0, 1.0], [1.0, 0.0]])


def effective_rank(w: np.ndarray) -> float:
    """Roy & Vetterli (2007): exp of the entropy of the normalized singular values, in [1, min(d1, d2)]."""
    s = np.linalg.svd(w, compute_uv=False)
    q = s / s.sum()
    q = q[q > 0]
    return float(np.exp(-(q * np.log(q)).sum()))


def _rc_arm(p: dict, seed: int) -> dict:
    depth, steps, lr = p["rc_depth"], p["rc_steps"], p["rc_lr"]
    g = rng(seed, "init")
    ws = []
    scale = p["alpha"] ** (1.0 / depth)          # the end-to-end W₀ = α·rotation(Σθ_l) has scale α
    for th in g.normal(0.0, 0.3, size=depth):    # W_l = α^{1/L}·rotation(θ_l): balanced, det W₀ = α² > 0
        c, s = math.cos(th), math.sin(th)
        ws.append(scale * np.array([[c, -s], [s, c]]))
    marks = sorted(set(np.unique(np.geomspace(1, steps, RC_CHECKPOINTS).astype(int)).tolist()))
    curves = {k: [] for k in ("rc_loss", "rc_nuclear_norm", "rc_frobenius_norm", "rc_spectral_norm",
                              "rc_effective_rank", "rc_abs_w22")}
    for t in range(1, steps + 1):
        prefix = [np.eye(2)]                     # prefix[l] = W_l ⋯ W₁ (prefix[0] = I)
        for w in ws:
            prefix.append(w @ prefix[-1])
        e = RC_MASK * (prefix[-1] - RC_TARGET)   # ∂/∂W of ½‖P(W − B)‖²
        if not np.isfinite(e).all():
            return {"diverged": True}
        suffix = np.eye(2)                       # W_L ⋯ W_{l+1}
        grads = [None] * depth
        for l in range(depth - 1, -1, -1):
            grads[l] = suffix.T @ e @ prefix[l].T
            suffix = suffix @ ws[l]
        for w, gr in zip(ws, grads):
            w -= lr * gr
        if t in marks:                           # W after t updates is the next prefix: recompute once
            wt = np.linalg.multi_dot(ws[::-1]) if depth > 1 else ws[0].copy()
            s = np.linalg.svd(wt, compute_uv=False)
            curves["rc_loss"].append(float(0.5 * ((RC_MASK * (wt - RC_TARGET)) ** 2).sum()))
            curves["rc_nuclear_norm"].append(float(s.sum()))
            curves["rc_frobenius_norm"].append(float(np.sqrt((s ** 2).sum())))
            curves["rc_spectral_norm"].append(float(s[0]))
            curves["rc_effective_rank"].append(effective_rank(wt))
            curves["rc_abs_w22"].append(float(abs(wt[1, 1])))
    i10 = int(np.searchsorted(marks, steps / 10))          # the checkpoint at (about) T/10
    growth = min(math.log(curves[k][-1] / curves[k][i10])
                 for k in ("rc_nuclear_norm", "rc_frobenius_norm", "rc_spectral_norm"))
    return {"rc_step": [float(t) for t in marks], **curves,
            "rc_final_loss": curves["rc_loss"][-1], "rc_final_nuclear_norm": curves["rc_nuclear_norm"][-1],
            "rc_final_effective_rank": curves["rc_effective_rank"][-1],
            "rc_min_log_norm_growth": growth}


def run(p: dict, seed: int) -> dict:
    return _psd_arm(p, seed) if p["arm"] == "psd-factorization" else _rc_arm(p, seed)


# ------------------------------------------------------------------ analysis

def _by_alpha(cells, metric):
    out: dict[float, dict[int, float]] = {}
    for c in cells:
        v = c.metrics.get(metric)
        if c.status == "done" and isinstance(v, (int, float)):
            out.setdefault(c.params["alpha"], {})[c.seed] = float(v)
    return out


def analyze(cells) -> Analysis:
    main = [c for c in cells if c.params.get("arm") == "psd-factorization"]
    rc = [c for c in cells if c.params.get("arm") == "razin-cohen" and c.status == "done"]
    claims, values = [], {}
    # a ratio is only as good as its oracle: cells whose ADMM did not reach its tolerance are left out
    ratio = _by_alpha([c for c in main if c.metrics.get("min_converged", True)], "nuclear_norm_ratio")
    err = _by_alpha(main, "unobserved_rel_error")
    if ratio:
        lo_a, hi_a = min(ratio), max(ratio)
        rows = aggregate(main, by=["alpha"], metrics=["nuclear_norm_ratio", "unobserved_rel_error",
                                                      "train_rel_residual"], bounds=BOUNDS)
        values["by_alpha"] = {str(r["params"]["alpha"]): r["metrics"] for r in rows}
        claims.append(from_values(
            f"at the smallest α = {lo_a:g}, GD on UUᵀ finds the minimum-nuclear-norm completion "
            f"(nuclear-norm ratio within 1 ± {RATIO_BAND:g})", ratio[lo_a].values(), null=1.0,
            effect="‖X_GD‖_* / min ‖X‖_* − 1", direction="within", margin=RATIO_BAND))
        pts = [(math.log10(a), v) for a, d in ratio.items() for v in d.values()]
        claims.append(from_correlation(
            "the nuclear-norm ratio falls as the initialization scale α falls",
            rank_correlation([x for x, _ in pts], [y for _, y in pts], alternative="greater"),
            effect="Spearman ρ(log α, ratio)", direction="greater"))
        if lo_a != hi_a:
            a, b = pair_by_seed(err[hi_a], err[lo_a])
            claims.append(from_difference(
                f"the unobserved entries are recovered better from α = {lo_a:g} than from α = {hi_a:g}",
                paired_difference(a, b) if a.size >= 2 else None,
                effect=f"relative error at α = {hi_a:g} minus at α = {lo_a:g}"))
        res = _by_alpha(main, "train_rel_residual")
        worst = {}
        for d in res.values():
            for s, v in d.items():
                worst[s] = max(worst.get(s, 0.0), v)
        claims.append(from_values(
            f"GD fits the observed entries at every α (relative residual below {FIT:g}): each solution is a "
            f"global minimum", worst.values(), null=FIT, effect="worst relative residual over α",
            direction="less", subtract_null=False))
    else:
        claims.append(not_measured("GD on UUᵀ finds the minimum-nuclear-norm completion as α → 0",
                                   "no finished cell of the psd-factorization arm"))
    if rc:
        # one value per seed, the least favourable over α: the claims hold "at every α"
        def worst(metric, pick):
            per: dict[int, list[float]] = {}
            for c in rc:
                per.setdefault(c.seed, []).append(float(c.metrics[metric]))
            return [pick(v) for v in per.values()]
        claims.append(from_values(
            "Razin–Cohen 2×2: every norm of W = W_L⋯W₁ keeps growing at every α (log growth of the slowest of "
            "the nuclear, Frobenius and spectral norms from step T/10 to T is positive)",
            worst("rc_min_log_norm_growth", min), null=0.0, effect="smallest log growth over α", direction="greater"))
        claims.append(from_values(
            f"Razin–Cohen 2×2: the effective rank goes to 1 at every α (final effective rank below "
            f"{1 + ERANK_BAND:g})", [v - 1 for v in worst("rc_final_effective_rank", max)], null=ERANK_BAND,
            effect="largest final effective rank − 1 over α", direction="less", subtract_null=False))
        claims.append(from_values(
            "Razin–Cohen 2×2: the loss on the observed entries goes to 0 at every α (final loss below 1e-2)",
            worst("rc_final_loss", max), null=1e-2, effect="largest final loss over α", direction="less",
            subtract_null=False))
        values["razin_cohen"] = {k: float(np.mean([c.metrics[k] for c in rc]))
                                 for k in ("rc_final_loss", "rc_final_nuclear_norm", "rc_final_effective_rank",
                                           "rc_min_log_norm_growth")}
    return Analysis(values=values, claims=family(claims))


def plot(cells, fig) -> None:
    main = [c for c in cells if c.params.get("arm") == "psd-factorization" and c.status == "done"]
    rc = [c for c in cells if c.params.get("arm") == "razin-cohen" and c.status == "done"]
    axes = fig.subplots(1, 3)
    rows = sorted(aggregate(main, by=["alpha"], metrics=["nuclear_norm_ratio", "unobserved_rel_error",
                                                         "min_unobserved_rel_error"], bounds=BOUNDS),
                  key=lambda r: r["params"]["alpha"])
    a = np.array([r["params"]["alpha"] for r in rows])
    for ax, name, label in ((axes[0], "nuclear_norm_ratio", "‖X_GD‖_* / min ‖X‖_*"),
                            (axes[1], "unobserved_rel_error", "relative error on unobserved entries")):
        if rows:
            m = np.array([r["metrics"][name]["mean"] for r in rows])
            lo = np.array([r["metrics"][name]["lo"] for r in rows])
            hi = np.array([r["metrics"][name]["hi"] for r in rows])
            ax.errorbar(a, m, yerr=[m - lo, hi - m], fmt="o-", ms=4, capsize=2, label="GD on UUᵀ, U₀ = αI")
        ax.set_xscale("log")
        ax.set_xlabel("initialization scale α")
        ax.set_ylabel(label)
    if rows:
        axes[0].axhline(1.0, color="grey", ls=":", label="minimum nuclear norm")
        mm = np.array([r["metrics"]["min_unobserved_rel_error"]["mean"] for r in rows])
        axes[1].plot(a, mm, "k--", lw=1, label="min-nuclear-norm completion")
        axes[1].set_yscale("log")
    axes[0].set_title("Nuclear-norm ratio (95% CI over seeds)", fontsize=9)
    axes[1].set_title("Recovery of the unobserved entries", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    ax = axes[2]
    if rc:
        a0 = min(c.params["alpha"] for c in rc)
        sel = [c for c in rc if c.params["alpha"] == a0]
        t = np.array(sel[0].metrics["rc_step"])
        for key, label, color in (("rc_nuclear_norm", "nuclear norm", "C0"), ("rc_frobenius_norm", "Frobenius norm", "C1"),
                                  ("rc_abs_w22", "|W₂₂|", "C2"), ("rc_effective_rank", "effective rank", "C3"),
                                  ("rc_loss", "loss", "C4")):
            m, lo, hi = curve_ci([c.metrics[key] for c in sel])
            ax.plot(t, m, color=color, label=label)
            ax.fill_between(t, lo, hi, color=color, alpha=0.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"Razin–Cohen 2×2, depth {sel[0].params['rc_depth']}, α = {a0:g}", fontsize=9)
        ax.set_xlabel("GD step")
        ax.legend(fontsize=7)
    fig.suptitle("Matrix completion: GD's implicit bias (Gunasekar et al. 2017; Razin & Cohen 2020)")


EXPERIMENT = Experiment(
    name="matrix-completion",
    question="Among the infinitely many completions that fit the observed entries, does gradient descent on a "
             "full-dimensional factorization UUᵀ from a small initialization find the minimum-nuclear-norm one — "
             "and is the bias really a norm (Razin & Cohen's 2×2 counterexample)?",
    reference="Gunasekar, Woodworth, Bhojanapalli, Neyshabur & Srebro (2017), Implicit regularization in matrix "
              "factorization, NeurIPS, arXiv:1705.09280; Razin & Cohen (2020), Implicit regularization in deep "
              "learning may not be explainable by norms, NeurIPS, arXiv:2005.06398",
    summary="GD on UUᵀ vs the min-nuclear-norm completion as α → 0; the Razin–Cohen 2×2 where norms diverge",
    params=(
        Param("arm", str, default=list(ARMS), choices=ARMS,
              help="psd-factorization (GD on UUᵀ) or razin-cohen (2×2 deep factorization)"),
        Param("alpha", float, default=ALPHAS, quick=QUICK_ALPHAS, low=1e-12, high=10.0, log=True,
              help="initialization scale: U₀ = αI (razin-cohen: W₀ = W_L⋯W₁ of scale α)"),
        Param("d", int, default=30, low=2, high=400, help="matrix size d (d×d)"),
        Param("rank", int, default=2, low=1, high=400, help="rank of the PSD ground truth"),
        Param("observed_fraction", float, default=0.4, low=0.0, high=1.0,
              help="fraction of the d(d+1)/2 symmetric pairs observed"),
        Param("lr", float, default=0.5, low=0.0, high=2.0,
              help="step as a fraction of 1/λ_max(P_Ω(M)/f)"),
        Param("steps", int, default=60_000, quick=20_000, low=1, high=10_000_000, help="GD steps (main arm)"),
        Param("rc_depth", int, default=3, low=2, high=8, help="depth L of W = W_L⋯W₁ (razin-cohen)"),
        Param("rc_lr", float, default=0.02, low=0.0, high=1.0, help="GD step (razin-cohen)"),
        Param("rc_steps", int, default=40_000, quick=20_000, low=20, high=10_000_000,
              help="GD steps (razin-cohen)"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=5, quick_seeds=3, runtime="~4 min (busy machine)",
    table_by=("arm", "alpha"),
    table_metrics=("nuclear_norm_gd", "nuclear_norm_min", "nuclear_norm_ratio", "unobserved_rel_error",
                   "rc_final_nuclear_norm", "rc_final_effective_rank", "rc_final_loss"),
    bounds=BOUNDS,
    tiny=dict(alpha=[1.0, 0.1], d=6, steps=200, rc_steps=200),  # petridish check (seconds)
)
