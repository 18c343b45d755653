"""Submissions: upload an ONNX model (validated, stored durably, queued), list and read your own.

An upload's body is read only after the token, the task's window, the daily limit and the
competitor cap have been checked (``upload_gate``, a dependency that touches no body) and
after serving.Hardening has checked the declared Content-Length; the body is then capped as
it streams. A refused request never reaches the disk.
"""
import hashlib
from dataclasses import dataclass

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from petridish.ctf import storage
from petridish.ctf.db import Competitor, Submission, Task
from petridish.ctf.deps import RowId, current_competitor, get_db, get_task
from petridish.ctf.intake import NewSubmission
from petridish.ctf.validate import Refused, Signature
from petridish.ctf.views import is_open, iso, submission_dict, submissions_today

router = APIRouter(prefix="/api", tags=["submissions"])
UPLOAD_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "the ONNX model"}}}}}}}


@dataclass(frozen=True)
class Gate:
    """An upload that passed every check that needs no body."""
    task_id: int
    task_name: str
    comp_id: int
    daily_limit: int
    signature: Signature


def upload_gate(request: Request, task: Task = Depends(get_task), comp: Competitor = Depends(current_competitor),
                session: Session = Depends(get_db)) -> Gate:
    _check_open(task)
    _check_limit(session, task, comp)
    _check_cap(session, task, comp, request.app.state.settings.max_competitors_per_task)
    gate = Gate(task.id, task.name, comp.id, task.daily_limit, Signature(task.input_dim, task.n_outputs))
    session.rollback()    # hand the connection back while the file is read, validated and written
    return gate


@router.post("/tasks/{name}/submissions", status_code=202, openapi_extra=UPLOAD_DOC)
async def submit(request: Request, gate: Gate = Depends(upload_gate)) -> dict:
    """Multipart field 'file': an ONNX model (see petridish.ctf.export_onnx)."""
    data = await _model_bytes(request, request.app.state.settings.max_model_bytes)
    return await run_in_threadpool(_accept, request.app.state, gate, data)


async def _model_bytes(request: Request, max_bytes: int) -> bytes:
    form = await request.form(max_files=1, max_fields=8)
    try:
        file = form.get("file")
        if file is None or isinstance(file, str):
            raise HTTPException(422, f"The 'file' field of POST {request.url.path[:100]} must be an ONNX "
                                     "model sent as multipart/form-data. Got none.")
        data = await file.read(max_bytes + 1)
    finally:
        await form.close()
    if len(data) > max_bytes:
        raise HTTPException(413, f"The model file must be at most {max_bytes} bytes. Got more.")
    return data


def _accept(state, gate: Gate, data: bytes) -> dict:
    try:
        state.scorer.check_upload(data, gate.signature)   # in the sandbox, with the scoring limits
    except Refused as exc:
        raise HTTPException(422, str(exc))
    file_name = storage.new_model_name()
    # durable before scored: the file is fsynced, then the row is committed, then queued
    path = storage.model_path(state.settings.data_dir, file_name)
    storage.write_durably(path, data)
    try:
        sub = state.intake.add(NewSubmission(gate.task_id, gate.comp_id, gate.daily_limit, file_name,
                                             hashlib.sha256(data).hexdigest(), len(data)))
    except BaseException:
        path.unlink(missing_ok=True)     # no row, no file
        raise
    if sub is None:                      # the limit was reached while this file was checked
        path.unlink(missing_ok=True)
        raise _limit_reached(gate.task_name, gate.daily_limit)
    state.scorer.enqueue(sub.id, gate.comp_id)
    return {"id": sub.id, "task": gate.task_name, "status": "queued", "created_at": iso(sub.created_at)}


def _check_open(task: Task) -> None:
    if not is_open(task):
        raise HTTPException(403, f"Submissions to {task.name!r} must arrive between its opening "
                                 f"({iso(task.opens_at)}) and closing ({iso(task.closes_at)}). It is not open now.")


def _check_limit(session: Session, task: Task, comp: Competitor) -> None:
    if submissions_today(session, task, comp) >= task.daily_limit:
        raise _limit_reached(task.name, task.daily_limit)


def _check_cap(session: Session, task: Task, comp: Competitor, cap: int | None) -> None:
    """A task admits at most `cap` competitors: a newcomer's first upload is refused when full."""
    if cap is None:
        return
    mine = Submission.task_id == task.id
    if session.scalar(select(Submission.id).where(mine, Submission.competitor_id == comp.id).limit(1)) is not None:
        return
    if (session.scalar(select(func.count(func.distinct(Submission.competitor_id))).where(mine)) or 0) >= cap:
        raise HTTPException(403, f"The task {task.name!r} admits at most {cap} competitors and is full. "
                                 "Ask the admin to raise the cap.")


def _limit_reached(task_name: str, limit: int) -> HTTPException:
    return HTTPException(429, f"Submissions to {task_name!r} are limited to {limit} per "
                              "competitor per UTC day. You have reached the limit; try again tomorrow.")


@router.get("/submissions")
def my_submissions(task: str | None = Query(None, max_length=64), comp: Competitor = Depends(current_competitor),
                   session: Session = Depends(get_db)) -> list[dict]:
    q = select(Submission, Task).join(Task, Task.id == Submission.task_id).where(
        Submission.competitor_id == comp.id)
    if task is not None:
        q = q.where(Task.name == task)
    return [submission_dict(s, t) for s, t in session.execute(q.order_by(Submission.id))]


@router.get("/submissions/{sid}")
def my_submission(sid: RowId, comp: Competitor = Depends(current_competitor),
                  session: Session = Depends(get_db)) -> dict:
    sub = session.get(Submission, sid)
    if sub is None or sub.competitor_id != comp.id:   # someone else's looks exactly like none
        raise HTTPException(404, f"The submission id must be one of your own submissions. Got {sid}.")
    return submission_dict(sub, session.get(Task, sub.task_id))
