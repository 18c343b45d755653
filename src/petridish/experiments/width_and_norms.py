"""Width and norms: test error keeps falling as an MLP grows far past the width where it
interpolates its training set, so the parameter count is not what controls generalization.
Which norm-based capacity measures do track it?

Neyshabur, Tomioka & Srebro (2015) "In search of the real inductive bias"; Bartlett, Foster
& Telgarsky (2017) "Spectrally-normalized margin bounds for neural networks".

One cell = one width and one seed: a 40 → width (× depth) → 10 ReLU MLP trained on MNIST-1D
with SGD + momentum, then measured at the end of training: errors, parameter count, and the
norm measures of :func:`petridish.instruments.norm_measures` (margins on the training set).
Seeds of one configuration train together as one vectorized ensemble (``run_group``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats as st

from petridish.data import label_noise as add_label_noise
from petridish.data import mnist1d
from petridish.instruments import norm_measures
from petridish.lab import Analysis, Experiment, Param, aggregate, row_means
from petridish.train import train_ensemble

# name -> label; every one is a per-cell scalar metric.
MEASURES = {
    "params": "parameter count",
    "frobenius_product": "Π ||W||_F",
    "frobenius_sum": "Σ ||W||_F²",
    "spectral_product": "Π ||W||_σ",
    "path_norm": "ℓ2 path norm",
    "spectral_complexity": "spectral complexity R",
    "spectral_complexity_normalized": "R·||X||_F/(γ n)",
}
TRACKS = 0.5          # a measure "tracks" test error if its Spearman ρ across widths is >= this
INTERPOLATES = 0.01   # training error at or below this counts as interpolation

WIDTHS = [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
QUICK_WIDTHS = [4, 16, 64, 256, 512]


def _data(p: dict):
    ds = mnist1d(n_train=p["n_train"], n_test=p["n_test"])
    if p["label_noise"] > 0:
        ds = add_label_noise(ds, p["label_noise"], seed=0)   # one fixed corruption for all seeds
    return ds


def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Cells that share every parameter (only seeds differ), trained as one ensemble."""
    p = params_list[0]
    ds = _data(p)
    res = train_ensemble("mlp", ds.x_train, ds.y_train, seeds=list(seeds), lr=p["lr"], momentum=p["momentum"],
                         batch_size=p["batch_size"], epochs=p["epochs"],
                         model_kwargs={"width": p["width"], "depth": p["depth"], "d_out": 10},
                         eval_sets={"train": (ds.x_train, ds.y_train), "test": (ds.x_test, ds.y_test)})
    x64 = ds.x_train.double()
    out = []
    for k in range(len(seeds)):
        if bool(res.diverged[k]):
            out.append({"diverged": True, "width": p["width"]})
            continue
        model = res.member(k).double().eval()
        m = {"params": res.n_params, **res.final_metrics(k)}
        m.update(norm_measures(model, x64, ds.y_train, quantile=p["margin_quantile"]))
        out.append(m)
    return out


def run(p: dict, seed: int) -> dict:
    return run_group([p], [seed])[0]


def _rows(cells) -> list[dict]:
    rows = aggregate(cells, by=["width"])
    return sorted([r for r in rows if "test_error" in r["metrics"]], key=lambda r: r["params"]["width"])


def rank_correlations(rows) -> dict[str, dict[str, float]]:
    """Spearman ρ and Kendall τ of each measure's per-width mean with the mean test error,
    over the widths where the measure is finite (the normalized complexity is infinite,
    i.e. vacuous, where the γ-margin is <= 0)."""
    te = row_means(rows, "test_error")
    out = {}
    for name in MEASURES:
        v = row_means(rows, name)
        ok = np.isfinite(v) & np.isfinite(te)
        if ok.sum() >= 3 and np.ptp(v[ok]) > 0 and np.ptp(te[ok]) > 0:
            rho = float(st.spearmanr(v[ok], te[ok]).statistic)
            tau = float(st.kendalltau(v[ok], te[ok]).statistic)
        else:
            rho = tau = math.nan
        out[name] = {"spearman": rho, "kendall": tau, "n_widths": int(ok.sum())}
    return out


def _corr_table(corr, n_rows: int) -> str:
    return "; ".join(f"{MEASURES[n]}: ρ = {c['spearman']:+.2f}, τ = {c['kendall']:+.2f}"
                     + (f" ({c['n_widths']} widths)" if c["n_widths"] != n_rows else "")
                     for n, c in corr.items())


def analyze(cells) -> Analysis:
    rows = _rows(cells)
    if not rows:
        return Analysis(["No finished cells."], {})
    widths = [r["params"]["width"] for r in rows]
    tr, te = row_means(rows, "train_error"), row_means(rows, "test_error")
    fit = [i for i, e in enumerate(tr) if e <= INTERPOLATES]
    findings, values = [], {"widths": widths, "test_error": te.tolist(), "train_error": tr.tolist()}
    if fit:
        i0 = fit[0]
        values.update(interpolation_width=widths[i0], test_error_at_interpolation=float(te[i0]),
                      test_error_at_largest=float(te[-1]))
        findings.append(
            f"Training error reaches {100 * tr[i0]:.1f}% at width {widths[i0]} (the interpolation width) and stays "
            f"<= {100 * INTERPOLATES:.0f}% beyond; test error goes from {100 * te[i0]:.1f}% there to "
            f"{100 * te[-1]:.1f}% at width {widths[-1]}, although the parameter count grows "
            f"{row_means(rows, 'params')[-1] / row_means(rows, 'params')[i0]:.0f}-fold.")
    else:
        findings.append(f"No width reached training error <= {100 * INTERPOLATES:.0f}% "
                        f"(lowest {100 * np.nanmin(tr):.1f}%): train longer or wider.")
    corr = rank_correlations(rows)
    values["correlations"] = corr
    findings.append(f"Rank correlation with test error across {len(rows)} widths — {_corr_table(corr, len(rows))}.")
    if len(fit) >= 3:
        # the regime the question is about: every net here fits its training set
        inter = rank_correlations([rows[i] for i in fit])
        values["correlations_interpolating"] = inter
        findings.append(f"Over the {len(fit)} interpolating widths only (>= {widths[fit[0]]}) — "
                        f"{_corr_table(inter, len(fit))}.")
    tracking = [MEASURES[n] for n, c in corr.items() if n != "params" and c["spearman"] >= TRACKS]
    pc = corr["params"]["spearman"]
    verdict = "does not" if not pc >= TRACKS else "also does"
    findings.append(
        (f"Measures that track test error (Spearman ρ >= {TRACKS}): {', '.join(tracking)}. " if tracking else
         f"No norm measure reaches Spearman ρ >= {TRACKS} with test error. ")
        + f"The parameter count {verdict} (ρ = {pc:+.2f}).")
    values["tracking_measures"] = tracking
    return Analysis(findings, values)


def plot(cells, fig) -> None:
    rows = _rows(cells)
    if not rows:
        return
    w = np.array([r["params"]["width"] for r in rows], dtype=float)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, label, color in (("train_error", "train", "C0"), ("test_error", "test", "C3")):
        m, lo, hi = (np.array([r["metrics"][name][s] for r in rows]) for s in ("mean", "lo", "hi"))
        ax1.plot(w, m, "o-", color=color, label=f"{label} error")
        ax1.fill_between(w, lo, hi, color=color, alpha=0.25)
    tr = row_means(rows, "train_error")
    fit = np.flatnonzero(tr <= INTERPOLATES)
    if fit.size:
        ax1.axvline(w[fit[0]], color="grey", ls=":", lw=1)
        ax1.text(w[fit[0]], 0.98, f" train error <= {100 * INTERPOLATES:.0f}%", transform=ax1.get_xaxis_transform(),
                 va="top", fontsize=7, color="grey")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("hidden units (width)")
    ax1.set_ylabel("error")
    ax1.set_title("Error vs width (95% CI over seeds)")
    ax1.legend(fontsize=8)
    for i, (name, label) in enumerate(MEASURES.items()):
        m, lo, hi = (np.array([r["metrics"].get(name, {}).get(s, math.nan) for r in rows], dtype=float)
                     for s in ("mean", "lo", "hi"))
        ok = np.isfinite(m) & (m > 0)
        if not ok.any():
            continue
        ref = m[ok][0]                      # value at the smallest width where it is finite
        ls = "--" if name == "params" else "-"
        ax2.plot(w[ok], m[ok] / ref, ls, marker="o", ms=3, color=f"C{i}", label=label)
        ax2.fill_between(w[ok], np.clip(lo[ok], 1e-300, None) / ref, hi[ok] / ref, color=f"C{i}", alpha=0.2)
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xlabel("hidden units (width)")
    ax2.set_ylabel("measure / its value at the smallest width")
    ax2.set_title("Capacity measures at the end of training")
    ax2.legend(fontsize=7)


EXPERIMENT = Experiment(
    name="width-and-norms",
    question="As an MLP grows far past the width where it interpolates its training set, does test error rise "
             "with the parameter count, and which norm-based capacity measures track it instead?",
    reference="Neyshabur, Tomioka & Srebro (2015), In search of the real inductive bias, ICLR workshop, "
              "arXiv:1412.6614; Bartlett, Foster & Telgarsky (2017), Spectrally-normalized margin bounds for "
              "neural networks, NeurIPS, arXiv:1706.08498",
    summary="test error and norm-based capacity (Frobenius, spectral, path norm, spectral complexity) vs MLP width",
    params=(
        Param("width", int, default=WIDTHS, quick=QUICK_WIDTHS, low=1, high=65536, log=True,
              help="hidden units per layer (a list sweeps it)"),
        Param("depth", int, default=1, low=1, high=4, help="hidden layers"),
        Param("n_train", int, default=2000, quick=500, low=10, high=50_000, help="MNIST-1D training examples"),
        Param("n_test", int, default=1000, quick=1000, low=10, high=50_000, help="MNIST-1D test examples"),
        Param("label_noise", float, default=0.0, low=0.0, high=1.0,
              help="probability each training label is replaced by a uniform random class"),
        Param("epochs", int, default=100, quick=80, low=1, high=10_000, help="passes over the training set"),
        Param("lr", float, default=0.05, low=1e-6, high=10.0, log=True, help="SGD learning rate"),
        Param("momentum", float, default=0.9, low=0.0, high=0.999, help="SGD heavy-ball momentum"),
        Param("batch_size", int, default=100, low=1, high=50_000, help="minibatch size"),
        Param("margin_quantile", float, default=0.1, low=0.0, high=1.0,
              help="quantile of the training margins used as γ (Bartlett et al.: 10th percentile)"),
    ),
    run=run, run_group=run_group,
    group_by=("depth", "n_train", "n_test", "label_noise", "epochs", "lr", "momentum", "batch_size",
              "margin_quantile", "width"),
    analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=1, runtime="~1 min",
    table_by=("width",),
    table_metrics=("params", "train_error", "test_error", "path_norm", "spectral_complexity_normalized"),
)
