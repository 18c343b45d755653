"""`petridish bench NAME`: run a script from benchmarks/ through the CLI."""
import typer

app = typer.Typer(help="Benchmarks: print side-by-side speed ratios.", no_args_is_help=True)
