"""Competitors: register (returns the API token, shown once) and who-am-I."""
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from petridish.ctf import security, storage
from petridish.ctf.db import Competitor
from petridish.ctf.deps import current_competitor, get_db

router = APIRouter(prefix="/api", tags=["competitors"])


class Registration(BaseModel):
    name: str


@router.post("/competitors", status_code=201)
def register(body: Registration, request: Request, session: Session = Depends(get_db)) -> dict:
    if not storage.COMPETITOR_RE.match(body.name):
        raise HTTPException(422, "The competitor name must be 1 to 64 characters from A-Z, a-z, 0-9, "
                                 f"'-' and '_', starting with a letter or digit. Got {body.name[:64]!r}.")
    token, token_id, token_hash = security.new_token()
    with request.app.state.write_lock:
        if session.scalar(select(Competitor.id).where(Competitor.name == body.name)) is not None:
            raise HTTPException(409, f"The competitor name must be unused. Got {body.name!r}, which is taken.")
        comp = Competitor(name=body.name, token_id=token_id, token_hash=token_hash)
        session.add(comp)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            raise HTTPException(409, f"The competitor name must be unused. Got {body.name!r}, which is taken.")
    return {"id": comp.id, "name": comp.name, "token": token,
            "note": "Keep this token: only its hash is stored, it cannot be shown again."}


@router.get("/me")
def me(comp: Competitor = Depends(current_competitor)) -> dict:
    return {"id": comp.id, "name": comp.name}
