"""MNIST-1D baselines: how much of each model's accuracy comes from the spatial structure
of the signal? Logistic regression, an MLP, a CNN and a GRU on the default 4,000/1,000
split, and on the "shuffled" variant where one fixed permutation of the 40 positions is
applied to every example (train and test alike).

Greydanus & Kobak (2024), "Scaling down deep learning with MNIST-1D", ICML, arXiv:2011.14439.
Their table: logistic 32%, MLP 68%, CNN 94%, GRU 91%; shuffled: 32%, 68%, 56%, 57%.

One cell = one model, one variant (shuffled or not), one seed. The paper's recipe: Adam
(lr 1e-2, no weight decay), batch 100, 6,000 steps, cross-entropy; the paper's models
(MLP 40-100-100-10 ReLU, CNN with three strided convs of 25 channels, bidirectional GRU
with 6 hidden units read as a length-40 scalar sequence). The seeds of one (model,
variant) train together as one stacked-weights ensemble (``run_group``). Logistic
regression and the MLP treat the 40 inputs as an unordered set, so a fixed permutation
cannot change what they can learn; the CNN and GRU exploit locality, which the shuffle destroys.

Claims: for each model, "shuffling lowers its test accuracy" (seed-paired default − shuffled,
Holm over the models), and "its accuracy matches the paper's" within ± 5 points (``within``:
supported only when the CI over seeds lies inside the band).
"""
from __future__ import annotations

import numpy as np

from petridish.data import mnist1d
from petridish.lab import Analysis, Experiment, Param, aggregate, curve_ci, report_intermediate
from petridish.lab.claims import family, from_difference, from_values
from petridish.lab.paired import pair_by_seed, paired_difference
from petridish.threads import pin_threads
from petridish.train import evaluate, train_ensemble

MODELS = ("logistic", "mlp", "cnn", "gru")
LABELS = {"logistic": "logistic regression", "mlp": "MLP", "cnn": "CNN", "gru": "GRU"}
# petridish.models name and arguments of the paper's architectures
BUILD = {"logistic": ("linear", {}), "mlp": ("mlp", {"width": 100, "depth": 2}),
         "cnn": ("cnn", {"channels": 25}), "gru": ("gru", {"hidden": 6, "bidirectional": True})}
# Greydanus & Kobak (2024), Table 1: test accuracy, (model, shuffled) -> fraction
PAPER = {("logistic", False): 0.32, ("mlp", False): 0.68, ("cnn", False): 0.94, ("gru", False): 0.91,
         ("logistic", True): 0.32, ("mlp", True): 0.68, ("cnn", True): 0.56, ("gru", True): 0.57}
# "matches the paper" = the 95% CI of the mean over seeds lies within ± 5 points of the paper's
# number: the paper reports single runs, whose seed-to-seed spread is 1-3 points on this split
PAPER_MARGIN = 0.05
EVALS = 24           # test-accuracy checkpoints along training, for the learning curves


def _report(step: int, evals: dict) -> None:
    """Mean test accuracy of the ensemble so far, for pruning under `petridish search`."""
    acc = evals["test"]["accuracy"]
    report_intermediate(step, float(acc.mean()), metric="test_acc")


def run_group(params_list: list[dict], seeds: list[int]) -> list[dict]:
    """Seeds of one (model, shuffle) configuration, trained as one ensemble."""
    p = params_list[0]
    ds = mnist1d(n_train=p["n_train"], n_test=p["n_test"], shuffle_seq=p["shuffle"])
    name, kw = BUILD[p["model"]]
    with pin_threads(1):           # launch-bound small ops: a second OpenMP thread only adds sync
        res = train_ensemble(name, ds.x_train, ds.y_train, seeds=list(seeds), lr=p["lr"], optimizer="adam",
                             batch_size=p["batch_size"], steps=p["steps"], model_kwargs={**kw, "d_out": 10},
                             eval_sets={"test": (ds.x_test, ds.y_test)}, eval_every=max(1, p["steps"] // EVALS),
                             on_eval=_report)
        train = [evaluate(res.member(k).eval(), ds.x_train, ds.y_train, "ce") for k in range(len(seeds))]
    test = res.eval_history["test"]
    out = []
    for k in range(len(seeds)):
        if bool(res.diverged[k]):
            out.append({"diverged": True, "paper_acc": PAPER[(p["model"], p["shuffle"])]})
            continue
        out.append({
            "test_acc": float(test["accuracy"][k, -1]), "train_acc": float(train[k]["accuracy"]),
            "test_loss": float(test["loss"][k, -1]), "train_loss": float(train[k]["loss"]),
            "paper_acc": PAPER[(p["model"], p["shuffle"])],
            "test_acc_curve": [float(v) for v in test["accuracy"][k]],
            "eval_steps": [float(s) for s in res.eval_steps],
            "engine": res.path,
        })
    return out


def run(p: dict, seed: int) -> dict:
    return run_group([p], [seed])[0]


def _rows(cells) -> dict[tuple[str, bool], dict]:
    return {(r["params"]["model"], r["params"]["shuffle"]): r
            for r in aggregate(cells, by=["model", "shuffle"], bounds=EXPERIMENT.bounds) if "test_acc" in r["metrics"]}


def _by_seed(cells, model: str, shuffle: bool) -> dict[int, float]:
    return {c.seed: float(c.metrics["test_acc"]) for c in cells if c.status == "done" and "test_acc" in c.metrics
            and c.params["model"] == model and c.params["shuffle"] == shuffle}


def _variant(shuffle: bool) -> str:
    return "the spatially shuffled split" if shuffle else "the default split"


def analyze(cells) -> Analysis:
    """Claims: per model, (1) the spatial shuffle lowers test accuracy (seed-paired default −
    shuffled, one-sided, Holm over the models); (2) the measured accuracy matches the paper's
    within ± ``PAPER_MARGIN`` (t-interval over seeds inside the band)."""
    rows = _rows(cells)
    if not rows:
        return Analysis(["No finished cells."], {})
    models = [m for m in MODELS if any((m, s) in rows for s in (False, True))]
    values = {"test_acc": {}, "paper_acc": {}, "shuffle_drop": {}, "paper_margin": PAPER_MARGIN}
    drops = []
    for m in models:
        if (m, False) not in rows or (m, True) not in rows:
            continue
        d = paired_difference(*pair_by_seed(_by_seed(cells, m, False), _by_seed(cells, m, True)))
        drops.append(from_difference(f"shuffling the 40 positions lowers the {LABELS[m]}'s test accuracy", d,
                                     effect="default minus shuffled test accuracy", direction="greater"))
        if d is not None:
            values["shuffle_drop"][m] = {"mean": d.estimate, "lo": d.ci[0], "hi": d.ci[1], "n": d.n}
    paper = []
    for s in (False, True):
        for m in models:
            if (m, s) not in rows:
                continue
            key = f"{m}{'_shuffled' if s else ''}"
            values["test_acc"][key] = rows[(m, s)]["metrics"]["test_acc"]
            values["paper_acc"][key] = PAPER[(m, s)]
            paper.append(from_values(
                f"the {LABELS[m]}'s test accuracy on {_variant(s)} matches the paper's {100 * PAPER[(m, s)]:.0f}%",
                _by_seed(cells, m, s).values(), null=PAPER[(m, s)], effect="measured minus paper accuracy",
                direction="within", margin=PAPER_MARGIN, bounds=(0.0, 1.0)))
    gaps = [abs(rows[k]["metrics"]["test_acc"]["mean"] - PAPER[k]) for k in rows]
    values["max_abs_gap_to_paper"] = float(max(gaps))
    return Analysis([], values, family(drops, "holm") + paper)


def plot(cells, fig) -> None:
    rows = _rows(cells)
    if not rows:
        return
    models = [m for m in MODELS if any((m, s) in rows for s in (False, True))]
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    x = np.arange(len(models))
    for j, (s, label, color) in enumerate(((False, "default", "C0"), (True, "shuffled", "C3"))):
        have = [i for i, m in enumerate(models) if (m, s) in rows]
        mean = np.array([rows[(models[i], s)]["metrics"]["test_acc"]["mean"] for i in have])
        lo = np.array([rows[(models[i], s)]["metrics"]["test_acc"]["lo"] for i in have])
        hi = np.array([rows[(models[i], s)]["metrics"]["test_acc"]["hi"] for i in have])
        xs = x[have] + (j - 0.5) * 0.38
        ax1.bar(xs, 100 * mean, 0.36, color=color, alpha=0.8, label=f"{label} (mean, 95% CI)",
                yerr=[100 * (mean - lo), 100 * (hi - mean)], capsize=3)
        ax1.scatter(xs, [100 * PAPER[(models[i], s)] for i in have], marker="D", s=36, color="k", zorder=3,
                    label="paper" if j == 0 else None)
    ax1.set_xticks(x, [LABELS[m] for m in models])
    ax1.set_ylim(0, 100)
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title("MNIST-1D: measured vs Greydanus & Kobak (2024)")
    ax1.legend(fontsize=8, loc="upper left")
    for i, m in enumerate(models):
        for s, ls in ((False, "-"), (True, "--")):
            sel = [c for c in cells if c.status == "done" and c.params["model"] == m and c.params["shuffle"] == s
                   and "test_acc_curve" in c.metrics]
            if not sel:
                continue
            steps = np.array(sel[0].metrics["eval_steps"])
            mean, lo, hi = curve_ci([c.metrics["test_acc_curve"] for c in sel], bounds=(0.0, 1.0))
            ax2.plot(steps, 100 * mean, ls, color=f"C{i}", label=f"{LABELS[m]}{' shuffled' if s else ''}")
            ax2.fill_between(steps, 100 * lo, 100 * hi, color=f"C{i}", alpha=0.2)
    ax2.set_xlabel("Adam steps (batch 100)")
    ax2.set_ylabel("test accuracy (%)")
    ax2.set_ylim(0, 100)
    ax2.set_title("Learning curves (solid: default, dashed: shuffled)")
    ax2.legend(fontsize=7, ncol=2, loc="lower right")


EXPERIMENT = Experiment(
    name="mnist1d-baselines",
    question="How accurate are logistic regression, an MLP, a CNN and a GRU on MNIST-1D, and how much of that "
             "accuracy disappears when the 40 input positions are shuffled by one fixed permutation?",
    reference="Greydanus & Kobak (2024), Scaling down deep learning with MNIST-1D, ICML, arXiv:2011.14439",
    summary="the MNIST-1D paper's table: logistic / MLP / CNN / GRU test accuracy, default vs spatially shuffled",
    params=(
        Param("model", str, default=list(MODELS), choices=MODELS, help="architecture (a list sweeps it)"),
        Param("shuffle", bool, default=[False, True],
              help="apply the paper's fixed permutation of the 40 positions to train and test"),
        Param("n_train", int, default=4000, low=10, high=50_000, help="MNIST-1D training examples"),
        Param("n_test", int, default=1000, low=10, high=50_000, help="MNIST-1D test examples"),
        Param("steps", int, default=6000, quick=1000, low=1, high=1_000_000, help="Adam updates"),
        Param("lr", float, default=1e-2, low=1e-6, high=1.0, log=True, help="Adam learning rate"),
        Param("batch_size", int, default=100, low=1, high=50_000, help="minibatch size"),
    ),
    run=run, run_group=run_group,
    group_by=("model", "shuffle", "n_train", "n_test", "steps", "lr", "batch_size"),
    analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=1, runtime="~5.5 min",
    table_by=("model", "shuffle"),
    table_metrics=("test_acc", "paper_acc", "train_acc"),
    bounds={"test_acc": (0.0, 1.0), "train_acc": (0.0, 1.0)},
    tiny=dict(n_train=100, n_test=100, steps=20),  # petridish check (seconds)
)
