"""NNGP and NTK kernel regression versus finite networks trained with SGD.

Lee et al. 2018 ("Deep neural networks as Gaussian processes", ICLR) found that the exact GP
posterior with the NNGP kernel matches or beats trained finite networks, and that finite
networks get closer to it as they get wider. One cell is one model on one dataset and seed:

* 'nngp' / 'ntk': for each depth 1..max_depth, (w_std, b_std, diag_reg) are chosen on a
  20% validation split of the training set (grid below), the kernel is refitted on the whole
  training set, and the test accuracy of the argmax of the posterior mean (NNGP) or of
  t = infinity gradient-flow prediction (NTK = kernel regression with Theta) on centered
  one-hot targets is recorded; the reported ``accuracy`` is that of the validation-best depth.
* 'mlp-W': a ReLU MLP of width W (``mlp_depth`` hidden layers, PyTorch default init) trained
  with minibatch SGD + momentum on cross-entropy (``petridish.train``), fixed hyperparameters.

Data: MNIST-1D (fixed test set, training subset by seed) and scikit-learn digits (split by
seed), features standardized with training statistics.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from petridish.errors import InvalidParameterError
from petridish.kernels import mlp_kernels, nngp_predict, ntk_predict
from petridish.lab import Analysis, Experiment, Param, aggregate
from petridish.threads import pin_threads

MODELS = ("nngp", "ntk", "mlp-16", "mlp-64", "mlp-256", "mlp-512", "mlp-1024", "mlp-2048")
W_STDS = (1.0, 1.5, 2.0)
B_STDS = (0.0, 0.3, 1.0)
REGS = (1e-4, 1e-2, 1e-1)           # relative to the mean diagonal (neural-tangents' convention)


def _data(p: dict, seed: int):
    """Standardized float64 (x_train, y_train, x_test, y_test); labels int64 0..9."""
    from petridish.data import digits, mnist1d
    if p["dataset"] == "mnist1d":
        ds = mnist1d(n_train=4000, n_test=1000)
        keep = torch.randperm(ds.n_train, generator=torch.Generator().manual_seed(seed))[: p["n_train"]]
        xtr, ytr, xte, yte = ds.x_train[keep], ds.y_train[keep], ds.x_test[: p["n_test"]], ds.y_test[: p["n_test"]]
    else:
        ds = digits(seed=seed)
        n = min(p["n_train"], ds.n_train)
        xtr, ytr, xte, yte = ds.x_train[:n], ds.y_train[:n], ds.x_test[: p["n_test"]], ds.y_test[: p["n_test"]]
    mu, sd = xtr.mean(0), xtr.std(0).clamp(min=1e-3)
    return ((xtr - mu) / sd).double(), ytr, ((xte - mu) / sd).double(), yte


def _targets(y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, 10).double() - 0.1     # centered one-hot (n, 10)


def _accuracy(scores: torch.Tensor, y: torch.Tensor) -> float:
    return float((scores.argmax(1) == y).double().mean())


def _fit(kind: str, k: torch.Tensor, tr: slice, te: slice, t: torch.Tensor, reg: float) -> torch.Tensor:
    """Kernel-regression scores on the `te` rows from the `tr` rows of one joint kernel."""
    if kind == "nngp":
        return nngp_predict(k[tr, tr], k[te, tr], t, diag_reg=reg).mean
    return ntk_predict(k[tr, tr], k[te, tr], t, t=None, diag_reg=reg).mean


def _kernel_cell(p: dict, seed: int) -> dict:
    kind = p["model"]
    xtr, ytr, xte, yte = _data(p, seed)
    n = xtr.shape[0]
    n_fit = int(round(0.8 * n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    xtr, ytr = xtr[perm], ytr[perm]                            # fit = first 80%, validation = rest
    x_all = torch.cat([xtr, xte])
    t_fit, t_all = _targets(ytr[:n_fit]), _targets(ytr)
    out: dict = {}
    best = (-1.0, None)
    for depth in range(1, p["max_depth"] + 1):
        choice = (-1.0, None)
        for w, b in itertools.product(W_STDS, B_STDS):
            ks = mlp_kernels(x_all, depth=depth, w_std=w, b_std=b, get=(kind,))
            k = ks.nngp if kind == "nngp" else ks.ntk
            for reg in REGS:
                val = _accuracy(_fit(kind, k, slice(0, n_fit), slice(n_fit, n), t_fit, reg), ytr[n_fit:])
                if val > choice[0]:
                    choice = (val, (w, b, reg, k))
        w, b, reg, k = choice[1]
        acc = _accuracy(_fit(kind, k, slice(0, n), slice(n, None), t_all, reg), yte)
        out[f"acc_depth{depth}"] = acc
        out[f"val_depth{depth}"] = choice[0]
        if choice[0] > best[0]:
            best = (choice[0], dict(accuracy=acc, depth=depth, w_std=w, b_std=b, diag_reg=reg))
    out.update(best[1], val_accuracy=best[0])
    return out


def _mlp_cell(p: dict, seed: int) -> dict:
    from petridish.models import MLP
    from petridish.train import train
    width = int(p["model"].split("-")[1])
    xtr, ytr, xte, yte = _data(p, seed)
    torch.manual_seed(seed)
    model = MLP(xtr.shape[1], width, p["mlp_depth"], 10)
    res = train(model, xtr.float(), ytr, optimizer="sgd", lr=p["lr"], momentum=0.9, batch_size=p["batch_size"],
                epochs=p["epochs"], loss="ce", seed=seed)
    if res.diverged:
        return {"diverged": True}
    with torch.no_grad():
        acc = _accuracy(model(xte.float()), yte)
        train_acc = _accuracy(model(xtr.float()), ytr)
    return {"accuracy": acc, "train_accuracy": train_acc, "width": width, "depth": p["mlp_depth"],
            "final_loss": float(res.loss_history[-1])}


def run(p: dict, seed: int) -> dict:
    if p["model"] not in MODELS:
        raise InvalidParameterError(f"The 'model' parameter of nngp-vs-sgd must be one of "
                                    f"{', '.join(map(repr, MODELS))}. Got {p['model']!r}.")
    with pin_threads(1):                           # small ops: OpenMP teams cost more than they give
        return _kernel_cell(p, seed) if p["model"] in ("nngp", "ntk") else _mlp_cell(p, seed)


def _rows(cells):
    return aggregate(cells, by=["dataset", "model"])


def _acc(rows, dataset: str, model: str):
    for r in rows:
        if r["params"] == {"dataset": dataset, "model": model} and "accuracy" in r["metrics"]:
            m = r["metrics"]["accuracy"]
            return m["mean"], m["lo"], m["hi"]
    return None


def _width(model: str) -> int:
    return int(model.split("-")[1])


def analyze(cells) -> Analysis:
    rows = _rows(cells)
    findings, values = [], {}
    for dataset in sorted({r["params"]["dataset"] for r in rows}):
        models = [r["params"]["model"] for r in rows if r["params"]["dataset"] == dataset]
        accs = {m: _acc(rows, dataset, m) for m in models if _acc(rows, dataset, m) is not None}
        for m, (mean, lo, hi) in accs.items():
            values[f"acc_{dataset}_{m}"] = mean
            values[f"acc_{dataset}_{m}_ci"] = [lo, hi]
        mlps = sorted((m for m in accs if m.startswith("mlp-")), key=_width)
        kernels = [m for m in ("nngp", "ntk") if m in accs]
        parts = [f"{m} {accs[m][0]:.3f} [{accs[m][1]:.3f}, {accs[m][2]:.3f}]" for m in kernels + mlps]
        findings.append(f"{dataset}: test accuracy (95% CI over seeds): " + "; ".join(parts) + ".")
        if kernels and mlps:
            best_mlp = max(mlps, key=lambda m: accs[m][0])
            for k in kernels:
                gap = accs[k][0] - accs[best_mlp][0]
                values[f"gap_{dataset}_{k}_vs_best_mlp"] = gap
            top = max(kernels, key=lambda m: accs[m][0])
            gap = values[f"gap_{dataset}_{top}_vs_best_mlp"]
            findings.append(
                f"{dataset}: the best kernel ({top}, {accs[top][0]:.3f}) is {abs(gap):.3f} "
                f"{'above' if gap >= 0 else 'below'} the best finite network ({best_mlp}, {accs[best_mlp][0]:.3f})"
                f" — {'matching or beating it, as Lee et al. 2018 found' if gap > -0.02 else 'not matching it here'}.")
        if len(mlps) >= 2:
            trend = accs[mlps[-1]][0] - accs[mlps[0]][0]
            values[f"mlp_width_trend_{dataset}"] = trend
            findings.append(f"{dataset}: finite networks go from {accs[mlps[0]][0]:.3f} at width "
                            f"{_width(mlps[0])} to {accs[mlps[-1]][0]:.3f} at width {_width(mlps[-1])} "
                            f"({'improving' if trend > 0 else 'not improving'} with width).")
        for k in kernels:
            depths = sorted({int(n[9:]) for c in cells for n in c.metrics if n.startswith("acc_depth")
                             and c.params.get("model") == k and c.params.get("dataset") == dataset})
            per = aggregate([c for c in cells if c.params.get("model") == k and c.params.get("dataset") == dataset],
                            by=["model"], metrics=[f"acc_depth{d}" for d in depths])
            if per and depths:
                curve = {d: per[0]["metrics"][f"acc_depth{d}"]["mean"] for d in depths
                         if f"acc_depth{d}" in per[0]["metrics"]}
                values[f"acc_by_depth_{dataset}_{k}"] = curve
                findings.append(f"{dataset} {k}: test accuracy by depth " +
                                ", ".join(f"{d}: {a:.3f}" for d, a in curve.items()) + ".")
    return Analysis(findings=findings, values=values)


def plot(cells, fig) -> None:
    rows = _rows(cells)
    datasets = sorted({r["params"]["dataset"] for r in rows})
    axes = np.atleast_1d(fig.subplots(1, max(1, len(datasets))))
    for ax, dataset in zip(axes, datasets):
        models = [m for m in MODELS if _acc(rows, dataset, m) is not None]
        stats = [_acc(rows, dataset, m) for m in models]
        mean = np.array([s[0] for s in stats])
        err = np.array([[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]])
        colors = ["tab:orange" if m in ("nngp", "ntk") else "tab:blue" for m in models]
        ax.bar(range(len(models)), mean, yerr=err, capsize=4, color=colors)
        ax.set_xticks(range(len(models)), models, rotation=30)
        ax.axhline(0.1, color="gray", ls=":", label="chance")
        ax.set(ylabel="test accuracy (95% CI)", title=f"{dataset}: kernels (orange) vs SGD nets (blue)",
               ylim=(0, 1))
        ax.legend(fontsize=7)


EXPERIMENT = Experiment(
    name="nngp-vs-sgd",
    question="Do infinitely wide networks (NNGP / NTK kernel regression) match finite networks trained with SGD?",
    reference="Lee, Bahri, Novak, Schoenholz, Pennington & Sohl-Dickstein 2018 (ICLR), 'Deep neural networks "
              "as Gaussian processes'; Jacot et al. 2018; Arora et al. 2019",
    summary="NNGP/NTK regression vs SGD-trained MLPs of growing width on MNIST-1D and digits",
    params=(
        Param("dataset", str, default=["mnist1d", "digits"], choices=("mnist1d", "digits"), help="dataset"),
        Param("model", str, default=["nngp", "ntk", "mlp-64", "mlp-256", "mlp-1024"],
              quick=["nngp", "ntk", "mlp-64", "mlp-512"], choices=MODELS,
              help="kernel ('nngp', 'ntk') or finite MLP 'mlp-<width>'"),
        Param("n_train", int, default=1000, quick=400, low=20, help="training points (digits: at most 1348)"),
        Param("n_test", int, default=500, quick=300, low=10, help="test points"),
        Param("max_depth", int, default=5, quick=3, low=1, high=10, help="kernel depths 1..max_depth"),
        Param("mlp_depth", int, default=2, low=1, help="hidden layers of the finite MLPs"),
        Param("epochs", int, default=60, quick=30, low=1, help="SGD epochs"),
        Param("batch_size", int, default=50, low=1, help="SGD minibatch"),
        Param("lr", float, default=0.05, low=1e-6, help="SGD learning rate (momentum 0.9)"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=1, runtime="~3 min",
    table_by=("dataset", "model"),
    table_metrics=("accuracy", "depth", "w_std", "b_std", "diag_reg", "val_accuracy", "train_accuracy"),
)
