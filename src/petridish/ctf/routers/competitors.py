"""Competitors: register (returns the API token, shown once), who-am-I, and admin-issued tokens.

Open registration is throttled per client address (settings.registrations_per_hour); when an
admin has closed it, a valid invitation is the only way in (see routers/registration.py).
"""
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from petridish.ctf import enrolment
from petridish.ctf.db import Competitor
from petridish.ctf.deps import current_competitor, get_db, require_admin

router = APIRouter(prefix="/api", tags=["competitors"])
NOTE = "Keep this token: only its hash is stored, it cannot be shown again."


class Registration(BaseModel):
    name: str = Field(max_length=200)
    invitation: str | None = Field(default=None, max_length=200)


class NewCompetitor(BaseModel):
    name: str = Field(max_length=200)


@router.post("/competitors", status_code=201)
def register(body: Registration, request: Request, session: Session = Depends(get_db)) -> dict:
    enrolment.check_name(body.name)
    state, client = request.app.state, request.client.host if request.client else "unknown"
    with state.write_lock:
        invitation = enrolment.take_invitation(session, body.invitation) if body.invitation else None
        if invitation is None:
            _check_open(session, state)
            _check_rate(state, client)
        comp, token = enrolment.create_competitor(session, body.name)
        if invitation is not None:
            invitation.used_by = comp.id
        session.commit()
        if invitation is None:
            state.registrations.record(client)
    return {"id": comp.id, "name": comp.name, "token": token, "note": NOTE}


def _check_open(session: Session, state) -> None:
    if not enrolment.registration_open(session, state.settings.registration_open):
        raise HTTPException(403, "Registration on this referee is by invitation: send the field "
                                 "'invitation' with a code from the admin. Got none.")


def _check_rate(state, client: str) -> None:
    wait = state.registrations.retry_after(client)
    if wait > 0:
        limit = state.settings.registrations_per_hour
        raise HTTPException(429, f"Registrations are limited to {limit} per client address per hour. "
                                 f"This address has reached the limit; retry in {int(wait) + 1} s or ask "
                                 "the admin for an invitation.", headers={"Retry-After": str(int(wait) + 1)})


@router.get("/me")
def me(comp: Competitor = Depends(current_competitor)) -> dict:
    return {"id": comp.id, "name": comp.name}


@router.post("/admin/competitors", status_code=201, dependencies=[Depends(require_admin)], tags=["admin"])
def issue_token(body: NewCompetitor, request: Request, session: Session = Depends(get_db)) -> dict:
    """Admin: register a competitor directly (no throttle, works while registration is closed)."""
    with request.app.state.write_lock:
        comp, token = enrolment.create_competitor(session, body.name)
        session.commit()
    return {"id": comp.id, "name": comp.name, "token": token, "note": NOTE}
