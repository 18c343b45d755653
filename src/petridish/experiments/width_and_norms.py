"""Width and norms: test error keeps falling as an MLP grows far past the width where it
interpolates its training set, so the parameter count is not what controls generalization.
Which norm-based capacity measures do track it?

Neyshabur, Tomioka & Srebro (2015) "In search of the real inductive bias"; Bartlett, Foster
& Telgarsky (2017) "Spectrally-normalized margin bounds for neural networks".

One cell = one width and one seed: a 40 → width (× depth) → 10 ReLU MLP trained on MNIST-1D
with SGD + momentum, then measured at the end of training: errors, parameter count, and the
norm measures of :func:`petridish.instruments.norm_measures` (margins on the training set).
Seeds of one configuration train together as one vectorized ensemble (``run_group``).

Claims: each measure "tracks test error" when its Spearman ρ with test error is positive, tested
over the pooled cells (one point per trained network, seeds × widths: 15 in the quick run,
33 by default) with a one-sided permutation p, Holm-adjusted across the 7 measures; once over
all widths and once over the interpolating widths only. Per-width means would give 5 points,
where no permutation test reaches p <= 0.05 after adjustment. Test error past interpolation:
the seed-paired difference between the largest and the interpolation width.
"""
from __future__ import annotations

import math

import numpy as np

from petridish.data import label_noise as add_label_noise
from petridish.data import mnist1d
from petridish.instruments import norm_measures
from petridish.lab import Analysis, Experiment, Param, aggregate, row_means
from petridish.lab.claims import family, from_correlation, from_difference, not_measured
from petridish.lab.paired import pair_by_seed, paired_difference
from petridish.lab.ranks import RankCorrelation, rank_correlation
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


def _points(cells, name: str, widths=None) -> tuple[np.ndarray, np.ndarray]:
    """(measure, test error) of every finished cell — seeds × widths pooled, one point per
    trained network — restricted to ``widths`` when given. Infinite (vacuous) values stay in and
    are dropped by ``rank_correlation`` with the other non-finite pairs."""
    sel = [c for c in cells if c.status == "done" and "test_error" in c.metrics and name in c.metrics
           and (widths is None or c.params["width"] in widths)]
    return (np.array([float(c.metrics[name]) for c in sel]), np.array([float(c.metrics["test_error"]) for c in sel]))


def rank_correlations(cells, widths=None) -> dict[str, RankCorrelation]:
    """Spearman ρ of each measure with test error over the pooled cells (one point per trained
    network, all seeds of all ``widths``), with its CI and a one-sided permutation p (a measure
    that tracks test error has ρ > 0). The unit is the trained network, not the width: 3 seeds
    × 5 widths give 15 points, where the 5 per-width means could never reach p <= 0.05."""
    return {name: rank_correlation(*_points(cells, name, widths), method="spearman", alternative="greater")
            for name in MEASURES}


def _claims(cells, widths, label: str) -> list:
    """One claim per measure ("tracks test error"), Holm-adjusted across the measures."""
    corr = rank_correlations(cells, widths)
    claims = [from_correlation(f"{MEASURES[n]} tracks test error{label}", rc, direction="greater",
                               effect="Spearman ρ over trained networks (seeds × widths pooled)")
              for n, rc in corr.items()]
    return family(claims, "holm")


def _rc_json(rc: RankCorrelation) -> dict:
    return {"spearman": rc.estimate, "ci": list(rc.ci) if rc.ci else None, "p": rc.p, "n_points": rc.n,
            "reason": rc.reason}


def _by_seed(cells, width: int, name: str) -> dict[int, float]:
    return {c.seed: float(c.metrics[name]) for c in cells
            if c.status == "done" and c.params["width"] == width and name in c.metrics}


def analyze(cells) -> Analysis:
    rows = _rows(cells)
    if not rows:
        return Analysis(["No finished cells."], {})
    widths = [r["params"]["width"] for r in rows]
    tr, te = row_means(rows, "train_error"), row_means(rows, "test_error")
    fit = [i for i, e in enumerate(tr) if e <= INTERPOLATES]
    values = {"widths": widths, "test_error": te.tolist(), "train_error": tr.tolist()}
    n_seeds = min(r["n"] for r in rows)
    setup = [f"Points: {len(rows)} widths × {n_seeds}+ seeds; each trained network is one point of the rank "
             f"correlations."]
    claims = []
    if fit and fit[0] < len(widths) - 1:
        w0, w1 = widths[fit[0]], widths[-1]
        values.update(interpolation_width=w0, test_error_at_interpolation=float(te[fit[0]]),
                      test_error_at_largest=float(te[-1]))
        claims.append(from_difference(
            f"test error falls from the interpolation width {w0} to width {w1}",
            paired_difference(*pair_by_seed(_by_seed(cells, w1, "test_error"), _by_seed(cells, w0, "test_error"))),
            effect=f"test error at width {w1} minus at width {w0}", direction="less"))
        setup.append(f"Interpolation width (mean training error <= {100 * INTERPOLATES:.0f}%): {w0}.")
    else:
        claims.append(not_measured(
            "test error falls past the interpolation width",
            f"no width below the largest reached mean training error <= {100 * INTERPOLATES:.0f}% "
            f"(lowest {100 * np.nanmin(tr):.1f}%)"))
    all_claims = _claims(cells, None, "")
    claims += all_claims
    values["correlations"] = {n: _rc_json(rc) for n, rc in rank_correlations(cells).items()}
    inter = [w for i, w in enumerate(widths) if i in fit]
    claims += _claims(cells, inter, f" among the interpolating widths ({', '.join(map(str, inter)) or 'none'})")
    values["correlations_interpolating"] = {n: _rc_json(rc) for n, rc in rank_correlations(cells, inter).items()}
    values["supported_measures"] = [MEASURES[n] for n, c in zip(MEASURES, all_claims) if c.verdict == "supported"]
    return Analysis(setup, values, claims)


def plot(cells, fig) -> None:
    rows = _rows(cells)
    if not rows:
        return
    w = np.array([r["params"]["width"] for r in rows], dtype=float)
    ax1, ax2, ax3 = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))
    bounds = EXPERIMENT.bounds
    for name, label, color in (("train_error", "train", "C0"), ("test_error", "test", "C3")):
        m, lo, hi = (np.array([r["metrics"][name][s] for r in rows]) for s in ("mean", "lo", "hi"))
        lo, hi = np.clip(lo, *bounds[name]), np.clip(hi, *bounds[name])
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
    _corr_panel(ax3, cells, [int(x) for x in w[fit]])


def _corr_panel(ax, cells, inter: list[int]) -> None:
    """Spearman ρ (95% CI) of each measure with test error: all widths, and interpolating ones."""
    for j, (widths, label, color) in enumerate(((None, "all widths", "C0"), (inter, "interpolating", "C2"))):
        corr = rank_correlations(cells, widths) if widths is None or len(widths) else {}
        for i, name in enumerate(MEASURES):
            rc = corr.get(name)
            if rc is None or rc.estimate is None:
                continue
            y = i + (j - 0.5) * 0.3
            ax.errorbar(rc.estimate, y, xerr=[[rc.estimate - rc.ci[0]], [rc.ci[1] - rc.estimate]], fmt="o",
                        color=color, capsize=3, ms=4, label=label if i == 0 else None)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(MEASURES)), list(MEASURES.values()), fontsize=7)
    ax.set(xlim=(-1.05, 1.05), xlabel="Spearman ρ with test error (cells pooled)",
           title="Which measure tracks test error?")
    ax.legend(fontsize=7)


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
    bounds={"train_error": (0.0, 1.0), "test_error": (0.0, 1.0)},
    table_by=("width",),
    table_metrics=("params", "train_error", "test_error", "path_norm", "spectral_complexity_normalized"),
    tiny=dict(width=[4, 16], n_train=100, n_test=100, epochs=3),  # petridish check (seconds)
)
