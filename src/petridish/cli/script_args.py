"""Arguments of the scripts in benchmarks/: a bad value is one line and exit code 2, as in the CLI.

    ap = ScriptParser(description=...)
    ap.add_argument("--models", type=number_arg(int, low=1), default=32)

``number_arg`` checks a number against the package's constraint template; ``ScriptParser`` prints argparse's
error as one line that says where the help is, instead of the usage block and then the error.
"""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from petridish.errors import InvalidParameterError, check_number, describe_number


def number_arg(kind: type = int, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False):
    """An argparse ``type=``: "argument --models: must be an int >= 1. Got 0." for a bad value."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = text
        try:
            return check_number(value, "", "", kind=kind, low=low, high=high, low_open=low_open, high_open=high_open)
        except InvalidParameterError:
            raise argparse.ArgumentTypeError(
                f"must be {describe_number(kind, low, high, low_open, high_open)}. Got {text}.") from None
    parse.__name__ = kind.__name__                 # argparse names the type in its fallback message
    return parse


class ScriptParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)
