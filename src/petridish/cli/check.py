"""`petridish check NAME|PATH [--timing] [--json]`: the experiment contract suite (``lab.check``).

One line per check (ok / FAIL / skip) and a summary line; exit 0 when every check passes, 1 when
one fails, 2 for bad input (an unknown experiment: the usual one-line error).
"""
from __future__ import annotations

import typer

from petridish.cli.emit import emit_json


def register(app: typer.Typer) -> None:
    """Add the `check` command to the main app."""
    app.command("check")(check_cmd)


def check_cmd(
    name: str = typer.Argument(..., help="Experiment: a name (see `petridish list`), a PATH.py, a package "
                                         "directory or package.module:ATTR."),
    timing: bool = typer.Option(False, "--timing", help="Also time the --quick sweep against the experiment's "
                                                        "quick_budget_s (slow: runs the whole quick sweep)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout and nothing else."),
) -> None:
    """Check an experiment against the lab's contract, on its tiny configuration (seconds)."""
    from petridish.lab.check import check_experiment
    from petridish.lab.sweep import resolve
    exp = resolve(name)                   # unknown name or bad path: PetridishError -> one line, exit 2
    if not exp.tiny:
        typer.echo(f"note: {exp.name} declares no tiny= configuration; checking its --quick one, which may take "
                   "minutes", err=True)
    report = check_experiment(exp, timing=timing)
    if as_json:
        emit_json(report.to_json())
    else:
        for r in report.results:
            typer.echo(r.line())
        failed = len(report.failures)
        verdict = "passes the contract" if report.ok else f"FAILS {failed} of {len(report.results)} checks"
        typer.echo(f"{exp.name}: {verdict} ({report.seconds:.1f} s)")
    if not report.ok:
        raise typer.Exit(1)
