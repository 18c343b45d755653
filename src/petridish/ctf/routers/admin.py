"""Admin (header X-Admin-Secret): create a task from uploaded arrays, change its times and limits.

The admin secret is checked (router dependency) before any body is read; every number in a
request is bounded, so a huge integer is a one-line 422, never a 500.
"""
import datetime as dt
import io
import zipfile

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from petridish.ctf import tasks as task_service
from petridish.ctf.db import Task
from petridish.ctf.deps import MAX_INT, Moment, get_db, get_task, require_admin
from petridish.ctf.views import task_dict
from petridish.errors import PetridishError

router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Depends(require_admin)])
ARRAYS = ("x_train", "y_train", "x_test", "y_test")


class TaskForm(BaseModel):
    """The form fields of POST /api/admin/tasks (besides the 'arrays' file)."""
    name: str = Field(max_length=200)
    metric: str = Field(default="accuracy", max_length=64)
    leaderboard: str = Field(default="ladder", max_length=64)
    description: str = Field(default="", max_length=20000)
    public_fraction: float = Field(default=0.5, gt=0, lt=1)
    daily_limit: int | None = Field(default=None, ge=1, le=MAX_INT)
    decimals: int | None = Field(default=None, ge=0, le=10)
    eta: float = Field(default=0.01, gt=0, le=1)
    split_seed: int = Field(default=0, ge=0, le=2**63 - 1)
    opens_at: Moment | None = None
    closes_at: Moment | None = None


FORM_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["arrays", "name"],
    "properties": {"arrays": {"type": "string", "format": "binary",
                              "description": "an .npz with x_train, y_train, x_test, y_test"},
                   **TaskForm.model_json_schema()["properties"]}}}}}}


@router.post("/tasks", status_code=201, openapi_extra=FORM_DOC)
async def create(request: Request, session: Session = Depends(get_db)) -> dict:
    """Multipart: 'arrays' (an .npz, loaded with allow_pickle=False) and the TaskForm fields."""
    st = request.app.state.settings
    form = await request.form(max_files=1, max_fields=20)
    try:
        fields = _task_form({k: v for k, v in form.items() if isinstance(v, str)})
        upload = form.get("arrays")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "The 'arrays' field of POST /api/admin/tasks must be an .npz file. Got none.")
        raw = await upload.read(st.max_arrays_bytes + 1)
    finally:
        await form.close()
    data = _load_npz(raw, st.max_arrays_bytes)
    return await run_in_threadpool(_create, request, session, fields, data)


def _task_form(values: dict) -> TaskForm:
    try:
        return TaskForm.model_validate({k: v for k, v in values.items() if v != "" or k == "description"})
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _create(request: Request, session: Session, f: TaskForm, data: dict) -> dict:
    st = request.app.state.settings
    try:
        with request.app.state.write_lock:
            task = task_service.create_task(
                session, st.data_dir, name=f.name, metric=f.metric, leaderboard=f.leaderboard,
                description=f.description, public_fraction=f.public_fraction,
                daily_limit=st.daily_limit if f.daily_limit is None else f.daily_limit,
                decimals=st.decimals if f.decimals is None else f.decimals, eta=f.eta, split_seed=f.split_seed,
                opens_at=_naive(f.opens_at), closes_at=_naive(f.closes_at), **data)
    except PetridishError as exc:
        raise HTTPException(409 if "already exists" in str(exc) else 422, str(exc))
    return task_dict(task)


class TaskUpdate(BaseModel):
    opens_at: Moment | None = None
    closes_at: Moment | None = None
    daily_limit: int | None = Field(default=None, ge=1, le=MAX_INT)
    description: str | None = Field(default=None, max_length=20000)


@router.patch("/tasks/{name}")
def update(body: TaskUpdate, request: Request, task: Task = Depends(get_task),
           session: Session = Depends(get_db)) -> dict:
    opens, closes = _naive(body.opens_at) or task.opens_at, _naive(body.closes_at) or task.closes_at
    if closes <= opens:
        raise HTTPException(422, f"The 'closes_at' field must be after opens_at ({opens.isoformat()}). "
                                 f"Got {closes.isoformat()}.")
    with request.app.state.write_lock:
        task.opens_at, task.closes_at = opens, closes
        if body.daily_limit is not None:
            task.daily_limit = body.daily_limit
        if body.description is not None:
            task.description = body.description
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
