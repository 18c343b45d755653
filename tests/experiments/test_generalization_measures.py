"""generalization-measures: Kendall τ, granulated Ψ and the CMI score against hand computations and
scipy, a small real population with every measure, claim and the figure, and verdicts that flip with
the phenomenon on synthetic populations."""
import itertools

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.stats import kendalltau

from petridish.experiments.generalization_measures import EXPERIMENT
from petridish.experiments.generalization_measures.measures import FLATNESS, MEASURES, NORMS, oriented
from petridish.experiments.generalization_measures.ranking import (cmi_score, cmi_scores, granulated_kendall,
                                                                    kendall_tau, psi_score, tau_score)
from petridish.experiments.generalization_measures.population import run, run_group
from petridish.experiments.generalization_measures.report import analyze, plot
from petridish.lab import Cell
from petridish.lab.sweep import run_sweep

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ ranking statistics

def test_kendall_tau_equals_scipy_without_ties_and_the_papers_tau_a_with_ties():
    g = np.random.default_rng(0)
    x = g.random(25)
    y = x + 0.5 * g.random(25)
    assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)
    # by hand, ordered pairs of 3 models: (0,1) tied in μ → 0, (0,2) and (1,2) concordant → 2·2/(3·2)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 3, abs=1e-12)
    assert kendalltau([1, 1, 2], [1, 2, 3]).statistic == pytest.approx(2 / 6 ** 0.5)   # τ-b differs
    assert kendall_tau([1, 2, np.inf], [1, 2, 3]) == pytest.approx(1.0)                 # inf ranks last
    s = tau_score(x, y, seed=0)
    assert s.ci[0] <= s.estimate <= s.ci[1] and s.n == 25
    assert tau_score(x, x, seed=0).ci == (1.0, 1.0)     # a resample's duplicated model is not a pair


def test_granulated_kendall_by_hand():
    # models (a, b): (0,0), (1,0), (0,1), (1,1); gaps 1..4; the measure swaps the last two
    hp = [{"a": a, "b": b, "seed": 0} for b in (0, 1) for a in (0, 1)]
    gap, measure = [1, 2, 3, 4], [1, 2, 4, 3]
    psi, per = granulated_kendall(measure, gap, hp, ["a", "b"])
    # a varies: b=0 → models 0,1 concordant (+1); b=1 → models 2,3 discordant (−1): ψ_a = 0
    # b varies: a=0 → models 0,2 (+1); a=1 → models 1,3 (+1): ψ_b = 1
    assert per == {"a": 0.0, "b": 1.0} and psi == 0.5
    assert psi_score(measure, gap, hp, ["a", "b"], seed=0).estimate == 0.5
    assert kendall_tau(measure, gap) == pytest.approx(kendalltau(measure, gap).statistic)
    # a second seed of each configuration forms its own groups
    hp2 = hp + [{**h, "seed": 1} for h in hp]
    psi2, _ = granulated_kendall(measure + measure, gap + gap, hp2, ["a", "b"])
    assert psi2 == 0.5


def _grid_population(seed=0):
    hp = [{"a": a, "b": b, "c": c, "seed": s} for a, b, c, s in itertools.product(range(3), range(2), range(2),
                                                                                   range(4))]
    g = np.random.default_rng(seed)
    gap = np.array([h["a"] + 0.7 * h["b"] - 0.4 * h["c"] + g.random() for h in hp])
    return hp, gap, g


def test_cmi_is_one_for_the_gap_itself_and_near_zero_for_an_independent_measure():
    hp, gap, g = _grid_population()
    sc = cmi_scores({"gap": gap, "independent": g.random(gap.size), "inverted": -gap,
                     "axis_a": [h["a"] for h in hp]}, gap, hp, ["a", "b", "c"], seed=0)
    assert sc["gap"].estimate == pytest.approx(1.0) and sc["gap"].ci == (1.0, 1.0)
    assert 0 <= sc["independent"].estimate < 0.05, sc["independent"]      # plug-in bias only
    assert sc["independent"].ci[0] <= sc["independent"].estimate <= sc["independent"].ci[1] < 0.3   # bias-shifted
    assert sc["inverted"].estimate == pytest.approx(1.0)    # unsigned: read it beside τ
    assert sc["axis_a"].estimate == pytest.approx(0.0)      # conditioning on a leaves it nothing to say
    one = cmi_score(gap + 0.3 * g.random(gap.size), gap, hp, ["a", "b", "c"], seed=0, n_boot=20)
    assert 0.05 < one.estimate < 1.0 and one.ci[0] <= one.estimate <= one.ci[1]


# ------------------------------------------------------------------ a real (small) population

@pytest.fixture(scope="module")
def small():
    over = dict(EXPERIMENT.tiny, width=[16, 24], lr=[0.05, 0.1])   # 2 × 2 configurations × 3 seeds = 12 models
    return run_sweep("generalization-measures", quick=True, overrides=over, store="memory", progress=False)


def test_small_population_has_every_measure_claim_and_the_figure(small):
    cells = small.cells
    assert len(cells) == 12 and all(c.status == "done" and c.metrics["reached"] for c in cells)
    for c in cells:
        o = oriented(c.metrics)
        assert set(o) == set(MEASURES), set(MEASURES) - set(o)
        assert c.metrics["gap"] == pytest.approx(c.metrics["test_error"] - c.metrics["train_error"])
        assert c.metrics["lambda_max"] > 0 and c.metrics["hessian_trace"] > 0 and c.metrics["gradient_noise"] > 0
        assert 0 < c.metrics["neff"] <= 10 and c.metrics["sigma"] > 0 and c.metrics["sigma_mag"] > 0
    assert len(MEASURES) >= 12
    values = small.analysis.values
    assert set(values["per_measure"]) == set(MEASURES)
    for v in values["per_measure"].values():
        assert v["tau"]["ci"][0] <= v["tau"]["estimate"] <= v["tau"]["ci"][1]
    claims = small.analysis.claims
    assert len(claims) == 6 and all(c.verdict != "not measured" for c in claims), small.analysis.findings
    fig = Figure(figsize=(16, 5))
    plot(cells, fig)
    assert len(fig.axes) == 4


def test_dropout_members_train_alone_and_reproducibly():
    p = {**EXPERIMENT.config(EXPERIMENT.tiny, quick=True), "lr": 0.05, "dropout": 0.2}
    q = {**p, "lr": 0.1}
    group = run_group([p, q], [0, 1])
    assert group == [run(p, 0), run(q, 1)]                     # seeded masks: the group equals the cells
    plain = run({**p, "dropout": 0.0}, 0)
    assert group[0]["reached"] and group[0]["steps"] != plain["steps"]   # the masks changed training


# ------------------------------------------------------------------ verdicts flip (synthetic populations)

def _cells(kind: str, seeds=1):
    """A 32-configuration grid: the gap follows a latent z; flatness measures rise with z and norm
    measures fall with it ("paper"), the reverse ("reversed"), or every measure is noise ("null")."""
    g = np.random.default_rng(3)
    cells = []
    for i, (w, d, lr, b, wd, s) in enumerate(itertools.product((64, 128), (1, 2), (0.01, 0.04), (32, 128),
                                                               (0.0, 1e-4), range(seeds))):
        z = g.standard_normal()
        gap = 0.3 + 0.05 * z + 0.01 * g.standard_normal()
        sign = {"paper": 1, "reversed": -1, "null": 0}[kind]
        flat = np.exp(sign * z + 0.3 * g.standard_normal())                 # complexity of the flatness family
        norm = np.exp(-sign * z + 0.3 * g.standard_normal())
        rnd = lambda: float(np.exp(g.standard_normal()))                     # noqa: E731
        m = {k: rnd() for k in MEASURES}
        m.update({k: float(norm) for k in NORMS if k != "spectral_complexity"}, spectral_complexity_r=float(norm),
                 margin=1.0, sharpness=float(flat), sigma=float(flat ** -0.5), sigma_mag=float(flat ** -0.5),
                 reached=True, gap=gap, train_error=0.0, test_error=gap, train_loss=0.01)
        cells.append(Cell(key=str(i), experiment="generalization-measures", seed=s, status="done", metrics=m,
                          params={"width": w, "depth": d, "lr": lr, "batch_size": b, "weight_decay": wd}))
    return cells


def test_verdicts_flip_with_the_phenomenon():
    paper = [c.verdict for c in analyze(_cells("paper")).claims]
    reversed_ = [c.verdict for c in analyze(_cells("reversed")).claims]
    null = [c.verdict for c in analyze(_cells("null")).claims]
    assert paper == ["supported"] * 6, paper
    assert reversed_ == ["refuted"] * 6, reversed_
    assert null == ["inconclusive"] * 6, null
    assert set(FLATNESS) == {"sharpness", "pac_bayes", "pac_bayes_mag"}
    empty = analyze([])
    assert [c.verdict for c in empty.claims] == ["not measured"] * 6
    assert "nan" not in " ".join(empty.findings).lower()
