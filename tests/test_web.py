"""petridish.web: the pieces of the referee's and the dashboard's error sentences, checked with
real pydantic and FastAPI objects."""
from __future__ import annotations

import pytest
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, SecretStr
from starlette.exceptions import HTTPException

from petridish.errors import PetridishError
from petridish.web import first_validation_error, http_detail, load_typed_settings


def _client() -> TestClient:
    app = FastAPI()

    @app.get("/items")
    def items(n: int = Query(ge=1)):
        return {"n": n}

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return JSONResponse(list(first_validation_error(exc)), status_code=422)

    return TestClient(app)


def test_the_first_problem_names_the_parameter_and_cuts_the_input():
    where, msg, got = _client().get("/items", params={"n": "x" * 200}).json()
    assert where == "n"
    assert msg.startswith("Input should be a valid integer")
    assert got == repr("x" * 200)[:80] and len(got) == 80


def test_a_missing_parameter_got_nothing():
    assert _client().get("/items").json() == ["n", "Field required", "nothing"]


def test_a_location_of_one_part_is_kept():
    exc = RequestValidationError([{"loc": ("body",), "msg": "Field required", "type": "missing"}])
    assert first_validation_error(exc) == ("body", "Field required", "nothing")


def test_an_http_detail_is_text():
    assert http_detail(HTTPException(404)) == "Not Found"
    assert http_detail(HTTPException(400, detail="No such task.")) == "No such task."
    assert http_detail(HTTPException(400, detail={"a": 1})) == "{'a': 1}"


class _Settings(BaseModel):
    port: int = Field(default=8765, ge=1, le=65535)
    secret: SecretStr | None = Field(default=None, min_length=16)


def test_settings_ignore_none_overrides():
    assert load_typed_settings(_Settings, "the app", {"port": None}).port == 8765
    assert load_typed_settings(_Settings, "the app", {"port": 80}).port == 80


def test_an_invalid_setting_is_one_sentence():
    with pytest.raises(PetridishError) as info:
        load_typed_settings(_Settings, "the app", {"port": 0})
    assert str(info.value) == ("The 'port' setting of the app is invalid: "
                               "Input should be greater than or equal to 1. Got 0.")


def test_a_special_sentence_replaces_the_common_one():
    def special(field, first):
        return f"The '{field}' setting is invalid ({first['type']})." if field == "secret" else None

    with pytest.raises(PetridishError) as info:
        load_typed_settings(_Settings, "the app", {"secret": "short"}, special=special)
    assert str(info.value) == "The 'secret' setting is invalid (too_short)."
    with pytest.raises(PetridishError, match=r"Got 0\.$"):
        load_typed_settings(_Settings, "the app", {"port": 0}, special=special)
