"""Loss landscapes of small networks on MNIST-1D: filter-normalized surfaces, interpolations, the
mode-connectivity barrier, and the top Hessian eigenvalue along training — with and without skips.

One cell = one architecture (a small and a wide residual MLP, a residual 1D CNN), skip connections on
or off (``skip=False`` is the same network, same initialization, minus the identity paths;
``models.residual``) and one seed. Two solutions are trained from two initializations (θ_A from the
seed's init, θ_B from another) by minibatch SGD with momentum on ``n_train`` examples. On a fixed
subset of ``n_eval`` training examples (the "landscape set"):

* a 2D surface θ_A + a·d₁ + b·d₂ on a resolution² grid, a, b ∈ [−span, span], along seeded
  filter-normalized Gaussian directions (Li, Xu, Taylor, Studer & Goldstein 2018), as one vmapped batch;
* the loss on the line init → θ_A (Goodfellow, Vinyals & Saxe 2015) and on the line θ_A → θ_B;
* on the whole training set, a quadratic Bézier curve θ_A → θ_B whose bend is trained to minimize
  the mean loss along it (Garipov, Izmailov, Podoprikhin, Vetrov & Wilson 2018): barrier heights of
  the line and of the curve (the largest rise of the training loss above the straight interpolation
  of the endpoint losses), and the test error along both;
* λ_max of the landscape-set loss at ``checkpoints`` points along θ_A's training (Lanczos warm-started
  from the previous eigenvector).

Claims (t-intervals over seeds; Holm over the claims that carry a p):
* per architecture and skip setting, the straight line between two solutions has a barrier > 0;
* per architecture and skip setting, the trained curve's barrier is ≈ 0: within 0 ± ``CURVE_MARGIN``
  nats (cross-entropy), a tenth of the chance-level loss ln 10 ≈ 2.3 — at Garipov et al.'s scale,
  whose VGG16 curve rose from 6.94% endpoint test error to 7.75% at its worst (CIFAR-10);
* per architecture, skip connections change log λ_max at the solution and the line barrier
  (two-sided, seed-paired: the two settings share initializations and minibatch orders).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from petridish.data import mnist1d
from petridish.instruments import bezier_curve, bezier_points, interpolate, loss_at_points, loss_surface
from petridish.instruments import sharpness_trajectory
from petridish.instruments.functional import flatten_params
from petridish.lab import (Analysis, Experiment, Param, curve_ci, family, from_difference, from_values,
                           not_measured, paired_difference)
from petridish.lab.paired import pair_by_seed
from petridish.losses import loss_value
from petridish.models import ResidualCNN1D, ResidualMLP
from petridish.seeding import sub_seed

ARCHS = ("mlp-small", "mlp-wide", "cnn")
WIDTHS = {"mlp-small": 16, "mlp-wide": 128}
CNN_CHANNELS = 16
CURVE_MARGIN = 0.23            # nats: "barrier ≈ 0" means within ±ln(10)/10
PATH_POINTS = 21               # t values on each interpolation and curve


def build(arch: str, skip: bool, seed: int) -> nn.Module:
    """The cell's network, initialized from ``seed`` (same init with and without skips)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "cnn":
            return ResidualCNN1D(d_in=40, channels=CNN_CHANNELS, blocks=2, d_out=10, skip=skip)
        return ResidualMLP(40, WIDTHS[arch], 2, 10, skip=skip)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lr: float, epochs: int, batch_size: int,
        seed: int, checkpoints: int) -> tuple[list[int], list[torch.Tensor]]:
    """SGD with momentum 0.9 in place; returns (steps, flat parameter vectors) at ``checkpoints``
    evenly spaced steps from 0 (the initialization) to the last. The minibatch order comes from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    per_epoch = math.ceil(n / batch_size)
    total = per_epoch * epochs
    marks = set(np.linspace(0, total, checkpoints).round().astype(int).tolist())
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    steps, thetas, step = [], [], 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            if step in marks:
                steps.append(step)
                thetas.append(flatten_params(model).clone())
            idx = order[i:i + batch_size]
            opt.zero_grad()
            loss_value(model(x[idx]), y[idx], "cross_entropy").backward()
            opt.step()
            step += 1
    steps.append(step)
    thetas.append(flatten_params(model).clone())
    return steps, thetas


def _error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(-1) != y).double().mean())


def run(p: dict, seed: int) -> dict:
    ds = mnist1d(n_train=p["n_train"], n_test=p["n_test"])
    x, y, xt, yt = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    xe, ye = x[:p["n_eval"]], y[:p["n_eval"]]                          # the landscape set
    seed_b = sub_seed(seed, "second solution")
    models, traces = [], []
    for init_seed, data_seed in ((seed, sub_seed(seed, "order A")), (seed_b, sub_seed(seed, "order B"))):
        m = build(p["arch"], p["skip"], init_seed)
        steps, thetas = fit(m, x, y, lr=p["lr"], epochs=p["epochs"], batch_size=p["batch_size"], seed=data_seed,
                            checkpoints=p["checkpoints"] if not models else 2)
        if not all(bool(torch.isfinite(t).all()) for t in thetas[-1:]):
            return {"diverged": True}
        models.append(m.eval())
        traces.append((steps, thetas))
    a, b = models
    (steps_a, thetas_a), _ = traces
    track = sharpness_trajectory(a, xe, ye, thetas_a, steps=steps_a, k=1, tol=1e-3, seed=seed)
    surf = loss_surface(a, xe, ye, directions="filter", ndim=2, span=p["span"], resolution=p["resolution"],
                        seed=sub_seed(seed, "directions"))
    init_line = interpolate(a, xe, ye, thetas_a[0], a, points=PATH_POINTS)
    # the curve is trained and its barrier measured on the whole training set, as in Garipov et al.: trained
    # on the small landscape set, the bend would fit those few points below the endpoints' loss
    curve = bezier_curve(a, x, y, a, b, steps=p["curve_steps"], lr=p["curve_lr"], points=PATH_POINTS,
                         seed=sub_seed(seed, "curve"))
    ta, tb = flatten_params(a).double(), flatten_params(b).double()
    _, curve_test_err, _ = loss_at_points(a, xt, yt, bezier_points(ta, curve.bend, tb, curve.ts))
    line_test = interpolate(a, xt, yt, a, b, points=PATH_POINTS)
    end_err = 0.5 * (_error(a, xt, yt) + _error(b, xt, yt))
    lam = track.lambda_max.tolist()
    return {
        "train_error": 0.5 * (_error(a, x, y) + _error(b, x, y)), "test_error": end_err,
        "endpoint_loss": 0.5 * float(curve.loss[0] + curve.loss[-1]),             # training set
        "lambda_max": lam[-1], "log_lambda_max": math.log(lam[-1]) if lam[-1] > 0 else math.nan,
        "lambda_steps": [float(s) for s in track.steps], "lambda_trace": lam,
        "surface_loss": surf.loss.reshape(-1).tolist(), "surface_resolution": p["resolution"],
        "surface_center_loss": surf.center_loss,
        # mean rise of the surface over its centre: a scalar "sharpness" of the 2D slice
        "surface_rise": float(surf.loss.mean()) - surf.center_loss,
        "path_t": curve.ts.tolist(), "init_line_loss": init_line.loss.tolist(),
        "init_line_barrier": init_line.barrier,
        "line_loss": curve.line_loss.tolist(), "curve_loss": curve.loss.tolist(),
        "line_barrier": curve.line_barrier, "curve_barrier": curve.barrier,
        "line_test_error": line_test.error.tolist(), "curve_test_error": curve_test_err.tolist(),
        "line_test_error_rise": float(line_test.error.max()) - end_err,
        "curve_test_error_rise": float(curve_test_err.max()) - end_err,
    }


# ------------------------------------------------------------------ analysis

def _sel(cells, arch, skip=None):
    return [c for c in cells if c.status == "done" and c.params.get("arch") == arch
            and (skip is None or bool(c.params.get("skip")) == skip) and "line_barrier" in c.metrics]


def _skip_name(skip: bool) -> str:
    return "with skips" if skip else "without skips"


def _barrier_claims(cells, arch, skip) -> list:
    tag = f"{arch} {_skip_name(skip)}"
    sel = _sel(cells, arch, skip)
    vals = lambda k: [float(c.metrics[k]) for c in sel]                     # noqa: E731
    return [
        from_values(f"{tag}: the straight line between two solutions crosses a loss barrier (> 0)",
                    vals("line_barrier"), null=0.0, effect="line barrier (nats)"),
        from_values(f"{tag}: the trained Bézier curve between them has no barrier (≈ 0 within ±{CURVE_MARGIN:g} nats)",
                    vals("curve_barrier"), null=0.0, direction="within", margin=CURVE_MARGIN,
                    effect="curve barrier (nats)"),
    ]


def _skip_claims(cells, arch) -> list:
    out = []
    for key, what in (("log_lambda_max", "log λ_max at the solution"), ("line_barrier", "the line barrier")):
        on = {c.seed: float(c.metrics[key]) for c in _sel(cells, arch, True)}
        off = {c.seed: float(c.metrics[key]) for c in _sel(cells, arch, False)}
        xa, xb = pair_by_seed(on, off)
        diff = paired_difference(xa, xb) if xa.size >= 2 else None
        out.append(from_difference(f"{arch}: skip connections change {what} (two-sided; Li et al. 2018 found "
                                   "them smoother)", diff, direction="two-sided",
                                   effect=f"{what} with minus without skips"))
    return out


def analyze(cells) -> Analysis:
    archs = [a for a in ARCHS if any(c.params.get("arch") == a for c in cells)]
    skips = sorted({bool(c.params.get("skip")) for c in cells}, reverse=True)
    claims, values = [], {}
    for arch in archs:
        for skip in skips:
            sel = _sel(cells, arch, skip)
            if len(sel) < 2:
                claims.append(not_measured(f"{arch} {_skip_name(skip)}: the straight line between two solutions "
                                           "crosses a loss barrier", f"{len(sel)} finished cell(s); a CI needs 2"))
                continue
            claims += _barrier_claims(cells, arch, skip)
            values[f"{arch}/{'skip' if skip else 'noskip'}"] = {
                k: float(np.mean([c.metrics[k] for c in sel]))
                for k in ("line_barrier", "curve_barrier", "init_line_barrier", "lambda_max", "surface_rise",
                          "test_error", "train_error", "endpoint_loss", "line_test_error_rise",
                          "curve_test_error_rise")}
        if len(skips) == 2:
            claims += _skip_claims(cells, arch)
    if not claims:
        claims = [not_measured("the straight line between two solutions crosses a loss barrier", "no cells")]
    values["garipov_vgg16_cifar10"] = {"endpoint_test_error": 0.0694, "curve_max_test_error": 0.0775}
    return Analysis(values=values, claims=family(claims))


# ------------------------------------------------------------------ figure

def _configs(done):
    return [(a, s) for a in ARCHS for s in (True, False) if _sel(done, a, s)]


def plot(cells, fig) -> None:
    done = [c for c in cells if c.status == "done" and "surface_loss" in c.metrics]
    configs = _configs(done)
    ncol = max(4, len(configs))
    gs = fig.add_gridspec(2, ncol)
    for j, (arch, skip) in enumerate(configs):                   # contours of the lowest seed's surface
        c = min(_sel(done, arch, skip), key=lambda c: c.seed)
        r = int(c.metrics["surface_resolution"])
        z = np.log10(np.asarray(c.metrics["surface_loss"]).reshape(r, r))
        ax = fig.add_subplot(gs[0, j])
        ax.contour(np.arange(r), np.arange(r), z, levels=15, cmap="viridis")
        ax.plot((r - 1) / 2, (r - 1) / 2, "r*")
        ax.set_aspect("equal")
        ax.set_title(f"{arch}, {_skip_name(skip)}\nlog10 loss, seed {c.seed}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    if configs:                                                   # a 3D view of the first configuration
        c = min(_sel(done, *configs[0]), key=lambda c: c.seed)
        r = int(c.metrics["surface_resolution"])
        ax = fig.add_subplot(gs[1, 0], projection="3d")
        g = np.linspace(-1, 1, r)
        gx, gy = np.meshgrid(g, g, indexing="ij")
        ax.plot_surface(gx, gy, np.log10(np.asarray(c.metrics["surface_loss"]).reshape(r, r)), cmap="viridis")
        ax.set_title(f"{configs[0][0]}, {_skip_name(configs[0][1])} (3D)", fontsize=7)
    panels = [fig.add_subplot(gs[1, k]) for k in (1, 2, 3)]
    for i, (arch, skip) in enumerate(configs):
        sel = _sel(done, arch, skip)
        ls, color = ("-" if skip else "--"), f"C{ARCHS.index(arch)}"
        t = np.asarray(sel[0].metrics["path_t"])
        for key, ax, style in (("init_line_loss", panels[0], ls), ("line_loss", panels[1], ":"),
                               ("curve_loss", panels[1], ls)):
            m, lo, hi = curve_ci([c.metrics[key] for c in sel])
            ax.plot(t, m, style, color=color, label=f"{arch}, {_skip_name(skip)}" if style != ":" else None)
            ax.fill_between(t, lo, hi, color=color, alpha=0.15)
        n = min(len(c.metrics["lambda_trace"]) for c in sel)
        m, lo, hi = curve_ci([np.log10(c.metrics["lambda_trace"][:n]) for c in sel])
        s = np.asarray(sel[0].metrics["lambda_steps"][:n])
        panels[2].plot(s, 10 ** m, ls, color=color, label=f"{arch}, {_skip_name(skip)}")
        panels[2].fill_between(s, 10 ** lo, 10 ** hi, color=color, alpha=0.15)
    panels[0].set_title("init → solution", fontsize=8)
    panels[1].set_title("solution → solution: line (dotted) vs Bézier curve", fontsize=8)
    panels[2].set_title("λ_max along training", fontsize=8)
    for ax, xl, yl in ((panels[0], "t", "loss"), (panels[1], "t", "loss"), (panels[2], "SGD step", "λ_max")):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_yscale("log")
    if panels[2].get_legend_handles_labels()[0]:
        panels[2].legend(fontsize=6)
    fig.suptitle("Loss landscapes on MNIST-1D (landscape set; 95% CI over seeds)")


EXPERIMENT = Experiment(
    name="loss-landscape",
    question="What do the loss landscapes of small and wide MLPs and a CNN on MNIST-1D look like, with and without "
             "skip connections: is there a loss barrier on the straight line between two solutions but none on a "
             "trained curve, and do skips lower the sharpness and the barriers?",
    reference="Li, Xu, Taylor, Studer & Goldstein (2018), Visualizing the loss landscape of neural nets, NeurIPS; "
              "Goodfellow, Vinyals & Saxe (2015), Qualitatively characterizing neural network optimization "
              "problems, ICLR; Garipov, Izmailov, Podoprikhin, Vetrov & Wilson (2018), Loss surfaces, mode "
              "connectivity, and fast ensembling of DNNs, NeurIPS (VGG16 on CIFAR-10: endpoint test error 6.94%, "
              "7.75% at the worst point of the Bézier curve); Draxler, Veschgini, Salmhofer & Hamprecht (2018)",
    summary="filter-normalized surfaces, init/solution interpolations, line vs Bézier barriers, λ_max, ± skips",
    params=(
        Param("arch", str, default=list(ARCHS), choices=ARCHS,
              help="mlp-small (residual MLP, width 16), mlp-wide (width 128) or cnn (residual 1D CNN, 16 channels)"),
        Param("skip", bool, default=[True, False], help="identity skip connections on or off (same parameters)"),
        Param("n_train", int, default=2000, quick=1000, low=10, high=4000, help="training examples"),
        Param("n_test", int, default=1000, low=10, high=4000, help="test examples"),
        Param("n_eval", int, default=500, quick=300, low=10, high=4000,
              help="the landscape set: the first n training examples, for surfaces, paths and λ_max"),
        Param("epochs", int, default=30, low=1, high=10_000, help="SGD epochs per solution"),
        Param("lr", float, default=0.05, low=1e-5, high=10.0, log=True, help="SGD learning rate (momentum 0.9)"),
        Param("batch_size", int, default=64, low=1, high=4000, help="minibatch size"),
        Param("resolution", int, default=21, quick=11, low=3, high=101, help="surface grid points per axis"),
        Param("span", float, default=1.0, low=0.01, high=10.0, help="surface coefficients in [−span, span]"),
        Param("curve_steps", int, default=150, quick=40, low=0, high=100_000, help="Adam steps on the Bézier bend"),
        Param("curve_lr", float, default=0.01, low=1e-5, high=1.0, log=True, help="Adam step on the Bézier bend"),
        Param("checkpoints", int, default=8, quick=5, low=2, high=1000, help="λ_max measurements along training"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=3, quick_seeds=3,
    runtime="4 min 14 s",
    table_by=("arch", "skip"),
    table_metrics=("line_barrier", "curve_barrier", "init_line_barrier", "lambda_max", "surface_rise", "train_error",
                   "test_error", "line_test_error_rise", "curve_test_error_rise"),
    bounds={"train_error": (0.0, 1.0), "test_error": (0.0, 1.0)},
    tiny={"arch": "mlp-small", "skip": [True, False], "n_train": 200, "n_test": 100, "n_eval": 100, "epochs": 2,
          "resolution": 5, "curve_steps": 5, "checkpoints": 3},
    quick_budget_s=90.0,
)
