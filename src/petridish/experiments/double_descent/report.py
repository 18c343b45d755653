"""Analysis and figure of the double-descent experiment: curves over the size axis, peaks."""
from __future__ import annotations

import math

import numpy as np

from petridish.lab import aggregate, curve_ci

ARM_TITLES = {"mlp": "MLP 40→w→w→10 on MNIST-1D (model-wise)",
              "rf": "Random ReLU features, min-norm (model-wise)",
              "ridge": "Random features, validation-tuned ridge",
              "samples": "Min-norm linear regression (sample-wise)",
              "epochs": "MLP test error over training (epoch-wise)"}
Y_LABEL = {"mlp": "error", "samples": "excess risk ‖β̂ − β‖² (dashed: exact)"}
X_LABEL = {"mlp": "hidden width w", "rf": "random features p", "ridge": "random features p",
           "samples": "training samples n", "epochs": "epoch"}
Y_METRIC = {"samples": "excess_risk"}          # default: test_error
CLEAR_PEAK = 0.1     # a bump is called a peak when it rises above both sides by >= 10% of the range
THRESHOLD_RULE = {"mlp": ", where parameters = n", "rf": ", p = n", "ridge": ", p = n",
                  "samples": ", n = d", "epochs": ""}


def metric_of(arm: str) -> str:
    return Y_METRIC.get(arm, "test_error")


def size_curves(cells, arm: str) -> dict[float, dict[str, np.ndarray]]:
    """noise -> {"size", "mean", "lo", "hi", "threshold"} of the arm's metric over the size axis."""
    metric = metric_of(arm)
    arm_cells = [c for c in cells if c.params.get("arm") == arm]
    rows = aggregate(arm_cells, by=["noise", "width"], metrics=[metric, "size", "threshold", "train_error"])
    out: dict[float, dict[str, np.ndarray]] = {}
    for noise in sorted({r["params"]["noise"] for r in rows}):
        sel = sorted((r for r in rows if r["params"]["noise"] == noise and metric in r["metrics"]),
                     key=lambda r: r["metrics"]["size"]["mean"])
        if not sel:
            continue
        out[noise] = {"size": np.array([r["metrics"]["size"]["mean"] for r in sel]),
                      "width": np.array([r["params"]["width"] for r in sel]),
                      "mean": np.array([r["metrics"][metric]["mean"] for r in sel]),
                      "lo": np.array([r["metrics"][metric]["lo"] for r in sel]),
                      "hi": np.array([r["metrics"][metric]["hi"] for r in sel]),
                      "train": np.array([r["metrics"]["train_error"]["mean"] if "train_error" in r["metrics"]
                                         else np.nan for r in sel]),
                      "threshold": float(sel[0]["metrics"]["threshold"]["mean"])}
    return out


def interpolation_size(curve: dict[str, np.ndarray], tol: float = 0.01) -> float:
    """Smallest size whose mean train error is <= ``tol`` (NaN if none): the measured threshold."""
    fit = np.nonzero(curve["train"] <= tol)[0]
    return float(curve["size"][fit[0]]) if fit.size else math.nan


def peak(curve: dict[str, np.ndarray]) -> dict[str, float] | None:
    """The most prominent interior bump of the mean curve: the point i maximizing
    min(m_i − min(m_<i), m_i − min(m_>i)), with the minima on each side (None if no bump)."""
    m = curve["mean"]
    gaps = [m[i] - max(np.nanmin(m[:i]), np.nanmin(m[i + 1:])) for i in range(1, len(m) - 1)]
    if not gaps or not np.nanmax(gaps) > 0:
        return None
    i = 1 + int(np.nanargmax(gaps))
    return {"size": float(curve["size"][i]), "width": int(curve["width"][i]), "height": float(m[i]),
            "left_min": float(np.nanmin(m[:i])), "right_min": float(np.nanmin(m[i + 1:])),
            "gap": float(gaps[i - 1]), "ci_half_width": float(curve["hi"][i] - m[i]),
            "threshold": curve["threshold"], "ratio_to_threshold": float(curve["size"][i] / curve["threshold"])}


def findings_for(cells, arm: str) -> tuple[list[str], dict[str, float]]:
    findings, values = [], {}
    metric = metric_of(arm).replace("_", " ")
    for noise, curve in size_curves(cells, arm).items():
        tag = f"{arm}_noise{noise:g}"
        thr = curve["threshold"]
        pk = peak(curve)
        spread = float(np.nanmax(curve["mean"]) - np.nanmin(curve["mean"]))
        if pk is None or pk["gap"] < CLEAR_PEAK * spread:
            bump = "" if pk is None else (f" (largest bump +{pk['gap']:.3g} at {pk['size']:.4g}, under "
                                          f"{CLEAR_PEAK:.0%} of the curve's range {spread:.3g})")
            findings.append(f"[{arm}] noise {noise:g}: {metric} has no clear peak{bump}; it goes from "
                            f"{curve['mean'][0]:.3g} to {curve['mean'][-1]:.3g}; predicted threshold "
                            f"{X_LABEL[arm].split()[-1]} ≈ {thr:.4g}.")
            values[f"{tag}_peak_gap"] = 0.0 if pk is None else pk["gap"]
            values[f"{tag}_final"] = float(curve["mean"][-1])
            continue
        interp = interpolation_size(curve)
        fits = "" if math.isnan(interp) else f"; train error first reaches <= 1% at {interp:.4g}"
        findings.append(
            f"[{arm}] noise {noise:g}: {metric} peaks at {X_LABEL[arm].split()[-1]} = {pk['size']:.4g} "
            f"({pk['ratio_to_threshold']:.2f}× the predicted threshold {thr:.4g}{THRESHOLD_RULE[arm]}) "
            f"with {pk['height']:.3g} (95% CI ±{pk['ci_half_width']:.2g}); minimum {pk['left_min']:.3g} before it "
            f"and {pk['right_min']:.3g} after it "
            f"(peak − left = {pk['height'] - pk['left_min']:+.3g}, peak − right = "
            f"{pk['height'] - pk['right_min']:+.3g}){fits}.")
        values.update({f"{tag}_{k}": v for k, v in pk.items()})
        values[f"{tag}_final"] = float(curve["mean"][-1])
        values[f"{tag}_interpolation_size"] = interp
    return findings, values


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
        m, lo, hi = curve_ci([c.metrics["test_error_curve"] for c in sel])
        ep = np.asarray(sel[0].metrics["epoch_curve"])
        line, = ax.plot(ep, m, label=f"test, w={width}, noise {noise:g} (95% CI)")
        ax.fill_between(ep, lo, hi, alpha=0.25, color=line.get_color())
        tr, _, _ = curve_ci([c.metrics["train_error_curve"] for c in sel])
        ax.plot(ep, tr, "--", lw=1, color=line.get_color(), label=f"train, noise {noise:g}")
    ax.set(xscale="log", xlabel="epoch", ylabel="error", title=ARM_TITLES["epochs"])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=8)


def epoch_findings(cells) -> tuple[list[str], dict[str, float]]:
    arm_cells = _epoch_cells(cells)
    if not arm_cells:
        return [], {}
    width = max(c.params["width"] for c in arm_cells)
    findings, values = [], {}
    for noise in sorted({c.params["noise"] for c in arm_cells}):
        sel = [c for c in arm_cells if c.params["width"] == width and c.params["noise"] == noise]
        m, _, _ = curve_ci([c.metrics["test_error_curve"] for c in sel])
        ep = sel[0].metrics["epoch_curve"]
        tr_end = float(np.mean([c.metrics["train_error_curve"][-1] for c in sel]))
        i_min = int(np.nanargmin(m))
        i_max_after = i_min + int(np.nanargmax(m[i_min:]))
        findings.append(
            f"[epochs] width {width}, noise {noise:g}: test error is lowest ({m[i_min]:.3f}) at epoch "
            f"{ep[i_min]:.0f}, rises to {m[i_max_after]:.3f} at epoch {ep[i_max_after]:.0f} "
            f"(+{m[i_max_after] - m[i_min]:.3f}) and ends at {m[-1]:.3f}; train error ends at {tr_end:.3f}.")
        tag = f"epochs_noise{noise:g}"
        values.update({f"{tag}_min": float(m[i_min]), f"{tag}_min_epoch": float(ep[i_min]),
                       f"{tag}_max_after_min": float(m[i_max_after]), f"{tag}_final": float(m[-1]),
                       f"{tag}_width": width, f"{tag}_train_final": tr_end})
    return findings, values
