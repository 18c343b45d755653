"""Effective parameters: how many directions of parameter space does the data actually determine?

MacKay (1992) "A practical Bayesian framework for backpropagation networks"; Maddox, Benton &
Wilson (2020) "Rethinking parameter counting in deep models: effective dimensionality revisited".

One cell = one width and one seed, two models:
* MLP arm: a 40 → width → 10 ReLU MLP trained on MNIST-1D (SGD + momentum, cross-entropy);
  at the end of training, the top-k eigenvalues λ_i of the Hessian of the mean training loss
  (Lanczos on Hessian-vector products) give N_eff(z) = Σ λ_i / (λ_i + z).
* Random-features arm: ridge regression of one-hot labels on F ≈ params / 10 fixed ReLU
  features (so both arms have about the same number of trained parameters at each width);
  its effective degrees of freedom are tr(S), S = Φ(ΦᵀΦ + λI)⁻¹Φᵀ = Σ s²/(s² + λ) (SVD of Φ).
  For a model linear in its parameters with squared loss the two notions coincide: the Hessian
  of the mean loss is I_10 ⊗ ΦᵀΦ/n, so N_eff(z = λ/n) = 10 · tr(S).
A linear ridge fit on the 40 raw inputs gives a reference: tr(S) <= 41 whatever λ.
Seeds of one width train together as one vectorized ensemble (``run_group``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats as st

from petridish.data import label_noise as add_label_noise
from petridish.data import mnist1d
from petridish.instruments import effective_dimension, ridge_dof, top_eigenvalues
from petridish.lab import Analysis, Experiment, Param, aggregate, row_means
from petridish.train import train_ensemble

WIDTHS = [4, 8, 16, 32, 64, 128, 256, 512, 1024]
QUICK_WIDTHS = [4, 16, 64, 256]
CLASSES = 10
INTERPOLATES = 0.01   # training error at or below this counts as interpolation
LANCZOS_TOL = 1e-3    # relative Ritz residual; eigenvalue errors are ~ its square


def _data(p: dict):
    ds = mnist1d(n_train=p["n_train"], n_test=p["n_test"])
    if p["label_noise"] > 0:
        ds = add_label_noise(ds, p["label_noise"], seed=0)   # one fixed corruption for all seeds
    return ds


def hessian_neff(model, x, y, *, k: int, z: float, seed: int) -> dict:
    """N_eff(z) from the top-k eigenvalues of the mean cross-entropy Hessian at ``model``."""
    p = sum(q.numel() for q in model.parameters())
    res = top_eigenvalues(model, x, y, k=min(k, p), seed=seed, tol=LANCZOS_TOL)
    lam = res.eigenvalues
    return {"neff": effective_dimension(lam, z), "hessian_top": float(lam[0]), "hessian_kth": float(lam[-1]),
            "lanczos_iterations": res.iterations, "lanczos_converged": bool(res.converged),
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


def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Cells that share every parameter (only seeds differ): MLPs trained as one ensemble."""
    p = params_list[0]
    ds = _data(p)
    res = train_ensemble("mlp", ds.x_train, ds.y_train, seeds=list(seeds), lr=p["lr"], momentum=p["momentum"],
                         batch_size=p["batch_size"], epochs=p["epochs"],
                         model_kwargs={"width": p["width"], "depth": 1, "d_out": CLASSES},
                         eval_sets={"train": (ds.x_train, ds.y_train), "test": (ds.x_test, ds.y_test)})
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
    rows = aggregate(cells, by=["width"])
    return sorted([r for r in rows if "neff" in r["metrics"]], key=lambda r: r["params"]["width"])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman ρ over the finite pairs (NaN with < 3 pairs or a constant side)."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return math.nan
    return float(st.spearmanr(a[ok], b[ok]).statistic)


def rank_correlations(rows) -> dict[str, float]:
    """Spearman ρ of per-width means with test error: MLP params and N_eff (all widths, and the
    widths that interpolate), random-features params and tr(S)."""
    te, tr = row_means(rows, "test_error"), row_means(rows, "train_error")
    fit = tr <= INTERPOLATES
    rf_te = row_means(rows, "rf_test_error")
    return {
        "params": spearman(row_means(rows, "params"), te),
        "neff": spearman(row_means(rows, "neff"), te),
        "params_interpolating": spearman(row_means(rows, "params")[fit], te[fit]),
        "neff_interpolating": spearman(row_means(rows, "neff")[fit], te[fit]),
        "rf_params": spearman(row_means(rows, "rf_params"), rf_te),
        "rf_dof": spearman(row_means(rows, "rf_dof"), rf_te),
    }


def _mlp_findings(rows, values) -> list[str]:
    w = [r["params"]["width"] for r in rows]
    ne, npar, te, tr = (row_means(rows, n) for n in ("neff", "params", "test_error", "train_error"))
    i = int(np.nanargmax(ne))
    fit = [j for j, e in enumerate(tr) if e <= INTERPOLATES]
    values.update(neff=ne.tolist(), params=npar.tolist(), test_error=te.tolist(), train_error=tr.tolist(),
                  neff_peak_width=w[i], neff_peak=float(ne[i]), neff_at_largest=float(ne[-1]),
                  neff_fraction_at_largest=float(ne[-1] / npar[-1]),
                  interpolation_width=w[fit[0]] if fit else None)
    out = [f"MLP: N_eff peaks at {ne[i]:.1f} at width {w[i]} and is {ne[-1]:.1f} at width {w[-1]} "
           f"({100 * ne[-1] / ne[i]:.0f}% of its peak), while the parameter count grows "
           f"{npar[-1] / npar[i]:.0f}-fold to {npar[-1]:.0f}: at the largest width N_eff is "
           f"{100 * ne[-1] / npar[-1]:.2f}% of the parameter count."]
    if fit:
        last = f"; {100 * te[-1]:.1f}% at width {w[-1]}." if fit[0] < len(w) - 1 else "."
        out.append(f"Training error reaches {100 * tr[fit[0]]:.1f}% at width {w[fit[0]]}, where test error is "
                   f"{100 * te[fit[0]]:.1f}%" + last)
    else:
        out.append(f"No width reached training error <= {100 * INTERPOLATES:.0f}% (lowest {100 * np.nanmin(tr):.1f}%).")
    return out


def _rf_findings(rows, values, n_train: int) -> list[str]:
    f, dof, npar, te = (row_means(rows, n) for n in ("rf_features", "rf_dof", "rf_params", "rf_test_error"))
    j = int(np.nanargmax(te))
    lin = row_means(rows, "linear_dof")
    values.update(rf_features=f.tolist(), rf_dof=dof.tolist(), rf_params=npar.tolist(), rf_test_error=te.tolist(),
                  rf_dof_at_largest=float(dof[-1]), linear_dof=float(lin[0]))
    return [f"Random-features ridge: tr(S) goes from {dof[0]:.1f} to {dof[-1]:.1f} (of n = {n_train}) while the "
            f"parameters grow {npar[-1] / npar[0]:.0f}-fold to {npar[-1]:.0f}; its test error peaks at "
            f"{100 * te[j]:.1f}% with {f[j]:.0f} features. Linear ridge on the 40 raw inputs: tr(S) = {lin[0]:.1f} "
            f"of {row_means(rows, 'linear_params')[0] / CLASSES:.0f} parameters per class."]


def analyze(cells) -> Analysis:
    rows = _rows(cells)
    if not rows:
        return Analysis(["No finished cells."], {})
    values: dict = {"widths": [r["params"]["width"] for r in rows]}
    n_train = next(c.params["n_train"] for c in cells)
    findings = _mlp_findings(rows, values) + _rf_findings(rows, values, n_train)
    corr = rank_correlations(rows)
    values["correlations"] = corr
    r = {k: "n/a" if math.isnan(v) else f"{v:+.2f}" for k, v in corr.items()}
    findings.append(
        f"Spearman ρ with test error across {len(rows)} widths: MLP parameter count {r['params']}, "
        f"N_eff {r['neff']}; over the interpolating widths only (needs >= 3): parameter count "
        f"{r['params_interpolating']}, N_eff {r['neff_interpolating']}. Random features: "
        f"parameter count {r['rf_params']}, tr(S) {r['rf_dof']}. A capacity measure that explained "
        f"generalization would have ρ near +1.")
    kth = row_means(rows, "hessian_kth")
    z = next(c.params["z"] for c in cells)
    findings.append(f"Truncation: the k-th Hessian eigenvalue is at most {np.nanmax(kth) / z:.2f}·z, so each "
                    f"eigenvalue beyond the top k adds less than {np.nanmax(kth) / (np.nanmax(kth) + z):.2f} to N_eff.")
    return Analysis(findings, values)


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
    _band(ax, w, rows, "neff", "C2", "N_eff (Hessian, top k)")
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
    _corr_bars(axes[3], rank_correlations(rows))
    fig.tight_layout()


def _corr_bars(ax, corr) -> None:
    labels = {"params": "MLP params", "neff": "MLP N_eff", "params_interpolating": "MLP params\n(interp.)",
              "neff_interpolating": "MLP N_eff\n(interp.)", "rf_params": "RF params", "rf_dof": "RF tr(S)"}
    vals = [corr[k] for k in labels]
    colors = ["grey" if "params" in k else "C2" for k in labels]
    ax.bar(range(len(vals)), np.nan_to_num(vals), color=colors)
    for i, v in enumerate(vals):
        ax.text(i, 0.05 if math.isnan(v) or v < 0 else v + 0.03, "n/a" if math.isnan(v) else f"{v:+.2f}",
                ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(vals)), list(labels.values()), fontsize=7)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(ylim=(-1.05, 1.05), ylabel="Spearman ρ with test error", title="Which count tracks test error?")


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
    analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=1, runtime="~45 s",
    table_by=("width",),
    table_metrics=("params", "neff", "train_error", "test_error", "rf_params", "rf_dof", "rf_test_error"),
)
