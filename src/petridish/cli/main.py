"""The `petridish` command line. Usage errors print one line and exit 2; --debug shows tracebacks."""
from __future__ import annotations

import os
import sys
from typing import Optional

import typer

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx

from petridish.cli.emit import emit_json
from petridish.cli.options import device_option, parse_sets
from petridish.errors import PetridishError
from petridish.lab import registry
from petridish.lab.source import experiment_for

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="petridish: a laboratory for the science of deep learning.")

_DEBUG = {"on": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    _DEBUG["on"] = debug or _DEBUG["on"]


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout.")) -> None:
    """The catalogue and the installed plug-ins: one line per experiment."""
    cat = registry.catalogue()
    where = {n: _origin_label(registry.origin(n)) for n in cat}
    if as_json:
        emit_json([{"name": e.name, "summary": e.summary or e.question, "reference": e.reference,
                    "runtime": e.runtime, "origin": registry.origin(e.name), "plugin": where[e.name] != "catalogue"}
                   for e in cat.values()])
        return
    width = max((len(n) for n in cat), default=10)
    for e in cat.values():
        mark = "" if where[e.name] == "catalogue" else f"  ({where[e.name]})"
        typer.echo(f"{e.name.ljust(width)}  {e.summary or e.question}  [{e.runtime}]{mark}")


def _origin_label(origin: str) -> str:
    """"catalogue" for petridish's own experiments, else "plug-in: <distribution version>"."""
    return "catalogue" if origin.split(" ")[0] == "petridish" else f"plug-in: {origin}"


@app.command("run")
def run_cmd(
    name: str = typer.Argument(..., help="Experiment: a name (see `petridish list`), PATH.py, a package "
                                         "directory, or package.module:ATTR."),
    set_: list[str] = typer.Option([], "--set", help="Override a parameter: key=value, or key=a,b,c to sweep."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Number of seeds (default: the experiment's)."),
    new_version: bool = typer.Option(False, "--new-version", help="The experiment's source changed: start a new "
                                     "run with its own cells (the source hash goes into run id and cell keys)."),
    continue_changed: bool = typer.Option(False, "--continue-changed", help="The experiment's source changed: "
                                          "keep the run's cells and record the change in its provenance."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local worker processes, each cell on one "
                                          "thread [one per core; with ray: the cluster's CPUs]."),
    store: Optional[str] = typer.Option(None, "--store", help="SQLAlchemy URL or directory [./petridish-runs]."),
    quick: bool = typer.Option(False, "--quick", help="The small configuration (about a minute)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout and nothing else."),
    executor: str = typer.Option("local", "--executor", help="local or ray."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (with --executor ray)."),
    report: bool = typer.Option(False, "--report", help="Also write the figure and HTML report."),
    out: Optional[str] = typer.Option(None, "--out", help="Report directory (with --report) [STORE/reports]."),
    device: str = device_option(),
) -> None:
    """Run (or resume) a sweep; finished cells are never recomputed."""
    if executor not in ("local", "ray"):
        raise PetridishError(f"The '--executor' option must be one of 'local', 'ray'. Got {executor!r}.")
    if seeds is not None and seeds < 1:
        raise PetridishError(f"The '--seeds' option must be an int >= 1. Got {seeds}.")
    if workers is not None and workers < 1:
        raise PetridishError(f"The '--workers' option must be an int >= 1. Got {workers}.")
    if executor == "ray" and address:      # a wrong address fails before torch and Ray load
        from petridish.lab.ray_address import check_reachable
        check_reachable(address)
    from petridish.lab.source_guard import mode_for
    from petridish.lab.sweep import run_sweep
    mode = mode_for(new_version, continue_changed)
    try:
        res = run_sweep(name, overrides=parse_sets(set_), seeds=seeds, quick=quick, store=store,
                        workers=workers, executor=executor, address=address, progress=None,
                        device=device, source_changed=mode)
    except KeyboardInterrupt:
        typer.echo("interrupted: every finished cell is stored; run the same command again to resume.", err=True)
        raise typer.Exit(130)
    if as_json:
        emit_json(res.to_json())
    else:
        from petridish.lab.store import open_store
        st = open_store(store)
        _print_summary(st, res.run_id)
        typer.echo(f"\nrun {res.run_id}: {len(res.cells)} cells ({res.computed} computed now). "
                   f"`petridish show {res.run_id}` / `petridish report {res.run_id}`")
    if report:
        png, html_path = _write_report(store, res.run_id, out)
        if not as_json:
            typer.echo(f"report: {html_path}\nfigure: {png}")
        else:
            typer.echo(f"report: {html_path}", err=True)


def report_dir(store: Optional[str], out: Optional[str]) -> str:
    """--out if given; else reports/ beside a directory store, else ./petridish-runs/reports."""
    if out:
        return out
    target = store or os.environ.get("PETRIDISH_STORE", "petridish-runs")
    if "://" in target or target == "memory":
        return os.path.join("petridish-runs", "reports")
    folder = os.path.dirname(target) if target.endswith((".db", ".sqlite", ".sqlite3")) else target
    return os.path.join(folder or ".", "reports")


def _find_run(store: Optional[str], run: str):
    from petridish.errors import shown_url
    from petridish.lab.store import open_store
    st = open_store(store, read_only=True)
    rec = st.get_run(run)
    if rec is None:
        raise PetridishError(f"No run '{run}' in the store {shown_url(getattr(st, 'url', store))}. "
                             "Run 'petridish runs' to list runs.")
    return st, rec


def _load_run(store: Optional[str], run: str):
    st, rec = _find_run(store, run)
    return st, rec, experiment_for(rec), st.run_cells(rec.id)


def _print_summary(st, run_id: str) -> None:
    from petridish.lab.sweep import analyze
    from petridish.lab.table import render_text
    rec = st.get_run(run_id)
    exp = experiment_for(rec)
    cells = st.run_cells(rec.id)
    typer.echo(f"{exp.name} — run {rec.id} ({rec.status}, {len(cells)}/{rec.n_cells} cells, "
               f"{rec.wall_time:.1f} s)\n")
    typer.echo(render_text(exp, rec.config, cells))
    failed = [c for c in cells if c.status == "failed"]
    if failed:
        typer.echo(f"\n{len(failed)} failed cells; first error: {failed[0].error}")
    findings = analyze(exp, cells).findings
    if findings:
        typer.echo("\nFindings:")
        for f in findings:
            typer.echo(f"  - {f}")


def _write_report(store: Optional[str], run: str, out: Optional[str]):
    from petridish.lab.report import write_report
    _st, rec, exp, cells = _load_run(store, run)
    return write_report(exp, rec, cells, report_dir(store, out))


@app.command("runs")
def runs_cmd(store: Optional[str] = typer.Option(None, "--store"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """The runs in the store, newest first."""
    from petridish.errors import shown_url
    from petridish.lab.store import open_store
    st = open_store(store, read_only=True)
    runs = st.list_runs()
    if not runs and not as_json:
        typer.echo(f"No runs in the store {shown_url(getattr(st, 'url', store))}.", err=True)
    if as_json:
        emit_json([{"run": r.id, "experiment": r.experiment, "status": r.status, "cells": r.n_cells,
                    "wall_time": r.wall_time, "created": r.created} for r in runs])
        return
    import datetime as dt
    for r in runs:
        when = dt.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M")
        typer.echo(f"{r.id}  {r.experiment:<24} {r.status:<11} {r.n_cells:>5} cells  {r.wall_time:8.1f} s  {when}")


@app.command("show")
def show_cmd(run: str = typer.Argument(...), store: Optional[str] = typer.Option(None, "--store"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """A summary table: means and 95% confidence intervals over seeds."""
    st, rec, exp, cells = _load_run(store, run)
    if as_json:
        from petridish.lab.sweep import analyze
        from petridish.lab.table import table_rows
        by, names, rows = table_rows(exp, rec.config, cells)
        a = analyze(exp, cells)
        emit_json({"run": rec.id, "experiment": exp.name, "by": by, "rows": rows,
                   "analysis": a.to_json()})
        return
    _print_summary(st, rec.id)


@app.command("report")
def report_cmd(run: str = typer.Argument(...), store: Optional[str] = typer.Option(None, "--store"),
               out: Optional[str] = typer.Option(None, "--out", help="Directory for the files [STORE/reports].")) -> None:
    """Write the run's PNG figure and self-contained HTML report."""
    png, html_path = _write_report(store, run, out)
    typer.echo(f"figure: {png}\nreport: {html_path}")


@app.command("export")
def export_cmd(run: str = typer.Argument(...), fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
               out: Optional[str] = typer.Option(None, "--out", help="Output file [RUN.csv|RUN.parquet]."),
               store: Optional[str] = typer.Option(None, "--store")) -> None:
    """Export one row per cell (parameters, seed, status, metrics)."""
    from petridish.lab.export import export
    if fmt not in ("csv", "parquet"):
        raise PetridishError(f"The '--format' option must be one of 'csv', 'parquet'. Got {fmt!r}.")
    st, rec = _find_run(store, run)          # the cells alone: no need for the experiment's code
    path = out or f"{rec.id}.{fmt}"
    export(st.run_cells(rec.id), rec.id, path, fmt)
    typer.echo(path)


def _mount() -> None:
    from petridish.cli import bench, ctf, search
    app.add_typer(ctf.app, name="ctf")
    bench.register(app)
    search.register(app)
    from petridish.cli import new as new_cli   # `petridish new NAME`: a working experiment file and its test
    new_cli.register(app)
    from petridish.cli import check as check_cli   # `petridish check`: the experiment contract suite
    check_cli.register(app)
    from petridish.cli import ui as ui_cli   # `petridish ui`: the dashboard
    ui_cli.register(app)


_mount()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("PETRIDISH_DEBUG"))
    if debug:
        os.environ["PETRIDISH_DEBUG"] = "1"
        _DEBUG["on"] = True
    cmd = typer.main.get_command(app)
    try:
        rc = cmd.main(args=args, prog_name="petridish", standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        return 130
    except getattr(_cx, "NoArgsIsHelpError", ()) as e:   # bare group: help text, as click prints it
        print(e.ctx.get_help() if e.ctx else str(e), file=sys.stderr)
        return 2
    except _cx.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "petridish"
        print(f"error: {e.format_message()} (see '{where} --help')", file=sys.stderr)
        return 2
    except _cx.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        return e.exit_code or 2
    except PetridishError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every finished cell is stored; run the same command again to resume.", file=sys.stderr)
        return 130
    except SystemExit as e:            # a benchmark script's argparse (--help, or its one-line error)
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2


if __name__ == "__main__":
    sys.exit(main())
