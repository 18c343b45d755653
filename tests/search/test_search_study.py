"""Adaptive search end to end: trials are cells, resume continues the study, pruning,
parallel trials (process pool and a real local Ray instance), and the CLI."""
from __future__ import annotations

import json

import pytest

from petridish.cli.main import main
from petridish.errors import PetridishError
from petridish.experiments import get
from petridish.lab.store import SQLStore
from petridish.lab.sweep import run_sweep
from petridish.search import run_search
from ray_helpers import PRUNABLE, ran_in_parallel, ray_session  # noqa: F401

LDD = dict(quick=True, overrides={"gamma": "0.5,2", "n": 40})


def test_grid_search_visits_each_point_once_and_finds_the_true_minimum(tmp_path):
    store = str(tmp_path / "runs")
    res = run_search("linear-double-descent", metric="risk", budget=10, sampler="grid", store=store, **LDD)
    assert res.computed == 4 and len(res.trials) == 4              # budget capped at the 2 × 2 grid
    seen = {(t["params"]["gamma"], t["params"]["ridge"]) for t in res.trials}
    assert seen == {(g, r) for g in (0.5, 2.0) for r in ("none", "optimal")}
    # oracle: run every grid point directly with the experiment's own run()
    exp = get("linear-double-descent")
    direct = {(g, r): exp.run({"gamma": g, "n": 40, "r2": 1.0, "sigma2": 0.25, "ridge": r}, 0)["risk"]
              for g, r in seen}
    assert res.best_value == min(direct.values())
    assert (res.best_params["gamma"], res.best_params["ridge"]) == min(direct, key=direct.get)
    # trials are cells of the search's run in the petridish store
    st = SQLStore(store)
    rec = st.get_run(res.run_id)
    assert rec.status == "finished" and rec.provenance["search"]["sampler"] == "grid"
    cells = st.run_cells(res.run_id)
    assert len(cells) == 4 and all(c.status == "done" for c in cells)
    assert {round(c.metrics["risk"], 12) for c in cells} == {round(v, 12) for v in direct.values()}


def test_resumed_search_continues_the_study_and_reuses_sweep_cells(tmp_path):
    store = str(tmp_path / "runs")
    first = run_search("linear-double-descent", metric="risk", budget=3, sampler="random", store=store, **LDD)
    again = run_search("linear-double-descent", metric="risk", budget=5, sampler="random", store=store, **LDD)
    assert again.study_name == first.study_name and again.run_id == first.run_id
    assert first.computed == 3 and again.computed == 2 and len(again.trials) == 5
    # a sweep's finished cells are trials for free: a grid search over the swept cells computes nothing
    run_sweep("linear-double-descent", seeds=[0], store=store, progress=False, **LDD)
    grid = run_search("linear-double-descent", metric="risk", budget=4, sampler="grid", store=store, **LDD)
    assert grid.computed == 0 and len(grid.trials) == 4


def test_median_pruner_stops_bad_trials_and_records_them(tmp_path):
    res = run_search(PRUNABLE, metric="loss", budget=12, sampler="random", pruner="median",
                     store=str(tmp_path / "runs"))
    states = [t["state"] for t in res.trials]
    assert "pruned" in states and "complete" in states
    pruned = [t for t in res.trials if t["state"] == "pruned"]
    done = [t for t in res.trials if t["state"] == "complete"]
    assert all(t["steps"] < 8 for t in pruned) and all(t["steps"] == 8 for t in done)
    # the median pruner only stops trials whose curve is worse than the median so far
    assert min(t["params"]["x"] for t in pruned) > min(t["params"]["x"] for t in done)
    statuses = {c.status for c in res.cells}
    assert statuses == {"done", "pruned"}


def test_parallel_trials_on_ray_with_pruning(ray_session, tmp_path):
    res = run_search(PRUNABLE, metric="loss", budget=8, sampler="tpe", pruner="median", workers=2,
                     executor="ray", store=str(tmp_path / "runs"), overrides={"pause": 0.05})
    assert len(res.trials) == 8 and res.computed == 8
    assert ran_in_parallel(res.cells)                  # two Ray workers ran trials at the same time
    assert res.best_value == min(t["value"] for t in res.trials if t["state"] == "complete")


def test_parallel_trials_in_a_process_pool(tmp_path):
    res = run_search(PRUNABLE, metric="loss", budget=4, sampler="tpe", workers=2, store=str(tmp_path / "runs"),
                     overrides={"pause": 0.05})
    assert res.computed == 4 and all(c.status == "done" for c in res.cells)
    assert ran_in_parallel(res.cells)                  # two worker processes ran trials at the same time
    assert res.best_value == min(c.metrics["loss"] for c in res.cells)


def test_cli_search_on_two_catalogue_experiments(tmp_path, capsys):
    store = str(tmp_path / "runs")
    rc = main(["search", "linear-double-descent", "--metric", "risk", "--budget", "3", "--quick",
               "--set", "n=40", "--set", "gamma=0.5,2", "--store", store, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(out["trials"]) == 3 and out["best_value"] > 0
    # hyperparameter-design: search its one sweep axis (the strategy) on a tiny task
    rc = main(["search", "hyperparameter-design", "--metric", "fraction_to_tol", "--budget", "2",
               "--sampler", "random", "--set", "grid=small", "--set", "epochs=1", "--set", "n_train=200",
               "--store", store, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(out["trials"]) == 2
    assert all(0 < t["value"] <= 1 for t in out["trials"])
    rc = main(["search", "linear-double-descent", "--metric", "risk", "--sampler", "nope", "--store", store])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().count("\n") == 0 and "The 'sampler' parameter of search" in err


def test_unknown_metric_is_a_clear_error(tmp_path):
    with pytest.raises(PetridishError, match="must be a scalar metric of 'linear-double-descent'"):
        run_search("linear-double-descent", metric="nope", budget=2, store=str(tmp_path / "r"), **LDD)


@pytest.mark.parametrize("sampler", ["random", "tpe", "cmaes"])
def test_every_sampler_runs_and_reports_the_best_of_its_trials(tmp_path, sampler):
    res = run_search("linear-double-descent", metric="risk", budget=5, sampler=sampler,
                     store=str(tmp_path / "runs"), quick=True, overrides={"n": 40})
    values = [t["value"] for t in res.trials]
    assert len(res.trials) == 5 and res.best_value == min(values)
    assert {"gamma", "ridge"} <= set(res.best_params)


def test_median_pruner_stops_trials_of_a_catalogue_experiment(tmp_path):
    # mnist1d-baselines reports its ensemble's test accuracy after every evaluation
    res = run_search("mnist1d-baselines", metric="test_acc", direction="maximize", budget=8, sampler="random",
                     pruner="median", search=["lr"], store=str(tmp_path / "runs"),
                     overrides={"model": "mlp", "shuffle": False, "n_train": 500, "n_test": 300,
                                "steps": 300, "batch_size": 100})
    pruned = [t for t in res.trials if t["state"] == "pruned"]
    done = [t for t in res.trials if t["state"] == "complete"]
    assert pruned and done
    assert max(t["steps"] for t in pruned) < min(t["steps"] for t in done)   # stopped early
    assert res.best_value == max(t["value"] for t in done)
