"""Admin (header X-Admin-Secret): create a task from uploaded arrays, change its times and limits."""
import datetime as dt
import io
import zipfile

import numpy as np
from fastapi import APIRouter, Depends, Form, HTTPException, Request, UploadFile
from pydantic import BaseModel
from sqlalchemy.orm import Session

from petridish.ctf import tasks as task_service
from petridish.ctf.db import Task
from petridish.ctf.deps import get_db, get_task, require_admin
from petridish.ctf.views import task_dict
from petridish.errors import PetridishError

router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Depends(require_admin)])
ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@router.post("/tasks", status_code=201)
def create(request: Request, arrays: UploadFile, name: str = Form(...),
                 metric: str = Form("accuracy"), leaderboard: str = Form("ladder"),
                 description: str = Form(""), public_fraction: float = Form(0.5),
                 daily_limit: int | None = Form(None), decimals: int | None = Form(None),
                 eta: float = Form(0.01), split_seed: int = Form(0),
                 opens_at: dt.datetime | None = Form(None), closes_at: dt.datetime | None = Form(None),
                 session: Session = Depends(get_db)) -> dict:
    """`arrays`: an .npz with x_train, y_train, x_test, y_test (loaded with allow_pickle=False)."""
    st = request.app.state.settings
    data = _load_npz(arrays.file.read(request.app.state.settings.max_arrays_bytes + 1), request.app.state.settings.max_arrays_bytes)
    try:
        with request.app.state.write_lock:
            task = task_service.create_task(
                session, st.data_dir, name=name, metric=metric, leaderboard=leaderboard,
                description=description, public_fraction=public_fraction,
                daily_limit=st.daily_limit if daily_limit is None else daily_limit,
                decimals=st.decimals if decimals is None else decimals, eta=eta, split_seed=split_seed,
                opens_at=_naive(opens_at), closes_at=_naive(closes_at), **data)
    except PetridishError as exc:
        raise HTTPException(409 if "already exists" in str(exc) else 422, str(exc))
    return task_dict(task)


class TaskUpdate(BaseModel):
    opens_at: dt.datetime | None = None
    closes_at: dt.datetime | None = None
    daily_limit: int | None = None
    description: str | None = None


@router.patch("/tasks/{name}")
def update(body: TaskUpdate, task: Task = Depends(get_task), session: Session = Depends(get_db)) -> dict:
    opens, closes = _naive(body.opens_at) or task.opens_at, _naive(body.closes_at) or task.closes_at
    if closes <= opens:
        raise HTTPException(422, f"The 'closes_at' field must be after opens_at ({opens.isoformat()}). "
                                 f"Got {closes.isoformat()}.")
    if body.daily_limit is not None and body.daily_limit < 1:
        raise HTTPException(422, f"The 'daily_limit' field must be an int >= 1. Got {body.daily_limit}.")
    task.opens_at, task.closes_at = opens, closes
    if body.daily_limit is not None:
        task.daily_limit = body.daily_limit
    if body.description is not None:
        task.description = body.description[:20000]
    session.commit()
    return task_dict(task)


def _naive(t: dt.datetime | None) -> dt.datetime | None:
    if t is None or t.tzinfo is None:
        return t
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _load_npz(raw: bytes, max_bytes: int) -> dict:
    if len(raw) > max_bytes:
        raise HTTPException(413, f"The 'arrays' file must be at most {max_bytes} bytes. Got more.")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            missing = [k for k in ARRAYS if k not in z.files]
            if missing:
                raise HTTPException(422, f"The 'arrays' file must be an .npz with {', '.join(ARRAYS)}. "
                                         f"Got one without {', '.join(missing)}.")
            return {k: z[k] for k in ARRAYS}
    except HTTPException:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError):
        raise HTTPException(422, "The 'arrays' file must be an .npz of numeric arrays (no pickled "
                                 "objects). Got a file that does not load as one.") from None
