"""Double descent: test error vs model size (and data, and training time) through interpolation.

Belkin, Hsu, Ma & Mandal (PNAS 2019); Nakkiran et al. (2019) "Deep double descent";
Nakkiran et al. (2020) "Optimal regularization can mitigate double descent".

Arms (``arm``): ``mlp`` (flagship, the MNIST-1D notebook's 19-width MLP sweep),
``rf`` (random ReLU features, min-norm), ``ridge`` (the same, λ tuned on held-out data),
``samples`` (fixed linear model, n swept) and ``epochs`` (error over training time).
All arms sweep the same ``width`` list; ``_dd/sizes.py`` maps it to each arm's size.
"""
from __future__ import annotations

from petridish.experiments._dd import report
from petridish.experiments._dd.arm_mlp import train_width
from petridish.experiments._dd.arm_rf import run_rf
from petridish.experiments._dd.arm_samples import run_samples
from petridish.experiments._dd.sizes import WIDTHS
from petridish.lab import Analysis, Experiment, Param

ARMS = ("mlp", "rf", "ridge", "samples", "epochs")
QUICK_WIDTHS = [4, 8, 16, 32, 48, 64, 96, 128, 256]


def run(p: dict, seed: int) -> dict:
    return run_group([p], [seed])[0]


def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Cells agreeing on everything but noise and seed; MLP arms train as one ensemble."""
    arm = params_list[0]["arm"]
    if arm in ("mlp", "epochs"):
        return train_width(params_list, seeds)
    if arm == "samples":
        return [run_samples(p, s) for p, s in zip(params_list, seeds)]
    return [run_rf(p, s, ridge=(arm == "ridge")) for p, s in zip(params_list, seeds)]


def _arms(cells) -> list[str]:
    present = {c.params.get("arm") for c in cells if c.status == "done"}
    return [a for a in ARMS if a in present]


def analyze(cells) -> Analysis:
    findings, values = [], {}
    for arm in _arms(cells):
        f, v = report.epoch_findings(cells) if arm == "epochs" else report.findings_for(cells, arm)
        findings += f
        values.update(v)
    return Analysis(findings=findings, values=values)


def plot(cells, fig) -> None:
    arms = _arms(cells)
    if not arms:
        return
    axes = fig.subplots(1, len(arms), squeeze=False)[0]
    for ax, arm in zip(axes, arms):
        if arm == "epochs":
            report.draw_epoch_panel(ax, cells)
        else:
            report.draw_size_panel(ax, cells, arm)


EXPERIMENT = Experiment(
    name="double-descent",
    question="Does test error fall, rise at the interpolation threshold, then fall again as models grow?",
    reference=("Belkin et al. 2019 (PNAS); Nakkiran et al. 2019 'Deep double descent'; Nakkiran et al. 2020 "
               "'Optimal regularization can mitigate double descent'; MNIST-1D (Greydanus & Kobak 2024) notebook"),
    summary="Model-wise double descent of an MLP on MNIST-1D (+ random-features, ridge, sample- and epoch-wise arms)",
    params=(
        Param("arm", str, default="mlp", choices=ARMS,
              help="mlp (flagship) | rf (random features, min-norm) | ridge (tuned ridge) | "
                   "samples (n swept, fixed model) | epochs (error over training)"),
        Param("width", int, default=WIDTHS, quick=QUICK_WIDTHS, low=1, high=4096,
              help="model-size axis: MLP hidden width; rf/ridge use p=params_mlp(w)/10 features; "
                   "samples uses n=params_mlp(w)/50"),
        Param("noise", float, default=[0.0, 0.15], low=0.0, high=1.0,
              help="label-noise probability (samples arm: Gaussian noise std)"),
        Param("n_train", int, default=4000, quick=1000, low=10, help="MNIST-1D training examples"),
        Param("n_test", int, default=12000, quick=2000, low=10, help="MNIST-1D test examples"),
        Param("epochs", int, default=500, quick=150, low=1, help="training epochs (mlp/epochs arms)"),
        Param("lr", float, default=0.01, low=1e-6, high=10.0, log=True, help="SGD learning rate"),
        Param("momentum", float, default=0.9, low=0.0, high=0.999, help="SGD momentum"),
        Param("batch_size", int, default=100, low=1, help="minibatch size"),
        Param("rf_n", int, default=1000, quick=500, low=10,
              help="training examples of the rf/ridge arms (threshold p = rf_n)"),
        Param("dim", int, default=200, low=2, help="input dimension d of the samples arm (threshold n = d)"),
    ),
    run=run, run_group=run_group,
    group_by=("arm", "width", "n_train", "n_test", "epochs", "lr", "momentum", "batch_size", "rf_n", "dim"),
    max_group=64, analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=1, runtime="~10 min",
    table_by=("arm", "width", "noise"),
    table_metrics=("test_error", "train_error", "test_loss", "test_mse", "excess_risk", "size", "n_params"),
)
