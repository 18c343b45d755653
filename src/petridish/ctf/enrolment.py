"""Who gets in: competitor rows and their API tokens, whether open registration is allowed
(an admin flag kept in the database, so it survives restarts), single-use invitations, and
browser sessions. Callers hold the app's write lock around the functions that write.
"""
from __future__ import annotations

import datetime as dt

from fastapi import HTTPException
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from petridish.ctf import security, storage
from petridish.ctf.db import Competitor, Invitation, RefereeFlag, WebSession, utcnow

OPEN_FLAG = "registration_open"
MAX_INVITATIONS = 1000


def check_name(name: str) -> None:
    if not storage.COMPETITOR_RE.fullmatch(name):
        raise HTTPException(422, "The competitor name must be 1 to 64 characters from A-Z, a-z, 0-9, "
                                 f"'-' and '_', starting with a letter or digit. Got {name[:64]!r}.")


def create_competitor(session: Session, name: str) -> tuple[Competitor, str]:
    """A new competitor and its token (shown once); 409 if the name is taken. Commits."""
    check_name(name)
    taken = HTTPException(409, f"The competitor name must be unused. Got {name!r}, which is taken.")
    if session.scalar(select(Competitor.id).where(Competitor.name == name)) is not None:
        raise taken
    token, token_id, token_hash = security.new_token()
    comp = Competitor(name=name, token_id=token_id, token_hash=token_hash)
    session.add(comp)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise taken from None
    return comp, token


def registration_open(session: Session, default: bool) -> bool:
    flag = session.get(RefereeFlag, OPEN_FLAG)
    return default if flag is None else flag.value == "1"


def set_registration(session: Session, is_open: bool) -> None:
    flag = session.get(RefereeFlag, OPEN_FLAG)
    if flag is None:
        session.add(RefereeFlag(name=OPEN_FLAG, value="1" if is_open else "0"))
    else:
        flag.value = "1" if is_open else "0"
    session.commit()


def issue_invitations(session: Session, count: int, days: float) -> tuple[list[str], dt.datetime]:
    """count (1..MAX_INVITATIONS, checked by the route) new codes, valid `days`; commits."""
    expires = utcnow() + dt.timedelta(days=days)
    codes = []
    for _ in range(count):
        code, code_hash = security.new_secret()
        session.add(Invitation(code_hash=code_hash, expires_at=expires))
        codes.append(code)
    session.commit()
    return codes, expires


def take_invitation(session: Session, code: str) -> Invitation:
    """The unused, unexpired invitation with this code (not yet marked used), else 403."""
    inv = session.scalar(select(Invitation).where(Invitation.code_hash == security.hash_token(code))) \
        if 0 < len(code) <= 128 else None
    if inv is None or inv.used_by is not None or inv.expires_at <= utcnow():
        raise HTTPException(403, "The invitation must be an unused, unexpired code issued by the admin. "
                                 "Got an unknown, used or expired one.")
    return inv


def open_session(session: Session, competitor_id: int, days: float) -> str:
    """A new browser session (expired ones are swept first); returns the cookie value."""
    now = utcnow()
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    sid, sid_hash = security.new_secret()
    session.add(WebSession(sid_hash=sid_hash, competitor_id=competitor_id,
                           expires_at=now + dt.timedelta(days=days)))
    session.commit()
    return sid


def close_session(session: Session, sid: str | None) -> None:
    if sid and len(sid) <= 128:
        session.execute(delete(WebSession).where(WebSession.sid_hash == security.hash_token(sid)))
        session.commit()
