"""Fantastic generalization measures (Jiang, Neyshabur, Mobahi, Krishnan & Bengio 2020) on mnist1d MLPs.

A population of MLPs over five hyperparameter axes — width, depth, learning rate, batch size, weight
decay (SGD with momentum 0.9) — each trained until its minibatch cross-entropy reaches ``target_loss``
(0.01, the paper's value). Models of one (width, depth, batch size) train as one ensemble with
per-member lr / weight decay / seeds (``population``). Each model that reached the target gets 17
measures (``measures``: size, norms, spectral, distance from init, margin, ε-sharpness, PAC-Bayes and
magnitude-aware PAC-Bayes flatness, Hessian trace, λ_max, N_eff, gradient noise, steps), measured on
``n_measure`` training examples. The analysis (``report``) ranks the measures against the gap (test −
training error) over the whole population: Kendall τ, granulated Ψ, PGDL's CMI, bootstrap CIs.

Sizes. Default: 2 widths × 2 depths × 2 batch sizes × 3 lrs × 2 weight decays × 3 seeds = 144 models
on 1,000 mnist1d training examples (1,000 test), measures on 512. --quick: 2 × 2 × 2 × 2 × 2 × 3 = 96
models on 500 examples, measures on 256. In one default run 126 of the 144 models reached the target;
the 18 that did not (lr 0.01 at width 64 depth 1, and at width 128 depth 1 batch 128; one lr 0.02) still
had training loss 0.012–0.03 after 8,000 steps. The median full training loss at the stop was 0.015
(0.012 on --quick); gaps ranged over 0.51–0.62. A larger population: ``--set width=64,128,256 --set
depth=1,2,3`` and so on. Dropout is a sixth axis on request (``--set dropout=0,0.1``), off by default:
``train_ensemble`` cannot train dropout members as one ensemble (the vmap engine refuses random
operations), so each trains alone (``population``), ≈ 1–2 s of CPU per model.

What held here (default run): only the magnitude-aware PAC-Bayes measure has τ > 0 among the flatness
measures (+0.41, CI [0.28, 0.53]); plain ε-sharpness (−0.37) and PAC-Bayes 1/σ² (−0.12) rank the gap
backwards, driven by depth (deeper nets are sharper and generalize better here: ψ_depth ≈ −0.89). The
norm/spectral family is mixed — sums of squared norms, path norm and distance from init are positive
(+0.33 to +0.44), products and R/γ negative — with mean τ +0.11, so "norms correlate negatively" is
refuted; within one-axis groups the flatness measures do rank the gap (mean Ψ +0.10, CI [0.04, 0.15]).
With dropout as a sixth axis (``--quick --set dropout=0,0.1``: 192 models, 169 reached; 4 min 50 s at
load ≈ 5, 270 s of CPU) the paper's pattern appears: PAC-Bayes 1/σ² τ +0.14 [0.06, 0.22], magnitude-aware
+0.43 [0.37, 0.50], norm/spectral mean τ −0.23 [−0.28, −0.18], flatness minus norms +0.39 [0.30, 0.48];
only ε-sharpness stays inconclusive (−0.09 [−0.19, 0.02]). The larger six-axis population
(``--set lr=0.02,0.04 --set dropout=0,0.1``: 192 models on 1,000 examples, 161 reached; 11 min 44 s at
load ≈ 4, 517 s of CPU) gives the same: PAC-Bayes +0.19 [0.11, 0.27], magnitude-aware +0.55 [0.47, 0.63]
(also the highest CMI, 0.107), norm/spectral mean −0.19 [−0.25, −0.13], flatness minus norms +0.38
[0.29, 0.48], flatness Ψ +0.16 [0.11, 0.20]; ε-sharpness refuted (−0.16 [−0.27, −0.03]).
"""
from __future__ import annotations

from petridish.experiments.generalization_measures.population import run, run_group
from petridish.experiments.generalization_measures.report import analyze, plot
from petridish.lab import Experiment, Param

EXPERIMENT = Experiment(
    name="generalization-measures",
    question="Across a population of MLPs trained to the same training cross-entropy while width, depth, "
             "learning rate, batch size and weight decay vary, which complexity measure ranks the models by "
             "their generalization gap: do sharpness and PAC-Bayes flatness beat norm and spectral measures?",
    reference="Jiang, Neyshabur, Mobahi, Krishnan & Bengio (2020), Fantastic generalization measures and where "
              "to find them, ICLR, arXiv:1912.02178; Jiang et al. (2020), NeurIPS 2020 competition: Predicting "
              "Generalization in Deep Learning, arXiv:2012.07976",
    summary="Kendall τ, granulated Ψ and CMI of 17 generalization measures over ≥ 100 mnist1d MLPs",
    params=(
        Param("width", int, default=[64, 128], low=1, high=4096, help="hidden units per layer"),
        Param("depth", int, default=[1, 2], low=1, high=4, help="hidden layers"),
        Param("lr", float, default=[0.01, 0.02, 0.04], quick=[0.02, 0.04], low=1e-5, high=10.0, log=True,
              help="SGD learning rate"),
        Param("batch_size", int, default=[32, 128], low=1, high=50_000, help="minibatch size"),
        Param("weight_decay", float, default=[0.0, 1e-4], low=0.0, high=1.0, help="ℓ2 weight decay"),
        Param("dropout", float, default=0.0, low=0.0, high=0.9,
              help="dropout rate after each hidden layer (a list, e.g. 0,0.1, makes it a sixth axis; members "
                   "with dropout > 0 train one at a time)"),
        Param("momentum", float, default=0.9, low=0.0, high=0.999, help="SGD heavy-ball momentum"),
        Param("target_loss", float, default=0.01, low=1e-6, high=10.0,
              help="stop a model when its minibatch cross-entropy reaches this"),
        Param("steps", int, default=8000, quick=4000, low=1, high=1_000_000, help="most SGD steps per model"),
        Param("n_train", int, default=1000, quick=500, low=10, high=50_000, help="mnist1d training examples"),
        Param("n_test", int, default=1000, quick=500, low=10, high=50_000, help="mnist1d test examples"),
        Param("n_measure", int, default=512, quick=256, low=8, high=50_000,
              help="training examples the margin, flatness, curvature and gradient-noise measures use"),
    ),
    run=run, run_group=run_group,
    group_by=("width", "depth", "batch_size", "dropout", "momentum", "target_loss", "steps", "n_train", "n_test",
              "n_measure"),
    analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=1,
    runtime="1 min 06 s",
    table_by=("width", "depth", "batch_size", "lr", "weight_decay", "dropout"),
    table_metrics=("train_loss", "train_error", "test_error", "gap", "steps", "sigma_mag", "lambda_max"),
    bounds={"train_error": (0.0, 1.0), "test_error": (0.0, 1.0), "gap": (-1.0, 1.0)},
    quick_budget_s=90.0, group_rtol=1e-3,
    tiny=dict(width=16, depth=1, lr=[0.05, 0.1], batch_size=50, weight_decay=0.0, steps=60, n_train=100,
              n_test=100, n_measure=64, target_loss=1.5),
)
