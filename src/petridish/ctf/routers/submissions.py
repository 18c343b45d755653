"""Submissions: upload an ONNX model (validated, stored durably, queued), list and read your own."""
import hashlib

from fastapi import APIRouter, Depends, HTTPException, Request, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session

from petridish.ctf import storage
from petridish.ctf.db import Competitor, Submission, Task
from petridish.ctf.deps import current_competitor, get_db, get_task
from petridish.ctf.intake import NewSubmission
from petridish.ctf.validate import Refused, Signature
from petridish.ctf.views import is_open, iso, submission_dict, submissions_today

router = APIRouter(prefix="/api", tags=["submissions"])


@router.post("/tasks/{name}/submissions", status_code=202)
def submit(request: Request, file: UploadFile, task: Task = Depends(get_task),
                 comp: Competitor = Depends(current_competitor),
                 session: Session = Depends(get_db)) -> dict:
    state = request.app.state
    st = state.settings
    _check_open(task)
    _check_limit(session, task, comp)
    task_id, task_name, comp_id, daily_limit = task.id, task.name, comp.id, task.daily_limit
    signature = Signature(task.input_dim, task.n_outputs)
    session.rollback()    # hand the connection back while the file is validated and written
    data = file.file.read(st.max_model_bytes + 1)
    try:
        state.scorer.check_upload(data, signature)   # in the sandbox, with the scoring limits
    except Refused as exc:
        raise HTTPException(413 if len(data) > st.max_model_bytes else 422, str(exc))
    file_name = storage.new_model_name()
    # durable before scored: the file is fsynced, then the row is committed, then queued
    path = storage.model_path(st.data_dir, file_name)
    storage.write_durably(path, data)
    try:
        sub = state.intake.add(NewSubmission(task_id, comp_id, daily_limit, file_name,
                                             hashlib.sha256(data).hexdigest(), len(data)))
    except BaseException:
        path.unlink(missing_ok=True)     # no row, no file
        raise
    if sub is None:                      # the limit was reached while this file was checked
        path.unlink(missing_ok=True)
        raise _limit_reached(task_name, daily_limit)
    state.scorer.enqueue(sub.id, comp_id)
    return {"id": sub.id, "task": task_name, "status": "queued", "created_at": iso(sub.created_at)}


def _check_open(task: Task) -> None:
    if not is_open(task):
        raise HTTPException(403, f"Submissions to {task.name!r} must arrive between its opening "
                                 f"({iso(task.opens_at)}) and closing ({iso(task.closes_at)}). It is not open now.")


def _check_limit(session: Session, task: Task, comp: Competitor) -> None:
    if submissions_today(session, task, comp) >= task.daily_limit:
        raise _limit_reached(task.name, task.daily_limit)


def _limit_reached(task_name: str, limit: int) -> HTTPException:
    return HTTPException(429, f"Submissions to {task_name!r} are limited to {limit} per "
                              "competitor per UTC day. You have reached the limit; try again tomorrow.")


@router.get("/submissions")
def my_submissions(task: str | None = None, comp: Competitor = Depends(current_competitor),
                   session: Session = Depends(get_db)) -> list[dict]:
    q = select(Submission, Task).join(Task, Task.id == Submission.task_id).where(
        Submission.competitor_id == comp.id)
    if task is not None:
        q = q.where(Task.name == task)
    return [submission_dict(s, t) for s, t in session.execute(q.order_by(Submission.id))]


@router.get("/submissions/{sid}")
def my_submission(sid: int, comp: Competitor = Depends(current_competitor),
                  session: Session = Depends(get_db)) -> dict:
    sub = session.get(Submission, sid)
    if sub is None or sub.competitor_id != comp.id:   # someone else's looks exactly like none
        raise HTTPException(404, f"The submission id must be one of your own submissions. Got {sid}.")
    return submission_dict(sub, session.get(Task, sub.task_id))
