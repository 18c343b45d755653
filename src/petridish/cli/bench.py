"""`petridish bench NAME [ARGS...]`: run benchmarks/NAME.py (its `main(argv)`) through the CLI.

Benchmarks live beside the package in the repository (they are scripts, not library code),
so this command needs a source checkout: an editable install, or $PETRIDISH_BENCHMARKS.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import typer

from petridish.errors import PetridishError


def benchmarks_dir() -> Path | None:
    env = os.environ.get("PETRIDISH_BENCHMARKS")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[3] / "benchmarks", Path.cwd() / "benchmarks"]
    return next((c for c in candidates if c.is_dir()), None)


def available(folder: Path | None) -> list[str]:
    if folder is None:
        return []
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def run_benchmark(name: str, argv: list[str]) -> object:
    folder = benchmarks_dir()
    names = available(folder)
    if name not in names:
        where = "none found (run from a source checkout or set $PETRIDISH_BENCHMARKS)" if folder is None \
            else ", ".join(repr(n) for n in names)
        raise PetridishError(f"The 'NAME' argument of bench must be one of {where}. Got {name!r}.")
    spec = importlib.util.spec_from_file_location(f"petridish_bench_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    saved, sys.argv = sys.argv, [f"petridish bench {name}", *argv]   # argparse's prog, in its help and errors
    try:
        return module.main(argv)
    finally:
        sys.argv = saved


def register(app: typer.Typer) -> None:
    # no --help of its own: `petridish bench ensemble --help` is the script's help
    @app.command("bench", add_help_option=False,
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def bench(ctx: typer.Context, name: str = typer.Argument(..., help="A script in benchmarks/, e.g. ensemble.")) -> None:
        """Run a benchmark from benchmarks/ (extra arguments go to the script, e.g. --json or --help)."""
        if name in ("-h", "--help"):
            typer.echo(ctx.get_help())
            typer.echo("\nBenchmarks: " + (", ".join(available(benchmarks_dir())) or "none found"))
            return
        run_benchmark(name, list(ctx.args))
