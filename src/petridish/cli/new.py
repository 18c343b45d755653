"""`petridish new NAME [--dir D]`: write a small, working experiment (NAME.py) and its test
(test_NAME.py), ready for `petridish run NAME.py --quick` and `pytest test_NAME.py`."""
from __future__ import annotations

import re
from pathlib import Path

import typer

from petridish.errors import PetridishError
from petridish.lab import registry

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

EXPERIMENT_TEMPLATE = '''"""{name}: does ridge regression's test error fall as the training set grows?

Written by `petridish new`. Run it:  petridish run {name}.py --quick
Test it:                             pytest test_{name}.py
Edit `run` (one cell: params and seed -> metrics), `analyze` (claims with their evidence) and
`plot`. Every cell is stored as it finishes; `petridish show/report/export RUN` work on the run.
"""
from __future__ import annotations

import numpy as np

from petridish.lab import (Analysis, Experiment, Param, family, from_difference, from_values, mean_ci,
                           not_measured, paired_difference)


def run(params: dict, seed: int) -> dict:
    """One cell: ridge regression on n noisy samples of a random linear teacher (d inputs)."""
    rng = np.random.default_rng(seed)                  # the teacher depends on the seed only: paired over n
    d, n, noise = params["d"], params["n"], params["noise"]
    w = rng.standard_normal(d) / np.sqrt(d)            # teacher weights, |w| ~ 1
    x_test = rng.standard_normal((2000, d))
    x = rng.standard_normal((n, d))
    y = x @ w + noise * rng.standard_normal(n)
    w_hat = np.linalg.solve(x.T @ x + params["ridge"] * np.eye(d), x.T @ y)
    test_mse = float(np.mean((x_test @ (w_hat - w)) ** 2) + noise ** 2)   # expected squared error on fresh data
    return {{"test_mse": test_mse, "train_mse": float(np.mean((x @ w_hat - y) ** 2))}}


def analyze(cells) -> Analysis:
    """Claims, each with its estimate, 95% CI and verdict (petridish.lab.claims)."""
    done = [c for c in cells if c.status == "done"]
    by = {{(c.params["n"], c.seed): c.metrics["test_mse"] for c in done}}
    ns = sorted({{n for n, _ in by}})
    if len(ns) < 2:
        return Analysis(claims=[not_measured("test error falls as n grows", "fewer than 2 values of n finished")])
    small, large = ns[0], ns[-1]
    seeds = sorted({{s for n, s in by if n == small}} & {{s for n, s in by if n == large}})
    diff = paired_difference([by[small, s] for s in seeds], [by[large, s] for s in seeds])
    noise = done[0].params["noise"]
    claims = family([
        from_difference(f"test error falls from n = {{small}} to n = {{large}}", diff,
                        effect=f"test MSE at n = {{small}} minus at n = {{large}}"),
        from_values(f"at n = {{large}} the test error is below twice the noise floor ({{2 * noise ** 2:g}})",
                    [v for (n, _), v in by.items() if n == large], null=2 * noise ** 2, direction="less",
                    effect="test MSE minus twice the noise variance"),
    ])
    means = {{str(n): mean_ci([v for (m, _), v in by.items() if m == n])[0] for n in ns}}
    return Analysis(values={{"mean_test_mse": means}}, claims=claims)


def plot(cells, fig) -> None:
    """Test error against n: mean and 95% CI over seeds."""
    ax = fig.add_subplot(1, 1, 1)
    done = [c for c in cells if c.status == "done"]
    ns = sorted({{c.params["n"] for c in done}})
    stats = np.array([mean_ci([c.metrics["test_mse"] for c in done if c.params["n"] == n]) for n in ns])
    if len(ns):
        ax.errorbar(ns, stats[:, 0], yerr=[stats[:, 0] - stats[:, 1], stats[:, 2] - stats[:, 0]], fmt="o-", capsize=3)
        ax.axhline(done[0].params["noise"] ** 2, color="gray", ls="--", label="noise floor")
        ax.legend()
    ax.set(xscale="log", xlabel="training samples n", ylabel="test MSE", title="{name}")


EXPERIMENT = Experiment(
    name="{exp_name}",
    question="Does ridge regression's test error fall as the training set grows?",
    reference="(your reference)",
    summary="ridge regression test error against n (written by petridish new)",
    runtime="< 1 s",
    params=(
        Param("n", int, default=[20, 40, 80, 160, 320], quick=[20, 80, 320], low=2, help="training samples (swept)"),
        Param("d", int, default=10, low=1, help="input dimension"),
        Param("noise", float, default=0.5, low=0.0, help="label noise standard deviation"),
        Param("ridge", float, default=3.0, low=0.0, help="ridge penalty"),
    ),
    run=run, analyze=analyze, plot=plot,
    seeds=5, quick_seeds=3,
    table_metrics=("test_mse", "train_mse"),
    tiny={{"n": [20, 80]}},
    quick_budget_s=30.0,
)
'''

TEST_TEMPLATE = '''"""Tests of {name}.py (written by `petridish new`): run with `pytest test_{name}.py`."""
from pathlib import Path

from petridish.lab import check_experiment
from petridish.lab.source import load_experiment
from petridish.lab.sweep import run_sweep

HERE = Path(__file__).resolve().parent


def test_quick_sweep_runs_and_its_claims_are_measured():
    res = run_sweep(str(HERE / "{name}.py"), quick=True, store="memory", progress=False)
    exp = load_experiment(str(HERE / "{name}.py"))
    assert res.experiment == exp.name == "{exp_name}"
    assert len(res.cells) == 3 * 3 and all(c.status == "done" for c in res.cells)
    claims = res.analysis.claims
    assert claims and all(c.verdict != "not measured" for c in claims)
    assert claims[0].verdict == "supported", claims[0].finding()     # more data, lower test error


def test_the_experiment_contract():
    """Deterministic run, JSON metrics, one-line parameter errors, analyze/plot on a partial sweep
    (`petridish check {name}.py` runs the same suite)."""
    report = check_experiment(load_experiment(str(HERE / "{name}.py")))
    assert report.ok, report.failures
'''


def register(app: typer.Typer) -> None:
    app.command("new")(new_cmd)


def new_cmd(name: str = typer.Argument(..., help="Lower-case name: letters, digits, underscores."),
            directory: str = typer.Option(".", "--dir", help="Where to write NAME.py and test_NAME.py.")) -> None:
    """Write a small working experiment NAME.py and its test test_NAME.py."""
    for path in write_experiment(name, directory):
        typer.echo(str(path))
    typer.echo(f"next: petridish run {Path(directory) / (name + '.py')} --quick")


def write_experiment(name: str, directory: str = ".") -> list[Path]:
    """Write NAME.py and test_NAME.py into ``directory``; refuses to overwrite either."""
    if not NAME_RE.match(name):
        raise PetridishError(f"The 'NAME' argument of new must be a lower-case Python identifier (letters, digits, "
                             f"underscores, starting with a letter), e.g. my_experiment. Got {name!r}.")
    exp_name = name.replace("_", "-")
    if exp_name in registry.catalogue():      # cells are keyed by name: two codes must not share one
        raise PetridishError(f"The 'NAME' argument of new must not be the name of a known experiment "
                             f"('{exp_name}', from {registry.origin(exp_name)}). Choose another NAME.")
    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise PetridishError(f"The '--dir' option of new must be a directory. Got the file {directory!r}.")
    files = {folder / f"{name}.py": EXPERIMENT_TEMPLATE, folder / f"test_{name}.py": TEST_TEMPLATE}
    taken = [str(p) for p in files if p.exists()]
    if taken:
        raise PetridishError(f"{', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}; new never "
                             "overwrites a file. Choose another NAME or --dir.")
    folder.mkdir(parents=True, exist_ok=True)
    for path, template in files.items():
        path.write_text(template.format(name=name, exp_name=exp_name))
    return list(files)
