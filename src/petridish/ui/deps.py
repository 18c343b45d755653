"""Request-scoped access to what ``create_app`` put on the app (settings, store, templates)."""
from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from petridish.lab.store import Store


def get_store(request: Request) -> Store:
    return request.app.state.store


def render(request: Request, template: str, status: int = 200, **ctx) -> HTMLResponse:
    ctx.setdefault("settings", request.app.state.settings)
    return request.app.state.templates.TemplateResponse(request, template, ctx, status_code=status)
