"""Edge of stability: under full-batch GD with step η the top Hessian eigenvalue rises until it reaches
2/η, then hovers just above it while the loss keeps falling, non-monotonically (Cohen, Kaur, Li, Kolter
& Talwalkar, ICLR 2021).

On a quadratic, GD's top mode is multiplied by (1 − ηλ_max) at every step, so it diverges exactly when
λ_max > 2/η. A network's curvature is not fixed: it rises during training ("progressive sharpening")
until λ_max = 2/η, where the quadratic model says GD must blow up — and instead the dynamics regulate
λ_max at about 2/η.

One cell = one MLP (40 → width → width → 10, tanh or ReLU), one loss (MSE on one-hot targets or
cross-entropy, ``petridish.losses``), one step size η and one seed, trained by full-batch GD on a fixed
subset of ``n_train`` MNIST-1D examples. Every ``every`` steps λ_max of the training loss is measured by
Lanczos warm-started from the previous eigenvector (``SharpnessTracker``). Training stops at ``steps`` or,
as in the paper, at 99% training accuracy (``stop_accuracy``): past it the cross-entropy Hessian decays
with the loss, a regime the edge-of-stability claim is not about.

Claims, per (activation, loss, η), t-intervals over seeds:
* the EoS band — after the first measurement with λ_max ≥ 2/η (the crossing), the median of λ_max·η/2
  over the later measurements lies within [0.9, 1.2] ("just above 2/η"; a `within` claim, refuted when
  the CI lies outside the band);
* progressive sharpening — λ_max at the crossing over λ_max at step 0 is > 1;
* the loss keeps falling — the training loss at the last step over that at the crossing is < 1.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from petridish.data import mnist1d
from petridish.errors import check_number
from petridish.instruments import SharpnessTracker
from petridish.lab import Analysis, Experiment, Param, curve_ci, family, from_values, not_measured
from petridish.losses import loss_value
from petridish.models import MLP

BAND = (0.9, 1.2)              # λ_max·η/2 "just above 1": the band of the EoS claim
MIN_AFTER = 3                  # measurements after the crossing needed for a median
ACTIVATIONS, LOSSES = ("tanh", "relu"), ("mse", "ce")


def first_crossing(sharpness: Sequence[float], eta: float) -> int | None:
    """Index of the first measurement with λ_max ≥ 2/η (the stability threshold of GD on a quadratic
    with that curvature), or None when λ_max stays below it."""
    for i, lam in enumerate(sharpness):
        if lam * eta >= 2.0:
            return i
    return None


def descend(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eta: float, steps: int, every: int,
            loss: str, tol: float = 1e-3, seed: int = 0, stop_accuracy: float = 1.0) -> dict:
    """Full-batch GD θ ← θ − η∇L(θ) in place for up to ``steps`` updates. λ_max is measured before the
    update of every step divisible by ``every`` (step 0 is the initialization), and at the final step.

    Returns {"step": measured steps, "sharpness": λ_max there, "loss_at": loss there, "loss": the loss
    before every update (steps + 1 values, the last after the final update), "accuracy": final training
    accuracy, "diverged": bool}. Stops early (after measuring) when the loss is non-finite or the
    training accuracy reaches ``stop_accuracy``."""
    eta = check_number(eta, "eta", "descend", low=0, low_open=True)
    tracker = SharpnessTracker(x, y, k=1, every=every, loss=loss, tol=tol, seed=seed)
    params = [p for p in model.parameters()]
    losses, measured, acc = [], [], 0.0
    step = 0
    while True:
        out = model(x)
        value = loss_value(out, y, loss)
        lv = float(value.detach())
        losses.append(lv)
        acc = float((out.detach().argmax(-1) == y).float().mean()) if not y.is_floating_point() else math.nan
        last = step == steps or not math.isfinite(lv) or acc >= stop_accuracy
        if math.isfinite(lv) and (step % every == 0 or last):
            tracker.measure(step, model)
            measured.append(lv)
        if last:
            break
        grads = torch.autograd.grad(value, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(eta * g)
        step += 1
    t = tracker.trace()
    return {"step": t.steps, "sharpness": t.lambda_max.tolist(), "loss_at": measured, "loss": losses,
            "accuracy": acc, "diverged": not math.isfinite(losses[-1])}


def summarize(step: list[int], sharpness: list[float], loss: list[float], eta: float) -> dict:
    """The scalars of the claims from one trajectory; NaN where a quantity is undefined."""
    ratio = [lam * eta / 2 for lam in sharpness]
    i = first_crossing(sharpness, eta)
    out = {"cross_step": math.nan, "sharpening": math.nan, "eos_median_ratio": math.nan, "loss_fall": math.nan,
           "loss_rises_after_cross": math.nan, "ratio_init": ratio[0] if ratio else math.nan,
           "ratio_max": max(ratio) if ratio else math.nan}
    if i is None:
        return out
    out["cross_step"] = float(step[i])
    out["sharpening"] = sharpness[i] / sharpness[0] if sharpness[0] > 0 else math.nan
    after = ratio[i + 1:]
    if len(after) >= MIN_AFTER:
        out["eos_median_ratio"] = float(np.median(after))
        tail = np.asarray(loss[step[i]:], dtype=float)              # every step from the crossing on
        out["loss_fall"] = float(tail[-1] / tail[0]) if tail[0] > 0 else math.nan
        out["loss_rises_after_cross"] = float(np.mean(np.diff(tail) > 0))   # share of steps that went up
    return out


def run(p: dict, seed: int) -> dict:
    ds = mnist1d(n_train=p["n_train"], n_test=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(ds.x_train.shape[1], p["width"], 2, 10, activation=p["activation"])
    tr = descend(model, ds.x_train, ds.y_train, eta=p["eta"], steps=p["steps"], every=p["every"], loss=p["loss"],
                 tol=p["tol"], seed=seed, stop_accuracy=p["stop_accuracy"])
    if tr["diverged"]:
        return {"diverged": True, "steps_run": len(tr["loss"]) - 1}
    out = {"step": tr["step"], "sharpness": tr["sharpness"],
           "sharpness_ratio": [lam * p["eta"] / 2 for lam in tr["sharpness"]], "loss": tr["loss_at"],
           "steps_run": len(tr["loss"]) - 1, "final_loss": tr["loss"][-1], "train_accuracy": tr["accuracy"],
           "threshold": 2 / p["eta"]}
    out.update(summarize(tr["step"], tr["sharpness"], tr["loss"], p["eta"]))
    return out


# ------------------------------------------------------------------ analysis

def _configs(cells) -> list[tuple[str, str, float]]:
    return sorted({(c.params["activation"], c.params["loss"], float(c.params["eta"])) for c in cells})


def _values(sel, key) -> list[float]:
    return [float(c.metrics.get(key, math.nan)) for c in sel]


def _config_claims(sel, act: str, loss: str, eta: float) -> list:
    tag = f"{act}/{loss.upper()} MLP at η = {eta:g} (2/η = {2 / eta:.3g})"
    if not sel:
        return [not_measured(f"{tag}: λ_max hovers at 2/η", "every cell diverged or failed",
                             direction="within", margin=(BAND[1] - BAND[0]) / 2)]
    crossed = [c for c in sel if math.isfinite(c.metrics.get("cross_step", math.nan))]
    mid, half = (BAND[0] + BAND[1]) / 2, (BAND[1] - BAND[0]) / 2
    if len(crossed) < 2:
        why = f"λ_max reached 2/η in {len(crossed)} of {len(sel)} runs (a CI needs 2)"
        return [not_measured(f"{tag}: after reaching 2/η, λ_max·η/2 stays in [{BAND[0]:g}, {BAND[1]:g}]", why,
                             direction="within", margin=half),
                not_measured(f"{tag}: progressive sharpening (λ_max at the crossing > λ_max at init)", why)]
    return [
        from_values(f"{tag}: after reaching 2/η, λ_max·η/2 stays in [{BAND[0]:g}, {BAND[1]:g}] (edge of stability)",
                    _values(crossed, "eos_median_ratio"), null=mid, margin=half, direction="within",
                    effect="median λ_max·η/2 after the crossing", subtract_null=False),
        from_values(f"{tag}: progressive sharpening (λ_max at the crossing > λ_max at init)",
                    _values(crossed, "sharpening"), null=1.0, effect="λ_max(crossing) / λ_max(0)",
                    subtract_null=False),
        from_values(f"{tag}: the loss keeps falling at the edge of stability (last loss < loss at the crossing)",
                    _values(crossed, "loss_fall"), null=1.0, direction="less",
                    effect="loss(last) / loss(crossing)", subtract_null=False),
    ]


def analyze(cells) -> Analysis:
    done = [c for c in cells if c.status == "done"]
    claims, values = [], {}
    for act, loss, eta in _configs(cells):
        sel = [c for c in done if (c.params["activation"], c.params["loss"], float(c.params["eta"])) == (act, loss, eta)]
        claims += _config_claims(sel, act, loss, eta)
        key = f"{act}/{loss}/eta={eta:g}"
        values[key] = {k: float(np.nanmean(v)) if np.isfinite(v).any() else None
                       for k in ("cross_step", "sharpening", "eos_median_ratio", "loss_fall", "loss_rises_after_cross",
                                 "ratio_init", "ratio_max", "steps_run")
                       for v in [np.asarray(_values(sel, k) or [math.nan], dtype=float)]}
        values[key]["crossed"] = sum(math.isfinite(c.metrics.get("cross_step", math.nan)) for c in sel)
        values[key]["runs"] = len([c for c in cells if (c.params["activation"], c.params["loss"],
                                                        float(c.params["eta"])) == (act, loss, eta)])
    if not claims:
        claims = [not_measured("λ_max hovers at 2/η", "no cells", direction="within", margin=0.15)]
    values["band"] = list(BAND)
    return Analysis(values=values, claims=family(claims))


def plot(cells, fig) -> None:
    done = [c for c in cells if c.status == "done" and "sharpness_ratio" in c.metrics]
    pairs = [(a, l) for a in ACTIVATIONS for l in LOSSES if any(c.params["activation"] == a and c.params["loss"] == l
                                                                 for c in done)] or [("tanh", "mse")]
    axes = np.atleast_2d(fig.subplots(2, len(pairs), squeeze=False))
    etas = sorted({float(c.params["eta"]) for c in done})
    for j, (act, loss) in enumerate(pairs):
        top, bottom = axes[0, j], axes[1, j]
        for i, eta in enumerate(etas):
            sel = [c for c in done if (c.params["activation"], c.params["loss"], float(c.params["eta"])) == (act, loss, eta)]
            if not sel:
                continue
            n = min(len(c.metrics["step"]) for c in sel)          # runs that stop early are cut to the shortest
            t = np.asarray(sel[0].metrics["step"][:n])
            m, lo, hi = curve_ci([c.metrics["sharpness_ratio"][:n] for c in sel])
            top.plot(t, m, color=f"C{i}", label=f"η = {eta:g}")
            top.fill_between(t, lo, hi, color=f"C{i}", alpha=0.2)
            m, lo, hi = curve_ci([np.log10(c.metrics["loss"][:n]) for c in sel])
            bottom.plot(t, 10 ** m, color=f"C{i}", label=f"η = {eta:g}")
            bottom.fill_between(t, 10 ** lo, 10 ** hi, color=f"C{i}", alpha=0.2)
        top.axhline(1.0, color="k", lw=1, ls="--")
        top.axhspan(*BAND, color="grey", alpha=0.15)
        top.set_title(f"{act} MLP, {loss.upper()}", fontsize=9)
        top.set_ylabel("λ_max / (2/η)")
        if top.get_legend_handles_labels()[0]:
            top.legend(fontsize=7)
        bottom.set_yscale("log")
        bottom.set_xlabel("GD step")
        bottom.set_ylabel("training loss")
    fig.suptitle("Edge of stability: sharpness rises to 2/η and hovers (grey: the claimed band; 95% CI over seeds)")


EXPERIMENT = Experiment(
    name="edge-of-stability",
    question="Under full-batch gradient descent with step η, does the top Hessian eigenvalue rise (progressive "
             "sharpening) until it reaches 2/η, then hover just above 2/η while the loss keeps falling "
             "non-monotonically?",
    reference="Cohen, Kaur, Li, Kolter & Talwalkar (2021), Gradient descent on neural networks typically occurs "
              "at the edge of stability, ICLR, arXiv:2103.00065 (their set-up: a tanh MLP on 5,000 CIFAR-10 "
              "examples, square loss, η = 0.01, stopped at 99% training accuracy)",
    summary="full-batch GD: λ_max rises to 2/η and hovers there while the loss falls (mnist1d MLP, MSE and CE)",
    params=(
        Param("activation", str, default=list(ACTIVATIONS), choices=ACTIVATIONS, help="hidden activation"),
        Param("loss", str, default=list(LOSSES), choices=LOSSES, help="mse (one-hot targets) or ce"),
        Param("eta", float, default=[0.15, 0.25, 0.4], quick=[0.25, 0.4], low=1e-4, high=10.0, log=True,
              help="GD step size η (the defaults start below 2/λ_max(0), so that sharpening can show)"),
        Param("width", int, default=64, low=1, high=4096, help="hidden units per layer (2 hidden layers)"),
        Param("n_train", int, default=500, low=10, high=4000, help="training examples (the fixed first n)"),
        Param("steps", int, default=2000, quick=600, low=1, high=1_000_000, help="GD steps at most"),
        Param("every", int, default=10, quick=10, low=1, high=100_000, help="steps between λ_max measurements"),
        Param("stop_accuracy", float, default=0.99, low=0.0, high=1.0,
              help="stop at this training accuracy (the paper's 99%)"),
        Param("tol", float, default=1e-3, low=1e-10, high=0.1, log=True,
              help="Lanczos residual tolerance, relative to λ_max"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=5, quick_seeds=3,
    runtime="1 min 21 s",
    table_by=("activation", "loss", "eta"),
    table_metrics=("cross_step", "sharpening", "eos_median_ratio", "loss_fall", "loss_rises_after_cross",
                   "ratio_max", "steps_run", "final_loss", "train_accuracy"),
    bounds={"train_accuracy": (0.0, 1.0), "loss_rises_after_cross": (0.0, 1.0)},
    tiny={"activation": "tanh", "loss": "mse", "eta": 0.8, "steps": 60, "n_train": 100, "every": 5},
    quick_budget_s=90.0,
)
