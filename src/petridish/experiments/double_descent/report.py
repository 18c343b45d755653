"""Analysis and figure of the double-descent experiment: curves over the size axis, peak and
epoch-wise claims (seed-paired, ``peaks.py``)."""
from __future__ import annotations

import math

import numpy as np

from petridish.experiments._fit.peaks import find_peak, location, peak_claim
from petridish.lab import Claim, aggregate, curve_ci, from_difference, not_measured
from petridish.lab.paired import pair_by_seed, paired_difference

ARM_TITLES = {"mlp": "MLP 40→w→w→10 on MNIST-1D (model-wise)",
              "rf": "Random ReLU features, min-norm (model-wise)",
              "ridge": "Random features, validation-tuned ridge",
              "samples": "Min-norm linear regression (sample-wise)",
              "epochs": "MLP test error over training (epoch-wise)"}
Y_LABEL = {"mlp": "error", "samples": "excess risk ‖β̂ − β‖² (dashed: exact)"}
X_LABEL = {"mlp": "hidden width w", "rf": "random features p", "ridge": "random features p",
           "samples": "training samples n", "epochs": "epoch"}
Y_METRIC = {"samples": "excess_risk"}          # default: test_error
# the samples arm's risk near n = d is inverse-Wishart heavy-tailed (infinite variance at n = d − 3):
# its peak is tested on log(1 + risk), where seed-paired differences are near-normal
PEAK_SCALE = {"samples": ("log(1 + excess risk)", np.log1p)}
PEAK_MARGIN = 0.01   # error-rate arms: a peak whose CI lies within ±1 point of test error is refuted
BOUNDS = {"test_error": (0.0, 1.0), "train_error": (0.0, 1.0), "excess_risk": (0.0, math.inf)}
THRESHOLD_RULE = {"mlp": ", where parameters = n", "rf": ", p = n", "ridge": ", p = n",
                  "samples": ", n = d", "epochs": ""}


def metric_of(arm: str) -> str:
    return Y_METRIC.get(arm, "test_error")


def size_curves(cells, arm: str) -> dict[float, dict[str, object]]:
    """noise -> {"size", "width", "mean", "lo", "hi", "train", "threshold", "seeds"} over the size
    axis (arrays in size order); ``seeds`` is a list of {seed: metric} per size, for paired tests."""
    metric = metric_of(arm)
    arm_cells = [c for c in cells if c.params.get("arm") == arm and c.status == "done"]
    rows = aggregate(arm_cells, by=["noise", "width"], metrics=[metric, "size", "threshold", "train_error"],
                     bounds=BOUNDS)
    out: dict[float, dict[str, object]] = {}
    for noise in sorted({r["params"]["noise"] for r in rows}):
        sel = sorted((r for r in rows if r["params"]["noise"] == noise and metric in r["metrics"]),
                     key=lambda r: r["metrics"]["size"]["mean"])
        if not sel:
            continue
        per_seed = [{c.seed: c.metrics[metric] for c in arm_cells
                     if c.params["noise"] == noise and c.params["width"] == r["params"]["width"]
                     and metric in c.metrics} for r in sel]
        out[noise] = {"size": np.array([r["metrics"]["size"]["mean"] for r in sel]),
                      "width": np.array([r["params"]["width"] for r in sel]),
                      "mean": np.array([r["metrics"][metric]["mean"] for r in sel]),
                      "lo": np.array([r["metrics"][metric]["lo"] for r in sel]),
                      "hi": np.array([r["metrics"][metric]["hi"] for r in sel]),
                      "train": np.array([r["metrics"]["train_error"]["mean"] if "train_error" in r["metrics"]
                                         else np.nan for r in sel]),
                      "threshold": float(sel[0]["metrics"]["threshold"]["mean"]),
                      "seeds": per_seed}
    return out


def interpolation_size(curve: dict[str, np.ndarray], tol: float = 0.01) -> float:
    """Smallest size whose mean train error is <= ``tol`` (NaN if none): the measured threshold."""
    fit = np.nonzero(curve["train"] <= tol)[0]
    return float(curve["size"][fit[0]]) if fit.size else math.nan


def size_claims(cells, arm: str) -> tuple[list[Claim], dict[str, float]]:
    """One peak claim per noise level (``peaks.peak_claim``) and the numbers behind it."""
    claims, values = [], {}
    metric = metric_of(arm).replace("_", " ")
    symbol = X_LABEL[arm].split()[-1]
    margin = PEAK_MARGIN if metric_of(arm) == "test_error" else None
    for noise, curve in size_curves(cells, arm).items():
        tag = f"{arm}_noise{noise:g}"
        size, thr = curve["size"], curve["threshold"]
        scale, f = PEAK_SCALE.get(arm, ("", None))
        pk = find_peak(curve["seeds"] if f is None else
                       [{s: float(f(v)) for s, v in d.items()} for d in curve["seeds"]])
        where = "" if pk is None else (f" at {location(pk, size, symbol)} ({size[pk.index] / thr:.2f}× the predicted "
                                       f"threshold {symbol} ≈ {thr:.4g}{THRESHOLD_RULE[arm]})")
        c = peak_claim(f"[{arm}] noise {noise:g}: {metric} peaks{where}", pk, size, symbol, margin=margin,
                       scale=scale)
        claims.append(c)
        values[f"{tag}_peak_verdict"] = c.verdict
        values[f"{tag}_final"] = float(curve["mean"][-1])
        values[f"{tag}_interpolation_size"] = interpolation_size(curve)
        if pk is not None:
            i = pk.index
            values.update({f"{tag}_size": float(size[i]), f"{tag}_height": float(curve["mean"][i]),
                           f"{tag}_tie_sizes": [float(size[t]) for t in pk.ties],
                           f"{tag}_left_size": float(size[pk.left]), f"{tag}_right_size": float(size[pk.right]),
                           f"{tag}_left_min": float(curve["mean"][pk.left]),
                           f"{tag}_right_min": float(curve["mean"][pk.right]),
                           f"{tag}_prominence": pk.prominence, f"{tag}_threshold": thr,
                           f"{tag}_ratio_to_threshold": float(size[i] / thr)})
            for side, d in (("left", pk.vs_left), ("right", pk.vs_right)):
                if d is not None:
                    values[f"{tag}_minus_{side}"] = d.estimate
                    values[f"{tag}_minus_{side}_ci"] = list(d.ci)
    return claims, values


def draw_size_panel(ax, cells, arm: str) -> None:
    from matplotlib import colormaps
    curves = size_curves(cells, arm)
    cmap = colormaps["viridis"]
    for j, (noise, c) in enumerate(curves.items()):
        color = cmap(0.15 + 0.7 * j / max(1, len(curves) - 1))
        ax.plot(c["size"], c["mean"], "o-", ms=3, color=color, label=f"test, noise {noise:g} (95% CI)")
        ax.fill_between(c["size"], c["lo"], c["hi"], color=color, alpha=0.25)
        if arm == "mlp":
            ax.plot(c["size"], c["train"], "--", lw=1, color=color, label=f"train, noise {noise:g}")
        if arm == "samples":
            theory = [t["mean"] if t else np.nan for t in _theory(cells, noise)]
            ax.plot(c["size"], theory, "--", color=color, lw=1)
    if curves:
        thr = next(iter(curves.values()))["threshold"]
        ax.axvline(thr, color="k", ls=":", lw=1.2, label=f"threshold{THRESHOLD_RULE[arm]} ({thr:.3g})")
        if arm == "mlp":
            nk = _mean_metric(cells, arm, "threshold_nk")
            ax.axvline(nk, color="0.5", ls="-.", lw=1, label=f"parameters = n·classes ({nk:.3g})")
    ax.set(xscale="log", xlabel=X_LABEL[arm], ylabel=Y_LABEL.get(arm, "test error"), title=ARM_TITLES[arm])
    if arm == "samples":
        ax.set_yscale("log")
        ax.set_ylim(bottom=1e-3)            # noiseless n > d is exactly 0 (drawn at the bottom)
    ax.legend(fontsize=8)


def _mean_metric(cells, arm: str, name: str) -> float:
    vals = [c.metrics[name] for c in cells if c.params.get("arm") == arm and name in c.metrics]
    return float(np.mean(vals)) if vals else math.nan


def _theory(cells, noise):
    rows = aggregate([c for c in cells if c.params.get("arm") == "samples" and c.params["noise"] == noise],
                     by=["width"], metrics=["theory_risk", "size"])
    rows.sort(key=lambda r: r["metrics"]["size"]["mean"])
    return [r["metrics"].get("theory_risk") for r in rows]


def _epoch_cells(cells) -> list:
    """Cells of the ``epochs`` arm if any, else of the ``mlp`` arm, that recorded curves."""
    for arm in ("epochs", "mlp"):
        sel = [c for c in cells if c.params.get("arm") == arm and c.status == "done"
               and "test_error_curve" in c.metrics]
        if sel:
            return sel
    return []


def draw_epoch_panel(ax, cells) -> None:
    """Test (and train) error vs epoch (95% CI over seeds) for the largest width, per noise level."""
    from matplotlib.ticker import NullFormatter
    arm_cells = _epoch_cells(cells)
    if not arm_cells:
        return
    width = max(c.params["width"] for c in arm_cells)
    for noise in sorted({c.params["noise"] for c in arm_cells}):
        sel = [c for c in arm_cells if c.params["width"] == width and c.params["noise"] == noise]
        m, lo, hi = curve_ci([c.metrics["test_error_curve"] for c in sel], bounds=BOUNDS["test_error"])
        ep = np.asarray(sel[0].metrics["epoch_curve"])
        line, = ax.plot(ep, m, label=f"test, w={width}, noise {noise:g} (95% CI)")
        ax.fill_between(ep, lo, hi, alpha=0.25, color=line.get_color())
        tr, _, _ = curve_ci([c.metrics["train_error_curve"] for c in sel])
        ax.plot(ep, tr, "--", lw=1, color=line.get_color(), label=f"train, noise {noise:g}")
    ax.set(xscale="log", xlabel="epoch", ylabel="error", title=ARM_TITLES["epochs"])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=8)


def epoch_claims(cells) -> tuple[list[Claim], dict[str, float]]:
    """Per noise level, the largest width: "test error rises after its minimum", as the seed-paired
    difference between the final test error and that at the epoch where the mean curve is lowest."""
    arm_cells = _epoch_cells(cells)
    if not arm_cells:
        return [], {}
    width = max(c.params["width"] for c in arm_cells)
    claims, values = [], {}
    for noise in sorted({c.params["noise"] for c in arm_cells}):
        sel = [c for c in arm_cells if c.params["width"] == width and c.params["noise"] == noise]
        m, _, _ = curve_ci([c.metrics["test_error_curve"] for c in sel], bounds=BOUNDS["test_error"])
        ep = sel[0].metrics["epoch_curve"]
        i_min = int(np.nanargmin(m))
        # the estimate carries the size: a significant +0.0005 is a rise, not epoch-wise double descent
        text = (f"[epochs] width {width}, noise {noise:g}: test error rises after its minimum at epoch "
                f"{ep[i_min]:.0f}")
        if i_min == len(m) - 1:
            c = not_measured(text, "the mean test error is lowest at the last epoch: nothing comes after the minimum",
                             effect="final minus minimum")
        else:
            final = {x.seed: x.metrics["test_error_curve"][-1] for x in sel}
            low = {x.seed: x.metrics["test_error_curve"][i_min] for x in sel}
            c = from_difference(text, paired_difference(*pair_by_seed(final, low)),
                                effect=f"final (epoch {ep[-1]:.0f}) minus minimum", margin=PEAK_MARGIN)
        claims.append(c)
        tr_end = float(np.mean([x.metrics["train_error_curve"][-1] for x in sel]))
        tag = f"epochs_noise{noise:g}"
        values.update({f"{tag}_min": float(m[i_min]), f"{tag}_min_epoch": float(ep[i_min]),
                       f"{tag}_final": float(m[-1]), f"{tag}_width": width, f"{tag}_train_final": tr_end,
                       f"{tag}_verdict": c.verdict})
    return claims, values
