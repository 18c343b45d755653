"""The dashboard's app factory: ``create_app(settings)`` opens the store read-only and wires
templates, static assets (served from the package: works offline), routers and two layers
(security headers outermost, then a Host check against DNS rebinding when bound to loopback).

Serve it with ``petridish ui`` (cli/ui.py). Every route is a GET; nothing writes to the store.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from petridish.lab.store import SQLStore, Store
from petridish.ui import errors
from petridish.ui.figures import FigureCache
from petridish.ui.headers import SecureHeaders
from petridish.ui.routers import compare, progress, runs
from petridish.ui.settings import LOOPBACK, Settings
from petridish.ui.views import filters

HERE = Path(__file__).parent


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """``store``: an open store to show (tests, notebooks); default: ``settings.store`` read-only."""
    app = FastAPI(title="petridish dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.store = store if store is not None else SQLStore(settings.store, read_only=True)
    app.state.figures = FigureCache(settings.figure_cache)
    templates = Jinja2Templates(directory=str(HERE / "templates"))   # autoescape on for .html
    templates.env.filters.update(filters())
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (runs, progress, compare):
        app.include_router(module.router)
    errors.install(app)
    if settings.host in LOOPBACK:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"])
    app.add_middleware(SecureHeaders)     # outermost: every response, errors included
    return app
