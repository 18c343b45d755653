"""Leaderboards rendered once per change: the HTML page and the JSON document of each task's
board are kept as bytes and served from memory.

A cached board is valid while (a) no transaction that changed a LadderState (a released score)
or a Task has committed since it was rendered, and (b) the task has not crossed its opening or
closing time (``open``/``closed`` are part of it). The sessions of the app and of the scorer
report their commits through SQLAlchemy events (``watch``), which bump one version counter.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass

from fastapi import HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import event, select
from starlette.concurrency import run_in_threadpool

from petridish.ctf import storage
from petridish.ctf.db import LadderState, Task, utcnow
from petridish.ctf.views import public_leaderboard, task_dict

WATCHED = (LadderState, Task)
BOARD_PATH = re.compile(r"/(api/)?tasks/([a-z0-9][a-z0-9_-]{0,63})/leaderboard")


@dataclass(frozen=True)
class Rendered:
    version: int
    valid_until: object          # naive UTC datetime, or None for "until the next change"
    body: bytes
    media_type: str


class BoardCache:
    def __init__(self):
        self.version = 0
        self._bump = threading.Lock()
        self._entries: dict[tuple, Rendered] = {}

    def watch(self, make_session) -> None:
        """Invalidate on every commit of a session from make_session that changed a watched row."""
        def flushed(session, _ctx):
            if any(isinstance(o, WATCHED) for coll in (session.new, session.dirty, session.deleted) for o in coll):
                session.info["board_changed"] = True

        def committed(session):
            if session.info.pop("board_changed", False):
                with self._bump:
                    self.version += 1
        event.listen(make_session, "after_flush", flushed)
        event.listen(make_session, "after_commit", committed)

    def get(self, key: tuple) -> Rendered | None:
        hit = self._entries.get(key)
        if hit is None or hit.version != self.version or (hit.valid_until is not None and utcnow() >= hit.valid_until):
            return None
        return hit

    def put(self, key: tuple, rendered: Rendered) -> None:
        if len(self._entries) > 10_000:      # many tasks: start over rather than grow
            self._entries.clear()
        self._entries[key] = rendered


class FastBoards:
    """ASGI layer: a GET of a public board that is in the cache is answered here, without routing
    (a third of the server's time per request); a miss falls through to the routes, which render."""

    def __init__(self, app, boards: BoardCache):
        self.app, self.boards = app, boards

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET":
            m = BOARD_PATH.fullmatch(scope["path"])
            hit = m and self.boards.get(("json" if m.group(1) else "html", m.group(2)))
            if hit:
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", hit.media_type.encode()), (b"content-length", b"%d" % len(hit.body))]})
                await send({"type": "http.response.body", "body": hit.body})
                return
        await self.app(scope, receive, send)


async def serve(request: Request, kind: str, name: str) -> Response:
    """The cached public board (kind: 'json' or 'html'), rendered on a miss."""
    cache: BoardCache = request.app.state.boards
    hit = cache.get((kind, name))
    if hit is None:
        hit = await run_in_threadpool(_render, request, kind, name)
    return Response(hit.body, media_type=hit.media_type)


def _render(request: Request, kind: str, name: str) -> Rendered:
    cache: BoardCache = request.app.state.boards
    version = cache.version            # read first: a change during rendering forces a re-render
    with request.app.state.make_session() as session:
        task = session.scalar(select(Task).where(Task.name == name)) if storage.NAME_RE.fullmatch(name) else None
        if task is None:
            raise HTTPException(404, f"The task name must be an existing task (see GET /api/tasks). Got {name[:64]!r}.")
        rows, info, now = public_leaderboard(session, task), task_dict(task), utcnow()
        valid_until = min((t for t in (task.opens_at, task.closes_at) if t > now), default=None)
    if kind == "json":
        body = json.dumps({"task": info, "board": "public", "rows": rows}).encode()
        rendered = Rendered(version, valid_until, body, "application/json")
    else:
        page = request.app.state.templates.get_template("leaderboard.html").render(
            request=request, title=f"{info['name']}: public leaderboard", task=info, rows=rows, board="public")
        rendered = Rendered(version, valid_until, page.encode(), "text/html; charset=utf-8")
    cache.put((kind, name), rendered)
    return rendered

