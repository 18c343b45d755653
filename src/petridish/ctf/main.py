"""The app factory: ``create_app(settings)`` wires the database, the scorer, templates, the
board cache, the routers and two ASGI layers (serving.Hardening outermost, then board.FastBoards).

Serve it with ``petridish ctf serve`` (serving.serve: timeouts, connection guard). Run one server
process per database (the scorer's Ladder lock is in-process); uvicorn's ``--workers`` > 1 is
not supported.
"""
from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from petridish.ctf.board import BoardCache, FastBoards
from petridish.ctf.db import default_url, make_engine, make_sessionmaker
from petridish.ctf.intake import Intake
from petridish.ctf.routers import admin, competitors, leaderboard, pages, registration, submissions, tasks
from petridish.ctf.scoring import Scorer
from petridish.ctf.security import SlidingWindow
from petridish.ctf.serving import Hardening
from petridish.ctf.settings import Settings
from petridish.web import first_validation_error, http_detail

TEMPLATES = Path(__file__).parent / "templates"


def create_app(settings: Settings) -> FastAPI:
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.db_url or default_url(data_dir)
    engine = make_engine(url)
    make_session = make_sessionmaker(engine)
    # one lock for every database writer, scorer included: writers queue on it (woken at once)
    # instead of polling SQLite's busy handler, which starved submissions under load
    write_lock = threading.Lock()
    scorer_sessions = make_sessionmaker(make_engine(url, durable=False))
    scorer = Scorer(settings, scorer_sessions, write_lock)
    boards = BoardCache()            # rendered leaderboards, invalidated by any released score
    for sessions in (make_session, scorer_sessions):
        boards.watch(sessions)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scorer.start()        # resumes queued/running submissions first
        yield
        scorer.stop()

    app = FastAPI(title="petridish CTF referee", lifespan=lifespan)
    app.state.settings, app.state.engine, app.state.make_session = settings, engine, make_session
    app.state.scorer, app.state.write_lock = scorer, write_lock
    app.state.intake = Intake(make_session, write_lock)   # group commit of new submissions
    app.state.templates = Jinja2Templates(directory=str(TEMPLATES))
    app.state.boards = boards
    app.state.registrations = SlidingWindow(settings.registrations_per_hour, 3600.0)
    for module in (tasks, competitors, registration, submissions, leaderboard, admin, pages):
        app.include_router(module.router)
    _error_handlers(app)
    app.add_middleware(FastBoards, boards=boards)      # cached boards without routing
    app.add_middleware(Hardening, settings=settings)   # (outermost) headers, Origin check, body caps, deadline
    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        where, msg, got_text = first_validation_error(exc)
        return JSONResponse({"detail": f"The '{where}' field of {request.method} {request.url.path} "
                                       f"is invalid: {msg}. Got {got_text}."}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = http_detail(exc)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no route {request.method} {request.url.path[:100]}."
        elif exc.status_code == 405:
            detail = f"The route {request.url.path[:100]} does not accept {request.method}."
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        return JSONResponse({"detail": f"The referee hit an internal error on {request.method} "
                                       f"{request.url.path[:100]} ({type(exc).__name__}); it is logged."},
                            status_code=500)
