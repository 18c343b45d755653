"""NNGP and NTK kernel regression versus finite networks, with the same tuning budget on both sides.

Lee et al. 2018 ("Deep neural networks as Gaussian processes", ICLR) found that the exact GP
posterior with the NNGP kernel matches or beats trained finite networks; Lee et al. 2019 that
wide NTK-parameterized networks trained on MSE become NTK regression. One cell is one model on
one dataset and seed. Every model is fitted on the same 80% of the training set, chooses its
hyperparameters on the same 20% validation split (``sub_seed(seed, "data")``), and reports the
test accuracy of its validation-best configuration. Every model gets the same budget: for each
depth 1..max_depth, 8 configurations (2 × 2 × 2):

* 'nngp' / 'ntk': (σ_w, σ_b) ∈ W_STDS × B_STDS and diag_reg ∈ REGS; the posterior mean (NNGP) or
  the t = ∞ gradient-flow prediction (NTK) on centered one-hot targets.
* 'ntknet-W': NTK-parameterized ReLU MLPs of width W (``petridish.kernels.NTKMLP``) at the
  kernel's (σ_w, σ_b, depth), trained with SGD on MSE (½·mean‖f − y‖², the NTK convention), step
  n/λ_max(Θ) from the analytic NTK and heavy-ball momentum 0.9 (stable below 2(1 + 0.9)·n/λ_max; in
  the linear regime it converges to the same solution as gradient flow, ~10× sooner along the
  small-eigenvalue modes); the third axis is the training time (half of the epochs or all of
  them), the counterpart of the kernel's ridge.
* 'mlp-W': ReLU MLPs of width W (PyTorch's default initialization), SGD with momentum 0.9 on
  cross-entropy; lr ∈ LRS × weight decay ∈ WDS × the same two training times.

The kernel grid was 27 settings per depth over 5 depths; it shrank to 8 over 2 so that the
networks could be tuned as much (equal tuning, smaller grid, rather than a tuned side and an
untuned one). Claims: NTK regression matches the widest NTK network (a ``within`` claim on
their seed-paired accuracy gap, margin ``MARGIN``), the best kernel beats the best SGD network,
and SGD networks improve with width (seed-paired differences; Holm over the family).

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
from petridish.lab import Analysis, Experiment, Param, aggregate, family, from_difference, paired_difference
from petridish.lab.paired import pair_by_seed
from petridish.seeding import sub_seed
from petridish.threads import pin_threads

WIDTHS = (16, 64, 128, 256, 512, 1024, 2048)
KERNELS = ("nngp", "ntk")
MODELS = KERNELS + tuple(f"mlp-{w}" for w in WIDTHS) + tuple(f"ntknet-{w}" for w in WIDTHS)
W_STDS = (1.0, 1.5)
B_STDS = (0.0, 0.3)
REGS = (1e-3, 1e-1)                 # relative to the mean diagonal (neural-tangents' convention)
LRS = (0.02, 0.1)
WDS = (0.0, 1e-3)
MARGIN = 0.03                       # accuracy gap counted as "matching" (3 points)
VAL_FRACTION = 0.2


def _data(p: dict, seed: int):
    """Standardized float64 (x_train, y_train, x_test, y_test); labels int64 0..9."""
    from petridish.data import digits, mnist1d
    if p["dataset"] == "mnist1d":
        ds = mnist1d(n_train=4000, n_test=1000)
        keep = torch.randperm(ds.n_train, generator=torch.Generator().manual_seed(sub_seed(seed, "data")))
        keep = keep[: p["n_train"]]
        xtr, ytr, xte, yte = ds.x_train[keep], ds.y_train[keep], ds.x_test[: p["n_test"]], ds.y_test[: p["n_test"]]
    else:
        ds = digits(seed=seed)
        n = min(p["n_train"], ds.n_train)
        xtr, ytr, xte, yte = ds.x_train[:n], ds.y_train[:n], ds.x_test[: p["n_test"]], ds.y_test[: p["n_test"]]
    mu, sd = xtr.mean(0), xtr.std(0).clamp(min=1e-3)
    return ((xtr - mu) / sd).double(), ytr, ((xte - mu) / sd).double(), yte


def split(p: dict, seed: int):
    """The split every model shares: (x_fit, y_fit), (x_val, y_val), (x_test, y_test)."""
    xtr, ytr, xte, yte = _data(p, seed)
    n = xtr.shape[0]
    n_fit = int(round((1 - VAL_FRACTION) * n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(sub_seed(seed, "validation")))
    f, v = perm[:n_fit], perm[n_fit:]
    return (xtr[f], ytr[f]), (xtr[v], ytr[v]), (xte, yte)


def _targets(y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, 10).double() - 0.1     # centered one-hot (n, 10)


def _accuracy(scores: torch.Tensor, y: torch.Tensor) -> float:
    return float((scores.argmax(1) == y).double().mean())


def _kernel_cell(p: dict, seed: int) -> dict:
    """Kernel regression: every (depth, σ_w, σ_b, reg) fitted on the fit split, chosen on validation."""
    kind = p["model"]
    (xf, yf), (xv, yv), (xt, yt) = split(p, seed)
    n_f, n_v = xf.shape[0], xv.shape[0]
    x_all = torch.cat([xf, xv, xt])
    t_fit = _targets(yf)
    fit, val, test = slice(0, n_f), slice(n_f, n_f + n_v), slice(n_f + n_v, None)
    predict = (lambda k, rows, reg: nngp_predict(k[fit, fit], k[rows, fit], t_fit, diag_reg=reg).mean) \
        if kind == "nngp" else (lambda k, rows, reg: ntk_predict(k[fit, fit], k[rows, fit], t_fit, t=None,
                                                                  diag_reg=reg).mean)
    out: dict = {}
    best = (-1.0, None)
    for depth in range(1, p["max_depth"] + 1):
        choice = (-1.0, None)
        for w, b in itertools.product(W_STDS, B_STDS):
            ks = mlp_kernels(x_all, depth=depth, w_std=w, b_std=b, get=(kind,))
            k = ks.nngp if kind == "nngp" else ks.ntk
            for reg in REGS:
                v = _accuracy(predict(k, val, reg), yv)
                if v > choice[0]:
                    choice = (v, dict(depth=depth, w_std=w, b_std=b, diag_reg=reg,
                                      accuracy=_accuracy(predict(k, test, reg), yt)))
        out[f"acc_depth{depth}"] = choice[1]["accuracy"]
        out[f"val_depth{depth}"] = choice[0]
        if choice[0] > best[0]:
            best = choice
    out.update(best[1], val_accuracy=best[0], configs=len(W_STDS) * len(B_STDS) * len(REGS) * p["max_depth"])
    return out


def _checkpoints(res, epochs: int) -> list[int]:
    """Eval columns at the two training times: the first checkpoint (half the epochs) and the end."""
    return [0, len(res.eval_steps) - 1] if epochs >= 2 else [0]


def _choose(candidates: list[tuple[float, dict]], depth: int, out: dict, best: tuple) -> tuple:
    """Record depth's validation-best candidate and return the overall best so far."""
    choice = max(candidates, key=lambda c: c[0])
    out[f"acc_depth{depth}"] = choice[1]["accuracy"]
    out[f"val_depth{depth}"] = choice[0]
    return choice if choice[0] > best[0] else best


def _mlp_cell(p: dict, seed: int) -> dict:
    """SGD-trained standard MLPs: per depth one ensemble over (lr, weight decay), two training times."""
    from petridish.train import train_ensemble
    width = int(p["model"].split("-")[1])
    (xf, yf), val, test = split(p, seed)
    grid = list(itertools.product(LRS, WDS))
    out: dict = {}
    best = (-1.0, None)
    for depth in range(1, p["max_depth"] + 1):
        spe = math.ceil(xf.shape[0] / p["batch_size"])
        res = train_ensemble("mlp", xf.float(), yf, seeds=[sub_seed(seed, f"init:{depth}")] * len(grid),
                             data_seeds=[sub_seed(seed, f"batches:{depth}")] * len(grid),
                             lr=[g[0] for g in grid], weight_decay=[g[1] for g in grid], momentum=0.9,
                             batch_size=p["batch_size"], epochs=p["epochs"], loss="cross_entropy",
                             model_kwargs={"width": width, "depth": depth, "d_out": 10},
                             eval_sets={"val": (val[0].float(), val[1]), "test": (test[0].float(), test[1])},
                             eval_every=spe * max(1, p["epochs"] // 2))
        acc_v, acc_t = res.eval_history["val"]["accuracy"], res.eval_history["test"]["accuracy"]
        cands = []
        for r, (lr, wd) in enumerate(grid):
            for j, col in enumerate(_checkpoints(res, p["epochs"])):
                a = float(acc_v[r, col])
                if math.isfinite(a) and not bool(res.diverged[r]):
                    cands.append((a, dict(depth=depth, lr=lr, weight_decay=wd, epochs_trained=res.eval_steps[col] // spe,
                                          accuracy=float(acc_t[r, col]))))
        if cands:
            best = _choose(cands, depth, out, best)
    if best[1] is None:
        return {"diverged": True}
    out.update(best[1], val_accuracy=best[0], width=width, configs=len(grid) * 2 * p["max_depth"])
    return out


def _ntknet_cell(p: dict, seed: int) -> dict:
    """NTK-parameterized MLPs on MSE at the kernel's (σ_w, σ_b, depth), two training times."""
    from petridish.kernels import NTKMLP
    from petridish.train import train
    width = int(p["model"].split("-")[1])
    (xf, yf), val, test = split(p, seed)
    n = xf.shape[0]
    out: dict = {}
    best = (-1.0, None)
    for depth in range(1, p["max_depth"] + 1):
        cands = []
        for w, b in itertools.product(W_STDS, B_STDS):
            theta = mlp_kernels(xf, depth=depth, w_std=w, b_std=b, get=("ntk",)).ntk
            lr = n / float(torch.linalg.eigvalsh(theta)[-1])     # stable below 2(1 + momentum)·n/λ_max
            model = NTKMLP(xf.shape[1], width, depth, 10, w_std=w, b_std=b, seed=sub_seed(seed, f"init:{depth}:{w}:{b}"))
            spe = math.ceil(n / p["batch_size"])
            res = train(model, xf.float(), yf, optimizer="sgd", lr=lr, momentum=0.9, batch_size=p["batch_size"],
                        epochs=p["epochs"],
                        loss="mse", seed=sub_seed(seed, f"batches:{depth}"),
                        eval_sets={"val": (val[0].float(), val[1]), "test": (test[0].float(), test[1])},
                        eval_every=spe * max(1, p["epochs"] // 2))
            if res.diverged:
                continue
            for col in _checkpoints(res, p["epochs"]):
                cands.append((float(res.eval_history["val"]["accuracy"][col]),
                              dict(depth=depth, w_std=w, b_std=b, lr=lr, epochs_trained=res.eval_steps[col] // spe,
                                   accuracy=float(res.eval_history["test"]["accuracy"][col]))))
        if cands:
            best = _choose(cands, depth, out, best)
    if best[1] is None:
        return {"diverged": True}
    out.update(best[1], val_accuracy=best[0], width=width, configs=len(W_STDS) * len(B_STDS) * 2 * p["max_depth"])
    return out


def run(p: dict, seed: int) -> dict:
    if p["model"] not in MODELS:
        raise InvalidParameterError(f"The 'model' parameter of nngp-vs-sgd must be one of "
                                    f"{', '.join(map(repr, MODELS))}. Got {p['model']!r}.")
    with pin_threads(1):                           # small ops: OpenMP teams cost more than they give
        if p["model"] in KERNELS:
            return _kernel_cell(p, seed)
        return _mlp_cell(p, seed) if p["model"].startswith("mlp-") else _ntknet_cell(p, seed)


def _rows(cells):
    return aggregate(cells, by=["dataset", "model"], bounds={"accuracy": (0, 1)})


def _acc(rows, dataset: str, model: str):
    for r in rows:
        if r["params"] == {"dataset": dataset, "model": model} and "accuracy" in r["metrics"]:
            m = r["metrics"]["accuracy"]
            return m["mean"], m["lo"], m["hi"]
    return None


def _width(model: str) -> int:
    return int(model.split("-")[1])


def _per_seed(cells, dataset: str, model: str) -> dict[int, float]:
    return {c.seed: c.metrics["accuracy"] for c in cells if c.status == "done" and "accuracy" in c.metrics
            and c.params.get("dataset") == dataset and c.params.get("model") == model}


def _paired(cells, dataset: str, a: str, b: str):
    return paired_difference(*pair_by_seed(_per_seed(cells, dataset, a), _per_seed(cells, dataset, b)))


def _claims(cells, dataset: str, accs: dict) -> list:
    from petridish.lab import Claim, not_measured
    mlps = sorted((m for m in accs if m.startswith("mlp-")), key=_width)
    nets = sorted((m for m in accs if m.startswith("ntknet-")), key=_width)
    out = []
    if "ntk" in accs and nets:
        out.append(from_difference(
            f"{dataset}: NTK regression matches the widest NTK-parameterized network trained on MSE ({nets[-1]})",
            _paired(cells, dataset, "ntk", nets[-1]), direction="within", margin=MARGIN,
            effect=f"accuracy(ntk) − accuracy({nets[-1]})"))
    if "nngp" in accs and mlps:
        best = max(mlps, key=lambda m: accs[m][0])
        claim = f"{dataset}: NNGP regression is at least as accurate as the best SGD network ({best}), within {MARGIN:g}"
        d = _paired(cells, dataset, "nngp", best)
        effect = f"accuracy(nngp) − accuracy({best})"
        out.append(not_measured(claim, "fewer than 2 seeds with both values", effect=effect) if d is None else
                   Claim(claim, d.estimate, d.ci, test=d.method + "; non-inferiority", null=-MARGIN,
                         direction="greater", effect=effect))
    if len(mlps) >= 2:
        out.append(from_difference(
            f"{dataset}: SGD networks become more accurate with width ({mlps[0]} → {mlps[-1]})",
            _paired(cells, dataset, mlps[-1], mlps[0]), direction="greater",
            effect=f"accuracy({mlps[-1]}) − accuracy({mlps[0]})"))
    return out


def analyze(cells) -> Analysis:
    rows = _rows(cells)
    findings, values, claims = [], {}, []
    for dataset in sorted({r["params"]["dataset"] for r in rows}):
        models = [m for m in MODELS if _acc(rows, dataset, m) is not None]
        accs = {m: _acc(rows, dataset, m) for m in models}
        for m, (mean, lo, hi) in accs.items():
            values[f"acc_{dataset}_{m}"] = mean
            values[f"acc_{dataset}_{m}_ci"] = [lo, hi]
        findings.append(f"{dataset}: test accuracy of each model's validation-best configuration (95% CI over "
                        "seeds): " + "; ".join(f"{m} {a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}]" for m, a in accs.items()) + ".")
        for k in KERNELS:
            depths = sorted({int(n[9:]) for c in cells for n in c.metrics if n.startswith("acc_depth")
                             and c.params.get("model") == k and c.params.get("dataset") == dataset})
            per = aggregate([c for c in cells if c.params.get("model") == k and c.params.get("dataset") == dataset],
                            by=["model"], metrics=[f"acc_depth{d}" for d in depths])
            if per and depths:
                values[f"acc_by_depth_{dataset}_{k}"] = {d: per[0]["metrics"][f"acc_depth{d}"]["mean"] for d in depths
                                                         if f"acc_depth{d}" in per[0]["metrics"]}
        claims += _claims(cells, dataset, accs)
    budget = sorted({c.metrics["configs"] for c in cells if c.status == "done" and "configs" in c.metrics})
    if budget:
        findings.append(f"Every model chose among {', '.join(map(str, budget))} configurations on the same 20% "
                        "validation split of its training set (kernels: depth × σ_w × σ_b × ridge; NTK networks: "
                        "depth × σ_w × σ_b × training time; SGD networks: depth × lr × weight decay × training time).")
    return Analysis(findings=findings, values=values, claims=family(claims, "holm"))


COLORS = {"nngp": "tab:orange", "ntk": "tab:orange", "mlp": "tab:blue", "ntknet": "tab:green"}


def plot(cells, fig) -> None:
    rows = _rows(cells)
    datasets = sorted({r["params"]["dataset"] for r in rows})
    axes = np.atleast_1d(fig.subplots(1, max(1, len(datasets))))
    for ax, dataset in zip(axes, datasets):
        models = [m for m in MODELS if _acc(rows, dataset, m) is not None]
        stats = [_acc(rows, dataset, m) for m in models]
        mean = np.array([s[0] for s in stats])
        err = np.array([[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]])
        ax.bar(range(len(models)), mean, yerr=err, capsize=4, color=[COLORS[m.split("-")[0]] for m in models])
        ax.set_xticks(range(len(models)), models, rotation=30)
        ax.axhline(0.1, color="gray", ls=":", label="chance")
        ax.set(ylabel="test accuracy (95% CI)", ylim=(0, 1))
        ax.set_title(f"{dataset}\nkernels (orange), NTK nets on MSE (green), SGD nets (blue)", fontsize=9)
        ax.legend(fontsize=7)


EXPERIMENT = Experiment(
    name="nngp-vs-sgd",
    question="Do infinitely wide networks (NNGP / NTK kernel regression) match finite networks, each side "
             "tuned with the same budget on the same validation split?",
    reference="Lee, Bahri, Novak, Schoenholz, Pennington & Sohl-Dickstein 2018 (ICLR), 'Deep neural networks "
              "as Gaussian processes'; Jacot et al. 2018; Lee et al. 2019; Arora et al. 2019",
    summary="NNGP/NTK regression vs NTK-parameterized MSE nets and SGD MLPs, equal tuning, MNIST-1D and digits",
    params=(
        Param("dataset", str, default=["mnist1d", "digits"], choices=("mnist1d", "digits"), help="dataset"),
        Param("model", str, default=["nngp", "ntk", "mlp-64", "mlp-256", "mlp-1024", "ntknet-128", "ntknet-512"],
              quick=["nngp", "ntk", "mlp-64", "mlp-512", "ntknet-512"], choices=MODELS,
              help="kernel ('nngp', 'ntk'), SGD MLP 'mlp-<width>' or NTK-parameterized MSE net 'ntknet-<width>'"),
        Param("n_train", int, default=1000, quick=400, low=20, help="training points, 20% of them for validation "
              "(digits: at most 1348)"),
        Param("n_test", int, default=500, quick=300, low=10, help="test points"),
        Param("max_depth", int, default=2, low=1, high=10, help="every model tunes depth 1..max_depth"),
        Param("epochs", int, default=40, quick=30, low=1, help="SGD epochs (networks also try half of them)"),
        Param("batch_size", int, default=50, low=1, help="SGD minibatch"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=3, runtime="~4.5 min",
    table_by=("dataset", "model"),
    table_metrics=("accuracy", "val_accuracy", "depth", "w_std", "b_std", "diag_reg", "lr", "weight_decay",
                   "epochs_trained"),
    bounds={"accuracy": (0, 1), "val_accuracy": (0, 1)},
    # petridish check (seconds):
    tiny=dict(dataset="digits", model=["nngp", "ntk", "mlp-16", "ntknet-16"], n_train=40, n_test=20, epochs=2),
)
