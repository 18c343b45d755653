"""One error type for bad input, one message template (scikit-learn style).

"The 'lr' parameter of train must be a float > 0. Got -0.1."
The CLI prints such errors as one line and exits with code 2.
"""
from __future__ import annotations

from typing import Any


class PetridishError(Exception):
    """Bad input or a refused operation; its message is one complete line."""


class InvalidParameterError(PetridishError, ValueError):
    pass


def invalid(name: str, owner: str, expected: str, got: Any) -> InvalidParameterError:
    """Build the standard message: The 'name' parameter of owner must be expected. Got got."""
    return InvalidParameterError(f"The '{name}' parameter of {owner} must be {expected}. Got {got!r}.")


def check_number(value: Any, name: str, owner: str, *, kind: type = float,
                 low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> Any:
    """Validate a scalar and return it converted to `kind` (int or float)."""
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int and (not is_num or float(value) != int(value)):
        raise invalid(name, owner, describe_number(kind, low, high, low_open, high_open), value)
    if not is_num:
        raise invalid(name, owner, describe_number(kind, low, high, low_open, high_open), value)
    v = kind(value)
    bad = (low is not None and (v <= low if low_open else v < low)) or \
          (high is not None and (v >= high if high_open else v > high))
    if bad or v != v:
        raise invalid(name, owner, describe_number(kind, low, high, low_open, high_open), value)
    return v


def check_choice(value: Any, name: str, owner: str, choices) -> Any:
    if value not in choices:
        raise invalid(name, owner, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def describe_number(kind: type, low, high, low_open: bool, high_open: bool) -> str:
    """The constraint part of the message template: "an int >= 1", "a float > 0 and <= 1"."""
    article = "an int" if kind is int else "a float"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return article + (" " + " and ".join(parts) if parts else "")


def one_line(e: BaseException) -> str:
    """An exception's message on one line. For a database error, the driver's own message: psycopg's spans
    two lines, and SQLAlchemy's wrapper adds the statement and a link to its docs."""
    orig = getattr(e, "orig", None) or e
    return " ".join(line.strip() for line in str(orig).splitlines() if line.strip())


def shown_url(url: str) -> str:
    """A database URL as messages and logs show it: the password masked ("***"), so an error line
    never carries a secret into a terminal's scrollback or a CI log."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:                      # not a URL at all: nothing in it parses as a password
        return url
