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
X_LABEL = {"mlp": "hidden width w", "rf": "random features p", "ridge": "random features p",
           "samples": "training samples n", "epochs": "epoch"}
Y_METRIC = {"samples": "excess_risk"}          # default: test_error


def metric_of(arm: str) -> str:
    return Y_METRIC.get(arm, "test_error")


def size_curves(cells, arm: str) -> dict[float, dict[str, np.ndarray]]:
    """noise -> {"size", "mean", "lo", "hi", "threshold"} of the arm's metric over the size axis."""
    metric = metric_of(arm)
    arm_cells = [c for c in cells if c.params.get("arm") == arm]
    rows = aggregate(arm_cells, by=["noise", "width"], metrics=[metric, "size", "threshold"])
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
                      "threshold": float(sel[0]["metrics"]["threshold"]["mean"])}
    return out


def peak(curve: dict[str, np.ndarray]) -> dict[str, float] | None:
    """Highest interior point of the mean curve and the minima on each side (None if at an edge)."""
    m = curve["mean"]
    i = int(np.nanargmax(m))
    if i == 0 or i == len(m) - 1:
        return None
    return {"size": float(curve["size"][i]), "width": int(curve["width"][i]), "height": float(m[i]),
            "left_min": float(np.nanmin(m[:i])), "right_min": float(np.nanmin(m[i + 1:])),
            "threshold": curve["threshold"], "ratio_to_threshold": float(curve["size"][i] / curve["threshold"])}


def findings_for(cells, arm: str) -> tuple[list[str], dict[str, float]]:
    findings, values = [], {}
    metric = metric_of(arm).replace("_", " ")
    for noise, curve in size_curves(cells, arm).items():
        tag = f"{arm}_noise{noise:g}"
        thr = curve["threshold"]
        pk = peak(curve)
        if pk is None:
            edge = "smallest" if int(np.nanargmax(curve["mean"])) == 0 else "largest"
            findings.append(f"[{arm}] noise {noise:g}: {metric} has no interior peak (its maximum "
                            f"{np.nanmax(curve['mean']):.3g} is at the {edge} size); predicted threshold "
                            f"{X_LABEL[arm].split()[-1]} ≈ {thr:.4g}.")
            values[f"{tag}_peak_height"] = math.nan
            continue
        findings.append(
            f"[{arm}] noise {noise:g}: {metric} peaks at {X_LABEL[arm].split()[-1]} = {pk['size']:.4g} "
            f"({pk['ratio_to_threshold']:.2f}× the predicted threshold {thr:.4g}) with {pk['height']:.3g}; "
            f"minimum {pk['left_min']:.3g} before it and {pk['right_min']:.3g} after it "
            f"(peak/left = {pk['height'] / pk['left_min']:.2f}, peak/right = {pk['height'] / pk['right_min']:.2f}).")
        values.update({f"{tag}_{k}": v for k, v in pk.items()})
        values[f"{tag}_final"] = float(curve["mean"][-1])
    return findings, values


def draw_size_panel(ax, cells, arm: str) -> None:
    from matplotlib import colormaps
    curves = size_curves(cells, arm)
    cmap = colormaps["viridis"]
    for j, (noise, c) in enumerate(curves.items()):
        color = cmap(0.15 + 0.7 * j / max(1, len(curves) - 1))
        ax.plot(c["size"], c["mean"], "o-", ms=3, color=color, label=f"label noise {noise:g}")
        ax.fill_between(c["size"], c["lo"], c["hi"], color=color, alpha=0.25)
        if arm == "samples":
            theory = [t["mean"] if t else np.nan for t in _theory(cells, noise)]
            ax.plot(c["size"], theory, "--", color=color, lw=1)
    if curves:
        thr = next(iter(curves.values()))["threshold"]
        ax.axvline(thr, color="k", ls=":", lw=1, label=f"threshold ≈ {thr:.4g}")
    ax.set(xscale="log", xlabel=X_LABEL[arm], ylabel=metric_of(arm).replace("_", " "), title=ARM_TITLES[arm])
    if arm == "samples":
        ax.set_yscale("log")
    ax.legend(fontsize=8)


def _theory(cells, noise):
    rows = aggregate([c for c in cells if c.params.get("arm") == "samples" and c.params["noise"] == noise],
                     by=["width"], metrics=["theory_risk", "size"])
    rows.sort(key=lambda r: r["metrics"]["size"]["mean"])
    return [r["metrics"].get("theory_risk") for r in rows]


def draw_epoch_panel(ax, cells) -> None:
    """Test error vs epoch (95% CI over seeds) for the largest width, per noise level."""
    arm_cells = [c for c in cells if c.params.get("arm") == "epochs" and c.status == "done"
                 and "test_error_curve" in c.metrics]
    if not arm_cells:
        return
    width = max(c.params["width"] for c in arm_cells)
    for noise in sorted({c.params["noise"] for c in arm_cells}):
        sel = [c for c in arm_cells if c.params["width"] == width and c.params["noise"] == noise]
        m, lo, hi = curve_ci([c.metrics["test_error_curve"] for c in sel])
        ep = np.asarray(sel[0].metrics["epoch_curve"])
        ax.plot(ep, m, label=f"w={width}, noise {noise:g}")
        ax.fill_between(ep, lo, hi, alpha=0.25)
    ax.set(xscale="log", xlabel="epoch", ylabel="test error", title=ARM_TITLES["epochs"])
    ax.legend(fontsize=8)


def epoch_findings(cells) -> tuple[list[str], dict[str, float]]:
    arm_cells = [c for c in cells if c.params.get("arm") == "epochs" and c.status == "done"
                 and "test_error_curve" in c.metrics]
    if not arm_cells:
        return [], {}
    width = max(c.params["width"] for c in arm_cells)
    findings, values = [], {}
    for noise in sorted({c.params["noise"] for c in arm_cells}):
        sel = [c for c in arm_cells if c.params["width"] == width and c.params["noise"] == noise]
        m, _, _ = curve_ci([c.metrics["test_error_curve"] for c in sel])
        ep = sel[0].metrics["epoch_curve"]
        i_min = int(np.nanargmin(m))
        i_max_after = i_min + int(np.nanargmax(m[i_min:]))
        findings.append(
            f"[epochs] width {width}, noise {noise:g}: test error is lowest ({m[i_min]:.3f}) at epoch "
            f"{ep[i_min]:.0f}, rises to {m[i_max_after]:.3f} at epoch {ep[i_max_after]:.0f} and ends at {m[-1]:.3f}.")
        values[f"epochs_noise{noise:g}_min"] = float(m[i_min])
        values[f"epochs_noise{noise:g}_final"] = float(m[-1])
    return findings, values
