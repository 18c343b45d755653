"""Errors as one clear sentence: JSON ``{"detail": ...}`` under /api/ and for downloads, an HTML
page elsewhere (a person is reading). Same status codes either way: 404 unknown, 422 invalid."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from petridish.web import first_validation_error, http_detail


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path.endswith((".csv", ".parquet", ".png"))


def _reply(request: Request, status: int, detail: str):
    if _wants_json(request):
        return JSONResponse({"detail": detail}, status_code=status)
    title = {404: "Not found", 422: "Invalid request"}.get(status, "Error")
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"title": title, "message": detail, "status": status}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        where, msg, got_text = first_validation_error(exc)
        return _reply(request, 422, f"The '{where}' parameter of {request.url.path[:100]} is invalid: "
                                    f"{msg}. Got {got_text}.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = http_detail(exc)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no page {request.url.path[:100]}."
        return _reply(request, exc.status_code, detail)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        return _reply(request, 500, f"The dashboard hit an internal error on {request.url.path[:100]} "
                                    f"({type(exc).__name__}: {str(exc)[:200]}).")
