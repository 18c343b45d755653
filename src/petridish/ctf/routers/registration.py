"""Registration policy: whether open registration is allowed (public read, admin write) and
single-use invitations, the way in while it is closed."""
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from petridish.ctf import enrolment
from petridish.ctf.deps import get_db, require_admin
from petridish.ctf.views import iso

router = APIRouter(prefix="/api", tags=["registration"])


class Policy(BaseModel):
    open: bool


class InvitationRequest(BaseModel):
    count: int = Field(default=1, ge=1, le=enrolment.MAX_INVITATIONS)
    days: float = Field(default=14.0, gt=0, le=365)


def _policy(request: Request, session: Session) -> dict:
    st = request.app.state.settings
    return {"open": enrolment.registration_open(session, st.registration_open),
            "registrations_per_client_per_hour": st.registrations_per_hour,
            "max_competitors_per_task": st.max_competitors_per_task}


@router.get("/registration")
def policy(request: Request, session: Session = Depends(get_db)) -> dict:
    return _policy(request, session)


@router.put("/admin/registration", dependencies=[Depends(require_admin)], tags=["admin"])
def set_policy(body: Policy, request: Request, session: Session = Depends(get_db)) -> dict:
    """Admin: open or close registration (closed: invitations and admin-issued tokens only)."""
    with request.app.state.write_lock:
        enrolment.set_registration(session, body.open)
    return _policy(request, session)


@router.post("/admin/invitations", status_code=201, dependencies=[Depends(require_admin)], tags=["admin"])
def invite(body: InvitationRequest, request: Request, session: Session = Depends(get_db)) -> dict:
    """Admin: single-use registration codes (shown once; only their hashes are stored)."""
    with request.app.state.write_lock:
        codes, expires = enrolment.issue_invitations(session, body.count, body.days)
    return {"invitations": codes, "expires_at": iso(expires)}
