"""What the two web apps, the CTF referee (petridish.ctf) and the dashboard (petridish.ui), share:
how the first problem of a request's validation error, an HTTP error's detail and an invalid
setting are put into words. Each app keeps its own sentence around these pieces.

This module imports neither app (dependencies point from ctf and ui to here), and only pydantic
and petridish.errors at run time, so loading settings does not import FastAPI.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

from pydantic import BaseModel, ValidationError

from petridish.errors import PetridishError

if TYPE_CHECKING:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

M = TypeVar("M", bound=BaseModel)


def first_validation_error(exc: RequestValidationError) -> tuple[str, str, str]:
    """``(where, msg, got_text)`` of the first problem of a request: one problem is clearer than a list.

    ``where`` drops the location's first part ("query", "path", "body") unless nothing else is
    left; ``got_text`` is the input's repr cut to 80 characters, or "nothing" when it was absent.
    """
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"][1:]) or str(err["loc"][0])
    got = err.get("input")
    got_text = "nothing" if got is None else repr(got)[:80]
    return where, err["msg"], got_text


def http_detail(exc: HTTPException) -> str:
    """An HTTP error's detail as text: a detail may be any JSON value, a reply carries a sentence."""
    return exc.detail if isinstance(exc.detail, str) else str(exc.detail)


def load_typed_settings(cls: type[M], owner: str, overrides: dict[str, Any],
                        special: Callable[[str, dict], str | None] | None = None) -> M:
    """``cls`` from the environment plus ``overrides`` (None ones ignored: "not given on the command
    line"); an invalid setting raises PetridishError with one sentence naming ``owner``.

    ``special(field, error)`` may return its own sentence for a field (e.g. one whose value must
    never be echoed); None falls back to the common sentence.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return cls(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        sentence = special(field, first) if special is not None else None
        if sentence is None:
            sentence = (f"The '{field}' setting of {owner} is invalid: {first['msg']}. "
                        f"Got {first.get('input')!r}.")
        raise PetridishError(sentence) from None
