"""Effective parameters: how many directions of parameter space does the data actually determine?

MacKay (1992) "A practical Bayesian framework for backpropagation networks"; Maddox, Benton &
Wilson (2020) "Rethinking parameter counting in deep models: effective dimensionality revisited".

One cell = one width and one seed, two models:
* MLP arm: a 40 → width → 10 ReLU MLP trained on MNIST-1D (SGD + momentum, cross-entropy);
  at the end of training, N_eff(z) = Σ λ_i / (λ_i + z) over ALL eigenvalues of the Hessian of
  the mean training loss: the top k by Lanczos on Hessian-vector products, the rest by
  stochastic Lanczos quadrature on the deflated Hessian (``instruments.neff_spectrum``). The
  top-k sum alone is <= k by construction (the quick width-256 model: 8.7 at k = 20 of a
  whole-spectrum 36); ``neff_topk`` keeps it, and the figure plots it against k.
* Random-features arm: ridge regression of one-hot labels on F ≈ params / 10 fixed ReLU
  features (so both arms have about the same number of trained parameters at each width);
  its effective degrees of freedom are tr(S), S = Φ(ΦᵀΦ + λI)⁻¹Φᵀ = Σ s²/(s² + λ) (SVD of Φ).
  For a model linear in its parameters with squared loss the two notions coincide: the Hessian
  of the mean loss is I_10 ⊗ ΦᵀΦ/n, so N_eff(z = λ/n) = 10 · tr(S).
A linear ridge fit on the 40 raw inputs gives a reference: tr(S) <= 41 whatever λ.
Seeds of one width train together as one vectorized ensemble (``run_group``).

Claims: N_eff grows with the parameter count; which count (MLP parameters, N_eff, RF parameters,
tr(S)) tracks test error (Spearman ρ over the pooled cells, seeds × widths, one-sided
permutation p, Holm over the four); N_eff falls past the interpolation width (seed-paired);
N_eff is below 1% of the parameters at the largest width; the eigenvalues beyond the top k add
less than 10% to N_eff (the honest form of the old "truncation is small").
"""
from __future__ import annotations

import math

import numpy as np
import torch

from petridish.data import label_noise as add_label_noise
from petridish.data import mnist1d
from petridish.instruments import ridge_dof
from petridish.instruments.neff_spectrum import neff_full_spectrum, neff_terms
from petridish.lab import Analysis, Experiment, Param, aggregate, row_means
from petridish.lab.claims import family, from_correlation, from_difference, from_values, not_measured
from petridish.lab.paired import pair_by_seed, paired_difference
from petridish.lab.ranks import RankCorrelation, rank_correlation
from petridish.train import train_ensemble

WIDTHS = [4, 8, 16, 32, 64, 128, 256, 512, 1024]
QUICK_WIDTHS = [4, 16, 64, 256]
CLASSES = 10
INTERPOLATES = 0.01   # training error at or below this counts as interpolation
LANCZOS_TOL = 1e-3    # relative Ritz residual; eigenvalue errors are ~ its square
N_PROBES = 30         # SLQ probes for the spectrum beyond the top k (SE ~ 1% of N_eff)
SLQ_ITERS = 20        # Lanczos steps per probe: f = λ/(λ+z) is smooth, 10 already give 4 digits
SMALL_FRACTION = 0.01     # claim: N_eff is below 1% of the parameter count at the largest width
TRUNCATION_SHARE = 0.10   # claim: the eigenvalues beyond the top k add less than 10% to N_eff


def _data(p: dict):
    ds = mnist1d(n_train=p["n_train"], n_test=p["n_test"])
    if p["label_noise"] > 0:
        ds = add_label_noise(ds, p["label_noise"], seed=0)   # one fixed corruption for all seeds
    return ds


def hessian_neff(model, x, y, *, k: int, z: float, seed: int) -> dict:
    """N_eff(z) of the mean cross-entropy Hessian at ``model`` over its whole spectrum (top-k
    Lanczos eigenvalues + stochastic Lanczos quadrature of the rest), and the top-k-only sum."""
    e = neff_full_spectrum(model, x, y, z=z, k=k, n_probes=N_PROBES, iters=SLQ_ITERS, seed=seed, tol=LANCZOS_TOL)
    lam = e.eigenvalues
    return {"neff": e.neff, "neff_se": e.stderr, "neff_topk": e.top, "neff_remainder": e.remainder,
            "hessian_trace": e.trace, "hessian_trace_se": e.trace_stderr,
            "hessian_top": float(lam[0]), "hessian_kth": float(lam[-1]),
            "lanczos_iterations": e.lanczos_iterations, "lanczos_converged": bool(e.converged),
            "hessian_eigenvalues": [float(v) for v in lam]}


def random_features(x: torch.Tensor, n_features: int, seed: int) -> torch.Tensor:
    """(n, F + 1) float64: [relu(x Wᵀ/√d) / √F, 1], W ~ N(0, 1) from ``seed``. The 1/√F makes
    ΦΦᵀ converge to the arc-cosine kernel as F grows, so tr(S) has a finite limit."""
    g = torch.Generator().manual_seed(int(seed))
    w = torch.randn(n_features, x.shape[1], generator=g, dtype=torch.float64)
    phi = torch.relu(x.double() @ w.T / math.sqrt(x.shape[1])) / math.sqrt(n_features)
    return torch.cat([phi, torch.ones(x.shape[0], 1, dtype=torch.float64)], 1)


def ridge_fit(phi: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """Ridge coefficients (p, 10) for one-hot targets, solved on the smaller side of Φ (n, p)."""
    t = torch.nn.functional.one_hot(y, CLASSES).double()
    n, p = phi.shape
    if p <= n:
        return torch.linalg.solve(phi.T @ phi + lam * torch.eye(p, dtype=phi.dtype), phi.T @ t)
    return phi.T @ torch.linalg.solve(phi @ phi.T + lam * torch.eye(n, dtype=phi.dtype), t)


def ridge_arm(f_train, f_test, ds, lam: float) -> dict:
    """Errors and tr(S) of ridge on features f_train (n, p) / f_test (m, p)."""
    coef = ridge_fit(f_train, ds.y_train, lam)
    out_tr, out_te = f_train @ coef, f_test @ coef
    t_te = torch.nn.functional.one_hot(ds.y_test, CLASSES).double()
    return {"params": coef.numel(), "dof": ridge_dof(f_train, lam),
            "train_error": float((out_tr.argmax(1) != ds.y_train).double().mean()),
            "test_error": float((out_te.argmax(1) != ds.y_test).double().mean()),
            "test_mse": float(((out_te - t_te) ** 2).sum(1).mean())}


def rf_features_for(width: int, d_in: int = 40) -> int:
    """F such that the readout's 10(F+1) parameters ≈ the MLP's (d_in+1)·w + (w+1)·10."""
    return max(1, round(((d_in + 1) * width + (width + 1) * CLASSES) / CLASSES) - 1)


def train_mlps(p: dict, seeds: list[int]):
    """(dataset, EnsembleResult): the MLP arm of ``p``, one member per seed, trained together."""
    ds = _data(p)
    res = train_ensemble("mlp", ds.x_train, ds.y_train, seeds=list(seeds), lr=p["lr"], momentum=p["momentum"],
                         batch_size=p["batch_size"], epochs=p["epochs"],
                         model_kwargs={"width": p["width"], "depth": 1, "d_out": CLASSES},
                         eval_sets={"train": (ds.x_train, ds.y_train), "test": (ds.x_test, ds.y_test)})
    return ds, res


def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Cells that share every parameter (only seeds differ): MLPs trained as one ensemble."""
    p = params_list[0]
    ds, res = train_mlps(p, seeds)
    ones = lambda x: torch.cat([x.double(), torch.ones(x.shape[0], 1, dtype=torch.float64)], 1)  # noqa: E731
    linear = ridge_arm(ones(ds.x_train), ones(ds.x_test), ds, p["ridge"])
    n_feat = rf_features_for(p["width"], ds.x_train.shape[1])
    out = []
    for k, seed in enumerate(seeds):
        rf = ridge_arm(random_features(ds.x_train, n_feat, seed), random_features(ds.x_test, n_feat, seed),
                       ds, p["ridge"])
        m = {"rf_features": n_feat, **{f"rf_{a}": b for a, b in rf.items()},
             "linear_dof": linear["dof"], "linear_params": linear["params"], "linear_test_error": linear["test_error"]}
        if bool(res.diverged[k]):
            out.append({"diverged": True, **m})
            continue
        model = res.member(k).eval()
        m.update({"params": res.n_params, **res.final_metrics(k)})
        m.update(hessian_neff(model, ds.x_train, ds.y_train, k=p["k"], z=p["z"], seed=seed))
        m["neff_fraction"] = m["neff"] / m["params"]
        out.append(m)
    return out


def run(p: dict, seed: int) -> dict:
    return run_group([p], [seed])[0]


def _rows(cells) -> list[dict]:
    rows = aggregate(cells, by=["width"], bounds=EXPERIMENT.bounds)
    return sorted([r for r in rows if "neff" in r["metrics"]], key=lambda r: r["params"]["width"])


def _done(cells) -> list:
    return [c for c in cells if c.status == "done" and "neff" in c.metrics]


def _points(cells, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of every finished cell: seeds × widths pooled, one point per trained network."""
    sel = _done(cells)
    return (np.array([float(c.metrics.get(a, math.nan)) for c in sel]),
            np.array([float(c.metrics.get(b, math.nan)) for c in sel]))


# (x metric, y metric, claim); x "tracks" y = Spearman ρ > 0 over the pooled cells
TRACKING = (("params", "test_error", "the MLP's parameter count tracks its test error"),
            ("neff", "test_error", "the MLP's N_eff tracks its test error"),
            ("rf_params", "rf_test_error", "the random-features parameter count tracks its test error"),
            ("rf_dof", "rf_test_error", "the random-features tr(S) tracks its test error"))


def rank_correlations(cells) -> dict[str, RankCorrelation]:
    """Spearman ρ over the pooled cells (seeds × widths: 12 points in the quick run, 27 by
    default), one-sided permutation p: N_eff against the parameter count, and each count
    against test error. Four per-width means could never reach p <= 0.05."""
    out = {"neff_vs_params": rank_correlation(*_points(cells, "params", "neff"), alternative="greater")}
    for x, y, _ in TRACKING:
        out[x] = rank_correlation(*_points(cells, x, y), alternative="greater")
    return out


def _by_seed(cells, width: int, fn) -> dict[int, float]:
    return {c.seed: float(fn(c.metrics)) for c in _done(cells) if c.params["width"] == width}


def _claims(cells, rows, values: dict) -> list:
    widths = [r["params"]["width"] for r in rows]
    w1 = widths[-1]
    k = next(c.params["k"] for c in _done(cells))
    corr = rank_correlations(cells)
    values["correlations"] = {n: {"spearman": rc.estimate, "ci": list(rc.ci) if rc.ci else None, "p": rc.p,
                                  "n_points": rc.n, "reason": rc.reason} for n, rc in corr.items()}
    unit = "Spearman ρ over trained networks (seeds × widths pooled)"
    claims = [from_correlation("N_eff grows with the parameter count", corr["neff_vs_params"], direction="greater",
                               effect=unit)]
    claims += family([from_correlation(text, corr[x], direction="greater", effect=unit) for x, _, text in TRACKING],
                     "holm")
    tr = row_means(rows, "train_error")
    fit = [i for i, e in enumerate(tr) if e <= INTERPOLATES]
    if fit and fit[0] < len(widths) - 1:
        w0 = widths[fit[0]]
        d = paired_difference(*pair_by_seed(_by_seed(cells, w1, lambda m: m["neff"]),
                                            _by_seed(cells, w0, lambda m: m["neff"])))
        claims.append(from_difference(f"N_eff falls from the interpolation width {w0} to width {w1}", d,
                                      effect=f"N_eff at width {w1} minus at width {w0}", direction="less"))
    else:
        claims.append(not_measured("N_eff falls past the interpolation width",
                                   f"no width below the largest reached mean training error <= "
                                   f"{100 * INTERPOLATES:.0f}% (lowest {100 * np.nanmin(tr):.1f}%)"))
    claims.append(from_values(f"N_eff is below {100 * SMALL_FRACTION:g}% of the parameter count at width {w1}",
                              _by_seed(cells, w1, lambda m: m["neff"] / m["params"]).values(), null=SMALL_FRACTION,
                              direction="less", subtract_null=False, effect="N_eff / parameter count"))
    claims.append(from_values(f"the eigenvalues beyond the top {k} add less than {100 * TRUNCATION_SHARE:g}% to "
                              f"N_eff at width {w1}",
                              _by_seed(cells, w1, lambda m: m["neff_remainder"] / m["neff"]).values(),
                              null=TRUNCATION_SHARE, direction="less", subtract_null=False,
                              effect=f"share of N_eff beyond the top {k} (stochastic Lanczos quadrature)"))
    return claims


def analyze(cells) -> Analysis:
    rows = _rows(cells)
    if not rows:
        return Analysis(["No finished cells."], {})
    widths = [r["params"]["width"] for r in rows]
    ne, npar, te, tr = (row_means(rows, n) for n in ("neff", "params", "test_error", "train_error"))
    values: dict = {"widths": widths, "neff": ne.tolist(), "neff_topk": row_means(rows, "neff_topk").tolist(),
                    "neff_se": row_means(rows, "neff_se").tolist(), "params": npar.tolist(),
                    "test_error": te.tolist(), "train_error": tr.tolist(),
                    "hessian_trace": row_means(rows, "hessian_trace").tolist(),
                    "neff_at_largest": float(ne[-1]), "neff_fraction_at_largest": float(ne[-1] / npar[-1])}
    for name in ("rf_features", "rf_dof", "rf_params", "rf_test_error"):
        values[name] = row_means(rows, name).tolist()
    values["rf_dof_at_largest"] = float(values["rf_dof"][-1])
    values["linear_dof"] = float(row_means(rows, "linear_dof")[0])
    fit = [w for w, e in zip(widths, tr) if e <= INTERPOLATES]
    values["interpolation_width"] = fit[0] if fit else None
    c0 = _done(cells)[0]
    setup = [f"N_eff(z = {c0.params['z']:g}) = Σ λ/(λ+z) over the whole Hessian spectrum: the top "
             f"{c0.params['k']} eigenvalues by Lanczos plus the rest by stochastic Lanczos quadrature "
             f"({N_PROBES} deflated probes, {SLQ_ITERS} steps); ρ over {len(_done(cells))} trained networks "
             f"({len(widths)} widths × seeds)."]
    return Analysis(setup, values, _claims(cells, rows, values))


def _band(ax, x, rows, name, color, label, ls="-"):
    m, lo, hi = (np.array([r["metrics"].get(name, {}).get(s, math.nan) for r in rows], dtype=float)
                 for s in ("mean", "lo", "hi"))
    ax.plot(x, m, ls, marker="o", ms=4, color=color, label=label)
    ax.fill_between(x, lo, hi, color=color, alpha=0.25)


def plot(cells, fig) -> None:
    rows = _rows(cells)
    if not rows:
        return
    w = np.array([r["params"]["width"] for r in rows], dtype=float)
    axes = [fig.add_subplot(2, 2, i) for i in range(1, 5)]
    ax = axes[0]
    _band(ax, w, rows, "train_error", "C0", "MLP train error")
    _band(ax, w, rows, "test_error", "C3", "MLP test error")
    _band(ax, w, rows, "rf_test_error", "C1", "random-features test error", ls="--")
    ax.set(xscale="log", xlabel="MLP width (RF: matched parameter count)", ylabel="error",
           title="Error vs width (95% CI over seeds)")
    fit = np.flatnonzero(row_means(rows, "train_error") <= INTERPOLATES)
    if fit.size:
        for a in axes[:2]:
            a.axvline(w[fit[0]], color="grey", ls=":", lw=1)
        ax.text(w[fit[0]], 0.98, f" MLP train error <= {100 * INTERPOLATES:.0f}%", transform=ax.get_xaxis_transform(),
                va="top", fontsize=7, color="grey")
    ax.legend(fontsize=7)
    ax = axes[1]
    _band(ax, w, rows, "neff", "C2", "N_eff (whole spectrum)")
    _band(ax, w, rows, "neff_topk", "C2", "top-k eigenvalues only", ls=":")
    ax.set(xscale="log", xlabel="MLP width", ylabel="N_eff = Σ λ/(λ+z)", title="MLP: effective vs raw parameters")
    ax2 = ax.twinx()
    ax2.plot(w, row_means(rows, "params"), "--", color="grey", label="parameter count")
    ax2.set(yscale="log", ylabel="parameter count (dashed)")
    ax.legend(fontsize=7, loc="upper left")
    ax2.legend(fontsize=7, loc="upper right")
    ax = axes[2]
    f = row_means(rows, "rf_features")
    _band(ax, f, rows, "rf_dof", "C1", "tr(S), random features")
    ax.plot(f, row_means(rows, "rf_params") / CLASSES, "--", color="grey", label="parameters per class (F + 1)")
    n_train = next(c.params["n_train"] for c in cells)
    ax.axhline(n_train, color="k", ls=":", lw=1, label=f"n = {n_train} (tr(S) <= n)")
    ax.axhline(row_means(rows, "linear_dof")[0], color="C4", ls="-.", lw=1, label="tr(S), linear ridge (41 params)")
    ax.set(xscale="log", yscale="log", xlabel="random features F", ylabel="degrees of freedom",
           title="Ridge smoothers: tr(S) saturates")
    ax.legend(fontsize=7)
    _neff_vs_k(axes[3], cells, rows)
    fig.tight_layout()


def _neff_vs_k(ax, cells, rows) -> None:
    """Per width: the top-j sum Σ_{i<=j} λ_i/(λ_i+z) against j (mean over seeds; <= j by
    construction), and the whole-spectrum N_eff (dashed, ± 2 SE of the quadrature) it should reach."""
    z = next(c.params["z"] for c in _done(cells))
    for i, r in enumerate(rows):
        w = r["params"]["width"]
        eig = [c.metrics["hessian_eigenvalues"] for c in _done(cells) if c.params["width"] == w]
        k = min(len(e) for e in eig)
        partial = np.mean([np.cumsum(neff_terms(torch.tensor(e[:k]), z).numpy()) for e in eig], axis=0)
        color = f"C{i % 10}"
        ax.plot(np.arange(1, k + 1), partial, color=color, lw=1.2, label=f"w = {w}")
        full, se = r["metrics"]["neff"]["mean"], row_means([r], "neff_se")[0]
        ax.axhline(full, color=color, ls="--", lw=0.8)
        ax.axhspan(full - 2 * se, full + 2 * se, color=color, alpha=0.1)
    ax.plot([1, k], [1, k], ":", color="grey", lw=0.8, label="N_eff = k (the bound)")
    ax.set(xlabel="top-k eigenvalues summed", ylabel="N_eff", yscale="log",
           title="N_eff against k (dashed: whole spectrum)")
    ax.legend(fontsize=6, ncol=2)


EXPERIMENT = Experiment(
    name="effective-parameters",
    question="As networks grow, does the number of parameters the data actually determine (the Hessian effective "
             "dimension, or a smoother's degrees of freedom) grow with the raw parameter count, and which of the "
             "two tracks test error?",
    reference="MacKay (1992), A practical Bayesian framework for backpropagation networks, Neural Computation 4(3); "
              "Maddox, Benton & Wilson (2020), Rethinking parameter counting in deep models: effective "
              "dimensionality revisited, arXiv:2003.02139",
    summary="Hessian effective dimension N_eff and ridge tr(S) vs raw parameter count across widths",
    params=(
        Param("width", int, default=WIDTHS, quick=QUICK_WIDTHS, low=1, high=16384, log=True,
              help="MLP hidden units (a list sweeps it); the RF arm gets a matched parameter count"),
        Param("n_train", int, default=1000, quick=500, low=10, high=50_000, help="MNIST-1D training examples"),
        Param("n_test", int, default=1000, low=10, high=50_000, help="MNIST-1D test examples"),
        Param("label_noise", float, default=0.0, low=0.0, high=1.0,
              help="probability each training label is replaced by a uniform random class"),
        Param("epochs", int, default=100, quick=60, low=1, high=10_000, help="passes over the training set"),
        Param("lr", float, default=0.05, low=1e-6, high=10.0, log=True, help="SGD learning rate"),
        Param("momentum", float, default=0.9, low=0.0, high=0.999, help="SGD heavy-ball momentum"),
        Param("batch_size", int, default=100, low=1, high=50_000, help="minibatch size"),
        Param("k", int, default=40, quick=20, low=1, high=1000, help="top Hessian eigenvalues computed (Lanczos)"),
        Param("z", float, default=1.0, low=1e-8, high=1e8, log=True,
              help="N_eff regularization constant (a prior precision, in mean-loss units)"),
        Param("ridge", float, default=1e-3, low=1e-10, high=1e6, log=True,
              help="ridge λ of the random-features and linear arms"),
    ),
    run=run, run_group=run_group,
    group_by=("n_train", "n_test", "label_noise", "epochs", "lr", "momentum", "batch_size", "k", "z", "ridge",
              "width"),
    analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=2, runtime="~2-3 min",
    bounds={"train_error": (0.0, 1.0), "test_error": (0.0, 1.0), "rf_train_error": (0.0, 1.0),
            "rf_test_error": (0.0, 1.0)},
    table_by=("width",),
    table_metrics=("params", "neff", "neff_topk", "train_error", "test_error", "rf_params", "rf_dof",
                   "rf_test_error"),
    tiny=dict(width=[4, 8], n_train=50, n_test=100, epochs=3, k=5),  # petridish check (seconds)
)
