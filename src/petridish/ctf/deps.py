"""FastAPI dependencies: a database session per request, the competitor behind a token or a
browser session, the admin, and the bounded integer types of paths and bodies."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Iterator

from fastapi import Depends, Header, HTTPException, Path, Request
from pydantic import AfterValidator
from sqlalchemy import select
from sqlalchemy.orm import Session

from petridish.ctf import security, storage
from petridish.ctf.db import Competitor, Task, WebSession, utcnow

# every integer a client sends is bounded (SQLite and PostgreSQL integers are 64/32 bits)
MAX_INT = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_INT)]


def _bounded_time(t: dt.datetime) -> dt.datetime:
    if not 1970 <= t.year <= 9000:
        raise ValueError(f"should be a date-time between the years 1970 and 9000, not {t.year}")
    return t


Moment = Annotated[dt.datetime, AfterValidator(_bounded_time)]


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.make_session() as session:
        yield session


def competitor_from_token(session: Session, token: str | None) -> Competitor | None:
    token_id = security.split_token(token or "")
    if token_id is None:
        return None
    comp = session.scalar(select(Competitor).where(Competitor.token_id == token_id))
    # compare even when no row matched, so timing does not tell the two cases apart
    stored = comp.token_hash if comp is not None else "0" * 64
    ok = security.same(stored, security.hash_token(token))
    return comp if (ok and comp is not None) else None


def competitor_from_session(session: Session, sid: str | None) -> Competitor | None:
    """The competitor of a live browser session (cookie value sid), else None."""
    if not sid or len(sid) > 128:
        return None
    return session.scalar(select(Competitor).join(WebSession, WebSession.competitor_id == Competitor.id)
                          .where(WebSession.sid_hash == security.hash_token(sid), WebSession.expires_at > utcnow()))


def current_competitor(authorization: str | None = Header(default=None),
                       session: Session = Depends(get_db)) -> Competitor:
    if not authorization:
        raise HTTPException(401, "This route needs an API token: send the header "
                                 "'Authorization: Bearer <token>' (get one from POST /api/competitors).",
                            headers={"WWW-Authenticate": "Bearer"})
    scheme, _, token = authorization.partition(" ")
    comp = competitor_from_token(session, token.strip()) if scheme.lower() == "bearer" else None
    if comp is None:
        raise HTTPException(401, "The API token must be a valid token issued by this referee. "
                                 "Got an unknown or malformed token.", headers={"WWW-Authenticate": "Bearer"})
    return comp


def require_admin(request: Request, x_admin_secret: str | None = Header(default=None)) -> None:
    secret = request.app.state.settings.admin_secret.get_secret_value()
    if not x_admin_secret or not security.same(x_admin_secret, secret):
        raise HTTPException(403, "This admin route needs the header 'X-Admin-Secret' with the "
                                 "referee's admin secret. Got a missing or wrong secret.")


def get_task(name: str, session: Session = Depends(get_db)) -> Task:
    task = session.scalar(select(Task).where(Task.name == name)) if storage.NAME_RE.fullmatch(name) else None
    if task is None:
        raise HTTPException(404, f"The task name must be an existing task (see GET /api/tasks). "
                                 f"Got {name[:64]!r}.")
    return task
