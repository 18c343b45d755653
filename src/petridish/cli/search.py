"""`petridish search NAME --metric M --budget N`: adaptive search (Optuna) over an
experiment's declared parameter space. Trials are cells in the store, so `show`,
`report` and `export` work on the search's run."""
from __future__ import annotations

from typing import Optional

import typer

from petridish.cli.emit import emit_json
from petridish.cli.options import device_option, parse_sets


def register(app: typer.Typer) -> None:
    """Add the `search` command to the main app."""
    app.command("search")(search_cmd)


def search_cmd(
    name: str = typer.Argument(..., help="Experiment: a name (see `petridish list`), PATH.py, a package "
                                         "directory, or package.module:ATTR."),
    metric: str = typer.Option(..., "--metric", help="Scalar metric to optimize (a key of the cell's metrics)."),
    direction: str = typer.Option("minimize", "--direction", help="minimize or maximize."),
    budget: int = typer.Option(20, "--budget", help="Total trials in the study (a resumed search counts old ones)."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, random, grid (the declared sweep lists) or cmaes."),
    pruner: str = typer.Option("none", "--pruner", help="none, median or hyperband (needs intermediate reports)."),
    set_: list[str] = typer.Option([], "--set", help="Fix a parameter (key=value) or give its range (key=a,b,c)."),
    search: Optional[str] = typer.Option(None, "--search", help="Comma-separated parameters to search "
                                                                "[the sweep axes]."),
    seed: int = typer.Option(0, "--seed", help="Cell seed of every trial."),
    new_version: bool = typer.Option(False, "--new-version", help="The experiment's source changed: start a new "
                                     "study with its own cells (the source hash goes into study, run id and "
                                     "cell keys)."),
    continue_changed: bool = typer.Option(False, "--continue-changed", help="The experiment's source changed: "
                                          "keep the study's cells and record the change in its run's provenance."),
    sampler_seed: int = typer.Option(0, "--sampler-seed", help="Seed of the sampler."),
    quick: bool = typer.Option(False, "--quick", help="Search around the quick configuration."),
    workers: int = typer.Option(1, "--workers", help="Trials in parallel."),
    executor: str = typer.Option("local", "--executor", help="local or ray."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (with --executor ray)."),
    store: Optional[str] = typer.Option(None, "--store", help="SQLAlchemy URL or directory [./petridish-runs]."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout and nothing else."),
    device: str = device_option(),
) -> None:
    """Adaptive search; running the same command again continues the same study."""
    if executor == "ray" and address:      # a wrong address fails before torch and Ray load
        from petridish.lab.ray_address import check_reachable
        check_reachable(address)
    from petridish.lab.source_guard import mode_for
    from petridish.search import run_search
    mode = mode_for(new_version, continue_changed)
    names = [s.strip() for s in search.split(",") if s.strip()] if search else None
    res = run_search(name, metric=metric, direction=direction, budget=budget, sampler=sampler, pruner=pruner,
                     overrides=parse_sets(set_), search=names, quick=quick, seed=seed, sampler_seed=sampler_seed,
                     store=store, workers=workers, executor=executor, address=address, device=device,
                     source_changed=mode)
    if as_json:
        emit_json(res.to_json())
        return
    states: dict[str, int] = {}
    for t in res.trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    typer.echo(f"{res.experiment} — search run {res.run_id} (study {res.study_name})")
    typer.echo(f"trials: {len(res.trials)} ({', '.join(f'{n} {s}' for s, n in sorted(states.items()))}); "
               f"{res.computed} computed now")
    if res.best_params is not None:
        typer.echo(f"best {res.metric} = {res.best_value:.6g} ({res.direction}) at:")
        for k, v in res.best_params.items():
            typer.echo(f"  {k} = {v}")
    for f in res.analysis.findings[1:]:
        typer.echo(f"  - {f}")
    typer.echo(f"`petridish show {res.run_id}` / `petridish report {res.run_id}` / `petridish export {res.run_id}`")
